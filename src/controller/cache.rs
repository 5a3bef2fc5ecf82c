//! The operator's caches: one watch per kind, kept in a reflector store that every controller
//! reads, and fanned out as triggers to the controllers that react to that kind. A pass reads
//! from these stores and never GETs what a watch already delivers.
//!
//! Memory: managed fields are dropped from every cached object; Secrets and Namespaces are
//! cached as metadata only, with annotations dropped except the operator's own (a client-side
//! `kubectl apply` leaves a Secret's data in `last-applied-configuration`).

use std::{
    collections::{HashMap, HashSet},
    fmt::Debug,
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use futures::{
    SinkExt, Stream, StreamExt,
    channel::mpsc,
    future::{BoxFuture, FutureExt},
    stream::BoxStream,
};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    batch::v1::{CronJob, Job},
    core::v1::{
        ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
        ServiceAccount,
    },
    networking::v1::{Ingress, NetworkPolicy},
    rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding},
};
use kube::{
    Api, Client, Resource, ResourceExt,
    core::{DeserializeGuard, PartialObjectMeta},
    runtime::{
        WatchStreamExt,
        reflector::{self, Lookup, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::{
    build::gateway::HTTPRoute,
    crd::{Project, PythonEnvironment, User, Workspace},
    error::{Error, Result},
    metrics::{KindLabels, Metrics},
    names::{LABEL_MANAGED_BY, LABEL_NAME, MANAGER},
};

/// How many triggers may wait for a controller before the watch waits too. Small: each holds a
/// copy of an object, and a controller's own queue (which keeps one reference per object, not a
/// copy) takes them as fast as they come; at a restart every object passes through here at once.
const FANOUT_BUFFER: usize = 32;
/// How long a pass waits for the caches to fill.
const CACHE_WAIT: Duration = Duration::from_secs(10);

/// One watched kind: its store, and the triggers handed to controllers.
pub struct Feed<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The store every pass reads.
    pub store: Store<K>,
    events: BoxStream<'static, watcher::Result<watcher::Event<K>>>,
    /// Each subscriber's filter, applied before an object is copied for it.
    subscribers: Vec<(Changed<K>, mpsc::Sender<K>)>,
    kind: &'static str,
}

/// What a watch reported about one object: it was added or changed (or listed again), or it is
/// gone; or that a (re)list begins or ends.
#[derive(Clone, Debug)]
pub enum Change<K> {
    /// Added, changed, or listed again after a relist.
    Touched(K),
    /// Deleted: the last state seen.
    Deleted(K),
    /// A list of every object begins (at start, or after the watch lost its place).
    Relisting,
    /// That list is complete: objects it did not hold were deleted meanwhile.
    Relisted,
}

/// The part of an object a subscriber reacts to, reduced to a hash: an object whose signature is
/// unchanged since the last event does not trigger that subscriber. Deletions always do.
pub type Signature<K> = fn(&K) -> u64;

/// A hash of what a subscriber reacts to.
pub fn signature_of(parts: impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

/// A hash of a serializable part of an object (for types without `Hash`).
pub fn json_signature(part: &impl serde::Serialize) -> u64 {
    signature_of(serde_json::to_string(part).unwrap_or_default())
}

/// The signature that never changes: the subscriber hears of additions and deletions only.
pub fn existence<K>(_: &K) -> u64 {
    0
}

/// For root kinds: the spec (its generation) and the start of deletion; a status write does not
/// trigger. An object that failed to parse is never filtered, so its error is reported.
pub fn generation<K: Resource>(guard: &DeserializeGuard<K>) -> u64 {
    let meta = guard.meta();
    match &guard.0 {
        Ok(_) => signature_of((meta.generation, meta.deletion_timestamp.is_some())),
        Err(_) => signature_of(&meta.resource_version),
    }
}

/// Lets through the changes whose signature differs from the last one seen for that object.
pub struct Changed<K> {
    /// `None`: every change passes, and nothing is remembered.
    signature: Option<Signature<K>>,
    seen: HashMap<Key, u64>,
    /// During a (re)list: the objects it held so far.
    listed: Option<HashSet<Key>>,
}

/// Namespace and name.
type Key = (Option<String>, String);

fn key_of<K: Resource>(object: &K) -> Key {
    (object.meta().namespace.clone(), object.meta().name.clone().unwrap_or_default())
}

impl<K: Resource> Changed<K> {
    /// A filter with nothing seen yet.
    pub fn new(signature: Signature<K>) -> Self {
        Changed { signature: Some(signature), seen: HashMap::new(), listed: None }
    }

    /// No filter.
    pub fn all() -> Self {
        Changed { signature: None, seen: HashMap::new(), listed: None }
    }

    /// A copy of the object of a change that passes, or `None`. A relist forgets the objects it
    /// no longer holds (deleted while the watch was away), so memory follows the live objects.
    pub fn admit(&mut self, change: &Change<K>) -> Option<K>
    where
        K: Clone,
    {
        let signature = match (self.signature, change) {
            (_, Change::Relisting) => {
                self.listed = self.signature.map(|_| HashSet::new());
                return None;
            }
            (_, Change::Relisted) => {
                if let Some(listed) = self.listed.take() {
                    self.seen.retain(|key, _| listed.contains(key));
                }
                return None;
            }
            (None, Change::Touched(object) | Change::Deleted(object)) => return Some(object.clone()),
            (Some(signature), _) => signature,
        };
        match change {
            Change::Touched(object) => {
                let key = key_of(object);
                if let Some(listed) = &mut self.listed {
                    listed.insert(key.clone());
                }
                let signature = signature(object);
                (self.seen.insert(key, signature) != Some(signature)).then(|| object.clone())
            }
            Change::Deleted(object) => {
                self.seen.remove(&key_of(object));
                Some(object.clone())
            }
            Change::Relisting | Change::Relisted => None,
        }
    }
}

impl<K> Feed<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// A feed from a watcher stream; `trim` runs on every object before it is cached.
    fn new(
        kind: &'static str,
        stream: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
        trim: impl FnMut(&mut K) + Send + 'static,
    ) -> Self {
        let (store, writer) = reflector::store();
        let events = stream.default_backoff().modify(trim).reflect(writer).boxed();
        Feed { store, events, subscribers: Vec::new(), kind }
    }

    /// A trigger stream for one controller: every object added, changed or deleted.
    pub fn subscribe(&mut self) -> impl Stream<Item = watcher::Result<K>> + Send + 'static {
        self.filtered(Changed::all())
    }

    /// A trigger stream for one controller: objects added or deleted, and those whose
    /// `signature` changed — so a subscriber is not woken by changes it does not read (a status
    /// write, a field another controller owns).
    pub fn subscribe_when(
        &mut self,
        signature: Signature<K>,
    ) -> impl Stream<Item = watcher::Result<K>> + Send + 'static {
        self.filtered(Changed::new(signature))
    }

    fn filtered(&mut self, changed: Changed<K>) -> impl Stream<Item = watcher::Result<K>> + Send + 'static {
        let (sender, receiver) = mpsc::channel(FANOUT_BUFFER);
        self.subscribers.push((changed, sender));
        receiver.map(Ok)
    }

    /// Runs the watch until the process stops, keeping the store and feeding the subscribers.
    fn drive(self, metrics: Arc<Metrics>) -> BoxFuture<'static, ()> {
        let Feed { mut events, mut subscribers, kind, .. } = self;
        async move {
            while let Some(event) = events.next().await {
                let change = match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        Change::Touched(object)
                    }
                    Ok(watcher::Event::Delete(object)) => Change::Deleted(object),
                    Ok(watcher::Event::Init) => Change::Relisting,
                    Ok(watcher::Event::InitDone) => Change::Relisted,
                    Err(error) => {
                        metrics.watch_errors.get_or_create(&KindLabels { kind }).inc();
                        warn!(kind, %error, "watch failed; retrying with backoff");
                        continue;
                    }
                };
                for (changed, subscriber) in &mut subscribers {
                    if let Some(object) = changed.admit(&change) {
                        // A controller that stopped (shutdown) no longer listens.
                        let _ = subscriber.send(object).await;
                    }
                }
            }
        }
        .boxed()
    }
}

fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A Spark pod as status reads it: labels, owners and status; no spec, no annotations.
fn trim_pod(pod: &mut Pod) {
    let meta = pod.meta_mut();
    meta.managed_fields = None;
    meta.annotations = None;
    pod.spec = None;
}

/// Keeps only the operator's own annotations (`dataworkspace.io/…`) and drops managed fields.
fn trim_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| key.starts_with("dataworkspace.io/"));
    }
}

fn all<K>(client: &Client) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    Api::all(client.clone())
}

/// How many objects one page of a (re)list holds: the caches fill from pages of this size, so a
/// restart never holds more than a page per kind in flight beside the stores.
const LIST_PAGE: u32 = 100;

/// Every object of a kind, listed from any API server cache, in pages.
fn everything() -> watcher::Config {
    watcher::Config::default().any_semantic().page_size(LIST_PAGE)
}

fn managed() -> watcher::Config {
    everything().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"))
}

fn typed<K>(client: &Client, kind: &'static str, config: watcher::Config) -> Feed<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    Feed::new(kind, watcher(all::<K>(client), config), drop_managed_fields::<K>)
}

fn metadata<K>(client: &Client, kind: &'static str) -> Feed<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    Feed::new(
        kind,
        watcher(all::<PartialObjectMeta<K>>(client), everything()),
        trim_metadata::<PartialObjectMeta<K>>,
    )
}

