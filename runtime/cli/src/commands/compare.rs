//! `mayfly compare`: Wasm instances against processes and namespace
//! containers, measured side by side on this machine.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use mayfly_compare::cold_start::{self, ColdStart};
use mayfly_compare::http::{CgiHost, HttpStats, Target};
use mayfly_compare::runners::cleanup::{self, Registered};
use mayfly_compare::runners::{NamespacesRunner, OciRunner, ProcessRunner, Runner, WasmRunner};
use mayfly_compare::{CHECKS, Cell, Mode, Stats, measure, probe};

/// The workload, built both ways, carried inside this binary.
use mayfly_guests::bytes::{
    NATIVE_WORKLOAD as WORKLOAD_NATIVE, WORKLOAD as WORKLOAD_WASM,
    WORKLOAD_HTTP as WORKLOAD_HTTP_WASM,
};

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
    oci_runtime: Option<std::path::PathBuf>,

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
    shim: Option<std::path::PathBuf>,

    /// Print JSON instead of tables
    #[arg(long)]
    json: bool,

    /// Also write a chart of the latency distributions to FILE (SVG)
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
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
        // Declared first, so dropped last: after every runner.
        let _clean_up = CleanUpAtEnd;
        stop_on_signals()?;
        let dir = tempfile::tempdir()?;
        let _dir_registered = cleanup::making()?.dir(dir.path());
        let wasm = dir.path().join("workload.wasm");
        let native = dir.path().join("workload");
        std::fs::write(&wasm, WORKLOAD_WASM)?;
        std::fs::write(&native, WORKLOAD_NATIVE)?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o755))?;
        }
        let memory = self.memory_mib << 20;

        let mut notes = Vec::new();
        // First: it starts and stops a containerd of its own, which the
        // rest had better not share the machine with.
        let cold_start = if self.no_cold_start {
            None
        } else {
            let cold_start = self.cold_start()?;
            if let Some(why) = &cold_start.skipped {
                notes.push(format!("cold start: skipped: {why}"));
            }
            Some(cold_start)
        };

        let mut runners: Vec<(Mode, Arc<dyn Runner>)> = Vec::new();
        let mut oci: Option<Arc<OciRunner>> = None;
        let modes: &[Mode] = if self.cold_start_only {
            &[]
        } else {
            &self.modes
        };
        for mode in modes {
            let runner: Arc<dyn Runner> = match mode {
                Mode::Wasm => Arc::new(WasmRunner::new(&wasm, usize::try_from(memory)?)?),
                Mode::Process => Arc::new(ProcessRunner::new(&native)),
                Mode::Namespaces => {
                    if let Err(err) = mayfly_compare::runners::require_namespaces() {
                        notes.push(format!("namespaces: skipped: {err}"));
                        continue;
                    }
                    let runner = NamespacesRunner::new(&native, memory)?;
                    notes.push(format!(
                        "namespaces: memory limited by {}",
                        runner.memory_limit()
                    ));
                    Arc::new(runner)
                }
                Mode::Oci => {
                    let Some(runtime) = self.oci_runtime.clone().or_else(OciRunner::find_runtime)
                    else {
                        notes.push(
                            "oci: skipped: no OCI runtime found; install one with \
                             `apt-get install runc` or pass --oci-runtime PATH"
                                .into(),
                        );
                        continue;
                    };
                    if !nix::unistd::geteuid().is_root() {
                        notes.push("oci: skipped: runc needs root here".into());
                        continue;
                    }
                    let runner = Arc::new(OciRunner::new(&runtime, &native, memory)?);
                    notes.push(format!(
                        "oci: memory limited by the runtime's cgroup ({} MiB in the bundle)",
                        self.memory_mib
                    ));
                    oci = Some(runner.clone());
                    runner
                }
            };
            runners.push((*mode, runner));
        }

        let workloads: [(Vec<String>, String); 2] = [
            (vec!["trivial".into()], "ok".into()),
            (
                vec!["json".into(), self.records.to_string()],
                format!("records={}", self.records),
            ),
        ];
        let mut stats: Vec<Stats> = Vec::new();
        for (args, expect) in &workloads {
            for (mode, runner) in &runners {
                for concurrency in [1, self.concurrency] {
                    let concurrency = usize::try_from(concurrency)?;
                    eprint!(
                        "compare: {:<10} {:<12} c={concurrency:<4} ",
                        format!("{mode:?}").to_lowercase(),
                        args.join(" ")
                    );
                    let result = measure(
                        *mode,
                        runner,
                        args,
                        usize::try_from(self.calls)?,
                        concurrency,
                        expect,
                    )
                    .with_context(|| format!("measuring {mode:?}"))?;
                    eprintln!("{:>10.0} calls/s", result.calls_per_second);
                    stats.push(result);
                }
            }
        }

        let mut http: Vec<HttpStats> = Vec::new();
        if !self.no_http && !runners.is_empty() {
            let component = dir.path().join("workload-http.wasm");
            std::fs::write(&component, WORKLOAD_HTTP_WASM)?;
            http = self.http(&runners, &component, &workloads)?;
        }

        let mut matrix: Vec<(Mode, Vec<(String, Cell)>)> = Vec::new();
        for (mode, runner) in &runners {
            eprintln!("compare: probing {mode:?}");
            matrix.push((*mode, probe(runner.as_ref(), Duration::from_secs(1))?));
        }

        if let Some(oci) = &oci {
            let retries = oci.retries.load(std::sync::atomic::Ordering::Relaxed);
            if retries > 0 {
                notes.push(format!(
                    "oci: {retries} calls were started again after runc failed to set the \
                     container up"
                ));
            }
        }
        if let Some(path) = &self.svg {
            std::fs::write(path, mayfly_compare::svg(&stats))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("compare: wrote the latency chart to {}", path.display());
        }
        let mut out = std::io::stdout().lock();
        if self.json {
            let value = serde_json::json!({
                "stats": stats,
                "http": http,
                "cold_start": cold_start,
                "isolation": matrix.iter().map(|(mode, cells)| serde_json::json!({
                    "mode": mode,
                    "checks": cells.iter().map(|(check, cell)| serde_json::json!({
                        "check": check, "outcome": cell.outcome, "detail": cell.detail,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "notes": notes,
            });
            writeln!(out, "{value:#}")?;
            return Ok(());
        }
        if !stats.is_empty() {
            Self::print_stats(&mut out, &stats)?;
        }
        if !http.is_empty() {
            self.print_http(&mut out, &http)?;
        }
        if let Some(cold_start) = cold_start.as_ref().filter(|c| !c.rows.is_empty()) {
            print_cold_start(&mut out, cold_start)?;
        }
        if !matrix.is_empty() {
            print_matrix(&mut out, &matrix)?;
        }
        for note in &notes {
            writeln!(out, "note: {note}")?;
        }
        Ok(())
    }
}

/// The cold start's table.
fn print_cold_start(out: &mut impl std::io::Write, cold_start: &ColdStart) -> Result<()> {
    writeln!(
        out,
        "\nCold start through containerd: `ctr run` to the first 200 of GET {} (ms; {} runs \
         each, alternating, after one untimed run of each)",
        cold_start.path, cold_start.runs
    )?;
    writeln!(
        out,
        "{:<14} {:<24} {:>8} {:>8} {:>8} {:>9}  serves",
        "task", "runtime", "median", "min", "max", "image KiB"
    )?;
    for row in &cold_start.rows {
        writeln!(
            out,
            "{:<14} {:<24} {:>8.1} {:>8.1} {:>8.1} {:>9}  {}",
            row.task,
            row.runtime,
            row.median_ms,
            row.min_ms,
            row.max_ms,
            row.image_bytes.div_ceil(1024),
            row.serves
        )?;
    }
    Ok(())
}

/// The isolation matrix.
fn print_matrix(
    out: &mut impl std::io::Write,
    matrix: &[(Mode, Vec<(String, Cell)>)],
) -> Result<()> {
    writeln!(out, "\nIsolation (what the probe actually managed to do):")?;
    write!(out, "{:<20}", "check")?;
    for (mode, _) in matrix {
        write!(out, " {:<28}", format!("{mode:?}").to_lowercase())?;
    }
    writeln!(out)?;
    for check in CHECKS {
        write!(out, "{check:<20}")?;
        for (_, cells) in matrix {
            let cell = cells
                .iter()
                .find(|(c, _)| c == check)
                .map_or("(no answer)".to_string(), |(_, cell)| cell.outcome.clone());
            write!(out, " {cell:<28}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

impl Compare {
    /// The cold start through containerd, or why it is skipped.
    fn cold_start(&self) -> Result<ColdStart> {
        let runs = usize::try_from(self.cold_start_runs)?;
        let shim = match cold_start::prerequisites(self.shim.as_deref()) {
            Ok(shim) => shim,
            Err(why) => {
                eprintln!("compare: cold start: skipped: {why}");
                return Ok(ColdStart::skipped(runs, why));
            }
        };
        eprintln!("compare: cold start: the shim is {}", shim.display());
        cold_start::measure(
            &shim,
            WORKLOAD_HTTP_WASM,
            WORKLOAD_NATIVE,
            runs,
            &mut |line| eprintln!("compare: cold start: {line}"),
        )
        .context("measuring the cold start through containerd")
    }

    /// The per-call table.
    fn print_stats(out: &mut impl std::io::Write, stats: &[Stats]) -> Result<()> {
        writeln!(
            out,
            "A fresh isolate per call: calls/s, latency, start-up breakdown (mean µs) and memory"
        )?;
        writeln!(
            out,
            "{:<11} {:<12} {:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>9} {:>9} ok",
            "mode",
            "workload",
            "conc",
            "calls/s",
            "p50",
            "p90",
            "p99",
            "max",
            "create",
            "start",
            "1st byte",
            "run",
            "teardown",
            "KiB/isol",
            "peak KiB"
        )?;
        for s in stats {
            writeln!(
                out,
                "{:<11} {:<12} {:>4} {:>9.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>7.0} {:>8.0} {:>8.0} {:>8.0} {:>9} {:>9} {}",
                format!("{:?}", s.mode).to_lowercase(),
                s.workload,
                s.concurrency,
                s.calls_per_second,
                s.latency.p50_us,
                s.latency.p90_us,
                s.latency.p99_us,
                s.latency.max_us,
                s.create_us,
                s.start_us,
                s.first_byte_us,
                s.run_us,
                s.teardown_us,
                s.rss_per_isolate_kib,
                s.peak_kib,
                if s.correct { "yes" } else { "NO" }
            )?;
        }
        Ok(())
    }

    /// The HTTP variant's table.
    fn print_http(&self, out: &mut impl std::io::Write, http: &[HttpStats]) -> Result<()> {
        writeln!(
            out,
            "\nHTTP, a fresh isolate per request (built-in load generator, keep-alive connections, {} each; latency in µs)",
            mayfly_sandbox::units::format_duration(self.http_duration)
        )?;
        writeln!(
            out,
            "{:<16} {:<12} {:>5} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "server", "path", "conns", "req/s", "p50", "p90", "p99", "max", "requests", "errors"
        )?;
        for h in http {
            writeln!(
                out,
                "{:<16} {:<12} {:>5} {:>9.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8} {:>7}",
                h.server,
                h.path,
                h.connections,
                h.requests_per_second,
                h.latency.p50_us,
                h.latency.p90_us,
                h.latency.p99_us,
                h.latency.max_us,
                h.requests,
                h.errors
            )?;
        }
        Ok(())
    }
}

impl Compare {
    /// The HTTP variant: for each mode, the server that gives every request
    /// a fresh isolate of that kind (`mayfly serve` for Wasm, the CGI host
    /// for the others), loaded at one connection and at `--concurrency`.
    fn http(
        &self,
        runners: &[(Mode, Arc<dyn Runner>)],
        component: &std::path::Path,
        workloads: &[(Vec<String>, String)],
    ) -> Result<Vec<HttpStats>> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut results = Vec::new();
        for (mode, runner) in runners {
            let name = format!("{mode:?}").to_lowercase();
            // Keep whichever server this is alive while it is measured.
            let (server, addr, _serve, cgi) = match mode {
                Mode::Wasm => {
                    let serve = ServeChild::start(component, workers)?;
                    ("mayfly serve".to_string(), serve.addr, Some(serve), None)
                }
                _ => {
                    let in_flight = usize::try_from(self.concurrency)?;
                    let cgi = CgiHost::start(runner.clone(), workers, in_flight)?;
                    (format!("cgi {name}"), cgi.addr(), None, Some(cgi))
                }
            };
            eprintln!("compare: http {server} on http://{addr}");
            let target = Target {
                mode: *mode,
                server: &server,
                addr,
                token: cgi.as_ref().map(CgiHost::token),
            };
            for (args, expect) in workloads {
                let path = format!("/{}", args.join("/"));
                for connections in [1, self.concurrency] {
                    let connections = usize::try_from(connections)?;
                    eprint!("compare: http {server:<16} {path:<12} conns={connections:<4} ");
                    let result = mayfly_compare::http::load(
                        &target,
                        &path,
                        expect,
                        connections,
                        self.http_duration,
                    )?;
                    eprintln!("{:>10.0} req/s", result.requests_per_second);
                    results.push(result);
                }
            }
        }
        Ok(results)
    }
}

/// Set once a signal is stopping the command.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// On SIGINT or SIGTERM, kills, deletes and removes everything the runners
/// made, then exits 130 or 143 (128 + the signal's number).
fn stop_on_signals() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // The handlers are in place once these exist, before anything starts.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        anyhow::Ok((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("compare-signals".into())
        .spawn(move || {
            let (name, code) = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => ("SIGINT", 130),
                    _ = terminate.recv() => ("SIGTERM", 143),
                }
            });
            STOPPING.store(true, Ordering::SeqCst);
            eprintln!("\ncompare: stopped by {name}; cleaning up");
            let cleaned = cleanup::clean_up_everything();
            eprintln!(
                "compare: killed {} processes, deleted {} containers, stopped {} containerds, \
                 removed {} cgroups and {} directories",
                cleaned.processes,
                cleaned.containers,
                cleaned.containerds,
                cleaned.cgroups,
                cleaned.dirs
            );
            std::process::exit(code);
        })
        .context("cannot watch for signals")?;
    Ok(())
}

/// Undoes whatever the runners left behind when the command ends, however
/// it ends (an error or a panic included). While a signal stops the
/// command, it leaves the exit to that.
struct CleanUpAtEnd;

impl Drop for CleanUpAtEnd {
    fn drop(&mut self) {
        // Waits for a cleaning up that a signal began.
        cleanup::clean_up_everything();
        if STOPPING.load(Ordering::SeqCst) {
            loop {
                std::thread::park();
            }
        }
    }
}

/// `mayfly serve` with the HTTP workload, as its own process, as it would
/// be deployed; stopped (SIGTERM) on drop, killed if this process is
/// stopped or killed.
struct ServeChild {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    registered: Option<Registered>,
}

impl ServeChild {
    fn start(component: &std::path::Path, workers: usize) -> Result<Self> {
        use std::io::BufRead as _;
        let exe = std::env::current_exe().context("cannot find the mayfly executable")?;
        let making = cleanup::making()?;
        let mut command = std::process::Command::new(exe);
        mayfly_compare::runners::child::die_with_parent(&mut command);
        let mut child = command
            .arg("serve")
            .arg(component)
            .args(["--listen", "127.0.0.1:0", "--no-cache", "--workers"])
            .arg(workers.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("cannot start `mayfly serve`")?;
        let registered = making.process(child.id());
        drop(making);
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let addr = line
                    .strip_prefix("Serving app")
                    .and_then(|rest| rest.split_once(" on http://"))
                    .and_then(|(_, addr)| addr.parse().ok());
                if let Some(addr) = addr {
                    let _ = tx.send(addr);
                }
            }
        });
        let mut serve = Self {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            registered: Some(registered),
        };
        serve.addr = rx
            .recv_timeout(Duration::from_secs(120))
            .context("`mayfly serve` did not start serving the HTTP workload")?;
        Ok(serve)
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        // Forgotten before it is reaped, and its pid freed.
        if let Some(registered) = self.registered.take() {
            registered.forget();
        }
        let _ = self.child.wait();
    }
}
