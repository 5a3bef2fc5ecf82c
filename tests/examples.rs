//! Every manifest in `examples/` parses into its Rust type without losing a field, and every
//! manifest in `examples/invalid/` says which error the API server must give.

use std::{
    fs,
    path::{Path, PathBuf},
};

use dataworkspace_operator::crd::{Project, PythonEnvironment, User, Workspace};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Every key of `original` is present in `parsed`: the type knew every field the manifest set.
fn assert_no_field_lost(original: &Value, parsed: &Value, at: &str) {
    match (original, parsed) {
        (Value::Object(o), Value::Object(p)) => {
            for (key, value) in o {
                let next = p.get(key).unwrap_or_else(|| panic!("{at}.{key} is not a field of the type"));
                assert_no_field_lost(value, next, &format!("{at}.{key}"));
            }
        }
        (Value::Array(o), Value::Array(p)) => {
            assert_eq!(o.len(), p.len(), "{at}");
            for (i, (a, b)) in o.iter().zip(p).enumerate() {
                assert_no_field_lost(a, b, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

fn check<K: DeserializeOwned + Serialize>(doc: &Value, file: &str) {
    let typed: K = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_no_field_lost(doc, &serde_json::to_value(&typed).unwrap(), file);
}

#[test]
fn examples_parse_into_their_types() {
    let mut kinds = Vec::new();
    for path in yaml_files("examples") {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for doc in documents(&path) {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            match kind.as_str() {
                "Workspace" => check::<Workspace>(&doc, &file),
                "User" => check::<User>(&doc, &file),
                "PythonEnvironment" => check::<PythonEnvironment>(&doc, &file),
                "Project" => check::<Project>(&doc, &file),
                "Namespace" => check::<Namespace>(&doc, &file),
                "Secret" => check::<Secret>(&doc, &file),
                other => panic!("{file}: unexpected kind {other:?}"),
            }
            kinds.push((kind, doc["spec"]["runtime"].as_str().map(str::to_string)));
        }
    }
    // The set the README promises: a workspace, two users, an environment, one project per runtime.
    let count = |k: &str| kinds.iter().filter(|(kind, _)| kind == k).count();
    assert_eq!(count("Workspace"), 1);
    assert_eq!(count("User"), 2);
    assert_eq!(count("PythonEnvironment"), 1);
    for runtime in ["Airflow", "Spark", "Streamlit", "Notebook"] {
        assert!(kinds.iter().any(|(_, r)| r.as_deref() == Some(runtime)), "no {runtime} example");
    }
}

#[test]
fn invalid_examples_state_the_expected_error() {
    for path in yaml_files("examples/invalid") {
        let text = fs::read_to_string(&path).unwrap();
        let expect = text.lines().find_map(|l| l.strip_prefix("# expect: "));
        assert!(expect.is_some_and(|e| !e.trim().is_empty()), "{} has no '# expect: ' line", path.display());
        assert_eq!(documents(&path).len(), 1, "{}: one manifest per file", path.display());
    }
}