/// Every feed, before the controllers subscribe to them.
pub struct Feeds {
    /// Workspaces (root kind).
    pub workspaces: Feed<DeserializeGuard<Workspace>>,
    /// Users (root kind).
    pub users: Feed<DeserializeGuard<User>>,
    /// Projects (root kind).
    pub projects: Feed<DeserializeGuard<Project>>,
    /// PythonEnvironments (root kind).
    pub environments: Feed<DeserializeGuard<PythonEnvironment>>,
    /// Every Namespace, metadata only.
    pub namespaces: Feed<PartialObjectMeta<Namespace>>,
    /// Every Secret, metadata only: the operator never holds Secret values.
    pub secrets: Feed<PartialObjectMeta<Secret>>,
    /// Every RoleBinding: the operator's, and the foreign ones it reports.
    pub role_bindings: Feed<RoleBinding>,
    /// The operator's ResourceQuotas.
    pub quotas: Feed<ResourceQuota>,
    /// The operator's LimitRanges.
    pub limit_ranges: Feed<LimitRange>,
    /// The operator's NetworkPolicies.
    pub network_policies: Feed<NetworkPolicy>,
    /// The operator's ConfigMaps.
    pub config_maps: Feed<ConfigMap>,
    /// The operator's Services.
    pub services: Feed<Service>,
    /// The operator's StatefulSets.
    pub stateful_sets: Feed<StatefulSet>,
    /// The operator's Ingresses.
    pub ingresses: Feed<Ingress>,
    /// The operator's ClusterRoles.
    pub cluster_roles: Feed<ClusterRole>,
    /// The operator's ClusterRoleBindings.
    pub cluster_role_bindings: Feed<ClusterRoleBinding>,
    /// The operator's ServiceAccounts.
    pub service_accounts: Feed<ServiceAccount>,
    /// The operator's Jobs (with those of its CronJobs).
    pub jobs: Feed<Job>,
    /// The operator's CronJobs.
    pub cron_jobs: Feed<CronJob>,
    /// The operator's Deployments: the access layer's proxies.
    pub deployments: Feed<Deployment>,
    /// The operator's PersistentVolumeClaims (volumes it creates itself, not those of
    /// StatefulSet templates).
    pub volumes: Feed<PersistentVolumeClaim>,
    /// The pods of Spark projects (drivers, and the executors Spark creates from the operator's
    /// template), metadata and status only: their state is the projects' status.
    pub pods: Feed<Pod>,
    /// The operator's HTTPRoutes, when the access layer routes through a Gateway (the kind
    /// exists only where Gateway API is installed).
    pub routes: Option<Feed<HTTPRoute>>,
}

