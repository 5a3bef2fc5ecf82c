//! The console's metrics: pages served by status, requests refused by reason, how long pages
//! take, and the objects in its caches.

use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The exposition format's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    served: Family<StatusLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    duration: Histogram,
    objects: Family<KindLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dataworkspace_console");
        let served = Family::<StatusLabels, Counter>::default();
        let refused = Family::<ReasonLabels, Counter>::default();
        let duration = Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]);
        let objects = Family::<KindLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests admitted (signed by the proxy), by response status",
            served.clone(),
        );
        registry.register("refused", "Requests refused before any page, by reason", refused.clone());
        registry.register("request_duration_seconds", "Time to answer an admitted request", duration.clone());
        registry.register("cached_objects", "Objects in the console's caches, by kind", objects.clone());
        Metrics { registry, served, refused, duration, objects }
    }
}

impl Metrics {
    pub fn served(&self, status: u16, took: Duration) {
        self.served.get_or_create(&StatusLabels { status }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The metrics in the OpenMetrics text format, with the cache sizes of now.
    pub fn encode(&self, counts: &[(&'static str, usize)]) -> String {
        for (kind, count) in counts {
            self.objects.get_or_create(&KindLabels { kind }).set(*count as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
