//! `Project`: one runtime (Airflow, Spark, Streamlit or Notebook) inside a workspace namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    AccessList, Conditions, DNS_LABEL_RULE, DNS_SUBDOMAIN_RULE, DURATION_MESSAGE, DURATION_RULE, GitSource,
    IMAGE_MESSAGE, IMAGE_RULE, RELATIVE_PATH_RULE, StorageSpec, conditions_schema, resources_schema,
};

/// Longest Project name: every derived object name (`<project>-<component>`, plus the suffixes
/// StatefulSets and Jobs add to pod names) must stay within the 63-character label limit.
pub const MAX_NAME_LENGTH: usize = 38;

/// One runtime of a workspace — Airflow, Spark, Streamlit or a Notebook — with its code, Python
/// environment, resources and access list. Its live state is in `status`.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[kube(
    group = "dataworkspace.io",
    version = "v1alpha1",
    kind = "Project",
    plural = "projects",
    shortname = "dwproj",
    category = "dataworkspace",
    namespaced,
    status = "ProjectStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "One runtime of a workspace (Airflow, Spark, Streamlit or Notebook) and its live state.",
    printcolumn(name = "Runtime", type_ = "string", json_path = ".spec.runtime"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = "1"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoints[0].url", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 38").message("Project names are at most 38 characters: names of the Services, workloads and pods it creates are derived from them"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("Project names must be DNS labels that start with a letter (they name Services)"),
    validation = Rule::new("!(self.metadata.name in ['studio', 'default'])").message("Project names 'studio' and 'default' are reserved: the workspace's Studio server and the namespace's default ServiceAccount use them"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.airflow) == (self.runtime == 'Airflow')").message("spec.airflow must be set when spec.runtime is Airflow, and only then"))]
#[x_kube(validation = Rule::new("!has(self.airflow) || !has(self.airflow.dags) || size(self.airflow.dags) == 0 || !has(self.source)").message("airflow.dags and source are exclusive: list every DAG repository in airflow.dags, or name the one in source"))]
#[x_kube(validation = Rule::new("has(self.spark) == (self.runtime == 'Spark')").message("spec.spark must be set when spec.runtime is Spark, and only then"))]
#[x_kube(validation = Rule::new("has(self.streamlit) == (self.runtime == 'Streamlit')").message("spec.streamlit must be set when spec.runtime is Streamlit, and only then"))]
#[x_kube(validation = Rule::new("has(self.notebook) == (self.runtime == 'Notebook')").message("spec.notebook must be set when spec.runtime is Notebook, and only then"))]
pub struct ProjectSpec {
    /// What the project runs. Cannot be changed; create another Project instead.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.runtime is immutable"))]
    pub runtime: Runtime,
    /// Human-readable name shown in tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// What the project is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,
    /// Name of a PythonEnvironment in the same namespace. The project waits until it is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_LABEL_RULE).message("pythonEnvironment must be the name of a PythonEnvironment (a DNS label)"))]
    pub python_environment: Option<String>,
    /// Where the project's code comes from (DAGs, the app, notebooks, the Spark application).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<GitSource>,
    /// Resources of the project's main containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// Who may open the project's UI or app (a Streamlit app's host): without a list every
    /// workspace member; with one, the workspace's admins and the listed users and teams, so an
    /// empty list leaves the admins alone. Disabled Users never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessList>,
    /// Scale every component to zero; configuration, volumes and databases are kept.
    #[serde(default)]
    pub stopped: bool,
    /// Scheduling, labels and annotations of every pod the project creates. Nothing else of the
    /// pods can be overridden: volumes, environment, containers, service accounts and security
    /// settings are the operator's, and manifests that set them are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_overrides: Option<PodOverrides>,
    /// Airflow settings; set exactly when `runtime` is `Airflow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub airflow: Option<AirflowSpec>,
    /// Spark settings; set exactly when `runtime` is `Spark`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spark: Option<SparkSpec>,
    /// Streamlit settings; set exactly when `runtime` is `Streamlit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamlit: Option<StreamlitSpec>,
    /// Notebook settings; set exactly when `runtime` is `Notebook`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notebook: Option<NotebookSpec>,
}

/// The runtimes a Project can run.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum Runtime {
    /// Apache Airflow 3: api-server, scheduler, dag-processor, triggerer.
    #[default]
    Airflow,
    /// Apache Spark 4: a Spark Connect server or a batch application.
    Spark,
    /// A Streamlit app behind an authenticating proxy.
    Streamlit,
    /// A JupyterLab server for the project.
    Notebook,
}

