//! Integration tests: the real `mayfly` binary, real guest components built
//! from `guests/`, and real HTTP over loopback sockets.
//!
//! One test binary, a module per area.

/// The guest components, built by `mayfly-guests`.
use mayfly_guests as guests;

mod harness;

mod budgets;
mod busy_poll;
mod chaining;
mod check;
mod cli;
mod clients;
mod compare;
mod compile_cache;
mod deploy;
mod fresh_instances;
mod grants;
mod guest_log;
mod guest_text;
mod host_memory;
mod hostile;
mod limits;
mod load_errors;
mod network_fuzz;
mod oci;
mod operating;
mod outbound;
mod plugins;
mod plugins_async;
mod queue;
mod routing;
mod run;
mod shutdown;
mod soak;
mod state;
mod streaming;
mod traps;
mod wasi03;

/// Every guest in `guests/` is used by at least one test.
#[test]
fn every_guest_has_a_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/all");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "main.rs" {
            sources.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    for (name, _) in guests::ALL {
        let constant = format!("guests::{}", name.to_uppercase().replace('-', "_"));
        assert!(
            sources.contains(&constant),
            "guest `{name}` has no test: no test module uses {constant}"
        );
    }
}
