//! Tenancy hardening on the control plane, attacked the way a hostile tenant or a careless
//! platform admin would, through impersonation (`--as`): existing namespaces are never taken
//! over, retained namespaces are not inherited, workspace admins edit members but not what the
//! platform provisions, reserved and duplicate usernames bind nobody, Services cannot bypass the
//! proxy, and the operator's own identity is fenced in by an admission policy.

use k8s_openapi::api::{
    core::v1::{Namespace, Secret},
    rbac::v1::ClusterRoleBinding,
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use std::collections::BTreeMap;

use dataworkspace_operator::crd::{User, Workspace};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, kubectl_with_input, wait_for, wait_until},
    workspaces::{can_i, create_user, from_yaml, ready},
};

/// The Ready reason of a Workspace whose status describes its current generation.
fn ready_reason(ws: Option<&Workspace>) -> Option<String> {
    let ws = ws?;
    let status = ws.status.as_ref()?;
    (status.observed_generation == ws.metadata.generation)
        .then(|| status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone()))
        .flatten()
}

fn user_reason(user: Option<&User>) -> Option<String> {
    let user = user?;
    let status = user.status.as_ref()?;
    (status.observed_generation == user.metadata.generation)
        .then(|| status.conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.reason.clone()))
        .flatten()
}

/// A RoleBinding made around the Workspace, by the cluster admin: every authenticated user
/// becomes workspace admin (security review H2).
fn create_backdoor(namespace: &str) -> Result<String, String> {
    kubectl(&[
        "create",
        "rolebinding",
        "backdoor",
        "-n",
        namespace,
        "--clusterrole=dataworkspace-admin",
        "--group=system:authenticated",
    ])
}

/// Deletes the Users `<id>-<suffix>`.
async fn delete_users(scope: &Scope, id: &str, suffixes: &[&str]) -> TestResult {
    let users: Api<User> = Api::all(scope.env.client.clone());
    for suffix in suffixes {
        users.delete(&format!("{id}-{suffix}"), &DeleteParams::default()).await.context("deleting a User")?;
    }
    Ok(())
}

async fn platform_admin(scope: &Scope, id: &str) -> Result<String, String> {
    let username = format!("{id}-padmin@example.com");
    let admin: User =
        from_yaml(&format!("metadata: {{name: {id}-padmin}}\nspec: {{username: {username}, admin: true}}"))?;
    Api::<User>::all(scope.env.client.clone())
        .create(&PostParams::default(), &admin)
        .await
        .context("creating a platform admin")?;
    wait_until(WAIT, "the platform admin to be bound", || {
        let username = username.clone();
        async move { can_i(&username, "create", "workspaces.dataworkspace.io", None) }
    })
    .await?;
    Ok(username)
}

fn secret(name: &str, value: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        string_data: Some(BTreeMap::from([("value".into(), value.into())])),
        ..Secret::default()
    }
}

