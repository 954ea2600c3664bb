//! What loads components: one engine (with its epoch ticker and the
//! server's settings), one linker, the compile cache, the key-value
//! backend and the metrics. The first version of an app, every deploy and
//! every reload go through the same [`Loader`].

use std::sync::Arc;

use mayfly_host_api::kv::Backend;
use mayfly_sandbox::epoch::EpochTicker;
use mayfly_sandbox::units::format_size;
use mayfly_sandbox::{CompileCache, EngineSettings, Host, Sandbox};
use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p3::bindings::ServicePre;

use crate::component::{Handler, LoadError, LoadErrorKind, LoadedComponent, World, check_exports};
use crate::gate::{Gate, Slots};
use crate::manifest::{ComponentSpec, Source};
use crate::metrics::Metrics;

/// Loads components for one server.
pub struct Loader {
    engine: Engine,
    settings: EngineSettings,
    linker: Linker<Host>,
    cache: CompileCache,
    backend: Option<Arc<dyn Backend>>,
    metrics: Arc<Metrics>,
    _ticker: EpochTicker,
}

impl Loader {
    /// An engine with `settings` (and its epoch ticker), loading through
    /// `cache`, giving components with stores `backend`, counting in
    /// `metrics`.
    pub fn new(
        settings: EngineSettings,
        cache: CompileCache,
        backend: Option<Arc<dyn Backend>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let engine = settings
            .build()
            .map_err(|err| anyhow::anyhow!("cannot create the WebAssembly engine: {err:#}"))?;
        Self::with_engine(engine, settings, cache, backend, metrics)
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
        let ticker = EpochTicker::start(&engine)
            .map_err(|err| anyhow::anyhow!("cannot start the epoch ticker: {err}"))?;
        let linker = mayfly_sandbox::linker::linker(&engine, settings.wasi_03)
            .map_err(anyhow::Error::from)?;
        Ok(Self {
            engine,
            settings,
            linker,
            cache,
            backend,
            metrics,
            _ticker: ticker,
        })
    }

    /// The engine components are loaded for.
    pub fn engine(&self) -> &Engine {
        &self.engine
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
        mayfly_sandbox::binary::check_component(bytes).map_err(|e| fail(e.into()))?;
        if !self.settings.wasi_03 && mayfly_sandbox::binary::exports_wasi_03(bytes) {
            return Err(fail(LoadErrorKind::NeedsWasi03));
        }

        let (component, cache) = self
            .cache
            .load_or_compile(&self.engine, bytes)
            .map_err(|e| fail(LoadErrorKind::Invalid(format!("{e:#}"))))?;
        let world = check_exports(&self.engine, &component).map_err(fail)?;

        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(LoadErrorKind::Link(format!("{e:#}"))))?;
        let wrong_world =
            |e: wasmtime::Error| fail(LoadErrorKind::WrongWorld(world, format!("{e:#}")));
        let pre = match world {
            World::Http02 => Handler::Http02(ProxyPre::new(instance_pre).map_err(wrong_world)?),
            World::Http03 => Handler::Http03(ServicePre::new(instance_pre).map_err(wrong_world)?),
        };

        let sandbox = Sandbox::new(
            &self.engine,
            Arc::from(spec.name.as_str()),
            spec.grants.clone(),
            spec.limits,
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
            .filter(|previous| previous.gate.enforces(&spec.limits))
            .map_or_else(
                || Arc::new(Gate::new(&spec.limits, &metrics)),
                |previous| previous.gate.clone(),
            );
        Ok(Arc::new(LoadedComponent {
            pre,
            sandbox,
            gate,
            metrics,
            cache,
            slots: Slots::new(&self.engine, self.settings.max_instances),
        }))
    }

    /// Checks the limits that depend on the server against its settings:
    /// a component cannot ask for more instances than the server has, nor
    /// for a larger memory than its slots hold.
    fn check_against_server(&self, spec: &ComponentSpec) -> Result<(), LoadErrorKind> {
        let limits = &spec.limits;
        let fields = &spec.limit_fields;
        let most = self.settings.max_instances;
        if let Some(field) = &fields.instances
            && limits.instances > most
        {
            return Err(LoadErrorKind::BeyondServer {
                field: field.clone(),
                message: format!(
                    "{} instances is more than this server's --max-instances of {most}",
                    limits.instances
                ),
            });
        }
        let largest = self.settings.largest_memory();
        if let Some(field) = &fields.memory
            && limits.max_memory_bytes > largest
        {
            let size = |bytes: usize| format_size(u64::try_from(bytes).unwrap_or(u64::MAX));
            return Err(LoadErrorKind::BeyondServer {
                field: field.clone(),
                message: format!(
                    "{} is more than this server's largest linear memory of {}",
                    size(limits.max_memory_bytes),
                    size(largest)
                ),
            });
        }
        Ok(())
    }
}
