//! The kubectl plugin against the control plane: `runtime` shows a User's pinned project, then
//! their recent one, with the phases the operator reports (compared with a golden file at a
//! fixed clock), finds the caller by a SelfSubjectReview and says why it cannot show one; and
//! `approve`/`reject` write an admin's decision through the API server's admission policy,
//! whose refusals come back as errors with exit code 1.

use std::process::{Command, Output};

use k8s_openapi::jiff::SignedDuration;
use kube::{Api, api::PostParams};

use dataworkspace_operator::crd::{Project, PythonEnvironment, User, Workspace, project::Phase};

use crate::{
    Scope, ensure,
    harness::{Context, TestResult, WAIT, kubectl, kubectl_with_input, wait_for, wait_until},
    notebook::phase,
    workspaces::{can_i, create_user, from_yaml, ready},
};

/// Set to rewrite the golden files from what the plugin prints.
const UPDATE: &str = "DWO_UPDATE_GOLDEN";

/// An id of fixed width, so that replacing it keeps the table's columns where they are.
fn fixed_id(letter: char) -> String {
    format!("pl{letter}{:05}", std::process::id() % 100_000)
}

/// The plugin, run with the suite's kubeconfig.
fn plugin(args: &[&str]) -> Result<Output, String> {
    Command::new(env!("CARGO_BIN_EXE_kubectl-dataworkspace"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .context("running kubectl-dataworkspace")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The plugin's stdout when it succeeds.
fn plugin_ok(args: &[&str]) -> Result<String, String> {
    let output = plugin(args)?;
    ensure!(
        output.status.success(),
        "kubectl-dataworkspace {} failed ({}): {}",
        args.join(" "),
        output.status,
        text(&output.stderr)
    );
    Ok(text(&output.stdout))
}

/// The plugin's stderr when it fails with `code`.
fn plugin_fails(args: &[&str], code: i32) -> Result<String, String> {
    let output = plugin(args)?;
    let stderr = text(&output.stderr);
    ensure!(
        output.status.code() == Some(code),
        "kubectl-dataworkspace {} exited with {} instead of {code}: {} {stderr}",
        args.join(" "),
        output.status,
        text(&output.stdout)
    );
    ensure!(stderr.starts_with("error: "), "stderr without the error prefix: {stderr}");
    Ok(stderr)
}

/// Compares with `tests/e2e/golden/<name>`, or rewrites it with [`UPDATE`] set.
fn golden(scope: &Scope, name: &str, actual: &str) -> TestResult {
    let path = scope.env.repo.join("tests/e2e/golden").join(name);
    if std::env::var_os(UPDATE).is_some() {
        return std::fs::write(&path, actual).context("writing the golden file");
    }
    let expected = std::fs::read_to_string(&path).context("reading the golden file")?;
    ensure!(
        actual == expected,
        "the output differs from {} (set {UPDATE}=1 to accept it):\n--- expected\n{expected}--- actual\n{actual}",
        path.display()
    );
    Ok(())
}

pub async fn runtime_lists_pinned_then_recent_with_live_phases(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = fixed_id('r');
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let user = format!("{id}-dev");
    let username = format!("{user}@example.com");
    let manifest: User = from_yaml(&format!(
        "metadata: {{name: {user}}}\nspec: {{username: '{username}', pinned: [{{namespace: {ns}, name: etl}}]}}"
    ))?;
    let users: Api<User> = Api::all(client.clone());
    users.create(&PostParams::default(), &manifest).await.context("creating the User")?;
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {user}, role: developer}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating the Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;

    // The pinned project runs; a newer one, stopped, is only recent.
    let projects: Api<Project> = Api::namespaced(client.clone(), &ns);
    for (name, stopped) in [("etl", false), ("scratch", true)] {
        let project: Project = from_yaml(&format!(
            "metadata: {{name: {name}}}\nspec: {{runtime: Notebook, stopped: {stopped}, notebook: {{storage: {{size: 1Gi}}}}}}"
        ))?;
        projects.create(&PostParams::default(), &project).await.context("creating a Project")?;
    }
    let etl =
        wait_for(&projects, "etl", "phase Running", |p: Option<&Project>| phase(p) == Some(Phase::Running))
            .await?;
    wait_for(&projects, "scratch", "phase Stopped", |p: Option<&Project>| phase(p) == Some(Phase::Stopped))
        .await?;
    wait_for(&users, &user, "the pin Running and both projects recent", |u: Option<&User>| {
        let Some(status) = u.and_then(|u| u.status.as_ref()) else { return false };
        let recent: Vec<&str> = status.recent.iter().map(|p| p.name.as_str()).collect();
        status.pinned.first().and_then(|p| p.phase.as_deref()) == Some("Running")
            && recent.contains(&"etl")
            && recent.contains(&"scratch")
    })
    .await?;

    // Ten days after creation, every age reads `10d` whatever the seconds between creations.
    let created = etl.metadata.creation_timestamp.clone().ok_or("no creationTimestamp")?.0;
    let now = created.checked_add(SignedDuration::from_hours(240)).context("the fixed clock")?.to_string();
    let normalize = |out: String| out.replace(&id, "plXXXXXX");
    let table = normalize(plugin_ok(&["runtime", "--user", &user, "--now", &now])?);
    golden(&scope, "plugin-runtime.txt", &table)?;
    let lines: Vec<&str> = table.lines().collect();
    ensure!(lines.len() == 3, "a header and two projects: {table}");
    ensure!(lines[1].contains(" etl ") && lines[1].contains(" Running "), "the pin first, running: {table}");
    ensure!(lines[2].contains(" scratch ") && lines[2].contains(" Stopped "), "then the recent one: {table}");

    let json: serde_json::Value =
        serde_json::from_str(&plugin_ok(&["runtime", "--user", &user, "-o", "json"])?).context("-o json")?;
    let listed: Vec<(String, String, String)> = json["items"]
        .as_array()
        .ok_or("no items")?
        .iter()
        .map(|i| (i["listing"].to_string(), i["project"].to_string(), i["phase"].to_string()))
        .collect();
    let expected = [("pinned", "etl", "Running"), ("recent", "scratch", "Stopped")]
        .map(|(l, p, ph)| (format!("{l:?}"), format!("{p:?}"), format!("{ph:?}")));
    ensure!(listed == expected, "-o json items {listed:?}");

    // The caller, found by the username the API server reports (here impersonated, with the
    // group that may list everything): the same view.
    let as_caller =
        plugin_ok(&["runtime", "--as", &username, "--as-group", "system:masters", "--now", &now])?;
    ensure!(normalize(as_caller) == table, "the caller's view differs from --user's");
    // A caller no User maps to is told so, with their groups.
    let stranger =
        plugin_fails(&["runtime", "--as", "nobody@example.com", "--as-group", "system:masters"], 1)?;
    ensure!(
        stranger.contains("no User has spec.username \"nobody@example.com\"")
            && stranger.contains("system:masters"),
        "{stranger}"
    );
    // A member who may not list Users across the cluster: the same view, from their own User
    // (which the operator lets each bound person read) and their workspaces' namespaces.
    wait_until(WAIT, "the member's right to read their own User", || async {
        Ok(kubectl(&["auth", "can-i", "get", &format!("users.dataworkspace.io/{user}"), "--as", &username])
            .is_ok_and(|o| o.trim() == "yes"))
    })
    .await?;
    let member = normalize(plugin_ok(&["runtime", "--as", &username, "--now", &now])?);
    ensure!(member == table, "the member's own view differs from --user's:\n{member}\n{table}");
    // Their right is to their own User only: not to list Users, nor to read another's.
    ensure!(
        kubectl(&["auth", "can-i", "list", "users.dataworkspace.io", "--as", &username]).is_err(),
        "a member may list Users"
    );
    // `-A` still needs the rights to list everything, and says so.
    let everything = plugin_fails(&["runtime", "-A", "--as", &username], 1)?;
    ensure!(everything.contains("you may not list") && everything.contains("forbidden"), "{everything}");
    Ok(())
}

fn env_phase(env: Option<&PythonEnvironment>) -> Option<String> {
    let env = env?;
    let status = env.status.as_ref()?;
    (status.observed_generation == env.metadata.generation).then(|| status.phase.clone()).flatten()
}

pub async fn approve_and_reject_go_through_admission(scope: Scope) -> TestResult {
    let client = scope.env.client.clone();
    let id = fixed_id('a');
    let ns = format!("dw-{id}");
    scope.involve(&ns);
    let developer = create_user(&scope, &format!("{id}-dev"), &[]).await?;
    let admin = create_user(&scope, &format!("{id}-admin"), &[]).await?;
    let ws: Workspace = from_yaml(&format!(
        "metadata: {{name: {id}}}\nspec: {{members: [{{user: {id}-dev, role: developer}}, {{user: {id}-admin, role: admin}}]}}"
    ))?;
    let workspaces: Api<Workspace> = Api::all(client.clone());
    workspaces.create(&PostParams::default(), &ws).await.context("creating the Workspace")?;
    wait_for(&workspaces, &id, "Ready=True", |w: Option<&Workspace>| ready(w, "True")).await?;
    wait_until(WAIT, "the developer and the admin to be bound", || {
        let (developer, admin, ns) = (developer.clone(), admin.clone(), ns.clone());
        async move {
            Ok(can_i(&developer, "create", "pythonenvironments.dataworkspace.io", Some(&ns))?
                && can_i(&admin, "approve", "pythonenvironments.dataworkspace.io", Some(&ns))?)
        }
    })
    .await?;
    let envs: Api<PythonEnvironment> = Api::namespaced(client.clone(), &ns);
    for (name, requester) in [("wanted", &developer), ("unpinned", &developer), ("own", &admin)] {
        let manifest = format!(
            "apiVersion: dataworkspace.io/v1alpha1\nkind: PythonEnvironment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{packages: [six==1.17.0]}}\n"
        );
        kubectl_with_input(&["apply", "--as", requester, "-f", "-"], &manifest)?;
        wait_for(&envs, name, "phase PendingApproval", |e: Option<&PythonEnvironment>| {
            env_phase(e).as_deref() == Some("PendingApproval")
        })
        .await?;
    }

    // Refusals by the API server: a developer has no `approve` verb; nobody approves their own
    // request. Both exit 1 with the policy's message.
    let by_developer =
        plugin_fails(&["reject", "wanted", "-n", &ns, "--as", &developer, "--reason", "no"], 1)?;
    ensure!(by_developer.contains("'approve' verb"), "{by_developer}");
    let hash = |e: PythonEnvironment| e.status.and_then(|s| s.spec_hash).unwrap_or_default();
    let own_hash = hash(envs.get("own").await.context("own")?);
    let own = plugin_fails(&["approve", "own", "-n", &ns, "--as", &admin, "--spec-hash", &own_hash], 1)?;
    ensure!(own.contains("requester cannot approve"), "{own}");
    // A hash other than the current spec's (the spec changed after the review) approves nothing.
    let stale =
        plugin_fails(&["approve", "wanted", "-n", &ns, "--as", &admin, "--spec-hash", "000000000000"], 1)?;
    ensure!(stale.contains("review it again"), "{stale}");
    // A reason with a line break is a usage error, refused before any request.
    let output = plugin(&["reject", "unpinned", "-n", &ns, "--as", &admin, "--reason", "one\ntwo"])?;
    ensure!(output.status.code() == Some(2), "exit {} for a bad reason", output.status);

    // The admin approves one and rejects the other: the operator builds one, rejects the other.
    let wanted_hash = hash(envs.get("wanted").await.context("wanted")?);
    let approved = plugin_ok(&[
        "approve",
        "wanted",
        "-n",
        &ns,
        "--as",
        &admin,
        "--spec-hash",
        &wanted_hash[..12],
        "--comment",
        "fine",
    ])?;
    ensure!(approved.contains("wanted approved"), "{approved}");
    let rejected =
        plugin_ok(&["reject", "unpinned", "-n", &ns, "--as", &admin, "--reason", "pin every version"])?;
    ensure!(rejected.contains("unpinned rejected"), "{rejected}");
    let wanted = wait_for(&envs, "wanted", "phase Building or Ready", |e: Option<&PythonEnvironment>| {
        matches!(env_phase(e).as_deref(), Some("Building" | "Ready"))
    })
    .await?;
    let approval = wanted.spec.approval.ok_or("no approval")?;
    ensure!(approval.approved_by == admin && approval.comment.as_deref() == Some("fine"), "{approval:?}");
    let unpinned = wait_for(&envs, "unpinned", "phase Rejected", |e: Option<&PythonEnvironment>| {
        env_phase(e).as_deref() == Some("Rejected")
    })
    .await?;
    let rejection = unpinned.spec.rejection.ok_or("no rejection")?;
    ensure!(rejection.rejected_by == admin && rejection.reason == "pin every version", "{rejection:?}");

    // `envs` shows where each stands.
    let shown = plugin_ok(&["envs", "--user", &format!("{id}-admin")])?;
    for (name, state) in [("own", "PendingApproval"), ("unpinned", "Rejected")] {
        ensure!(shown.lines().any(|l| l.contains(&format!(" {name} ")) && l.contains(state)), "{shown}");
    }
    ensure!(
        shown.lines().any(|l| l.contains(" wanted ") && (l.contains("Building") || l.contains("Ready"))),
        "{shown}"
    );
    Ok(())
}
