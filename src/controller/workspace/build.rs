//! The objects a Workspace consists of, built from a [`ValidatedWorkspace`] by pure functions.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{StatefulSet, StatefulSetSpec},
        core::v1::{
            ConfigMap, Container, ContainerPort, EnvVar, LimitRange, LimitRangeItem, LimitRangeSpec,
            Namespace, PodSpec, PodTemplateSpec, ResourceQuota, ResourceQuotaSpec, Service, VolumeMount,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
            NetworkPolicyPort, NetworkPolicySpec,
        },
        rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::validate::{Ownership, Studio, ValidatedWorkspace};
use crate::{
    build::{
        access::{self, AccessObjects, Exposure, Owner, Reach},
        child_meta, env, git, jupyter, pod, python_env, workload, workspace_labels,
    },
    config::Config,
    crd::{common::Role, workspace::DeletionPolicy},
    names::{LABEL_WORKSPACE, LABEL_WORKSPACE_UID},
};

/// Name of the ResourceQuota.
pub const QUOTA: &str = "workspace-quota";
/// Name of the LimitRange.
pub const LIMIT_RANGE: &str = "workspace-defaults";
/// Name of the isolating NetworkPolicy.
pub const NETWORK_POLICY: &str = "workspace-isolation";
/// Name of the NetworkPolicy admitting the workspace's own pods.
pub const PEERS_POLICY: &str = "workspace-peers";
pub use crate::build::access::LABEL_PROXIED;
/// Name of the variables ConfigMap.
pub const VARIABLES: &str = env::VARIABLES;
/// Name of the Studio StatefulSet and Service.
pub const STUDIO: &str = "studio";
/// Name of the ConfigMap of the Studio's extra kernels (one per ready Python environment).
pub const STUDIO_KERNELS: &str = "studio-kernels";
/// Name of the Studio home volume claim template (the PVC is `home-studio-0`).
pub const STUDIO_HOME: &str = "home";
/// Annotation on the namespace saying what deleting the Workspace leaves.
pub const ANNOTATION_DELETION_POLICY: &str = "dataworkspace.io/deletion-policy";
/// JupyterLab port.
pub const LAB_PORT: i32 = 8888;
/// code-server port.
pub const IDE_PORT: i32 = 8080;
/// The code-server image.
pub const IDE_IMAGE: &str = "docker.io/codercom/code-server:4.133.0";
/// UID and GID of the jovyan user in the Jupyter images.
const JOVYAN_UID: i64 = jupyter::UID;
const USERS_GID: i64 = jupyter::GID;
const HOME: &str = jupyter::HOME;

/// Names of the RoleBindings the operator makes in a workspace namespace, one per role.
pub const ROLE_BINDINGS: [&str; 3] =
    ["dataworkspace-admin", "dataworkspace-developer", "dataworkspace-viewer"];

/// The ClusterRole a role binds.
pub fn cluster_role(role: Role) -> &'static str {
    match role {
        Role::Admin => "dataworkspace-admin",
        Role::Developer => "dataworkspace-developer",
        Role::Viewer => "dataworkspace-viewer",
    }
}

/// Address ranges no workspace reaches, whatever its `spec.network.egress` says: link-local
/// ranges (cloud metadata services) and the other clouds' metadata and host endpoints.
pub const DENIED_EGRESS: [&str; 5] =
    ["169.254.0.0/16", "168.63.129.16/32", "100.100.100.200/32", "fe80::/10", "fd00:ec2::254/128"];
/// NodeLocal DNSCache's conventional address, inside the link-local range: DNS only.
pub const NODE_LOCAL_DNS: &str = "169.254.20.10/32";

/// The objects of a workspace, in apply order.
#[derive(Clone, Debug)]
pub struct WorkspaceObjects {
    /// The tenant namespace.
    pub namespace: Namespace,
    /// Per-workspace ClusterRoles: members read their Workspace, its admins edit it.
    pub workspace_roles: Vec<ClusterRole>,
    /// Their bindings.
    pub workspace_role_bindings: Vec<ClusterRoleBinding>,
    /// Quota.
    pub quota: ResourceQuota,
    /// Container defaults.
    pub limit_range: LimitRange,
    /// Isolation from other workspaces: no ingress, bounded egress.
    pub network_policy: NetworkPolicy,
    /// What may reach the workspace's pods: its own pods, except the UIs behind the proxy.
    pub peers_policy: NetworkPolicy,
    /// One binding per role.
    pub role_bindings: Vec<RoleBinding>,
    /// The variables.
    pub variables: ConfigMap,
    /// The Studio server, if enabled.
    pub studio: Option<StudioObjects>,
}

/// The objects of the Studio server.
#[derive(Clone, Debug)]
pub struct StudioObjects {
    /// Its Service.
    pub service: Service,
    /// The server.
    pub statefulset: StatefulSet,
    /// How it is reached.
    pub reach: Reach,
    /// Behind the access layer: the proxies of JupyterLab and of the IDE, with their lists,
    /// secrets, routes and NetworkPolicies.
    pub access: Vec<AccessObjects>,
    /// The kernel specs of the ready Python environments it offers, if any.
    pub kernels: Option<ConfigMap>,
}

/// The UI names of the Studio's two exposures.
pub const STUDIO_UIS: [&str; 2] = ["studio", "studio-ide"];

/// The IDE's host next to the Studio's: `<label>-ide.<domain>`.
pub fn ide_host(host: &str) -> String {
    access::sibling_host(host, "ide")
}

