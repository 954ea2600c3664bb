//! The state interfaces: `wasi:keyvalue` (store, atomics, batch),
//! `wasi:config/store` and `wasi:logging/logging`, as the WIT in
//! `wit/service` defines them, one file per interface: `keyvalue`,
//! `config`, `logging`; and Spin's variables and key-value over the same
//! state (`spin`, from `wit/spin`). This file holds what they share: the
//! per-component and per-request state, and the linker entry point.
//!
//! What a component may reach is fixed when it is loaded, in a
//! [`ComponentState`]: the store labels it was granted, its configuration
//! values, and the app's backend. Opening a store that was not granted
//! answers `access-denied`; no call traps for a guest's mistake, and no
//! backend failure takes the host down (the guest gets `other` with the
//! reason, and the host logs it).

use std::sync::Arc;

use wasmtime::component::{HasData, Linker, ResourceTable};

use crate::kv::Backend;
use crate::report::Reporter;

mod config;
mod keyvalue;
mod logging;
mod spin;

pub use self::spin::{SpinStore, check_variable_name};

/// Bindings generated from `wit/service`'s `state` world.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "mayfly:service/state",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": super::Bucket,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });

    /// Spin's synchronous interfaces (`fermyon:spin@2.0.0`), from
    /// `wit/spin` (`mayfly:spin/host`).
    pub mod spin {
        wasmtime::component::bindgen!({
            path: "wit-spin",
            world: "mayfly:spin/host",
            imports: { default: async | trappable },
            with: {
                "fermyon:spin/key-value.store": crate::state::SpinStore,
            },
        });
    }

    /// Spin's async interfaces (`spin:*@3.0.0`), from `wit/spin`
    /// (`mayfly:spin/host-async`).
    pub mod spin3 {
        wasmtime::component::bindgen!({
            path: "wit-spin",
            world: "mayfly:spin/host-async",
            imports: { default: trappable },
            with: {
                "spin:key-value/key-value.store": crate::state::SpinStore,
            },
        });
    }
}

/// Most bytes of `wasi:logging` output one request may write; beyond it,
/// messages are counted and dropped.
pub const LOG_CAP: usize = 64 << 10;
/// Most bytes of values that compare-and-swap handles may hold at once in
/// one request; a handle that would go over it is refused.
pub const CAS_HELD_CAP: usize = 8 << 20;

/// What one component may reach through the state interfaces.
pub struct ComponentState {
    /// The component's name, for logs.
    pub component: Arc<str>,
    /// Labels of the key-value stores it was granted.
    pub stores: Vec<String>,
    /// Its configuration values.
    pub config: Vec<(String, String)>,
    /// Where the app's key-value data lives, if any store is granted.
    pub backend: Option<Arc<dyn Backend>>,
}

impl std::fmt::Debug for ComponentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentState")
            .field("component", &self.component)
            .field("stores", &self.stores)
            .field(
                "config",
                &self.config.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("backend", &self.backend.is_some())
            .finish()
    }
}

impl ComponentState {
    /// A component with no stores and no configuration.
    pub fn bare(component: Arc<str>) -> Arc<Self> {
        Arc::new(Self {
            component,
            stores: Vec::new(),
            config: Vec::new(),
            backend: None,
        })
    }
}

/// The per-request side: the component's state and the request's id.
pub struct StateCtx {
    component: Arc<ComponentState>,
    request: Arc<str>,
    /// Bytes of `wasi:logging` output written, and messages dropped.
    logged: usize,
    dropped: usize,
    /// Host warnings (denied stores, backend failures), capped.
    reporter: Reporter,
    /// Bytes held by live compare-and-swap handles.
    held: usize,
    /// Spin key-value stores open.
    spin_stores: usize,
}

impl StateCtx {
    /// State for request `request` to a component.
    pub fn new(component: Arc<ComponentState>, request: Arc<str>) -> Self {
        Self {
            reporter: Reporter::new(component.component.clone(), request.clone(), "key-value"),
            component,
            request,
            logged: 0,
            dropped: 0,
            held: 0,
            spin_stores: 0,
        }
    }

    /// A warning for the operator, capped per request.
    fn report(&self, message: &str) {
        self.reporter.report(message);
    }

    /// Charges `bytes` to the compare-and-swap budget, if they fit.
    fn hold(&mut self, bytes: usize) -> Result<(), bindings::wasi::keyvalue::store::Error> {
        match self.held.checked_add(bytes) {
            Some(held) if held <= CAS_HELD_CAP => {
                self.held = held;
                Ok(())
            }
            _ => Err(bindings::wasi::keyvalue::store::Error::Other(format!(
                "compare-and-swap handles would hold more than {CAS_HELD_CAP} bytes; \
                 drop some before opening more"
            ))),
        }
    }

    fn release(&mut self, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
    }
}

impl Drop for StateCtx {
    fn drop(&mut self) {
        if self.dropped > 0 {
            self.reporter.warn(&format!(
                "{} log messages dropped (cap {LOG_CAP} bytes per request)",
                self.dropped
            ));
        }
    }
}

/// A bucket a guest opened: a granted store's label.
pub struct Bucket {
    store: String,
}

/// A compare-and-swap handle: a key and the value read from it.
pub struct Cas {
    store: String,
    key: String,
    current: Option<Vec<u8>>,
}

/// What the state interfaces' host functions work on.
pub struct StateView<'a> {
    /// The request's state.
    pub ctx: &'a mut StateCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

struct HasState;

impl HasData for HasState {
    type Data<'a> = StateView<'a>;
}

/// Adds the state interfaces to `linker`; `get` finds them in a store's
/// data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StateView<'_>,
) -> wasmtime::Result<()> {
    use self::bindings::wasi;
    wasi::keyvalue::store::add_to_linker::<T, HasState>(linker, get)?;
    wasi::keyvalue::atomics::add_to_linker::<T, HasState>(linker, get)?;
    wasi::keyvalue::batch::add_to_linker::<T, HasState>(linker, get)?;
    wasi::config::store::add_to_linker::<T, HasState>(linker, get)?;
    wasi::logging::logging::add_to_linker::<T, HasState>(linker, get)?;
    use self::bindings::spin::fermyon::spin;
    spin::variables::add_to_linker::<T, HasState>(linker, get)?;
    spin::key_value::add_to_linker::<T, HasState>(linker, get)?;
    Ok(())
}

/// Adds the state interfaces that are WASI 0.3 style (`async func`:
/// Spin's `spin:variables@3.0.0` and `spin:key-value@3.0.0`) to `linker`,
/// whose engine must have component-model async on.
pub fn add_async_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> StateView<'_>,
) -> wasmtime::Result<()> {
    use self::bindings::spin3::spin;
    spin::variables::variables::add_to_linker::<T, HasState>(linker, get)?;
    spin::key_value::key_value::add_to_linker::<T, HasState>(linker, get)?;
    Ok(())
}
