//! A fresh set of Linux namespaces per call, in a read-only root file
//! system holding only the workload.
//!
//! Two processes per call, each with a parent-death signal: the one this
//! process forks (which makes the namespaces and waits), and the workload,
//! PID 1 of the new PID namespace, which it forks. Killing this process,
//! even with SIGKILL, kills the first, which kills the workload, whose end
//! kills whatever else runs in its PID namespace.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::cgroups::MemoryCgroups;
use super::process::run_child;
use super::runner::{Call, Runner};
use crate::child::parent_death_signal;
use crate::cleanup::{Registered, making};

/// A fresh set of Linux namespaces per call (user, pid, mount, network,
/// ipc, uts), a read-only root file system holding only the executable
/// (entered with `pivot_root`), an empty environment, and an address-space
/// limit; then exec.
pub struct NamespacesRunner {
    rootfs: tempfile::TempDir,
    memory: u64,
    uid_map: CString,
    gid_map: CString,
    /// A memory cgroup per call, where this machine lets us make one;
    /// otherwise the address-space limit is all there is.
    cgroups: Option<MemoryCgroups>,
    /// Removes the root file system if the command is stopped.
    _rootfs_registered: Registered,
}

impl NamespacesRunner {
    /// Prepares a root file system with `binary` as `/workload`.
    pub fn new(binary: &Path, memory: u64) -> anyhow::Result<Self> {
        let making = making()?;
        let rootfs = tempfile::Builder::new()
            .prefix("mayfly-rootfs-")
            .tempdir()?;
        let rootfs_registered = making.dir(rootfs.path());
        std::fs::copy(binary, rootfs.path().join("workload"))
            .context("cannot copy the workload into the root file system")?;
        std::fs::create_dir(rootfs.path().join("old-root"))?;
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        Ok(Self {
            rootfs,
            memory,
            uid_map: CString::new(format!("0 {uid} 1\n"))?,
            gid_map: CString::new(format!("0 {gid} 1\n"))?,
            cgroups: MemoryCgroups::create(&making),
            _rootfs_registered: rootfs_registered,
        })
    }

    /// How memory is limited: a cgroup per call, or the address space.
    pub fn memory_limit(&self) -> String {
        match &self.cgroups {
            Some(cgroups) => cgroups.describe(),
            None => "RLIMIT_AS (address space, not resident memory): no memory cgroup is \
                     writable here"
                .into(),
        }
    }

    /// Whether this machine lets us create namespaces.
    pub fn available() -> bool {
        Command::new("/bin/true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .pre_exec_unshare()
            .status()
            .is_ok_and(|status| status.success())
    }
}

trait PreExecUnshare {
    fn pre_exec_unshare(&mut self) -> &mut Self;
}

impl PreExecUnshare for Command {
    fn pre_exec_unshare(&mut self) -> &mut Self {
        // SAFETY: only async-signal-safe system calls run in the child.
        unsafe {
            self.pre_exec(|| {
                use nix::sched::{CloneFlags, unshare};
                unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)
            })
        }
    }
}

fn write_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> nix::Result<()> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fd = open(path, OFlag::O_WRONLY, Mode::empty())?;
    let written = nix::unistd::write(&fd, text.to_bytes());
    written.map(|_| ())
}

