//! Reconciles PythonEnvironments: requested → approved (by an admin other than the requester,
//! for exactly this spec; the API server enforces who may approve) → built by a Job → ready for
//! the Projects that name it. Observe → decide → build → apply → status.

use std::sync::Arc;

use k8s_openapi::api::{
    batch::v1::Job,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api, Resource, ResourceExt,
    api::ListParams,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef},
};

use super::{Context, Feeds, RESYNC, apply_status, cache::signature_of, children, root, valid};
use crate::{
    build::{
        children::Child,
        owner_reference,
        python_env::{self, ANNOTATION_REQUESTED_BY, Approved},
    },
    conditions::{Desired, READY},
    crd::{Project, PythonEnvironment, PythonEnvironmentStatus, python_environment::BuildStrategy},
    error::{Error, Result},
    names::LABEL_WORKSPACE,
};

/// Condition types the PythonEnvironment controller writes.
pub const CONDITION_TYPES: &[&str] = &[READY, "Approved", "Built"];

/// Annotation on the build-result ConfigMap naming the UID of the build Job it records.
const ANNOTATION_JOB: &str = "dataworkspace.io/build-job";
/// Key of the lock in the build-result ConfigMap.
const LOCK_KEY: &str = "lock.txt";
/// Key of the pushed image (strategy `Image`) in the build-result ConfigMap.
const IMAGE_KEY: &str = "image";
/// Key of a failed build's error summary in the build-result ConfigMap.
const ERROR_KEY: &str = "error";

/// The PythonEnvironment controller: its own kind, its build Jobs and ConfigMaps, and the
/// Projects that name it (for `usedBy`).
pub fn controller(feeds: &mut Feeds, _ctx: &Arc<Context>) -> Controller<DeserializeGuard<PythonEnvironment>> {
    root(&mut feeds.environments)
        .watches_stream(feeds.jobs.subscribe(), |o| owning_environment(&o))
        .watches_stream(feeds.config_maps.subscribe(), |o| owning_environment(&o))
        .watches_stream(feeds.projects.subscribe_when(environment_named), |project| {
            let project = project.0.as_ref().ok()?;
            let name = project.spec.python_environment.as_deref()?;
            Some(ObjectRef::new(name).within(&project.namespace()?))
        })
}

/// What an environment reads of a Project: the environment it names.
fn environment_named(project: &DeserializeGuard<Project>) -> u64 {
    signature_of(project.0.as_ref().ok().map(|p| p.spec.python_environment.clone()))
}