impl Runtime {
    /// The value as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Airflow => "Airflow",
            Runtime::Spark => "Spark",
            Runtime::Streamlit => "Streamlit",
            Runtime::Notebook => "Notebook",
        }
    }
}

/// What a Project may change in its pods: where they are scheduled, and their labels and
/// annotations. Every other pod field (volumes, env, envFrom, containers, init containers,
/// service account and its token, image pull secrets, host aliases, host namespaces, security
/// context, …) is the operator's: it would let a developer make the operator mount, run or
/// act as something beyond the developer's own rights.
///
/// Any other field is refused, not dropped. The object keeps
/// `x-kubernetes-preserve-unknown-fields` so that an unknown field survives pruning, and
/// [`POD_OVERRIDES_RULE`] refuses the object when it has more fields than the known ones it sets.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[x_kube(validation = Rule::new(POD_OVERRIDES_RULE).message("podOverrides may set only nodeSelector, tolerations, affinity, topologySpreadConstraints, priorityClassName, labels and annotations: volumes, env, containers, service accounts, security settings and every other pod field are set by the operator"))]
pub struct PodOverrides {
    /// Node labels the pods must run on, for example `topology.kubernetes.io/zone: eu-west-1a`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[x_kube(validation = Rule::new(LABEL_KEYS_RULE).message("nodeSelector keys must be label keys such as 'topology.kubernetes.io/zone': an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', alphanumeric at both ends"))]
    #[x_kube(validation = Rule::new(LABEL_VALUES_RULE).message("nodeSelector values must be label values: at most 63 letters, digits, '-', '_' and '.', alphanumeric at both ends"))]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,
    /// Node and pod affinity of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "not_nullable::<Affinity>")]
    pub affinity: Option<Affinity>,
    /// How the pods spread across topology domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods; not a `system-` class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "not_nullable::<String>", length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("priorityClassName must be the name of a PriorityClass: a DNS subdomain"))]
    #[x_kube(validation = Rule::new("!self.startsWith('system-')").message("priorityClassName cannot be a system- PriorityClass: those are for cluster components"))]
    pub priority_class_name: Option<String>,
    /// Labels added to the pods. Keys under `kubernetes.io/`, `k8s.io/`, `dataworkspace.io/` and
    /// their subdomains (`app.kubernetes.io/`, …) are refused: the operator and Kubernetes set them,
    /// and Services and policies select pods by them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[x_kube(validation = Rule::new(LABEL_KEYS_RULE).message("label keys must be such as 'team' or 'example.com/cost-center': an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', alphanumeric at both ends"))]
    #[x_kube(validation = Rule::new(RESERVED_KEYS_RULE).message(RESERVED_KEYS_MESSAGE))]
    #[x_kube(validation = Rule::new(LABEL_VALUES_RULE).message("label values must be at most 63 letters, digits, '-', '_' and '.', alphanumeric at both ends"))]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the pods; the same keys as in `labels` are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(validation = Rule::new(LABEL_KEYS_RULE).message("annotation keys must be such as 'example.com/owner': an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', alphanumeric at both ends"))]
    #[x_kube(validation = Rule::new(RESERVED_KEYS_RULE).message(RESERVED_KEYS_MESSAGE))]
    pub annotations: BTreeMap<String, String>,
}

