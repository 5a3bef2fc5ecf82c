//! The Streamlit runtime: an app from the project's repository (or an image that holds it), run
//! by a Deployment with probes on Streamlit's health endpoint, reachable in the cluster or,
//! with a host, only through the access layer with the project's own access list. Validation
//! here; the objects in `build`, status in `status`.

mod build;
mod status;

pub use build::{HOME, PORT, app_args, build};
pub use status::status;

use crate::{
    config::Config,
    crd::Project,
    error::{Error, Result},
    runtime::ValidatedProject,
};

/// The app label of a Streamlit app's objects.
pub const APP: &str = "streamlit";
/// The app file when `spec.source.path` does not name one.
pub const DEFAULT_APP_FILE: &str = "app.py";

/// A Streamlit app, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Streamlit {
    /// The image the project names, if any (else the environment's or the operator's).
    pub image: Option<String>,
    /// Replicas while running.
    pub replicas: i32,
    /// The app file inside the checkout (`<repository>/<path>`), when the app comes from Git;
    /// `None` runs the image's own command.
    pub app: Option<String>,
    /// The public host, if the app is to be exposed.
    pub host: Option<String>,
}

/// Validates the `streamlit` section of a Project. The path was checked by the schema
/// (relative, no `..`, not an option); it is checked again here.
pub fn validate(project: &Project) -> Result<Streamlit> {
    let spec = project.spec.streamlit.clone().ok_or_else(|| Error::InvalidSpec {
        reason: "MissingRuntimeSection",
        message: "spec.streamlit must be set when spec.runtime is Streamlit".into(),
    })?;
    let app = match &project.spec.source {
        Some(source) => {
            let path = source.path.clone().unwrap_or_else(|| DEFAULT_APP_FILE.into());
            if path.starts_with(['/', '-'])
                || path.split('/').any(|s| s == "..")
                || path.chars().any(char::is_control)
            {
                return Err(Error::InvalidSpec {
                    reason: "InvalidAppPath",
                    message: format!(
                        "spec.source.path {path:?} must be a relative path inside the repository"
                    ),
                });
            }
            Some(format!("{}/{}", source.repository, path.trim_end_matches('/')))
        }
        None if spec.image.is_some() => None,
        None => {
            return Err(Error::InvalidSpec {
                reason: "NoApp",
                message: "a Streamlit project needs its app: spec.source (a repository and the app's path) or spec.streamlit.image (an image that runs it)".into(),
            });
        }
    };
    Ok(Streamlit { image: spec.image, replicas: spec.replicas, app, host: spec.host })
}

/// The image the app runs in: the project's, else the operator's default (a Python
/// environment built as an image replaces it when the project names one).
pub fn image(streamlit: &Streamlit, config: &Config) -> Option<String> {
    streamlit.image.clone().or_else(|| config.streamlit_image.clone())
}

/// Checks what validation alone cannot: that some image holds Streamlit.
pub fn check(project: &ValidatedProject, streamlit: &Streamlit, config: &Config) -> Result<()> {
    let from_environment = project.python_environment.as_ref().is_some_and(|e| e.image.is_some());
    if image(streamlit, config).is_none() && !from_environment {
        return Err(Error::InvalidSpec {
            reason: "NoStreamlitImage",
            message: "no image to run the app in: set spec.streamlit.image, name a PythonEnvironment built as an image (strategy Image) that installs streamlit, or run the operator with --streamlit-image".into(),
        });
    }
    Ok(())
}
