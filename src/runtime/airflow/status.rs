//! An Airflow project's status, from what the API server holds: the components' Deployments,
//! the database's StatefulSet and the migration Job.

use super::{API_PORT, Airflow, COMPONENTS, Component, Database, Migration, build::ANNOTATION_VERSION};
use crate::{
    conditions::Desired,
    controller::children::Applied,
    crd::project::{Endpoint, Phase},
    runtime::{RuntimeStatus, ValidatedProject, component, replica_failure, workload_phase},
};

/// The condition type of a component.
fn condition_type(component: Component) -> &'static str {
    match component {
        Component::ApiServer => "ApiServer",
        Component::ExecutionApi => "ExecutionApi",
        Component::Scheduler => "Scheduler",
        Component::DagProcessor => "DagProcessor",
        Component::Triggerer => "Triggerer",
    }
}

/// Ready replicas of a Deployment whose status describes its current spec.
fn ready_replicas(deployment: Option<&k8s_openapi::api::apps::v1::Deployment>) -> i32 {
    deployment
        .filter(|d| d.status.as_ref().and_then(|s| s.observed_generation) == d.metadata.generation)
        .and_then(|d| d.status.as_ref()?.ready_replicas)
        .unwrap_or(0)
}

/// Phase, components, `DatabaseReady`, `MigrationComplete` and a condition per component, the
/// endpoint, and the version the components run.
pub fn status(
    project: &ValidatedProject,
    airflow: &Airflow,
    applied: &Applied,
    previous: Option<Phase>,
) -> RuntimeStatus {
    let name = project.name.as_str();
    let stopped = project.stopped;
    let mut conditions = Vec::new();
    let mut components = Vec::new();

    // The database.
    match &airflow.database {
        Database::Managed { .. } => {
            let set = applied.stateful_sets.get(&super::config::postgres_service(name));
            let ready = set.and_then(|s| s.status.as_ref()?.ready_replicas).unwrap_or(0);
            let desired = if stopped { 0 } else { 1 };
            components.push(component("postgres", desired, ready));
            conditions.push(match (stopped, ready > 0) {
                (true, _) => Desired::yes(
                    "DatabaseReady",
                    "Stopped",
                    "the managed PostgreSQL is scaled to zero; its volume is kept",
                ),
                (false, true) => {
                    Desired::yes("DatabaseReady", "Ready", "the managed PostgreSQL accepts connections")
                }
                (false, false) => {
                    Desired::no("DatabaseReady", "Starting", "the managed PostgreSQL is starting")
                }
            });
        }
        Database::External { connection, .. } => conditions.push(Desired::yes(
            "DatabaseReady",
            "External",
            format!("the metadata database is the Workspace connection {connection}"),
        )),
    }

    // The migration of the spec's version.
    let job_name = super::migration_job_name(&project.name, airflow);
    let migration = applied.jobs.get(&job_name).map(migration_state);
    conditions.push(match &migration {
        Some(Migration::Succeeded) => Desired::yes(
            "MigrationComplete",
            "Migrated",
            format!("the database schema is migrated to Airflow {} (Job {job_name})", airflow.version),
        ),
        Some(Migration::Failed(message)) => Desired::no(
            "MigrationComplete",
            "MigrationFailed",
            format!(
                "the migration to Airflow {} failed: {message}; its output: kubectl logs -n {} job/{job_name}. The components stay as they are; fix the cause and change the version (or the database) to migrate again, or delete the Job to retry",
                airflow.version, project.namespace
            ),
        ),
        Some(Migration::Running) if stopped => {
            Desired::no("MigrationComplete", "Stopped", format!("the migration to Airflow {} waits while the project is stopped", airflow.version))
        }
        Some(Migration::Running) => Desired::no(
            "MigrationComplete",
            "Migrating",
            format!("the database schema is being migrated to Airflow {} (Job {job_name})", airflow.version),
        ),
        None => Desired::no("MigrationComplete", "WaitingForDatabase", "the migration starts once the database accepts connections"),
    });

    // The components.
    let mut version = None;
    for &c in COMPONENTS.iter() {
        let deployment = applied.deployments.get(&c.workload(name));
        let desired = deployment.and_then(|d| d.spec.as_ref()?.replicas).unwrap_or(0);
        let ready = ready_replicas(deployment);
        let wanted = airflow.workload(c).replicas;
        let state = component(c.name(), if stopped { 0 } else { wanted }, ready);
        if c == Component::Scheduler {
            version = deployment
                .and_then(|d| d.metadata.annotations.as_ref()?.get(ANNOTATION_VERSION).cloned())
                .filter(|_| desired > 0 || stopped);
        }
        let type_ = condition_type(c);
        conditions.push(if stopped {
            Desired::yes(type_, "Stopped", "scaled to zero")
        } else if state.ready {
            Desired::yes(type_, "Ready", format!("{ready}/{wanted} ready"))
        } else if desired == 0 {
            Desired::no(type_, "WaitingForMigration", "starts once the database schema is migrated")
        } else if let Some(why) = replica_failure(deployment) {
            Desired::no(type_, "PodsRejected", format!("its pods cannot be created: {why}"))
        } else {
            Desired::no(type_, "Starting", format!("{ready}/{wanted} ready"))
        });
        components.push(state);
    }
    if !airflow.bundles.is_empty() {
        let deployment = applied.deployments.get(&format!("{name}-dags"));
        components.push(component("dags", if stopped { 0 } else { 1 }, ready_replicas(deployment)));
    }

    let airflow_components: Vec<_> =
        components.iter().filter(|c| COMPONENTS.iter().any(|k| k.name() == c.name)).cloned().collect();
    let mut phase = workload_phase(stopped, &airflow_components, previous);
    if let (Some(Migration::Failed(_)), false) = (&migration, stopped) {
        phase = if version.is_some() { Phase::Degraded } else { Phase::Failed };
    }
    let mut status = RuntimeStatus {
        phase: Some(phase),
        components,
        endpoints: vec![Endpoint {
            name: "api".into(),
            url: format!(
                "http://{}.{}.svc:{API_PORT}/",
                Component::ApiServer.workload(name),
                project.namespace
            ),
        }],
        conditions,
        runs: Vec::new(),
        version,
    };
    if !airflow.fenced {
        status.phase = Some(Phase::Pending);
        status.endpoints.clear();
        status.conditions = vec![Desired::no(
            "Scheduler",
            "SchedulerNotFenced",
            "the admission policy dataworkspace-airflow-workers (deploy/admission.yaml) is not installed with a binding that denies: without it the scheduler's right to create task pods would reach every Secret and ServiceAccount of the namespace, so the scheduler has no rights and nothing runs (every component at zero replicas, nothing removed); a platform admin installs it, or the project uses the LocalExecutor",
        )];
    }
    status
}

