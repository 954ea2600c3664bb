//! What guests hold on the host, beyond their own memory: file
//! descriptors (open files, outbound connections) and host memory (header
//! maps, request targets and body buffers they fill), counted per instance
//! and, for descriptors, per process.
//!
//! A handle in a store's resource table is bounded by the table's size,
//! but one handle can hold a descriptor or 128 KiB of headers. Without a
//! budget, a few instances opening a granted file over and over would use
//! up the process's descriptors, and then `accept` would fail for everyone.
//!
//! The process budget is a share of `RLIMIT_NOFILE` (raised to its hard
//! limit at start-up by [`raise_fd_limit`]); the rest stays with the host
//! for its listener, connections, stores and compile cache. An instance's
//! preopened directories count against its budget too. Each instance
//! also has its own share, so one request cannot take the whole process
//! budget either. A guest over either budget gets an error from the call
//! that wanted more (`quota` for a file, `connection-limit-reached` for an
//! outbound request); the host keeps serving.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

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
        PROCESS.get_or_init(|| ProcessBudget::new(fd_limit() / 2))
    }

    /// A budget of `limit` descriptors (the process has one, [`get`];
    /// others are for tests).
    ///
    /// [`get`]: ProcessBudget::get
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            held: AtomicUsize::new(0),
        }
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

    fn give_back(&self, count: usize) {
        self.held.fetch_sub(count, Ordering::AcqRel);
    }
}

/// What one instance holds on the host, against its own caps. Shared by
/// the instance's store and the tickets it hands out.
pub struct InstanceBudget {
    process: &'static ProcessBudget,
    max_descriptors: usize,
    descriptors: AtomicUsize,
    /// Open files, which hold a descriptor for as long as anything holds
    /// the file (a descriptor handle, a stream read from it): given back
    /// once nothing does, before the next descriptor is counted.
    files: Mutex<Vec<Weak<std::fs::File>>>,
    max_host_memory: usize,
    /// Host memory built in this call (headers, request targets), which
    /// adds up until the call ends.
    host_memory: AtomicUsize,
    /// Host memory held for as long as something holds it (body buffers):
    /// given back when its [`MemoryLease`] is dropped.
    leased: AtomicUsize,
}

impl std::fmt::Debug for InstanceBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceBudget")
            .field("descriptors", &self.descriptors())
            .field("max_descriptors", &self.max_descriptors)
            .field("host_memory", &self.host_memory())
            .field("leased", &self.leased.load(Ordering::Relaxed))
            .field("max_host_memory", &self.max_host_memory)
            .finish()
    }
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
                "the instance reached its limit of {limit} bytes of host memory \
                 (headers, request targets and body buffers)"
            ),
        }
    }
}

impl std::error::Error for Exhausted {}

impl InstanceBudget {
    /// A budget of `max_descriptors` open files and connections (also
    /// counted against the process's budget) and `max_host_memory` bytes
    /// of header data per call.
    pub fn new(max_descriptors: usize, max_host_memory: usize) -> Arc<Self> {
        Self::within(ProcessBudget::get(), max_descriptors, max_host_memory)
    }