/// `self` (a [`PodOverrides`]) has no field but the known ones. CEL cannot see fields the schema
/// does not declare, nor iterate over an object's keys (`self.all(k, …)` does not compile), but
/// `size()` of the object as `dyn` counts every key it holds, declared or not: more keys than
/// declared fields set means an unknown field. This relies on how the API server evaluates
/// `size()` (checked with Kubernetes 1.36); the invalid examples `project-pod-overrides-*`, which
/// the e2e suite applies, would show a change.
pub const POD_OVERRIDES_RULE: &str = "size(dyn(self)) == (has(self.nodeSelector) ? 1 : 0) + (has(self.tolerations) ? 1 : 0) + (has(self.affinity) ? 1 : 0) + (has(self.topologySpreadConstraints) ? 1 : 0) + (has(self.priorityClassName) ? 1 : 0) + (has(self.labels) ? 1 : 0) + (has(self.annotations) ? 1 : 0)";
/// Schema of an optional field of [`PodOverrides`]: `T`'s, not nullable. The API server drops a
/// `null` it does not allow before validation, where [`POD_OVERRIDES_RULE`] would count it as an
/// unknown field.
fn not_nullable<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}
/// Every key of a map is a label (or annotation) key: an optional DNS subdomain prefix and `/`,
/// then a name of at most 63 characters.
const LABEL_KEYS_RULE: &str = r"self.all(k, size(k) <= 317 && k.matches(r'^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))";
/// Every value of a map is a label value (the schema bounds it to 63 characters).
const LABEL_VALUES_RULE: &str =
    r"self.all(k, self[k].matches(r'^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'))";
/// No key has a prefix Kubernetes or the operator reserves: `kubernetes.io`, `k8s.io`,
/// `dataworkspace.io` or a subdomain of one of them.
const RESERVED_KEYS_RULE: &str = r"self.all(k, !k.matches(r'^([^/]*\.)?(kubernetes\.io|k8s\.io|dataworkspace\.io)/') && !(k in ['job-name', 'controller-uid']))";
/// Message of [`RESERVED_KEYS_RULE`].
const RESERVED_KEYS_MESSAGE: &str = "labels and annotations cannot use the prefixes kubernetes.io/, k8s.io/, dataworkspace.io/ or their subdomains (such as app.kubernetes.io/ or pod-security.kubernetes.io/), nor the keys job-name and controller-uid: Kubernetes and the operator set those";

/// Airflow 3 settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirflowSpec {
    /// Airflow version (3.x); the image tag. The operator's pinned default when absent. A change
    /// migrates the metadata database first (a Job named by the version) and rolls the
    /// components only once the migration succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16), regex(pattern = r"^3\.[0-9]{1,3}\.[0-9]{1,3}$"))]
    pub version: Option<String>,
    /// Image of every Airflow container (it must hold that Airflow version and the
    /// `cncf-kubernetes` and `postgres` providers, as the official image does); when absent
    /// `apache/airflow:<version>` (or the operator's mirror of that repository), with the Python
    /// of the project's Python environment when it names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// How tasks run.
    #[serde(default)]
    pub executor: AirflowExecutor,
    /// How many tasks run at once (`[core] parallelism`); with the LocalExecutor also how many
    /// worker processes the scheduler keeps. 32 with the KubernetesExecutor and 8 with the
    /// LocalExecutor when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub parallelism: Option<i32>,
    /// The metadata database: a managed PostgreSQL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<AirflowDatabase>,
    /// What deleting the Project does with what Airflow keeps: with `Retain` (the default) the
    /// managed database's volume and the generated keys (the fernet key that encrypts the
    /// connections and variables stored in the database, the token secrets, the database
    /// password) stay, so a Project re-created under the same name finds its history and can
    /// read it; with `Delete` they are deleted with the Project — except what a Project
    /// re-created under the same name found kept: that stays kept, for an admin to delete.
    #[serde(default)]
    pub deletion_policy: AirflowDeletionPolicy,
    /// DAG repositories, each one of the Workspace's `gitRepositories` at a ref and a path, and
    /// each its own DAG bundle (named after the repository). Without it, `spec.source` is the one
    /// bundle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["repository"]))]
    pub dags: Vec<GitSource>,
    /// Which of the Workspace's variables and secrets become Airflow Variables
    /// (`AIRFLOW_VAR_<NAME>`, read from the Workspace's ConfigMap and Secrets, never copied):
    /// every one when absent, none when empty. Tasks read them with `Variable.get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200), inner(length(min = 1, max = 253)))]
    pub workspace_variables: Option<Vec<String>>,
    /// Which of the Workspace's connections become Airflow Connections
    /// (`AIRFLOW_CONN_<NAME>`, read from their Secrets, never copied): every one when absent,
    /// none when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200), inner(length(min = 1, max = 128)))]
    pub workspace_connections: Option<Vec<String>>,
    /// The project's own Airflow Variables (plain values; never credentials), next to the
    /// Workspace's. A name the Workspace also gives is refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(validation = Rule::new(r"self.all(k, size(k) <= 128 && k.matches(r'^[A-Za-z_][A-Za-z0-9_]*$'))").message("variable names must be letters, digits and '_', not starting with a digit, at most 128 characters"))]
    pub variables: BTreeMap<String, String>,
    /// Public host name of the Airflow UI and API, one label inside the platform's domain:
    /// served there only through its own authenticating proxy (the access layer), to the
    /// project's access list, each person with the Airflow role of their workspace role
    /// (admin → Admin, developer → Op, viewer → Viewer). Without it, or without the access
    /// layer, nobody can sign in to the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("host must be a DNS name in lowercase, such as 'airflow.example.com'"))]
    pub host: Option<String>,
    /// The API server of the UI and the REST API (`api-server --apps core`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_server: Option<AirflowComponent>,
    /// The API server tasks report to (`api-server --apps execution`): a workload of its own,
    /// so that task pods, which run user code, never reach the UI's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_api: Option<AirflowComponent>,
    /// The scheduler (with the LocalExecutor, the tasks run in it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<AirflowComponent>,
    /// The DAG processor, which parses the DAG bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag_processor: Option<AirflowComponent>,
    /// The triggerer, which runs deferred tasks' triggers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggerer: Option<AirflowComponent>,
    /// The project's two shared volumes (`ReadWriteMany`, each of this size; 5Gi on the
    /// cluster's default StorageClass when absent, which must then offer `ReadWriteMany`): the
    /// DAG checkouts, which git-sync writes and every Airflow pod mounts read-only, and the task
    /// logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Task logs in object storage (Airflow's remote logging) instead of the shared volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_logs: Option<RemoteLogs>,
}

