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
//! The host's world may import functions of its own for the plugin to call:
//! link them with [`PluginBuilder::link`] and the `add_to_linker` that
//! `bindgen!` generated, implemented on Mayfly's [`Host`] (the store's
//! data). Per-call state for them goes in the store with
//! [`Host::set_user`] and is reached with [`Host::user_mut`].
//!
//! ```
//! use std::time::Duration;
//! use mayfly::host::Host;
//! use mayfly::plugin::{PluginEngine, PluginError};
//! use wasmtime::component::HasSelf;
//!
//! // The host's own world: a `log` import, a `transform` export.
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package example:filter;
//!         world filter {
//!             import log: func(message: string);
//!             export transform: func(input: list<u8>) -> result<list<u8>, string>;
//!         }
//!     ",
//!     exports: { default: async },
//! });
//!
//! /// This call's log: the host keeps at most 100 lines.
//! #[derive(Default)]
//! struct Lines(Vec<String>);
//!
//! impl FilterImports for Host {
//!     fn log(&mut self, message: String) {
//!         if let Some(Lines(lines)) = self.user_mut::<Lines>() {
//!             if lines.len() < 100 {
//!                 lines.push(message);
//!             }
//!         }
//!     }
//! }
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
//!     .link(|linker| Filter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))
//!     // A plugin built for another world is refused here, not at a call.
//!     .check(|pre| FilterPre::new(pre.clone()).map(drop))
//!     .load(path)?;
//!
//! let (output, Lines(lines)) = plugin
//!     .call(async |store, instance| {
//!         store.data_mut().set_user(Lines::default());
//!         let filter = Filter::new(&mut *store, instance)?;
//!         let output = filter.call_transform(&mut *store, b"some text").await?;
//!         Ok((output, store.data_mut().take_user::<Lines>().unwrap_or_default()))
//!     })
//!     .await?;
//! assert_eq!(output, Ok(b"SOME TEXT".to_vec()));
//! assert_eq!(lines, ["upper-casing 9 bytes"]);
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
//! memory, panic, recurse without end, return values that break the
//! component model's rules), the call returns a [`PluginError`] and the host
//! goes on; calls from many threads and tasks at once are safe.

use std::fmt::Display;
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
use crate::limits::{EpochTicker, RequestLimits, limit_hit};
use crate::manifest::{FileGrant, FilesMode, Grants};
use crate::metrics::LimitKind;

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
            links: Vec::new(),
            checks: Vec::new(),
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

/// Links the host's own imports into a plugin's linker.
type LinkHook = Box<dyn FnOnce(&mut Linker<Host>) -> wasmtime::Result<()> + Send>;
/// Checks a pre-instantiated plugin against the host's bindings.
type CheckHook = Box<dyn FnOnce(&InstancePre<Host>) -> wasmtime::Result<()> + Send>;

/// What a plugin may reach and use, declared before it is loaded.
///
/// Nothing is granted until asked for: every grant is a method. A plugin
/// trusted to keep no state between calls may serve several calls from one
/// instance:
///
/// ```no_run
/// use std::time::Duration;
/// use mayfly::manifest::FilesMode;
/// use mayfly::plugin::{PluginEngine, PluginError};
///
/// # fn main() -> Result<(), PluginError> {
/// let engine = PluginEngine::new()?;
/// let plugin = engine
///     .plugin()
///     .name("markdown")
///     .timeout(Duration::from_secs(2))
///     .memory(64 << 20)
///     .max_resources(100)
///     // What it may reach: one directory, read-only; one variable; one host.
///     .dir("/srv/templates", "/templates", FilesMode::ReadOnly)
///     .env("LANG", "en")
///     .allow_host("https://api.example.com")
///     // Stateless: an instance serves up to 100 calls, then a fresh one.
///     .reuse_instances(100)
///     .require_export("transform")
///     .load("plugins/markdown.wasm")?;
/// assert_eq!(plugin.name(), "markdown");
/// # Ok(())
/// # }
/// ```
#[must_use]
pub struct PluginBuilder {
    engine: PluginEngine,
    name: Option<String>,
    limits: RequestLimits,
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, String, FilesMode)>,
    outbound: Vec<String>,
    exports: Vec<String>,
    links: Vec<LinkHook>,
    checks: Vec<CheckHook>,
    reuse: u32,
}

