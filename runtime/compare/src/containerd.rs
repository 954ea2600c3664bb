//! A containerd of one's own: its root, state and sockets in a short
//! directory of its own, chosen shims on its `PATH`, driven with `ctr`, and
//! gone without a trace when dropped.
//!
//! ```no_run
//! use mayfly_compare::containerd::{Containerd, MAYFLY_RUNTIME, MAYFLY_SHIM, TaskSpec};
//!
//! # fn main() -> anyhow::Result<()> {
//! if let Some(why) = mayfly_compare::containerd::missing() {
//!     println!("skipped: {why}");
//!     return Ok(());
//! }
//! let containerd = Containerd::builder("demo")
//!     .shim(MAYFLY_SHIM, "target/release/containerd-shim-mayfly-v1".as_ref())
//!     .start()?;
//! let image = containerd.import("app.tar".as_ref())?;
//! let task = TaskSpec::new(&image[0], "demo")
//!     .runtime(MAYFLY_RUNTIME)
//!     .net_host()
//!     .env("MAYFLY_LISTEN", "127.0.0.1:8080");
//! let mut ctr_run = containerd.run_foreground(&task)?; // its stdio is the task's
//! containerd.kill("demo", "SIGTERM")?;
//! ctr_run.wait()?;
//! # Ok(())
//! # }
//! ```
//!
//! Dropping it kills every task it still has (`ctr task kill`, `ctr task
//! delete --force`, in every namespace), then containerd by its pid, then
//! any shim of its that is still running, unmounts whatever is still
//! mounted under its directory, removes the directory and the namespaces'
//! (empty) cgroups. The same teardown is registered with
//! [`cleanup`](crate::cleanup), so that a `mayfly
//! compare` stopped by a signal stops its containerd too.
//!
//! It needs root, and `containerd` and `ctr` on `PATH` ([`missing`] says
//! what is not there). It is containerd 1.6's config format (`version =
//! 2`); the CRI plugin is off.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::child::OutputReader;
use crate::cleanup::{Registered, making};

/// The runtime containerd maps to [`MAYFLY_SHIM`].
pub const MAYFLY_RUNTIME: &str = "io.containerd.mayfly.v1";
/// The Mayfly shim's binary, as containerd looks for it on its `PATH`.
pub const MAYFLY_SHIM: &str = "containerd-shim-mayfly-v1";
/// containerd's default runtime: runc, through `containerd-shim-runc-v2`.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";

/// How long containerd may take to answer once started.
const START_LIMIT: Duration = Duration::from_secs(120);
/// How long one `ctr` command may take (an image import included).
const CTR_LIMIT: Duration = Duration::from_secs(300);
/// How long one `ctr` command may take while tearing down.
const TEARDOWN_CTR_LIMIT: Duration = Duration::from_secs(30);
/// How long killed processes may take to end while tearing down.
const TEARDOWN_PATIENCE: Duration = Duration::from_secs(10);
/// The longest path of the directory: the sockets in it must fit in
/// `sun_path` (108 bytes) with the longest of their names.
const MAX_DIR: usize = 80;

/// Why a private containerd cannot run here, if it cannot: not root, or no
/// `containerd` or `ctr` on `PATH`.
pub fn missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (containerd needs root here)".into());
    }
    ["containerd", "ctr"]
        .into_iter()
        .find(|name| which(name).is_none())
        .map(|name| format!("no `{name}` on PATH (`apt-get install containerd`)"))
}

/// The executable `name` on `PATH`, if there is one.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// How to start a [`Containerd`]: its name, namespace and shims.
#[derive(Debug, Clone)]
pub struct Builder {
    name: String,
    namespace: String,
    shim_dirs: Vec<PathBuf>,
    shims: Vec<(String, PathBuf)>,
}