impl Feeds {
    /// One watch per kind, not started yet; HTTPRoutes only with `routes`.
    pub fn new(client: &Client, routes: bool) -> Self {
        let root = everything;
        Feeds {
            workspaces: typed(client, "Workspace", root()),
            users: typed(client, "User", root()),
            projects: typed(client, "Project", root()),
            environments: typed(client, "PythonEnvironment", root()),
            namespaces: metadata::<Namespace>(client, "Namespace"),
            secrets: metadata::<Secret>(client, "Secret"),
            role_bindings: typed(client, "RoleBinding", root()),
            quotas: typed(client, "ResourceQuota", managed()),
            limit_ranges: typed(client, "LimitRange", managed()),
            network_policies: typed(client, "NetworkPolicy", managed()),
            config_maps: typed(client, "ConfigMap", managed()),
            services: typed(client, "Service", managed()),
            stateful_sets: typed(client, "StatefulSet", managed()),
            ingresses: typed(client, "Ingress", managed()),
            cluster_roles: typed(client, "ClusterRole", managed()),
            cluster_role_bindings: typed(client, "ClusterRoleBinding", managed()),
            service_accounts: typed(client, "ServiceAccount", managed()),
            jobs: typed(client, "Job", managed()),
            cron_jobs: typed(client, "CronJob", managed()),
            deployments: typed(client, "Deployment", managed()),
            volumes: typed(client, "PersistentVolumeClaim", managed()),
            pods: Feed::new(
                "Pod",
                watcher(
                    all::<Pod>(client),
                    everything().labels(&format!("{LABEL_MANAGED_BY}={MANAGER},{LABEL_NAME}=spark")),
                ),
                trim_pod,
            ),
            routes: routes.then(|| typed(client, "HTTPRoute", managed())),
        }
    }

    /// The stores, for the passes.
    pub fn caches(&self) -> Caches {
        Caches {
            workspaces: self.workspaces.store.clone(),
            users: self.users.store.clone(),
            projects: self.projects.store.clone(),
            environments: self.environments.store.clone(),
            namespaces: self.namespaces.store.clone(),
            secrets: self.secrets.store.clone(),
            role_bindings: self.role_bindings.store.clone(),
            quotas: self.quotas.store.clone(),
            limit_ranges: self.limit_ranges.store.clone(),
            network_policies: self.network_policies.store.clone(),
            config_maps: self.config_maps.store.clone(),
            services: self.services.store.clone(),
            stateful_sets: self.stateful_sets.store.clone(),
            ingresses: self.ingresses.store.clone(),
            cluster_roles: self.cluster_roles.store.clone(),
            cluster_role_bindings: self.cluster_role_bindings.store.clone(),
            service_accounts: self.service_accounts.store.clone(),
            jobs: self.jobs.store.clone(),
            cron_jobs: self.cron_jobs.store.clone(),
            deployments: self.deployments.store.clone(),
            volumes: self.volumes.store.clone(),
            pods: self.pods.store.clone(),
            routes: self.routes.as_ref().map(|f| f.store.clone()),
        }
    }

