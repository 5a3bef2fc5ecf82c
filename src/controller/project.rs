//! Reconciles Projects, the same pipeline for every runtime: resolve the workspace from the
//! caches → validate into a runtime spec → build the children → apply them → remove what this
//! pass no longer produces → status from what was applied.

use std::sync::Arc;

use kube::{
    ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef},
};

use tracing::info;

use super::access as access_apply;
use super::{Context, Feeds, RESYNC, Valid, apply_status, cache::generation, children, resolve, root, valid};
use crate::{
    build::{
        access::{self, Exposure, Owner, Reach},
        python_env,
    },
    conditions::{Desired, READY},
    crd::{
        Project, ProjectStatus, Workspace,
        project::{Endpoint, Phase},
    },
    error::{DEPENDENCY_RETRY, Error, Result},
    names::workspace_namespace,
    runtime,
};

/// Condition types the Project controller writes.
pub const CONDITION_TYPES: &[&str] = &[
    READY,
    "Workspace",
    "Runtime",
    "Server",
    "App",
    "Driver",
    "Run",
    // Airflow.
    "DatabaseReady",
    "MigrationComplete",
    "ApiServer",
    "ExecutionApi",
    "Scheduler",
    "DagProcessor",
    "Triggerer",
    "Access",
];

/// The Project controller, fed by the caches: its own kind, the children it owns (by owner
/// reference), and spec changes of the Workspace of its namespace.
pub fn controller(feeds: &mut Feeds, ctx: &Arc<Context>) -> Controller<DeserializeGuard<Project>> {
    let caches = ctx.caches.clone();
    let users_of_environments = ctx.caches.clone();
    let (proxies, people) = (ctx.caches.clone(), ctx.caches.clone());
    let (by_label1, by_label2, by_label3, by_label4) =
        (ctx.caches.clone(), ctx.caches.clone(), ctx.caches.clone(), ctx.caches.clone());
    let controller = root(&mut feeds.projects)
        // Its app (a Deployment it owns), and its proxies, which name it by label.
        .watches_stream(feeds.deployments.subscribe(), move |o| {
            owning_project(&o).or_else(|| labelled_project(&proxies, &o))
        })
        // Who a User is (their e-mail, teams, being disabled) changes the access lists of the
        // apps of their workspaces.
        .watches_stream(feeds.users.subscribe_when(crate::controller::workspace::identity), move |user| {
            let Ok(user) = &user.0 else { return Vec::new() };
            let workspaces = crate::controller::workspace::workspaces_for_user(
                &valid(&people.workspaces),
                &valid(&people.users),
                user,
            );
            let namespaces: Vec<String> = valid(&people.workspaces)
                .iter()
                .filter(|w| workspaces.iter().any(|r| r.name == w.name_any()))
                .map(|w| workspace_namespace(&w.name_any(), w.spec.namespace.as_deref()))
                .collect();
            valid(&people.projects)
                .iter()
                .filter(|p| {
                    p.spec.streamlit.as_ref().is_some_and(|s| s.host.is_some())
                        || p.spec.spark.as_ref().is_some_and(|s| s.host.is_some())
                        || p.spec.airflow.as_ref().is_some_and(|s| s.host.is_some())
                })
                .filter(|p| p.namespace().is_some_and(|ns| namespaces.contains(&ns)))
                .map(|p| ObjectRef::new(&p.name_any()).within(&p.namespace().unwrap_or_default()))
                .collect()
        })
        .watches_stream(feeds.service_accounts.subscribe(), |o| owning_project(&o))
        // Children by owner reference; the access layer's objects by their owner-UID label.
        .watches_stream(feeds.config_maps.subscribe(), move |o| {
            owning_project(&o).or_else(|| labelled_project(&by_label1, &o))
        })
        .watches_stream(feeds.secrets.subscribe(), move |o| {
            owning_project(&o).or_else(|| labelled_project(&by_label2, &o))
        })
        .watches_stream(feeds.services.subscribe(), move |o| {
            owning_project(&o).or_else(|| labelled_project(&by_label3, &o))
        })
        .watches_stream(feeds.ingresses.subscribe(), move |o| labelled_project(&by_label4, &o))
        .watches_stream(feeds.network_policies.subscribe(), |o| owning_project(&o))
        // An Airflow project's shared volume (and one of a Project deleted under the same name,
        // whose going frees the name).
        .watches_stream(feeds.volumes.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.stateful_sets.subscribe(), |o| owning_project(&o))
        // Its Jobs, and its CronJob's, which name it by label.
        .watches_stream(feeds.jobs.subscribe(), |o| owning_project(&o).or_else(|| scheduled_run_project(&o)))
        .watches_stream(feeds.cron_jobs.subscribe(), |o| owning_project(&o))
        .watches_stream(feeds.role_bindings.subscribe(), |o| owning_project(&o))
        // Spark's pods (drivers and executors) name their project by label.
        .watches_stream(feeds.pods.subscribe(), |pod| {
            let name = pod.labels().get(crate::names::LABEL_INSTANCE)?;
            Some(ObjectRef::new(name).within(&pod.namespace()?))
        })
        // An environment becoming ready, rebuilt or withdrawn: the Projects naming it.
        .watches_stream(feeds.environments.subscribe_when(environment_state), move |environment| {
            projects_using(&valid(&users_of_environments.projects), &environment)
        })
        // A Workspace's status changes with its projects' phases: only spec changes matter here.
        .watches_stream(feeds.workspaces.subscribe_when(generation), move |workspace| match &workspace.0 {
            Ok(workspace) => projects_of_workspace(&valid(&caches.projects), workspace),
            Err(_) => Vec::new(),
        });
    // The HTTPRoutes of its app, when the access layer routes through a Gateway.
    match feeds.routes.as_mut() {
        Some(routes) => {
            let by_label = ctx.caches.clone();
            controller.watches_stream(routes.subscribe(), move |o| labelled_project(&by_label, &o))
        }
        None => controller,
    }
}