/// C1: a Workspace naming an existing namespace gets `NamespaceConflict` and changes nothing
/// there; deleting it (policy Delete) leaves the namespace; a cluster admin's hand-over works
/// and never makes the namespace deletable with the Workspace.
pub async fn existing_namespaces_are_never_taken_over(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("c1");
    let victim = scope.namespace("victim").await?;
    Api::<Secret>::namespaced(client.clone(), &victim)
        .create(&PostParams::default(), &secret("crown", "root-of-everything"))
        .await
        .context("creating the victim's Secret")?;
    let padmin = platform_admin(&scope, &id).await?;
    let mallory = create_user(&scope, &format!("{id}-mallory"), &[]).await?;

    let takeover = format!(
        "apiVersion: dataworkspace.io/v1alpha1\nkind: Workspace\nmetadata: {{name: {id}-takeover}}\nspec: {{namespace: {victim}, deletionPolicy: Delete, members: [{{user: {id}-mallory, role: admin}}]}}\n"
    );
    kubectl_with_input(&["apply", "--as", &padmin, "-f", "-"], &takeover)?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let name = format!("{id}-takeover");
    let refused = wait_for(&workspaces, &name, "Ready=False NamespaceConflict", |w: Option<&Workspace>| {
        ready_reason(w).as_deref() == Some("NamespaceConflict")
    })
    .await?;
    let message =
        refused.status.unwrap().conditions.into_iter().find(|c| c.type_ == "Ready").unwrap().message;
    ensure!(
        message.contains("dataworkspace.io/adopt"),
        "the message does not say how to hand over: {message}"
    );
    let ns = Api::<Namespace>::all(client.clone()).get(&victim).await.context("the victim namespace")?;
    let labels = ns.metadata.labels.clone().unwrap_or_default();
    ensure!(!labels.contains_key("dataworkspace.io/workspace"), "the namespace was claimed: {labels:?}");
    ensure!(
        ns.metadata.owner_references.is_none(),
        "the namespace got an owner: {:?}",
        ns.metadata.owner_references
    );
    ensure!(!can_i(&mallory, "get", "secrets", Some(&victim))?, "mallory can read the victim's Secrets");
    let bindings = kubectl(&["get", "rolebindings", "-n", &victim, "-o", "name"])?;
    ensure!(bindings.trim().is_empty(), "bindings were written into the victim namespace: {bindings}");

    kubectl(&["delete", "workspace", &name, "--as", &padmin, "--wait=true"])?;
    let kept = Api::<Namespace>::all(client.clone()).get(&victim).await.context("the victim namespace")?;
    ensure!(
        kept.metadata.deletion_timestamp.is_none(),
        "deleting the Workspace deletes the victim namespace"
    );

    // A cluster admin hands the namespace over: used, yet never deleted with the Workspace.
    let adopter = format!("{id}-adopter");
    kubectl(&["annotate", "namespace", &victim, &format!("dataworkspace.io/adopt={adopter}")])?;
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {adopter}}}\nspec: {{namespace: {victim}, deletionPolicy: Delete, members: [{{user: {id}-mallory, role: viewer}}]}}"
    ))?;
    workspaces.create(&PostParams::default(), &ws).await.context("creating the adopting Workspace")?;
    wait_for(&workspaces, &adopter, "Ready=True after the hand-over", |w: Option<&Workspace>| {
        ready(w, "True")
    })
    .await?;
    let adopted = Api::<Namespace>::all(client.clone()).get(&victim).await.context("namespace")?;
    ensure!(adopted.metadata.owner_references.is_none(), "a handed-over namespace got an owner reference");
    ensure!(
        adopted.metadata.labels.unwrap_or_default().get("dataworkspace.io/workspace").map(String::as_str)
            == Some(adopter.as_str()),
        "the handed-over namespace is not labelled"
    );
    workspaces.delete(&adopter, &DeleteParams::foreground()).await.context("deleting")?;
    wait_until(WAIT, "the adopting Workspace to be gone", || {
        let (workspaces, adopter) = (workspaces.clone(), adopter.clone());
        async move { Ok(workspaces.get_opt(&adopter).await.context("get")?.is_none()) }
    })
    .await?;
    let kept = Api::<Namespace>::all(client.clone()).get(&victim).await.context("the victim namespace")?;
    ensure!(
        kept.metadata.deletion_timestamp.is_none(),
        "a handed-over namespace was deleted with its Workspace"
    );
    Api::<Secret>::namespaced(client.clone(), &victim).get("crown").await.context("the victim's Secret")?;
    delete_users(&scope, &id, &["padmin", "mallory"]).await
}