impl std::fmt::Debug for PluginBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBuilder")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("env", &self.env)
            .field("files", &self.files)
            .field("outbound", &self.outbound)
            .field("exports", &self.exports)
            .field("links", &self.links.len())
            .field("checks", &self.checks.len())
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
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

    /// Adds the host's own imports to the plugin's linker, usually with the
    /// `add_to_linker` that `bindgen!` generated for the host's world, as
    /// `.link(|linker| Filter::add_to_linker::<_, HasSelf<Host>>(linker, |host| host))`,
    /// with the world's `*Imports` trait implemented on [`Host`] (see the
    /// [module example](crate::plugin)). The linker already holds WASI, `wasi:http`
    /// and Mayfly's state interfaces, none of which can be redefined. A
    /// plugin that imports something neither Mayfly nor the host provides
    /// is refused at load with [`PluginError::Invalid`], naming the import;
    /// a failure of `link` itself is a [`PluginError::Host`].
    pub fn link(
        mut self,
        link: impl FnOnce(&mut Linker<Host>) -> wasmtime::Result<()> + Send + 'static,
    ) -> Self {
        self.links.push(Box::new(link));
        self
    }

    /// Checks the plugin against the host's bindings at load, usually by
    /// building the `*Pre` type `bindgen!` generated, which type-checks every
    /// export the host will call:
    /// `.check(|pre| FilterPre::new(pre.clone()).map(drop))`. A plugin whose exports are missing or have other types than the
    /// host's world says is then refused with [`PluginError::Invalid`],
    /// rather than failing every call with [`PluginError::Misbehaved`].
    pub fn check(
        mut self,
        check: impl FnOnce(&InstancePre<Host>) -> wasmtime::Result<()> + Send + 'static,
    ) -> Self {
        self.checks.push(Box::new(check));
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

    /// Largest table of an instance, in elements [default and most:
    /// [`MAX_TABLE_ELEMENTS`](crate::limits::MAX_TABLE_ELEMENTS)].
    pub fn table_elements(mut self, elements: usize) -> Self {
        self.limits.max_table_elements = elements.min(crate::limits::MAX_TABLE_ELEMENTS);
        self
    }

    /// Fuel per call (roughly, WebAssembly instructions); needs an engine
    /// with `consume_fuel` [default: unmetered].
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.limits.fuel = Some(fuel);
        self
    }

    /// Most host resources (open files, streams, HTTP requests...) an
    /// instance may hold at once [default: 1000].
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
    /// call). Before each call the instance's deadline, fuel, memory-limit
    /// flag, captured output and [user value](Host::set_user) are reset; its
    /// linear memory is not. An instance whose call fails is never reused,
    /// and at most [`MAX_IDLE_INSTANCES`] wait between calls (each holds an
    /// instance slot of the engine). [default: 1, a fresh instance for every
    /// call]
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
        let base = if grants.files.is_empty() {
            &engine.linker_without_files
        } else {
            &engine.linker
        };
        let linked = if self.links.is_empty() {
            base.instantiate_pre(&component)
        } else {
            let mut linker = Linker::clone(base);
            for link in self.links {
                link(&mut linker).map_err(|err| {
                    PluginError::Host(format!(
                        "plugin `{name}`: the host's imports cannot be linked: {err:#}"
                    ))
                })?;
            }
            linker.instantiate_pre(&component)
        };
        let pre = linked.map_err(|err| {
            invalid(format!(
                "it imports something this host does not provide: {err:#}"
            ))
        })?;
        for check in self.checks {
            check(&pre).map_err(|err| {
                invalid(format!("it does not match the host's bindings: {err:#}"))
            })?;
        }
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
            _keep: self.engine.clone(),
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
            files.push(
                FileGrant::new(host.clone(), guest.clone(), *mode)
                    .map_err(|err| format!("granted directory {}: {err}", host.display()))?,
            );
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

/// Most instances of one plugin kept idle between calls, with
/// [`PluginBuilder::reuse_instances`]; more are dropped after their call.
pub const MAX_IDLE_INSTANCES: usize = 4;

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
    /// Instances that may serve more calls (only with `reuse > 1`), at most
    /// `MAX_IDLE_INSTANCES`.
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

