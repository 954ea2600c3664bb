//! Embedding untrusted plugins in any Rust program.
//!
//! Mayfly supplies the sandbox; the host program keeps its own WIT world.
//! The host generates bindings for its world with wasmtime's
//! [`bindgen!`](wasmtime::component::bindgen), loads a plugin once through a
//! [`PluginEngine`] (compiled through the same cache as `mayfly serve`,
//! linked, pre-instantiated), declares what the plugin may reach and how much
//! it may use with a [`PluginBuilder`], and then calls it: every
//! [`Plugin::call`] runs in a fresh instance with its own store, deadline,
//! memory cap and fuel, unless the plugin was declared stateless with
//! [`PluginBuilder::reuse_instances`].
//!
//! ```
//! use std::time::Duration;
//! use mayfly::plugin::{PluginEngine, PluginError};
//!
//! // The host's own world, with its `transform` export.
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package example:filter;
//!         world filter {
//!             export transform: func(input: list<u8>) -> result<list<u8>, string>;
//!         }
//!     ",
//!     exports: { default: async },
//! });
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), PluginError> {
//! # let path = env!("MAYFLY_GUEST_PLUGIN_UPPER");
//! let engine = PluginEngine::new()?;
//! let plugin = engine
//!     .plugin()
//!     .timeout(Duration::from_millis(500))
//!     .memory(16 << 20)
//!     .env("MODE", "strict")
//!     .require_export("transform")
//!     .load(path)?;
//!
//! let output = plugin
//!     .call(async |store, instance| {
//!         let filter = Filter::new(&mut *store, instance)?;
//!         filter.call_transform(&mut *store, b"some text").await
//!     })
//!     .await?;
//! assert_eq!(output, Ok(b"SOME TEXT".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! A plugin can do nothing it was not granted. Files, environment variables
//! and outbound HTTP hosts are granted with the builder; raw sockets and
//! name lookups never are. A plugin that reaches for a file system without a
//! directory grant, or for a socket, is stopped, and the call fails with
//! [`PluginError::Denied`]. Its stdout and stderr are captured, 16 KiB per
//! call at most, and never printed: what it wrote on stderr is attached to
//! a [`PluginError::Trap`]. Whatever the plugin does (loop, exhaust its
//! memory, panic, recurse without end), the call returns a [`PluginError`]
//! and the host goes on; calls from many threads and tasks at once are safe.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mayfly_host_api::outbound::HostPattern;
use mayfly_host_api::state::ComponentState;
use thiserror::Error;
use wasmtime::component::{Instance, InstancePre, Linker};
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap, WasmBacktrace};

use crate::cache::CompileCache;
use crate::engine::EngineSettings;
use crate::guest_log::GuestLog;
use crate::host::{self, Host};
use crate::limits::{EpochTicker, RequestLimits};
use crate::manifest::{FileGrant, FilesMode, Grants};