/// M1: `spec.namespace` cannot be added or removed after creation.
pub async fn namespace_cannot_be_added_or_removed(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("m1");
    let workspaces: Api<Workspace> = Api::all(client.clone());
    for (name, spec) in
        [(format!("{id}-a"), "{}".to_string()), (format!("{id}-b"), format!("{{namespace: dw-{id}-b-ns}}"))]
    {
        let ws: Workspace = from_yaml(&format!("metadata: {{name: {name}}}\nspec: {spec}"))?;
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    }
    scope.involve(&format!("dw-{id}-a"));
    scope.involve(&format!("dw-{id}-b-ns"));
    let add = kubectl(&[
        "patch",
        "workspace",
        &format!("{id}-a"),
        "--type=merge",
        "-p",
        r#"{"spec":{"namespace":"elsewhere"}}"#,
    ]);
    ensure!(
        add.as_ref().is_err_and(|e| e.contains("spec.namespace is immutable")),
        "adding spec.namespace was not refused: {add:?}"
    );
    let remove = kubectl(&[
        "patch",
        "workspace",
        &format!("{id}-b"),
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/namespace"}]"#,
    ]);
    ensure!(
        remove.as_ref().is_err_and(|e| e.contains("spec.namespace is immutable")),
        "removing spec.namespace was not refused: {remove:?}"
    );
    for name in [format!("{id}-a"), format!("{id}-b")] {
        wait_for(&workspaces, &name, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
        workspaces.delete(&name, &DeleteParams::default()).await.context("delete")?;
    }
    for ns in [format!("dw-{id}-a"), format!("dw-{id}-b-ns")] {
        scope.env.drop_namespace(&ns).await;
    }
    Ok(())
}

/// M2: a namespace kept after a `Retain` deletion is not inherited by a new Workspace of the
/// same name; its old Secrets stay out of reach until a cluster admin hands it over.
pub async fn retained_namespaces_are_not_inherited(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("m2");
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let old_admin = create_user(&scope, &format!("{id}-old"), &[]).await?;
    let newcomer = create_user(&scope, &format!("{id}-new"), &[]).await?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    let first: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-old, role: admin}}]}}"
    ))?;
    workspaces.create(&PostParams::default(), &first).await.context("creating the Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret("old-team", "old-team-credential"))
        .await
        .context("creating the team's Secret")?;
    workspaces.delete(&id, &DeleteParams::foreground()).await.context("deleting")?;
    wait_until(WAIT, "the Workspace to be gone", || {
        let (workspaces, id) = (workspaces.clone(), id.clone());
        async move { Ok(workspaces.get_opt(&id).await.context("get")?.is_none()) }
    })
    .await?;
    ensure!(!can_i(&old_admin, "get", "secrets", Some(&ns))?, "the old admin kept access");

    let second: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-new, role: admin}}]}}"
    ))?;
    workspaces.create(&PostParams::default(), &second).await.context("creating the new Workspace")?;
    wait_for(&workspaces, &id, "Ready=False RetainedNamespace", |w: Option<&Workspace>| {
        ready_reason(w).as_deref() == Some("RetainedNamespace")
    })
    .await?;
    ensure!(!can_i(&newcomer, "get", "secrets", Some(&ns))?, "the new Workspace inherited the old Secrets");

    // A stale hand-over passes nothing on; a new one (old stamp removed) does.
    kubectl(&["annotate", "namespace", &ns, &format!("dataworkspace.io/adopt={id}")])?;
    let still = workspaces.get(&id).await.context("the Workspace")?;
    ensure!(
        ready_reason(Some(&still)).as_deref() == Some("RetainedNamespace"),
        "an annotation alone handed a stamped namespace over: {:?}",
        ready_reason(Some(&still))
    );
    kubectl(&["label", "namespace", &ns, "dataworkspace.io/workspace-uid-"])?;
    wait_for(&workspaces, &id, "Ready=True after the hand-over", |w: Option<&Workspace>| ready(w, "True"))
        .await?;
    wait_until(WAIT, "the newcomer to be bound after the hand-over", || {
        let (newcomer, ns) = (newcomer.clone(), ns.clone());
        async move { can_i(&newcomer, "get", "secrets", Some(&ns)) }
    })
    .await?;
    workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
    delete_users(&scope, &id, &["old", "new"]).await
}