impl Warm {
    /// Resets what belongs to one call, before the instance waits for the
    /// next: the host's user state, the limits' refusal flags, and the
    /// captured output (what a call wrote is not the next call's, and must
    /// not use up its share of the cap). The memory the instance holds
    /// stays counted.
    fn recycle(&mut self) {
        let host = self.store.data_mut();
        host.limits.clear_refusals();
        host.user = None;
        self.log.clear();
    }
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
    ///
    /// `f` may put per-call state for the host's imports in the store with
    /// [`Host::set_user`] before calling the plugin, and take it back with
    /// [`Host::take_user`]; the store starts every call without one.
    ///
    /// An error `f` returns is taken to be the plugin's doing
    /// ([`PluginError::Misbehaved`], or the trap or limit it was) unless it
    /// is a [`HostError`]: wrap the host's own failures in one to have them
    /// reported as [`PluginError::Host`].
    ///
    /// The call must run inside a Tokio runtime with its time driver enabled
    /// (`#[tokio::main]`, or a runtime built with `enable_time` or
    /// `enable_all`), which enforces the deadline; elsewhere it panics.
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
                warm.store
                    .set_fuel(fuel)
                    .map_err(|err| self.host_error(&err))?;
            }
            let result = f(&mut warm.store, &warm.instance).await;
            Ok::<_, PluginError>((result, warm))
        };
        // Past the deadline the whole call, store included, is dropped.
        match tokio::time::timeout_at(deadline.into(), work).await {
            Err(_elapsed) => Err(PluginError::DeadlineExceeded {
                plugin: self.name.to_string(),
                timeout: self.limits.timeout,
            }),
            Ok(Err(err)) => Err(err),
            Ok(Ok((Ok(value), mut warm))) => {
                warm.calls += 1;
                if warm.calls < self.reuse {
                    warm.recycle();
                    let mut idle = self
                        .idle
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if idle.len() < MAX_IDLE_INSTANCES {
                        idle.push(warm);
                    }
                }
                Ok(value)
            }
            Ok(Ok((Err(err), warm))) => {
                Err(self.classify(&err, Some(warm.store.data()), Some(&warm.log), false))
            }
        }
    }

    /// An idle instance (reset when it was put back), if reuse is on and
    /// there is one.
    fn take_idle(&self) -> Option<Warm> {
        if self.reuse <= 1 {
            return None;
        }
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    async fn instantiate(&self, deadline: Instant) -> Result<Warm, PluginError> {
        let log = GuestLog::default();
        let host = Host::new(
            &self.state,
            &Arc::from("plugin-call"),
            &self.limits,
            &self.grants,
            &log,
        )
        .map_err(|err| {
            PluginError::Host(format!(
                "plugin `{}`: cannot open a granted directory: {err}",
                self.name
            ))
        })?;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| &mut host.limits);
        RequestLimits::arm_deadline(&mut store, deadline);
        if let Some(fuel) = self.fuel {
            store.set_fuel(fuel).map_err(|err| self.host_error(&err))?;
        }
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok(Warm {
                store,
                instance,
                log,
                calls: 0,
            }),
            // The store is still here: whether it refused memory tells a
            // plugin too big for its cap from other failures.
            Err(err) => Err(self.classify(&err, Some(store.data()), Some(&log), true)),
        }
    }

    fn host_error(&self, err: &wasmtime::Error) -> PluginError {
        PluginError::Host(format!("plugin `{}`: {err:#}", self.name))
    }

    /// What `err`, from a call (or an instantiation) whose store held
    /// `host` and wrote to `log`, means to the host.
    fn classify(
        &self,
        err: &wasmtime::Error,
        host: Option<&Host>,
        log: Option<&GuestLog>,
        instantiating: bool,
    ) -> PluginError {
        let plugin = self.name.to_string();
        if err.is::<HostError>() {
            return self.host_error(err);
        }
        if let Some(denied) = err.downcast_ref::<CapabilityDenied>() {
            return PluginError::Denied {
                plugin,
                capability: denied.0.to_string(),
            };
        }
        if err.is::<PoolConcurrencyLimitError>() {
            return PluginError::Overloaded { plugin };
        }
        if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return PluginError::DeadlineExceeded {
                plugin,
                timeout: self.limits.timeout,
            };
        }
        // (A refused memory covers an initial memory larger than the cap,
        // which fails the instantiation without a trap.)
        match limit_hit(err, host.map(|host| &host.limits)) {
            Some(LimitKind::Fuel) => {
                return PluginError::FuelExhausted {
                    plugin,
                    fuel: self.limits.fuel.unwrap_or(0),
                };
            }
            Some(LimitKind::Memory) => {
                return PluginError::MemoryLimit {
                    plugin,
                    limit: self.limits.max_memory_bytes,
                };
            }
            Some(LimitKind::Table) => {
                return PluginError::TableLimit {
                    plugin,
                    limit: self.limits.max_table_elements,
                };
            }
            Some(LimitKind::Resources) => {
                return PluginError::ResourceLimit {
                    plugin,
                    limit: self.limits.max_resources,
                };
            }
            _ => {}
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return PluginError::Trap {
                plugin,
                message: guest_message(trap, log),
                backtrace: err
                    .downcast_ref::<WasmBacktrace>()
                    .map(ToString::to_string)
                    .filter(|backtrace| !backtrace.trim().is_empty()),
            };
        }
        if instantiating {
            return PluginError::Invalid {
                plugin,
                reason: format!("it cannot be instantiated: {err:#}"),
            };
        }
        PluginError::Misbehaved {
            plugin,
            reason: format!("{err:#}"),
        }
    }
}

/// The trap, with what the guest last said on stderr (a panic message,
/// usually).
fn guest_message(trap: &Trap, log: Option<&GuestLog>) -> String {
    let said = log.map(GuestLog::stderr_text).unwrap_or_default();
    let said = said.trim();
    if said.is_empty() {
        trap.to_string()
    } else {
        format!("{trap}: {said}")
    }
}

