//! `kubectl-dataworkspace`, the kubectl plugin of the Runtime view: which projects run in your
//! workspaces and how they are doing (`runtime`), the Python environments and their approval
//! (`envs`), quota usage (`usage`), and an admin's decision on an environment (`approve`,
//! `reject`). It reads with the kubeconfig's credentials; what to show is decided by the pure
//! `view` module of the library, and `printer` lays it out.

mod printer;

use std::{io::IsTerminal, process::ExitCode};

use clap::{Args, CommandFactory, Parser, Subcommand, error::ErrorKind};
// The operator's identity settings are its own flags; the refusals that decide a view here
// (disabled, shared or reserved usernames) do not depend on them.
use dataworkspace_operator::config::Config as IdentityConfig;
use dataworkspace_operator::{
    crd::{Project, PythonEnvironment, User, Workspace},
    view::{
        approval::{self, DecisionError, DecisionPatch},
        envs, runtime,
        scope::{self, Breadth, ScopeError, Viewer},
        usage,
    },
};
use k8s_openapi::{
    api::{
        authentication::v1::SelfSubjectReview,
        authorization::v1::{SelfSubjectRulesReview, SelfSubjectRulesReviewSpec},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Config, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    config::KubeConfigOptions,
};
use printer::{Output, Printer};

const EXAMPLES: &str = "\
Examples:
  # The projects of your workspaces: pinned first, then recent, then the rest
  kubectl dataworkspace runtime

  # What the User alice sees, with more columns (for admins)
  kubectl dataworkspace runtime --user alice -o wide

  # Every workspace you can read, as JSON
  kubectl dataworkspace runtime -A -o json

  # Python environments and where their approval stands; quota usage
  kubectl dataworkspace envs
  kubectl dataworkspace usage

  # Approve or reject an environment (workspace admins; never your own request)
  kubectl dataworkspace approve pandas -n dw-analytics --comment 'pinned versions'
  kubectl dataworkspace reject pandas -n dw-analytics --reason 'pin every version'

Exit codes: 0 success, 1 error (including a refusal by the API server), 2 usage error.";

#[derive(Parser)]
#[command(
    name = "kubectl-dataworkspace",
    version,
    about = "The Runtime view of the Data Workspace platform: projects, Python environments and usage",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every command takes, named as kubectl names them.
#[derive(Args)]
struct Global {
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Act as this user (impersonation, like kubectl --as).
    #[arg(long = "as", global = true, value_name = "USERNAME")]
    as_user: Option<String>,
    /// Act as a member of this group (impersonation, repeatable; like kubectl --as-group).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    as_group: Vec<String>,
    /// The time ages are measured at (RFC 3339), instead of the clock: for reproducible output.
    #[arg(long, global = true, hide = true)]
    now: Option<Timestamp>,
}

#[derive(Subcommand)]
enum Command {
    /// Projects of your workspaces: pinned first, then recent, then the rest.
    #[command(
        after_help = "Examples:\n  kubectl dataworkspace runtime\n  kubectl dataworkspace runtime --user alice -o wide\n  kubectl dataworkspace runtime -A"
    )]
    Runtime(ViewArgs),
    /// Python environments of your workspaces and where their approval stands.
    #[command(
        after_help = "Examples:\n  kubectl dataworkspace envs\n  kubectl dataworkspace envs -A -o wide"
    )]
    Envs(ViewArgs),
    /// Each of your workspaces' use of its quota.
    #[command(after_help = "Examples:\n  kubectl dataworkspace usage\n  kubectl dataworkspace usage -A")]
    Usage(ViewArgs),
    /// Approve the Python environment spec you reviewed (as yourself; the API server checks you
    /// may).
    #[command(
        after_help = "Examples:\n  kubectl dataworkspace envs -o wide          # review: packages, and the SPEC HASH\n  kubectl dataworkspace approve pandas -n dw-analytics --spec-hash 3f1c9a0b7e2d\n  kubectl dataworkspace approve pandas -n dw-analytics --spec-hash 3f1c9a0b7e2d --comment 'versions pinned'"
    )]
    Approve {
        /// Name of the PythonEnvironment.
        env: String,
        /// Its namespace (default: the context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The spec hash you reviewed (`envs -o wide`; at least its first 12 digits). If what the
        /// environment installs changed since, nothing is approved.
        #[arg(long)]
        spec_hash: String,
        /// Why it is approved (at most 1024 characters, one line).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a Python environment's current spec, saying why (the API server checks you may).
    #[command(
        after_help = "Examples:\n  kubectl dataworkspace reject pandas -n dw-analytics --reason 'pin every version'"
    )]
    Reject {
        /// Name of the PythonEnvironment.
        env: String,
        /// Its namespace (default: the context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Why, for the requester (at most 1024 characters, one line).
        #[arg(long)]
        reason: String,
    },
}