impl Builder {
    /// The namespace `ctr` commands use (default `mayfly-NAME`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_string();
        self
    }

    /// Puts `dir`, which holds shims by the names containerd looks for
    /// (`containerd-shim-NAME-v1`), first on containerd's `PATH`.
    pub fn shim_dir(mut self, dir: &Path) -> Self {
        self.shim_dirs.push(dir.to_path_buf());
        self
    }

    /// Has containerd find `binary` as the shim `name` (such as
    /// [`MAYFLY_SHIM`]): a symbolic link in a directory of its own, first
    /// on its `PATH`.
    pub fn shim(mut self, name: &str, binary: &Path) -> Self {
        self.shims.push((name.to_string(), binary.to_path_buf()));
        self
    }

    /// Starts containerd and waits until it answers `ctr version`.
    pub fn start(self) -> anyhow::Result<Containerd> {
        Containerd::start(self)
    }
}

/// A running containerd of this process's own; stopped, with everything
/// it made, when dropped.
pub struct Containerd {
    process: Child,
    namespace: String,
    teardown: Arc<Teardown>,
    registered: Option<Registered>,
}

/// What stops a containerd and removes what it kept: run by its owner's
/// drop, or by the cleanup registry, whichever comes first; once.
struct Teardown {
    dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    pid: Mutex<Option<Pid>>,
    done: Mutex<bool>,
}

impl Containerd {
    /// How to start one named `name` (its directory's and default
    /// namespace's name).
    pub fn builder(name: &str) -> Builder {
        Builder {
            name: name.to_string(),
            namespace: format!("mayfly-{name}"),
            shim_dirs: Vec::new(),
            shims: Vec::new(),
        }
    }

