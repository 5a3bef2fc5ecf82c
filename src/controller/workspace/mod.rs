//! Reconciles Workspaces into tenant namespaces: observe → validate → build → apply → status.

pub mod build;
pub mod validate;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, StatefulSet},
        core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        rbac::v1::RoleBinding,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, ResourceExt,
    api::PostParams,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{Controller, controller::Action, reflector::ObjectRef},
};
use tracing::info;

use self::{
    build::WorkspaceObjects,
    validate::{Observed, Ownership, ValidatedWorkspace},
};
use super::{
    Caches, Context, Feeds, RESYNC, Valid, access, apply_cluster, apply_namespaced, apply_status_paced,
    cache::{existence, generation, json_signature, signature_of},
    delete_if_managed, resolve, root,
    user::project_phase,
    valid,
};
use crate::{
    build::access::{LABEL_OWNER_UID, Reach},
    conditions::{Desired, READY},
    crd::{Project, User, Workspace, WorkspaceStatus, workspace::ResourceUsage},
    error::{Error, Result},
    names::workspace_namespace,
};

/// How many foreign RoleBindings status names.
const FOREIGN_LIMIT: usize = 20;

/// Condition types the Workspace controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY, "Namespace", "Access", "Config", "Studio"];

/// The Workspace controller, fed by the caches: its own kind, its children, its namespace, the
/// RoleBindings and Secrets of its namespace, the Users behind its members and the Projects it
/// counts.
pub fn controller(feeds: &mut Feeds, ctx: &Arc<Context>) -> Controller<DeserializeGuard<Workspace>> {
    let caches = ctx.caches.clone();
    let owned = move || {
        let caches = caches.clone();
        move |namespace: Option<String>, owners: &[OwnerReference], labels: &BTreeMap<String, String>| {
            // Most children belong to Projects: skip the store for them. The access layer's
            // objects live in another namespace and name their owner by label.
            if owners.iter().any(|o| o.kind == "Workspace") {
                owning_workspace(&valid(&caches.workspaces), namespace.as_deref(), owners)
            } else {
                labels
                    .get(LABEL_OWNER_UID)
                    .and_then(|uid| workspace_by_uid(&valid(&caches.workspaces), Some(uid)))
            }
        }
    };
    let in_namespace = {
        let caches = ctx.caches.clone();
        move || {
            let caches = caches.clone();
            move |namespace: Option<String>| {
                workspaces_in_namespace(&valid(&caches.workspaces), namespace.as_deref())
            }
        }
    };
    let (users, secrets) = (ctx.caches.clone(), ctx.caches.clone());
    let (o1, o2, o3, o4, o5, o6, o7, o8, o9, o10) =
        (owned(), owned(), owned(), owned(), owned(), owned(), owned(), owned(), owned(), owned());
    let (n1, n2, n3, n4) = (in_namespace(), in_namespace(), in_namespace(), in_namespace());
    let controller = root(&mut feeds.workspaces)
        .watches_stream(feeds.quotas.subscribe(), move |o| {
            o1(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.limit_ranges.subscribe(), move |o| {
            o2(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.network_policies.subscribe(), move |o| {
            o3(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.config_maps.subscribe(), move |o| {
            o4(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.services.subscribe(), move |o| {
            o5(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.stateful_sets.subscribe(), move |o| {
            o6(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.ingresses.subscribe(), move |o| {
            o7(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.cluster_roles.subscribe(), move |o| {
            o8(o.namespace(), o.owner_references(), o.labels())
        })
        .watches_stream(feeds.cluster_role_bindings.subscribe(), move |o| {
            o9(o.namespace(), o.owner_references(), o.labels())
        })
        // Every RoleBinding of a workspace namespace: foreign ones are reported.
        .watches_stream(feeds.role_bindings.subscribe(), move |o| n1(o.namespace()))
        // Every namespace: one may appear, be handed over, or go away at any time.
        .watches_stream(feeds.namespaces.subscribe(), move |ns| n2(Some(ns.name_any())))
        // Python environments becoming ready or rebuilt: the Studio's kernels.
        .watches_stream(feeds.environments.subscribe_when(super::project::environment_state), move |e| {
            n4(kube::Resource::meta(&e).namespace.clone())
        })
        // The project counts by runtime and phase in status.
        .watches_stream(feeds.projects.subscribe_when(project_phase), move |project| n3(project.namespace()))
        // Who a User is and may be bound as; their status is the User controller's output.
        .watches_stream(feeds.users.subscribe_when(identity), move |user| match &user.0 {
            Ok(user) => workspaces_for_user(&valid(&users.workspaces), &valid(&users.users), user),
            Err(_) => Vec::new(),
        })
        // The Studio's proxies becoming available (they live in the access namespace and carry
        // their owner's UID as a label, not an owner reference).
        .watches_stream(feeds.deployments.subscribe_when(proxy_state), move |o| {
            o10(o.namespace(), o.owner_references(), o.labels())
        })
        // A referenced Secret appearing or going away; the operator never reads Secret values.
        .watches_stream(feeds.secrets.subscribe_when(existence), move |secret| {
            let workspaces = valid(&secrets.workspaces);
            let mut refs = workspaces_referencing(&workspaces, &secret);
            // A proxy's cookie secret names its owner by label.
            refs.extend(workspace_by_uid(&workspaces, secret.labels().get(LABEL_OWNER_UID)));
            refs
        });
    // The HTTPRoutes, when the layer routes through a Gateway.
    match feeds.routes.as_mut() {
        Some(routes) => {
            let o11 = owned();
            controller.watches_stream(routes.subscribe(), move |o| {
                o11(o.namespace(), o.owner_references(), o.labels())
            })
        }
        None => controller,
    }
}

/// What a Workspace reads of a proxy: its spec (someone may change it) and whether it is
/// available.
pub fn proxy_state(proxy: &Deployment) -> u64 {
    signature_of((proxy.metadata.generation, super::access::available(proxy)))
}

/// The Workspace with a UID, if any.
pub fn workspace_by_uid(
    workspaces: &[Valid<Workspace>],
    uid: Option<&String>,
) -> Option<ObjectRef<DeserializeGuard<Workspace>>> {
    let uid = uid?;
    workspaces.iter().find(|w| w.metadata.uid.as_ref() == Some(uid)).map(|w| ObjectRef::new(&w.name_any()))
}

/// What a Workspace reads of a User: its whole spec (username, teams, e-mail for the Studio's
/// access list, what makes it bindable) except the projects it pins.
pub fn identity(user: &DeserializeGuard<User>) -> u64 {
    match &user.0 {
        Ok(user) => json_signature(&crate::crd::user::UserSpec { pinned: Vec::new(), ..user.spec.clone() }),
        Err(_) => generation(user),
    }
}

/// The Workspace that owns a child, by owner reference, and only when the child sits in that
/// Workspace's namespace (or is cluster-scoped): an object a tenant creates in its own namespace
/// with an owner reference to another Workspace reaches nobody.
pub fn owning_workspace(
    workspaces: &[Valid<Workspace>],
    namespace: Option<&str>,
    owners: &[OwnerReference],
) -> Option<ObjectRef<DeserializeGuard<Workspace>>> {
    let owner =
        owners.iter().find(|o| o.kind == "Workspace" && o.api_version.starts_with("dataworkspace.io/"))?;
    let workspace = workspaces.iter().find(|w| w.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
    let own = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    match namespace {
        Some(ns) if ns != own => None,
        _ => Some(ObjectRef::new(&workspace.name_any())),
    }
}

/// The Workspaces a change of `user` can affect: those naming the user or one of their teams,
/// those the user's status lists (the new spec no longer leads to a Workspace the user has just
/// left, by leaving a team or being disabled, and that Workspace must unbind them), and, since
/// Users sharing a username are refused together, those of every User with the same username.
pub fn workspaces_for_user(
    workspaces: &[Valid<Workspace>],
    users: &[Valid<User>],
    user: &User,
) -> Vec<ObjectRef<DeserializeGuard<Workspace>>> {
    let mut refs = workspaces_of_user(workspaces, user);
    refs.extend(workspaces_in_status(workspaces, user));
    for other in users.iter().filter(|u| u.spec.username == user.spec.username) {
        refs.extend(workspaces_of_user(workspaces, other));
        refs.extend(workspaces_in_status(workspaces, other));
    }
    refs.sort_by(|a, b| a.name.cmp(&b.name));
    refs.dedup();
    refs
}

/// The Workspaces, of those that exist, that a User's status lists as theirs: where the User
/// was bound when its status was last written.
pub fn workspaces_in_status(
    workspaces: &[Valid<Workspace>],
    user: &User,
) -> Vec<ObjectRef<DeserializeGuard<Workspace>>> {
    let listed = user.status.iter().flat_map(|s| &s.workspaces).map(|a| a.workspace.as_str());
    listed.filter(|name| workspaces.iter().any(|w| w.name_any() == *name)).map(ObjectRef::new).collect()
}

/// The Workspaces of a Secret's namespace that reference it (connections, secrets, Git
/// credentials); other Secrets, such as a runtime's own, reach nobody.
pub fn workspaces_referencing(
    workspaces: &[Valid<Workspace>],
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<DeserializeGuard<Workspace>>> {
    let name = secret.name_any();
    workspaces
        .iter()
        .filter(|w| {
            Some(workspace_namespace(&w.name_any(), w.spec.namespace.as_deref())) == secret.namespace()
                && referenced_secrets(w).contains(&name)
        })
        .map(|w| ObjectRef::new(&w.name_any()))
        .collect()
}

/// The names of the Secrets a Workspace references.
pub fn referenced_secrets(workspace: &Workspace) -> std::collections::BTreeSet<String> {
    let spec = &workspace.spec;
    spec.connections
        .iter()
        .chain(&spec.secrets)
        .map(|e| e.secret_ref.name.clone())
        .chain(spec.git_repositories.iter().filter_map(|r| r.credentials_secret.clone()))
        .collect()
}

/// Workspaces that name the user, or one of the user's teams, as a member.
pub fn workspaces_of_user(
    workspaces: &[Valid<Workspace>],
    user: &User,
) -> Vec<ObjectRef<DeserializeGuard<Workspace>>> {
    let name = user.name_any();
    workspaces
        .iter()
        .filter(|w| {
            w.spec.members.iter().any(|m| {
                m.user.as_deref() == Some(name.as_str())
                    || m.team.as_ref().is_some_and(|t| user.spec.teams.contains(t))
            })
        })
        .map(|w| ObjectRef::new(&w.name_any()))
        .collect()
}

/// The Workspace owning a namespace, if any.
pub fn workspaces_in_namespace(
    workspaces: &[Valid<Workspace>],
    namespace: Option<&str>,
) -> Vec<ObjectRef<DeserializeGuard<Workspace>>> {
    workspaces
        .iter()
        .filter(|w| {
            Some(workspace_namespace(&w.name_any(), w.spec.namespace.as_deref()).as_str()) == namespace
        })
        .map(|w| ObjectRef::new(&w.name_any()))
        .collect()
}

/// One pass over a Workspace.
pub async fn reconcile(workspace: Arc<Workspace>, ctx: Arc<Context>) -> Result<Action> {
    if workspace.metadata.deletion_timestamp.is_some() {
        // Being deleted: owner references remove the children; applying them again would fight
        // the garbage collector.
        return Ok(Action::await_change());
    }
    ctx.caches.ready().await?;
    let observed = resolve::observe(&workspace, &ctx.caches, &ctx.config);
    let validated = validate::validate(&workspace, &observed)?;
    if let Some(old) = workspace.status.as_ref().and_then(|s| s.namespace.as_deref())
        && old != validated.namespace
    {
        leave_namespace(&ctx, old, &validated.uid).await?;
    }
    let reach = validated.studio.as_ref().map(|studio| {
        build::studio_reach(&validated, studio, &ctx.config, |exposure| {
            let layer = ctx.config.access.as_ref()?;
            access::claimant(&ctx.caches, &layer.namespace, exposure)
        })
    });
    let objects = build::build(&validated, &ctx.config, reach.as_ref());
    let applied = apply(&ctx, &validated, objects).await?;
    let (status, conditions) = status(&validated, &observed, &applied, reach.as_ref(), &ctx.caches);
    // A host someone else holds may be released at any time; nothing wakes us for that.
    let resync = match &reach {
        Some(Reach::InCluster { reason: "HostTaken", .. }) => crate::error::DEPENDENCY_RETRY,
        _ => RESYNC,
    };
    // Project counts and quota usage change with every project and pod: paced.
    Ok(match apply_status_paced(&ctx, &*workspace, status, &conditions).await? {
        Some(wait) => Action::requeue(wait.min(resync)),
        None => Action::requeue(resync),
    })
}

/// Creates the namespace, labelled with the Workspace's name and UID, if it does not exist.
/// A create (not an apply) fails when the namespace appeared in the meantime, so two Workspaces
/// racing for one name never share it: the loser sees the winner's UID on its next pass.
async fn create_namespace(ctx: &Context, ws: &ValidatedWorkspace) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ws.namespace.clone()),
            labels: Some(build::claim_labels(ws)),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let params = PostParams { field_manager: Some(crate::names::MANAGER.into()), ..PostParams::default() };
    ctx.count_write("Namespace");
    api.create(&params, &namespace)
        .await
        .map_err(|source| Error::Apply { what: format!("Namespace {}", ws.namespace), source })?;
    info!(namespace = %ws.namespace, workspace = %ws.name, "created the workspace namespace");
    Ok(())
}

/// Removes this Workspace's objects (by owner UID) from a namespace it no longer uses (objects
/// made before `spec.namespace` became immutable in every form).
async fn leave_namespace(ctx: &Context, namespace: &str, uid: &str) -> Result<()> {
    for name in build::ROLE_BINDINGS {
        remove_owned::<RoleBinding>(ctx, namespace, name, uid).await?;
    }
    remove_owned::<StatefulSet>(ctx, namespace, build::STUDIO, uid).await?;
    remove_owned::<Service>(ctx, namespace, build::STUDIO, uid).await?;
    remove_owned::<NetworkPolicy>(ctx, namespace, build::NETWORK_POLICY, uid).await?;
    remove_owned::<NetworkPolicy>(ctx, namespace, build::PEERS_POLICY, uid).await?;
    remove_owned::<ConfigMap>(ctx, namespace, build::VARIABLES, uid).await?;
    remove_owned::<ConfigMap>(ctx, namespace, build::STUDIO_KERNELS, uid).await?;
    remove_owned::<LimitRange>(ctx, namespace, build::LIMIT_RANGE, uid).await?;
    remove_owned::<ResourceQuota>(ctx, namespace, build::QUOTA, uid).await
}

async fn remove_owned<K>(ctx: &Context, namespace: &str, name: &str, uid: &str) -> Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + super::cache::Cached
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let owned = super::cache::cached_meta::<K>(&ctx.caches, Some(namespace), name)
        .is_some_and(|m| m.owner_references.iter().flatten().any(|o| o.uid == uid));
    if owned { delete_if_managed::<K>(ctx, namespace, name).await } else { Ok(()) }
}

/// Deletes the foreign RoleBindings (with `--remove-foreign-rolebindings`).
async fn remove_foreign_role_bindings(ctx: &Context, ws: &ValidatedWorkspace) -> Result<()> {
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ws.namespace);
    for name in &ws.foreign_role_bindings {
        ctx.count_write("RoleBinding");
        match api.delete(name, &Default::default()).await {
            Ok(_) => {
                info!(namespace = %ws.namespace, binding = %name, "removed a RoleBinding the operator did not make")
            }
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(source) => {
                return Err(Error::Apply { what: format!("RoleBinding {}/{name}", ws.namespace), source });
            }
        }
    }
    Ok(())
}

/// What was applied, as the API server returned it.
struct Applied {
    namespace: Namespace,
    quota: ResourceQuota,
    studio: Option<StatefulSet>,
    /// Whether every proxy of the Studio is available.
    proxies_available: bool,
    /// Whether the foreign RoleBindings were deleted.
    foreign_removed: bool,
}

/// Applies in dependency order (namespace first), then removes what this pass no longer produces.
async fn apply(ctx: &Context, ws: &ValidatedWorkspace, objects: WorkspaceObjects) -> Result<Applied> {
    if ws.ownership == Ownership::Create {
        create_namespace(ctx, ws).await?;
    }
    let namespace = apply_cluster(ctx, &objects.namespace).await?;
    for role in &objects.workspace_roles {
        apply_cluster(ctx, role).await?;
    }
    for binding in &objects.workspace_role_bindings {
        apply_cluster(ctx, binding).await?;
    }
    let quota = apply_namespaced(ctx, &objects.quota).await?;
    apply_namespaced(ctx, &objects.limit_range).await?;
    // Peers first: isolation admits nothing on its own, so the other order would cut the
    // namespace's pods off from each other for a moment when upgrading from one policy.
    apply_namespaced(ctx, &objects.peers_policy).await?;
    apply_namespaced(ctx, &objects.network_policy).await?;
    for binding in &objects.role_bindings {
        apply_namespaced(ctx, binding).await?;
    }
    if ctx.config.remove_foreign_role_bindings {
        remove_foreign_role_bindings(ctx, ws).await?;
    }
    apply_namespaced(ctx, &objects.variables).await?;
    let mut proxies_available = true;
    let studio = match &objects.studio {
        Some(studio) => {
            apply_namespaced(ctx, &studio.service).await?;
            // The proxies first: the servers switch their own authentication off only behind
            // them, and only they may reach the servers then.
            for exposure in &studio.access {
                proxies_available &= access::expose(ctx, exposure).await?;
            }
            match &studio.kernels {
                Some(kernels) => drop(apply_namespaced(ctx, kernels).await?),
                None => delete_if_managed::<ConfigMap>(ctx, &ws.namespace, build::STUDIO_KERNELS).await?,
            }
            Some(apply_namespaced(ctx, &studio.statefulset).await?)
        }
        None => {
            // The home volume (a PVC of the StatefulSet's template) is kept: it holds user data.
            delete_if_managed::<StatefulSet>(ctx, &ws.namespace, build::STUDIO).await?;
            delete_if_managed::<Service>(ctx, &ws.namespace, build::STUDIO).await?;
            delete_if_managed::<ConfigMap>(ctx, &ws.namespace, build::STUDIO_KERNELS).await?;
            None
        }
    };
    // Exposures no longer wanted go once the servers have their own authentication back.
    if let Some(layer) = &ctx.config.access {
        let keep: BTreeSet<String> = objects
            .studio
            .iter()
            .flat_map(|s| &s.access)
            .filter_map(|a| a.deployment.metadata.name.clone())
            .collect();
        access::withdraw(ctx, &layer.namespace, &ws.uid, Some(&ws.namespace), &keep).await?;
    }
    // Ingresses of earlier releases, which routed to the server itself.
    delete_if_managed::<Ingress>(ctx, &ws.namespace, build::STUDIO).await?;
    let foreign_removed = ctx.config.remove_foreign_role_bindings;
    Ok(Applied { namespace, quota, studio, proxies_available, foreign_removed })
}

/// Status computed from what was applied and observed.
fn status(
    ws: &ValidatedWorkspace,
    observed: &Observed,
    applied: &Applied,
    reach: Option<&Reach>,
    caches: &Caches,
) -> (WorkspaceStatus, Vec<Desired>) {
    let mut conditions = Vec::new();
    let namespace_ok = applied.namespace.metadata.deletion_timestamp.is_none();
    conditions.push(if namespace_ok {
        Desired::yes(
            "Namespace",
            "Provisioned",
            format!("namespace {} with quota, limits, isolation and bindings", ws.namespace),
        )
    } else {
        Desired::no(
            "Namespace",
            "NamespaceTerminating",
            format!("namespace {} is being deleted", ws.namespace),
        )
    });
    let bound: usize = ws.people.values().map(Vec::len).sum();
    let foreign = &ws.foreign_role_bindings;
    conditions.push(if foreign.is_empty() || applied.foreign_removed {
        Desired::yes("Access", "Bound", format!("{bound} people bound to workspace roles"))
    } else {
        let mut names: Vec<&str> = foreign.iter().take(FOREIGN_LIMIT).map(String::as_str).collect();
        if foreign.len() > FOREIGN_LIMIT {
            names.push("…");
        }
        Desired::no(
            "Access",
            "ForeignRoleBindings",
            format!(
                "RoleBindings the operator did not make grant access in {} outside spec.members: {}; access is granted through the Workspace only, so remove them (or run the operator with --remove-foreign-rolebindings)",
                ws.namespace,
                names.join(", ")
            ),
        )
    });
    conditions.push(if observed.missing_secrets.is_empty() {
        Desired::yes("Config", "Valid", "variables published; every referenced Secret exists")
    } else {
        let names: Vec<&str> = observed.missing_secrets.iter().map(String::as_str).collect();
        Desired::no(
            "Config",
            "MissingSecret",
            format!("Secrets not found in {}: {}", ws.namespace, names.join(", ")),
        )
    });
    let studio_condition = match (&ws.studio, &applied.studio, reach) {
        (None, _, _) => Desired::yes("Studio", "Disabled", "the workspace has no Studio server"),
        (Some(_), _, Some(Reach::InCluster { reason, message, refused: true })) => {
            Desired::no("Studio", reason, message.clone())
        }
        (Some(s), _, _) if s.stopped => {
            Desired::yes("Studio", "Stopped", "the Studio server is stopped; its home volume is kept")
        }
        (Some(s), Some(sts), reach)
            if sts.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0) >= 1 =>
        {
            match reach {
                Some(Reach::Proxied { host }) if applied.proxies_available => Desired::yes(
                    "Studio",
                    "Authenticated",
                    format!(
                        "running at https://{host}/ (IDE: https://{}/) behind the access layer for {} allowed user(s)",
                        build::ide_host(host),
                        s.allowed.iter().filter(|p| p.email.is_some()).count()
                    ),
                ),
                Some(Reach::Proxied { .. }) => {
                    Desired::no("Studio", "ProxyStarting", "the authenticating proxies are not available yet")
                }
                Some(Reach::InCluster { reason, message, .. }) => {
                    Desired::yes("Studio", reason, format!("running; {message}"))
                }
                None => Desired::yes("Studio", "InClusterOnly", "running; reachable inside the cluster only"),
            }
        }
        _ => Desired::no("Studio", "Starting", "the Studio server is not ready yet"),
    };
    conditions.push(studio_condition);
    let failing: Vec<&Desired> = conditions.iter().filter(|c| !c.status).collect();
    let ready = match failing.first() {
        None => Desired::yes(READY, "Ready", "the workspace is provisioned"),
        Some(first) => Desired::no(READY, first.reason, format!("{}: {}", first.type_, first.message)),
    };
    conditions.insert(0, ready);

    let projects: Vec<Valid<Project>> = valid(&caches.projects)
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ws.namespace.as_str()))
        .collect();
    let mut by_runtime = BTreeMap::new();
    let mut by_phase = BTreeMap::new();
    for project in &projects {
        *by_runtime.entry(project.spec.runtime.as_str().to_string()).or_insert(0) += 1;
        let phase =
            project.status.as_ref().and_then(|s| s.phase).map_or("Unknown", |p| p.as_str()).to_string();
        *by_phase.entry(phase).or_insert(0) += 1;
    }
    let quota_status = applied.quota.status.clone().unwrap_or_default();
    let usage = quota_status
        .hard
        .unwrap_or_default()
        .into_iter()
        .map(|(resource, hard)| {
            let used = quota_status.used.as_ref().and_then(|u| u.get(&resource)).cloned();
            (resource, ResourceUsage { used, hard })
        })
        .collect();
    let status = WorkspaceStatus {
        namespace: Some(ws.namespace.clone()),
        member_count: Some(i32::try_from(ws.member_count).unwrap_or(i32::MAX)),
        project_count: Some(i32::try_from(projects.len()).unwrap_or(i32::MAX)),
        projects_by_runtime: by_runtime,
        projects_by_phase: by_phase,
        usage,
        missing_secrets: observed.missing_secrets.iter().cloned().collect(),
        foreign_role_bindings: if applied.foreign_removed {
            Vec::new()
        } else {
            ws.foreign_role_bindings.iter().take(FOREIGN_LIMIT).cloned().collect()
        },
        studio_endpoint: ws.studio.as_ref().map(|_| match reach {
            Some(Reach::Proxied { host }) => format!("https://{host}/"),
            _ => format!("http://{}.{}.svc:{}", build::STUDIO, ws.namespace, build::LAB_PORT),
        }),
        ..WorkspaceStatus::default()
    };
    (status, conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::shared;

    fn from<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn names(refs: &[ObjectRef<DeserializeGuard<Workspace>>]) -> Vec<&str> {
        refs.iter().map(|r| r.name.as_str()).collect()
    }

    fn workspaces() -> Vec<Valid<Workspace>> {
        shared(vec![
            from("metadata: {name: a}\nspec: {members: [{team: eng, role: developer}]}"),
            from("metadata: {name: b}\nspec: {members: [{user: alice, role: viewer}]}"),
            from("metadata: {name: c}\nspec: {namespace: shared-c, members: [{user: bob, role: admin}]}"),
        ])
    }

    #[test]
    fn a_user_maps_to_the_workspaces_naming_them_or_their_teams() {
        let alice: User = from("metadata: {name: alice}\nspec: {username: alice@x, teams: [eng]}");
        assert_eq!(names(&workspaces_of_user(&workspaces(), &alice)), ["a", "b"]);
        let carol: User = from("metadata: {name: carol}\nspec: {username: carol@x, teams: [ops]}");
        assert!(workspaces_of_user(&workspaces(), &carol).is_empty());
    }

    #[test]
    fn a_namespace_maps_to_the_workspace_owning_it() {
        let all = workspaces();
        assert_eq!(names(&workspaces_in_namespace(&all, Some("dw-a"))), ["a"]);
        assert_eq!(names(&workspaces_in_namespace(&all, Some("shared-c"))), ["c"]);
        // A spec.namespace replaces the default name.
        assert!(workspaces_in_namespace(&all, Some("dw-c")).is_empty());
        assert!(workspaces_in_namespace(&all, Some("default")).is_empty());
        assert!(workspaces_in_namespace(&all, None).is_empty());
    }

    #[test]
    fn a_user_who_left_a_team_still_reaches_the_workspaces_that_bound_them() {
        // Alice left team `eng`: her new spec leads to no Workspace, her status (written while
        // she was a member) still lists `a` — which must now unbind her.
        let alice: User = from(
            "metadata: {name: alice}\nspec: {username: alice@x, teams: []}\nstatus: {workspaces: [{workspace: a, role: developer}, {workspace: gone, role: viewer}]}",
        );
        let all = workspaces();
        assert_eq!(
            names(&workspaces_in_status(&all, &alice)),
            ["a"],
            "Workspaces that no longer exist are left out"
        );
        let users = shared(vec![alice.clone()]);
        assert_eq!(names(&workspaces_for_user(&all, &users, &alice)), ["a", "b"]);
        // Without a status, only the spec counts.
        let fresh: User = from("metadata: {name: dave}\nspec: {username: dave@x, teams: [eng]}");
        assert!(workspaces_in_status(&all, &fresh).is_empty());
        assert_eq!(names(&workspaces_for_user(&all, &shared(vec![fresh.clone()]), &fresh)), ["a"]);
    }

    #[test]
    fn users_sharing_a_username_reach_each_others_workspaces_once() {
        let bob: User = from("metadata: {name: bob}\nspec: {username: shared@x}");
        let impostor: User = from(
            "metadata: {name: impostor}\nspec: {username: shared@x, teams: [eng]}\nstatus: {workspaces: [{workspace: a, role: developer}]}",
        );
        let users = shared(vec![bob.clone(), impostor.clone()]);
        assert_eq!(names(&workspaces_for_user(&workspaces(), &users, &bob)), ["a", "c"]);
        assert_eq!(names(&workspaces_for_user(&workspaces(), &users, &impostor)), ["a", "c"]);
    }

    #[test]
    fn a_users_pins_do_not_wake_workspaces_but_their_email_does() {
        let guard = |yaml: &str| DeserializeGuard(Ok(from::<User>(yaml)));
        let base = identity(&guard("metadata: {name: a}\nspec: {username: a@x, email: a@x.io}"));
        let pinned = guard(
            "metadata: {name: a}\nspec: {username: a@x, email: a@x.io, pinned: [{namespace: dw-a, name: p}]}",
        );
        assert_eq!(identity(&pinned), base);
        assert_ne!(identity(&guard("metadata: {name: a}\nspec: {username: a@x, email: b@x.io}")), base);
        assert_ne!(
            identity(&guard("metadata: {name: a}\nspec: {username: a@x, email: a@x.io, disabled: true}")),
            base
        );
    }

    #[test]
    fn namespace_conflicts_depend_on_other_objects() {
        let existing = validate::ExistingNamespace { workspace: Some("other".into()), ..Default::default() };
        let error = validate::ownership("a", "uid-a", "dw-a", Some(&existing)).unwrap_err();
        assert_eq!(error.reason(), "NamespaceConflict");
        assert!(error.is_dependency() && !error.is_permanent(), "{error:?}");
        let retained = validate::ExistingNamespace {
            workspace: Some("a".into()),
            uid: Some("uid-old".into()),
            ..Default::default()
        };
        let error = validate::ownership("a", "uid-a", "dw-a", Some(&retained)).unwrap_err();
        assert_eq!(error.reason(), "RetainedNamespace");
        assert!(error.is_dependency() && !error.is_permanent(), "{error:?}");
    }
}