/// Scales the Project's running workloads (its StatefulSets and Deployments, by owner UID, from
/// the caches) to zero, through the scale subresource, and suspends its runs and schedules.
async fn scale_to_zero(ctx: &Context, validated: &runtime::ValidatedProject) -> Result<()> {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    let sets = running(&ctx.caches.stateful_sets, validated, |s: &StatefulSet| s.spec.as_ref()?.replicas);
    scale_down::<StatefulSet>(ctx, &validated.namespace, sets).await?;
    let deployments = running(&ctx.caches.deployments, validated, |d: &Deployment| d.spec.as_ref()?.replicas);
    scale_down::<Deployment>(ctx, &validated.namespace, deployments).await?;
    suspend_runs(ctx, &validated.namespace, &validated.uid, true, false).await
}

/// Suspends the Project's CronJobs and the unfinished Jobs it or its CronJobs own (from the
/// caches), or — with `scheduled_only` — sets the CronJobs' unfinished Jobs to `suspended`:
/// nothing of it starts or goes on running while it is halted, and a schedule's run in progress
/// resumes after. Writes nothing when everything is as wanted.
async fn suspend_runs(
    ctx: &Context,
    namespace: &str,
    owner: &str,
    suspended: bool,
    scheduled_only: bool,
) -> Result<()> {
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    let in_namespace = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.as_deref() == Some(namespace)
    };
    let mut owners = if scheduled_only { Vec::new() } else { vec![owner.to_string()] };
    let mut schedules = Vec::new();
    for cron in ctx.caches.cron_jobs.state() {
        if in_namespace(&cron.metadata) && cron.owner_references().iter().any(|r| r.uid == owner) {
            owners.extend(cron.metadata.uid.clone());
            if !scheduled_only && cron.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false) != suspended {
                schedules.push(cron.name_any());
            }
        }
    }
    let runs: Vec<String> = ctx
        .caches
        .jobs
        .state()
        .iter()
        .filter(|j| in_namespace(&j.metadata) && j.owner_references().iter().any(|r| owners.contains(&r.uid)))
        .filter(|j| j.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false) != suspended)
        .filter(|j| j.status.as_ref().is_none_or(|s| s.completion_time.is_none()))
        .filter(|j| {
            !j.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Failed" && c.status == "True")
        })
        .map(|j| j.name_any())
        .collect();
    suspend::<CronJob>(ctx, namespace, schedules, suspended).await?;
    suspend::<Job>(ctx, namespace, runs, suspended).await
}

