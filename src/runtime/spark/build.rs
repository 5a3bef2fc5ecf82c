//! The objects of a Spark project: the driver's and the executors' ServiceAccounts, the driver's
//! RoleBinding, the configuration (spark-defaults.conf and the executor pod template), the
//! Service clients and the UI use, and the driver — a Deployment running the Connect server, or
//! a run's Job.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy},
        batch::v1::{
            CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec, PodFailurePolicy,
            PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyOnPodConditionsPattern,
            PodFailurePolicyRule,
        },
        core::v1::{
            ConfigMap, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, Pod,
            PodTemplateSpec, Probe, ServiceAccount, TCPSocketAction, VolumeMount,
        },
        rbac::v1::{RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{
    APP, Application, BLOCK_MANAGER_PORT, CONNECT_PORT, DRIVER_PORT, LABEL_DRIVER, LABEL_RUN, MainFile, Mode,
    Spark, UI_PORT, UID, conf,
};
use crate::{
    build::{children::Child, env, git, pod, workload},
    config::Config,
    names::{LABEL_MANAGED_BY, LABEL_WORKSPACE, MANAGER},
    runtime::{PodParts, ValidatedProject},
};

/// Where the driver finds its configuration (the ConfigMap `<project>-spark`).
pub const CONF_DIR: &str = "/opt/dataworkspace/spark";
/// The properties file in [`CONF_DIR`].
pub const CONF_FILE: &str = "spark-defaults.conf";
/// The executor pod template in [`CONF_DIR`].
pub const EXECUTOR_TEMPLATE: &str = "executor-pod-template.yaml";
/// The ClusterRole bound to each driver's ServiceAccount in its namespace (deploy/roles.yaml).
pub const DRIVER_ROLE: &str = "dataworkspace-spark-driver";
/// spark-submit in the Spark images.
const SPARK_SUBMIT: &str = "/opt/spark/bin/spark-submit";
/// The Spark Connect server's main class.
const CONNECT_SERVER: &str = "org.apache.spark.sql.connect.service.SparkConnectServer";
/// Where a run's repository is checked out.
const CHECKOUT: &str = "/srv/app";
/// The annotation that rolls the Connect server when its configuration changes.
const ANNOTATION_CONF: &str = "dataworkspace.io/spark-conf";

/// The driver's ServiceAccount: the only identity with rights on pods (its executors).
pub fn driver_service_account(project: &str) -> String {
    format!("{project}-spark-driver")
}

/// spark-submit's arguments for the driver: the operator's properties, this pod's address and
/// name (expanded by the kubelet from the downward API; the name is also the application's id),
/// then the Connect server or the
/// application. The application's class, file and arguments reach it as written: every `$` in
/// them is doubled, the kubelet's escape, so it never expands the container's variables (the
/// workspace's secrets among them) into the command line.
pub fn driver_args(spark: &Spark, conf_dir: &str, checkout: &str) -> Vec<String> {
    let mut args = vec![
        "--properties-file".to_string(),
        format!("{conf_dir}/{}", super::CONF_FILE),
        "--conf".into(),
        "spark.driver.host=$(SPARK_DRIVER_HOST)".into(),
        "--conf".into(),
        "spark.kubernetes.driver.pod.name=$(SPARK_DRIVER_POD_NAME)".into(),
        // The application's id is its driver pod's name: unique, and the admission policy checks
        // that an executor labelled with it is owned by that pod.
        "--conf".into(),
        "spark.app.id=$(SPARK_DRIVER_POD_NAME)".into(),
    ];
    match &spark.mode {
        Mode::Connect => args.extend(["--class".into(), CONNECT_SERVER.into()]),
        Mode::Batch(app) => {
            let literal = |text: &str| text.replace('$', "$$");
            if let Some(class) = &app.main_class {
                args.extend(["--class".into(), literal(class)]);
            }
            args.push(literal(&match &app.main {
                MainFile::Checkout(file) => format!("{checkout}/{file}"),
                MainFile::Image(path) => path.clone(),
            }));
            args.extend(app.args.iter().map(|a| literal(a)));
        }
    }
    args
}

/// Every object of the project, in apply order.
pub fn build(project: &ValidatedProject, spark: &Spark, config: &Config) -> Vec<Child> {
    let name = project.name.as_str();
    let image = image(project, spark, config);
    let conf = conf::conf(project, spark, &image);
    let template = executor_template(project, &image);
    let data = BTreeMap::from([
        (super::CONF_FILE.to_string(), conf.render()),
        (EXECUTOR_TEMPLATE.to_string(), serde_yaml::to_string(&template).unwrap_or_default()),
    ]);
    let conf_name = format!("{name}-spark");
    let config_hash = crate::build::children::hashed_name("conf", &data);
    let driver_sa = driver_service_account(name);
    let mut children = vec![
        Child::ServiceAccount(ServiceAccount {
            metadata: project.child_meta(&driver_sa, APP, "driver"),
            // The driver talks to the API server (it creates its executors).
            automount_service_account_token: Some(true),
            ..ServiceAccount::default()
        }),
        Child::ServiceAccount(ServiceAccount {
            metadata: project.child_meta(&conf::executor_service_account(name), APP, "executor"),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }),
        Child::ConfigMap(ConfigMap {
            metadata: project.child_meta(&conf_name, APP, "driver"),
            data: Some(data),
            ..ConfigMap::default()
        }),
    ];
    // The driver's pod rights only while the admission policy narrows them to the project's
    // own executors: without it, no rights and nothing runs (the server at zero replicas, the
    // runs and the schedule suspended), but nothing is removed either.
    if spark.fenced {
        children.insert(
            2,
            Child::RoleBinding(RoleBinding {
                metadata: project.child_meta(&driver_sa, APP, "driver"),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: DRIVER_ROLE.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: driver_sa.clone(),
                    namespace: Some(project.namespace.clone()),
                    ..Subject::default()
                }]),
            }),
        );
    }
    let selector = project.labels(APP, "driver");
    match &spark.mode {
        Mode::Connect => {
            children.push(Child::Service(workload::service(
                project.child_meta(name, APP, "driver"),
                selector.clone(),
                &[("connect", CONNECT_PORT), ("ui", UI_PORT)],
            )));
            let mut template = driver_template(project, spark, &image, &conf_name, &selector);
            template
                .metadata
                .get_or_insert_with(ObjectMeta::default)
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANNOTATION_CONF.into(), config_hash);
            children.push(Child::Deployment(Deployment {
                metadata: project.child_meta(name, APP, "driver"),
                spec: Some(DeploymentSpec {
                    replicas: Some(if halted(project, spark) { 0 } else { 1 }),
                    // One driver at a time: a second would start executors of its own.
                    strategy: Some(DeploymentStrategy {
                        type_: Some("Recreate".into()),
                        ..DeploymentStrategy::default()
                    }),
                    selector: LabelSelector { match_labels: Some(selector), ..LabelSelector::default() },
                    template,
                    ..DeploymentSpec::default()
                }),
                ..Deployment::default()
            }));
        }
        Mode::Batch(app) => {
            // The UI of the runs in progress.
            children.push(Child::Service(workload::service(
                project.child_meta(name, APP, "driver"),
                selector.clone(),
                &[("ui", UI_PORT)],
            )));
            // A finished run is kept (or gone), never run again: a new run needs a new number.
            if app.manual() && app.finished.is_none() {
                children.push(Child::Job(run_job(project, spark, app, &image, &conf_name, &selector)));
            }
            if let Some(schedule) = &app.schedule {
                children.push(Child::CronJob(Box::new(cron_job(
                    project, spark, app, schedule, &image, &conf_name, &selector,
                ))));
            }
        }
    }
    children
}