/// H2 and M7: workspace admins edit members of their own Workspace only, not what the platform
/// provisions; they cannot grant access outside it (RoleBindings, ServiceAccount tokens) or
/// expose Services around the proxy; foreign RoleBindings are reported.
pub async fn workspace_admins_manage_members_within_bounds(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("h2");
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let admin = create_user(&scope, &format!("{id}-admin"), &[]).await?;
    let developer = create_user(&scope, &format!("{id}-dev"), &[]).await?;
    let newcomer = create_user(&scope, &format!("{id}-new"), &[]).await?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    for (name, members) in [
        (id.clone(), format!("[{{user: {id}-admin, role: admin}}, {{user: {id}-dev, role: developer}}]")),
        (format!("{id}-other"), "[]".to_string()),
    ] {
        let ws: Workspace = from_yaml(&format!("metadata: {{name: {name}}}\nspec: {{members: {members}}}"))?;
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
        wait_for(&workspaces, &name, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    }
    wait_until(WAIT, "the workspace admin to be allowed to edit the Workspace", || {
        let (admin, id) = (admin.clone(), id.clone());
        async move { can_i(&admin, "patch", &format!("workspaces.dataworkspace.io/{id}"), None) }
    })
    .await?;

    // Members: yes.
    let members = format!(
        r#"{{"spec":{{"members":[{{"user":"{id}-admin","role":"admin"}},{{"user":"{id}-dev","role":"developer"}},{{"user":"{id}-new","role":"viewer"}}]}}}}"#
    );
    kubectl(&["patch", "workspace", &id, "--as", &admin, "--type=merge", "-p", &members])?;
    wait_until(WAIT, "the added viewer to gain access", || {
        let (newcomer, ns) = (newcomer.clone(), ns.clone());
        async move { can_i(&newcomer, "get", "projects.dataworkspace.io", Some(&ns)) }
    })
    .await?;
    // What the platform provisions: no.
    for patch in [
        r#"{"spec":{"quota":{"cpu":"999"}}}"#,
        r#"{"spec":{"deletionPolicy":"Delete"}}"#,
        r#"{"spec":{"network":{"egress":[{"cidr":"169.254.169.254/32"}]}}}"#,
        r#"{"spec":{"studio":{"host":"auth.example.com"}}}"#,
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ] {
        let refused = kubectl(&["patch", "workspace", &id, "--as", &admin, "--type=merge", "-p", patch]);
        ensure!(
            refused.as_ref().is_err_and(|e| e.contains("only platform admins may change")),
            "a workspace admin applied {patch}: {refused:?}"
        );
    }
    // Another workspace, or a developer: no.
    let other = kubectl(&[
        "patch",
        "workspace",
        &format!("{id}-other"),
        "--as",
        &admin,
        "--type=merge",
        "-p",
        &members,
    ]);
    ensure!(other.as_ref().is_err_and(|e| e.contains("Forbidden") || e.contains("forbidden")), "{other:?}");
    let by_developer =
        kubectl(&["patch", "workspace", &id, "--as", &developer, "--type=merge", "-p", &members]);
    ensure!(by_developer.as_ref().is_err_and(|e| e.contains("forbidden")), "{by_developer:?}");

    // No access outside the Workspace: bindings, ServiceAccounts, tokens.
    ensure!(!can_i(&admin, "create", "rolebindings", Some(&ns))?, "the admin can create RoleBindings");
    ensure!(!can_i(&admin, "bind", "clusterroles/dataworkspace-admin", None)?, "the admin can bind roles");
    ensure!(!can_i(&admin, "create", "serviceaccounts", Some(&ns))?, "the admin can create ServiceAccounts");
    ensure!(!can_i(&admin, "create", "serviceaccounts:token", Some(&ns))?, "the admin can mint tokens");
    let token = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: backdoor, namespace: {ns}, annotations: {{kubernetes.io/service-account.name: default}}}}\ntype: kubernetes.io/service-account-token\n"
    );
    let minted = kubectl_with_input(&["apply", "--as", &admin, "-f", "-"], &token);
    ensure!(
        minted.as_ref().is_err_and(|e| e.contains("ServiceAccount token Secrets cannot be created")),
        "a token Secret was accepted: {minted:?}"
    );
    // M7: nothing around the proxy.
    for (what, spec) in [
        ("LoadBalancer", "type: LoadBalancer, ports: [{port: 80}]"),
        ("NodePort", "type: NodePort, ports: [{port: 80}]"),
        ("externalIPs", "externalIPs: [203.0.113.10], ports: [{port: 80}]"),
        ("ExternalName", "type: ExternalName, externalName: kubernetes.default.svc.cluster.local"),
    ] {
        let service = format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: bypass, namespace: {ns}}}\nspec: {{selector: {{app: studio}}, {spec}}}\n"
        );
        let created = kubectl_with_input(&["apply", "--as", &admin, "--dry-run=server", "-f", "-"], &service);
        ensure!(
            created.as_ref().is_err_and(|e| e.contains("Services in workspace namespaces cannot")),
            "{what}: {created:?}"
        );
    }

    // A RoleBinding made around the Workspace (here by the cluster admin) is reported, not silent.
    create_backdoor(&ns)?;
    let reported = wait_for(&workspaces, &id, "Ready=False ForeignRoleBindings", |w: Option<&Workspace>| {
        ready_reason(w).as_deref() == Some("ForeignRoleBindings")
    })
    .await?;
    let status = reported.status.unwrap();
    ensure!(
        status.foreign_role_bindings == vec!["backdoor".to_string()],
        "{:?}",
        status.foreign_role_bindings
    );
    kubectl(&["delete", "rolebinding", "backdoor", "-n", &ns])?;
    wait_for(&workspaces, &id, "Ready=True once it is gone", |w: Option<&Workspace>| ready(w, "True"))
        .await?;

    for name in [id.clone(), format!("{id}-other")] {
        workspaces.delete(&name, &DeleteParams::default()).await.context("delete")?;
    }
    scope.env.drop_namespace(&format!("dw-{id}-other")).await;
    delete_users(&scope, &id, &["admin", "dev", "new"]).await
}

