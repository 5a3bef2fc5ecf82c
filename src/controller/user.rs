//! Reconciles Users: the platform-admin binding, and status — the workspaces and roles the user
//! has, their pinned projects with phase, and their recent projects.

use std::sync::Arc;

use k8s_openapi::{
    api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{
    Context, RESYNC, apply_cluster, apply_status,
    identity::{self, Identities, Refusal},
    managed_children, valid,
    workspace::validate::resolve_members,
};
use crate::{
    build::owner_reference,
    conditions::{Desired, READY},
    crd::{
        Project, User, UserStatus, Workspace,
        user::{ProjectSummary, WorkspaceAccess},
    },
    error::{Error, Result},
    names::{LABEL_MANAGED_BY, MANAGER, labels, workspace_namespace},
};

/// Condition types the User controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];
/// The ClusterRole platform admins are bound to.
pub const PLATFORM_ADMIN_ROLE: &str = "dataworkspace-platform-admin";
/// How many recent projects a User's status lists.
pub const RECENT_LIMIT: usize = 5;

/// Adds the User's relations: Workspaces (roles) and Projects (pinned and recent). Any change
/// to either recomputes every User's status; the writes happen only where something changed.
pub fn relations(
    controller: Controller<DeserializeGuard<User>>,
    ctx: &Arc<Context>,
) -> Controller<DeserializeGuard<User>> {
    let client = ctx.client.clone();
    let (from_workspaces, from_projects, from_users) =
        (ctx.stores.clone(), ctx.stores.clone(), ctx.stores.clone());
    controller
        .owns(Api::<ClusterRoleBinding>::all(client.clone()), managed_children())
        // Users sharing a username are refused together, and freed together.
        .watches(Api::<User>::all(client.clone()), watcher::Config::default(), move |changed| {
            valid(&from_users.users)
                .iter()
                .filter(|u| u.spec.username == changed.spec.username && u.name_any() != changed.name_any())
                .map(|u| ObjectRef::new(&u.name_any()))
                .collect::<Vec<_>>()
        })
        .watches(Api::<Workspace>::all(client.clone()), watcher::Config::default(), move |_| {
            all_users(&from_workspaces.users)
        })
        .watches(Api::<Project>::all(client), watcher::Config::default(), move |_| {
            all_users(&from_projects.users)
        })
}

fn all_users(
    store: &kube::runtime::reflector::Store<DeserializeGuard<User>>,
) -> Vec<ObjectRef<DeserializeGuard<User>>> {
    valid(store).iter().map(|u| ObjectRef::new(&u.name_any())).collect()
}

/// Name of a platform admin's ClusterRoleBinding.
pub fn admin_binding_name(user: &str) -> String {
    format!("{PLATFORM_ADMIN_ROLE}-{user}")
}

/// The ClusterRoleBinding of a platform admin, owned by the User.
pub fn admin_binding(user: &User) -> ClusterRoleBinding {
    let name = user.name_any();
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(admin_binding_name(&name)),
            labels: Some(labels("user", &name, "platform-admin")),
            owner_references: Some(vec![owner_reference(user)]),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: PLATFORM_ADMIN_ROLE.into(),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.spec.username.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    }
}

/// One pass over a User.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action> {
    if user.metadata.deletion_timestamp.is_some() {
        // Being deleted: owner references remove the children; applying them again would fight
        // the garbage collector.
        return Ok(Action::await_change());
    }
    ctx.stores.ready().await?;
    let users = valid(&ctx.stores.users);
    let refusal = identity::refusal(&user, &identity::claims(&users), &ctx.config);
    if user.spec.admin && refusal.is_none() {
        apply_cluster(&ctx, &admin_binding(&user)).await?;
    } else {
        remove_admin_binding(&ctx, &user.name_any()).await?;
    }
    let workspaces = valid(&ctx.stores.workspaces);
    let projects = valid(&ctx.stores.projects);
    let status = desired_status(&user, refusal.is_none(), &workspaces, &projects);
    let ready = match &refusal {
        None => Desired::yes(READY, "Bound", format!("member of {} workspace(s)", status.workspaces.len())),
        // Disabling is a decision, not a fault.
        Some(r @ Refusal::Disabled) => Desired::yes(READY, r.reason(), r.message(&user.spec.username)),
        Some(r) => Desired::no(READY, r.reason(), r.message(&user.spec.username)),
    };
    apply_status(&ctx, &*user, status, &[ready]).await?;
    Ok(Action::requeue(RESYNC))
}

async fn remove_admin_binding(ctx: &Context, user: &str) -> Result<()> {
    let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let name = admin_binding_name(user);
    let what = || format!("ClusterRoleBinding {name}");
    let existing =
        api.get_metadata_opt(&name).await.map_err(|source| Error::Read { what: what(), source })?;
    if existing.is_some_and(|b| b.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER)) {
        api.delete(&name, &Default::default())
            .await
            .map_err(|source| Error::Apply { what: what(), source })?;
        ctx.count_write("ClusterRoleBinding");
    }
    Ok(())
}

