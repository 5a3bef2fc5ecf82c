//! The controller runtime: one controller per kind, all over one shared [`Context`].
//!
//! Each kind's module holds its `reconcile` (resolve → validate → build → apply → status). This
//! module holds what they share: the caches, the guarded entry point that turns malformed objects
//! and errors into Events and `Ready=False`, and the error policy; `apply` writes.

pub mod access;
pub mod apply;
pub mod cache;
pub mod children;
pub mod identity;
pub mod policies;
pub mod project;
pub mod python_environment;
pub mod resolve;
pub mod user;
pub mod workspace;

pub use apply::{
    apply_cluster, apply_namespaced, apply_status, apply_status_paced, delete_cluster_if_managed,
    delete_if_managed,
};
pub use cache::{Caches, Feed, Feeds, Valid, valid};

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
        controller::{self, Action},
        events::{Event, EventType, Recorder, Reporter},
    },
};
use serde::{Serialize, de::DeserializeOwned};
use tracing::{debug, info, warn};

use crate::{
    conditions::{Desired, READY},
    config::Config,
    crd::{Project, PythonEnvironment, User, Workspace},
    error::{DEPENDENCY_RETRY, Error, Result},
    metrics::{FailureLabels, KindLabels, Metrics, WriteLabels},
    names::MANAGER,
};

/// How long an object that reconciled cleanly waits before it is looked at again without a
/// change. Such passes write nothing when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(3600);
/// The shortest time between two status writes of one object when only what the status lists
/// changes (a User's workspaces and recent projects, a Workspace's project counts and usage),
/// not a condition: a lone change is written at once, and a burst of changes elsewhere (a
/// rollout of many Projects) costs one write per object per interval; a listing is at most this
/// stale.
pub const STATUS_PACE: Duration = Duration::from_secs(30);

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
    /// The caches every pass reads.
    pub caches: Caches,
    /// Consecutive transient failures per object, for the growing retry delay.
    failures: Mutex<HashMap<String, u32>>,
    /// When each object's paced status was last written (see [`apply_status_paced`]).
    paced: Pacer,
    /// Whether the PythonEnvironment approval policies are installed (see [`policies`]).
    pub approval_enforced: std::sync::atomic::AtomicBool,
    /// Whether the Spark executor policy is installed (see [`policies`]).
    pub spark_fenced: std::sync::atomic::AtomicBool,
    /// Whether the Airflow task pod policy is installed (see [`policies`]).
    pub airflow_fenced: std::sync::atomic::AtomicBool,
}

impl Context {
    /// A context for the given client, metrics, settings and caches.
    pub fn new(client: Client, metrics: Arc<Metrics>, config: Config, caches: Caches) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            caches,
            failures: Mutex::default(),
            paced: Pacer::default(),
            approval_enforced: std::sync::atomic::AtomicBool::new(false),
            spark_fenced: std::sync::atomic::AtomicBool::new(false),
            airflow_fenced: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Decides when a failed pass is retried, keeping the object's failure count (see
    /// [`retry_policy`]).
    fn record_failure(&self, key: &str, error: &Error) -> Action {
        retry_policy(&mut self.failures.lock().unwrap_or_else(|e| e.into_inner()), key, error)
    }

    /// Counts a write request sent to the API server.
    pub fn count_write(&self, resource: &str) {
        self.metrics.api_writes.get_or_create(&WriteLabels { resource: resource.to_string() }).inc();
    }

