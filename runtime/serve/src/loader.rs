//! What loads components: the sandbox's [`Runtime`] (one engine, with its
//! epoch ticker, linker and compile cache, built with the server's
//! settings), the key-value backend and the metrics. The first version of
//! an app, every deploy and every reload go through the same [`Loader`].

use std::sync::Arc;

use mayfly_host_api::kv::Backend;
use mayfly_sandbox::units::format_size;
use mayfly_sandbox::{CompileCache, EngineSettings, Runtime, Sandbox};
use wasmtime::Engine;
use wasmtime_wasi_http::handler::ProxyPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre as ProxyPre02;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::component::{LoadError, LoadErrorKind, LoadedComponent, World, check_exports};
use crate::gate::{Gate, Slots};
use crate::manifest::{ComponentSpec, Source};
use crate::metrics::Metrics;

/// Loads components for one server.
pub struct Loader {
    runtime: Runtime,
    backend: Option<Arc<dyn Backend>>,
    metrics: Arc<Metrics>,
}

impl Loader {
    /// A runtime with `settings`, loading through `cache`, giving
    /// components with stores `backend`, counting in `metrics`.
    pub fn new(
        settings: EngineSettings,
        cache: CompileCache,
        backend: Option<Arc<dyn Backend>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self::on(Runtime::new(settings, cache)?, backend, metrics))
    }

    /// Like [`Loader::new`], on an `engine` the caller configured (to
    /// measure other engine configurations, say); components' limits are
    /// still checked against `settings`.
    pub fn with_engine(
        engine: Engine,
        settings: EngineSettings,
        cache: CompileCache,
        backend: Option<Arc<dyn Backend>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let runtime = Runtime::with_engine(engine, settings, cache)?;
        Ok(Self::on(runtime, backend, metrics))
    }

    fn on(runtime: Runtime, backend: Option<Arc<dyn Backend>>, metrics: Arc<Metrics>) -> Self {
        Self {
            runtime,
            backend,
            metrics,
        }
    }

    /// The engine components are loaded for.
    pub fn engine(&self) -> &Engine {
        self.runtime.engine()
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Loads the component `spec` describes; as the next version of
    /// `previous`, if given: if their concurrency limits are the same, the
    /// two share one admission gate (one count of instances running, one
    /// queue).
    pub fn load(
        &self,
        spec: &ComponentSpec,
        previous: Option<&LoadedComponent>,
    ) -> Result<Arc<LoadedComponent>, LoadError> {
        let fail = |kind| LoadError {
            component: spec.name.clone(),
            field: spec.field.clone(),
            file: spec.source.to_string(),
            kind,
        };
        self.check_against_server(spec).map_err(fail)?;
        let file_bytes;
        let bytes: &[u8] = match &spec.source {
            Source::File(path) => {
                file_bytes = std::fs::read(path).map_err(|e| fail(LoadErrorKind::Read(e)))?;
                &file_bytes
            }
            Source::Embedded { bytes, .. } => bytes,
            Source::Deployed { bytes, .. } => bytes,
        };

        let (component, cache) = self.runtime.compile(bytes).map_err(|e| fail(e.into()))?;
        let world = check_exports(self.engine(), &component).map_err(fail)?;
        let instance_pre = self
            .runtime
            .instantiate_pre(&component)
            .map_err(|e| fail(e.into()))?;
        let wrong_world =
            |e: wasmtime::Error| fail(LoadErrorKind::WrongWorld(world, format!("{e:#}")));
        let pre = match world {
            World::Http02 => ProxyPre::P2(ProxyPre02::new(instance_pre).map_err(wrong_world)?),
            World::Http03 => ProxyPre::P3(ServicePre::new(instance_pre).map_err(wrong_world)?),
        };

        let sandbox = Sandbox::new(
            self.engine(),
            Arc::from(spec.name.as_str()),
            spec.grants.clone(),
            spec.limits.store,
            self.backend.clone(),
        )
        .map_err(|err| {
            fail(LoadErrorKind::Invalid(format!(
                "{err} (fuel limits added after start-up need a restart)"
            )))
        })?;
        let metrics = self.metrics.component(&spec.name);
        let gate = previous
            .filter(|previous| previous.name() == spec.name)
            .filter(|previous| previous.gate.enforces(&spec.limits.http))
            .map_or_else(
                || Arc::new(Gate::new(&spec.limits.http, &metrics)),
                |previous| previous.gate.clone(),
            );
        Ok(Arc::new(LoadedComponent {
            pre,
            sandbox,
            limits: spec.limits,
            gate,
            metrics,
            cache,
            slots: Slots::new(self.engine(), self.runtime.settings().max_instances),
        }))
    }

    /// Checks the limits that depend on the server against its settings:
    /// a component needs at least one instance and cannot ask for more than
    /// the server has, nor for a larger memory than its slots hold.
    fn check_against_server(&self, spec: &ComponentSpec) -> Result<(), LoadErrorKind> {
        let limits = &spec.limits;
        let fields = &spec.limit_fields;
        let settings = self.runtime.settings();
        if let Some(field) = &fields.instances {
            limits
                .http
                .instances_within(settings.max_instances)
                .map_err(|message| LoadErrorKind::OutOfRange {
                    field: field.clone(),
                    message,
                })?;
        }
        let largest = settings.largest_memory();
        if let Some(field) = &fields.memory
            && limits.store.max_memory_bytes > largest
        {
            let size = |bytes: usize| format_size(u64::try_from(bytes).unwrap_or(u64::MAX));
            return Err(LoadErrorKind::OutOfRange {
                field: field.clone(),
                message: format!(
                    "{} is more than this server's largest linear memory of {}",
                    size(limits.store.max_memory_bytes),
                    size(largest)
                ),
            });
        }
        Ok(())
    }
}
