//! Prometheus metrics, kept with `prometheus-client` in a registry that
//! belongs to the server (no global state), and rendered in the OpenMetrics
//! text format on the admin port's `/metrics`.
//!
//! Each component's handles are taken once, when it is loaded, and shared
//! by all its versions (they are counted by name). Recording a request is a
//! few relaxed atomic adds; nothing is allocated on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::limits::Limit;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency histograms' buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// A latency histogram of the buckets above, kept in atomics: `prometheus-client`'s
/// own takes a lock for every observation, which the workers serving one
/// component would contend for.
#[derive(Clone, Debug, Default)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug, Default)]
struct HistogramCells {
    /// Observations per bucket (not cumulative), and above the last bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.0.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self
            .0
            .buckets
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let count = counts.iter().sum();
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    component: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    component: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimeoutLabels {
    kind: &'static str,
}

/// A client too slow for one of the server's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTimeout {
    /// It took too long to send a request head (or sat idle too long).
    Head,
    /// It paused its request body too long.
    Body,
    /// It did not read its response for too long.
    Write,
}

impl ClientTimeout {
    fn name(self) -> &'static str {
        match self {
            ClientTimeout::Head => "head",
            ClientTimeout::Body => "body",
            ClientTimeout::Write => "write",
        }
    }
}

/// Every metric of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<StatusLabels, Counter>,
    unrouted: Counter,
    connections: Gauge,
    client_timeouts: Family<TimeoutLabels, Counter>,
    latency: Family<ComponentLabels, Histogram>,
    instantiation: Family<ComponentLabels, Histogram>,
    traps: Family<ComponentLabels, Counter>,
    limits: Family<LimitLabels, Counter>,
    in_flight: Family<ComponentLabels, Gauge>,
    queued: Family<ComponentLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabels, Counter>::default();
        registry.register(
            "mayfly_requests",
            "Requests answered, by component and status",
            requests.clone(),
        );
        let unrouted = Counter::default();
        registry.register(
            "mayfly_unrouted_requests",
            "Requests no route matched (404)",
            unrouted.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "mayfly_open_connections",
            "Client connections open now",
            connections.clone(),
        );
        let client_timeouts = Family::<TimeoutLabels, Counter>::default();
        // Every kind is shown from the start, at 0.
        for timeout in [
            ClientTimeout::Head,
            ClientTimeout::Body,
            ClientTimeout::Write,
        ] {
            let _ = client_timeouts.get_or_create(&TimeoutLabels {
                kind: timeout.name(),
            });
        }
        registry.register(
            "mayfly_client_timeouts",
            "Connections and requests ended because the client was too slow, by timeout",
            client_timeouts.clone(),
        );
        let latency = Family::<ComponentLabels, Histogram>::default();
        registry.register(
            "mayfly_request_duration_seconds",
            "Time from a request's arrival to its response head",
            latency.clone(),
        );
        let instantiation = Family::<ComponentLabels, Histogram>::default();
        registry.register(
            "mayfly_instantiation_duration_seconds",
            "Time to create a component instance",
            instantiation.clone(),
        );
        let traps = Family::<ComponentLabels, Counter>::default();
        registry.register("mayfly_traps", "Guests that trapped", traps.clone());
        let limits = Family::<LimitLabels, Counter>::default();
        registry.register(
            "mayfly_limit_hits",
            "Requests cut off by a limit, by kind",
            limits.clone(),
        );
        let in_flight = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "mayfly_instances_in_flight",
            "Instances of the component running now",
            in_flight.clone(),
        );
        let queued = Family::<ComponentLabels, Gauge>::default();
        registry.register(
            "mayfly_queue_length",
            "Requests waiting for an instance of the component",
            queued.clone(),
        );
        Self {
            registry,
            requests,
            unrouted,
            connections,
            client_timeouts,
            latency,
            instantiation,
            traps,
            limits,
            in_flight,
            queued,
        }
    }
}

impl Metrics {
    /// The handles of component `name` (the same for all its versions).
    pub fn component(self: &Arc<Self>, name: &str) -> ComponentMetrics {
        let labels = ComponentLabels {
            component: name.to_string(),
        };
        ComponentMetrics {
            name: name.to_string(),
            metrics: self.clone(),
            statuses: Arc::new(std::array::from_fn(|_| OnceLock::new())),
            latency: self.latency.get_or_create_owned(&labels),
            instantiation: self.instantiation.get_or_create_owned(&labels),
            traps: self.traps.get_or_create_owned(&labels),
            limits: Limit::ALL.map(|kind| {
                self.limits.get_or_create_owned(&LimitLabels {
                    component: name.to_string(),
                    kind: kind.name(),
                })
            }),
            in_flight: self.in_flight.get_or_create_owned(&labels),
            queued: self.queued.get_or_create_owned(&labels),
        }
    }

