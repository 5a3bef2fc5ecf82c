//! Workspaces and Users on the control plane: tenancy, permissions by impersonation, missing
//! Secrets, and both deletion policies.

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, Secret},
    networking::v1::NetworkPolicy,
    rbac::v1::RoleBinding,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, ObjectMeta, PostParams},
};
use std::collections::BTreeMap;

use dataworkspace_operator::crd::{User, Workspace, common::Role};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, wait_for, wait_until},
};

pub fn from_yaml<K: serde::de::DeserializeOwned>(yaml: &str) -> Result<K, String> {
    serde_yaml::from_str(yaml).context("parsing a test manifest")
}

/// A new Workspace `<prefix>-…` with one Git repository, `code`, once it is Ready (its namespace
/// goes into the test's failure dump): its name and namespace.
pub async fn workspace_with_code(scope: &Scope, prefix: &str) -> Result<(String, String), String> {
    let id = scope.env.unique(prefix);
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let workspaces: kube::Api<Workspace> = kube::Api::all(scope.env.client.clone());
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{gitRepositories: [{{name: code, url: 'https://git.example.com/team/code.git'}}]}}"
    ))?;
    workspaces.create(&kube::api::PostParams::default(), &ws).await.context("creating a Workspace")?;
    crate::harness::wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True"))
        .await?;
    Ok((id, ns))
}

pub fn ready(ws: Option<&Workspace>, status: &str) -> bool {
    ws.and_then(|w| w.status.as_ref()).is_some_and(|s| {
        s.observed_generation == ws.and_then(|w| w.metadata.generation)
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == status)
    })
}

