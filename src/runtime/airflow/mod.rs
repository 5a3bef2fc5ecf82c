//! The Airflow runtime: Airflow 3 per Project — an API server, a scheduler, a DAG processor
//! and a triggerer, each its own Deployment; a metadata database (a managed PostgreSQL or a
//! Workspace connection); the schema migration as a Job named by the version; the keys
//! generated once; DAG bundles checked out by git-sync; tasks in pods of their own
//! (KubernetesExecutor) or in the scheduler (LocalExecutor). Validation here; the settings in
//! `config`, the objects in `build`, status in `status`.
//!
//! Order of a rollout: the database, then the migration for the version (once the database is
//! ready), then the components at that version. While a new version migrates, the components
//! keep running the version they run (`status.version`); a failed migration stops there.
//!
//! With the KubernetesExecutor the scheduler runs as `<project>-airflow-scheduler`, bound to the
//! ClusterRole `dataworkspace-airflow-scheduler` (pods) only while the admission policy
//! `dataworkspace-airflow-workers` fences those rights to the project's own task pods: under the
//! worker ServiceAccount (no token), without any Secret. Tasks reach connections and variables
//! through the API server's Execution API, never through their own environment.

mod build;
mod config;
mod status;

pub use build::{ANNOTATION_VERSION, SCHEDULER_ROLE, build, migration_job_name, scheduler_service_account};
pub use config::{AUTH_MANAGER, Setting, keys_secret, postgres_service, settings};
pub use status::{migration_state, status};

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};

use crate::{
    build::git::Checkout,
    controller::workspace::validate::ValidatedWorkspace,
    crd::{
        Project,
        common::SecretKeyRef,
        project::{AirflowDeletionPolicy, AirflowExecutor, AirflowSpec},
    },
    error::{Error, Result},
};

/// The app label of an Airflow project's objects.
pub const APP: &str = "airflow";
/// The Airflow version run when the Project names none.
pub const DEFAULT_VERSION: &str = "3.3.2";
/// Where Airflow images come from unless the operator names a mirror: `<repository>:<version>`
/// (the image's default Python), or `<version>-python<X.Y>` for a Python environment.
pub const DEFAULT_REPOSITORY: &str = "apache/airflow";
/// The managed database's image (PostgreSQL 17, Debian: user `postgres`, 999).
pub const POSTGRES_IMAGE: &str = "postgres:17.9";
/// The official image's user, `airflow` (group 0, as its entrypoint requires).
pub const UID: i64 = 50000;
/// The official PostgreSQL image's user and group.
pub const POSTGRES_UID: i64 = 999;
/// The API server's port.
pub const API_PORT: i32 = 8080;
/// The scheduler's health server.
pub const SCHEDULER_HEALTH_PORT: i32 = 8974;
/// PostgreSQL's port.
pub const POSTGRES_PORT: i32 = 5432;
/// The managed database's size when the Project names none.
pub const DEFAULT_DATABASE_SIZE: &str = "8Gi";
/// The shared volume's size when the Project names none.
pub const DEFAULT_STORAGE_SIZE: &str = "5Gi";

/// The components, in the order status lists them.
pub const COMPONENTS: [Component; 5] = [
    Component::ApiServer,
    Component::ExecutionApi,
    Component::Scheduler,
    Component::DagProcessor,
    Component::Triggerer,
];

/// One of Airflow's long-running components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// The UI and the REST API (`api-server --apps core`): reached only through the access
    /// layer, which vouches for who is asking.
    ApiServer,
    /// The Execution API tasks report to (`api-server --apps execution`): reached only by the
    /// project's Airflow pods, each task with its own token.
    ExecutionApi,
    /// Schedules, and with the LocalExecutor runs, the tasks.
    Scheduler,
    /// Parses the DAG bundles.
    DagProcessor,
    /// Runs deferred tasks' triggers.
    Triggerer,
}

impl Component {
    /// Its name: the component label and the suffix of its workload's name.
    pub fn name(self) -> &'static str {
        match self {
            Component::ApiServer => "api-server",
            Component::ExecutionApi => "execution-api",
            Component::Scheduler => "scheduler",
            Component::DagProcessor => "dag-processor",
            Component::Triggerer => "triggerer",
        }
    }

    /// Its workload's name.
    pub fn workload(self, project: &str) -> String {
        format!("{project}-{}", self.name())
    }
}

