//! `mayfly compare`: the same workload as a fresh Wasm instance, as a plain
//! process and as a fresh set of Linux namespaces per call, measured side
//! by side, and an isolation matrix from a probe run in every mode.

pub mod http;
pub mod runners;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use self::runners::Runner;

/// The modes, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A fresh Mayfly instance per call, in process.
    Wasm,
    /// fork/exec of the native executable: no isolation (the baseline).
    Process,
    /// Fresh user, pid, mount, network, ipc and uts namespaces per call,
    /// in a read-only root file system.
    Namespaces,
    /// A real OCI runtime (runc) running a generated bundle per call.
    Oci,
}

/// Timing and memory of one mode at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The mode.
    pub mode: Mode,
    /// The workload's arguments.
    pub workload: String,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Calls made.
    pub calls: usize,
    /// Calls per second.
    pub calls_per_second: f64,
    /// Latency of a call.
    #[serde(flatten)]
    pub latency: Latency,
    /// Start-up breakdown, each a mean in microseconds. Creating the
    /// isolate: instantiating (Wasm), fork and exec, or `runc create`.
    pub create_us: f64,
    /// Starting the created isolate where that is a step of its own
    /// (`runc start`); 0 where creating it also starts it.
    pub start_us: f64,
    /// From the call's beginning to the first byte of the workload's output.
    pub first_byte_us: f64,
    /// From started to the workload's end (its last output).
    pub run_us: f64,
    /// From the workload's end until everything the isolate held is
    /// released: dropping the store, or reaping the process (`runc delete`
    /// for OCI). Child processes are polled, so this is good to ~0.1 ms.
    pub teardown_us: f64,
    /// Resident memory per concurrent isolate, in KiB: this process's RSS
    /// growth over the run divided by the concurrency, for Wasm; the largest
    /// RSS sampled from /proc of a call's process tree, otherwise (0 when
    /// calls end before a sample).
    pub rss_per_isolate_kib: u64,
    /// Peak resident memory, in KiB: this process's peak for Wasm;
    /// concurrency x the largest process tree, otherwise.
    pub peak_kib: u64,
    /// Every call's output was the expected one.
    pub correct: bool,
    /// How the first wrong call ended, if any.
    pub first_failure: Option<String>,
    /// All latencies, in microseconds (for the JSON output).
    #[serde(skip)]
    pub latencies_us: Vec<f64>,
}

/// Latency percentiles and maximum, in microseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// The slowest.
    pub max_us: f64,
}

