//! The ways `mayfly compare` runs the workload, each starting a fresh
//! isolate for every call.

use std::ffi::CString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mayfly_host_api::state::ComponentState;
use wasmtime::component::Component;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::engine::EngineSettings;
use crate::guest_log::GuestLog;
use crate::host::{self, Host};
use crate::limits::{EpochTicker, RequestLimits};
use crate::manifest::Grants;

/// What one call did, with its start-up breakdown. The phases follow one
/// another: `create`, `start`, `run`, `teardown`; `first_byte` counts from
/// the call's beginning.
#[derive(Debug, Clone, Default)]
pub struct Call {
    /// Its standard output.
    pub stdout: String,
    /// How it ended: `ok`, `exit N`, `trap: ...`, `deadline`, `killed`.
    pub ended: String,
    /// Creating the isolate: instantiating; fork and exec (with the
    /// namespaces set up); `runc create`.
    pub create: Duration,
    /// Starting the created isolate, where that is a step of its own
    /// (`runc start`); zero otherwise.
    pub start: Duration,
    /// From the call's beginning to the first byte of output (zero if it
    /// printed nothing).
    pub first_byte: Duration,
    /// From started to the workload's end (its output closed).
    pub run: Duration,
    /// From the workload's end until the isolate is gone: the store
    /// dropped, the process reaped, the container deleted.
    pub teardown: Duration,
    /// The largest resident memory seen while it ran, in KiB, when it runs
    /// as a process (sampled from /proc; 0 if it ended before a sample).
    pub rss_kib: u64,
}

/// A way to run the workload.
pub trait Runner: Send + Sync {
    /// Runs the workload once with `args`, in a fresh isolate, stopping it
    /// at `deadline`.
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call>;
}

/// A fresh Mayfly instance per call, in process, from the pre-instantiated
/// component; no grants, `memory` of linear memory.
pub struct WasmRunner {
    engine: Engine,
    pre: CommandPre<Host>,
    limits: RequestLimits,
    state: Arc<ComponentState>,
    _ticker: EpochTicker,
}

impl WasmRunner {
    /// Loads the component at `path`.
    pub fn new(path: &Path, memory: usize) -> anyhow::Result<Self> {
        let engine = EngineSettings::default()
            .build()
            .map_err(anyhow::Error::from)?;
        let ticker = EpochTicker::start(&engine)?;
        let component = Component::from_file(&engine, path)
            .map_err(|err| anyhow::anyhow!("{}: {err:#}", path.display()))?;
        let linker = host::linker(&engine).map_err(anyhow::Error::from)?;
        let pre = CommandPre::new(
            linker
                .instantiate_pre(&component)
                .map_err(anyhow::Error::from)?,
        )
        .map_err(anyhow::Error::from)?;
        Ok(Self {
            engine,
            pre,
            limits: RequestLimits {
                max_memory_bytes: memory,
                ..RequestLimits::default()
            },
            state: ComponentState::bare(Arc::from("workload")),
            _ticker: ticker,
        })
    }
}

thread_local! {
    /// One event loop per measuring thread, so that no call pays for one.
    static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
}

