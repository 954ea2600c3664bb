//! # mayfly-compare
//!
//! `mayfly compare`: the same workload as a fresh Wasm instance, as a plain
//! process, as a fresh set of Linux namespaces and as an OCI container per
//! call, measured side by side, an isolation matrix from a probe run in
//! every mode, and the cold start of a Mayfly task and of a runc container
//! through containerd.
//!
//! The command itself is [`orchestration::run`]: the CLI only parses its
//! flags into [`orchestration::Options`] and passes the workload it carries
//! (this crate builds no guest). Below it, lowest first:
//!
//! - `child` (private): a native child process's output, memory,
//!   deadline and parent-death signal;
//! - [`cleanup`]: everything made and not yet torn down, undone when the
//!   command stops;
//! - [`runners`]: one file per way of running the workload ([`Mode`]);
//! - [`stats`]: calls in threads; latency, throughput, memory, start-up;
//! - [`probe`](mod@probe): what each mode can reach;
//! - [`cgi`]: the HTTP variant's CGI-style host, which answers only its
//!   [`Token`];
//! - [`load`]: the HTTP variant's load generator, and the crate's one HTTP
//!   client;
//! - [`cold_start`]: from `ctr run` to the first `200`, a Mayfly task
//!   through the shim against a runc container ([`native_image`]), in a
//!   private [`containerd`];
//! - [`chart`]: the latency distributions as SVG;
//! - [`orchestration`]: the steps in order, `mayfly serve` as a child, the
//!   signal handling and the report.

#![deny(missing_docs)]

pub mod cgi;
pub mod chart;
mod child;
pub mod cleanup;
pub mod cold_start;
pub mod containerd;
pub mod load;
mod mode;
pub mod native_image;
pub mod orchestration;
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
