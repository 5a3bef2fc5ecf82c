//! Pod Security `restricted`: the settings every pod and container the operator creates carries.

use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext};

/// Pod-level settings: non-root with the given IDs, RuntimeDefault seccomp.
pub fn pod_security(uid: i64, gid: i64, fs_group: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(gid),
        fs_group,
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..PodSecurityContext::default()
    }
}

/// Container-level settings: no privilege escalation, all capabilities dropped, and the root
/// filesystem read-only where the image allows it.
pub fn container_security(uid: i64, read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        read_only_root_filesystem: Some(read_only_root),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
        ..SecurityContext::default()
    }
}

/// Merges a Project's allow-listed pod overrides (scheduling, priority, extra labels and
/// annotations) into a pod template. The operator's own labels win over an override's; the
/// admission rules already refuse reserved keys. Security settings are not overridable.
pub fn apply_overrides(
    template: &mut k8s_openapi::api::core::v1::PodTemplateSpec,
    overrides: &crate::crd::project::PodOverrides,
) {
    let metadata = template.metadata.get_or_insert_with(Default::default);
    for (map, extra) in
        [(&mut metadata.labels, &overrides.labels), (&mut metadata.annotations, &overrides.annotations)]
    {
        if extra.is_empty() {
            continue;
        }
        let mut merged = extra.clone();
        merged.extend(map.take().unwrap_or_default());
        *map = Some(merged);
    }
    let Some(spec) = template.spec.as_mut() else { return };
    if !overrides.node_selector.is_empty() {
        spec.node_selector = Some(overrides.node_selector.clone());
    }
    if !overrides.tolerations.is_empty() {
        spec.tolerations = Some(overrides.tolerations.clone());
    }
    if overrides.affinity.is_some() {
        spec.affinity = overrides.affinity.clone();
    }
    if !overrides.topology_spread_constraints.is_empty() {
        spec.topology_spread_constraints = Some(overrides.topology_spread_constraints.clone());
    }
    if overrides.priority_class_name.is_some() {
        spec.priority_class_name = overrides.priority_class_name.clone();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    /// Asserts the `restricted` profile's rules that a pod spec controls.
    pub fn assert_restricted(spec: &PodSpec) {
        let pod = spec.security_context.as_ref().expect("pod securityContext");
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.seccomp_profile.as_ref().map(|s| s.type_.as_str()), Some("RuntimeDefault"));
        assert!(spec.host_network.is_none() && spec.host_pid.is_none() && spec.host_ipc.is_none());
        for volume in spec.volumes.iter().flatten() {
            assert!(volume.host_path.is_none(), "hostPath volume {}", volume.name);
        }
        for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
            let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{}: no securityContext", c.name));
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.privileged, None, "{}", c.name);
            let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone()).unwrap_or_default();
            assert_eq!(drop, vec!["ALL".to_string()], "{}", c.name);
            assert!(c.ports.iter().flatten().all(|p| p.host_port.is_none()), "{}", c.name);
        }
    }
}
