//! Fresh memory cgroups, one per call, under a directory of ours.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cleanup::{Making, Registered};

/// Where fresh memory cgroups can be made: a directory of ours under this
/// process's own cgroup, in the unified (v2) hierarchy when it has the
/// memory controller, else in the v1 memory hierarchy. Removed on drop.
pub struct MemoryCgroups {
    parent: PathBuf,
    v2: bool,
    next: std::sync::atomic::AtomicU64,
    _registered: Registered,
}

/// A call's cgroup, removed on drop (its processes killed if any are left).
pub(crate) struct CallCgroup {
    /// Its `cgroup.procs` file, for the child to join.
    pub(crate) procs: CString,
    _registered: Registered,
}

impl MemoryCgroups {
    /// A parent cgroup for this run, if memory cgroups are writable here.
    pub fn create(making: &Making) -> Option<Self> {
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
        let registered = making.cgroup(&parent);
        if v2 {
            // Children of ours need the memory controller handed down.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
        }
        let cgroups = Self {
            parent,
            v2,
            next: Default::default(),
            _registered: registered,
        };
        // Making the directory is not enough (a delegated scope may refuse
        // the controller): try a limit once before relying on it.
        match cgroups.fresh(1 << 30, making) {
            // Dropping the trial removes it.
            Ok(_trial) => Some(cgroups),
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
    /// kernel accounts it), registered for cleaning up under `making`.
    pub(crate) fn fresh(&self, memory: u64, making: &Making) -> anyhow::Result<CallCgroup> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.parent.join(format!("call-{n}"));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // Dropped on an error below, it removes the directory.
        let registered = making.cgroup(&dir);
        let limits: &[&str] = if self.v2 {
            &["memory.max", "memory.swap.max"]
        } else {
            &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        };
        for (i, file) in limits.iter().enumerate() {
            let value = if self.v2 && i == 1 { 0 } else { memory };
            let written = std::fs::write(dir.join(file), value.to_string());
            // The first is the limit; the swap one exists only where the
            // kernel accounts swap.
            if i == 0 {
                written.with_context(|| format!("cannot set {}", dir.join(file).display()))?;
            }
        }
        Ok(CallCgroup {
            procs: CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())?,
            _registered: registered,
        })
    }
}