async fn suspend<K>(ctx: &Context, namespace: &str, names: Vec<String>, suspended: bool) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    use kube::api::{Patch, PatchParams};
    let patch = Patch::Merge(serde_json::json!({"spec": {"suspend": suspended}}));
    let params = PatchParams { field_manager: Some(crate::names::MANAGER.into()), ..PatchParams::default() };
    for name in names {
        ctx.count_write(&K::kind(&()));
        kube::Api::<K>::namespaced(ctx.client.clone(), namespace)
            .patch(&name, &params, &patch)
            .await
            .map_err(|source| Error::Apply { what: format!("{} {name} (suspend)", K::kind(&())), source })?;
    }
    Ok(())
}

/// Names of the cached workloads of one kind that the Project owns and that run.
fn running<K>(
    store: &kube::runtime::reflector::Store<K>,
    validated: &runtime::ValidatedProject,
    replicas: impl Fn(&K) -> Option<i32>,
) -> Vec<String>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(validated.namespace.as_str()))
        .filter(|o| o.owner_references().iter().any(|r| r.uid == validated.uid))
        .filter(|o| replicas(o).unwrap_or(1) > 0)
        .map(|o| o.name_any())
        .collect()
}

async fn scale_down<K>(ctx: &Context, namespace: &str, names: Vec<String>) -> Result<()>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    use kube::api::{Patch, PatchParams};
    let zero = Patch::Merge(serde_json::json!({"spec": {"replicas": 0}}));
    let params = PatchParams { field_manager: Some(crate::names::MANAGER.into()), ..PatchParams::default() };
    for name in names {
        ctx.count_write(&K::kind(&()));
        kube::Api::<K>::namespaced(ctx.client.clone(), namespace)
            .patch_scale(&name, &params, &zero)
            .await
            .map_err(|source| Error::Apply { what: format!("{} {name} (scale)", K::kind(&())), source })?;
    }
    Ok(())
}

/// The Project's UI as exposures of the access layer, with its access list's e-mails.
fn exposures(
    ctx: &Context,
    project: &Project,
    validated: &runtime::ValidatedProject,
) -> Option<Vec<Exposure>> {
    let offered = runtime::offered(validated)?;
    let people = crate::controller::workspace::validate::app_access(
        project.spec.access.as_ref(),
        &validated.workspace.people,
        &valid(&ctx.caches.users),
    );
    Some(vec![Exposure {
        owner: Owner { namespace: validated.namespace.clone(), reference: validated.owner.clone() },
        ui: offered.ui,
        host: offered.host,
        service: offered.service,
        port: offered.port,
        pod_labels: offered.pod_labels,
        allowed: people.into_iter().filter_map(|p| p.email).collect(),
    }])
}

/// The Project an access-layer object names by its owner-UID label, if any.
fn labelled_project<K: kube::Resource>(
    caches: &super::Caches,
    object: &K,
) -> Option<ObjectRef<DeserializeGuard<Project>>> {
    let uid = object.meta().labels.as_ref()?.get(access::LABEL_OWNER_UID)?;
    let projects = valid(&caches.projects);
    let project = projects.iter().find(|p| p.metadata.uid.as_ref() == Some(uid))?;
    Some(ObjectRef::new(&project.name_any()).within(&project.namespace()?))
}

/// What a Project reads of a PythonEnvironment: its spec, phase and build.
pub fn environment_state(environment: &DeserializeGuard<crate::crd::PythonEnvironment>) -> u64 {
    match &environment.0 {
        Ok(e) => {
            let status = e.status.clone().unwrap_or_default();
            crate::controller::cache::signature_of((
                e.metadata.generation,
                status.observed_generation,
                status.phase,
                status.spec_hash,
                status.build,
                status.image,
            ))
        }
        Err(_) => crate::controller::cache::generation(environment),
    }
}

/// The Projects of an environment's namespace that name it.
pub fn projects_using(
    projects: &[Valid<Project>],
    environment: &DeserializeGuard<crate::crd::PythonEnvironment>,
) -> Vec<ObjectRef<DeserializeGuard<Project>>> {
    let (Some(namespace), Some(name)) = (
        kube::Resource::meta(environment).namespace.as_deref(),
        kube::Resource::meta(environment).name.as_deref(),
    ) else {
        return Vec::new();
    };
    projects
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| p.spec.python_environment.as_deref() == Some(name))
        .map(|p| ObjectRef::new(&p.name_any()).within(namespace))
        .collect()
}