/// `kubectl auth can-i` as a user: true for "yes", false for "no", an error for anything else
/// (a failing API server is never read as a refusal). `resource` is `type`, `type/name` or
/// `type:subresource` (kubectl reads `pods/log` as the pod named `log`).
pub fn can_i(user: &str, verb: &str, resource: &str, namespace: Option<&str>) -> Result<bool, String> {
    let (resource, subresource) = match resource.split_once(':') {
        Some((resource, sub)) => (resource, Some(format!("--subresource={sub}"))),
        None => (resource, None),
    };
    let mut args = vec!["auth", "can-i", verb, resource, "--as", user];
    if let Some(sub) = &subresource {
        args.push(sub);
    }
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let output = std::process::Command::new("kubectl")
        .args(&args)
        .output()
        .map_err(|e| format!("running kubectl: {e}"))?;
    let answer = String::from_utf8_lossy(&output.stdout);
    match (output.status.code(), answer.lines().next().map(str::trim)) {
        (Some(0), Some("yes")) => Ok(true),
        (Some(1), Some(line)) if line == "no" || line.starts_with("no ") => Ok(false),
        _ => Err(format!(
            "kubectl {} answered neither yes nor no ({}): {answer} {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

pub async fn create_user(scope: &Scope, name: &str, teams: &[&str]) -> Result<String, String> {
    let username = format!("{name}@example.com");
    let user: User =
        from_yaml(&format!("metadata: {{name: {name}}}\nspec: {{username: {username}, teams: {teams:?}}}"))?;
    Api::<User>::all(scope.env.client.clone())
        .create(&PostParams::default(), &user)
        .await
        .context("creating a User")?;
    Ok(username)
}

pub async fn example_workspace_is_provisioned(scope: Scope) -> TestResult {
    scope.involve("dw-analytics");
    kubectl(&["apply", "-f", &scope.env.path("examples")])?;
    let client = scope.env.client.clone();
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let ws =
        wait_for(&workspaces, "analytics", "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    let status = ws.status.unwrap();
    ensure!(status.namespace.as_deref() == Some("dw-analytics"), "namespace: {:?}", status.namespace);
    ensure!(status.member_count == Some(3), "memberCount {:?}", status.member_count);
    ensure!(status.project_count == Some(5), "projectCount {:?}", status.project_count);
    ensure!(status.usage.contains_key("pods"), "usage: {:?}", status.usage);

    let ns = Api::<Namespace>::all(client.clone()).get("dw-analytics").await.context("namespace")?;
    let labels = ns.metadata.labels.unwrap_or_default();
    ensure!(
        labels.get("pod-security.kubernetes.io/enforce").map(String::as_str) == Some("restricted"),
        "labels: {labels:?}"
    );
    let n = "dw-analytics";
    Api::<ResourceQuota>::namespaced(client.clone(), n).get("workspace-quota").await.context("quota")?;
    Api::<LimitRange>::namespaced(client.clone(), n)
        .get("workspace-defaults")
        .await
        .context("limit range")?;
    Api::<NetworkPolicy>::namespaced(client.clone(), n)
        .get("workspace-isolation")
        .await
        .context("network policy")?;
    let admin = Api::<RoleBinding>::namespaced(client.clone(), n)
        .get("dataworkspace-admin")
        .await
        .context("binding")?;
    ensure!(
        admin.subjects.unwrap_or_default().iter().any(|s| s.name == "alice@example.com"),
        "alice is not admin"
    );
    let vars = Api::<ConfigMap>::namespaced(client.clone(), n)
        .get("workspace-variables")
        .await
        .context("variables")?;
    ensure!(
        vars.data.unwrap_or_default().get("ENVIRONMENT").map(String::as_str) == Some("production"),
        "variables"
    );
    let sts = Api::<StatefulSet>::namespaced(client.clone(), n).get("studio").await.context("studio")?;
    ensure!(sts.status.and_then(|s| s.ready_replicas) == Some(1), "studio not ready");
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), n)
        .get("home-studio-0")
        .await
        .context("home volume")?;
    // The namespace enforces restricted, so a running Studio pod passed Pod Security admission.
    let pod = Api::<Pod>::namespaced(client.clone(), n).get("studio-0").await.context("studio pod")?;
    ensure!(pod.status.and_then(|s| s.phase).as_deref() == Some("Running"), "studio pod not running");

    let users: Api<User> = Api::all(client);
    wait_for(&users, "alice", "alice's status lists analytics as admin", |u: Option<&User>| {
        u.and_then(|u| u.status.as_ref())
            .is_some_and(|s| s.workspaces.iter().any(|w| w.workspace == "analytics" && w.role == Role::Admin))
    })
    .await?;
    let bob = wait_for(&users, "bob", "bob's status lists analytics as developer", |u: Option<&User>| {
        u.and_then(|u| u.status.as_ref()).is_some_and(|s| {
            s.workspaces.iter().any(|w| w.workspace == "analytics" && w.role == Role::Developer)
        })
    })
    .await?;
    // The pinned project's phase follows its own status writes (later events than the binding):
    // the example Airflow ends Running.
    wait_for(&users, "alice", "alice's pinned project with its phase", |u: Option<&User>| {
        u.and_then(|u| u.status.as_ref())
            .is_some_and(|s| s.pinned.first().and_then(|p| p.phase.as_deref()) == Some("Running"))
    })
    .await?;
    ensure!(!bob.status.unwrap_or_default().recent.is_empty(), "bob has no recent projects");
    Ok(())
}

pub async fn permissions_follow_membership(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("perm");
    let dev = create_user(&scope, &format!("{id}-dev"), &[&format!("{id}-team")]).await?;
    let viewer = create_user(&scope, &format!("{id}-viewer"), &[]).await?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    for (name, members) in [
        (
            format!("{id}-a"),
            format!("[{{team: {id}-team, role: developer}}, {{user: {id}-viewer, role: viewer}}]"),
        ),
        (format!("{id}-b"), "[]".to_string()),
    ] {
        let ws: Workspace = from_yaml(&format!("metadata: {{name: {name}}}\nspec: {{members: {members}}}"))?;
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
        wait_for(&workspaces, &name, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    }
    let (ns_a, ns_b) = (format!("dw-{id}-a"), format!("dw-{id}-b"));
    scope.involve(&ns_a);
    let project = "projects.dataworkspace.io";
    ensure!(
        can_i(&dev, "create", project, Some(&ns_a))?,
        "a developer cannot create Projects in their workspace"
    );
    ensure!(
        !can_i(&dev, "create", project, Some(&ns_b))?,
        "a developer can create Projects in another workspace"
    );
    ensure!(!can_i(&dev, "get", "secrets", Some(&ns_a))?, "a developer can read Secrets");
    ensure!(can_i(&viewer, "get", project, Some(&ns_a))?, "a viewer cannot read Projects");
    ensure!(!can_i(&viewer, "create", project, Some(&ns_a))?, "a viewer can create Projects");
    ensure!(!can_i(&viewer, "get", "secrets", Some(&ns_a))?, "a viewer can read Secrets");
    for user in [&dev, &viewer] {
        ensure!(!can_i(user, "create", "workspaces.dataworkspace.io", None)?, "{user} can create Workspaces");
        ensure!(!can_i(user, "create", "users.dataworkspace.io", None)?, "{user} can create Users");
    }

    // Removing the team from the Workspace removes the developer's access.
    kubectl(&[
        "patch",
        "workspace",
        &format!("{id}-a"),
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/members/0"}]"#,
    ])?;
    wait_until(WAIT, "the developer to lose access", || {
        let (dev, ns_a) = (dev.clone(), ns_a.clone());
        async move { Ok(!can_i(&dev, "create", project, Some(&ns_a))?) }
    })
    .await?;
    // Deleting a User removes their bindings.
    Api::<User>::all(client.clone())
        .delete(&format!("{id}-viewer"), &DeleteParams::default())
        .await
        .context("delete")?;
    wait_until(WAIT, "the deleted viewer to lose access", || {
        let (viewer, ns_a) = (viewer.clone(), ns_a.clone());
        async move { Ok(!can_i(&viewer, "get", project, Some(&ns_a))?) }
    })
    .await?;
    // Joining the team through the User gives access; disabling the User takes it away.
    let late = create_user(&scope, &format!("{id}-late"), &[]).await?;
    let users: Api<User> = Api::all(client.clone());
    let join = serde_json::json!({"spec": {"teams": [format!("{id}-team")]}});
    // The team was removed from workspace a above; add it back so that joining it matters.
    kubectl(&[
        "patch",
        "workspace",
        &format!("{id}-a"),
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"members":[{{"team":"{id}-team","role":"developer"}}]}}}}"#),
    ])?;
    users
        .patch(&format!("{id}-late"), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&join))
        .await
        .context("adding a team to the User")?;
    wait_until(WAIT, "the user who joined the team to gain access", || {
        let (late, ns_a) = (late.clone(), ns_a.clone());
        async move { can_i(&late, "create", project, Some(&ns_a)) }
    })
    .await?;
    let disable = serde_json::json!({"spec": {"disabled": true}});
    users
        .patch(&format!("{id}-late"), &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&disable))
        .await
        .context("disabling the User")?;
    wait_until(WAIT, "the disabled user to lose access", || {
        let (late, ns_a) = (late.clone(), ns_a.clone());
        async move { Ok(!can_i(&late, "create", project, Some(&ns_a))?) }
    })
    .await?;
    users.delete(&format!("{id}-late"), &DeleteParams::default()).await.context("delete")?;

    // A platform admin may create Workspaces.
    let admin: User = from_yaml(&format!(
        "metadata: {{name: {id}-root}}\nspec: {{username: {id}-root@example.com, admin: true}}"
    ))?;
    Api::<User>::all(client.clone())
        .create(&PostParams::default(), &admin)
        .await
        .context("creating an admin")?;
    let root = format!("{id}-root@example.com");
    wait_until(WAIT, "the platform admin to be allowed to create Workspaces", || {
        let root = root.clone();
        async move { can_i(&root, "create", "workspaces.dataworkspace.io", None) }
    })
    .await?;
    for name in [format!("{id}-a"), format!("{id}-b")] {
        workspaces.delete(&name, &DeleteParams::default()).await.context("delete")?;
    }
    for name in [format!("{id}-dev"), format!("{id}-root")] {
        Api::<User>::all(client.clone()).delete(&name, &DeleteParams::default()).await.context("delete")?;
    }
    Ok(())
}

