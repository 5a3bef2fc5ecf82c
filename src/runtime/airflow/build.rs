//! The objects of an Airflow project: its ServiceAccounts (and the scheduler's RoleBinding with
//! the KubernetesExecutor), the files ConfigMap (auth manager, roles, task pod template), the
//! keys generated once, the shared volume, the managed PostgreSQL, the migration Job, the DAG
//! checkouts and the four components.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};
use k8s_openapi::{
    api::{
        apps::v1::{
            Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet,
            StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
        },
        batch::v1::{Job, JobSpec},
        core::v1::{
            ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, ExecAction,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
            PodSpec, PodTemplateSpec, Probe, ServiceAccount, Volume, VolumeMount, VolumeResourceRequirements,
        },
        networking::v1::{
            NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
        },
        rbac::v1::{RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    API_PORT, APP, Airflow, Component, Database, Migration, POSTGRES_IMAGE, POSTGRES_PORT, POSTGRES_UID,
    SCHEDULER_HEALTH_PORT, UID,
    config::{self, DAGS, FILES, LOGS, Role, keys},
};
use crate::{
    build::{
        children::{Child, Encoding, GeneratedSecret, hashed_name},
        env, git, pod, workload,
    },
    config::Config,
    runtime::{PodParts, ValidatedProject},
};

/// The ClusterRole bound to the scheduler's ServiceAccount with the KubernetesExecutor
/// (deploy/roles.yaml).
pub const SCHEDULER_ROLE: &str = "dataworkspace-airflow-scheduler";
/// The annotation naming the Airflow version a component's pods run.
pub const ANNOTATION_VERSION: &str = "dataworkspace.io/airflow-version";
/// The annotation that rolls a component when the files it reads change.
const ANNOTATION_FILES: &str = "dataworkspace.io/airflow-files";
/// The container of a task pod, as the KubernetesExecutor requires it.
const WORKER_CONTAINER: &str = "base";
/// The DAG checkouts' volume in pods.
const DAGS_VOLUME: &str = "dags";
/// The logs' volume in pods.
const LOGS_VOLUME: &str = "logs";

/// The scheduler's ServiceAccount with the KubernetesExecutor: the only identity with rights on
/// pods (its tasks').
pub fn scheduler_service_account(project: &str) -> String {
    format!("{project}-airflow-scheduler")
}

/// The ServiceAccount of the task pods: no token, no rights.
pub fn worker_service_account(project: &str) -> String {
    format!("{project}-airflow-worker")
}

/// The ServiceAccount of every other pod: no token, no rights.
fn service_account(project: &str) -> String {
    format!("{project}-airflow")
}

/// The volume of the DAG checkouts: written by git-sync only, read-only everywhere else.
pub fn dags_claim(project: &str) -> String {
    format!("{project}-airflow-dags")
}

/// The volume of the task logs, written by every Airflow pod.
pub fn logs_claim(project: &str) -> String {
    format!("{project}-airflow-logs")
}

/// The migration Job of the spec's version against its database: named by both, so a new
/// version (or another database) migrates again, and the same never twice.
pub fn migration_job_name(project: &str, airflow: &Airflow) -> String {
    let target = match &airflow.database {
        Database::Managed { .. } => "managed".to_string(),
        Database::External { connection, secret } => format!("{connection}/{}/{}", secret.name, secret.key),
    };
    hashed_name(&format!("{project}-migrate"), &(&airflow.version, target))
}

/// The image of the Airflow containers at `version`: the project's, else the operator's
/// repository at that version — with the Python of the project's Python environment, so that
/// its packages import (a Python environment built as an image replaces it in the pods).
pub fn image(project: &ValidatedProject, airflow: &Airflow, config: &Config, version: &str) -> String {
    if let Some(image) = &airflow.image {
        return image.clone();
    }
    let repository = config.airflow_image_repository.as_deref().unwrap_or(super::DEFAULT_REPOSITORY);
    match &project.python_environment {
        Some(environment) if environment.image.is_none() => {
            format!("{repository}:{version}-python{}", environment.python_version)
        }
        _ => format!("{repository}:{version}"),
    }
}

/// Whether nothing may run: stopped on request, or the KubernetesExecutor's scheduler unfenced.
fn halted(project: &ValidatedProject, airflow: &Airflow) -> bool {
    project.stopped || !airflow.fenced
}

/// Every object of the project, in apply order.
pub fn build(project: &ValidatedProject, airflow: &Airflow, config: &Config) -> Vec<Child> {
    let name = project.name.as_str();
    let desired_image = image(project, airflow, config, &airflow.version);
    let mut children = vec![Child::ServiceAccount(ServiceAccount {
        metadata: project.child_meta(&service_account(name), APP, "airflow"),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    })];
    if airflow.kubernetes_executor() {
        children.push(Child::ServiceAccount(ServiceAccount {
            metadata: project.child_meta(&scheduler_service_account(name), APP, "scheduler"),
            // The scheduler talks to the API server (it creates the task pods).
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        }));
        children.push(Child::ServiceAccount(ServiceAccount {
            metadata: project.child_meta(&worker_service_account(name), APP, "worker"),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }));
        // The pod rights only while the admission policy narrows them to the project's task pods.
        if airflow.fenced {
            children.push(Child::RoleBinding(scheduler_binding(project)));
        }
    }
    // The components run the version whose migration succeeded: the spec's, or while it
    // migrates the one they run; before any migration succeeded, nothing runs.
    let migrated = airflow.rollout.migration == Some(Migration::Succeeded);
    let (version, image, may_run) = match (&airflow.rollout.running, migrated) {
        (_, true) => (airflow.version.clone(), desired_image.clone(), true),
        (Some((version, image)), false) => (version.clone(), image.clone(), true),
        (None, false) => (airflow.version.clone(), desired_image.clone(), false),
    };
    // Tasks too: their pod template names the components' image.
    let files = files(project, airflow, &image);
    children.push(Child::ConfigMap(ConfigMap {
        metadata: project.child_meta(&config::files_config_map(name), APP, "airflow"),
        data: Some(files.clone()),
        ..ConfigMap::default()
    }));
    // Who may sign in: read by the UI's API server at each request, and mounted there only.
    children.push(Child::ConfigMap(ConfigMap {
        metadata: project.child_meta(&config::roles_config_map(name), APP, Component::ApiServer.name()),
        data: Some(BTreeMap::from([(config::ROLES.to_string(), config::roles_file(&airflow.roles))])),
        ..ConfigMap::default()
    }));
    children.push(Child::GeneratedSecret(keys_secret(project, airflow)));
    children.push(Child::Volume(shared_volume(project, airflow, &logs_claim(name))));
    if !airflow.bundles.is_empty() {
        children.push(Child::Volume(shared_volume(project, airflow, &dags_claim(name))));
    }
    if let Database::Managed { .. } = &airflow.database {
        children.push(Child::Service(workload::service(
            project.child_meta(&config::postgres_service(name), APP, "postgres"),
            project.labels(APP, "postgres"),
            &[("postgres", POSTGRES_PORT)],
        )));
        children.push(Child::NetworkPolicy(postgres_network_policy(project)));
        children.push(Child::StatefulSet(postgres(project, airflow)));
    }
    // The migration, once the database accepts connections; kept (suspended while stopped)
    // once it exists, so it never runs twice.
    if airflow.rollout.database_ready || airflow.rollout.migration.is_some() {
        children.push(Child::Job(migration_job(project, airflow, &desired_image)));
    }
    if !airflow.bundles.is_empty() {
        children.push(Child::Deployment(dags_deployment(project, airflow)));
    }
    for server in [Component::ApiServer, Component::ExecutionApi] {
        children.push(Child::Service(workload::service(
            project.child_meta(&server.workload(name), APP, server.name()),
            project.labels(APP, server.name()),
            &[("api", API_PORT)],
        )));
    }
    children.push(Child::NetworkPolicy(api_network_policy(project)));
    children.push(Child::NetworkPolicy(execution_network_policy(project)));
    // Before a first migration succeeded there is nothing to run: the workloads are made once,
    // at the migrated version (and kept, scaled to zero, while stopped).
    if !may_run {
        return children;
    }
    for component in super::COMPONENTS {
        let replicas = if halted(project, airflow) { 0 } else { airflow.workload(component).replicas };
        // A component rolls when a file it reads at start changes: the API server its auth
        // manager, the scheduler the task pod template. The roles file is read at each request.
        let read = match component {
            Component::ApiServer => files.get(config::AUTH_MODULE),
            Component::Scheduler => files.get(config::POD_TEMPLATE),
            _ => None,
        };
        let files_hash = read.map(|text| hashed_name("files", text));
        children.push(Child::Deployment(component_deployment(
            project, airflow, component, &image, &version, replicas, files_hash,
        )));
    }
    children
}

/// The scheduler's RoleBinding to [`SCHEDULER_ROLE`] in the project's namespace.
fn scheduler_binding(project: &ValidatedProject) -> RoleBinding {
    let account = scheduler_service_account(&project.name);
    RoleBinding {
        metadata: project.child_meta(&account, APP, "scheduler"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: SCHEDULER_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account,
            namespace: Some(project.namespace.clone()),
            ..Subject::default()
        }]),
    }
}

