//! Reconciles Users. This version records them and reports that bindings are not created yet.

use std::sync::Arc;

use kube::runtime::controller::Action;

use super::{Context, RESYNC, apply_status, not_yet_supported};
use crate::{
    conditions::READY,
    crd::{User, UserStatus},
    error::Result,
};

/// Condition types the User controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];

/// One pass over a User.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action> {
    apply_status(&ctx, &*user, UserStatus::default(), &[not_yet_supported("Access for this user")]).await?;
    Ok(Action::requeue(RESYNC))
}
