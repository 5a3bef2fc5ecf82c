//! The objects of a Streamlit app: a ServiceAccount without API rights, a Service, and the
//! Deployment (the app's repository checked out at start, nothing pip-installed).

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{Container, ContainerPort, EmptyDirVolumeSource, ServiceAccount, Volume, VolumeMount},
    },
    apimachinery::pkg::apis::meta::v1::LabelSelector,
};

use super::{APP, Streamlit, image};
use crate::{
    build::{access::LABEL_PROXIED, children::Child, env, git, pod, workload},
    config::Config,
    runtime::{PodParts, ValidatedProject},
};

/// Streamlit's port.
pub const PORT: i32 = 8501;
/// The app's HOME (a writable emptyDir: Streamlit writes `~/.streamlit`).
pub const HOME: &str = "/home/app";
/// Where the project's repository is checked out.
const CHECKOUT: &str = "/srv/app";
/// The app's numeric user (restricted pods need one).
const UID: i64 = 1000;
const COMPONENT: &str = "app";

/// Streamlit's arguments for an app file (`streamlit run <file> …`): headless, on all
/// addresses, no usage statistics, no file watcher (the checkout changes only with a new pod).
/// CORS and XSRF protection keep their defaults: the proxy serves the app same-origin.
pub fn app_args(app_file: &str) -> Vec<String> {
    [
        "run",
        app_file,
        "--server.headless=true",
        "--server.address=0.0.0.0",
        &format!("--server.port={PORT}"),
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Every object of the app, in apply order; `proxied` when the access layer exposes it.
pub fn build(
    project: &ValidatedProject,
    streamlit: &Streamlit,
    config: &Config,
    proxied: bool,
) -> Vec<Child> {
    let name = project.name.as_str();
    let meta = |name: &str| project.child_meta(name, APP, COMPONENT);
    let mut service = workload::service(meta(name), project.labels(APP, COMPONENT), &[("http", PORT)]);
    if streamlit.replicas > 1 && !proxied {
        // A session lives on one replica (its WebSocket and state): keep each client there.
        // Behind the proxy every request comes from the proxy's pod, so affinity would put
        // every user on one replica: there, run one replica (README).
        if let Some(spec) = service.spec.as_mut() {
            spec.session_affinity = Some("ClientIP".into());
        }
    }
    vec![
        Child::ServiceAccount(ServiceAccount {
            metadata: meta(name),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }),
        Child::Service(service),
        Child::Deployment(deployment(project, streamlit, config, proxied)),
    ]
}

fn deployment(
    project: &ValidatedProject,
    streamlit: &Streamlit,
    config: &Config,
    proxied: bool,
) -> Deployment {
    let name = project.name.as_str();
    let selector = project.labels(APP, COMPONENT);
    let (env_from, workspace_env) = env::workspace_env(&project.workspace.secret_env);
    let mut container_env = vec![env::var("HOME", HOME)];
    container_env.extend(workspace_env);
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    let checkouts: Vec<git::Checkout> = project.source.iter().cloned().collect();
    let app = Container {
        name: APP.into(),
        image: image(streamlit, config),
        // From Git: Streamlit runs the file. From an image alone: the image's own command.
        command: streamlit.app.as_ref().map(|_| vec!["streamlit".into()]),
        args: streamlit.app.as_ref().map(|file| app_args(&format!("{CHECKOUT}/{file}"))),
        working_dir: streamlit.app.as_ref().map(|_| CHECKOUT.to_string()),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: PORT,
            ..ContainerPort::default()
        }]),
        env: Some(container_env),
        env_from: Some(env_from),
        resources: project.resources.clone(),
        volume_mounts: Some(vec![mount("home", HOME), mount("tmp", "/tmp"), mount("checkout", CHECKOUT)]),
        readiness_probe: Some(workload::http_probe("/_stcore/health", "http")),
        liveness_probe: Some(workload::liveness("/_stcore/health", "http")),
        security_context: Some(pod::container_security(UID, true)),
        ..Container::default()
    };
    let clones: Vec<Container> = checkouts
        .iter()
        .map(|r| git::container(r, "checkout", CHECKOUT, CHECKOUT, git::Mode::Once))
        .collect();
    let empty = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let mut volumes = vec![empty("home"), empty("tmp"), empty("checkout")];
    if !checkouts.is_empty() {
        volumes.extend(git::volumes(&checkouts));
    }
    let mut labels = selector.clone();
    if proxied {
        labels.insert(LABEL_PROXIED.into(), "true".into());
    }
    let template = project.pod_template(PodParts {
        labels,
        service_account: name.into(),
        token: false,
        uid: UID,
        gid: UID,
        init_containers: clones,
        containers: vec![app],
        volumes,
        python_environment: true,
    });
    Deployment {
        metadata: project.child_meta(name, APP, COMPONENT),
        spec: Some(DeploymentSpec {
            replicas: Some(if project.stopped { 0 } else { streamlit.replicas }),
            selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
            template,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
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

    /// The example Streamlit app in the example Workspace, without its environment.
    fn example_app(patch: impl FnOnce(&mut Project)) -> ValidatedProject {
        let mut project: Project = example("22-project-streamlit.yaml").remove(0);
        project.metadata.uid = Some("project-uid".into());
        project.spec.python_environment = None;
        // The operator's default image, unless a test sets one.
        project.spec.streamlit.as_mut().unwrap().image = None;
        patch(&mut project);
        runtime::validate(&project, validated_example_workspace()).unwrap()
    }

    fn children(project: &ValidatedProject, config: &Config) -> Vec<Child> {
        let RuntimeSpec::Streamlit(app) = &project.runtime else { panic!("not Streamlit") };
        build(project, app, config, project.proxied)
    }

    fn deployment(children: &[Child]) -> &Deployment {
        children.iter().find_map(|c| if let Child::Deployment(d) = c { Some(d) } else { None }).unwrap()
    }

    fn with_default_image() -> Config {
        Config { streamlit_image: Some("registry.example.com/streamlit:1.67.0".into()), ..Config::default() }
    }

    #[test]
    fn the_app_runs_from_its_checkout_restricted_with_its_probes() {
        let project = example_app(|_| {});
        let children = children(&project, &with_default_image());
        let pod = deployment(&children).spec.clone().unwrap().template.spec.unwrap();
        assert_restricted(&pod);
        assert_eq!(pod.automount_service_account_token, Some(false));
        let app = &pod.containers[0];
        assert_eq!(app.image.as_deref(), Some("registry.example.com/streamlit:1.67.0"));
        let args = app.args.clone().unwrap();
        assert_eq!(args[..2], ["run".to_string(), "/srv/app/pipelines/apps/sales/app.py".to_string()]);
        assert_eq!(
            app.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap().path.as_deref(),
            Some("/_stcore/health")
        );
        let clone = &pod.init_containers.as_ref().unwrap()[0];
        assert!(clone.name.starts_with("git-clone"), "{}", clone.name);
        for child in &children {
            assert_eq!(
                child.metadata().owner_references.as_ref().unwrap()[0].uid,
                "project-uid",
                "{:?}",
                child.key()
            );
        }
    }

    #[test]
    fn replicas_keep_sessions_and_stopped_scales_to_zero() {
        let two = example_app(|p| p.spec.streamlit.as_mut().unwrap().replicas = 2);
        let children = children(&two, &with_default_image());
        let service =
            children.iter().find_map(|c| if let Child::Service(s) = c { Some(s) } else { None }).unwrap();
        assert_eq!(service.spec.as_ref().unwrap().session_affinity.as_deref(), Some("ClientIP"));
        assert_eq!(deployment(&children).spec.as_ref().unwrap().replicas, Some(2));
        let stopped = example_app(|p| p.spec.stopped = true);
        assert_eq!(
            deployment(&super::build(
                &stopped,
                match &stopped.runtime {
                    RuntimeSpec::Streamlit(a) => a,
                    _ => unreachable!(),
                },
                &with_default_image(),
                false
            ))
            .spec
            .as_ref()
            .unwrap()
            .replicas,
            Some(0)
        );
    }

    #[test]
    fn behind_the_proxy_only_the_proxy_reaches_the_pods() {
        let mut project =
            example_app(|p| p.spec.streamlit.as_mut().unwrap().host = Some("sales.data.example.com".into()));
        project.proxied = true;
        let children = children(&project, &with_default_image());
        let labels = deployment(&children).spec.clone().unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(labels[LABEL_PROXIED], "true");
        let offered = runtime::offered(&project).unwrap();
        assert_eq!((offered.host.as_str(), offered.port), ("sales.data.example.com", PORT));
        assert_eq!(offered.ui, "app-sales-dashboard", "never one of the Studio's UI names");
    }

    #[test]
    fn an_app_needs_an_image_and_a_source_or_image() {
        let project = example_app(|_| {});
        let RuntimeSpec::Streamlit(app) = &project.runtime else { panic!() };
        let error = super::super::check(&project, app, &Config::default()).unwrap_err();
        assert_eq!(error.reason(), "NoStreamlitImage");
        assert!(super::super::check(&project, app, &with_default_image()).is_ok());
        let mut project: Project = example("22-project-streamlit.yaml").remove(0);
        project.spec.source = None;
        project.spec.streamlit.as_mut().unwrap().image = None;
        assert_eq!(super::super::validate(&project).unwrap_err().reason(), "NoApp");
        project.spec.streamlit.as_mut().unwrap().image = Some("registry.example.com/sales:1".into());
        assert_eq!(super::super::validate(&project).unwrap().app, None, "the image's own command");
    }

    #[test]
    fn golden_objects_minimal_and_full() {
        for (name, project) in [
            ("minimal", example_app(|_| {})),
            (
                "full",
                example_app(|p| {
                    let s = p.spec.streamlit.as_mut().unwrap();
                    s.replicas = 3;
                    s.host = Some("sales.data.example.com".into());
                    p.spec.resources =
                        serde_yaml::from_str("{requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}")
                            .unwrap();
                }),
            ),
        ] {
            crate::build::children::assert_snapshots!(
                format!("{name}-"),
                children(&project, &with_default_image())
            );
        }
    }
}
