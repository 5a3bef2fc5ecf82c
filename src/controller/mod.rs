//! The controller runtime: one controller per kind, all over one shared [`Context`].
//!
//! Each kind's module holds its `reconcile` (resolve → validate → build → apply → status). This
//! module holds what they share: the caches, the guarded entry point that turns malformed objects
//! and errors into Events and `Ready=False`, and the error policy; `apply` writes.

pub mod apply;
pub mod identity;
pub mod project;
pub mod python_environment;
pub mod user;
pub mod workspace;

pub use apply::{apply_cluster, apply_namespaced, apply_status, delete_if_managed};

use std::{
    collections::HashMap,
    fmt::Debug,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::{api::core::v1::ObjectReference, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, ListParams},
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
        watcher,
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{debug, info, warn};

use crate::{
    conditions::{Desired, READY},
    config::Config,
    crd::{Project, PythonEnvironment, User, Workspace},
    error::{Error, Result},
    metrics::{FailureLabels, KindLabels, Metrics, WriteLabels},
    names::MANAGER,
};

/// How long an object that reconciled cleanly waits before it is looked at again without a
/// change. Such passes write nothing when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// State shared by every controller.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Publishes Events on the objects.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// Operator-wide settings.
    pub config: Config,
    /// The controllers' caches of the root kinds, for relations between them.
    pub stores: Stores,
    /// Consecutive transient failures per object, for the growing retry delay.
    failures: Mutex<HashMap<String, u32>>,
}

/// The caches the controllers keep of their root kinds.
#[derive(Clone)]
pub struct Stores {
    /// Workspaces.
    pub workspaces: Store<DeserializeGuard<Workspace>>,
    /// Users.
    pub users: Store<DeserializeGuard<User>>,
    /// Projects.
    pub projects: Store<DeserializeGuard<Project>>,
}

/// The well-formed objects of a store.
pub fn valid<K: Clone>(store: &Store<DeserializeGuard<K>>) -> Vec<K>
where
    DeserializeGuard<K>: Resource,
    <DeserializeGuard<K> as Resource>::DynamicType: std::hash::Hash + Eq + Clone,
{
    store.state().iter().filter_map(|g| g.0.as_ref().ok().cloned()).collect()
}

impl Stores {
    /// Waits until every cache has its initial list, so a pass never acts on a partial view
    /// (for example, bindings computed before the Users are known). Bounded, so a pass never
    /// hangs on a cache: past the bound it fails as a transient error and is retried.
    pub async fn ready(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CACHE_WAIT;
        while !(is_ready(&self.workspaces).await
            && is_ready(&self.users).await
            && is_ready(&self.projects).await)
        {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::CacheNotReady);
            }
        }
        Ok(())
    }
}

/// Whether a store has its initial list, waiting briefly. A store's readiness future keeps
/// only the waker of its latest waiter, so concurrent passes waiting on it can miss the wake-up;
/// short, repeated waits never depend on being woken.
async fn is_ready<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    tokio::time::timeout(Duration::from_millis(100), store.wait_until_ready()).await.is_ok()
}

/// How long a pass waits for the caches to fill.
const CACHE_WAIT: Duration = Duration::from_secs(10);

