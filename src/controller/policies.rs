//! The admission policies of `deploy/admission.yaml` that the operator relies on before it acts
//! on what they fence: PythonEnvironment approvals (no build without them), Spark executors (no
//! driver role without them) and Airflow task pods (no scheduler role without them). Checked at start, every [`CHECK_EVERY`], and by a pass just
//! before it acts, so a policy removed later stops what it fenced.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};

use super::Context;

/// How often the operator checks that the policies are still installed.
pub const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A set of admission objects that must all exist.
pub struct Fence {
    /// For logs: what the set fences.
    pub what: &'static str,
    /// Kind and name of each object (group `admissionregistration.k8s.io`, version v1).
    pub objects: &'static [(&'static str, &'static str)],
}

/// Who requested and who approved a PythonEnvironment.
pub const APPROVAL: Fence = Fence {
    what: "PythonEnvironment approval",
    objects: &[
        ("MutatingAdmissionPolicy", "dataworkspace-pyenv-requester"),
        ("MutatingAdmissionPolicyBinding", "dataworkspace-pyenv-requester"),
        ("ValidatingAdmissionPolicy", "dataworkspace-pyenv-approval"),
        ("ValidatingAdmissionPolicyBinding", "dataworkspace-pyenv-approval"),
    ],
};

/// What the operator's own identity may write (the defence in depth behind its RBAC): checked
/// once at start, and only reported — a development run without it is legitimate, a production
/// install without it is one bug away from writing anywhere its ClusterRole reaches.
pub const GUARD: Fence = Fence {
    what: "operator guard",
    objects: &[
        ("ValidatingAdmissionPolicy", "dataworkspace-operator-guard"),
        ("ValidatingAdmissionPolicyBinding", "dataworkspace-operator-guard"),
    ],
};

/// What a Spark driver's identity may do with pods.
pub const SPARK_EXECUTORS: Fence = Fence {
    what: "Spark executor",
    objects: &[
        ("ValidatingAdmissionPolicy", "dataworkspace-spark-executors"),
        ("ValidatingAdmissionPolicyBinding", "dataworkspace-spark-executors"),
    ],
};

/// What the scheduler of an Airflow project with the KubernetesExecutor may do with pods.
pub const AIRFLOW_WORKERS: Fence = Fence {
    what: "Airflow task pod",
    objects: &[
        ("ValidatingAdmissionPolicy", "dataworkspace-airflow-workers"),
        ("ValidatingAdmissionPolicyBinding", "dataworkspace-airflow-workers"),
    ],
};

/// The fences that guard a pod-creating role, each with the flag that records it and the
/// ClusterRole the operator binds only behind it.
fn pod_fences(ctx: &Context) -> [(&'static Fence, &AtomicBool, &'static str); 2] {
    [
        (&SPARK_EXECUTORS, &ctx.spark_fenced, crate::runtime::spark::DRIVER_ROLE),
        (&AIRFLOW_WORKERS, &ctx.airflow_fenced, crate::runtime::airflow::SCHEDULER_ROLE),
    ]
}

/// Whether every object of `fence` exists, each ValidatingAdmissionPolicyBinding denying what
/// its policy refuses: `Some(false)` when one is missing (or only warns or audits), `None` when
/// the API server could not say (the caller keeps what it knew). Logs what is missing.
pub async fn installed(client: &kube::Client, fence: &Fence) -> Option<bool> {
    let mut missing = Vec::new();
    for (kind, name) in fence.objects {
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
        match api.get_opt(name).await {
            Ok(Some(object)) if *kind == "ValidatingAdmissionPolicyBinding" => {
                let denies = object.data["spec"]["validationActions"]
                    .as_array()
                    .is_some_and(|actions| actions.iter().any(|a| a == "Deny"));
                if !denies {
                    missing.push(format!("{kind} {name} (its validationActions do not include Deny)"));
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => missing.push(format!("{kind} {name}")),
            Err(error) => {
                tracing::warn!(%error, "cannot read {kind} {name}; keeping the last answer about the {} policies", fence.what);
                return None;
            }
        }
    }
    if !missing.is_empty() {
        tracing::warn!(?missing, "{} policies missing (deploy/admission.yaml)", fence.what);
    }
    Some(missing.is_empty())
}

/// Checks `fence` now and records the answer in `flag` (unchanged when the API server could not
/// say); returns what `flag` holds.
pub async fn recheck(ctx: &Context, fence: &Fence, flag: &AtomicBool) -> bool {
    let Some(now) = installed(&ctx.client, fence).await else { return flag.load(Ordering::Relaxed) };
    if flag.swap(now, Ordering::Relaxed) != now {
        tracing::info!(installed = now, "{} policies changed", fence.what);
    }
    now
}

/// Keeps the context's record of every fence current; tells `changed` when a pod fence changes
/// (the Projects act on it; environments look at theirs before each build).
pub async fn watch(ctx: Arc<Context>, mut changed: futures::channel::mpsc::Sender<()>) {
    use futures::SinkExt;
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        recheck(&ctx, &APPROVAL, &ctx.approval_enforced).await;
        let mut any_changed = false;
        for (fence, flag, role) in pod_fences(&ctx) {
            let before = flag.load(Ordering::Relaxed);
            let now = recheck(&ctx, fence, flag).await;
            if !now {
                // Without the fence nobody keeps the role, whatever state its Project is in
                // (one that fails early never reaches the pass that would withdraw it).
                withdraw_roles(&ctx, role).await;
            }
            any_changed |= now != before;
        }
        if any_changed {
            let _ = changed.send(()).await;
        }
    }
}

/// Deletes every RoleBinding to `role` the operator made (from the cache).
async fn withdraw_roles(ctx: &Context, role: &str) {
    use kube::ResourceExt;
    let bindings: Vec<(String, String)> = ctx
        .caches
        .role_bindings
        .state()
        .iter()
        .filter(|b| b.role_ref.name == role)
        .filter(|b| {
            b.labels().get(crate::names::LABEL_MANAGED_BY).map(String::as_str) == Some(crate::names::MANAGER)
        })
        .filter_map(|b| Some((b.namespace()?, b.name_any())))
        .collect();
    for (namespace, name) in bindings {
        if let Err(error) =
            super::children::delete::<k8s_openapi::api::rbac::v1::RoleBinding>(ctx, &namespace, &name).await
        {
            tracing::warn!(%error, "cannot withdraw the role binding {namespace}/{name} of {role}");
        }
    }
}