/// Whether nothing of the project may run: stopped on request, or its driver unfenced.
fn halted(project: &ValidatedProject, spark: &Spark) -> bool {
    project.stopped || !spark.fenced
}

/// The image of the driver and the executors: the Python environment's when it is built as an
/// image (it must then hold Spark), else the project's, else the operator's repository at the
/// project's Spark version.
fn image(project: &ValidatedProject, spark: &Spark, config: &Config) -> String {
    let repository = config.spark_image_repository.as_deref().unwrap_or(super::DEFAULT_REPOSITORY);
    project
        .python_environment
        .as_ref()
        .and_then(|e| e.image.clone())
        .or_else(|| spark.image.clone())
        .unwrap_or_else(|| format!("{repository}:{}", spark.version))
}

/// The Job of one run of the counter: its pod is the driver (client mode), so the run's
/// outcome is the driver's. A Job is never rewritten (its name carries the run number), except
/// for `suspend`, which `stopped` sets.
pub fn run_job(
    project: &ValidatedProject,
    spark: &Spark,
    app: &Application,
    image: &str,
    conf_name: &str,
    selector: &BTreeMap<String, String>,
) -> Job {
    let mut labels = selector.clone();
    labels.insert(LABEL_RUN.into(), app.run.to_string());
    let mut metadata = project.child_meta(&super::run_name(&project.name, app.run), APP, "driver");
    metadata.labels.get_or_insert_with(BTreeMap::new).insert(LABEL_RUN.into(), app.run.to_string());
    Job { metadata, spec: Some(job_spec(project, spark, app, image, conf_name, labels)), ..Job::default() }
}

