//! The generated CRDs: committed files are current, and each CRD has the shape users rely on.

use std::{fs, path::Path, process::Command};

use dataworkspace_operator::crd;

fn committed(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", path.display()))
}

#[test]
fn committed_crds_match_the_code() {
    let mut expected_files = Vec::new();
    for definition in crd::all() {
        let name = crd::file_name(&definition);
        assert_eq!(
            committed(&name),
            crd::to_yaml(&definition).unwrap(),
            "crds/{name} is stale; run `make crds` and commit the result"
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(present, expected_files, "crds/ holds files the code does not generate");
}

#[test]
fn crd_subcommand_prints_the_committed_crds() {
    let output = Command::new(env!("CARGO_BIN_EXE_dataworkspace-operator")).arg("crd").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed = String::from_utf8(output.stdout).unwrap();
    let expected: String =
        crd::all().iter().map(|d| format!("---\n{}", committed(&crd::file_name(d)))).collect();
    assert_eq!(printed, expected);
}

#[test]
fn crds_have_the_shape_users_rely_on() {
    for definition in crd::all() {
        let name = definition.metadata.name.clone().unwrap();
        let names = &definition.spec.names;
        assert_eq!(definition.spec.group, crd::GROUP);
        assert_eq!(names.categories.as_deref(), Some(&[crd::CATEGORY.to_string()][..]), "{name}");
        let short = names.short_names.clone().unwrap_or_default();
        assert!(!short.is_empty(), "{name} has no short name");
        assert!(!short.iter().any(|s| s == "ws"), "{name}: 'ws' is Kubeflow's Workspace short name");

        let version = &definition.spec.versions[0];
        assert_eq!(version.name, crd::VERSION);
        assert!(
            version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(),
            "{name}: no status subresource"
        );
        let columns = version.additional_printer_columns.clone().unwrap_or_default();
        let column =
            |n: &str| columns.iter().find(|c| c.name == n).unwrap_or_else(|| panic!("{name}: no {n} column"));
        assert_eq!(column("Ready").json_path, r#".status.conditions[?(@.type=="Ready")].status"#);
        assert_eq!(column("Reason").priority, Some(1));
        assert_eq!(column("Age").json_path, ".metadata.creationTimestamp");

        let schema = serde_json::to_value(version.schema.as_ref().unwrap()).unwrap();
        let conditions = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{name}");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], serde_json::json!(["type"]), "{name}");
        let observed = &schema["openAPIV3Schema"]["properties"]["status"]["properties"]["observedGeneration"];
        assert_eq!(observed["type"], "integer", "{name}");
    }
}

#[test]
fn crds_contain_no_empty_lists() {
    // An empty list in a CRD shows as a permanent diff in GitOps tools.
    for definition in crd::all() {
        let yaml = crd::to_yaml(&definition).unwrap();
        for (number, line) in yaml.lines().enumerate() {
            assert!(
                !line.trim_end().ends_with("[]"),
                "{}:{}: {line}",
                crd::file_name(&definition),
                number + 1
            );
        }
    }
}

#[test]
fn name_length_rules_match_the_name_helpers() {
    use dataworkspace_operator::crd::{Project, project::MAX_NAME_LENGTH};
    use kube::CustomResourceExt;
    let crd = serde_json::to_string(&Project::crd()).unwrap();
    assert!(crd.contains(&format!("size(self.metadata.name) <= {MAX_NAME_LENGTH}")));
    assert!(crd.contains(&format!("Project names are at most {MAX_NAME_LENGTH} characters")));
}

/// Every field a CEL rule reads is bounded (maxLength, maxItems, maxProperties): the API server
/// refuses a CRD whose rules' estimated cost has no bound, and `make crds` cannot tell.
#[test]
fn cel_rules_read_bounded_values() {
    fn walk(schema: &serde_json::Value, at: &str, problems: &mut Vec<String>) {
        let has = |key: &str| schema.get(key).is_some();
        if has("x-kubernetes-validations") {
            let string_like = schema["type"] == "string" || schema["x-kubernetes-int-or-string"] == true;
            if string_like && !has("maxLength") && !has("enum") {
                problems.push(format!("{at}: string without maxLength"));
            }
            if schema["type"] == "array" {
                let items = &schema["items"];
                if !has("maxItems") || (items["type"] == "string" && items.get("maxLength").is_none()) {
                    problems.push(format!("{at}: list without maxItems or items without maxLength"));
                }
            }
            if let Some(values) = schema.get("additionalProperties") {
                let string_values =
                    values["type"] == "string" || values["x-kubernetes-int-or-string"] == true;
                if !has("maxProperties") || (string_values && values.get("maxLength").is_none()) {
                    problems.push(format!("{at}: map without maxProperties or values without maxLength"));
                }
            }
        }
        if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, property) in properties {
                walk(property, &format!("{at}.{name}"), problems);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = schema.get(key).filter(|v| v.is_object()) {
                walk(inner, &format!("{at}[]"), problems);
            }
        }
    }
    let mut problems = Vec::new();
    for definition in crd::all() {
        let schema = serde_json::to_value(definition.spec.versions[0].schema.as_ref().unwrap()).unwrap();
        walk(&schema["openAPIV3Schema"], &crd::file_name(&definition), &mut problems);
    }
    assert!(problems.is_empty(), "unbounded values under CEL rules:\n{}", problems.join("\n"));
}

fn project_spec_schema() -> serde_json::Value {
    use dataworkspace_operator::crd::Project;
    use kube::CustomResourceExt;
    let crd = Project::crd();
    let schema = serde_json::to_value(crd.spec.versions[0].schema.as_ref().unwrap()).unwrap();
    schema["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// `podOverrides` is an allow-list: unknown fields are kept through pruning so that its rule can
/// refuse them, the rule counts exactly the declared fields, and widening the list is a decision
/// this test records.
#[test]
fn pod_overrides_refuse_every_field_they_do_not_declare() {
    use dataworkspace_operator::crd::project::POD_OVERRIDES_RULE;
    let schema = &project_spec_schema()["properties"]["podOverrides"];
    assert_eq!(
        schema["x-kubernetes-preserve-unknown-fields"], true,
        "unknown fields would be pruned, not refused"
    );
    let rules: Vec<&str> = schema["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, [POD_OVERRIDES_RULE]);

    let properties = schema["properties"].as_object().unwrap();
    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "affinity",
            "annotations",
            "labels",
            "nodeSelector",
            "priorityClassName",
            "tolerations",
            "topologySpreadConstraints"
        ],
        "podOverrides allow scheduling, labels and annotations only"
    );
    assert_eq!(POD_OVERRIDES_RULE.matches("has(self.").count(), names.len());
    for (name, property) in properties {
        assert!(
            POD_OVERRIDES_RULE.contains(&format!("(has(self.{name}) ? 1 : 0)")),
            "the rule does not count {name}"
        );
        // The API server keeps a `null` only where it is allowed; kept, the rule counts it as an
        // unknown field.
        assert!(property.get("nullable").is_none(), "podOverrides.{name} is nullable");
    }
}

/// Projects and PythonEnvironments never name a Secret: credentials are Workspace `connections`
/// and `secrets` entries, named by the Project.
#[test]
fn projects_and_environments_reference_no_secret() {
    fn walk(schema: &serde_json::Value, at: &str, problems: &mut Vec<String>) {
        if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, property) in properties {
                if name.to_ascii_lowercase().contains("secret") {
                    problems.push(format!("{at}.{name}"));
                }
                walk(property, &format!("{at}.{name}"), problems);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(inner) = schema.get(key).filter(|v| v.is_object()) {
                walk(inner, &format!("{at}[]"), problems);
            }
        }
    }
    use dataworkspace_operator::crd::PythonEnvironment;
    use kube::CustomResourceExt;
    let mut problems = Vec::new();
    walk(&project_spec_schema(), "Project.spec", &mut problems);
    let environment = PythonEnvironment::crd();
    let schema = serde_json::to_value(environment.spec.versions[0].schema.as_ref().unwrap()).unwrap();
    walk(&schema["openAPIV3Schema"]["properties"]["spec"], "PythonEnvironment.spec", &mut problems);
    assert!(problems.is_empty(), "fields that name Secrets:\n{}", problems.join("\n"));
}