/// The keys, generated once. With the `Retain` policy the Secret has no owner, so it outlives
/// the Project with the database it decrypts; a Project re-created under the same name takes
/// it back.
fn keys_secret(project: &ValidatedProject, airflow: &Airflow) -> GeneratedSecret {
    let mut metadata = project.child_meta(&config::keys_secret(&project.name), APP, "airflow");
    if airflow.keeps_data() {
        metadata.owner_references = None;
    }
    // Every key, whatever the database: a kept Secret taken back, or a project switched to a
    // managed database, finds the keys it needs (a Secret is never rewritten).
    let keys = vec![
        (keys::FERNET.to_string(), Encoding::Fernet),
        (keys::JWT.to_string(), Encoding::Hex),
        (keys::UI_JWT.to_string(), Encoding::Hex),
        (keys::API.to_string(), Encoding::Hex),
        (keys::POSTGRES.to_string(), Encoding::Hex),
    ];
    // 64 bytes: the tokens are signed with HS512, whose key should be as long as its hash.
    let keeper = airflow.keeps_data().then(|| project.uid.clone());
    GeneratedSecret { metadata, keys, bytes: 64, keeper }
}

/// A volume every Airflow pod mounts (the DAG checkouts, the task logs), so `ReadWriteMany`.
fn shared_volume(project: &ValidatedProject, airflow: &Airflow, claim: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: project.child_meta(claim, APP, "airflow"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".into()]),
            storage_class_name: airflow.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), airflow.storage_size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The files every Airflow container mounts at [`FILES`]: the auth manager, and with the
/// KubernetesExecutor the task pod template.
fn files(project: &ValidatedProject, airflow: &Airflow, image: &str) -> BTreeMap<String, String> {
    let mut files =
        BTreeMap::from([(config::AUTH_MODULE.to_string(), config::AUTH_MODULE_SOURCE.to_string())]);
    if airflow.kubernetes_executor() {
        files.insert(
            config::POD_TEMPLATE.into(),
            serde_yaml::to_string(&worker_pod(project, airflow, image)).unwrap_or_default(),
        );
    }
    files
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn claim(name: &str, claim: String, read_only: bool) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            read_only: read_only.then_some(true),
        }),
        ..Volume::default()
    }
}

/// The volumes and mounts every Airflow container has: its home and `/tmp` (empty
/// directories: the root filesystem is read-only), the operator's files, and (`shared`) the
/// DAG checkouts, read-only (the claim itself: only git-sync writes them, so no task can plant
/// a repository configuration there that git-sync would run with the credentials), and the logs.
fn airflow_volumes(
    project: &ValidatedProject,
    airflow: &Airflow,
    shared: bool,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    let mut volumes = vec![
        workload::empty_dir("home"),
        workload::empty_dir("tmp"),
        workload::config_map_volume("files", &config::files_config_map(&project.name)),
    ];
    let mut mounts =
        vec![mount("home", config::HOME, false), mount("tmp", "/tmp", false), mount("files", FILES, true)];
    if shared {
        volumes.push(claim(LOGS_VOLUME, logs_claim(&project.name), false));
        mounts.push(mount(LOGS_VOLUME, LOGS, false));
        if !airflow.bundles.is_empty() {
            volumes.push(claim(DAGS_VOLUME, dags_claim(&project.name), true));
            mounts.push(mount(DAGS_VOLUME, DAGS, true));
        }
    }
    (volumes, mounts)
}

