//! `User`: a person known to the cluster's authentication, their teams and pinned projects.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{Conditions, DNS_LABEL_RULE, Role, conditions_schema};

/// A person of the data platform: the username the API server authenticates, the teams they
/// belong to, whether they administer the platform, and the projects they pinned.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[kube(
    group = "dataworkspace.io",
    version = "v1alpha1",
    kind = "User",
    plural = "users",
    shortname = "dwuser",
    category = "dataworkspace",
    status = "UserStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A person of the data platform: their Kubernetes username, teams, admin flag and pinned projects.",
    printcolumn(name = "Username", type_ = "string", json_path = ".spec.username"),
    printcolumn(name = "Teams", type_ = "string", json_path = ".spec.teams"),
    printcolumn(name = "Admin", type_ = "boolean", json_path = ".spec.admin"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = "1"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63").message("User names are at most 63 characters: they become label values and part of binding names"),
    validation = Rule::new(r"self.metadata.name.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("User names must be DNS subdomains: lowercase letters, digits, '-' and '.'"),
    validation = Rule::new("!(self.spec.admin && self.spec.username.startsWith('system:serviceaccount:'))").message("a ServiceAccount cannot be a platform admin: anyone who can run pods in its namespace could act as it"),
)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    /// The username as the API server sees it (the `--as` value, the OIDC `sub`/`email` claim,
    /// or `system:serviceaccount:<ns>:<name>`). RoleBindings name this user. Other `system:`
    /// names are reserved for Kubernetes and refused.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == self.trim()").message("username must not be blank or start or end with whitespace"))]
    #[x_kube(validation = Rule::new(r"!self.matches(r'\p{Cc}')").message("username must not contain control characters"))]
    #[x_kube(validation = Rule::new(r"!self.startsWith('system:') || self.matches(r'^system:serviceaccount:[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("usernames starting with 'system:' are reserved for Kubernetes; only a ServiceAccount, 'system:serviceaccount:<namespace>:<name>', may be named"))]
    pub username: String,
    /// Contact address, for example `alice@example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 254))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^[A-Za-z0-9._+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$')").message("email must be an address such as name@example.com: letters, digits and . _ + - before the '@', a domain with a dot after it"))]
    pub email: Option<String>,
    /// Name shown in tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// Teams the user belongs to. Workspace members may name a team instead of a user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new("self.all(t, t.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("team names must be DNS labels: lowercase letters, digits and '-', at most 63 characters"))]
    pub teams: Vec<String>,
    /// Platform administrator: full access to every workspace and to the platform's own kinds.
    #[serde(default)]
    pub admin: bool,
    /// A disabled user keeps the object but loses every binding.
    #[serde(default)]
    pub disabled: bool,
    /// Projects pinned to the top of the user's list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub pinned: Vec<ProjectRef>,
}

/// A reference to a Project.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRef {
    /// Namespace of the Project (a workspace namespace).
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_LABEL_RULE).message("namespace must be a DNS label: lowercase letters, digits and '-'"))]
    pub namespace: String,
    /// Name of the Project.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_LABEL_RULE).message("name must be a Project name: a DNS label"))]
    pub name: String,
}

/// Observed state of a User.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` summarises whether the user's bindings are in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// The workspaces the user can reach, with their effective role.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<WorkspaceAccess>,
    /// The pinned projects with their current phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned: Vec<ProjectSummary>,
    /// The newest projects in the user's workspaces by creation, newest first (without their
    /// phase: the Project has it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<ProjectSummary>,
}

/// A workspace a user can reach and the role they hold there.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceAccess {
    /// Name of the Workspace.
    pub workspace: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The strongest role the user holds there, directly or through a team.
    pub role: Role,
}

/// A project as shown in a user's lists.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    /// Namespace of the Project.
    pub namespace: String,
    /// Name of the Project.
    pub name: String,
    /// Its runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Its phase; `NotFound` when a pinned project does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}