impl Runner for WasmRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        let log = GuestLog::default();
        let mut argv = vec!["workload".to_string()];
        argv.extend(args.iter().cloned());
        let started = Instant::now();
        let host = Host::with_wasi(
            &self.state,
            &Arc::from("compare"),
            &self.limits,
            &Grants::default(),
            |wasi| {
                wasi.args(&argv).stdout(log.stdout()).stderr(log.stderr());
            },
        )?;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| host.limiter_mut());
        RequestLimits::arm_deadline(&mut store, started + deadline);
        let (outcome, create) = RUNTIME.with(|runtime| {
            let Some(runtime) = runtime else {
                return (
                    Err(wasmtime::Error::msg("cannot start an event loop")),
                    Duration::ZERO,
                );
            };
            runtime.block_on(async {
                let command = self.pre.instantiate_async(&mut store).await;
                let create = started.elapsed();
                let command = match command {
                    Ok(command) => command,
                    Err(err) => return (Err(err), create),
                };
                (command.wasi_cli_run().call_run(&mut store).await, create)
            })
        });
        let ran = started.elapsed();
        drop(store);
        let teardown = started.elapsed() - ran;
        let ended = match outcome {
            Ok(Ok(())) => "ok".to_string(),
            Ok(Err(())) => "exit 1".to_string(),
            Err(err) => match err.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => "deadline".to_string(),
                Some(trap) => format!("trap: {trap}"),
                None => match err.downcast_ref::<wasmtime_wasi::I32Exit>() {
                    Some(exit) => format!("exit {}", exit.0),
                    None => format!("error: {err}"),
                },
            },
        };
        Ok(Call {
            stdout: log.stdout_text(),
            ended,
            create,
            start: Duration::ZERO,
            first_byte: log
                .first_stdout_at()
                .map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
            run: ran - create,
            teardown,
            rss_kib: 0,
        })
    }
}

/// Reads a child's output to its end on a thread of its own, noting when
/// the first byte came and when the output closed.
struct OutputReader(std::thread::JoinHandle<(String, Option<Instant>, Instant)>);

impl OutputReader {
    fn start(mut pipe: impl std::io::Read + Send + 'static) -> Self {
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
    fn finish(self) -> (String, Option<Instant>, Instant) {
        self.0
            .join()
            .unwrap_or_else(|_| (String::new(), None, Instant::now()))
    }
}

/// The first line of what a child said on stderr, shortened.
fn first_complaint(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// How a child process ended, in the words the reports use.
fn ended(killed: bool, status: std::process::ExitStatus, complaints: &str) -> String {
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

/// Runs a native executable as a child process and waits for it, killing
/// it at the deadline.
fn run_child(mut command: Command, deadline: Duration) -> anyhow::Result<Call> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the workload")?;
    // `spawn` returns once the child has exec'd (or failed to).
    let create = started.elapsed();
    let stderr = OutputReader::start(child.stderr.take().context("no stderr pipe")?);
    let stdout = OutputReader::start(child.stdout.take().context("no stdout pipe")?);
    let mut killed = false;
    let mut rss_kib = 0;
    let status = loop {
        rss_kib = rss_kib.max(tree_rss_kib(child.id()));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= deadline {
            let _ = child.kill();
            killed = true;
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

/// Resident memory of process `pid` and its children, in KiB (0 if gone).
fn tree_rss_kib(pid: u32) -> u64 {
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

/// A plain fork/exec of the native executable: the baseline, with no
/// isolation at all.
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
        run_child(command, deadline)
    }
}

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

/// Where fresh memory cgroups can be made: a directory of ours under this
/// process's own cgroup, in the unified (v2) hierarchy when it has the
/// memory controller, else in the v1 memory hierarchy.
pub struct MemoryCgroups {
    parent: PathBuf,
    v2: bool,
    next: std::sync::atomic::AtomicU64,
}

impl MemoryCgroups {
    /// A parent cgroup for this run, if memory cgroups are writable here.
    pub fn create() -> Option<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path_of = |wanted: &dyn Fn(&str) -> bool| {
            own.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                wanted(controllers).then(|| path.trim_start_matches('/').to_string())
            })
        };
        let v2_root = Path::new("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(v2_root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (base, v2) = if v2 {
            (v2_root.join(path_of(&|c| c.is_empty())?), true)
        } else {
            let path = path_of(&|c| c.split(',').any(|c| c == "memory"))?;
            (Path::new("/sys/fs/cgroup/memory").join(path), false)
        };
        let parent = base.join(format!("mayfly-compare-{}", std::process::id()));
        std::fs::create_dir(&parent).ok()?;
        if v2 {
            // Children of ours need the memory controller handed down.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
        }
        let cgroups = Self {
            parent,
            v2,
            next: Default::default(),
        };
        // Making the directory is not enough (a delegated scope may refuse
        // the controller): try a limit once before relying on it.
        match cgroups.fresh(1 << 30) {
            Ok((trial, _)) => {
                Self::remove(&trial);
                Some(cgroups)
            }
            // Dropping `cgroups` removes the parent.
            Err(_) => None,
        }
    }

    /// Which hierarchy, for the report.
    pub fn describe(&self) -> String {
        let kind = if self.v2 {
            "cgroup v2 memory.max"
        } else {
            "cgroup v1 memory.limit_in_bytes"
        };
        format!(
            "{kind}, a fresh cgroup per call under {}",
            self.parent.display()
        )
    }

    /// A fresh cgroup limited to `memory` bytes (swap included where the
    /// kernel accounts it), and its `cgroup.procs` file for the child to
    /// join.
    fn fresh(&self, memory: u64) -> anyhow::Result<(PathBuf, CString)> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.parent.join(format!("call-{n}"));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let limits: &[&str] = if self.v2 {
            &["memory.max", "memory.swap.max"]
        } else {
            &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        };
        let set = || -> anyhow::Result<CString> {
            for (i, file) in limits.iter().enumerate() {
                let value = if self.v2 && i == 1 { 0 } else { memory };
                let written = std::fs::write(dir.join(file), value.to_string());
                // The first is the limit; the swap one exists only where the
                // kernel accounts swap.
                if i == 0 {
                    written.with_context(|| format!("cannot set {}", dir.join(file).display()))?;
                }
            }
            Ok(CString::new(
                dir.join("cgroup.procs").as_os_str().as_encoded_bytes(),
            )?)
        };
        match set() {
            Ok(procs) => Ok((dir, procs)),
            Err(err) => {
                let _ = std::fs::remove_dir(&dir);
                Err(err)
            }
        }
    }

