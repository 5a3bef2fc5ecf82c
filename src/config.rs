//! Operator-wide settings, from `run`'s flags.

use crate::build::access::AccessLayer;

/// Settings that shape what the controllers build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// When set, each team is also bound as the group `<prefix><team>` (for clusters whose
    /// authentication supplies team groups).
    pub team_group_prefix: Option<String>,
    /// The access layer: how web UIs are exposed outside the cluster, each behind its own
    /// authenticating proxy. Without it every UI stays in-cluster and keeps its own
    /// authentication.
    pub access: Option<AccessLayer>,
    /// When set, every username (except ServiceAccounts) must start with it: the cluster's OIDC
    /// username prefix. Users without it are not bound.
    pub username_prefix: Option<String>,
    /// Address ranges workspaces may never reach, in addition to the link-local range of the
    /// cloud metadata services (for example the pod and service ranges of the cluster).
    pub egress_deny_cidrs: Vec<String>,
    /// Delete RoleBindings in workspace namespaces that the operator did not make (they are
    /// always reported in status).
    pub remove_foreign_role_bindings: bool,
    /// Every namespace the operator creates starts with it (empty: no constraint).
    pub namespace_prefix: String,
    /// The image Streamlit apps from Git run in when neither the Project nor its Python
    /// environment names one (it must contain Streamlit).
    pub streamlit_image: Option<String>,
    /// Where Spark images come from when a Project names none: `<repository>:<version>`
    /// (`apache/spark` when unset), for clusters that pull through a mirror.
    pub spark_image_repository: Option<String>,
    /// Where Airflow images come from when a Project names none: `<repository>:<version>`
    /// (`apache/airflow` when unset), for clusters that pull through a mirror.
    pub airflow_image_repository: Option<String>,
}
