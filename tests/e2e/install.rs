//! How platform teams install and run the operator, on the control plane: the GitOps rendering
//! (`deploy/`, applied by the harness with `kubectl apply --server-side -k`) shows no diff; Helm
//! takes the installation over and upgrades it to changed values, the Deployment rolling; the
//! operator under the chart's ServiceAccount (impersonated) converges a copy of the examples
//! with exactly the chart's ClusterRole, and reports a rule taken away by name; and of two
//! replicas with leader election one reconciles, and the other takes over when it dies.

use std::{fs, time::Instant};

use k8s_openapi::api::{
    apps::v1::Deployment, coordination::v1::Lease, core::v1::Secret, rbac::v1::ClusterRole,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};

use dataworkspace_operator::crd::{Project, Workspace, project::Phase};

use crate::{
    Scope, ensure,
    harness::{
        Context, Operator, TestResult, WAIT, http_get, kubectl, kubectl_with_input, wait_for, wait_ready,
        wait_until,
    },
};

const RELEASE: &str = "dataworkspace-operator";
const NAMESPACE: &str = "dataworkspace-system";
const OPERATOR_USER: &str = "system:serviceaccount:dataworkspace-system:dataworkspace-operator";

/// `kubectl diff` exits 0 with nothing to show, 1 with a diff.
pub async fn gitops_rendering_shows_no_diff(scope: Scope) -> TestResult {
    let deploy = scope.env.path("deploy");
    let output = std::process::Command::new("kubectl")
        .args(["diff", "--server-side", "--force-conflicts", "-k", &deploy])
        .output()
        .context("kubectl diff")?;
    let shown = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.code() == Some(0) && shown.trim().is_empty(),
        "kubectl diff -k deploy/ after kubectl apply -k deploy/ exited {:?}:\n{shown}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn helm(args: &[&str]) -> Result<String, String> {
    let bin = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    let output = std::process::Command::new(&bin).args(args).output().context("running helm")?;
    ensure!(
        output.status.success(),
        "helm {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `helm upgrade` of the release with `extra` flags, waiting until it is rolled out.
fn helm_upgrade(chart: &str, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["upgrade", RELEASE, chart, "--namespace", NAMESPACE, "--wait", "--timeout", "120s"];
    args.extend_from_slice(extra);
    helm(&args)
}

/// The operator's Deployment, rolled out: every replica updated and available.
async fn rolled_out(deployments: &Api<Deployment>, replicas: i32) -> Result<Deployment, String> {
    wait_for(
        deployments,
        RELEASE,
        &format!("{replicas} updated, available replicas"),
        |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                let status = d.status.clone().unwrap_or_default();
                status.observed_generation == d.metadata.generation
                    && status.updated_replicas == Some(replicas)
                    && status.available_replicas == Some(replicas)
                    && status.replicas == Some(replicas)
            })
        },
    )
    .await
}

pub async fn helm_installs_and_upgrades_cleanly(scope: Scope) -> TestResult {
    let chart = scope.env.path("charts/dataworkspace-operator");
    let deployments: Api<Deployment> = Api::namespaced(scope.env.client.clone(), NAMESPACE);
    // What `kubectl apply -k deploy/` made, Helm takes over (the way from plain manifests to
    // Helm), with the same default values: nothing changes but Helm's own labels.
    let before = deployments.get(RELEASE).await.context("the Deployment applied from deploy/")?;
    // `upgrade --install` installs on a fresh cluster (the suite's), and reruns on a kept one.
    helm_upgrade(&chart, &["--install", "--take-ownership"])?;
    let installed = rolled_out(&deployments, 2).await?;
    // Helm's patch may bump the generation, but the spec, and so the pods, stay as they were.
    let spec = |d: &Deployment| serde_json::to_value(&d.spec).unwrap_or_default();
    ensure!(
        spec(&installed) == spec(&before),
        "taking over with the default values changed the Deployment's spec:\n{}\n{}",
        spec(&before),
        spec(&installed)
    );
    let status = helm(&["status", RELEASE, "--namespace", NAMESPACE])?;
    ensure!(status.contains("STATUS: deployed"), "{status}");

    // A changed values file: more replicas, text logs, a pod label; the Deployment rolls.
    let values = scope.env.out_dir.join("upgrade-values.yaml");
    fs::write(&values, "replicas: 3\nlogFormat: text\npodLabels:\n  rollout: second\n").context("values")?;
    helm_upgrade(&chart, &["--values", &values.to_string_lossy()])?;
    let upgraded = rolled_out(&deployments, 3).await?;
    let template = upgraded.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    ensure!(labels.get("rollout").map(String::as_str) == Some("second"), "pod labels: {labels:?}");
    let env =
        template.spec.and_then(|s| s.containers.first().cloned()).and_then(|c| c.env).unwrap_or_default();
    ensure!(
        env.iter().any(|e| e.name == "DWO_LOG_FORMAT" && e.value.as_deref() == Some("text")),
        "log format not set: {env:?}"
    );
    let history = helm(&["history", RELEASE, "--namespace", NAMESPACE])?;
    ensure!(history.contains("Upgrade complete"), "{history}");
    // The CRDs are Helm's now, and stay on uninstall.
    let crd =
        kubectl(&["get", "crd", "workspaces.dataworkspace.io", "-o", "jsonpath={.metadata.annotations}"])?;
    ensure!(crd.contains("\"helm.sh/resource-policy\":\"keep\""), "CRD annotations: {crd}");

    // Back to the defaults, for the rest of the suite.
    helm_upgrade(&chart, &["--reset-values"])?;
    rolled_out(&deployments, 2).await?;
    Ok(())
}