impl Latency {
    /// The summary of `sorted` latencies, in microseconds.
    pub fn of(sorted: &[f64]) -> Self {
        Self {
            p50_us: percentile(sorted, 500),
            p90_us: percentile(sorted, 900),
            p99_us: percentile(sorted, 990),
            max_us: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// Runs `calls` calls of `args` in `concurrency` threads.
pub fn measure(
    mode: Mode,
    runner: &Arc<dyn Runner>,
    args: &[String],
    calls: usize,
    concurrency: usize,
    expect: &str,
) -> anyhow::Result<Stats> {
    let concurrency = concurrency.max(1);
    let (rss_before, _) = own_rss_kib();
    let started = Instant::now();
    let mut threads = Vec::new();
    for t in 0..concurrency {
        let runner = runner.clone();
        let args = args.to_vec();
        let share = calls / concurrency + usize::from(t < calls % concurrency);
        let expect = expect.to_string();
        threads.push(std::thread::spawn(move || -> anyhow::Result<_> {
            let mut seen = Vec::with_capacity(share);
            for _ in 0..share {
                let begun = Instant::now();
                let call = runner.call(&args, Duration::from_secs(30))?;
                let latency = begun.elapsed();
                let correct = call.ended == "ok" && call.stdout.starts_with(&expect);
                seen.push((latency, correct, call));
            }
            Ok(seen)
        }));
    }
    let mut all: Vec<(Duration, bool, runners::Call)> = Vec::with_capacity(calls);
    for thread in threads {
        all.extend(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))??,
        );
    }
    let elapsed = started.elapsed();
    let (rss_after, peak) = own_rss_kib();
    let mut latencies: Vec<f64> = all.iter().map(|(l, ..)| micros(*l)).collect();
    latencies.sort_by(f64::total_cmp);
    let mean = |f: fn(&runners::Call) -> Duration| {
        all.iter().map(|(_, _, c)| micros(f(c))).sum::<f64>() / count(all.len().max(1))
    };
    let first_failure = all
        .iter()
        .find(|(_, correct, _)| !correct)
        .map(|(_, _, call)| format!("{} (output {:?})", call.ended, call.stdout));
    let (rss_per_isolate_kib, peak_kib) = match mode {
        Mode::Wasm => (
            rss_after.saturating_sub(rss_before) / u64::try_from(concurrency).unwrap_or(1),
            peak,
        ),
        Mode::Process | Mode::Namespaces | Mode::Oci => {
            let child = all.iter().map(|(_, _, c)| c.rss_kib).max().unwrap_or(0);
            (child, child * u64::try_from(concurrency).unwrap_or(1))
        }
    };
    Ok(Stats {
        mode,
        workload: args.join(" "),
        concurrency,
        calls: all.len(),
        calls_per_second: count(all.len()) / elapsed.as_secs_f64(),
        latency: Latency::of(&latencies),
        create_us: mean(|c| c.create),
        start_us: mean(|c| c.start),
        first_byte_us: mean(|c| c.first_byte),
        run_us: mean(|c| c.run),
        teardown_us: mean(|c| c.teardown),
        rss_per_isolate_kib,
        peak_kib,
        correct: all.iter().all(|(_, correct, _)| *correct),
        first_failure,
        latencies_us: latencies,
    })
}

pub(crate) fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The `permille`th per-mille of `sorted` (nearest rank).
fn percentile(sorted: &[f64], permille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) * permille + 500) / 1000;
    sorted[index.min(sorted.len() - 1)]
}

/// A count as a float, for rates and means.
pub(crate) fn count(n: usize) -> f64 {
    u32::try_from(n).map_or(f64::from(u32::MAX), f64::from)
}

/// This process's resident memory and its peak, in KiB.
fn own_rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One cell of the isolation matrix: what the probe reported.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// `reached` or `denied` (or `stopped`, `ran on` for the deadline).
    pub outcome: String,
    /// What the probe saw.
    pub detail: String,
}

/// The checks the probe makes, in order.
pub const CHECKS: &[&str] = &[
    "read-host-file",
    "see-host-processes",
    "connect-loopback",
    "write-outside",
    "read-host-env",
    "exceed-memory",
    "spin-past-deadline",
];

