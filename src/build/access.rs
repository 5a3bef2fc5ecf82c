//! The access layer: every web UI the operator exposes outside the cluster sits behind its own
//! authenticating proxy (oauth2-proxy), run in the platform's access namespace, never in the
//! tenant's. Only the proxy is routed to. The identity provider's client secret and each
//! proxy's cookie secret stay in the access namespace; each UI has its own access list (a
//! ConfigMap the proxy watches, so a change needs no restart) and its own cookie secret and
//! host-only cookie, so a session cookie a tenant's code sees is worthless at any other UI.
//!
//! Pure builders: the runtimes describe what they expose ([`Exposure`]) and get the objects.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec},
        core::v1::{
            ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, PodTemplateSpec,
            ResourceRequirements, SecretVolumeSource, Service, Volume, VolumeMount,
        },
        networking::v1::{
            Ingress, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer,
            NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

use super::{
    children::{GeneratedSecret, hashed_name},
    gateway::{
        HTTPBackendRef, HTTPPathMatch, HTTPRoute, HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec,
        ParentReference,
    },
    pod::{container_security, pod_security},
    workload::{http_probe, ingress_rule, liveness, service},
};
use crate::names::{LABEL_MANAGED_BY, LABEL_NAME, MANAGER};

/// The proxy's port.
pub const PROXY_PORT: i32 = 4180;
/// The numeric user of the oauth2-proxy image (distroless `nonroot`).
pub const PROXY_UID: i64 = 65532;
/// Key of the identity provider's client secret in the platform's Secret.
pub const CLIENT_SECRET_KEY: &str = "client-secret";
/// Key of a proxy's cookie secret in its generated Secret.
pub const COOKIE_SECRET_KEY: &str = "cookie-secret";
/// Key of the access list in a proxy's ConfigMap.
pub const EMAILS_KEY: &str = "emails";
/// The proxy's session cookie. Host-only (no domain), so each exposed host has its own.
pub const COOKIE_NAME: &str = "_dataworkspace_access";
/// Label on the pods of a UI behind the access layer: only its proxy reaches them (the
/// workspace's peers policy leaves them out), as their own authentication may be off.
pub const LABEL_PROXIED: &str = "dataworkspace.io/proxied";
/// Label naming the exposure a proxy object belongs to.
pub const LABEL_EXPOSURE: &str = "dataworkspace.io/exposure";
/// Labels naming the owner of a proxy object: it lives in another namespace than its owner, so
/// it cannot carry an owner reference.
pub const LABEL_OWNER_NAMESPACE: &str = "dataworkspace.io/owner-namespace";
/// See [`LABEL_OWNER_NAMESPACE`].
pub const LABEL_OWNER_UID: &str = "dataworkspace.io/owner-uid";
/// Annotation on an exposure's access list naming its host, so that a second claim of a host
/// is found and refused.
pub const ANNOTATION_HOST: &str = "dataworkspace.io/host";
/// Longest e-mail address accepted (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;

/// The platform's settings for the access layer (operator flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLayer {
    /// The namespace the proxies, their secrets, lists and routes live in.
    pub namespace: String,
    /// The DNS domain every exposed host must lie inside (see [`check_host`]).
    pub domain: String,
    /// OpenID Connect issuer URL of the identity provider.
    pub issuer_url: String,
    /// The client ID registered with the identity provider.
    pub client_id: String,
    /// The Secret in [`AccessLayer::namespace`] holding the client secret under
    /// [`CLIENT_SECRET_KEY`]; the platform provides it.
    pub client_secret: String,
    /// The oauth2-proxy image.
    pub image: String,
    /// The IngressClass of the Ingresses made for exposed hosts.
    pub ingress_class: Option<String>,
    /// A TLS Secret in [`AccessLayer::namespace`] for every exposed host (a wildcard
    /// certificate of the domain), if the ingress does not terminate TLS on its own.
    pub tls_secret: Option<String>,
    /// The Gateway HTTPRoutes for exposed hosts attach to.
    pub gateway: Option<Gateway>,
}

/// A platform Gateway, and optionally its listener for exposed hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The listener (`sectionName`), if not all.
    pub listener: Option<String>,
}

