//! A real OCI runtime (runc) per call: create, start, wait, delete.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::runner::{Call, Runner};
use crate::child::{OutputReader, ended, finish_within, first_complaint, tree_rss_kib};
use crate::cleanup::{Registered, making};

/// A real OCI runtime (runc) running a bundle generated here: the workload
/// alone in a read-only root file system, fresh pid, network, ipc, uts and
/// mount namespaces, no capabilities, and a memory limit. Each call is
/// `runc create`, `runc start`, a wait, `runc delete`: the sequence
/// container engines use, which also gives the start-up breakdown. runc
/// keeps the containers' state in a directory of ours (`runc --root`), so
/// that they are listed apart from any other.
pub struct OciRunner {
    runtime: PathBuf,
    dir: tempfile::TempDir,
    /// runc's state directory, inside `dir`.
    root: PathBuf,
    memory: u64,
    bundles: std::sync::Mutex<std::collections::HashMap<Vec<String>, PathBuf>>,
    next: std::sync::atomic::AtomicU64,
    /// Calls started again because the runtime failed to start the
    /// container (reported in the notes).
    pub retries: std::sync::atomic::AtomicU64,
    /// Removes `dir` if the command is stopped.
    _dir_registered: Registered,
}

impl OciRunner {
    /// Prepares bundles for `binary`, run by the OCI runtime `runtime`.
    pub fn new(runtime: &Path, binary: &Path, memory: u64) -> anyhow::Result<Self> {
        // A container's process outlives `runc create`, its parent; while
        // containers run, this process is a child subreaper and adopts
        // them, so it can wait for them and reap them.
        drop(Subreaper::enter()?);
        let making = making()?;
        let dir = tempfile::Builder::new().prefix("mayfly-oci-").tempdir()?;
        let dir_registered = making.dir(dir.path());
        let root = dir.path().join("runc");
        std::fs::create_dir(&root)?;
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("proc"))?;
        std::fs::create_dir_all(rootfs.join("dev"))?;
        std::fs::copy(binary, rootfs.join("workload"))
            .context("cannot copy the workload into the bundle")?;
        Ok(Self {
            runtime: runtime.to_path_buf(),
            dir,
            root,
            memory,
            bundles: Default::default(),
            next: Default::default(),
            retries: Default::default(),
            _dir_registered: dir_registered,
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
        // Held until the container runs: cleaning up never meets one
        // half made. The container is registered before it exists.
        let making = making()?;
        let container = making.container(&self.runtime, &self.root, &id);
        let started = Instant::now();
        // The container's stdout and stderr: runc hands its own to the
        // container's process, which keeps them after `runc create` exits.
        let (stdout, stdout_writer) = std::io::pipe()?;
        let (stderr, stderr_writer) = std::io::pipe()?;
        let created = {
            let mut create = Command::new(&self.runtime);
            create
                .arg("--root")
                .arg(&self.root)
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
            if self.gone(&id) {
                container.forget();
            }
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
        drop(making);

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
        if deleted || self.gone(&id) {
            container.forget();
        }
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
            // Dropping `container` tries once more.
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

    /// Whether runc has no container `id` (deleted, or never made): it
    /// keeps a container's state in a directory of that name under its root.
    fn gone(&self, id: &str) -> bool {
        !self.root.join(id).exists()
    }

    /// Runs `runc --root ROOT ARGS` to its end (killed after
    /// [`RUNC_LIMIT`]); whether it succeeded.
    fn runc(&self, args: &[&str]) -> bool {
        let mut command = Command::new(&self.runtime);
        command
            .arg("--root")
            .arg(&self.root)
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
