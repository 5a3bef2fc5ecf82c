//! Airflow projects on the control plane. The example project becomes `Running` with every
//! component ready (kwok runs the pods, which pass Pod Security `restricted`), its migration
//! Job ran once, and its generated keys survive a new generation and an operator restart; its
//! scheduler's identity may create only its own task pods (the admission policy, tried by
//! impersonating it). Another project is stopped and started, changes only its scheduler when
//! the scheduler's resources change, migrates a new version before its components roll (held by
//! a quota meanwhile), and is deleted: under `Retain` its database volume and keys stay and a
//! re-created project takes them back; under `Delete` nothing stays. A missing database
//! connection is reported by name. The example stays for the restart test (zero idle writes).

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::Job,
    core::v1::{PersistentVolumeClaim, ResourceQuota, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};

use dataworkspace_operator::crd::{Project, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, kubectl_with_input, wait_for, wait_until},
    notebook::phase,
    workspaces::{can_i, from_yaml},
};

const COMPONENTS: [&str; 5] = ["api-server", "execution-api", "scheduler", "dag-processor", "triggerer"];

fn condition(project: Option<&Project>, type_: &str) -> Option<(String, String, String)> {
    let status = project?.status.as_ref()?;
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn running(project: Option<&Project>) -> bool {
    phase(project) == Some(Phase::Running)
}

/// The Jobs of a project's migrations.
async fn migrations(jobs: &Api<Job>, project: &str) -> Result<Vec<Job>, String> {
    let selector = format!(
        "app.kubernetes.io/name=airflow,app.kubernetes.io/instance={project},app.kubernetes.io/component=migrate"
    );
    Ok(jobs.list(&ListParams::default().labels(&selector)).await.context("listing migration Jobs")?.items)
}

/// The image of a component's container.
async fn image(deployments: &Api<Deployment>, name: &str) -> Result<String, String> {
    let deployment = deployments.get(name).await.context("reading a component")?;
    Ok(deployment.spec.and_then(|s| s.template.spec?.containers.first()?.image.clone()).unwrap_or_default())
}

/// A task pod as the scheduler would create it from the operator's template, with `extra` YAML
/// appended to the container.
fn task_pod(ns: &str, project: &str, name: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app.kubernetes.io/name: airflow, app.kubernetes.io/instance: {project}, app.kubernetes.io/managed-by: dataworkspace-operator, app.kubernetes.io/component: worker, dag_id: hello, kubernetes_executor: 'True'}}\nspec:\n  serviceAccountName: {project}-airflow-worker\n  automountServiceAccountToken: false\n  restartPolicy: Never\n  securityContext: {{runAsNonRoot: true, runAsUser: 50000, runAsGroup: 0, seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n    - name: base\n      image: apache/airflow:3.3.2\n      securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n{container_extra}"
    )
}

