//! Reconciles Projects, the same pipeline for every runtime: resolve the workspace from the
//! caches → validate into a runtime spec → build the children → apply them → remove what this
//! pass no longer produces → status from what was applied.

use std::sync::Arc;

use kube::{
    ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef},
};

use tracing::info;

use super::{Context, Feeds, RESYNC, Valid, apply_status, cache::generation, children, resolve, root, valid};
use crate::{
    conditions::{Desired, READY},
    crd::{
        Project, ProjectStatus, Workspace,
        project::{Phase, Runtime},
    },
    error::{DEPENDENCY_RETRY, Error, Result},
    names::workspace_namespace,
    runtime,
};

/// Condition types the Project controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY, "Workspace", "Runtime", "Server"];

/// The Project controller, fed by the caches: its own kind, the children it owns (by owner
/// reference), and spec changes of the Workspace of its namespace.
pub fn controller(feeds: &mut Feeds, ctx: &Arc<Context>) -> Controller<DeserializeGuard<Project>> {
    let caches = ctx.caches.clone();
    root(&mut feeds.projects)
        .watches_stream(feeds.service_accounts.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.config_maps.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.secrets.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.services.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.stateful_sets.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.jobs.subscribe(), |o| owning_project(&o))
        // A Workspace's status changes with its projects' phases: only spec changes matter here.
        .watches_stream(feeds.workspaces.subscribe_when(generation), move |workspace| match &workspace.0 {
            Ok(workspace) => projects_of_workspace(&valid(&caches.projects), workspace),
            Err(_) => Vec::new(),
        })
}

/// The Project that owns a child.
pub fn owning_project<K: kube::Resource>(object: &K) -> Option<ObjectRef<DeserializeGuard<Project>>> {
    let namespace = object.meta().namespace.as_deref()?;
    object
        .owner_references()
        .iter()
        .find(|o| o.kind == "Project" && o.api_version.starts_with("dataworkspace.io/"))
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// The Projects in a Workspace's namespace.
pub fn projects_of_workspace(
    projects: &[Valid<Project>],
    workspace: &Workspace,
) -> Vec<ObjectRef<DeserializeGuard<Project>>> {
    let namespace = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    projects
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .map(|p| ObjectRef::new(&p.name_any()).within(&namespace))
        .collect()
}

/// One pass over a Project.
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    if project.metadata.deletion_timestamp.is_some() {
        // Owner references remove the children; the home volumes stay (they hold user data).
        return Ok(Action::await_change());
    }
    ctx.caches.ready().await?;
    let previous = project.status.as_ref().and_then(|s| s.phase);
    let namespace = project.namespace().unwrap_or_default();
    let workspace = match resolve::workspace_of(&namespace, &ctx.caches, &ctx.config) {
        Ok(workspace) => workspace,
        Err(error) => return fail(&ctx, &project, Phase::Pending, "Workspace", error).await,
    };
    // Runtimes that run report on their environment; the others report NotYetSupported.
    if project.spec.runtime == Runtime::Notebook
        && let Some(environment) = &project.spec.python_environment
    {
        let error = Error::Dependency {
            reason: "EnvironmentNotReady",
            message: format!(
                "PythonEnvironment {environment} is not ready: this operator version does not build environments yet, so the project waits"
            ),
        };
        return fail(&ctx, &project, Phase::Pending, "Runtime", error).await;
    }
    let validated = match runtime::validate(&project, workspace) {
        Ok(validated) => validated,
        Err(error) => return fail(&ctx, &project, Phase::Failed, "Runtime", error).await,
    };
    let children = runtime::build(&validated, &ctx.config);
    let applied = children::apply(&ctx, &children).await?;
    children::sweep(&ctx, &validated.namespace, &validated.uid, &children).await?;
    let status = runtime::status(&validated, &applied, previous);
    let mut conditions =
        vec![Desired::yes("Workspace", "Resolved", format!("in workspace {}", validated.workspace.name))];
    conditions.extend(status.conditions);
    let ready = runtime::summarize(&conditions, "every component is ready");
    conditions.insert(0, ready);
    let stored = ProjectStatus {
        phase: status.phase,
        components: status.components,
        endpoints: status.endpoints,
        ..ProjectStatus::default()
    };
    apply_status(&ctx, &*project, stored, &conditions).await?;
    Ok(Action::requeue(RESYNC))
}

/// Records why the Project cannot run — its phase and the failing condition — and waits: for a
/// change of the Project, or, when another object is in the way, for that object (its watch) or
/// a bounded delay. The status is written here, with the phase, rather than by the error policy,
/// whose failure record knows no phase.
async fn fail(
    ctx: &Context,
    project: &Project,
    phase: Phase,
    type_: &'static str,
    error: Error,
) -> Result<Action> {
    let condition = Desired::no(type_, error.reason(), error.message());
    let ready = Desired::no(READY, error.reason(), error.message());
    let status = ProjectStatus { phase: Some(phase), ..ProjectStatus::default() };
    apply_status(ctx, project, status, &[ready, condition]).await?;
    info!(reason = error.reason(), %error, "the project cannot run yet");
    Ok(match error {
        Error::Dependency { .. } => Action::requeue(DEPENDENCY_RETRY),
        _ => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_reach_their_project_and_a_workspace_its_projects() {
        let owned: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
            "metadata: {name: nb, namespace: dw-a, ownerReferences: [{apiVersion: dataworkspace.io/v1alpha1, kind: Project, name: nb, uid: u}]}",
        )
        .unwrap();
        let reference = owning_project(&owned).unwrap();
        assert_eq!((reference.name.as_str(), reference.namespace.as_deref()), ("nb", Some("dw-a")));
        let foreign: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
            "metadata: {name: nb, namespace: dw-a, ownerReferences: [{apiVersion: example.com/v1, kind: Project, name: nb, uid: u}]}",
        )
        .unwrap();
        assert!(owning_project(&foreign).is_none(), "another group's Project");

        let workspace: Workspace = serde_yaml::from_str("metadata: {name: a}\nspec: {}").unwrap();
        let projects: Vec<Project> = ["dw-a", "dw-b"]
            .iter()
            .map(|ns| {
                serde_yaml::from_str(&format!(
                    "metadata: {{name: p, namespace: {ns}}}\nspec: {{runtime: Notebook, notebook: {{}}}}"
                ))
                .unwrap()
            })
            .collect();
        let reached = projects_of_workspace(&crate::fixtures::shared(projects), &workspace);
        assert_eq!(reached.len(), 1);
        assert_eq!(reached[0].namespace.as_deref(), Some("dw-a"));
    }
}
