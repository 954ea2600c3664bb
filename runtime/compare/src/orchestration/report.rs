//! What a comparison found, and how it is written: one JSON document, or
//! tables for people (the per-call table, the HTTP variant's, the cold
//! start's, the isolation matrix, then the notes).

use std::io::Write;
use std::time::Duration;

use crate::cold_start::ColdStart;
use crate::load::HttpStats;
use crate::mode::Mode;
use crate::probe::{CHECKS, Cell};
use crate::stats::Stats;

/// Everything a comparison measured, in the order it is reported.
#[derive(Debug, Clone)]
pub struct Report {
    /// One row per mode, job and concurrency.
    pub stats: Vec<Stats>,
    /// One row per mode's server, path and connection count (empty
    /// without the HTTP variant).
    pub http: Vec<HttpStats>,
    /// How long each HTTP measurement ran.
    pub http_duration: Duration,
    /// The cold start through containerd, or why it was skipped; `None`
    /// when it was not asked for.
    pub cold_start: Option<ColdStart>,
    /// The isolation matrix: each mode's probe, check by check.
    pub isolation: Vec<(Mode, Vec<(String, Cell)>)>,
    /// What the tables do not say: skipped modes, how memory was limited,
    /// calls started again.
    pub notes: Vec<String>,
}

impl Report {
    /// Writes the report as one JSON document.
    pub fn write_json(&self, out: &mut impl Write) -> anyhow::Result<()> {
        let value = serde_json::json!({
            "stats": self.stats,
            "http": self.http,
            "cold_start": self.cold_start,
            "isolation": self.isolation.iter().map(|(mode, cells)| serde_json::json!({
                "mode": mode,
                "checks": cells.iter().map(|(check, cell)| serde_json::json!({
                    "check": check, "outcome": cell.outcome, "detail": cell.detail,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
        });
        writeln!(out, "{value:#}")?;
        Ok(())
    }

    /// Writes the report as tables, each only if it has rows, then the
    /// notes.
    pub fn write_tables(&self, out: &mut impl Write) -> anyhow::Result<()> {
        if !self.stats.is_empty() {
            write_stats(out, &self.stats)?;
        }
        if !self.http.is_empty() {
            write_http(out, &self.http, self.http_duration)?;
        }
        if let Some(cold_start) = self.cold_start.as_ref().filter(|c| !c.rows.is_empty()) {
            write_cold_start(out, cold_start)?;
        }
        if !self.isolation.is_empty() {
            write_matrix(out, &self.isolation)?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        Ok(())
    }
}

/// The per-call table.
fn write_stats(out: &mut impl Write, stats: &[Stats]) -> anyhow::Result<()> {
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
            s.mode.name(),
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
fn write_http(out: &mut impl Write, http: &[HttpStats], duration: Duration) -> anyhow::Result<()> {
    writeln!(
        out,
        "\nHTTP, a fresh isolate per request (built-in load generator, keep-alive connections, {} each; latency in µs)",
        mayfly_sandbox::units::format_duration(duration)
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

/// The cold start's table.
fn write_cold_start(out: &mut impl Write, cold_start: &ColdStart) -> anyhow::Result<()> {
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
fn write_matrix(
    out: &mut impl Write,
    matrix: &[(Mode, Vec<(String, Cell)>)],
) -> anyhow::Result<()> {
    writeln!(out, "\nIsolation (what the probe actually managed to do):")?;
    write!(out, "{:<20}", "check")?;
    for (mode, _) in matrix {
        write!(out, " {:<28}", mode.name())?;
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