    /// Forgets an object's failure count: its pass succeeded, or it is gone.
    fn clear_failures(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// When each object's status was last written, for the writes [`apply_status_paced`] spaces.
#[derive(Default)]
pub struct Pacer(Mutex<HashMap<String, Instant>>);

impl Pacer {
    /// How long a status write of `key` must wait: the rest of [`STATUS_PACE`] since the last
    /// write when it changes only listings, else nothing. `None` records a write at `now`.
    /// Entries older than the pace are dropped, so the map holds only recent writers.
    pub fn wait(&self, key: &str, listings_only: bool, now: Instant) -> Option<Duration> {
        let mut written = self.0.lock().unwrap_or_else(|e| e.into_inner());
        written.retain(|_, at| now.duration_since(*at) < STATUS_PACE);
        if let Some(at) = written.get(key).filter(|_| listings_only) {
            return Some(STATUS_PACE - now.duration_since(*at));
        }
        written.insert(key.to_string(), now);
        None
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
pub async fn run<F>(
    client: Client,
    metrics: Arc<Metrics>,
    config: Config,
    ready: Arc<std::sync::atomic::AtomicBool>,
    shutdown: F,
) where
    F: Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let mut feeds = Feeds::new(&client, config.access.as_ref().is_some_and(|a| a.gateway.is_some()));
    let ctx = Arc::new(Context::new(client, metrics, config, feeds.caches()));
    ctx.metrics.observe(ctx.caches.clone());
    if policies::installed(&ctx.client, &policies::GUARD).await == Some(false) {
        warn!(
            "the admission policy dataworkspace-operator-guard is not installed: nothing but RBAC limits where this operator writes (install the chart's admission policies)"
        );
    }
    for (fence, flag) in [
        (&policies::APPROVAL, &ctx.approval_enforced),
        (&policies::SPARK_EXECUTORS, &ctx.spark_fenced),
        (&policies::AIRFLOW_WORKERS, &ctx.airflow_fenced),
    ] {
        if policies::recheck(&ctx, fence, flag).await {
            info!("{} policies installed", fence.what);
        }
    }
    let workspaces = workspace::controller(&mut feeds, &ctx);
    let users = user::controller(&mut feeds, &ctx);
    // A fence installed or removed: every Project looks again (Spark drivers and Airflow
    // schedulers get or lose their role).
    let (fence_changes, fence_changed) = futures::channel::mpsc::channel::<()>(1);
    let projects = project::controller(&mut feeds, &ctx).reconcile_all_on(fence_changed);
    let environments = python_environment::controller(&mut feeds, &ctx);
    // Owners appearing or going away, and proxies changing, wake the sweep of the access layer.
    let sweep_triggers = futures::stream::select_all([
        feeds.workspaces.subscribe_when(cache::existence).map(drop).boxed(),
        feeds.projects.subscribe_when(cache::existence).map(drop).boxed(),
        feeds.deployments.subscribe_when(cache::existence).map(drop).boxed(),
    ]);
    let watches = futures::future::join_all(feeds.drive(&ctx.metrics));
    let caches = ctx.caches.clone();
    let synced = async move {
        while caches.ready().await.is_err() {}
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        info!("caches synced; ready");
        std::future::pending::<()>().await
    };
    let controllers = async {
        tokio::join!(
            drive(workspaces, ctx.clone(), shutdown.clone()),
            drive(users, ctx.clone(), shutdown.clone()),
            drive(environments, ctx.clone(), shutdown.clone()),
            drive(projects, ctx.clone(), shutdown.clone()),
        )
    };
    let stop_sweep = shutdown.clone();
    let sweep = async {
        tokio::select! {
            _ = async { tokio::join!(access::sweep_orphans(ctx.clone(), sweep_triggers), policies::watch(ctx.clone(), fence_changes)) } => {}
            _ = stop_sweep => {}
        }
    };
    // The watches run until the controllers have stopped.
    tokio::select! {
        _ = async { tokio::join!(controllers, sweep) } => {}
        _ = watches => {}
        _ = synced => {}
    }
}

/// How long a controller waits for more triggers of an object before a pass, so bursts of
/// events (a status write, then its own watch event) cost one pass.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// Passes running at once per controller: bounded, so a burst of changes neither floods the API
/// server (whose writes [`crate::throttle`] paces too) nor queues many passes behind that limit.
const CONCURRENCY: u16 = 8;

/// A controller over a root kind, fed by its cache: woken by spec changes and deletion, not by
/// its own status writes.
pub fn root<K: Managed>(feed: &mut Feed<DeserializeGuard<K>>) -> Controller<DeserializeGuard<K>> {
    Controller::for_stream(feed.subscribe_when(cache::generation::<K>), feed.store.clone())
        .with_config(controller::Config::default().debounce(DEBOUNCE).concurrency(CONCURRENCY))
}

async fn drive<K, F>(controller: Controller<DeserializeGuard<K>>, ctx: Arc<Context>, shutdown: F)
where
    K: Managed,
    F: Future<Output = ()> + Send + Sync + 'static,
{
    info!(kind = K::KIND, "starting controller");
    controller
        .graceful_shutdown_on(shutdown)
        .run(guarded_reconcile::<K>, error_policy::<K>, ctx.clone())
        .for_each(|result| {
            outcome::<K>(&ctx, result);
            futures::future::ready(())
        })
        .await;
    info!(kind = K::KIND, "controller stopped");
}

/// What a controller's stream reports for one pass, or about its watches and queue.
type Outcome<K> = std::result::Result<
    (kube::runtime::reflector::ObjectRef<DeserializeGuard<K>>, Action),
    kube::runtime::controller::Error<Error, kube::runtime::watcher::Error>,
>;

/// Records what the controller stream reports. Failed passes were logged at warn by the pass
/// itself; an object that is gone has its failure count forgotten; anything else is the
/// controller's watches or queue failing (a watch the API server refuses, RBAC 403): logged at
/// warn and counted, as nothing else shows it.
fn outcome<K: Managed>(ctx: &Context, result: Outcome<K>) {
    use kube::runtime::controller::Error as ControllerError;
    match result {
        Ok((object, _)) => debug!(kind = K::KIND, object = %object, "reconciled"),
        Err(ControllerError::ReconcilerFailed(error, object)) => {
            debug!(kind = K::KIND, object = %object, %error, "reconcile did not succeed");
        }
        Err(ControllerError::ObjectNotFound(object)) => {
            ctx.clear_failures(&object_key(K::KIND, object.namespace.as_deref(), &object.name));
            debug!(kind = K::KIND, object = %object, "object is gone");
        }
        Err(error) => {
            ctx.metrics.watch_errors.get_or_create(&KindLabels { kind: K::KIND }).inc();
            warn!(kind = K::KIND, %error, "the controller's watch or queue failed");
        }
    }
}

/// The key of an object's failure count: kind, namespace and name, so objects of different
/// kinds with the same name never share a count.
fn object_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or_default())
}

fn guard_key<K: Managed>(guard: &DeserializeGuard<K>) -> String {
    object_key(K::KIND, guard.namespace().as_deref(), &guard.name_any())
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
        Ok(_) => ctx.clear_failures(&guard_key(&*guard)),
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

/// When a failed pass is retried (see [`retry_policy`]).
fn error_policy<K: Managed>(guard: Arc<DeserializeGuard<K>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.record_failure(&guard_key(&*guard), error)
}

/// When a failed pass is retried, given the consecutive transient failures per object key.
/// Permanent errors wait for a change of the object; errors that depend on other objects are
/// retried after [`DEPENDENCY_RETRY`] (their watches may not lead back to the object); both
/// forget the count. Transient errors retry with a growing delay ([`retry_delay`]).
pub fn retry_policy(failures: &mut HashMap<String, u32>, key: &str, error: &Error) -> Action {
    if error.is_permanent() {
        failures.remove(key);
        return Action::await_change();
    }
    if error.is_dependency() {
        failures.remove(key);
        return Action::requeue(DEPENDENCY_RETRY);
    }
    let count = failures.entry(key.to_string()).or_default();
    *count = count.saturating_add(1);
    Action::requeue(retry_delay(*count))
}

/// Delay before retry number `failures` (1-based) of a transient error: 5 s, doubling, at most 5 min.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(5 * 2u64.pow(exponent)).min(Duration::from_secs(300))
}

/// Records a failed pass on the object: `Ready=False` with the error's reason, keeping the rest
/// of the status as it was — when [`failure_needs_status`] says so.
async fn report_failure<K: Managed>(ctx: &Context, obj: &K, error: &Error) {
    if !failure_needs_status(obj.status(), obj.meta().generation, error) {
        return;
    }
    let status = obj.status().cloned().unwrap_or_default();
    let ready = Desired::no(READY, error.reason(), error.message());
    if let Err(status_error) = apply::apply_failure_status(ctx, obj, status, &[ready]).await {
        warn!(%status_error, "could not record the failure in status");
    }
}

/// Whether a failed pass writes `Ready=False` into the stored status. Every status write is a
/// watch event that triggers the object again at once, ahead of the retry delay: so a failure
/// already recorded — `Ready=False` with the same reason, for the current generation — is not
/// written again, and the retry delay holds. The message counts only for errors whose message
/// the operator makes from the spec and the observed state (it changes only when they do); an
/// API server's or the network's text may differ on every try (request IDs, timeouts) and would
/// turn each retry into an immediate one. A failed status write is not recorded in status.
pub fn failure_needs_status<S: ObservedStatus>(
    stored: Option<&S>,
    generation: Option<i64>,
    error: &Error,
) -> bool {
    if matches!(error, Error::StatusUpdate { .. }) {
        return false; // writing status is what failed; the retry will try again
    }
    let Some(stored) = stored else { return true };
    let Some(ready) = crate::conditions::find(stored.conditions(), READY) else { return true };
    let own_message = matches!(error, Error::InvalidSpec { .. } | Error::Dependency { .. });
    let recorded = ready.status == "False"
        && ready.reason == error.reason()
        && ready.observed_generation == generation
        && stored.observed_generation() == generation
        && (!own_message || ready.message == error.message());
    !recorded
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
    fn listing_changes_are_spaced_and_condition_changes_are_not() {
        let pacer = Pacer::default();
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        assert_eq!(pacer.wait("User/a", true, at(0)), None, "the first write goes at once");
        assert_eq!(pacer.wait("User/a", true, at(10)), Some(Duration::from_secs(20)));
        assert_eq!(pacer.wait("User/b", true, at(10)), None, "per object");
        assert_eq!(pacer.wait("User/a", false, at(15)), None, "a condition change goes at once");
        assert_eq!(
            pacer.wait("User/a", true, at(25)),
            Some(Duration::from_secs(20)),
            "and restarts the interval"
        );
        assert_eq!(pacer.wait("User/a", true, at(45)), None);
        assert_eq!(pacer.0.lock().unwrap().len(), 1, "b's write is older than the pace: forgotten");
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(5));
        assert_eq!(retry_delay(2), Duration::from_secs(10));
        assert_eq!(retry_delay(3), Duration::from_secs(20));
        assert_eq!(retry_delay(7), Duration::from_secs(300));
        assert_eq!(retry_delay(1000), Duration::from_secs(300));
    }

