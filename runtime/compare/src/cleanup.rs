//! Everything the runners and the rest of a comparison have made and not
//! yet torn down: child processes (`mayfly serve` among them), runc
//! containers, private containerds, cgroups and directories.
//!
//! Each is registered while it is made and forgotten once its owner has
//! torn it down. Whatever is still registered is undone here: by its guard
//! when the owner never got to tear it down (an error or a panic on the
//! way), and all at once by [`clean_up_everything`] when the command is
//! stopped (a signal) or ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::child::finish_within;

/// Closed (`true`) once cleaning up has begun. Whoever makes something holds
/// it shared until the thing is registered, so cleaning up, which takes it
/// exclusively, sees everything made before it and nothing made after.
static GATE: RwLock<bool> = RwLock::new(false);

/// What is registered, by the order it was registered in.
static HELD: Mutex<Held> = Mutex::new(Held {
    next: 0,
    items: BTreeMap::new(),
});

/// Held for the whole of [`clean_up_everything`], so that a second call
/// returns only once the first is done.
static CLEANING: Mutex<()> = Mutex::new(());

/// How long one `runc kill` or `runc delete` may take while cleaning up.
const RUNC_LIMIT: Duration = Duration::from_secs(10);

/// How long a cgroup may take to empty before it is left behind.
const CGROUP_PATIENCE: Duration = Duration::from_secs(2);

struct Held {
    next: u64,
    items: BTreeMap<u64, Item>,
}

enum Item {
    /// A child process of this one, not yet reaped.
    Process(Pid),
    /// A runc container, under its own state directory.
    Container {
        runtime: PathBuf,
        root: PathBuf,
        id: String,
    },
    /// A private containerd, stopped with its tasks by its own teardown
    /// (see [`crate::containerd`]).
    Containerd(Box<dyn FnOnce() + Send>),
    /// A cgroup directory of ours.
    Cgroup(PathBuf),
    /// A directory of ours, removed with what it holds.
    Dir(PathBuf),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Leave to make something that must be cleaned up: hold it from before the
/// thing is made until it is registered. Cleaning up waits for every
/// holder, so nothing made while it begins escapes it.
pub struct Making {
    _gate: RwLockReadGuard<'static, bool>,
}

/// Leave to make something; refused once cleaning up has begun.
pub fn making() -> anyhow::Result<Making> {
    let gate = GATE.read().unwrap_or_else(PoisonError::into_inner);
    if *gate {
        anyhow::bail!("mayfly compare is stopping");
    }
    Ok(Making { _gate: gate })
}

impl Making {
    /// Registers child process `pid`. Forget it before reaping it: a
    /// reaped pid may be reused by a process that is not ours.
    pub fn process(&self, pid: u32) -> Registered {
        let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        self.register(Item::Process(pid))
    }

    /// Registers runc container `id`, kept under `root`, before `runc
    /// create` makes it.
    pub fn container(&self, runtime: &Path, root: &Path, id: &str) -> Registered {
        self.register(Item::Container {
            runtime: runtime.to_path_buf(),
            root: root.to_path_buf(),
            id: id.to_string(),
        })
    }

    /// Registers a private containerd, whose `teardown` kills its tasks,
    /// then containerd, and removes what it kept on disk. Its owner
    /// forgets it once it has run the same teardown itself.
    pub fn containerd(&self, teardown: impl FnOnce() + Send + 'static) -> Registered {
        self.register(Item::Containerd(Box::new(teardown)))
    }

    /// Registers the cgroup at `dir`.
    pub fn cgroup(&self, dir: &Path) -> Registered {
        self.register(Item::Cgroup(dir.to_path_buf()))
    }

    /// Registers the directory `dir`, to be removed with what it holds.
    pub fn dir(&self, dir: &Path) -> Registered {
        self.register(Item::Dir(dir.to_path_buf()))
    }

    fn register(&self, item: Item) -> Registered {
        let mut held = lock(&HELD);
        let key = held.next;
        held.next += 1;
        held.items.insert(key, item);
        Registered(key)
    }
}

/// Something registered. Dropping it undoes it (kills the process, deletes
/// the container, removes the cgroup or directory) unless it was
/// [`forget`](Registered::forget)ten or cleaned up already.
#[must_use = "dropping it undoes what it registered"]
pub struct Registered(u64);

impl Registered {
    /// Its owner has torn it down (or, for a process, is about to reap
    /// it): nothing is left to undo.
    pub fn forget(self) {
        lock(&HELD).items.remove(&self.0);
        std::mem::forget(self);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let item = {
            let mut held = lock(&HELD);
            let item = held.items.remove(&self.0);
            // Killed before the lock is let go, so that its owner, which
            // forgets it before reaping it, cannot free its pid in between.
            if let Some(Item::Process(pid)) = &item {
                let _ = kill(*pid, Signal::SIGKILL);
            }
            item
        };
        if let Some(item) = item {
            undo(item);
        }
    }
}

/// What [`clean_up_everything`] undid.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cleaned {
    /// Child processes killed.
    pub processes: usize,
    /// runc containers killed and deleted.
    pub containers: usize,
    /// Private containerds stopped, with their tasks.
    pub containerds: usize,
    /// cgroups removed (their processes killed first).
    pub cgroups: usize,
    /// Directories removed.
    pub dirs: usize,
}

