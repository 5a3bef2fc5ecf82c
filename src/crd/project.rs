//! `Project`: one runtime (Airflow, Spark, Streamlit or Notebook) inside a workspace namespace.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    AccessList, Conditions, DNS_LABEL_RULE, DNS_SUBDOMAIN_RULE, DURATION_MESSAGE, DURATION_RULE, GitSource,
    IMAGE_MESSAGE, IMAGE_RULE, RELATIVE_PATH_RULE, SecretKeyRef, StorageSpec, conditions_schema,
    free_form_object_schema, resources_schema,
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
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.airflow) == (self.runtime == 'Airflow')").message("spec.airflow must be set when spec.runtime is Airflow, and only then"))]
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
    /// Who may open the project's UI or app. Defaults to every workspace member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessList>,
    /// Scale every component to zero; configuration, volumes and databases are kept.
    #[serde(default)]
    pub stopped: bool,
    /// Escape hatch: a partial PodTemplateSpec merged into every pod the project creates.
    /// Pod Security `restricted` still applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_schema")]
    pub pod_overrides: Option<serde_json::Value>,
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

/// Airflow 3 settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirflowSpec {
    /// Airflow version; the image tag. The operator's pinned default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^3\.[0-9]+\.[0-9]+$"))]
    pub version: Option<String>,
    /// How tasks run.
    #[serde(default)]
    pub executor: AirflowExecutor,
    /// The metadata database: a managed PostgreSQL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<AirflowDatabase>,
}

/// Airflow executors the operator supports.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum AirflowExecutor {
    /// Each task in its own pod.
    #[default]
    KubernetesExecutor,
    /// Tasks as processes of the scheduler.
    LocalExecutor,
}

/// Where Airflow keeps its metadata: exactly one of `managed` or `external`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("database names exactly one of 'managed' or 'external'"))]
pub struct AirflowDatabase {
    /// A PostgreSQL the operator runs for this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedDatabase>,
    /// An existing database: a Secret key holding the SQLAlchemy connection URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
}

/// A managed PostgreSQL.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedDatabase {
    /// Its data volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
}

/// An external database.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// The Secret key with the SQLAlchemy URL.
    pub connection_secret_ref: SecretKeyRef,
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
    /// Image for driver and executors; `apache/spark:<version>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// Resources of the driver (the Connect server in `Connect` mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<SparkRole>,
    /// Executors: resources and how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executors: Option<SparkExecutors>,
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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SparkExecutors {
    /// Number of executors.
    #[serde(default = "default_executor_instances")]
    #[schemars(range(min = 0, max = 1000))]
    pub instances: i32,
    /// Resources of each executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
}

fn default_executor_instances() -> i32 {
    2
}

/// A batch application.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
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
    /// Spark configuration (`--conf key=value`); keys are Spark property names.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 100, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(validation = Rule::new(r"self.all(k, size(k) <= 256 && k.matches(r'^[A-Za-z0-9][-A-Za-z0-9._]*$'))").message("conf keys must be Spark property names such as 'spark.sql.shuffle.partitions': letters, digits, '.', '_' and '-', at most 256 characters"))]
    pub conf: std::collections::BTreeMap<String, String>,
    /// Whether a failed run is retried.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// How many finished runs are kept before the oldest is cleaned up.
    #[serde(default = "default_keep_runs")]
    #[schemars(range(min = 0, max = 100))]
    pub keep_finished_runs: i32,
}

fn default_keep_runs() -> i32 {
    3
}

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
    /// An image that contains the app; otherwise the script at `spec.source.path` runs in the
    /// operator's Streamlit image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// Number of app replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,
    /// Host name for an Ingress; without it the app is reachable only inside the cluster.
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
