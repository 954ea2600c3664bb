//! Host side of the interfaces Mayfly offers to guest components.
//!
//! Every interface here follows one shape: an owned per-store context that
//! holds only what the app manifest granted, and a way to plug it into a
//! wasmtime `Linker` or `Store`. Nothing is granted by default.
//!
//! - [`outbound`]: the policy behind `wasi:http/outgoing-handler`. Until a
//!   component is granted outbound hosts, every outgoing request is refused
//!   with `HTTP-request-denied`, inside the guest, without a trap.
//! - [`state`]: `wasi:keyvalue`, `wasi:config` and `wasi:logging`, one file
//!   per interface.
//! - [`kv`]: where key-value data lives: the [`kv::Backend`] trait, and the
//!   embedded (`redb` feature) and Redis (`redis` feature) backends.
//! - [`chain`]: one call's place in a chain of calls (request id, hops,
//!   deadline, where its internal calls go).
//! - [`budget`]: what guests hold on the host (descriptors, host memory),
//!   per instance and per process.
//! - `body_buffer` (`http` feature): how large a `wasi:http` body buffer
//!   may be, and the lease that charges it while it lives.
//! - [`report`]: capped warnings for the operator.
//! - [`escape`]: the one escaping rule for every log line.

#![deny(missing_docs)]

#[cfg(feature = "http")]
pub mod body_buffer;
pub mod budget;
pub mod chain;
pub mod escape;
pub mod kv;
pub mod outbound;
pub mod report;
pub mod state;

#[cfg(feature = "http")]
pub use outbound::OutboundPolicy;
