//! Streamlit projects on the control plane: an app from the workspace's repository reaches
//! `Running` (kwok runs its pods, which pass Pod Security `restricted`), stops and starts again,
//! idles without writes, and deleting it leaves none of its objects; without an image to run in
//! it fails with the reason. One app is left Running for the restart test, which checks that
//! its idle passes write nothing.

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{Service, ServiceAccount},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};

use dataworkspace_operator::crd::{Project, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, wait_for, wait_until},
    notebook::phase,
    workspaces::from_yaml,
};

fn reason(project: Option<&Project>) -> Option<String> {
    let status = project?.status.as_ref()?;
    status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone())
}

pub async fn an_app_runs_stops_and_is_deleted_cleanly(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let (_id, ns) = crate::workspaces::workspace_with_code(&scope, "st").await?;
    let result = async {
        let projects: Api<Project> = Api::namespaced(client.clone(), &ns);
        let app: Project = from_yaml(
            "metadata: {name: sales}\nspec: {runtime: Streamlit, source: {repository: code, path: apps/sales.py}, streamlit: {image: registry.example.com/streamlit:1.67.0, replicas: 2}}",
        )?;
        projects.create(&PostParams::default(), &app).await.context("creating a Project")?;
        let running =
            wait_for(&projects, "sales", "phase Running", |p: Option<&Project>| phase(p) == Some(Phase::Running)).await?;
        let endpoint = running.status.and_then(|s| s.endpoints.first().map(|e| e.url.clone()));
        ensure!(endpoint == Some(format!("http://sales.{ns}.svc:8501/")), "endpoint {endpoint:?}");
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
        let deployment = deployments.get("sales").await.context("the app's Deployment")?;
        ensure!(
            deployment.status.and_then(|s| s.ready_replicas) == Some(2),
            "two replicas ready (their pods passed restricted admission)"
        );

        // Stopped: zero replicas; then back.
        let stop = |stopped: bool| serde_json::json!({"spec": {"stopped": stopped}});
        projects.patch("sales", &PatchParams::default(), &Patch::Merge(&stop(true))).await.context("stop")?;
        wait_for(&projects, "sales", "phase Stopped", |p: Option<&Project>| phase(p) == Some(Phase::Stopped)).await?;
        let replicas = deployments.get("sales").await.context("deployment")?.spec.and_then(|s| s.replicas);
        ensure!(replicas == Some(0), "a stopped app has {replicas:?} replicas");
        projects.patch("sales", &PatchParams::default(), &Patch::Merge(&stop(false))).await.context("start")?;
        wait_for(&projects, "sales", "phase Running again", |p: Option<&Project>| phase(p) == Some(Phase::Running))
            .await?;

        // Without an image the app cannot run, and says so.
        let imageless: Project = from_yaml(
            "metadata: {name: bare}\nspec: {runtime: Streamlit, source: {repository: code}, streamlit: {}}",
        )?;
        projects.create(&PostParams::default(), &imageless).await.context("creating a Project")?;
        let failed = wait_for(&projects, "bare", "reason NoStreamlitImage", |p: Option<&Project>| {
            reason(p).as_deref() == Some("NoStreamlitImage")
        })
        .await?;
        ensure!(failed.status.and_then(|s| s.phase) == Some(Phase::Failed), "not Failed");

        // One app stays Running for the suite's last test, which restarts the operator and
        // counts its writes over the idle resync (zero).
        let idle: Project = from_yaml(
            "metadata: {name: idle}\nspec: {runtime: Streamlit, source: {repository: code}, streamlit: {image: registry.example.com/streamlit:1.67.0}}",
        )?;
        projects.create(&PostParams::default(), &idle).await.context("creating a Project")?;
        wait_for(&projects, "idle", "phase Running", |p: Option<&Project>| phase(p) == Some(Phase::Running)).await?;

        // Deleting it removes what it owns.
        projects.delete("sales", &DeleteParams::foreground()).await.context("deleting the Project")?;
        wait_until(WAIT, "the app's objects to be gone", || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                Ok(Api::<Deployment>::namespaced(client.clone(), &ns).get_opt("sales").await.context("deploy")?.is_none()
                    && Api::<Service>::namespaced(client.clone(), &ns).get_opt("sales").await.context("svc")?.is_none()
                    && Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                        .get_opt("sales")
                        .await
                        .context("sa")?
                        .is_none())
            }
        })
        .await
    }
    .await;
    // The Workspace stays (and with it the idle app) for the restart test.
    result
}
