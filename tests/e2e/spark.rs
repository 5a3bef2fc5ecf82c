//! Spark projects on the control plane. A Connect server reaches `Running` (kwok runs its driver
//! pod, which passes Pod Security `restricted`); its driver's identity may create only its own
//! executor pods (the admission policy, tried by impersonating it), and a real executor pod it
//! creates is counted in status; `stopped` scales it to zero and back. A batch application's run
//! succeeds (kwok completes the driver's pod), a bumped run counter runs it once more and the
//! earlier run is kept, then dropped when `keepFinishedRuns` says so; a failing run (kwok fails
//! the pod) ends `Failed` with the driver's exit code and message; deleting a project leaves none
//! of its objects. A scheduled application runs on its schedule, not at creation. Without the admission policy that fences the driver, the driver loses its
//! role and nothing runs. A finished run whose Job is deleted is not run again. One server and
//! one application stay for the restart test (zero idle writes).

use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::{CronJob, Job},
    core::v1::{ConfigMap, Pod, Service, ServiceAccount},
    rbac::v1::RoleBinding,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};

use dataworkspace_operator::crd::{Project, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, kubectl_with_input, wait_for, wait_until},
    notebook::phase,
    workspaces::{can_i, from_yaml},
};

fn ready_reason(project: Option<&Project>) -> Option<(String, String)> {
    let status = project?.status.as_ref()?;
    status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| (c.reason.clone(), c.message.clone()))
}

/// An executor pod as Spark would create it from the operator's template, owned by `owner` (an
/// owner reference in YAML), with `extra` YAML merged into the container (or, with
/// `pod_extra`, into the pod spec).
fn executor_pod(
    ns: &str,
    project: &str,
    owner: &str,
    name: &str,
    labels: &str,
    pod_extra: &str,
    container_extra: &str,
) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{{labels}}}\n  ownerReferences: [{owner}]\nspec:\n  serviceAccountName: {project}-spark-executor\n  automountServiceAccountToken: false\n  securityContext: {{runAsNonRoot: true, runAsUser: 185, seccompProfile: {{type: RuntimeDefault}}}}\n{pod_extra}  containers:\n    - name: executor\n      image: apache/spark:4.1.2\n      args: [executor]\n      securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n{container_extra}"
    )
}

