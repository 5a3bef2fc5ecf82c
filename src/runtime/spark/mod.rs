//! The Spark runtime: a Spark Connect server (the driver, long-running) or a batch application
//! (a run: a Job whose pod is the driver), each with executors that Spark itself creates in the
//! workspace namespace from the operator's pod template. Validation here; the configuration in
//! `conf`, the objects in `build`, status in `status`.
//!
//! The driver runs in client mode inside a pod the operator builds (restricted, the workspace
//! environment, the Project's Python environment and scheduling), so no spark-submit ever
//! creates a driver pod. It runs as `<project>-spark-driver`, bound to the ClusterRole
//! `dataworkspace-spark-driver` in its namespace (pods: get, list, watch, create, delete): the
//! admission policy `dataworkspace-spark-executors` lets that identity create only executor
//! pods of its own project, under the executor ServiceAccount (no token, no API rights), with no
//! Secret in them, and delete only those.

mod build;
mod conf;
mod status;

pub use build::{
    CONF_DIR, CONF_FILE, DRIVER_ROLE, EXECUTOR_TEMPLATE, build, driver_args, driver_service_account, run_job,
};
pub use conf::{Conf, conf};
pub use status::status;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::{
    crd::{
        Project,
        project::{RestartPolicy, RunStatus, SparkMode},
    },
    error::{Error, Result},
};

/// The app label of a Spark project's objects.
pub const APP: &str = "spark";
/// The Spark version run when the Project names none; its image is `apache/spark:<version>`
/// (Java 21, Python 3), or the same tag of the operator's `--spark-image-repository`.
pub const DEFAULT_VERSION: &str = "4.1.2";
/// Where Spark images come from unless the operator names a mirror.
pub const DEFAULT_REPOSITORY: &str = "apache/spark";
/// The Spark images' numeric user (`spark`, 185): restricted pods must name it.
pub const UID: i64 = 185;
/// Spark Connect's gRPC port.
pub const CONNECT_PORT: i32 = 15002;
/// The driver's web UI.
pub const UI_PORT: i32 = 4040;
/// The driver's RPC port, fixed so that executors (and the NetworkPolicy) know it.
pub const DRIVER_PORT: i32 = 7078;
/// The block manager's port, on the driver and on every executor.
pub const BLOCK_MANAGER_PORT: i32 = 7079;
/// Retries of a failed run under `restartPolicy: OnFailure`, each a new driver pod.
pub const RETRIES: i32 = 3;
/// The label by which executor pods name their project: the admission policy checks it.
pub const LABEL_DRIVER: &str = "dataworkspace.io/spark-driver";
/// The label of a run's driver pod and Job: the run number, or [`SCHEDULED`].
pub const LABEL_RUN: &str = "dataworkspace.io/spark-run";
/// [`LABEL_RUN`] of the runs the schedule starts.
pub const SCHEDULED: &str = "scheduled";

/// A Spark project, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Spark {
    /// Connect server or batch application.
    pub mode: Mode,
    /// The image the Project names, if any; else the operator's Spark repository at `version`
    /// (a Python environment built as an image replaces either).
    pub image: Option<String>,
    /// The Spark version.
    pub version: String,
    /// Resources of the driver container (`spark.driver.resources`, else `spec.resources`).
    pub driver_resources: Option<ResourceRequirements>,
    /// Executors.
    pub executors: Executors,
    /// The Project's tuning properties (allow-listed by the schema).
    pub conf: BTreeMap<String, String>,
    /// The UI's public host, if it is to be exposed.
    pub host: Option<String>,
    /// Whether the admission policy that fences the driver's pod rights is installed (the
    /// controller checks): without it the driver gets no rights at all.
    pub fenced: bool,
}

/// How Spark runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// A Spark Connect server.
    Connect,
    /// A batch application.
    Batch(Box<Application>),
}

/// Executors: how many and how big.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Executors {
    /// Fixed, or initial under dynamic allocation.
    pub instances: i32,
    /// Dynamic allocation bounds (min, max), when on.
    pub dynamic: Option<(i32, i32)>,
    /// Resources of each.
    pub resources: Option<ResourceRequirements>,
}

/// A batch application, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Application {
    /// The main file, as the driver sees it: in the checkout, or a path in the image.
    pub main: MainFile,
    /// The main class of a JVM application.
    pub main_class: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// The run number.
    pub run: i64,
    /// Attempts after a failure.
    pub retries: i32,
    /// Earlier runs kept.
    pub keep: i32,
    /// This run's record in status, once it finished: a finished run is never run again, even
    /// when someone deletes its Job.
    pub finished: Option<RunStatus>,
    /// The cron schedule of further runs, if any.
    pub schedule: Option<String>,
    /// The schedule's time zone (UTC when absent).
    pub time_zone: Option<String>,
    /// Whether status records a run the schedule started.
    pub scheduled_before: bool,
}

impl Application {
    /// Whether the run counter starts a run: once raised above 1; at 1 only for a project that
    /// never had a schedule (creating a scheduled project starts nothing, and neither does
    /// removing its schedule later).
    pub fn manual(&self) -> bool {
        self.run > 1 || (self.schedule.is_none() && !self.scheduled_before)
    }
}