/// How a migration Job stands.
pub fn migration_state(job: &k8s_openapi::api::batch::v1::Job) -> Migration {
    let status = job.status.clone().unwrap_or_default();
    if status.succeeded.unwrap_or(0) > 0 {
        return Migration::Succeeded;
    }
    let failed = status.conditions.iter().flatten().find(|c| c.type_ == "Failed" && c.status == "True");
    match failed {
        Some(c) => Migration::Failed(format!(
            "{}: {}",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default()
        )),
        None => Migration::Running,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crd::Project,
        fixtures::validated_example_workspace,
        runtime::{self, RuntimeSpec},
    };

    fn project() -> ValidatedProject {
        let project: Project = serde_yaml::from_str(
            "metadata: {name: etl, namespace: dw-analytics, uid: u}\nspec: {runtime: Airflow, airflow: {}}",
        )
        .unwrap();
        let mut validated = runtime::validate(&project, validated_example_workspace()).unwrap();
        if let RuntimeSpec::Airflow(a) = &mut validated.runtime {
            a.fenced = true;
        }
        validated
    }

    fn airflow(project: &ValidatedProject) -> &Airflow {
        let RuntimeSpec::Airflow(a) = &project.runtime else { panic!("not Airflow") };
        a
    }

    fn job(status: &str) -> k8s_openapi::api::batch::v1::Job {
        serde_yaml::from_str(status).unwrap()
    }

    #[test]
    fn every_condition_is_one_the_controller_writes() {
        let project = project();
        let status = status(&project, airflow(&project), &Applied::default(), None);
        for condition in &status.conditions {
            assert!(
                crate::controller::project::CONDITION_TYPES.contains(&condition.type_),
                "{} is not written",
                condition.type_
            );
        }
        let types: Vec<&str> = status.conditions.iter().map(|c| c.type_).collect();
        assert_eq!(
            types,
            [
                "DatabaseReady",
                "MigrationComplete",
                "ApiServer",
                "ExecutionApi",
                "Scheduler",
                "DagProcessor",
                "Triggerer"
            ]
        );
        assert_eq!(status.phase, Some(Phase::Provisioning));
        assert_eq!(status.conditions[1].reason, "WaitingForDatabase");
    }

    #[test]
    fn a_failed_migration_fails_a_new_project_and_degrades_a_running_one() {
        let project = project();
        let name = super::super::migration_job_name("etl", airflow(&project));
        let mut applied = Applied::default();
        applied.jobs.insert(
            name.clone(),
            job("status: {failed: 3, conditions: [{type: Failed, status: 'True', reason: BackoffLimitExceeded, message: Job has reached the specified backoff limit}]}"),
        );
        let failed = status(&project, airflow(&project), &applied, None);
        assert_eq!(failed.phase, Some(Phase::Failed));
        let migration = &failed.conditions[1];
        assert_eq!((migration.status, migration.reason), (false, "MigrationFailed"));
        assert!(
            migration.message.contains(&format!("kubectl logs -n dw-analytics job/{name}")),
            "{}",
            migration.message
        );
        // Running an earlier version: degraded, still running it.
        let deployment: k8s_openapi::api::apps::v1::Deployment = serde_yaml::from_str(
            "metadata: {name: etl-scheduler, annotations: {dataworkspace.io/airflow-version: 3.3.1}}\nspec: {replicas: 1, selector: {}, template: {}}",
        )
        .unwrap();
        applied.deployments.insert("etl-scheduler".into(), deployment);
        let degraded = status(&project, airflow(&project), &applied, Some(Phase::Running));
        assert_eq!(degraded.phase, Some(Phase::Degraded));
        assert_eq!(degraded.version.as_deref(), Some("3.3.1"));
    }
}
