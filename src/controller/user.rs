//! Reconciles Users: the platform-admin binding, the right of the person to read their own User
//! (where their workspaces, roles and pinned projects are listed, for the kubectl plugin and
//! tools like it), and status — the workspaces and roles the user has, their pinned projects
//! with phase, and their recent projects.

use std::{collections::BTreeSet, sync::Arc};

use k8s_openapi::{
    api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef},
};

use super::{
    Context, Feeds, RESYNC, Valid, apply_cluster, apply_status_paced,
    cache::{existence, generation, json_signature, signature_of},
    delete_cluster_if_managed,
    identity::{self, Identities, Refusal},
    root, valid,
    workspace::validate::resolve_members,
};
use crate::{
    build::owner_reference,
    conditions::{Desired, READY},
    crd::{
        Project, User, UserStatus, Workspace,
        user::{ProjectSummary, WorkspaceAccess},
    },
    error::Result,
    names::{labels, workspace_namespace},
};

/// Condition types the User controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY];
/// The ClusterRole platform admins are bound to.
pub const PLATFORM_ADMIN_ROLE: &str = "dataworkspace-platform-admin";
/// How many recent projects a User's status lists.
pub const RECENT_LIMIT: usize = 5;

/// The User controller, fed by the caches. Triggers are narrow, each by the part of the object
/// the User's status reads: a Workspace's members reach its members and the Users whose status
/// lists it; a Project's phase reaches the Users who pin it; a Project appearing or going away
/// reaches the members of its workspace (their `recent`) and the Users listing it.
pub fn controller(feeds: &mut Feeds, ctx: &Arc<Context>) -> Controller<DeserializeGuard<User>> {
    let (same_name, by_workspace, by_phase, by_existence) =
        (ctx.caches.clone(), ctx.caches.clone(), ctx.caches.clone(), ctx.caches.clone());
    root(&mut feeds.users)
        .watches_stream(feeds.cluster_role_bindings.subscribe(), |binding| owning_user(&binding))
        .watches_stream(feeds.cluster_roles.subscribe(), |role| owning_user(&role))
        // Users sharing a username are refused together, and freed together.
        .watches_stream(feeds.users.subscribe_when(username), move |changed| match &changed.0 {
            Ok(changed) => users_sharing_username(&valid(&same_name.users), changed),
            Err(_) => Vec::new(),
        })
        .watches_stream(feeds.workspaces.subscribe_when(membership), move |workspace| match &workspace.0 {
            Ok(workspace) => users_of_workspace(&valid(&by_workspace.users), workspace),
            Err(_) => Vec::new(),
        })
        .watches_stream(feeds.projects.subscribe_when(project_phase), move |project| match &project.0 {
            Ok(project) => users_pinning(&valid(&by_phase.users), project),
            Err(_) => Vec::new(),
        })
        .watches_stream(feeds.projects.subscribe_when(existence), move |project| match &project.0 {
            Ok(project) => {
                users_of_project(&valid(&by_existence.users), &valid(&by_existence.workspaces), project)
            }
            Err(_) => Vec::new(),
        })
}

/// The User owning a cluster-scoped child.
fn owning_user<K: kube::Resource>(child: &K) -> Option<ObjectRef<DeserializeGuard<User>>> {
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "User" && o.api_version.starts_with("dataworkspace.io/"))
        .map(|o| ObjectRef::new(&o.name))
}

/// What Users sharing a username react to.
fn username(user: &DeserializeGuard<User>) -> u64 {
    match &user.0 {
        Ok(user) => signature_of(&user.spec.username),
        Err(_) => generation(user),
    }
}

/// What a User's status reads of a Workspace: who its members are, and its namespace.
pub fn membership(workspace: &DeserializeGuard<Workspace>) -> u64 {
    match &workspace.0 {
        Ok(workspace) => json_signature(&(&workspace.spec.members, &workspace.spec.namespace)),
        Err(_) => generation(workspace),
    }
}

