//! The Notebook runtime on the control plane (kwok runs its pods): the example reaches
//! `Running`, `stopped` scales to zero and back keeping the volume and the generated token, and
//! deleting a Project removes exactly what it owns.

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};

use dataworkspace_operator::crd::{Project, Workspace, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_for, wait_until},
    workspaces::from_yaml,
};

/// A Project's phase, once its status describes its current generation.
pub fn phase(project: Option<&Project>) -> Option<Phase> {
    let project = project?;
    let status = project.status.as_ref()?;
    let current = status.conditions.iter().all(|c| c.observed_generation == project.metadata.generation);
    current.then_some(status.phase).flatten()
}

pub async fn example_notebook_runs(scope: Scope) -> TestResult {
    scope.involve("dw-analytics");
    kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    let client = scope.env.client.clone();
    let projects: Api<Project> = Api::namespaced(client.clone(), "dw-analytics");
    let running = wait_for(&projects, "exploration", "phase Running", |p: Option<&Project>| {
        phase(p) == Some(Phase::Running)
    })
    .await?;
    let status = running.status.unwrap();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    ensure!(ready.status == "True", "Ready {ready:?}");
    ensure!(status.components.len() == 1 && status.components[0].ready, "components {:?}", status.components);
    ensure!(
        status.endpoints.first().map(|e| e.url.as_str()) == Some("http://exploration.dw-analytics.svc:8888/"),
        "endpoints {:?}",
        status.endpoints
    );
    // The pod passed the namespace's Pod Security admission (restricted) and runs.
    let pod =
        Api::<Pod>::namespaced(client.clone(), "dw-analytics").get("exploration-0").await.context("pod")?;
    let spec = pod.spec.unwrap_or_default();
    ensure!(spec.automount_service_account_token == Some(false), "the pod mounts an API token");
    ensure!(spec.service_account_name.as_deref() == Some("exploration"), "{:?}", spec.service_account_name);
    let init: Vec<String> = spec.init_containers.unwrap_or_default().into_iter().map(|c| c.name).collect();
    ensure!(init == vec!["git-clone-pipelines".to_string()], "init containers {init:?}");
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), "dw-analytics")
        .get("exploration")
        .await
        .context("sa")?;
    ensure!(sa.automount_service_account_token == Some(false), "the ServiceAccount mounts tokens");
    let config = Api::<ConfigMap>::namespaced(client.clone(), "dw-analytics")
        .get("exploration-jupyter")
        .await
        .context("cm")?;
    let file = config.data.unwrap_or_default().remove("jupyter_server_config.json").unwrap_or_default();
    ensure!(file.contains("\"cull_idle_timeout\": 3600"), "config {file}");
    // The token exists, is owned by the Project, and never shows up in status or Events.
    let secret = Api::<Secret>::namespaced(client.clone(), "dw-analytics")
        .get("exploration-token")
        .await
        .context("token")?;
    let token = String::from_utf8(secret.data.unwrap_or_default()["token"].0.clone()).unwrap_or_default();
    ensure!(token.len() == 64, "token of {} characters", token.len());
    let dumped = kubectl(&["get", "project", "exploration", "-n", "dw-analytics", "-o", "yaml"])?
        + &kubectl(&["get", "events,configmaps", "-n", "dw-analytics", "-o", "yaml"])?;
    ensure!(!dumped.contains(&token), "the generated token leaked");
    Ok(())
}