    /// Starts every watch; call after the controllers subscribed. Watch errors are logged and
    /// counted (`watch_errors_total{kind}`); the watch retries with backoff.
    pub fn drive(self, metrics: &Arc<Metrics>) -> Vec<BoxFuture<'static, ()>> {
        let m = || metrics.clone();
        let routes = self.routes.map(|feed| feed.drive(m()));
        let mut all = vec![
            self.workspaces.drive(m()),
            self.users.drive(m()),
            self.projects.drive(m()),
            self.environments.drive(m()),
            self.namespaces.drive(m()),
            self.secrets.drive(m()),
            self.role_bindings.drive(m()),
            self.quotas.drive(m()),
            self.limit_ranges.drive(m()),
            self.network_policies.drive(m()),
            self.config_maps.drive(m()),
            self.services.drive(m()),
            self.stateful_sets.drive(m()),
            self.ingresses.drive(m()),
            self.cluster_roles.drive(m()),
            self.cluster_role_bindings.drive(m()),
            self.service_accounts.drive(m()),
            self.jobs.drive(m()),
            self.cron_jobs.drive(m()),
            self.deployments.drive(m()),
            self.volumes.drive(m()),
            self.pods.drive(m()),
        ];
        all.extend(routes);
        all
    }
}

/// The stores every pass reads.
#[derive(Clone)]
pub struct Caches {
    /// Workspaces.
    pub workspaces: Store<DeserializeGuard<Workspace>>,
    /// Users.
    pub users: Store<DeserializeGuard<User>>,
    /// Projects.
    pub projects: Store<DeserializeGuard<Project>>,
    /// PythonEnvironments.
    pub environments: Store<DeserializeGuard<PythonEnvironment>>,
    /// Namespaces (metadata).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Secrets (metadata).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// RoleBindings.
    pub role_bindings: Store<RoleBinding>,
    /// ResourceQuotas.
    pub quotas: Store<ResourceQuota>,
    /// LimitRanges.
    pub limit_ranges: Store<LimitRange>,
    /// NetworkPolicies.
    pub network_policies: Store<NetworkPolicy>,
    /// ConfigMaps.
    pub config_maps: Store<ConfigMap>,
    /// Services.
    pub services: Store<Service>,
    /// StatefulSets.
    pub stateful_sets: Store<StatefulSet>,
    /// Ingresses.
    pub ingresses: Store<Ingress>,
    /// ClusterRoles.
    pub cluster_roles: Store<ClusterRole>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Store<ClusterRoleBinding>,
    /// ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Jobs.
    pub jobs: Store<Job>,
    /// CronJobs.
    pub cron_jobs: Store<CronJob>,
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// PersistentVolumeClaims.
    pub volumes: Store<PersistentVolumeClaim>,
    /// Spark pods (metadata and status).
    pub pods: Store<Pod>,
    /// HTTPRoutes, when watched.
    pub routes: Option<Store<HTTPRoute>>,
}

/// A well-formed root object, shared with its store rather than copied: passes and mappers read
/// every Workspace, User or Project often, and copies of whole stores made memory grow with the
/// number of passes running at once.
pub struct Valid<K>(Arc<DeserializeGuard<K>>);

impl<K> Clone for Valid<K> {
    fn clone(&self) -> Self {
        Valid(self.0.clone())
    }
}

impl<K> std::ops::Deref for Valid<K> {
    type Target = K;

    fn deref(&self) -> &K {
        match &self.0.0 {
            Ok(object) => object,
            // Only `valid` and `From<K>` make a `Valid`, both from well-formed objects.
            Err(_) => unreachable!("a Valid holds a well-formed object"),
        }
    }
}

impl<K: Debug> Debug for Valid<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<K> From<K> for Valid<K> {
    fn from(object: K) -> Self {
        Valid(Arc::new(DeserializeGuard(Ok(object))))
    }
}