/// The CronJob `<project>` of a scheduled application: each run a Job like the counter's, never
/// two at once, as many kept as `keepFinishedRuns` (plus one).
fn cron_job(
    project: &ValidatedProject,
    spark: &Spark,
    app: &Application,
    schedule: &str,
    image: &str,
    conf_name: &str,
    selector: &BTreeMap<String, String>,
) -> CronJob {
    let mut labels = selector.clone();
    labels.insert(LABEL_RUN.into(), super::SCHEDULED.into());
    let mut job_labels = project.child_meta(&project.name, APP, "driver").labels.unwrap_or_default();
    job_labels.insert(LABEL_RUN.into(), super::SCHEDULED.into());
    let kept = app.keep + 1;
    CronJob {
        metadata: project.child_meta(&project.name, APP, "driver"),
        spec: Some(CronJobSpec {
            schedule: schedule.into(),
            time_zone: app.time_zone.clone(),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(300),
            suspend: Some(halted(project, spark)),
            successful_jobs_history_limit: Some(kept),
            failed_jobs_history_limit: Some(kept),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(job_labels), ..ObjectMeta::default() }),
                spec: Some(job_spec(project, spark, app, image, conf_name, labels)),
            },
        }),
        ..CronJob::default()
    }
}

/// A run's Job: the driver's pod, never restarted in place; retries (`OnFailure`) are new pods,
/// evictions never count, and without retries the first non-zero exit fails the run, naming
/// the code.
fn job_spec(
    project: &ValidatedProject,
    spark: &Spark,
    app: &Application,
    image: &str,
    conf_name: &str,
    labels: BTreeMap<String, String>,
) -> JobSpec {
    let mut template = driver_template(project, spark, image, conf_name, &labels);
    if let Some(spec) = template.spec.as_mut() {
        spec.restart_policy = Some("Never".into());
    }
    let mut rules = vec![PodFailurePolicyRule {
        action: "Ignore".into(),
        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
        }]),
        ..PodFailurePolicyRule::default()
    }];
    if app.retries == 0 {
        rules.push(PodFailurePolicyRule {
            action: "FailJob".into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some("driver".into()),
                operator: "NotIn".into(),
                values: vec![0],
            }),
            ..PodFailurePolicyRule::default()
        });
    }
    JobSpec {
        backoff_limit: Some(app.retries),
        pod_failure_policy: Some(PodFailurePolicy { rules }),
        suspend: Some(halted(project, spark)),
        template,
        ..JobSpec::default()
    }
}

