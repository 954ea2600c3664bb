//! The engine plugins run on: one wasmtime engine, its epoch ticker, its
//! compile cache, and the linkers that deny what plugins are never given.

use std::sync::Arc;

use mayfly_sandbox::epoch::EpochTicker;
use mayfly_sandbox::{CompileCache, EngineSettings, Host};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Linker;

use crate::error::PluginError;

/// The sandbox plugins run in: one engine with its epoch ticker and
/// compile cache. Create one per program and share it; it is cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) cache: Arc<CompileCache>,
    pub(crate) meters_fuel: bool,
    /// For plugins granted some directories.
    pub(crate) linker: Arc<Linker<Host>>,
    /// For plugins granted none: reaching for the file system is denied.
    pub(crate) linker_without_files: Arc<Linker<Host>>,
    _ticker: Arc<EpochTicker>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("meters_fuel", &self.meters_fuel)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// An engine with Mayfly's default settings, without fuel metering, and
    /// the default compile cache (see [`CompileCache::open_default`]).
    /// Fails, saying why, if that cache's directory cannot be trusted (see
    /// [`CompileCache::open`]).
    pub fn new() -> Result<Self, PluginError> {
        let cache =
            CompileCache::open_default().map_err(|err| PluginError::Host(err.to_string()))?;
        Self::with_settings(&EngineSettings::default(), cache)
    }

    /// An engine with `settings` (set `consume_fuel` to give plugins fuel
    /// budgets) and `cache`.
    pub fn with_settings(
        settings: &EngineSettings,
        cache: CompileCache,
    ) -> Result<Self, PluginError> {
        let host_error = |err: wasmtime::Error| PluginError::Host(format!("{err:#}"));
        let engine = settings.build().map_err(host_error)?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|err| PluginError::Host(format!("cannot start the epoch ticker: {err}")))?;
        let mut linker = mayfly_sandbox::linker::linker(&engine, false).map_err(host_error)?;
        deny(&mut linker, SOCKETS).map_err(host_error)?;
        let mut linker_without_files = linker.clone();
        deny(&mut linker_without_files, FILES).map_err(host_error)?;
        Ok(Self {
            engine,
            cache: Arc::new(cache),
            meters_fuel: settings.consume_fuel,
            linker: Arc::new(linker),
            linker_without_files: Arc::new(linker_without_files),
            _ticker: Arc::new(ticker),
        })
    }

    /// The wasmtime engine, for the host's own use (for example to compile
    /// other components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Interfaces whose functions are replaced by a denial, by what they give.
type Denials = &'static [(&'static str, &'static str, &'static str)];

const SOCKETS: Denials = &[
    (
        "wasi:sockets/tcp-create-socket@0.2.12",
        "create-tcp-socket",
        "wasi:sockets (TCP)",
    ),
    (
        "wasi:sockets/udp-create-socket@0.2.12",
        "create-udp-socket",
        "wasi:sockets (UDP)",
    ),
    (
        "wasi:sockets/ip-name-lookup@0.2.12",
        "resolve-addresses",
        "wasi:sockets (name lookup)",
    ),
];

const FILES: Denials = &[(
    "wasi:filesystem/preopens@0.2.12",
    "get-directories",
    "wasi:filesystem (no directory was granted)",
)];

fn deny(linker: &mut Linker<Host>, denials: Denials) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    for (interface, function, capability) in denials {
        let capability: &'static str = capability;
        linker
            .instance(interface)?
            .func_new(function, move |_, _, _, _| {
                Err(wasmtime::Error::new(CapabilityDenied(capability)))
            })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Raised inside a store when a plugin reaches for a capability it was not
/// granted; reported as [`PluginError::Denied`].
#[derive(Debug, Error)]
#[error("capability {0} was not granted")]
pub(crate) struct CapabilityDenied(pub(crate) &'static str);