/// What the views take.
#[derive(Args)]
struct ViewArgs {
    /// Show what this User (by object name) sees, instead of yourself: for admins.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Every workspace you can list, not only those you are a member of.
    #[arg(short = 'A', long)]
    all_workspaces: bool,
    /// Output format: wide, json or yaml (default: a table).
    #[arg(short, long, value_enum)]
    output: Option<Output>,
}

/// Why a command failed (exit code 1).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot ask the API server who you are (SelfSubjectReview): {0}")]
    WhoAmI(String),
    /// A list failed; the message says what and why (`listing_failure`).
    #[error("{0}")]
    List(String),
    #[error("{0}")]
    Scope(#[from] ScopeError),
    /// A read failed; the message says what and why (`get_failure`).
    #[error("{0}")]
    Get(String),
    #[error("{0}")]
    Decision(#[from] DecisionError),
    #[error("the API server refused to {verb} pythonenvironment {name} in {namespace}: {message}")]
    Refused { verb: &'static str, name: String, namespace: String, message: String },
    #[error("cannot print the result: {0}")]
    Print(String),
}

fn listing_failure(what: &str, source: &kube::Error) -> String {
    match source {
        kube::Error::Api(status) if status.code == 403 => format!(
            "you may not list {what} across the cluster: {}. This view reads Users, Workspaces and their Projects or environments cluster-wide, which platform admins may",
            status.message
        ),
        other => format!("cannot list {what}: {other}"),
    }
}

fn get_failure(kind: &str, name: &str, namespace: &str, source: &kube::Error) -> String {
    match source {
        kube::Error::Api(status) if status.code == 404 => {
            format!("{kind} {name:?} not found in namespace {namespace}")
        }
        other => format!("cannot read {kind} {name} in {namespace}: {other}"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checked before any request, as clap checks what it parses: exit code 2.
    let text = match &cli.command {
        Command::Reject { reason, .. } => Some(("--reason", reason.as_str())),
        Command::Approve { comment: Some(comment), .. } => Some(("--comment", comment.as_str())),
        _ => None,
    };
    if let Some((flag, text)) = text
        && let Err(error) = approval::checked_text(flag, text)
    {
        Cli::command().error(ErrorKind::InvalidValue, error).exit();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start: {error}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => fail(&failure.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {}", printer::terminal_safe(message));
    ExitCode::FAILURE
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let (client, default_namespace) = connect(&cli.global).await?;
    let now = cli.global.now.unwrap_or_else(Timestamp::now);
    match cli.command {
        Command::Runtime(args) => {
            let (user, notices, rows) = namespaced_view::<Project, _>(&client, &args, |scope, projects| {
                runtime::rows(scope, projects, now)
            })
            .await?;
            show(&args, &notices, rows.is_empty(), "projects", |p| p.runtime(user.as_deref(), &rows))
        }
        Command::Envs(args) => {
            let (user, notices, rows) =
                namespaced_view::<PythonEnvironment, _>(&client, &args, |scope, envs| {
                    envs::rows(scope, envs, now)
                })
                .await?;
            show(&args, &notices, rows.is_empty(), "Python environments", |p| p.envs(user.as_deref(), &rows))
        }
        Command::Usage(args) => {
            if let Some(user) = own_user_instead(&client, &args).await? {
                let mut scope = scope::of_own_user(&user);
                let mut workspaces = Vec::new();
                for ws in &scope.workspaces {
                    match Api::<Workspace>::all(client.clone()).get(&ws.name).await {
                        Ok(workspace) => workspaces.push(workspace),
                        Err(kube::Error::Api(status)) if status.code == 403 || status.code == 404 => {}
                        Err(e) => return Err(Failure::Get(get_failure("workspace", &ws.name, "", &e))),
                    }
                }
                let hidden: Vec<String> = scope
                    .workspaces
                    .iter()
                    .filter(|w| !workspaces.iter().any(|x| x.name_any() == w.name))
                    .map(|w| w.name.clone())
                    .collect();
                if !hidden.is_empty() {
                    scope.notices.push(format!(
                        "the usage of {} is not shown: viewers may not read their Workspace object",
                        hidden.join(", ")
                    ));
                }
                let rows = usage::rows(&scope, &workspaces);
                show(&args, &scope.notices, rows.is_empty(), "quota usage", |p| {
                    p.usage(Some(&user.name_any()), &rows)
                })
            } else {
                let (users, workspaces) =
                    tokio::try_join!(list::<User>(&client), list::<Workspace>(&client))?;
                let (user, scope) = resolve(&client, &args, &users, &workspaces).await?;
                let rows = usage::rows(&scope, &workspaces);
                show(&args, &scope.notices, rows.is_empty(), "quota usage", |p| {
                    p.usage(user.as_deref(), &rows)
                })
            }
        }
        Command::Approve { env, namespace, spec_hash, comment } => {
            let namespace = namespace.unwrap_or(default_namespace);
            decide(&client, "approve", &env, &namespace, |env, me| {
                approval::approve(env, me, &spec_hash, comment.as_deref())
            })
            .await
        }
        Command::Reject { env, namespace, reason } => {
            let namespace = namespace.unwrap_or(default_namespace);
            decide(&client, "reject", &env, &namespace, |env, me| approval::reject(env, me, &reason)).await
        }
    }
}

/// A client for the kubeconfig (its current context, or `--context`), impersonating as asked,
/// and the context's namespace.
async fn connect(global: &Global) -> Result<(Client, String), Failure> {
    let mut config = match &global.context {
        Some(context) => Config::from_kubeconfig(&KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        })
        .await
        .map_err(|e| Failure::Kubeconfig(e.to_string()))?,
        None => Config::infer().await.map_err(|e| Failure::Kubeconfig(e.to_string()))?,
    };
    if let Some(user) = &global.as_user {
        config.auth_info.impersonate = Some(user.clone());
    }
    if !global.as_group.is_empty() {
        config.auth_info.impersonate_groups = Some(global.as_group.clone());
    }
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| Failure::Kubeconfig(e.to_string()))?;
    Ok((client, namespace))
}

/// The caller's username and groups, as the API server authenticated them.
async fn who_am_i(client: &Client) -> Result<(String, Vec<String>), Failure> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| Failure::WhoAmI(e.to_string()))?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    Ok((info.username.unwrap_or_default(), info.groups.unwrap_or_default()))
}

/// A view of namespaced objects: the User it is for, what the person should be told, and the
/// rows `rows` makes of the scope and the objects it covers. A member who may not list Users
/// gets their own workspaces, from their own User, and only their namespaces are listed;
/// anyone else gets the scope resolved from the cluster-wide lists.
async fn namespaced_view<K, R>(
    client: &Client,
    args: &ViewArgs,
    rows: impl Fn(&scope::Scope<'_>, &[K]) -> Vec<R>,
) -> Result<(Option<String>, Vec<String>, Vec<R>), Failure>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(user) = own_user_instead(client, args).await? {
        let scope = scope::of_own_user(&user);
        let objects = list_in::<K>(client, &scope).await?;
        return Ok((Some(user.name_any()), scope.notices.clone(), rows(&scope, &objects)));
    }
    let (users, workspaces, objects) =
        tokio::try_join!(list::<User>(client), list::<Workspace>(client), list::<K>(client))?;
    let (user, scope) = resolve(client, args, &users, &workspaces).await?;
    Ok((user, scope.notices.clone(), rows(&scope, &objects)))
}

/// For a view of the caller's own workspaces (no `--user`, no `-A`) by someone who may not list
/// Users: their own User, which the operator lets each bound person read (the ClusterRole
/// `dataworkspace-user-<name>`; a SelfSubjectRulesReview names it). `None` when Users can be
/// listed (the full view applies) or the view asks for more than one's own.
async fn own_user_instead(client: &Client, args: &ViewArgs) -> Result<Option<User>, Failure> {
    if args.user.is_some() || args.all_workspaces {
        return Ok(None);
    }
    match Api::<User>::all(client.clone()).list_metadata(&ListParams::default().limit(1)).await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        _ => return Ok(None),
    }
    let (username, groups) = who_am_i(client).await?;
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some("default".into()) },
        ..SelfSubjectRulesReview::default()
    };
    let review = Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| Failure::WhoAmI(format!("cannot review your rights (SelfSubjectRulesReview): {e}")))?;
    let names: Vec<String> = review
        .status
        .map(|s| s.resource_rules)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.api_groups.iter().flatten().any(|g| g == dataworkspace_operator::crd::GROUP)
                && r.resources.iter().flatten().any(|k| k == "users")
                && r.verbs.iter().any(|v| v == "get" || v == "*")
        })
        .flat_map(|r| r.resource_names.unwrap_or_default())
        .collect();
    for name in names {
        if let Ok(user) = Api::<User>::all(client.clone()).get(&name).await
            && user.spec.username == username
        {
            return Ok(Some(user));
        }
    }
    Err(Failure::Scope(ScopeError::NoUser { username, groups }))
}