/// The driver's pod: spark-submit in client mode under the driver's ServiceAccount, with the
/// configuration mounted, the workspace environment, the run's checkout and the Python
/// environment; restricted.
fn driver_template(
    project: &ValidatedProject,
    spark: &Spark,
    image: &str,
    conf_name: &str,
    selector: &BTreeMap<String, String>,
) -> PodTemplateSpec {
    let (env_from, workspace_env) = env::workspace_env(&project.workspace.secret_env);
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
        ..EnvVarSource::default()
    };
    let mut container_env = vec![
        env::var("HOME", "/tmp"),
        EnvVar {
            name: "SPARK_DRIVER_HOST".into(),
            value_from: Some(field("status.podIP")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "SPARK_DRIVER_POD_NAME".into(),
            value_from: Some(field("metadata.name")),
            ..EnvVar::default()
        },
    ];
    container_env.extend(workspace_env);
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..ContainerPort::default()
    };
    let connect = matches!(spark.mode, Mode::Connect);
    let mut ports =
        vec![port("ui", UI_PORT), port("driver", DRIVER_PORT), port("block-manager", BLOCK_MANAGER_PORT)];
    let mut mounts = vec![mount("conf", CONF_DIR), mount("tmp", "/tmp")];
    let mut volumes = vec![workload::config_map_volume("conf", conf_name), workload::empty_dir("tmp")];
    let checkouts: Vec<git::Checkout> = match &spark.mode {
        Mode::Batch(app) if matches!(app.main, MainFile::Checkout(_)) => {
            project.source.iter().cloned().collect()
        }
        _ => Vec::new(),
    };
    if !checkouts.is_empty() {
        mounts.push(mount("checkout", CHECKOUT));
        volumes.push(workload::empty_dir("checkout"));
        volumes.extend(git::volumes(&checkouts));
    }
    if connect {
        ports.insert(0, port("connect", CONNECT_PORT));
    }
    // The Connect port answers once the server serves.
    let probe = |period: i32, failures: i32| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("connect".into()),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    let driver = Container {
        name: "driver".into(),
        image: Some(image.into()),
        command: Some(vec![SPARK_SUBMIT.into()]),
        args: Some(driver_args(spark, CONF_DIR, CHECKOUT)),
        env: Some(container_env),
        env_from: Some(env_from),
        ports: Some(ports),
        resources: spark.driver_resources.clone(),
        volume_mounts: Some(mounts),
        readiness_probe: connect.then(|| probe(10, 3)),
        liveness_probe: connect.then(|| probe(30, 6)),
        // Spark writes under its home in the image (work-dir, logs).
        security_context: Some(pod::container_security(UID, false)),
        ..Container::default()
    };
    let clones: Vec<Container> = checkouts
        .iter()
        .map(|r| git::container(r, "checkout", CHECKOUT, CHECKOUT, git::Mode::Once))
        .collect();
    project.pod_template(PodParts {
        labels: selector.clone(),
        service_account: driver_service_account(&project.name),
        // The driver talks to the API server (it creates its executors).
        token: true,
        uid: UID,
        gid: UID,
        init_containers: clones,
        containers: vec![driver],
        volumes,
        python_environment: true,
    })
}

