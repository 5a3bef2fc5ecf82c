//! Types shared by several kinds: references, access lists, storage and the status conditions.

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A key in a Kubernetes Secret in the same namespace. Only the reference is stored; the
/// operator never copies the value into ConfigMaps, status, Events or logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A role a member holds in a workspace. Each maps to a ClusterRole shipped with the operator.
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash, schemars::JsonSchema,
)]
pub enum Role {
    /// Everything inside the workspace, including its members' bindings.
    #[serde(rename = "admin")]
    Admin,
    /// Create and edit Projects and PythonEnvironments; read workspace configuration.
    #[serde(rename = "developer")]
    Developer,
    /// Read Projects and their status; no Secrets.
    #[serde(rename = "viewer")]
    Viewer,
}

/// Who may open something: User objects by name, or whole teams.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessList {
    /// Names of User objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), inner(length(max = 253)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub users: Vec<String>,
    /// Team names, as listed in `User.spec.teams`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub teams: Vec<String>,
}

/// A persistent volume request.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, for example `10Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
    /// StorageClass to use; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Where a Project's code comes from: one of the workspace's Git repositories.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Name of an entry in the Workspace's `spec.gitRepositories`.
    #[schemars(length(min = 1, max = 63))]
    pub repository: String,
    /// Git ref (branch, tag or commit) overriding the repository's default ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Path inside the repository, for example `dags/` or `apps/sales/app.py`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("!self.startsWith('/') && !self.contains('..')").message("path must be relative to the repository root and must not contain '..'"))]
    pub path: Option<String>,
}

/// The standard status conditions, a list map keyed by `type`.
pub type Conditions = Vec<Condition>;

/// Schema for a conditions list: `listType: map` keyed by `type`, as the API conventions ask.
pub fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Vec<Condition>>();
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert("x-kubernetes-list-map-keys".into(), serde_json::json!(["type"]));
    schema
}

/// Schema for a free-form object kept as it is (the pod override escape hatch).
pub fn free_form_object_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}
