//! The runtimes a Project runs, behind one seam. A Project is validated into a
//! [`ValidatedProject`] whose [`RuntimeSpec`] names the runtime; [`build`] turns it into the
//! ordered children the apply layer writes; [`status`] reads what was applied. Adding a runtime
//! means one folder here and one arm in each `match`.

pub mod airflow;
pub mod notebook;
pub mod spark;
pub mod streamlit;

use k8s_openapi::{
    api::core::v1::ResourceRequirements,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::ResourceExt;

use crate::{
    build::{children::Child, git::Checkout, owner_reference},
    conditions::{Desired, READY},
    config::Config,
    controller::{children::Applied, workspace::validate::ValidatedWorkspace},
    crd::{
        Project,
        project::{ComponentStatus, Endpoint, Phase, PodOverrides, RunStatus, Runtime},
    },
    error::{Error, Result},
    names::{LABEL_WORKSPACE, labels},
};

/// A Project ready to build.
#[derive(Clone, Debug)]
pub struct ValidatedProject {
    /// Its name.
    pub name: String,
    /// Its namespace (the workspace's).
    pub namespace: String,
    /// Its UID: children are found by it.
    pub uid: String,
    /// Owner reference to the Project.
    pub owner: OwnerReference,
    /// Scale everything to zero, keep the data.
    pub stopped: bool,
    /// Resources of the main containers.
    pub resources: Option<ResourceRequirements>,
    /// The project's code: one of the workspace's repositories, at the project's ref.
    pub source: Option<Checkout>,
    /// Allow-listed scheduling overrides.
    pub pod_overrides: Option<PodOverrides>,
    /// The workspace it lives in.
    pub workspace: ValidatedWorkspace,
    /// The built, approved Python environment it uses (the controller checks it is ready).
    pub python_environment: Option<crate::build::python_env::Ready>,
    /// Whether the access layer exposes its UI (the controller decides): only the proxy may
    /// reach its pods then.
    pub proxied: bool,
    /// The runtime and its settings.
    pub runtime: RuntimeSpec,
}

/// The runtime of a Project, validated.
#[derive(Clone, Debug)]
pub enum RuntimeSpec {
    /// A JupyterLab server.
    Notebook(notebook::Notebook),
    /// A Streamlit app.
    Streamlit(streamlit::Streamlit),
    /// A Spark Connect server or a batch application.
    Spark(Box<spark::Spark>),
    /// Airflow 3.
    Airflow(Box<airflow::Airflow>),
}

impl ValidatedProject {
    /// Metadata of a child: its name, the project's namespace, the standard labels (component
    /// `component`) plus the workspace label, and the owner reference.
    pub fn child_meta(&self, name: &str, app: &str, component: &str) -> ObjectMeta {
        let mut all = self.labels(app, component);
        all.insert(LABEL_WORKSPACE.into(), self.workspace.name.clone());
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(all),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// The selector labels of a component's pods.
    pub fn labels(&self, app: &str, component: &str) -> std::collections::BTreeMap<String, String> {
        labels(app, &self.name, component)
    }
}

/// What a runtime puts in one of its pods; [`ValidatedProject::pod_template`] adds the rest.
pub struct PodParts {
    /// The pod's labels (the selector's, and any the runtime adds).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its ServiceAccount.
    pub service_account: String,
    /// Whether the ServiceAccount's token is mounted (only for pods that talk to the API).
    pub token: bool,
    /// The numeric user and group of every container (Pod Security `restricted`).
    pub uid: i64,
    /// See [`PodParts::uid`]; also the volumes' group.
    pub gid: i64,
    /// Init containers (Git checkouts).
    pub init_containers: Vec<k8s_openapi::api::core::v1::Container>,
    /// The containers.
    pub containers: Vec<k8s_openapi::api::core::v1::Container>,
    /// The volumes.
    pub volumes: Vec<k8s_openapi::api::core::v1::Volume>,
    /// Whether the project's Python environment is mounted: in every pod that runs user code.
    pub python_environment: bool,
}

impl ValidatedProject {
    /// A pod of the project: restricted, with the project's scheduling overrides (labels,
    /// annotations, placement) and, where it runs user code, its Python environment mounted in
    /// every container.
    pub fn pod_template(&self, parts: PodParts) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
        let mut template = PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(parts.labels), ..ObjectMeta::default() }),
            spec: Some(PodSpec {
                service_account_name: Some(parts.service_account),
                automount_service_account_token: Some(parts.token),
                security_context: Some(crate::build::pod::pod_security(
                    parts.uid,
                    parts.gid,
                    Some(parts.gid),
                )),
                init_containers: (!parts.init_containers.is_empty()).then_some(parts.init_containers),
                containers: parts.containers,
                volumes: Some(parts.volumes),
                ..PodSpec::default()
            }),
        };
        if let Some(overrides) = &self.pod_overrides {
            crate::build::pod::apply_overrides(&mut template, overrides);
        }
        if let Some(environment) = self.python_environment.as_ref().filter(|_| parts.python_environment) {
            crate::build::python_env::mount(&mut template, environment);
        }
        template
    }
}