/// An Airflow project, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Airflow {
    /// The version the spec asks for.
    pub version: String,
    /// The image the Project names, if any.
    pub image: Option<String>,
    /// How tasks run.
    pub executor: AirflowExecutor,
    /// How many tasks run at once.
    pub parallelism: i32,
    /// The metadata database.
    pub database: Database,
    /// Whether the database volume and the keys outlive the Project.
    pub retain: bool,
    /// The DAG bundles.
    pub bundles: Vec<Bundle>,
    /// Airflow Variables: name → where the value comes from.
    pub variables: Vec<(String, Value)>,
    /// Airflow Connections: id → the Workspace connection's Secret key.
    pub connections: Vec<(String, SecretKeyRef)>,
    /// The UI's public host.
    pub host: Option<String>,
    /// Replicas and resources of each component, in [`COMPONENTS`] order.
    pub components: Vec<Workload>,
    /// The shared volume's size (DAG checkouts, task logs).
    pub storage_size: Quantity,
    /// Its StorageClass.
    pub storage_class: Option<String>,
    /// Where task logs go when not on the shared volume.
    pub remote_logs: Option<RemoteLogs>,
    /// Decided by the controller from what the API server holds: the rollout's state.
    pub rollout: Rollout,
    /// Who may sign in to the UI (the project's access list, decided by the controller), each
    /// by e-mail with their Airflow role.
    pub roles: Vec<(String, AirflowRole)>,
    /// Whether the admission policy fencing the scheduler's pod rights is installed (the
    /// controller checks); without it the KubernetesExecutor's scheduler has no rights and
    /// nothing runs. Always true for the LocalExecutor, which needs none.
    pub fenced: bool,
}

/// What the controller knows of the rollout before it builds, from the caches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rollout {
    /// Whether the database accepts connections (a managed one's StatefulSet is ready; an
    /// external one is assumed to).
    pub database_ready: bool,
    /// The migration Job of the spec's version, if it exists.
    pub migration: Option<Migration>,
    /// What the components run now (version and image), read from their live workloads.
    pub running: Option<(String, String)>,
    /// Whether the keys Secret was kept from an earlier Project of the same name: its data
    /// then stays kept, whatever this Project's deletion policy says.
    pub inherited: bool,
    /// Migration Jobs of other versions that have not finished: kept until they do, so a
    /// version changed again never interrupts a migration.
    pub unfinished: Vec<String>,
}

/// How the migration Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// Created, not finished.
    Running,
    /// Finished successfully: the components may run the version.
    Succeeded,
    /// Gave up; the message is the Job's.
    Failed(String),
}

/// A component's replicas and resources.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Which.
    pub component: Component,
    /// Replicas while running.
    pub replicas: i32,
    /// Container resources.
    pub resources: Option<ResourceRequirements>,
}

/// The Airflow role a person gets from their workspace role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AirflowRole {
    /// Workspace admins.
    Admin,
    /// Developers: operate DAGs and runs, not the instance's configuration.
    Op,
    /// Viewers: read only.
    Viewer,
}

impl AirflowRole {
    /// From a workspace role.
    pub fn of(role: crate::crd::common::Role) -> AirflowRole {
        match role {
            crate::crd::common::Role::Admin => AirflowRole::Admin,
            crate::crd::common::Role::Developer => AirflowRole::Op,
            crate::crd::common::Role::Viewer => AirflowRole::Viewer,
        }
    }

    /// As the auth manager reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            AirflowRole::Admin => "admin",
            AirflowRole::Op => "op",
            AirflowRole::Viewer => "viewer",
        }
    }
}

/// The metadata database.
#[derive(Clone, Debug, PartialEq)]
pub enum Database {
    /// A PostgreSQL StatefulSet the operator runs.
    Managed {
        /// Its volume's size.
        size: Quantity,
        /// Its StorageClass.
        storage_class: Option<String>,
        /// Its container's resources.
        resources: Option<ResourceRequirements>,
    },
    /// A Workspace connection holding the SQLAlchemy URL.
    External {
        /// The connection's name.
        connection: String,
        /// Its Secret key.
        secret: SecretKeyRef,
    },
}