/// A failure of the host's own code during [`Plugin::call`] (in `f`, or in
/// one of the host's imports): return it, as a `wasmtime::Error`, to have
/// the call fail with [`PluginError::Host`] rather than be blamed on the
/// plugin.
///
/// ```
/// use mayfly::plugin::HostError;
///
/// let err: wasmtime::Error = HostError::new("the database is down").into();
/// assert_eq!(err.to_string(), "the database is down");
/// ```
#[derive(Debug, Error)]
#[error("{0}")]
pub struct HostError(String);

impl HostError {
    /// A host failure, described by `message`.
    pub fn new(message: impl Display) -> Self {
        Self(message.to_string())
    }
}

/// Why a plugin could not be loaded or called. Every variant names the
/// plugin; all but [`PluginError::Host`] are the plugin's doing.
///
/// ```no_run
/// use mayfly::plugin::{Plugin, PluginError};
/// # wasmtime::component::bindgen!({
/// #     inline: "
/// #         package example:filter;
/// #         world filter {
/// #             export transform: func(input: list<u8>) -> result<list<u8>, string>;
/// #         }
/// #     ",
/// #     exports: { default: async },
/// # });
/// # fn main() {}
///
/// /// Runs the filter; on failure, says what to tell the user.
/// async fn filter(plugin: &Plugin, input: &[u8]) -> Result<Vec<u8>, String> {
///     let result = plugin
///         .call(async |store, instance| {
///             Filter::new(&mut *store, instance)?
///                 .call_transform(&mut *store, input)
///                 .await
///         })
///         .await;
///     match result {
///         Ok(Ok(output)) => Ok(output),
///         // The plugin's own refusal, through its world's `result`.
///         Ok(Err(reason)) => Err(format!("the filter refused: {reason}")),
///         Err(PluginError::DeadlineExceeded { timeout, .. }) => {
///             Err(format!("the filter took longer than {timeout:?}"))
///         }
///         Err(PluginError::MemoryLimit { limit, .. }) => {
///             Err(format!("the filter needed more than {limit} bytes"))
///         }
///         Err(PluginError::Trap { message, backtrace, .. }) => {
///             eprintln!("filter crashed: {message}\n{}", backtrace.unwrap_or_default());
///             Err("the filter crashed".into())
///         }
///         Err(PluginError::Denied { capability, .. }) => {
///             Err(format!("the filter is not allowed {capability}"))
///         }
///         // Every instance slot is busy: try again shortly.
///         Err(PluginError::Overloaded { .. }) => Err("busy, retry".into()),
///         Err(err @ PluginError::Host(_)) => panic!("our own bug: {err}"),
///         Err(other) => Err(other.to_string()),
///     }
/// }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The component is not a valid plugin: unreadable, not a component,
    /// a missing or wrong-typed export (see [`PluginBuilder::check`]), an
    /// import neither the sandbox nor the host provides, a bad grant, or
    /// needs the engine cannot meet. Returned by [`PluginBuilder::load`],
    /// or by a call when only instantiation finds it out.
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
    /// The plugin was refused memory beyond its cap (while running, or
    /// already for its initial memory) and failed.
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
    /// The plugin held more host resources (files, streams...) at once than
    /// [`PluginBuilder::max_resources`] allows, and was stopped.
    #[error("plugin `{plugin}` reached its limit of {limit} resources")]
    ResourceLimit {
        /// The plugin.
        plugin: String,
        /// Its cap.
        limit: usize,
    },
    /// The plugin was refused table growth beyond
    /// [`PluginBuilder::table_elements`] and failed.
    #[error("plugin `{plugin}` reached its table limit of {limit} elements")]
    TableLimit {
        /// The plugin.
        plugin: String,
        /// Its cap, in elements.
        limit: usize,
    },
    /// The plugin trapped (a panic, `unreachable`, stack exhaustion...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap, and the plugin's last words on stderr (for a Rust
        /// plugin, its panic message).
        message: String,
        /// The WebAssembly backtrace, when wasmtime captured one; with
        /// function names if the component kept its name section.
        backtrace: Option<String>,
    },
    /// The plugin broke the component model's contract with the host in a
    /// call: its exports do not have the types the host's bindings expect
    /// (checked at every call unless [`PluginBuilder::check`] did at load),
    /// or it returned values that cannot be read (a pointer outside its
    /// memory, invalid UTF-8, an unknown case).
    #[error("plugin `{plugin}` misbehaved: {reason}")]
    Misbehaved {
        /// The plugin.
        plugin: String,
        /// What it did.
        reason: String,
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
    /// The host failed: a [`HostError`] from the host's own code in the
    /// call, a failing [`PluginBuilder::link`], or a sandbox that could not
    /// be set up.
    #[error("{0}")]
    Host(String),
}