impl Runner for NamespacesRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        use nix::fcntl::OFlag;
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        use nix::sched::{CloneFlags, unshare};
        use nix::sys::resource::{Resource, setrlimit};
        use nix::sys::signal::{SigHandler, Signal, signal};
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, chdir, fork, getpid, pipe2, pivot_root, read};

        let root = CString::new(self.rootfs.path().as_os_str().as_encoded_bytes())?;
        let old = CString::new(
            self.rootfs
                .path()
                .join("old-root")
                .as_os_str()
                .as_encoded_bytes(),
        )?;
        let uid_map = self.uid_map.clone();
        let gid_map = self.gid_map.clone();
        let memory = self.memory;
        let parent = getpid();
        let making = making()?;
        let cgroup = match &self.cgroups {
            Some(cgroups) => Some(cgroups.fresh(memory, &making)?),
            None => None,
        };
        let join = cgroup.as_ref().map(|cgroup| cgroup.procs.clone());
        let mut command = Command::new("/workload");
        command.args(args).env_clear();
        // SAFETY: between fork and exec the child makes only system calls;
        // every string it needs was allocated before the fork.
        unsafe {
            command.pre_exec(move || {
                let io = std::io::Error::from;
                // Into the call's memory cgroup first, while this process
                // still has the host's privileges over the cgroup files.
                if let Some(procs) = &join {
                    write_file(procs, c"0").map_err(io)?;
                }
                unshare(
                    CloneFlags::CLONE_NEWUSER
                        | CloneFlags::CLONE_NEWPID
                        | CloneFlags::CLONE_NEWNS
                        | CloneFlags::CLONE_NEWNET
                        | CloneFlags::CLONE_NEWIPC
                        | CloneFlags::CLONE_NEWUTS,
                )
                .map_err(io)?;
                write_file(c"/proc/self/setgroups", c"deny").map_err(io)?;
                write_file(c"/proc/self/uid_map", &uid_map).map_err(io)?;
                write_file(c"/proc/self/gid_map", &gid_map).map_err(io)?;
                // This process never execs, so it still has the harness's
                // signal handlers: SIGINT and SIGTERM end it, as they would
                // any child.
                signal(Signal::SIGINT, SigHandler::SigDfl).map_err(io)?;
                signal(Signal::SIGTERM, SigHandler::SigDfl).map_err(io)?;
                // Dies with the harness (with the thread that forked it,
                // which waits for it), after the credentials changed above.
                parent_death_signal(parent)?;
                // The workload learns through this pipe whether this
                // process still lives: it cannot see its parent's pid from
                // inside the new PID namespace.
                let (alive, alive_writer) =
                    pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(io)?;
                // The new PID namespace takes effect for children: fork, so
                // that the workload is its PID 1, and pass its status on.
                match fork().map_err(io)? {
                    // Dies with its parent, which is what the harness
                    // kills at the deadline (and when it is stopped).
                    ForkResult::Child => {
                        drop(alive_writer);
                        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io)?;
                        // No writer left: the parent ended before the
                        // signal was asked for, and will never send it.
                        let mut byte = [0u8];
                        if read(&alive, &mut byte) == Ok(0) {
                            return Err(nix::errno::Errno::ESRCH.into());
                        }
                        drop(alive);
                    }
                    ForkResult::Parent { child } => {
                        // Close the pipe through which std learns that the
                        // exec happened: the workload's exec will tell it.
                        // The other pipe stays open until this process ends.
                        use std::os::fd::AsRawFd as _;
                        let keep = alive_writer.as_raw_fd();
                        for fd in (3..1024).filter(|fd| *fd != keep) {
                            let _ = nix::unistd::close(fd);
                        }
                        let code = match waitpid(child, None) {
                            Ok(WaitStatus::Exited(_, code)) => code,
                            // `Signal` is a `repr(i32)` enum of signal numbers.
                            #[allow(clippy::as_conversions)]
                            Ok(WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
                            _ => 125,
                        };
                        nix::libc::_exit(code);
                    }
                }
                mount(
                    None::<&str>,
                    c"/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(io)?;
                mount(
                    Some(root.as_c_str()),
                    root.as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(io)?;
                pivot_root(root.as_c_str(), old.as_c_str()).map_err(io)?;
                chdir(c"/").map_err(io)?;
                umount2(c"/old-root", MntFlags::MNT_DETACH).map_err(io)?;
                mount(
                    None::<&str>,
                    c"/",
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(io)?;
                if join.is_none() {
                    setrlimit(Resource::RLIMIT_AS, memory, memory).map_err(io)?;
                }
                Ok(())
            });
        }
        let call = run_child(command, deadline, making);
        // Removes the call's cgroup.
        drop(cgroup);
        call
    }
}

/// Fails with how to get namespaces if this machine does not allow them.
pub fn require_namespaces() -> anyhow::Result<()> {
    if !NamespacesRunner::available() {
        bail!(
            "this machine does not let an unprivileged process create user namespaces \
             (check kernel.unprivileged_userns_clone and user.max_user_namespaces)"
        );
    }
    Ok(())
}
