//! One call's place in a chain of calls: the request it serves, how many
//! internal hops led to it, when it must be done, and where its own
//! internal calls go. Every store is made for one; an internal call passes
//! its caller's on, one hop further, so that a chain keeps one request id
//! and ends by its first caller's deadline.

use std::sync::Arc;
use std::time::Instant;

#[cfg(feature = "http")]
use crate::outbound::Dispatcher;

/// One call's place in a chain of calls.
#[derive(Debug, Clone)]
pub struct CallChain {
    /// The request the chain serves, as logs name it (its `x-request-id`).
    pub request_id: Arc<str>,
    /// Internal hops that led to this call (0 for an outside one).
    pub hops: u32,
    /// When the call must be done; the guest is stopped then.
    pub deadline: Instant,
    /// Where the guest's calls to `NAME.mayfly.internal` go: the serving
    /// worker's dispatcher, or `None` where there is no app to call into
    /// (plugins, commands), and such calls fail inside the guest.
    #[cfg(feature = "http")]
    pub dispatcher: Option<Dispatcher>,
}

impl CallChain {
    /// An outside call, by `request_id`, due at `deadline`, with no app to
    /// call into.
    pub fn new(request_id: Arc<str>, deadline: Instant) -> Self {
        Self {
            request_id,
            hops: 0,
            deadline,
            #[cfg(feature = "http")]
            dispatcher: None,
        }
    }

    /// The chain of a call this one makes: one hop further, due when this
    /// one is.
    pub fn next_hop(&self) -> Self {
        Self {
            hops: self.hops.saturating_add(1),
            ..self.clone()
        }
    }
}
