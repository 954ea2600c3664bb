//! What a store is made for: one call, and where its standard streams go.

use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "http")]
use mayfly_host_api::outbound::Dispatcher;

use crate::output::GuestLog;

/// The call a store is made for.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The call's id in logs (a request's `x-request-id`).
    pub request_id: Arc<str>,
    /// When the call must be done; the guest is stopped then.
    pub deadline: Instant,
    /// Internal hops that led to the call (0 for an outside one).
    pub hops: u32,
    /// Where the guest's calls to `NAME.mayfly.internal` go: the serving
    /// worker's dispatcher, or `None` where there is no app to call into
    /// (plugins, commands), and such calls fail inside the guest.
    #[cfg(feature = "http")]
    pub dispatcher: Option<Dispatcher>,
}

impl CallContext {
    /// A call from outside, by `request_id`, due at `deadline`, with no
    /// app to call into.
    pub fn new(request_id: Arc<str>, deadline: Instant) -> Self {
        Self {
            request_id,
            deadline,
            hops: 0,
            #[cfg(feature = "http")]
            dispatcher: None,
        }
    }
}

/// Where a guest's standard streams go.
#[derive(Clone)]
pub struct Stdio {
    /// Where stdout and stderr go.
    pub output: Output,
    /// Whether the guest reads this process's stdin (else it is empty).
    pub stdin: bool,
}

/// Where a guest's stdout and stderr go.
#[derive(Clone)]
pub enum Output {
    /// Into a capped log (see [`GuestLog`]).
    Captured(GuestLog),
    /// This process's stdout and stderr (for a command run from a
    /// terminal).
    Inherited,
}

impl Stdio {
    /// stdout and stderr into `log`, capped; an empty stdin.
    pub fn captured(log: &GuestLog) -> Self {
        Self {
            output: Output::Captured(log.clone()),
            stdin: false,
        }
    }
}