/// Which object exposes a UI.
#[derive(Clone, Debug, PartialEq)]
pub struct Owner {
    /// Its namespace (the tenant's).
    pub namespace: String,
    /// A reference to it, carried by the one object in its namespace (the NetworkPolicy); the
    /// objects in the access namespace carry its UID as a label instead.
    pub reference: OwnerReference,
}

/// One UI to expose.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// Who exposes it.
    pub owner: Owner,
    /// A short name of the UI within the owner's namespace (`studio`, a Project name).
    pub ui: String,
    /// The public host name.
    pub host: String,
    /// The UI's Service in the owner's namespace, and its port.
    pub service: String,
    /// See [`Exposure::service`].
    pub port: i32,
    /// The labels of the UI's pods, for the NetworkPolicy that admits the proxy.
    pub pod_labels: BTreeMap<String, String>,
    /// E-mail addresses allowed in. Addresses that are not plain (see [`plain_email`]) are
    /// left out: the list fails closed.
    pub allowed: Vec<String>,
}

impl Exposure {
    /// Name of the proxy's objects in the access namespace: readable, and unique across
    /// tenants (a hash of the owner's namespace and the UI).
    pub fn name(&self) -> String {
        let base: String = format!("{}-{}", self.owner.namespace, self.ui).chars().take(40).collect();
        hashed_name(base.trim_end_matches('-'), &(&self.owner.namespace, &self.ui))
    }

    /// The upstream the proxy forwards to.
    pub fn upstream(&self) -> String {
        format!("http://{}.{}.svc:{}/", self.service, self.owner.namespace, self.port)
    }
}

/// Where the proxy reads its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    /// The client secret (no trailing newline).
    pub client_secret: String,
    /// The cookie secret.
    pub cookie_secret: String,
    /// The access list, one address per line.
    pub emails: String,
}

impl Files {
    /// The paths in the proxy's pod. Each file is in a directory of its own, mounted whole (a
    /// `subPath` mount never sees a ConfigMap update).
    pub fn in_pod() -> Files {
        Files {
            client_secret: format!("/etc/oauth2-proxy/client/{CLIENT_SECRET_KEY}"),
            cookie_secret: format!("/etc/oauth2-proxy/cookie/{COOKIE_SECRET_KEY}"),
            emails: format!("/etc/oauth2-proxy/access/{EMAILS_KEY}"),
        }
    }
}

/// Whether an e-mail address is plain enough to sit in the proxy's list: ASCII letters,
/// digits and `. _ + -` before the `@`, a dotted host name after it. Anything else (`,` and
/// `"` would be read as CSV, `%`, `$`, `&`, spaces) is refused rather than escaped.
pub fn plain_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
        && !local.starts_with('.');
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    email.len() <= EMAIL_MAX && local_ok && domain_ok
}

/// Checks a host a UI is to be exposed at: one lower-case DNS label directly inside the
/// platform's `domain` (so one wildcard certificate of the domain covers every exposed host),
/// at most 253 characters. Anything else — a port, a path, a wildcard, a deeper name, the domain
/// itself or a look-alike suffix — is refused before it reaches the proxy's arguments or a route.
pub fn check_host(host: &str, domain: &str) -> Result<(), String> {
    let Some(label) = host.strip_suffix(domain).and_then(|p| p.strip_suffix('.')) else {
        return Err(format!("the host {host:?} is not inside the domain {domain:?}"));
    };
    if host.len() > 253 {
        return Err(format!("the host {host:?} is longer than 253 characters"));
    }
    if label.contains('.') {
        return Err(format!(
            "the host {host:?} must be one label directly inside {domain:?} (such as analytics.{domain}), so that the domain's wildcard certificate covers it"
        ));
    }
    std::iter::once(label)
        .chain(domain.split('.'))
        .try_for_each(crate::names::check_dns_label)
        .map_err(|e| format!("the host {host:?} is not a DNS name: {e}"))
}

/// A second host next to `host` for another UI of the same owner: `<label>-<suffix>` in the
/// same domain (`analytics.data.example.com` → `analytics-ide.data.example.com`), so the
/// domain's wildcard certificate covers it too.
pub fn sibling_host(host: &str, suffix: &str) -> String {
    match host.split_once('.') {
        Some((label, parent)) => format!("{label}-{suffix}.{parent}"),
        None => format!("{host}-{suffix}"),
    }
}

