//! The access layer on the real control plane, driven by the operator: without the platform's
//! settings a Studio stays in-cluster with its own authentication; with them each UI gets its
//! own proxy in the access namespace (passing Pod Security `restricted`), every route (Ingress
//! and HTTPRoute) names only a proxy, a removed member leaves the list without any pod
//! restarting, a host already exposed is refused, and deleting the Workspace withdraws it all.

use std::{collections::BTreeMap, path::Path, process::Command};

use dataworkspace_operator::{
    build::access::{EMAILS_KEY, LABEL_OWNER_UID},
    crd::{User, Workspace},
};
use k8s_openapi::api::{
    apps::v1::{Deployment, StatefulSet},
    core::v1::{ConfigMap, Pod},
    networking::v1::{Ingress, NetworkPolicy},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_for, wait_until},
    workspaces::{from_yaml, ready},
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

fn studio_reason(w: Option<&Workspace>) -> Option<String> {
    let w = w?;
    let status = w.status.as_ref()?;
    (status.observed_generation == w.metadata.generation)
        .then(|| status.conditions.iter().find(|c| c.type_ == "Studio").map(|c| c.reason.clone()))
        .flatten()
}

/// The names of the pods of a namespace with their UIDs.
async fn pod_uids(api: &Api<Pod>, selector: &str) -> Result<BTreeMap<String, String>, String> {
    let pods = api.list(&ListParams::default().labels(selector)).await.context("listing pods")?;
    Ok(pods
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap_or_default(), p.metadata.uid.unwrap_or_default()))
        .collect())
}