/// The Project of a run its CronJob started (the Job is the CronJob's; the project's pass checks
/// that the CronJob is its own).
fn scheduled_run_project(
    job: &k8s_openapi::api::batch::v1::Job,
) -> Option<ObjectRef<DeserializeGuard<Project>>> {
    job.owner_references().iter().find(|o| o.kind == "CronJob")?;
    let name = job.labels().get(crate::names::LABEL_INSTANCE)?;
    Some(ObjectRef::new(name).within(&job.namespace()?))
}

/// The Project that owns a child.
pub fn owning_project<K: kube::Resource>(object: &K) -> Option<ObjectRef<DeserializeGuard<Project>>> {
    let namespace = object.meta().namespace.as_deref()?;
    object
        .owner_references()
        .iter()
        .find(|o| o.kind == "Project" && o.api_version.starts_with("dataworkspace.io/"))
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// The Projects in a Workspace's namespace.
pub fn projects_of_workspace(
    projects: &[Valid<Project>],
    workspace: &Workspace,
) -> Vec<ObjectRef<DeserializeGuard<Project>>> {
    let namespace = workspace_namespace(&workspace.name_any(), workspace.spec.namespace.as_deref());
    projects
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .map(|p| ObjectRef::new(&p.name_any()).within(&namespace))
        .collect()
}

/// One pass over a Project.
pub async fn reconcile(project: Arc<Project>, ctx: Arc<Context>) -> Result<Action> {
    if project.metadata.deletion_timestamp.is_some() {
        // Owner references remove the children; the home volumes stay (they hold user data).
        return Ok(Action::await_change());
    }
    ctx.caches.ready().await?;
    let previous = project.status.as_ref().and_then(|s| s.phase);
    let namespace = project.namespace().unwrap_or_default();
    let workspace = match resolve::workspace_of(&namespace, &ctx.caches, &ctx.config) {
        Ok(workspace) => workspace,
        Err(error) => return fail(&ctx, &project, Phase::Pending, "Workspace", error).await,
    };
    // A runtime gets its environment only once it is approved and built.
    let environment = match &project.spec.python_environment {
        Some(name) => ready_environment(&ctx.caches, &namespace, name).map(Some),
        None => Ok(None),
    };
    let mut validated = match runtime::validate(&project, workspace) {
        Ok(validated) => validated,
        Err(error) => return fail(&ctx, &project, Phase::Failed, "Runtime", error).await,
    };
    match environment {
        Ok(environment) => validated.python_environment = environment,
        Err(error) => {
            // Nothing runs without its environment ready for its current spec: not an older
            // build after an edit, a rejection or a withdrawn approval. The workload scales to
            // zero (volumes kept) until the environment is ready again.
            // Its running workloads scale to zero, through the scale subresource (whatever the
            // image it ran would be without the environment); one that never ran gets nothing.
            scale_to_zero(&ctx, &validated).await?;
            return fail(&ctx, &project, Phase::Pending, "Runtime", error).await;
        }
    }
    if let runtime::RuntimeSpec::Spark(spark) = &mut validated.runtime {
        let role = runtime::spark::driver_service_account(&validated.name);
        spark.fenced =
            fenced(&ctx, &ctx.spark_fenced, &super::policies::SPARK_EXECUTORS, &validated.namespace, &role)
                .await;
    }
    if let runtime::RuntimeSpec::Airflow(airflow) = &mut validated.runtime {
        let (namespace, name, uid) = (&validated.namespace, &validated.name, &validated.uid);
        airflow.rollout = airflow_rollout(&ctx.caches, namespace, name, uid, airflow);
        // Who may sign in, when anyone can reach the UI (through its host).
        if airflow.host.is_some() {
            airflow.roles = access_roles(&ctx, &project, &validated.workspace);
        }
        if airflow.kubernetes_executor() {
            let role = runtime::airflow::scheduler_service_account(name);
            airflow.fenced =
                fenced(&ctx, &ctx.airflow_fenced, &super::policies::AIRFLOW_WORKERS, namespace, &role).await;
        }
    }
    if let Err(error) = runtime::check(&validated, &ctx.config) {
        return fail(&ctx, &project, Phase::Failed, "Runtime", error).await;
    }
    // Its UI, if it asks for a host: behind the access layer, the proxies first.
    let exposures = exposures(&ctx, &project, &validated);
    let reach = access::reach(exposures.as_deref(), ctx.config.access.as_ref(), "the project's host", |e| {
        access_apply::claimant(&ctx.caches, &ctx.config.access.as_ref()?.namespace, e)
    });
    validated.proxied = matches!(reach, Reach::Proxied { .. });
    let mut proxies_available = true;
    if let (Some(layer), Some(exposures)) = (&ctx.config.access, &exposures) {
        let mut keep = std::collections::BTreeSet::new();
        if validated.proxied {
            for exposure in exposures {
                let objects = access::build(layer, exposure);
                proxies_available &= access_apply::expose(&ctx, &objects).await?;
                keep.insert(exposure.name());
            }
        }
        access_apply::withdraw(&ctx, &layer.namespace, &validated.uid, Some(&validated.namespace), &keep)
            .await?;
    } else if let Some(layer) = &ctx.config.access {
        let none = Default::default();
        access_apply::withdraw(&ctx, &layer.namespace, &validated.uid, Some(&validated.namespace), &none)
            .await?;
    }
    let children = runtime::build(&validated, &ctx.config);
    let mut applied = children::apply(&ctx, &children).await?;
    let retained = runtime::retained(&validated);
    children::sweep(&ctx, &validated.namespace, &validated.uid, &children, &retained).await?;
    if let runtime::RuntimeSpec::Spark(spark) = &validated.runtime {
        // The runs its schedule started (the pass did not build them) follow too; its pods and
        // kept runs are its status.
        let halted = validated.stopped || !spark.fenced;
        suspend_runs(&ctx, &validated.namespace, &validated.uid, halted, true).await?;
        children::observe(
            &ctx,
            &validated.namespace,
            &validated.name,
            &validated.uid,
            &retained,
            &mut applied,
        );
    }
    let mut status = runtime::status(&validated, &applied, previous);
    let mut conditions =
        vec![Desired::yes("Workspace", "Resolved", format!("in workspace {}", validated.workspace.name))];
    conditions.extend(std::mem::take(&mut status.conditions));
    if exposures.is_some() || runtime::offered(&validated).is_some() {
        conditions.push(match &reach {
            Reach::Proxied { host } if proxies_available => {
                status.endpoints.push(Endpoint { name: "public".into(), url: format!("https://{host}/") });
                Desired::yes("Access", "Authenticated", format!("https://{host}/ behind the access layer"))
            }
            Reach::Proxied { .. } => {
                Desired::no("Access", "ProxyStarting", "the authenticating proxy is not available yet")
            }
            Reach::InCluster { reason, message, refused: true } => {
                Desired::no("Access", reason, message.clone())
            }
            Reach::InCluster { reason, message, .. } => Desired::yes("Access", reason, message.clone()),
        });
    }
    let ready = runtime::summarize(&conditions, "every component is ready");
    conditions.insert(0, ready);
    let stored = ProjectStatus {
        phase: status.phase,
        components: status.components,
        endpoints: status.endpoints,
        runs: status.runs,
        version: status.version,
        ..ProjectStatus::default()
    };
    apply_status(&ctx, &*project, stored, &conditions).await?;
    // A host someone else holds may be released at any time; nothing wakes us for that.
    Ok(match reach {
        Reach::InCluster { reason: "HostTaken", .. } => Action::requeue(DEPENDENCY_RETRY),
        _ => Action::requeue(RESYNC),
    })
}

/// Whether a pod-creating role (bound as `binding` in `namespace`) may be held: only behind its
/// admission policy (checked every 30 s; a change wakes every Project). Before the role is first
/// granted, look again rather than trust the last check: two reads, once per binding.
async fn fenced(
    ctx: &Context,
    flag: &std::sync::atomic::AtomicBool,
    fence: &super::policies::Fence,
    namespace: &str,
    binding: &str,
) -> bool {
    let granted = ctx.caches.role_bindings.get(&ObjectRef::new(binding).within(namespace)).is_some();
    flag.load(std::sync::atomic::Ordering::Relaxed)
        && (granted || super::policies::installed(&ctx.client, fence).await == Some(true))
}

/// Where an Airflow project's rollout stands, from the caches (only objects the project owns):
/// whether its database is ready, how the migration of its version stands, and what its
/// components run now.
fn airflow_rollout(
    caches: &super::Caches,
    namespace: &str,
    name: &str,
    uid: &str,
    airflow: &runtime::airflow::Airflow,
) -> runtime::airflow::Rollout {
    fn owned<K: kube::Resource>(object: &K, uid: &str) -> bool {
        object.owner_references().iter().any(|o| o.uid == uid)
    }
    let database_ready = match &airflow.database {
        runtime::airflow::Database::External { .. } => true,
        runtime::airflow::Database::Managed { .. } => caches
            .stateful_sets
            .get(&ObjectRef::new(&runtime::airflow::postgres_service(name)).within(namespace))
            .filter(|s| owned(&**s, uid))
            .and_then(|s| s.status.as_ref()?.ready_replicas)
            .is_some_and(|ready| ready > 0),
    };
    let migration = caches
        .jobs
        .get(&ObjectRef::new(&runtime::airflow::migration_job_name(name, airflow)).within(namespace))
        .filter(|j| owned(&**j, uid))
        .map(|j| runtime::airflow::migration_state(&j));
    let scheduler = runtime::airflow::Component::Scheduler.workload(name);
    let running = caches
        .deployments
        .get(&ObjectRef::new(&scheduler).within(namespace))
        // Made only once a migration succeeded, so its version is one the database has.
        .filter(|d| owned(&**d, uid))
        .and_then(|d| {
            let version = d.metadata.annotations.as_ref()?.get(runtime::airflow::ANNOTATION_VERSION)?.clone();
            let image = d.spec.as_ref()?.template.spec.as_ref()?.containers.first()?.image.clone()?;
            Some((version, image))
        });
    // Keys older than the Project were kept from an earlier one of the same name.
    let created = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.creation_timestamp.as_ref().map(|t| t.0)
    };
    let project_created = caches
        .projects
        .get(&ObjectRef::new(name).within(namespace))
        .and_then(|p| created(kube::Resource::meta(&*p)));
    let inherited = caches
        .secrets
        .get(&ObjectRef::new(&runtime::airflow::keys_secret(name)).within(namespace))
        // Kept means without an owner: one still owned is an earlier Project's, going.
        .filter(|s| s.metadata.owner_references.as_ref().is_none_or(Vec::is_empty))
        .and_then(|s| created(&s.metadata))
        .zip(project_created)
        .is_some_and(|(keys, project)| keys < project);
    let current = runtime::airflow::migration_job_name(name, airflow);
    let unfinished = caches
        .jobs
        .state()
        .iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(namespace) && owned(&***j, uid))
        .filter(|j| j.labels().get(crate::names::LABEL_COMPONENT).map(String::as_str) == Some("migrate"))
        .filter(|j| j.metadata.name.as_deref() != Some(current.as_str()))
        .filter(|j| runtime::airflow::migration_state(j) == runtime::airflow::Migration::Running)
        // Running now: not suspended (a stopped project's), with a pod at work.
        .filter(|j| j.spec.as_ref().and_then(|s| s.suspend) != Some(true))
        .filter(|j| j.status.as_ref().and_then(|s| s.active).unwrap_or(0) > 0)
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    runtime::airflow::Rollout { database_ready, migration, running, inherited, unfinished }
}