/// The task pod template of the KubernetesExecutor: the container `base` (the executor sets
/// its command), the worker ServiceAccount without a token, no Secret at all (tasks ask the
/// API server for connections and variables with the token the scheduler gives them), the
/// workspace's plain variables, the shared volume, the project's resources, Python environment
/// and scheduling; restricted. The admission policy `dataworkspace-airflow-workers` holds the
/// scheduler to this.
pub fn worker_pod(project: &ValidatedProject, airflow: &Airflow, image: &str) -> Pod {
    let (volumes, mounts) = airflow_volumes(project, airflow, true);
    let container = Container {
        name: WORKER_CONTAINER.into(),
        image: Some(image.into()),
        env: Some(config::settings_env(project, airflow, Role::Worker)),
        env_from: Some(workspace_variables()),
        resources: project.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(pod::container_security(UID, true)),
        ..Container::default()
    };
    let template = airflow_pod(
        project,
        project.labels(APP, "worker"),
        (worker_service_account(&project.name), false),
        container,
        volumes,
        true,
    );
    let mut spec = template.spec.unwrap_or_default();
    spec.restart_policy = Some("Never".into());
    Pod { metadata: template.metadata.unwrap_or_default(), spec: Some(spec), ..Pod::default() }
}

/// A pod of one Airflow container, as the image's user (group 0, as its entrypoint requires),
/// under `account` (a ServiceAccount and whether its token is mounted), with the project's
/// Python environment where it runs DAG code.
fn airflow_pod(
    project: &ValidatedProject,
    labels: BTreeMap<String, String>,
    account: (String, bool),
    container: Container,
    volumes: Vec<Volume>,
    python_environment: bool,
) -> PodTemplateSpec {
    project.pod_template(PodParts {
        labels,
        service_account: account.0,
        token: account.1,
        uid: UID,
        gid: 0,
        init_containers: Vec::new(),
        containers: vec![container],
        volumes,
        python_environment,
    })
}

/// The Workspace's plain variables as environment (no Secrets).
fn workspace_variables() -> Vec<EnvFromSource> {
    vec![EnvFromSource {
        config_map_ref: Some(ConfigMapEnvSource { name: env::VARIABLES.into(), optional: Some(true) }),
        ..EnvFromSource::default()
    }]
}

/// `airflow jobs check` for a component's job on this host: the process check the official
/// chart uses for the DAG processor and the triggerer, with a generous timeout (each check
/// starts Airflow).
fn jobs_check(job_type: &str) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(
                ["airflow", "jobs", "check", "--job-type", job_type, "--local"].map(String::from).to_vec(),
            ),
        }),
        timeout_seconds: Some(20),
        period_seconds: Some(60),
        failure_threshold: Some(5),
        ..Probe::default()
    }
}

/// Requests and limits (CPU, memory) as a container's resources.
fn sized(cpu: &str, memory: &str, cpu_limit: &str, memory_limit: &str) -> ResourceRequirements {
    let quantities = |cpu: &str, memory: &str| {
        Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ]))
    };
    ResourceRequirements {
        requests: quantities(cpu, memory),
        limits: quantities(cpu_limit, memory_limit),
        ..ResourceRequirements::default()
    }
}

/// A component's resources: the project's for it; with the LocalExecutor the scheduler, which
/// runs the tasks, the project's task resources; else a size that fits the workload, so that
/// an Airflow project takes about half of a default workspace quota (8 CPUs), not all of it
/// (which the workspace's per-container defaults would).
fn component_resources(
    project: &ValidatedProject,
    airflow: &Airflow,
    component: Component,
) -> ResourceRequirements {
    if let Some(own) = &airflow.workload(component).resources {
        return own.clone();
    }
    if let Some(tasks) = project
        .resources
        .as_ref()
        .filter(|_| component == Component::Scheduler && !airflow.kubernetes_executor())
    {
        return tasks.clone();
    }
    match component {
        Component::ApiServer => sized("250m", "768Mi", "1", "1536Mi"),
        Component::ExecutionApi => sized("100m", "512Mi", "500m", "1Gi"),
        Component::Scheduler | Component::DagProcessor => sized("250m", "512Mi", "1", "1Gi"),
        Component::Triggerer => sized("100m", "256Mi", "500m", "768Mi"),
    }
}

/// A component's `airflow` arguments.
pub fn args(component: Component) -> Vec<String> {
    let args: &[&str] = match component {
        // Behind the proxy: its X-Forwarded-* headers say the scheme and host people use.
        Component::ApiServer => &["api-server", "--apps", "core", "--proxy-headers"],
        Component::ExecutionApi => &["api-server", "--apps", "execution"],
        // Task and trigger logs are on the shared volume (or remote): no log servers.
        Component::Scheduler => &["scheduler", "--skip-serve-logs"],
        Component::DagProcessor => &["dag-processor"],
        Component::Triggerer => &["triggerer", "--skip-serve-logs"],
    };
    args.iter().map(|a| (*a).to_string()).collect()
}

