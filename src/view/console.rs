//! What the web console shows a person: who the e-mail address the proxy vouched for belongs
//! to (a User), which workspaces they see — the plugin's scope, so the operator's own binding
//! rule — and the rows of the Studio and Admin areas (the Runtime area is `runtime::rows`).
//! Pure: no client, no clock; never a Secret's value (only the references the specs hold).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::{
    envs::{self, EnvRow},
    scope::{self, Breadth, Scope, Viewer},
    usage::{self, UsageRow},
};
use crate::{
    config::Config,
    controller::{
        Valid,
        identity::{self, Identities},
        workspace::validate::{app_access, resolve_members, studio_access},
    },
    crd::{Project, PythonEnvironment, User, Workspace, common::Role},
};

/// The person looking, and what they may see.
#[derive(Clone, Debug)]
pub struct Person<'a> {
    /// The e-mail address, lower-cased.
    pub email: String,
    /// Their workspaces (every workspace for a platform admin) and what they should be told.
    pub scope: Scope<'a>,
    /// A platform admin the operator binds (not disabled, no shared or reserved username).
    pub platform_admin: bool,
}

impl Person<'_> {
    /// Whether the person sees the Admin area of `workspace`: its admins and platform admins.
    pub fn administers(&self, workspace: &str) -> bool {
        self.platform_admin
            || self.scope.workspaces.iter().any(|w| w.name == workspace && w.role == Some(Role::Admin))
    }

    /// Whether the person administers anything at all.
    pub fn administers_any(&self) -> bool {
        self.platform_admin || self.scope.workspaces.iter().any(|w| w.role == Some(Role::Admin))
    }
}

/// The person with e-mail address `email`: the one User whose `spec.email` is it (compared
/// lower-cased, as the access proxies compare), with the plugin's scope of that User. Nobody,
/// several Users, or a User the operator does not bind sees no workspace, and is told why.
pub fn identify<'a>(email: &str, users: &'a [User], workspaces: &[Workspace], config: &Config) -> Person<'a> {
    let email = email.trim().to_ascii_lowercase();
    let nothing = |notice: String| Person {
        email: email.clone(),
        scope: Scope { user: None, workspaces: Vec::new(), notices: vec![notice] },
        platform_admin: false,
    };
    let mine: Vec<&User> = users
        .iter()
        .filter(|u| u.spec.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(&email)))
        .collect();
    let user = match mine.as_slice() {
        [] => {
            return nothing(format!(
                "No User has the e-mail address {email}, so you are a member of no workspace. Ask a platform admin to create a User for you."
            ));
        }
        [one] => *one,
        many => {
            let names: Vec<String> = many.iter().map(|u| u.name_any()).collect();
            return nothing(format!(
                "The Users {} all have the e-mail address {email}; none of them is shown until only one has it.",
                names.join(", ")
            ));
        }
    };
    let shared: Vec<Valid<User>> = users.iter().cloned().map(Valid::from).collect();
    let bound = identity::refusal(user, &identity::claims(&shared), config).is_none();
    let platform_admin = bound && user.spec.admin;
    let breadth = if platform_admin { Breadth::All } else { Breadth::Member };
    match scope::resolve(Viewer::User(&user.name_any()), breadth, users, workspaces, config) {
        Ok(scope) => Person { email, scope, platform_admin },
        Err(error) => nothing(error.to_string()),
    }
}

/// A link the console may render: an absolute `http` or `https` URL with a host. Anything else
/// (`javascript:`, `data:`, relative paths) is shown as text, never as a link.
pub fn safe_link(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some_and(|h| !h.is_empty()))
        .then(|| parsed.to_string())
}

/// A named reference to a Secret key: what the console shows of connections and secrets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Named {
    /// The name runtimes see.
    pub name: String,
    /// What it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A Git repository of a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repository {
    /// Its short name.
    pub name: String,
    /// The clone URL (shown as text).
    pub url: String,
    /// The ref checked out.
    pub r#ref: String,
}

/// The Studio server of a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Studio {
    /// Whether the workspace has one.
    pub enabled: bool,
    /// Scaled to zero on request.
    pub stopped: bool,
    /// The `Studio` condition's status and reason.
    pub state: Option<(String, String)>,
    /// Where it is reachable.
    pub endpoint: Option<String>,
}

/// One workspace in the Studio area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudioCard {
    /// The Workspace.
    pub workspace: String,
    /// Its display name.
    pub display_name: Option<String>,
    /// Its namespace.
    pub namespace: String,
    /// The person's role there; none for a platform admin who is not a member.
    pub role: Option<Role>,
    /// The Studio server.
    pub studio: Studio,
    /// Git repositories.
    pub repositories: Vec<Repository>,
    /// Plain variables, names and values.
    pub variables: Vec<(String, String)>,
    /// Connections, by name only.
    pub connections: Vec<Named>,
    /// Secrets, by name only.
    pub secrets: Vec<Named>,
    /// Python environments and their approval.
    pub environments: Vec<EnvRow>,
}

