//! Prometheus metrics of the controllers, served as OpenMetrics text on `/metrics`.
//!
//! Counters and histograms are kept as passes run; the gauges of what exists (workspaces,
//! projects by runtime and phase, environments awaiting approval, quota use) are computed from
//! the caches at each scrape ([`Inventory`]), so they cost nothing between scrapes and are never
//! stale. Label sets are bounded: by the workspaces, and by closed sets of runtimes, phases and
//! quota resources.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, OnceLock, atomic::AtomicU64},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType, counter::Counter, family::Family, gauge::ConstGauge, gauge::Gauge, histogram::Histogram,
    },
    registry::Registry,
};

use crate::controller::Caches;

/// The prefix of every metric name.
const PREFIX: &str = "dataworkspace";

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
    /// 1 while this replica reconciles (holds the leader Lease, or runs without election).
    pub leader: Gauge,
    /// Seconds writes waited for the client-side write limit.
    pub write_wait: Counter<f64, AtomicU64>,
    /// The gauges computed from the caches, once the controllers have them.
    inventory: Arc<Inventory>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
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
        let write_wait = Counter::<f64, AtomicU64>::default();
        registry.register(
            "api_write_wait_seconds",
            "Seconds write requests waited for the client-side write limit (--api-write-rate)",
            write_wait.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (holds the leader Lease, or runs without leader election)",
            leader.clone(),
        );
        let inventory = Arc::new(Inventory::default());
        registry.register_collector(Box::new(inventory.clone()));
        Self {
            reconciliations,
            failures,
            duration,
            status_writes,
            api_writes,
            watch_errors,
            write_wait,
            leader,
            inventory,
            registry,
        }
    }
}

impl Metrics {
    /// Computes the inventory gauges from these caches from now on (a standby replica, which
    /// has none, exports none).
    pub fn observe(&self, caches: Caches) {
        let _ = self.inventory.caches.set(caches);
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The gauges of what exists, computed from the caches at each scrape.
#[derive(Default)]
pub struct Inventory {
    caches: OnceLock<Caches>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory").field("observing", &self.caches.get().is_some()).finish()
    }
}

/// Labels of the workspace gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

/// Labels of the project gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ProjectLabels {
    workspace: String,
    runtime: &'static str,
    phase: &'static str,
}

/// Labels of per-workspace gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct WorkspaceLabels {
    workspace: String,
}

/// Labels of the quota gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct QuotaLabels {
    workspace: String,
    resource: String,
}

/// What the inventory gauges hold at one moment, computed from the caches' objects.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    workspaces: BTreeMap<ReadyLabels, f64>,
    projects: BTreeMap<ProjectLabels, f64>,
    pending: BTreeMap<WorkspaceLabels, f64>,
    used: BTreeMap<QuotaLabels, f64>,
    hard: BTreeMap<QuotaLabels, f64>,
}

/// Quota resources exported per workspace: the ones the Workspace's quota sets.
const QUOTA_RESOURCES: &[&str] =
    &["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "requests.storage", "pods"];

impl Counts {
    /// Counts the given objects. Projects and environments outside any workspace's namespace
    /// are not counted.
    pub fn of<'a>(
        workspaces: impl IntoIterator<Item = &'a crate::crd::Workspace>,
        projects: impl IntoIterator<Item = &'a crate::crd::Project>,
        environments: impl IntoIterator<Item = &'a crate::crd::PythonEnvironment>,
    ) -> Self {
        use kube::ResourceExt;
        let mut counts = Counts::default();
        let mut workspace_of = HashMap::new();
        for ws in workspaces {
            let status = ws.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == crate::conditions::READY))
                .is_some_and(|c| c.status == "True");
            *counts
                .workspaces
                .entry(ReadyLabels { ready: if ready { "true" } else { "false" } })
                .or_default() += 1.0;
            let name = ws.name_any();
            if let Some(namespace) = status.and_then(|s| s.namespace.clone()) {
                workspace_of.insert(namespace, name.clone());
            }
            for (resource, usage) in status.map(|s| &s.usage).into_iter().flatten() {
                if !QUOTA_RESOURCES.contains(&resource.as_str()) {
                    continue;
                }
                let labels = QuotaLabels { workspace: name.clone(), resource: resource.clone() };
                if let Some(hard) = quantity(&usage.hard.0) {
                    counts.hard.insert(labels.clone(), hard);
                }
                if let Some(used) = usage.used.as_ref().and_then(|u| quantity(&u.0)) {
                    counts.used.insert(labels, used);
                }
            }
        }
        for project in projects {
            let Some(workspace) = project.namespace().and_then(|ns| workspace_of.get(&ns).cloned()) else {
                continue;
            };
            let phase =
                project.status.as_ref().and_then(|s| s.phase).unwrap_or(crate::crd::project::Phase::Pending);
            let labels =
                ProjectLabels { workspace, runtime: project.spec.runtime.as_str(), phase: phase.as_str() };
            *counts.projects.entry(labels).or_default() += 1.0;
        }
        for env in environments {
            let Some(workspace) = env.namespace().and_then(|ns| workspace_of.get(&ns).cloned()) else {
                continue;
            };
            if env.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("PendingApproval") {
                *counts.pending.entry(WorkspaceLabels { workspace }).or_default() += 1.0;
            }
        }
        // Every workspace has a pending count, zero included, so alerts can compare.
        for workspace in workspace_of.into_values() {
            counts.pending.entry(WorkspaceLabels { workspace }).or_default();
        }
        counts
    }
}

