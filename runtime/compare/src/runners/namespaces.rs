//! A fresh set of Linux namespaces per call, in a read-only root file
//! system holding only the workload.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::cgroups::MemoryCgroups;
use super::child::run_child;
use super::runner::{Call, Runner};

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
}

impl NamespacesRunner {
    /// Prepares a root file system with `binary` as `/workload`.
    pub fn new(binary: &Path, memory: u64) -> anyhow::Result<Self> {
        let rootfs = tempfile::Builder::new()
            .prefix("mayfly-rootfs-")
            .tempdir()?;
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
            cgroups: MemoryCgroups::create(),
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
        use nix::mount::{MntFlags, MsFlags, mount, umount2};
        use nix::sched::{CloneFlags, unshare};
        use nix::sys::resource::{Resource, setrlimit};
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, chdir, fork, pivot_root};

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
        let cgroup = match &self.cgroups {
            Some(cgroups) => Some(cgroups.fresh(memory)?),
            None => None,
        };
        let join = cgroup.as_ref().map(|(_, procs)| procs.clone());
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
                // The new PID namespace takes effect for children: fork, so
                // that the workload is its PID 1, and pass its status on.
                match fork().map_err(io)? {
                    // Dies with its parent, which is what the harness
                    // kills at the deadline.
                    ForkResult::Child => {
                        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                            .map_err(io)?;
                    }
                    ForkResult::Parent { child } => {
                        // Close the pipe through which std learns that the
                        // exec happened: the workload's exec will tell it.
                        for fd in 3..1024 {
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
        let call = run_child(command, deadline);
        if let Some((dir, _)) = &cgroup {
            MemoryCgroups::remove(dir);
        }
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