/// A kubeconfig that is the admin's, impersonating the operator's ServiceAccount.
fn operator_kubeconfig(scope: &Scope) -> Result<String, String> {
    let raw = kubectl(&["config", "view", "--raw", "--minify", "--flatten"])?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&raw).context("kubeconfig")?;
    let user = config["users"][0]["user"].as_mapping_mut().ok_or("kubeconfig without a user")?;
    user.insert("as".into(), OPERATOR_USER.into());
    let path = scope.env.out_dir.join("operator-sa.kubeconfig");
    fs::write(&path, serde_yaml::to_string(&config).context("kubeconfig")?).context("kubeconfig")?;
    let whoami = std::process::Command::new("kubectl")
        .args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"])
        .env("KUBECONFIG", &path)
        .output()
        .context("kubectl auth whoami")?;
    ensure!(
        String::from_utf8_lossy(&whoami.stdout) == OPERATOR_USER,
        "the kubeconfig does not impersonate the operator: {}",
        String::from_utf8_lossy(&whoami.stderr)
    );
    Ok(path.to_string_lossy().into_owned())
}

/// The examples under new names: a workspace of its own with its Secrets and Projects.
fn examples_copy(scope: &Scope, name: &str) -> Result<String, String> {
    let mut text = String::new();
    for file in [
        "02-workspace.yaml",
        "03-secrets.yaml",
        "20-project-airflow.yaml",
        "21-project-spark.yaml",
        "23-project-notebook.yaml",
        "24-project-spark-batch.yaml",
    ] {
        let example = fs::read_to_string(scope.env.repo.join("examples").join(file)).context(file)?;
        text += &example
            .replace("dw-analytics", &format!("dw-{name}"))
            .replace("  name: analytics\n", &format!("  name: {name}\n"))
            .replace("airflow.data.example.com", &format!("{name}-airflow.data.example.com"));
        text += "\n---\n";
    }
    Ok(text)
}

/// The operator with only the chart's rights converges a copy of the examples (every write
/// kind: namespace, quota, roles, bindings, Secrets, StatefulSets, Deployments, Jobs, PVCs,
/// NetworkPolicies); with one verb taken away it says which.
pub async fn least_privilege_identity_converges_the_examples(scope: Scope) -> TestResult {
    let kubeconfig = operator_kubeconfig(&scope)?;
    scope.env.stop_operator()?;
    let log = "operator-sa.log";
    let _ = fs::remove_file(scope.env.out_dir.join(log));
    let operator = scope.env.spawn_operator(&[], &[("KUBECONFIG", &kubeconfig)], log)?;
    let result = async {
        wait_ready(operator.address).await?;
        converges_and_reports_a_missing_rule(&scope).await?;
        let text = fs::read_to_string(scope.env.out_dir.join(log)).unwrap_or_default();
        // Only the rule the test took away may have been refused.
        let refused: Vec<&str> =
            text.lines().filter(|l| l.contains("forbidden") && !l.contains("limitranges")).take(5).collect();
        ensure!(
            refused.is_empty(),
            "the operator was refused something under its own identity:\n{}",
            refused.join("\n")
        );
        Ok(())
    }
    .await;
    drop(operator);
    scope.env.start_operator().await?;
    result
}

