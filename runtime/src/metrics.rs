//! Prometheus metrics: counters, gauges and histograms kept in atomics, per
//! component (continuous across versions of a component), and rendered in
//! the Prometheus text format on the admin port's `/metrics`.
//!
//! Recording is a few relaxed atomic adds per request; nothing is
//! allocated on the request path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::app::App;

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Why a request was cut off by a limit, for `mayfly_limit_hits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// The request deadline.
    Deadline,
    /// Linear memory.
    Memory,
    /// Table elements.
    Table,
    /// Fuel.
    Fuel,
    /// The resource table.
    Resources,
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

impl LimitKind {
    const ALL: [LimitKind; 10] = [
        LimitKind::Deadline,
        LimitKind::Memory,
        LimitKind::Table,
        LimitKind::Fuel,
        LimitKind::Resources,
        LimitKind::RequestBody,
        LimitKind::RequestHeaders,
        LimitKind::ResponseHeaders,
        LimitKind::Concurrency,
        LimitKind::InstanceSlots,
    ];

    fn name(self) -> &'static str {
        match self {
            LimitKind::Deadline => "deadline",
            LimitKind::Memory => "memory",
            LimitKind::Table => "table_elements",
            LimitKind::Fuel => "fuel",
            LimitKind::Resources => "resources",
            LimitKind::RequestBody => "request_body",
            LimitKind::RequestHeaders => "request_headers",
            LimitKind::ResponseHeaders => "response_headers",
            LimitKind::Concurrency => "concurrency",
            LimitKind::InstanceSlots => "instance_slots",
        }
    }
}

/// Lowest and highest status code counted by status.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// What is counted for one component.
pub struct ComponentMetrics {
    statuses: Box<[AtomicU64]>,
    /// Time to the response head.
    pub latency: Histogram,
    /// Time to create an instance.
    pub instantiation: Histogram,
    traps: AtomicU64,
    limits: [AtomicU64; LimitKind::ALL.len()],
}

impl Default for ComponentMetrics {
    fn default() -> Self {
        Self {
            statuses: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            latency: Histogram::default(),
            instantiation: Histogram::default(),
            traps: AtomicU64::new(0),
            limits: Default::default(),
        }
    }
}

impl ComponentMetrics {
    /// Counts a response with `status`, `elapsed` after the request arrived.
    pub fn request(&self, status: u16, elapsed: Duration) {
        let index = usize::from(status.saturating_sub(FIRST_STATUS)).min(STATUSES - 1);
        self.statuses[index].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    /// Counts a trap.
    pub fn trap(&self) {
        self.traps.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a limit hit.
    pub fn limit(&self, kind: LimitKind) {
        let index = LimitKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.limits[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every component's metrics, by name, for the life of the process.
static REGISTRY: LazyLock<Mutex<BTreeMap<String, Arc<ComponentMetrics>>>> =
    LazyLock::new(Default::default);

/// Requests no route matched.
static UNROUTED: AtomicU64 = AtomicU64::new(0);

/// The metrics of component `name` (the same for all its versions).
pub fn component(name: &str) -> Arc<ComponentMetrics> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(name.to_string())
        .or_default()
        .clone()
}

/// Counts a request that no route matched.
pub fn unrouted() {
    UNROUTED.fetch_add(1, Ordering::Relaxed);
}

/// Every metric, in the Prometheus text format; the gauges are read from
/// `app`, the app being served.
pub fn render(app: &App) -> String {
    let mut out = String::with_capacity(16 << 10);
    let registry = REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();

    out.push_str("# HELP mayfly_requests_total Requests answered, by component and status.\n");
    out.push_str("# TYPE mayfly_requests_total counter\n");
    for (name, metrics) in &registry {
        for (i, count) in metrics.statuses.iter().enumerate() {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let status = usize::from(FIRST_STATUS) + i;
                let _ = writeln!(
                    out,
                    "mayfly_requests_total{{component=\"{name}\",status=\"{status}\"}} {count}"
                );
            }
        }
    }
    out.push_str("# HELP mayfly_unrouted_requests_total Requests no route matched (404).\n");
    out.push_str("# TYPE mayfly_unrouted_requests_total counter\n");
    let _ = writeln!(
        out,
        "mayfly_unrouted_requests_total {}",
        UNROUTED.load(Ordering::Relaxed)
    );

    out.push_str("# HELP mayfly_request_duration_seconds Time from a request's arrival to its response head.\n");
    out.push_str("# TYPE mayfly_request_duration_seconds histogram\n");
    for (name, metrics) in &registry {
        metrics.latency.render(
            &mut out,
            "mayfly_request_duration_seconds",
            &format!("component=\"{name}\""),
        );
    }
    out.push_str(
        "# HELP mayfly_instantiation_duration_seconds Time to create a component instance.\n",
    );
    out.push_str("# TYPE mayfly_instantiation_duration_seconds histogram\n");
    for (name, metrics) in &registry {
        metrics.instantiation.render(
            &mut out,
            "mayfly_instantiation_duration_seconds",
            &format!("component=\"{name}\""),
        );
    }

    out.push_str("# HELP mayfly_traps_total Guests that trapped.\n");
    out.push_str("# TYPE mayfly_traps_total counter\n");
    for (name, metrics) in &registry {
        let _ = writeln!(
            out,
            "mayfly_traps_total{{component=\"{name}\"}} {}",
            metrics.traps.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP mayfly_limit_hits_total Requests cut off by a limit, by kind.\n");
    out.push_str("# TYPE mayfly_limit_hits_total counter\n");
    for (name, metrics) in &registry {
        for (kind, count) in LimitKind::ALL.iter().zip(&metrics.limits) {
            let _ = writeln!(
                out,
                "mayfly_limit_hits_total{{component=\"{name}\",kind=\"{}\"}} {}",
                kind.name(),
                count.load(Ordering::Relaxed)
            );
        }
    }

    out.push_str("# HELP mayfly_instances_in_flight Instances of the component running now.\n");
    out.push_str("# TYPE mayfly_instances_in_flight gauge\n");
    for component in app.components() {
        let _ = writeln!(
            out,
            "mayfly_instances_in_flight{{component=\"{}\"}} {}",
            component.name(),
            component.gate.running()
        );
    }
    out.push_str("# HELP mayfly_queue_length Requests waiting for an instance of the component.\n");
    out.push_str("# TYPE mayfly_queue_length gauge\n");
    for component in app.components() {
        let _ = writeln!(
            out,
            "mayfly_queue_length{{component=\"{}\"}} {}",
            component.name(),
            component.gate.waiting()
        );
    }
    out
}
