//! Types shared by several kinds: references, access lists, storage and the status conditions.

use k8s_openapi::{
    api::core::v1::ResourceRequirements,
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition},
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

// CEL rule texts shared by several fields. Patterns are RE2, written as CEL raw strings (`r'…'`)
// so that backslashes reach the regex engine unchanged. Every field they apply to also has a
// maxLength (or maxItems), which keeps the API server's cost estimate of the rule bounded.

/// `self` is a DNS label (RFC 1123): lowercase letters, digits and `-`, alphanumeric at both ends.
pub const DNS_LABEL_RULE: &str = r"self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";
/// `self` is a DNS subdomain (RFC 1123): DNS labels joined by `.`.
pub const DNS_SUBDOMAIN_RULE: &str =
    r"self.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";
/// `self` (an int-or-string quantity) is a valid quantity greater than zero.
pub const POSITIVE_QUANTITY_RULE: &str =
    "type(self) == string ? isQuantity(self) && quantity(self).isGreaterThan(quantity('0')) : self > 0";
/// `self` is an image reference: `[registry[:port]/]path[:tag][@sha256:digest]`, the path in
/// lowercase. It cannot start with `-` or contain whitespace.
pub const IMAGE_RULE: &str = r"self.matches(r'^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*(:[0-9]{1,5})?/)?[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$')";
/// Message of [`IMAGE_RULE`].
pub const IMAGE_MESSAGE: &str = "image must be a reference such as 'quay.io/org/name:tag' or 'registry:5000/name@sha256:<digest>': lowercase path, no whitespace, not starting with '-'";
/// `self` is a Git ref name as `git check-ref-format` accepts it (and not an option).
pub const GIT_REF_RULE: &str = r"!self.startsWith('-') && !self.startsWith('/') && !self.startsWith('.') && !self.endsWith('/') && !self.endsWith('.') && !self.endsWith('.lock') && !self.contains('..') && !self.contains('//') && !self.contains('/.') && !self.contains('.lock/') && !self.contains('@{') && self != '@' && !self.matches(r'[\s\p{Cc}~^:?*\[\\]')";
/// Message of [`GIT_REF_RULE`].
pub const GIT_REF_MESSAGE: &str = "ref must be a Git branch, tag or commit such as 'main', 'release/1.2' or 'v1.0.0': no whitespace, control characters or any of ~^:?*[\\, no '..', '//' or '@{', not starting with '-', '/' or '.', not ending with '/', '.' or '.lock'";
/// `self` is a duration such as `1h30m`: whole numbers, each followed by `s`, `m` or `h`.
pub const DURATION_RULE: &str = r"self.matches(r'^([0-9]+[smh])+$')";
/// Message of [`DURATION_RULE`].
pub const DURATION_MESSAGE: &str =
    "idleTimeout must be a duration such as '90m' or '1h30m': whole numbers, each followed by s, m or h";
/// A list of User object names (DNS subdomains).
const USERS_RULE: &str =
    r"self.all(u, u.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'))";
/// A list of team names (DNS labels).
const TEAMS_RULE: &str = r"self.all(t, t.matches(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))";
/// `self` is a relative path that stays inside its root: no leading `/` or `-`, no `..` segment,
/// no backslash or control character.
pub const RELATIVE_PATH_RULE: &str = r"!self.startsWith('/') && !self.startsWith('-') && !self.matches(r'(^|/)\.\.(/|$)') && !self.matches(r'[\\\p{Cc}]')";

/// A key in a Kubernetes Secret in the same namespace. Only the reference is stored; the
/// operator never copies the value into ConfigMaps, status, Events or logs.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("secret name must be a DNS subdomain: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^[-._a-zA-Z0-9]+$')").message("secret key may contain only letters, digits, '-', '_' and '.'"))]
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
    #[schemars(length(max = 200), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new(USERS_RULE).message("users must be names of User objects: DNS subdomains of at most 63 characters"))]
    pub users: Vec<String>,
    /// Team names, as listed in `User.spec.teams`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = Rule::new(TEAMS_RULE).message("team names must be DNS labels: lowercase letters, digits and '-', at most 63 characters"))]
    pub teams: Vec<String>,
}

/// A persistent volume request.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, for example `10Gi`; greater than zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 64))]
    #[x_kube(validation = Rule::new(POSITIVE_QUANTITY_RULE).message("storage size must be a quantity greater than zero, for example '10Gi'"))]
    pub size: Option<Quantity>,
    /// StorageClass to use; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(DNS_SUBDOMAIN_RULE).message("storageClassName must be a DNS subdomain: lowercase letters, digits, '-' and '.'"))]
    pub storage_class_name: Option<String>,
}

/// Where a Project's code comes from: one of the workspace's Git repositories.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSource {
    /// Name of an entry in the Workspace's `spec.gitRepositories`.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new(DNS_LABEL_RULE).message("repository must be the name of one of the Workspace's gitRepositories (a DNS label)"))]
    pub repository: String,
    /// Git ref (branch, tag or commit) overriding the repository's default ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new(GIT_REF_RULE).message(GIT_REF_MESSAGE))]
    pub r#ref: Option<String>,
    /// Path inside the repository, for example `dags/` or `apps/sales/app.py`: relative, with
    /// no `..` segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new(RELATIVE_PATH_RULE).message("path must be relative to the repository root: not starting with '/' or '-', no '..' segment, no backslash or control character"))]
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

/// Every value of a map of int-or-string quantities is a valid quantity of zero or more.
const QUANTITIES_RULE: &str =
    "self.all(k, isQuantity(string(self[k])) && !quantity(string(self[k])).isLessThan(quantity('0')))";
/// No request is above the limit of the same resource (invalid quantities are left to
/// [`QUANTITIES_RULE`]).
const REQUESTS_WITHIN_LIMITS_RULE: &str = "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k])) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)";

/// Schema for container resources: Kubernetes' `ResourceRequirements`, with at most 16 requests
/// and 16 limits, each a quantity of zero or more, and no request above its limit.
pub fn resources_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<ResourceRequirements>();
    if let Some(properties) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for field in ["requests", "limits"] {
            let Some(map) = properties.get_mut(field).and_then(|m| m.as_object_mut()) else { continue };
            map.insert("maxProperties".into(), 16.into());
            if let Some(values) = map.get_mut("additionalProperties").and_then(|v| v.as_object_mut()) {
                values.insert("maxLength".into(), 64.into());
            }
            map.insert(
                "x-kubernetes-validations".into(),
                serde_json::json!([{
                    "rule": QUANTITIES_RULE,
                    "message": format!("resource {field} must be quantities of zero or more, for example '500m' or '1Gi'"),
                }]),
            );
        }
    }
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": REQUESTS_WITHIN_LIMITS_RULE,
            "message": "resource requests must not exceed the limits of the same resource",
        }]),
    );
    // Every use is an `Option`, which the derived schema would mark nullable.
    schema.insert("nullable".into(), true.into());
    schema
}
