//! # mayfly-sandbox
//!
//! The core every use of Mayfly shares (`mayfly serve`, plugins, `mayfly
//! run`, `mayfly compare`): how a guest is confined, bounded and started.
//! Nothing here serves HTTP, parses a manifest or builds a guest.
//!
//! The modules, lowest first:
//!
//! - [`units`]: durations and sizes as people write them.
//! - [`limits`]: the bounds a call's store runs under, and which one a
//!   failure hit.
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
//! - [`stdio`]: where a guest's standard streams go.
//! - [`failure`]: what a failed call says about itself (its causes, the
//!   guest's backtrace), escaped and bounded.
//! - [`ended`]: how a call ended ([`Ended`]), told once for every caller.
//! - `holdings`: what an instance holds on the host (descriptors, host
//!   memory), against its budget.
//! - [`host`]: the per-store state, which holds only what was granted.
//! - `metered`: the imports whose host resources are counted in the
//!   instance's holdings.
//! - [`linker`]: the linker with every interface Mayfly provides.
//! - [`runtime`]: the one floor: an engine, its epoch ticker, the linker
//!   and the compile cache; loads, checks and pre-instantiates components.
//! - [`sandbox`]: one guest's sandbox, and the one way to make a store.
//! - [`command`]: a `wasi:cli` command, run once in a fresh instance.
//!
//! A store is made for a call's place in its chain of calls,
//! [`CallChain`] (`mayfly_host_api::chain`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::{Duration, Instant};
//! use mayfly_sandbox::{CallChain, CompileCache, EngineSettings, Grants, Runtime, Sandbox,
//!     StoreLimits, Stdio};
//! use mayfly_sandbox::output::GuestLog;
//!
//! # fn main() -> anyhow::Result<()> {
//! let runtime = Runtime::new(EngineSettings::default(), CompileCache::disabled())?;
//! let (component, _) = runtime.compile(&std::fs::read("tool.wasm")?)?;
//! let pre = runtime.instantiate_pre(&component)?;
//! let sandbox = Sandbox::new(runtime.engine(), Arc::from("tool"), Grants::default(),
//!     StoreLimits::default(), None)?;
//! let log = GuestLog::default();
//! let call = CallChain::new(Arc::from("1"), Instant::now() + Duration::from_secs(1));
//! let store = sandbox.store(call, &Stdio::captured(&log), &[])?;
//! // ...instantiate `pre` in `store`, call it, drop the store.
//! # drop((pre, store));
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod binary;
pub mod cache;
pub mod command;
pub mod ended;
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
pub mod runtime;
pub mod sandbox;
pub mod stdio;
pub mod units;

pub use cache::CompileCache;
pub use command::{Command, CommandWorld};
pub use ended::{Ended, Failure};
pub use engine::EngineSettings;
pub use grants::{FileGrant, FilesMode, Grants};
pub use host::Host;
pub use limits::{LimitKind, StoreLimits};
pub use mayfly_host_api::chain::CallChain;
pub use runtime::{LoadError, Runtime, RuntimeError};
pub use sandbox::{Sandbox, SandboxError};
pub use stdio::{Output, Stdio};
