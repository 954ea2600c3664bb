//! `mayfly compare`: Wasm instances against processes and namespace
//! containers, measured side by side on this machine. The flags are
//! parsed here; the comparison itself is `mayfly_compare::orchestration`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_compare::Mode;
use mayfly_compare::orchestration::{self, Options, Workload};

/// Compare a fresh Wasm instance per call with a fresh process and a fresh
/// set of Linux namespaces per call
///
/// Runs the same workload (one Rust source, built as a component and as a
/// static executable) in every mode, at concurrency 1 and N, and prints
/// calls/s, latency percentiles, memory and a start-up breakdown (create,
/// start, first byte, run, teardown). Then the HTTP variant: the same
/// requests served by `mayfly serve` (a fresh instance per request) and by
/// a CGI-style host that starts a fresh process or container per request,
/// under a built-in load generator. Then an isolation probe in every mode,
/// and what it could reach.
///
/// Before all that, the cold start through containerd: from `ctr run` to
/// the first 200, for a Mayfly task through containerd-shim-mayfly-v1 (the
/// same HTTP workload, in an image made as `mayfly oci build` makes one,
/// with and without a compile-cache volume) and for a runc container of the
/// native workload, in a private containerd. It needs root, containerd,
/// ctr, runc and the shim, and is skipped, saying why, without them.
///
/// On SIGINT or SIGTERM it kills the processes, containers and containerd
/// it started, deletes its cgroups and temporary files, and exits 130 or
/// 143.
#[derive(Args)]
pub struct Compare {
    /// Modes to run
    #[arg(
        long,
        value_parser = mode_parser(),
        value_delimiter = ',',
        default_value = "wasm,process,namespaces,oci"
    )]
    modes: Vec<Mode>,

    /// The OCI runtime for the `oci` mode [default: `runc` on PATH]
    #[arg(long, value_name = "PATH")]
    oci_runtime: Option<PathBuf>,

    /// Calls per mode, workload and concurrency
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    calls: u32,

    /// Calls in flight at once, besides 1
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: u32,

    /// Records in the JSON workload's document
    #[arg(long, default_value_t = 1000)]
    records: u32,

    /// Linear memory (Wasm) or address space (namespaces) per isolate, MiB
    #[arg(long, default_value_t = 256)]
    memory_mib: u64,

    /// Skip the HTTP variant
    #[arg(long)]
    no_http: bool,

    /// How long each HTTP measurement runs, per server, path and
    /// connection count
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = mayfly_sandbox::units::parse_duration)]
    http_duration: Duration,

    /// Skip the cold start through containerd
    #[arg(long, conflicts_with = "cold_start_only")]
    no_cold_start: bool,

    /// Measure only the cold start through containerd: no modes, no HTTP
    /// variant, no probe
    #[arg(long)]
    cold_start_only: bool,

    /// Timed cold starts of each kind of task (after one untimed each)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    cold_start_runs: u32,

    /// The Mayfly containerd shim for the cold start [default:
    /// containerd-shim-mayfly-v1 next to this mayfly, else on PATH]
    #[arg(long, value_name = "PATH")]
    shim: Option<PathBuf>,

    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,

    /// Also write a chart of the latency distributions to FILE (SVG)
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

/// Parses a mode by its name, listing the names in `--help` and errors.
fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::name)).map(|name| {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .unwrap_or(Mode::Wasm)
    })
}

impl Compare {
    pub fn execute(self) -> Result<()> {
        let options = Options {
            modes: self.modes,
            oci_runtime: self.oci_runtime,
            calls: usize::try_from(self.calls)?,
            concurrency: usize::try_from(self.concurrency)?,
            records: self.records,
            memory_mib: self.memory_mib,
            http: !self.no_http,
            http_duration: self.http_duration,
            cold_start: !self.no_cold_start,
            cold_start_only: self.cold_start_only,
            cold_start_runs: usize::try_from(self.cold_start_runs)?,
            shim: self.shim,
            mayfly: std::env::current_exe().context("cannot find the mayfly executable")?,
            json: self.json,
            svg: self.svg,
        };
        // The workload, built both ways, carried inside this binary.
        let workload = Workload {
            component: mayfly_guests::bytes::WORKLOAD,
            http_component: mayfly_guests::bytes::WORKLOAD_HTTP,
            native: mayfly_guests::bytes::NATIVE_WORKLOAD,
        };
        orchestration::run(&options, &workload, &mut std::io::stdout())
    }
}
