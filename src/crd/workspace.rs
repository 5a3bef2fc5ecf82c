//! `Workspace`: a tenant. Owns a namespace with its members, quota, isolation, shared
//! configuration, Git repositories and the Studio server.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{AccessList, Conditions, Role, SecretKeyRef, StorageSpec, conditions_schema};

/// A tenant of the data platform: one namespace with members, roles, quota, isolation, shared
/// variables, connections and secrets, Git repositories and a Studio server.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[kube(
    group = "dataworkspace.io",
    version = "v1alpha1",
    kind = "Workspace",
    plural = "workspaces",
    shortname = "dwws",
    category = "dataworkspace",
    status = "WorkspaceStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A tenant of the data platform: a namespace with members, quota, isolation, shared configuration, Git repositories and a Studio server.",
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Members", type_ = "integer", json_path = ".status.memberCount"),
    printcolumn(name = "Projects", type_ = "integer", json_path = ".status.projectCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 60").message("Workspace names are at most 60 characters: the default namespace is 'dw-' followed by the name"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("Workspace names must be DNS labels that start with a letter: lowercase letters, digits and '-'"),
)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceSpec {
    /// Human-readable name shown in tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What the workspace is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Name of the namespace the workspace owns. Defaults to `dw-<workspace name>`. Cannot be
    /// changed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.namespace is immutable"))]
    #[x_kube(validation = Rule::new("self != 'default' && !self.startsWith('kube-')").message("spec.namespace cannot be 'default' or a 'kube-' system namespace"))]
    pub namespace: Option<String>,
    /// Members and the role each holds. A member is a User (by object name) or a team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub members: Vec<Member>,
    /// Limits for everything that runs in the workspace (ResourceQuota and LimitRange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaSpec>,
    /// Plain configuration shared by every runtime, as environment variables. Keys are
    /// environment variable names. Never put credentials here; use `connections` or `secrets`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 500))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))").message("variable names must be environment variable names: letters, digits and '_', not starting with a digit"))]
    pub variables: BTreeMap<String, String>,
    /// Connections to external systems (for Airflow: `AIRFLOW_CONN_<NAME>`), each a reference to
    /// a Secret key holding the connection URI or JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub connections: Vec<SecretEntry>,
    /// Secrets shared with every runtime as environment variables, each a reference to a Secret key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub secrets: Vec<SecretEntry>,
    /// Git repositories checked out for the Studio server and used as Project sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub git_repositories: Vec<GitRepository>,
    /// The workspace's Studio server: JupyterLab with an IDE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio: Option<StudioSpec>,
    /// What happens to the namespace and its data when the Workspace is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// One member of a workspace: exactly one of `user` or `team`, and a role.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.user) != has(self.team)").message("a member names exactly one of 'user' or 'team'"))]
pub struct Member {
    /// Name of a User object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub user: Option<String>,
    /// Name of a team (see `User.spec.teams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub team: Option<String>,
    /// The role granted.
    pub role: Role,
}

/// ResourceQuota and LimitRange settings. Absent fields take the operator's defaults.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// Total CPU requests and limits of all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Total memory requests and limits of all pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Total storage requested by PersistentVolumeClaims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Quantity>,
    /// Maximum number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub pods: Option<i32>,
    /// Requests and limits given to containers that declare none (LimitRange defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_defaults: Option<ResourceRequirements>,
}

/// A named reference to a Secret key.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretEntry {
    /// Name used by runtimes: the connection id, or the environment variable name.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Secret key holding the value.
    pub secret_ref: SecretKeyRef,
}

/// A Git repository of the workspace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepository {
    /// Short name, used as the checkout directory and by Projects' `source.repository`.
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// Clone URL: `https://…` or SSH (`ssh://…` or `git@host:path`).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('ssh://') || self.matches('^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:.+$')").message("url must be https://…, ssh://… or user@host:path"))]
    pub url: String,
    /// Branch, tag or commit to check out.
    #[serde(default = "default_git_ref")]
    #[schemars(length(min = 1, max = 255))]
    pub r#ref: String,
    /// Name of a Secret with the credentials: keys `username` and `password` (a token) for
    /// https, or `ssh-privatekey` and `known_hosts` for SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
}

fn default_git_ref() -> String {
    "main".into()
}

/// The Studio server: JupyterLab with an IDE, a persistent home, the workspace's repositories.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StudioSpec {
    /// Whether the workspace has a Studio server.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Scale the server to zero; the home volume is kept.
    #[serde(default)]
    pub stopped: bool,
    /// Container image; the operator's pinned default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The persistent home volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Who may open the Studio server. Defaults to all members with role developer or admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessList>,
    /// Shut kernels and terminals down after this much inactivity, for example `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub idle_timeout: Option<String>,
    /// Host name for an Ingress: JupyterLab at `https://<host>/`, the IDE at `https://ide.<host>/`.
    /// Created only when the operator is configured with an authenticating proxy, which then
    /// admits only the users allowed to open the server; otherwise the server stays in-cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 249),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub host: Option<String>,
}

fn default_true() -> bool {
    true
}

/// Whether deleting the Workspace deletes its namespace.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the namespace, its volumes and data; remove only the operator's bindings.
    #[default]
    Retain,
    /// Delete the namespace and everything in it.
    Delete,
}

/// Observed state of a Workspace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` summarises; `Namespace`, `Access`, `Config` and `Studio` detail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Conditions,
    /// The namespace the workspace owns, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Number of entries in `spec.members`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i32>,
    /// Number of Projects in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_count: Option<i32>,
    /// Projects per runtime.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub projects_by_runtime: BTreeMap<String, i32>,
    /// Projects per phase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub projects_by_phase: BTreeMap<String, i32>,
    /// Resource usage against the quota (requests of running pods, storage of claims).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub usage: BTreeMap<String, ResourceUsage>,
    /// Referenced Secrets that do not exist in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_secrets: Vec<String>,
    /// Where the Studio server is reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio_endpoint: Option<String>,
}

/// Use of one quota resource.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// Currently used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<Quantity>,
    /// The quota.
    pub hard: Quantity,
}
