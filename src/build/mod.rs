//! Pure builders shared by the controllers and runtimes: object metadata, Pod Security
//! `restricted` settings, the workspace environment, Jupyter settings, workload pieces and the Git
//! checkout. No client, no clock, no randomness.

pub mod access;
pub mod children;
pub mod env;
pub mod gateway;
pub mod git;
pub mod jupyter;
pub mod pod;
pub mod python_env;
pub mod workload;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::names::{LABEL_WORKSPACE, labels};

/// The owner reference of a child to its custom resource (controller, blocks owner deletion).
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a child object: name, namespace, the standard labels plus the workspace label, and
/// the owner reference.
pub fn child_meta(
    name: &str,
    namespace: Option<&str>,
    app_labels: BTreeMap<String, String>,
    workspace: &str,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    let mut all = app_labels;
    all.insert(LABEL_WORKSPACE.into(), workspace.into());
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(str::to_string),
        labels: Some(all),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Standard labels of a workspace-level object.
pub fn workspace_labels(workspace: &str, component: &str) -> BTreeMap<String, String> {
    labels("workspace", workspace, component)
}