/// One component's Deployment.
fn component_deployment(
    project: &ValidatedProject,
    airflow: &Airflow,
    component: Component,
    image: &str,
    version: &str,
    replicas: i32,
    files_hash: Option<String>,
) -> Deployment {
    let name = component.workload(&project.name);
    let selector = project.labels(APP, component.name());
    let (volumes, mounts) = airflow_volumes(project, airflow, true);
    let mut vars = config::settings_env(project, airflow, Role::Component(component));
    // Connections and variables where DAG code and tasks read them: the DAG processor and the
    // triggerer run DAG code, and tasks ask the Execution API.
    if matches!(component, Component::ExecutionApi | Component::DagProcessor | Component::Triggerer) {
        vars.extend(config::connections_and_variables(airflow));
    }
    let (mut volumes, mut mounts) = (volumes, mounts);
    let mut labels = selector.clone();
    if component == Component::ApiServer {
        vars.push(env::var(config::ROLES_ENV, format!("{}/{}", config::ROLES_DIR, config::ROLES)));
        volumes.push(workload::config_map_volume("roles", &config::roles_config_map(&project.name)));
        mounts.push(mount("roles", config::ROLES_DIR, true));
        // It trusts the proxy's header: the workspace's peers policy must not admit the
        // namespace's pods to it, only the access layer's policy its proxy.
        labels.insert(crate::build::access::LABEL_PROXIED.into(), "true".into());
        // Reading remote task logs takes their connection.
        vars.extend(config::remote_log_connection(airflow));
    }
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..ContainerPort::default()
    };
    let (ports, readiness, liveness, startup, grace) = match component {
        Component::ApiServer | Component::ExecutionApi => {
            // Each app's own health route: on the UI's server `/execution/health` is the UI's
            // catch-all page.
            let path = if component == Component::ApiServer {
                "/api/v2/monitor/health"
            } else {
                "/execution/health"
            };
            let health = workload::http_probe(path, "api");
            (
                vec![port("api", API_PORT)],
                Some(Probe { timeout_seconds: Some(5), ..health.clone() }),
                Some(Probe { timeout_seconds: Some(5), failure_threshold: Some(5), ..health.clone() }),
                Some(Probe {
                    timeout_seconds: Some(5),
                    period_seconds: Some(10),
                    failure_threshold: Some(30),
                    ..health
                }),
                30,
            )
        }
        Component::Scheduler => {
            // Its own health server: 200 while this host's scheduler heartbeats, without starting
            // an Airflow process per check.
            let health = workload::http_probe("/health", "health");
            (
                vec![port("health", SCHEDULER_HEALTH_PORT)],
                Some(Probe { timeout_seconds: Some(10), ..health.clone() }),
                Some(Probe {
                    timeout_seconds: Some(20),
                    period_seconds: Some(60),
                    failure_threshold: Some(5),
                    ..health.clone()
                }),
                Some(Probe { timeout_seconds: Some(10), failure_threshold: Some(30), ..health }),
                60,
            )
        }
        Component::DagProcessor | Component::Triggerer => {
            let check = jobs_check(if component == Component::DagProcessor {
                "DagProcessorJob"
            } else {
                "TriggererJob"
            });
            (
                Vec::new(),
                None,
                Some(check.clone()),
                Some(Probe { period_seconds: Some(10), failure_threshold: Some(30), ..check }),
                60,
            )
        }
    };
    let container = Container {
        name: component.name().into(),
        image: Some(image.into()),
        // The image's entrypoint runs `airflow <args>` (and waits for the database first).
        args: Some(args(component)),
        env: Some(vars),
        env_from: (component != Component::ApiServer).then(workspace_variables),
        ports: (!ports.is_empty()).then_some(ports),
        resources: Some(component_resources(project, airflow, component)),
        volume_mounts: Some(mounts),
        readiness_probe: readiness,
        liveness_probe: liveness,
        startup_probe: startup,
        security_context: Some(pod::container_security(UID, true)),
        ..Container::default()
    };
    let token = component == Component::Scheduler && airflow.kubernetes_executor();
    let account =
        if token { scheduler_service_account(&project.name) } else { service_account(&project.name) };
    let mut template = airflow_pod(
        project,
        labels,
        (account, token),
        container,
        volumes,
        // Where DAG code runs: parsing, triggers, and with the LocalExecutor the tasks. The API
        // servers run none, and keep Airflow's own packages first on their import path.
        match component {
            Component::ApiServer | Component::ExecutionApi => false,
            Component::Scheduler => !airflow.kubernetes_executor(),
            Component::DagProcessor | Component::Triggerer => true,
        },
    );
    let metadata = template.metadata.get_or_insert_with(ObjectMeta::default);
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(ANNOTATION_VERSION.into(), version.into());
    if let Some(hash) = files_hash {
        annotations.insert(ANNOTATION_FILES.into(), hash);
    }
    if let Some(spec) = template.spec.as_mut() {
        spec.termination_grace_period_seconds = Some(grace);
    }
    let mut metadata = project.child_meta(&name, APP, component.name());
    metadata.annotations = Some(BTreeMap::from([(ANNOTATION_VERSION.into(), version.into())]));
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The DAG checkouts: one git-sync per repository, the only pod with the repositories'
/// credentials and the only one that writes the checkouts' volume, which every Airflow pod
/// reads. One replica, and
/// never two at once.
fn dags_deployment(project: &ValidatedProject, airflow: &Airflow) -> Deployment {
    let checkouts: Vec<git::Checkout> = airflow.bundles.iter().map(|b| b.checkout.clone()).collect();
    let containers = checkouts
        .iter()
        .map(|r| Container {
            resources: Some(sized("10m", "64Mi", "200m", "256Mi")),
            ..git::container(r, DAGS_VOLUME, DAGS, DAGS, git::Mode::Continuous)
        })
        .collect();
    let mut volumes = vec![claim(DAGS_VOLUME, dags_claim(&project.name), false)];
    volumes.extend(git::volumes(&checkouts));
    let selector = project.labels(APP, "dags");
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(selector.clone()), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            service_account_name: Some(service_account(&project.name)),
            automount_service_account_token: Some(false),
            // Group 0, as the Airflow pods that share the volume.
            security_context: Some(pod::pod_security(git::GIT_SYNC_UID, 0, Some(0))),
            containers,
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    };
    let mut template = template;
    if let Some(overrides) = &project.pod_overrides {
        pod::apply_overrides(&mut template, overrides);
    }
    Deployment {
        metadata: project.child_meta(&format!("{}-dags", project.name), APP, "dags"),
        spec: Some(DeploymentSpec {
            replicas: Some(if halted(project, airflow) { 0 } else { 1 }),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// `airflow db migrate` for the spec's version: a Job created once (named by the version and
/// the database), retried twice, suspended while the project is stopped.
fn migration_job(project: &ValidatedProject, airflow: &Airflow, image: &str) -> Job {
    let (volumes, mounts) = airflow_volumes(project, airflow, false);
    let container = Container {
        name: "migrate".into(),
        image: Some(image.into()),
        args: Some(vec!["db".into(), "migrate".into()]),
        resources: Some(sized("100m", "512Mi", "1", "1Gi")),
        env: Some(config::settings_env(project, airflow, Role::Migration)),
        volume_mounts: Some(mounts),
        security_context: Some(pod::container_security(UID, true)),
        ..Container::default()
    };
    let mut template = airflow_pod(
        project,
        project.labels(APP, "migrate"),
        (service_account(&project.name), false),
        container,
        volumes,
        false,
    );
    if let Some(spec) = template.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
    }
    let mut metadata = project.child_meta(&migration_job_name(&project.name, airflow), APP, "migrate");
    metadata.annotations = Some(BTreeMap::from([(ANNOTATION_VERSION.into(), airflow.version.clone())]));
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(2),
            // A migration that cannot start (an image that does not exist) or hangs fails within
            // the hour, saying so, rather than holding the rollout for ever.
            active_deadline_seconds: Some(3600),
            suspend: Some(project.stopped),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    }
}

/// The labels of every Airflow pod of the project (components, tasks, the migration).
fn airflow_pods(project: &ValidatedProject) -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::names::LABEL_NAME.to_string(), APP.to_string()),
        (crate::names::LABEL_INSTANCE.to_string(), project.name.clone()),
    ])
}

