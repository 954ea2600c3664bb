//! # containerd-shim-mayfly
//!
//! The containerd shim that runs a Mayfly app as a task: containerd starts
//! `containerd-shim-mayfly-v1` for the runtime `io.containerd.mayfly.v1`,
//! and the shim serves the app in the image (made by `mayfly oci build`)
//! with the same engine, grants, limits and fresh instance per request as
//! `mayfly serve`.
//!
//! runwasi's `containerd-shim-wasm` does the containerd side: the task API,
//! the container's namespaces, cgroup, root filesystem and stdio, signals
//! and exit statuses. Inside the container it calls [`MayflySandbox`],
//! which reads the task's settings from its arguments and environment
//! ([`environment`]) and serves until SIGTERM ([`task`]).
//!
//! The modules, in the order a task meets them:
//!
//! - [`sandbox`]: what `containerd-shim-wasm` calls: whether a container
//!   is ours, and running it.
//! - [`environment`]: `MAYFLY_*` variables and the app's path, into a
//!   [`Launch`](mayfly_serve::launch::Launch).
//! - [`task`]: the serving process and its exit status.

#![deny(missing_docs)]

pub mod environment;
pub mod sandbox;
pub mod task;

pub use sandbox::{MayflySandbox, MayflyShim};
