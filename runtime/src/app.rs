//! A loaded app: its components, ready to instantiate, and its routes.

use std::sync::Arc;

use mayfly_host_api::kv::Backend;
use wasmtime::Engine;

use crate::cache::CompileCache;
use crate::component::{LoadError, LoadedComponent};
use crate::host;
use crate::manifest::{AppSpec, ComponentSpec};
use crate::router::{Pattern, Router};

/// An app ready to serve.
#[derive(Debug)]
pub struct App {
    name: String,
    components: Vec<Arc<LoadedComponent>>,
    routes: Vec<(Pattern, usize)>,
    router: Router<usize>,
}

impl App {
    /// Compiles (or loads from `cache`) and pre-instantiates every component
    /// of `spec`, giving those with stores `backend`. Fails on the first
    /// component that cannot be loaded.
    pub fn load(
        engine: &Engine,
        spec: &AppSpec,
        cache: &CompileCache,
        backend: Option<&Arc<dyn Backend>>,
    ) -> anyhow::Result<Self> {
        let linker = host::linker(engine).map_err(anyhow::Error::from)?;
        let components = spec
            .components
            .iter()
            .map(|component| LoadedComponent::load(engine, &linker, component, cache, backend))
            .collect::<Result<Vec<_>, LoadError>>()?;
        Self::assemble(spec, components)
    }

    /// Loads `spec` as the next version of `previous`, the app being
    /// served. A component for which `unchanged` says yes, and that
    /// `previous` has, is taken over as it is (no recompile, no new
    /// version); the others are loaded anew, sharing their admission gate
    /// with their previous version. Also returns, per component of `spec`,
    /// whether it was loaded anew.
    pub fn load_next(
        engine: &Engine,
        spec: &AppSpec,
        cache: &CompileCache,
        backend: Option<&Arc<dyn Backend>>,
        previous: &App,
        unchanged: impl Fn(&ComponentSpec, &LoadedComponent) -> bool,
    ) -> anyhow::Result<(Self, Vec<bool>)> {
        let linker = host::linker(engine).map_err(anyhow::Error::from)?;
        let mut components = Vec::with_capacity(spec.components.len());
        let mut loaded = Vec::with_capacity(spec.components.len());
        for declared in &spec.components {
            let before = previous.component(&declared.name);
            match before {
                Some(before) if unchanged(declared, before) => {
                    components.push(before.clone());
                    loaded.push(false);
                }
                _ => {
                    components.push(LoadedComponent::load_after(
                        engine,
                        &linker,
                        declared,
                        cache,
                        backend,
                        before.map(|before| &**before),
                    )?);
                    loaded.push(true);
                }
            }
        }
        Ok((Self::assemble(spec, components)?, loaded))
    }

    fn assemble(spec: &AppSpec, components: Vec<Arc<LoadedComponent>>) -> anyhow::Result<Self> {
        let router = Router::new(spec.routes.iter().cloned())
            .map_err(|pattern| anyhow::anyhow!("route `{pattern}` is declared twice"))?;
        Ok(Self {
            name: spec.name.clone(),
            components,
            routes: spec.routes.clone(),
            router,
        })
    }

    /// This app with component `index` replaced by `component` (a new
    /// version of it); the routes are unchanged.
    pub fn with_component(&self, index: usize, component: Arc<LoadedComponent>) -> Self {
        let mut components = self.components.clone();
        components[index] = component;
        Self {
            name: self.name.clone(),
            components,
            routes: self.routes.clone(),
            router: self.router.clone(),
        }
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
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

    /// The component that serves `path`, if any route matches it.
    pub fn route(&self, path: &str) -> Option<&Arc<LoadedComponent>> {
        self.router.route(path).map(|i| &self.components[i])
    }
}
