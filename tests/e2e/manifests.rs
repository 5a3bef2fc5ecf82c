//! The committed manifests against the real API server: CRDs are accepted and established,
//! `examples/` applies, and every manifest in `examples/invalid/` is refused with its message.

use std::fs;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, expected_error, kubectl, wait_until},
};

pub async fn crds_are_established(scope: Scope) -> TestResult {
    let api: Api<CustomResourceDefinition> = Api::all(scope.env.client.clone());
    for definition in dataworkspace_operator::crd::all() {
        let name = definition.metadata.name.unwrap();
        let stored = api.get(&name).await.context(&format!("reading CRD {name}"))?;
        let established = stored
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        ensure!(established, "CRD {name} is not Established");
    }
    // The shared category works with the real client.
    wait_until(WAIT, "`kubectl get dataworkspace -A` to know the category", || async {
        Ok(kubectl(&["get", "dataworkspace", "-A"]).is_ok())
    })
    .await?;
    Ok(())
}

pub async fn examples_apply(scope: Scope) -> TestResult {
    scope.involve("dw-analytics");
    let out = kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    for expected in [
        "workspace.dataworkspace.io/analytics",
        "user.dataworkspace.io/alice",
        "user.dataworkspace.io/bob",
        "pythonenvironment.dataworkspace.io/analytics-py312",
        "project.dataworkspace.io/daily-etl",
        "project.dataworkspace.io/spark-connect",
        "project.dataworkspace.io/sales-dashboard",
        "project.dataworkspace.io/exploration",
    ] {
        ensure!(out.contains(expected), "`kubectl apply -f examples/` did not report {expected}:\n{out}");
    }
    let listed = kubectl(&["get", "dataworkspace", "-A", "--no-headers"])?;
    for name in [
        "analytics",
        "alice",
        "bob",
        "analytics-py312",
        "daily-etl",
        "spark-connect",
        "sales-dashboard",
        "exploration",
    ] {
        ensure!(
            listed.split_whitespace().any(|w| w.ends_with(&format!("/{name}"))),
            "`kubectl get dataworkspace -A` does not list {name}:\n{listed}"
        );
    }
    // Applying again changes none of our objects: defaults and schema produce no diff. (Secrets
    // written with `stringData` always report "configured" under client-side apply, because
    // `stringData` is write-only; that is kubectl's behaviour, not ours.)
    let again = kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    let changed: Vec<&str> =
        again.lines().filter(|l| l.contains(".dataworkspace.io/") && !l.ends_with(" unchanged")).collect();
    ensure!(changed.is_empty(), "a second apply changed our objects:\n{}", changed.join("\n"));
    Ok(())
}

pub async fn invalid_examples_are_rejected_with_their_message(scope: Scope) -> TestResult {
    // Namespaced examples need their namespace to reach validation.
    kubectl(&["apply", "-f", &scope.env.path("examples/00-namespace.yaml")])?;
    let dir = scope.env.repo.join("examples/invalid");
    let mut files: Vec<_> =
        fs::read_dir(&dir).context("reading examples/invalid")?.map(|e| e.unwrap().path()).collect();
    files.sort();
    ensure!(!files.is_empty(), "no invalid examples");
    let mut problems = Vec::new();
    for file in &files {
        let expected = expected_error(file).ok_or(format!("{} has no '# expect:' line", file.display()))?;
        match kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()]) {
            Ok(out) => problems.push(format!("{}: accepted ({})", file.display(), out.trim())),
            Err(error) if error.contains(&expected) => {}
            Err(error) => problems.push(format!("{}: expected {expected:?}, got: {error}", file.display())),
        }
    }
    ensure!(
        problems.is_empty(),
        "{} of {} invalid examples misbehaved:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
    Ok(())
}
