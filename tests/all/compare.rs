//! `mayfly compare`: every mode runs the same workload correctly, and the
//! isolation probe's outcomes are what each mode promises.

use std::process::Command;
use std::time::Duration;

use crate::guests;
use crate::harness::{MAYFLY, run_bounded_for};

/// How long the whole comparison may take: it runs every mode, runc's
/// included, and can take a minute on a loaded 2-core machine.
const COMPARE_PATIENCE: Duration = Duration::from_secs(300);

#[test]
fn every_mode_runs_and_the_probe_reports_what_each_isolates() {
    // The workload is built both ways from one source.
    assert!(guests::WORKLOAD.ends_with("workload.wasm"));
    assert!(std::path::Path::new(guests::NATIVE_WORKLOAD).is_file());
    // ...and served over HTTP by the same code.
    assert!(guests::WORKLOAD_HTTP.ends_with("workload_http.wasm"));

    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("latency.svg");
    let mut command = Command::new(MAYFLY);
    command
        .arg("compare")
        .arg("--svg")
        .arg(&chart)
        .args(["--calls", "6"])
        .args(["--concurrency", "2"])
        .args(["--records", "50"])
        .args(["--http-duration", "300ms"])
        .arg("--json");
    let output = run_bounded_for(command, COMPARE_PATIENCE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    // Two workloads x each mode x two concurrencies, all answered right;
    // the OCI mode runs where runc is installed, and says so where not.
    let notes = report["notes"].to_string();
    let oci = !notes.contains("oci: skipped");
    let stats = report["stats"].as_array().unwrap();
    assert_eq!(stats.len(), if oci { 16 } else { 12 }, "{report:#}");
    for s in stats {
        assert_eq!(s["correct"], true, "{s}");
        assert_eq!(s["calls"], 6, "{s}");
        assert!(s["calls_per_second"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["p50_us"].as_f64().unwrap() <= s["p99_us"].as_f64().unwrap());
    }
    // The start-up breakdown: every isolate is created and answers; the
    // phases fit inside the call, and OCI's `runc start` and `runc delete`
    // are steps of their own.
    for s in stats {
        let us = |field: &str| s[field].as_f64().unwrap();
        assert!(us("create_us") > 0.0, "{s}");
        assert!(us("first_byte_us") >= us("create_us"), "{s}");
        // Dropping a store and `runc delete` take measurable time; a
        // process's exit can be seen before its output's end is.
        if s["mode"] == "wasm" || s["mode"] == "oci" {
            assert!(us("teardown_us") > 0.0, "{s}");
        }
        assert!(
            us("create_us") + us("start_us") + us("run_us") + us("teardown_us")
                <= us("max_us") * 1.01,
            "the phases of a call add up to more than the slowest call: {s}"
        );
        if s["mode"] == "oci" {
            assert!(us("start_us") > 0.0, "{s}");
        } else {
            assert_eq!(us("start_us"), 0.0, "{s}");
        }
    }

    // The HTTP variant: `mayfly serve` and the CGI-style host for every
    // other mode, each path at one and at two connections, every answer
    // right.
    let http = report["http"].as_array().unwrap();
    assert_eq!(http.len(), stats.len(), "{report:#}");
    for h in http {
        assert_eq!(h["errors"], 0, "{h}");
        assert!(h["requests"].as_u64().unwrap() > 0, "{h}");
        let server = h["server"].as_str().unwrap();
        if h["mode"] == "wasm" {
            assert_eq!(server, "mayfly serve");
        } else {
            assert_eq!(server, format!("cgi {}", h["mode"].as_str().unwrap()));
        }
    }
    for path in ["/trivial", "/json/50"] {
        for connections in [1, 2] {
            assert!(
                http.iter()
                    .any(|h| h["path"] == path && h["connections"] == connections),
                "no {path} at {connections} connections"
            );
        }
    }

    // Progress is shown while it runs.
    assert!(stderr.contains("compare: wasm"), "{stderr}");
    assert!(stderr.contains("compare: http mayfly serve"), "{stderr}");

    let outcome = |mode: &str, check: &str| -> String {
        report["isolation"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mode"] == mode)
            .and_then(|m| {
                m["checks"]
                    .as_array()?
                    .iter()
                    .find(|c| c["check"] == check)
                    .map(|c| c["outcome"].as_str().unwrap_or_default().to_string())
            })
            .unwrap_or_else(|| panic!("no {check} for {mode} in {report:#}"))
    };
    // The Wasm probe was granted nothing and reached nothing.
    for check in [
        "read-host-file",
        "see-host-processes",
        "connect-loopback",
        "write-outside",
        "read-host-env",
        "exceed-memory",
    ] {
        assert_eq!(outcome("wasm", check), "denied", "wasm {check}");
    }
    assert_eq!(outcome("wasm", "spin-past-deadline"), "stopped");
    // The plain process is the baseline: it reaches what its user can.
    assert_eq!(outcome("process", "read-host-file"), "reached");
    assert_eq!(outcome("process", "read-host-env"), "reached");
    // The namespaces see no host processes, files, network or environment.
    for check in [
        "read-host-file",
        "see-host-processes",
        "connect-loopback",
        "write-outside",
        "read-host-env",
    ] {
        assert_eq!(outcome("namespaces", check), "denied", "namespaces {check}");
    }
    // Its memory is capped: by a cgroup where one is writable (the
    // allocation is killed), else by the address-space limit.
    assert_eq!(outcome("namespaces", "exceed-memory"), "denied");
    assert!(notes.contains("namespaces: memory limited by"), "{notes}");
    assert_eq!(outcome("namespaces", "spin-past-deadline"), "stopped");
    if oci {
        for check in [
            "read-host-file",
            "see-host-processes",
            "connect-loopback",
            "write-outside",
            "read-host-env",
            "exceed-memory",
        ] {
            assert_eq!(outcome("oci", check), "denied", "oci {check}");
        }
    } else {
        assert!(notes.contains("apt-get install runc"), "{notes}");
    }
    assert!(notes.contains("cgroup"), "{notes}");

    // The chart: one curve per mode and concurrency, per workload.
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg "), "{svg:.200}");
    assert_eq!(svg.matches("<polyline").count(), stats.len());
    assert!(svg.contains("workload: json 50"), "{svg:.500}");
}
