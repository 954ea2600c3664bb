//! Calling a loaded plugin: a fresh (or, if allowed, reused) instance under
//! the plugin's deadline and limits, and what a failure means.

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use mayfly_sandbox::output::GuestLog;
use mayfly_sandbox::{CallChain, Ended, Grants, Host, LimitKind, Sandbox, Stdio, StoreLimits};
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

use crate::engine::{CapabilityDenied, PluginEngine};
use crate::error::{HostError, PluginError};

/// Most instances of one plugin kept idle between calls, with
/// [`PluginBuilder::reuse_instances`](crate::PluginBuilder::reuse_instances); more are dropped after their call.
pub const MAX_IDLE_INSTANCES: usize = 4;

/// A loaded plugin, ready to call. Share it (in an `Arc`) between threads
/// and tasks as needed.
pub struct Plugin {
    pub(crate) pre: InstancePre<Host>,
    /// Its grants and limits; no stores, no configuration.
    pub(crate) sandbox: Sandbox,
    pub(crate) reuse: u32,
    /// Instances that may serve more calls (only with `reuse > 1`), at most
    /// `MAX_IDLE_INSTANCES`.
    pub(crate) idle: Mutex<Vec<Warm>>,
    /// Keeps the epoch ticker running while the plugin lives.
    pub(crate) _keep: PluginEngine,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", self.sandbox.name())
            .field("limits", self.sandbox.limits())
            .field("reuse", &self.reuse)
            .finish_non_exhaustive()
    }
}

/// An instance kept for more calls.
pub(crate) struct Warm {
    store: Store<Host>,
    instance: Instance,
    log: GuestLog,
    calls: u32,
}

impl Warm {
    /// Resets what belongs to one call, before the instance waits for the
    /// next: the host's user state, the limits' refusal flags, and the
    /// captured output (what a call wrote is not the next call's, and must
    /// not use up its share of the cap). The memory the instance holds
    /// stays counted.
    fn recycle(&mut self) {
        self.store.data_mut().reset_for_next_call();
        self.log.clear();
    }
}

