//! Reconciles Projects. This version records them as `Pending` and reports that runtimes are
//! not provisioned yet.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, RESYNC, apply_status, not_yet_supported};
use crate::{
    conditions::READY,
    crd::{Project, ProjectStatus, project::Phase},
    error::Result,
};

/// Condition types the Project controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];

/// One pass over a Project.
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    let status = ProjectStatus { phase: Some(Phase::Pending), ..ProjectStatus::default() };
    let what = format!("The {} runtime", project.spec.runtime.as_str());
    apply_status(&ctx, &*project, status, &[not_yet_supported(&what)]).await?;
    Ok(Action::requeue(RESYNC))
}