/// The user's workspaces with their strongest role (none unless `bound`), pinned projects and
/// recent projects.
pub fn desired_status(
    user: &User,
    bound: bool,
    workspaces: &[Workspace],
    projects: &[Project],
) -> UserStatus {
    let name = user.name_any();
    let identities = Identities { bindable: vec![user.clone()], ..Identities::default() };
    let mut access: Vec<WorkspaceAccess> = workspaces
        .iter()
        .filter(|_| bound)
        .filter_map(|ws| {
            let (people, _) = resolve_members(ws, &identities);
            let role =
                people.into_iter().find(|(_, p)| p.iter().any(|p| p.user == name)).map(|(role, _)| role)?;
            Some(WorkspaceAccess {
                workspace: ws.name_any(),
                namespace: Some(workspace_namespace(&ws.name_any(), ws.spec.namespace.as_deref())),
                role,
            })
        })
        .collect();
    access.sort_by(|a, b| a.workspace.cmp(&b.workspace));

    let summary = |p: &Project| ProjectSummary {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        runtime: Some(p.spec.runtime.as_str().into()),
        phase: p.status.as_ref().and_then(|s| s.phase).map(|ph| format!("{ph:?}")),
    };
    let pinned = user
        .spec
        .pinned
        .iter()
        .map(|r| {
            projects
                .iter()
                .find(|p| p.namespace().as_deref() == Some(r.namespace.as_str()) && p.name_any() == r.name)
                .map(summary)
                .unwrap_or_else(|| ProjectSummary {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    runtime: None,
                    phase: Some("NotFound".into()),
                })
        })
        .collect();

    let namespaces: Vec<&str> = access.iter().filter_map(|a| a.namespace.as_deref()).collect();
    let mut mine: Vec<&Project> = projects
        .iter()
        .filter(|p| p.namespace().as_deref().is_some_and(|ns| namespaces.contains(&ns)))
        .collect();
    // Most recently changed first: the newest condition transition, else the creation time.
    let changed = |p: &Project| {
        let transitions = p.status.iter().flat_map(|s| s.conditions.iter()).map(|c| c.last_transition_time.0);
        transitions.chain(p.metadata.creation_timestamp.iter().map(|t| t.0)).max()
    };
    mine.sort_by(|a, b| changed(b).cmp(&changed(a)).then_with(|| a.name_any().cmp(&b.name_any())));
    let recent = mine.into_iter().take(RECENT_LIMIT).map(summary).collect();

    UserStatus { workspaces: access, pinned, recent, ..UserStatus::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::common::Role;

    fn from<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn fixture() -> (User, Vec<Workspace>, Vec<Project>) {
        let user: User = from(
            "metadata: {name: alice}\nspec: {username: alice@x, teams: [eng], pinned: [{namespace: dw-a, name: etl}, {namespace: dw-a, name: gone}]}",
        );
        let workspaces = vec![
            from(
                "metadata: {name: a}\nspec: {members: [{team: eng, role: developer}, {user: alice, role: viewer}]}",
            ),
            from("metadata: {name: b}\nspec: {members: [{user: bob, role: admin}]}"),
        ];
        let projects = (0..7)
            .map(|i| {
                from(&format!(
                    "metadata: {{name: p{i}, namespace: dw-a, creationTimestamp: '2026-01-0{}T00:00:00Z'}}\nspec: {{runtime: Notebook, notebook: {{}}}}\nstatus: {{phase: Running}}",
                    i + 1
                ))
            })
            .chain([from("metadata: {name: etl, namespace: dw-a}\nspec: {runtime: Airflow, airflow: {}}\nstatus: {phase: Pending}")])
            .chain([from("metadata: {name: other, namespace: dw-b}\nspec: {runtime: Spark, spark: {}}")])
            .collect();
        (user, workspaces, projects)
    }

    #[test]
    fn workspaces_with_the_strongest_role() {
        let (user, workspaces, projects) = fixture();
        let status = desired_status(&user, !user.spec.disabled, &workspaces, &projects);
        assert_eq!(status.workspaces.len(), 1);
        assert_eq!(status.workspaces[0].workspace, "a");
        assert_eq!(status.workspaces[0].namespace.as_deref(), Some("dw-a"));
        assert_eq!(status.workspaces[0].role, Role::Developer);
    }

    #[test]
    fn pinned_projects_carry_their_phase_or_not_found() {
        let (user, workspaces, projects) = fixture();
        let pinned = desired_status(&user, !user.spec.disabled, &workspaces, &projects).pinned;
        assert_eq!(pinned[0].phase.as_deref(), Some("Pending"));
        assert_eq!(pinned[0].runtime.as_deref(), Some("Airflow"));
        assert_eq!(pinned[1].phase.as_deref(), Some("NotFound"));
    }

    #[test]
    fn recent_projects_are_bounded_newest_first_and_only_from_own_workspaces() {
        let (user, workspaces, projects) = fixture();
        let recent = desired_status(&user, !user.spec.disabled, &workspaces, &projects).recent;
        assert_eq!(recent.len(), RECENT_LIMIT);
        assert_eq!(recent[0].name, "p6");
        assert!(recent.iter().all(|p| p.namespace == "dw-a"));
    }

    #[test]
    fn disabled_users_lose_their_workspaces() {
        let (mut user, workspaces, projects) = fixture();
        user.spec.disabled = true;
        assert!(desired_status(&user, !user.spec.disabled, &workspaces, &projects).workspaces.is_empty());
        let binding = admin_binding(&user);
        assert_eq!(binding.role_ref.name, PLATFORM_ADMIN_ROLE);
        assert_eq!(binding.subjects.unwrap()[0].name, "alice@x");
    }
}