/// Where the main file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MainFile {
    /// `<repository>/<path>` inside the project's checkout.
    Checkout(String),
    /// An absolute path inside the image (`local://` in the spec).
    Image(String),
}

/// Validates the `spark` section of a Project. The schema already refused what it can (conf
/// keys, paths that escape); what it cannot see is checked here.
pub fn validate(project: &Project) -> Result<Spark> {
    let spec = project.spec.spark.clone().ok_or_else(|| Error::InvalidSpec {
        reason: "MissingRuntimeSection",
        message: "spec.spark must be set when spec.runtime is Spark".into(),
    })?;
    let invalid = |reason: &'static str, message: String| Error::InvalidSpec { reason, message };
    let mode = match (spec.mode, spec.application) {
        (SparkMode::Connect, _) => Mode::Connect,
        (SparkMode::Batch, None) => {
            return Err(invalid(
                "MissingApplication",
                "spec.spark.application must be set when spec.spark.mode is Batch".into(),
            ));
        }
        (SparkMode::Batch, Some(app)) => {
            let file = app.main_application_file.as_str();
            let main = match file.strip_prefix("local://") {
                Some(path) => {
                    if !path.starts_with('/')
                        || path.split('/').any(|s| s == "..")
                        || path.chars().any(char::is_control)
                    {
                        return Err(invalid(
                            "InvalidApplicationFile",
                            format!(
                                "spec.spark.application.mainApplicationFile {file:?}: a local:// path must be absolute inside the image, without '..'"
                            ),
                        ));
                    }
                    MainFile::Image(path.into())
                }
                None => {
                    let Some(source) = &project.spec.source else {
                        return Err(invalid(
                            "NoApplicationSource",
                            format!(
                                "spec.spark.application.mainApplicationFile {file:?} is relative to spec.source, which is not set: name a repository, or give a local:// path inside the image"
                            ),
                        ));
                    };
                    if file.starts_with(['/', '-'])
                        || file.split('/').any(|s| s == "..")
                        || file.chars().any(char::is_control)
                    {
                        return Err(invalid(
                            "InvalidApplicationFile",
                            format!(
                                "spec.spark.application.mainApplicationFile {file:?} must be a relative path inside the repository"
                            ),
                        ));
                    }
                    MainFile::Checkout(format!("{}/{}", source.repository, file))
                }
            };
            Mode::Batch(Box::new(Application {
                main,
                main_class: app.main_class,
                args: app.args,
                run: app.run,
                retries: match app.restart_policy {
                    RestartPolicy::Never => 0,
                    RestartPolicy::OnFailure => RETRIES,
                },
                keep: app.keep_finished_runs,
                finished: project
                    .status
                    .iter()
                    .flat_map(|s| s.runs.iter())
                    .find(|r| r.run == Some(app.run) && matches!(r.phase.as_str(), "Succeeded" | "Failed"))
                    .cloned(),
                schedule: app.schedule,
                time_zone: app.time_zone,
                scheduled_before: project.status.iter().flat_map(|s| s.runs.iter()).any(|r| r.run.is_none()),
            }))
        }
    };
    let executors = spec.executors.unwrap_or_default();
    let executors = Executors {
        instances: executors.instances,
        dynamic: executors.max_instances.map(|max| (executors.min_instances.unwrap_or(0), max)),
        resources: executors.resources,
    };
    let version = spec.version.unwrap_or_else(|| DEFAULT_VERSION.into());
    let spark = Spark {
        mode,
        image: spec.image,
        version,
        driver_resources: spec.driver.and_then(|d| d.resources).or_else(|| project.spec.resources.clone()),
        executors,
        conf: spec.conf,
        host: spec.host,
        fenced: false,
    };
    for (key, value) in &spark.conf {
        if value.chars().any(char::is_control) {
            return Err(invalid(
                "InvalidSparkConf",
                format!(
                    "spec.spark.conf[{key}] holds a control character (a line break?): each value is one line"
                ),
            ));
        }
    }
    // The memory settings must be derivable from the resources.
    conf::memory(spark.executors.resources.as_ref(), "spec.spark.executors.resources")?;
    conf::memory(spark.driver_resources.as_ref(), "spec.spark.driver.resources")?;
    Ok(spark)
}

/// The name of the Job of run `run`.
pub fn run_name(project: &str, run: i64) -> String {
    format!("{project}-run-{run}")
}

/// The names of the counter's runs' Jobs a batch project keeps if they exist but does not
/// create: the earlier ones, and the current one when the pass does not build it. (The schedule's runs are its
/// CronJob's, which keeps as many.)
pub fn kept_runs(project: &str, app: &Application) -> Vec<String> {
    let first = (app.run - i64::from(app.keep)).max(1);
    // The current run's Job, when this pass does not build it: finished, or from before a
    // schedule took over.
    let last = if app.finished.is_some() || !app.manual() { app.run } else { app.run - 1 };
    (first..=last).map(|run| run_name(project, run)).collect()
}
