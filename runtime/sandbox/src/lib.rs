//! # mayfly-sandbox
//!
//! The core every use of Mayfly shares (`mayfly serve`, plugins, `mayfly
//! run`, `mayfly compare`): how a guest is confined, bounded and started.
//! Nothing here serves HTTP, parses a manifest or builds a guest.
//!
//! The modules, lowest first:
//!
//! - [`units`]: durations and sizes as people write them.
//! - [`limits`]: the bounds a call runs under, and which one a failure hit.
//! - [`limiter`]: a store's memory and table caps.
//! - [`epoch`]: the epoch ticker and per-store deadlines.
//! - [`engine`]: the wasmtime engine, tuned for instance churn.
//! - [`binary`]: a component, a core module, or not WebAssembly at all.
//! - [`private_dir`]: directories Mayfly keeps its own files in, this
//!   user's alone, by one rule.
//! - [`cache`]: compiled components on disk, keyed by content and engine.
//! - [`grants`]: directories, environment and outbound hosts, checked by one
//!   set of rules.
//! - [`output`]: guest stdout and stderr, captured and capped.
//! - [`failure`]: what a failed call says about itself (its causes, the
//!   guest's backtrace), escaped and bounded.
//! - [`call`]: what a store is made for: one call's id, deadline, hops and
//!   internal-call dispatcher, and where its standard streams go.
//! - `holdings`: what an instance holds on the host (descriptors, header
//!   memory), against its budget.
//! - [`host`]: the per-store state, which holds only what was granted.
//! - `metered`: the imports whose host resources are counted in the
//!   instance's holdings.
//! - [`linker`]: the linker with every interface Mayfly provides.
//! - [`sandbox`]: one guest's sandbox, and the one way to make a store.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use mayfly_sandbox::{CallContext, EngineSettings, Grants, RequestLimits, Sandbox, Stdio};
//! use mayfly_sandbox::output::GuestLog;
//!
//! # fn main() -> anyhow::Result<()> {
//! let engine = EngineSettings::default().build()?;
//! let _ticker = mayfly_sandbox::epoch::EpochTicker::start(&engine)?;
//! let sandbox = Sandbox::new(&engine, Arc::from("tool"), Grants::default(),
//!     RequestLimits::default(), None)?;
//! let log = GuestLog::default();
//! let call = CallContext::new(Arc::from("1"), Instant::now() + Duration::from_secs(1));
//! let store = sandbox.store(call, &Stdio::captured(&log), &[])?;
//! // ...instantiate a component in `store`, call it, drop the store.
//! # drop(store);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod binary;
pub mod cache;
pub mod call;
pub mod engine;
pub mod epoch;
pub mod failure;
pub mod grants;
mod holdings;
pub mod host;
pub mod limiter;
pub mod limits;
pub mod linker;
mod metered;
pub mod output;
pub mod private_dir;
pub mod sandbox;
pub mod units;

pub use cache::CompileCache;
pub use call::{CallContext, Output, Stdio};
pub use engine::EngineSettings;
pub use grants::{FileGrant, FilesMode, Grants};
pub use host::Host;
pub use limits::{LimitKind, RequestLimits};
pub use sandbox::{Sandbox, SandboxError};
