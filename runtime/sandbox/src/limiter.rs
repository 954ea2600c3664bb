//! A store's memory and table caps: wasmtime's [`ResourceLimiter`] for
//! every store Mayfly makes.

use wasmtime::{ResourceLimiter, Trap};

use crate::limits::{LimitKind, MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES, StoreLimits};

/// A store's memory and table caps. Growth past a cap fails inside the
/// guest (as running out of memory would); the limiter remembers that it
/// refused, so that a trap that follows can be reported as what it is.
///
/// The memory cap is a total over every linear memory of the store (a
/// store holds one component instance, which may define more than one
/// memory); the table cap applies to each table. The store also refuses
/// more core instances, memories and tables than [`MAX_CORE_INSTANCES`],
/// [`MAX_MEMORIES`] and [`MAX_TABLES`], which the engine checks when a
/// component is loaded.
#[derive(Debug)]
pub struct Limiter {
    memory: usize,
    table_elements: usize,
    /// Bytes of linear memory granted so far, over all memories. Memories
    /// never shrink, and live as long as the store.
    memory_granted: usize,
    /// The growth last granted, until it is known to have happened.
    memory_pending: usize,
    memory_refused: bool,
    table_refused: bool,
}

impl StoreLimits {
    /// The [`Limiter`] to put in a new store's state.
    pub fn limiter(&self) -> Limiter {
        Limiter::new(self.max_memory_bytes, self.max_table_elements)
    }
}

/// The limit a run that failed with `err` died of, if any: running out of
/// fuel, a refusal by `limiter` (memory, table; a guest that fails after
/// one has, in all likelihood, died of it), or a full resource table.
pub(crate) fn limit_hit(err: &wasmtime::Error, limiter: Option<&Limiter>) -> Option<LimitKind> {
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) {
        return Some(LimitKind::Fuel);
    }
    if let Some((kind, _)) = limiter.and_then(Limiter::refusal) {
        return Some(kind);
    }
    if matches!(
        err.downcast_ref::<wasmtime::component::ResourceTableError>(),
        Some(wasmtime::component::ResourceTableError::Full)
    ) {
        return Some(LimitKind::Resources);
    }
    None
}

impl Limiter {
    /// Caps of `memory` bytes over all memories and `table_elements` per
    /// table, nothing granted yet.
    pub fn new(memory: usize, table_elements: usize) -> Self {
        Self {
            memory,
            table_elements,
            memory_granted: 0,
            memory_pending: 0,
            memory_refused: false,
            table_refused: false,
        }
    }

    /// Whether a memory growth was refused in this store.
    pub fn memory_refused(&self) -> bool {
        self.memory_refused
    }

    /// The memory cap, in bytes.
    pub fn memory_limit(&self) -> usize {
        self.memory
    }

    /// Forgets earlier refusals, for an instance that serves another call;
    /// the memory it already holds still counts against the cap.
    pub fn clear_refusals(&mut self) {
        self.memory_refused = false;
        self.table_refused = false;
    }

    /// Whether a table growth was refused in this store.
    pub fn table_refused(&self) -> bool {
        self.table_refused
    }

    /// Bytes of linear memory the store's instance holds, over all its
    /// memories.
    pub fn memory_used(&self) -> usize {
        self.memory_granted
    }

    /// Which limit this store hit, and a short reason for the client, if it
    /// hit one: memory first, since a guest refused memory usually dies of
    /// it whatever else happened.
    pub fn refusal(&self) -> Option<(LimitKind, String)> {
        let (kind, limit) = if self.memory_refused {
            (LimitKind::Memory, self.memory)
        } else if self.table_refused {
            (LimitKind::Table, self.table_elements)
        } else {
            return None;
        };
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        Some((kind, kind.reached(limit)?))
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let Some(total) = self
            .memory_granted
            .checked_add(growth)
            .filter(|total| *total <= self.memory)
        else {
            self.memory_refused = true;
            return Ok(false);
        };
        // Beyond the memory's own declared maximum, wasmtime refuses the
        // growth anyway: the guest's own business, and nothing is granted.
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        // Counted now; given back if the growth then fails in the
        // allocator (`memory_grow_failed`).
        self.memory_granted = total;
        self.memory_pending = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_granted = self.memory_granted.saturating_sub(self.memory_pending);
        self.memory_pending = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        usize::try_from(MAX_CORE_INSTANCES).unwrap_or(usize::MAX)
    }

