//! The operator binary against the cluster: honest status on every kind, generations followed,
//! metrics and health served, and a restart that writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use serde::de::DeserializeOwned;

use dataworkspace_operator::controller::{Managed, ObservedStatus};

use dataworkspace_operator::crd::{
    Project, PythonEnvironment, User, Workspace, project::Phase, workspace::Member,
};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, http_get, wait_for, wait_until},
};

fn from_yaml<K: DeserializeOwned>(yaml: &str) -> Result<K, String> {
    serde_yaml::from_str(yaml).context("parsing a test manifest")
}

/// The Ready condition, once the status describes the object's current generation.
fn observed_ready<K: Managed>(obj: Option<&K>) -> Option<Condition> {
    let obj = obj?;
    let status = obj.status()?;
    (status.observed_generation() == obj.meta().generation).then_some(())?;
    status.conditions().iter().find(|c| c.type_ == "Ready").cloned()
}

/// Waits until the status describes the current generation; returns the object and its Ready.
async fn wait_observed<K: Managed>(api: &Api<K>, name: &str) -> Result<(K, Condition), String> {
    let what = "status.observedGeneration == metadata.generation with a Ready condition";
    let object = wait_for(api, name, what, |o: Option<&K>| observed_ready(o).is_some()).await?;
    let ready = observed_ready(Some(&object)).ok_or("no Ready condition")?;
    Ok((object, ready))
}

pub async fn sets_status_on_every_kind(scope: Scope) -> TestResult {
    let ns = scope.namespace("status").await?;
    let client = scope.env.client.clone();
    let ws_name = scope.env.unique("status");
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let users: Api<User> = Api::all(client.clone());
    let envs: Api<PythonEnvironment> = Api::namespaced(client.clone(), &ns);
    let projects: Api<Project> = Api::namespaced(client.clone(), &ns);

    let workspace: Workspace = from_yaml(&format!(
        "metadata: {{name: {ws_name}}}\nspec: {{members: [{{user: {ws_name}, role: admin}}, {{team: t1, role: viewer}}]}}"
    ))?;
    workspaces.create(&PostParams::default(), &workspace).await.context("creating a Workspace")?;
    let user: User = from_yaml(&format!(
        "metadata: {{name: {ws_name}}}\nspec: {{username: {ws_name}@example.com, teams: [t1]}}"
    ))?;
    users.create(&PostParams::default(), &user).await.context("creating a User")?;
    let env: PythonEnvironment = from_yaml("metadata: {name: py}\nspec: {packages: [pandas==2.3.3]}")?;
    envs.create(&PostParams::default(), &env).await.context("creating a PythonEnvironment")?;
    let project: Project = from_yaml("metadata: {name: nb}\nspec: {runtime: Notebook, notebook: {}}")?;
    projects.create(&PostParams::default(), &project).await.context("creating a Project")?;

    let (ws, ready) = wait_observed(&workspaces, &ws_name).await?;
    ensure!(ready.status == "True", "Workspace Ready: {ready:?}");
    ensure!(ws.status.as_ref().and_then(|s| s.member_count) == Some(2), "memberCount: {:?}", ws.status);
    let (_, ready) = wait_observed(&users, &ws_name).await?;
    ensure!(ready.status == "True" && ready.reason == "Bound", "User Ready: {ready:?}");
    // This namespace belongs to no Workspace: the environment and the Project wait, and say why.
    let (_, ready) = wait_observed(&envs, "py").await?;
    ensure!(
        ready.status == "False" && ready.reason == "WorkspaceNotFound",
        "PythonEnvironment Ready: {ready:?}"
    );
    let (project, ready) = wait_observed(&projects, "nb").await?;
    ensure!(ready.status == "False" && ready.reason == "WorkspaceNotFound", "Project Ready: {ready:?}");
    ensure!(
        project.status.as_ref().and_then(|s| s.phase) == Some(Phase::Pending),
        "phase: {:?}",
        project.status
    );

    // The transition to Ready=False is announced once, as a Warning Event on the object.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    wait_until(WAIT, "a WorkspaceNotFound Warning Event on the Project", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.context("listing events")?;
            Ok(list.items.iter().any(|e| {
                e.reason.as_deref() == Some("WorkspaceNotFound")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nb")
            }))
        }
    })
    .await?;

    workspaces.delete(&ws_name, &DeleteParams::default()).await.context("deleting the Workspace")?;
    users.delete(&ws_name, &DeleteParams::default()).await.context("deleting the User")?;
    Ok(())
}

