//! The few Gateway API fields the operator sets, declared by hand (the Gateway API crate for
//! Rust pins another kube than ours). Checked against the real CustomResourceDefinitions on the
//! e2e control plane (`hack/versions.env`: GATEWAY_API_VERSION).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `HTTPRoute` (gateway.networking.k8s.io/v1): hosts attached to a Gateway, sent to backends.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// The hosts it serves.
    pub hostnames: Vec<String>,
    /// Where requests go.
    pub rules: Vec<HTTPRouteRule>,
}

/// A Gateway, and optionally one of its listeners.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `Gateway`.
    pub kind: String,
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// A listener of the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// One rule: path matches and the backends they go to.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteRule {
    /// Which requests.
    pub matches: Vec<HTTPRouteMatch>,
    /// Where they go.
    pub backend_refs: Vec<HTTPBackendRef>,
}

/// A request match by path.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct HTTPRouteMatch {
    /// The path.
    pub path: HTTPPathMatch,
}

/// A path match.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct HTTPPathMatch {
    /// `PathPrefix`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The path.
    pub value: String,
}

/// A Service in the route's namespace, by name and port.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
pub struct HTTPBackendRef {
    /// `""` (core).
    pub group: String,
    /// `Service`.
    pub kind: String,
    /// The Service's name.
    pub name: String,
    /// The Service's port.
    pub port: i32,
}