/// What the chart's ClusterRole grants beyond what a converging pass exercises, and what the
/// guard policy refuses although RBAC would allow it.
fn rights_and_fences() -> TestResult {
    let can = |args: &[&str]| -> Result<bool, String> {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--as", OPERATOR_USER]);
        let output =
            std::process::Command::new("kubectl").args(&all).output().context("kubectl auth can-i")?;
        Ok(String::from_utf8_lossy(&output.stdout).trim() == "yes")
    };
    // Scaling to zero when an environment's approval is withdrawn.
    ensure!(
        can(&["patch", "deployments", "--subresource=scale", "-n", "dw-x"])?,
        "no patch on deployments/scale"
    );
    ensure!(
        can(&["patch", "statefulsets", "--subresource=scale", "-n", "dw-x"])?,
        "no patch on statefulsets/scale"
    );
    for (verb, resource) in
        [("delete", "namespaces"), ("create", "pods"), ("escalate", "clusterroles"), ("impersonate", "users")]
    {
        ensure!(!can(&[verb, resource])?, "the operator may {verb} {resource}");
    }
    ensure!(!can(&["bind", "clusterroles/cluster-admin"])?, "the operator may bind cluster-admin");
    // The guard: RBAC lets it write Jobs and ServiceAccounts anywhere; the policy does not.
    let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: guard-probe, namespace: kube-system}\nspec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}\n";
    let refused = kubectl_with_input(&["create", "--dry-run=server", "--as", OPERATOR_USER, "-f", "-"], job)
        .expect_err("a Job in kube-system was admitted for the operator");
    ensure!(refused.contains("the operator may write only into workspace namespaces"), "{refused}");
    let account =
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: guard-probe, namespace: kube-system}\n";
    let refused =
        kubectl_with_input(&["create", "--dry-run=server", "--as", OPERATOR_USER, "-f", "-"], account)
            .expect_err("a ServiceAccount in kube-system was admitted for the operator");
    ensure!(refused.contains("workspace namespaces"), "{refused}");
    Ok(())
}

