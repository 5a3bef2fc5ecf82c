//! The control plane behaves like a real cluster: nodes, workloads, garbage collection, RBAC
//! and Pod Security admission.

use k8s_openapi::api::{
    apps::v1::{Deployment, DeploymentSpec},
    batch::v1::{Job, JobSpec},
    core::v1::{
        Capabilities, ConfigMap, Container, Node, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
        SeccompProfile, SecurityContext,
    },
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use std::collections::BTreeMap;

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_for, wait_until},
};

/// A pod spec that passes Pod Security `restricted`.
fn restricted_pod(restart_policy: &str) -> PodSpec {
    PodSpec {
        restart_policy: Some(restart_policy.into()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
            ..Default::default()
        }),
        containers: vec![Container {
            name: "main".into(),
            image: Some("registry.example.com/app:1.0".into()),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn template(app: &str, restart_policy: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".into(), app.into())])),
            ..Default::default()
        }),
        spec: Some(restricted_pod(restart_policy)),
    }
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), name.into())])),
                ..Default::default()
            },
            template: template(name, "Always"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub async fn nodes_are_ready(scope: Scope) -> TestResult {
    let nodes = Api::<Node>::all(scope.env.client.clone())
        .list(&ListParams::default())
        .await
        .context("listing nodes")?;
    let ready = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    ensure!(ready >= 2, "expected at least 2 Ready nodes, found {ready} of {}", nodes.items.len());
    // The same through the real client users use.
    let out = kubectl(&["get", "nodes", "--no-headers"])?;
    ensure!(
        out.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count() >= 2,
        "kubectl get nodes: {out}"
    );
    Ok(())
}

pub async fn deployment_becomes_ready(scope: Scope) -> TestResult {
    let ns = scope.namespace("deploy").await?;
    let api: Api<Deployment> = Api::namespaced(scope.env.client.clone(), &ns);
    api.create(&PostParams::default(), &deployment("web", 2)).await.context("creating a Deployment")?;
    wait_for(&api, "web", "readyReplicas == replicas == 2", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.ready_replicas == Some(2) && s.replicas == Some(2))
    })
    .await?;
    Ok(())
}

pub async fn job_completes(scope: Scope) -> TestResult {
    let ns = scope.namespace("job").await?;
    let api: Api<Job> = Api::namespaced(scope.env.client.clone(), &ns);
    let job = Job {
        metadata: ObjectMeta { name: Some("once".into()), ..Default::default() },
        spec: Some(JobSpec {
            template: template("once", "Never"),
            backoff_limit: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create(&PostParams::default(), &job).await.context("creating a Job")?;
    wait_for(&api, "once", "the Job to complete", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()).is_some_and(|s| s.succeeded == Some(1))
    })
    .await?;
    Ok(())
}

pub async fn deleting_an_owner_collects_its_dependents(scope: Scope) -> TestResult {
    let ns = scope.namespace("gc").await?;
    let client = scope.env.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let owner = deployments
        .create(&PostParams::default(), &deployment("owner", 1))
        .await
        .context("creating a Deployment")?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let dependent = ConfigMap {
        metadata: ObjectMeta {
            name: Some("dependent".into()),
            owner_references: Some(vec![owner.controller_owner_ref(&()).ok_or("no owner reference")?]),
            ..Default::default()
        },
        ..Default::default()
    };
    config_maps.create(&PostParams::default(), &dependent).await.context("creating the dependent")?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_until(WAIT, "the Deployment's pod", || {
        let pods = pods.clone();
        async move {
            Ok(!pods
                .list(&ListParams::default().labels("app=owner"))
                .await
                .context("listing pods")?
                .items
                .is_empty())
        }
    })
    .await?;

    deployments.delete("owner", &DeleteParams::background()).await.context("deleting the owner")?;
    wait_until(WAIT, "the garbage collector to remove the dependent ConfigMap and the pods", || {
        let (config_maps, pods) = (config_maps.clone(), pods.clone());
        async move {
            let cm_gone = config_maps.get_opt("dependent").await.context("get")?.is_none();
            let pods_gone =
                pods.list(&ListParams::default().labels("app=owner")).await.context("list")?.items.is_empty();
            Ok(cm_gone && pods_gone)
        }
    })
    .await
}

pub async fn strangers_cannot_create_pods(_scope: Scope) -> TestResult {
    // `kubectl auth can-i` answers exactly "no" (exit 1); any other failure is an error, not a no.
    ensure!(
        !crate::workspaces::can_i("someone", "create", "pods", Some("default"))?,
        "an unknown user may create pods"
    );
    let admin = kubectl(&["auth", "can-i", "create", "pods", "-n", "default"])?;
    ensure!(admin.trim() == "yes", "the admin kubeconfig should be allowed: {admin}");
    Ok(())
}

pub async fn restricted_namespace_rejects_privileged_pods(scope: Scope) -> TestResult {
    let ns = scope.namespace("pss").await?;
    kubectl(&["label", "namespace", &ns, "pod-security.kubernetes.io/enforce=restricted"])?;
    let pods: Api<Pod> = Api::namespaced(scope.env.client.clone(), &ns);
    let mut privileged = Pod {
        metadata: ObjectMeta { name: Some("privileged".into()), ..Default::default() },
        spec: Some(restricted_pod("Always")),
        ..Default::default()
    };
    if let Some(spec) = privileged.spec.as_mut() {
        spec.containers[0].security_context =
            Some(SecurityContext { privileged: Some(true), ..Default::default() });
    }
    let error = pods
        .create(&PostParams::default(), &privileged)
        .await
        .err()
        .ok_or("a privileged pod was admitted")?;
    ensure!(error.to_string().contains("violates PodSecurity \"restricted"), "unexpected rejection: {error}");
    let compliant = Pod {
        metadata: ObjectMeta { name: Some("compliant".into()), ..Default::default() },
        spec: Some(restricted_pod("Always")),
        ..Default::default()
    };
    let created = pods
        .create(&PostParams::default(), &compliant)
        .await
        .context("a restricted-compliant pod was refused")?;
    ensure!(created.name_any() == "compliant", "unexpected pod {}", created.name_any());
    Ok(())
}
