//! `runtime`: the projects of a person's workspaces and how they are doing — their pinned
//! projects first (in the order they pinned them), then their recent ones (as their status lists
//! them), then the rest by workspace and name. Phases are the Projects' own, live.

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{
    age::Age,
    scope::{Scope, WorkspaceInScope},
};
use crate::crd::{Project, common::Role};

/// The phase shown for a pinned project that does not exist.
pub const NOT_FOUND: &str = "NotFound";

/// Why a project is where it is in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Listing {
    /// The User pinned it.
    Pinned,
    /// Among the User's recent projects.
    Recent,
    /// Any other project of the workspaces covered.
    Other,
}

/// Components ready of those desired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Components {
    /// How many are ready.
    pub ready: usize,
    /// How many there are.
    pub total: usize,
}

/// One project of the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRow {
    /// Why it is where it is.
    pub listing: Listing,
    /// Its Workspace.
    pub workspace: String,
    /// Its namespace.
    pub namespace: String,
    /// The viewer's role in the workspace, if a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The Project's name.
    pub project: String,
    /// Airflow, Spark, Streamlit or Notebook; none for a pinned project that does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Its phase (`NotFound` for a pinned project that does not exist); none before the
    /// operator reported one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The status of its `Ready` condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<String>,
    /// The reason of its `Ready` condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its components, ready of desired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    /// Its first endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// How long ago.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<Age>,
}

/// The rows of the runtime view at `now`: every Project of a covered workspace once, pinned
/// before recent before the rest, and a `NotFound` row for each pinned project of a covered
/// workspace that does not exist. Pins and recent projects outside the covered workspaces are
/// left out: the view never shows what its scope does not cover.
pub fn rows(scope: &Scope<'_>, projects: &[Project], now: Timestamp) -> Vec<RuntimeRow> {
    let find = |namespace: &str, name: &str| {
        projects.iter().find(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.name_any() == name)
    };
    let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
    let mut rows = Vec::new();

    let pinned = scope.user.iter().flat_map(|u| &u.spec.pinned).map(|p| (&p.namespace, &p.name));
    for (namespace, name) in pinned {
        let Some(workspace) = scope.workspace_of(namespace) else { continue };
        if !shown.insert((namespace.clone(), name.clone())) {
            continue;
        }
        rows.push(match find(namespace, name) {
            Some(project) => row(Listing::Pinned, workspace, project, now),
            None => RuntimeRow { phase: Some(NOT_FOUND.into()), ..empty(Listing::Pinned, workspace, name) },
        });
    }

    let recent = scope.user.iter().flat_map(|u| u.status.iter().flat_map(|s| &s.recent));
    for summary in recent {
        let Some(workspace) = scope.workspace_of(&summary.namespace) else { continue };
        // The status may name a project deleted since: only what exists is shown.
        let Some(project) = find(&summary.namespace, &summary.name) else { continue };
        if shown.insert((summary.namespace.clone(), summary.name.clone())) {
            rows.push(row(Listing::Recent, workspace, project, now));
        }
    }

    let mut others: Vec<RuntimeRow> = projects
        .iter()
        .filter_map(|project| {
            let namespace = project.metadata.namespace.as_deref()?;
            let workspace = scope.workspace_of(namespace)?;
            (!shown.contains(&(namespace.to_string(), project.name_any())))
                .then(|| row(Listing::Other, workspace, project, now))
        })
        .collect();
    others.sort_by(|a, b| (&a.workspace, &a.project).cmp(&(&b.workspace, &b.project)));
    rows.extend(others);
    rows
}

fn empty(listing: Listing, workspace: &WorkspaceInScope, project: &str) -> RuntimeRow {
    RuntimeRow {
        listing,
        workspace: workspace.name.clone(),
        namespace: workspace.namespace.clone(),
        role: workspace.role,
        project: project.to_string(),
        runtime: None,
        phase: None,
        ready: None,
        reason: None,
        components: None,
        endpoint: None,
        created: None,
        age: None,
    }
}

fn row(listing: Listing, workspace: &WorkspaceInScope, project: &Project, now: Timestamp) -> RuntimeRow {
    let status = project.status.as_ref();
    let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let components = status.map(|s| &s.components).filter(|c| !c.is_empty());
    RuntimeRow {
        runtime: Some(project.spec.runtime.as_str().into()),
        phase: status.and_then(|s| s.phase).map(|p| p.as_str().into()),
        ready: ready.map(|c| c.status.clone()),
        reason: ready.map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
        components: components
            .map(|c| Components { ready: c.iter().filter(|c| c.ready).count(), total: c.len() }),
        endpoint: status.and_then(|s| s.endpoints.first()).map(|e| e.url.clone()),
        created: project.metadata.creation_timestamp.as_ref().map(|t| t.0),
        age: Age::since(project.metadata.creation_timestamp.as_ref(), now),
        ..empty(listing, workspace, &project.name_any())
    }
}
