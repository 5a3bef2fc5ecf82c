//! PythonEnvironments on the control plane, as the people involved would act (impersonation):
//! the API server records the requester, refuses approvals from anyone without the `approve`
//! verb, under another name, or by the requester; an admin's approval builds the environment
//! (kwok completes the Job) and the Project using it mounts it; editing what it installs sends it
//! back for approval and the Project waits again; a rejection holds.

use k8s_openapi::api::{apps::v1::StatefulSet, batch::v1::Job};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};

use dataworkspace_operator::crd::{Project, PythonEnvironment, Workspace};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, kubectl, kubectl_with_input, wait_for},
    workspaces::{create_user, from_yaml, ready},
};

fn phase(env: Option<&PythonEnvironment>) -> Option<String> {
    let env = env?;
    let status = env.status.as_ref()?;
    (status.observed_generation == env.metadata.generation).then(|| status.phase.clone()).flatten()
}

fn approved_reason(env: &PythonEnvironment) -> Option<String> {
    let conditions = &env.status.as_ref()?.conditions;
    conditions.iter().find(|c| c.type_ == "Approved").map(|c| c.reason.clone())
}

/// `kubectl patch` as `user`, a merge patch of `spec`.
fn patch_as(user: &str, ns: &str, name: &str, spec: serde_json::Value) -> Result<String, String> {
    let body = serde_json::json!({ "spec": spec }).to_string();
    kubectl(&["patch", "pythonenvironment", name, "-n", ns, "--as", user, "--type=merge", "-p", &body])
}

