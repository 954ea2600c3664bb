//! What a comparison is asked to do ([`Options`], the `mayfly compare`
//! flags as plain values, and the jobs they make), and what it runs
//! ([`Workload`], carried by the program that asks).

use std::path::PathBuf;
use std::time::Duration;

use crate::mode::Mode;

/// What to compare, and how: `mayfly compare`'s flags, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The modes to run, in the order they are reported.
    pub modes: Vec<Mode>,
    /// The OCI runtime for the `oci` mode; `None` looks for `runc` on
    /// `PATH`.
    pub oci_runtime: Option<PathBuf>,
    /// Calls per mode, workload and concurrency.
    pub calls: usize,
    /// Calls in flight at once, besides 1; also the HTTP variant's
    /// connections besides 1, and the isolates the CGI host runs at once.
    pub concurrency: usize,
    /// Records in the JSON workload's document.
    pub records: u32,
    /// Linear memory (Wasm) or address space (namespaces) per isolate, in
    /// MiB.
    pub memory_mib: u64,
    /// Whether to run the HTTP variant.
    pub http: bool,
    /// How long each HTTP measurement runs, per server, path and
    /// connection count.
    pub http_duration: Duration,
    /// Whether to measure the cold start through containerd.
    pub cold_start: bool,
    /// Measure only the cold start: no modes, no HTTP variant, no probe.
    pub cold_start_only: bool,
    /// Timed cold starts of each kind of task (after one untimed each).
    pub cold_start_runs: usize,
    /// The Mayfly containerd shim for the cold start; `None` looks for
    /// `containerd-shim-mayfly-v1` next to this program, then on `PATH`.
    pub shim: Option<PathBuf>,
    /// The `mayfly` executable whose `mayfly serve` serves the HTTP
    /// variant's Wasm mode (the running one, for `mayfly compare`).
    pub mayfly: PathBuf,
    /// Write the report as JSON instead of tables.
    pub json: bool,
    /// Also write a chart of the latency distributions here (SVG).
    pub svg: Option<PathBuf>,
}

/// The workload, built both ways from one Rust source, as the program that
/// runs the comparison carries it (the `mayfly` binary embeds what
/// `mayfly-guests` builds, so that this crate needs no guest build).
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// The `workload` guest component: a `wasi:cli` command that runs
    /// `trivial`, `json N` or the probe's checks.
    pub component: &'a [u8],
    /// The `workload-http` guest component: the same work behind
    /// `wasi:http`, for `mayfly serve` and the cold start.
    pub http_component: &'a [u8],
    /// The `workload` guest built as a static native executable, for the
    /// process, namespaces and OCI modes and the runc image.
    pub native: &'a [u8],
}

/// One job the workload is given, in every mode, per call and over HTTP.
pub(super) struct Job {
    /// Its arguments: `trivial`, or `json N`.
    pub(super) args: Vec<String>,
    /// How its right answer starts.
    pub(super) expect: String,
}

impl Options {
    /// The jobs, in the order they are reported: `trivial`, and `json`
    /// with [`records`](Options::records) records.
    pub(super) fn jobs(&self) -> [Job; 2] {
        [
            Job {
                args: vec!["trivial".into()],
                expect: "ok".into(),
            },
            Job {
                args: vec!["json".into(), self.records.to_string()],
                expect: format!("records={}", self.records),
            },
        ]
    }
}
