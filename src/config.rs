//! Operator-wide settings, from `run`'s flags.

/// Settings that shape what the controllers build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Namespace of the cluster's ingress controller; its pods may reach every workspace.
    pub ingress_namespace: Option<String>,
    /// When set, each team is also bound as the group `<prefix><team>` (for clusters whose
    /// authentication supplies team groups).
    pub team_group_prefix: Option<String>,
    /// How Studio servers are exposed behind authentication; without it they stay in-cluster.
    pub studio_auth: Option<StudioAuth>,
    /// When set, every username (except ServiceAccounts) must start with it: the cluster's OIDC
    /// username prefix. Users without it are not bound.
    pub username_prefix: Option<String>,
    /// Address ranges workspaces may never reach, in addition to the link-local range of the
    /// cloud metadata services (for example the pod and service ranges of the cluster).
    pub egress_deny_cidrs: Vec<String>,
    /// Delete RoleBindings in workspace namespaces that the operator did not make (they are
    /// always reported in status).
    pub remove_foreign_role_bindings: bool,
    /// Every namespace the operator creates starts with it (empty: no constraint).
    pub namespace_prefix: String,
}

/// A shared authenticating proxy (oauth2-proxy with the platform's OIDC provider) that the
/// ingress controller asks before forwarding a request (ingress-nginx external authentication).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudioAuth {
    /// The proxy's check endpoint, for example `https://auth.example.com/oauth2/auth`. The
    /// operator adds `allowed_emails` for each Studio server.
    pub auth_url: String,
    /// Where unauthenticated users are sent, for example `https://auth.example.com/oauth2/start?rd=$escaped_request_uri`.
    pub signin_url: String,
    /// IngressClass of the Ingresses; the cluster default when absent.
    pub ingress_class: Option<String>,
}
