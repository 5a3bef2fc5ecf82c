//! A Notebook's status, from the StatefulSet the API server holds.

use super::APP;
use crate::{
    build::jupyter,
    conditions::Desired,
    controller::children::Applied,
    crd::project::{Endpoint, Phase},
    runtime::{RuntimeStatus, ValidatedProject, component, workload_phase},
};

/// Phase, the server component, its condition and the in-cluster endpoint.
pub fn status(project: &ValidatedProject, applied: &Applied, previous: Option<Phase>) -> RuntimeStatus {
    let desired = if project.stopped { 0 } else { 1 };
    let ready_replicas = applied
        .stateful_sets
        .get(&project.name)
        .filter(|s| s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation)
        .and_then(|s| s.status.as_ref().and_then(|st| st.ready_replicas))
        .unwrap_or(0);
    let server = component("server", desired, ready_replicas);
    let phase = workload_phase(project.stopped, std::slice::from_ref(&server), previous);
    let condition = match phase {
        Phase::Stopped => {
            Desired::yes("Server", "Stopped", "scaled to zero on request; the home volume is kept")
        }
        Phase::Running => Desired::yes("Server", "Ready", "JupyterLab is ready"),
        Phase::Degraded => {
            Desired::no("Server", "Unavailable", "JupyterLab was running and is not ready now")
        }
        _ => Desired::no("Server", "Starting", "JupyterLab is starting"),
    };
    RuntimeStatus {
        phase: Some(phase),
        components: vec![server],
        endpoints: vec![Endpoint {
            name: APP.into(),
            url: format!("http://{}.{}.svc:{}/", project.name, project.namespace, jupyter::PORT),
        }],
        conditions: vec![condition],
        ..RuntimeStatus::default()
    }
}
