//! Reconciles Workspaces into tenant namespaces: observe → validate → build → apply → status.

pub mod build;
pub mod validate;

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
        rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use tracing::info;

use self::{
    build::WorkspaceObjects,
    validate::{ExistingNamespace, Observed, Ownership, ValidatedWorkspace},
};
use super::{
    Context, RESYNC, Stores, apply_cluster, apply_namespaced, apply_status, delete_if_managed,
    identity::Identities, managed_children, valid,
};
use crate::{
    conditions::{Desired, READY},
    crd::{Project, User, Workspace, WorkspaceStatus, workspace::ResourceUsage},
    error::{Error, Result},
    names::{
        ANNOTATION_ADOPT, LABEL_MANAGED_BY, LABEL_WORKSPACE, LABEL_WORKSPACE_UID, MANAGER,
        workspace_namespace,
    },
};

/// How many foreign RoleBindings status names.
const FOREIGN_LIMIT: usize = 20;

/// Condition types the Workspace controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY, "Namespace", "Access", "Config", "Studio"];

/// Adds the Workspace's relations: its children, its namespace, the Users behind its members,
/// the Secrets it references and the Projects it counts.
pub fn relations(
    controller: Controller<DeserializeGuard<Workspace>>,
    ctx: &Arc<Context>,
) -> Controller<DeserializeGuard<Workspace>> {
    let client = ctx.client.clone();
    let stores = ctx.stores.clone();
    let (by_user, by_secret, by_project) = (stores.clone(), stores.clone(), stores.clone());
    let in_namespace = move |namespace: Option<String>| {
        workspaces_in_namespace(&valid(&stores.workspaces), namespace.as_deref())
    };
    let (ns1, ns2, ns3, ns4, ns5, ns6, ns7, ns8) = (
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
        in_namespace.clone(),
    );
    // Namespaced children map to the Workspace owning their namespace, never to whatever their
    // labels claim: a tenant can label objects in its own namespace, not in others'.
    controller
        .watches(Api::<ResourceQuota>::all(client.clone()), managed_children(), move |o| ns1(o.namespace()))
        .watches(Api::<LimitRange>::all(client.clone()), managed_children(), move |o| ns2(o.namespace()))
        .watches(Api::<NetworkPolicy>::all(client.clone()), managed_children(), move |o| ns3(o.namespace()))
        // Every RoleBinding (metadata only): foreign ones are reported.
        .watches(
            Api::<PartialObjectMeta<RoleBinding>>::all(client.clone()),
            watcher::Config::default(),
            move |o| ns4(o.namespace()),
        )
        .watches(Api::<ConfigMap>::all(client.clone()), managed_children(), move |o| ns5(o.namespace()))
        .watches(Api::<Service>::all(client.clone()), managed_children(), move |o| ns6(o.namespace()))
        .watches(Api::<StatefulSet>::all(client.clone()), managed_children(), move |o| ns7(o.namespace()))
        .watches(Api::<Ingress>::all(client.clone()), managed_children(), move |o| ns8(o.namespace()))
        // Only cluster admins and the operator write these cluster-scoped objects.
        .watches(Api::<ClusterRole>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<ClusterRoleBinding>::all(client.clone()), managed_children(), owning_workspace)
        // Every namespace (metadata only): one may appear, or be handed over, at any time.
        .watches(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
            move |ns| in_namespace(Some(ns.name_any())),
        )
        .watches(Api::<User>::all(client.clone()), watcher::Config::default(), move |user| {
            // Users sharing a username are refused together: reach their workspaces too.
            let users = valid(&by_user.users);
            let workspaces = valid(&by_user.workspaces);
            let mut refs = workspaces_of_user(&workspaces, &user);
            for other in users.iter().filter(|u| u.spec.username == user.spec.username) {
                refs.extend(workspaces_of_user(&workspaces, other));
            }
            refs.sort_by(|a, b| a.name.cmp(&b.name));
            refs.dedup();
            refs
        })
        // Metadata only: the operator never holds Secret values.
        .watches(
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            watcher::Config::default(),
            move |secret| {
                workspaces_in_namespace(&valid(&by_secret.workspaces), secret.namespace().as_deref())
            },
        )
        .watches(Api::<Project>::all(client), watcher::Config::default(), move |project| {
            workspaces_in_namespace(&valid(&by_project.workspaces), project.namespace().as_deref())
        })
}