/// The Studio area: one card per workspace of the scope.
pub fn studio(
    scope: &Scope<'_>,
    workspaces: &[Workspace],
    environments: &[PythonEnvironment],
    now: Timestamp,
) -> Vec<StudioCard> {
    let envs = envs::rows(scope, environments, now);
    scope
        .workspaces
        .iter()
        .filter_map(|covered| {
            let ws = workspaces.iter().find(|w| w.name_any() == covered.name)?;
            let spec = &ws.spec;
            let status = ws.status.as_ref();
            let named = |entries: &[crate::crd::workspace::SecretEntry]| {
                entries
                    .iter()
                    .map(|e| Named { name: e.name.clone(), description: e.description.clone() })
                    .collect()
            };
            Some(StudioCard {
                workspace: covered.name.clone(),
                display_name: spec.display_name.clone(),
                namespace: covered.namespace.clone(),
                role: covered.role,
                studio: Studio {
                    enabled: spec.studio.as_ref().is_some_and(|s| s.enabled),
                    stopped: spec.studio.as_ref().is_some_and(|s| s.stopped),
                    state: status
                        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Studio"))
                        .map(|c| (c.status.clone(), c.reason.clone())),
                    endpoint: status.and_then(|s| s.studio_endpoint.clone()),
                },
                repositories: spec
                    .git_repositories
                    .iter()
                    .map(|r| Repository { name: r.name.clone(), url: r.url.clone(), r#ref: r.r#ref.clone() })
                    .collect(),
                variables: spec.variables.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                connections: named(&spec.connections),
                secrets: named(&spec.secrets),
                environments: envs.iter().filter(|e| e.workspace == covered.name).cloned().collect(),
            })
        })
        .collect()
}

/// One entry of `spec.members`, with the people it binds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// A User by name, …
    pub user: Option<String>,
    /// … or a team.
    pub team: Option<String>,
    /// The role granted.
    pub role: Role,
    /// The Users it binds (none for a disabled or unknown User).
    pub people: Vec<String>,
}

/// Who may open one project's app or UI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppAccess {
    /// The Project.
    pub project: String,
    /// Its runtime.
    pub runtime: String,
    /// Users by name.
    pub people: Vec<String>,
}

/// One workspace in the Admin area.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminCard {
    /// The Workspace.
    pub workspace: String,
    /// Its namespace.
    pub namespace: String,
    /// Its members as declared, with whom each binds.
    pub members: Vec<MemberRow>,
    /// Each bound person's strongest role.
    pub roles: Vec<(String, Role)>,
    /// Teams named by members, with their Users.
    pub teams: BTreeMap<String, Vec<String>>,
    /// Environments waiting for an approval, with their requester.
    pub pending: Vec<EnvRow>,
    /// Who may open the Studio server.
    pub studio_access: Vec<String>,
    /// Who may open each project's app or UI.
    pub app_access: Vec<AppAccess>,
    /// Usage against the quota.
    pub usage: Vec<UsageRow>,
    /// Projects by runtime and phase (`Unknown` before the operator reported one).
    pub projects: BTreeMap<(String, String), usize>,
}

/// The Admin area: one card per workspace the person administers.
pub fn admin(
    person: &Person<'_>,
    users: &[User],
    workspaces: &[Workspace],
    projects: &[Project],
    environments: &[PythonEnvironment],
    now: Timestamp,
    config: &Config,
) -> Vec<AdminCard> {
    let valid: Vec<Valid<User>> = users.iter().cloned().map(Valid::from).collect();
    let identities = Identities::new(&valid, config);
    let envs = envs::rows(&person.scope, environments, now);
    let usage = usage::rows(&person.scope, workspaces);
    person
        .scope
        .workspaces
        .iter()
        .filter(|covered| person.administers(&covered.name))
        .filter_map(|covered| {
            let ws = workspaces.iter().find(|w| w.name_any() == covered.name)?;
            let (people, _) = resolve_members(ws, &identities);
            let names = |list: Vec<crate::controller::workspace::validate::Person>| -> Vec<String> {
                list.into_iter().map(|p| p.user).collect()
            };
            let members = ws
                .spec
                .members
                .iter()
                .map(|m| MemberRow {
                    user: m.user.clone(),
                    team: m.team.clone(),
                    role: m.role,
                    people: identities
                        .bindable
                        .iter()
                        .filter(|u| match (&m.user, &m.team) {
                            (Some(name), _) => u.metadata.name.as_deref() == Some(name.as_str()),
                            (None, Some(team)) => u.spec.teams.contains(team),
                            (None, None) => false,
                        })
                        .map(|u| u.name_any())
                        .collect(),
                })
                .collect::<Vec<_>>();
            let teams = members
                .iter()
                .filter_map(|m| Some((m.team.clone()?, m.people.clone())))
                .collect::<BTreeMap<_, _>>();
            let mine = |p: &&Project| p.metadata.namespace.as_deref() == Some(covered.namespace.as_str());
            let mut by_phase: BTreeMap<(String, String), usize> = BTreeMap::new();
            for project in projects.iter().filter(mine) {
                let phase = project.status.as_ref().and_then(|s| s.phase).map_or("Unknown", |p| p.as_str());
                *by_phase
                    .entry((project.spec.runtime.as_str().to_string(), phase.to_string()))
                    .or_default() += 1;
            }
            let mut app = projects
                .iter()
                .filter(mine)
                .map(|p| AppAccess {
                    project: p.name_any(),
                    runtime: p.spec.runtime.as_str().to_string(),
                    people: names(app_access(p.spec.access.as_ref(), &people, &valid)),
                })
                .collect::<Vec<_>>();
            app.sort_by(|a, b| a.project.cmp(&b.project));
            Some(AdminCard {
                workspace: covered.name.clone(),
                namespace: covered.namespace.clone(),
                roles: people
                    .iter()
                    .flat_map(|(role, list)| list.iter().map(|p| (p.user.clone(), *role)))
                    .collect(),
                members,
                teams,
                pending: envs
                    .iter()
                    .filter(|e| e.workspace == covered.name && e.state == "PendingApproval")
                    .cloned()
                    .collect(),
                studio_access: names(studio_access(
                    ws.spec.studio.as_ref().and_then(|s| s.access.as_ref()),
                    &people,
                    &valid,
                )),
                app_access: app,
                usage: usage.iter().filter(|u| u.workspace == covered.name).cloned().collect(),
                projects: by_phase,
            })
        })
        .collect()
}
