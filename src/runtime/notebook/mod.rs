//! The Notebook runtime: a JupyterLab server per Project, on a persistent home volume, with the
//! project's repository checked out, the workspace environment, idle kernels culled, and its own
//! generated token. Validation here; the objects in `build`, status in `status`.

mod build;
mod status;

pub use build::{CONFIG_DIR, CONFIG_FILE, HOME_VOLUME, TOKEN_KEY, WORK_DIR, build, settings};
pub use status::status;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::{
    build::jupyter::{self, Idle},
    controller::workspace::validate::parse_timeout,
    crd::Project,
    error::{Error, Result},
};

/// The app label of a Notebook's objects.
pub const APP: &str = "notebook";
/// Default size of the home volume.
pub const DEFAULT_STORAGE: &str = "10Gi";

/// A Notebook, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Notebook {
    /// JupyterLab image.
    pub image: String,
    /// Home volume size.
    pub storage_size: Quantity,
    /// Home volume StorageClass.
    pub storage_class: Option<String>,
    /// Idle culling.
    pub idle: Idle,
}

/// Validates the `notebook` section of a Project.
pub fn validate(project: &Project) -> Result<Notebook> {
    let spec = project.spec.notebook.clone().ok_or_else(|| Error::InvalidSpec {
        reason: "MissingRuntimeSection",
        message: "spec.notebook must be set when spec.runtime is Notebook".into(),
    })?;
    let cull_after = match spec.idle_timeout.as_deref() {
        Some(value) => parse_timeout("spec.notebook.idleTimeout", value)?,
        None => 0,
    };
    Ok(Notebook {
        image: spec.image.unwrap_or_else(|| jupyter::IMAGE.into()),
        storage_size: spec
            .storage
            .as_ref()
            .and_then(|s| s.size.clone())
            .unwrap_or_else(|| Quantity(DEFAULT_STORAGE.into())),
        storage_class: spec.storage.as_ref().and_then(|s| s.storage_class_name.clone()),
        // Kernels and terminals are culled; the server itself keeps running (a server that
        // exits would only be restarted): `stopped: true` scales it to zero.
        idle: Idle { cull_after, shutdown_after: 0 },
    })
}