/// The objects of a kind in each namespace of a view (what a member may list).
async fn list_in<K>(client: &Client, scope: &scope::Scope<'_>) -> Result<Vec<K>, Failure>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let mut all = Vec::new();
    for ws in &scope.workspaces {
        let api = Api::<K>::namespaced(client.clone(), &ws.namespace);
        let listed = api.list(&ListParams::default()).await.map_err(|e| {
            Failure::List(listing_failure(&format!("{} in {}", plural::<K>(), ws.namespace), &e))
        })?;
        all.extend(listed.items);
    }
    Ok(all)
}

/// Every object of a kind the caller may list, across namespaces.
async fn list<K>(client: &Client) -> Result<Vec<K>, Failure>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let what = plural::<K>();
    let api = Api::<K>::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| Failure::List(listing_failure(what, &e)))
}

fn plural<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "User" => "users.dataworkspace.io",
        "Workspace" => "workspaces.dataworkspace.io",
        "Project" => "projects.dataworkspace.io",
        _ => "pythonenvironments.dataworkspace.io",
    }
}

/// Whose view it is (`--user`, or the caller) and what it covers (`-A`).
async fn resolve<'a>(
    client: &Client,
    args: &ViewArgs,
    users: &'a [User],
    workspaces: &[Workspace],
) -> Result<(Option<String>, scope::Scope<'a>), Failure> {
    let breadth = if args.all_workspaces { Breadth::All } else { Breadth::Member };
    let scope = match &args.user {
        Some(name) => {
            scope::resolve(Viewer::User(name), breadth, users, workspaces, &IdentityConfig::default())?
        }
        None => {
            let (username, groups) = who_am_i(client).await?;
            scope::resolve(
                Viewer::Caller { username: &username, groups: &groups },
                breadth,
                users,
                workspaces,
                &IdentityConfig::default(),
            )?
        }
    };
    Ok((scope.user.and_then(|u| u.metadata.name.clone()), scope))
}