/// A quantity as a number (cores, bytes, counts), for a gauge.
fn quantity(text: &str) -> Option<f64> {
    let (negative, mantissa, scale) = crate::controller::apply::quantity_value(text)?;
    // Divided rather than multiplied by a negative power: 87 / 10 prints as 8.7.
    let value =
        if scale > 0 { mantissa as f64 / 10f64.powi(scale) } else { mantissa as f64 * 10f64.powi(-scale) };
    Some(if negative { -value } else { value })
}

/// Writes one gauge family.
fn gauge_family<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &BTreeMap<L, f64>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Inventory {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(caches) = self.caches.get() else { return Ok(()) };
        fn valid<K>(state: &[Arc<kube::core::DeserializeGuard<K>>]) -> impl Iterator<Item = &K> {
            state.iter().filter_map(|guard| guard.0.as_ref().ok())
        }
        let (workspaces, projects, environments) =
            (caches.workspaces.state(), caches.projects.state(), caches.environments.state());
        Counts::of(valid(&workspaces), valid(&projects), valid(&environments)).encode(encoder)
    }
}

impl Counts {
    /// Writes the gauges.
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self;
        gauge_family(&mut encoder, "workspaces", "Workspaces, by readiness", &counts.workspaces)?;
        gauge_family(
            &mut encoder,
            "projects",
            "Projects per workspace, by runtime and phase",
            &counts.projects,
        )?;
        gauge_family(
            &mut encoder,
            "environments_pending_approval",
            "PythonEnvironments waiting for an admin's approval, per workspace",
            &counts.pending,
        )?;
        gauge_family(
            &mut encoder,
            "quota_used",
            "Quota in use per workspace and resource (cores, bytes or a count)",
            &counts.used,
        )?;
        gauge_family(
            &mut encoder,
            "quota_hard",
            "Quota per workspace and resource (cores, bytes or a count)",
            &counts.hard,
        )
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
    fn inventory_gauges_count_projects_environments_and_quota_per_workspace() {
        use crate::crd::{Project, PythonEnvironment, Workspace, WorkspaceStatus, project::Phase};
        use crate::fixtures::example;
        let (mut ws, _) = crate::fixtures::example_workspace();
        let usage = |used: &str, hard: &str| crate::crd::workspace::ResourceUsage {
            used: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(used.into())),
            hard: k8s_openapi::apimachinery::pkg::api::resource::Quantity(hard.into()),
        };
        ws.status = Some(WorkspaceStatus {
            namespace: Some("dw-analytics".into()),
            usage: [
                ("requests.cpu".to_string(), usage("1500m", "8")),
                ("requests.memory".to_string(), usage("1Gi", "32Gi")),
                ("count/unlisted".to_string(), usage("1", "2")),
            ]
            .into(),
            ..WorkspaceStatus::default()
        });
        let stranger: Workspace = serde_yaml::from_str("metadata: {name: other}\nspec: {}").unwrap();
        let mut projects: Vec<Project> =
            ["20-project-airflow.yaml", "21-project-spark.yaml", "24-project-spark-batch.yaml"]
                .into_iter()
                .flat_map(example::<Project>)
                .collect();
        projects[1].status =
            Some(crate::crd::ProjectStatus { phase: Some(Phase::Running), ..Default::default() });
        let mut outside = projects[0].clone();
        outside.metadata.namespace = Some("elsewhere".into());
        projects.push(outside);
        let mut envs: Vec<PythonEnvironment> = example("10-pythonenvironment.yaml");
        envs[0].status = Some(crate::crd::PythonEnvironmentStatus {
            phase: Some("PendingApproval".into()),
            ..Default::default()
        });
        let counts = Counts::of([&ws, &stranger], &projects, &envs);
        let mut text = String::new();
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(Arc::new(Fixed(counts))));
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"dataworkspace_workspaces{ready="false"} 2"#,
            r#"dataworkspace_projects{workspace="analytics",runtime="Airflow",phase="Pending"} 1"#,
            r#"dataworkspace_projects{workspace="analytics",runtime="Spark",phase="Running"} 1"#,
            r#"dataworkspace_projects{workspace="analytics",runtime="Spark",phase="Pending"} 1"#,
            r#"dataworkspace_environments_pending_approval{workspace="analytics"} 1"#,
            r#"dataworkspace_quota_used{workspace="analytics",resource="requests.cpu"} 1.5"#,
            r#"dataworkspace_quota_hard{workspace="analytics",resource="requests.memory"} 34359738368.0"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // Only workspaces' projects, and only the quota resources of the closed set.
        assert!(!text.contains("elsewhere") && !text.contains("count/unlisted"), "{text}");
    }

    /// The inventory's encoding over fixed counts.
    #[derive(Debug)]
    struct Fixed(Counts);

    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            self.0.encode(encoder)
        }
    }

    /// Every series the operator exports, by name, with its samples (`_total`, `_bucket`, …).
    fn exported_series() -> std::collections::BTreeSet<String> {
        let metrics = Metrics::default();
        metrics.failures.get_or_create(&FailureLabels { kind: "Project", reason: "ApplyFailed" }).inc();
        metrics.reconciliations.get_or_create(&KindLabels { kind: "Project" }).inc();
        metrics.duration.get_or_create(&KindLabels { kind: "Project" }).observe(0.1);
        metrics.status_writes.get_or_create(&KindLabels { kind: "Project" }).inc();
        metrics.api_writes.get_or_create(&WriteLabels { resource: "Secret".into() }).inc();
        metrics.watch_errors.get_or_create(&KindLabels { kind: "Project" }).inc();
        let mut text = metrics.encode();
        let mut registry = Registry::with_prefix(PREFIX);
        let (ws, _) = crate::fixtures::example_workspace();
        registry.register_collector(Box::new(Arc::new(Fixed(Counts::of([&ws], [], [])))));
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let mut series = std::collections::BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
            let (name, kind) = rest.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            series.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
        series
    }

    /// The chart's Grafana dashboard queries only what the operator exports.
    #[test]
    fn every_dashboard_query_names_an_exported_series() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/dataworkspace-operator/dashboards/dataworkspace-operator.json"
        );
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut queries: Vec<String> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| {
                p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string())
            })
            .collect();
        queries.extend(
            dashboard["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["definition"].as_str().map(str::to_string)),
        );
        let exported = exported_series();
        let mut used = std::collections::BTreeSet::new();
        for query in &queries {
            let names: Vec<&str> = query
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("dataworkspace_"))
                .collect();
            assert!(!names.is_empty(), "{query} names no operator metric");
            for name in names {
                assert!(exported.contains(name), "{query}: {name} is not exported ({exported:?})");
                used.insert(name.to_string());
            }
        }
        // And every family is on the dashboard (its main series).
        for family in
            ["workspaces", "projects", "environments_pending_approval", "quota_used", "quota_hard", "leader"]
        {
            assert!(
                used.contains(&format!("dataworkspace_{family}")),
                "dataworkspace_{family} is on no panel"
            );
        }
    }

    #[test]
    fn watch_errors_are_counted_by_kind() {
        let metrics = Metrics::default();
        metrics.watch_errors.get_or_create(&KindLabels { kind: "Workspace" }).inc();
        let text = metrics.encode();
        assert!(text.contains(r#"dataworkspace_watch_errors_total{kind="Workspace"} 1"#), "{text}");
    }
}