    fn start(builder: Builder) -> anyhow::Result<Self> {
        if let Some(why) = missing() {
            bail!("cannot start containerd: {why}");
        }
        // Held until containerd is registered: cleaning up never misses it.
        let making = making()?;
        let dir = short_dir(&builder.name)?;
        let teardown = Arc::new(Teardown {
            socket: dir.join("ctd.sock"),
            dir: dir.clone(),
            namespace: builder.namespace.clone(),
            pid: Mutex::new(None),
            done: Mutex::new(false),
        });
        let registered = {
            let teardown = teardown.clone();
            making.containerd(move || teardown.run())
        };
        // From here on, an error tears down what was made (the registered
        // teardown runs when `registered` drops).
        let bin = dir.join("bin");
        std::fs::create_dir(&bin)?;
        for (name, binary) in &builder.shims {
            let binary = std::path::absolute(binary)
                .with_context(|| format!("the shim {}", binary.display()))?;
            std::os::unix::fs::symlink(&binary, bin.join(name))
                .with_context(|| format!("cannot link the shim {}", binary.display()))?;
        }
        let config = format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{dir}/ctd.sock"
[ttrpc]
  address = "{dir}/ctd.sock.ttrpc"
[debug]
  address = "{dir}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"#,
            dir = dir.display()
        );
        std::fs::write(dir.join("config.toml"), config)?;
        let log = std::fs::File::create(dir.join("containerd.log"))?;
        let mut path = builder.shim_dirs.clone();
        path.push(bin);
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let process = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", std::env::join_paths(path)?)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start containerd")?;
        *lock(&teardown.pid) = Some(Pid::from_raw(i32::try_from(process.id())?));
        drop(making);
        let mut containerd = Self {
            process,
            namespace: builder.namespace,
            teardown,
            registered: Some(registered),
        };
        containerd.wait_until_it_answers()?;
        Ok(containerd)
    }

    fn wait_until_it_answers(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!("containerd exited ({status}); its log:\n{}", self.log());
            }
            if self.socket().exists() && self.try_ctr(&["version"])?.0.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "containerd did not answer within {START_LIMIT:?}; its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its directory: `root`, `state`, the sockets, `config.toml`,
    /// `containerd.log`, and the shims' `bin`.
    pub fn dir(&self) -> &Path {
        &self.teardown.dir
    }

    /// Its gRPC socket (`ctr --address`).
    pub fn socket(&self) -> PathBuf {
        self.teardown.socket.clone()
    }

    /// The namespace its `ctr` commands use.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// containerd's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// What containerd has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCKET --namespace NAMESPACE ARGS...`, to run as the
    /// caller likes.
    pub fn command(&self, args: &[&str]) -> Command {
        ctr_command(&self.teardown.socket, &self.namespace, args)
    }

    /// Runs `ctr ARGS...` to its end: its status, and its stdout and
    /// stderr together. An error if it cannot run, or takes too long.
    pub fn try_ctr(&self, args: &[&str]) -> anyhow::Result<(ExitStatus, String)> {
        output_within(self.command(args), CTR_LIMIT)
            .with_context(|| format!("ctr {}", args.join(" ")))
    }

    /// Runs `ctr ARGS...`, which must succeed: what it printed.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        let (status, text) = self.try_ctr(args)?;
        if !status.success() {
            bail!("ctr {} failed ({status}): {}", args.join(" "), text.trim());
        }
        Ok(text)
    }

    /// Imports the image layout tarball `tarball` (`ctr image import`): the
    /// names of the images it held.
    pub fn import(&self, tarball: &Path) -> anyhow::Result<Vec<String>> {
        let path = tarball.to_str().context("the image's path is not UTF-8")?;
        let said = self.ctr(&["image", "import", path])?;
        // `unpacking NAME (sha256:...)...done`
        let names = said
            .lines()
            .filter_map(|line| line.strip_prefix("unpacking "))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_string)
            .collect::<Vec<_>>();
        if names.is_empty() {
            bail!("ctr image import {path} imported no image: {said}");
        }
        Ok(names)
    }

    /// `ctr run` of `task` as the caller likes to run it (its stdio,
    /// `--detach`).
    pub fn run_command(&self, task: &TaskSpec, detach: bool) -> Command {
        let mut args: Vec<String> = vec!["run".into()];
        if detach {
            args.push("--detach".into());
        } else if task.remove {
            args.push("--rm".into());
        }
        if let Some(runtime) = &task.runtime {
            args.extend(["--runtime".into(), runtime.clone()]);
        }
        if task.net_host {
            args.push("--net-host".into());
        }
        for (name, value) in &task.env {
            args.extend(["--env".into(), format!("{name}={value}")]);
        }
        for mount in &task.mounts {
            args.extend(["--mount".into(), mount.clone()]);
        }
        args.extend([task.image.clone(), task.id.clone()]);
        args.extend(task.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.command(&args)
    }

    /// Starts `ctr run` of `task` in the foreground: its stdout and stderr
    /// (piped) are the task's, and it exits with the task's status once
    /// the task ends (having deleted the task, and with
    /// [`TaskSpec::remove`] the container).
    pub fn run_foreground(&self, task: &TaskSpec) -> anyhow::Result<Child> {
        self.run_command(task, false)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `ctr run` of {}", task.id))
    }

    /// `ctr run --detach` of `task`: returns once the task has started.
    pub fn run_detached(&self, task: &TaskSpec) -> anyhow::Result<()> {
        let (status, text) = output_within(self.run_command(task, true), CTR_LIMIT)?;
        if !status.success() {
            bail!(
                "ctr run --detach {} failed ({status}): {}",
                task.id,
                text.trim()
            );
        }
        Ok(())
    }

    /// Sends task `id` `signal` (`SIGTERM`, `SIGKILL`...).
    pub fn kill(&self, id: &str, signal: &str) -> anyhow::Result<()> {
        self.ctr(&["task", "kill", "--signal", signal, id])
            .map(drop)
    }

    /// Deletes task `id` (killing it if it runs) and its container, as far
    /// as they exist.
    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        for args in [
            &["task", "delete", "--force", id][..],
            &["container", "delete", id][..],
        ] {
            let (status, text) = self.try_ctr(args)?;
            if !status.success() && !text.contains("not found") {
                bail!("ctr {} failed ({status}): {}", args.join(" "), text.trim());
            }
        }
        Ok(())
    }

    /// The ids of the tasks in its namespace.
    pub fn tasks(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .ctr(&["task", "list", "--quiet"])?
            .lines()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown.run();
        // Reaped only now that containerd is dead and the teardown done:
        // its pid was never free while the teardown could signal it.
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let Some(registered) = self.registered.take() {
            registered.forget();
        }
    }
}