/// The two UIs of a Studio at `host`: JupyterLab at the host, the IDE at [`ide_host`], each
/// admitting the e-mails of the people allowed to open the Studio.
pub fn studio_exposures(ws: &ValidatedWorkspace, studio: &Studio, host: &str) -> [Exposure; 2] {
    let allowed: Vec<String> = studio.allowed.iter().filter_map(|p| p.email.clone()).collect();
    let exposure = |ui: &str, host: String, port: i32| Exposure {
        owner: Owner { namespace: ws.namespace.clone(), reference: ws.owner.clone() },
        ui: ui.into(),
        host,
        service: STUDIO.into(),
        port,
        pod_labels: studio_labels(ws),
        allowed: allowed.clone(),
    };
    [exposure(STUDIO_UIS[0], host.to_string(), LAB_PORT), exposure(STUDIO_UIS[1], ide_host(host), IDE_PORT)]
}

/// Decides how the Studio is reached. `claimant` names who else exposes an exposure's host,
/// if someone does (hosts are unique across the cluster: the first claim keeps it).
pub fn studio_reach(
    ws: &ValidatedWorkspace,
    studio: &Studio,
    config: &Config,
    claimant: impl Fn(&Exposure) -> Option<String>,
) -> Reach {
    let exposures = studio.host.as_ref().map(|host| studio_exposures(ws, studio, host));
    access::reach(
        exposures.as_ref().map(|e| e.as_slice()),
        config.access.as_ref(),
        "spec.studio.host",
        claimant,
    )
}

/// Builds every object of the workspace; `reach` is what [`studio_reach`] decided for its Studio.
pub fn build(ws: &ValidatedWorkspace, config: &Config, reach: Option<&Reach>) -> WorkspaceObjects {
    let proxied = matches!(reach, Some(Reach::Proxied { .. }));
    WorkspaceObjects {
        namespace: namespace(ws),
        workspace_roles: [WorkspaceAccess::Admin, WorkspaceAccess::Member]
            .into_iter()
            .map(|a| workspace_role(ws, a))
            .collect(),
        workspace_role_bindings: [WorkspaceAccess::Admin, WorkspaceAccess::Member]
            .into_iter()
            .map(|a| workspace_role_binding(ws, a, config))
            .collect(),
        quota: quota(ws),
        limit_range: limit_range(ws),
        network_policy: network_policy(ws, config),
        peers_policy: peers_policy(ws),
        role_bindings: [Role::Admin, Role::Developer, Role::Viewer]
            .into_iter()
            .map(|r| role_binding(ws, r, config))
            .collect(),
        variables: variables(ws),
        // The servers turn their own authentication off only behind the proxies.
        studio: ws.studio.as_ref().map(|s| StudioObjects {
            kernels: (!s.kernels.is_empty()).then(|| ConfigMap {
                metadata: studio_child_meta(ws, STUDIO_KERNELS),
                data: Some(python_env::kernel_specs(&s.kernels)),
                ..ConfigMap::default()
            }),
            service: studio_service(ws),
            statefulset: studio_statefulset(ws, s, proxied),
            reach: reach.cloned().unwrap_or(Reach::InCluster {
                reason: "InClusterOnly",
                message: String::new(),
                refused: false,
            }),
            access: match (reach, &config.access) {
                (Some(Reach::Proxied { host }), Some(layer)) => {
                    studio_exposures(ws, s, host).iter().map(|e| access::build(layer, e)).collect()
                }
                _ => Vec::new(),
            },
        }),
    }
}

fn meta(ws: &ValidatedWorkspace, name: &str, component: &str) -> ObjectMeta {
    child_meta(
        name,
        Some(&ws.namespace),
        workspace_labels(&ws.name, component),
        &ws.name,
        Some(ws.owner.clone()),
    )
}

/// The namespace: Pod Security `restricted` enforced, labelled with the Workspace's name and UID.
/// Only a namespace the operator created, under deletion policy `Delete`, carries an owner
/// reference (so deleting the Workspace deletes it); a handed-over namespace never does.
pub fn namespace(ws: &ValidatedWorkspace) -> Namespace {
    let mut labels = claim_labels(ws);
    for mode in ["enforce", "audit", "warn"] {
        labels.insert(format!("pod-security.kubernetes.io/{mode}"), "restricted".into());
        labels.insert(format!("pod-security.kubernetes.io/{mode}-version"), "latest".into());
    }
    let policy = match ws.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    Namespace {
        metadata: ObjectMeta {
            name: Some(ws.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(ANNOTATION_DELETION_POLICY.into(), policy.into())])),
            owner_references: (ws.deletion_policy == DeletionPolicy::Delete
                && ws.ownership != Ownership::Adopted)
                .then(|| vec![ws.owner.clone()]),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The labels that say whom a namespace was made for: created with the namespace, before
/// anything else is written into it.
pub fn claim_labels(ws: &ValidatedWorkspace) -> BTreeMap<String, String> {
    let mut labels = workspace_labels(&ws.name, "namespace");
    labels.insert(LABEL_WORKSPACE.into(), ws.name.clone());
    labels.insert(LABEL_WORKSPACE_UID.into(), ws.uid.clone());
    labels
}

/// What a per-workspace ClusterRole grants on the Workspace object itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkspaceAccess {
    /// Workspace admins: read and edit it. What they may change is limited by the admission
    /// policy `dataworkspace-workspace-admins` (not quota, namespace, deletion policy, network or
    /// the Studio host).
    Admin,
    /// Developers: read it. Viewers do not: the Workspace holds the variables and references
    /// they are not shown elsewhere.
    Member,
}

