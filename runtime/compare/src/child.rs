//! A native child process, whoever starts it (a runner, the cleanup
//! registry, containerd, `mayfly serve`): its output read to the end on
//! threads of its own, its memory sampled, a deadline kept, and a
//! parent-death signal for the children that must not outlive this
//! process.
//!
//! It imports nothing else of this crate, so that everything above can use
//! it, [`cleanup`](crate::cleanup) included.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

/// Reads a child's output to its end on a thread of its own, noting when
/// the first byte came and when the output closed.
pub(crate) struct OutputReader(std::thread::JoinHandle<(String, Option<Instant>, Instant)>);

impl OutputReader {
    pub(crate) fn start(mut pipe: impl std::io::Read + Send + 'static) -> Self {
        Self(std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut first = None;
            let mut buffer = [0u8; 8192];
            loop {
                match pipe.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        first.get_or_insert_with(Instant::now);
                        // The workload prints a line or a few; keep 1 MiB.
                        if bytes.len() < 1 << 20 {
                            bytes.extend_from_slice(&buffer[..n]);
                        }
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                first,
                Instant::now(),
            )
        }))
    }

    /// The text, when the first byte came, and when the output closed.
    pub(crate) fn finish(self) -> (String, Option<Instant>, Instant) {
        self.0
            .join()
            .unwrap_or_else(|_| (String::new(), None, Instant::now()))
    }
}

/// The first line of what a child said on stderr, shortened.
pub(crate) fn first_complaint(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// How a child process ended, in the words the reports use.
pub(crate) fn ended(killed: bool, status: std::process::ExitStatus, complaints: &str) -> String {
    let said = first_complaint(complaints);
    if killed {
        "killed at the deadline".to_string()
    } else if status.success() {
        "ok".to_string()
    } else {
        match status.code() {
            Some(code) => format!("exit {code}: {said}"),
            None => format!("signal ({status}): {said}"),
        }
    }
}

/// Has `command`'s process killed (SIGKILL) when the thread that starts it
/// ends, so that it cannot outlive this process, even one killed with
/// SIGKILL. That thread must outlive the child (as one that waits for it
/// does).
pub(crate) fn die_with_parent(command: &mut Command) -> &mut Command {
    let parent = nix::unistd::getpid();
    // SAFETY: only system calls run in the child, nothing that allocates.
    unsafe { command.pre_exec(move || parent_death_signal(parent)) }
}

/// In a child between fork and exec: asks for SIGKILL when its parent
/// ends, and fails if `parent` has ended already (the child was handed to
/// another process before it asked).
pub(crate) fn parent_death_signal(parent: Pid) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Err(nix::errno::Errno::ESRCH.into());
    }
    Ok(())
}

/// Resident memory of process `pid` and its children, in KiB (0 if gone).
pub(crate) fn tree_rss_kib(pid: u32) -> u64 {
    let rss = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    rss(&pid.to_string()) + children.split_whitespace().map(rss).sum::<u64>()
}

/// Runs `command` to its end, or kills it after `limit`: its exit status,
/// `None` if it was killed.
pub(crate) fn finish_within(
    command: &mut Command,
    limit: Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}
