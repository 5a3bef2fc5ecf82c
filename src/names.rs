//! Names, labels and their limits. Every derived object name and every label set comes from a
//! function here, so the limits are checked in one place.

use std::collections::BTreeMap;

/// The field manager of every server-side apply, and the Event reporter.
pub const MANAGER: &str = "dataworkspace-operator";

/// `app.kubernetes.io/name`: what is running (for example `airflow`).
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`: which custom resource it belongs to.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/component`: which part (for example `scheduler`).
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by`: always [`MANAGER`].
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The workspace an object belongs to.
pub const LABEL_WORKSPACE: &str = "dataworkspace.io/workspace";
/// On a workspace namespace: the UID of the Workspace it was created for. A namespace is used
/// only by the Workspace whose name and UID it carries (or that it was handed over to).
pub const LABEL_WORKSPACE_UID: &str = "dataworkspace.io/workspace-uid";
/// On an existing namespace, set by a cluster admin: hand this namespace over to the named
/// Workspace. The operator never takes over a namespace without it.
pub const ANNOTATION_ADOPT: &str = "dataworkspace.io/adopt";

/// Longest DNS label (namespaces, Services, label values).
pub const DNS_LABEL_MAX: usize = 63;

/// Prefix of a Workspace's default namespace.
pub const WORKSPACE_NAMESPACE_PREFIX: &str = "dw-";

/// The namespace a Workspace owns: `spec.namespace`, or `dw-<name>`.
pub fn workspace_namespace(workspace_name: &str, spec_namespace: Option<&str>) -> String {
    spec_namespace
        .map(str::to_string)
        .unwrap_or_else(|| format!("{WORKSPACE_NAMESPACE_PREFIX}{workspace_name}"))
}

/// Name of an object a custom resource owns: `<owner>-<component>`.
pub fn child_name(owner: &str, component: &str) -> String {
    format!("{owner}-{component}")
}

/// The standard labels of an object the operator creates.
pub fn labels(app: &str, instance: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), app.to_string()),
        (LABEL_INSTANCE.to_string(), instance.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
    ])
}

/// Checks that `value` is a DNS label (RFC 1123): at most 63 lowercase letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn check_dns_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > DNS_LABEL_MAX {
        return Err(format!(
            "'{value}' is {} characters long; at most {DNS_LABEL_MAX} are allowed",
            value.len()
        ));
    }
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !value.chars().all(valid_char) {
        return Err(format!("'{value}' may contain only lowercase letters, digits and '-'"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(format!("'{value}' must start and end with a letter or digit"));
    }
    Ok(())
}

/// Checks that a derived name fits its limit, naming the source of the name when it does not.
pub fn check_length(derived: &str, max: usize, from: &str) -> Result<(), String> {
    if derived.len() > max {
        return Err(format!(
            "the derived name '{derived}' is {} characters long, over the limit of {max}; shorten {from}",
            derived.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::project::MAX_NAME_LENGTH;
    use rstest::rstest;

    #[test]
    fn workspace_namespace_defaults_to_prefix() {
        assert_eq!(workspace_namespace("analytics", None), "dw-analytics");
        assert_eq!(workspace_namespace("analytics", Some("team-a")), "team-a");
    }

    #[test]
    fn longest_workspace_name_gives_a_valid_namespace() {
        // The Workspace CRD allows names up to 60 characters (a CEL rule).
        let name = "a".repeat(60);
        assert_eq!(check_dns_label(&workspace_namespace(&name, None)), Ok(()));
        let too_long = "a".repeat(61);
        assert!(check_dns_label(&workspace_namespace(&too_long, None)).is_err());
    }

    #[test]
    fn longest_project_name_leaves_room_for_components_and_pod_suffixes() {
        // StatefulSet pods add `-<ordinal>` and a controller-revision-hash label of
        // `<name>-<10 chars>`; the longest component name we plan is `dag-processor`.
        let project = "p".repeat(MAX_NAME_LENGTH);
        let sts = child_name(&project, "dag-processor");
        assert_eq!(check_length(&format!("{sts}-0123456789"), DNS_LABEL_MAX, "the Project name"), Ok(()));
    }

    #[rstest]
    #[case("analytics", true)]
    #[case("a-1", true)]
    #[case("1abc", true)]
    #[case("", false)]
    #[case("-a", false)]
    #[case("a-", false)]
    #[case("Upper", false)]
    #[case("under_score", false)]
    #[case(&"x".repeat(63), true)]
    #[case(&"x".repeat(64), false)]
    fn dns_labels(#[case] value: &str, #[case] ok: bool) {
        assert_eq!(check_dns_label(value).is_ok(), ok, "{value}");
    }

    #[test]
    fn length_error_names_the_source() {
        let err = check_length("abcdef", 3, "the Project name").unwrap_err();
        assert!(err.contains("shorten the Project name"), "{err}");
        assert!(err.contains("6 characters"), "{err}");
    }

    #[test]
    fn standard_labels() {
        let l = labels("airflow", "etl", "scheduler");
        assert_eq!(l[LABEL_MANAGED_BY], MANAGER);
        assert_eq!(l[LABEL_COMPONENT], "scheduler");
        assert_eq!(l.len(), 4);
    }
}