/// The well-formed objects of a root store.
pub fn valid<K>(store: &Store<DeserializeGuard<K>>) -> Vec<Valid<K>>
where
    K: Clone,
    DeserializeGuard<K>: Resource,
    <DeserializeGuard<K> as Resource>::DynamicType: Hash + Eq + Clone,
{
    store.state().into_iter().filter(|g| g.0.is_ok()).map(Valid).collect()
}

impl Caches {
    /// Waits until every cache has its initial list, so a pass never acts on a partial view
    /// (bindings computed before the Users are known, an apply skipped or repeated because a
    /// child was not listed yet). Bounded: past the bound the pass fails as transient.
    pub async fn ready(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CACHE_WAIT;
        while !self.all_ready().await {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CacheNotReady);
            }
        }
        Ok(())
    }

    async fn all_ready(&self) -> bool {
        is_ready(&self.workspaces).await
            && is_ready(&self.users).await
            && is_ready(&self.projects).await
            && is_ready(&self.environments).await
            && is_ready(&self.namespaces).await
            && is_ready(&self.secrets).await
            && is_ready(&self.role_bindings).await
            && is_ready(&self.quotas).await
            && is_ready(&self.limit_ranges).await
            && is_ready(&self.network_policies).await
            && is_ready(&self.config_maps).await
            && is_ready(&self.services).await
            && is_ready(&self.stateful_sets).await
            && is_ready(&self.ingresses).await
            && is_ready(&self.cluster_roles).await
            && is_ready(&self.cluster_role_bindings).await
            && is_ready(&self.service_accounts).await
            && is_ready(&self.jobs).await
            && is_ready(&self.cron_jobs).await
            && is_ready(&self.deployments).await
            && is_ready(&self.volumes).await
            && is_ready(&self.pods).await
            && match &self.routes {
                Some(routes) => is_ready(routes).await,
                None => true,
            }
    }
}

/// Whether a store has its initial list, waiting briefly. A store's readiness future keeps
/// only the waker of its latest waiter, so concurrent passes waiting on it can miss the wake-up;
/// short, repeated waits never depend on being woken.
async fn is_ready<K>(store: &Store<K>) -> bool
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Hash + Eq + Clone,
{
    tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await.is_ok()
}

/// A kind the apply layer writes, and the cache that tells what is live.
pub trait Cached: Resource<DynamicType = ()> + Sized {
    /// The live object as JSON, from the cache, if it exists.
    fn cached(caches: &Caches, namespace: Option<&str>, name: &str) -> Option<serde_json::Value>;
}

fn lookup<K>(store: &Store<K>, namespace: Option<&str>, name: &str) -> Option<Arc<K>>
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let reference = ObjectRef::new_with(name, Default::default());
    store.get(&match namespace {
        Some(ns) => reference.within(ns),
        None => reference,
    })
}

macro_rules! cached {
    ($($kind:ty => $field:ident),* $(,)?) => {$(
        impl Cached for $kind {
            fn cached(caches: &Caches, namespace: Option<&str>, name: &str) -> Option<serde_json::Value> {
                let mut value = serde_json::to_value(&*lookup(&caches.$field, namespace, name)?).ok()?;
                // Metadata-only caches hold PartialObjectMetadata: name the kind it stands for.
                value["apiVersion"] = <$kind as Resource>::api_version(&()).into();
                value["kind"] = <$kind as Resource>::kind(&()).into();
                Some(value)
            }
        }
    )*};
}

cached!(
    Namespace => namespaces,
    Secret => secrets,
    RoleBinding => role_bindings,
    ResourceQuota => quotas,
    LimitRange => limit_ranges,
    NetworkPolicy => network_policies,
    ConfigMap => config_maps,
    Service => services,
    StatefulSet => stateful_sets,
    Ingress => ingresses,
    ClusterRole => cluster_roles,
    ClusterRoleBinding => cluster_role_bindings,
    ServiceAccount => service_accounts,
    Job => jobs,
    CronJob => cron_jobs,
    Deployment => deployments,
    PersistentVolumeClaim => volumes,
);

