//! Pieces of workloads shared by every runtime: probes, persistent home volumes, Services.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, Probe, Service, ServicePort,
            ServiceSpec, VolumeResourceRequirements,
        },
        networking::v1::{
            HTTPIngressPath, HTTPIngressRuleValue, IngressBackend, IngressRule, IngressServiceBackend,
            ServiceBackendPort,
        },
    },
    apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

/// An HTTP GET probe on a named port.
pub fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Probe::default()
    }
}

/// A liveness probe: the same check, tolerant enough that a busy server is not restarted.
pub fn liveness(path: &str, port: &str) -> Probe {
    Probe {
        period_seconds: Some(30),
        failure_threshold: Some(6),
        timeout_seconds: Some(10),
        ..http_probe(path, port)
    }
}

/// An Ingress rule sending every path of `host` to a named port of a Service.
pub fn ingress_rule(host: &str, service: &str, port: &str) -> IngressRule {
    IngressRule {
        host: Some(host.into()),
        http: Some(HTTPIngressRuleValue {
            paths: vec![HTTPIngressPath {
                path: Some("/".into()),
                path_type: "Prefix".into(),
                backend: IngressBackend {
                    service: Some(IngressServiceBackend {
                        name: service.into(),
                        port: Some(ServiceBackendPort { name: Some(port.into()), number: None }),
                    }),
                    ..IngressBackend::default()
                },
            }],
        }),
    }
}

/// A volume claim template of a StatefulSet (the claim outlives the StatefulSet: it holds user
/// data).
pub fn claim_template(name: &str, size: &Quantity, storage_class: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage_class.map(str::to_string),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), size.clone())])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// A ClusterIP Service selecting `selector`, with named ports pointing at the same-named
/// container ports.
pub fn service(metadata: ObjectMeta, selector: BTreeMap<String, String>, ports: &[(&str, i32)]) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            // Set, so a changed type is put back: only the authenticating proxy exposes a UI.
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port)| ServicePort {
                        name: Some((*name).into()),
                        port: *port,
                        target_port: Some(IntOrString::String((*name).into())),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service without a cluster IP: its name resolves to the pods themselves. The governing
/// Service of a StatefulSet, and one virtual IP fewer per server (a cluster's service range is
/// small: a /24 holds 254).
pub fn headless(mut service: Service) -> Service {
    if let Some(spec) = service.spec.as_mut() {
        spec.cluster_ip = Some("None".into());
    }
    service
}

/// An empty directory volume.
pub fn empty_dir(name: &str) -> k8s_openapi::api::core::v1::Volume {
    k8s_openapi::api::core::v1::Volume {
        name: name.into(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

/// A volume of every key of a ConfigMap.
pub fn config_map_volume(name: &str, config_map: &str) -> k8s_openapi::api::core::v1::Volume {
    k8s_openapi::api::core::v1::Volume {
        name: name.into(),
        config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
            name: config_map.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
