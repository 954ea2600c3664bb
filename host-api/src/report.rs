//! Warnings for the operator about what a guest did in one request, tagged
//! with the component and the request, and capped: a guest that fails in a
//! loop cannot flood the host's log.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::escape::escape_capped;

/// What one log event a guest causes (a line of its output, a
/// `wasi:logging` message) costs against its per-request cap besides its
/// own text: about what the log line around it takes (level, component,
/// request id, stream). An empty line is not free.
pub const LINE_COST: usize = 64;

/// The most one warning about a request takes in the log, in bytes: what
/// it quotes of a guest (a string it passed, its trap) is cut to fit.
pub const MESSAGE_CAP: usize = 4 << 10;

/// Warnings of one kind logged per request; past it, they are counted and
/// summed up in one line when the request ends.
pub const REPORT_CAP: usize = 10;

/// The warnings of one kind (`topic`) for one request to one component.
#[derive(Debug)]
pub struct Reporter {
    component: Arc<str>,
    request: Arc<str>,
    topic: &'static str,
    reported: AtomicUsize,
    suppressed: AtomicUsize,
}

impl Reporter {
    /// Warnings about `topic` ("key-value", say) for `request` to
    /// `component`.
    pub fn new(component: Arc<str>, request: Arc<str>, topic: &'static str) -> Self {
        Self {
            component,
            request,
            topic,
            reported: AtomicUsize::new(0),
            suppressed: AtomicUsize::new(0),
        }
    }

    /// Logs `message` (escaped, cut to [`MESSAGE_CAP`]), whatever was
    /// logged before.
    pub fn warn(&self, message: &str) {
        let message = escape_capped(message, MESSAGE_CAP);
        tracing::warn!(
            component = %self.component,
            request_id = %self.request,
            "{message}"
        );
    }

    /// Logs `message` if fewer than [`REPORT_CAP`] were; else counts it.
    pub fn report(&self, message: &str) {
        if self.reported.fetch_add(1, Ordering::Relaxed) < REPORT_CAP {
            self.warn(message);
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let suppressed = *self.suppressed.get_mut();
        if suppressed > 0 {
            self.warn(&format!(
                "{suppressed} more {} warnings suppressed (at most {REPORT_CAP} per request)",
                self.topic
            ));
        }
    }
}
