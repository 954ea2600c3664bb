//! # mayfly-compare
//!
//! `mayfly compare`: the same workload as a fresh Wasm instance, as a plain
//! process, as a fresh set of Linux namespaces and as an OCI container per
//! call, measured side by side, an isolation matrix from a probe run in
//! every mode, and the cold start of a Mayfly task and of a runc container
//! through containerd.
//!
//! - [`runners`]: one file per way of running the workload ([`Mode`]).
//! - [`stats`]: calls in threads; latency, throughput, memory, start-up.
//! - [`probe`](mod@probe): what each mode can reach.
//! - [`http`]: the HTTP variant: a CGI-style host and a load generator;
//!   the host's [`Token`].
//! - [`cold_start`]: from `ctr run` to the first `200`, a Mayfly task
//!   through the shim against a runc container ([`native_image`]), in a
//!   private [`containerd`].
//! - [`runners::cleanup`]: what the runners made, undone when the command
//!   stops.
//! - [`chart`]: the latency distributions as SVG.

#![deny(missing_docs)]

pub mod chart;
pub mod cold_start;
pub mod containerd;
pub mod http;
mod mode;
pub mod native_image;
pub mod probe;
pub mod runners;
pub mod stats;
mod token;

pub use self::chart::svg;
pub use self::cold_start::{ColdStart, ColdStartRow};
pub use self::containerd::{Containerd, TaskSpec};
pub use self::mode::Mode;
pub use self::probe::{CHECKS, Cell, probe};
pub use self::stats::{Latency, Stats, measure};
pub use self::token::Token;
