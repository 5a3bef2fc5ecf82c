//! The objects of a Notebook: a ServiceAccount without API rights, the Jupyter Server
//! configuration, a token generated once, a Service, and the StatefulSet on a persistent home.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{StatefulSet, StatefulSetSpec},
    core::v1::{ConfigMap, Container, ContainerPort, ServiceAccount, VolumeMount},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::{APP, Notebook};
use crate::{
    build::{
        children::{Child, Encoding, GeneratedSecret},
        env, git, jupyter, pod, workload,
    },
    config::Config,
    runtime::{PodParts, ValidatedProject},
};

/// Where the configuration file is mounted (on `JUPYTER_CONFIG_PATH`).
pub const CONFIG_DIR: &str = "/etc/dataworkspace/jupyter";
/// The configuration file Jupyter Server reads from [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "jupyter_server_config.json";
/// The home volume (a claim of the StatefulSet, kept when the Project is stopped or deleted).
pub const HOME_VOLUME: &str = "home";
/// Where notebooks and the checked-out repository live: the home volume itself. Not a directory
/// below it: a fresh volume is empty and hides the image's `/home/jovyan`, nothing creates a
/// subdirectory before the server starts (the clone writes to the volume's root), and Jupyter
/// Server exits at once when `root_dir` does not exist.
pub const WORK_DIR: &str = jupyter::HOME;
/// The key of the token in the generated Secret.
pub const TOKEN_KEY: &str = "token";
const COMPONENT: &str = "server";

/// The Jupyter Server settings of a Notebook (rendered into [`CONFIG_FILE`]).
pub fn settings(notebook: &Notebook) -> Vec<(&'static str, Value)> {
    let mut settings = vec![
        ("ServerApp.ip", json!("0.0.0.0")),
        ("ServerApp.port", json!(jupyter::PORT)),
        ("ServerApp.base_url", json!("/")),
        ("ServerApp.root_dir", json!(WORK_DIR)),
        ("ServerApp.open_browser", json!(false)),
        ("ServerApp.allow_remote_access", json!(true)),
    ];
    settings.extend(jupyter::idle_settings(notebook.idle));
    settings
}

/// Every object of the Notebook, in apply order.
pub fn build(project: &ValidatedProject, notebook: &Notebook, _config: &Config) -> Vec<Child> {
    let name = project.name.as_str();
    let meta = |name: &str| project.child_meta(name, APP, COMPONENT);
    let token = format!("{name}-token");
    let config_map = format!("{name}-jupyter");
    vec![
        Child::ServiceAccount(ServiceAccount {
            metadata: meta(name),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }),
        Child::ConfigMap(ConfigMap {
            metadata: meta(&config_map),
            data: Some(BTreeMap::from([(CONFIG_FILE.into(), jupyter::as_config(&settings(notebook)))])),
            ..ConfigMap::default()
        }),
        Child::GeneratedSecret(GeneratedSecret {
            metadata: meta(&token),
            keys: vec![(TOKEN_KEY.into(), Encoding::Hex)],
            keeper: None,
            bytes: 32,
        }),
        Child::Service(workload::headless(workload::service(
            meta(name),
            project.labels(APP, COMPONENT),
            &[("http", jupyter::PORT)],
        ))),
        Child::StatefulSet(statefulset(project, notebook, &token, &config_map)),
    ]
}

