//! Faults. The operator killed (SIGKILL) at ten random moments while 20 Workspaces and 100
//! Projects roll out converges after its last restart with exactly the objects of an undisturbed
//! rollout (no orphan, no duplicate) and without regenerating a generated Secret. And what the
//! whole suite leaves behind, checked once at its end: no Secret value of any workspace (the
//! examples' credentials, the generated keys of Airflow projects and proxies, the tests' own
//! Secrets) appears outside its Secret — not in any operator log line, Event, status, ConfigMap,
//! workload spec or annotation, in plain text or base64.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    time::{Duration, Instant},
};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};

use dataworkspace_operator::crd::{Project, Workspace, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, kubectl, kubectl_with_input, wait_ready, wait_until},
};

const WORKSPACES: usize = 20;
const KILLS: usize = 10;

/// One tenant of the rollout: a Workspace (its Studio stopped) with three stopped Notebooks
/// (each a generated token Secret) and two Spark Connect servers (each a running driver).
fn tenant(workspace: &str) -> String {
    let mut yaml = format!(
        "apiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {workspace}}}\nspec: {{studio: {{stopped: true}}}}\n"
    );
    for i in 0..3 {
        yaml += &format!(
            "---\napiVersion: dataworkspace.io/v1alpha1\nkind: Project\nmetadata: {{name: nb-{i}, namespace: dw-{workspace}}}\nspec: {{runtime: Notebook, notebook: {{}}, stopped: true}}\n"
        );
    }
    for i in 0..2 {
        yaml += &format!(
            "---\napiVersion: dataworkspace.io/v1alpha1\nkind: Project\nmetadata: {{name: spark-{i}, namespace: dw-{workspace}}}\nspec: {{runtime: Spark, spark: {{mode: Connect, driver: {{resources: {{requests: {{cpu: 250m, memory: 1Gi}}, limits: {{memory: 1Gi}}}}}}, executors: {{instances: 1, resources: {{requests: {{cpu: 250m, memory: 1Gi}}, limits: {{memory: 1Gi}}}}}}}}}}\n"
        );
    }
    yaml
}

/// The operator's objects in a namespace, by kind and name (names are the same in every tenant).
fn inventory(namespace: &str) -> Result<BTreeSet<String>, String> {
    let kinds = "configmaps,secrets,services,serviceaccounts,deployments,statefulsets,jobs,cronjobs,\
                 rolebindings,networkpolicies,resourcequotas,limitranges,persistentvolumeclaims";
    let out = kubectl(&[
        "get",
        kinds,
        "-n",
        namespace,
        "-l",
        "app.kubernetes.io/managed-by=dataworkspace-operator",
        "-o",
        "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}",
    ])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// A tiny deterministic generator (the seed is printed, and `DWO_FAULT_SEED` replays it).
fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

fn converged(workspaces: &[Workspace], projects: &[Project]) -> bool {
    let ready = |conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]| {
        conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    };
    workspaces.len() == WORKSPACES
        && workspaces.iter().all(|w| {
            w.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == w.metadata.generation && ready(&s.conditions))
        })
        && projects.len() == WORKSPACES * 5
        && projects.iter().all(|p| {
            let wanted = if p.spec.runtime.as_str() == "Notebook" { Phase::Stopped } else { Phase::Running };
            p.status
                .as_ref()
                .is_some_and(|s| s.observed_generation == p.metadata.generation && s.phase == Some(wanted))
        })
}