pub async fn missing_secret_is_reported_until_created(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let name = scope.env.unique("secret");
    let ns = format!("dw-{name}");
    scope.involve(&ns);
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {name}}}\nspec: {{connections: [{{name: warehouse, secretRef: {{name: late-secret, key: uri}}}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    let failed =
        wait_for(&workspaces, &name, "Ready=False", |w: Option<&Workspace>| ready(w, "False")).await?;
    let condition = failed.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    ensure!(condition.reason == "MissingSecret", "reason {}", condition.reason);
    ensure!(
        condition.message.contains("late-secret"),
        "message does not name the Secret: {}",
        condition.message
    );

    let secret = Secret {
        metadata: ObjectMeta { name: Some("late-secret".into()), ..ObjectMeta::default() },
        string_data: Some(BTreeMap::from([("uri".into(), "postgresql://u:p@h/db".into())])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the Secret")?;
    let fixed = wait_for(&workspaces, &name, "Ready=True once the Secret exists", |w: Option<&Workspace>| {
        ready(w, "True")
    })
    .await?;
    let status = fixed.status.unwrap();
    ensure!(status.missing_secrets.is_empty(), "still missing: {:?}", status.missing_secrets);
    // The value never reaches the status, the ConfigMap or Events.
    let dumped = kubectl(&["get", "workspace", &name, "-o", "yaml"])?
        + &kubectl(&["get", "configmaps,events", "-n", &ns, "-o", "yaml"])?;
    ensure!(!dumped.contains("postgresql://u:p@h/db"), "a Secret value leaked");
    workspaces.delete(&name, &DeleteParams::default()).await.context("delete")?;
    Ok(())
}

pub async fn deletion_policies_keep_or_remove_data(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let workspaces: Api<Workspace> = Api::all(client.clone());
    for policy in ["Retain", "Delete"] {
        let name = scope.env.unique(&policy.to_lowercase());
        let ns = format!("dw-{name}");
        scope.involve(&ns);
        let ws: Workspace = from_yaml(&format!(
            "metadata: {{name: {name}}}\nspec: {{deletionPolicy: {policy}, members: [{{team: t, role: viewer}}], studio: {{storage: {{size: 1Gi}}}}}}"
        ))?;
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
        wait_for(&workspaces, &name, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        pvcs.get("home-studio-0").await.context("home volume")?;

        workspaces.delete(&name, &DeleteParams::foreground()).await.context("deleting the Workspace")?;
        let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), &ns);
        // A failing list is not an empty one: it keeps the wait going, and fails it in the end.
        wait_until(WAIT, "the workspace bindings to be removed", || {
            let bindings = bindings.clone();
            async move {
                let left = bindings
                    .list(
                        &ListParams::default().labels("app.kubernetes.io/managed-by=dataworkspace-operator"),
                    )
                    .await
                    .context("listing the workspace bindings")?;
                Ok(left.items.is_empty())
            }
        })
        .await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if policy == "Retain" {
            let kept = namespaces.get(&ns).await.context("the retained namespace")?;
            ensure!(kept.metadata.deletion_timestamp.is_none(), "the retained namespace is being deleted");
            let pvc = pvcs.get("home-studio-0").await.context("the retained home volume")?;
            ensure!(pvc.metadata.deletion_timestamp.is_none(), "the retained home volume is being deleted");
        } else {
            wait_until(WAIT, "the namespace to be deleted", || {
                let (namespaces, ns) = (namespaces.clone(), ns.clone());
                async move { Ok(namespaces.get_opt(&ns).await.context("get")?.is_none()) }
            })
            .await?;
        }
    }
    Ok(())
}