/// Runs the probe in `runner`: a secret file it was not granted, a port
/// the harness listens on, and a loop that must be stopped at `deadline`.
pub fn probe(runner: &dyn Runner, deadline: Duration) -> anyhow::Result<Vec<(String, Cell)>> {
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the harness's secret")?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port().to_string();
    let args = ["probe".to_string(), secret.display().to_string(), port];
    let call = runner.call(&args, Duration::from_secs(60))?;
    let mut cells: Vec<(String, Cell)> = Vec::new();
    for line in call.stdout.lines() {
        let Some((check, rest)) = line.split_once('=') else {
            continue;
        };
        let (outcome, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        cells.push((
            check.to_string(),
            Cell {
                outcome: outcome.to_string(),
                detail: detail.to_string(),
            },
        ));
    }
    // A variable the runtime sets itself (runc sets HOME=/) is not the
    // host's environment.
    let host_home: String = std::env::var("HOME")
        .unwrap_or_default()
        .chars()
        .take(40)
        .collect();
    for (check, cell) in &mut cells {
        if check == "read-host-env" && cell.outcome == "reached" && cell.detail != host_home {
            cell.outcome = "denied".into();
            cell.detail = format!("saw only its own HOME={}", cell.detail);
        }
    }
    if !cells.iter().any(|(check, _)| check == "exceed-memory") {
        cells.push((
            "exceed-memory".into(),
            Cell {
                outcome: "denied".into(),
                detail: format!("the probe was stopped: {}", call.ended),
            },
        ));
    }
    let started = Instant::now();
    let spin = runner.call(&["spin".to_string()], deadline)?;
    let took = started.elapsed();
    let outcome = match spin.ended.as_str() {
        "deadline" => "stopped",
        "killed at the deadline" => "stopped",
        _ => "reached",
    };
    cells.push((
        "spin-past-deadline".into(),
        Cell {
            outcome: outcome.into(),
            detail: format!("{} after {:.0} ms", spin.ended, took.as_secs_f64() * 1e3),
        },
    ));
    Ok(cells)
}

/// A chart of the latency distributions: for each workload, one cumulative
/// curve per mode and concurrency, on a logarithmic time axis.
pub fn svg(stats: &[Stats]) -> String {
    const WIDTH: f64 = 900.0;
    const PANEL: f64 = 320.0;
    const LEFT: f64 = 60.0;
    const RIGHT: f64 = 200.0;
    const TOP: f64 = 40.0;
    const COLOURS: [&str; 8] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ];
    let mut workloads: Vec<&str> = Vec::new();
    for s in stats {
        if !workloads.contains(&s.workload.as_str()) {
            workloads.push(&s.workload);
        }
    }
    let height = TOP + PANEL * count(workloads.len());
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = PANEL - 80.0;
    // 1 µs to 1 s, logarithmic.
    let x = |us: f64| LEFT + (us.max(1.0).log10() / 6.0).min(1.0) * plot_width;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"16\">Latency per call, a fresh isolate each \
         (cumulative share of calls)</text>\n"
    );
    for (panel, workload) in workloads.iter().enumerate() {
        let top = TOP + PANEL * count(panel) + 30.0;
        let bottom = top + plot_height;
        out.push_str(&format!(
            "<text x=\"{LEFT}\" y=\"{}\" font-size=\"14\">workload: {workload}</text>\n",
            top - 10.0
        ));
        out.push_str(&format!(
            "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{plot_width}\" height=\"{plot_height}\" \
             fill=\"none\" stroke=\"#999\"/>\n"
        ));
        for (decade, label) in ["1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s"]
            .iter()
            .enumerate()
        {
            let gx = LEFT + count(decade) / 6.0 * plot_width;
            out.push_str(&format!(
                "<line x1=\"{gx}\" y1=\"{top}\" x2=\"{gx}\" y2=\"{bottom}\" stroke=\"#eee\"/>\
                 <text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
                bottom + 16.0
            ));
        }
        let series: Vec<&Stats> = stats.iter().filter(|s| s.workload == *workload).collect();
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = if s.concurrency > 1 {
                " stroke-dasharray=\"5,3\""
            } else {
                ""
            };
            let n = count(s.latencies_us.len().max(1));
            let points: Vec<String> = s
                .latencies_us
                .iter()
                .enumerate()
                .map(|(k, us)| {
                    let share = count(k + 1) / n;
                    format!("{:.1},{:.1}", x(*us), bottom - share * plot_height)
                })
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>\n",
                points.join(" ")
            ));
            let ly = top + 14.0 * count(i) + 10.0;
            out.push_str(&format!(
                "<line x1=\"{}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\
                 <text x=\"{}\" y=\"{}\">{:?} c={} ({:.0}/s)</text>\n",
                WIDTH - RIGHT + 10.0,
                WIDTH - RIGHT + 30.0,
                WIDTH - RIGHT + 35.0,
                ly + 4.0,
                s.mode,
                s.concurrency,
                s.calls_per_second
            ));
        }
    }
    out.push_str("</svg>\n");
    out
}
