//! `mayfly compare`: every mode runs the same workload correctly, and the
//! isolation probe's outcomes are what each mode promises.

use std::process::Command;
use std::time::Duration;

use crate::guests;
use crate::harness::{MAYFLY, PATIENCE, run_bounded_for};

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

    // The cold start through containerd: a row per kind of task, or why
    // there is none (its own test looks closer).
    let cold = &report["cold_start"];
    match cold["skipped"].as_str() {
        Some(why) => assert!(notes.contains(why), "{notes}"),
        None => assert_eq!(cold["rows"].as_array().unwrap().len(), 3, "{cold:#}"),
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

/// A `mayfly compare` running in the background, with a directory of the
/// test's own for its temporary files (its `TMPDIR`), its report (stdout,
/// in a file there) and any path it is given, and its progress (stderr)
/// collected. Killed on drop; what it printed is shown if the test failed.
struct Running {
    child: std::process::Child,
    pid: u32,
    dir: tempfile::TempDir,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// Reads stderr until it closes.
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    /// `mayfly compare ARGS...`, its `TMPDIR` in a fresh directory, its
    /// latency chart (never written if it is stopped) named there too, so
    /// that its command line names the directory.
    /// `mayfly compare` in `modes`, one call of five records, no cold
    /// start, then `rest`.
    fn one_call(modes: &str, rest: &[&str]) -> Self {
        let mut args = vec![
            "--no-cold-start",
            "--modes",
            modes,
            "--calls",
            "1",
            "--concurrency",
            "1",
            "--records",
            "5",
        ];
        args.extend_from_slice(rest);
        Self::start(&args)
    }

    fn start(args: &[&str]) -> Self {
        use std::io::Read as _;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let report = std::fs::File::create(dir.path().join("report")).unwrap();
        let mut child = Command::new(MAYFLY)
            .arg("compare")
            .args(args)
            .arg("--svg")
            .arg(dir.path().join("latency.svg"))
            .env("TMPDIR", dir.path().join("tmp"))
            .stdin(std::process::Stdio::null())
            .stdout(report)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        // As it comes, not by lines: a progress line ends only when its
        // measurement does.
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                let mut text = sink.lock().unwrap_or_else(|p| p.into_inner());
                text.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Self {
            pid: child.id(),
            child,
            dir,
            stderr,
            reader,
        }
    }

    /// What it has printed on stderr so far.
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What it has printed on stdout so far.
    fn report(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("report")).unwrap()
    }

    /// Its `TMPDIR`.
    fn tmp(&self) -> std::path::PathBuf {
        self.dir.path().join("tmp")
    }

    /// Polls `found` until it gives a value, for up to `patience` (failing
    /// the test if that runs out); `None` if the command exits first.
    fn poll_for<T>(
        &mut self,
        what: &str,
        patience: Duration,
        mut found: impl FnMut(&Self) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(value) = found(self) {
                return Some(value);
            }
            if self.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} within {patience:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `found` until it gives a value, for up to `patience`; fails the
    /// test if that runs out or the command exits first.
    fn wait_for<T>(
        &mut self,
        what: &str,
        patience: Duration,
        found: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        self.poll_for(what, patience, found)
            .unwrap_or_else(|| panic!("mayfly compare exited before {what}"))
    }

    /// Waits for `text` on stderr.
    fn wait_for_text(&mut self, text: &str, patience: Duration) {
        self.wait_for(&format!("`{text}` on stderr"), patience, |run| {
            run.stderr().contains(text).then_some(())
        });
    }

    /// Waits for a whole line on stderr that starts with `prefix`, and
    /// returns the rest of it.
    fn wait_for_line(&mut self, prefix: &str, patience: Duration) -> String {
        self.wait_for(
            &format!("a line `{prefix}...` on stderr"),
            patience,
            |run| {
                run.stderr()
                    .split_inclusive('\n')
                    .filter_map(|line| line.strip_suffix('\n'))
                    .find_map(|line| line.strip_prefix(prefix).map(str::to_string))
            },
        )
    }

    /// Sends it `signal` (a name `kill` knows).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.pid);
    }

    /// Waits for it to exit.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.wait_exit_within(PATIENCE)
    }

    /// Waits for it to exit, for up to `patience`.
    fn wait_exit_within(&mut self, patience: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it printed last, unless a child of its still holds
                // its stderr.
                let read_by = std::time::Instant::now() + Duration::from_secs(5);
                while !self.reader.is_finished() && std::time::Instant::now() < read_by {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mayfly compare did not exit within {patience:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its live processes: any (but this test's own) whose command line
    /// names its directory or one of its containers, or that is in one of
    /// its cgroups (which holds the sandboxed workloads).
    fn processes(&self) -> Vec<String> {
        let me = std::process::id();
        let dir = self.dir.path().display().to_string();
        let container = format!("mayfly-{}-", self.pid);
        let cgroups = [
            format!("/mayfly-{}-", self.pid),
            format!("/mayfly-compare-{}", self.pid),
            format!("/mayfly-cold-{}/", self.pid),
        ];
        let mut found = Vec::new();
        for (pid, process) in live_processes() {
            if pid == me {
                continue;
            }
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if process.cmdline.contains(&dir)
                || process.cmdline.contains(&container)
                || cgroups.iter().any(|c| cgroup.contains(c.as_str()))
            {
                found.push(format!("{pid} ({}): {}", process.state, process.cmdline));
            }
        }
        found
    }

    /// Its cgroup directories, in any hierarchy: the namespaces runner's
    /// (`mayfly-compare-PID`), its containers' (`mayfly-PID-N`), and its
    /// containerd namespace's (`mayfly-cold-PID`, with its tasks'
    /// `mayfly-PID-cold-N`).
    fn cgroups(&self) -> Vec<std::path::PathBuf> {
        let container = format!("mayfly-{}-", self.pid);
        let ours = format!("mayfly-compare-{}", self.pid);
        let namespace = format!("mayfly-cold-{}", self.pid);
        let mut found = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&container) || name == ours || name == namespace {
                    found.push(entry.path());
                }
                dirs.push(entry.path());
            }
        }
        found
    }

    /// Asserts that, soon after it exited, nothing it started is left: no
    /// process, no container in `runc_root`, no cgroup, no temporary file.
    fn assert_nothing_left(&self, runc_root: Option<&std::path::Path>) {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let processes = self.processes();
            // (`runc list` would make its root again.)
            let containers = runc_root
                .filter(|root| root.exists())
                .map(runc_list)
                .unwrap_or_default();
            let cgroups = self.cgroups();
            let files: Vec<_> = std::fs::read_dir(self.tmp())
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            if processes.is_empty()
                && containers.is_empty()
                && cgroups.is_empty()
                && files.is_empty()
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mayfly compare left behind processes {processes:#?}, containers {containers:?}, \
                 cgroups {cgroups:#?} and files {files:#?}; it printed:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- mayfly compare stderr ----\n{}", self.stderr());
        }
        // Killed, it could not remove its cgroups: remove what is left,
        // children first, once their processes are gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !self.cgroups().is_empty() && std::time::Instant::now() < deadline {
            self.cgroups().iter().for_each(remove_cgroup_tree);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Removes the cgroup `dir` and those under it, deepest first (each only
/// once its processes are gone).
fn remove_cgroup_tree(dir: &std::path::PathBuf) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A process as /proc shows it.
struct Process {
    /// R, S, D, T...; never Z (a zombie has ended).
    state: char,
    ppid: u32,
    /// Its arguments, joined by spaces.
    cmdline: String,
}

/// Every process that has not ended, by pid.
fn live_processes() -> Vec<(u32, Process)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Some(process) = process(pid) else {
            continue;
        };
        found.push((pid, process));
    }
    found
}

/// Process `pid`, unless it is gone or a zombie.
fn process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold anything, parentheses too: fields follow
    // the last `)`.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    if matches!(state, 'Z' | 'X' | 'x') {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline)
        .trim_end_matches('\0')
        .replace('\0', " ");
    Some(Process {
        state,
        ppid,
        cmdline,
    })
}

/// Whether the `oci` mode runs here: `runc` on PATH and root (as the
/// command itself decides).
fn runc_usable() -> bool {
    nix::unistd::geteuid().is_root()
        && Command::new("runc")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// The containers `runc --root ROOT list` shows.
fn runc_list(root: &std::path::Path) -> Vec<String> {
    let output = Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(["list", "--quiet"])
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "runc list: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The state directory the `oci` mode gives runc, once it exists.
fn runc_root(run: &Running) -> Option<std::path::PathBuf> {
    std::fs::read_dir(run.tmp())
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("runc"))
        .find(|root| root.is_dir())
}

#[test]
fn sigterm_mid_run_kills_and_deletes_everything_it_started() {
    let oci = runc_usable();
    // Enough calls that it is still at it when stopped.
    let modes = if oci { "oci,namespaces" } else { "namespaces" };
    let mut run = Running::start(&[
        "--modes",
        modes,
        "--calls",
        "1000000",
        "--no-http",
        "--no-cold-start",
    ]);
    let root = if oci {
        // Stopped while a container of its own exists.
        let root = run.wait_for("a container in its runc root", PATIENCE, |run| {
            runc_root(run).filter(|root| !runc_list(root).is_empty())
        });
        // Containers have cgroups of their own.
        assert!(!run.cgroups().is_empty(), "{}", run.stderr());
        Some(root)
    } else {
        run.wait_for_text("compare: namespaces", PATIENCE);
        None
    };
    // The workloads and root file systems it made are there.
    assert!(std::fs::read_dir(run.tmp()).unwrap().count() >= 2);
    run.signal("TERM");
    let status = run.wait_exit();
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("compare: stopped by SIGTERM; cleaning up"),
        "{stderr}"
    );
    run.assert_nothing_left(root.as_deref());
}

#[test]
fn sigint_during_a_namespaces_call_kills_it_and_removes_its_cgroup() {
    let mut run = Running::start(&[
        "--modes",
        "namespaces",
        "--calls",
        "1000000",
        "--no-http",
        "--no-cold-start",
    ]);
    run.wait_for_text("compare: namespaces", PATIENCE);
    // Stopped while a call runs: its cgroup exists (call-0 was the trial),
    // where this machine lets it make cgroups.
    let call_cgroup = |run: &Running| {
        run.cgroups().into_iter().find_map(|parent| {
            std::fs::read_dir(parent)
                .ok()?
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .find(|name| name.starts_with("call-") && name != "call-0")
        })
    };
    if !run.cgroups().is_empty() {
        run.wait_for("a call's cgroup", PATIENCE, call_cgroup);
    }
    run.signal("INT");
    let status = run.wait_exit();
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("compare: stopped by SIGINT; cleaning up"),
        "{stderr}"
    );
    run.assert_nothing_left(None);
}