    fn transient() -> Error {
        let status =
            kube::core::Status::failure("etcdserver: request timed out", "InternalError").with_code(500);
        Error::Apply { what: "Namespace a".into(), source: kube::Error::Api(status.boxed()) }
    }

    fn invalid() -> Error {
        Error::InvalidSpec { reason: "InvalidGitRepository", message: "bad URL".into() }
    }

    fn dependency() -> Error {
        Error::Dependency {
            reason: "NamespaceConflict",
            message: "namespace a belongs to Workspace b".into(),
        }
    }

    #[test]
    fn objects_of_different_kinds_never_share_a_key() {
        assert_ne!(object_key("Workspace", None, "a"), object_key("User", None, "a"));
        assert_ne!(object_key("Project", Some("ns"), "x"), object_key("PythonEnvironment", Some("ns"), "x"));
        assert_ne!(object_key("Project", Some("a"), "b"), object_key("Project", Some("b"), "a"));
        assert_eq!(object_key("Project", Some("ns"), "x"), "Project/ns/x");
    }

    #[test]
    fn transient_errors_retry_later_and_later_per_object() {
        let mut failures = HashMap::new();
        let workspace = object_key("Workspace", None, "a");
        let delays: Vec<Action> =
            (0..3).map(|_| retry_policy(&mut failures, &workspace, &transient())).collect();
        assert_eq!(
            delays,
            [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s))),
            "a transient error retries with a growing delay"
        );
        // A User of the same name keeps a count of its own.
        let user = object_key("User", None, "a");
        assert_eq!(retry_policy(&mut failures, &user, &transient()), Action::requeue(Duration::from_secs(5)));
        assert_eq!(failures[&workspace], 3);
        assert_eq!(failures[&user], 1);
    }

    #[test]
    fn permanent_errors_wait_for_a_change_and_forget_the_count() {
        let mut failures = HashMap::new();
        let key = object_key("Workspace", None, "a");
        retry_policy(&mut failures, &key, &transient());
        assert_eq!(retry_policy(&mut failures, &key, &invalid()), Action::await_change());
        assert!(failures.is_empty(), "{failures:?}");
        let malformed = Error::MalformedObject { kind: "Workspace", message: "x".into() };
        assert_eq!(retry_policy(&mut failures, &key, &malformed), Action::await_change());
        // After a permanent error, the next transient one starts from the shortest delay.
        assert_eq!(retry_policy(&mut failures, &key, &transient()), Action::requeue(Duration::from_secs(5)));
    }

    #[test]
    fn errors_that_depend_on_other_objects_are_retried_after_a_bounded_delay() {
        let mut failures = HashMap::new();
        let key = object_key("Workspace", None, "a");
        retry_policy(&mut failures, &key, &transient());
        for _ in 0..3 {
            assert_eq!(retry_policy(&mut failures, &key, &dependency()), Action::requeue(DEPENDENCY_RETRY));
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    fn stored(ready: Option<(&str, &str, &str)>, generation: i64) -> crate::crd::WorkspaceStatus {
        let conditions = ready
            .map(|(status, reason, message)| Condition {
                type_: READY.into(),
                status: status.into(),
                reason: reason.into(),
                message: message.into(),
                observed_generation: Some(generation),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-01-01T00:00:00Z".parse().unwrap(),
                ),
            })
            .into_iter()
            .collect();
        crate::crd::WorkspaceStatus {
            conditions,
            observed_generation: Some(generation),
            ..Default::default()
        }
    }

    #[test]
    fn a_failure_is_written_once_so_the_retry_delay_holds() {
        let none: Option<&crate::crd::WorkspaceStatus> = None;
        assert!(failure_needs_status(none, Some(1), &transient()), "no status yet");
        let ready = stored(Some(("True", "Ready", "ok")), 1);
        assert!(failure_needs_status(Some(&ready), Some(1), &transient()), "Ready turns False");
        let no_ready = stored(None, 1);
        assert!(failure_needs_status(Some(&no_ready), Some(1), &transient()));

        // Recorded with the same reason: not again, even when the API server's text differs.
        let recorded = stored(Some(("False", "ApplyFailed", "applying Namespace a: connection refused")), 1);
        assert!(!failure_needs_status(Some(&recorded), Some(1), &transient()));
        // Another reason, or a new generation, is written.
        assert!(failure_needs_status(Some(&recorded), Some(1), &invalid()));
        assert!(failure_needs_status(Some(&recorded), Some(2), &transient()));
        let mut old_status = recorded.clone();
        old_status.observed_generation = Some(0);
        assert!(failure_needs_status(Some(&old_status), Some(1), &transient()));

        // The operator's own messages follow the observed state: a new message is written.
        let conflict = dependency();
        let same = stored(Some(("False", "NamespaceConflict", &conflict.message())), 1);
        assert!(!failure_needs_status(Some(&same), Some(1), &conflict));
        let other = stored(Some(("False", "NamespaceConflict", "namespace a was made for Workspace c")), 1);
        assert!(failure_needs_status(Some(&other), Some(1), &conflict));

        // A failed status write is never recorded in status.
        let status_error = Error::StatusUpdate {
            source: kube::Error::Api(
                kube::core::Status::failure("conflict", "Conflict").with_code(409).boxed(),
            ),
        };
        assert!(!failure_needs_status(none, Some(1), &status_error));
    }
}
