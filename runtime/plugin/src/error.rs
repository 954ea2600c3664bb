//! What can go wrong with a plugin, for the host program to match on.

use std::fmt::Display;
use std::time::Duration;

use thiserror::Error;

/// A failure of the host's own code during [`Plugin::call`](crate::Plugin::call) (in `f`, or in
/// one of the host's imports): return it, as a `wasmtime::Error`, to have
/// the call fail with [`PluginError::Host`] rather than be blamed on the
/// plugin.
///
/// ```
/// use mayfly_plugin::HostError;
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
/// use mayfly_plugin::{Plugin, PluginError};
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
    /// a missing or wrong-typed export (see [`PluginBuilder::check`](crate::PluginBuilder::check)), an
    /// import neither the sandbox nor the host provides, a bad grant, or
    /// needs the engine cannot meet. Returned by [`PluginBuilder::load`](crate::PluginBuilder::load),
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
    /// [`PluginBuilder::max_resources`](crate::PluginBuilder::max_resources) allows, and was stopped.
    #[error("plugin `{plugin}` reached its limit of {limit} resources")]
    ResourceLimit {
        /// The plugin.
        plugin: String,
        /// Its cap.
        limit: usize,
    },
    /// The plugin was refused table growth beyond
    /// [`PluginBuilder::table_elements`](crate::PluginBuilder::table_elements) and failed.
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
    /// (checked at every call unless [`PluginBuilder::check`](crate::PluginBuilder::check) did at load),
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
    /// call, a failing [`PluginBuilder::link`](crate::PluginBuilder::link), or a sandbox that could not
    /// be set up.
    #[error("{0}")]
    Host(String),
}