impl Context {
    /// A context for the given client, metrics, settings and caches.
    pub fn new(client: Client, metrics: Arc<Metrics>, config: Config, stores: Stores) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            stores,
            failures: Mutex::default(),
        }
    }

    fn record_failure(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(key.to_string()).or_default();
        *count += 1;
        *count
    }

    /// Counts a write request sent to the API server.
    pub fn count_write(&self, resource: &str) {
        self.metrics.api_writes.get_or_create(&WriteLabels { resource: resource.to_string() }).inc();
    }

    fn clear_failures(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// A status with standard conditions and `observedGeneration`.
pub trait ObservedStatus: Clone + Debug + Default + PartialEq + Serialize + Send + Sync + 'static {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions.
    fn set_conditions(&mut self, conditions: Vec<Condition>);
    /// `observedGeneration`.
    fn observed_generation(&self) -> Option<i64>;
    /// Sets `observedGeneration`.
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

macro_rules! observed_status {
    ($($status:ty),* $(,)?) => {$(
        impl ObservedStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn set_conditions(&mut self, conditions: Vec<Condition>) {
                self.conditions = conditions;
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    )*};
}

observed_status!(
    crate::crd::WorkspaceStatus,
    crate::crd::UserStatus,
    crate::crd::PythonEnvironmentStatus,
    crate::crd::ProjectStatus,
);

/// A kind this operator reconciles.
pub trait Managed:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    /// Its status type.
    type Status: ObservedStatus;
    /// The kind, as a static string for metric labels.
    const KIND: &'static str;
    /// The condition types this controller writes; others' conditions are left alone.
    const CONDITION_TYPES: &'static [&'static str];
    /// The stored status.
    fn status(&self) -> Option<&Self::Status>;
    /// The kind's reconcile.
    fn reconcile(obj: Arc<Self>, ctx: Arc<Context>) -> BoxFuture<'static, Result<Action>>;
}

macro_rules! managed {
    ($kind:ty, $status:ty, $conditions:expr, $reconcile:path) => {
        impl Managed for $kind {
            type Status = $status;
            const KIND: &'static str = stringify!($kind);
            const CONDITION_TYPES: &'static [&'static str] = $conditions;
            fn status(&self) -> Option<&Self::Status> {
                self.status.as_ref()
            }
            fn reconcile(obj: Arc<Self>, ctx: Arc<Context>) -> BoxFuture<'static, Result<Action>> {
                Box::pin($reconcile(obj, ctx))
            }
        }
    };
}

managed!(Workspace, crate::crd::WorkspaceStatus, workspace::CONDITION_TYPES, workspace::reconcile);
managed!(User, crate::crd::UserStatus, user::CONDITION_TYPES, user::reconcile);
managed!(
    PythonEnvironment,
    crate::crd::PythonEnvironmentStatus,
    python_environment::CONDITION_TYPES,
    python_environment::reconcile
);
managed!(Project, crate::crd::ProjectStatus, project::CONDITION_TYPES, project::reconcile);

/// Checks that the CRD of `K` is installed and served, with an actionable message if not.
pub async fn check_crd_installed<K: Managed>(client: &Client) -> std::result::Result<(), String> {
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(format!(
            "the CustomResourceDefinition {}.{} is not installed. Install the CRDs first: \
             `kubectl apply --server-side -f crds/`, or `dataworkspace-operator crd | kubectl apply --server-side -f -`",
            resource.plural, resource.group
        )),
        Err(e) => {
            Err(format!("cannot list {}.{}: {}", resource.plural, resource.group, crate::error::describe(&e)))
        }
    }
}

/// Runs all four controllers until `shutdown` resolves, then lets running passes finish.
pub async fn run<F>(client: Client, metrics: Arc<Metrics>, config: Config, shutdown: F)
where
    F: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let workspaces = controller_for::<Workspace>(&client);
    let users = controller_for::<User>(&client);
    let environments = controller_for::<PythonEnvironment>(&client);
    let projects = controller_for::<Project>(&client);
    let stores = Stores { workspaces: workspaces.store(), users: users.store(), projects: projects.store() };
    let ctx = Arc::new(Context::new(client, metrics, config, stores));
    tokio::join!(
        drive(workspace::relations(workspaces, &ctx), ctx.clone(), shutdown.clone()),
        drive(user::relations(users, &ctx), ctx.clone(), shutdown.clone()),
        drive(environments, ctx.clone(), shutdown.clone()),
        drive(projects, ctx, shutdown),
    );
}

fn controller_for<K: Managed>(client: &Client) -> Controller<DeserializeGuard<K>> {
    Controller::new(
        Api::<DeserializeGuard<K>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
}

async fn drive<K, F>(controller: Controller<DeserializeGuard<K>>, ctx: Arc<Context>, shutdown: F)
where
    K: Managed,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    info!(kind = K::KIND, "starting controller");
    controller
        .graceful_shutdown_on(shutdown)
        .run(guarded_reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(kind = K::KIND, object = %object, "reconciled"),
                Err(error) => debug!(kind = K::KIND, %error, "reconcile did not succeed"),
            }
        })
        .await;
    info!(kind = K::KIND, "controller stopped");
}