/// What a pinned project in a User's status, or a Workspace's project count, shows: runtime
/// and phase.
pub fn project_phase(project: &DeserializeGuard<Project>) -> u64 {
    match &project.0 {
        Ok(project) => signature_of((
            project.spec.runtime.as_str(),
            project.status.as_ref().and_then(|s| s.phase).map(|p| p.as_str()),
        )),
        Err(_) => generation(project),
    }
}

/// Other Users with the same username.
pub fn users_sharing_username(
    users: &[Valid<User>],
    changed: &User,
) -> Vec<ObjectRef<DeserializeGuard<User>>> {
    users
        .iter()
        .filter(|u| u.spec.username == changed.spec.username && u.name_any() != changed.name_any())
        .map(|u| ObjectRef::new(&u.name_any()))
        .collect()
}

/// The members of a Workspace (by name or team) and the Users whose status lists it (who may
/// have just left it).
pub fn users_of_workspace(
    users: &[Valid<User>],
    workspace: &Workspace,
) -> Vec<ObjectRef<DeserializeGuard<User>>> {
    let name = workspace.name_any();
    users
        .iter()
        .filter(|u| {
            workspace.spec.members.iter().any(|m| {
                m.user.as_deref() == u.metadata.name.as_deref()
                    || m.team.as_ref().is_some_and(|t| u.spec.teams.contains(t))
            }) || u.status.iter().flat_map(|s| &s.workspaces).any(|w| w.workspace == name)
        })
        .map(|u| ObjectRef::new(&u.name_any()))
        .collect()
}

/// The Users who pin a Project.
pub fn users_pinning(users: &[Valid<User>], project: &Project) -> Vec<ObjectRef<DeserializeGuard<User>>> {
    let (namespace, name) = (project.namespace().unwrap_or_default(), project.name_any());
    users
        .iter()
        .filter(|u| u.spec.pinned.iter().any(|p| p.namespace == namespace && p.name == name))
        .map(|u| ObjectRef::new(&u.name_any()))
        .collect()
}

/// The Users a Project appearing or going away can affect: those who pin it or list it, and
/// the members of its workspace, whose `recent` it may enter.
pub fn users_of_project(
    users: &[Valid<User>],
    workspaces: &[Valid<Workspace>],
    project: &Project,
) -> Vec<ObjectRef<DeserializeGuard<User>>> {
    let (namespace, name) = (project.namespace().unwrap_or_default(), project.name_any());
    let is = |r: &str, n: &str| r == namespace && n == name;
    let workspace = workspaces
        .iter()
        .find(|w| workspace_namespace(&w.name_any(), w.spec.namespace.as_deref()) == namespace);
    let mut refs: Vec<_> = users
        .iter()
        .filter(|u| {
            u.spec.pinned.iter().any(|p| is(&p.namespace, &p.name))
                || u.status.iter().flat_map(|s| &s.recent).any(|p| is(&p.namespace, &p.name))
        })
        .map(|u| ObjectRef::new(&u.name_any()))
        .collect();
    if let Some(workspace) = workspace {
        refs.extend(users_of_workspace(users, workspace));
    }
    refs.sort_by(|a, b| a.name.cmp(&b.name));
    refs.dedup();
    refs
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

/// Name of the ClusterRole, and of its binding, that let a person read their own User.
pub fn self_reader_name(user: &str) -> String {
    format!("dataworkspace-user-{user}")
}

/// What lets a bound person read their own User (and nothing else): a ClusterRole granting `get`
/// on that one User, bound to their username. Their User's status lists their workspaces, roles
/// and namespaces, which is all a person needs to find their projects without listing anything
/// cluster-wide.
pub fn self_reader(user: &User) -> (ClusterRole, ClusterRoleBinding) {
    let name = user.name_any();
    let metadata = ObjectMeta {
        name: Some(self_reader_name(&name)),
        labels: Some(labels("user", &name, "self-reader")),
        owner_references: Some(vec![owner_reference(user)]),
        ..ObjectMeta::default()
    };
    let role = ClusterRole {
        metadata: metadata.clone(),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![crate::crd::GROUP.into()]),
            resources: Some(vec!["users".into()]),
            resource_names: Some(vec![name.clone()]),
            verbs: vec!["get".into()],
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    };
    let binding = ClusterRoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: self_reader_name(&name),
        },
        subjects: Some(vec![Subject {
            kind: "User".into(),
            name: user.spec.username.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }]),
    };
    (role, binding)
}

