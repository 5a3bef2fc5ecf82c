//! Whose view it is and which workspaces it covers: the caller (by the username the API server
//! authenticated) or a named User, and their workspaces — or every workspace that was listed.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::Serialize;

use crate::{
    config::Config,
    controller::{
        Valid,
        identity::{self, Identities},
        workspace::validate::resolve_members,
    },
    crd::{User, Workspace, common::Role},
};

/// Who the view is for.
#[derive(Clone, Copy, Debug)]
pub enum Viewer<'a> {
    /// The caller, as the API server authenticated them (a SelfSubjectReview).
    Caller {
        /// Their username.
        username: &'a str,
        /// Their groups, only to explain a caller who maps to no User.
        groups: &'a [String],
    },
    /// A User object by name: what that person sees (for admins).
    User(&'a str),
}

/// Which workspaces a view covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breadth {
    /// The workspaces the User is a member of, directly or through a team.
    Member,
    /// Every workspace that was listed (what the caller may read).
    All,
}

/// A workspace the view covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceInScope {
    /// Name of the Workspace.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The User's strongest role there; none when not a member (`Breadth::All`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

/// The resolved view: the User it is for (none for a caller without one, under
/// `Breadth::All`), the workspaces it covers by name, and what the person should be told.
#[derive(Clone, Debug)]
pub struct Scope<'a> {
    /// The User the view is for.
    pub user: Option<&'a User>,
    /// The workspaces covered, by name.
    pub workspaces: Vec<WorkspaceInScope>,
    /// Sentences for the person: why they see less than they might expect.
    pub notices: Vec<String>,
}

impl Scope<'_> {
    /// The covered workspace owning `namespace`.
    pub fn workspace_of(&self, namespace: &str) -> Option<&WorkspaceInScope> {
        self.workspaces.iter().find(|w| w.namespace == namespace)
    }
}

/// Why no view can be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The caller's username is no User's.
    #[error(
        "you are authenticated as {username:?}{groups}, but no User has spec.username {username:?}, so you are a member of no workspace. Ask a platform admin to create a User for you; admins can use --user <name> to see what a User sees, or -A to list every workspace they can read",
        groups = groups_text(groups)
    )]
    NoUser {
        /// The caller's username.
        username: String,
        /// The caller's groups.
        groups: Vec<String>,
    },
    /// Several Users claim the caller's username: the operator binds none of them.
    #[error(
        "you are authenticated as {username:?}, which the Users {} all claim; the operator binds none of them until only one does. Use --user <name> to pick one",
        users.join(", ")
    )]
    SharedUsername {
        /// The caller's username.
        username: String,
        /// The Users claiming it.
        users: Vec<String>,
    },
    /// `--user` names no User.
    #[error("User {0:?} not found")]
    UnknownUser(String),
}

fn groups_text(groups: &[String]) -> String {
    match groups {
        [] => String::new(),
        groups => format!(" (groups: {})", groups.join(", ")),
    }
}

/// The view of a person who may read only their own User (not list Users or Workspaces): the
/// workspaces, roles and namespaces the operator lists in that User's status.
pub fn of_own_user(user: &User) -> Scope<'_> {
    let workspaces = user
        .status
        .iter()
        .flat_map(|s| s.workspaces.iter())
        .map(|w| WorkspaceInScope {
            name: w.workspace.clone(),
            namespace: w.namespace.clone().unwrap_or_default(),
            role: Some(w.role),
        })
        .collect();
    Scope { user: Some(user), workspaces, notices: Vec::new() }
}

/// The namespace a Workspace owns, as its status reports it — or none (empty) while it owns
/// none: a Workspace refused its namespace (another's, or a retained one) must not show what
/// lives there.
pub fn namespace_of(workspace: &Workspace) -> String {
    workspace.status.as_ref().and_then(|s| s.namespace.clone()).unwrap_or_default()
}

/// Resolves who the view is for and which workspaces it covers. Membership follows the
/// operator's own rule (the one its RoleBindings are made from): a member by name or through a
/// team, with the strongest role, and nobody the operator refuses to bind (disabled, a
/// username another User shares, a reserved username) is a member of anything.
pub fn resolve<'a>(
    viewer: Viewer<'_>,
    breadth: Breadth,
    users: &'a [User],
    workspaces: &[Workspace],
    config: &Config,
) -> Result<Scope<'a>, ScopeError> {
    let user = match viewer {
        Viewer::User(name) => Some(
            users
                .iter()
                .find(|u| u.name_any() == name)
                .ok_or_else(|| ScopeError::UnknownUser(name.into()))?,
        ),
        Viewer::Caller { username, groups } => {
            let mine: Vec<&User> = users.iter().filter(|u| u.spec.username == username).collect();
            match (mine.as_slice(), breadth) {
                ([one], _) => Some(*one),
                ([], Breadth::All) => None,
                ([], Breadth::Member) => {
                    return Err(ScopeError::NoUser { username: username.into(), groups: groups.to_vec() });
                }
                (many, _) => {
                    return Err(ScopeError::SharedUsername {
                        username: username.into(),
                        users: many.iter().map(|u| u.name_any()).collect(),
                    });
                }
            }
        }
    };

    let mut notices = Vec::new();
    let roles = match user {
        Some(user) => {
            let shared: Vec<Valid<User>> = users.iter().cloned().map(Valid::from).collect();
            // `config` carries the operator's identity settings (its username prefix and team
            // groups), so that whom it refuses to bind sees nothing here either.
            if let Some(refusal) = identity::refusal(user, &identity::claims(&shared), config) {
                notices.push(format!("User {}: {}", user.name_any(), refusal.message(&user.spec.username)));
            }
            roles_of(user, &Identities::new(&shared, config), workspaces)
        }
        None => BTreeMap::new(),
    };
    let mut covered: Vec<WorkspaceInScope> = workspaces
        .iter()
        .filter_map(|ws| {
            let role = roles.get(&ws.name_any()).copied();
            (breadth == Breadth::All || role.is_some()).then(|| WorkspaceInScope {
                name: ws.name_any(),
                namespace: namespace_of(ws),
                role,
            })
        })
        .collect();
    covered.sort_by(|a, b| a.name.cmp(&b.name));
    if covered.is_empty() {
        notices.push(match (user, breadth) {
            (Some(user), Breadth::Member) => format!("User {} is a member of no workspace", user.name_any()),
            _ => "no workspace could be listed".into(),
        });
    }
    Ok(Scope { user, workspaces: covered, notices })
}

/// The user's strongest role in each workspace they are a member of.
fn roles_of(user: &User, identities: &Identities, workspaces: &[Workspace]) -> BTreeMap<String, Role> {
    let name = user.name_any();
    workspaces
        .iter()
        .filter_map(|ws| {
            let (people, _) = resolve_members(ws, identities);
            let role = people.into_iter().find(|(_, people)| people.iter().any(|p| p.user == name))?.0;
            Some((ws.name_any(), role))
        })
        .collect()
}
