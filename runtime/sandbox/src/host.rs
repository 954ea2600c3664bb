//! The state of one store: everything a single request's instance can reach.
//!
//! A [`Host`] is built fresh for every call (by [`Sandbox::store`](crate::Sandbox::store),
//! the one way to make a store) and dropped with it. It holds only what the guest
//! was granted (its `env` and `files`); everything else starts empty: no
//! other files, no host environment, no sockets, no inherited stdio unless
//! the caller asks for it (`mayfly run`), and outbound HTTP denied.

use std::any::Any;
use std::sync::Arc;

use mayfly_host_api::budget::InstanceBudget;
use mayfly_host_api::chain::CallChain;
#[cfg(feature = "http")]
use mayfly_host_api::outbound::OutboundPolicy;
use mayfly_host_api::report::Reporter;
use mayfly_host_api::state::{ComponentState, StateCtx, StateView};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};
#[cfg(feature = "http")]
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::grants::{FilesMode, Grants};
use crate::holdings::Holdings;
use crate::limiter::Limiter;
use crate::limits::StoreLimits;
use crate::stdio::{Output, Stdio};

/// Per-store state of a component instance.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    #[cfg(feature = "http")]
    http: WasiHttpCtx,
    #[cfg(feature = "http")]
    outbound: OutboundPolicy,
    state: StateCtx,
    limits: Limiter,
    /// Descriptors and host memory the instance holds, and their budget.
    holdings: Holdings,
    /// The embedding program's own value for this call (see
    /// [`Host::set_user`]).
    user: Option<Box<dyn Any + Send>>,
}

impl Host {
    /// A host state holding exactly `grants` (and, through `state`, the
    /// guest's stores and configuration) for `call`, bounded by `limits`,
    /// with the standard streams set up as `stdio` says. Made only by
    /// [`Sandbox::store`](crate::Sandbox::store).
    ///
    /// Fails if a granted directory can no longer be opened, or if the
    /// descriptor budget has no room for the granted directories (the
    /// error is then a [`mayfly_host_api::budget::Exhausted`]).
    pub(crate) fn new(
        state: &Arc<ComponentState>,
        grants: &Grants,
        limits: &StoreLimits,
        call: CallChain,
        stdio: &Stdio,
        args: &[String],
    ) -> std::io::Result<Self> {
        let mut wasi = WasiCtx::builder();
        if !args.is_empty() {
            wasi.args(args);
        }
        match &stdio.output {
            Output::Captured(log) => {
                wasi.stdout(log.stdout()).stderr(log.stderr());
            }
            Output::Inherited => {
                wasi.inherit_stdout().inherit_stderr();
            }
        }
        if stdio.stdin {
            wasi.inherit_stdin();
        }
        if !grants.env.is_empty() {
            wasi.envs(&grants.env);
        }
        for grant in &grants.files {
            let perms = match grant.mode {
                FilesMode::ReadOnly => FsPerms::ReadOnly,
                FilesMode::ReadWrite => FsPerms::ReadWrite,
            };
            wasi.preopened_dir(grant.open_path(), &grant.guest, perms)
                .map_err(|err| std::io::Error::other(format!("{}: {err}", grant.host.display())))?;
        }
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.max_resources);
        let budget = InstanceBudget::new(limits.max_descriptors, limits.max_host_memory);
        // Each granted directory is open already: it holds a descriptor.
        let holdings = Holdings::new(
            budget.clone(),
            grants.files.len(),
            Reporter::new(
                state.component.clone(),
                call.request_id.clone(),
                "host resources",
            ),
        )
        .map_err(std::io::Error::other)?;
        let request_id = call.request_id.clone();
        #[cfg(feature = "http")]
        let outbound = OutboundPolicy::new(
            state.component.clone(),
            grants.outbound.clone(),
            grants.private_networks,
            call,
            budget,
        );
        Ok(Self {
            table,
            wasi: wasi.build(),
            #[cfg(feature = "http")]
            http: WasiHttpCtx::new(),
            #[cfg(feature = "http")]
            outbound,
            state: StateCtx::new(state.clone(), request_id),
            limits: limits.limiter(),
            holdings,
            user: None,
        })
    }

    /// The store's memory and table caps, for [`wasmtime::Store::limiter`].
    pub(crate) fn limiter_mut(&mut self) -> &mut Limiter {
        &mut self.limits
    }

    /// The state interfaces' view of this store.
    pub(crate) fn state_view(&mut self) -> StateView<'_> {
        StateView {
            ctx: &mut self.state,
            table: &mut self.table,
        }
    }

    /// What the instance holds on the host, and its budget.
    pub(crate) fn holdings(&mut self) -> &mut Holdings {
        &mut self.holdings
    }

    /// The store's memory and table caps, and whether one was hit.
    pub fn limiter(&self) -> &Limiter {
        &self.limits
    }

    /// Readies an instance that served a call for the next one: forgets the
    /// limiter's refusals (the memory it holds still counts), the header
    /// memory charged in the call, and the embedding program's user value.
    pub fn reset_for_next_call(&mut self) {
        self.limits.clear_refusals();
        self.holdings.budget().next_call();
        self.user = None;
    }

    /// Puts the embedding program's own value in this store, replacing any
    /// previous one: per-call state for the host's own imports (for
    /// plugins). Empty until set.
    pub fn set_user<T: Any + Send>(&mut self, value: T) {
        self.user = Some(Box::new(value));
    }

    /// The value set with [`Host::set_user`], if there is one of type `T`.
    pub fn user_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.user.as_mut()?.downcast_mut()
    }

    /// Takes back the value set with [`Host::set_user`], if it is a `T`
    /// (a value of another type stays in place).
    pub fn take_user<T: Any>(&mut self) -> Option<T> {
        match self.user.take()?.downcast::<T>() {
            Ok(value) => Some(*value),
            Err(other) => {
                self.user = Some(other);
                None
            }
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(feature = "http")]
impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}
