//! A Spark project's status, from what the API server holds: the Connect server's Deployment or
//! the runs' Jobs, and the project's driver and executor pods.

use k8s_openapi::{
    api::{batch::v1::Job, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::Time,
};

use super::{Application, CONNECT_PORT, LABEL_DRIVER, LABEL_RUN, Mode, SCHEDULED, Spark, UI_PORT};
use crate::{
    conditions::Desired,
    controller::children::Applied,
    crd::project::{ComponentStatus, Endpoint, Phase, RunStatus},
    names::LABEL_COMPONENT,
    runtime::{RuntimeStatus, ValidatedProject, component, replica_failure, workload_phase},
};

/// How much of a failed driver's termination message a run's message keeps.
const MESSAGE_LIMIT: usize = 1024;

/// Phase, the driver and executor components, the driver's (or the run's) condition, the
/// endpoints and, for a batch application, its latest runs.
pub fn status(
    project: &ValidatedProject,
    spark: &Spark,
    applied: &Applied,
    previous: Option<Phase>,
) -> RuntimeStatus {
    let service = format!("{}.{}.svc", project.name, project.namespace);
    let ui = Endpoint { name: "ui".into(), url: format!("http://{service}:{UI_PORT}/") };
    let executors = executors(project, spark, &applied.pods);
    let mut status = match &spark.mode {
        Mode::Connect => {
            let desired = if project.stopped { 0 } else { 1 };
            let deployment = applied.deployments.get(&project.name);
            let ready = deployment
                .filter(|d| d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation)
                .and_then(|d| d.status.as_ref()?.ready_replicas)
                .unwrap_or(0);
            let driver = component("driver", desired, ready);
            // Executors come and go with the load (Spark starts them): the server's readiness
            // is the driver's.
            let phase = workload_phase(project.stopped, std::slice::from_ref(&driver), previous);
            let condition = match phase {
                Phase::Stopped => Desired::yes("Driver", "Stopped", "scaled to zero"),
                Phase::Running => Desired::yes("Driver", "Ready", "the Spark Connect server accepts clients"),
                _ => match replica_failure(deployment) {
                    Some(why) => Desired::no(
                        "Driver",
                        "PodsRejected",
                        format!("the driver's pod cannot be created: {why}"),
                    ),
                    None if phase == Phase::Degraded => {
                        Desired::no("Driver", "Unavailable", "the Spark Connect server stopped answering")
                    }
                    None => Desired::no("Driver", "Starting", "the Spark Connect server is starting"),
                },
            };
            RuntimeStatus {
                phase: Some(phase),
                components: vec![driver, executors],
                endpoints: vec![
                    Endpoint { name: "connect".into(), url: format!("sc://{service}:{CONNECT_PORT}") },
                    ui,
                ],
                conditions: vec![condition],
                ..RuntimeStatus::default()
            }
        }
        Mode::Batch(app) => batch(project, app, applied, executors, ui),
    };
    if !spark.fenced {
        // Halted, everything kept: the runs stay in status.
        status.phase = Some(Phase::Pending);
        status.endpoints.clear();
        status.conditions = vec![Desired::no(
            "Driver",
            "DriverNotFenced",
            "the admission policy dataworkspace-spark-executors (deploy/admission.yaml) is not installed with a binding that denies: without it the driver's right to create executor pods would reach every Secret and ServiceAccount of the namespace, so the driver has no rights and nothing runs (the server at zero replicas, runs and schedule suspended, nothing removed); a platform admin installs it",
        )];
    }
    status
}

fn batch(
    project: &ValidatedProject,
    app: &Application,
    applied: &Applied,
    executors: ComponentStatus,
    ui: Endpoint,
) -> RuntimeStatus {
    // The counter's runs (their number in the label and the name) and the schedule's.
    let mut runs: Vec<(Option<Time>, RunStatus)> = applied
        .jobs
        .values()
        .filter_map(|job| {
            let label = job.metadata.labels.as_ref()?.get(LABEL_RUN)?;
            let run = match label.parse::<i64>() {
                Ok(run)
                    if job.metadata.name.as_deref() == Some(super::run_name(&project.name, run).as_str()) =>
                {
                    Some(run)
                }
                Err(_) if label == SCHEDULED => None,
                _ => return None,
            };
            Some((job.metadata.creation_timestamp.clone(), run_status(run, job, &applied.pods)))
        })
        .collect();
    if let Some(record) = app.finished.as_ref().filter(|r| !runs.iter().any(|(_, run)| run.run == r.run)) {
        // Its Job is gone (deleted by someone); the record stands.
        runs.push((record.start_time.clone().or_else(|| record.completion_time.clone()), record.clone()));
    }
    // Newest first; a run not started yet is the newest.
    runs.sort_by_key(|(created, _)| std::cmp::Reverse((created.is_none(), created.as_ref().map(|t| t.0))));
    let mut runs: Vec<RunStatus> = runs.into_iter().map(|(_, run)| run).collect();
    let current = runs.first().cloned();
    let name = |r: &RunStatus| match r.run {
        Some(run) => format!("run {run}"),
        None => format!("the scheduled run {}", r.job),
    };
    let (phase, condition) = match &current {
        None => (
            Phase::Pending,
            Desired::yes(
                "Run",
                "Scheduled",
                format!(
                    "the first run starts on the schedule {}",
                    app.schedule.as_deref().unwrap_or_default()
                ),
            ),
        ),
        Some(run) => match run.phase.as_str() {
            "Succeeded" => {
                (Phase::Succeeded, Desired::yes("Run", "Succeeded", format!("{} succeeded", name(run))))
            }
            "Failed" => (
                Phase::Failed,
                Desired::no(
                    "Run",
                    "ApplicationFailed",
                    format!(
                        "{} failed: {}",
                        name(run),
                        run.message.clone().unwrap_or_else(|| "no reason recorded".into())
                    ),
                ),
            ),
            "Suspended" => {
                (Phase::Stopped, Desired::yes("Run", "Stopped", format!("{} is suspended", name(run))))
            }
            "Running" => {
                (Phase::Running, Desired::yes("Run", "Running", format!("{} is running", name(run))))
            }
            _ => (Phase::Provisioning, Desired::no("Run", "Starting", format!("{} is starting", name(run)))),
        },
    };
    let running = phase == Phase::Running;
    let executors = ComponentStatus {
        replicas: executors.replicas.map(|wanted| if running { wanted } else { 0 }),
        ready: !running || executors.ready,
        ..executors
    };
    let driver = ComponentStatus {
        name: "driver".into(),
        ready: running,
        ready_replicas: Some(i32::from(running)),
        replicas: Some(i32::from(!matches!(phase, Phase::Succeeded | Phase::Failed | Phase::Stopped))),
    };
    runs.truncate(usize::try_from(app.keep).unwrap_or(0) + 1);
    RuntimeStatus {
        phase: Some(phase),
        components: vec![driver, executors],
        endpoints: if running { vec![ui] } else { Vec::new() },
        conditions: vec![condition],
        runs,
        ..RuntimeStatus::default()
    }
}

/// One run, from its Job and (for a failure) its last driver pod.
fn run_status(run: Option<i64>, job: &Job, pods: &[Pod]) -> RunStatus {
    let name = job.metadata.name.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status.conditions.iter().flatten().find(|c| c.type_ == type_ && c.status == "True").cloned()
    };
    let suspended = job.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    let (phase, message) = if condition("Complete").is_some() {
        ("Succeeded", None)
    } else if let Some(failed) = condition("Failed") {
        let mut message = match (&failed.reason, &failed.message) {
            (Some(reason), Some(text)) => format!("{reason}: {text}"),
            (Some(reason), None) => reason.clone(),
            (None, text) => text.clone().unwrap_or_default(),
        };
        if let Some(output) = driver_message(&name, pods) {
            message.push_str("; the driver's message: ");
            message.push_str(&output);
        }
        ("Failed", Some(message))
    } else if suspended {
        ("Suspended", None)
    } else if status.ready.unwrap_or(0) > 0 {
        ("Running", None)
    } else {
        ("Pending", None)
    };
    RunStatus {
        run,
        job: name,
        phase: phase.into(),
        start_time: status.start_time,
        completion_time: status.completion_time,
        message,
    }
}

