//! Applying the children a runtime built: in order, each by its policy (applied, or created once
//! and never rewritten), then removing the children of the owner that this pass no longer
//! produces — found in the caches by owner UID, so nothing else is ever touched.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, StatefulSet},
        batch::v1::{CronJob, Job},
        core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::RoleBinding,
    },
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, PostParams, PropagationPolicy},
    runtime::reflector::{Lookup, ObjectRef, Store},
};

use super::{
    Context, apply_namespaced,
    cache::{Cached, cached_meta},
};
use crate::{
    build::children::{Child, GeneratedSecret},
    error::{Error, Result},
    names::{LABEL_MANAGED_BY, MANAGER},
};

/// What the API server holds after a pass, for status.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The workloads, by name.
    pub stateful_sets: BTreeMap<String, StatefulSet>,
    /// See [`Applied::stateful_sets`].
    pub deployments: BTreeMap<String, Deployment>,
    /// The Jobs, by name (with the earlier runs a project keeps).
    pub jobs: BTreeMap<String, Job>,
    /// The owner's Spark pods (drivers and executors), as the cache holds them: metadata and
    /// status.
    pub pods: Vec<Pod>,
}

/// Applies `children` in order. A child whose name is taken by an object its owner did not make
/// (another Project's, the Workspace's Studio, something a person created) is not touched: the
/// pass fails with `NameConflict`, so no name ever lets one owner take over another's object.
pub async fn apply(ctx: &Context, children: &[Child]) -> Result<Applied> {
    for child in children {
        check_unclaimed(ctx, child).await?;
    }
    let mut applied = Applied::default();
    for child in children {
        match child {
            Child::ServiceAccount(o) => drop(apply_namespaced(ctx, o).await?),
            Child::RoleBinding(o) => drop(apply_namespaced(ctx, o).await?),
            Child::ConfigMap(o) => drop(apply_namespaced(ctx, o).await?),
            Child::GeneratedSecret(o) => generate_once(ctx, o).await?,
            Child::Service(o) => drop(apply_namespaced(ctx, o).await?),
            Child::NetworkPolicy(o) => drop(apply_namespaced(ctx, o).await?),
            Child::Volume(o) => drop(create_once(ctx, o).await?),
            Child::StatefulSet(o) => {
                let live = apply_namespaced(ctx, o).await?;
                applied.stateful_sets.insert(live.name_any(), live);
            }
            Child::Deployment(o) => {
                let live = apply_namespaced(ctx, o).await?;
                applied.deployments.insert(live.name_any(), live);
            }
            Child::Job(o) => {
                let live = suspend(ctx, o, create_once(ctx, o).await?).await?;
                applied.jobs.insert(live.name_any(), live);
            }
            Child::CronJob(o) => drop(apply_namespaced(ctx, o.as_ref()).await?),
        }
    }
    Ok(applied)
}