/// Name of a per-workspace ClusterRole and its binding.
pub fn workspace_role_name(workspace: &str, access: WorkspaceAccess) -> String {
    match access {
        WorkspaceAccess::Admin => format!("dataworkspace-workspace-{workspace}-admin"),
        WorkspaceAccess::Member => format!("dataworkspace-workspace-{workspace}-member"),
    }
}

fn cluster_meta(ws: &ValidatedWorkspace, name: String) -> ObjectMeta {
    child_meta(&name, None, workspace_labels(&ws.name, "access"), &ws.name, Some(ws.owner.clone()))
}

/// A ClusterRole on this Workspace object only (Workspaces are cluster-scoped, so a namespaced
/// Role cannot grant it).
pub fn workspace_role(ws: &ValidatedWorkspace, access: WorkspaceAccess) -> ClusterRole {
    let verbs: &[&str] = match access {
        WorkspaceAccess::Admin => &["get", "watch", "update", "patch"],
        WorkspaceAccess::Member => &["get", "watch"],
    };
    ClusterRole {
        metadata: cluster_meta(ws, workspace_role_name(&ws.name, access)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["dataworkspace.io".into()]),
            resources: Some(vec!["workspaces".into()]),
            resource_names: Some(vec![ws.name.clone()]),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..PolicyRule::default()
        }]),
        ..ClusterRole::default()
    }
}

/// Binds the admins, or the developers, to their per-workspace ClusterRole.
pub fn workspace_role_binding(
    ws: &ValidatedWorkspace,
    access: WorkspaceAccess,
    config: &Config,
) -> ClusterRoleBinding {
    let roles: &[Role] = match access {
        WorkspaceAccess::Admin => &[Role::Admin],
        WorkspaceAccess::Member => &[Role::Developer],
    };
    let subjects: Vec<Subject> = roles.iter().flat_map(|r| subjects(ws, *r, config)).collect();
    let name = workspace_role_name(&ws.name, access);
    ClusterRoleBinding {
        metadata: cluster_meta(ws, name.clone()),
        role_ref: RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: "ClusterRole".into(), name },
        subjects: (!subjects.is_empty()).then_some(subjects),
    }
}

fn quota(ws: &ValidatedWorkspace) -> ResourceQuota {
    let q = &ws.quota;
    let hard = BTreeMap::from([
        ("requests.cpu".to_string(), q.cpu.clone()),
        ("limits.cpu".to_string(), q.cpu.clone()),
        ("requests.memory".to_string(), q.memory.clone()),
        ("limits.memory".to_string(), q.memory.clone()),
        ("requests.storage".to_string(), q.storage.clone()),
        ("pods".to_string(), Quantity(q.pods.to_string())),
        // Services that bypass the authenticating proxy are not allowed.
        ("services.loadbalancers".to_string(), Quantity("0".into())),
        ("services.nodeports".to_string(), Quantity("0".into())),
    ]);
    ResourceQuota {
        metadata: meta(ws, QUOTA, "quota"),
        spec: Some(ResourceQuotaSpec { hard: Some(hard), ..ResourceQuotaSpec::default() }),
        ..ResourceQuota::default()
    }
}

fn limit_range(ws: &ValidatedWorkspace) -> LimitRange {
    let defaults = &ws.quota.container_defaults;
    LimitRange {
        metadata: meta(ws, LIMIT_RANGE, "limit-range"),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: defaults.limits.clone(),
                default_request: defaults.requests.clone(),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

/// Isolation: no ingress at all (other policies admit what may come in: [`peers_policy`], and
/// the access layer's proxies to the UIs behind them); egress to DNS in `kube-system`, the
/// namespace itself, addresses outside the denied ranges (cloud metadata and the operator's
/// `--egress-deny-cidrs`), and whatever `spec.network.egress` allows.
pub fn network_policy(ws: &ValidatedWorkspace, config: &Config) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(ws, NETWORK_POLICY, "network-policy"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(egress(ws, config)),
        }),
    }
}

/// The workspace's pods reach each other — except the pods of UIs behind the access layer
/// (labelled [`LABEL_PROXIED`]), which only their proxy reaches: with their own authentication
/// off, a member's pod must not open a UI its access list does not admit them to. A pod a
/// tenant labels so only cuts itself off.
pub fn peers_policy(ws: &ValidatedWorkspace) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(ws, PEERS_POLICY, "network-policy"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: LABEL_PROXIED.into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                }]),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector::default()),
                    ..NetworkPolicyPeer::default()
                }]),
                ..NetworkPolicyIngressRule::default()
            }]),
            egress: None,
        }),
    }
}

fn egress(ws: &ValidatedWorkspace, config: &Config) -> Vec<NetworkPolicyEgressRule> {
    let port = |protocol: &str, port: i32| NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        ..NetworkPolicyPort::default()
    };
    let namespace_peer = |name: &str| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".into(), name.into())])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let denied: Vec<&str> =
        DENIED_EGRESS.into_iter().chain(config.egress_deny_cidrs.iter().map(String::as_str)).collect();
    let outside = |all: &str, v6: bool| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: all.into(),
            except: Some(denied.iter().filter(|c| c.contains(':') == v6).map(|c| c.to_string()).collect()),
        }),
        ..NetworkPolicyPeer::default()
    };
    let dns = || Some(vec![port("UDP", 53), port("TCP", 53)]);
    let mut rules = vec![
        NetworkPolicyEgressRule {
            to: Some(vec![
                namespace_peer("kube-system"),
                NetworkPolicyPeer {
                    ip_block: Some(IPBlock { cidr: NODE_LOCAL_DNS.into(), except: None }),
                    ..NetworkPolicyPeer::default()
                },
            ]),
            ports: dns(),
        },
        NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..NetworkPolicyPeer::default()
            }]),
            ports: None,
        },
        NetworkPolicyEgressRule {
            to: Some(vec![outside("0.0.0.0/0", false), outside("::/0", true)]),
            ports: None,
        },
    ];
    rules.extend(ws.egress.iter().map(|allow| NetworkPolicyEgressRule {
        to: Some(vec![match (&allow.cidr, &allow.namespace) {
            (Some(cidr), _) => NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: cidr.clone(), except: None }),
                ..NetworkPolicyPeer::default()
            },
            (None, namespace) => namespace_peer(namespace.as_deref().unwrap_or_default()),
        }]),
        ports: (!allow.ports.is_empty()).then(|| allow.ports.iter().map(|p| port("TCP", *p)).collect()),
    }));
    rules
}

