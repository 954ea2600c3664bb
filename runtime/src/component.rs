//! Loading a component: read, check, compile (through the cache), link, and
//! pre-instantiate, once. Every failure names the component, the manifest
//! field and the file.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use thiserror::Error;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use mayfly_host_api::kv::Backend;
use mayfly_host_api::state::ComponentState;

use crate::cache::{CacheOutcome, CompileCache};
use crate::host::Host;
use crate::limits::RequestLimits;
use crate::manifest::{ComponentSpec, Grants, Source};
use crate::metrics::ComponentMetrics;

/// The export that makes a component a `wasi:http/proxy` handler.
const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// A component ready to serve: compiled, linked and pre-instantiated.
pub struct LoadedComponent {
    pub(crate) name: Arc<str>,
    pub(crate) pre: ProxyPre<Host>,
    pub(crate) limits: RequestLimits,
    pub(crate) grants: Grants,
    /// Its stores and configuration, shared by all its requests.
    pub(crate) state: Arc<ComponentState>,
    /// The fuel each store starts with, when the engine meters fuel.
    pub(crate) fuel: Option<u64>,
    /// Shared by the versions of the component that have the same
    /// `instances` and `queue` limits: during a swap, the old and the new
    /// version together run at most `instances` at once.
    pub(crate) gate: Arc<Gate>,
    /// Counted across all versions of the component.
    pub(crate) metrics: Arc<ComponentMetrics>,
    cache: CacheOutcome,
}

/// Admission to a component: at most `limits.instances` run at once, at most
/// `limits.queue` wait for a turn.
pub(crate) struct Gate {
    running: Arc<Semaphore>,
    permits: usize,
    waiting: AtomicU32,
    queue: u32,
}

impl Gate {
    fn new(limits: &RequestLimits) -> Self {
        let permits = Self::permits_for(limits);
        Self {
            running: Arc::new(Semaphore::new(permits)),
            permits,
            waiting: AtomicU32::new(0),
            queue: limits.queue,
        }
    }

    /// Requests running now.
    pub(crate) fn running(&self) -> usize {
        self.permits - self.running.available_permits()
    }

    /// Requests waiting for a turn now.
    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A turn to run, waiting in the queue until `deadline` at the latest;
    /// `None` if the queue is full or the wait runs out. If the caller stops
    /// waiting (the client went away and its request was dropped), its
    /// place in the queue is given back.
    pub(crate) async fn enter(&self, deadline: Instant) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Some(permit);
        }
        let _place = self.queue_place()?;
        let permit =
            tokio::time::timeout_at(deadline.into(), self.running.clone().acquire_owned()).await;
        permit.ok().and_then(Result::ok)
    }

    /// A place in the queue, held until the guard drops; `None` if the queue
    /// is full.
    fn queue_place(&self) -> Option<QueuePlace<'_>> {
        let place = QueuePlace {
            waiting: &self.waiting,
        };
        // The guard gives the place back even when the queue was full.
        (self.waiting.fetch_add(1, Ordering::AcqRel) < self.queue).then_some(place)
    }

    /// Whether this gate enforces `limits` (so a new version of the
    /// component can share it).
    fn enforces(&self, limits: &RequestLimits) -> bool {
        self.permits == Self::permits_for(limits) && self.queue == limits.queue
    }

    fn permits_for(limits: &RequestLimits) -> usize {
        usize::try_from(limits.instances)
            .unwrap_or(Semaphore::MAX_PERMITS)
            .min(Semaphore::MAX_PERMITS)
    }
}

