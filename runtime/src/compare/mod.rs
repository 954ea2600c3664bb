//! `mayfly compare`: the same workload as a fresh Wasm instance, as a plain
//! process and as a fresh set of Linux namespaces per call, measured side
//! by side, and an isolation matrix from a probe run in every mode.

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
    /// Latency percentiles and maximum, in microseconds.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest call.
    pub max_us: f64,
    /// Mean time to create the isolate, in microseconds.
    pub create_us: f64,
    /// Mean time from created to finished, in microseconds.
    pub run_us: f64,
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
    /// All latencies, in microseconds (for the JSON output).
    #[serde(skip)]
    pub latencies_us: Vec<f64>,
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
                seen.push((latency, call.create, call.run, correct, call.rss_kib));
            }
            Ok(seen)
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for thread in threads {
        let seen = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a measuring thread panicked"))??;
        all.extend(seen);
    }
    let elapsed = started.elapsed();
    let (rss_after, peak) = own_rss_kib();
    let mut latencies: Vec<f64> = all.iter().map(|(l, ..)| micros(*l)).collect();
    latencies.sort_by(f64::total_cmp);
    let mean = |f: fn(&(Duration, Duration, Duration, bool, u64)) -> Duration| {
        all.iter().map(|c| micros(f(c))).sum::<f64>() / count(all.len().max(1))
    };
    let (rss_per_isolate_kib, peak_kib) = match mode {
        Mode::Wasm => (
            rss_after.saturating_sub(rss_before) / u64::try_from(concurrency).unwrap_or(1),
            peak,
        ),
        Mode::Process | Mode::Namespaces => {
            let child = all.iter().map(|c| c.4).max().unwrap_or(0);
            (child, child * u64::try_from(concurrency).unwrap_or(1))
        }
    };
    Ok(Stats {
        mode,
        workload: args.join(" "),
        concurrency,
        calls: all.len(),
        calls_per_second: count(all.len()) / elapsed.as_secs_f64(),
        p50_us: percentile(&latencies, 500),
        p90_us: percentile(&latencies, 900),
        p99_us: percentile(&latencies, 990),
        max_us: latencies.last().copied().unwrap_or(0.0),
        create_us: mean(|c| c.1),
        run_us: mean(|c| c.2),
        rss_per_isolate_kib,
        peak_kib,
        correct: all.iter().all(|c| c.3),
        latencies_us: latencies,
    })
}

fn micros(duration: Duration) -> f64 {
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
fn count(n: usize) -> f64 {
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