    fn memories(&self) -> usize {
        usize::try_from(MAX_MEMORIES).unwrap_or(usize::MAX)
    }

    fn tables(&self) -> usize {
        usize::try_from(MAX_TABLES).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Engine, Store};

    use super::*;
    use crate::engine::{EngineSettings, test_engine as engine};

    /// A store with `limits`' limiter, never interrupted.
    fn store(engine: &Engine, limits: &StoreLimits) -> Store<Limiter> {
        let mut store = Store::new(engine, limits.limiter());
        store.limiter(|limiter| limiter);
        store.set_epoch_deadline(u64::MAX);
        store
    }

    /// Instantiates `wat` and calls its export `name` with `n`.
    fn call(store: &mut Store<Limiter>, component: &Component, name: &str, n: u32) -> i32 {
        let instance = Linker::new(store.engine())
            .instantiate(&mut *store, component)
            .unwrap();
        let func = instance
            .get_typed_func::<(u32,), (i32,)>(&mut *store, name)
            .unwrap();
        let (result,) = func.call(&mut *store, (n,)).unwrap();
        result
    }

    /// Exports `grow(n)`, which grows a table of one element by `n` and
    /// returns its old size, or -1 if the growth was refused.
    const TABLE: &str = r#"(component
        (core module $m
          (table $t 1 funcref)
          (func (export "grow") (param i32) (result i32)
            (table.grow $t (ref.null func) (local.get 0))))
        (core instance $i (instantiate $m))
        (func (export "grow") (param "n" u32) (result s32)
          (canon lift (core func $i "grow"))))"#;

    #[test]
    fn table_growth_past_the_limit_is_refused_and_reported() {
        let engine = engine();
        let component = Component::new(&engine, wat::parse_str(TABLE).unwrap()).unwrap();
        let limits = StoreLimits {
            max_table_elements: 100,
            ..StoreLimits::default()
        };

        let mut within = store(&engine, &limits);
        assert_eq!(call(&mut within, &component, "grow", 99), 1);
        assert_eq!(within.data().refusal(), None);

        let mut beyond = store(&engine, &limits);
        assert_eq!(call(&mut beyond, &component, "grow", 100), -1);
        assert!(beyond.data().table_refused());
        assert!(!beyond.data().memory_refused());
        assert_eq!(
            beyond.data().refusal(),
            Some((
                LimitKind::Table,
                "table limit of 100 elements reached".to_string()
            ))
        );
    }

    #[test]
    fn a_table_larger_than_the_limit_cannot_even_be_instantiated() {
        let engine = engine();
        let component = Component::new(&engine, wat::parse_str(TABLE).unwrap()).unwrap();
        let limits = StoreLimits {
            max_table_elements: 1,
            ..StoreLimits::default()
        };
        let mut fits = store(&engine, &limits);
        assert_eq!(call(&mut fits, &component, "grow", 0), 1);

        let big = TABLE.replace("(table $t 1 funcref)", "(table $t 2 funcref)");
        let component = Component::new(&engine, wat::parse_str(big).unwrap()).unwrap();
        let mut store = store(&engine, &limits);
        let err = Linker::new(&engine)
            .instantiate(&mut store, &component)
            .map(|_| ())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("exceeds table limits"),
            "{err:#}"
        );
        assert_eq!(
            store.data().refusal().map(|(kind, _)| kind),
            Some(LimitKind::Table)
        );
    }

    /// Two core instances with a memory of one page each; `grow0(n)` and
    /// `grow1(n)` grow one of them by `n` pages and return its old size in
    /// pages, or -1.
    const TWO_MEMORIES: &str = r#"(component
        (core module $m
          (memory 1)
          (func (export "grow") (param i32) (result i32)
            (memory.grow (local.get 0))))
        (core instance $a (instantiate $m))
        (core instance $b (instantiate $m))
        (func (export "grow0") (param "n" u32) (result s32)
          (canon lift (core func $a "grow")))
        (func (export "grow1") (param "n" u32) (result s32)
          (canon lift (core func $b "grow"))))"#;

    #[test]
    fn the_memory_limit_is_a_total_over_all_of_an_instances_memories() {
        const PAGE: usize = 64 << 10;
        let engine = engine();
        let component = Component::new(&engine, wat::parse_str(TWO_MEMORIES).unwrap()).unwrap();
        let limits = StoreLimits {
            max_memory_bytes: 4 * PAGE,
            ..StoreLimits::default()
        };
        let mut store = store(&engine, &limits);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &component)
            .unwrap();
        // Both initial pages count.
        assert_eq!(store.data().memory_used(), 2 * PAGE);
        let grow = |store: &mut Store<Limiter>, name: &str, pages: u32| {
            let func = instance
                .get_typed_func::<(u32,), (i32,)>(&mut *store, name)
                .unwrap();
            let (result,) = func.call(&mut *store, (pages,)).unwrap();
            result
        };
        assert_eq!(grow(&mut store, "grow0", 1), 1);
        assert_eq!(grow(&mut store, "grow1", 1), 1);
        assert_eq!(store.data().memory_used(), 4 * PAGE);
        assert_eq!(store.data().refusal(), None);
        // Each memory is only two pages, well within four, but together
        // they are at the limit.
        assert_eq!(grow(&mut store, "grow0", 1), -1);
        assert_eq!(grow(&mut store, "grow1", 1), -1);
        assert_eq!(store.data().memory_used(), 4 * PAGE);
        assert_eq!(
            store.data().refusal(),
            Some((
                LimitKind::Memory,
                "memory limit of 256KiB reached".to_string()
            ))
        );
    }

    #[test]
    fn a_growth_the_allocator_fails_is_not_counted() {
        const PAGE: usize = 64 << 10;
        // Pool slots of 1 MiB, under a 64 MiB cap: the allocator, not the
        // cap, refuses a growth past 1 MiB.
        let engine = EngineSettings {
            max_instances: 1,
            max_memory_bytes: 16 * PAGE,
            ..EngineSettings::default()
        }
        .build()
        .unwrap();
        let component = Component::new(&engine, wat::parse_str(TWO_MEMORIES).unwrap()).unwrap();
        let limits = StoreLimits {
            max_memory_bytes: 64 << 20,
            ..StoreLimits::default()
        };
        let mut store = store(&engine, &limits);
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &component)
            .unwrap();
        let grow = instance
            .get_typed_func::<(u32,), (i32,)>(&mut store, "grow0")
            .unwrap();
        assert_eq!(grow.call(&mut store, (100,)).unwrap(), (-1,));
        // Not the cap's refusal, and not charged to it.
        assert_eq!(store.data().refusal(), None);
        assert_eq!(store.data().memory_used(), 2 * PAGE);
        assert_eq!(grow.call(&mut store, (1,)).unwrap(), (1,));
        assert_eq!(store.data().memory_used(), 3 * PAGE);
    }

    #[test]
    fn the_store_refuses_more_instances_memories_and_tables_than_a_component_may_have() {
        let limiter = StoreLimits::default().limiter();
        assert_eq!(limiter.instances(), 32);
        assert_eq!(limiter.memories(), 2);
        assert_eq!(limiter.tables(), 8);
    }
}