/// One Airflow component's workload.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirflowComponent {
    /// Replicas while the project runs (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10))]
    pub replicas: Option<i32>,
    /// Resources of its container. When absent, a size for the component (the API server
    /// 250m/768Mi requested, 1 CPU/1.5Gi limits; the Execution API 100m/512Mi, 500m/1Gi; the
    /// scheduler and the DAG processor 250m/512Mi, 1/1Gi; the triggerer 100m/256Mi,
    /// 500m/768Mi), except that with the LocalExecutor the scheduler, which runs the tasks, takes
    /// `spec.resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

/// Remote task logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteLogs {
    /// Where the logs go, for example `s3://bucket/airflow/logs` (`s3://`, `gs://` or `wasb://`
    /// with a provider in the image).
    #[schemars(length(min = 6, max = 1024))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^(s3|gs|wasb|oss|hdfs)://[A-Za-z0-9][-A-Za-z0-9._]*(/[-A-Za-z0-9._]+)*/?$')").message("remote.folder must be a URL such as 's3://bucket/airflow/logs' (s3, gs, wasb, oss or hdfs): no credentials, query or spaces"))]
    pub folder: String,
    /// Name of the Workspace connection that grants access to it.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub connection: String,
}

/// Airflow executors the operator supports (`CeleryExecutor` may come later).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum AirflowExecutor {
    /// Each task in its own pod.
    #[default]
    KubernetesExecutor,
    /// Tasks as processes of the scheduler.
    LocalExecutor,
}

/// What deleting an Airflow Project does with its database volume and keys.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum AirflowDeletionPolicy {
    /// Keep the managed database's volume and the generated keys.
    #[default]
    Retain,
    /// Delete them with the Project.
    Delete,
}

/// Where Airflow keeps its metadata: exactly one of `managed` or `external`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("database names exactly one of 'managed' or 'external'"))]
pub struct AirflowDatabase {
    /// A PostgreSQL the operator runs for this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// An existing database, reached through one of the Workspace's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

/// A managed PostgreSQL.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// Its data volume (8Gi on the cluster's default StorageClass when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Resources of the PostgreSQL container (100m/256Mi requested, 500m/1Gi limits when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

/// An external database.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Name of an entry of the Workspace's `spec.connections` whose value is the SQLAlchemy URL,
    /// for example `airflow_db` holding `postgresql+psycopg2://user:password@host:5432/airflow`.
    /// A Project names a connection the workspace admins listed, never a Secret: the operator
    /// reads no Secret the Workspace does not reference.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub connection: String,
}