pub async fn status_follows_a_new_generation(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let name = scope.env.unique("generation");
    let workspaces: Api<Workspace> = Api::all(client);
    let workspace: Workspace = from_yaml(&format!("metadata: {{name: {name}}}\nspec: {{}}"))?;
    workspaces.create(&PostParams::default(), &workspace).await.context("creating a Workspace")?;
    let (first, ready_before) = wait_observed(&workspaces, &name).await?;
    ensure!(first.status.as_ref().and_then(|s| s.member_count) == Some(0), "memberCount: {:?}", first.status);

    let mut changed = first.clone();
    changed.spec.members.push(Member {
        user: Some("someone".into()),
        team: None,
        role: dataworkspace_operator::crd::common::Role::Viewer,
    });
    changed.metadata.managed_fields = None;
    changed.metadata.resource_version = None;
    changed.status = None;
    workspaces
        .patch(&name, &PatchParams::apply("e2e-test").force(), &Patch::Apply(&changed))
        .await
        .context("changing the members")?;
    let (second, ready_after) = wait_observed(&workspaces, &name).await?;
    ensure!(second.metadata.generation > first.metadata.generation, "generation did not move");
    ensure!(
        second.status.as_ref().and_then(|s| s.member_count) == Some(1),
        "memberCount: {:?}",
        second.status
    );
    ensure!(
        ready_after.last_transition_time == ready_before.last_transition_time,
        "lastTransitionTime moved although Ready stayed False: {ready_before:?} -> {ready_after:?}"
    );
    ensure!(
        ready_after.observed_generation == second.metadata.generation,
        "condition observedGeneration: {ready_after:?}"
    );
    workspaces.delete(&name, &DeleteParams::default()).await.context("deleting the Workspace")?;
    Ok(())
}

