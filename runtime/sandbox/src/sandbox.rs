//! One guest's sandbox, and the one way to make a store for it.
//!
//! A [`Sandbox`] is fixed when a guest is loaded: its name, its grants, its
//! limits, its component state (stores, configuration) and its fuel. Every
//! call then gets a fresh [`Store`] from [`Sandbox::store`], with the
//! call's own [`CallChain`]. `mayfly serve`, plugins, `mayfly run` and
//! `mayfly compare` all make their stores here, so what a guest can reach
//! and how much it can use is decided in one place.

use std::sync::Arc;
use std::time::Instant;

use mayfly_host_api::kv::Backend;
use mayfly_host_api::state::ComponentState;
use wasmtime::{Engine, Store};

use mayfly_host_api::chain::CallChain;

use crate::grants::Grants;
use crate::host::Host;
use crate::limits::StoreLimits;
use crate::stdio::Stdio;

/// What one guest may reach and use, for every call, on one engine.
#[derive(Debug, Clone)]
pub struct Sandbox {
    engine: Engine,
    state: Arc<ComponentState>,
    grants: Grants,
    limits: StoreLimits,
    /// The fuel each store starts with: the limit, `u64::MAX` on an engine
    /// that meters fuel for others, `None` on one that does not meter.
    fuel: Option<u64>,
}

/// Why a sandbox cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A fuel limit on an engine that does not meter fuel.
    #[error("it has a fuel limit, but its engine does not meter fuel")]
    FuelNotMetered,
}

impl Sandbox {
    /// The sandbox of guest `name`, on `engine`: exactly `grants`, within
    /// `limits`, with `backend` for the stores it was granted.
    pub fn new(
        engine: &Engine,
        name: Arc<str>,
        grants: Grants,
        limits: StoreLimits,
        backend: Option<Arc<dyn Backend>>,
    ) -> Result<Self, SandboxError> {
        let meters_fuel = crate::engine::meters_fuel(engine);
        let fuel = match limits.fuel {
            Some(_) if !meters_fuel => return Err(SandboxError::FuelNotMetered),
            Some(fuel) => Some(fuel),
            None if meters_fuel => Some(u64::MAX),
            None => None,
        };
        let state = Arc::new(ComponentState {
            component: name,
            stores: grants.stores.clone(),
            config: grants.config.clone(),
            backend: backend.filter(|_| !grants.stores.is_empty()),
        });
        Ok(Self {
            engine: engine.clone(),
            state,
            grants,
            limits,
            fuel,
        })
    }

    /// The engine its stores are made on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The guest's name.
    pub fn name(&self) -> &Arc<str> {
        &self.state.component
    }

    /// What the guest may reach.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The bounds every call runs under.
    pub fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    /// A fresh store for `call`: its own host state (the grants, nothing
    /// else), memory and table caps, resource table, fuel and deadline.
    /// `args` are the guest's command-line arguments, if it takes any.
    ///
    /// Fails if a granted directory can no longer be opened, or the
    /// descriptor budget has no room for the granted directories (the
    /// error then wraps a [`mayfly_host_api::budget::Exhausted`]: the
    /// server is busy, not misconfigured).
    pub fn store(
        &self,
        call: CallChain,
        stdio: &Stdio,
        args: &[String],
    ) -> std::io::Result<Store<Host>> {
        let deadline = call.deadline;
        let host = Host::new(&self.state, &self.grants, &self.limits, call, stdio, args)?;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| host.limiter_mut());
        // WASI 0.3's streams, futures and tasks are handles of the
        // component model, not host resources: bounded too. Every host
        // resource a guest holds is also one such handle, hence the room.
        store.set_max_component_handles(self.limits.max_resources.saturating_mul(2));
        self.rearm(&mut store, deadline);
        Ok(store)
    }

    /// Gives `store` (made by [`Sandbox::store`]) a new call's deadline and
    /// fuel, for an instance that serves more than one call.
    pub fn rearm(&self, store: &mut Store<Host>, deadline: Instant) {
        crate::epoch::arm_deadline(store, deadline);
        if let Some(fuel) = self.fuel {
            // Cannot fail: `fuel` is set only when the engine meters fuel.
            let _ = store.set_fuel(fuel);
        }
    }
}