/// Spark 4 settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.application) == (self.mode == 'Batch')").message("spark.application must be set when spark.mode is Batch, and only then"))]
pub struct SparkSpec {
    /// A long-running Spark Connect server, or a batch application.
    #[serde(default)]
    pub mode: SparkMode,
    /// Spark version; the image tag. The operator's pinned default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^4\.[0-9]+\.[0-9]+$"))]
    pub version: Option<String>,
    /// Image for driver and executors; when absent, `apache/spark:<version>` (or the operator's
    /// mirror of that repository, at `<version>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// Resources of the driver (the Connect server in `Connect` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<SparkRole>,
    /// Public host name of the Spark UI, one label inside the platform's domain: served there
    /// only through its own authenticating proxy (the access layer), to the project's access
    /// list. Without it, or without the access layer, the UI is reachable inside the cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("host must be a DNS name in lowercase, such as 'spark.example.com'"))]
    pub host: Option<String>,
    /// Executors: resources and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<SparkExecutors>,
    /// Spark tuning properties of the Connect server or the application (`--conf key=value`).
    /// Only tuning keys are allowed, by prefix:
    /// `spark.sql.`, `spark.executor.memory*`, `spark.executor.cores`,
    /// `spark.executor.pyspark.memory`, `spark.driver.memory*`, `spark.driver.cores`,
    /// `spark.driver.maxResultSize`, `spark.dynamicAllocation.`, `spark.shuffle.`, `spark.memory.`,
    /// `spark.default.parallelism`, `spark.network.timeout*`, `spark.speculation*`,
    /// `spark.serializer*`, `spark.kryo*`, `spark.python.`, `spark.task.cpus`,
    /// `spark.task.maxFailures`, `spark.locality.wait*`, `spark.reducer.`, `spark.broadcast.`,
    /// `spark.io.compression.` and `spark.rdd.compress`. Every other key is refused: the operator
    /// decides where, as whom and with what Spark runs. Keys that would decide it are refused even
    /// under an allowed prefix: `spark.kubernetes.*` (namespace, service account, secrets, pod
    /// templates), `spark.master`, `spark.submit.*`, JVM options, class and library paths,
    /// `spark.jars*`, `spark.files`, `spark.archives`, `spark.executorEnv.*`, anything naming
    /// secrets, pod templates or redaction, `spark.authenticate*`, `spark.ssl*`,
    /// `spark.ui.proxy*` and `spark.eventLog.dir`. The interpreter keys
    /// (`spark.pyspark.python`, `spark.pyspark.driver.python`) are refused too: the Python
    /// environment decides it. Credentials never belong here; use the Workspace's `connections`
    /// and `secrets`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(validation = Rule::new(r"self.all(k, size(k) <= 256 && k.matches(r'^[A-Za-z0-9][-A-Za-z0-9._]*$'))").message("conf keys must be Spark property names such as 'spark.sql.shuffle.partitions': letters, digits, '.', '_' and '-', at most 256 characters"))]
    #[x_kube(validation = Rule::new(SPARK_CONF_DENIED_RULE).message("conf cannot set spark.kubernetes.*, spark.master, spark.submit.*, JVM options, class or library paths, spark.jars*, spark.files, spark.archives, spark.executorEnv.*, secrets, pod templates, authentication, SSL, redaction, the UI proxy or the event log directory: the operator decides where, as whom and with what Spark runs"))]
    #[x_kube(validation = Rule::new(SPARK_CONF_TUNING_RULE).message("conf keys must be Spark tuning properties: spark.sql.*, spark.executor.memory*, spark.executor.cores, spark.executor.pyspark.memory, spark.driver.memory*, spark.driver.cores, spark.driver.maxResultSize, spark.dynamicAllocation.*, spark.shuffle.*, spark.memory.*, spark.default.parallelism, spark.network.timeout*, spark.speculation*, spark.serializer*, spark.kryo*, spark.python.*, spark.task.cpus, spark.task.maxFailures, spark.locality.wait*, spark.reducer.*, spark.broadcast.*, spark.io.compression.* or spark.rdd.compress"))]
    pub conf: BTreeMap<String, String>,
    /// The batch application (mode `Batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<SparkApplication>,
}

