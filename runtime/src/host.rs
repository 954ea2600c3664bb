//! The state of one store: everything a single request's instance can reach.
//!
//! A [`Host`] is built fresh for every request and dropped with it. It holds
//! only what the component was granted (its `env` and `files`); everything
//! else starts empty: no other files, no host environment, no sockets, no
//! inherited stdio, and outbound HTTP denied.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use mayfly_host_api::OutboundPolicy;
use mayfly_host_api::state::{ComponentState, StateCtx, StateView};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_log::GuestLog;
use crate::limits::{Limiter, RequestLimits};
use crate::manifest::{FilesMode, Grants};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Per-store state of a component instance.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    outbound: OutboundPolicy,
    state: StateCtx,
    pub(crate) limits: Limiter,
    /// The embedding program's own value for this call (see
    /// [`Host::set_user`]).
    pub(crate) user: Option<Box<dyn Any + Send>>,
}

impl Host {
    /// A host state for request `request` to `component`: exactly its
    /// `grants` (and, through `component`, its stores and configuration),
    /// bounded by its `limits`, with stdout and stderr going to `log`.
    ///
    /// Fails only if a granted directory can no longer be opened.
    pub fn new(
        component: &Arc<ComponentState>,
        request: &Arc<str>,
        limits: &RequestLimits,
        grants: &Grants,
        log: &GuestLog,
    ) -> std::io::Result<Self> {
        Self::with_wasi(component, request, limits, grants, |wasi| {
            wasi.stdout(log.stdout()).stderr(log.stderr());
        })
    }

    /// Marks this instance as reached after `hops` internal calls, for the
    /// hop limit of further calls.
    pub fn set_hops(&mut self, hops: u32) {
        self.outbound = self.outbound.clone().after_hops(hops);
    }

    /// Makes the internal calls of this instance carry `deadline`, the
    /// deadline of the request it serves.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.outbound.set_deadline(deadline);
    }

    /// The store's memory and table caps, for [`wasmtime::Store::limiter`].
    pub fn limiter_mut(&mut self) -> &mut Limiter {
        &mut self.limits
    }

    /// The store's memory and table caps, and whether one was hit.
    pub fn limiter(&self) -> &Limiter {
        &self.limits
    }

    /// Puts the embedding program's own value in this store, replacing any
    /// previous one: per-call state for the host's own imports (for
    /// plugins, see [`crate::plugin`]). Empty until set.
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

    /// Like [`Host::new`], with `configure` adding to the WASI context
    /// (arguments, stdio) before the grants go in.
    pub fn with_wasi(
        component: &Arc<ComponentState>,
        request: &Arc<str>,
        limits: &RequestLimits,
        grants: &Grants,
        configure: impl FnOnce(&mut WasiCtxBuilder),
    ) -> std::io::Result<Self> {
        let mut wasi = WasiCtx::builder();
        configure(&mut wasi);
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
        Ok(Self {
            table,
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            outbound: OutboundPolicy::new(
                component.component.clone(),
                grants.outbound.clone(),
                request.clone(),
            ),
            state: StateCtx::new(component.clone(), request.clone()),
            limits: limits.limiter(),
            user: None,
        })
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

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// A linker with every interface Mayfly provides: WASI 0.2 (whose
/// capabilities each store grants or not), `wasi:http`, and the state
/// interfaces (`wasi:keyvalue`, `wasi:config`, `wasi:logging`).
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    mayfly_host_api::state::add_to_linker(&mut linker, |host: &mut Host| StateView {
        ctx: &mut host.state,
        table: &mut host.table,
    })?;
    Ok(linker)
}