#[test]
fn sigint_during_the_http_variant_stops_mayfly_serve_too() {
    let mut run = Running::one_call("wasm", &["--http-duration", "10m"]);
    run.wait_for_line("compare: http mayfly serve on http://", COMPARE_PATIENCE);
    let serving = run
        .processes()
        .into_iter()
        .any(|process| process.contains(" serve "));
    assert!(serving, "no `mayfly serve` among {:#?}", run.processes());
    run.signal("INT");
    let status = run.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    run.assert_nothing_left(None);
}

#[test]
fn a_killed_harness_takes_the_namespaces_sandbox_with_it() {
    // The probe's `spin` call runs until the 1 s deadline; caught then, the
    // harness is frozen so that it cannot end the call itself, checked to
    // be still running, and killed. A spin that ends before the freeze is
    // tried again.
    for _attempt in 0..5 {
        let mut run = Running::one_call("namespaces", &["--no-http"]);
        let harness = run.pid;
        // The process it forked (which made the namespaces) and, inside
        // them, the workload.
        let spinning = run.poll_for("the sandboxed `spin`", COMPARE_PATIENCE, |_| {
            let processes = live_processes();
            processes.iter().find_map(|(pid, process)| {
                let outer = process.ppid;
                let forked_by_harness = processes
                    .iter()
                    .any(|(p, parent)| *p == outer && parent.ppid == harness);
                (process.cmdline == "/workload spin" && forked_by_harness).then_some((outer, *pid))
            })
        });
        // Missed: it ended, and the harness with it.
        let Some((outer, workload)) = spinning else {
            continue;
        };
        run.signal("STOP");
        // Frozen: only its death can end the workload now.
        if process(workload).is_none() {
            continue;
        }
        run.signal("KILL");
        run.wait_exit();
        let deadline = std::time::Instant::now() + PATIENCE;
        while process(outer).is_some() || process(workload).is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sandbox outlived the harness by {PATIENCE:?}: {:?} {:?}",
                process(outer).map(|p| p.cmdline),
                process(workload).map(|p| p.cmdline),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Nothing of it runs. (Its cgroups are left, with nobody to
        // remove them but the test.)
        assert_eq!(run.processes(), Vec::<String>::new());
        return;
    }
    panic!("the `spin` call always ended before the harness could be frozen");
}

#[tokio::test]
async fn the_cgi_host_refuses_requests_without_its_token() {
    let mut run = Running::one_call("process", &["--http-duration", "10m"]);
    let addr: std::net::SocketAddr = run
        .wait_for_line("compare: http cgi process on http://", COMPARE_PATIENCE)
        .trim()
        .parse()
        .unwrap();
    // Without a token, or with a wrong one: refused (that nothing runs
    // then is checked in mayfly-compare's own tests).
    let reply = crate::harness::get(addr, "/trivial").await;
    assert_eq!(
        reply.status,
        http::StatusCode::FORBIDDEN,
        "{}",
        reply.text()
    );
    assert!(reply.text().contains("serves only"), "{}", reply.text());
    for token in ["Bearer ", "Bearer 00000000000000000000000000000000", "x"] {
        let request = http::Request::get("/json/5")
            .header(http::header::AUTHORIZATION, token)
            .body(crate::harness::full(""))
            .unwrap();
        let reply = crate::harness::Client::connect(addr)
            .await
            .send(request)
            .await
            .unwrap();
        assert_eq!(
            reply.status,
            http::StatusCode::FORBIDDEN,
            "{token}: {}",
            reply.text()
        );
    }
    // Its own load, which has the token, is being served meanwhile (the
    // first test checks every answer); stopped, it leaves nothing.
    run.signal("TERM");
    let status = run.wait_exit();
    assert_eq!(status.code(), Some(143), "{}", run.stderr());
    run.assert_nothing_left(None);
}

/// Whether containerd must be there (`MAYFLY_REQUIRE_CONTAINERD=1`, as in
/// CI), so that a cold start skipped for want of it fails the test.
fn containerd_required() -> bool {
    std::env::var("MAYFLY_REQUIRE_CONTAINERD").is_ok_and(|v| v == "1")
}

/// Passes a test whose cold start was skipped for `why`, saying so; fails
/// it where containerd is required.
fn skip_cold_start(why: &str) {
    assert!(
        !containerd_required(),
        "MAYFLY_REQUIRE_CONTAINERD=1, but the cold start was skipped: {why}"
    );
    eprintln!("skipped: {why} (set MAYFLY_REQUIRE_CONTAINERD=1 to require it)");
}

#[test]
fn the_cold_start_times_a_mayfly_task_and_a_runc_container_through_containerd() {
    let mut run = Running::start(&["--cold-start-only", "--cold-start-runs", "2", "--json"]);
    let status = run.wait_exit_within(COMPARE_PATIENCE);
    let stderr = run.stderr();
    assert!(status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&run.report()).unwrap();
    // Only the cold start ran.
    for part in ["stats", "http", "isolation"] {
        assert_eq!(report[part], serde_json::json!([]), "{part}: {report:#}");
    }
    let cold = &report["cold_start"];
    if let Some(why) = cold["skipped"].as_str() {
        assert!(
            report["notes"]
                .to_string()
                .contains(&format!("cold start: skipped: {why}")),
            "{report:#}"
        );
        skip_cold_start(why);
        return;
    }
    assert_eq!(cold["runs"], 2, "{cold:#}");
    assert_eq!(cold["path"], "/trivial", "{cold:#}");
    let rows = cold["rows"].as_array().unwrap();
    let tasks: Vec<&str> = rows.iter().map(|r| r["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, ["mayfly", "mayfly cached", "runc"], "{cold:#}");
    let runtimes: Vec<&str> = rows
        .iter()
        .map(|r| r["runtime"].as_str().unwrap())
        .collect();
    assert_eq!(
        runtimes,
        [
            "io.containerd.mayfly.v1",
            "io.containerd.mayfly.v1",
            "io.containerd.runc.v2"
        ]
    );
    for row in rows {
        let ms = |field: &str| {
            row[field]
                .as_f64()
                .unwrap_or_else(|| panic!("no {field}: {row}"))
        };
        let runs: Vec<f64> = row["runs_ms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ms| ms.as_f64().unwrap())
            .collect();
        assert_eq!(runs.len(), 2, "{row}");
        assert!(runs.iter().all(|ms| *ms > 0.0), "{row}");
        assert!(ms("min_ms") > 0.0, "{row}");
        assert!(ms("min_ms") <= ms("median_ms"), "{row}");
        assert!(ms("median_ms") <= ms("max_ms"), "{row}");
        assert!(
            (ms("median_ms") - (runs[0] + runs[1]) / 2.0).abs() < 1e-6,
            "the median of two runs is their mean: {row}"
        );
        // Longer than a process start, shorter than the patience per run.
        assert!(ms("min_ms") > 1.0 && ms("max_ms") < 120_000.0, "{row}");
        assert!(row["image_bytes"].as_u64().unwrap() > 0, "{row}");
        assert!(!row["serves"].as_str().unwrap().is_empty(), "{row}");
    }
    // Progress: an untimed run of each, then the timed ones, alternating.
    for task in tasks {
        assert!(stderr.contains(&format!("{task:<14} untimed")), "{stderr}");
        assert!(stderr.contains(&format!("{task:<14} run 2/2")), "{stderr}");
    }
    // Its containerd, tasks, shims, mounts and files are gone.
    run.assert_nothing_left(None);

    // The text table has the row too (one timed run of each this time).
    let mut text = Running::start(&["--cold-start-only", "--cold-start-runs", "1"]);
    let status = text.wait_exit_within(COMPARE_PATIENCE);
    assert!(status.success(), "{}", text.stderr());
    let table = text.report();
    assert!(
        table.contains("Cold start through containerd: `ctr run` to the first 200 of GET /trivial"),
        "{table}"
    );
    for line in [
        "mayfly         io.containerd.mayfly.v1",
        "runc           io.containerd.runc.v2",
    ] {
        assert!(table.contains(line), "{table}");
    }
    text.assert_nothing_left(None);
}

#[test]
fn the_cold_start_is_skipped_with_its_reason_when_the_shim_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("no-such-shim");
    let shim = shim.to_str().unwrap();
    let reason = format!("no shim at {shim} (--shim)");
    let mut json = Running::start(&["--cold-start-only", "--shim", shim, "--json"]);
    let status = json.wait_exit_within(PATIENCE);
    assert!(
        status.success(),
        "a skip is not an error: {}",
        json.stderr()
    );
    let report: serde_json::Value = serde_json::from_str(&json.report()).unwrap();
    let cold = &report["cold_start"];
    assert_eq!(cold["skipped"], reason.as_str(), "{report:#}");
    assert_eq!(cold["rows"], serde_json::json!([]), "{report:#}");
    assert_eq!(
        report["notes"],
        serde_json::json!([format!("cold start: skipped: {reason}")]),
        "{report:#}"
    );
    assert!(
        json.stderr()
            .contains(&format!("compare: cold start: skipped: {reason}")),
        "{}",
        json.stderr()
    );
    json.assert_nothing_left(None);

    // In the text report: the note, and no table.
    let mut text = Running::start(&["--cold-start-only", "--shim", shim]);
    assert!(
        text.wait_exit_within(PATIENCE).success(),
        "{}",
        text.stderr()
    );
    let table = text.report();
    assert!(
        table.contains(&format!("note: cold start: skipped: {reason}")),
        "{table}"
    );
    assert!(!table.contains("Cold start through containerd"), "{table}");

    // Turned off, it is not even looked for (and cannot be the only part).
    let mut both = Running::start(&["--cold-start-only", "--no-cold-start", "--json"]);
    assert_eq!(
        both.wait_exit_within(PATIENCE).code(),
        Some(2),
        "{}",
        both.stderr()
    );
    assert!(
        both.stderr().contains("cannot be used with"),
        "{}",
        both.stderr()
    );
    let mut off = Running::one_call("process", &["--no-http", "--json"]);
    assert!(
        off.wait_exit_within(COMPARE_PATIENCE).success(),
        "{}",
        off.stderr()
    );
    let report: serde_json::Value = serde_json::from_str(&off.report()).unwrap();
    assert_eq!(report["cold_start"], serde_json::Value::Null, "{report:#}");
    assert!(!off.stderr().contains("cold start"), "{}", off.stderr());
}

#[test]
fn sigterm_during_the_cold_start_stops_its_containerd_and_tasks() {
    let mut run = Running::start(&["--cold-start-only", "--cold-start-runs", "1000"]);
    let started = run.wait_for(
        "the cold start's first run, or its skip",
        COMPARE_PATIENCE,
        |run| {
            let stderr = run.stderr();
            if let Some(at) = stderr.find("compare: cold start: skipped: ") {
                let why = stderr[at..].lines().next().unwrap_or_default().to_string();
                return Some(Err(why));
            }
            stderr.contains(" run 1/1000 ").then_some(Ok(()))
        },
    );
    if let Err(why) = started {
        skip_cold_start(&why);
        return;
    }
    // Stopped while its containerd runs a task: the task's shim is there.
    let processes = run.wait_for("a shim of its containerd", PATIENCE, |run| {
        let processes = run.processes();
        processes
            .iter()
            .any(|process| process.contains("containerd-shim"))
            .then_some(processes)
    });
    assert!(
        processes.iter().any(|p| p.contains("containerd --config")),
        "no containerd among {processes:#?}"
    );
    run.signal("TERM");
    let status = run.wait_exit();
    let stderr = run.stderr();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped 1 containerds"), "{stderr}");
    run.assert_nothing_left(None);
}