/// How Spark runs.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum SparkMode {
    /// A Spark Connect server that clients (notebooks, apps) attach to.
    #[default]
    Connect,
    /// A spark-submit application that runs to completion.
    Batch,
}

/// Driver settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SparkRole {
    /// Resources of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

/// Executor settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.instances >= 1 || has(self.maxInstances)").message("executors.instances must be at least 1 (Spark refuses zero executors), unless maxInstances turns on dynamic allocation; use stopped to run nothing"))]
#[x_kube(validation = Rule::new("!has(self.maxInstances) || self.maxInstances >= self.instances").message("executors.maxInstances must be at least executors.instances (the initial number)"))]
#[x_kube(validation = Rule::new("!has(self.minInstances) || (has(self.maxInstances) && self.minInstances <= self.instances)").message("executors.minInstances needs maxInstances (dynamic allocation) and must be at most executors.instances"))]
pub struct SparkExecutors {
    /// Number of executors: fixed, or the initial number when `maxInstances` turns on dynamic
    /// allocation.
    #[serde(default = "default_executor_instances")]
    #[schemars(range(min = 0, max = 1000))]
    pub instances: i32,
    /// Fewest executors under dynamic allocation (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_instances: Option<i32>,
    /// Most executors: setting it turns on dynamic allocation (with shuffle tracking: Kubernetes
    /// has no external shuffle service), between `minInstances` and this, starting at
    /// `instances`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_instances: Option<i32>,
    /// Resources of each executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

fn default_executor_instances() -> i32 {
    2
}

impl Default for SparkExecutors {
    /// As an empty `executors` section reads: two executors, no dynamic allocation.
    fn default() -> Self {
        SparkExecutors {
            instances: default_executor_instances(),
            min_instances: None,
            max_instances: None,
            resources: None,
        }
    }
}

/// A batch application.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.timeZone) || has(self.schedule)").message("application.timeZone needs application.schedule"))]
pub struct SparkApplication {
    /// The file to run, relative to the project's source (a `.py` file or a jar), or a `local://` path in the image.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new(RELATIVE_PATH_RULE).message("mainApplicationFile must be a path relative to the source (not starting with '/' or '-', no '..' segment, no backslash or control character) or a local:// path"))]
    pub main_application_file: String,
    /// Main class, for JVM applications, for example `org.example.Main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*$')").message("mainClass must be a Java class name such as 'org.example.Main'"))]
    pub main_class: Option<String>,
    /// Arguments passed to the application.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 4096)))]
    pub args: Vec<String>,
    /// The run: bump it to run the application again (a new Job, `<project>-run-<run>`). A
    /// spec change alone does not start a run. At most 9,999,999: a run's Job name never meets
    /// one a schedule names after the minute it started.
    #[serde(default = "default_run")]
    #[schemars(range(min = 1, max = 9_999_999))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("spark.application.run only grows: bump it to run again (lowering it would remove newer runs)"))]
    pub run: i64,
    /// Runs on a schedule too: a cron expression (`0 2 * * *`, `@daily`), in `timeZone`. The
    /// schedule's runs never overlap; with a schedule, `run` starts an extra run when raised
    /// above 1 (creating the Project starts none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9*/,?A-Za-z-]+( [0-9*/,?A-Za-z-]+){4})$')").message("schedule must be a cron expression of five fields, such as '0 2 * * *', or @hourly, @daily, @weekly, @monthly, @yearly"))]
    pub schedule: Option<String>,
    /// The time zone of `schedule`, an IANA name such as `Europe/Berlin`; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')").message("timeZone must be an IANA time zone name such as 'Europe/Berlin'"))]
    pub time_zone: Option<String>,
    /// Whether a failed run is retried (up to three more attempts, each a new driver pod).
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// How many earlier runs' Jobs (and their driver pods and logs) are kept besides the
    /// current one; older ones are deleted.
    #[serde(default = "default_keep_runs")]
    #[schemars(range(min = 0, max = 100))]
    pub keep_finished_runs: i32,
}

fn default_keep_runs() -> i32 {
    3
}

fn default_run() -> i64 {
    1
}

/// Every key of a Spark configuration is a tuning property: one of the prefixes listed on
/// [`SparkSpec::conf`].
const SPARK_CONF_TUNING_RULE: &str = r"self.all(k, k.matches(r'^spark\.(sql\.|executor\.(memory|cores$|pyspark\.memory$)|driver\.(memory|cores$|maxResultSize$)|dynamicAllocation\.|shuffle\.|memory\.|default\.parallelism$|network\.timeout|speculation|serializer|kryo|python\.|task\.(cpus|maxFailures)$|locality\.wait|reducer\.|broadcast\.|io\.compression\.|rdd\.compress$)'))";
/// No key of a Spark configuration decides where, as whom or with what Spark runs, whatever its
/// prefix (case-insensitively, as a second line behind [`SPARK_CONF_TUNING_RULE`]).
const SPARK_CONF_DENIED_RULE: &str = r"self.all(k, !k.matches(r'(?i)^spark\.(kubernetes\.|master$|submit\.|jars|files$|archives$|executorEnv\.|authenticate|ssl|ui\.proxy|eventLog\.dir$)|javaOptions|extraClassPath|extraLibraryPath|secret|podTemplate|redaction'))";

/// Restart policy of a batch application.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum RestartPolicy {
    /// Run once.
    #[default]
    Never,
    /// Retry failed runs.
    OnFailure,
}