/// The termination message of the newest failed driver pod of a Job (what the application wrote
/// to `/dev/termination-log`; never its log, which may hold anything), bounded.
fn driver_message(job: &str, pods: &[Pod]) -> Option<String> {
    let text = pods
        .iter()
        .filter(|p| {
            p.metadata.labels.as_ref().and_then(|l| l.get("job-name")).map(String::as_str) == Some(job)
        })
        .filter_map(|p| {
            let terminated = p
                .status
                .as_ref()?
                .container_statuses
                .iter()
                .flatten()
                .find(|c| c.name == "driver")?
                .state
                .as_ref()?
                .terminated
                .clone()?;
            (terminated.exit_code != 0).then_some((terminated.finished_at, terminated.message))
        })
        .max_by(|a, b| a.0.as_ref().map(|t| t.0).cmp(&b.0.as_ref().map(|t| t.0)))?
        .1?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    // The end holds the error; keep whole characters.
    let start = text.len().saturating_sub(MESSAGE_LIMIT);
    let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    Some(text[start..].to_string())
}

/// The executors Spark started for this project: how many run, against how many are asked
/// for when their number is fixed.
fn executors(project: &ValidatedProject, spark: &Spark, pods: &[Pod]) -> ComponentStatus {
    let running = pods
        .iter()
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            labels.and_then(|l| l.get(LABEL_DRIVER)) == Some(&project.name)
                && labels.and_then(|l| l.get(LABEL_COMPONENT)).map(String::as_str) == Some("executor")
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    let running = i32::try_from(running).unwrap_or(i32::MAX);
    let wanted = match spark.executors.dynamic {
        Some(_) => None,
        None => Some(if project.stopped { 0 } else { spark.executors.instances }),
    };
    ComponentStatus {
        name: "executors".into(),
        ready: wanted.is_none_or(|w| running >= w),
        ready_replicas: Some(running),
        replicas: wanted,
    }
}