/// The PythonEnvironment that owns a child.
fn owning_environment<K: Resource>(object: &K) -> Option<ObjectRef<DeserializeGuard<PythonEnvironment>>> {
    let namespace = object.meta().namespace.as_deref()?;
    object
        .owner_references()
        .iter()
        .find(|o| o.kind == "PythonEnvironment" && o.api_version.starts_with("dataworkspace.io/"))
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// Where an environment stands before anything is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Waiting for an approval of the current spec (the reason says what is missing).
    Pending(&'static str, String),
    /// Rejected for the current spec.
    Rejected(String),
    /// Approved for the current spec by `approver`: build.
    Build {
        /// Who approved.
        approver: String,
    },
    /// Approved, but not buildable (the reason says why).
    Unbuildable(&'static str, String),
}

/// Decides from the spec, the requester the admission policy stamped, and whether the policies
/// that make an approval trustworthy are installed. The API server already refused forged
/// approvals; this checks again, so a missing policy fails closed.
pub fn decide(env: &PythonEnvironment, hash: &str, enforced: bool) -> Decision {
    let requester = env.annotations().get(ANNOTATION_REQUESTED_BY).cloned().unwrap_or_default();
    if !enforced {
        return Decision::Pending(
            "ApprovalNotEnforced",
            "the admission policies dataworkspace-pyenv-requester and dataworkspace-pyenv-approval are not installed (deploy/admission.yaml); without them an approval could be forged, so nothing is built".into(),
        );
    }
    if let Some(rejection) = &env.spec.rejection
        && rejection.spec_hash == hash
    {
        return Decision::Rejected(format!("rejected by {}: {}", rejection.rejected_by, rejection.reason));
    }
    if requester.is_empty() {
        return Decision::Pending(
            "NoRequester",
            "no requester is recorded (annotation dataworkspace.io/requested-by, stamped by the API server); recreate the environment".into(),
        );
    }
    let Some(approval) = &env.spec.approval else {
        return Decision::Pending(
            "PendingApproval",
            format!(
                "requested by {requester}; waiting for an admin other than the requester to approve spec hash {hash} (spec.approval)"
            ),
        );
    };
    if approval.spec_hash != hash {
        return Decision::Pending(
            "ApprovalStale",
            format!(
                "{} approved spec hash {}, but what the spec installs changed since (now {hash}, requested by {requester}): approve again",
                approval.approved_by, approval.spec_hash
            ),
        );
    }
    if approval.approved_by == requester {
        return Decision::Pending(
            "SelfApproval",
            format!("{requester} requested this spec and cannot approve it; another admin must"),
        );
    }
    match python_env::buildable(&env.spec) {
        Ok(()) => Decision::Build { approver: approval.approved_by.clone() },
        Err(message) => Decision::Unbuildable("StrategyNotSupported", message),
    }
}

/// One pass over a PythonEnvironment.
pub async fn reconcile(env: Arc<PythonEnvironment>, ctx: Arc<Context>) -> Result<Action> {
    if env.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    ctx.caches.ready().await?;
    let namespace = env.namespace().unwrap_or_default();
    let name = env.name_any();
    let workspace = super::resolve::workspace_of(&namespace, &ctx.caches, &ctx.config)?;
    let hash = python_env::spec_hash(&env.spec);
    // A username as the API server authenticated it (stamped by the requester policy). Where
    // that policy is missing anyone may write the annotation: a value no username could be
    // (control characters, unbounded) is not copied into status, where admins' tools show it.
    let requester = env
        .annotations()
        .get(ANNOTATION_REQUESTED_BY)
        .filter(|r| r.len() <= 512 && !r.chars().any(char::is_control))
        .cloned();
    let mut status = PythonEnvironmentStatus {
        requester: requester.clone(),
        spec_hash: Some(hash.clone()),
        approved_spec_hash: env.spec.approval.as_ref().map(|a| a.spec_hash.clone()).filter(|h| *h != hash),
        used_by: used_by(&ctx, &namespace, &name),
        ..PythonEnvironmentStatus::default()
    };
    // Credentials are connections of the Workspace: their Secret keys, never their values.
    let connection = |field: &str, name: Option<&String>| match name {
        None => Ok(None),
        Some(name) => {
            workspace.secret_env.get(&format!("CONN_{}", name.to_uppercase())).cloned().map(Some).ok_or_else(
                || {
                    format!(
                        "{field} names the connection {name}, which the Workspace {} does not have",
                        workspace.name
                    )
                },
            )
        }
    };
    let index_credentials = connection("spec.indexCredentials", env.spec.index_credentials.as_ref());
    let push_credentials = connection(
        "spec.image.pushCredentials",
        env.spec.image.as_ref().and_then(|i| i.push_credentials.as_ref()),
    );
    let mut enforced = ctx.approval_enforced.load(std::sync::atomic::Ordering::Relaxed);
    // Before a build starts (its Job does not exist yet), look at the policies again rather than
    // trust the last periodic check: an approval forged while one was just removed must not
    // start a build. Four reads, only when a build is about to start.
    let job_name = python_env::job_name(&name, &hash);
    let starting = ctx.caches.jobs.get(&ObjectRef::new(&job_name).within(&namespace)).is_none();
    if enforced && starting && matches!(decide(&env, &hash, true), Decision::Build { .. }) {
        enforced = super::policies::installed(&ctx.client, &super::policies::APPROVAL).await == Some(true);
    }
    let decision = match (decide(&env, &hash, enforced), &index_credentials, &push_credentials) {
        (Decision::Build { .. }, Err(message), _) | (Decision::Build { .. }, _, Err(message)) => {
            Decision::Unbuildable("UnknownConnection", message.clone())
        }
        (decision, _, _) => decision,
    };
    let mut conditions = Vec::new();
    match decision {
        Decision::Pending(reason, message) => {
            status.phase = Some("PendingApproval".into());
            conditions.push(Desired::no("Approved", reason, message));
            conditions.push(Desired::no("Built", "NotApproved", "nothing is built before an approval"));
        }
        Decision::Rejected(message) => {
            status.phase = Some("Rejected".into());
            conditions.push(Desired::no("Approved", "Rejected", message));
            conditions.push(Desired::no("Built", "NotApproved", "a rejected spec is never built"));
        }
        Decision::Unbuildable(reason, message) => {
            status.phase = Some("Failed".into());
            status.approver = env.spec.approval.as_ref().map(|a| a.approved_by.clone());
            conditions.push(Desired::yes("Approved", "Approved", "approved for the current spec"));
            conditions.push(Desired::no("Built", reason, message));
        }
        Decision::Build { approver } => {
            status.approver = Some(approver.clone());
            conditions.push(Desired::yes(
                "Approved",
                "Approved",
                format!(
                    "approved by {approver} for spec hash {hash}, requested by {}",
                    requester.unwrap_or_default()
                ),
            ));
            let approved = Approved {
                name: &name,
                namespace: &namespace,
                workspace: &workspace.name,
                owner: owner_reference(&*env),
                spec: &env.spec,
                hash: &hash,
                index_credentials: index_credentials.ok().flatten(),
                push_credentials: push_credentials.ok().flatten(),
            };
            let mut wanted = python_env::children(&approved);
            let applied = children::apply(&ctx, &wanted).await?;
            let job = applied.jobs.get(&job_name);
            let job_uid = job.and_then(|j| j.metadata.uid.clone()).unwrap_or_default();
            let built = match job.and_then(finished) {
                None => {
                    // Keep the record of an earlier build while this one runs.
                    wanted.extend(recorded(&ctx, &namespace, &name).map(Child::ConfigMap));
                    None
                }
                Some(succeeded) => {
                    let record = match recorded(&ctx, &namespace, &name)
                        .filter(|r| recorded_job(r) == Some(&job_uid))
                    {
                        Some(record) => record,
                        None => {
                            let record = record_build(&ctx, &approved, &job_uid, succeeded).await?;
                            children::apply(&ctx, &[Child::ConfigMap(record.clone())]).await?;
                            record
                        }
                    };
                    wanted.push(Child::ConfigMap(record.clone()));
                    Some((succeeded, record))
                }
            };
            children::sweep(&ctx, &namespace, &approved.owner.uid, &wanted, &[]).await?;
            match built {
                None => {
                    status.phase = Some("Building".into());
                    conditions.push(Desired::no(
                        "Built",
                        "Building",
                        format!("the build Job {job_name} is running"),
                    ));
                }
                Some((true, record))
                    if env.spec.strategy == BuildStrategy::Image
                        && record
                            .data
                            .as_ref()
                            .and_then(|d| d.get(IMAGE_KEY))
                            .is_none_or(|i| i.is_empty()) =>
                {
                    status.phase = Some("Failed".into());
                    status.lock_config_map = Some(python_env::lock_name(&name));
                    conditions.push(Desired::no(
                        "Built",
                        "NoImageReported",
                        format!("the build Job {job_name} succeeded but its push reported no image digest of the repository"),
                    ));
                }
                Some((true, record)) => {
                    let lock = record.data.as_ref().and_then(|d| d.get(LOCK_KEY)).filter(|l| !l.is_empty());
                    let image = record.data.as_ref().and_then(|d| d.get(IMAGE_KEY)).filter(|i| !i.is_empty());
                    status.phase = Some("Ready".into());
                    match env.spec.strategy {
                        BuildStrategy::Virtualenv => {
                            status.build = Some(python_env::build_directory(&hash, &job_uid));
                        }
                        BuildStrategy::Image => status.image = image.cloned(),
                    }
                    status.lock_config_map = Some(python_env::lock_name(&name));
                    status.lock_hash = lock.map(|l| python_env::sha256_hex(l.as_bytes()));
                    conditions.push(Desired::yes(
                        "Built",
                        "Built",
                        match lock {
                            Some(lock) => {
                                format!("built by {job_name}; {} packages locked", lock.lines().count())
                            }
                            None => format!("built by {job_name}; the build reported no lock"),
                        },
                    ));
                }
                Some((false, record)) => {
                    let error =
                        record.data.as_ref().and_then(|d| d.get(ERROR_KEY)).cloned().unwrap_or_default();
                    status.phase = Some("Failed".into());
                    status.lock_config_map = Some(python_env::lock_name(&name));
                    conditions.push(Desired::no(
                        "Built",
                        "BuildFailed",
                        format!("the build Job {job_name} failed: {}", crate::error::bounded(&error, 900)),
                    ));
                }
            }
        }
    }
    let ready =
        crate::runtime::summarize(&conditions, "approved, built, ready for the Projects that name it");
    conditions.insert(0, ready);
    apply_status(&ctx, &*env, status, &conditions).await?;
    // Waiting for the policies: look again once they may have been installed.
    let not_enforced = conditions.iter().any(|c| c.reason == "ApprovalNotEnforced");
    Ok(Action::requeue(if not_enforced { super::policies::CHECK_EVERY * 2 } else { RESYNC }))
}

/// Whether a Job finished: `Some(true)` succeeded, `Some(false)` failed.
fn finished(job: &Job) -> Option<bool> {
    let status = job.status.as_ref()?;
    if status.succeeded.unwrap_or(0) > 0 {
        Some(true)
    } else if status.failed.unwrap_or(0) > 0 {
        Some(false)
    } else {
        None
    }
}

/// The cached build record (`<name>-lock`) of an environment, if any.
fn recorded(ctx: &Context, namespace: &str, name: &str) -> Option<ConfigMap> {
    ctx.caches
        .config_maps
        .get(&ObjectRef::new(&python_env::lock_name(name)).within(namespace))
        .map(|m| (*m).clone())
        .map(|mut m| {
            // Re-applied as a child: only what the operator sets.
            m.metadata = kube::api::ObjectMeta {
                name: m.metadata.name,
                namespace: m.metadata.namespace,
                labels: m.metadata.labels,
                annotations: m.metadata.annotations.map(|mut a| {
                    a.retain(|k, _| k == ANNOTATION_JOB);
                    a
                }),
                owner_references: m.metadata.owner_references,
                ..Default::default()
            };
            m
        })
}

fn recorded_job(record: &ConfigMap) -> Option<&String> {
    record.metadata.annotations.as_ref()?.get(ANNOTATION_JOB)
}

/// Reads what a finished build reported — its pod's termination message — once, and makes the
/// build record: the lock, or the error summary. One read per build; later passes read the
/// record from the cache.
/// The pods are found by the Job's UID (a label no tenant can set) and their controller
/// reference, never by the Job's name.
async fn record_build(
    ctx: &Context,
    env: &Approved<'_>,
    job_uid: &str,
    succeeded: bool,
) -> Result<ConfigMap> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), env.namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("{}={job_uid}", python_env::LABEL_CONTROLLER_UID)))
        .await
        .map_err(|source| Error::Read { what: format!("the pods of build Job {job_uid}"), source })?;
    let statuses: Vec<_> = listed
        .items
        .iter()
        .filter(|p| {
            p.owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.kind == "Job" && o.uid == job_uid)
        })
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.init_container_statuses.iter().flatten().chain(s.container_statuses.iter().flatten()))
        .cloned()
        .collect();
    let message_of = |container: &str| {
        statuses
            .iter()
            .filter(|c| c.name == container)
            .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
            .unwrap_or_default()
    };
    let build = message_of("build");
    let mut data = std::collections::BTreeMap::new();
    if succeeded {
        data.insert(LOCK_KEY.to_string(), python_env::lock_from_message(&build).unwrap_or_default());
        if let Some(target) = env.spec.image.as_ref().filter(|_| env.spec.strategy == BuildStrategy::Image) {
            let pushed = python_env::image_from_message(&message_of("push"), &target.repository);
            data.insert(IMAGE_KEY.to_string(), pushed.unwrap_or_default());
        }
    } else {
        let failed = if build.is_empty() { message_of("push") } else { build };
        data.insert(ERROR_KEY.to_string(), failed.strip_prefix("error: ").unwrap_or(&failed).to_string());
    }
    let mut labels = crate::names::labels("python-environment", env.name, "lock");
    labels.insert(LABEL_WORKSPACE.into(), env.workspace.into());
    Ok(ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(python_env::lock_name(env.name)),
            namespace: Some(env.namespace.into()),
            labels: Some(labels),
            annotations: Some([(ANNOTATION_JOB.to_string(), job_uid.to_string())].into()),
            owner_references: Some(vec![env.owner.clone()]),
            ..Default::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    })
}

