//! Operator-wide settings, from `run`'s flags.

/// Settings that shape what the controllers build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Namespace of the cluster's ingress controller; its pods may reach every workspace.
    pub ingress_namespace: Option<String>,
    /// When set, each team is also bound as the group `<prefix><team>` (for clusters whose
    /// authentication supplies team groups).
    pub team_group_prefix: Option<String>,
}