/// Streamlit settings: the app comes from the project's `source` (a path to the script) or from an image.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamlitSpec {
    /// The image the app runs in. With `spec.source`, an image that contains Streamlit, which
    /// runs the file at `spec.source.path` (default `app.py`) of the checkout; without it, an
    /// image whose own command serves the app on port 8501. A Python environment built as an
    /// image replaces it; when absent, the operator's `--streamlit-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// Number of app replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// Public host name, one label inside the platform's domain: the app is served there only
    /// through its own authenticating proxy (the access layer), to the project's access list.
    /// Without it, or without the access layer, the app is reachable inside the cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("host must be a DNS name in lowercase, such as 'app.example.com'"))]
    pub host: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

/// Notebook settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotebookSpec {
    /// JupyterLab image; the operator's pinned default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// The persistent volume for the notebook's work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Stop the server after this much inactivity, for example `1h` or `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    pub idle_timeout: Option<String>,
}

/// Observed state of a Project.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` summarises; runtime-specific conditions detail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// For humans: Pending, Provisioning, Running, Stopped, Degraded, Failed or Succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Readiness of each component (for Airflow: api-server, scheduler, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentStatus>,
    /// Where the project's UI, app or server is reachable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// The latest runs of a batch application, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunStatus>,
    /// The version the components run (Airflow): the last one whose database migration
    /// succeeded, which may trail `spec` while a new version migrates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One run of a batch application.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The run number (`spec.spark.application.run` when it started); absent for a run the
    /// schedule started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<i64>,
    /// The Job that runs it.
    pub job: String,
    /// Pending, Running, Succeeded or Failed.
    pub phase: String,
    /// When its driver started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// Why it failed: the Job's reason and message, and the driver's termination message (what
    /// the application wrote to `/dev/termination-log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A Project's phase, for humans; conditions carry the detail.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    /// Waiting for something it depends on.
    Pending,
    /// Objects applied, components starting.
    Provisioning,
    /// Every component ready.
    Running,
    /// Scaled to zero on request.
    Stopped,
    /// Was running; some component is not ready.
    Degraded,
    /// Cannot run as specified.
    Failed,
    /// A batch run finished successfully.
    Succeeded,
}

impl Phase {
    /// The value as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Running => "Running",
            Phase::Stopped => "Stopped",
            Phase::Degraded => "Degraded",
            Phase::Failed => "Failed",
            Phase::Succeeded => "Succeeded",
        }
    }
}

/// Readiness of one component.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Component name, for example `scheduler`.
    pub name: String,
    /// Whether it is ready.
    pub ready: bool,
    /// Ready replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Desired replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
}

/// A reachable address.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// What it is, for example `ui` or `spark-connect`.
    pub name: String,
    /// The URL.
    pub url: String,
}