/// The Workspace named by an object's workspace label.
pub fn owning_workspace<K: kube::Resource>(object: K) -> Option<ObjectRef<DeserializeGuard<Workspace>>> {
    object.labels().get(LABEL_WORKSPACE).map(|w| ObjectRef::new(w))
}

/// Workspaces that name the user, or one of the user's teams, as a member.
pub fn workspaces_of_user(
    workspaces: &[Workspace],
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
    workspaces: &[Workspace],
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
    ctx.stores.ready().await?;
    let observed = observe(&workspace, &ctx).await?;
    let validated = validate::validate(&workspace, &observed)?;
    if let Some(old) = workspace.status.as_ref().and_then(|s| s.namespace.as_deref())
        && old != validated.namespace
    {
        leave_namespace(&ctx, old).await?;
    }
    let objects = build::build(&validated, &ctx.config);
    let applied = apply(&ctx, &validated, objects).await?;
    let (status, conditions) = status(&validated, &observed, &applied, &ctx.stores);
    apply_status(&ctx, &*workspace, status, &conditions).await?;
    Ok(Action::requeue(RESYNC))
}

/// Reads what validation needs: the Users, who the namespace belongs to, which Secrets are
/// missing, which RoleBindings the operator did not make.
async fn observe(workspace: &Workspace, ctx: &Context) -> Result<Observed> {
    let namespace = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let existing = namespaces
        .get_metadata_opt(&namespace)
        .await
        .map_err(|source| Error::Read { what: format!("Namespace {namespace}"), source })?;
    let workspaces = valid(&ctx.stores.workspaces);
    let existing = existing.map(|ns| existing_namespace(&ns, workspace, &workspaces));

    let mut missing_secrets = std::collections::BTreeSet::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let spec = &workspace.spec;
    let referenced = spec
        .connections
        .iter()
        .chain(&spec.secrets)
        .map(|e| e.secret_ref.name.clone())
        .chain(spec.git_repositories.iter().filter_map(|r| r.credentials_secret.clone()));
    for name in referenced.collect::<std::collections::BTreeSet<_>>() {
        // Only metadata is read: the operator never holds Secret values.
        let found = secrets
            .get_metadata_opt(&name)
            .await
            .map_err(|source| Error::Read { what: format!("Secret {namespace}/{name}"), source })?;
        if found.is_none() {
            missing_secrets.insert(name);
        }
    }
    let foreign_role_bindings = match &existing {
        Some(_) => foreign_role_bindings(ctx, &namespace).await?,
        None => Vec::new(),
    };
    Ok(Observed {
        identities: Identities::new(&valid(&ctx.stores.users), &ctx.config),
        namespace: existing,
        missing_secrets,
        foreign_role_bindings,
    })
}

/// What an existing namespace says about its owner; `live_owner` is another Workspace, still
/// present, whose UID it carries.
fn existing_namespace(
    ns: &PartialObjectMeta<Namespace>,
    workspace: &Workspace,
    workspaces: &[Workspace],
) -> ExistingNamespace {
    let uid = ns.labels().get(LABEL_WORKSPACE_UID).cloned();
    let live_owner = uid.as_ref().and_then(|uid| {
        workspaces
            .iter()
            .find(|w| w.metadata.uid.as_ref() == Some(uid) && w.metadata.uid != workspace.metadata.uid)
            .map(|w| w.name_any())
    });
    ExistingNamespace {
        workspace: ns.labels().get(LABEL_WORKSPACE).cloned(),
        uid,
        adopt: ns.annotations().get(ANNOTATION_ADOPT).cloned(),
        live_owner,
    }
}

/// RoleBindings in the namespace the operator did not make, sorted by name.
async fn foreign_role_bindings(ctx: &Context, namespace: &str) -> Result<Vec<String>> {
    let api: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), namespace);
    let list = api
        .list_metadata(&ListParams::default())
        .await
        .map_err(|source| Error::Read { what: format!("RoleBindings in {namespace}"), source })?;
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|b| b.labels().get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGER))
        .map(|b| b.name_any())
        .collect();
    names.sort();
    Ok(names)
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

