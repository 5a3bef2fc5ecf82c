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
