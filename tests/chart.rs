//! The Helm chart, rendered by the real `helm` (`make test-chart` builds it): it lints, renders the
//! committed goldens (default values: the GitOps rendering in `deploy/`; every value set:
//! `tests/golden/chart-full.yaml`), refuses wrong values through `values.schema.json`, carries
//! the operator's CRDs unchanged, and renders objects that apply without a perpetual diff and
//! run under Pod Security `restricted`.
//!
//! `DWO_UPDATE_GOLDEN=1 cargo test --test chart` rewrites the goldens after an intended change
//! (`make deploy` rewrites `deploy/`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use serde_yaml::Value;

const CHART: &str = "charts/dataworkspace-operator";
const RELEASE: &str = "dataworkspace-operator";
const NAMESPACE: &str = "dataworkspace-system";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned helm: `$HELM`, else the one `hack/build-tools.sh helm` built.
fn helm() -> PathBuf {
    if let Some(helm) = std::env::var_os("HELM") {
        return helm.into();
    }
    let out = Command::new(repo().join("hack/build-tools.sh")).arg("--print-bin-dir").output().unwrap();
    let helm = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("helm");
    assert!(
        helm.exists(),
        "{} is missing: run `hack/build-tools.sh helm` (make test-chart does)",
        helm.display()
    );
    helm
}