pub async fn example_airflow_runs_and_keeps_its_keys(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let ns = "dw-analytics";
    scope.involve(ns);
    let projects: Api<Project> = Api::namespaced(client.clone(), ns);
    let ready =
        wait_for(&projects, "daily-etl", "phase Running, the database ready", |p: Option<&Project>| {
            running(p) && condition(p, "DatabaseReady").is_some_and(|c| c.0 == "True")
        })
        .await?;
    let status = ready.status.clone().unwrap_or_default();
    for component in COMPONENTS {
        let state = status.components.iter().find(|c| c.name == component);
        ensure!(state.is_some_and(|c| c.ready), "{component} is not ready: {:?}", status.components);
    }
    ensure!(status.version.as_deref() == Some("3.3.2"), "version {:?}", status.version);
    for type_ in ["DatabaseReady", "MigrationComplete", "Scheduler"] {
        let c = condition(Some(&ready), type_);
        ensure!(c.as_ref().is_some_and(|c| c.0 == "True"), "{type_}: {c:?}");
    }
    let endpoint = status.endpoints.first().map(|e| e.url.clone());
    ensure!(
        endpoint.as_deref() == Some("http://daily-etl-api-server.dw-analytics.svc:8080/"),
        "endpoint {endpoint:?}"
    );
    // The migration ran once.
    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let ran = migrations(&jobs, "daily-etl").await?;
    ensure!(ran.len() == 1, "{} migration Jobs", ran.len());
    let job_status = ran[0].status.clone().unwrap_or_default();
    ensure!(
        job_status.succeeded == Some(1) && job_status.failed.unwrap_or(0) == 0,
        "the migration did not run exactly once: {job_status:?}"
    );

    // The keys: generated once, kept through a new generation and a restart.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let keys = secrets.get("daily-etl-airflow").await.context("the keys")?;
    let key_names: Vec<String> = keys.data.clone().unwrap_or_default().into_keys().collect();
    ensure!(
        key_names == ["api-secret-key", "fernet-key", "jwt-secret", "postgres-password", "ui-jwt-secret"],
        "keys {key_names:?}"
    );
    ensure!(keys.metadata.owner_references.is_none(), "Retain: the keys have no owner");
    let patch = serde_json::json!({"spec": {"displayName": "Daily ETL (renamed)"}});
    projects.patch("daily-etl", &PatchParams::default(), &Patch::Merge(&patch)).await.context("rename")?;
    wait_for(&projects, "daily-etl", "Running at the new generation", running).await?;
    scope.env.stop_operator()?;
    scope.env.start_operator().await?;
    wait_for(&projects, "daily-etl", "Running after a restart", running).await?;
    let after = secrets.get("daily-etl-airflow").await.context("the keys")?;
    ensure!(after.data == keys.data, "the keys changed");
    ensure!(after.metadata.resource_version == keys.metadata.resource_version, "the keys were rewritten");
    ensure!(migrations(&jobs, "daily-etl").await?.len() == 1, "the migration ran again");

    // The scheduler's identity may create task pods, only its own project's, without Secrets.
    let scheduler = format!("system:serviceaccount:{ns}:daily-etl-airflow-scheduler");
    ensure!(can_i(&scheduler, "create", "pods", Some(ns))?, "the scheduler cannot create task pods");
    ensure!(!can_i(&scheduler, "get", "secrets", Some(ns))?, "the scheduler can read Secrets");
    let attempt = |manifest: String| {
        kubectl_with_input(&["create", "--as", &scheduler, "--dry-run=server", "-f", "-"], &manifest)
    };
    attempt(task_pod(ns, "daily-etl", "hello-greet-x7k2", ""))?;
    for (manifest, message) in [
        (
            task_pod(
                ns,
                "daily-etl",
                "hello-greet-bb",
                "      env: [{name: X, valueFrom: {secretKeyRef: {name: daily-etl-airflow, key: jwt-secret}}}]\n",
            ),
            "may not read Secrets",
        ),
        (
            task_pod(ns, "daily-etl", "hello-greet-cc", "")
                .replace("daily-etl-airflow-worker", "daily-etl-airflow-scheduler"),
            "worker ServiceAccount",
        ),
        (
            task_pod(ns, "daily-etl", "hello-greet-dd", "")
                .replace("app.kubernetes.io/instance: daily-etl", "app.kubernetes.io/instance: exploration"),
            "only task pods of its own project",
        ),
        (
            task_pod(ns, "daily-etl", "hello-greet-ee", "").replace(
                "  containers:",
                "  volumes: [{name: home, persistentVolumeClaim: {claimName: home-alice}}]
  containers:",
            ),
            "may mount only empty directories",
        ),
        (task_pod(ns, "daily-etl", "studio-0", ""), "may not take the names of StatefulSet pods"),
    ] {
        let refused = attempt(manifest);
        ensure!(
            refused.as_ref().is_err_and(|e| e.contains(message)),
            "expected a refusal naming {message:?}: {refused:?}"
        );
    }
    Ok(())
}