pub async fn approval_is_enforced_and_a_build_reaches_the_project(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("pyenv");
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let developer = create_user(&scope, &format!("{id}-dev"), &[]).await?;
    let admin = create_user(&scope, &format!("{id}-admin"), &[]).await?;
    let second_admin = create_user(&scope, &format!("{id}-admin2"), &[]).await?;
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-dev, role: developer}}, {{user: {id}-admin, role: admin}}, {{user: {id}-admin2, role: admin}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    let result = async {
        let envs: Api<PythonEnvironment> = Api::namespaced(client.clone(), &ns);
        let manifest = |name: &str| {
            format!(
                "apiVersion: dataworkspace.io/v1alpha1\nkind: PythonEnvironment\nmetadata: {{name: {name}, namespace: {ns}, annotations: {{dataworkspace.io/requested-by: someone-else}}}}\nspec: {{packages: [six==1.17.0]}}\n"
            )
        };
        // A developer asks; the API server records them, whatever the manifest says.
        crate::harness::wait_until(crate::harness::WAIT, "the developer to be bound", || {
            let (developer, ns) = (developer.clone(), ns.clone());
            async move { crate::workspaces::can_i(&developer, "create", "pythonenvironments.dataworkspace.io", Some(&ns)) }
        })
        .await?;
        kubectl_with_input(&["apply", "--as", &developer, "-f", "-"], &manifest("py"))?;
        let pending = wait_for(&envs, "py", "phase PendingApproval", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("PendingApproval")
        })
        .await?;
        let status = pending.status.clone().unwrap_or_default();
        ensure!(status.requester.as_deref() == Some(developer.as_str()), "requester {:?}", status.requester);
        ensure!(approved_reason(&pending).as_deref() == Some("PendingApproval"), "{:?}", approved_reason(&pending));
        let hash = status.spec_hash.clone().ok_or("no spec hash")?;

        // The developer cannot approve, under any name.
        for name in [&developer, &admin] {
            let forged = patch_as(&developer, &ns, "py", serde_json::json!({"approval": {"approvedBy": name, "specHash": hash}}));
            ensure!(forged.as_ref().is_err_and(|e| e.contains("'approve' verb")), "{forged:?}");
        }
        // An admin cannot approve under another name, nor their own request.
        let other_name = patch_as(&admin, &ns, "py", serde_json::json!({"approval": {"approvedBy": second_admin, "specHash": hash}}));
        ensure!(other_name.as_ref().is_err_and(|e| e.contains("must be your own username")), "{other_name:?}");
        kubectl_with_input(&["apply", "--as", &admin, "-f", "-"], &manifest("own"))?;
        let own_hash = wait_for(&envs, "own", "phase PendingApproval", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("PendingApproval")
        })
        .await?
        .status
        .and_then(|s| s.spec_hash)
        .unwrap_or_default();
        let own = patch_as(&admin, &ns, "own", serde_json::json!({"approval": {"approvedBy": admin, "specHash": own_hash}}));
        ensure!(own.as_ref().is_err_and(|e| e.contains("requester cannot approve")), "{own:?}");

        // The admin approves the developer's request: the build Job runs, then Ready.
        patch_as(&admin, &ns, "py", serde_json::json!({"approval": {"approvedBy": admin, "specHash": hash, "comment": "ok"}}))?;
        let built = wait_for(&envs, "py", "phase Ready", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("Ready")
        })
        .await?;
        let status = built.status.clone().unwrap_or_default();
        ensure!(status.approver.as_deref() == Some(admin.as_str()), "approver {:?}", status.approver);
        let jobs = Api::<Job>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.context("jobs")?;
        ensure!(
            jobs.items.iter().any(|j| j.status.as_ref().and_then(|s| s.succeeded) == Some(1)),
            "no completed build Job"
        );
        let shown = kubectl(&["get", "pythonenvironment", "py", "-n", &ns, "--no-headers"])?;
        ensure!(shown.contains("Ready") && shown.contains(&developer) && shown.contains(&admin), "kubectl get: {shown}");

        // A Notebook using it mounts the build.
        let project: Project = from_yaml(&format!(
            "metadata: {{name: nb, namespace: {ns}}}\nspec: {{runtime: Notebook, pythonEnvironment: py, notebook: {{storage: {{size: 1Gi}}}}}}"
        ))?;
        let projects: Api<Project> = Api::namespaced(client.clone(), &ns);
        projects.create(&PostParams::default(), &project).await.context("creating a Project")?;
        let project_ready = |p: Option<&Project>| {
            p.and_then(|p| p.status.as_ref()).and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).map(|c| c.reason.clone())
        };
        wait_for(&projects, "nb", "the Project Ready", |p: Option<&Project>| project_ready(p).as_deref() == Some("Ready")).await?;
        let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns).get("nb").await.context("the Notebook")?;
        let template = sts.spec.map(|s| s.template).unwrap_or_default();
        let build = template.metadata.and_then(|m| m.annotations).unwrap_or_default().remove("dataworkspace.io/python-environment-build");
        ensure!(build.as_deref().is_some_and(|b| b.starts_with("py/")), "build annotation {build:?}");
        let mounted = template.spec.unwrap_or_default().containers.iter().flat_map(|c| c.volume_mounts.clone().unwrap_or_default()).any(|m| m.name == "python-env" && m.read_only == Some(true));
        ensure!(mounted, "the environment is not mounted read-only");

        // The developer adds a package: back to approval, and the Project waits.
        patch_as(&developer, &ns, "py", serde_json::json!({"packages": ["six==1.17.0", "attrs==25.4.0"]}))?;
        let stale = wait_for(&envs, "py", "phase PendingApproval again", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("PendingApproval")
        })
        .await?;
        ensure!(approved_reason(&stale).as_deref() == Some("ApprovalStale"), "{:?}", approved_reason(&stale));
        wait_for(&projects, "nb", "the Project to wait for its environment", |p: Option<&Project>| {
            project_ready(p).as_deref() == Some("EnvironmentNotReady")
        })
        .await?;
        // It does not go on running the older build: it scales to zero until the new one is ready.
        let replicas = Api::<StatefulSet>::namespaced(client.clone(), &ns)
            .get("nb")
            .await
            .context("the Notebook")?
            .spec
            .and_then(|s| s.replicas);
        ensure!(replicas == Some(0), "replicas {replicas:?} while the environment is not ready");

        // Another admin rejects the new spec, with a reason.
        let new_hash = stale.status.and_then(|s| s.spec_hash).unwrap_or_default();
        patch_as(&second_admin, &ns, "py", serde_json::json!({"rejection": {"rejectedBy": second_admin, "specHash": new_hash, "reason": "attrs is not on the allow list"}}))?;
        let rejected = wait_for(&envs, "py", "phase Rejected", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("Rejected")
        })
        .await?;
        let message = rejected.status.unwrap_or_default().conditions.into_iter().find(|c| c.type_ == "Approved").map(|c| c.message).unwrap_or_default();
        ensure!(message.contains("allow list"), "rejection message {message:?}");
        // Nor can the developer remove it.
        let removed = patch_as(&developer, &ns, "py", serde_json::json!({"rejection": null}));
        ensure!(removed.as_ref().is_err_and(|e| e.contains("'approve' verb")), "{removed:?}");

        // Strategy Image: the build and push pod passes the namespace's Pod Security
        // (restricted); kwok completes it without running crane, so no digest comes back and the
        // environment says so instead of pretending to be ready.
        let image = format!(
            "apiVersion: dataworkspace.io/v1alpha1\nkind: PythonEnvironment\nmetadata: {{name: img, namespace: {ns}}}\nspec: {{strategy: Image, packages: [six==1.17.0], image: {{repository: registry.example.com/data/envs}}}}\n"
        );
        kubectl_with_input(&["apply", "--as", &developer, "-f", "-"], &image)?;
        let image_hash = wait_for(&envs, "img", "phase PendingApproval", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("PendingApproval")
        })
        .await?
        .status
        .and_then(|s| s.spec_hash)
        .unwrap_or_default();
        patch_as(&admin, &ns, "img", serde_json::json!({"approval": {"approvedBy": admin, "specHash": image_hash}}))?;
        let pushed = wait_for(&envs, "img", "the Image build to finish", |e: Option<&PythonEnvironment>| {
            phase(e).as_deref() == Some("Failed")
        })
        .await?;
        let built = pushed.status.unwrap_or_default().conditions.into_iter().find(|c| c.type_ == "Built").map(|c| c.reason);
        ensure!(built.as_deref() == Some("NoImageReported"), "Built {built:?}");

        // A careless admin removes the approval policy's binding: approvals are no longer checked
        // by the API server, and the operator, which looks again every 30 s, builds nothing.
        kubectl(&["delete", "validatingadmissionpolicybinding", "dataworkspace-pyenv-approval"])?;
        let unchecked = async {
            kubectl_with_input(&["apply", "--as", &developer, "-f", "-"], &manifest("late"))?;
            let late_hash = wait_for(&envs, "late", "phase PendingApproval", |e: Option<&PythonEnvironment>| {
                phase(e).as_deref() == Some("PendingApproval")
            })
            .await?
            .status
            .and_then(|s| s.spec_hash)
            .unwrap_or_default();
            // Forged: the developer names an admin, which nothing refuses once the API server has
            // dropped the binding from its policy cache (a moment after the delete).
            let forged = serde_json::json!({"approval": {"approvedBy": admin, "specHash": late_hash}});
            crate::harness::wait_until(crate::harness::WAIT, "the API server to stop checking approvals", || {
                let forged = forged.clone();
                let (developer, ns) = (developer.clone(), ns.clone());
                async move { Ok(patch_as(&developer, &ns, "late", forged).is_ok()) }
            })
            .await?;
            crate::harness::wait_until(std::time::Duration::from_secs(120), "ApprovalNotEnforced on the forged approval", || {
                let envs = envs.clone();
                async move {
                    let late = envs.get("late").await.context("late")?;
                    ensure!(phase(Some(&late)).as_deref() != Some("Building") && phase(Some(&late)).as_deref() != Some("Ready"), "a forged approval was built");
                    Ok(approved_reason(&late).as_deref() == Some("ApprovalNotEnforced"))
                }
            })
            .await
        }
        .await;
        // Put the policies back, whatever happened; the forged approval goes with its environment
        // (once the policies are back, nothing tells it from a checked one: see the README).
        kubectl(&["apply", "--server-side", "-f", &scope.env.repo.join("deploy/admission.yaml").to_string_lossy()])?;
        envs.delete("late", &DeleteParams::default()).await.context("deleting the forged environment")?;
        unchecked?;
        Ok(())
    }
    .await;
    workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
    result
}