/// One pass over a User.
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action> {
    if user.metadata.deletion_timestamp.is_some() {
        // Being deleted: owner references remove the children; applying them again would fight
        // the garbage collector.
        return Ok(Action::await_change());
    }
    ctx.caches.ready().await?;
    let users = valid(&ctx.caches.users);
    let refusal = identity::refusal(&user, &identity::claims(&users), &ctx.config);
    if user.spec.admin && refusal.is_none() {
        apply_cluster(&ctx, &admin_binding(&user)).await?;
    } else {
        delete_cluster_if_managed::<ClusterRoleBinding>(&ctx, &admin_binding_name(&user.name_any())).await?;
    }
    // ServiceAccounts are not people: they get no self-reader (their workspaces bind them as
    // usual).
    if refusal.is_none() && !user.spec.username.starts_with("system:serviceaccount:") {
        let (role, binding) = self_reader(&user);
        apply_cluster(&ctx, &role).await?;
        apply_cluster(&ctx, &binding).await?;
    } else {
        let name = self_reader_name(&user.name_any());
        delete_cluster_if_managed::<ClusterRoleBinding>(&ctx, &name).await?;
        delete_cluster_if_managed::<ClusterRole>(&ctx, &name).await?;
    }
    let workspaces = valid(&ctx.caches.workspaces);
    let projects = valid(&ctx.caches.projects);
    let status = desired_status(&user, refusal.is_none(), &workspaces, &projects);
    let ready = match &refusal {
        None => Desired::yes(READY, "Bound", format!("member of {} workspace(s)", status.workspaces.len())),
        // Disabling is a decision, not a fault.
        Some(r @ Refusal::Disabled) => Desired::yes(READY, r.reason(), r.message(&user.spec.username)),
        Some(r) => Desired::no(READY, r.reason(), r.message(&user.spec.username)),
    };
    // The listings change with every workspace and project the user can see: paced.
    Ok(match apply_status_paced(&ctx, &*user, status, &[ready]).await? {
        Some(wait) => Action::requeue(wait),
        None => Action::requeue(RESYNC),
    })
}