impl Teardown {
    /// Stops containerd and removes what it kept; the second call (the
    /// owner's and the cleanup registry's) waits for the first and does
    /// nothing.
    fn run(&self) {
        let mut done = lock(&self.done);
        if *done {
            return;
        }
        *done = true;
        let pid = *lock(&self.pid);
        let alive = pid.is_some_and(|pid| !ended(pid));
        let mut namespaces = vec![self.namespace.clone()];
        if alive {
            // Every namespace: the owner may have used others.
            namespaces.extend(self.ctr_lines("default", &["namespaces", "list", "--quiet"]));
            namespaces.sort();
            namespaces.dedup();
            for namespace in &namespaces {
                for id in self.ctr_lines(namespace, &["task", "list", "--quiet"]) {
                    self.quietly(namespace, &["task", "kill", "--signal", "SIGKILL", &id]);
                    self.quietly(namespace, &["task", "delete", "--force", &id]);
                }
            }
        }
        if let Some(pid) = pid {
            let _ = kill(pid, Signal::SIGKILL);
            wait_until(|| ended(pid));
        }
        // Shims whose tasks could not be deleted; they name its socket.
        let socket = self.socket.display().to_string();
        let shims = || processes_naming(&socket, "containerd-shim");
        for shim in shims() {
            tracing::warn!(
                "killing a shim of containerd {}: {shim}",
                self.dir.display()
            );
            if let Ok(pid) = i32::try_from(shim) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        wait_until(|| shims().is_empty());
        unmount_under(&self.dir);
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!("cannot remove {}: {err}", self.dir.display()),
        }
        for namespace in &namespaces {
            remove_namespace_cgroups(namespace);
        }
    }

    /// The lines `ctr ARGS...` printed in `namespace` (none if it failed).
    fn ctr_lines(&self, namespace: &str, args: &[&str]) -> Vec<String> {
        match output_within(
            ctr_command(&self.socket, namespace, args),
            TEARDOWN_CTR_LIMIT,
        ) {
            Ok((status, text)) if status.success() => text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Runs `ctr ARGS...` in `namespace`, whatever comes of it.
    fn quietly(&self, namespace: &str, args: &[&str]) {
        let _ = output_within(
            ctr_command(&self.socket, namespace, args),
            TEARDOWN_CTR_LIMIT,
        );
    }
}

/// What `ctr run` runs: an image as a task.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    /// The image's name, as imported.
    pub image: String,
    /// The container's and task's id.
    pub id: String,
    /// The runtime (`--runtime`); containerd's default ([`RUNC_RUNTIME`])
    /// if `None`.
    pub runtime: Option<String>,
    /// The host's network (`--net-host`).
    pub net_host: bool,
    /// Environment variables added to the image's (`--env`).
    pub env: Vec<(String, String)>,
    /// Mounts (`--mount`, as `type=bind,src=...,dst=...,options=...`).
    pub mounts: Vec<String>,
    /// Remove the container once the task ends (`--rm`; foreground only).
    pub remove: bool,
    /// Arguments that replace the image's entrypoint and command.
    pub args: Vec<String>,
}

impl TaskSpec {
    /// `image` as task `id`, with the image's settings.
    pub fn new(image: &str, id: &str) -> Self {
        Self {
            image: image.to_string(),
            id: id.to_string(),
            runtime: None,
            net_host: false,
            env: Vec::new(),
            mounts: Vec::new(),
            remove: false,
            args: Vec::new(),
        }
    }

    /// Run by `runtime` (such as [`MAYFLY_RUNTIME`]).
    pub fn runtime(mut self, runtime: &str) -> Self {
        self.runtime = Some(runtime.to_string());
        self
    }

