//! The guest components of `guests/`, built for `wasm32-wasip2` by this
//! crate's build script: a path constant per guest (`HELLO`, `ECHO`...),
//! [`ALL`] of them by name, their bytes in [`bytes`], and [`foreach_guest!`]
//! over them (for the tests' check that every guest has one).
//!
//! Not published: the `mayfly` binary carries some of these (the demo app,
//! `mayfly compare`'s workload), and the tests and benchmarks run them.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
