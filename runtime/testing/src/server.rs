//! `mayfly serve`, started for a test and killed when it is done.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::PATIENCE;
use crate::client::get;
use crate::process::{for_each_line, lock};

/// A binary under test. Cargo tells a test target where its package's
/// binaries are only at compile time (`env!("CARGO_BIN_EXE_NAME")`), so the
/// test target names it here.
pub trait Binary {
    /// The binary's path.
    const PATH: &'static str;
}

/// A running `mayfly serve` of binary `B`, killed on drop. If the test
/// failed, what the server printed is shown.
pub struct Server<B: Binary> {
    child: Child,
    /// The app's address.
    pub addr: SocketAddr,
    /// The admin API's address, when it is on.
    pub admin: Option<SocketAddr>,
    /// The health checks' own address (`--health-listen`), when it is on.
    pub health: Option<SocketAddr>,
    output: Arc<Mutex<String>>,
    _cache: tempfile::TempDir,
    _binary: PhantomData<fn() -> B>,
}

impl<B: Binary> Server<B> {
    /// `mayfly serve APP` on a free loopback port, with a private cache.
    pub fn start(app: &Path) -> Self {
        Self::start_with(&[app.as_os_str().to_str().unwrap()])
    }

    /// `mayfly serve ARGS...` on a free loopback port, with a private cache.
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(Command::new(B::PATH), "serve", args)
    }

    /// `mayfly dev ARGS...` (build, serve, watch) on a free loopback port,
    /// with a private cache; started once the first build is done.
    pub fn start_dev(args: &[&str]) -> Self {
        Self::launch(Command::new(B::PATH), "dev", args)
    }

    /// [`Server::start_with`], in a process started with `soft` and `hard`
    /// limits on open files.
    pub fn start_with_fd_limit(args: &[&str], soft: u32, hard: u32) -> Self {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(B::PATH);
        Self::launch(command, "serve", args)
    }

    /// The server's limit on open files now: (soft, hard).
    pub fn fd_limits(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).unwrap();
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        (numbers[0], numbers[1])
    }

    fn launch(mut command: Command, subcommand: &str, args: &[&str]) -> Self {
        let cache = tempfile::tempdir().unwrap();
        command
            .arg(subcommand)
            .args(args)
            .args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--cache-dir") {
            command.arg("--cache-dir").arg(cache.path());
        }
        if !args.contains(&"--data-dir") {
            command.arg("--data-dir").arg(cache.path().join("data"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mayfly");
        let output = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        let admin = Arc::new(Mutex::new(None));
        let admin_out = admin.clone();
        let health = Arc::new(Mutex::new(None));
        let health_out = health.clone();
        std::thread::spawn(move || {
            for_each_line(stdout, |line| {
                let line = line.trim_end_matches(['\n', '\r']);
                lock(&out).push_str(&format!("{line}\n"));
                let addr = |prefix: &str| {
                    line.strip_prefix(prefix)?
                        .split_once(" on http://")
                        .and_then(|(_, addr)| addr.parse::<SocketAddr>().ok())
                };
                if let Some(admin) = addr("Admin API") {
                    *lock(&admin_out) = Some(admin);
                }
                if let Some(health) = addr("Health checks") {
                    *lock(&health_out) = Some(health);
                }
                if let Some(addr) = addr("Serving app") {
                    let _ = addr_tx.send(addr);
                }
            });
        });
        // Whole lines only, so that a needle found by `wait_for_output` is
        // on a line that has been read to its end.
        let stderr = child.stderr.take().unwrap();
        let err = output.clone();
        std::thread::spawn(move || {
            for_each_line(stderr, |line| lock(&err).push_str(line));
        });
        let addr = match addr_rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let printed = lock(&output).clone();
                panic!("mayfly serve did not print its address; it printed:\n{printed}");
            }
        };
        let admin = *lock(&admin);
        let health = *lock(&health);
        Self {
            child,
            addr,
            admin,
            health,
            output,
            _cache: cache,
            _binary: PhantomData,
        }
    }

    /// Everything the server has printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Waits up to [`PATIENCE`] for `needle` to appear in the server's
    /// output, and returns the output.
    pub fn wait_for_output(&self, needle: &str) -> String {
        self.wait_for_output_times(needle, 1)
    }

    /// Waits up to [`PATIENCE`] for `needle` to appear `times` times in the
    /// server's output, and returns the output.
    pub fn wait_for_output_times(&self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let output = self.output();
            if output.matches(needle).count() >= times {
                return output;
            }
            assert!(
                Instant::now() < deadline,
                "the server never printed `{needle}` {times} times; it printed:\n{output:.4000}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the server to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The value of `sample` (a metric's name and labels, as the admin
    /// API's `/metrics` prints them).
    pub async fn metric(&self, sample: &str) -> f64 {
        let scrape = get(self.admin.expect("the admin API is off"), "/metrics")
            .await
            .text();
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample `{sample}` in:\n{scrape}"))
    }

    /// Waits up to [`PATIENCE`] until `sample` reads `value`.
    pub async fn wait_metric(&self, sample: &str, value: f64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.metric(sample).await;
            if now == value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} stayed at {now}, never {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// CPU time (user and system) the server's worker threads have used
    /// so far, from /proc, to the kernel's tick (usually 10 ms).
    pub fn workers_cpu(&self) -> Duration {
        let tick = 100; // USER_HZ, the unit of /proc's times on Linux.
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut ticks = 0;
        for task in std::fs::read_dir(tasks).unwrap() {
            let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
                continue; // (a thread that has just exited)
            };
            // `PID (COMM) STATE ...`: the fields after the name, from the
            // state on; utime and stime are the 14th and 15th of the line.
            let Some((name, rest)) = stat.split_once(") ") else {
                continue;
            };
            if !name.contains("(mayfly-worker") {
                continue;
            }
            let fields: Vec<u64> = rest
                .split_whitespace()
                .skip(11)
                .take(2)
                .map(|field| field.parse().unwrap())
                .collect();
            ticks += fields.iter().sum::<u64>();
        }
        Duration::from_millis(ticks * 1000 / tick)
    }

    /// Minor page faults the server has taken so far, all threads, from
    /// /proc (the 10th field of `/proc/PID/stat`).
    pub fn minor_faults(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // `PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS MINFLT ...`:
        // the name may hold spaces, so count from after it.
        let (_, rest) = stat.rsplit_once(") ").unwrap();
        rest.split_whitespace().nth(7).unwrap().parse().unwrap()
    }

    /// Starts the server's peak resident memory over from its current one
    /// (Linux's `clear_refs`, value 5).
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5").unwrap();
    }

    /// The server's resident memory, from /proc (kB): (current, peak).
    pub fn rss_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl<B: Binary> Drop for Server<B> {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- mayfly output ----\n{}", self.output());
        }
    }
}
