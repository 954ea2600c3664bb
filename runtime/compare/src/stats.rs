//! Measuring a runner: calls in threads, latency percentiles, throughput,
//! memory and the start-up breakdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::mode::Mode;
use crate::runners::{self, Runner};

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