    /// Removes a call's cgroup once its processes are gone.
    fn remove(dir: &Path) {
        let until = Instant::now() + Duration::from_secs(2);
        while std::fs::remove_dir(dir).is_err() {
            if Instant::now() >= until {
                tracing::warn!("cannot remove the cgroup {}", dir.display());
                return;
            }
            // The last process may still be leaving.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl Drop for MemoryCgroups {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.parent);
    }
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

/// A real OCI runtime (runc) running a bundle generated here: the workload
/// alone in a read-only root file system, fresh pid, network, ipc, uts and
/// mount namespaces, no capabilities, and a memory limit. Each call is
/// `runc create`, `runc start`, a wait, `runc delete`: the sequence
/// container engines use, which also gives the start-up breakdown.
pub struct OciRunner {
    runtime: PathBuf,
    dir: tempfile::TempDir,
    memory: u64,
    bundles: std::sync::Mutex<std::collections::HashMap<Vec<String>, PathBuf>>,
    next: std::sync::atomic::AtomicU64,
    /// Calls started again because the runtime failed to start the
    /// container (reported in the notes).
    pub retries: std::sync::atomic::AtomicU64,
}

impl OciRunner {
    /// Prepares bundles for `binary`, run by the OCI runtime `runtime`.
    pub fn new(runtime: &Path, binary: &Path, memory: u64) -> anyhow::Result<Self> {
        // A container's process outlives `runc create`, its parent; while
        // containers run, this process is a child subreaper and adopts
        // them, so it can wait for them and reap them.
        drop(Subreaper::enter()?);
        let dir = tempfile::Builder::new().prefix("mayfly-oci-").tempdir()?;
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("proc"))?;
        std::fs::create_dir_all(rootfs.join("dev"))?;
        std::fs::copy(binary, rootfs.join("workload"))
            .context("cannot copy the workload into the bundle")?;
        Ok(Self {
            runtime: runtime.to_path_buf(),
            dir,
            memory,
            bundles: Default::default(),
            next: Default::default(),
            retries: Default::default(),
        })
    }

    /// The bundle for `args` (one per distinct command line, sharing the
    /// root file system).
    fn bundle(&self, args: &[String]) -> anyhow::Result<PathBuf> {
        let mut bundles = self.bundles.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = bundles.get(args) {
            return Ok(path.clone());
        }
        let path = self.dir.path().join(format!("bundle-{}", bundles.len()));
        std::fs::create_dir_all(&path)?;
        let mut argv = vec!["/workload".to_string()];
        argv.extend(args.iter().cloned());
        let config = serde_json::json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": { "uid": 0, "gid": 0 },
                "args": argv,
                "env": [],
                "cwd": "/",
                "capabilities": { "bounding": [], "effective": [], "permitted": [], "ambient": [] },
                "noNewPrivileges": true
            },
            "root": { "path": self.dir.path().join("rootfs"), "readonly": true },
            "hostname": "mayfly-compare",
            // Each container gets its own /dev: runc populates it, and
            // containers sharing the root file system must not race there.
            "mounts": [
                { "destination": "/proc", "type": "proc", "source": "proc" },
                {
                    "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=1024k"]
                }
            ],
            "linux": {
                "namespaces": [
                    { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                    { "type": "uts" }, { "type": "mount" }
                ],
                "resources": { "memory": { "limit": self.memory } }
            }
        });
        std::fs::write(path.join("config.json"), config.to_string())?;
        bundles.insert(args.to_vec(), path.clone());
        Ok(path)
    }

    /// `runc` on PATH, if any.
    pub fn find_runtime() -> Option<PathBuf> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join("runc"))
            .find(|path| path.is_file())
    }
}