/// The subjects holding a role: the usernames of the people and, when the cluster supplies team
/// groups, the teams.
fn subjects(ws: &ValidatedWorkspace, role: Role, config: &Config) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = ws
        .people
        .get(&role)
        .into_iter()
        .flatten()
        .map(|p| Subject {
            kind: "User".into(),
            name: p.username.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        })
        .collect();
    if let Some(prefix) = &config.team_group_prefix {
        subjects.extend(ws.teams.get(&role).into_iter().flatten().map(|t| Subject {
            kind: "Group".into(),
            name: format!("{prefix}{t}"),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        }));
    }
    subjects
}

/// The binding of one role in the workspace namespace.
pub fn role_binding(ws: &ValidatedWorkspace, role: Role, config: &Config) -> RoleBinding {
    let subjects = subjects(ws, role, config);
    RoleBinding {
        metadata: meta(ws, cluster_role(role), "access"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role(role).into(),
        },
        subjects: (!subjects.is_empty()).then_some(subjects),
    }
}

fn variables(ws: &ValidatedWorkspace) -> ConfigMap {
    ConfigMap {
        metadata: meta(ws, VARIABLES, "config"),
        data: (!ws.variables.is_empty()).then(|| ws.variables.clone()),
        ..ConfigMap::default()
    }
}

fn studio_labels(ws: &ValidatedWorkspace) -> BTreeMap<String, String> {
    crate::names::labels("studio", &ws.name, "server")
}

fn studio_meta(ws: &ValidatedWorkspace) -> ObjectMeta {
    studio_child_meta(ws, STUDIO)
}

fn studio_child_meta(ws: &ValidatedWorkspace, name: &str) -> ObjectMeta {
    child_meta(name, Some(&ws.namespace), studio_labels(ws), &ws.name, Some(ws.owner.clone()))
}

fn studio_service(ws: &ValidatedWorkspace) -> Service {
    workload::service(studio_meta(ws), studio_labels(ws), &[("lab", LAB_PORT), ("ide", IDE_PORT)])
}