impl Cached for HTTPRoute {
    fn cached(caches: &Caches, namespace: Option<&str>, name: &str) -> Option<serde_json::Value> {
        let route = lookup(caches.routes.as_ref()?, namespace, name)?;
        let mut value = serde_json::to_value(&*route).ok()?;
        value["apiVersion"] = <HTTPRoute as Resource>::api_version(&()).into();
        value["kind"] = <HTTPRoute as Resource>::kind(&()).into();
        Some(value)
    }
}

/// The metadata of a cached object, whatever its kind's cache holds.
pub fn cached_meta<K: Cached>(
    caches: &Caches,
    namespace: Option<&str>,
    name: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta> {
    K::cached(caches, namespace, name)
        .and_then(|v| serde_json::from_value(v.get("metadata").cloned().unwrap_or_default()).ok())
}

/// Names of the objects of a store in a namespace.
pub fn names_in<K>(store: &Store<K>, namespace: &str) -> Vec<String>
where
    K: Lookup + Resource + Clone + 'static,
    <K as Lookup>::DynamicType: Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .map(|o| o.name_any())
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn map(name: &str, value: &str) -> ConfigMap {
        serde_yaml::from_str(&format!("metadata: {{name: {name}, namespace: ns}}\ndata: {{k: '{value}'}}"))
            .unwrap()
    }

    fn value(map: &ConfigMap) -> u64 {
        signature_of(map.data.as_ref().and_then(|d| d.get("k")))
    }

    fn passed(changed: &mut Changed<ConfigMap>, change: Change<ConfigMap>) -> bool {
        changed.admit(&change).is_some()
    }

    #[test]
    fn only_changes_of_the_signature_and_deletions_pass() {
        let mut changed = Changed::new(value);
        assert!(passed(&mut changed, Change::Touched(map("a", "1"))), "first sight");
        assert!(
            !passed(&mut changed, Change::Touched(map("a", "1"))),
            "same signature: relist, other fields"
        );
        assert!(passed(&mut changed, Change::Touched(map("b", "1"))), "objects are told apart");
        assert!(passed(&mut changed, Change::Touched(map("a", "2"))));
        assert!(passed(&mut changed, Change::Deleted(map("a", "2"))), "a deletion always passes");
        assert!(passed(&mut changed, Change::Touched(map("a", "2"))), "re-created: seen afresh");
        assert_eq!(changed.seen.len(), 2);

        // A relist that no longer holds b (deleted while the watch was away): b is forgotten,
        // and a, unchanged, does not pass again.
        assert!(!passed(&mut changed, Change::Relisting));
        assert!(!passed(&mut changed, Change::Touched(map("a", "2"))));
        assert!(!passed(&mut changed, Change::Relisted));
        assert_eq!(changed.seen.keys().map(|(_, n)| n.as_str()).collect::<Vec<_>>(), ["a"]);

        let mut all = Changed::all();
        assert!(passed(&mut all, Change::Touched(map("a", "1"))));
        assert!(passed(&mut all, Change::Touched(map("a", "1"))));
        assert!(all.seen.is_empty(), "an unfiltered subscriber remembers nothing");
    }

    #[test]
    fn a_root_is_woken_by_its_generation_and_deletion_not_by_status() {
        let guard =
            |yaml: &str| DeserializeGuard::<crate::crd::User>(Ok(serde_yaml::from_str(yaml).unwrap()));
        let spec = "metadata: {name: u, generation: 1}\nspec: {username: u@x}";
        let before = generation(&guard(spec));
        assert_eq!(generation(&guard(&format!("{spec}\nstatus: {{recent: []}}"))), before);
        assert_ne!(generation(&guard("metadata: {name: u, generation: 2}\nspec: {username: u@x}")), before);
        assert_ne!(
            generation(&guard(
                "metadata: {name: u, generation: 1, deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {username: u@x}"
            )),
            before
        );
    }
}
