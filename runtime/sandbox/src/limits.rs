//! The bounds a guest's store runs under, and what it means to hit one.
//!
//! [`StoreLimits`] are per call (a request, a plugin call, a command run):
//! what the sandbox enforces in the store. Bounds of a use of it (a
//! server's concurrency, an HTTP request's body) belong to that use
//! (`mayfly-serve`'s `HttpLimits`). The constants are per instance and
//! checked when a component is loaded. The store's memory and table caps
//! are enforced by the `limiter` module, deadlines by the `epoch` module.

use std::time::Duration;

/// The largest table limit there is: every instance slot of the engine's
/// pool reserves room for tables of this many elements.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The bounds each call's store runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Wall-clock budget of the whole call, guest code and host waits.
    pub timeout: Duration,
    /// Most linear memory an instance may hold, in bytes, over all its
    /// memories.
    pub max_memory_bytes: usize,
    /// Largest table an instance may grow to, in elements.
    pub max_table_elements: usize,
    /// Most host resources (streams, fields, requests...) an instance may
    /// hold at once.
    pub max_resources: usize,
    /// Most open files and outbound connections an instance may hold at
    /// once (each is a host file descriptor); past it, the open or request
    /// fails in the guest. Every guest of the process also shares one
    /// budget, half of the process's descriptor limit.
    pub max_descriptors: usize,
    /// Most host memory an instance may make the host keep for it: what
    /// it builds (`wasi:http` fields, request targets), added up over the
    /// call, and the body buffers it holds; past it, the guest traps.
    pub max_host_memory: usize,
    /// Fuel (roughly, WebAssembly instructions) per call, if metered.
    pub fuel: Option<u64>,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_table_elements: MAX_TABLE_ELEMENTS,
            max_resources: 1_000,
            max_descriptors: 128,
            max_host_memory: 1 << 20,
            fuel: None,
        }
    }
}

impl StoreLimits {
    /// The value of the limit of `kind`, as a number: the deadline in
    /// milliseconds, memory in bytes, table elements, fuel units (0 when
    /// unmetered), resources.
    pub fn value_of(&self, kind: LimitKind) -> u64 {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        match kind {
            LimitKind::Deadline => u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            LimitKind::Memory => count(self.max_memory_bytes),
            LimitKind::Table => count(self.max_table_elements),
            LimitKind::Fuel => self.fuel.unwrap_or(0),
            LimitKind::Resources => count(self.max_resources),
        }
    }
}

/// Which of a store's limits a call was cut off by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The deadline.
    Deadline,
    /// Linear memory.
    Memory,
    /// Table elements.
    Table,
    /// Fuel.
    Fuel,
    /// The resource table.
    Resources,
}

impl LimitKind {
    /// Every kind, in the order metrics list them.
    pub const ALL: [LimitKind; 5] = [
        LimitKind::Deadline,
        LimitKind::Memory,
        LimitKind::Table,
        LimitKind::Fuel,
        LimitKind::Resources,
    ];

    /// The kind's name in metrics (`memory`, `table_elements`...).
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
            LimitKind::Table => "table_elements",
            LimitKind::Fuel => "fuel",
            LimitKind::Resources => "resources",
        }
    }

    /// What reaching this kind's `limit` is called in a log line or an
    /// answer (`memory limit of 256MiB reached`, `table limit of 20000
    /// elements reached`), for the kinds a store's limiter refuses; the
    /// others say it their own way.
    pub fn reached(self, limit: u64) -> Option<String> {
        match self {
            LimitKind::Memory => Some(format!(
                "memory limit of {} reached",
                crate::units::format_size(limit)
            )),
            LimitKind::Table => Some(format!("table limit of {limit} elements reached")),
            LimitKind::Deadline | LimitKind::Fuel | LimitKind::Resources => None,
        }
    }
}

/// Core module instances one component instance may be made of. A Rust
/// `wasm32-wasip2` component has three (the program and the shims that wire
/// up its imports); toolchains that link several libraries into one
/// component have more. A component that needs more is refused when it is
/// loaded.
pub const MAX_CORE_INSTANCES: u32 = 32;
/// Linear memories one component instance may define. A Rust component has
/// one.
pub const MAX_MEMORIES: u32 = 2;
/// Tables one component instance may define.
pub const MAX_TABLES: u32 = 8;
