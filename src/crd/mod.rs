//! The four custom resources of `dataworkspace.io/v1alpha1`.
//!
//! Types only: specs, statuses, defaults, printer columns and CEL rules. No client calls live
//! here; the controllers in [`crate::controller`] read these types.

// `#[kube(printcolumn(..))]` repeats `type_ = "string"` across columns, which this lint
// mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod project;
pub mod python_environment;
pub mod user;
pub mod workspace;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use project::{Project, ProjectSpec, ProjectStatus};
pub use python_environment::{PythonEnvironment, PythonEnvironmentSpec, PythonEnvironmentStatus};
pub use user::{User, UserSpec, UserStatus};
pub use workspace::{Workspace, WorkspaceSpec, WorkspaceStatus};

/// API group of every kind.
pub const GROUP: &str = "dataworkspace.io";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// The category all kinds share: `kubectl get dataworkspace` lists them all.
pub const CATEGORY: &str = "dataworkspace";

/// All CustomResourceDefinitions, ordered by name (as `crds/` lists them).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Project::crd(), PythonEnvironment::crd(), User::crd(), Workspace::crd()]
}

/// The file name under `crds/` for a CRD: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// One CRD as YAML, as committed under `crds/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(crd)
}

/// All CRDs as one multi-document YAML stream (what `dataworkspace-operator crd` prints).
pub fn all_yaml() -> Result<String, serde_yaml::Error> {
    let docs = all().iter().map(to_yaml).collect::<Result<Vec<_>, _>>()?;
    Ok(docs.iter().map(|d| format!("---\n{d}")).collect::<String>())
}