/// Watch configuration for children the operator labelled.
pub fn managed_children() -> watcher::Config {
    watcher::Config::default().labels(&format!("{}={MANAGER}", crate::names::LABEL_MANAGED_BY)).any_semantic()
}

fn object_key<K: Resource>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// Entry point of every pass: malformed objects become a Warning Event, errors become
/// `Ready=False` with the error's reason, and every pass is measured.
#[tracing::instrument(skip_all, fields(kind = K::KIND, namespace = guard.namespace(), name = guard.name_any()))]
async fn guarded_reconcile<K: Managed>(guard: Arc<DeserializeGuard<K>>, ctx: Arc<Context>) -> Result<Action> {
    let labels = KindLabels { kind: K::KIND };
    ctx.metrics.reconciliations.get_or_create(&labels).inc();
    let started = Instant::now();
    let result = match &guard.0 {
        Err(invalid) => {
            let error = Error::MalformedObject { kind: K::KIND, message: invalid.error.clone() };
            let reference = ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::KIND.into()),
                name: invalid.metadata.name.clone(),
                namespace: invalid.metadata.namespace.clone(),
                uid: invalid.metadata.uid.clone(),
                ..ObjectReference::default()
            };
            publish(&ctx, &reference, EventType::Warning, error.reason(), &error.message()).await;
            Err(error)
        }
        Ok(obj) => {
            let obj = Arc::new(obj.clone());
            match K::reconcile(obj.clone(), ctx.clone()).await {
                Ok(action) => Ok(action),
                Err(error) => {
                    report_failure(&ctx, &*obj, &error).await;
                    Err(error)
                }
            }
        }
    };
    ctx.metrics.duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(_) => ctx.clear_failures(&object_key(&*guard)),
        Err(error) => {
            ctx.metrics
                .failures
                .get_or_create(&FailureLabels { kind: K::KIND, reason: error.reason() })
                .inc();
            warn!(reason = error.reason(), %error, "reconcile failed");
        }
    }
    result
}

/// Permanent errors wait for a change of the object; transient ones retry with a growing delay.
fn error_policy<K: Managed>(guard: Arc<DeserializeGuard<K>>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_permanent() {
        return Action::await_change();
    }
    Action::requeue(retry_delay(ctx.record_failure(&object_key(&*guard))))
}

/// Delay before retry number `failures` (1-based) of a transient error: 5 s, doubling, at most 5 min.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(5 * 2u64.pow(exponent)).min(Duration::from_secs(300))
}

/// Records a failed pass on the object: `Ready=False` with the error's reason, keeping the rest
/// of the status as it was.
async fn report_failure<K: Managed>(ctx: &Context, obj: &K, error: &Error) {
    if matches!(error, Error::StatusUpdate { .. }) {
        return; // writing status is what failed; the retry will try again
    }
    let status = obj.status().cloned().unwrap_or_default();
    let ready = Desired::no(READY, error.reason(), error.message());
    if let Err(status_error) = apply_status(ctx, obj, status, &[ready]).await {
        warn!(%status_error, "could not record the failure in status");
    }
}

/// `Ready=False` for what this operator version does not provision yet: honest, never Ready.
pub fn not_yet_supported(what: &str) -> Desired {
    Desired::no(
        READY,
        "NotYetSupported",
        format!(
            "{what} is not provisioned by this operator version yet; the object is accepted and validated, nothing runs for it"
        ),
    )
}

async fn publish(ctx: &Context, reference: &ObjectReference, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        // The API server refuses notes over 1 kB: bound bytes, not characters.
        note: Some(crate::error::bounded(note, crate::error::MAX_MESSAGE_BYTES)),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.count_write("Event");
    if let Err(error) = ctx.recorder.publish(&event, reference).await {
        warn!(%error, reason, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(3), Duration::from_secs(20));
        assert_eq!(retry_delay(7), Duration::from_secs(300));
        assert_eq!(retry_delay(1000), Duration::from_secs(300));
    }
}