pub async fn serves_metrics_and_health(scope: Scope) -> TestResult {
    let address = scope.env.operator_address().ok_or("the operator is not running")?;
    for path in ["/healthz", "/readyz"] {
        let (code, _) = http_get(address, path)?;
        ensure!(code == 200, "{path} answered {code}");
    }
    let (code, _) = http_get(address, "/metrics")?;
    ensure!(code == 200, "/metrics answered {code}");
    // The pass counters, and the inventory of the examples (applied earlier): the analytics
    // workspace's projects by runtime, its environments awaiting approval, its quota.
    let wanted = [
        r#"dataworkspace_reconciliations_total{kind="Workspace"}"#,
        r#"dataworkspace_reconcile_duration_seconds_bucket{le="+Inf",kind="Project"}"#,
        "dataworkspace_leader 1",
        r#"dataworkspace_workspaces{ready="true"}"#,
        r#"dataworkspace_projects{workspace="analytics",runtime="Airflow",phase="#,
        r#"dataworkspace_projects{workspace="analytics",runtime="Spark",phase="#,
        r#"dataworkspace_projects{workspace="analytics",runtime="Notebook",phase="#,
        r#"dataworkspace_projects{workspace="analytics",runtime="Streamlit",phase="#,
        r#"dataworkspace_environments_pending_approval{workspace="analytics"}"#,
        r#"dataworkspace_quota_hard{workspace="analytics",resource="requests.cpu"} 16.0"#,
        r#"dataworkspace_quota_hard{workspace="analytics",resource="requests.memory"} 68719476736.0"#,
        r#"dataworkspace_quota_used{workspace="analytics",resource="requests.cpu"}"#,
    ];
    wait_until(WAIT, "the examples' inventory on /metrics", || async move {
        let (_, body) = http_get(address, "/metrics")?;
        Ok(wanted.iter().all(|w| body.contains(w)))
    })
    .await
    .map_err(|e| {
        let body = http_get(address, "/metrics").map(|(_, b)| b).unwrap_or_default();
        let missing: Vec<&&str> = wanted.iter().filter(|w| !body.contains(**w)).collect();
        format!(
            "{e}; missing {missing:?} in:\n{}",
            body.lines()
                .filter(|l| l.contains("workspace") || l.contains("quota"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    Ok(())
}

/// The value of a counter sample, 0 when absent.
fn counter(metrics: &str, sample: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

/// The `dataworkspace_` samples of a metrics text, for telling whether anything moved.
fn samples(metrics: &str) -> Vec<&str> {
    metrics.lines().filter(|l| l.starts_with("dataworkspace_")).collect()
}

/// How long the operator's metrics must stay unchanged for it to count as idle.
const QUIET: std::time::Duration = std::time::Duration::from_secs(3);

/// Waits until no metric of the operator at `address` changes for [`QUIET`] (no pass started or
/// finished, nothing written), at most [`WAIT`]. Returns the metrics and how long it took until
/// the last change.
async fn quiet(address: std::net::SocketAddr) -> Result<(String, std::time::Duration), String> {
    let started = std::time::Instant::now();
    let (_, mut metrics) = http_get(address, "/metrics")?;
    let mut since = std::time::Instant::now();
    while since.elapsed() < QUIET {
        ensure!(
            started.elapsed() < WAIT,
            "the operator never went quiet for {QUIET:?} within {WAIT:?}:\n{}",
            samples(&metrics).join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let (_, now) = http_get(address, "/metrics")?;
        if samples(&now) != samples(&metrics) {
            since = std::time::Instant::now();
        }
        metrics = now;
    }
    Ok((metrics, since.duration_since(started)))
}

pub async fn survives_a_restart_without_writing(scope: Scope) -> TestResult {
    // Something to converge first.
    let name = scope.env.unique("restart");
    let workspaces: Api<Workspace> = Api::all(scope.env.client.clone());
    let workspace: Workspace =
        from_yaml(&format!("metadata: {{name: {name}}}\nspec: {{members: [{{team: a, role: admin}}]}}"))?;
    workspaces.create(&PostParams::default(), &workspace).await.context("creating a Workspace")?;
    // Quantities as people write them, which the API server stores in canonical form in the
    // children (`2.5` → `2500m`, `4096Mi` → `4Gi`, `0.25` → `250m`): the operator must see
    // them as unchanged, or it re-applies the quota, limits and Studio on every pass.
    let quantities = scope.env.unique("quantities");
    scope.involve(&format!("dw-{quantities}"));
    let workspace: Workspace = from_yaml(&format!(
        "metadata: {{name: {quantities}}}
spec:
  deletionPolicy: Delete
  quota:
    cpu: '2.5'
    memory: 4096Mi
    containerDefaults: {{requests: {{cpu: '0.1', memory: 256Mi}}, limits: {{cpu: '1', memory: 1024Mi}}}}
  studio: {{storage: {{size: 1024Mi}}, resources: {{requests: {{cpu: '0.25'}}}}}}"
    ))?;
    workspaces.create(&PostParams::default(), &workspace).await.context("creating a Workspace")?;
    // Converged means Ready and the quota usage reported: the quota controller fills in usage
    // after the first pass, which legitimately changes the status once more.
    let converged = |w: Option<&Workspace>| {
        w.and_then(|w| w.status.as_ref().map(|s| (w, s))).is_some_and(|(w, s)| {
            s.observed_generation == w.metadata.generation
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                && !s.usage.is_empty()
                && s.usage.values().all(|u| u.used.is_some())
        })
    };
    for existing in workspaces.list_metadata(&ListParams::default()).await.context("list")?.items {
        if existing.metadata.deletion_timestamp.is_some() {
            continue; // on its way out; not part of the idle state
        }
        let existing = existing.metadata.name.unwrap_or_default();
        match wait_for(&workspaces, &existing, "Ready with quota usage", converged).await {
            Err(e) if e.contains("was deleted") => {}
            other => {
                other?;
            }
        }
    }

    // Idle: the passes those changes cause (quota usage catching up with the Studio pod, for
    // one) are over before the restart, so that what follows it is the restart's alone.
    quiet(scope.env.operator_address().ok_or("the operator is not running")?).await?;

    // SIGTERM must end the operator cleanly (exit code 0) ...
    scope.env.stop_operator()?;
    scope.env.start_operator().await?;
    let address = scope.env.operator_address().ok_or("the operator is not running")?;

    // ... and a fresh process re-reconciles every object it finds, writing nothing.
    let client = scope.env.client.clone();
    let counts = [
        (
            "Workspace",
            Api::<Workspace>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .context("list")?
                .items
                .len(),
        ),
        (
            "User",
            Api::<User>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .context("list")?
                .items
                .len(),
        ),
        (
            "PythonEnvironment",
            Api::<PythonEnvironment>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .context("list")?
                .items
                .len(),
        ),
        (
            "Project",
            Api::<Project>::all(client.clone())
                .list_metadata(&ListParams::default())
                .await
                .context("list")?
                .items
                .len(),
        ),
    ];
    // Passes are counted as finished (the duration is observed at the end of a pass), so the
    // writes of the last ones are in the counters read below ...
    let completed = |metrics: &str, kind: &str| {
        counter(metrics, &format!("dataworkspace_reconcile_duration_seconds_count{{kind=\"{kind}\"}}"))
    };
    wait_until(WAIT, "the restarted operator to finish a pass over every object", || async move {
        let (_, metrics) = http_get(address, "/metrics")?;
        Ok(counts.iter().all(|(kind, n)| completed(&metrics, kind) >= *n as u64))
    })
    .await?;
    // ... and the passes those passes trigger have run too: nothing moved for a while.
    let (metrics, settled) = quiet(address).await?;
    let passes: u64 = counts.iter().map(|(kind, _)| completed(&metrics, kind)).sum();
    let writes: Vec<(&str, u64)> = counts
        .iter()
        .map(|(kind, _)| {
            (*kind, counter(&metrics, &format!("dataworkspace_status_writes_total{{kind=\"{kind}\"}}")))
        })
        .collect();
    ensure!(
        writes.iter().all(|(_, w)| *w == 0),
        "an idle restart wrote status: {writes:?} (objects: {counts:?})"
    );
    // Every write request of any kind (apply, delete, status, Event) is counted here.
    let all_writes: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("dataworkspace_api_writes_total{")).collect();
    ensure!(all_writes.is_empty(), "an idle restart sent write requests:\n{}", all_writes.join("\n"));
    eprintln!(
        "idle restart: reconciled {counts:?} in {passes} passes (settled {settled:?} after each object \
         had one); write requests sent: 0"
    );
    for name in [&name, &quantities] {
        workspaces.delete(name, &DeleteParams::default()).await.context("deleting a Workspace")?;
    }
    Ok(())
}