fn statefulset(
    project: &ValidatedProject,
    notebook: &Notebook,
    token: &str,
    config_map: &str,
) -> StatefulSet {
    let name = project.name.as_str();
    let selector = project.labels(APP, COMPONENT);
    let (env_from, workspace_env) = env::workspace_env(&project.workspace.secret_env);
    let mut container_env = vec![
        env::var("HOME", jupyter::HOME),
        env::var("JUPYTER_CONFIG_PATH", CONFIG_DIR),
        env::from_secret("JUPYTER_TOKEN", token, TOKEN_KEY),
    ];
    container_env.extend(workspace_env);
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let server = Container {
        name: "jupyterlab".into(),
        image: Some(notebook.image.clone()),
        command: Some(vec!["jupyter".into(), "lab".into()]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: jupyter::PORT,
            ..ContainerPort::default()
        }]),
        env: Some(container_env),
        env_from: Some(env_from),
        resources: project.resources.clone(),
        volume_mounts: Some(vec![
            mount(HOME_VOLUME, jupyter::HOME, false),
            mount("jupyter-config", CONFIG_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        readiness_probe: Some(workload::http_probe("/api", "http")),
        liveness_probe: Some(workload::liveness("/api", "http")),
        security_context: Some(pod::container_security(jupyter::UID, false)),
        ..Container::default()
    };
    let checkouts: Vec<git::Checkout> = project.source.iter().cloned().collect();
    let clones: Vec<Container> = checkouts
        .iter()
        .map(|r| git::container(r, HOME_VOLUME, jupyter::HOME, WORK_DIR, git::Mode::Once))
        .collect();
    let mut volumes =
        vec![workload::config_map_volume("jupyter-config", config_map), workload::empty_dir("tmp")];
    if !checkouts.is_empty() {
        volumes.extend(git::volumes(&checkouts));
    }
    let template = project.pod_template(PodParts {
        labels: selector.clone(),
        service_account: name.into(),
        token: false,
        uid: jupyter::UID,
        gid: jupyter::GID,
        init_containers: clones,
        containers: vec![server],
        volumes,
        python_environment: true,
    });
    StatefulSet {
        metadata: project.child_meta(name, APP, COMPONENT),
        spec: Some(StatefulSetSpec {
            replicas: Some(if project.stopped { 0 } else { 1 }),
            service_name: Some(name.into()),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            template,
            volume_claim_templates: Some(vec![workload::claim_template(
                HOME_VOLUME,
                &notebook.storage_size,
                notebook.storage_class.as_deref(),
            )]),
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
        runtime::{self, RuntimeSpec},
    };

    /// The example Notebook in the example Workspace, with UIDs as the API server would set.
    pub fn example_project(patch: impl FnOnce(&mut Project)) -> ValidatedProject {
        let workspace = validated_example_workspace();
        let mut project: Project = example("23-project-notebook.yaml").remove(0);
        project.metadata.uid = Some("project-uid".into());
        patch(&mut project);
        runtime::validate(&project, workspace).unwrap()
    }

    fn children(project: &ValidatedProject) -> Vec<Child> {
        let RuntimeSpec::Notebook(notebook) = &project.runtime else { panic!("not a notebook") };
        build(project, notebook, &Config::default())
    }

    fn statefulset(children: &[Child]) -> &StatefulSet {
        children.iter().find_map(|c| if let Child::StatefulSet(s) = c { Some(s) } else { None }).unwrap()
    }

    #[test]
    fn golden_objects_of_the_example_notebook() {
        crate::build::children::assert_snapshots!("", children(&example_project(|_| {})));
    }

    #[test]
    fn the_pod_is_restricted_without_api_rights_and_every_child_owned() {
        let project = example_project(|_| {});
        let children = children(&project);
        let pod = statefulset(&children).spec.clone().unwrap().template.spec.unwrap();
        assert_restricted(&pod);
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some("exploration"));
        for child in &children {
            let meta = child.metadata();
            assert_eq!(meta.owner_references.as_ref().unwrap()[0].uid, "project-uid", "{:?}", child.key());
            assert_eq!(
                meta.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
                "dataworkspace-operator"
            );
        }
    }

    #[test]
    fn the_root_directory_is_the_home_volume_itself() {
        // Jupyter Server exits when root_dir does not exist, and on a fresh (empty) volume only
        // its mount point does (tests/notebook_process.rs runs the server on one).
        let project = example_project(|_| {});
        let RuntimeSpec::Notebook(notebook) = &project.runtime else { panic!("not a notebook") };
        let (_, root_dir) = settings(notebook).into_iter().find(|(k, _)| *k == "ServerApp.root_dir").unwrap();
        let pod = statefulset(&children(&project)).spec.clone().unwrap().template.spec.unwrap();
        let home = pod.containers[0].volume_mounts.iter().flatten().find(|m| m.name == HOME_VOLUME).unwrap();
        assert_eq!(root_dir, json!(home.mount_path));
    }

    #[test]
    fn stopped_scales_to_zero_and_keeps_the_volume_template() {
        let project = example_project(|p| p.spec.stopped = true);
        let spec = statefulset(&children(&project)).spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(0));
        assert_eq!(spec.volume_claim_templates.unwrap()[0].metadata.name.as_deref(), Some(HOME_VOLUME));
    }

    #[test]
    fn the_workspace_environment_and_the_token_are_references() {
        let children = children(&example_project(|_| {}));
        let container = &statefulset(&children).spec.clone().unwrap().template.spec.unwrap().containers[0];
        let env = container.env.clone().unwrap();
        let token = env.iter().find(|e| e.name == "JUPYTER_TOKEN").unwrap();
        assert_eq!(token.value, None);
        assert_eq!(
            token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
            "exploration-token"
        );
        let connection = env.iter().find(|e| e.name == "CONN_WAREHOUSE").unwrap();
        assert_eq!(connection.value, None, "connections stay in their Secrets");
        assert_eq!(
            container.env_from.as_ref().unwrap()[0].config_map_ref.as_ref().unwrap().name,
            "workspace-variables"
        );
    }

    #[test]
    fn overrides_add_scheduling_but_not_security() {
        let project = example_project(|p| {
            p.spec.pod_overrides = Some(
                serde_yaml::from_str(
                    "nodeSelector: {pool: gpu}\npriorityClassName: batch\nlabels: {team: a, app.kubernetes.io/name: spoofed}",
                )
                .unwrap(),
            );
            p.spec.resources = Some(serde_yaml::from_str("limits: {nvidia.com/gpu: '1'}").unwrap());
        });
        let template = statefulset(&children(&project)).spec.clone().unwrap().template;
        let labels = template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["app.kubernetes.io/name"], APP, "the operator's labels win");
        let pod = template.spec.unwrap();
        assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "gpu");
        assert_eq!(pod.priority_class_name.as_deref(), Some("batch"));
        assert_restricted(&pod);
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert!(limits.contains_key("nvidia.com/gpu"), "GPU requests reach the container");
    }
}