    /// In the host's network namespace.
    pub fn net_host(mut self) -> Self {
        self.net_host = true;
        self
    }

    /// With the environment variable `name` set to `value`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// With the host directory `host` bind-mounted at `target`.
    pub fn bind(mut self, host: &Path, target: &str, read_only: bool) -> Self {
        let mode = if read_only { "ro" } else { "rw" };
        self.mounts.push(format!(
            "type=bind,src={},dst={target},options=rbind:{mode}",
            host.display()
        ));
        self
    }

    /// Its container removed once the task ends (`ctr run --rm`).
    pub fn remove(mut self) -> Self {
        self.remove = true;
        self
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ctr_command(socket: &Path, namespace: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ctr");
    command
        .arg("--address")
        .arg(socket)
        .arg("--namespace")
        .arg(namespace)
        .args(args);
    command
}

/// A new directory for a containerd named `name`: in the temporary
/// directory if its sockets' paths fit there, else in `/tmp`.
fn short_dir(name: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("mayfly-ctd-{name}-");
    let temp = std::env::temp_dir();
    // The random suffix is 6 characters.
    let base = if temp.as_os_str().len() + prefix.len() + 8 <= MAX_DIR {
        temp
    } else {
        PathBuf::from("/tmp")
    };
    let dir = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&base)
        .with_context(|| {
            format!(
                "cannot make a directory for containerd in {}",
                base.display()
            )
        })?
        .keep();
    if dir.as_os_str().len() > MAX_DIR {
        let _ = std::fs::remove_dir(&dir);
        bail!(
            "{} is too long a path for containerd's sockets; use a shorter name",
            dir.display()
        );
    }
    Ok(dir)
}

/// Runs `command` to its end, or kills it after `limit`: its status and
/// its stdout and stderr together.
fn output_within(mut command: Command, limit: Duration) -> anyhow::Result<(ExitStatus, String)> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = OutputReader::start(child.stdout.take().context("no stdout pipe")?);
    let stderr = OutputReader::start(child.stderr.take().context("no stderr pipe")?);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("killed after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let text = stdout.finish().0 + &stderr.finish().0;
    Ok((status, text))
}

/// Whether process `pid` has ended (gone, or a zombie).
fn ended(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command's name, which may hold anything.
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        .is_none_or(|state| matches!(state, "Z" | "X" | "x"))
}

/// Waits, for a while, until `done`.
fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TEARDOWN_PATIENCE;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Live processes whose command line holds both `text` and `name`.
fn processes_naming(text: &str, name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains(text)
                && cmdline.contains(name)
                && !ended(Pid::from_raw(i32::try_from(*pid).unwrap_or(0)))
        })
        .collect()
}

/// Detaches every mount at or under `dir`, deepest first.
fn unmount_under(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(unescape_mount_point(point)))
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.as_os_str().len()));
    for point in points {
        if let Err(err) = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("cannot unmount {}: {err}", point.display());
        }
    }
}

/// A mount point as mountinfo writes it, with `\NNN` octal escapes (for
/// spaces, tabs, newlines and backslashes) undone.
fn unescape_mount_point(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the cgroups containerd made for `namespace` (its tasks' are
/// removed with them), where they are empty.
fn remove_namespace_cgroups(namespace: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(namespace)];
    if let Ok(hierarchies) = std::fs::read_dir(root) {
        candidates.extend(
            hierarchies
                .flatten()
                .map(|hierarchy| hierarchy.path().join(namespace)),
        );
    }
    for dir in candidates {
        // Fails, harmlessly, on one that is not there or not empty.
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_mount_point;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount_point("/tmp/a\\040b"), "/tmp/a b");
        assert_eq!(unescape_mount_point("/tmp/a\\134b"), "/tmp/a\\b");
        assert_eq!(unescape_mount_point("/plain"), "/plain");
        assert_eq!(unescape_mount_point("/end\\"), "/end\\");
    }
}