/// Prints a view on stdout, and on stderr what the person should know: the notices, and that
/// nothing was found (as kubectl says "No resources found").
fn show(
    args: &ViewArgs,
    notices: &[String],
    empty: bool,
    what: &str,
    print: impl FnOnce(&Printer) -> Result<String, String>,
) -> Result<(), Failure> {
    let output = args.output.unwrap_or(Output::Table);
    let no_color = std::env::var_os("NO_COLOR");
    let colour = printer::use_colour(output, std::io::stdout().is_terminal(), no_color.as_deref());
    let text = print(&Printer { output, colour }).map_err(Failure::Print)?;
    for notice in notices {
        eprintln!("warning: {}", printer::terminal_safe(notice));
    }
    if empty && matches!(output, Output::Table | Output::Wide) {
        eprintln!("No {what} found.");
    }
    out(&text);
    Ok(())
}

/// Reads the environment, builds the decision as the caller, and writes it through the API
/// server, whose admission policy has the last word.
async fn decide(
    client: &Client,
    verb: &'static str,
    name: &str,
    namespace: &str,
    build: impl FnOnce(&PythonEnvironment, &str) -> Result<DecisionPatch, DecisionError>,
) -> Result<(), Failure> {
    let api: Api<PythonEnvironment> = Api::namespaced(client.clone(), namespace);
    let env = api
        .get(name)
        .await
        .map_err(|e| Failure::Get(get_failure("pythonenvironment", name, namespace, &e)))?;
    let (username, _) = who_am_i(client).await?;
    let patch = build(&env, &username)?;
    let hash = patch
        .spec
        .approval
        .as_ref()
        .map(|a| a.spec_hash.clone())
        .or_else(|| patch.spec.rejection.as_ref().map(|r| r.spec_hash.clone()))
        .unwrap_or_default();
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|error| {
        Failure::Refused {
            verb,
            name: name.into(),
            namespace: namespace.into(),
            message: match error {
                kube::Error::Api(status) if status.code == 409 => {
                    "it changed since it was read; look at it again and retry".into()
                }
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            },
        }
    })?;
    let past = if verb == "approve" { "approved" } else { "rejected" };
    out(&format!(
        "pythonenvironment.dataworkspace.io/{name} {past} (spec hash {hash}) as {}\n",
        printer::terminal_safe(&username)
    ));
    Ok(())
}
