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
//!   [`EngineSettings::keep_resident`] bytes per memory (however many
//!   separate runs they make: wasmtime 48 stopped at 32 and decommitted the
//!   rest, which `vendor/wasmtime` fixes), and what lies past that budget is
//!   decommitted;
//! - the next instance of the same component reuses a warm slot, so the
//!   pages it had within the budget are already resident and it takes no
//!   page faults on them.
//!
//! None of this shares state between requests: each instance still starts
//! from the component's pristine memory image.

use std::hash::{DefaultHasher, Hash, Hasher};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLE_ELEMENTS, MAX_TABLES};

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
    /// Whether the engine runs WASI 0.3 components (component-model async:
    /// every store gets the concurrency state it needs, about a third more
    /// for a trivial 0.2 request in process), so it is on only when a
    /// component needs it, or when asked (`--wasi-03`).
    pub wasi_03: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 4 << 30,
            keep_resident: 4 << 20,
            consume_fuel: false,
            wasi_03: false,
        }
    }
}

/// How much address space the pool may reserve for linear memories, over
/// all its slots: half of what x86-64 and AArch64 give a process, leaving
/// the rest to everything else.
const MEMORY_ADDRESS_SPACE: u64 = 64 << 40;

/// The inaccessible guard after each memory slot, wasmtime's default on
/// 64-bit hosts.
const MEMORY_GUARD: u64 = 32 << 20;

/// How much native stack a guest's WebAssembly frames may use before it
/// traps with `call stack exhausted` (wasmtime's default, set here so that
/// the documented limit is this line).
pub const MAX_WASM_STACK: usize = 512 << 10;

/// Size of the fiber stack each instance runs on: the guest's
/// [`MAX_WASM_STACK`] plus room for the host functions it calls.
const ASYNC_STACK_SIZE: usize = 2 << 20;

impl EngineSettings {
    /// The largest a linear memory can be on this engine: `max_memory_bytes`,
    /// or less when that many instances' memories would not fit in the
    /// address space the pool may reserve (64 TiB): then
    /// each memory slot gets an equal share. A component whose memory limit
    /// is larger is refused when it is loaded.
    pub fn largest_memory(&self) -> usize {
        let slots = u64::from(self.max_instances) * u64::from(MAX_MEMORIES);
        let share = (MEMORY_ADDRESS_SPACE / slots.max(1)).saturating_sub(MEMORY_GUARD);
        // Whole WebAssembly pages.
        let share = share - share % (64 << 10);
        let wanted = u64::try_from(self.max_memory_bytes).unwrap_or(u64::MAX);
        usize::try_from(wanted.min(share)).unwrap_or(usize::MAX)
    }

    /// The wasmtime [`Config`] these settings describe.
    pub fn config(&self) -> Config {
        let mut pool = PoolingAllocationConfig::new();
        let instances = self.max_instances;
        pool.total_component_instances(instances)
            // What one component instance may use: a component that needs
            // more is refused when it is loaded, not when a request comes.
            .max_core_instances_per_component(MAX_CORE_INSTANCES)
            .max_memories_per_component(MAX_MEMORIES)
            .max_tables_per_component(MAX_TABLES)
            .total_core_instances(instances.saturating_mul(MAX_CORE_INSTANCES))
            .total_memories(instances.saturating_mul(MAX_MEMORIES))
            .total_tables(instances.saturating_mul(MAX_TABLES))
            .table_elements(MAX_TABLE_ELEMENTS)
            // One fiber stack per instance. (A WASI 0.3 guest task that
            // waits in a host call while another runs takes a second one
            // from the same pool; twice as many stacks would exceed the
            // kernel's map count at 20,000 instances.)
            .total_stacks(instances)
            .max_memory_size(self.largest_memory())
            .linear_memory_keep_resident(self.keep_resident)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(ASYNC_STACK_SIZE)
            .pagemap_scan(Enabled::Auto)
            .max_unused_warm_slots(instances);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(self.wasi_03)
            .max_wasm_stack(MAX_WASM_STACK)
            .async_stack_size(ASYNC_STACK_SIZE)
            .epoch_interruption(true)
            // Frames a trap records: each is shown in the log, its name
            // cut (see `failure`).
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(crate::failure::MAX_FRAMES))
            .memory_init_cow(true)
            .consume_fuel(self.consume_fuel)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        if self.largest_memory() < self.max_memory_bytes {
            // Slots smaller than the default 4 GiB reservation: compiled
            // code then checks bounds itself rather than relying on guard
            // pages alone, which costs a little speed, only on engines with
            // this many instances.
            config
                .memory_reservation(u64::try_from(self.largest_memory()).unwrap_or(u64::MAX))
                .memory_guard_size(MEMORY_GUARD);
        }
        config
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

/// Whether `engine` meters fuel: if it does, every store needs some.
pub fn meters_fuel(engine: &Engine) -> bool {
    // Asked once per load, never per call: the refusal is an error value.
    wasmtime::Store::new(engine, ()).set_fuel(0).is_ok()
}

/// A small engine (4 instance slots) for unit tests.
#[cfg(test)]
pub(crate) fn test_engine() -> Engine {
    EngineSettings {
        max_instances: 4,
        ..EngineSettings::default()
    }
    .build()
    .unwrap()
}

#[cfg(test)]
mod tests {
    use wasmtime::component::Component;

    use super::*;

    #[test]
    fn every_guest_fits_the_per_component_limits() {
        // WASI 0.3 guests among them: an engine that runs both.
        let engine = EngineSettings {
            max_instances: 4,
            wasi_03: true,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        for (name, path) in mayfly_guests::ALL {
            if let Err(err) = Component::from_file(&engine, path) {
                panic!("guest `{name}` does not load: {err:#}");
            }
        }
    }

    #[test]
    fn memory_slots_shrink_to_fit_many_instances() {
        let default = EngineSettings::default();
        assert_eq!(default.largest_memory(), 4 << 30);
        let many = EngineSettings {
            max_instances: 20_000,
            ..EngineSettings::default()
        };
        // 64 TiB over 40,000 memories, less each slot's guard, in pages.
        let largest = many.largest_memory();
        assert!(largest < 4 << 30 && largest > 1 << 30, "{largest}");
        assert_eq!(largest % (64 << 10), 0);
        // Small enough to reserve (the default 4 GiB slots are not).
        many.build().unwrap();
        let most = EngineSettings {
            max_instances: 100_000,
            ..EngineSettings::default()
        };
        assert!(most.largest_memory() >= 256 << 20, "the default limit fits");
    }

    #[test]
    fn a_component_needing_more_than_the_limits_is_refused_when_loaded() {
        let engine = test_engine();
        let memories = wat::parse_str(
            r#"(component
                 (core module $m (memory 1))
                 (core instance (instantiate $m))
                 (core instance (instantiate $m))
                 (core instance (instantiate $m)))"#,
        )
        .unwrap();
        let err = Component::new(&engine, memories).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "The component transitively contains 3 Wasm linear memories, which exceeds \
             the configured maximum of 2 in the pooling allocator"
        );

        let instances = format!(
            "(component (core module $m) {})",
            "(core instance (instantiate $m))".repeat(33)
        );
        let err = Component::new(&engine, wat::parse_str(instances).unwrap()).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "The component transitively contains 33 core module instances, which exceeds \
             the configured maximum of 32 in the pooling allocator"
        );
    }
}