pub async fn killed_at_random_it_converges_without_orphans_or_new_keys(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let prefix = scope.env.unique("chaos");
    let names: Vec<String> = (0..WORKSPACES).map(|i| format!("{prefix}-{i}")).collect();
    let control = format!("{prefix}-control");
    let mut seed: u64 =
        std::env::var("DWO_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    let first_seed = seed;
    eprintln!("fault test seed {seed} (DWO_FAULT_SEED replays it)");
    for name in names.iter().chain([&control]) {
        scope.involve(&format!("dw-{name}"));
    }
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let projects: Api<Project> = Api::all(client.clone());
    let ours = |w: &Workspace| w.metadata.name.as_deref().is_some_and(|n| names.iter().any(|m| m == n));
    let in_ours = |p: &Project| {
        p.metadata.namespace.as_deref().is_some_and(|ns| names.iter().any(|m| ns == format!("dw-{m}")))
    };

    // The control tenant, rolled out by the suite's operator undisturbed.
    kubectl_with_input(&["apply", "-f", "-"], tenant(&control).split("---\n").next().unwrap_or_default())?;
    wait_until(Duration::from_secs(60), "the control namespace", || async {
        Ok(kubectl(&["get", "namespace", &format!("dw-{control}")]).is_ok())
    })
    .await?;
    kubectl_with_input(&["apply", "-f", "-"], &tenant(&control))?;

    scope.env.stop_operator()?;
    let started = Instant::now();
    let mut kills = Vec::new();
    let mut keys: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut crashes = 0;
    let result = async {
        // The rollout, applied in one go (Projects first fail on their missing namespaces and
        // are retried), with the operator killed ten times at random moments.
        let input: String = names.iter().map(|n| tenant(n)).collect::<Vec<_>>().join("---\n");
        let mut operator = scope.env.spawn_operator(&[], &[], "operator-chaos.log")?;
        let _ = kubectl_with_input(&["apply", "-f", "-"], &input);
        for _ in 0..KILLS {
            let wait = Duration::from_millis(300 + next(&mut seed) % 2700);
            tokio::time::sleep(wait).await;
            let _ = kubectl_with_input(&["apply", "-f", "-"], &input);
            record_keys(&client, &names, &mut keys).await?;
            let status = operator.signal("KILL")?;
            kills.push(format!("{:.1}s", started.elapsed().as_secs_f64()));
            if status.code().is_some() {
                crashes += 1; // it had exited by itself before the kill
            }
            operator = scope.env.spawn_operator(&[], &[], "operator-chaos.log")?;
        }
        wait_ready(operator.address).await?;
        let _ = kubectl_with_input(&["apply", "-f", "-"], &input);
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let w: Vec<Workspace> = workspaces.list(&ListParams::default()).await.context("workspaces")?.items;
            let p: Vec<Project> = projects.list(&ListParams::default()).await.context("projects")?.items;
            let w: Vec<Workspace> = w.into_iter().filter(|w| ours(w)).collect();
            let p: Vec<Project> = p.into_iter().filter(|p| in_ours(p)).collect();
            if converged(&w, &p) {
                break;
            }
            ensure!(Instant::now() < deadline, "not converged 240 s after the last kill ({} workspaces, {} projects seen)", w.len(), p.len());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let converged_after = started.elapsed();
        let _ = operator.signal("TERM")?;

        // Every tenant holds exactly what the undisturbed control tenant holds.
        let expected = inventory(&format!("dw-{control}"))?;
        ensure!(expected.len() >= 20, "the control tenant holds too little: {expected:?}");
        let mut orphans = 0;
        let mut missing = 0;
        for name in &names {
            let got = inventory(&format!("dw-{name}"))?;
            orphans += got.difference(&expected).count();
            missing += expected.difference(&got).count();
            ensure!(got == expected, "dw-{name} differs from the undisturbed rollout: extra {:?}, missing {:?}", got.difference(&expected).collect::<Vec<_>>(), expected.difference(&got).collect::<Vec<_>>());
        }
        // No generated Secret was made twice or rewritten.
        let before = keys.clone();
        record_keys(&client, &names, &mut keys).await?;
        let mut regenerated = 0;
        for (secret, first) in &before {
            let now = current_key(&client, secret).await?;
            if now.as_ref() != Some(first) {
                regenerated += 1;
            }
        }
        ensure!(regenerated == 0, "{regenerated} generated Secrets changed after a kill");
        let log = fs::read_to_string(scope.env.out_dir.join("operator-chaos.log")).unwrap_or_default();
        let panics = log.matches("panicked").count();
        ensure!(panics == 0 && crashes == 0, "{panics} panics and {crashes} exits before a kill in the chaos runs");
        let report = format!(
            "fault: SIGKILL ×{KILLS} at {} during a rollout of {WORKSPACES} Workspaces and {} Projects: converged {:.1} s after the rollout began ({:.1} s after the last kill); {orphans} orphans, {missing} missing, 0 duplicates (names are unique per kind), {regenerated} regenerated of {} generated Secrets seen, {panics} panics, {crashes} crashes (seed {})\n",
            kills.join(" "),
            WORKSPACES * 5,
            converged_after.as_secs_f64(),
            converged_after.as_secs_f64() - kills.last().and_then(|k| k.trim_end_matches('s').parse::<f64>().ok()).unwrap_or(0.0),
            keys.len(),
            first_seed,
        );
        eprint!("{report}");
        fs::write(scope.env.out_dir.join("faults.txt"), report).context("report")?;
        Ok(())
    }
    .await;
    scope.env.start_operator().await?;
    for name in names.iter().chain([&control]) {
        let _ = workspaces.delete(name, &DeleteParams::default()).await;
    }
    result
}

/// Kills a control-plane component of the suite's cluster and starts it again after 3 s, in
/// the background (the script then watches over the other components for a while).
fn restart(scope: &Scope, component: &str) -> Result<std::process::Child, String> {
    std::process::Command::new(scope.env.repo.join("hack/cluster.sh"))
        .args(["restart", component, "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("hack/cluster.sh restart")
}

/// The API server, then etcd, each killed and down for 3 s while Workspaces roll out: the
/// operator keeps running (it reconnects by itself) and everything converges.
pub async fn api_server_and_etcd_restarts_are_survived(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let address = scope.env.operator_address().ok_or("the operator is not running")?;
    let (_, before) = crate::harness::http_get(address, "/metrics")?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let mut report = String::new();
    let mut all = Vec::new();
    for component in ["kube-apiserver", "etcd"] {
        let prefix = scope.env.unique("outage");
        let names: Vec<String> = (0..10).map(|i| format!("{prefix}-{i}")).collect();
        let input: String = names
            .iter()
            .map(|n| format!("apiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {n}}}\nspec: {{studio: {{stopped: true}}}}\n"))
            .collect::<Vec<_>>()
            .join("---\n");
        kubectl_with_input(&["apply", "-f", "-"], &input)?;
        let killed = Instant::now();
        let restarting = restart(&scope, component)?;
        let mut back = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        // Give the kill a moment to land before the first look.
        tokio::time::sleep(Duration::from_millis(500)).await;
        loop {
            let listed = match workspaces.list(&ListParams::default()).await {
                Ok(list) => {
                    back.get_or_insert(killed.elapsed());
                    list.items
                }
                Err(_) => Vec::new(), // down, or still settling
            };
            let ready = names
                .iter()
                .filter(|n| {
                    listed.iter().any(|w| {
                        w.metadata.name.as_deref() == Some(n.as_str())
                            && w.status.as_ref().is_some_and(|s| {
                                s.observed_generation == w.metadata.generation
                                    && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                })
                .count();
            if ready == names.len() {
                break;
            }
            ensure!(!scope.env.operator_exited(), "the operator exited after {component} restarted");
            ensure!(
                Instant::now() < deadline,
                "{ready}/{} Workspaces Ready 120 s after {component} came back",
                names.len()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let converged = killed.elapsed();
        let finished = restarting.wait_with_output().context("hack/cluster.sh restart")?;
        ensure!(
            finished.status.success(),
            "restarting {component}: {}",
            String::from_utf8_lossy(&finished.stderr)
        );
        report += &format!(
            "{component} killed mid-rollout of {} Workspaces: answering again {:.1} s after the kill, all converged {:.1} s after it; ",
            names.len(),
            back.unwrap_or_default().as_secs_f64(),
            converged.as_secs_f64()
        );
        all.extend(names);
    }
    ensure!(!scope.env.operator_exited(), "the operator exited");
    let (code, after) = crate::harness::http_get(address, "/metrics")?;
    ensure!(code == 200, "/metrics answered {code} after the outages");
    let errors = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("dataworkspace_watch_errors_total"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum()
    };
    report += &format!(
        "operator still running (0 restarts), {} watch errors seen and recovered\n",
        errors(&after) - errors(&before)
    );
    eprint!("{report}");
    fs::write(scope.env.out_dir.join("outages.txt"), &report).context("report")?;
    for name in &all {
        let _ = workspaces.delete(name, &DeleteParams::default()).await;
    }
    Ok(())
}

/// The generated Secrets of the tenants (the Notebooks' tokens), by namespace/name: UID and a
/// digest of their data, as first seen.
async fn record_keys(
    client: &kube::Client,
    names: &[String],
    keys: &mut BTreeMap<String, (String, String)>,
) -> TestResult {
    for name in names {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &format!("dw-{name}"));
        let list = secrets
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=dataworkspace-operator"))
            .await
            .context("secrets")?;
        for secret in list.items {
            let key = format!("dw-{name}/{}", secret.metadata.name.clone().unwrap_or_default());
            if let Some(seen) = fingerprint(&secret) {
                keys.entry(key).or_insert(seen);
            }
        }
    }
    Ok(())
}

async fn current_key(client: &kube::Client, key: &str) -> Result<Option<(String, String)>, String> {
    let (namespace, name) = key.split_once('/').ok_or("key")?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(secrets.get_opt(name).await.context("secret")?.as_ref().and_then(fingerprint))
}

fn fingerprint(secret: &Secret) -> Option<(String, String)> {
    let uid = secret.metadata.uid.clone()?;
    let data = serde_json::to_string(&secret.data).ok()?;
    Some((uid, format!("{:x}", data.len()) + &data.chars().rev().take(16).collect::<String>()))
}

/// Values too short or too common to tell a leak from a coincidence.
fn telling(value: &str) -> bool {
    value.len() >= 8 && !matches!(value, "true" | "false") && !value.starts_with("-----BEGIN CERTIFICATE")
}

pub async fn no_secret_value_appears_outside_its_secret(scope: Scope) -> TestResult {
    let secrets: serde_json::Value =
        serde_json::from_str(&kubectl(&["get", "secrets", "-A", "-o", "json"])?).context("secrets")?;
    let mut values = BTreeSet::new();
    for secret in secrets["items"].as_array().into_iter().flatten() {
        // ServiceAccount tokens and TLS material belong to the cluster, not the workspaces.
        let kind = secret["type"].as_str().unwrap_or_default();
        if kind == "kubernetes.io/service-account-token" || kind == "kubernetes.io/tls" {
            continue;
        }
        for (key, data) in secret["data"].as_object().into_iter().flatten() {
            if key == "ca.crt" {
                continue;
            }
            let decoded = base64::engine::general_purpose::STANDARD.decode(data.as_str().unwrap_or_default());
            let Ok(text) = String::from_utf8(decoded.unwrap_or_default()) else { continue };
            let text = text.trim().to_string();
            if telling(&text) {
                values.insert(text);
            }
        }
    }
    ensure!(values.len() >= 5, "too few Secret values to scan for ({}): did the suite run?", values.len());

    // Where a value must never be: the operator's logs, and every object that is not a Secret.
    let mut haystacks: Vec<(String, String)> = Vec::new();
    for entry in fs::read_dir(&scope.env.out_dir).context("target/e2e")? {
        let path = entry.context("target/e2e")?.path();
        if path.extension().is_some_and(|e| e == "log") {
            haystacks.push((path.display().to_string(), fs::read_to_string(&path).unwrap_or_default()));
        }
    }
    let kinds = "configmaps,events,services,serviceaccounts,pods,deployments,statefulsets,jobs,cronjobs,\
                 rolebindings,networkpolicies,ingresses,persistentvolumeclaims,namespaces,resourcequotas,\
                 limitranges,workspaces,users,projects,pythonenvironments";
    haystacks.push(("objects".into(), kubectl(&["get", kinds, "-A", "-o", "json"])?));
    let mut leaks = Vec::new();
    for value in &values {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for (place, text) in &haystacks {
            if text.contains(value.as_str()) || text.contains(&encoded) {
                // Say where, never what.
                leaks.push(format!("a Secret value of {} characters appears in {place}", value.len()));
            }
        }
    }
    eprintln!(
        "secret-leak scan: {} Secret values against {} operator logs and {} bytes of objects: {} leaks",
        values.len(),
        haystacks.len() - 1,
        haystacks.last().map_or(0, |(_, t)| t.len()),
        leaks.len()
    );
    ensure!(leaks.is_empty(), "{}", leaks.join("\n"));
    Ok(())
}