pub async fn connect_and_batch_run_fail_rerun_stop_and_delete(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let (_, ns) = crate::workspaces::workspace_with_code(&scope, "spark").await?;
    let projects: Api<Project> = Api::namespaced(client.clone(), &ns);

    // A Connect server.
    let connect: Project = from_yaml(
        "metadata: {name: connect}\nspec: {runtime: Spark, spark: {mode: Connect, executors: {instances: 1}, conf: {spark.sql.shuffle.partitions: '8'}}}",
    )?;
    projects.create(&PostParams::default(), &connect).await.context("creating a Spark Connect Project")?;
    let running = wait_for(&projects, "connect", "phase Running", |p: Option<&Project>| {
        phase(p) == Some(Phase::Running)
    })
    .await?;
    let endpoints: Vec<String> =
        running.status.iter().flat_map(|s| s.endpoints.iter().map(|e| e.url.clone())).collect();
    ensure!(
        endpoints == [format!("sc://connect.{ns}.svc:15002"), format!("http://connect.{ns}.svc:4040/")],
        "endpoints {endpoints:?}"
    );
    let binding = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .get("connect-spark-driver")
        .await
        .context("binding")?;
    ensure!(binding.role_ref.name == "dataworkspace-spark-driver", "{:?}", binding.role_ref);
    let driver = format!("system:serviceaccount:{ns}:connect-spark-driver");
    ensure!(can_i(&driver, "create", "pods", Some(&ns))?, "the driver cannot create its executors");
    for (verb, resource) in
        [("get", "secrets"), ("create", "configmaps"), ("create", "pods:exec"), ("patch", "pods")]
    {
        ensure!(!can_i(&driver, verb, resource, Some(&ns))?, "the driver may {verb} {resource}");
    }
    ensure!(!can_i(&driver, "create", "pods", Some("default"))?, "the driver may create pods elsewhere");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let server = pods
        .list(
            &ListParams::default()
                .labels("app.kubernetes.io/instance=connect,app.kubernetes.io/component=driver"),
        )
        .await
        .context("the driver pod")?;
    let server = server.items.first().ok_or("no driver pod")?;
    let server_pod = server.metadata.name.clone().unwrap_or_default();
    let owner = format!(
        "{{apiVersion: v1, kind: Pod, name: {server_pod}, uid: {}, controller: true}}",
        server.metadata.uid.clone().unwrap_or_default()
    );
    let labels = &format!(
        "app.kubernetes.io/component: executor, app.kubernetes.io/name: spark, app.kubernetes.io/instance: connect, app.kubernetes.io/managed-by: dataworkspace-operator, dataworkspace.io/spark-driver: connect, spark-role: executor, spark-app-selector: {server_pod}"
    );
    // As the driver: its own executors only.
    let attempt = |manifest: String| {
        kubectl_with_input(&["create", "--as", &driver, "--dry-run=server", "-f", "-"], &manifest)
    };
    attempt(executor_pod(&ns, "connect", &owner, "connect-exec-ok", labels, "", ""))
        .map_err(|e| format!("an executor pod is refused: {e}"))?;
    let refusals = [
        (
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-secret",
                labels,
                "  volumes: [{name: s, secret: {secretName: anything}}]\n",
                "",
            ),
            "may mount only empty directories",
        ),
        (
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-env",
                labels,
                "",
                "      env: [{name: X, valueFrom: {secretKeyRef: {name: anything, key: k}}}]\n",
            ),
            "may not read Secrets",
        ),
        (
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-foreign",
                &labels.replace("spark-driver: connect", "spark-driver: other"),
                "",
                "",
            ),
            "only executor pods of its own project",
        ),
        (
            executor_pod(&ns, "connect", &owner, "connect-exec-sa", labels, "", "")
                .replace("connect-spark-executor", "connect-spark-driver"),
            "executor ServiceAccount, without a token",
        ),
        (
            // A pod the Job controller would adopt into another run.
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-adopted",
                &format!("{labels}, batch.kubernetes.io/controller-uid: x"),
                "",
                "",
            ),
            "only the labels and annotations of their template",
        ),
        (
            executor_pod(&ns, "connect", &owner, "connect-exec-finalizer", labels, "", "")
                .replace("  labels:", "  finalizers: [example.com/stuck]\n  labels:"),
            "no finalizers",
        ),
        (
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-critical",
                labels,
                "  priorityClassName: system-node-critical\n",
                "",
            ),
            "no node, runtime class, scheduler or system priority",
        ),
    ];
    let refusals = refusals.into_iter().chain([
        (
            executor_pod(&ns, "connect", &owner, "connect-exec-orphan", labels, "", "")
                .replace(&format!("  ownerReferences: [{owner}]\n"), ""),
            "their driver pod as their one controlling owner",
        ),
        (
            // Another driver's application: its executors would be counted as this one's.
            executor_pod(
                &ns,
                "connect",
                &owner,
                "connect-exec-spoof",
                &labels.replace(&server_pod, "connect-other"),
                "",
                "",
            ),
            "whose name is their Spark application's id",
        ),
        (
            // Another workload's pod name.
            executor_pod(&ns, "connect", &owner, "studio-0", labels, "", ""),
            "only executor pods of its own project",
        ),
    ]);
    for (manifest, message) in refusals {
        let refused = attempt(manifest);
        ensure!(
            refused.as_ref().is_err_and(|e| e.contains(message)),
            "expected a refusal naming {message:?}: {refused:?}"
        );
    }

    let delete_driver =
        kubectl(&["delete", "pod", &server_pod, "-n", &ns, "--as", &driver, "--dry-run=server"]);
    ensure!(
        delete_driver.as_ref().is_err_and(|e| e.contains("only executor pods of its own project")),
        "the driver may delete its own server pod: {delete_driver:?}"
    );
    // A real executor, as Spark creates one: kwok runs it and status counts it.
    kubectl_with_input(
        &["create", "--as", &driver, "-f", "-"],
        &executor_pod(&ns, "connect", &owner, "connect-exec-1", labels, "", ""),
    )?;
    wait_for(&projects, "connect", "one executor counted", |p: Option<&Project>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.components.iter().find(|c| c.name == "executors"))
            .is_some_and(|c| c.ready_replicas == Some(1) && c.ready)
    })
    .await?;
    kubectl(&["delete", "pod", "connect-exec-1", "-n", &ns, "--as", &driver, "--wait=false"])?;

    // Without the admission policy that fences it, the driver loses its role (the operator
    // checks every 30 s) and nothing runs; with it back, it runs again.
    kubectl(&["delete", "validatingadmissionpolicybinding", "dataworkspace-spark-executors"])?;
    let unfenced = async {
        wait_for(&projects, "connect", "reason DriverNotFenced", |p: Option<&Project>| {
            ready_reason(p).is_some_and(|(reason, _)| reason == "DriverNotFenced")
        })
        .await?;
        let rbs = Api::<RoleBinding>::namespaced(client.clone(), &ns);
        wait_until(WAIT, "the driver's RoleBinding to be withdrawn", || {
            let rbs = rbs.clone();
            async move { Ok(rbs.get_opt("connect-spark-driver").await.context("rb")?.is_none()) }
        })
        .await
    }
    .await;
    kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &scope.env.repo.join("deploy/admission.yaml").to_string_lossy(),
    ])?;
    unfenced?;
    wait_for(&projects, "connect", "phase Running with the policy back", |p: Option<&Project>| {
        phase(p) == Some(Phase::Running)
    })
    .await?;

    // Stopped: no driver; then back.
    let stop = |stopped: bool| serde_json::json!({"spec": {"stopped": stopped}});
    projects.patch("connect", &PatchParams::default(), &Patch::Merge(&stop(true))).await.context("stop")?;
    wait_for(&projects, "connect", "phase Stopped", |p: Option<&Project>| phase(p) == Some(Phase::Stopped))
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let replicas = deployments.get("connect").await.context("deployment")?.spec.and_then(|s| s.replicas);
    ensure!(replicas == Some(0), "a stopped server has {replicas:?} replicas");
    projects.patch("connect", &PatchParams::default(), &Patch::Merge(&stop(false))).await.context("start")?;
    wait_for(&projects, "connect", "phase Running again", |p: Option<&Project>| {
        phase(p) == Some(Phase::Running)
    })
    .await?;

    // A batch application: a run succeeds; a bumped counter runs it once more.
    let report: Project = from_yaml(
        "metadata: {name: report}\nspec: {runtime: Spark, source: {repository: code}, spark: {mode: Batch, application: {mainApplicationFile: jobs/report.py, args: ['--date', 'today']}}}",
    )?;
    projects.create(&PostParams::default(), &report).await.context("creating a batch Project")?;
    let done = wait_for(&projects, "report", "phase Succeeded", |p: Option<&Project>| {
        phase(p) == Some(Phase::Succeeded)
    })
    .await?;
    let runs = done.status.map(|s| s.runs).unwrap_or_default();
    ensure!(
        runs.len() == 1
            && runs[0].run == Some(1)
            && runs[0].phase == "Succeeded"
            && runs[0].job == "report-run-1",
        "runs {runs:?}"
    );
    let rerun = |run: i64, keep: i32| serde_json::json!({"spec": {"spark": {"application": {"run": run, "keepFinishedRuns": keep}}}});
    projects.patch("report", &PatchParams::default(), &Patch::Merge(&rerun(2, 3))).await.context("rerun")?;
    let again = wait_for(&projects, "report", "run 2 Succeeded", |p: Option<&Project>| {
        phase(p) == Some(Phase::Succeeded)
            && p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.runs.first().is_some_and(|r| r.run == Some(2)))
    })
    .await?;
    let runs: Vec<(Option<i64>, String)> =
        again.status.map(|s| s.runs.into_iter().map(|r| (r.run, r.phase)).collect()).unwrap_or_default();
    ensure!(
        runs == [(Some(2), "Succeeded".to_string()), (Some(1), "Succeeded".to_string())],
        "runs {runs:?}"
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    ensure!(jobs.get_opt("report-run-1").await.context("job")?.is_some(), "the earlier run was not kept");
    // Keeping none: the next run's pass removes the earlier ones.
    projects.patch("report", &PatchParams::default(), &Patch::Merge(&rerun(3, 0))).await.context("rerun")?;
    wait_until(WAIT, "runs 1 and 2 to be removed", || {
        let jobs = jobs.clone();
        async move {
            Ok(jobs.get_opt("report-run-1").await.context("job")?.is_none()
                && jobs.get_opt("report-run-2").await.context("job")?.is_none()
                && jobs.get_opt("report-run-3").await.context("job")?.is_some())
        }
    })
    .await?;

    // A finished run is never run again, even when its Job is deleted: its record stays.
    wait_for(&projects, "report", "run 3 Succeeded", |p: Option<&Project>| {
        phase(p) == Some(Phase::Succeeded)
            && p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.runs.first().is_some_and(|r| r.run == Some(3)))
    })
    .await?;
    jobs.delete("report-run-3", &DeleteParams::foreground()).await.context("deleting a finished run")?;
    wait_until(WAIT, "run 3's Job to be gone", || {
        let jobs = jobs.clone();
        async move { Ok(jobs.get_opt("report-run-3").await.context("job")?.is_none()) }
    })
    .await?;
    let touch = serde_json::json!({"spec": {"description": "touched"}});
    projects.patch("report", &PatchParams::default(), &Patch::Merge(&touch)).await.context("touch")?;
    let after =
        wait_for(&projects, "report", "a pass after the deletion", |p: Option<&Project>| phase(p).is_some())
            .await?;
    ensure!(jobs.get_opt("report-run-3").await.context("job")?.is_none(), "a finished run was run again");
    let runs: Vec<(Option<i64>, String)> =
        after.status.map(|s| s.runs.into_iter().map(|r| (r.run, r.phase)).collect()).unwrap_or_default();
    ensure!(runs == [(Some(3), "Succeeded".to_string())], "runs {runs:?}");

    // On a schedule: creating it runs nothing; each minute the CronJob starts a run, recorded
    // in status; stopped suspends the schedule.
    let nightly: Project = from_yaml(
        "metadata: {name: nightly}\nspec: {runtime: Spark, source: {repository: code}, spark: {mode: Batch, application: {mainApplicationFile: jobs/report.py, schedule: '* * * * *', timeZone: Europe/Berlin}}}",
    )?;
    projects.create(&PostParams::default(), &nightly).await.context("creating a scheduled Project")?;
    let waiting = wait_for(&projects, "nightly", "phase Pending, scheduled", |p: Option<&Project>| {
        phase(p) == Some(Phase::Pending) && ready_reason(p).is_some_and(|(reason, _)| reason == "Ready")
    })
    .await?;
    ensure!(
        waiting.status.map(|s| s.runs).unwrap_or_default().is_empty(),
        "a scheduled project ran at creation"
    );
    ensure!(
        jobs.get_opt("nightly-run-1").await.context("job")?.is_none(),
        "the counter ran a scheduled project"
    );
    let cron = Api::<CronJob>::namespaced(client.clone(), &ns).get("nightly").await.context("the CronJob")?;
    let spec = cron.spec.unwrap_or_default();
    ensure!(
        spec.schedule == "* * * * *"
            && spec.concurrency_policy.as_deref() == Some("Forbid")
            && spec.time_zone.as_deref() == Some("Europe/Berlin"),
        "{spec:?}"
    );
    wait_until(std::time::Duration::from_secs(150), "a scheduled run to succeed", || {
        let projects = projects.clone();
        async move {
            let nightly = projects.get("nightly").await.context("nightly")?;
            let runs = nightly.status.map(|s| s.runs).unwrap_or_default();
            Ok(runs
                .first()
                .is_some_and(|r| r.run.is_none() && r.phase == "Succeeded" && r.job.starts_with("nightly-")))
        }
    })
    .await?;
    projects.patch("nightly", &PatchParams::default(), &Patch::Merge(&stop(true))).await.context("stop")?;
    wait_until(WAIT, "the schedule to be suspended", || {
        let client = client.clone();
        let ns = ns.clone();
        async move {
            let cron = Api::<CronJob>::namespaced(client, &ns).get("nightly").await.context("cron")?;
            Ok(cron.spec.and_then(|s| s.suspend) == Some(true))
        }
    })
    .await?;
    projects
        .delete("nightly", &DeleteParams::foreground())
        .await
        .context("deleting the scheduled Project")?;

    // A failing application: its run fails with the driver's exit code and last output.
    let broken: Project = from_yaml(
        "metadata: {name: broken}\nspec:\n  runtime: Spark\n  source: {repository: code}\n  podOverrides: {annotations: {e2e.example.com/outcome: fail, e2e.example.com/message: 'ZeroDivisionError: division by zero'}}\n  spark: {mode: Batch, application: {mainApplicationFile: jobs/broken.py}}",
    )?;
    projects.create(&PostParams::default(), &broken).await.context("creating a failing Project")?;
    let failed =
        wait_for(&projects, "broken", "phase Failed", |p: Option<&Project>| phase(p) == Some(Phase::Failed))
            .await?;
    let (reason, message) = ready_reason(Some(&failed)).unwrap_or_default();
    ensure!(reason == "ApplicationFailed", "reason {reason}: {message}");
    ensure!(
        message.contains("exit code 1") && message.contains("ZeroDivisionError: division by zero"),
        "the message names neither the exit code nor the driver's output: {message}"
    );

    // Deleting a project removes what it owns.
    projects.delete("broken", &DeleteParams::foreground()).await.context("deleting the Project")?;
    wait_until(WAIT, "the failing project's objects to be gone", || {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let gone_sa = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
                .get_opt("broken-spark-driver")
                .await
                .context("sa")?
                .is_none();
            let gone_rb = Api::<RoleBinding>::namespaced(client.clone(), &ns)
                .get_opt("broken-spark-driver")
                .await
                .context("rb")?
                .is_none();
            let gone_cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt("broken-spark")
                .await
                .context("cm")?
                .is_none();
            let gone_svc = Api::<Service>::namespaced(client.clone(), &ns)
                .get_opt("broken")
                .await
                .context("svc")?
                .is_none();
            let gone_job = Api::<Job>::namespaced(client.clone(), &ns)
                .get_opt("broken-run-1")
                .await
                .context("job")?
                .is_none();
            Ok(gone_sa && gone_rb && gone_cm && gone_svc && gone_job)
        }
    })
    .await?;
    ensure!(
        projects.get_opt("connect").await.context("connect")?.is_some(),
        "deleting one project touched another"
    );
    // `connect` and `report` stay for the restart test (zero writes while idle).
    Ok(())
}