/// The executors' pod template (Spark adds its own containers' command, image, resources and
/// labels): the project's labels and its own, restricted, no token, the Python environment, the
/// scheduling overrides. Nothing of the workspace's Secrets: the admission policy refuses
/// executor pods that reference any.
fn executor_template(project: &ValidatedProject, image: &str) -> Pod {
    let mut labels = project.labels(APP, "executor");
    labels.insert(LABEL_WORKSPACE.into(), project.workspace.name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
    labels.insert(LABEL_DRIVER.into(), project.name.clone());
    let executor = Container {
        name: "executor".into(),
        image: Some(image.into()),
        env: Some(vec![env::var("HOME", "/tmp")]),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..VolumeMount::default()
        }]),
        security_context: Some(pod::container_security(UID, false)),
        ..Container::default()
    };
    let template = project.pod_template(PodParts {
        labels,
        service_account: conf::executor_service_account(&project.name),
        token: false,
        uid: UID,
        gid: UID,
        init_containers: Vec::new(),
        containers: vec![executor],
        volumes: vec![workload::empty_dir("tmp")],
        python_environment: true,
    });
    Pod { metadata: template.metadata.unwrap_or_default(), spec: template.spec, ..Pod::default() }
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

    fn example_project(file: &str, patch: impl FnOnce(&mut Project)) -> ValidatedProject {
        let mut project: Project = example(file).remove(0);
        project.metadata.uid = Some("project-uid".into());
        patch(&mut project);
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        if let RuntimeSpec::Spark(spark) = &mut validated.runtime {
            spark.fenced = true;
        }
        validated
    }

    /// The example batch application without its schedule: the counter's run 1 starts at once.
    fn unscheduled(p: &mut Project) {
        let app = p.spec.spark.as_mut().unwrap().application.as_mut().unwrap();
        (app.schedule, app.time_zone) = (None, None);
    }

    fn children(project: &ValidatedProject) -> Vec<Child> {
        let RuntimeSpec::Spark(spark) = &project.runtime else { panic!("not Spark") };
        build(project, spark, &Config::default())
    }

    fn conf_map(children: &[Child]) -> BTreeMap<String, String> {
        let map =
            children.iter().find_map(|c| if let Child::ConfigMap(m) = c { Some(m) } else { None }).unwrap();
        map.data.clone().unwrap()
    }

    fn properties(children: &[Child]) -> BTreeMap<String, String> {
        conf_map(children)[CONF_FILE]
            .lines()
            .map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
            .collect()
    }

    fn pod_of(children: &[Child]) -> k8s_openapi::api::core::v1::PodSpec {
        children
            .iter()
            .find_map(|c| match c {
                Child::Deployment(d) => d.spec.clone()?.template.spec,
                Child::Job(j) => j.spec.clone()?.template.spec,
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn the_connect_server_is_a_restricted_client_mode_driver_with_its_executors_fenced() {
        let project = example_project("21-project-spark.yaml", |_| {});
        let children = children(&project);
        let pod = pod_of(&children);
        assert_restricted(&pod);
        assert_eq!(pod.service_account_name.as_deref(), Some("spark-connect-spark-driver"));
        let driver = &pod.containers[0];
        assert_eq!(driver.command.as_deref(), Some(&["/opt/spark/bin/spark-submit".to_string()][..]));
        let args = driver.args.clone().unwrap();
        assert!(args.ends_with(&["--class".into(), CONNECT_SERVER.into()]), "{args:?}");
        let conf = properties(&children);
        assert_eq!(conf["spark.master"], "k8s://https://kubernetes.default.svc:443");
        assert_eq!(conf["spark.kubernetes.namespace"], "dw-analytics");
        assert_eq!(
            conf["spark.kubernetes.authenticate.executor.serviceAccountName"],
            "spark-connect-spark-executor"
        );
        assert_eq!(conf["spark.dynamicAllocation.enabled"], "true");
        assert_eq!(
            (
                conf["spark.dynamicAllocation.minExecutors"].as_str(),
                conf["spark.dynamicAllocation.maxExecutors"].as_str()
            ),
            ("1", "6")
        );
        assert_eq!(conf["spark.executor.memory"], "3687m", "4Gi less a tenth");
        assert_eq!(conf["spark.executor.memoryOverhead"], "409m");
        assert_eq!(conf["spark.driver.memory"], "1664m", "2Gi less 384Mi");
        assert_eq!(conf["spark.sql.shuffle.partitions"], "64", "the project's tuning");
        // The executor template: restricted, no token, its project's label, no Secret.
        let template: Pod = serde_yaml::from_str(&conf_map(&children)[EXECUTOR_TEMPLATE]).unwrap();
        let spec = template.spec.unwrap();
        assert_restricted(&spec);
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert_eq!(template.metadata.labels.unwrap()[LABEL_DRIVER], "spark-connect");
        assert!(spec.containers.iter().all(|c| c.env_from.is_none()));
        assert_eq!(
            spec.tolerations.unwrap()[0].value.as_deref(),
            Some("spark"),
            "scheduling overrides reach executors"
        );
        let binding =
            children.iter().find_map(|c| if let Child::RoleBinding(b) = c { Some(b) } else { None }).unwrap();
        assert_eq!(binding.role_ref.name, DRIVER_ROLE);
        assert_eq!(binding.subjects.as_ref().unwrap()[0].name, "spark-connect-spark-driver");
    }

    #[test]
    fn without_the_executor_policy_the_driver_gets_no_rights_and_nothing_runs_but_nothing_is_removed() {
        let mut project = example_project("21-project-spark.yaml", |_| {});
        let RuntimeSpec::Spark(spark) = &mut project.runtime else { panic!() };
        spark.fenced = false;
        let children = children(&project);
        assert!(children.iter().all(|c| c.key().0 != "RoleBinding"), "an unfenced driver holds its role");
        let deployment =
            children.iter().find_map(|c| if let Child::Deployment(d) = c { Some(d) } else { None });
        assert_eq!(deployment.unwrap().spec.as_ref().unwrap().replicas, Some(0), "an unfenced server runs");
        let RuntimeSpec::Spark(spark) = &project.runtime else { panic!() };
        let status = super::super::status(&project, spark, &Default::default(), None);
        assert_eq!(status.phase, Some(crate::crd::project::Phase::Pending));
        assert_eq!(status.conditions[0].reason, "DriverNotFenced");
    }

    #[test]
    fn images_come_from_the_operators_mirror_at_the_projects_version() {
        let mut project: Project = example("21-project-spark.yaml").remove(0);
        project.spec.spark.as_mut().unwrap().version = Some("4.0.1".into());
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        let RuntimeSpec::Spark(spark) = &mut validated.runtime else { panic!() };
        spark.fenced = true;
        let config = Config {
            spark_image_repository: Some("registry.example.com/apache/spark".into()),
            ..Config::default()
        };
        let RuntimeSpec::Spark(spark) = &validated.runtime else { panic!() };
        let children = build(&validated, spark, &config);
        let image = "registry.example.com/apache/spark:4.0.1";
        assert_eq!(pod_of(&children).containers[0].image.as_deref(), Some(image));
        assert_eq!(properties(&children)["spark.kubernetes.container.image"], image);
        let default = pod_of(&self::children(&validated)).containers[0].image.clone();
        assert_eq!(default.as_deref(), Some("apache/spark:4.0.1"));
    }

    #[test]
    fn the_ui_is_offered_to_the_access_layer_with_a_host() {
        let project = example_project("21-project-spark.yaml", |p| {
            p.spec.spark.as_mut().unwrap().host = Some("spark.data.example.com".into())
        });
        let offered = runtime::offered(&project).unwrap();
        assert_eq!((offered.ui.as_str(), offered.port), ("app-spark-connect", super::super::UI_PORT));
        assert_eq!(offered.pod_labels[crate::names::LABEL_COMPONENT], "driver");
        assert!(runtime::offered(&example_project("21-project-spark.yaml", |_| {})).is_none());
    }

    #[test]
    fn tuning_cannot_override_what_the_operator_decides() {
        let project = example_project("21-project-spark.yaml", |p| {
            let conf = &mut p.spec.spark.as_mut().unwrap().conf;
            // The schema refuses these; were one to get through, the operator's value wins.
            conf.insert("spark.master".into(), "local[*]".into());
            conf.insert("spark.dynamicAllocation.maxExecutors".into(), "1000".into());
        });
        let conf = properties(&children(&project));
        assert_eq!(conf["spark.master"], "k8s://https://kubernetes.default.svc:443");
        assert_eq!(conf["spark.dynamicAllocation.maxExecutors"], "6");
        let error = runtime::validate(
            &{
                let mut p: Project = example("21-project-spark.yaml").remove(0);
                p.spec
                    .spark
                    .as_mut()
                    .unwrap()
                    .conf
                    .insert("spark.sql.x".into(), "1\nspark.master=local".into());
                p
            },
            validated_example_workspace(),
        )
        .unwrap_err();
        assert_eq!(error.reason(), "InvalidSparkConf");
    }

    #[test]
    fn a_run_is_a_job_named_by_its_number_whose_arguments_cannot_expand_variables() {
        let project = example_project("24-project-spark-batch.yaml", |p| {
            unscheduled(p);
            let app = p.spec.spark.as_mut().unwrap().application.as_mut().unwrap();
            app.args.push("$(DB_PASSWORD)".into());
            app.args.push("$$(DB_PASSWORD)".into());
            app.run = 7;
        });
        let children = children(&project);
        let job = children.iter().find_map(|c| if let Child::Job(j) = c { Some(j) } else { None }).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("daily-report-run-7"));
        let spec = job.spec.clone().unwrap();
        assert_eq!(spec.backoff_limit, Some(3), "OnFailure retries");
        assert_eq!(spec.suspend, Some(false));
        let pod = spec.template.spec.unwrap();
        assert_restricted(&pod);
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let args = pod.containers[0].args.clone().unwrap();
        let main = args.iter().position(|a| a == "/srv/app/pipelines/jobs/daily_report.py").unwrap();
        // Every `$` doubled: the kubelet reads `$$` as a literal `$`, so nothing expands.
        assert_eq!(args[main + 1..], ["--date", "yesterday", "$$(DB_PASSWORD)", "$$$$(DB_PASSWORD)"]);
        assert!(pod.init_containers.unwrap()[0].name.starts_with("git-clone"));
        let RuntimeSpec::Spark(spark) = &project.runtime else { panic!() };
        let Mode::Batch(app) = &spark.mode else { panic!() };
        assert_eq!(
            super::super::kept_runs("daily-report", app),
            ["daily-report-run-4", "daily-report-run-5", "daily-report-run-6"]
        );
        assert_eq!(runtime::retained(&project).len(), 3);
        let never = example_project("24-project-spark-batch.yaml", |p| {
            unscheduled(p);
            p.spec.spark.as_mut().unwrap().application.as_mut().unwrap().restart_policy =
                crate::crd::project::RestartPolicy::Never;
            p.spec.stopped = true;
        });
        let job = children_job(&never);
        assert_eq!(job.spec.as_ref().unwrap().backoff_limit, Some(0));
        assert_eq!(job.spec.as_ref().unwrap().suspend, Some(true), "stopped suspends the run");
        let rules = &job.spec.as_ref().unwrap().pod_failure_policy.as_ref().unwrap().rules;
        assert_eq!(rules.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), ["Ignore", "FailJob"]);
    }

    #[test]
    fn a_finished_run_is_kept_but_never_run_again() {
        let mut project: Project = example("24-project-spark-batch.yaml").remove(0);
        unscheduled(&mut project);
        project.status =
            serde_yaml::from_str("runs: [{run: 1, job: daily-report-run-1, phase: Failed}]").unwrap();
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        let RuntimeSpec::Spark(spark) = &mut validated.runtime else { panic!() };
        spark.fenced = true;
        assert!(
            children(&validated).iter().all(|c| c.key().0 != "Job"),
            "a finished run's Job is made again"
        );
        assert_eq!(runtime::retained(&validated), [("Job", "daily-report-run-1".to_string())]);
        let RuntimeSpec::Spark(spark) = &validated.runtime else { panic!() };
        let status = super::super::status(&validated, spark, &Default::default(), None);
        assert_eq!(status.phase, Some(crate::crd::project::Phase::Failed), "the record stands");
    }

    fn children_job(project: &ValidatedProject) -> Job {
        children(project)
            .into_iter()
            .find_map(|c| if let Child::Job(j) = c { Some(j) } else { None })
            .unwrap()
    }

    #[test]
    fn a_batch_application_needs_a_file_it_can_find() {
        let mut project: Project = example("24-project-spark-batch.yaml").remove(0);
        unscheduled(&mut project);
        project.spec.source = None;
        assert_eq!(
            runtime::validate(&project, validated_example_workspace()).unwrap_err().reason(),
            "NoApplicationSource"
        );
        project.spec.spark.as_mut().unwrap().application.as_mut().unwrap().main_application_file =
            "local:///opt/spark/examples/src/main/python/pi.py".into();
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        if let RuntimeSpec::Spark(spark) = &mut validated.runtime {
            spark.fenced = true;
        }
        let args = pod_of(&children(&validated)).containers[0].args.clone().unwrap();
        assert!(args.contains(&"/opt/spark/examples/src/main/python/pi.py".to_string()));
        project.spec.spark.as_mut().unwrap().application.as_mut().unwrap().main_application_file =
            "local://../etc/passwd".into();
        assert_eq!(
            runtime::validate(&project, validated_example_workspace()).unwrap_err().reason(),
            "InvalidApplicationFile"
        );
    }

    #[test]
    fn golden_objects_minimal_and_full() {
        let minimal_connect = |p: &mut Project| {
            p.spec.pod_overrides = None;
            let spark = p.spec.spark.as_mut().unwrap();
            spark.driver = None;
            spark.executors = None;
            spark.conf.clear();
        };
        let full_connect = |p: &mut Project| {
            p.spec.spark.as_mut().unwrap().host = Some("spark.data.example.com".into());
        };
        let minimal_batch = |p: &mut Project| {
            unscheduled(p);
            let spark = p.spec.spark.as_mut().unwrap();
            spark.executors = None;
            spark.conf.clear();
        };
        for (name, project) in [
            ("connect-minimal", example_project("21-project-spark.yaml", minimal_connect)),
            ("connect-full", example_project("21-project-spark.yaml", full_connect)),
            ("batch-minimal", example_project("24-project-spark-batch.yaml", minimal_batch)),
            (
                "batch-full",
                // Scheduled, and an extra run on demand.
                example_project("24-project-spark-batch.yaml", |p| {
                    p.spec.spark.as_mut().unwrap().application.as_mut().unwrap().run = 2
                }),
            ),
        ] {
            crate::build::children::assert_snapshots!(format!("{name}-"), children(&project));
        }
    }
}
