//! The engine plugins run on: the sandbox's [`Runtime`] (one wasmtime
//! engine, its epoch ticker, its compile cache), and the linkers, made from
//! the runtime's, that deny what plugins are never given (through WASI 0.2,
//! and 0.3 when the engine runs async worlds).

use std::sync::Arc;

use mayfly_sandbox::{CompileCache, EngineSettings, Host, Runtime};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::error::PluginError;

/// The sandbox plugins run in: one runtime (engine, epoch ticker, compile
/// cache). Create one per program and share it; it is cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) runtime: Arc<Runtime>,
    /// For plugins granted some directories.
    pub(crate) linker: Arc<Linker<Host>>,
    /// For plugins granted none: reaching for the file system is denied.
    pub(crate) linker_without_files: Arc<Linker<Host>>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("meters_fuel", &self.meters_fuel())
            .field("runs_async", &self.runs_async())
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Whether it runs component-model async (`EngineSettings::wasi_03`).
    pub(crate) fn runs_async(&self) -> bool {
        runs_async(self.runtime.engine())
    }

    /// Whether its compiled code meters fuel (`EngineSettings::consume_fuel`).
    pub(crate) fn meters_fuel(&self) -> bool {
        self.runtime.settings().consume_fuel
    }

    /// An engine with Mayfly's default settings, without fuel metering, and
    /// the default compile cache (see [`CompileCache::open_default`]).
    /// Fails, saying why, if that cache's directory cannot be trusted (see
    /// [`CompileCache::open`]).
    pub fn new() -> Result<Self, PluginError> {
        let cache =
            CompileCache::open_default().map_err(|err| PluginError::Host(err.to_string()))?;
        Self::with_settings(&EngineSettings::default(), cache)
    }

    /// An engine with `settings` and `cache`. Set `consume_fuel` to give
    /// plugins fuel budgets, and `wasi_03` to run plugins whose world has
    /// async functions (component-model async, as WASI 0.3 uses it; the
    /// WASI 0.3 interfaces are then linked too, denied the same way as the
    /// 0.2 ones). Every store then carries the concurrency state, which a
    /// quick call feels, so leave it off for synchronous worlds; a plugin
    /// that needs it is refused at load by an engine without it.
    ///
    /// ```no_run
    /// use mayfly_plugin::{CompileCache, EngineSettings, PluginEngine};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let settings = EngineSettings { wasi_03: true, ..EngineSettings::default() };
    /// let engine = PluginEngine::with_settings(&settings, CompileCache::open_default()?)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_settings(
        settings: &EngineSettings,
        cache: CompileCache,
    ) -> Result<Self, PluginError> {
        let host_error = |err: wasmtime::Error| PluginError::Host(format!("{err:#}"));
        let runtime = Runtime::new(settings.clone(), cache)
            .map_err(|err| PluginError::Host(err.to_string()))?;
        let mut linker = runtime.linker().clone();
        deny(&mut linker, SOCKETS).map_err(host_error)?;
        if settings.wasi_03 {
            deny(&mut linker, SOCKETS_P3).map_err(host_error)?;
        }
        let mut linker_without_files = linker.clone();
        deny(&mut linker_without_files, FILES).map_err(host_error)?;
        if settings.wasi_03 {
            deny(&mut linker_without_files, FILES_P3).map_err(host_error)?;
        }
        Ok(Self {
            runtime: Arc::new(runtime),
            linker: Arc::new(linker),
            linker_without_files: Arc::new(linker_without_files),
        })
    }

    /// The wasmtime engine, for the host's own use (for example to compile
    /// other components).
    pub fn engine(&self) -> &Engine {
        self.runtime.engine()
    }
}

/// Functions replaced by a denial: interface, name, what it gives (as
/// [`PluginError::Denied`] names it), and how WIT declares it.
type Denials = &'static [(&'static str, &'static str, &'static str, Declared)];

/// A WIT `async func` (WASI 0.3) must be defined by a concurrent host
/// function: wasmtime refuses to link any other to it.
#[derive(Clone, Copy)]
enum Declared {
    Sync,
    Async,
}

const SOCKETS: Denials = &[
    (
        "wasi:sockets/tcp-create-socket@0.2.12",
        "create-tcp-socket",
        "wasi:sockets (TCP)",
        Declared::Sync,
    ),
    (
        "wasi:sockets/udp-create-socket@0.2.12",
        "create-udp-socket",
        "wasi:sockets (UDP)",
        Declared::Sync,
    ),
    (
        "wasi:sockets/ip-name-lookup@0.2.12",
        "resolve-addresses",
        "wasi:sockets (name lookup)",
        Declared::Sync,
    ),
];

const FILES: Denials = &[(
    "wasi:filesystem/preopens@0.2.12",
    "get-directories",
    "wasi:filesystem (no directory was granted)",
    Declared::Sync,
)];

/// The same for WASI 0.3, whose sockets are created by static functions of
/// their resources. (Reported as the same capabilities as 0.2's, so a host
/// matches one name whichever a plugin used.)
const SOCKETS_P3: Denials = &[
    (
        "wasi:sockets/types@0.3.0",
        "[static]tcp-socket.create",
        "wasi:sockets (TCP)",
        Declared::Sync,
    ),
    (
        "wasi:sockets/types@0.3.0",
        "[static]udp-socket.create",
        "wasi:sockets (UDP)",
        Declared::Sync,
    ),
    (
        "wasi:sockets/ip-name-lookup@0.3.0",
        "resolve-addresses",
        "wasi:sockets (name lookup)",
        Declared::Async,
    ),
];

const FILES_P3: Denials = &[(
    "wasi:filesystem/preopens@0.3.0",
    "get-directories",
    "wasi:filesystem (no directory was granted)",
    Declared::Sync,
)];

fn deny(linker: &mut Linker<Host>, denials: Denials) -> wasmtime::Result<()> {
    for &(interface, function, capability, declared) in denials {
        // A name the linker does not define (renamed in wasmtime-wasi) would
        // be defined beside the original, denying nothing.
        if !mayfly_sandbox::linker::defines(linker, interface, function)? {
            return Err(wasmtime::Error::msg(format!(
                "cannot deny `{interface}#{function}`: the linker does not define it"
            )));
        }
        linker.allow_shadowing(true);
        let denied = move || wasmtime::Error::new(CapabilityDenied(capability));
        let mut instance = linker.instance(interface)?;
        match declared {
            Declared::Sync => instance.func_new(function, move |_, _, _, _| Err(denied()))?,
            Declared::Async => instance.func_new_concurrent(function, move |_, _, _, _| {
                Box::pin(std::future::ready(Err(denied())))
            })?,
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Raised inside a store when a plugin reaches for a capability it was not
/// granted; reported as [`PluginError::Denied`].
#[derive(Debug, Error)]
#[error("capability {0} was not granted")]
pub(crate) struct CapabilityDenied(pub(crate) &'static str);

/// Whether `engine` runs component-model async.
pub(crate) fn runs_async(engine: &Engine) -> bool {
    engine.get_concurrency_support()
}
