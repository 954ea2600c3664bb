//! The isolation matrix: a probe run in every mode, and what it reached.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::runners::Runner;

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
    let _removed_if_stopped = crate::cleanup::making()?.dir(dir.path());
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
