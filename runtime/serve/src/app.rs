//! A loaded app: its components, ready to instantiate, and its routes.

use std::sync::Arc;

use crate::component::{LoadError, LoadedComponent};
use crate::loader::Loader;
use crate::manifest::{AppKind, AppSpec, ComponentSpec};
use crate::metrics::Metrics;
use crate::router::{Pattern, Router};

/// An app ready to serve.
#[derive(Debug)]
pub struct App {
    name: String,
    kind: AppKind,
    components: Vec<Arc<LoadedComponent>>,
    routes: Vec<(Pattern, usize)>,
    /// Routes to their index in `routes`.
    router: Router<usize>,
    metrics: Arc<Metrics>,
}

impl App {
    /// Compiles (or takes from the cache) and pre-instantiates every
    /// component of `spec` with `loader`. Fails on the first component that
    /// cannot be loaded.
    pub fn load(loader: &Loader, spec: &AppSpec) -> anyhow::Result<Self> {
        let components = spec
            .components
            .iter()
            .map(|component| loader.load(component, None))
            .collect::<Result<Vec<_>, LoadError>>()?;
        Self::assemble(loader, spec, components)
    }

    /// Loads `spec` as the next version of `previous`, the app being
    /// served. A component for which `unchanged` says yes, and that
    /// `previous` has, is taken over as it is (no recompile, no new
    /// version); the others are loaded anew, sharing their admission gate
    /// with their previous version. Also returns, per component of `spec`,
    /// whether it was loaded anew.
    pub fn load_next(
        loader: &Loader,
        spec: &AppSpec,
        previous: &App,
        unchanged: impl Fn(&ComponentSpec) -> bool,
    ) -> anyhow::Result<(Self, Vec<bool>)> {
        let mut components = Vec::with_capacity(spec.components.len());
        let mut loaded = Vec::with_capacity(spec.components.len());
        for declared in &spec.components {
            let before = previous.component(&declared.name);
            match before {
                Some(before) if unchanged(declared) => {
                    components.push(before.clone());
                    loaded.push(false);
                }
                _ => {
                    components.push(loader.load(declared, before.map(|before| &**before))?);
                    loaded.push(true);
                }
            }
        }
        Ok((Self::assemble(loader, spec, components)?, loaded))
    }

    fn assemble(
        loader: &Loader,
        spec: &AppSpec,
        components: Vec<Arc<LoadedComponent>>,
    ) -> anyhow::Result<Self> {
        let router = Router::new(
            spec.routes
                .iter()
                .enumerate()
                .map(|(i, (pattern, _))| (pattern.clone(), i)),
        )
        .map_err(|pattern| anyhow::anyhow!("route `{pattern}` is declared twice"))?;
        Ok(Self {
            name: spec.name.clone(),
            kind: spec.kind,
            components,
            routes: spec.routes.clone(),
            router,
            metrics: loader.metrics().clone(),
        })
    }

    /// This app with component `index` replaced by `component` (a new
    /// version of it); the routes are unchanged.
    pub fn with_component(&self, index: usize, component: Arc<LoadedComponent>) -> Self {
        let mut components = self.components.clone();
        components[index] = component;
        Self {
            name: self.name.clone(),
            kind: self.kind,
            components,
            routes: self.routes.clone(),
            router: self.router.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which manifest it came from.
    pub fn kind(&self) -> AppKind {
        self.kind
    }

    /// The loaded components, in name order.
    pub fn components(&self) -> &[Arc<LoadedComponent>] {
        &self.components
    }

    /// The routes as declared, with the component each serves.
    pub fn routes(&self) -> impl Iterator<Item = (&Pattern, &LoadedComponent)> {
        self.routes
            .iter()
            .map(|(pattern, i)| (pattern, &*self.components[*i]))
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Arc<LoadedComponent>> {
        self.components.iter().find(|c| c.name() == name)
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The component that serves `path`, if any route matches it.
    pub fn route(&self, path: &str) -> Option<(&Arc<LoadedComponent>, &Pattern)> {
        self.router.route(path).map(|i| {
            let (pattern, component) = &self.routes[i];
            (&self.components[*component], pattern)
        })
    }
}
