//! Reconciles PythonEnvironments. This version records them and reports that approval and
//! builds are not handled yet.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, RESYNC, apply_status, not_yet_supported};
use crate::{
    conditions::READY,
    crd::{PythonEnvironment, PythonEnvironmentStatus},
    error::Result,
};

/// Condition types the PythonEnvironment controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];

/// One pass over a PythonEnvironment.
pub async fn reconcile(env: Arc<PythonEnvironment>, ctx: Arc<Context>) -> Result<Action> {
    let status = PythonEnvironmentStatus::default();
    apply_status(&ctx, &*env, status, &[not_yet_supported("Approval and build of this environment")]).await?;
    Ok(Action::requeue(RESYNC))
}