/// Undoes everything still registered, and refuses to register anything
/// more: for a command that is stopping. It waits for whatever is being
/// made to be registered first. Processes are killed first, then
/// containers deleted, containerds stopped, then cgroups and directories
/// removed, each kind newest first (a cgroup's children before it). A second call waits for
/// the first to finish.
pub fn clean_up_everything() -> Cleaned {
    let _cleaning = lock(&CLEANING);
    *GATE.write().unwrap_or_else(PoisonError::into_inner) = true;
    let items: Vec<Item> = {
        let mut held = lock(&HELD);
        for item in held.items.values() {
            if let Item::Process(pid) = item {
                let _ = kill(*pid, Signal::SIGKILL);
            }
        }
        std::mem::take(&mut held.items)
            .into_values()
            .rev()
            .collect()
    };
    let mut cleaned = Cleaned::default();
    let (mut containers, mut containerds, mut cgroups, mut dirs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in items {
        match item {
            Item::Process(_) => cleaned.processes += 1,
            Item::Container { .. } => containers.push(item),
            Item::Containerd(_) => containerds.push(item),
            Item::Cgroup(_) => cgroups.push(item),
            Item::Dir(_) => dirs.push(item),
        }
    }
    cleaned.containers = containers.len();
    cleaned.containerds = containerds.len();
    cleaned.cgroups = cgroups.len();
    cleaned.dirs = dirs.len();
    // The containers' state lives in one of the directories, and a cgroup
    // empties once its processes are gone.
    for item in containers
        .into_iter()
        .chain(containerds)
        .chain(cgroups)
        .chain(dirs)
    {
        undo(item);
    }
    cleaned
}

/// Undoes one thing. A process was killed as it was taken out of the
/// registry, and is left to be reaped with this process's other children.
fn undo(item: Item) {
    match item {
        Item::Process(_) => {}
        Item::Container { runtime, root, id } => {
            let _ = runc(&runtime, &root, &["kill", &id, "KILL"]);
            let _ = runc(&runtime, &root, &["delete", "--force", &id]);
            // runc keeps a container's state in ROOT/ID, until it is
            // deleted (or if it was never made).
            if root.join(&id).exists() {
                tracing::warn!("cannot delete the runc container {id}");
            }
        }
        Item::Containerd(teardown) => teardown(),
        Item::Cgroup(dir) => {
            if !remove_cgroup(&dir) {
                tracing::warn!("cannot remove the cgroup {}", dir.display());
            }
        }
        Item::Dir(dir) => match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!("cannot remove {}: {err}", dir.display()),
        },
    }
}

/// Runs `runtime --root ROOT ARGS` to its end, quietly; whether it
/// succeeded.
fn runc(runtime: &Path, root: &Path, args: &[&str]) -> bool {
    let mut command = Command::new(runtime);
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    finish_within(&mut command, RUNC_LIMIT).is_ok_and(|status| status.is_some_and(|s| s.success()))
}

/// Removes the cgroup at `dir`, killing what is still in it; whether it is
/// gone.
pub(crate) fn remove_cgroup(dir: &Path) -> bool {
    let until = Instant::now() + CGROUP_PATIENCE;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) if Instant::now() >= until => return false,
            // Its last process may still be leaving, or it was stopped
            // early and its processes still run.
            Err(_) => kill_members(dir),
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Kills every process in the cgroup at `dir`.
fn kill_members(dir: &Path) {
    // cgroup v2 kills the whole cgroup at once, where the kernel has it.
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs
        .lines()
        .filter_map(|pid| pid.trim().parse::<i32>().ok())
    {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::Command;

    use super::making;

    // `clean_up_everything` closes the registry for the whole process, so
    // these try only what a guard does.

    #[test]
    fn a_panic_kills_and_removes_what_its_thread_registered() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        std::fs::create_dir(&made).unwrap();
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.id();
        let gone = made.clone();
        let panicked = std::thread::spawn(move || {
            let making = making().unwrap();
            let _process = making.process(pid);
            let _dir = making.dir(&gone);
            drop(making);
            panic!("a panic on the way, before the runner tore them down");
        })
        .join();
        assert!(panicked.is_err());
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(nix::libc::SIGKILL), "{status}");
        assert!(!made.exists());
    }

    #[test]
    fn a_containerd_left_registered_is_torn_down_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let runs = Arc::new(AtomicUsize::new(0));
        let leave = making().unwrap();
        let counted = runs.clone();
        let registered = leave.containerd(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        drop(leave);
        drop(registered);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Forgotten by its owner, who tore it down itself: never again.
        let counted = runs.clone();
        making()
            .unwrap()
            .containerd(move || {
                counted.fetch_add(1, Ordering::SeqCst);
            })
            .forget();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn what_its_owner_tore_down_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let making = making().unwrap();
        making.process(child.id()).forget();
        making.dir(dir.path()).forget();
        drop(making);
        assert!(child.try_wait().unwrap().is_none());
        assert!(dir.path().exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
