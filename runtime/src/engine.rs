//! The wasmtime [`Engine`] every Mayfly component runs on, tuned for one thing:
//! creating and throwing away an instance per request as cheaply as possible.
//!
//! Where the time goes in a fresh-instance-per-request server is the kernel:
//! mapping linear memory, faulting its pages in, and handing them back with
//! `madvise`/`munmap` (each of which flushes TLBs on every core). The settings
//! here keep all of that out of the request path:
//!
//! - the pooling allocator reserves every slot (memories, tables, fiber
//!   stacks) once, at start-up;
//! - memories are initialised copy-on-write from an image of the module;
//! - when an instance is dropped, its slot is reset in user space: the
//!   `PAGEMAP_SCAN` ioctl finds the pages the instance dirtied and only those
//!   are rewritten, with no system call that unmaps anything, up to
//!   [`EngineSettings::keep_resident`] bytes per memory;
//! - the next instance of the same component reuses a warm slot, so its pages
//!   are already resident and it takes no page faults.
//!
//! None of this shares state between requests: each instance still starts
//! from the component's pristine memory image.

use std::hash::{DefaultHasher, Hash, Hasher};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The engine-wide settings. The defaults fit a small server; every value is
/// a hard cap that the pooling allocator reserves address space for once.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How many component instances may exist at once, across all components.
    pub max_instances: u32,
    /// The largest a single linear memory may ever grow, in bytes.
    pub max_memory_bytes: usize,
    /// How much of each linear memory is reset in place (kept resident)
    /// rather than returned to the kernel when an instance is dropped.
    pub keep_resident: usize,
    /// Whether compiled code meters fuel. Costs some speed, so it is on only
    /// when a component has a `fuel` limit.
    pub consume_fuel: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident: 4 << 20,
            consume_fuel: false,
        }
    }
}

/// Core instances, memories and tables a component may use, per component
/// instance. A Rust `wasm32-wasip2` component has a handful of core instances
/// (the program and the shims that wire up its imports) and one memory.
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 8;

/// Size of the fiber stack each instance runs on.
const ASYNC_STACK_SIZE: usize = 2 << 20;

impl EngineSettings {
    /// The wasmtime [`Config`] these settings describe.
    pub fn config(&self) -> Config {
        let mut pool = PoolingAllocationConfig::new();
        let instances = self.max_instances;
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
            .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
            .total_stacks(instances)
            .max_memory_size(self.max_memory_bytes)
            .linear_memory_keep_resident(self.keep_resident)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(ASYNC_STACK_SIZE)
            .pagemap_scan(Enabled::Auto)
            .max_unused_warm_slots(instances);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .async_stack_size(ASYNC_STACK_SIZE)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .consume_fuel(self.consume_fuel)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        config
    }

    /// The settings `spec` needs: fuel metering if any component has a fuel
    /// limit.
    pub fn for_app(mut self, spec: &crate::manifest::AppSpec) -> Self {
        self.consume_fuel = spec.components.iter().any(|c| c.limits.fuel.is_some());
        self
    }

    /// Builds the engine.
    pub fn build(&self) -> wasmtime::Result<Engine> {
        Engine::new(&self.config())
    }
}

/// A fingerprint of everything that makes compiled code from one engine
/// loadable by another: the wasmtime version, the compiler settings and the
/// host CPU features. Used to key the compile cache.
pub fn fingerprint(engine: &Engine) -> u64 {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}