    /// [`InstanceBudget::new`], counted against `process`.
    pub fn within(
        process: &'static ProcessBudget,
        max_descriptors: usize,
        max_host_memory: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            process,
            max_descriptors,
            descriptors: AtomicUsize::new(0),
            files: Mutex::new(Vec::new()),
            max_host_memory,
            host_memory: AtomicUsize::new(0),
            leased: AtomicUsize::new(0),
        })
    }

    /// One descriptor, from this instance's share and the process's, held
    /// until the ticket is dropped (or, for a file, [`FdTicket::hold_file`]).
    pub fn descriptor(self: &Arc<Self>) -> Result<FdTicket, Exhausted> {
        self.reclaim_files();
        let taken = self
            .descriptors
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max_descriptors).then_some(held + 1)
            });
        if taken.is_err() {
            return Err(Exhausted::InstanceDescriptors(self.max_descriptors));
        }
        if !self.process.take() {
            self.descriptors.fetch_sub(1, Ordering::AcqRel);
            return Err(Exhausted::ProcessDescriptors(self.process.limit()));
        }
        Ok(FdTicket {
            instance: Some(self.clone()),
        })
    }

    /// Descriptors this instance holds now (files nothing holds any more
    /// included, until the next [`InstanceBudget::descriptor`]).
    pub fn descriptors(&self) -> usize {
        self.descriptors.load(Ordering::Relaxed)
    }

    /// Gives back the descriptors of files nothing holds any more.
    fn reclaim_files(&self) {
        let mut files = self.lock_files();
        let before = files.len();
        files.retain(|file| file.strong_count() > 0);
        self.give_back(before - files.len());
    }

    fn give_back(&self, count: usize) {
        if count > 0 {
            self.descriptors.fetch_sub(count, Ordering::AcqRel);
            self.process.give_back(count);
        }
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, Vec<Weak<std::fs::File>>> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Charges `bytes` of host memory built for the guest. Charges add up
    /// over the call (what a guest builds and drops still counts), so the
    /// cap bounds what it holds at any time too.
    pub fn charge_memory(&self, bytes: usize) -> Result<(), Exhausted> {
        self.host_memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                self.fits(used, self.leased.load(Ordering::Acquire), bytes)
                    .then(|| used + bytes)
            })
            .map(|_| ())
            .map_err(|_| Exhausted::HostMemory(self.max_host_memory))
    }

    /// Holds `bytes` of host memory for the guest until the lease is
    /// dropped (a body buffer, for as long as the body lives), within the
    /// same cap as [`InstanceBudget::charge_memory`].
    pub fn lease_memory(self: &Arc<Self>, bytes: usize) -> Result<MemoryLease, Exhausted> {
        self.leased
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |leased| {
                self.fits(self.host_memory.load(Ordering::Acquire), leased, bytes)
                    .then(|| leased + bytes)
            })
            .map_err(|_| Exhausted::HostMemory(self.max_host_memory))?;
        Ok(MemoryLease {
            instance: self.clone(),
            bytes,
        })
    }

    /// Whether `bytes` more fit beside `built` and `leased`.
    fn fits(&self, built: usize, leased: usize, bytes: usize) -> bool {
        built
            .checked_add(leased)
            .and_then(|held| held.checked_add(bytes))
            .is_some_and(|total| total <= self.max_host_memory)
    }

    /// Host memory charged so far in this call, and leased now.
    pub fn host_memory(&self) -> usize {
        self.host_memory
            .load(Ordering::Relaxed)
            .saturating_add(self.leased.load(Ordering::Relaxed))
    }

    /// Starts a new call's host memory count, for an instance that serves
    /// more than one (what it still holds is bounded by its resource
    /// table).
    pub fn next_call(&self) {
        self.host_memory.store(0, Ordering::Release);
    }
}

impl Drop for InstanceBudget {
    fn drop(&mut self) {
        let files = self.lock_files().len();
        self.process.give_back(files);
    }
}

/// Host memory held for a guest; given back when dropped.
#[derive(Debug)]
pub struct MemoryLease {
    instance: Arc<InstanceBudget>,
    bytes: usize,
}

impl MemoryLease {
    /// The bytes it holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.instance.leased.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// One descriptor held by a guest; given back when dropped.
#[derive(Debug)]
pub struct FdTicket {
    /// `None` once handed over to a file.
    instance: Option<Arc<InstanceBudget>>,
}

impl FdTicket {
    /// Hands the descriptor over to `file`: it is given back once nothing
    /// holds the file any more.
    pub fn hold_file(mut self, file: Weak<std::fs::File>) {
        if let Some(instance) = self.instance.take() {
            instance.lock_files().push(file);
        }
    }
}

impl Drop for FdTicket {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.give_back(1);
        }
    }
}