    /// Counts a request that no route matched.
    pub fn unrouted(&self) {
        self.unrouted.inc();
    }

    /// The gauge of open client connections.
    pub fn connections(&self) -> &Gauge {
        &self.connections
    }

    /// Counts a client cut off by `timeout`.
    pub fn client_timeout(&self, timeout: ClientTimeout) {
        self.client_timeouts
            .get_or_create(&TimeoutLabels {
                kind: timeout.name(),
            })
            .inc();
    }

    /// Every metric, in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 << 10);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Lowest status code counted by status, and how many there are.
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// What is counted for one component: handles into the server's
/// [`Metrics`], taken when the component is loaded.
#[derive(Clone)]
pub struct ComponentMetrics {
    name: String,
    metrics: Arc<Metrics>,
    /// A counter per status code, taken from the family the first time the
    /// status is seen.
    statuses: Arc<[OnceLock<Counter>; STATUSES]>,
    /// Time to the response head.
    latency: Histogram,
    /// Time to create an instance.
    instantiation: Histogram,
    traps: Counter,
    limits: [Counter; Limit::ALL.len()],
    /// Instances running now (kept by the component's admission gate).
    pub(crate) in_flight: Gauge,
    /// Requests waiting for an instance now (kept by the gate).
    pub(crate) queued: Gauge,
}

impl ComponentMetrics {
    /// Counts a response with `status`, `elapsed` after the request arrived.
    pub fn request(&self, status: u16, elapsed: Duration) {
        let status = status.clamp(FIRST_STATUS, FIRST_STATUS + 499);
        let index = usize::from(status - FIRST_STATUS);
        self.statuses[index]
            .get_or_init(|| {
                self.metrics.requests.get_or_create_owned(&StatusLabels {
                    component: self.name.clone(),
                    status,
                })
            })
            .inc();
        self.latency.observe(elapsed);
    }

    /// Counts the time to create an instance.
    pub fn instantiated(&self, elapsed: Duration) {
        self.instantiation.observe(elapsed);
    }

    /// Counts a trap.
    pub fn trap(&self) {
        self.traps.inc();
    }

    /// The server's metrics, which this component's are part of.
    pub fn server(&self) -> &Metrics {
        &self.metrics
    }

    /// Counts a limit hit.
    pub fn limit(&self, kind: Limit) {
        let index = Limit::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.limits[index].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of `sample` in `text`.
    fn sample(text: &str, sample: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn components_are_counted_by_name_in_the_servers_own_registry() {
        let metrics = Arc::new(Metrics::default());
        let web = metrics.component("web");
        let again = metrics.component("web");
        web.request(200, Duration::from_millis(1));
        again.request(200, Duration::from_millis(1));
        web.request(503, Duration::from_millis(1));
        web.limit(Limit::Concurrency);
        metrics.unrouted();
        let text = metrics.render();
        let at = |s: &str| sample(&text, s);
        assert_eq!(
            at("mayfly_requests_total{component=\"web\",status=\"200\"}"),
            Some(2.0)
        );
        assert_eq!(
            at("mayfly_requests_total{component=\"web\",status=\"503\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("mayfly_limit_hits_total{component=\"web\",kind=\"concurrency\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("mayfly_limit_hits_total{component=\"web\",kind=\"memory\"}"),
            Some(0.0)
        );
        assert_eq!(at("mayfly_unrouted_requests_total"), Some(1.0));
        assert_eq!(
            at("mayfly_request_duration_seconds_count{component=\"web\"}"),
            Some(3.0)
        );
        // Cumulative buckets, the last one +Inf, and the sum in seconds.
        assert_eq!(
            at("mayfly_request_duration_seconds_bucket{le=\"0.0005\",component=\"web\"}"),
            Some(0.0)
        );
        assert_eq!(
            at("mayfly_request_duration_seconds_bucket{le=\"0.001\",component=\"web\"}"),
            Some(3.0)
        );
        assert_eq!(
            at("mayfly_request_duration_seconds_bucket{le=\"+Inf\",component=\"web\"}"),
            Some(3.0)
        );
        assert_eq!(
            at("mayfly_request_duration_seconds_sum{component=\"web\"}"),
            Some(0.003)
        );
        assert_eq!(
            at("mayfly_instances_in_flight{component=\"web\"}"),
            Some(0.0)
        );
        // Another server's registry is its own.
        let other = Arc::new(Metrics::default());
        assert_eq!(
            sample(&other.render(), "mayfly_unrouted_requests_total"),
            Some(0.0)
        );
    }
}