async fn converges_and_reports_a_missing_rule(scope: &Scope) -> TestResult {
    rights_and_fences()?;
    let client = scope.env.client.clone();
    let name = scope.env.unique("lp");
    let namespace = format!("dw-{name}");
    scope.involve(&namespace);
    let manifests = examples_copy(scope, &name)?;
    // The Workspace first: its namespace must exist for the rest.
    let (workspace_doc, rest) = manifests.split_once("\n---\n").ok_or("no workspace document")?;
    kubectl_with_input(&["apply", "-f", "-"], workspace_doc)?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    wait_for(&namespaces, &namespace, "the workspace namespace", |n: Option<&_>| n.is_some()).await?;
    kubectl_with_input(&["apply", "-f", "-"], rest)?;
    let ready = |w: Option<&Workspace>| {
        w.and_then(|w| w.status.as_ref())
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    };
    wait_for(&workspaces, &name, "Ready=True under the operator's own identity", ready).await?;
    let projects: Api<Project> = Api::namespaced(client.clone(), &namespace);
    for project in ["daily-etl", "spark-connect", "exploration"] {
        wait_for(
            &projects,
            project,
            "phase Running under the operator's own identity",
            |p: Option<&Project>| {
                p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase) == Some(Phase::Running)
            },
        )
        .await?;
    }
    // Generated keys were written (Secrets create).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    ensure!(secrets.get_opt("daily-etl-airflow").await.context("keys")?.is_some(), "no Airflow keys");

    // Take one verb away: patch on LimitRanges.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let original = roles.get(RELEASE).await.context("the operator's ClusterRole")?;
    let mut reduced = original.clone();
    let rules = reduced.rules.get_or_insert_with(Vec::new);
    let shared = rules
        .iter_mut()
        .find(|r| r.resources.as_ref().is_some_and(|rs| rs.iter().any(|r| r == "limitranges")))
        .ok_or("no rule for limitranges")?;
    shared.resources.as_mut().unwrap().retain(|r| r != "limitranges");
    let mut without_patch = shared.clone();
    without_patch.resources = Some(vec!["limitranges".into()]);
    without_patch.verbs.retain(|v| v != "patch");
    rules.push(without_patch);
    roles.replace(RELEASE, &PostParams::default(), &reduced).await.context("reducing the ClusterRole")?;
    let second = scope.env.unique("lp");
    let outcome = async {
        let workspace: Workspace =
            serde_yaml::from_str(&format!("metadata: {{name: {second}}}\nspec: {{}}")).context("yaml")?;
        workspaces.create(&PostParams::default(), &workspace).await.context("a second Workspace")?;
        scope.involve(&format!("dw-{second}"));
        let refused =
            wait_for(&workspaces, &second, "Ready=False naming the refused verb", |w: Option<&Workspace>| {
                w.and_then(|w| w.status.as_ref())
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .is_some_and(|c| {
                        c.status == "False" && c.message.contains("cannot patch resource \"limitranges\"")
                    })
            })
            .await?;
        let condition =
            refused.status.unwrap_or_default().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
        ensure!(condition.reason == "ApplyFailed", "reason: {condition:?}");
        ensure!(
            condition.message.contains(OPERATOR_USER),
            "the message does not name the identity: {condition:?}"
        );
        // The same, as a Warning Event on the Workspace.
        let events = kubectl(&[
            "get",
            "events",
            "-A",
            "--field-selector",
            &format!("regarding.name={second},type=Warning"),
            "-o",
            "jsonpath={.items[*].note}",
        ])
        .or_else(|_| {
            kubectl(&[
                "get",
                "events",
                "-A",
                "--field-selector",
                &format!("involvedObject.name={second},type=Warning"),
                "-o",
                "jsonpath={.items[*].message}",
            ])
        })?;
        ensure!(events.contains("limitranges"), "no Warning Event names the refused resource: {events:?}");
        Ok(())
    }
    .await;
    // The rule back: the workspace converges on its next retry.
    let mut restored = original.clone();
    restored.metadata.resource_version = None;
    let current = roles.get(RELEASE).await.context("the ClusterRole")?;
    restored.metadata.resource_version = current.metadata.resource_version;
    roles.replace(RELEASE, &PostParams::default(), &restored).await.context("restoring the ClusterRole")?;
    outcome?;
    wait_for(&workspaces, &second, "Ready=True once the rule is back", ready).await?;
    for ws in [&name, &second] {
        workspaces.delete(ws, &DeleteParams::default()).await.context("deleting")?;
    }
    Ok(())
}