impl Runner for OciRunner {
    fn call(&self, args: &[String], deadline: Duration) -> anyhow::Result<Call> {
        match self.call_once(args, deadline)? {
            Ok(call) => Ok(call),
            // runc occasionally fails to set a container up under load (it
            // says so on stderr, before the workload ever runs): try once more.
            Err(_) => {
                self.retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(self
                    .call_once(args, deadline)?
                    .unwrap_or_else(std::convert::identity))
            }
        }
    }
}

/// This process is a child subreaper while at least one of these lives:
/// orphans are adopted only while containers run, and no other mode's
/// orphans pile up here as zombies.
struct Subreaper;

static SUBREAPER_USERS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl Subreaper {
    fn enter() -> anyhow::Result<Self> {
        let mut users = SUBREAPER_USERS.lock().unwrap_or_else(|p| p.into_inner());
        if *users == 0 {
            nix::sys::prctl::set_child_subreaper(true)
                .context("cannot become a child subreaper, to wait for containers")?;
        }
        *users += 1;
        Ok(Self)
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        let mut users = SUBREAPER_USERS.lock().unwrap_or_else(|p| p.into_inner());
        *users -= 1;
        if *users == 0 {
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
    }
}

impl OciRunner {
    /// One container's life, as container engines drive runc: `create`
    /// (namespaces, cgroup, root file system; the workload not yet
    /// running), `start` (exec the workload), wait for it, `delete`. The
    /// inner `Err` is a container that runc failed to create.
    fn call_once(&self, args: &[String], deadline: Duration) -> anyhow::Result<Result<Call, Call>> {
        let bundle = self.bundle(args)?;
        let id = format!(
            "mayfly-{}-{}",
            std::process::id(),
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let pid_file = self.dir.path().join(format!("{id}.pid"));
        // Until the container is reaped.
        let _subreaper = Subreaper::enter()?;
        let started = Instant::now();
        // The container's stdout and stderr: runc hands its own to the
        // container's process, which keeps them after `runc create` exits.
        let (stdout, stdout_writer) = std::io::pipe()?;
        let (stderr, stderr_writer) = std::io::pipe()?;
        let created = {
            let mut create = Command::new(&self.runtime);
            create
                .arg("create")
                .arg("--bundle")
                .arg(&bundle)
                .arg("--pid-file")
                .arg(&pid_file)
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(stdout_writer)
                .stderr(stderr_writer);
            finish_within(&mut create, deadline).context("cannot run the OCI runtime")?
            // `create` drops here, and with it this process's ends of the
            // pipes' write sides.
        };
        let stdout = OutputReader::start(stdout);
        let stderr = OutputReader::start(stderr);
        let create = started.elapsed();
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse::<i32>().ok());
        let (Some(true), Some(pid)) = (created.map(|status| status.success()), pid) else {
            let _ = self.runc(&["delete", "--force", &id]);
            let (complaints, ..) = stderr.finish();
            let why = match created {
                Some(status) => ended(false, status, &complaints),
                None => "killed at the deadline".to_string(),
            };
            return Ok(Err(Call {
                ended: format!("runc create: {why}"),
                create,
                ..Call::default()
            }));
        };
        let pid = nix::unistd::Pid::from_raw(pid);
        let started_ok = self.runc(&["start", &id]);
        let start = started.elapsed() - create;

        // The container's process was `runc create`'s child; now that
        // runc has exited it is ours (this process is a child subreaper).
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        let mut killed = false;
        let mut rss_kib = 0;
        let status = loop {
            rss_kib = rss_kib.max(tree_rss_kib(u32::try_from(pid.as_raw()).unwrap_or(0)));
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status) => break Some(status),
                // Not ours after all (no subreaper): runc will tell.
                Err(_) => break None,
            }
            if !started_ok || started.elapsed() >= deadline {
                // Directly, not through `runc kill`, which may fail: the
                // pid cannot be reused before this process reaps it.
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                killed = started_ok;
                let _ = waitpid(pid, None);
                break None;
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        let exited = Instant::now();
        let deleted = self.runc(&["delete", "--force", &id]);
        let gone = Instant::now();
        let _ = std::fs::remove_file(&pid_file);
        let (stdout, first, closed) = stdout.finish();
        let (complaints, ..) = stderr.finish();
        // The workload may finish before `runc start` has exited.
        let closed = closed.min(exited).max(started + create + start);
        let ended = match status {
            _ if killed => "killed at the deadline".to_string(),
            _ if !started_ok => format!("runc start failed: {}", first_complaint(&complaints)),
            Some(WaitStatus::Exited(_, 0)) => "ok".to_string(),
            Some(WaitStatus::Exited(_, code)) => {
                format!("exit {code}: {}", first_complaint(&complaints))
            }
            Some(WaitStatus::Signaled(_, signal, _)) => {
                format!("signal ({signal}): {}", first_complaint(&complaints))
            }
            _ => format!(
                "lost the container's status: {}",
                first_complaint(&complaints)
            ),
        };
        if !deleted {
            tracing::warn!("runc delete {id} failed");
        }
        Ok(Ok(Call {
            stdout,
            ended,
            create,
            start,
            first_byte: first.map_or(Duration::ZERO, |at| at.saturating_duration_since(started)),
            run: closed - (started + create + start),
            teardown: gone.saturating_duration_since(closed),
            rss_kib,
        }))
    }

    /// Runs `runc ARGS` to its end (killed after [`RUNC_LIMIT`]); whether
    /// it succeeded.
    fn runc(&self, args: &[&str]) -> bool {
        let mut command = Command::new(&self.runtime);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        finish_within(&mut command, RUNC_LIMIT)
            .is_ok_and(|status| status.is_some_and(|s| s.success()))
    }
}

/// How long a `runc start` or `runc delete` may take before it is killed.
const RUNC_LIMIT: Duration = Duration::from_secs(30);

/// Runs `command` to its end, or kills it after `limit`: its exit status,
/// `None` if it was killed.
fn finish_within(
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