/// M3: reserved usernames are refused at admission; two Users with one username bind nobody
/// until one of them is gone.
pub async fn reserved_and_duplicate_usernames_bind_nobody(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("m3");
    for (username, admin) in [
        ("system:masters", false),
        ("system:anonymous", false),
        (" padded@example.com", false),
        ("system:serviceaccount:kube-system:default", true),
    ] {
        let manifest = format!(
            "apiVersion: dataworkspace.io/v1alpha1\nkind: User\nmetadata: {{name: {id}-reserved}}\nspec: {{username: '{username}', admin: {admin}}}\n"
        );
        let created = kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], &manifest);
        ensure!(created.is_err(), "the API server accepted the username {username:?} (admin: {admin})");
    }

    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let username = format!("{id}@example.com");
    let users: Api<User> = Api::all(client.clone());
    for name in ["one", "two"] {
        let user: User =
            from_yaml(&format!("metadata: {{name: {id}-{name}}}\nspec: {{username: {username}}}"))?;
        users.create(&PostParams::default(), &user).await.context("creating a User")?;
    }
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-one, role: admin}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    for name in ["one", "two"] {
        wait_for(&users, &format!("{id}-{name}"), "DuplicateUsername", |u: Option<&User>| {
            user_reason(u).as_deref() == Some("DuplicateUsername")
        })
        .await?;
    }
    ensure!(!can_i(&username, "get", "secrets", Some(&ns))?, "a duplicated username is bound");
    users.delete(&format!("{id}-two"), &DeleteParams::default()).await.context("delete")?;
    wait_for(&users, &format!("{id}-one"), "Bound once the duplicate is gone", |u: Option<&User>| {
        user_reason(u).as_deref() == Some("Bound")
    })
    .await?;
    wait_until(WAIT, "the remaining User to be bound", || {
        let (username, ns) = (username.clone(), ns.clone());
        async move { can_i(&username, "get", "secrets", Some(&ns)) }
    })
    .await?;
    workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
    users.delete(&format!("{id}-one"), &DeleteParams::default()).await.context("delete")?;
    Ok(())
}