/// Who may sign in to a project's UI, each with the Airflow role of their workspace role: the
/// project's access list (as the access layer's proxy admits it).
fn access_roles(
    ctx: &Context,
    project: &Project,
    workspace: &crate::controller::workspace::validate::ValidatedWorkspace,
) -> Vec<(String, runtime::airflow::AirflowRole)> {
    let allowed = crate::controller::workspace::validate::app_access(
        project.spec.access.as_ref(),
        &workspace.people,
        &valid(&ctx.caches.users),
    );
    let mut roles = Vec::new();
    for (role, people) in &workspace.people {
        for person in people.iter().filter(|p| allowed.contains(p)) {
            if let Some(email) = &person.email {
                roles.push((email.clone(), runtime::airflow::AirflowRole::of(*role)));
            }
        }
    }
    roles
}

/// The PythonEnvironment a Project names, when it is ready: built from the spec it holds now,
/// under an approval of exactly that spec. Anything else (pending, rejected, stale, building,
/// failed, gone) keeps the Project waiting with `EnvironmentNotReady`, saying why.
pub fn ready_environment(caches: &super::Caches, namespace: &str, name: &str) -> Result<python_env::Ready> {
    let not_ready = |why: String| Error::Dependency {
        reason: "EnvironmentNotReady",
        message: format!("PythonEnvironment {name} {why}; the project waits for it"),
    };
    let environment = caches
        .environments
        .get(&ObjectRef::new(name).within(namespace))
        .ok_or_else(|| not_ready("does not exist in this namespace".into()))?;
    let environment = match &environment.0 {
        Ok(environment) => environment,
        Err(_) => return Err(not_ready("is malformed".into())),
    };
    let hash = python_env::spec_hash(&environment.spec);
    let status = environment.status.clone().unwrap_or_default();
    let current = status.observed_generation == environment.metadata.generation
        && status.spec_hash.as_deref() == Some(hash.as_str())
        && environment.spec.approval.as_ref().is_some_and(|a| a.spec_hash == hash);
    let built = status.build.is_some() || status.image.is_some();
    match status.phase.as_deref() {
        Some("Ready") if current && built => Ok(python_env::Ready {
            name: name.into(),
            python_version: environment.spec.python_version.clone(),
            directory: status.build.unwrap_or_default(),
            image: status.image,
        }),
        Some(phase) if current || phase != "Ready" => Err(not_ready(format!("is {phase}"))),
        _ => Err(not_ready("has not been built for its current spec".into())),
    }
}

