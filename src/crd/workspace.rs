//! `Workspace`: a tenant. Owns a namespace with its members, quota, isolation, shared
//! configuration, Git repositories and the Studio server.

use std::collections::BTreeMap;

use k8s_openapi::{api::core::v1::ResourceRequirements, apimachinery::pkg::api::resource::Quantity};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{
    AccessList, Conditions, DNS_SUBDOMAIN_RULE, DURATION_MESSAGE, DURATION_RULE, GIT_REF_MESSAGE,
    GIT_REF_RULE, IMAGE_MESSAGE, IMAGE_RULE, POSITIVE_QUANTITY_RULE, Role, SecretKeyRef, StorageSpec,
    conditions_schema, resources_schema,
};

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
    printcolumn(name = "Studio", type_ = "string", json_path = ".status.conditions[?(@.type==\"Studio\")].reason"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.studioEndpoint", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 60").message("Workspace names are at most 60 characters: the default namespace is 'dw-' followed by the name"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("Workspace names must be DNS labels that start with a letter: lowercase letters, digits and '-'"),
)]
#[serde(rename_all = "camelCase")]
// `namespace` is a CEL reserved word: the API server exposes the field as `__namespace__`.
#[x_kube(validation = Rule::new("has(oldSelf.__namespace__) == has(self.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)").message("spec.namespace is immutable: it cannot be set, changed or removed after creation").field_path(".namespace"))]
#[x_kube(validation = Rule::new("!has(self.quota) || !has(self.quota.pods) || self.quota.pods > 0 || !has(self.studio) || !self.studio.enabled || self.studio.stopped").message("quota.pods is 0, so the Studio server could never start: allow pods, or disable or stop the Studio server").field_path(".quota.pods"))]
pub struct WorkspaceSpec {
    /// Human-readable name shown in tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,
    /// What the workspace is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,
    /// Name of the namespace the workspace owns. Defaults to `dw-<workspace name>`. Cannot be
    /// set, changed or removed after creation. `default`, `kube-*` and `openshift-*` are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self != 'default' && !self.startsWith('kube-') && !self.startsWith('openshift-')").message("spec.namespace cannot be 'default' or a system namespace ('kube-*', 'openshift-*')"))]
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
    /// At most 200 entries, names of at most 253 and values of at most 1024 characters: even at
    /// 4 bytes a character the ConfigMap they become stays under its 1 MiB limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 200, "additionalProperties" = {"type": "string", "maxLength": 1024}))]
    #[x_kube(validation = Rule::new("self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))").message("variable names must be environment variable names: letters, digits and '_', not starting with a digit"))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 253)").message("variable names are at most 253 characters"))]
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
    /// Network access beyond the defaults. Only platform admins may change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
}

/// Network access of the workspace. By default its pods reach DNS, each other, and addresses
/// outside the ranges the platform denies (always the cloud metadata range); nothing else.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Further destinations the workspace's pods may reach, even inside a denied range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress: Vec<EgressRule>,
}

/// One allowed destination: exactly one of `cidr` or `namespace`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.cidr) != has(self.namespace)").message("an egress rule names exactly one of 'cidr' or 'namespace'"))]
pub struct EgressRule {
    /// An address range, for example `10.20.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("isCIDR(self)").message("cidr must be an IPv4 or IPv6 range such as 10.20.0.0/16"))]
    pub cidr: Option<String>,
    /// The pods of another namespace, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// TCP ports; every port when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(range(min = 1, max = 65535)))]
    pub ports: Vec<i32>,
}

/// One member of a workspace: exactly one of `user` or `team`, and a role.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.user) != has(self.team)").message("a member names exactly one of 'user' or 'team'"))]
pub struct Member {
    /// Name of a User object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("user must be the name of a User object: a DNS subdomain of at most 63 characters"))]
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
    /// Total CPU requests and limits of all pods; greater than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY_RULE).message("quota.cpu must be a quantity greater than zero, for example '8' or '500m'"))]
    pub cpu: Option<Quantity>,
    /// Total memory requests and limits of all pods; greater than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY_RULE).message("quota.memory must be a quantity greater than zero, for example '32Gi'"))]
    pub memory: Option<Quantity>,
    /// Total storage requested by PersistentVolumeClaims; greater than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY_RULE).message("quota.storage must be a quantity greater than zero, for example '100Gi'"))]
    pub storage: Option<Quantity>,
    /// Maximum number of pods, 0 to 10000. 0 runs nothing, so it needs the Studio server
    /// disabled or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub pods: Option<i32>,
    /// Requests and limits given to containers that declare none (LimitRange defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
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
    #[schemars(length(max = 1024))]
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
    /// Clone URL: `https://host[:port]/path`, `ssh://[user@]host[:port]/path` or
    /// `user@host:path`. Credentials never go in the URL; use `credentialsSecret`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(GIT_URL_RULE).message("url must be https://host[:port]/path, ssh://[user@]host[:port]/path or user@host:path"))]
    #[x_kube(validation = Rule::new(r"!self.matches(r'[\s\p{Cc}]')").message("url must not contain whitespace or control characters"))]
    #[x_kube(validation = Rule::new(r"!self.matches(r'^https://[^/]*@') && !self.matches(r'^ssh://[^/@]*:[^/@]*@')").message("url must not carry credentials (user:password@ or token@): put them in credentialsSecret"))]
    pub url: String,
    /// Branch, tag or commit to check out.
    #[serde(default = "default_git_ref")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new(GIT_REF_RULE).message(GIT_REF_MESSAGE))]
    pub r#ref: String,
    /// Name of a Secret with the credentials: keys `username` and `password` (a token) for
    /// https, or `ssh-privatekey` and `known_hosts` for SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("credentialsSecret must be a Secret name: a DNS subdomain"))]
    pub credentials_secret: Option<String>,
}

/// A Git clone URL: https (user info is matched here and refused by the credentials rule, for a
/// clearer message), ssh with an optional user, or the scp-like `user@host:path`. Hosts and users
/// start with a letter or digit, so nothing reaches git or ssh as an option.
const GIT_URL_RULE: &str = r"self.matches(r'^(https://([^/@]*@)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/.+|ssh://([A-Za-z0-9][^/@]*@)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/.+|[A-Za-z0-9][-A-Za-z0-9._]*@[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?:[^-].*)$')";

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
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE).message(IMAGE_MESSAGE))]
    pub image: Option<String>,
    /// Resources of the server container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// The persistent home volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// Who may open the Studio server. Defaults to all members with role developer or admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessList>,
    /// Shut kernels and terminals down after this much inactivity, for example `2h` or `1h30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(DURATION_MESSAGE))]
    pub idle_timeout: Option<String>,
    /// Public host name, one label inside the platform's domain: JupyterLab at
    /// `https://<label>.<domain>/`, the IDE at `https://<label>-ide.<domain>/`, each
    /// behind its own authenticating proxy that admits only the people allowed to open the
    /// server. Exposed only when the platform configured the access layer, and only inside its
    /// domain; a host another workspace already exposes is refused (`Studio` reason
    /// `HostTaken`). Otherwise the server stays in-cluster with its own authentication.
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
    /// RoleBindings in the namespace that the operator did not make (at most 20 named): access
    /// is granted through the Workspace only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_role_bindings: Vec<String>,
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