/// `helm <args>` in the repository: Ok(stdout) or Err(stderr).
fn run_helm(args: &[&str]) -> Result<String, String> {
    let output = Command::new(helm()).args(args).current_dir(repo()).output().unwrap();
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The API version Helm looks for before it renders the PythonEnvironment requester policy
/// (Kubernetes 1.36 and newer).
const MAP: &str = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy";

fn template(extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["template", RELEASE, CHART, "--namespace", NAMESPACE, "--api-versions", MAP];
    args.extend_from_slice(extra);
    run_helm(&args)
}

/// The documents of a YAML stream, without empty ones.
fn documents(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

/// Compares `actual` with the committed file, or rewrites it under `DWO_UPDATE_GOLDEN`.
fn golden(path: &Path, actual: &str, how: &str) {
    if std::env::var_os("DWO_UPDATE_GOLDEN").is_some() {
        fs::write(path, actual).unwrap();
        return;
    }
    let committed = fs::read_to_string(path).unwrap_or_default();
    if committed != actual {
        let first = committed.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "{} differs from the rendering (first at line {}: committed {:?}, rendered {:?}); {how}",
            path.display(),
            first + 1,
            committed.lines().nth(first),
            actual.lines().nth(first),
        );
    }
}

#[test]
fn the_chart_lints() {
    let out = run_helm(&["lint", "--strict", CHART]).unwrap_or_else(|e| panic!("helm lint: {e}"));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn deploy_is_the_rendering_of_the_default_values() {
    let dir = tempdir();
    let status = Command::new(repo().join("hack/render-deploy.sh"))
        .arg(&dir)
        .env("HELM", helm())
        .current_dir(repo())
        .status()
        .unwrap();
    assert!(status.success());
    let mut rendered: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut committed: Vec<String> = fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    rendered.sort();
    committed.sort();
    assert_eq!(committed, rendered, "deploy/ holds other files than the rendering; run `make deploy`");
    for file in rendered {
        golden(
            &repo().join("deploy").join(&file),
            &fs::read_to_string(dir.join(&file)).unwrap(),
            "run `make deploy` and commit deploy/",
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn every_value_set_renders_the_committed_golden() {
    let values = repo().join("tests/golden/chart-full-values.yaml");
    let out = template(&["--values", &values.to_string_lossy()]).unwrap_or_else(|e| panic!("{e}"));
    // The CRDs are checked against crds/ below; the golden holds everything else.
    let kept: Vec<Value> =
        documents(&out).into_iter().filter(|d| kind(d) != "CustomResourceDefinition").collect();
    let text: String = kept.iter().map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap())).collect();
    golden(
        &repo().join("tests/golden/chart-full.yaml"),
        &text,
        "check the change, then DWO_UPDATE_GOLDEN=1 cargo test --test chart",
    );
    let kinds: Vec<&str> = kept.iter().map(kind).collect();
    for wanted in ["ServiceMonitor", "NetworkPolicy", "ConfigMap", "PodDisruptionBudget", "Role"] {
        assert!(kinds.contains(&wanted), "the full values render no {wanted}: {kinds:?}");
    }
}

#[test]
fn the_schema_refuses_wrong_values_with_their_path() {
    for (set, path) in [
        ("replicas=two", "/replicas"),
        ("logFormat=xml", "/logFormat"),
        ("metrics.port=80", "/metrics/port"),
        ("operator.namespacePrefix=x'y", "/operator/namespacePrefix"),
        ("access.namespace=Not_A_Label", "/access/namespace"),
        ("image.digest=latest", "/image/digest"),
        ("unknownSetting=1", "unknownSetting"),
    ] {
        let err = template(&["--set", set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "{set}: {err}");
        assert!(err.contains(path), "{set}: the error does not name {path}: {err}");
    }
    // Values that would widen what the operator may do, or let two replicas reconcile at once.
    for sets in [
        &["access.namespace=kube-system"][..],
        &["access.namespace=default"],
        &["operator.namespacePrefix="],
        &["replicas=3", "leaderElection.enabled=false"],
        &["replicas=2", "leaderElection.enabled=null"],
        &["podLabels.app\\.kubernetes\\.io/name=other"],
        &["priorityClassName=x\nhostPID: true"],
    ] {
        let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        let err = template(&args).expect_err(&format!("{sets:?} accepted"));
        assert!(err.contains("values don't meet the specifications of the schema"), "{sets:?}: {err}");
    }
    let err = template(&["--set", "access.namespace=dataworkspace-system"])
        .expect_err("access in the operator's namespace");
    assert!(err.contains("must not be the operator's own namespace"), "{err}");
    // The access layer needs its settings.
    let err = template(&["--set", "access.enabled=true"]).expect_err("access");
    assert!(err.contains("access.domain is required"), "{err}");
}

/// On a cluster without MutatingAdmissionPolicy v1 (before 1.36) the chart still installs: the
/// requester policy is left out (the operator then builds no environment and says so).
#[test]
fn the_requester_policy_needs_its_api() {
    let kinds = |out: &str| documents(out).iter().map(|d| kind(d).to_string()).collect::<Vec<_>>();
    let with = kinds(&template(&[]).unwrap());
    assert!(with.iter().any(|k| k == "MutatingAdmissionPolicy"));
    let without = run_helm(&["template", RELEASE, CHART, "--namespace", NAMESPACE]).unwrap();
    let without = kinds(&without);
    assert!(!without.iter().any(|k| k.starts_with("MutatingAdmissionPolicy")), "{without:?}");
    assert_eq!(with.len(), without.len() + 2);
}

#[test]
fn the_chart_carries_the_operators_crds_unchanged() {
    let out = template(&[]).unwrap();
    let rendered: Vec<Value> =
        documents(&out).into_iter().filter(|d| kind(d) == "CustomResourceDefinition").collect();
    let committed: Vec<Value> = fs::read_dir(repo().join("crds"))
        .unwrap()
        .map(|e| serde_yaml::from_str(&fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(rendered.len(), committed.len());
    for mut crd in rendered {
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        let annotations = crd["metadata"]["annotations"].clone();
        assert_eq!(annotations["helm.sh/resource-policy"], "keep", "{name} is not kept on uninstall");
        // Only the chart's label and annotation are added.
        let metadata = crd["metadata"].as_mapping_mut().unwrap();
        metadata.remove("annotations");
        metadata.remove("labels");
        let mut same = committed.iter().find(|c| c["metadata"]["name"] == name.as_str()).unwrap().clone();
        same["metadata"].as_mapping_mut().unwrap().remove("labels");
        // Helm writes 20 where the generator wrote 20.0: the same number to the API server.
        assert!(
            numbers_as_floats(crd) == numbers_as_floats(same),
            "the chart's {name} differs from crds/ (run `make deploy`)"
        );
    }
    let kept_off = template(&["--set", "crds.keep=false"]).unwrap();
    assert!(!kept_off.contains("helm.sh/resource-policy"));
}

#[test]
fn the_chart_and_the_operator_share_one_version() {
    let chart: Value =
        serde_yaml::from_str(&fs::read_to_string(repo().join(CHART).join("Chart.yaml")).unwrap()).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
}

/// Empty lists and maps are dropped by the API server, so GitOps tools would show them as a
/// diff for ever; the operator's pods must pass Pod Security `restricted`.
#[test]
fn rendered_objects_have_no_empty_fields_and_restricted_pods() {
    let values = repo().join("tests/golden/chart-full-values.yaml");
    for out in [template(&[]).unwrap(), template(&["--values", &values.to_string_lossy()]).unwrap()] {
        for doc in documents(&out) {
            let name = format!("{} {}", kind(&doc), doc["metadata"]["name"].as_str().unwrap_or_default());
            // A CRD's `subresources.status: {}` is how the API spells "on"; the CRDs are the
            // operator's own output, checked against the API server by the e2e suite.
            if kind(&doc) != "CustomResourceDefinition" {
                assert_no_empty(&doc, &name);
            }
            assert!(
                doc["metadata"]["labels"]["app.kubernetes.io/name"] == "dataworkspace-operator",
                "{name} unlabelled"
            );
            if kind(&doc) == "Deployment" {
                let pod = &doc["spec"]["template"]["spec"];
                assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
                assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault", "{name}");
                for c in pod["containers"].as_sequence().unwrap() {
                    let sc = &c["securityContext"];
                    assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                    assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
                    assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{name}");
                }
            }
        }
    }
}

fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(numbers_as_floats).collect()),
        Value::Mapping(map) => {
            Value::Mapping(map.into_iter().map(|(k, v)| (k, numbers_as_floats(v))).collect())
        }
        other => other,
    }
}

fn assert_no_empty(value: &Value, path: &str) {
    match value {
        Value::Sequence(items) => {
            assert!(!items.is_empty(), "{path} is an empty list");
            for (i, item) in items.iter().enumerate() {
                assert_no_empty(item, &format!("{path}[{i}]"));
            }
        }
        Value::Mapping(map) => {
            assert!(!map.is_empty(), "{path} is an empty map");
            for (k, v) in map {
                assert_no_empty(v, &format!("{path}.{}", k.as_str().unwrap_or("?")));
            }
        }
        _ => {}
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dwo-chart-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