/// Validates a Project against the workspace it lives in.
pub fn validate(project: &Project, workspace: ValidatedWorkspace) -> Result<ValidatedProject> {
    let spec = &project.spec;
    let source = match &spec.source {
        None => None,
        Some(source) => {
            let repo = workspace.repos.iter().find(|r| r.name == source.repository).ok_or_else(|| {
                Error::InvalidSpec {
                    reason: "UnknownRepository",
                    message: format!(
                        "spec.source.repository {} is not one of the Workspace's gitRepositories ({})",
                        source.repository,
                        workspace.repos.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                }
            })?;
            let mut checkout = repo.clone();
            if let Some(r#ref) = &source.r#ref {
                crate::build::git::check_ref(r#ref).map_err(|message| Error::InvalidSpec {
                    reason: "InvalidGitRepository",
                    message: format!("spec.source.ref: {message}"),
                })?;
                checkout.r#ref = r#ref.clone();
            }
            Some(checkout)
        }
    };
    let runtime = match spec.runtime {
        Runtime::Notebook => RuntimeSpec::Notebook(notebook::validate(project)?),
        Runtime::Streamlit => RuntimeSpec::Streamlit(streamlit::validate(project)?),
        Runtime::Spark => RuntimeSpec::Spark(Box::new(spark::validate(project)?)),
        Runtime::Airflow => RuntimeSpec::Airflow(Box::new(airflow::validate(project, &workspace)?)),
    };
    Ok(ValidatedProject {
        name: project.name_any(),
        namespace: project.namespace().unwrap_or_default(),
        uid: project.metadata.uid.clone().unwrap_or_default(),
        owner: owner_reference(project),
        stopped: spec.stopped,
        resources: spec.resources.clone(),
        source,
        pod_overrides: spec.pod_overrides.clone(),
        workspace,
        python_environment: None,
        proxied: false,
        runtime,
    })
}

/// The children of a Project, in apply order.
pub fn build(project: &ValidatedProject, config: &Config) -> Vec<Child> {
    match &project.runtime {
        RuntimeSpec::Notebook(notebook) => notebook::build(project, notebook, config),
        RuntimeSpec::Streamlit(app) => streamlit::build(project, app, config, project.proxied),
        RuntimeSpec::Spark(spark) => spark::build(project, spark, config),
        RuntimeSpec::Airflow(airflow) => airflow::build(project, airflow, config),
    }
}

/// Children a pass keeps when they exist but does not create: a batch application's earlier
/// runs (up to `keepFinishedRuns`), an Airflow project's unfinished migrations of another
/// version.
pub fn retained(project: &ValidatedProject) -> Vec<(&'static str, String)> {
    match &project.runtime {
        RuntimeSpec::Spark(spark) => match &spark.mode {
            spark::Mode::Batch(app) => {
                spark::kept_runs(&project.name, app).into_iter().map(|name| ("Job", name)).collect()
            }
            spark::Mode::Connect => Vec::new(),
        },
        RuntimeSpec::Airflow(airflow) => {
            airflow.rollout.unfinished.iter().map(|name| ("Job", name.clone())).collect()
        }
        _ => Vec::new(),
    }
}

/// Checks what needs more than the Project itself (the operator's settings, its environment).
pub fn check(project: &ValidatedProject, config: &Config) -> Result<()> {
    match &project.runtime {
        RuntimeSpec::Streamlit(app) => streamlit::check(project, app, config),
        _ => Ok(()),
    }
}

/// What a Project offers the access layer: its UI's name, public host, Service and port, when
/// it asks for a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    /// The UI's name: `app-<project>`.
    pub ui: String,
    /// The public host.
    pub host: String,
    /// The Service and port the proxy forwards to.
    pub service: String,
    /// See [`Offered::service`].
    pub port: i32,
    /// The labels of the UI's pods.
    pub pod_labels: std::collections::BTreeMap<String, String>,
}