/// How a UI is reached, decided before building.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// In-cluster only; the UI keeps its own authentication, if it has one.
    InCluster {
        /// The condition's reason: `InClusterOnly`, or why the host was refused.
        reason: &'static str,
        /// What status says.
        message: String,
        /// Whether it is a failure to report (a host was set and refused).
        refused: bool,
    },
    /// Behind the access layer at `https://<host>/` (and its sibling hosts).
    Proxied {
        /// The main host.
        host: String,
    },
}

/// Decides how an owner's UIs are reached: `exposures` are what it would expose (none without a
/// host, named by `field` in messages), checked against the platform's `layer`; `claimant` names
/// who else exposes a host, if someone does (hosts are unique: the first claim keeps one).
pub fn reach(
    exposures: Option<&[Exposure]>,
    layer: Option<&AccessLayer>,
    field: &str,
    claimant: impl Fn(&Exposure) -> Option<String>,
) -> Reach {
    let in_cluster = |message: String| Reach::InCluster { reason: "InClusterOnly", message, refused: false };
    let Some(exposures) = exposures.filter(|e| !e.is_empty()) else {
        return in_cluster(format!("reachable inside the cluster only (no {field})"));
    };
    let Some(layer) = layer else {
        return in_cluster(format!(
            "reachable inside the cluster only: the platform has not configured the access layer, so {field} is not exposed"
        ));
    };
    if let Some(error) = exposures.iter().find_map(|e| check_host(&e.host, &layer.domain).err()) {
        return Reach::InCluster { reason: "HostRejected", message: error, refused: true };
    }
    if let Some((exposure, owner)) = exposures.iter().find_map(|e| claimant(e).map(|o| (e, o))) {
        return Reach::InCluster {
            reason: "HostTaken",
            message: format!(
                "the host {} is already exposed for {owner}; choose another {field}",
                exposure.host
            ),
            refused: true,
        };
    }
    Reach::Proxied { host: exposures[0].host.clone() }
}

/// The proxy's access list: the plain addresses, lower-cased (the proxy compares lower-cased),
/// sorted and unique, one per line.
pub fn emails_file<'a>(emails: impl IntoIterator<Item = &'a str>) -> String {
    let mut list: Vec<String> =
        emails.into_iter().filter(|e| plain_email(e)).map(str::to_ascii_lowercase).collect();
    list.sort();
    list.dedup();
    list.into_iter().map(|e| e + "\n").collect()
}

/// The proxy's command-line arguments. `secure` is false only for tests on plain-HTTP
/// loopback; in the cluster the public URL is HTTPS.
pub fn proxy_args(layer: &AccessLayer, exposure: &Exposure, files: &Files, secure: bool) -> Vec<String> {
    let scheme = if secure { "https" } else { "http" };
    [
        ("provider", "oidc".to_string()),
        ("oidc-issuer-url", layer.issuer_url.clone()),
        ("client-id", layer.client_id.clone()),
        ("client-secret-file", files.client_secret.clone()),
        ("code-challenge-method", "S256".into()),
        ("cookie-secret-file", files.cookie_secret.clone()),
        ("cookie-name", COOKIE_NAME.into()),
        ("cookie-secure", secure.to_string()),
        ("cookie-samesite", "lax".into()),
        // The only admission rule: the list. No --email-domain (its `*` would admit everyone),
        // no skipped routes, no trusted IPs, no bearer tokens.
        ("authenticated-emails-file", files.emails.clone()),
        ("upstream", exposure.upstream()),
        ("http-address", format!("0.0.0.0:{PROXY_PORT}")),
        ("redirect-url", format!("{scheme}://{}/oauth2/callback", exposure.host)),
        ("skip-provider-button", "true".into()),
        ("silence-ping-logging", "true".into()),
    ]
    .into_iter()
    .map(|(flag, value)| format!("--{flag}={value}"))
    .collect()
}

/// The labels of one exposure's proxy objects.
fn proxy_labels(exposure: &Exposure) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.into(), "oauth2-proxy".into()),
        (LABEL_MANAGED_BY.into(), MANAGER.into()),
        (LABEL_EXPOSURE.into(), exposure.name()),
        (LABEL_OWNER_NAMESPACE.into(), exposure.owner.namespace.clone()),
        (LABEL_OWNER_UID.into(), exposure.owner.reference.uid.clone()),
    ])
}

