//! The ways `mayfly compare` runs the workload, each starting a fresh
//! isolate for every call.
//!
//! One file per runner ([`wasm`], [`process`], [`namespaces`], [`oci`]),
//! with the memory cgroups of the namespaces runner in [`cgroups`]. The
//! native runners register what they make with [`crate::cleanup`].

pub mod cgroups;
pub mod namespaces;
pub mod oci;
pub mod process;
mod runner;
pub mod wasm;

pub use self::namespaces::{NamespacesRunner, require_namespaces};
pub use self::oci::OciRunner;
pub use self::process::ProcessRunner;
pub use self::runner::{Call, Runner};
pub use self::wasm::WasmRunner;
