//! `envs`: the PythonEnvironments of the covered workspaces and where each stands in its
//! approval: who asked, the state, why, and who approved.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{age::Age, scope::Scope};
use crate::crd::PythonEnvironment;

/// The state shown before the operator reported one.
pub const UNKNOWN: &str = "Unknown";

/// One PythonEnvironment of the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvRow {
    /// Its Workspace.
    pub workspace: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Who asked for what it installs, as the API server recorded them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// `PendingApproval`, `Rejected`, `Building`, `Ready` or `Failed`; `Unknown` before the
    /// operator reported one.
    pub state: String,
    /// Why: the `Approved` condition's reason while not approved, else the `Ready` one's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Who approved the current spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The Python version.
    pub python: String,
    /// The hash an approval must name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// Whether the status describes an older generation of the spec than the current one.
    pub stale: bool,
    /// How long ago it was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<Age>,
}

/// The rows of the environments view, by workspace and name.
pub fn rows(scope: &Scope<'_>, environments: &[PythonEnvironment], now: Timestamp) -> Vec<EnvRow> {
    let mut rows: Vec<EnvRow> = environments
        .iter()
        .filter_map(|env| {
            let workspace = scope.workspace_of(env.metadata.namespace.as_deref()?)?;
            let status = env.status.as_ref();
            let condition = |type_: &str| {
                status
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
                    .filter(|c| !c.reason.is_empty())
            };
            let reason = match condition("Approved") {
                Some(approved) if approved.status != "True" => Some(approved.reason.clone()),
                _ => condition("Ready").map(|c| c.reason.clone()),
            };
            Some(EnvRow {
                workspace: workspace.name.clone(),
                namespace: workspace.namespace.clone(),
                name: env.name_any(),
                requester: status.and_then(|s| s.requester.clone()),
                state: status.and_then(|s| s.phase.clone()).unwrap_or_else(|| UNKNOWN.into()),
                reason,
                approver: status.and_then(|s| s.approver.clone()),
                python: env.spec.python_version.clone(),
                spec_hash: status.and_then(|s| s.spec_hash.clone()),
                stale: status.is_some_and(|s| s.observed_generation != env.metadata.generation),
                age: Age::since(env.metadata.creation_timestamp.as_ref(), now),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.workspace, &a.name).cmp(&(&b.workspace, &b.name)));
    rows
}