/// The process's `RLIMIT_NOFILE`.
fn nofile() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes one `rlimit` to a valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// The soft `RLIMIT_NOFILE` (a million if it cannot be read, or has none).
fn fd_limit() -> usize {
    match nofile() {
        Ok(limit) if limit.rlim_cur != libc::RLIM_INFINITY => {
            usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
        }
        _ => 1 << 20,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new
/// soft limit. A server holding many connections needs it, and guests'
/// descriptor budget is sized from it. Call it first thing, before
/// [`ProcessBudget::get`].
pub fn raise_fd_limit() -> std::io::Result<usize> {
    let mut limit = nofile()?;
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

    /// A process budget of `limit` of its own, apart from other tests.
    fn process(limit: usize) -> &'static ProcessBudget {
        Box::leak(Box::new(ProcessBudget::new(limit)))
    }

    #[test]
    fn an_instance_holds_at_most_its_share_of_descriptors() {
        let budget = InstanceBudget::within(process(100), 3, 0);
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
        let process = process(10);
        let first = InstanceBudget::within(process, 6, 0);
        let second = InstanceBudget::within(process, 6, 0);
        let mut held: Vec<FdTicket> = (0..6).map(|_| first.descriptor().unwrap()).collect();
        held.extend((0..4).map(|_| second.descriptor().unwrap()));
        assert_eq!(
            second.descriptor().unwrap_err(),
            Exhausted::ProcessDescriptors(10)
        );
        assert_eq!(process.held(), 10);
        drop(held);
        assert_eq!(process.held(), 0);
    }

    #[test]
    fn a_files_descriptor_is_given_back_once_nothing_holds_the_file() {
        let process = process(10);
        let budget = InstanceBudget::within(process, 2, 0);
        let file = Arc::new(std::fs::File::open("/dev/null").unwrap());
        let stream = file.clone();
        budget
            .descriptor()
            .unwrap()
            .hold_file(Arc::downgrade(&file));
        drop(file);
        // A stream still holds it: still counted, for files and sockets.
        let socket = budget.descriptor().unwrap();
        assert_eq!(
            budget.descriptor().unwrap_err(),
            Exhausted::InstanceDescriptors(2)
        );
        drop(stream);
        // Nothing holds it now: given back before the next one is counted.
        let another = budget.descriptor().unwrap();
        assert_eq!((budget.descriptors(), process.held()), (2, 2));
        drop(socket);
        // An instance gives back what its files held when it goes.
        let file = Arc::new(std::fs::File::open("/dev/null").unwrap());
        budget
            .descriptor()
            .unwrap()
            .hold_file(Arc::downgrade(&file));
        drop(another);
        drop(budget);
        assert_eq!(process.held(), 0);
    }

    #[test]
    fn host_memory_adds_up_to_its_cap_within_a_call() {
        let budget = InstanceBudget::within(process(1), 0, 100);
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
        budget.next_call();
        budget.charge_memory(100).unwrap();
    }

    #[test]
    fn leased_memory_is_held_until_the_lease_goes_and_shares_the_cap() {
        let budget = InstanceBudget::within(process(1), 0, 100);
        budget.charge_memory(30).unwrap();
        let lease = budget.lease_memory(60).unwrap();
        assert_eq!(lease.bytes(), 60);
        assert_eq!(budget.host_memory(), 90);
        // Charges and leases share the one cap, both ways.
        assert_eq!(budget.charge_memory(11), Err(Exhausted::HostMemory(100)));
        assert_eq!(
            budget.lease_memory(11).unwrap_err(),
            Exhausted::HostMemory(100)
        );
        assert_eq!(
            budget.lease_memory(usize::MAX).unwrap_err(),
            Exhausted::HostMemory(100)
        );
        // A lease gives its bytes back when it goes; charges stay.
        drop(lease);
        assert_eq!(budget.host_memory(), 30);
        let again = budget.lease_memory(70).unwrap();
        // A new call forgets the charges, not what is still held.
        budget.next_call();
        assert_eq!(budget.host_memory(), 70);
        budget.charge_memory(30).unwrap();
        assert_eq!(budget.charge_memory(1), Err(Exhausted::HostMemory(100)));
        drop(again);
    }
}
