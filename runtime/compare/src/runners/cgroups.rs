//! Fresh memory cgroups, one per call, under a directory of ours.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

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
    pub(crate) fn fresh(&self, memory: u64) -> anyhow::Result<(PathBuf, CString)> {
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
    pub(crate) fn remove(dir: &Path) {
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
