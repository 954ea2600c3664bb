//! What guests hold on the host, beyond their own memory: file
//! descriptors (open files, outbound connections) and host memory (header
//! maps they build), counted per instance and, for descriptors, per
//! process.
//!
//! A handle in a store's resource table is bounded by the table's size,
//! but one handle can hold a descriptor or 128 KiB of headers. Without a
//! budget, a few instances opening a granted file over and over would use
//! up the process's descriptors, and then `accept` would fail for everyone.
//!
//! The process budget is a share of `RLIMIT_NOFILE` (raised to its hard
//! limit at start-up by [`raise_fd_limit`]); the rest stays with the host
//! for its listener, connections, stores and compile cache. Each instance
//! also has its own share, so one request cannot take the whole process
//! budget either. A guest over either budget gets an error from the call
//! that wanted more (`quota` for a file, `connection-limit-reached` for an
//! outbound request); the host keeps serving.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Descriptors guests may hold in one process: a share of the soft
/// `RLIMIT_NOFILE`, the rest kept for the host.
pub struct ProcessBudget {
    limit: usize,
    held: AtomicUsize,
}

static PROCESS: OnceLock<ProcessBudget> = OnceLock::new();

impl ProcessBudget {
    /// The process's budget, sized from `RLIMIT_NOFILE` the first time it
    /// is asked for (call [`raise_fd_limit`] before that): guests get half,
    /// and the host always keeps the other half.
    pub fn get() -> &'static ProcessBudget {
        PROCESS.get_or_init(|| ProcessBudget {
            limit: fd_limit() / 2,
            held: AtomicUsize::new(0),
        })
    }

    /// Most descriptors guests may hold at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Descriptors guests hold now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.limit).then_some(held + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one instance holds on the host, against its own caps. Shared by
/// the instance's store and the tickets it hands out.
#[derive(Debug)]
pub struct InstanceBudget {
    max_descriptors: usize,
    descriptors: AtomicUsize,
    max_host_memory: usize,
    host_memory: AtomicUsize,
}

/// Why a guest was refused a host resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The instance holds its share of descriptors.
    InstanceDescriptors(usize),
    /// Guests of the whole process hold their share of descriptors.
    ProcessDescriptors(usize),
    /// The instance built its share of host memory.
    HostMemory(usize),
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::InstanceDescriptors(limit) => write!(
                f,
                "the instance holds {limit} open files and connections, its limit"
            ),
            Exhausted::ProcessDescriptors(limit) => write!(
                f,
                "the guests of this server hold {limit} open files and connections, their limit"
            ),
            Exhausted::HostMemory(limit) => write!(
                f,
                "the instance built {limit} bytes of headers on the host, its limit"
            ),
        }
    }
}

impl InstanceBudget {
    /// A budget of `max_descriptors` open files and connections and
    /// `max_host_memory` bytes of header data.
    pub fn new(max_descriptors: usize, max_host_memory: usize) -> Arc<Self> {
        Arc::new(Self {
            max_descriptors,
            descriptors: AtomicUsize::new(0),
            max_host_memory,
            host_memory: AtomicUsize::new(0),
        })
    }

    /// One descriptor, from this instance's share and the process's, held
    /// until the ticket is dropped.
    pub fn descriptor(self: &Arc<Self>) -> Result<FdTicket, Exhausted> {
        let taken = self
            .descriptors
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max_descriptors).then_some(held + 1)
            });
        if taken.is_err() {
            return Err(Exhausted::InstanceDescriptors(self.max_descriptors));
        }
        let process = ProcessBudget::get();
        if !process.take() {
            self.descriptors.fetch_sub(1, Ordering::AcqRel);
            return Err(Exhausted::ProcessDescriptors(process.limit()));
        }
        Ok(FdTicket {
            instance: self.clone(),
        })
    }

    /// Descriptors this instance holds now.
    pub fn descriptors(&self) -> usize {
        self.descriptors.load(Ordering::Relaxed)
    }

    /// Charges `bytes` of host memory built for the guest. Charges add up
    /// over the instance's life (what a guest builds and drops still
    /// counts), so the cap bounds what it holds at any time too.
    pub fn charge_memory(&self, bytes: usize) -> Result<(), Exhausted> {
        self.host_memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&total| total <= self.max_host_memory)
            })
            .map(|_| ())
            .map_err(|_| Exhausted::HostMemory(self.max_host_memory))
    }

    /// Host memory charged so far.
    pub fn host_memory(&self) -> usize {
        self.host_memory.load(Ordering::Relaxed)
    }
}

/// One descriptor held by a guest; given back when dropped.
#[derive(Debug)]
pub struct FdTicket {
    instance: Arc<InstanceBudget>,
}

impl Drop for FdTicket {
    fn drop(&mut self) {
        self.instance.descriptors.fetch_sub(1, Ordering::AcqRel);
        ProcessBudget::get().give_back();
    }
}

/// The soft `RLIMIT_NOFILE`.
fn fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` to a valid pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return 1 << 20;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new
/// soft limit. A server holding many connections needs it, and guests'
/// descriptor budget is sized from it. Call it first thing, before
/// [`ProcessBudget::get`].
pub fn raise_fd_limit() -> std::io::Result<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` to a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: `setrlimit` reads one `rlimit` from a valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(fd_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_holds_at_most_its_share_of_descriptors() {
        let budget = InstanceBudget::new(3, 0);
        let held: Vec<FdTicket> = (0..3).map(|_| budget.descriptor().unwrap()).collect();
        assert_eq!(
            budget.descriptor().unwrap_err(),
            Exhausted::InstanceDescriptors(3)
        );
        assert_eq!(budget.descriptors(), 3);
        drop(held);
        assert_eq!(budget.descriptors(), 0);
        // Given back: there is room again.
        let _again = budget.descriptor().unwrap();
        assert_eq!(budget.descriptors(), 1);
    }

    #[test]
    fn the_process_budget_bounds_every_instance_together() {
        let process = ProcessBudget::get();
        assert!(process.limit() > 0);
        let mut held = Vec::new();
        let mut instances = Vec::new();
        let refused = loop {
            let instance = InstanceBudget::new(64, 0);
            match (0..64).try_for_each(|_| -> Result<(), Exhausted> {
                held.push(instance.descriptor()?);
                Ok(())
            }) {
                Ok(()) => instances.push(instance),
                Err(refused) => break refused,
            }
        };
        assert_eq!(refused, Exhausted::ProcessDescriptors(process.limit()));
        assert_eq!(process.held(), process.limit());
        drop(held);
        assert_eq!(process.held(), 0);
    }

    #[test]
    fn host_memory_adds_up_to_its_cap() {
        let budget = InstanceBudget::new(0, 100);
        budget.charge_memory(60).unwrap();
        assert_eq!(budget.charge_memory(41), Err(Exhausted::HostMemory(100)));
        budget.charge_memory(40).unwrap();
        assert_eq!(budget.host_memory(), 100);
        assert_eq!(
            budget.charge_memory(usize::MAX),
            Err(Exhausted::HostMemory(100))
        );
        assert!(matches!(
            budget.descriptor(),
            Err(Exhausted::InstanceDescriptors(0))
        ));
    }
}