/// Remote task logs.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteLogs {
    /// The URL.
    pub folder: String,
    /// The connection id (one of the Airflow connections).
    pub connection: String,
}

/// A DAG bundle: a repository checked out at a ref, DAGs under a path of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// The checkout (its name names the bundle).
    pub checkout: Checkout,
    /// The DAGs' directory inside the repository.
    pub path: Option<String>,
}

/// Where an Airflow Variable's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A key of the Workspace's variables ConfigMap.
    Workspace(String),
    /// One of the Workspace's secrets.
    Secret(SecretKeyRef),
    /// The project's own value.
    Literal(String),
}

fn invalid(reason: &'static str, message: String) -> Error {
    Error::InvalidSpec { reason, message }
}

/// Validates the `airflow` section of a Project against its Workspace: the DAG repositories,
/// the variables and connections it selects and the database connection must exist there.
pub fn validate(project: &Project, workspace: &ValidatedWorkspace) -> Result<Airflow> {
    let spec: AirflowSpec = project.spec.airflow.clone().ok_or_else(|| {
        invalid("MissingRuntimeSection", "spec.airflow must be set when spec.runtime is Airflow".into())
    })?;
    let version = spec.version.clone().unwrap_or_else(|| DEFAULT_VERSION.into());
    let connection = |field: &str, name: &str| -> Result<SecretKeyRef> {
        workspace.connections.get(name).cloned().ok_or_else(|| Error::Dependency {
            reason: "MissingConnection",
            message: format!(
                "{field} names the connection {name}, which the Workspace does not list in spec.connections ({})",
                list(workspace.connections.keys())
            ),
        })
    };
    let database = match spec.database.as_ref().and_then(|d| d.external.as_ref()) {
        Some(external) => Database::External {
            connection: external.connection.clone(),
            secret: connection("spec.airflow.database.external.connection", &external.connection)?,
        },
        None => {
            let managed = spec.database.as_ref().and_then(|d| d.managed.clone()).unwrap_or_default();
            let storage = managed.storage.unwrap_or_default();
            Database::Managed {
                size: storage.size.unwrap_or_else(|| Quantity(DEFAULT_DATABASE_SIZE.into())),
                storage_class: storage.storage_class_name,
                resources: managed.resources,
            }
        }
    };
    let sources =
        if spec.dags.is_empty() { project.spec.source.iter().cloned().collect() } else { spec.dags.clone() };
    let mut bundles = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let field =
            if spec.dags.is_empty() { "spec.source".to_string() } else { format!("spec.airflow.dags[{i}]") };
        let repo = workspace.repos.iter().find(|r| r.name == source.repository).ok_or_else(|| {
            invalid(
                "UnknownRepository",
                format!(
                    "{field}.repository {} is not one of the Workspace's gitRepositories ({})",
                    source.repository,
                    list(workspace.repos.iter().map(|r| &r.name))
                ),
            )
        })?;
        let mut checkout = repo.clone();
        if let Some(r#ref) = &source.r#ref {
            crate::build::git::check_ref(r#ref)
                .map_err(|message| invalid("InvalidGitRepository", format!("{field}.ref: {message}")))?;
            checkout.r#ref = r#ref.clone();
        }
        let path = source.path.as_deref().map(|p| p.trim_matches('/')).filter(|p| !p.is_empty());
        if let Some(path) = path {
            check_path(path).map_err(|m| invalid("InvalidDagPath", format!("{field}.path {path:?} {m}")))?;
        }
        bundles.push(Bundle { checkout, path: path.map(String::from) });
    }
    // The Workspace's variables and secrets, by name (the Workspace refuses a name in both).
    let offered: std::collections::BTreeMap<&String, Value> = workspace
        .variables
        .keys()
        .map(|k| (k, Value::Workspace(k.clone())))
        .chain(workspace.secrets.iter().map(|(k, r)| (k, Value::Secret(r.clone()))))
        .collect();
    let mut variables: Vec<(String, Value)> = match &spec.workspace_variables {
        None => offered.iter().map(|(k, v)| ((*k).clone(), v.clone())).collect(),
        Some(names) => names
            .iter()
            .map(|name| {
                offered.get(name).map(|v| (name.clone(), v.clone())).ok_or_else(|| {
                    invalid(
                        "UnknownVariable",
                        format!(
                            "spec.airflow.workspaceVariables names {name}, which is none of the Workspace's variables or secrets ({})",
                            list(offered.keys().copied())
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?,
    };
    for (name, value) in &spec.variables {
        if variables.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(invalid(
                "DuplicateVariable",
                format!(
                    "spec.airflow.variables sets {name}, which the Workspace's variables already give; rename it"
                ),
            ));
        }
        variables.push((name.clone(), Value::Literal(value.clone())));
    }
    let connections: Vec<(String, SecretKeyRef)> = match &spec.workspace_connections {
        None => workspace.connections.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(names) => names
            .iter()
            .map(|name| Ok((name.clone(), connection("spec.airflow.workspaceConnections", name)?)))
            .collect::<Result<_>>()?,
    };
    let remote_logs = match spec.remote_logs.clone() {
        Some(remote) => {
            if !connections.iter().any(|(id, _)| *id == remote.connection) {
                connection("spec.airflow.remoteLogs.connection", &remote.connection)?;
                return Err(invalid(
                    "UnknownConnection",
                    format!(
                        "spec.airflow.remoteLogs.connection {} is not among the connections the project selects in spec.airflow.workspaceConnections",
                        remote.connection
                    ),
                ));
            }
            Some(RemoteLogs { folder: remote.folder, connection: remote.connection })
        }
        None => None,
    };
    let storage = spec.storage.clone().unwrap_or_default();
    let components = COMPONENTS
        .iter()
        .map(|&component| {
            let section = match component {
                Component::ApiServer => &spec.api_server,
                Component::ExecutionApi => &spec.execution_api,
                Component::Scheduler => &spec.scheduler,
                Component::DagProcessor => &spec.dag_processor,
                Component::Triggerer => &spec.triggerer,
            };
            let section = section.clone().unwrap_or_default();
            Workload {
                component,
                replicas: section.replicas.unwrap_or(1).clamp(1, 10),
                resources: section.resources,
            }
        })
        .collect();
    Ok(Airflow {
        version,
        image: spec.image,
        executor: spec.executor,
        parallelism: spec.parallelism.unwrap_or(match spec.executor {
            AirflowExecutor::KubernetesExecutor => 32,
            AirflowExecutor::LocalExecutor => 8,
        }),
        database,
        retain: spec.deletion_policy == AirflowDeletionPolicy::Retain,
        bundles,
        variables,
        connections,
        host: spec.host,
        components,
        storage_size: storage.size.unwrap_or_else(|| Quantity(DEFAULT_STORAGE_SIZE.into())),
        storage_class: storage.storage_class_name,
        remote_logs,
        rollout: Rollout::default(),
        roles: Vec::new(),
        fenced: spec.executor == AirflowExecutor::LocalExecutor,
    })
}

/// A path inside a repository: relative, no `..`, no control characters, not an option, and
/// nothing Airflow would expand when it reads the setting that holds it (`$`, `~`, `%`): every
/// `AIRFLOW__*` value goes through `expandvars`, which would put another setting's value (a key)
/// where the path is logged.
fn check_path(path: &str) -> std::result::Result<(), &'static str> {
    if path.starts_with('-')
        || path.split('/').any(|s| s == ".." || s == ".")
        || path.chars().any(|c| c.is_control() || matches!(c, '$' | '~' | '%' | '\\'))
    {
        return Err(
            "must be a relative path inside the repository: no '..' or '.' segment, not starting with '-', none of $ ~ % or a backslash",
        );
    }
    Ok(())
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

impl Airflow {
    /// The workload of `component`.
    pub fn workload(&self, component: Component) -> &Workload {
        self.components.iter().find(|w| w.component == component).expect("every component is validated")
    }

    /// Whether the database volume and the keys outlive the Project: under `Retain`, and when
    /// they were kept from an earlier Project of the same name (only an admin deletes those).
    pub fn keeps_data(&self) -> bool {
        self.retain || self.rollout.inherited
    }

    /// Whether tasks run in pods of their own.
    pub fn kubernetes_executor(&self) -> bool {
        self.executor == AirflowExecutor::KubernetesExecutor
    }
}