/// The selector of one exposure's proxy pods.
fn proxy_selector(exposure: &Exposure) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_NAME.into(), "oauth2-proxy".into()), (LABEL_EXPOSURE.into(), exposure.name())])
}

/// Everything one exposure needs: in the access namespace the proxy and its list, secret,
/// Service and Ingress; in the owner's namespace the NetworkPolicy admitting the proxy.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessObjects {
    /// The access list.
    pub emails: ConfigMap,
    /// The cookie secret, generated once.
    pub cookie: GeneratedSecret,
    /// The proxy.
    pub deployment: Deployment,
    /// The proxy's Service, the only backend a route names.
    pub service: Service,
    /// The route from the public host to the proxy, when the platform names an IngressClass.
    pub ingress: Option<Ingress>,
    /// The route from the public host to the proxy, when the platform names a Gateway.
    pub route: Option<HTTPRoute>,
    /// In the owner's namespace: the UI's port admits the proxy's pods.
    pub network_policy: NetworkPolicy,
}

/// The objects of one exposure.
pub fn build(layer: &AccessLayer, exposure: &Exposure) -> AccessObjects {
    let name = exposure.name();
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(layer.namespace.clone()),
        labels: Some(proxy_labels(exposure)),
        ..ObjectMeta::default()
    };
    let files = Files::in_pod();
    let emails = ConfigMap {
        // The host, for the uniqueness check of the apply layer.
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([(ANNOTATION_HOST.into(), exposure.host.clone())])),
            ..meta(&name)
        },
        data: Some(BTreeMap::from([(
            EMAILS_KEY.into(),
            emails_file(exposure.allowed.iter().map(String::as_str)),
        )])),
        ..ConfigMap::default()
    };
    // 16 random bytes as 32 hex characters: the proxy reads them as unpadded URL-safe base64,
    // a 24-byte AES key.
    let cookie = GeneratedSecret {
        metadata: meta(&format!("{name}-cookie")),
        keys: vec![(COOKIE_SECRET_KEY.into(), crate::build::children::Encoding::Hex)],
        keeper: None,
        bytes: 16,
    };
    let mount = |volume: &str, path: &str| VolumeMount {
        name: volume.into(),
        mount_path: path.rsplit_once('/').map(|(dir, _)| dir.to_string()).unwrap_or_default(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let container = Container {
        name: "oauth2-proxy".into(),
        image: Some(layer.image.clone()),
        args: Some(proxy_args(layer, exposure, &files, true)),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: PROXY_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(http_probe("/ready", "http")),
        liveness_probe: Some(liveness("/ping", "http")),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("10m".into())),
                ("memory".into(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([("memory".into(), Quantity("128Mi".into()))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security(PROXY_UID, true)),
        volume_mounts: Some(vec![
            mount("client", &files.client_secret),
            mount("cookie", &files.cookie_secret),
            mount("access", &files.emails),
        ]),
        ..Container::default()
    };
    let secret_volume = |volume: &str, secret: &str| Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let deployment = Deployment {
        metadata: meta(&name),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(proxy_selector(exposure)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(proxy_labels(exposure)), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security(PROXY_UID, PROXY_UID, None)),
                    containers: vec![container],
                    volumes: Some(vec![
                        secret_volume("client", &layer.client_secret),
                        secret_volume("cookie", &format!("{name}-cookie")),
                        Volume {
                            name: "access".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: name.clone(),
                                ..ConfigMapVolumeSource::default()
                            }),
                            ..Volume::default()
                        },
                    ]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let proxy_service = service(meta(&name), proxy_selector(exposure), &[("http", PROXY_PORT)]);
    let ingress = layer.ingress_class.as_ref().map(|class| Ingress {
        metadata: meta(&name),
        spec: Some(IngressSpec {
            ingress_class_name: Some(class.clone()),
            tls: layer.tls_secret.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![exposure.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![ingress_rule(&exposure.host, &name, "http")]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    });
    let route = layer.gateway.as_ref().map(|gateway| HTTPRoute {
        metadata: meta(&name),
        spec: HTTPRouteSpec {
            parent_refs: vec![ParentReference {
                group: "gateway.networking.k8s.io".into(),
                kind: "Gateway".into(),
                namespace: gateway.namespace.clone(),
                name: gateway.name.clone(),
                section_name: gateway.listener.clone(),
            }],
            hostnames: vec![exposure.host.clone()],
            rules: vec![HTTPRouteRule {
                matches: vec![HTTPRouteMatch {
                    path: HTTPPathMatch { type_: "PathPrefix".into(), value: "/".into() },
                }],
                backend_refs: vec![HTTPBackendRef {
                    group: String::new(),
                    kind: "Service".into(),
                    name: name.clone(),
                    port: PROXY_PORT,
                }],
            }],
        },
    });
    let network_policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("{}-access", exposure.ui)),
            namespace: Some(exposure.owner.namespace.clone()),
            labels: Some(proxy_labels(exposure)),
            owner_references: Some(vec![exposure.owner.reference.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(exposure.pod_labels.clone()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "kubernetes.io/metadata.name".into(),
                            layer.namespace.clone(),
                        )])),
                        ..LabelSelector::default()
                    }),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(proxy_selector(exposure)),
                        ..LabelSelector::default()
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(exposure.port)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    };
    AccessObjects { emails, cookie, deployment, service: proxy_service, ingress, route, network_policy }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn layer() -> AccessLayer {
        AccessLayer {
            namespace: "dataworkspace-access".into(),
            domain: "data.example.com".into(),
            issuer_url: "https://login.example.com/realms/data".into(),
            client_id: "dataworkspace".into(),
            client_secret: "oidc-client".into(),
            image: "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6".into(),
            ingress_class: Some("public".into()),
            tls_secret: Some("wildcard-tls".into()),
            gateway: Some(Gateway { namespace: "gateways".into(), name: "public".into(), listener: None }),
        }
    }

    pub fn exposure() -> Exposure {
        Exposure {
            owner: Owner {
                namespace: "dw-analytics".into(),
                reference: OwnerReference { uid: "uid-1".into(), ..OwnerReference::default() },
            },
            ui: "studio".into(),
            host: "analytics.data.example.com".into(),
            service: "studio".into(),
            port: 8888,
            pod_labels: BTreeMap::from([("app.kubernetes.io/component".into(), "studio".into())]),
            allowed: vec![
                "Bob@Example.com".into(),
                "alice+data@example.com".into(),
                "bob@example.com".into(),
            ],
        }
    }

    #[test]
    fn only_plain_addresses_reach_the_list() {
        for ok in ["a@b.co", "alice+data@example.com", "A.B-C_d@sub.example.org", "x@xn--bcher-kva.example"] {
            assert!(plain_email(ok), "{ok}");
        }
        for bad in [
            "a@b",
            "@b.co",
            "a@",
            "a,b@c.co",
            "\"a\"@c.co",
            "a%2c@c.co",
            "ops$http_x@corp.test",
            "a&b@c.co",
            "a b@c.co",
            "a@b..co",
            "a@-b.co",
            ".a@b.co",
            "#a@b.co",
            "a@b.co\nc@d.co",
        ] {
            assert!(!plain_email(bad), "{bad:?}");
        }
        assert!(!plain_email(&format!("{}@example.com", "a".repeat(250))));
        assert_eq!(
            emails_file(exposure().allowed.iter().map(String::as_str).chain(["x,evil@attacker.test"])),
            "alice+data@example.com\nbob@example.com\n"
        );
        assert_eq!(emails_file([]), "", "nobody: the proxy admits no one");
    }

    #[test]
    fn hosts_are_dns_names_inside_the_platform_domain() {
        let domain = "data.example.com";
        for ok in ["analytics.data.example.com", "analytics-ide.data.example.com", "a-1.data.example.com"] {
            assert_eq!(check_host(ok, domain), Ok(()), "{ok}");
        }
        for bad in [
            "data.example.com",
            "evil-data.example.com",
            "x.data.example.com.evil.test",
            "*.data.example.com",
            "a..data.example.com",
            "A.data.example.com",
            "a.data.example.com:443",
            "a/b.data.example.com",
            "a b.data.example.com",
            "-a.data.example.com",
            ".data.example.com",
            "ide.analytics.data.example.com",
        ] {
            assert!(check_host(bad, domain).is_err(), "{bad}");
        }
        let long_domain = format!("{}.example.com", vec!["d".repeat(60); 3].join("."));
        let long = format!("{}.{long_domain}", "a".repeat(60));
        assert!(check_host(&long, &long_domain).unwrap_err().contains("253"));
        assert_eq!(sibling_host("analytics.data.example.com", "ide"), "analytics-ide.data.example.com");
    }

    #[test]
    fn the_proxy_admits_by_list_only_and_forwards_to_the_ui() {
        let args = proxy_args(&layer(), &exposure(), &Files::in_pod(), true);
        assert!(args.contains(&"--upstream=http://studio.dw-analytics.svc:8888/".to_string()));
        assert!(
            args.contains(&"--redirect-url=https://analytics.data.example.com/oauth2/callback".to_string())
        );
        assert!(args.contains(&"--authenticated-emails-file=/etc/oauth2-proxy/access/emails".to_string()));
        assert!(args.contains(&"--cookie-secure=true".to_string()));
        for flag in [
            "--email-domain",
            "--skip-auth",
            "--trusted-ip",
            "--cookie-domain",
            "--client-secret=",
            "--cookie-secret=",
        ] {
            assert!(!args.iter().any(|a| a.starts_with(flag)), "{flag} must not be set: {args:?}");
        }
    }

    #[test]
    fn names_are_unique_per_tenant_and_ui() {
        let one = exposure();
        let mut other = exposure();
        other.owner.namespace = "dw-analytics-studio".into();
        other.ui = "x".into();
        assert_ne!(one.name(), other.name());
        let mut long = exposure();
        long.owner.namespace = "dw-".to_string() + &"n".repeat(60);
        assert!(long.name().len() <= 63, "{}", long.name());
    }

    #[test]
    fn secrets_stay_in_the_access_namespace_and_only_the_proxy_is_routed_to() {
        let objects = build(&layer(), &exposure());
        let name = exposure().name();
        assert_eq!(objects.deployment.metadata.namespace.as_deref(), Some("dataworkspace-access"));
        assert_eq!(objects.cookie.metadata.namespace.as_deref(), Some("dataworkspace-access"));
        let pod = objects.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        crate::build::pod::tests::assert_restricted(pod);
        let secrets: Vec<_> =
            pod.volumes.iter().flatten().filter_map(|v| v.secret.as_ref()?.secret_name.clone()).collect();
        assert_eq!(secrets, vec!["oidc-client".to_string(), format!("{name}-cookie")]);
        let rule = &objects.ingress.as_ref().unwrap().spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        let backend = rule.http.as_ref().unwrap().paths[0].backend.service.as_ref().unwrap();
        assert_eq!(backend.name, name, "the Ingress names the proxy's Service, never the UI's");
        assert!(
            objects.ingress.as_ref().unwrap().metadata.annotations.is_none(),
            "no controller-specific annotations"
        );
        let policy = objects.network_policy.spec.as_ref().unwrap();
        assert_eq!(objects.network_policy.metadata.namespace.as_deref(), Some("dw-analytics"));
        let peer = &policy.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0];
        assert_eq!(
            peer.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
            "dataworkspace-access"
        );
        let route = objects.route.as_ref().unwrap();
        assert_eq!(route.metadata.namespace.as_deref(), Some("dataworkspace-access"));
        let backends: Vec<&str> =
            route.spec.rules.iter().flat_map(|r| &r.backend_refs).map(|b| b.name.as_str()).collect();
        assert_eq!(backends, vec![name.as_str()], "the route names the proxy's Service, never the UI's");
        assert_eq!(route.spec.hostnames, vec![exposure().host]);
        let mut without_routes = layer();
        without_routes.ingress_class = None;
        without_routes.gateway = None;
        let bare = build(&without_routes, &exposure());
        assert!(
            bare.ingress.is_none() && bare.route.is_none(),
            "nothing routed without the platform's settings"
        );
    }

    #[test]
    fn objects() {
        insta::assert_yaml_snapshot!(build(&layer(), &exposure()).deployment);
    }
}