pub async fn airflow_stops_rolls_migrates_and_deletes(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let (_, ns) = crate::workspaces::workspace_with_code(&scope, "airflow").await?;
    let projects: Api<Project> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);

    // A database connection the Workspace does not list: named in Ready.
    let broken: Project = from_yaml(
        "metadata: {name: broken}\nspec: {runtime: Airflow, airflow: {executor: LocalExecutor, database: {external: {connection: airflow_db}}}}",
    )?;
    projects.create(&PostParams::default(), &broken).await.context("creating a Project")?;
    wait_for(&projects, "broken", "Ready=False naming the connection", |p: Option<&Project>| {
        condition(p, "Ready").is_some_and(|(status, reason, message)| {
            status == "False" && reason == "MissingConnection" && message.contains("airflow_db")
        })
    })
    .await?;
    projects.delete("broken", &DeleteParams::default()).await.context("deleting")?;

    let etl: Project = from_yaml(
        "metadata: {name: etl}\nspec: {runtime: Airflow, source: {repository: code, path: dags}, airflow: {version: 3.3.1}}",
    )?;
    projects.create(&PostParams::default(), &etl).await.context("creating an Airflow Project")?;
    wait_for(&projects, "etl", "phase Running", running).await?;

    // Stopped: every component and the database at zero, everything kept; then back.
    let stop = |stopped: bool| serde_json::json!({"spec": {"stopped": stopped}});
    projects.patch("etl", &PatchParams::default(), &Patch::Merge(&stop(true))).await.context("stop")?;
    wait_for(&projects, "etl", "phase Stopped", |p: Option<&Project>| phase(p) == Some(Phase::Stopped))
        .await?;
    for component in COMPONENTS {
        let replicas = deployments
            .get(&format!("etl-{component}"))
            .await
            .context("component")?
            .spec
            .and_then(|s| s.replicas);
        ensure!(replicas == Some(0), "a stopped {component} has {replicas:?} replicas");
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let db = sets.get("etl-postgres").await.context("database")?.spec.and_then(|s| s.replicas);
    ensure!(db == Some(0), "a stopped database has {db:?} replicas");
    projects.patch("etl", &PatchParams::default(), &Patch::Merge(&stop(false))).await.context("start")?;
    wait_for(&projects, "etl", "phase Running again", running).await?;
    ensure!(migrations(&jobs, "etl").await?.len() == 1, "stopping and starting migrated again");

    // The scheduler's resources: only the scheduler's workload changes.
    let generations = || async {
        let mut all = BTreeMap::new();
        for component in COMPONENTS {
            let d = deployments.get(&format!("etl-{component}")).await.context("component")?;
            all.insert(component, d.metadata.generation.unwrap_or_default());
        }
        Ok::<_, String>(all)
    };
    let before = generations().await?;
    let resources =
        serde_json::json!({"spec": {"airflow": {"scheduler": {"resources": {"requests": {"cpu": "300m"}}}}}});
    projects.patch("etl", &PatchParams::default(), &Patch::Merge(&resources)).await.context("resources")?;
    wait_until(WAIT, "the scheduler to change", || async {
        Ok(generations().await?["scheduler"] > before["scheduler"])
    })
    .await?;
    wait_for(&projects, "etl", "Running with the new resources", running).await?;
    let after = generations().await?;
    for component in COMPONENTS.iter().filter(|c| **c != "scheduler") {
        ensure!(after[component] == before[component], "{component} changed with the scheduler's resources");
    }

    // A new version: migrated first, while the components keep running the old one (a quota
    // holds the migration's pod meanwhile), then rolled.
    let pods_now = kubectl(&[
        "get",
        "pods",
        "-n",
        &ns,
        "--no-headers",
        "--field-selector=status.phase!=Succeeded,status.phase!=Failed",
    ])?
    .lines()
    .count();
    let quota: ResourceQuota =
        from_yaml(&format!("metadata: {{name: hold}}\nspec: {{hard: {{pods: '{pods_now}'}}}}"))?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &ns);
    quotas.create(&PostParams::default(), &quota).await.context("holding new pods")?;
    let bump = serde_json::json!({"spec": {"airflow": {"version": "3.3.2"}}});
    projects.patch("etl", &PatchParams::default(), &Patch::Merge(&bump)).await.context("bump")?;
    wait_for(&projects, "etl", "MigrationComplete=False Migrating", |p: Option<&Project>| {
        condition(p, "MigrationComplete").is_some_and(|(s, reason, _)| s == "False" && reason == "Migrating")
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    for component in COMPONENTS {
        let image = image(&deployments, &format!("etl-{component}")).await?;
        ensure!(image == "apache/airflow:3.3.1", "{component} rolled to {image} before the migration");
    }
    let held = projects.get("etl").await.context("project")?;
    ensure!(
        held.status.as_ref().and_then(|s| s.version.as_deref()) == Some("3.3.1"),
        "version {:?}",
        held.status.map(|s| s.version)
    );
    quotas.delete("hold", &DeleteParams::default()).await.context("releasing")?;
    wait_for(&projects, "etl", "Running at 3.3.2", |p: Option<&Project>| {
        running(p) && p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.version.as_deref() == Some("3.3.2"))
    })
    .await?;
    for component in COMPONENTS {
        let image = image(&deployments, &format!("etl-{component}")).await?;
        ensure!(image == "apache/airflow:3.3.2", "{component} runs {image}");
    }
    let ran = migrations(&jobs, "etl").await?;
    ensure!(
        ran.len() == 1
            && ran[0]
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a["dataworkspace.io/airflow-version"] == "3.3.2"),
        "the migrations: {:?}",
        ran.iter().map(|j| j.metadata.name.clone()).collect::<Vec<_>>()
    );

    // Deleted under Retain: the database volume and the keys stay, nothing else of it.
    let keys = secrets.get("etl-airflow").await.context("the keys")?;
    projects.delete("etl", &DeleteParams::default()).await.context("deleting")?;
    wait_until(WAIT, "the project's objects to go", || async {
        let left = kubectl(&[
            "get",
            "deployments,statefulsets,services,configmaps,serviceaccounts,rolebindings,networkpolicies,jobs",
            "-n",
            &ns,
            "-l",
            "app.kubernetes.io/instance=etl",
            "--no-headers",
        ])?;
        Ok(left.trim().is_empty())
    })
    .await?;
    ensure!(
        claims.get_opt("data-etl-postgres-0").await.context("claim")?.is_some(),
        "the database volume is gone"
    );
    ensure!(secrets.get_opt("etl-airflow").await.context("keys")?.is_some(), "the keys are gone");
    // Re-created: it takes its keys back, unchanged.
    projects.create(&PostParams::default(), &etl).await.context("re-creating")?;
    wait_for(&projects, "etl", "phase Running re-created", running).await?;
    let again = secrets.get("etl-airflow").await.context("the keys")?;
    ensure!(again.data == keys.data, "a re-created project got new keys");

    // What it took back stays kept, even under Delete: only an admin deletes kept data.
    let policy = serde_json::json!({"spec": {"airflow": {"deletionPolicy": "Delete"}}});
    projects.patch("etl", &PatchParams::default(), &Patch::Merge(&policy)).await.context("policy")?;
    wait_for(&projects, "etl", "Running under Delete", running).await?;
    let set = sets.get("etl-postgres").await.context("database")?;
    let when_deleted = set.spec.and_then(|s| s.persistent_volume_claim_retention_policy?.when_deleted);
    ensure!(when_deleted.as_deref() == Some("Retain"), "the kept volume's policy is {when_deleted:?}");
    let kept = secrets.get("etl-airflow").await.context("keys")?;
    ensure!(kept.metadata.owner_references.is_none(), "the kept keys were given to the project");
    projects.delete("etl", &DeleteParams::default()).await.context("deleting")?;
    wait_until(WAIT, "the project to go", || async {
        Ok(projects.get_opt("etl").await.context("etl")?.is_none())
    })
    .await?;
    ensure!(claims.get_opt("data-etl-postgres-0").await.context("claim")?.is_some(), "kept data was deleted");

    // A project of its own under Delete: nothing of it stays.
    let fresh: Project = from_yaml(
        "metadata: {name: fresh}\nspec: {runtime: Airflow, airflow: {executor: LocalExecutor, deletionPolicy: Delete}}",
    )?;
    projects.create(&PostParams::default(), &fresh).await.context("creating")?;
    wait_for(&projects, "fresh", "phase Running", running).await?;
    let keys = secrets.get("fresh-airflow").await.context("keys")?;
    ensure!(keys.metadata.owner_references.is_some_and(|o| o.len() == 1), "the keys are not the project's");
    projects.delete("fresh", &DeleteParams::default()).await.context("deleting")?;
    wait_until(WAIT, "every object of the project to go", || async {
        let left = kubectl(&[
            "get",
            "all,configmaps,secrets,pvc,networkpolicies,rolebindings,serviceaccounts",
            "-n",
            &ns,
            "--no-headers",
        ])?;
        let ours: Vec<&str> = left.lines().filter(|l| l.contains("fresh")).collect();
        Ok(ours.is_empty())
    })
    .await?;
    Ok(())
}
