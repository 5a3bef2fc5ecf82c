//! Reconciles Workspaces. This version records them honestly: it counts members and reports that
//! tenant namespaces are not provisioned yet.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, RESYNC, apply_status, not_yet_supported};
use crate::{
    conditions::READY,
    crd::{Workspace, WorkspaceStatus},
    error::Result,
};

/// Condition types the Workspace controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];

/// One pass over a Workspace.
pub async fn reconcile(workspace: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    let status = desired_status(&workspace);
    apply_status(&ctx, &*workspace, status, &[not_yet_supported("The workspace namespace")]).await?;
    Ok(Action::requeue(RESYNC))
}

/// The status fields this version knows, computed from the spec alone.
pub fn desired_status(workspace: &Workspace) -> WorkspaceStatus {
    WorkspaceStatus {
        member_count: Some(i32::try_from(workspace.spec.members.len()).unwrap_or(i32::MAX)),
        ..WorkspaceStatus::default()
    }
}