pub async fn notebook_stops_restarts_and_deletes_cleanly(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let (id, ns) = crate::workspaces::workspace_with_code(&scope, "nb").await?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let projects: Api<Project> = Api::namespaced(client.clone(), &ns);
    for name in ["keep", "gone"] {
        let project: Project = from_yaml(&format!(
            "metadata: {{name: {name}}}\nspec: {{runtime: Notebook, source: {{repository: code, ref: v1.0.0}}, notebook: {{storage: {{size: 1Gi}}}}}}"
        ))?;
        projects.create(&PostParams::default(), &project).await.context("creating a Project")?;
        wait_for(&projects, name, "phase Running", |p: Option<&Project>| phase(p) == Some(Phase::Running))
            .await?;
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let token_before = secrets.get("keep-token").await.context("token")?.metadata.resource_version;

    // Stopped: zero replicas, the volume kept; then back.
    let stop = |stopped: bool| serde_json::json!({"spec": {"stopped": stopped}});
    projects.patch("keep", &PatchParams::default(), &Patch::Merge(&stop(true))).await.context("stop")?;
    wait_for(&projects, "keep", "phase Stopped", |p: Option<&Project>| phase(p) == Some(Phase::Stopped))
        .await?;
    let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns).get("keep").await.context("sts")?;
    ensure!(sts.spec.and_then(|s| s.replicas) == Some(0), "a stopped notebook has replicas");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    pvcs.get("home-keep-0").await.context("the home volume of a stopped notebook")?;
    projects.patch("keep", &PatchParams::default(), &Patch::Merge(&stop(false))).await.context("start")?;
    wait_for(&projects, "keep", "phase Running again", |p: Option<&Project>| {
        phase(p) == Some(Phase::Running)
    })
    .await?;
    let token_after = secrets.get("keep-token").await.context("token")?.metadata.resource_version;
    ensure!(token_before == token_after, "the generated token was rewritten");

    // Deleting one Project removes what it owns and nothing of its neighbour; its volume stays.
    projects.delete("gone", &DeleteParams::foreground()).await.context("deleting a Project")?;
    wait_until(WAIT, "the deleted Project's objects to be gone", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let gone = Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .get_opt("gone")
                .await
                .context("sts")?
                .is_none()
                && Api::<Service>::namespaced(client.clone(), &ns)
                    .get_opt("gone")
                    .await
                    .context("svc")?
                    .is_none()
                && Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt("gone-jupyter")
                    .await
                    .context("cm")?
                    .is_none()
                && Api::<Secret>::namespaced(client.clone(), &ns)
                    .get_opt("gone-token")
                    .await
                    .context("secret")?
                    .is_none()
                && Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                    .get_opt("gone")
                    .await
                    .context("sa")?
                    .is_none();
            Ok(gone)
        }
    })
    .await?;
    for (kind, name) in [
        ("statefulset", "keep"),
        ("service", "keep"),
        ("configmap", "keep-jupyter"),
        ("secret", "keep-token"),
    ] {
        kubectl(&["get", kind, name, "-n", &ns])
            .map_err(|e| format!("the neighbour's {kind} went too: {e}"))?;
    }
    pvcs.get("home-gone-0").await.context("the deleted notebook's home volume (kept: user data)")?;
    workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
    Ok(())
}

/// A Project whose children's names are taken by objects it does not own (here a ConfigMap a
/// person made) takes nothing over: it reports `NameConflict` and the object is untouched. (The
/// names `studio` and `default` are refused at admission.)
pub async fn a_project_cannot_take_over_another_owners_objects(scope: Scope) -> TestResult {
    scope.involve("dw-analytics");
    kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    let client = scope.env.client.clone();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), "dw-analytics");
    let theirs: ConfigMap = from_yaml("metadata: {name: squat-jupyter}\ndata: {note: someone else's}")?;
    config_maps.create(&PostParams::default(), &theirs).await.context("creating the ConfigMap")?;
    let projects: Api<Project> = Api::namespaced(client.clone(), "dw-analytics");
    let squatter: Project = from_yaml("metadata: {name: squat}\nspec: {runtime: Notebook, notebook: {}}")?;
    projects.create(&PostParams::default(), &squatter).await.context("creating the Project")?;
    let refused = wait_for(&projects, "squat", "Ready=False NameConflict", |p: Option<&Project>| {
        p.and_then(|p| p.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.reason == "NameConflict"))
    })
    .await;
    let after = config_maps.get("squat-jupyter").await.context("the ConfigMap")?;
    projects.delete("squat", &DeleteParams::default()).await.context("deleting the Project")?;
    refused?;
    ensure!(after.metadata.owner_references.is_none(), "the Project claimed the ConfigMap");
    ensure!(
        after.data.unwrap_or_default().get("note").map(String::as_str) == Some("someone else's"),
        "the ConfigMap was rewritten"
    );
    // Deleting the Project leaves it too.
    wait_until(WAIT, "the Project to be gone", || {
        let projects = projects.clone();
        async move { Ok(projects.get_opt("squat").await.context("get")?.is_none()) }
    })
    .await?;
    config_maps.get("squat-jupyter").await.context("the ConfigMap after the Project's deletion")?;
    config_maps.delete("squat-jupyter", &DeleteParams::default()).await.context("clean-up")?;
    Ok(())
}