/// The operator's own identity may write only into workspace namespaces and bind only its
/// roles (the guard policy), checked by impersonating its ServiceAccount with full RBAC.
pub async fn operator_identity_is_fenced_in(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("guard");
    let operator = "system:serviceaccount:dataworkspace-system:dataworkspace-operator";
    let binding: ClusterRoleBinding = from_yaml(&format!(
        "metadata: {{name: {id}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: [{{kind: ServiceAccount, name: dataworkspace-operator, namespace: dataworkspace-system}}]"
    ))?;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    bindings.create(&PostParams::default(), &binding).await.context("granting the operator cluster-admin")?;
    let result = async {
        let ns = format!("dw-{id}");
        scope.involve(&ns);
        let ws: Workspace = from_yaml(&format!("metadata: {{name: {id}}}\nspec: {{}}"))?;
        let workspaces: Api<Workspace> = Api::all(client.clone());
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
        wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
        let attempt = |manifest: String| kubectl_with_input(&["apply", "--as", operator, "--dry-run=server", "-f", "-"], &manifest);
        let denied = attempt(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: x, namespace: kube-system}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dataworkspace-admin}\nsubjects: [{kind: User, name: x, apiGroup: rbac.authorization.k8s.io}]\n".into(),
        );
        ensure!(denied.as_ref().is_err_and(|e| e.contains("only into workspace namespaces")), "{denied:?}");
        let escalate = attempt(format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: x, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: [{{kind: User, name: x, apiGroup: rbac.authorization.k8s.io}}]\n"
        ));
        ensure!(escalate.as_ref().is_err_and(|e| e.contains("bind only the dataworkspace roles")), "{escalate:?}");
        let foreign_ns = attempt(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system, labels: {a: b}}\n".into(),
        );
        ensure!(foreign_ns.as_ref().is_err_and(|e| e.contains("only namespaces it created")), "{foreign_ns:?}");
        let unlabelled = attempt(format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {id}-bare}}\n"));
        ensure!(unlabelled.as_ref().is_err_and(|e| e.contains("creates only prefixed namespaces")), "{unlabelled:?}");
        let cluster_wide = attempt(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: dataworkspace-workspace-x}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: dataworkspace-admin}\nsubjects: [{kind: User, name: x, apiGroup: rbac.authorization.k8s.io}]\n".into(),
        );
        ensure!(cluster_wide.as_ref().is_err_and(|e| e.contains("bind only the dataworkspace roles")), "{cluster_wide:?}");
        let wide_role = attempt(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: dataworkspace-workspace-x}\nrules: [{apiGroups: [dataworkspace.io], resources: [users], verbs: [create]}]\n".into(),
        );
        ensure!(wide_role.as_ref().is_err_and(|e| e.contains("read or edit one Workspace")), "{wide_role:?}");
        let allowed = attempt(format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x, namespace: {ns}}}\n"));
        ensure!(allowed.is_ok(), "the operator may not write into its own workspace namespace: {allowed:?}");
        // Deployments only in workspace namespaces (apps) and the access namespace (proxies); Secrets nowhere else but there and
        // in workspace namespaces.
        let deployment = |namespace: &str| format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x, namespace: {namespace}}}\nspec: {{selector: {{matchLabels: {{a: b}}}}, template: {{metadata: {{labels: {{a: b}}}}, spec: {{containers: [{{name: x, image: x}}]}}}}}}\n"
        );
        let proxy_elsewhere = attempt(deployment("kube-system"));
        ensure!(
            proxy_elsewhere.as_ref().is_err_and(|e| e.contains("only in workspace namespaces and the access namespace")),
            "{proxy_elsewhere:?}"
        );
        let app = attempt(deployment(&ns));
        ensure!(app.is_ok(), "the operator may not run an app in its workspace namespace: {app:?}");
        let secret = attempt("apiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: kube-system}\n".into());
        ensure!(secret.as_ref().is_err_and(|e| e.contains("and the access namespace")), "{secret:?}");
        kubectl(&["create", "namespace", "dataworkspace-access", "--dry-run=client", "-o", "yaml"])
            .and_then(|yaml| kubectl_with_input(&["apply", "-f", "-"], &yaml))?;
        let proxy = attempt(deployment("dataworkspace-access"));
        ensure!(proxy.is_ok(), "the operator may not run a proxy in the access namespace: {proxy:?}");
        workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
        Ok(())
    }
    .await;
    bindings.delete(&id, &DeleteParams::default()).await.context("removing the grant")?;
    result
}

/// What each role may do, compared with the committed table `tests/e2e/can-i.txt`.
pub async fn permissions_match_the_committed_table(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("matrix");
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let padmin = platform_admin(&scope, &id).await?;
    let viewer = create_user(&scope, &format!("{id}-viewer"), &[]).await?;
    let developer = create_user(&scope, &format!("{id}-developer"), &[]).await?;
    let admin = create_user(&scope, &format!("{id}-admin"), &[]).await?;
    let stranger = format!("{id}-stranger@example.com");
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-viewer, role: viewer}}, {{user: {id}-developer, role: developer}}, {{user: {id}-admin, role: admin}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    wait_until(WAIT, "the admin to be bound", || {
        let (admin, ns) = (admin.clone(), ns.clone());
        async move { can_i(&admin, "get", "secrets", Some(&ns)) }
    })
    .await?;

    let expected =
        std::fs::read_to_string(scope.env.repo.join("tests/e2e/can-i.txt")).context("tests/e2e/can-i.txt")?;
    let people = [
        ("viewer", &viewer),
        ("developer", &developer),
        ("admin", &admin),
        ("platform-admin", &padmin),
        ("stranger", &stranger),
    ];
    let mut actual = String::new();
    let mut mismatches = Vec::new();
    for line in expected.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            actual.push_str(line);
            actual.push('\n');
            continue;
        }
        let columns: Vec<&str> = line.split_whitespace().collect();
        let (verb, resource, scope_word) = (columns[0], columns[1], columns[2]);
        let resource = resource.replace("<workspace>", &id);
        let namespace = (scope_word == "workspace").then_some(ns.as_str());
        let mut row = format!("{:<8} {:<40} {:<9}", columns[0], columns[1], scope_word);
        for (i, (_, username)) in people.iter().enumerate() {
            let answer = if can_i(username, verb, &resource, namespace)? { "yes" } else { "no" };
            row.push_str(&format!(" {answer:<3}"));
            if columns.get(3 + i).copied() != Some(answer) {
                mismatches.push(format!(
                    "{} {verb} {resource}: expected {:?}, got {answer}",
                    people[i].0,
                    columns.get(3 + i)
                ));
            }
        }
        actual.push_str(row.trim_end());
        actual.push('\n');
    }
    std::fs::write(scope.env.out_dir.join("can-i.actual.txt"), &actual)
        .context("writing the actual table")?;
    ensure!(
        mismatches.is_empty(),
        "{} permission(s) differ from tests/e2e/can-i.txt:\n{}\nactual table:\n{actual}",
        mismatches.len(),
        mismatches.join("\n")
    );

    workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
    delete_users(&scope, &id, &["viewer", "developer", "admin", "padmin"]).await
}