/// The user's workspaces with their strongest role (none unless `bound`), pinned projects and
/// recent projects.
pub fn desired_status(
    user: &User,
    bound: bool,
    workspaces: &[Valid<Workspace>],
    projects: &[Valid<Project>],
) -> UserStatus {
    let name = user.name_any();
    let identities = Identities { bindable: vec![user.clone().into()], ..Identities::default() };
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

    let summary = |p: &Project, phase: bool| ProjectSummary {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        runtime: Some(p.spec.runtime.as_str().into()),
        phase: p.status.as_ref().and_then(|s| s.phase).filter(|_| phase).map(|ph| ph.as_str().to_string()),
    };
    let pinned = user
        .spec
        .pinned
        .iter()
        .map(|r| {
            projects
                .iter()
                .find(|p| p.namespace().as_deref() == Some(r.namespace.as_str()) && p.name_any() == r.name)
                .map(|p| summary(p, true))
                .unwrap_or_else(|| ProjectSummary {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    runtime: None,
                    phase: Some("NotFound".into()),
                })
        })
        .collect();

    // The newest projects of the user's workspaces, by creation: a project's phase changes
    // rewrite only the statuses of the Users who pin it, never of everyone who can see it.
    let namespaces: BTreeSet<&str> = access.iter().filter_map(|a| a.namespace.as_deref()).collect();
    let mut mine: Vec<&Project> = projects
        .iter()
        .map(|p| &**p)
        .filter(|p| p.metadata.namespace.as_deref().is_some_and(|ns| namespaces.contains(ns)))
        .collect();
    mine.sort_by(|a, b| {
        let (a, b) = (&a.metadata, &b.metadata);
        (b.creation_timestamp.cmp(&a.creation_timestamp))
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
    });
    let recent = mine.into_iter().take(RECENT_LIMIT).map(|p| summary(p, false)).collect();

    UserStatus { workspaces: access, pinned, recent, ..UserStatus::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crd::common::Role, fixtures::shared};

    fn from<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn fixture() -> (User, Vec<Valid<Workspace>>, Vec<Valid<Project>>) {
        let user: User = from(
            "metadata: {name: alice}\nspec: {username: alice@x, teams: [eng], pinned: [{namespace: dw-a, name: etl}, {namespace: dw-a, name: gone}]}",
        );
        let workspaces = shared(vec![
            from(
                "metadata: {name: a}\nspec: {members: [{team: eng, role: developer}, {user: alice, role: viewer}]}",
            ),
            from("metadata: {name: b}\nspec: {members: [{user: bob, role: admin}]}"),
        ]);
        let projects = (0..7)
            .map(|i| {
                from::<Project>(&format!(
                    "metadata: {{name: p{i}, namespace: dw-a, creationTimestamp: '2026-01-0{}T00:00:00Z'}}\nspec: {{runtime: Notebook, notebook: {{}}}}\nstatus: {{phase: Running}}",
                    i + 1
                ))
            })
            .chain([from("metadata: {name: etl, namespace: dw-a}\nspec: {runtime: Airflow, airflow: {}}\nstatus: {phase: Pending}")])
            .chain([from("metadata: {name: other, namespace: dw-b}\nspec: {runtime: Spark, spark: {}}")])
            .map(Valid::from)
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

    fn names(refs: Vec<ObjectRef<DeserializeGuard<User>>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn a_workspace_reaches_its_members_and_those_who_just_left() {
        let (alice, workspaces, _) = fixture();
        let mut carol: User = from("metadata: {name: carol}\nspec: {username: carol@x}");
        carol.status = Some(from("workspaces: [{workspace: a, role: viewer}]"));
        let dave: User = from("metadata: {name: dave}\nspec: {username: dave@x, teams: [ops]}");
        let users = shared(vec![alice, carol, dave]);
        // alice by team eng, carol because her status still lists a; dave is unrelated.
        assert_eq!(names(users_of_workspace(&users, &workspaces[0])), vec!["alice", "carol"]);
        assert!(users_of_workspace(&users, &workspaces[1]).is_empty());
    }

    #[test]
    fn a_phase_reaches_who_pins_it_and_a_new_or_deleted_project_its_members() {
        let (alice, workspaces, projects) = fixture();
        let mut bob: User = from("metadata: {name: bob}\nspec: {username: bob@x}");
        bob.status = Some(from("recent: [{namespace: dw-a, name: p3}]"));
        let eve: User = from("metadata: {name: eve}\nspec: {username: eve@x, teams: [eng]}");
        let mallory: User = from("metadata: {name: mallory}\nspec: {username: m@x, teams: [ops]}");
        let users = shared(vec![alice, bob, eve, mallory]);
        let project = |name: &str| projects.iter().find(|p| p.name_any() == name).unwrap();
        // A phase change: only alice, who pins etl; nobody pins p3.
        assert_eq!(names(users_pinning(&users, project("etl"))), vec!["alice"]);
        assert!(users_pinning(&users, project("p3")).is_empty());
        // Appearing or going away: the members of dw-a (alice, eve) and bob, who lists p3.
        assert_eq!(names(users_of_project(&users, &workspaces, project("p3"))), vec!["alice", "bob", "eve"]);
        // A project of a namespace no Workspace owns reaches only who pins or lists it.
        let stray: Project =
            from("metadata: {name: p3, namespace: elsewhere}\nspec: {runtime: Notebook, notebook: {}}");
        assert!(users_of_project(&users, &workspaces, &stray).is_empty());
    }

    #[test]
    fn recent_projects_carry_no_phase_and_ties_are_ordered_by_namespace_and_name() {
        let (user, mut workspaces, _) = fixture();
        workspaces.push(Valid::from(from::<Workspace>(
            "metadata: {name: c}\nspec: {members: [{team: eng, role: viewer}]}",
        )));
        // Created in the same second in two namespaces, listed in any order: one order out.
        let at = |ns: &str, name: &str| -> Valid<Project> {
            Valid::from(from::<Project>(&format!(
                "metadata: {{name: {name}, namespace: {ns}, creationTimestamp: '2026-01-01T00:00:00Z'}}\nspec: {{runtime: Notebook, notebook: {{}}}}\nstatus: {{phase: Running}}"
            )))
        };
        let mut projects = vec![at("dw-c", "p0"), at("dw-a", "p1"), at("dw-a", "p0"), at("dw-c", "p1")];
        let first = desired_status(&user, true, &workspaces, &projects).recent;
        projects.reverse();
        assert_eq!(desired_status(&user, true, &workspaces, &projects).recent, first);
        let listed: Vec<String> = first.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
        assert_eq!(listed, ["dw-a/p0", "dw-a/p1", "dw-c/p0", "dw-c/p1"]);
        assert!(
            first.iter().all(|p| p.phase.is_none()),
            "a phase change must not rewrite who merely sees it"
        );
    }

    #[test]
    fn signatures_ignore_status_writes() {
        let (_, workspaces, projects) = fixture();
        let guard = |p: &Project| DeserializeGuard(Ok(p.clone()));
        let mut project = (*projects[0]).clone();
        let before = project_phase(&guard(&project));
        project.status.as_mut().unwrap().conditions.clear();
        assert_eq!(project_phase(&guard(&project)), before, "conditions alone do not matter");
        project.status.as_mut().unwrap().phase = Some(crate::crd::project::Phase::Stopped);
        assert_ne!(project_phase(&guard(&project)), before);

        let mut workspace = (*workspaces[0]).clone();
        let before = membership(&DeserializeGuard(Ok(workspace.clone())));
        workspace.status = Some(from("projectCount: 3"));
        assert_eq!(membership(&DeserializeGuard(Ok(workspace.clone()))), before);
        workspace.spec.members.pop();
        assert_ne!(membership(&DeserializeGuard(Ok(workspace))), before);
    }

    #[test]
    fn a_person_may_read_their_own_user_and_nothing_else() {
        let (user, _, _) = fixture();
        let (role, binding) = self_reader(&user);
        let name = user.name_any();
        assert_eq!(role.metadata.name.as_deref(), Some(format!("dataworkspace-user-{name}").as_str()));
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].resources.as_deref(), Some(&["users".to_string()][..]));
        assert_eq!(rules[0].resource_names.as_deref(), Some(&[name.clone()][..]));
        assert_eq!(rules[0].verbs, vec!["get".to_string()]);
        assert_eq!(binding.role_ref.name, role.metadata.name.unwrap());
        let subjects = binding.subjects.unwrap();
        assert_eq!(
            (subjects[0].kind.as_str(), subjects[0].name.as_str()),
            ("User", user.spec.username.as_str())
        );
        assert_eq!(binding.metadata.owner_references.unwrap()[0].kind, "User");
    }

    #[test]
    fn users_sharing_a_username_reach_each_other() {
        let one: User = from("metadata: {name: one}\nspec: {username: same@x}");
        let two: User = from("metadata: {name: two}\nspec: {username: same@x}");
        let other: User = from("metadata: {name: other}\nspec: {username: other@x}");
        let users = shared(vec![one.clone(), two, other]);
        assert_eq!(names(users_sharing_username(&users, &one)), vec!["two"]);
    }
}