/// A request's place in a [`Gate`]'s queue; dropping it leaves the queue.
struct QueuePlace<'a> {
    waiting: &'a AtomicU32,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// The component's name in its app.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the component may reach.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The interfaces the component imports (`wasi:http/types@0.2.0`...):
    /// everything it could ask the host for. What each call may actually
    /// reach is set by its [`grants`](Self::grants).
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
        let engine = self.pre.engine();
        component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// What the compile cache did when this component was loaded.
    pub fn cache_outcome(&self) -> &CacheOutcome {
        &self.cache
    }

    /// The bounds every request to this component runs under.
    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// Loads the component `spec` describes.
    pub fn load(
        engine: &Engine,
        linker: &Linker<Host>,
        spec: &ComponentSpec,
        cache: &CompileCache,
        backend: Option<&Arc<dyn Backend>>,
    ) -> Result<Arc<Self>, LoadError> {
        Self::load_after(engine, linker, spec, cache, backend, None)
    }

    /// Loads the component `spec` describes as the next version of
    /// `previous`: if their concurrency limits are the same, the two share
    /// one admission gate (one count of instances running, one queue).
    pub fn load_after(
        engine: &Engine,
        linker: &Linker<Host>,
        spec: &ComponentSpec,
        cache: &CompileCache,
        backend: Option<&Arc<dyn Backend>>,
        previous: Option<&LoadedComponent>,
    ) -> Result<Arc<Self>, LoadError> {
        let fail = |kind| LoadError {
            component: spec.name.clone(),
            field: spec.field.clone(),
            file: spec.source.to_string(),
            kind,
        };
        let file_bytes;
        let bytes: &[u8] = match &spec.source {
            Source::File(path) => {
                file_bytes = std::fs::read(path).map_err(|e| fail(LoadErrorKind::Read(e)))?;
                &file_bytes
            }
            Source::Embedded { bytes, .. } => bytes,
            Source::Deployed { bytes, .. } => bytes,
        };
        check_header(bytes).map_err(fail)?;

        let (component, cache) = cache
            .load_or_compile(engine, bytes)
            .map_err(|e| fail(LoadErrorKind::Invalid(format!("{e:#}"))))?;
        check_exports(engine, &component).map_err(fail)?;

        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(LoadErrorKind::Link(format!("{e:#}"))))?;
        let pre = ProxyPre::new(instance_pre)
            .map_err(|e| fail(LoadErrorKind::WrongWorld(format!("{e:#}"))))?;

        // Whether this engine meters fuel: if it does, every store needs
        // some, even for components without a fuel limit.
        let engine_meters_fuel = wasmtime::Store::new(engine, ()).set_fuel(0).is_ok();
        let fuel = match spec.limits.fuel {
            Some(_) if !engine_meters_fuel => {
                return Err(fail(LoadErrorKind::Invalid(
                    "it has a fuel limit, but this server's engine does not meter fuel \
                     (fuel limits added after start-up need a restart)"
                        .into(),
                )));
            }
            Some(fuel) => Some(fuel),
            None if engine_meters_fuel => Some(u64::MAX),
            None => None,
        };
        let name: Arc<str> = Arc::from(spec.name.as_str());
        let state = Arc::new(ComponentState {
            component: name.clone(),
            stores: spec.grants.stores.clone(),
            config: spec.grants.config.clone(),
            backend: backend.filter(|_| !spec.grants.stores.is_empty()).cloned(),
        });
        Ok(Arc::new(Self {
            name,
            state,
            pre,
            limits: spec.limits,
            grants: spec.grants.clone(),
            fuel,
            gate: previous
                .filter(|previous| previous.name() == spec.name)
                .filter(|previous| previous.gate.enforces(&spec.limits))
                .map_or_else(
                    || Arc::new(Gate::new(&spec.limits)),
                    |previous| previous.gate.clone(),
                ),
            metrics: crate::metrics::component(&spec.name),
            cache,
        }))
    }
}

/// Tells a component from a core module, or from something that is not
/// WebAssembly at all, before handing the bytes to the compiler.
pub fn check_header(bytes: &[u8]) -> Result<(), LoadErrorKind> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadErrorKind::NotWasm);
    }
    // Bytes 4..6 are the version, 6..8 the layer: 0 for a core module, 1 for a
    // component.
    match [bytes[6], bytes[7]] {
        [1, 0] => Ok(()),
        [0, 0] => Err(LoadErrorKind::CoreModule),
        layer => Err(LoadErrorKind::Invalid(format!(
            "unknown WebAssembly binary layer {layer:?}"
        ))),
    }
}

fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadErrorKind> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if exports
        .iter()
        .any(|name| name.starts_with(INCOMING_HANDLER))
    {
        return Ok(());
    }
    let listed = if exports.is_empty() {
        "nothing".to_string()
    } else {
        exports.join(", ")
    };
    Err(LoadErrorKind::NotProxy(listed))
}

/// A component that could not be loaded, and where it was declared.
#[derive(Debug, Error)]
#[error("component `{component}` ({field} = {file}): {kind}")]
pub struct LoadError {
    /// The component's name.
    pub component: String,
    /// The manifest field that names its file.
    pub field: String,
    /// The file (or built-in label).
    pub file: String,
    /// What went wrong.
    pub kind: LoadErrorKind,
}

/// What went wrong while loading a component.
#[derive(Debug, Error)]
pub enum LoadErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    /// The file is not WebAssembly.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// The file is a core module.
    #[error(
        "this is a core WebAssembly module, not a component; Mayfly runs WASI 0.2 components \
         (build for the `wasm32-wasip2` target, or wrap the module with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component does not validate or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component is not a `wasi:http/proxy` handler.
    #[error(
        "it does not export `wasi:http/incoming-handler`, so it cannot serve HTTP \
         (it should target the `wasi:http/proxy` world; it exports: {0})"
    )]
    NotProxy(String),
    /// The component imports something the host does not provide.
    #[error("it cannot be linked: {0}")]
    Link(String),
    /// The component's exports do not have the `wasi:http/proxy` types.
    #[error("it does not match the `wasi:http/proxy` world: {0}")]
    WrongWorld(String),
}
