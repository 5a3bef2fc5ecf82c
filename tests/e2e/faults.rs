//! What the whole suite leaves behind, checked once at its end: no Secret value of any workspace
//! (the examples' credentials, the generated keys of Airflow projects and proxies, the tests'
//! own Secrets) appears outside its Secret — not in any operator log line, Event, status,
//! ConfigMap, workload spec or annotation, in plain text or base64.

use std::{collections::BTreeSet, fs};

use base64::Engine;

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, kubectl},
};

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