/// The Studio server: JupyterLab and code-server sharing a persistent home, the workspace's
/// repositories cloned into `~/repos` before start. Behind the access layer (`proxied`) the
/// proxies are the gate and only they reach the pod; otherwise JupyterLab keeps its token and
/// code-server its password.
pub fn studio_statefulset(ws: &ValidatedWorkspace, studio: &Studio, proxied: bool) -> StatefulSet {
    let (env_from, env) = env::workspace_env(&ws.secret_env);
    let home = VolumeMount { name: STUDIO_HOME.into(), mount_path: HOME.into(), ..VolumeMount::default() };
    let mut lab_args = vec!["start-notebook.py".to_string()];
    if proxied {
        lab_args.push("--IdentityProvider.token=".into());
    }
    let idle = jupyter::Idle { cull_after: studio.idle_timeout_seconds, shutdown_after: 0 };
    lab_args.extend(jupyter::as_args(&jupyter::idle_settings(idle)));
    let lab = Container {
        name: "jupyterlab".into(),
        image: Some(studio.image.clone()),
        args: Some(lab_args),
        ports: Some(vec![ContainerPort {
            name: Some("lab".into()),
            container_port: LAB_PORT,
            ..ContainerPort::default()
        }]),
        env_from: Some(env_from.clone()),
        env: (!env.is_empty()).then(|| env.clone()),
        resources: studio.resources.clone(),
        volume_mounts: Some(vec![home.clone()]),
        readiness_probe: Some(workload::http_probe("/api", "lab")),
        security_context: Some(pod::container_security(JOVYAN_UID, false)),
        ..Container::default()
    };
    let ide = Container {
        name: "ide".into(),
        image: Some(IDE_IMAGE.into()),
        // Skip the image's entrypoint: it runs a setuid helper that restricted pods cannot use.
        command: Some(vec!["/usr/bin/code-server".into()]),
        args: Some(vec![
            "--bind-addr".into(),
            format!("0.0.0.0:{IDE_PORT}"),
            "--disable-telemetry".into(),
            "--disable-update-check".into(),
            // No /proxy/<port> or port subdomains: a listener a member starts in the Studio
            // would receive the session cookie of whoever follows a link to it.
            "--disable-proxy".into(),
            format!("--auth={}", if proxied { "none" } else { "password" }),
            format!("--user-data-dir={HOME}/.local/share/code-server"),
            format!("{HOME}/repos"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("ide".into()),
            container_port: IDE_PORT,
            ..ContainerPort::default()
        }]),
        env: Some(
            [vec![EnvVar { name: "HOME".into(), value: Some(HOME.into()), ..EnvVar::default() }], env]
                .concat(),
        ),
        env_from: Some(env_from),
        volume_mounts: Some(vec![home.clone()]),
        readiness_probe: Some(workload::http_probe("/healthz", "ide")),
        security_context: Some(pod::container_security(JOVYAN_UID, false)),
        ..Container::default()
    };
    let clones: Vec<Container> = ws
        .repos
        .iter()
        .map(|r| git::container(r, STUDIO_HOME, HOME, &format!("{HOME}/repos"), git::Mode::Once))
        .collect();
    let pod_spec = PodSpec {
        automount_service_account_token: Some(false),
        security_context: Some(pod::pod_security(JOVYAN_UID, USERS_GID, Some(USERS_GID))),
        init_containers: (!clones.is_empty()).then_some(clones),
        containers: vec![lab, ide],
        volumes: Some(git::volumes(&ws.repos)),
        ..PodSpec::default()
    };
    let mut template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some({
                let mut labels = studio_labels(ws);
                if proxied {
                    labels.insert(LABEL_PROXIED.into(), "true".into());
                }
                labels
            }),
            ..ObjectMeta::default()
        }),
        spec: Some(pod_spec),
    };
    python_env::offer_kernels(&mut template, "jupyterlab", &studio.kernels, STUDIO_KERNELS);
    StatefulSet {
        metadata: studio_meta(ws),
        spec: Some(StatefulSetSpec {
            replicas: Some(if studio.stopped { 0 } else { 1 }),
            service_name: Some(STUDIO.into()),
            selector: LabelSelector { match_labels: Some(studio_labels(ws)), ..LabelSelector::default() },
            template,
            volume_claim_templates: Some(vec![workload::claim_template(
                STUDIO_HOME,
                &studio.storage_size,
                studio.storage_class.as_deref(),
            )]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        build::pod::tests::assert_restricted,
        controller::workspace::validate::{Ownership, validate},
        fixtures::{example_workspace, observed},
        names::{LABEL_MANAGED_BY, MANAGER},
    };

    fn objects(config: &Config) -> WorkspaceObjects {
        let (ws, users) = example_workspace();
        let validated = validate(&ws, &observed(users)).unwrap();
        build(&validated, config, None)
    }

    #[test]
    fn namespace_enforces_restricted_and_is_retained_by_default() {
        let ns = objects(&Config::default()).namespace;
        let labels = ns.metadata.labels.unwrap();
        assert_eq!(ns.metadata.name.as_deref(), Some("dw-analytics"));
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels[LABEL_WORKSPACE], "analytics");
        assert_eq!(
            ns.metadata.owner_references, None,
            "Retain: deleting the Workspace must not delete the namespace"
        );
        assert_eq!(ns.metadata.annotations.unwrap()[ANNOTATION_DELETION_POLICY], "Retain");
    }

    #[test]
    fn delete_policy_makes_the_workspace_own_the_namespace() {
        let (mut ws, users) = example_workspace();
        ws.spec.deletion_policy = DeletionPolicy::Delete;
        let validated = validate(&ws, &observed(users)).unwrap();
        let owners = namespace(&validated).metadata.owner_references.unwrap();
        assert_eq!(owners[0].kind, "Workspace");
        assert_eq!(owners[0].uid, "uid-1");
    }

    #[test]
    fn bindings_give_each_person_their_strongest_role() {
        let bindings = objects(&Config::default()).role_bindings;
        let subjects = |role: &str| -> Vec<String> {
            let b = bindings.iter().find(|b| b.role_ref.name == role).unwrap();
            b.subjects.iter().flatten().map(|s| s.name.clone()).collect()
        };
        // alice is admin by name and developer through data-engineering: admin wins.
        assert_eq!(subjects("dataworkspace-admin"), vec!["alice@example.com"]);
        assert_eq!(subjects("dataworkspace-developer"), vec!["bob@example.com"]);
        assert!(subjects("dataworkspace-viewer").is_empty());
        let viewer = bindings.iter().find(|b| b.role_ref.name == "dataworkspace-viewer").unwrap();
        assert_eq!(viewer.subjects, None, "no empty subject lists");
    }

    #[test]
    fn team_groups_are_bound_when_configured() {
        let config = Config { team_group_prefix: Some("oidc:".into()), ..Config::default() };
        let developer = objects(&config)
            .role_bindings
            .into_iter()
            .find(|b| b.role_ref.name == "dataworkspace-developer")
            .unwrap();
        let groups: Vec<String> =
            developer.subjects.unwrap().into_iter().filter(|s| s.kind == "Group").map(|s| s.name).collect();
        assert_eq!(groups, vec!["oidc:data-engineering", "oidc:data-science"]);
    }

    #[test]
    fn disabled_users_are_not_bound() {
        let (ws, mut users) = example_workspace();
        users.iter_mut().for_each(|u| u.spec.disabled = true);
        let validated = validate(&ws, &observed(users)).unwrap();
        assert!(validated.people.is_empty());
    }

    #[test]
    fn pods_admit_their_own_namespace_except_uis_behind_the_proxy() {
        let objs = objects(&Config::default());
        let isolation = objs.network_policy.spec.unwrap();
        assert_eq!(isolation.policy_types, Some(vec!["Ingress".to_string(), "Egress".to_string()]));
        assert_eq!(isolation.ingress, None, "isolation admits nothing on its own");
        let peers = objs.peers_policy.spec.unwrap();
        let from = peers.ingress.unwrap()[0].from.clone().unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(from[0].pod_selector, Some(LabelSelector::default()));
        let selector = peers.pod_selector.unwrap().match_expressions.unwrap();
        assert_eq!(
            (selector[0].key.as_str(), selector[0].operator.as_str()),
            (LABEL_PROXIED, "DoesNotExist")
        );
    }

    #[test]
    fn quota_comes_from_the_spec() {
        let hard = objects(&Config::default()).quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["requests.cpu"], Quantity("16".into()));
        assert_eq!(hard["limits.memory"], Quantity("64Gi".into()));
        assert_eq!(hard["pods"], Quantity("100".into()));
    }

    #[test]
    fn variables_are_published_and_secrets_only_referenced() {
        let objs = objects(&Config::default());
        let data = objs.variables.data.clone().unwrap();
        assert_eq!(data["ENVIRONMENT"], "production");
        let yaml = serde_yaml::to_string(&objs.variables).unwrap();
        assert!(!yaml.contains("change-me"), "no Secret value in the ConfigMap");
        let sts = objs.studio.unwrap().statefulset;
        let lab = &sts.spec.unwrap().template.spec.unwrap().containers[0];
        let conn = lab.env.iter().flatten().find(|e| e.name == "CONN_WAREHOUSE").unwrap();
        assert_eq!(conn.value, None);
        assert_eq!(
            conn.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name,
            "warehouse-connection"
        );
    }

    #[test]
    fn studio_passes_restricted_and_clones_the_repositories() {
        let studio = objects(&Config::default()).studio.unwrap();
        assert!(studio.access.is_empty(), "nothing exposed without the access layer");
        let (service, sts) = (studio.service, studio.statefulset);
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let pod = spec.template.spec.unwrap();
        assert_restricted(&pod);
        let clone = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(clone.name, "git-clone-pipelines");
        let ide = pod.containers.iter().find(|c| c.name == "ide").unwrap();
        assert!(
            ide.args.as_ref().unwrap().contains(&"--disable-proxy".to_string()),
            "code-server's port proxy is off"
        );
        let claim = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(
            claim.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            Quantity("20Gi".into())
        );
        let ports: Vec<i32> = service.spec.unwrap().ports.unwrap().iter().map(|p| p.port).collect();
        assert_eq!(ports, vec![LAB_PORT, IDE_PORT]);
    }

    #[test]
    fn every_child_is_labelled_and_owned() {
        let objs = objects(&Config::default());
        let studio = objs.studio.clone().unwrap();
        let (service, sts) = (studio.service, studio.statefulset);
        let metas = [
            objs.quota.metadata,
            objs.limit_range.metadata,
            objs.network_policy.metadata,
            objs.variables.metadata,
            service.metadata,
            sts.metadata,
        ]
        .into_iter()
        .chain(objs.role_bindings.into_iter().map(|b| b.metadata))
        .chain(objs.workspace_roles.into_iter().map(|r| r.metadata))
        .chain(objs.workspace_role_bindings.into_iter().map(|b| b.metadata));
        for meta in metas {
            let labels = meta.labels.clone().unwrap();
            assert_eq!(labels[LABEL_MANAGED_BY], MANAGER, "{:?}", meta.name);
            assert_eq!(labels[LABEL_WORKSPACE], "analytics", "{:?}", meta.name);
            assert_eq!(meta.owner_references.unwrap()[0].kind, "Workspace", "{:?}", meta.name);
        }
    }

    fn layer() -> Config {
        Config { access: Some(crate::build::access::tests::layer()), ..Config::default() }
    }

    fn with_host(host: Option<&str>) -> ValidatedWorkspace {
        let (mut ws, users) = example_workspace();
        ws.spec.studio.as_mut().unwrap().host = host.map(str::to_string);
        validate(&ws, &observed(users)).unwrap()
    }

    /// The objects as the controller builds them, nobody else claiming a host.
    fn exposed(ws: &ValidatedWorkspace, config: &Config) -> StudioObjects {
        let reach = studio_reach(ws, ws.studio.as_ref().unwrap(), config, |_| None);
        build(ws, config, Some(&reach)).studio.unwrap()
    }

    fn args(studio: &StudioObjects) -> (Vec<String>, Vec<String>) {
        let containers = studio.statefulset.spec.clone().unwrap().template.spec.unwrap().containers;
        (containers[0].args.clone().unwrap(), containers[1].args.clone().unwrap())
    }

    #[test]
    fn behind_the_access_layer_each_ui_has_its_own_proxy_and_list() {
        let studio = exposed(&with_host(Some("analytics.data.example.com")), &layer());
        assert_eq!(studio.reach, Reach::Proxied { host: "analytics.data.example.com".into() });
        assert_eq!(studio.access.len(), 2, "JupyterLab and the IDE");
        let hosts: Vec<String> = studio
            .access
            .iter()
            .flat_map(|a| a.ingress.clone().unwrap().spec.unwrap().rules.unwrap())
            .filter_map(|r| r.host)
            .collect();
        assert_eq!(hosts, vec!["analytics.data.example.com", "analytics-ide.data.example.com"]);
        for access in &studio.access {
            // The access list names both teams: alice (data-engineering), bob (data-science).
            assert_eq!(
                access.emails.data.as_ref().unwrap()["emails"],
                "alice@example.com\nbob@example.com\n"
            );
            assert_eq!(access.deployment.metadata.namespace.as_deref(), Some("dataworkspace-access"));
            let policy = &access.network_policy;
            assert_eq!(policy.metadata.namespace.as_deref(), Some("dw-analytics"));
            assert_eq!(policy.metadata.owner_references.as_ref().unwrap()[0].kind, "Workspace");
        }
        let ports: Vec<i32> = studio
            .access
            .iter()
            .map(|a| {
                match a.network_policy.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0]
                    .ports
                    .as_ref()
                    .unwrap()[0]
                    .port
                {
                    Some(IntOrString::Int(p)) => p,
                    _ => 0,
                }
            })
            .collect();
        assert_eq!(ports, vec![LAB_PORT, IDE_PORT]);
        // Behind the proxies, the proxies are the gate, and the pod is marked for the peers
        // policy to leave it out.
        let (lab, ide) = args(&studio);
        assert!(lab.contains(&"--IdentityProvider.token=".to_string()));
        assert!(ide.contains(&"--auth=none".to_string()));
        let template = studio.statefulset.spec.unwrap().template.metadata.unwrap();
        assert_eq!(template.labels.unwrap()[LABEL_PROXIED], "true");
    }

    #[test]
    fn without_the_layer_or_a_valid_unclaimed_host_the_studio_keeps_its_own_authentication() {
        let reason = |studio: &StudioObjects| match &studio.reach {
            Reach::InCluster { reason, refused, .. } => (*reason, *refused),
            Reach::Proxied { .. } => ("Proxied", false),
        };
        let cases = [
            (exposed(&with_host(None), &layer()), ("InClusterOnly", false)),
            (exposed(&with_host(Some("a.data.example.com")), &Config::default()), ("InClusterOnly", false)),
            (exposed(&with_host(Some("a.example.com")), &layer()), ("HostRejected", true)),
            (exposed(&with_host(Some("a.evil-data.example.com")), &layer()), ("HostRejected", true)),
        ];
        for (studio, expected) in cases {
            assert_eq!(reason(&studio), expected);
            assert!(studio.access.is_empty(), "nothing exposed: {expected:?}");
            let (lab, ide) = args(&studio);
            assert!(!lab.iter().any(|a| a.starts_with("--IdentityProvider.token")), "{expected:?}");
            assert!(ide.contains(&"--auth=password".to_string()), "{expected:?}");
            let template = studio.statefulset.spec.unwrap().template.metadata.unwrap();
            assert!(!template.labels.unwrap().contains_key(LABEL_PROXIED));
        }
        // A host another workspace exposes (here the IDE's) is refused, naming who has it.
        let ws = with_host(Some("b.data.example.com"));
        let reach = studio_reach(&ws, ws.studio.as_ref().unwrap(), &layer(), |e| {
            (e.host == "b-ide.data.example.com").then(|| "dw-other".to_string())
        });
        match &reach {
            Reach::InCluster { reason: "HostTaken", message, refused: true } => {
                assert!(
                    message.contains("b-ide.data.example.com") && message.contains("dw-other"),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(build(&ws, &layer(), Some(&reach)).studio.unwrap().access.is_empty());
    }

    #[test]
    fn nobody_allowed_means_the_proxies_admit_no_one() {
        // An empty list fails closed: the proxies run and admit nobody (security review H1).
        let mut nobody = with_host(Some("a.data.example.com"));
        nobody.studio.as_mut().unwrap().allowed.iter_mut().for_each(|p| p.email = None);
        let studio = exposed(&nobody, &layer());
        assert_eq!(studio.access.len(), 2);
        for access in &studio.access {
            assert_eq!(access.emails.data.as_ref().unwrap()["emails"], "");
        }
    }

    #[test]
    fn ready_python_environments_are_offered_as_read_only_kernels() {
        let (ws, users) = example_workspace();
        let mut observed = observed(users);
        observed.environments = vec![crate::build::python_env::Ready {
            name: "analytics-py312".into(),
            python_version: "3.12".into(),
            directory: "h-u".into(),
            image: None,
        }];
        let validated = validate(&ws, &observed).unwrap();
        let studio = build(&validated, &Config::default(), None).studio.unwrap();
        let specs = studio.kernels.unwrap().data.unwrap();
        let spec: serde_json::Value = serde_json::from_str(&specs["analytics-py312"]).unwrap();
        assert_eq!(
            spec["env"]["PYTHONPATH"],
            "/opt/dataworkspace/python-envs/analytics-py312/lib/python3.12/site-packages"
        );
        let template = studio.statefulset.spec.unwrap().template;
        let pod = template.spec.unwrap();
        let lab = pod.containers.iter().find(|c| c.name == "jupyterlab").unwrap();
        let mount = lab.volume_mounts.iter().flatten().find(|m| m.name == "pyenv-analytics-py312").unwrap();
        assert_eq!((mount.sub_path.as_deref(), mount.read_only), (Some("h-u"), Some(true)));
        assert!(lab.env.iter().flatten().any(|v| v.name == "JUPYTER_PATH"));
        let ide = pod.containers.iter().find(|c| c.name == "ide").unwrap();
        assert!(!ide.volume_mounts.iter().flatten().any(|m| m.name.starts_with("pyenv-")));
        assert_eq!(
            template.metadata.unwrap().annotations.unwrap()[crate::build::python_env::ANNOTATION_KERNELS],
            "analytics-py312/h-u",
            "a new build rolls the Studio"
        );
        // Without environments, nothing changes.
        let plain =
            build(&validate(&ws, &observed_without()).unwrap(), &Config::default(), None).studio.unwrap();
        assert!(plain.kernels.is_none());
        assert!(plain.statefulset.spec.unwrap().template.metadata.unwrap().annotations.is_none());
    }

    fn observed_without() -> crate::controller::workspace::validate::Observed {
        observed(example_workspace().1)
    }

    #[test]
    fn idle_timeout_culls_kernels() {
        let sts = objects(&Config::default()).studio.unwrap().statefulset;
        let args = sts.spec.unwrap().template.spec.unwrap().containers[0].args.clone().unwrap();
        assert!(args.contains(&"--MappingKernelManager.cull_idle_timeout=7200".to_string()), "{args:?}");
    }

    #[test]
    fn a_handed_over_namespace_is_never_owned_by_the_workspace() {
        let (mut ws, users) = example_workspace();
        ws.spec.deletion_policy = DeletionPolicy::Delete;
        let mut validated = validate(&ws, &observed(users)).unwrap();
        validated.ownership = Ownership::Adopted;
        let ns = namespace(&validated);
        assert_eq!(ns.metadata.owner_references, None, "deleting the Workspace must not delete it");
        assert_eq!(ns.metadata.labels.unwrap()[LABEL_WORKSPACE_UID], "uid-1");
    }

    #[test]
    fn workspace_admins_may_edit_only_their_workspace_and_members_read_it() {
        let objs = objects(&Config::default());
        let admin = &objs.workspace_roles[0];
        assert_eq!(admin.metadata.name.as_deref(), Some("dataworkspace-workspace-analytics-admin"));
        let rule = &admin.rules.as_ref().unwrap()[0];
        assert_eq!(rule.resource_names, Some(vec!["analytics".to_string()]));
        assert_eq!(rule.verbs, vec!["get", "watch", "update", "patch"]);
        let member_rule = &objs.workspace_roles[1].rules.as_ref().unwrap()[0];
        assert_eq!(member_rule.verbs, vec!["get", "watch"]);
        let names = |b: &ClusterRoleBinding| -> Vec<String> {
            b.subjects.iter().flatten().map(|s| s.name.clone()).collect()
        };
        assert_eq!(names(&objs.workspace_role_bindings[0]), vec!["alice@example.com"]);
        assert_eq!(names(&objs.workspace_role_bindings[1]), vec!["bob@example.com"]);
    }

    #[test]
    fn quota_forbids_services_that_bypass_the_proxy() {
        let hard = objects(&Config::default()).quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["services.loadbalancers"], Quantity("0".into()));
        assert_eq!(hard["services.nodeports"], Quantity("0".into()));
    }

    #[test]
    fn egress_denies_metadata_and_configured_ranges_and_allows_the_allow_list() {
        let config =
            Config { egress_deny_cidrs: vec!["10.0.0.0/8".into(), "fd00::/8".into()], ..Config::default() };
        let (mut ws, users) = example_workspace();
        ws.spec.network = Some(
            serde_yaml::from_str("egress: [{cidr: 10.1.2.0/24, ports: [5432]}, {namespace: shared-db}]")
                .unwrap(),
        );
        let validated = validate(&ws, &observed(users)).unwrap();
        let spec = network_policy(&validated, &config).spec.unwrap();
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string(), "Egress".to_string()]));
        let egress = spec.egress.unwrap();
        let blocks: Vec<IPBlock> = egress[2].to.iter().flatten().filter_map(|p| p.ip_block.clone()).collect();
        assert_eq!(blocks[0].cidr, "0.0.0.0/0");
        let except = blocks[0].except.clone().unwrap();
        assert_eq!(except.first().map(String::as_str), Some("169.254.0.0/16"));
        assert!(
            except.contains(&"168.63.129.16/32".to_string()) && except.contains(&"10.0.0.0/8".to_string())
        );
        assert!(!except.iter().any(|c| c.contains(':')), "IPv6 ranges go to the IPv6 block");
        // DNS also reaches NodeLocal DNSCache, inside the denied link-local range.
        let dns = egress[0].to.as_ref().unwrap();
        assert_eq!(dns[1].ip_block.as_ref().unwrap().cidr, NODE_LOCAL_DNS);
        assert_eq!(blocks[1].cidr, "::/0");
        assert!(blocks[1].except.as_ref().unwrap().contains(&"fd00::/8".to_string()));
        let allowed = &egress[3];
        assert_eq!(allowed.to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "10.1.2.0/24");
        assert_eq!(allowed.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(5432)));
        let ns = egress[4].to.as_ref().unwrap()[0].namespace_selector.as_ref().unwrap();
        assert_eq!(ns.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"], "shared-db");
        assert_eq!(egress[4].ports, None);
    }

    #[test]
    fn golden_objects_of_the_example_workspace() {
        let ws = with_host(Some("analytics.data.example.com"));
        let reach = studio_reach(&ws, ws.studio.as_ref().unwrap(), &layer(), |_| None);
        let objs = build(&ws, &layer(), Some(&reach));
        insta::assert_yaml_snapshot!("namespace", objs.namespace);
        insta::assert_yaml_snapshot!("workspace-roles", objs.workspace_roles);
        insta::assert_yaml_snapshot!("workspace-role-bindings", objs.workspace_role_bindings);
        insta::assert_yaml_snapshot!("quota", objs.quota);
        insta::assert_yaml_snapshot!("limit-range", objs.limit_range);
        insta::assert_yaml_snapshot!("network-policy", objs.network_policy);
        insta::assert_yaml_snapshot!("peers-policy", objs.peers_policy);
        insta::assert_yaml_snapshot!("role-bindings", objs.role_bindings);
        insta::assert_yaml_snapshot!("variables", objs.variables);
        let studio = objs.studio.unwrap();
        insta::assert_yaml_snapshot!("studio-service", studio.service);
        insta::assert_yaml_snapshot!("studio-statefulset", studio.statefulset);
        insta::assert_yaml_snapshot!(
            "studio-access-network-policies",
            [&studio.access[0].network_policy, &studio.access[1].network_policy]
        );
    }
}
