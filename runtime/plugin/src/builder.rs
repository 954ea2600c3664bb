//! Declaring a plugin: what it may reach and use, then loading it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mayfly_host_api::outbound::HostPattern;
use mayfly_sandbox::grants::{self, FileGrant, FilesMode, Grants};
use mayfly_sandbox::{Host, LoadError, Sandbox, StoreLimits};
use wasmtime::component::{InstancePre, Linker};

use crate::call::Plugin;
use crate::engine::PluginEngine;
use crate::error::PluginError;

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
/// use std::time::{Duration, Instant};
/// use mayfly_plugin::{FilesMode, PluginEngine, PluginError};
///
/// # fn main() -> Result<(), PluginError> {
/// let engine = PluginEngine::new()?;
/// let plugin = engine
///     .plugin()
///     .name("markdown")
///     .timeout(Duration::from_secs(2))
///     .memory(64 << 20)
///     .max_resources(100)
///     // What it may reach: one directory, read-only; one variable.
///     .dir("/srv/templates", "/templates", FilesMode::ReadOnly)
///     .env("LANG", "en")
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
    limits: StoreLimits,
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, String, FilesMode)>,
    outbound: Vec<String>,
    private_networks: bool,
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
            .field(
                "env",
                &self.env.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("files", &self.files)
            .field("outbound", &self.outbound)
            .field("exports", &self.exports)
            .field("links", &self.links.len())
            .field("checks", &self.checks.len())
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

impl PluginEngine {
    /// Starts declaring a plugin: nothing granted, Mayfly's default limits.
    pub fn plugin(&self) -> PluginBuilder {
        PluginBuilder::new(self.clone())
    }
}

impl PluginBuilder {
    /// Nothing granted, Mayfly's default limits.
    pub(crate) fn new(engine: PluginEngine) -> Self {
        Self {
            engine,
            name: None,
            limits: StoreLimits::default(),
            env: Vec::new(),
            files: Vec::new(),
            outbound: Vec::new(),
            private_networks: false,
            exports: Vec::new(),
            links: Vec::new(),
            checks: Vec::new(),
            reuse: 1,
        }
    }

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
    /// [crate example](crate)). The linker already holds WASI, Mayfly's
    /// state interfaces and (with the `http` feature) `wasi:http`, none of
    /// which can be redefined. A
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
    /// [`MAX_TABLE_ELEMENTS`](mayfly_sandbox::limits::MAX_TABLE_ELEMENTS)].
    pub fn table_elements(mut self, elements: usize) -> Self {
        self.limits.max_table_elements = elements.min(mayfly_sandbox::limits::MAX_TABLE_ELEMENTS);
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
    #[cfg(feature = "http")]
    pub fn allow_host(mut self, pattern: impl Into<String>) -> Self {
        self.outbound.push(pattern.into());
        self
    }

    /// Lets the allowed hosts reach loopback, private and link-local
    /// addresses. Without it, a name that resolves to one is refused, and
    /// only a pattern naming the address (an IP literal, `localhost`)
    /// reaches it.
    #[cfg(feature = "http")]
    pub fn allow_private_networks(mut self) -> Self {
        self.private_networks = true;
        self
    }

    /// Most open files and outbound connections one call may hold at once
    /// [default: 128].
    pub fn max_descriptors(mut self, descriptors: usize) -> Self {
        self.limits.max_descriptors = descriptors;
        self
    }

    /// Lets one instance serve up to `calls` successive calls, for a plugin
    /// trusted to keep no state between them (faster: no instantiation per
    /// call). Before each call the instance's deadline, fuel, memory-limit
    /// flag, captured output and [user value](Host::set_user) are reset; its
    /// linear memory is not. An instance whose call fails is never reused,
    /// and at most [`MAX_IDLE_INSTANCES`](crate::MAX_IDLE_INSTANCES) wait between calls (each holds an
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
        if self.limits.fuel.is_some() && !self.engine.meters_fuel() {
            return Err(invalid(
                "it has a fuel budget, but its engine does not meter fuel \
                 (build the PluginEngine with `consume_fuel: true`)"
                    .into(),
            ));
        }
        if Instant::now().checked_add(self.limits.timeout).is_none() {
            return Err(invalid(format!(
                "its timeout of {:?} is too long to be a deadline",
                self.limits.timeout
            )));
        }
        let grants = self.grants().map_err(invalid)?;
        let sandbox = Sandbox::new(
            self.engine.engine(),
            Arc::from(name.as_str()),
            grants,
            self.limits,
            None,
        )
        .map_err(|err| invalid(err.to_string()))?;
        let engine = &self.engine;
        let (component, _) = engine.runtime.compile(bytes).map_err(|err| match err {
            LoadError::NeedsWasi03 => invalid(
                "its world has async functions (component-model async, as WASI 0.3 \
                 uses), but its engine does not run them (build the PluginEngine \
                 with `EngineSettings { wasi_03: true, .. }`)"
                    .into(),
            ),
            other => invalid(other.to_string()),
        })?;
        let exported: Vec<String> = component
            .component_type()
            .exports(engine.engine())
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
        let base = if sandbox.grants().files.is_empty() {
            &engine.linker_without_files
        } else {
            &engine.linker
        };
        let linked = if self.links.is_empty() {
            engine.runtime.instantiate_pre_with(base, &component)
        } else {
            let mut linker = Linker::clone(base);
            for link in self.links {
                link(&mut linker).map_err(|err| {
                    PluginError::Host(format!(
                        "plugin `{name}`: the host's imports cannot be linked: {err:#}"
                    ))
                })?;
            }
            engine.runtime.instantiate_pre_with(&linker, &component)
        };
        let pre = linked.map_err(|err| match err {
            LoadError::Link(reason) => invalid(format!(
                "it imports something this host does not provide: {reason}"
            )),
            other => invalid(other.to_string()),
        })?;
        for check in self.checks {
            check(&pre).map_err(|err| {
                invalid(format!("it does not match the host's bindings: {err:#}"))
            })?;
        }
        Ok(Plugin {
            pre,
            sandbox,
            reuse: self.reuse,
            idle: Mutex::new(Vec::new()),
            _keep: self.engine.clone(),
        })
    }

    /// The grants, each checked by the sandbox's rules.
    fn grants(&self) -> Result<Grants, String> {
        let mut granted = Grants::default();
        for (host, guest, mode) in &self.files {
            let grant = FileGrant::new(host.clone(), guest.clone(), *mode)
                .map_err(|err| format!("cannot grant a directory at `{guest}`: {err}"))?;
            granted.add_dir(grant)?;
        }
        granted.env = self
            .env
            .iter()
            .map(|(name, value)| grants::env_var(name, value))
            .collect::<Result<Vec<_>, _>>()?;
        let outbound = self
            .outbound
            .iter()
            .map(|pattern| HostPattern::parse(pattern))
            .collect::<Result<Vec<_>, _>>()?;
        granted.outbound = outbound.into();
        granted.private_networks = self.private_networks;
        Ok(granted)
    }
}