/// The sandbox plugins run in: one engine with its epoch ticker and
/// compile cache. Create one per program and share it; it is cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    engine: Engine,
    cache: Arc<CompileCache>,
    meters_fuel: bool,
    /// For plugins granted some directories.
    linker: Arc<Linker<Host>>,
    /// For plugins granted none: reaching for the file system is denied.
    linker_without_files: Arc<Linker<Host>>,
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
    /// the default compile cache (see [`CompileCache::default_dir`]).
    pub fn new() -> Result<Self, PluginError> {
        let cache =
            CompileCache::default_dir().map_or_else(CompileCache::disabled, CompileCache::at);
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
        let mut linker = host::linker(&engine).map_err(host_error)?;
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

    /// Starts declaring a plugin: nothing granted, Mayfly's default limits.
    pub fn plugin(&self) -> PluginBuilder {
        PluginBuilder {
            engine: self.clone(),
            name: None,
            limits: RequestLimits::default(),
            env: Vec::new(),
            files: Vec::new(),
            outbound: Vec::new(),
            exports: Vec::new(),
            reuse: 1,
        }
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
struct CapabilityDenied(&'static str);

/// What a plugin may reach and use, declared before it is loaded.
#[derive(Debug)]
#[must_use]
pub struct PluginBuilder {
    engine: PluginEngine,
    name: Option<String>,
    limits: RequestLimits,
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, String, FilesMode)>,
    outbound: Vec<String>,
    exports: Vec<String>,
    reuse: u32,
}

impl PluginBuilder {
    /// Requires the plugin to export `name` (a function such as
    /// `transform`, or an interface such as `example:filter/api`): a plugin
    /// built for another world is refused at load, with
    /// [`PluginError::Invalid`], rather than failing at its first call.
    pub fn require_export(mut self, name: impl Into<String>) -> Self {
        self.exports.push(name.into());
        self
    }

    /// The plugin's name in errors and logs [default: the file's stem].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Wall-clock budget of one call, guest CPU and host waits together
    /// [default: 60 s].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout;
        self
    }

    /// Largest linear memory of an instance, in bytes [default: 256 MiB].
    pub fn memory(mut self, bytes: usize) -> Self {
        self.limits.max_memory_bytes = bytes;
        self
    }

    /// Fuel per call (roughly, WebAssembly instructions); needs an engine
    /// with `consume_fuel` [default: unmetered].
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// Most host resources an instance may hold at once [default: 1000].
    pub fn max_resources(mut self, resources: usize) -> Self {
        self.limits.max_resources = resources;
        self
    }

    /// Grants one environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Grants the host directory `host`, seen by the plugin at `guest`.
    pub fn dir(
        mut self,
        host: impl Into<PathBuf>,
        guest: impl Into<String>,
        mode: FilesMode,
    ) -> Self {
        self.files.push((host.into(), guest.into(), mode));
        self
    }

    /// Allows outbound HTTP to `pattern` (`https://api.example.com`,
    /// `http://*.internal:8080`, ...).
    pub fn allow_host(mut self, pattern: impl Into<String>) -> Self {
        self.outbound.push(pattern.into());
        self
    }

    /// Lets one instance serve up to `calls` successive calls, for a plugin
    /// trusted to keep no state between them (faster: no instantiation per
    /// call). An instance whose call fails is never reused. [default: 1, a
    /// fresh instance for every call]
    pub fn reuse_instances(mut self, calls: u32) -> Self {
        self.reuse = calls.max(1);
        self
    }

    /// Loads the plugin component at `path`.
    pub fn load(self, path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
        let path = path.as_ref();
        let name = self.name.clone().unwrap_or_else(|| {
            path.file_stem().map_or_else(
                || "plugin".into(),
                |stem| stem.to_string_lossy().into_owned(),
            )
        });
        let bytes = std::fs::read(path).map_err(|err| PluginError::Invalid {
            plugin: name.clone(),
            reason: format!("cannot read {}: {err}", path.display()),
        })?;
        self.name(name).load_bytes(&bytes)
    }

    /// Loads a plugin component from its bytes.
    pub fn load_bytes(self, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let name = self.name.clone().unwrap_or_else(|| "plugin".into());
        let invalid = |reason: String| PluginError::Invalid {
            plugin: name.clone(),
            reason,
        };
        crate::component::check_header(bytes).map_err(|kind| invalid(kind.to_string()))?;
        if self.limits.fuel.is_some() && !self.engine.meters_fuel {
            return Err(invalid(
                "it has a fuel budget, but its engine does not meter fuel \
                 (build the PluginEngine with `consume_fuel: true`)"
                    .into(),
            ));
        }
        let grants = self.grants().map_err(invalid)?;
        let engine = &self.engine;
        let (component, _) = engine
            .cache
            .load_or_compile(&engine.engine, bytes)
            .map_err(|err| invalid(format!("invalid component: {err:#}")))?;
        let exported: Vec<String> = component
            .component_type()
            .exports(&engine.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        for wanted in &self.exports {
            let found = exported
                .iter()
                .any(|name| name == wanted || name.split('@').next() == Some(wanted.as_str()));
            if !found {
                let listed = if exported.is_empty() {
                    "nothing".to_string()
                } else {
                    exported.join(", ")
                };
                return Err(invalid(format!(
                    "it does not export `{wanted}`, so it was not built for this host's world \
                     (it exports: {listed})"
                )));
            }
        }
        let linker = if grants.files.is_empty() {
            &engine.linker_without_files
        } else {
            &engine.linker
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|err| invalid(format!("it cannot be linked: {err:#}")))?;
        let fuel = match self.limits.fuel {
            Some(fuel) => Some(fuel),
            None if engine.meters_fuel => Some(u64::MAX),
            None => None,
        };
        Ok(Plugin {
            name: Arc::from(name.as_str()),
            engine: engine.engine.clone(),
            pre,
            limits: self.limits,
            grants,
            fuel,
            state: ComponentState::bare(Arc::from(name.as_str())),
            reuse: self.reuse,
            idle: Mutex::new(Vec::new()),
            _keep: engine.clone(),
        })
    }

    fn grants(&self) -> Result<Grants, String> {
        let mut files = Vec::with_capacity(self.files.len());
        for (host, guest, mode) in &self.files {
            if !host.is_dir() {
                return Err(format!(
                    "granted directory {} does not exist or is not a directory",
                    host.display()
                ));
            }
            if !guest.starts_with('/') || guest.split('/').any(|part| part == "..") {
                return Err(format!(
                    "guest path `{guest}` must be absolute, without `..`"
                ));
            }
            files.push(FileGrant {
                host: host.clone(),
                guest: guest.clone(),
                mode: *mode,
            });
        }
        let outbound = self
            .outbound
            .iter()
            .map(|pattern| HostPattern::parse(pattern))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Grants {
            env: self.env.clone(),
            files,
            outbound: outbound.into(),
            ..Grants::default()
        })
    }
}

/// A loaded plugin, ready to call. Share it (in an `Arc`) between threads
/// and tasks as needed.
pub struct Plugin {
    name: Arc<str>,
    engine: Engine,
    pre: InstancePre<Host>,
    limits: RequestLimits,
    grants: Grants,
    fuel: Option<u64>,
    /// No stores, no configuration.
    state: Arc<ComponentState>,
    reuse: u32,
    /// Instances that may serve more calls (only with `reuse > 1`).
    idle: Mutex<Vec<Warm>>,
    /// Keeps the epoch ticker running while the plugin lives.
    _keep: PluginEngine,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

/// An instance kept for more calls.
struct Warm {
    store: Store<Host>,
    instance: Instance,
    log: GuestLog,
    calls: u32,
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// What the plugin may reach.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The pre-instantiated component, for hosts that build their own
    /// bindings' `*Pre` type from it.
    pub fn instance_pre(&self) -> &InstancePre<Host> {
        &self.pre
    }

    /// Calls the plugin: `f` gets the store and the instance (fresh, unless
    /// reuse was enabled) and calls the plugin's exports through the host's
    /// bindings. The whole call, instantiation included, runs under the
    /// plugin's deadline, memory cap and fuel.
    pub async fn call<R, F>(&self, f: F) -> Result<R, PluginError>
    where
        F: AsyncFnOnce(&mut Store<Host>, &Instance) -> wasmtime::Result<R>,
    {
        let deadline = Instant::now() + self.limits.timeout;
        let reused = self.take_idle();
        let work = async {
            let mut warm = match reused {
                Some(warm) => warm,
                None => self.instantiate(deadline).await?,
            };
            RequestLimits::arm_deadline(&mut warm.store, deadline);
            if let Some(fuel) = self.fuel {
                warm.store.set_fuel(fuel)?;
            }
            let result = f(&mut warm.store, &warm.instance).await;
            Ok::<_, wasmtime::Error>((result, warm))
        };
        // Past the deadline the whole call, store included, is dropped.
        match tokio::time::timeout_at(deadline.into(), work).await {
            Err(_elapsed) => Err(PluginError::DeadlineExceeded {
                plugin: self.name.to_string(),
                timeout: self.limits.timeout,
            }),
            Ok(Err(err)) => Err(self.classify(&err, None)),
            Ok(Ok((Ok(value), mut warm))) => {
                warm.calls += 1;
                if warm.calls < self.reuse {
                    self.idle
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(warm);
                }
                Ok(value)
            }
            Ok(Ok((Err(err), warm))) => Err(self.classify(&err, Some(&warm))),
        }
    }

    fn take_idle(&self) -> Option<Warm> {
        if self.reuse <= 1 {
            return None;
        }
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    async fn instantiate(&self, deadline: Instant) -> wasmtime::Result<Warm> {
        let log = GuestLog::default();
        let host = Host::new(
            &self.state,
            &Arc::from("plugin-call"),
            &self.limits,
            &self.grants,
            &log,
        )?;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limits);
        RequestLimits::arm_deadline(&mut store, deadline);
        if let Some(fuel) = self.fuel {
            store.set_fuel(fuel)?;
        }
        let instance = self.pre.instantiate_async(&mut store).await?;
        Ok(Warm {
            store,
            instance,
            log,
            calls: 0,
        })
    }

    /// What `err`, from a call that ran in `warm`, means to the host.
    fn classify(&self, err: &wasmtime::Error, warm: Option<&Warm>) -> PluginError {
        let plugin = self.name.to_string();
        if let Some(denied) = err.downcast_ref::<CapabilityDenied>() {
            return PluginError::Denied {
                plugin,
                capability: denied.0.to_string(),
            };
        }
        if err.is::<PoolConcurrencyLimitError>() {
            return PluginError::Overloaded { plugin };
        }
        let Some(trap) = err.downcast_ref::<Trap>() else {
            return PluginError::Host(format!("plugin `{plugin}`: {err:#}"));
        };
        match trap {
            Trap::Interrupt => PluginError::DeadlineExceeded {
                plugin,
                timeout: self.limits.timeout,
            },
            Trap::OutOfFuel => PluginError::FuelExhausted {
                plugin,
                fuel: self.limits.fuel.unwrap_or(0),
            },
            _ if warm.is_some_and(|warm| warm.store.data().limits.memory_refused()) => {
                PluginError::MemoryLimit {
                    plugin,
                    limit: self.limits.max_memory_bytes,
                }
            }
            trap => PluginError::Trap {
                plugin,
                message: guest_message(trap, warm),
                backtrace: err.downcast_ref::<WasmBacktrace>().map(ToString::to_string),
            },
        }
    }
}

/// The trap, with what the guest last said on stderr (a panic message,
/// usually).
fn guest_message(trap: &Trap, warm: Option<&Warm>) -> String {
    let said = warm.map(|warm| warm.log.stderr_text()).unwrap_or_default();
    let said = said.trim();
    if said.is_empty() {
        trap.to_string()
    } else {
        format!("{trap}: {said}")
    }
}

/// Why a plugin could not be loaded or called. Every variant names the
/// plugin.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The component is not a valid plugin: unreadable, not a component,
    /// a missing export, an import the sandbox does not provide, or a bad
    /// grant.
    #[error("plugin `{plugin}` is invalid: {reason}")]
    Invalid {
        /// The plugin.
        plugin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The call ran past its deadline (CPU or waiting) and was stopped.
    #[error("plugin `{plugin}` exceeded its deadline of {timeout:?}")]
    DeadlineExceeded {
        /// The plugin.
        plugin: String,
        /// Its deadline.
        timeout: Duration,
    },
    /// The plugin was refused memory beyond its cap and then failed.
    #[error("plugin `{plugin}` reached its memory limit of {limit} bytes")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Its cap, in bytes.
        limit: usize,
    },
    /// The plugin used up its fuel.
    #[error("plugin `{plugin}` ran out of fuel ({fuel} units)")]
    FuelExhausted {
        /// The plugin.
        plugin: String,
        /// Its budget.
        fuel: u64,
    },
    /// The plugin trapped (a panic, `unreachable`, stack exhaustion...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap, and the plugin's last words on stderr (for a Rust
        /// plugin, its panic message).
        message: String,
        /// The WebAssembly backtrace, when the component has the names for it.
        backtrace: Option<String>,
    },
    /// The plugin reached for a capability it was not granted and was
    /// stopped.
    #[error("plugin `{plugin}` was denied {capability}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// What it reached for.
        capability: String,
    },
    /// Every instance slot of the engine is in use; retry later.
    #[error("plugin `{plugin}` could not be instantiated: every instance slot is in use")]
    Overloaded {
        /// The plugin.
        plugin: String,
    },
    /// The host failed (an error returned by the host's own code in the
    /// call, or the sandbox could not be set up).
    #[error("{0}")]
    Host(String),
}