/// The holder of a Lease, once set.
async fn holder(leases: &Api<Lease>, name: &str) -> Result<Option<String>, String> {
    Ok(leases
        .get_opt(name)
        .await
        .context("the Lease")?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// A metric sample's value (0 when absent).
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

async fn converged(workspaces: &Api<Workspace>, name: &str) -> TestResult {
    let workspace: Workspace =
        serde_yaml::from_str(&format!("metadata: {{name: {name}}}\nspec: {{}}")).context("yaml")?;
    workspaces.create(&PostParams::default(), &workspace).await.context("creating a Workspace")?;
    wait_for(workspaces, name, "reconciled", |w: Option<&Workspace>| {
        w.is_some_and(|w| w.status.as_ref().and_then(|s| s.observed_generation) == w.metadata.generation)
    })
    .await
    .map(drop)
}

pub async fn one_replica_leads_and_another_takes_over(scope: Scope) -> TestResult {
    let ns = scope.namespace("lease").await?;
    let lease = scope.env.unique("leader");
    let flags = ["--leader-elect", "--leader-elect-namespace", &ns, "--leader-elect-lease", &lease];
    let leases: Api<Lease> = Api::namespaced(scope.env.client.clone(), &ns);
    let workspaces: Api<Workspace> = Api::all(scope.env.client.clone());
    scope.env.stop_operator()?;
    let mut replicas: Vec<(String, Operator)> = Vec::new();
    let result = async {
        for pod in ["replica-a", "replica-b"] {
            let operator = scope.env.spawn_operator(&flags, &[("POD_NAME", pod)], &format!("{pod}.log"))?;
            replicas.push((pod.to_string(), operator));
        }
        for (_, operator) in &replicas {
            wait_ready(operator.address).await?;
        }
        wait_until(WAIT, "a holder of the Lease", || async { Ok(holder(&leases, &lease).await?.is_some()) }).await?;
        let first = holder(&leases, &lease).await?.unwrap_or_default();
        let leading = replicas.iter().position(|(pod, _)| first.starts_with(&format!("{pod}_"))).ok_or(format!("holder {first}"))?;
        let standing = 1 - leading;
        // One reconciles; the other only stands by.
        let w1 = scope.env.unique("led");
        converged(&workspaces, &w1).await?;
        let (_, leader_metrics) = http_get(replicas[leading].1.address, "/metrics")?;
        let (_, standby_metrics) = http_get(replicas[standing].1.address, "/metrics")?;
        let (_, standby_ready) = http_get(replicas[standing].1.address, "/readyz")?;
        ensure!(sample(&leader_metrics, "dataworkspace_leader") == 1.0, "leader gauge:\n{leader_metrics}");
        ensure!(sample(&standby_metrics, "dataworkspace_leader") == 0.0, "standby gauge:\n{standby_metrics}");
        ensure!(standby_ready.trim() == "standby", "the standby's /readyz: {standby_ready}");
        ensure!(
            sample(&standby_metrics, "dataworkspace_reconciliations_total") == 0.0,
            "the standby reconciled:\n{standby_metrics}"
        );
        let reconciled = sample(&leader_metrics, "dataworkspace_reconciliations_total");
        ensure!(reconciled.is_sign_positive() && reconciled != 0.0, "the leader did not reconcile: {reconciled}");

        // A crash: the standby takes over once the Lease expires, and a change made after the
        // crash converges.
        let killed = Instant::now();
        replicas[leading].1.signal("KILL")?;
        let w2 = scope.env.unique("after-crash");
        let after: Workspace = serde_yaml::from_str(&format!("metadata: {{name: {w2}}}\nspec: {{}}")).context("yaml")?;
        workspaces.create(&PostParams::default(), &after).await.context("creating a Workspace")?;
        let successor = replicas[standing].0.clone();
        wait_until(WAIT, "the standby to hold the Lease", || async {
            Ok(holder(&leases, &lease).await?.is_some_and(|h| h.starts_with(&format!("{successor}_"))))
        })
        .await?;
        let took_over = killed.elapsed();
        wait_for(&workspaces, &w2, "reconciled by the new leader", |w: Option<&Workspace>| {
            w.is_some_and(|w| w.status.as_ref().and_then(|s| s.observed_generation) == w.metadata.generation)
        })
        .await?;
        let converged_after = killed.elapsed();

        // A graceful stop hands the Lease over: a new standby takes it at its next look, not
        // when the Lease would have expired.
        let third = scope.env.spawn_operator(&flags, &[("POD_NAME", "replica-c")], "replica-c.log")?;
        replicas.push(("replica-c".into(), third));
        wait_ready(replicas[2].1.address).await?;
        let stopped = Instant::now();
        let status = replicas[standing].1.signal("TERM")?;
        ensure!(status.success(), "the leader exited with {status} on SIGTERM");
        wait_until(WAIT, "the new standby to hold the Lease", || async {
            Ok(holder(&leases, &lease).await?.is_some_and(|h| h.starts_with("replica-c_")))
        })
        .await?;
        let handed_over = stopped.elapsed();
        let status = replicas[2].1.signal("TERM")?;
        ensure!(status.success(), "the last leader exited with {status} on SIGTERM");
        ensure!(holder(&leases, &lease).await?.is_none(), "the Lease was not released on shutdown");
        let report = format!(
            "leader election: take-over after SIGKILL {:.1} s (Lease duration {} s), change converged {:.1} s after the kill; hand-over on SIGTERM {:.1} s (standby retry period {} s)\n",
            took_over.as_secs_f64(),
            dataworkspace_operator::leader::LEASE_DURATION.as_secs(),
            converged_after.as_secs_f64(),
            handed_over.as_secs_f64(),
            dataworkspace_operator::leader::RETRY_PERIOD.as_secs(),
        );
        eprint!("{report}");
        fs::write(scope.env.out_dir.join("leader-election.txt"), report).context("report")?;
        for name in [&w1, &w2] {
            workspaces.delete(name, &DeleteParams::default()).await.context("deleting")?;
        }
        Ok(())
    }
    .await;
    drop(replicas);
    scope.env.start_operator().await?;
    result
}