/// Fails with `NameConflict` when a child's name is taken by an object its owner did not make.
/// The caches of most kinds hold only the operator's objects, so a name the cache does not know
/// is looked up once (a metadata read, only until the child exists; idle passes read nothing).
async fn check_unclaimed(ctx: &Context, child: &Child) -> Result<()> {
    let (kind, name) = child.key();
    let (namespace, owner) = meta_of(child.metadata());
    let live = match child {
        Child::ServiceAccount(_) => live_meta::<ServiceAccount>(ctx, &namespace, &name).await?,
        // Every RoleBinding is cached.
        Child::RoleBinding(_) => cached_meta::<RoleBinding>(&ctx.caches, Some(&namespace), &name),
        Child::ConfigMap(_) => live_meta::<ConfigMap>(ctx, &namespace, &name).await?,
        // Every Secret is cached (metadata): no read needed.
        Child::GeneratedSecret(_) => cached_meta::<Secret>(&ctx.caches, Some(&namespace), &name),
        Child::Service(_) => live_meta::<Service>(ctx, &namespace, &name).await?,
        Child::NetworkPolicy(_) => live_meta::<NetworkPolicy>(ctx, &namespace, &name).await?,
        Child::Volume(_) => live_meta::<PersistentVolumeClaim>(ctx, &namespace, &name).await?,
        Child::StatefulSet(_) => live_meta::<StatefulSet>(ctx, &namespace, &name).await?,
        Child::Deployment(_) => live_meta::<Deployment>(ctx, &namespace, &name).await?,
        Child::Job(_) => live_meta::<Job>(ctx, &namespace, &name).await?,
        Child::CronJob(_) => live_meta::<CronJob>(ctx, &namespace, &name).await?,
    };
    match live {
        // A kept generated Secret (no owner) of the same instance is taken back.
        Some(live) if matches!(child, Child::GeneratedSecret(s) if kept_by(&live, s)) => Ok(()),
        Some(live) if !live.owner_references.iter().flatten().any(|o| o.uid == owner) => {
            Err(Error::Dependency {
                reason: "NameConflict",
                message: format!(
                    "the {kind} {name} already exists and belongs to something else; rename the Project (or remove that {kind})"
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The metadata of an object: from the cache, or, when the cache does not know it, read once.
async fn live_meta<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + super::cache::Cached
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    if let Some(meta) = cached_meta::<K>(&ctx.caches, Some(namespace), name) {
        return Ok(Some(meta));
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let found = api
        .get_metadata_opt(name)
        .await
        .map_err(|source| Error::Read { what: format!("{} {namespace}/{name}", K::kind(&())), source })?;
    Ok(found.map(|m| m.metadata))
}

/// Whether `live` is a Secret the operator kept when its owner went, for an owner of the same
/// name: the operator's label, the same name and instance labels as the child, and no owner
/// but the one that keeps it (this Project, before its deletion policy changed). A Secret still
/// owned by a deleted Project of the same name is that Project's until the garbage collector
/// takes it: never taken over.
fn kept_by(
    live: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    child: &GeneratedSecret,
) -> bool {
    let label = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str| {
        m.labels.as_ref().and_then(|l| l.get(key).cloned())
    };
    let built = &child.metadata;
    live.owner_references.iter().flatten().all(|o| Some(&o.uid) == child.keeper.as_ref())
        && label(live, LABEL_MANAGED_BY).as_deref() == Some(MANAGER)
        && label(live, crate::names::LABEL_INSTANCE).is_some()
        && label(live, crate::names::LABEL_INSTANCE) == label(built, crate::names::LABEL_INSTANCE)
        && label(live, crate::names::LABEL_NAME) == label(built, crate::names::LABEL_NAME)
}

/// The namespace and the owner UID of a child.
fn meta_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    let owner = meta.owner_references.iter().flatten().next().map(|o| o.uid.clone()).unwrap_or_default();
    (meta.namespace.clone().unwrap_or_default(), owner)
}

/// Brings a Job's `suspend` (the one field of a Job's spec the operator changes: a stopped
/// project suspends its run) in line with the built Job; a merge patch of that field alone.
async fn suspend(ctx: &Context, built: &Job, live: Job) -> Result<Job> {
    let wanted = built.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    let current = live.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false);
    let finished = live.status.as_ref().is_some_and(|s| s.completion_time.is_some())
        || live
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "Failed" && c.status == "True");
    if wanted == current || finished {
        return Ok(live);
    }
    let namespace = ResourceExt::namespace(&live).unwrap_or_default();
    let name = live.name_any();
    let patch = kube::api::Patch::Merge(serde_json::json!({"spec": {"suspend": wanted}}));
    let params = kube::api::PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    ctx.count_write("Job");
    Api::<Job>::namespaced(ctx.client.clone(), &namespace)
        .patch(&name, &params, &patch)
        .await
        .map_err(|source| Error::Apply { what: format!("Job {name} (suspend)"), source })
}

/// Adds what the owner (`instance` by its label, `owner` by UID) keeps but no longer builds to
/// `applied`, from the caches: the earlier runs it keeps (`retained`), and its Spark pods.
pub fn observe(
    ctx: &Context,
    namespace: &str,
    instance: &str,
    owner: &str,
    retained: &[(&'static str, String)],
    applied: &mut Applied,
) {
    for (kind, name) in retained {
        if *kind != "Job" || applied.jobs.contains_key(name) {
            continue;
        }
        let job = Job::cached(&ctx.caches, Some(namespace), name)
            .and_then(|v| serde_json::from_value::<Job>(v).ok());
        if let Some(job) = job.filter(|j| j.owner_references().iter().any(|r| r.uid == owner)) {
            applied.jobs.insert(name.clone(), job);
        }
    }
    // The runs its CronJob (named after it, owned by it) started.
    let schedule = CronJob::cached(&ctx.caches, Some(namespace), instance)
        .and_then(|v| serde_json::from_value::<CronJob>(v).ok())
        .filter(|c| c.owner_references().iter().any(|r| r.uid == owner))
        .and_then(|c| c.metadata.uid);
    if let Some(schedule) = schedule {
        for job in ctx.caches.jobs.state() {
            if ResourceExt::namespace(&*job).as_deref() == Some(namespace)
                && job.owner_references().iter().any(|r| r.kind == "CronJob" && r.uid == schedule)
            {
                applied.jobs.insert(job.name_any(), (*job).clone());
            }
        }
    }
    applied.pods = ctx
        .caches
        .pods
        .state()
        .iter()
        .filter(|p| ResourceExt::namespace(&***p).as_deref() == Some(namespace))
        .filter(|p| p.labels().get(crate::names::LABEL_INSTANCE).map(String::as_str) == Some(instance))
        .map(|p| (**p).clone())
        .collect();
}

/// Creates the Secret with freshly generated values unless it exists. Values are random bytes
/// (as many as the child asks, at least 16), encoded as the child says; they never pass through
/// logs, status or Events. An existing Secret keeps its values; only its owner references follow
/// the built ones (a kept Secret taken back, or its owner's deletion policy changed).
pub(super) async fn generate_once(ctx: &Context, secret: &GeneratedSecret) -> Result<()> {
    let namespace = secret.metadata.namespace.clone().unwrap_or_default();
    let name = secret.metadata.name.clone().unwrap_or_default();
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    if let Some(live) = ctx.caches.secrets.get(&ObjectRef::new(&name).within(&namespace)) {
        let wanted = secret.metadata.owner_references.clone().unwrap_or_default();
        if live.metadata.owner_references.clone().unwrap_or_default() == wanted {
            return Ok(());
        }
        let patch = kube::api::Patch::Merge(serde_json::json!({"metadata": {"ownerReferences": wanted}}));
        let params = kube::api::PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        ctx.count_write("Secret");
        return api
            .patch_metadata(&name, &params, &patch)
            .await
            .map(drop)
            .map_err(|source| Error::Apply { what: format!("Secret {name} (owner)"), source });
    }
    let mut data = BTreeMap::new();
    for (key, encoding) in &secret.keys {
        let value = encoding.generate(secret.bytes).ok_or_else(|| Error::InvalidSpec {
            reason: "RandomUnavailable",
            message: "the system's random number generator failed".into(),
        })?;
        data.insert(key.clone(), ByteString(value.into_bytes()));
    }
    let object = Secret { metadata: secret.metadata.clone(), data: Some(data), ..Secret::default() };
    create(ctx, &api, &object).await.map(drop)
}

/// Creates the object unless the cache has it; never updates it.
async fn create_once<K>(ctx: &Context, object: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + super::cache::Cached
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    if let Some(live) =
        K::cached(&ctx.caches, Some(&namespace), &name).and_then(|v| serde_json::from_value(v).ok())
    {
        return Ok(live);
    }
    create(ctx, &Api::<K>::namespaced(ctx.client.clone(), &namespace), object)
        .await
        .map(|o| o.unwrap_or_else(|| object.clone()))
}

/// A create that treats "already exists" (the cache was a moment behind) as done.
async fn create<K>(ctx: &Context, api: &Api<K>, object: &K) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
{
    let params = PostParams { field_manager: Some(MANAGER.into()), ..PostParams::default() };
    ctx.count_write(&K::kind(&()));
    match api.create(&params, object).await {
        Ok(created) => Ok(Some(created)),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(None),
        Err(source) => Err(Error::Apply { what: format!("{} {}", K::kind(&()), object.name_any()), source }),
    }
}

/// Deletes the owner's children (by owner UID, in its namespace, carrying the operator's label)
/// that `children` no longer lists. Volumes of StatefulSets are not children: they are kept;
/// a volume child (a built environment) goes when its owner no longer lists it.
pub async fn sweep(
    ctx: &Context,
    namespace: &str,
    owner_uid: &str,
    children: &[Child],
    retained: &[(&'static str, String)],
) -> Result<()> {
    let mut keep: BTreeSet<(&'static str, String)> = children.iter().map(Child::key).collect();
    keep.extend(retained.iter().cloned());
    let caches = &ctx.caches;
    for name in stale(&caches.service_accounts, namespace, owner_uid, "ServiceAccount", &keep) {
        delete::<ServiceAccount>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.role_bindings, namespace, owner_uid, "RoleBinding", &keep) {
        delete::<RoleBinding>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.config_maps, namespace, owner_uid, "ConfigMap", &keep) {
        delete::<ConfigMap>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.secrets, namespace, owner_uid, "Secret", &keep) {
        delete::<Secret>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.services, namespace, owner_uid, "Service", &keep) {
        delete::<Service>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.network_policies, namespace, owner_uid, "NetworkPolicy", &keep) {
        delete::<NetworkPolicy>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.stateful_sets, namespace, owner_uid, "StatefulSet", &keep) {
        delete::<StatefulSet>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.deployments, namespace, owner_uid, "Deployment", &keep) {
        delete::<Deployment>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.cron_jobs, namespace, owner_uid, "CronJob", &keep) {
        delete::<CronJob>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.jobs, namespace, owner_uid, "Job", &keep) {
        delete::<Job>(ctx, namespace, &name).await?;
    }
    for name in stale(&caches.volumes, namespace, owner_uid, "PersistentVolumeClaim", &keep) {
        delete::<PersistentVolumeClaim>(ctx, namespace, &name).await?;
    }
    Ok(())
}

/// Names of cached objects of one kind that the owner made and no longer produces.
fn stale<K>(
    store: &Store<K>,
    namespace: &str,
    owner_uid: &str,
    kind: &'static str,
    keep: &BTreeSet<(&'static str, String)>,
) -> Vec<String>
where
    K: Lookup + Resource + Clone + 'static,
    <K as Lookup>::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .filter(|o| o.labels().get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGER))
        .filter(|o| o.owner_references().iter().any(|r| r.uid == owner_uid))
        // The access layer's objects (an exposure's NetworkPolicy) are the access layer's to
        // withdraw.
        .filter(|o| !o.labels().contains_key(crate::build::access::LABEL_EXPOSURE))
        .map(|o| o.name_any())
        .filter(|name| !keep.contains(&(kind, name.clone())))
        .collect()
}

pub(super) async fn delete<K>(ctx: &Context, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    ctx.count_write(&K::kind(&()));
    let params =
        DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(Error::Apply { what: format!("{} {namespace}/{name}", K::kind(&())), source }),
    }
}
