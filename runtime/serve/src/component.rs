//! A component ready to serve: compiled, linked and pre-instantiated once,
//! with its sandbox, its admission gate and its metrics. Every failure to
//! load one names the component, the manifest field and the file.

use std::fmt;
use std::sync::Arc;

use mayfly_sandbox::binary::BinaryError;
use mayfly_sandbox::cache::CacheOutcome;
use mayfly_sandbox::{Grants, Host, RequestLimits, Sandbox};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::gate::Gate;
use crate::metrics::ComponentMetrics;

/// The export that makes a component a `wasi:http/proxy` handler.
pub(crate) const INCOMING_HANDLER: &str = "wasi:http/incoming-handler@0.2";

/// A component ready to serve.
pub struct LoadedComponent {
    pub(crate) pre: ProxyPre<Host>,
    /// What each of its instances may reach and use.
    pub(crate) sandbox: Sandbox,
    /// Shared by the versions of the component that have the same
    /// `instances` and `queue` limits: during a swap, the old and the new
    /// version together run at most `instances` at once.
    pub(crate) gate: Arc<Gate>,
    /// Counted across all versions of the component.
    pub(crate) metrics: ComponentMetrics,
    pub(crate) cache: CacheOutcome,
}

impl fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("name", self.sandbox.name())
            .field("limits", self.sandbox.limits())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// The component's name in its app.
    pub fn name(&self) -> &str {
        self.sandbox.name()
    }

    /// What the component may reach.
    pub fn grants(&self) -> &Grants {
        self.sandbox.grants()
    }

    /// The bounds every request to this component runs under.
    pub fn limits(&self) -> &RequestLimits {
        self.sandbox.limits()
    }

    /// The engine its instances run on.
    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    /// The interfaces the component imports (`wasi:http/types@0.2.0`...):
    /// everything it could ask the host for. What each call may actually
    /// reach is set by its [`grants`](Self::grants).
    pub fn imports(&self) -> Vec<String> {
        let component = self.pre.instance_pre().component();
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

/// Checks that `component` exports the HTTP handler.
pub(crate) fn check_exports(engine: &Engine, component: &Component) -> Result<(), LoadErrorKind> {
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
    /// The bytes are not a component.
    #[error(transparent)]
    Binary(#[from] BinaryError),
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
    /// A limit asks for more than this server was started with.
    #[error("field `{field}`: {message}")]
    BeyondServer {
        /// The manifest field that set the limit.
        field: String,
        /// The limit and the server's bound.
        message: String,
    },
}