impl Plugin {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.sandbox.name()
    }

    /// The limits each call runs under.
    pub fn limits(&self) -> &StoreLimits {
        self.sandbox.limits()
    }

    /// What the plugin may reach.
    pub fn grants(&self) -> &Grants {
        self.sandbox.grants()
    }

    /// The pre-instantiated component, for hosts that build their own
    /// bindings' `*Pre` type from it.
    pub fn instance_pre(&self) -> &InstancePre<Host> {
        &self.pre
    }

    /// Calls the plugin: `f` gets the store and the instance (fresh, unless
    /// reuse was enabled) and calls the plugin's exports through the host's
    /// bindings. The whole call, instantiation included, runs under the
    /// plugin's deadline, memory cap and fuel.
    ///
    /// `f` may put per-call state for the host's imports in the store with
    /// [`Host::set_user`] before calling the plugin, and take it back with
    /// [`Host::take_user`]; the store starts every call without one.
    ///
    /// An async export (of a world with component-model async) is called
    /// inside [`Store::run_concurrent`], in `f`; see the
    /// [crate docs](crate#async-worlds).
    ///
    /// An error `f` returns is taken to be the plugin's doing
    /// ([`PluginError::Misbehaved`], or the trap or limit it was) unless it
    /// is a [`HostError`]: wrap the host's own failures in one to have them
    /// reported as [`PluginError::Host`].
    ///
    /// The call must run inside a Tokio runtime with its time driver enabled
    /// (`#[tokio::main]`, or a runtime built with `enable_time` or
    /// `enable_all`), which enforces the deadline; elsewhere it panics.
    pub async fn call<R, F>(&self, f: F) -> Result<R, PluginError>
    where
        F: AsyncFnOnce(&mut Store<Host>, &Instance) -> wasmtime::Result<R>,
    {
        // (The builder refused a timeout this far off; keep the far future.)
        let now = Instant::now();
        let deadline = now.checked_add(self.limits().timeout).unwrap_or(now);
        let reused = self.take_idle();
        let work = async {
            let mut warm = match reused {
                Some(mut warm) => {
                    self.sandbox.rearm(&mut warm.store, deadline);
                    warm
                }
                None => self.instantiate(deadline).await?,
            };
            let result = f(&mut warm.store, &warm.instance).await;
            Ok::<_, PluginError>((result, warm))
        };
        // Past the deadline the whole call, store included, is dropped.
        match tokio::time::timeout_at(deadline.into(), work).await {
            Err(_elapsed) => Err(PluginError::DeadlineExceeded {
                plugin: self.name().to_string(),
                timeout: self.limits().timeout,
            }),
            Ok(Err(err)) => Err(err),
            Ok(Ok((Ok(value), mut warm))) => {
                warm.calls += 1;
                if warm.calls < self.reuse && !self.tasks_left(&mut warm.store).await {
                    warm.recycle();
                    let mut idle = self
                        .idle
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if idle.len() < MAX_IDLE_INSTANCES {
                        idle.push(warm);
                    }
                }
                Ok(value)
            }
            Ok(Ok((Err(err), warm))) => {
                Err(self.classify(err, Some(warm.store.data()), Some(&warm.log), false))
            }
        }
    }

    /// Whether tasks the plugin started still run in `store` (only an async
    /// export can leave any, running after it returned). Such an instance
    /// is not reused: they would go on in the next call, on its time.
    async fn tasks_left(&self, store: &mut Store<Host>) -> bool {
        // Only an engine with component-model async runs tasks.
        if !crate::engine::runs_async(self.pre.engine()) {
            return false;
        }
        // The event loop polls this first, and it is ready at once: nothing
        // of the plugin's runs.
        store
            .run_concurrent(async |accessor| {
                std::future::poll_fn(|cx| {
                    Poll::Ready(accessor.poll_no_interesting_tasks(cx).is_pending())
                })
                .await
            })
            .await
            .unwrap_or(true)
    }

    /// An idle instance (reset when it was put back), if reuse is on and
    /// there is one.
    fn take_idle(&self) -> Option<Warm> {
        if self.reuse <= 1 {
            return None;
        }
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    async fn instantiate(&self, deadline: Instant) -> Result<Warm, PluginError> {
        let log = GuestLog::default();
        let call = CallChain::new(Arc::from("plugin-call"), deadline);
        let mut store = self
            .sandbox
            .store(call, &Stdio::captured(&log), &[])
            .map_err(|err| {
                PluginError::Host(format!(
                    "plugin `{}`: cannot open a granted directory: {err}",
                    self.name()
                ))
            })?;
        match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => Ok(Warm {
                store,
                instance,
                log,
                calls: 0,
            }),
            // The store is still here: whether it refused memory tells a
            // plugin too big for its cap from other failures.
            Err(err) => Err(self.classify(err, Some(store.data()), Some(&log), true)),
        }
    }

    /// What `err`, from a call (or an instantiation) whose store held
    /// `host` and wrote to `log`, means to the host: how the sandbox says
    /// it ended, told as a [`PluginError`].
    fn classify(
        &self,
        err: wasmtime::Error,
        host: Option<&Host>,
        log: Option<&GuestLog>,
        instantiating: bool,
    ) -> PluginError {
        let plugin = self.name().to_string();
        // The host's own message: what wasmtime added on the way out of an
        // import (the plugin's backtrace) is not the host's failure.
        if let Some(host_error) = err.downcast_ref::<HostError>() {
            return PluginError::Host(format!("plugin `{plugin}`: {host_error}"));
        }
        if let Some(denied) = err.downcast_ref::<CapabilityDenied>() {
            return PluginError::Denied {
                plugin,
                capability: denied.0.to_string(),
            };
        }
        let limits = self.limits();
        let count = |limit: u64| usize::try_from(limit).unwrap_or(usize::MAX);
        let ended = Ended::failed(err, limits, host.map(Host::limiter));
        let reason = |failure: &mayfly_sandbox::Failure| {
            mayfly_sandbox::failure::reason(failure.error(), mayfly_sandbox::failure::LOG_CAP)
        };
        match ended {
            Ended::PoolFull => PluginError::Overloaded { plugin },
            Ended::Deadline => PluginError::DeadlineExceeded {
                plugin,
                timeout: limits.timeout,
            },
            // (A refused memory covers an initial memory larger than the
            // cap, which fails the instantiation without a trap.)
            Ended::Limit { kind, limit, .. } => match kind {
                LimitKind::Fuel => PluginError::FuelExhausted {
                    plugin,
                    fuel: limit,
                },
                LimitKind::Memory => PluginError::MemoryLimit {
                    plugin,
                    limit: count(limit),
                },
                LimitKind::Table => PluginError::TableLimit {
                    plugin,
                    limit: count(limit),
                },
                LimitKind::Resources => PluginError::ResourceLimit {
                    plugin,
                    limit: count(limit),
                },
                LimitKind::Deadline => PluginError::DeadlineExceeded {
                    plugin,
                    timeout: limits.timeout,
                },
            },
            Ended::Failed(failure) => match failure.trap() {
                Some(trap) => PluginError::Trap {
                    plugin,
                    message: guest_message(trap, log),
                    backtrace: failure.backtrace(),
                },
                None if instantiating => PluginError::Invalid {
                    plugin,
                    reason: format!("it cannot be instantiated: {}", reason(&failure)),
                },
                None => PluginError::Misbehaved {
                    plugin,
                    reason: reason(&failure),
                },
            },
            ended @ (Ended::Finished | Ended::Exited(_)) => PluginError::Misbehaved {
                plugin,
                reason: ended.reason(mayfly_sandbox::failure::LOG_CAP),
            },
        }
    }
}

/// The trap, with what the guest last said on stderr (a panic message,
/// usually).
fn guest_message(trap: &wasmtime::Trap, log: Option<&GuestLog>) -> String {
    let said = log.map(GuestLog::stderr_text).unwrap_or_default();
    let said = said.trim();
    if said.is_empty() {
        trap.to_string()
    } else {
        format!("{trap}: {said}")
    }
}
