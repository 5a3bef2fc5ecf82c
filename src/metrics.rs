//! Prometheus metrics of the controllers, served as OpenMetrics text on `/metrics`.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Labels of per-kind metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind of the custom resource.
    pub kind: &'static str,
}

/// Labels of failure metrics: the kind and the bounded error reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Kind of the custom resource.
    pub kind: &'static str,
    /// [`crate::error::Error::reason`].
    pub reason: &'static str,
}

/// Labels of the write counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// Kind written, `<Kind>/status` for status, `Event` for Events.
    pub resource: String,
}

/// The operator's metrics.
pub struct Metrics {
    /// Reconcile passes started.
    pub reconciliations: Family<KindLabels, Counter>,
    /// Reconcile passes that failed, by reason.
    pub failures: Family<FailureLabels, Counter>,
    /// Duration of reconcile passes.
    pub duration: Family<KindLabels, Histogram>,
    /// Status writes sent to the API server (zero while nothing changes).
    pub status_writes: Family<KindLabels, Counter>,
    /// Every write request sent to the API server (apply, delete, status, Event).
    pub api_writes: Family<WriteLabels, Counter>,
    /// Errors of a controller's watches and queue (not of its passes), for example a watch the
    /// API server refuses (RBAC 403).
    pub watch_errors: Family<KindLabels, Counter>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dataworkspace");
        let reconciliations = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let status_writes = Family::<KindLabels, Counter>::default();
        registry.register("reconciliations", "Reconcile passes started", reconciliations.clone());
        registry.register("reconcile_failures", "Reconcile passes that failed, by reason", failures.clone());
        registry.register("reconcile_duration_seconds", "Duration of reconcile passes", duration.clone());
        registry.register("status_writes", "Status writes sent to the API server", status_writes.clone());
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "api_writes",
            "Write requests sent to the API server, by resource",
            api_writes.clone(),
        );
        let watch_errors = Family::<KindLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Errors of a controller's watches and queue, by the controller's kind",
            watch_errors.clone(),
        );
        Self { reconciliations, failures, duration, status_writes, api_writes, watch_errors, registry }
    }
}

impl Metrics {
    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_labelled_by_kind_and_reason() {
        let metrics = Metrics::default();
        metrics.failures.get_or_create(&FailureLabels { kind: "Project", reason: "ApplyFailed" }).inc();
        let text = metrics.encode();
        assert!(
            text.contains(r#"dataworkspace_reconcile_failures_total{kind="Project",reason="ApplyFailed"} 1"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn watch_errors_are_counted_by_kind() {
        let metrics = Metrics::default();
        metrics.watch_errors.get_or_create(&KindLabels { kind: "Workspace" }).inc();
        let text = metrics.encode();
        assert!(text.contains(r#"dataworkspace_watch_errors_total{kind="Workspace"} 1"#), "{text}");
    }
}