pub async fn the_studio_is_exposed_only_through_its_proxies(scope: Scope) -> TestResult {
    let routes = format!("{}/gateway-api-httproutes.yaml", tools()?);
    kubectl(&["apply", "--server-side", "-f", &routes])?;
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/httproutes.gateway.networking.k8s.io",
        "--timeout=60s",
    ])?;
    let access = scope.namespace("access").await?;
    kubectl(&["label", "namespace", &access, "pod-security.kubernetes.io/enforce=restricted"])?;

    let client = scope.env.client.clone();
    let name = scope.env.unique("expose");
    let ns = format!("dw-{name}");
    scope.involve(&ns);
    let users: Api<User> = Api::all(client.clone());
    for (user, email) in
        [(format!("{name}-a"), "Ann+Data@Example.com"), (format!("{name}-b"), "bob@example.com")]
    {
        let user: User =
            from_yaml(&format!("metadata: {{name: {user}}}\nspec: {{username: {user}, email: {email}}}"))?;
        users.create(&PostParams::default(), &user).await.context("creating a User")?;
    }
    let host = format!("{name}.data.example.com");
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {name}}}\nspec: {{members: [{{user: {name}-a, role: developer}}, {{user: {name}-b, role: developer}}], studio: {{host: {host}, storage: {{size: 1Gi}}}}}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &access);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let ide_args = |sts: &StatefulSet| -> Vec<String> {
        sts.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map_or_else(Vec::new, |p| {
            p.containers
                .iter()
                .filter(|c| c.name == "ide")
                .flat_map(|c| c.args.clone().unwrap_or_default())
                .collect()
        })
    };

    // Without the platform's settings: in-cluster only, with the servers' own authentication.
    let in_cluster =
        wait_for(&workspaces, &name, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    ensure!(studio_reason(Some(&in_cluster)).as_deref() == Some("InClusterOnly"), "{in_cluster:?}");
    let sts = stateful_sets.get("studio").await.context("the Studio")?;
    ensure!(ide_args(&sts).contains(&"--auth=password".to_string()), "{:?}", ide_args(&sts));
    ensure!(
        deployments.list(&ListParams::default()).await.context("list")?.items.is_empty(),
        "a proxy without the layer"
    );
    let uid = in_cluster.metadata.uid.clone().unwrap_or_default();

    // The same operator, now with the access layer (Ingress and Gateway routes).
    scope.env.stop_operator()?;
    let flags = [
        format!("--access-namespace={access}"),
        "--access-domain=data.example.com".to_string(),
        "--access-issuer-url=https://login.example.com/realms/data".to_string(),
        "--access-client-id=dataworkspace".to_string(),
        "--access-client-secret=oidc-client".to_string(),
        "--access-ingress-class=public".to_string(),
        "--access-tls-secret=wildcard-tls".to_string(),
        "--access-gateway=gateways/public/https".to_string(),
    ];
    let configured =
        scope.env.start_operator_with(&flags.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let result = async {
        configured?;
        let exposed = wait_for(&workspaces, &name, "the Studio condition Authenticated", |w: Option<&Workspace>| {
            studio_reason(w).as_deref() == Some("Authenticated")
        })
        .await?;
        let endpoint = exposed.status.as_ref().and_then(|s| s.studio_endpoint.clone());
        ensure!(endpoint == Some(format!("https://{host}/")), "endpoint {endpoint:?}");
        let shown = kubectl(&["get", "workspace", &name, "--no-headers"])?;
        ensure!(shown.contains("Authenticated"), "kubectl get shows: {shown}");

        // Two proxies (JupyterLab and the IDE), their pods admitted under `restricted`.
        let proxies = deployments.list(&ListParams::default().labels(&format!("{LABEL_OWNER_UID}={uid}"))).await.context("list")?;
        ensure!(proxies.items.len() == 2, "{} proxies", proxies.items.len());
        let proxy_services: Vec<String> = proxies.items.iter().filter_map(|d| d.metadata.name.clone()).collect();
        // This Workspace's routes (other tests' projects, the examples' Airflow UI among them,
        // may be exposed too).
        let owned = format!("{LABEL_OWNER_UID}={uid}");
        let stored = kubectl(&["get", "ingress", "-n", &access, "-l", &owned, "-o", "jsonpath={range .items[*]}{.spec.rules[*].host}={.spec.rules[*].http.paths[*].backend.service.name} {end}"])?;
        let mut routed: Vec<&str> = stored.split_whitespace().collect();
        routed.sort();
        let mut expected: Vec<String> = proxy_services.iter().map(|s| {
            let h = if s.contains("-studio-ide-") { format!("{name}-ide.data.example.com") } else { host.clone() };
            format!("{h}={s}")
        }).collect();
        expected.sort();
        ensure!(routed == expected, "Ingress host=backend: {routed:?}, expected {expected:?}");
        let stored = kubectl(&["get", "httproute", "-n", &access, "-l", &owned, "-o", "jsonpath={.items[*].spec.rules[*].backendRefs[*].name}"])?;
        let mut backends: Vec<&str> = stored.split_whitespace().collect();
        backends.sort();
        let mut services = proxy_services.clone();
        services.sort();
        ensure!(backends == services, "HTTPRoute backends: {backends:?}");
        let tenant_ingresses = Api::<Ingress>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.context("list")?;
        ensure!(tenant_ingresses.items.is_empty(), "an Ingress in the tenant namespace routes around the proxy");
        let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns);
        for policy in ["studio-access", "studio-ide-access", "workspace-peers"] {
            policies.get(policy).await.context(policy)?;
        }
        let sts = stateful_sets.get("studio").await.context("the Studio")?;
        ensure!(ide_args(&sts).contains(&"--auth=none".to_string()), "{:?}", ide_args(&sts));

        // Each list holds the plain, lower-cased addresses.
        let lists: Api<ConfigMap> = Api::namespaced(client.clone(), &access);
        let list_of = |cm: &ConfigMap| cm.data.as_ref().and_then(|d| d.get(EMAILS_KEY)).cloned().unwrap_or_default();
        for service in &proxy_services {
            let list = list_of(&lists.get(service).await.context("the access list")?);
            ensure!(list == "ann+data@example.com\nbob@example.com\n", "list {list:?}");
        }

        // A removed member leaves both lists; no pod of the UI nor of its proxies restarts.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let proxy_pods: Api<Pod> = Api::namespaced(client.clone(), &access);
        let studio_before = pod_uids(&pods, "app.kubernetes.io/name=studio").await?;
        let proxies_before = pod_uids(&proxy_pods, &format!("{LABEL_OWNER_UID}={uid}")).await?;
        ensure!(studio_before.len() == 1 && proxies_before.len() == 2, "{studio_before:?} {proxies_before:?}");
        let members = serde_json::json!({"spec": {"members": [{"user": format!("{name}-a"), "role": "developer"}]}});
        workspaces.patch(&name, &PatchParams::default(), &Patch::Merge(&members)).await.context("removing bob")?;
        for service in &proxy_services {
            let lists = lists.clone();
            wait_until(WAIT, "bob to leave the access list", || {
                let lists = lists.clone();
                async move { Ok(list_of(&lists.get(service).await.context("list")?) == "ann+data@example.com\n") }
            })
            .await?;
        }
        ensure!(pod_uids(&pods, "app.kubernetes.io/name=studio").await? == studio_before, "the Studio restarted");
        ensure!(pod_uids(&proxy_pods, &format!("{LABEL_OWNER_UID}={uid}")).await? == proxies_before, "a proxy restarted");

        // A Streamlit app of the workspace, with its own access list: its own proxy, whose list
        // is the listed user (no admin in this workspace), and only the proxy reaches its pods.
        let projects: Api<dataworkspace_operator::crd::Project> = Api::namespaced(client.clone(), &ns);
        let app: dataworkspace_operator::crd::Project = from_yaml(&format!(
            "metadata: {{name: dash}}\nspec: {{runtime: Streamlit, access: {{users: [{name}-a]}}, streamlit: {{image: registry.example.com/dash:1, host: {name}-dash.data.example.com}}}}"
        ))?;
        projects.create(&PostParams::default(), &app).await.context("creating a Streamlit Project")?;
        let exposed_app = wait_for(&projects, "dash", "the app's Access condition Authenticated", |p: Option<&dataworkspace_operator::crd::Project>| {
            p.and_then(|p| p.status.as_ref()).is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Access" && c.reason == "Authenticated"))
        })
        .await?;
        let public = exposed_app.status.unwrap_or_default().endpoints.into_iter().find(|e| e.name == "public").map(|e| e.url);
        ensure!(public == Some(format!("https://{name}-dash.data.example.com/")), "public endpoint {public:?}");
        let app_uid = exposed_app.metadata.uid.clone().unwrap_or_default();
        let app_lists = lists.list(&ListParams::default().labels(&format!("{LABEL_OWNER_UID}={app_uid}"))).await.context("list")?;
        ensure!(app_lists.items.len() == 1, "{} lists for the app", app_lists.items.len());
        ensure!(list_of(&app_lists.items[0]) == "ann+data@example.com\n", "app list {:?}", list_of(&app_lists.items[0]));
        policies.get("app-dash-access").await.context("the app's access NetworkPolicy")?;
        let template = Api::<Deployment>::namespaced(client.clone(), &ns).get("dash").await.context("the app")?.spec.map(|s| s.template);
        let proxied = template.and_then(|t| t.metadata).and_then(|m| m.labels).unwrap_or_default().contains_key("dataworkspace.io/proxied");
        ensure!(proxied, "the app's pods are not marked for the proxy");
        projects.delete("dash", &DeleteParams::default()).await.context("deleting the app")?;
        let app_selector = format!("{LABEL_OWNER_UID}={app_uid}");
        wait_until(WAIT, "the app's proxy to be withdrawn", || {
            let (selector, access) = (app_selector.clone(), access.clone());
            async move {
                let left = kubectl(&["get", "deployments,configmaps,ingresses", "-n", &access, "-l", &selector, "-o", "name"])?;
                Ok(left.trim().is_empty())
            }
        })
        .await?;

        // A second Workspace claiming the same host is refused and exposes nothing.
        let thief = format!("{name}-x");
        scope.involve(&format!("dw-{thief}"));
        let second: Workspace = from_yaml(&format!("metadata: {{name: {thief}}}\nspec: {{studio: {{host: {host}, storage: {{size: 1Gi}}}}}}"))?;
        workspaces.create(&PostParams::default(), &second).await.context("creating the second Workspace")?;
        let refused = wait_for(&workspaces, &thief, "the Studio condition HostTaken", |w: Option<&Workspace>| {
            studio_reason(w).as_deref() == Some("HostTaken")
        })
        .await?;
        let thief_uid = refused.metadata.uid.clone().unwrap_or_default();
        let theirs = deployments.list(&ListParams::default().labels(&format!("{LABEL_OWNER_UID}={thief_uid}"))).await.context("list")?;
        ensure!(theirs.items.is_empty(), "a second proxy for a taken host");
        workspaces.delete(&thief, &DeleteParams::default()).await.context("delete")?;

        // Deleting the Workspace withdraws its proxies, lists, secrets and routes.
        workspaces.delete(&name, &DeleteParams::default()).await.context("delete")?;
        let selector = format!("{LABEL_OWNER_UID}={uid}");
        wait_until(WAIT, "the proxies to be withdrawn", || {
            let selector = selector.clone();
            let access = access.clone();
            async move {
                let left = kubectl(&["get", "deployments,services,configmaps,secrets,ingresses,httproutes", "-n", &access, "-l", &selector, "-o", "name"])?;
                Ok(left.trim().is_empty())
            }
        })
        .await
    }
    .await;
    // Clean up whatever happened; the tests after this one run the operator without the layer.
    let _ = workspaces.delete(&name, &DeleteParams::default()).await;
    scope.env.stop_operator()?;
    scope.env.start_operator().await?;
    result?;
    for user in [format!("{name}-a"), format!("{name}-b")] {
        users.delete(&user, &DeleteParams::default()).await.context("delete")?;
    }
    Ok(())
}
