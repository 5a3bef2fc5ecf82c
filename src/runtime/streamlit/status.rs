//! A Streamlit app's status, from the Deployment the API server holds.

use super::{APP, PORT, Streamlit};
use crate::{
    conditions::Desired,
    controller::children::Applied,
    crd::project::{Endpoint, Phase},
    runtime::{RuntimeStatus, ValidatedProject, component, replica_failure, workload_phase},
};

/// Phase, the app component, its condition and the in-cluster endpoint (the controller adds the
/// public one when the access layer exposes the app).
pub fn status(
    project: &ValidatedProject,
    streamlit: &Streamlit,
    applied: &Applied,
    previous: Option<Phase>,
) -> RuntimeStatus {
    let desired = if project.stopped { 0 } else { streamlit.replicas };
    let deployment = applied.deployments.get(&project.name);
    let ready_replicas = deployment
        .filter(|d| d.status.as_ref().and_then(|st| st.observed_generation) == d.metadata.generation)
        .and_then(|d| d.status.as_ref().and_then(|st| st.ready_replicas))
        .unwrap_or(0);
    let app = component(APP, desired, ready_replicas);
    let phase = if desired == 0 && !project.stopped {
        Phase::Stopped
    } else {
        workload_phase(project.stopped, std::slice::from_ref(&app), previous)
    };
    let condition = match phase {
        Phase::Stopped => Desired::yes("App", "Stopped", "scaled to zero"),
        Phase::Running => {
            Desired::yes("App", "Ready", format!("{ready_replicas} of {desired} replicas ready"))
        }
        _ => match replica_failure(deployment) {
            Some(why) => {
                Desired::no("App", "PodsRejected", format!("the app's pods cannot be created: {why}"))
            }
            None if phase == Phase::Degraded => {
                Desired::no("App", "Unavailable", format!("{ready_replicas} of {desired} replicas ready"))
            }
            None => Desired::no("App", "Starting", "the app is starting"),
        },
    };
    RuntimeStatus {
        phase: Some(phase),
        components: vec![app],
        endpoints: vec![Endpoint {
            name: APP.into(),
            url: format!("http://{}.{}.svc:{PORT}/", project.name, project.namespace),
        }],
        conditions: vec![condition],
        ..RuntimeStatus::default()
    }
}
