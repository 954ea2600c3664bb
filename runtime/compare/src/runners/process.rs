//! A plain fork/exec per call: the baseline; and the call of a native
//! child, from spawn to reaped, that the namespaces runner makes too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::runner::{Call, Runner};
use crate::child::{OutputReader, ended, tree_rss_kib};
use crate::cleanup::{Making, making};

/// A plain fork/exec of the native executable: the baseline, with no
/// isolation at all (and no parent-death signal, which would make std fork
/// where it now spawns: the child is killed when the command is stopped,
/// not when it is killed with SIGKILL).
pub struct ProcessRunner {
    binary: PathBuf,
}

impl ProcessRunner {
    /// Runs `binary`.
    pub fn new(binary: &Path) -> Self {
        Self {
            binary: binary.to_path_buf(),
        }
    }
}

impl Runner for ProcessRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        let mut command = Command::new(&self.binary);
        command.args(args);
        run_child(command, deadline, making()?)
    }
}

/// Runs a native executable as a child process and waits for it, killing
/// it at the deadline. The child is registered for cleaning up under
/// `making`, which is let go once it is.
pub(crate) fn run_child(
    mut command: Command,
    deadline: Duration,
    making: Making,
) -> anyhow::Result<Call> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the workload")?;
    let registered = making.process(child.id());
    drop(making);
    // `spawn` returns once the child has exec'd (or failed to).
    let create = started.elapsed();
    let stderr = OutputReader::start(child.stderr.take().context("no stderr pipe")?);
    let stdout = OutputReader::start(child.stdout.take().context("no stdout pipe")?);
    let pid = Pid::from_raw(i32::try_from(child.id())?);
    let mut killed = false;
    let mut rss_kib = 0;
    let status = loop {
        rss_kib = rss_kib.max(tree_rss_kib(child.id()));
        // Seen to have ended, but not reaped: its pid stays ours until it
        // is forgotten by the cleanup registry.
        let ended = waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        )?;
        if ended != WaitStatus::StillAlive {
            registered.forget();
            break child.wait()?;
        }
        if started.elapsed() >= deadline {
            let _ = child.kill();
            killed = true;
            registered.forget();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_micros(50));
    };
    let reaped = Instant::now();
    let (stdout, first, closed) = stdout.finish();
    let (complaints, ..) = stderr.finish();
    // The output closes when the workload exits; from there to the reaped
    // process is its teardown (for namespaces: releasing them).
    let closed = closed.min(reaped);
    Ok(Call {
        stdout,
        ended: ended(killed, status, &complaints),
        create,
        start: Duration::ZERO,
        first_byte: first.map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
        run: closed.saturating_duration_since(started + create),
        teardown: reaped - closed,
        rss_kib,
    })
}