/// Records why the Project cannot run — its phase and the failing condition — and waits: for a
/// change of the Project, or, when another object is in the way, for that object (its watch) or
/// a bounded delay. The status is written here, with the phase, rather than by the error policy,
/// whose failure record knows no phase.
async fn fail(
    ctx: &Context,
    project: &Project,
    phase: Phase,
    type_: &'static str,
    error: Error,
) -> Result<Action> {
    // A Project that cannot run exposes nothing: a list frozen by a failing pass would keep
    // admitting people who have since left.
    if let (Some(layer), Some(uid)) = (&ctx.config.access, project.metadata.uid.as_deref()) {
        let namespace = project.namespace().unwrap_or_default();
        access_apply::withdraw(ctx, &layer.namespace, uid, Some(&namespace), &Default::default()).await?;
    }
    let condition = Desired::no(type_, error.reason(), error.message());
    let ready = Desired::no(READY, error.reason(), error.message());
    // A batch application's runs stay on record: a finished run is never run again.
    let runs = project.status.as_ref().map(|s| s.runs.clone()).unwrap_or_default();
    let version = project.status.as_ref().and_then(|s| s.version.clone());
    let status = ProjectStatus { phase: Some(phase), runs, version, ..ProjectStatus::default() };
    apply_status(ctx, project, status, &[ready, condition]).await?;
    info!(reason = error.reason(), %error, "the project cannot run yet");
    Ok(match error {
        Error::Dependency { .. } => Action::requeue(DEPENDENCY_RETRY),
        _ => Action::await_change(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_reach_their_project_and_a_workspace_its_projects() {
        let owned: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
            "metadata: {name: nb, namespace: dw-a, ownerReferences: [{apiVersion: dataworkspace.io/v1alpha1, kind: Project, name: nb, uid: u}]}",
        )
        .unwrap();
        let reference = owning_project(&owned).unwrap();
        assert_eq!((reference.name.as_str(), reference.namespace.as_deref()), ("nb", Some("dw-a")));
        let foreign: k8s_openapi::api::core::v1::Service = serde_yaml::from_str(
            "metadata: {name: nb, namespace: dw-a, ownerReferences: [{apiVersion: example.com/v1, kind: Project, name: nb, uid: u}]}",
        )
        .unwrap();
        assert!(owning_project(&foreign).is_none(), "another group's Project");

        let workspace: Workspace = serde_yaml::from_str("metadata: {name: a}\nspec: {}").unwrap();
        let projects: Vec<Project> = ["dw-a", "dw-b"]
            .iter()
            .map(|ns| {
                serde_yaml::from_str(&format!(
                    "metadata: {{name: p, namespace: {ns}}}\nspec: {{runtime: Notebook, notebook: {{}}}}"
                ))
                .unwrap()
            })
            .collect();
        let reached = projects_of_workspace(&crate::fixtures::shared(projects), &workspace);
        assert_eq!(reached.len(), 1);
        assert_eq!(reached[0].namespace.as_deref(), Some("dw-a"));
    }
}
