//! The access layer's objects on the real control plane: with the Gateway API's HTTPRoute
//! definition installed, the API server accepts everything the builder makes for one exposed
//! UI, the proxy's pod passes Pod Security `restricted`, and every route names only the proxy.

use std::{collections::BTreeMap, path::Path, process::Command};

use dataworkspace_operator::build::access::{AccessLayer, Exposure, Gateway, Owner, build};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Pod, Secret, Service},
        networking::v1::{Ingress, NetworkPolicy},
    },
};
use kube::{
    Api, Resource,
    api::{ListParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_until},
};

/// The directory of the tools `hack/build-tools.sh access` builds (cached).
fn tools() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/build-tools.sh");
    let output = Command::new(script).arg("access").output().context("running hack/build-tools.sh access")?;
    ensure!(
        output.status.success(),
        "hack/build-tools.sh access failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_string())
}

async fn create<K>(api: &Api<K>, object: &K) -> TestResult
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.create(&PostParams::default(), object)
        .await
        .map(drop)
        .map_err(|e| format!("the API server refused {} {name}: {e}", K::kind(&())))
}

pub async fn access_objects_are_accepted_by_the_api_server(scope: Scope) -> TestResult {
    let routes = format!("{}/gateway-api-httproutes.yaml", tools()?);
    kubectl(&["apply", "--server-side", "-f", &routes])?;
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=60s",
    ])?;

    let access = scope.namespace("access").await?;
    let tenant = scope.namespace("tenant").await?;
    kubectl(&["label", "namespace", &access, "pod-security.kubernetes.io/enforce=restricted"])?;
    let layer = AccessLayer {
        namespace: access.clone(),
        issuer_url: "https://login.example.com/realms/data".into(),
        client_id: "dataworkspace".into(),
        client_secret: "oidc-client".into(),
        image: "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6".into(),
        ingress_class: Some("public".into()),
        tls_secret: Some("wildcard-tls".into()),
        gateway: Some(Gateway {
            namespace: "gateways".into(),
            name: "public".into(),
            listener: Some("https".into()),
        }),
    };
    let exposure = Exposure {
        owner: Owner { namespace: tenant.clone(), uid: "uid-e2e".into() },
        ui: "studio".into(),
        host: "e2e.data.example.com".into(),
        service: "studio".into(),
        port: 8888,
        pod_labels: BTreeMap::from([("app.kubernetes.io/component".into(), "studio".into())]),
        allowed: vec!["alice@example.com".into()],
    };
    let objects = build(&layer, &exposure);
    let client = scope.env.client.clone();

    create(&Api::<ConfigMap>::namespaced(client.clone(), &access), &objects.emails).await?;
    // What the apply layer generates from the GeneratedSecret.
    let cookie = Secret {
        metadata: objects.cookie.metadata.clone(),
        data: Some(BTreeMap::from([(
            "cookie-secret".into(),
            ByteString(b"0123456789abcdef0123456789abcdef".to_vec()),
        )])),
        ..Secret::default()
    };
    create(&Api::<Secret>::namespaced(client.clone(), &access), &cookie).await?;
    create(&Api::<Service>::namespaced(client.clone(), &access), &objects.service).await?;
    create(&Api::<Deployment>::namespaced(client.clone(), &access), &objects.deployment).await?;
    create(
        &Api::<Ingress>::namespaced(client.clone(), &access),
        objects.ingress.as_ref().ok_or("no Ingress")?,
    )
    .await?;
    let route = objects.route.as_ref().ok_or("no HTTPRoute")?;
    create(&Api::namespaced(client.clone(), &access), route).await?;
    create(&Api::<NetworkPolicy>::namespaced(client.clone(), &tenant), &objects.network_policy).await?;

    // The proxy's pod is admitted in a namespace enforcing `restricted` (the ReplicaSet could
    // not create it otherwise).
    let pods: Api<Pod> = Api::namespaced(client.clone(), &access);
    wait_until(WAIT, "the proxy's pod", || async {
        Ok(!pods.list(&ListParams::default()).await.context("listing pods")?.items.is_empty())
    })
    .await?;

    // What the API server stored routes to the proxy's Service only.
    let stored = kubectl(&[
        "get",
        "httproute",
        "-n",
        &access,
        "-o",
        "jsonpath={.items[*].spec.rules[*].backendRefs[*].name}",
    ])?;
    ensure!(
        stored.trim() == objects.service.metadata.name.as_deref().unwrap_or_default(),
        "HTTPRoute backends: {stored}"
    );
    let stored = kubectl(&[
        "get",
        "ingress",
        "-n",
        &access,
        "-o",
        "jsonpath={.items[*].spec.rules[*].http.paths[*].backend.service.name}",
    ])?;
    ensure!(
        stored.trim() == objects.service.metadata.name.as_deref().unwrap_or_default(),
        "Ingress backends: {stored}"
    );
    Ok(())
}