/// The Projects of the namespace that name the environment.
fn used_by(ctx: &Context, namespace: &str, name: &str) -> Vec<String> {
    let mut names: Vec<String> = valid(&ctx.caches.projects)
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| p.spec.python_environment.as_deref() == Some(name))
        .map(|p| p.name_any())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(yaml: &str) -> PythonEnvironment {
        serde_yaml::from_str(yaml).unwrap()
    }

    const REQUESTED: &str =
        "metadata: {name: py, namespace: dw-a, annotations: {dataworkspace.io/requested-by: dev@x}}\n";

    #[test]
    fn only_an_approval_of_this_spec_by_someone_else_builds() {
        let pending = env(&format!("{REQUESTED}spec: {{packages: [six]}}"));
        let hash = python_env::spec_hash(&pending.spec);
        assert!(
            matches!(decide(&pending, &hash, true), Decision::Pending("PendingApproval", m) if m.contains("dev@x"))
        );
        assert!(matches!(decide(&pending, &hash, false), Decision::Pending("ApprovalNotEnforced", _)));
        let approved = |by: &str, h: &str| {
            env(&format!(
                "{REQUESTED}spec: {{packages: [six], approval: {{approvedBy: {by}, specHash: {h}}}}}"
            ))
        };
        assert_eq!(
            decide(&approved("admin@x", &hash), &hash, true),
            Decision::Build { approver: "admin@x".into() }
        );
        assert!(matches!(
            decide(&approved("dev@x", &hash), &hash, true),
            Decision::Pending("SelfApproval", _)
        ));
        assert!(matches!(
            decide(&approved("admin@x", "old"), &hash, true),
            Decision::Pending("ApprovalStale", _)
        ));
        assert!(
            matches!(
                decide(&approved("admin@x", &hash), &hash, false),
                Decision::Pending("ApprovalNotEnforced", _)
            ),
            "a missing policy fails closed even with an approval"
        );
        let unstamped = env(&format!(
            "metadata: {{name: py}}\nspec: {{packages: [six], approval: {{approvedBy: a, specHash: {hash}}}}}"
        ));
        assert!(matches!(decide(&unstamped, &hash, true), Decision::Pending("NoRequester", _)));
        let rejected = env(&format!(
            "{REQUESTED}spec: {{packages: [six], approval: {{approvedBy: admin@x, specHash: {hash}}}, rejection: {{rejectedBy: b@x, specHash: {hash}, reason: no GPL}}}}"
        ));
        assert!(matches!(decide(&rejected, &hash, true), Decision::Rejected(m) if m.contains("no GPL")));
    }
}