/// With team groups bound (`--team-group-prefix`), disabling a User also stops the binding of
/// the teams they list as groups; with `--remove-foreign-rolebindings` a binding made around the
/// Workspace is deleted, not only reported.
pub async fn team_groups_and_foreign_bindings_follow_the_flags(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = scope.env.unique("flags");
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    scope.env.stop_operator()?;
    let started =
        scope.env.start_operator_with(&["--team-group-prefix=idp:", "--remove-foreign-rolebindings"]).await;
    let result = async {
        started?;
        let team = format!("{id}-team");
        create_user(&scope, &format!("{id}-member"), &[&team]).await?;
        let ws: Workspace = from_yaml(&format!(
            "metadata: {{name: {id}}}\nspec: {{members: [{{team: {team}, role: developer}}]}}"
        ))?;
        let workspaces: Api<Workspace> = Api::all(client.clone());
        workspaces.create(&PostParams::default(), &ws).await.context("creating a Workspace")?;
        wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
        // Someone in the identity provider's group, with no User object.
        let group_can = |ns: String, team: String| {
            let output = std::process::Command::new("kubectl")
                .args([
                    "auth",
                    "can-i",
                    "create",
                    "projects.dataworkspace.io",
                    "-n",
                    &ns,
                    "--as",
                    "someone@idp",
                    "--as-group",
                    &format!("idp:{team}"),
                ])
                .output();
            async move {
                let output = output.map_err(|e| e.to_string())?;
                match String::from_utf8_lossy(&output.stdout).trim() {
                    "yes" => Ok(true),
                    "no" => Ok(false),
                    other => {
                        Err(format!("can-i answered {other:?}: {}", String::from_utf8_lossy(&output.stderr)))
                    }
                }
            }
        };
        wait_until(WAIT, "the team group to be bound", || group_can(ns.clone(), team.clone())).await?;
        let disable = serde_json::json!({"spec": {"disabled": true}});
        Api::<User>::all(client.clone())
            .patch(
                &format!("{id}-member"),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&disable),
            )
            .await
            .context("disabling the User")?;
        wait_until(WAIT, "the team group of a disabled User to be unbound", || {
            let (ns, team) = (ns.clone(), team.clone());
            async move { Ok(!group_can(ns, team).await?) }
        })
        .await?;

        create_backdoor(&ns)?;
        wait_until(WAIT, "the foreign RoleBinding to be removed", || {
            let ns = ns.clone();
            async move {
                Ok(kubectl(&["get", "rolebinding", "backdoor", "-n", &ns])
                    .is_err_and(|e| e.contains("NotFound")))
            }
        })
        .await?;
        wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
        workspaces.delete(&id, &DeleteParams::default()).await.context("delete")?;
        Api::<User>::all(client.clone())
            .delete(&format!("{id}-member"), &DeleteParams::default())
            .await
            .context("delete")?;
        Ok(())
    }
    .await;
    scope.env.stop_operator()?;
    scope.env.start_operator().await?;
    result
}
