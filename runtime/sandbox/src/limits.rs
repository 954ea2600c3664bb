//! The bounds a guest runs under, and what it means to hit one.
//!
//! [`RequestLimits`] are per call (a request, a plugin call, a command run);
//! the constants are per instance and checked when a component is loaded.
//! The store's memory and table caps are enforced by the `limiter` module,
//! deadlines by the `epoch` module.

use std::time::Duration;

/// The largest table limit there is: every instance slot of the engine's
/// pool reserves room for tables of this many elements.
pub const MAX_TABLE_ELEMENTS: usize = 20_000;

/// The bounds each request to a component runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Wall-clock budget of the whole request, guest code and host waits.
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
    /// Most bytes of header data an instance may build on the host
    /// (`wasi:http` fields), added up over the call; past it, the guest
    /// traps.
    pub max_host_memory: usize,
    /// Most instances of the component running at once.
    pub instances: u32,
    /// Most requests waiting for an instance; beyond it, 503.
    pub queue: u32,
    /// Largest request body, in bytes; beyond it, 413.
    pub max_request_body: u64,
    /// Largest request head (request line and headers), in bytes; beyond
    /// it, 431. The server's `--max-header-bytes` bounds every request
    /// before it is routed; this is the component's own, possibly smaller,
    /// bound (`None`: the server's alone).
    pub max_request_head: Option<usize>,
    /// Most headers a response may carry; beyond it, 502.
    pub max_response_headers: usize,
    /// Fuel (roughly, WebAssembly instructions) per request, if metered.
    pub fuel: Option<u64>,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_table_elements: MAX_TABLE_ELEMENTS,
            max_resources: 1_000,
            max_descriptors: 128,
            max_host_memory: 1 << 20,
            instances: 200,
            queue: 1_000,
            max_request_body: 256 << 20,
            max_request_head: None,
            max_response_headers: 200,
            fuel: None,
        }
    }
}

/// Why a request was cut off by a limit, for `mayfly_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The request deadline.
    Deadline,
    /// Linear memory.
    Memory,
    /// Table elements.
    Table,
    /// Fuel.
    Fuel,
    /// The resource table.
    Resources,
    /// Request body size.
    RequestBody,
    /// Request head size.
    RequestHeaders,
    /// Response header count.
    ResponseHeaders,
    /// The component's instance limit and queue.
    Concurrency,
    /// The server's instance slots.
    InstanceSlots,
}

impl LimitKind {
    /// Every kind, in the order metrics list them.
    pub const ALL: [LimitKind; 10] = [
        LimitKind::Deadline,
        LimitKind::Memory,
        LimitKind::Table,
        LimitKind::Fuel,
        LimitKind::Resources,
        LimitKind::RequestBody,
        LimitKind::RequestHeaders,
        LimitKind::ResponseHeaders,
        LimitKind::Concurrency,
        LimitKind::InstanceSlots,
    ];

    /// The kind's name in metrics (`memory`, `request_body`...).
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
            LimitKind::Table => "table_elements",
            LimitKind::Fuel => "fuel",
            LimitKind::Resources => "resources",
            LimitKind::RequestBody => "request_body",
            LimitKind::RequestHeaders => "request_headers",
            LimitKind::ResponseHeaders => "response_headers",
            LimitKind::Concurrency => "concurrency",
            LimitKind::InstanceSlots => "instance_slots",
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