/// A policy on the pods of `component`: ingress on `port` only from the pods `from` selects
/// (none: no ingress but what other policies allow).
fn ingress_policy(
    project: &ValidatedProject,
    name: &str,
    component: &str,
    port: i32,
    from: Option<BTreeMap<String, String>>,
) -> NetworkPolicy {
    // No rule at all (not an empty list, which the API server drops: the applied object would
    // differ from the built one at every pass) admits nothing.
    let ingress = from.map(|labels| {
        vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector { match_labels: Some(labels), ..LabelSelector::default() }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".into()),
                ..NetworkPolicyPort::default()
            }]),
        }]
    });
    NetworkPolicy {
        metadata: project.child_meta(name, APP, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(project.labels(APP, component)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress,
            ..NetworkPolicySpec::default()
        }),
    }
}

/// Only the project's Airflow pods reach its database.
fn postgres_network_policy(project: &ValidatedProject) -> NetworkPolicy {
    let name = config::postgres_service(&project.name);
    ingress_policy(project, &name, "postgres", POSTGRES_PORT, Some(airflow_pods(project)))
}

/// Nothing in the cluster reaches the UI's API server, which trusts the access layer's header:
/// only the access layer's own policy admits its proxy (when the project has a host).
fn api_network_policy(project: &ValidatedProject) -> NetworkPolicy {
    let name = Component::ApiServer.workload(&project.name);
    ingress_policy(project, &name, Component::ApiServer.name(), API_PORT, None)
}

/// Only the project's Airflow pods (its tasks among them) reach the Execution API.
fn execution_network_policy(project: &ValidatedProject) -> NetworkPolicy {
    let name = Component::ExecutionApi.workload(&project.name);
    ingress_policy(project, &name, Component::ExecutionApi.name(), API_PORT, Some(airflow_pods(project)))
}

