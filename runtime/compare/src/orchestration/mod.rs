//! `mayfly compare` from start to end. The CLI parses its flags into
//! [`Options`], hands over the [`Workload`] it carries, and calls [`run`];
//! all the rest is here, a step a file where the step is more than a loop:
//!
//! 1. `signals`: from the start, SIGINT and SIGTERM undo everything made
//!    so far and exit; the end, however it comes, undoes what is left;
//! 2. the workload written out to a temporary directory;
//! 3. the cold start through containerd ([`crate::cold_start`]), first,
//!    since it runs a containerd of its own;
//! 4. `modes`: a runner for each mode asked for, or a note saying why it
//!    cannot run here;
//! 5. every job in every mode, at concurrency 1 and N ([`crate::stats`]);
//! 6. `http_variant`: each mode's server under the load generator:
//!    `mayfly serve` as a child (`serve_child`) for Wasm, the CGI host for
//!    the others;
//! 7. the isolation probe in every mode ([`probe`](mod@crate::probe));
//! 8. the [`Report`], as tables or JSON, and the latency chart.

mod http_variant;
mod modes;
mod options;
mod report;
mod serve_child;
mod signals;

use std::io::Write;
use std::time::Duration;

use anyhow::Context as _;

use self::options::Job;
pub use self::options::{Options, Workload};
pub use self::report::Report;
use crate::cleanup;
use crate::cold_start::{self, ColdStart};
use crate::mode::Mode;
use crate::probe::probe;
use crate::runners::Runner;
use crate::stats::{Stats, measure};

/// Runs the whole comparison as `mayfly compare` does, and writes its
/// report to `out` (and the latency chart, if asked for). Progress goes to
/// stderr.
///
/// It takes over SIGINT and SIGTERM for the rest of the process: on
/// either, it kills, deletes and removes everything made so far and exits
/// 130 or 143.
pub fn run(options: &Options, workload: &Workload<'_>, out: &mut impl Write) -> anyhow::Result<()> {
    // Declared first, so dropped last: after every runner.
    let _clean_up = signals::CleanUpAtEnd;
    signals::stop_on_signals()?;
    let report = compare(options, workload)?;
    if let Some(path) = &options.svg {
        std::fs::write(path, crate::chart::svg(&report.stats))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("compare: wrote the latency chart to {}", path.display());
    }
    if options.json {
        report.write_json(out)
    } else {
        report.write_tables(out)
    }
}

/// Steps 2 to 7 of [`run`]: everything measured, nothing written but
/// progress on stderr. What it makes is undone when it returns (or by the
/// signal handlers of [`run`], if they are in place).
pub fn compare(options: &Options, workload: &Workload<'_>) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir()?;
    let _dir_registered = cleanup::making()?.dir(dir.path());
    let wasm = dir.path().join("workload.wasm");
    let native = dir.path().join("workload");
    std::fs::write(&wasm, workload.component)?;
    std::fs::write(&native, workload.native)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&native, std::fs::Permissions::from_mode(0o755))?;
    }

    let mut notes = Vec::new();
    // First: it starts and stops a containerd of its own, which the rest
    // had better not share the machine with.
    let cold_start = if options.cold_start {
        let cold_start = measure_cold_start(options, workload)?;
        if let Some(why) = &cold_start.skipped {
            notes.push(format!("cold start: skipped: {why}"));
        }
        Some(cold_start)
    } else {
        None
    };

    let modes: &[Mode] = if options.cold_start_only {
        &[]
    } else {
        &options.modes
    };
    let runners = modes::make(
        modes,
        options.oci_runtime.as_deref(),
        &wasm,
        &native,
        options.memory_mib,
        &mut notes,
    )?;
    let jobs = options.jobs();
    let stats = per_call(options, &runners.all, &jobs)?;

    let mut http = Vec::new();
    if options.http && !runners.all.is_empty() {
        let component = dir.path().join("workload-http.wasm");
        std::fs::write(&component, workload.http_component)?;
        http = http_variant::measure(options, &runners.all, &component, &jobs)?;
    }

    let mut isolation = Vec::new();
    for (mode, runner) in &runners.all {
        eprintln!("compare: probing {mode:?}");
        isolation.push((*mode, probe(runner.as_ref(), Duration::from_secs(1))?));
    }

    if let Some(oci) = &runners.oci {
        let retries = oci.retries.load(std::sync::atomic::Ordering::Relaxed);
        if retries > 0 {
            notes.push(format!(
                "oci: {retries} calls were started again after runc failed to set the \
                 container up"
            ));
        }
    }
    Ok(Report {
        stats,
        http,
        http_duration: options.http_duration,
        cold_start,
        isolation,
        notes,
    })
}

/// The cold start through containerd, or why it is skipped.
fn measure_cold_start(options: &Options, workload: &Workload<'_>) -> anyhow::Result<ColdStart> {
    let runs = options.cold_start_runs;
    let shim = match cold_start::prerequisites(options.shim.as_deref()) {
        Ok(shim) => shim,
        Err(why) => {
            eprintln!("compare: cold start: skipped: {why}");
            return Ok(ColdStart::skipped(runs, why));
        }
    };
    eprintln!("compare: cold start: the shim is {}", shim.display());
    cold_start::measure(
        &shim,
        workload.http_component,
        workload.native,
        runs,
        &mut |line| eprintln!("compare: cold start: {line}"),
    )
    .context("measuring the cold start through containerd")
}

/// Every job in every mode, at concurrency 1 and at the options'.
fn per_call(
    options: &Options,
    runners: &[(Mode, std::sync::Arc<dyn Runner>)],
    jobs: &[Job],
) -> anyhow::Result<Vec<Stats>> {
    let mut stats = Vec::new();
    for job in jobs {
        for (mode, runner) in runners {
            for concurrency in [1, options.concurrency] {
                eprint!(
                    "compare: {:<10} {:<12} c={concurrency:<4} ",
                    mode.name(),
                    job.args.join(" ")
                );
                let result = measure(
                    *mode,
                    runner,
                    &job.args,
                    options.calls,
                    concurrency,
                    &job.expect,
                )
                .with_context(|| format!("measuring {mode:?}"))?;
                eprintln!("{:>10.0} calls/s", result.calls_per_second);
                stats.push(result);
            }
        }
    }
    Ok(stats)
}
