//! The bounds of one component's requests: what its store runs under (the
//! sandbox's [`StoreLimits`]) and what the HTTP path enforces around it
//! ([`HttpLimits`]: concurrency, request body and head, response headers),
//! and which of them a request was cut off by ([`Limit`], as metrics name
//! it).

use mayfly_sandbox::{LimitKind, StoreLimits};

/// The bounds of the HTTP path around a component's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most instances of the component running at once: at least 1, at
    /// most the server's `--max-instances` (see [`HttpLimits::instances_within`]).
    pub instances: u32,
    /// Most requests waiting for an instance; beyond it, 503.
    pub queue: u32,
    /// Largest request body, in bytes; beyond it, 413.
    pub max_request_body: u64,
    /// Largest request head (request line and headers), in bytes; beyond
    /// it, 431. The server's `--max-header-bytes` bounds every request
    /// before it is routed; this is the component's own, possibly smaller,
    /// bound (`None`: the server's alone).
    pub max_request_head: Option<usize>,
    /// Most headers a response may carry; beyond it, 502.
    pub max_response_headers: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            instances: 200,
            queue: 1_000,
            max_request_body: 256 << 20,
            max_request_head: None,
            max_response_headers: 200,
        }
    }
}

impl HttpLimits {
    /// Whether `instances` fits a server of `most` instances: the one
    /// check of it, made when a component is loaded.
    pub fn instances_within(&self, most: u32) -> Result<(), String> {
        match self.instances {
            0 => Err(
                "0 is out of range: use at least 1 (at most the server's --max-instances)".into(),
            ),
            n if n > most => Err(format!(
                "{n} instances is more than this server's --max-instances of {most}"
            )),
            _ => Ok(()),
        }
    }
}

/// Everything one component's requests run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Its store's.
    pub store: StoreLimits,
    /// The HTTP path's around it.
    pub http: HttpLimits,
}

/// Why a request was cut off by a limit, for `mayfly_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// One of its store's (deadline, memory, table, fuel, resources).
    Store(LimitKind),
    /// Request body size.
    RequestBody,
    /// Request head size.
    RequestHeaders,
    /// Response header count.
    ResponseHeaders,
    /// The component's instance limit and queue.
    Concurrency,
    /// The server's instance slots.
    InstanceSlots,
}

impl Limit {
    /// Every kind, in the order metrics list them.
    pub const ALL: [Limit; 10] = [
        Limit::Store(LimitKind::Deadline),
        Limit::Store(LimitKind::Memory),
        Limit::Store(LimitKind::Table),
        Limit::Store(LimitKind::Fuel),
        Limit::Store(LimitKind::Resources),
        Limit::RequestBody,
        Limit::RequestHeaders,
        Limit::ResponseHeaders,
        Limit::Concurrency,
        Limit::InstanceSlots,
    ];

    /// The kind's name in metrics (`memory`, `request_body`...).
    pub fn name(self) -> &'static str {
        match self {
            Limit::Store(kind) => kind.name(),
            Limit::RequestBody => "request_body",
            Limit::RequestHeaders => "request_headers",
            Limit::ResponseHeaders => "response_headers",
            Limit::Concurrency => "concurrency",
            Limit::InstanceSlots => "instance_slots",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_checked_against_the_server_in_one_place() {
        let limits = |instances| HttpLimits {
            instances,
            ..HttpLimits::default()
        };
        assert_eq!(limits(1).instances_within(1), Ok(()));
        assert_eq!(
            limits(0).instances_within(10),
            Err("0 is out of range: use at least 1 (at most the server's --max-instances)".into())
        );
        assert_eq!(
            limits(11).instances_within(10),
            Err("11 instances is more than this server's --max-instances of 10".into())
        );
    }

    #[test]
    fn every_kind_has_its_own_name() {
        let mut names: Vec<_> = Limit::ALL.iter().map(|kind| kind.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Limit::ALL.len());
    }
}