/// The managed PostgreSQL: one replica, its data on a claim kept or deleted with the
/// StatefulSet as the deletion policy says, the password from the generated keys.
fn postgres(project: &ValidatedProject, airflow: &Airflow) -> StatefulSet {
    let Database::Managed { size, storage_class, resources } = &airflow.database else {
        unreachable!("built for a managed database only")
    };
    let name = config::postgres_service(&project.name);
    let selector = project.labels(APP, "postgres");
    let ready = Probe {
        exec: Some(ExecAction {
            command: Some(
                ["pg_isready", "-h", "127.0.0.1", "-U", config::POSTGRES_USER, "-d", config::POSTGRES_USER]
                    .map(String::from)
                    .to_vec(),
            ),
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(POSTGRES_IMAGE.into()),
        env: Some(vec![
            env::var("POSTGRES_USER", config::POSTGRES_USER),
            env::var("POSTGRES_DB", config::POSTGRES_USER),
            env::from_secret("POSTGRES_PASSWORD", &config::keys_secret(&project.name), keys::POSTGRES),
            // A directory below the mount point: a fresh volume's root may hold lost+found.
            env::var("PGDATA", "/var/lib/postgresql/data/pgdata"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".into()),
            container_port: POSTGRES_PORT,
            ..ContainerPort::default()
        }]),
        resources: Some(resources.clone().unwrap_or_else(|| sized("100m", "256Mi", "500m", "1Gi"))),
        volume_mounts: Some(vec![
            mount("data", "/var/lib/postgresql/data", false),
            mount("run", "/var/run/postgresql", false),
            mount("tmp", "/tmp", false),
        ]),
        readiness_probe: Some(ready.clone()),
        liveness_probe: Some(Probe { period_seconds: Some(30), failure_threshold: Some(6), ..ready }),
        security_context: Some(pod::container_security(POSTGRES_UID, true)),
        ..Container::default()
    };
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(selector.clone()), ..ObjectMeta::default() }),
        spec: Some(PodSpec {
            service_account_name: Some(service_account(&project.name)),
            automount_service_account_token: Some(false),
            security_context: Some(pod::pod_security(POSTGRES_UID, POSTGRES_UID, Some(POSTGRES_UID))),
            containers: vec![container],
            volumes: Some(vec![workload::empty_dir("run"), workload::empty_dir("tmp")]),
            // PostgreSQL shuts down cleanly within this on SIGTERM (fast shutdown).
            termination_grace_period_seconds: Some(60),
            ..PodSpec::default()
        }),
    };
    let mut template = template;
    if let Some(overrides) = &project.pod_overrides {
        pod::apply_overrides(&mut template, overrides);
    }
    let policy = if airflow.keeps_data() { "Retain" } else { "Delete" };
    StatefulSet {
        metadata: project.child_meta(&name, APP, "postgres"),
        spec: Some(StatefulSetSpec {
            replicas: Some(if project.stopped { 0 } else { 1 }),
            service_name: Some(name.clone()),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            template,
            volume_claim_templates: Some(vec![workload::claim_template(
                "data",
                size,
                storage_class.as_deref(),
            )]),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(policy.into()),
                when_scaled: Some("Retain".into()),
            }),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        build::pod::tests::assert_restricted,
        crd::Project,
        fixtures::{example, validated_example_workspace},
        runtime::{self, RuntimeSpec, airflow::Rollout},
    };

    /// The example Airflow project (or, `minimal`, the smallest one), its database ready and its
    /// migration done unless `rollout` says otherwise.
    fn project_with(minimal: bool, rollout: Rollout, patch: impl FnOnce(&mut Project)) -> ValidatedProject {
        let mut project: Project = if minimal {
            serde_yaml::from_str(
                "metadata: {name: etl, namespace: dw-analytics}\nspec: {runtime: Airflow, airflow: {}}",
            )
            .unwrap()
        } else {
            example("20-project-airflow.yaml").remove(0)
        };
        project.metadata.uid = Some("project-uid".into());
        patch(&mut project);
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        if let RuntimeSpec::Airflow(airflow) = &mut validated.runtime {
            airflow.rollout = rollout;
            airflow.fenced = true;
            airflow.roles = vec![
                ("alice@example.com".into(), super::super::AirflowRole::Admin),
                ("Bob@Example.com".into(), super::super::AirflowRole::Op),
            ];
        }
        validated
    }

    fn migrated() -> Rollout {
        Rollout { database_ready: true, migration: Some(Migration::Succeeded), ..Rollout::default() }
    }

    fn built(project: &ValidatedProject) -> Vec<Child> {
        let RuntimeSpec::Airflow(airflow) = &project.runtime else { panic!("not Airflow") };
        build(project, airflow, &Config::default())
    }

    fn airflow(project: &ValidatedProject) -> &Airflow {
        let RuntimeSpec::Airflow(airflow) = &project.runtime else { panic!("not Airflow") };
        airflow
    }

    fn deployment<'a>(children: &'a [Child], name: &str) -> &'a Deployment {
        children
            .iter()
            .find_map(|c| match c {
                Child::Deployment(d) if d.metadata.name.as_deref() == Some(name) => Some(d),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no Deployment {name}"))
    }

    fn pods(children: &[Child]) -> Vec<(String, PodSpec)> {
        children
            .iter()
            .filter_map(|c| {
                let (kind, name) = c.key();
                let spec = match c {
                    Child::Deployment(d) => d.spec.clone()?.template.spec,
                    Child::StatefulSet(s) => s.spec.clone()?.template.spec,
                    Child::Job(j) => j.spec.clone()?.template.spec,
                    _ => None,
                }?;
                Some((format!("{kind}/{name}"), spec))
            })
            .collect()
    }

    fn env_names(container: &Container) -> Vec<String> {
        container.env.iter().flatten().map(|e| e.name.clone()).collect()
    }

    fn replicas(children: &[Child], name: &str) -> i32 {
        deployment(children, name).spec.as_ref().unwrap().replicas.unwrap()
    }

    #[test]
    fn golden_objects_of_a_minimal_and_the_full_airflow_project() {
        crate::build::children::assert_snapshots!("minimal-", built(&project_with(true, migrated(), |_| {})));
        crate::build::children::assert_snapshots!("full-", built(&project_with(false, migrated(), |_| {})));
        let full = project_with(false, migrated(), |_| {});
        insta::assert_yaml_snapshot!(
            "full-task-pod",
            worker_pod(&full, airflow(&full), "apache/airflow:3.3.2")
        );
    }

    /// Empty lists anywhere in `value` (the API server drops them, so an object holding one
    /// differs from its live copy at every pass, and is applied again and again).
    fn empty_lists(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Array(items) if items.is_empty() => found.push(path.to_string()),
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    empty_lists(item, &format!("{path}[{i}]"), found);
                }
            }
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    empty_lists(item, &format!("{path}.{key}"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_child_holds_an_empty_list() {
        for minimal in [true, false] {
            for child in built(&project_with(minimal, migrated(), |_| {})) {
                let value = match &child {
                    Child::ServiceAccount(o) => serde_json::to_value(o),
                    Child::RoleBinding(o) => serde_json::to_value(o),
                    Child::ConfigMap(o) => serde_json::to_value(o),
                    Child::GeneratedSecret(o) => serde_json::to_value(&o.metadata),
                    Child::Service(o) => serde_json::to_value(o),
                    Child::NetworkPolicy(o) => serde_json::to_value(o),
                    Child::Volume(o) => serde_json::to_value(o),
                    Child::StatefulSet(o) => serde_json::to_value(o),
                    Child::Deployment(o) => serde_json::to_value(o),
                    Child::Job(o) => serde_json::to_value(o),
                    Child::CronJob(o) => serde_json::to_value(o),
                }
                .unwrap();
                let mut found = Vec::new();
                empty_lists(&value, "", &mut found);
                assert!(found.is_empty(), "{:?} holds empty lists at {found:?}", child.key());
            }
        }
    }

    #[test]
    fn every_pod_is_restricted_and_every_child_owned_but_the_kept_keys() {
        for minimal in [true, false] {
            let project = project_with(minimal, migrated(), |_| {});
            let children = built(&project);
            for (name, pod) in pods(&children) {
                assert_restricted(&pod);
                assert_eq!(
                    pod.automount_service_account_token,
                    Some(name == "Deployment/etl-scheduler" || name == "Deployment/daily-etl-scheduler"),
                    "{name}: only the KubernetesExecutor's scheduler holds a token"
                );
            }
            assert_restricted(worker_pod(&project, airflow(&project), "x").spec.as_ref().unwrap());
            for child in &children {
                let meta = child.metadata();
                let owners = meta.owner_references.clone().unwrap_or_default();
                if child.key() == ("Secret", format!("{}-airflow", project.name)) {
                    assert!(owners.is_empty(), "Retain keeps the keys with the database");
                } else {
                    assert_eq!(owners[0].uid, "project-uid", "{:?}", child.key());
                }
                assert_eq!(
                    meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
                    "dataworkspace-operator"
                );
            }
        }
        let deleting = project_with(true, migrated(), |p| {
            p.spec.airflow.as_mut().unwrap().deletion_policy =
                crate::crd::project::AirflowDeletionPolicy::Delete
        });
        let children = built(&deleting);
        let keys = children.iter().find(|c| c.key() == ("Secret", "etl-airflow".into())).unwrap();
        assert_eq!(keys.metadata().owner_references.as_ref().unwrap()[0].uid, "project-uid");
        let Some(Child::StatefulSet(postgres)) = children.iter().find(|c| matches!(c, Child::StatefulSet(_)))
        else {
            panic!("no database")
        };
        let policy =
            postgres.spec.as_ref().unwrap().persistent_volume_claim_retention_policy.clone().unwrap();
        assert_eq!(policy.when_deleted.as_deref(), Some("Delete"));
    }

    #[test]
    fn task_pods_hold_no_secret_and_no_token_and_reach_only_the_execution_api() {
        let project = project_with(false, migrated(), |_| {});
        let pod = worker_pod(&project, airflow(&project), "apache/airflow:3.3.2");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some("daily-etl-airflow-worker"));
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.containers[0].name, "base", "the KubernetesExecutor's container");
        for volume in spec.volumes.iter().flatten() {
            assert!(volume.secret.is_none() && volume.projected.is_none(), "{}", volume.name);
        }
        let dags = spec.volumes.iter().flatten().find(|v| v.name == DAGS_VOLUME).unwrap();
        let dags = dags.persistent_volume_claim.as_ref().unwrap();
        assert_eq!((dags.claim_name.as_str(), dags.read_only), ("daily-etl-airflow-dags", Some(true)));
        let container = &spec.containers[0];
        for var in container.env.iter().flatten() {
            let secret = var.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref());
            assert!(secret.is_none(), "{} reads a Secret", var.name);
        }
        assert!(container.env_from.iter().flatten().all(|e| e.secret_ref.is_none()));
        let url =
            container.env.iter().flatten().find(|e| e.name == "AIRFLOW__CORE__EXECUTION_API_SERVER_URL");
        assert_eq!(
            url.unwrap().value.as_deref(),
            Some("http://daily-etl-execution-api.dw-analytics.svc:8080/execution/")
        );
        assert_eq!(container.resources, project.resources, "the project's resources are the tasks'");
    }

    #[test]
    fn connections_and_variables_are_references_where_dag_code_and_tasks_read_them() {
        let project = project_with(false, migrated(), |_| {});
        let children = built(&project);
        let container = |name: &str| {
            deployment(&children, name).spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
        };
        for name in ["daily-etl-execution-api", "daily-etl-dag-processor", "daily-etl-triggerer"] {
            let c = container(name);
            let env = c.env.unwrap();
            let conn = env.iter().find(|e| e.name == "AIRFLOW_CONN_WAREHOUSE").unwrap();
            assert_eq!(conn.value, None);
            assert_eq!(
                conn.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
                "warehouse-connection"
            );
            let var = env.iter().find(|e| e.name == "AIRFLOW_VAR_ENVIRONMENT").unwrap();
            assert_eq!(
                var.value_from.as_ref().unwrap().config_map_key_ref.as_ref().unwrap().key,
                "ENVIRONMENT"
            );
            let secret = env.iter().find(|e| e.name == "AIRFLOW_VAR_SLACK_WEBHOOK_URL").unwrap();
            assert_eq!(secret.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "slack");
            let own = env.iter().find(|e| e.name == "AIRFLOW_VAR_REPORT_RECIPIENTS").unwrap();
            assert_eq!(own.value.as_deref(), Some("analytics-team@example.com"));
        }
        // The UI's server and the scheduler hold none of them.
        for name in ["daily-etl-api-server", "daily-etl-scheduler"] {
            let names = env_names(&container(name));
            assert!(
                !names.iter().any(|n| n.starts_with("AIRFLOW_CONN_") || n.starts_with("AIRFLOW_VAR_")),
                "{name}"
            );
        }
        // A subset, none, and an unknown name.
        let subset = project_with(false, migrated(), |p| {
            let a = p.spec.airflow.as_mut().unwrap();
            a.workspace_variables = Some(vec![]);
            a.workspace_connections = Some(vec![]);
        });
        let names = env_names(&container_of(&built(&subset), "daily-etl-execution-api"));
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("AIRFLOW_CONN_") || n.starts_with("AIRFLOW_VAR_"))
                .collect::<Vec<_>>(),
            ["AIRFLOW_VAR_REPORT_RECIPIENTS"]
        );
        let mut project: Project = example("20-project-airflow.yaml").remove(0);
        project.spec.airflow.as_mut().unwrap().workspace_connections = Some(vec!["nope".into()]);
        let error = runtime::validate(&project, validated_example_workspace()).unwrap_err();
        assert_eq!(error.reason(), "MissingConnection");
        assert!(
            error.message().contains("nope") && error.message().contains("warehouse"),
            "{}",
            error.message()
        );
    }

    fn container_of(children: &[Child], name: &str) -> Container {
        deployment(children, name).spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
    }

    #[test]
    fn a_dag_path_holds_nothing_airflow_would_expand() {
        for path in ["x/$AIRFLOW__API_AUTH__JWT_SECRET", "~root", "a/%(x)s", "../up", "-x", "a\\b"] {
            let mut project: Project = example("20-project-airflow.yaml").remove(0);
            project.spec.airflow.as_mut().unwrap().dags[0].path = Some(path.into());
            let error = runtime::validate(&project, validated_example_workspace()).unwrap_err();
            assert_eq!(error.reason(), "InvalidDagPath", "{path}");
        }
    }

    #[test]
    fn a_missing_database_connection_is_named() {
        let mut project: Project = example("20-project-airflow.yaml").remove(0);
        project.spec.airflow.as_mut().unwrap().database =
            Some(serde_yaml::from_str("external: {connection: airflow_db}").unwrap());
        let error = runtime::validate(&project, validated_example_workspace()).unwrap_err();
        assert_eq!(error.reason(), "MissingConnection");
        assert!(
            error
                .message()
                .contains("spec.airflow.database.external.connection names the connection airflow_db")
        );
    }

    #[test]
    fn an_external_database_is_the_connection_secret_and_no_postgres_runs() {
        let project = project_with(false, migrated(), |p| {
            p.spec.airflow.as_mut().unwrap().database =
                Some(serde_yaml::from_str("external: {connection: warehouse}").unwrap());
        });
        let children = built(&project);
        assert!(!children.iter().any(|c| matches!(c, Child::StatefulSet(_))));
        let env = container_of(&children, "daily-etl-scheduler").env.unwrap();
        let conn = env.iter().find(|e| e.name == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN").unwrap();
        assert_eq!(
            conn.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
            "warehouse-connection"
        );
        assert!(!env.iter().any(|e| e.name == "AIRFLOW_POSTGRES_PASSWORD"));
    }

    #[test]
    fn the_rollout_migrates_first_then_runs_the_migrated_version() {
        // Nothing before the database is ready: no migration, no components.
        let waiting = built(&project_with(true, Rollout::default(), |_| {}));
        assert!(!waiting.iter().any(|c| matches!(c, Child::Job(_) | Child::Deployment(_))));
        // The database is ready: the migration Job, still no components.
        let migrating = Rollout { database_ready: true, ..Rollout::default() };
        let children = built(&project_with(true, migrating, |_| {}));
        let Some(Child::Job(job)) = children.iter().find(|c| matches!(c, Child::Job(_))) else {
            panic!("no migration")
        };
        let name = job.metadata.name.clone().unwrap();
        assert!(name.starts_with("etl-migrate-"), "{name}");
        assert_eq!(
            job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0].args.as_ref().unwrap(),
            &["db", "migrate"]
        );
        assert!(!children.iter().any(|c| matches!(c, Child::Deployment(_))));
        // Migrated: every component at its replicas, at the version.
        let running = built(&project_with(true, migrated(), |_| {}));
        for component in super::super::COMPONENTS {
            assert_eq!(replicas(&running, &component.workload("etl")), 1);
        }
        // A new version: a new migration Job; the components keep what they run until it succeeds.
        let old = ("3.3.1".to_string(), "apache/airflow:3.3.1".to_string());
        let bump = |migration| {
            project_with(
                true,
                Rollout { database_ready: true, migration, running: Some(old.clone()), ..Rollout::default() },
                |p| p.spec.airflow.as_mut().unwrap().version = Some("3.3.2".into()),
            )
        };
        let during = built(&bump(Some(Migration::Running)));
        let job = |c: &[Child]| {
            c.iter().find_map(|c| if let Child::Job(j) = c { j.metadata.name.clone() } else { None })
        };
        assert_eq!(job(&during), Some(name.clone()), "named by the version (the default is 3.3.2)");
        let scheduler = deployment(&during, "etl-scheduler").spec.clone().unwrap();
        assert_eq!(scheduler.replicas, Some(1));
        assert_eq!(
            scheduler.template.spec.unwrap().containers[0].image.as_deref(),
            Some("apache/airflow:3.3.1")
        );
        let failed = built(&bump(Some(Migration::Failed("x".into()))));
        assert_eq!(
            deployment(&failed, "etl-scheduler").spec.clone().unwrap().template.spec.unwrap().containers[0]
                .image
                .as_deref(),
            Some("apache/airflow:3.3.1"),
            "a failed migration stops the rollout"
        );
        let after = built(&bump(Some(Migration::Succeeded)));
        assert_eq!(
            deployment(&after, "etl-scheduler").spec.clone().unwrap().template.spec.unwrap().containers[0]
                .image
                .as_deref(),
            Some("apache/airflow:3.3.2")
        );
        let other = project_with(true, migrated(), |p| {
            p.spec.airflow.as_mut().unwrap().version = Some("3.4.0".into())
        });
        assert_ne!(migration_job_name("etl", airflow(&other)), name);
    }

    #[test]
    fn stopped_and_unfenced_run_nothing_and_keep_everything() {
        let stopped = project_with(false, migrated(), |p| p.spec.stopped = true);
        let children = built(&stopped);
        for component in super::super::COMPONENTS {
            assert_eq!(replicas(&children, &component.workload("daily-etl")), 0);
        }
        assert_eq!(replicas(&children, "daily-etl-dags"), 0);
        let Some(Child::Job(job)) = children.iter().find(|c| matches!(c, Child::Job(_))) else {
            panic!("kept")
        };
        assert_eq!(job.spec.as_ref().unwrap().suspend, Some(true));
        assert!(children.iter().any(|c| matches!(c, Child::Volume(_))));
        assert!(children.iter().any(|c| matches!(c, Child::GeneratedSecret(_))));

        let mut unfenced = project_with(false, migrated(), |_| {});
        if let RuntimeSpec::Airflow(a) = &mut unfenced.runtime {
            a.fenced = false;
        }
        let children = built(&unfenced);
        assert!(
            !children.iter().any(|c| matches!(c, Child::RoleBinding(_))),
            "no pod rights without the policy"
        );
        assert_eq!(replicas(&children, "daily-etl-scheduler"), 0);
        let fenced = built(&project_with(false, migrated(), |_| {}));
        let Some(Child::RoleBinding(binding)) = fenced.iter().find(|c| matches!(c, Child::RoleBinding(_)))
        else {
            panic!("no binding")
        };
        assert_eq!(binding.role_ref.name, SCHEDULER_ROLE);
        assert_eq!(binding.subjects.as_ref().unwrap()[0].name, "daily-etl-airflow-scheduler");
        // The LocalExecutor needs no rights at all.
        let local = project_with(true, migrated(), |p| {
            p.spec.airflow.as_mut().unwrap().executor = crate::crd::project::AirflowExecutor::LocalExecutor
        });
        let children = built(&local);
        assert!(!children.iter().any(|c| matches!(c, Child::RoleBinding(_))));
        assert_eq!(children.iter().filter(|c| matches!(c, Child::ServiceAccount(_))).count(), 1);
    }

    #[test]
    fn a_component_change_rolls_only_that_component() {
        let before = built(&project_with(false, migrated(), |_| {}));
        let after = built(&project_with(false, migrated(), |p| {
            p.spec.airflow.as_mut().unwrap().scheduler =
                Some(serde_yaml::from_str("resources: {requests: {cpu: '2'}}").unwrap())
        }));
        for component in super::super::COMPONENTS {
            let name = component.workload("daily-etl");
            let same = deployment(&before, &name) == deployment(&after, &name);
            assert_eq!(same, component != Component::Scheduler, "{name}");
        }
        // The access list is read at each request: a new member rolls nothing.
        let mut fewer = project_with(false, migrated(), |_| {});
        if let RuntimeSpec::Airflow(a) = &mut fewer.runtime {
            a.roles.pop();
        }
        let fewer = built(&fewer);
        for component in super::super::COMPONENTS {
            let name = component.workload("daily-etl");
            assert_eq!(deployment(&before, &name), deployment(&fewer, &name), "{name}");
        }
    }

    #[test]
    fn the_ui_server_is_closed_but_to_the_proxy_and_the_execution_api_to_the_project() {
        let children = built(&project_with(false, migrated(), |_| {}));
        let policy = |name: &str| {
            children
                .iter()
                .find_map(|c| match c {
                    Child::NetworkPolicy(p) if p.metadata.name.as_deref() == Some(name) => p.spec.clone(),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(
            (policy("daily-etl-api-server").ingress, policy("daily-etl-api-server").policy_types),
            (None, Some(vec!["Ingress".to_string()])),
            "no rule: only the access layer's policy admits"
        );
        let from = policy("daily-etl-execution-api").ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["app.kubernetes.io/instance"],
            "daily-etl"
        );
        let api = container_of(&children, "daily-etl-api-server");
        assert_eq!(api.args.unwrap(), ["api-server", "--apps", "core", "--proxy-headers"]);
        // The workspace's peers policy leaves proxied pods out: only the proxy reaches them.
        let template = deployment(&children, "daily-etl-api-server").spec.clone().unwrap().template;
        assert_eq!(template.metadata.unwrap().labels.unwrap()[crate::build::access::LABEL_PROXIED], "true");
        // Only git-sync writes the checkouts; every other pod mounts the claim read-only.
        for (name, pod) in pods(&children) {
            for volume in pod.volumes.iter().flatten().filter(|v| v.name == DAGS_VOLUME) {
                let read_only = volume.persistent_volume_claim.as_ref().unwrap().read_only == Some(true);
                assert_eq!(read_only, name != "Deployment/daily-etl-dags", "{name}");
            }
        }
        // The roles are mounted in the UI's API server only.
        for (name, pod) in pods(&children) {
            let roles = pod.volumes.iter().flatten().any(|v| v.name == "roles");
            assert_eq!(roles, name == "Deployment/daily-etl-api-server", "{name}");
        }
        assert_eq!(
            container_of(&children, "daily-etl-execution-api").args.unwrap(),
            ["api-server", "--apps", "execution"]
        );
    }
}