/// The UI a Project offers the access layer, if any.
pub fn offered(project: &ValidatedProject) -> Option<Offered> {
    let (host, port, app, component) = match &project.runtime {
        RuntimeSpec::Streamlit(app) => (app.host.as_ref()?, streamlit::PORT, streamlit::APP, "app"),
        RuntimeSpec::Spark(spark) => (spark.host.as_ref()?, spark::UI_PORT, spark::APP, "driver"),
        RuntimeSpec::Airflow(airflow) => {
            (airflow.host.as_ref()?, airflow::API_PORT, airflow::APP, airflow::Component::ApiServer.name())
        }
        _ => return None,
    };
    Some(Offered {
        // Prefixed, so no Project name meets the Studio's UIs (`studio`, `studio-ide`).
        ui: format!("app-{}", project.name),
        host: host.clone(),
        service: match &project.runtime {
            RuntimeSpec::Airflow(_) => airflow::Component::ApiServer.workload(&project.name),
            _ => project.name.clone(),
        },
        port,
        pod_labels: project.labels(app, component),
    })
}

/// What the runtime reports: phase, components, endpoints and its conditions (without
/// `Ready`, which [`summarize`] derives).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeStatus {
    /// For humans.
    pub phase: Option<Phase>,
    /// Readiness of each component.
    pub components: Vec<ComponentStatus>,
    /// Where it is reachable.
    pub endpoints: Vec<Endpoint>,
    /// Per-component conditions.
    pub conditions: Vec<Desired>,
    /// A batch application's latest runs, newest first.
    pub runs: Vec<RunStatus>,
    /// The version the components run (Airflow).
    pub version: Option<String>,
}

/// Status computed from what was applied; `previous` is the phase stored before this pass.
pub fn status(project: &ValidatedProject, applied: &Applied, previous: Option<Phase>) -> RuntimeStatus {
    match &project.runtime {
        RuntimeSpec::Notebook(_) => notebook::status(project, applied, previous),
        RuntimeSpec::Streamlit(app) => streamlit::status(project, app, applied, previous),
        RuntimeSpec::Spark(spark) => spark::status(project, spark, applied, previous),
        RuntimeSpec::Airflow(airflow) => airflow::status(project, airflow, applied, previous),
    }
}

/// `Ready`: true when every condition is, else false with the first failing condition's reason.
pub fn summarize(conditions: &[Desired], ready_message: &str) -> Desired {
    match conditions.iter().find(|c| !c.status) {
        None => Desired::yes(READY, "Ready", ready_message),
        Some(first) => Desired::no(READY, first.reason, format!("{}: {}", first.type_, first.message)),
    }
}

/// The phase of a runtime with long-running components: `Stopped` on request, `Running` when
/// every component is ready, `Degraded` when one stopped being ready after running, otherwise
/// `Provisioning`.
pub fn workload_phase(stopped: bool, components: &[ComponentStatus], previous: Option<Phase>) -> Phase {
    let all_ready = !components.is_empty() && components.iter().all(|c| c.ready);
    match (stopped, all_ready, previous) {
        (true, _, _) => Phase::Stopped,
        (false, true, _) => Phase::Running,
        (false, false, Some(Phase::Running | Phase::Degraded)) => Phase::Degraded,
        (false, false, _) => Phase::Provisioning,
    }
}

/// Why a Deployment's pods cannot be created, when its `ReplicaFailure` condition says so (a
/// quota, a LimitRange, an admission policy refused them): the message names the cause.
pub fn replica_failure(deployment: Option<&k8s_openapi::api::apps::v1::Deployment>) -> Option<String> {
    deployment?
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        .map(|c| c.message.clone().unwrap_or_else(|| c.reason.clone().unwrap_or_default()))
}

/// Readiness of a StatefulSet or Deployment component from its replicas.
pub fn component(name: &str, replicas: i32, ready_replicas: i32) -> ComponentStatus {
    ComponentStatus {
        name: name.into(),
        ready: replicas > 0 && ready_replicas >= replicas,
        ready_replicas: Some(ready_replicas),
        replicas: Some(replicas),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_components() {
        let up = [component("server", 1, 1)];
        let down = [component("server", 1, 0)];
        assert_eq!(workload_phase(false, &up, None), Phase::Running);
        assert_eq!(workload_phase(false, &down, None), Phase::Provisioning);
        assert_eq!(workload_phase(false, &down, Some(Phase::Running)), Phase::Degraded);
        assert_eq!(workload_phase(false, &down, Some(Phase::Degraded)), Phase::Degraded);
        assert_eq!(workload_phase(true, &down, Some(Phase::Running)), Phase::Stopped);
        assert_eq!(workload_phase(false, &down, Some(Phase::Stopped)), Phase::Provisioning);
        assert!(!component("server", 0, 0).ready, "zero replicas is not ready");
    }

    #[test]
    fn ready_names_the_first_failing_condition() {
        let ok = Desired::yes("Server", "Ready", "up");
        let bad = Desired::no("Server", "Starting", "not yet");
        assert!(summarize(std::slice::from_ref(&ok), "running").status);
        let ready = summarize(&[ok, bad], "running");
        assert_eq!((ready.status, ready.reason), (false, "Starting"));
        assert_eq!(ready.message, "Server: not yet");
    }
}
