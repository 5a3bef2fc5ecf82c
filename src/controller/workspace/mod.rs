//! Reconciles Workspaces into tenant namespaces: observe → validate → build → apply → status.

pub mod build;
pub mod validate;

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service},
    networking::v1::{Ingress, NetworkPolicy},
    rbac::v1::RoleBinding,
};
use kube::{
    Api, ResourceExt,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use self::{
    build::WorkspaceObjects,
    validate::{Observed, ValidatedWorkspace},
};
use super::{
    Context, RESYNC, Stores, apply_cluster, apply_namespaced, apply_status, delete_if_managed,
    managed_children, valid,
};
use crate::{
    conditions::{Desired, READY},
    crd::{Project, User, Workspace, WorkspaceStatus, workspace::ResourceUsage},
    error::{Error, Result},
    names::{LABEL_WORKSPACE, workspace_namespace},
};

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
    let (by_user, by_secret, by_project) = (stores.clone(), stores.clone(), stores);
    // Children carry the workspace label; mapping by it (not by owner reference) keeps the
    // references cluster-scoped, as the Workspace is.
    controller
        .watches(Api::<ResourceQuota>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<LimitRange>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<NetworkPolicy>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<RoleBinding>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<ConfigMap>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<Service>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<StatefulSet>::all(client.clone()), managed_children(), owning_workspace)
        .watches(Api::<Ingress>::all(client.clone()), managed_children(), owning_workspace)
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(LABEL_WORKSPACE),
            owning_workspace,
        )
        .watches(Api::<User>::all(client.clone()), watcher::Config::default(), move |user| {
            workspaces_of_user(&valid(&by_user.workspaces), &user)
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
    let objects = build::build(&validated, &ctx.config);
    let applied = apply(&ctx, &validated, objects).await?;
    let (status, conditions) = status(&validated, &observed, &applied, &ctx.stores);
    apply_status(&ctx, &*workspace, status, &conditions).await?;
    Ok(Action::requeue(RESYNC))
}

/// Reads what validation needs: the Users, who claims the namespace, which Secrets are missing.
async fn observe(workspace: &Workspace, ctx: &Context) -> Result<Observed> {
    let namespace = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let existing = namespaces
        .get_metadata_opt(&namespace)
        .await
        .map_err(|source| Error::Read { what: format!("Namespace {namespace}"), source })?;
    let namespace_claim = existing.map(|ns| ns.labels().get(LABEL_WORKSPACE).cloned());

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
    Ok(Observed { users: valid(&ctx.stores.users), namespace_claim, missing_secrets })
}

/// What was applied, as the API server returned it.
struct Applied {
    namespace: Namespace,
    quota: ResourceQuota,
    studio: Option<StatefulSet>,
    /// Whether the Studio server has an authenticated Ingress.
    exposed: bool,
}

/// Applies in dependency order (namespace first), then removes what this pass no longer produces.
async fn apply(ctx: &Context, ws: &ValidatedWorkspace, objects: WorkspaceObjects) -> Result<Applied> {
    let namespace = apply_cluster(ctx, &objects.namespace).await?;
    let quota = apply_namespaced(ctx, &objects.quota).await?;
    apply_namespaced(ctx, &objects.limit_range).await?;
    apply_namespaced(ctx, &objects.network_policy).await?;
    for binding in &objects.role_bindings {
        apply_namespaced(ctx, binding).await?;
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
    Ok(Applied { namespace, quota, studio, exposed })
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
    conditions.push(Desired::yes("Access", "Bound", format!("{bound} people bound to workspace roles")));
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
        studio_endpoint: ws.studio.as_ref().map(|s| match (&s.host, applied.exposed) {
            (Some(host), true) => format!("https://{host}/"),
            _ => format!("http://{}.{}.svc:{}", build::STUDIO, ws.namespace, build::LAB_PORT),
        }),
        ..WorkspaceStatus::default()
    };
    (status, conditions)
}