/// Removes the operator's objects from a namespace the Workspace no longer uses (objects made
/// before `spec.namespace` became immutable in every form).
async fn leave_namespace(ctx: &Context, namespace: &str) -> Result<()> {
    for role in [
        crate::crd::common::Role::Admin,
        crate::crd::common::Role::Developer,
        crate::crd::common::Role::Viewer,
    ] {
        delete_if_managed::<RoleBinding>(ctx, namespace, build::cluster_role(role)).await?;
    }
    delete_if_managed::<Ingress>(ctx, namespace, build::STUDIO).await?;
    delete_if_managed::<StatefulSet>(ctx, namespace, build::STUDIO).await?;
    delete_if_managed::<Service>(ctx, namespace, build::STUDIO).await?;
    delete_if_managed::<NetworkPolicy>(ctx, namespace, build::NETWORK_POLICY).await?;
    delete_if_managed::<ConfigMap>(ctx, namespace, build::VARIABLES).await?;
    delete_if_managed::<LimitRange>(ctx, namespace, build::LIMIT_RANGE).await?;
    delete_if_managed::<ResourceQuota>(ctx, namespace, build::QUOTA).await
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
    /// Whether the Studio server has an authenticated Ingress.
    exposed: bool,
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
    apply_namespaced(ctx, &objects.network_policy).await?;
    for binding in &objects.role_bindings {
        apply_namespaced(ctx, binding).await?;
    }
    if ctx.config.remove_foreign_role_bindings {
        remove_foreign_role_bindings(ctx, ws).await?;
    }
    apply_namespaced(ctx, &objects.variables).await?;
    let studio = match &objects.studio {
        Some(studio) => {
            apply_namespaced(ctx, &studio.service).await?;
            let statefulset = apply_namespaced(ctx, &studio.statefulset).await?;
            match &studio.ingress {
                Some(ingress) => {
                    apply_namespaced(ctx, ingress).await?;
                }
                None => delete_if_managed::<Ingress>(ctx, &ws.namespace, build::STUDIO).await?,
            }
            Some(statefulset)
        }
        None => {
            // The home volume (a PVC of the StatefulSet's template) is kept: it holds user data.
            delete_if_managed::<Ingress>(ctx, &ws.namespace, build::STUDIO).await?;
            delete_if_managed::<StatefulSet>(ctx, &ws.namespace, build::STUDIO).await?;
            delete_if_managed::<Service>(ctx, &ws.namespace, build::STUDIO).await?;
            None
        }
    };
    let exposed = objects.studio.as_ref().and_then(|s| s.ingress.as_ref()).is_some();
    let foreign_removed = ctx.config.remove_foreign_role_bindings;
    Ok(Applied { namespace, quota, studio, exposed, foreign_removed })
}

/// Status computed from what was applied and observed.
fn status(
    ws: &ValidatedWorkspace,
    observed: &Observed,
    applied: &Applied,
    stores: &Stores,
) -> (WorkspaceStatus, Vec<Desired>) {
    let mut conditions = Vec::new();
    let namespace_ok =
        applied.namespace.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
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
    let studio_condition = match (&ws.studio, &applied.studio) {
        (None, _) => Desired::yes("Studio", "Disabled", "the workspace has no Studio server"),
        (Some(s), _) if s.stopped => {
            Desired::yes("Studio", "Stopped", "the Studio server is stopped; its home volume is kept")
        }
        (Some(s), Some(sts)) if sts.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0) >= 1 => {
            match (&s.host, applied.exposed) {
                (Some(host), true) => Desired::yes(
                    "Studio",
                    "Authenticated",
                    format!(
                        "running at https://{host}/ (IDE: https://ide.{host}/) for {} allowed user(s)",
                        s.allowed.len()
                    ),
                ),
                (Some(_), false) => Desired::yes(
                    "Studio",
                    "InClusterOnly",
                    "running; not exposed at spec.studio.host: no authenticating proxy is configured, or no allowed user has an e-mail",
                ),
                (None, _) => Desired::yes(
                    "Studio",
                    "InClusterOnly",
                    "running; reachable inside the cluster only (no spec.studio.host)",
                ),
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

    let projects: Vec<Project> = valid(&stores.projects)
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ws.namespace.as_str()))
        .collect();
    let mut by_runtime = BTreeMap::new();
    let mut by_phase = BTreeMap::new();
    for project in &projects {
        *by_runtime.entry(project.spec.runtime.as_str().to_string()).or_insert(0) += 1;
        let phase =
            project.status.as_ref().and_then(|s| s.phase).map_or("Unknown".to_string(), |p| format!("{p:?}"));
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
        studio_endpoint: ws.studio.as_ref().map(|s| match (&s.host, applied.exposed) {
            (Some(host), true) => format!("https://{host}/"),
            _ => format!("http://{}.{}.svc:{}", build::STUDIO, ws.namespace, build::LAB_PORT),
        }),
        ..WorkspaceStatus::default()
    };
    (status, conditions)
}
