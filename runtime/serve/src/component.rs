//! A component ready to serve: compiled, linked and pre-instantiated once,
//! with its sandbox, its admission gate and its metrics. Every failure to
//! load one names the component, the manifest field and the file.

use std::fmt;
use std::sync::Arc;

use mayfly_sandbox::binary::BinaryError;
use mayfly_sandbox::cache::CacheOutcome;
use mayfly_sandbox::{Grants, Host, Sandbox};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::handler::ProxyPre;

use crate::gate::{Gate, Slots};
use crate::limits::Limits;
use crate::metrics::ComponentMetrics;

/// Which HTTP world a component serves, as its exports say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// WASI 0.2: exports `wasi:http/incoming-handler@0.2.x`
    /// (`wasi:http/proxy`).
    Http02,
    /// WASI 0.3: exports `wasi:http/handler@0.3.x` (`wasi:http/service`,
    /// component-model async).
    Http03,
}

impl World {
    /// The export that makes a component this world's handler.
    pub const fn export(self) -> &'static str {
        match self {
            World::Http02 => "wasi:http/incoming-handler@0.2",
            World::Http03 => "wasi:http/handler@0.3",
        }
    }

    /// The world's name, as `mayfly check` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            World::Http02 => "`wasi:http/proxy` (WASI 0.2)",
            World::Http03 => "`wasi:http/service` (WASI 0.3)",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A component ready to serve.
pub struct LoadedComponent {
    /// Its handler, of either world, pre-instantiated.
    pub(crate) pre: ProxyPre<Host>,
    /// What each of its instances may reach and use.
    pub(crate) sandbox: Sandbox,
    /// The bounds of its requests (its sandbox's and the HTTP path's).
    pub(crate) limits: Limits,
    /// Shared by the versions of the component that have the same
    /// `instances` and `queue` limits: during a swap, the old and the new
    /// version together run at most `instances` at once.
    pub(crate) gate: Arc<Gate>,
    /// Counted across all versions of the component.
    pub(crate) metrics: ComponentMetrics,
    pub(crate) cache: CacheOutcome,
    /// The server's instance slots.
    pub(crate) slots: Slots,
}

impl fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("name", self.sandbox.name())
            .field("limits", &self.limits)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// Whether another request for this component could start an instance
    /// now, with the instances alive now still alive: a free turn at its
    /// gate and a free slot on the server.
    pub(crate) fn has_room(&self) -> bool {
        self.gate.has_free_turn() && self.slots.has_free_slot()
    }

    /// The component's name in its app.
    pub fn name(&self) -> &str {
        self.sandbox.name()
    }

    /// What the component may reach.
    pub fn grants(&self) -> &Grants {
        self.sandbox.grants()
    }

    /// The bounds every request to this component runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The engine its instances run on.
    pub fn engine(&self) -> &Engine {
        self.sandbox.engine()
    }

    /// Which HTTP world it serves.
    pub fn world(&self) -> World {
        match self.pre {
            ProxyPre::P2(_) => World::Http02,
            ProxyPre::P3(_) => World::Http03,
        }
    }

    /// The interfaces the component imports (`wasi:http/types@0.2.0`...):
    /// everything it could ask the host for. What each call may actually
    /// reach is set by its [`grants`](Self::grants).
    pub fn imports(&self) -> Vec<String> {
        let component = match &self.pre {
            ProxyPre::P2(pre) => pre.instance_pre().component(),
            ProxyPre::P3(pre) => pre.instance_pre().component(),
        };
        component
            .component_type()
            .imports(self.engine())
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// What the compile cache did when this component was loaded.
    pub fn cache_outcome(&self) -> &CacheOutcome {
        &self.cache
    }
}

/// Which HTTP handler `component` exports (a 0.3 one wins if it has
/// both), or an error listing what it exports instead.
pub(crate) fn check_exports(
    engine: &Engine,
    component: &Component,
) -> Result<World, LoadErrorKind> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    for world in [World::Http03, World::Http02] {
        if exports.iter().any(|name| name.starts_with(world.export())) {
            return Ok(world);
        }
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

impl From<mayfly_sandbox::LoadError> for LoadErrorKind {
    fn from(err: mayfly_sandbox::LoadError) -> Self {
        use mayfly_sandbox::LoadError;
        match err {
            LoadError::Binary(err) => LoadErrorKind::Binary(err),
            LoadError::NeedsWasi03 => LoadErrorKind::NeedsWasi03,
            LoadError::Invalid(reason) => LoadErrorKind::Invalid(reason),
            LoadError::Link(reason) => LoadErrorKind::Link(reason),
        }
    }
}

/// What went wrong while loading a component.
#[derive(Debug, Error)]
pub enum LoadErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(std::io::Error),
    /// The bytes are not a component.
    #[error(transparent)]
    Binary(#[from] BinaryError),
    /// The component does not validate or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// The component is not an HTTP handler of either world.
    #[error(
        "it exports neither `wasi:http/incoming-handler@0.2` nor `wasi:http/handler@0.3`, \
         so it cannot serve HTTP (it should target the `wasi:http/proxy` world of WASI 0.2 \
         or the `wasi:http/service` world of WASI 0.3; it exports: {0})"
    )]
    NotProxy(String),
    /// A WASI 0.3 component, on an engine started without WASI 0.3.
    #[error(
        "it is a WASI 0.3 component, and this server runs WASI 0.2 only, as no component it \
         started with needed 0.3 (each request costs less that way): restart it with \
         `--wasi-03`, or with a 0.3 component in the app"
    )]
    NeedsWasi03,
    /// The component imports something the host does not provide.
    #[error("it cannot be linked: {0}")]
    Link(String),
    /// The component's exports do not have its world's types.
    #[error("it does not match its world, {0}: {1}")]
    WrongWorld(World, String),
    /// A limit is out of the range this server allows.
    #[error("field `{field}`: {message}")]
    OutOfRange {
        /// The manifest field that set the limit.
        field: String,
        /// The limit and the range.
        message: String,
    },
}
