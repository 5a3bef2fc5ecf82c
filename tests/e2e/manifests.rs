//! The committed manifests against the real API server: CRDs are accepted and established,
//! `examples/` applies, and every manifest in `examples/invalid/` is refused with its message.

use std::fs;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, api::ListParams};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, expected_error, kubectl, wait_until},
};

/// The rows of a kubectl table (`-o wide` with headers), as column name → value; columns are cut
/// at the header's positions, so an empty cell stays empty.
fn table_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for name in header.split_whitespace() {
        let start = offset + header[offset..].find(name).unwrap_or(0);
        starts.push((start, name));
        offset = start + name.len();
    }
    lines
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(i, (start, name))| {
                    let end = starts.get(i + 1).map_or(line.len(), |(next, _)| (*next).min(line.len()));
                    let cell = line.get((*start).min(line.len())..end).unwrap_or_default();
                    (name.to_string(), cell.trim().to_string())
                })
                .collect()
        })
        .collect()
}

pub async fn crds_are_established(scope: Scope) -> TestResult {
    let api: Api<CustomResourceDefinition> = Api::all(scope.env.client.clone());
    let definitions = dataworkspace_operator::crd::all();
    for definition in &definitions {
        let name = definition.metadata.name.clone().unwrap_or_default();
        let stored = api.get(&name).await.context(&format!("reading CRD {name}"))?;
        let established = stored
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        ensure!(established, "CRD {name} is not Established");
    }
    // Discovery serves each kind as the CRDs declare it — scope, short names, the shared
    // category — which is what `kubectl get dwws` and `kubectl get dataworkspace` resolve through.
    let served = kubectl(&["api-resources", "--api-group=dataworkspace.io", "-o", "wide"])?;
    let rows = table_rows(&served);
    ensure!(
        rows.len() == definitions.len(),
        "discovery serves {} kinds, not {}:\n{served}",
        rows.len(),
        definitions.len()
    );
    for definition in &definitions {
        let names = &definition.spec.names;
        let row = rows
            .iter()
            .find(|r| r.get("NAME") == Some(&names.plural))
            .ok_or_else(|| format!("discovery does not serve {}:\n{served}", names.plural))?;
        let list = |column: &str| -> Vec<String> {
            let mut items: Vec<String> = row
                .get(column)
                .map(|c| c.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_default();
            items.sort();
            items
        };
        let sorted = |items: &Option<Vec<String>>| {
            let mut items = items.clone().unwrap_or_default();
            items.sort();
            items
        };
        let version = &definition.spec.versions[0].name;
        let expected = [
            ("KIND", names.kind.clone()),
            ("APIVERSION", format!("{}/{version}", definition.spec.group)),
            ("NAMESPACED", (definition.spec.scope == "Namespaced").to_string()),
        ];
        for (column, value) in expected {
            ensure!(
                row.get(column) == Some(&value),
                "{}: {column} is {:?}, not {value}:\n{served}",
                names.plural,
                row.get(column)
            );
        }
        ensure!(!sorted(&names.short_names).is_empty(), "{} has no short name", names.kind);
        ensure!(
            list("SHORTNAMES") == sorted(&names.short_names),
            "{}: short names {:?}:\n{served}",
            names.plural,
            names.short_names
        );
        ensure!(
            list("CATEGORIES") == sorted(&names.categories) && list("CATEGORIES") == ["dataworkspace"],
            "{}: categories {:?}:\n{served}",
            names.plural,
            names.categories
        );
        // Each short name resolves to this kind, not to another with the same short name.
        for short in sorted(&names.short_names) {
            let explained = kubectl(&["explain", &short])?;
            let field = |key: &str| {
                explained
                    .lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            ensure!(
                field("GROUP:") == definition.spec.group && field("KIND:") == names.kind,
                "`kubectl explain {short}` is not {}:\n{explained}",
                names.kind
            );
        }
        // The printer columns as the API server serves them (server-side printing: what
        // `kubectl get` shows), read as a Table even when there is no object.
        let path = format!("/apis/{}/{version}/{}", definition.spec.group, names.plural);
        let mut request = kube::core::Request::new(path)
            .list(&ListParams::default().limit(1))
            .context("building a list request")?;
        request.headers_mut().insert(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io".parse().context("Accept header")?,
        );
        let table: serde_json::Value = scope
            .env
            .client
            .request(request)
            .await
            .context(&format!("listing {} as a Table", names.plural))?;
        let columns: Vec<&str> = table["columnDefinitions"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        let declared =
            definition.spec.versions[0].additional_printer_columns.iter().flatten().map(|c| c.name.as_str());
        let expected: Vec<&str> = std::iter::once("Name").chain(declared).collect();
        ensure!(expected.len() > 2, "{} declares no printer columns", names.kind);
        ensure!(columns == expected, "{} is printed with {columns:?}, not {expected:?}", names.plural);
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
