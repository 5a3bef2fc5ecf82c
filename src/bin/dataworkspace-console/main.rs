//! `dataworkspace-console`: the read-only web console of the Data Workspace platform. It
//! watches Workspaces, Users, Projects and PythonEnvironments through reflector caches and
//! shows each person the Runtime, Studio and Admin areas of their workspaces, as server-side
//! HTML (a little JavaScript reloads a page when the caches change; everything works without).
//!
//! Who is looking comes from the authenticating proxy in front of it (oauth2-proxy): the
//! `X-Forwarded-Email` header, trusted only on a request whose `GAP-Signature` the proxy made
//! with the shared key. Anything else is refused with 403. There is no write path: the
//! console's only requests to the API server are watches, lists and gets, and never of Secrets.
//!
//! Two listeners: the pages (on loopback by default, behind the proxy in the same pod) and
//! `/healthz`, `/readyz`, `/metrics` on their own port.

mod metrics;
mod pages;

use std::{
    convert::Infallible,
    fmt::Debug,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::get,
};
use clap::Parser;
use dataworkspace_operator::{
    crd::{Project, PythonEnvironment, User, Workspace},
    signature::{Key, Signed},
    telemetry::{self, LogFormat},
    view::console,
};
use futures::StreamExt;
use k8s_openapi::{api::core::v1::Event, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::{info, warn};

/// Largest request body read to check its signature (the console takes no input; a GET has none).
const BODY_LIMIT: usize = 64 * 1024;
/// Changes are announced to open pages at most this often.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// Events shown on a project page.
const EVENTS_SHOWN: u32 = 20;

/// Security headers of every page: no inline script or style, no framing, no sniffing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[derive(Parser)]
#[command(
    name = "dataworkspace-console",
    version,
    about = "Read-only web console of the Data Workspace platform"
)]
struct Args {
    /// Where the pages are served. Keep it on loopback: only the authenticating proxy in the
    /// same pod should reach it (the signature check refuses anything else anyway).
    #[arg(long, env = "DWC_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, env = "DWC_HEALTH_LISTEN", default_value = "0.0.0.0:8081")]
    health_listen: SocketAddr,
    /// File holding the key the proxy signs requests with (its `--signature-key` without the
    /// `sha256:` prefix, or with it).
    #[arg(long, env = "DWC_SIGNATURE_KEY_FILE")]
    signature_key_file: PathBuf,
    /// Log format.
    #[arg(long, env = "DWC_LOG_FORMAT", value_enum, default_value = "json")]
    log_format: LogFormat,
    /// The operator's `--username-prefix`: a User whose username lacks it is bound to nothing
    /// by the operator, so it sees nothing here either. Set it exactly as the operator's.
    #[arg(long, env = "DWO_USERNAME_PREFIX")]
    username_prefix: Option<String>,
    /// The operator's `--team-group-prefix` (set it exactly as the operator's).
    #[arg(long, env = "DWO_TEAM_GROUP_PREFIX")]
    team_group_prefix: Option<String>,
}

/// How long a kind's watch may fail before the console stops answering from its cache (an
/// access decision on a stale cache could show a removed member their old workspace).
const STALE_AFTER: Duration = Duration::from_secs(60);
/// Live-refresh streams open at once; more are refused (429), and a page then simply does not
/// refresh itself.
const STREAMS: usize = 256;

/// What every handler shares.
struct Console {
    users: Store<DeserializeGuard<User>>,
    workspaces: Store<DeserializeGuard<Workspace>>,
    projects: Store<DeserializeGuard<Project>>,
    environments: Store<DeserializeGuard<PythonEnvironment>>,
    client: Client,
    key: Key,
    /// The operator's identity settings, so that whom it does not bind sees nothing here.
    identity: dataworkspace_operator::config::Config,
    /// When each kind's watch began failing (seconds since the epoch; 0 while it works).
    failing: Arc<[AtomicU64; 4]>,
    streams: Arc<tokio::sync::Semaphore>,
    ready: AtomicBool,
    changes: watch::Sender<u64>,
    metrics: metrics::Metrics,
}

type Shared = Arc<Console>;

/// The objects of the caches at one moment.
pub struct Snapshot {
    pub users: Vec<User>,
    pub workspaces: Vec<Workspace>,
    pub projects: Vec<Project>,
    pub environments: Vec<PythonEnvironment>,
    pub now: Timestamp,
}

impl Console {
    /// Who the person behind `email` is, from one snapshot of the caches (their User, workspaces
    /// and role), under the operator's identity settings.
    fn person<'s>(&self, email: &str, snapshot: &'s Snapshot) -> console::Person<'s> {
        console::identify(email, &snapshot.users, &snapshot.workspaces, &self.identity)
    }

    /// Whether some kind's watch has been failing for longer than [`STALE_AFTER`].
    fn stale(&self) -> bool {
        let now = epoch_seconds();
        self.failing.iter().any(|since| {
            let since = since.load(Ordering::Relaxed);
            since != 0 && now.saturating_sub(since) > STALE_AFTER.as_secs()
        })
    }

    fn snapshot(&self) -> Snapshot {
        // Objects the types cannot read are left out (the operator reports them on the object).
        fn all<K: Resource<DynamicType = ()> + Clone>(store: &Store<DeserializeGuard<K>>) -> Vec<K> {
            store.state().iter().filter_map(|o| o.0.as_ref().ok().cloned()).collect()
        }
        Snapshot {
            users: all(&self.users),
            workspaces: all(&self.workspaces),
            projects: all(&self.projects),
            environments: all(&self.environments),
            now: Timestamp::now(),
        }
    }
}

/// The signed-in person's e-mail address, set by [`signed_in`].
#[derive(Clone)]
struct Email(String);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!(%message, "the console stopped");
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let secret = std::fs::read_to_string(&args.signature_key_file)
        .map_err(|e| format!("reading the signature key file {}: {e}", args.signature_key_file.display()))?;
    let key = Key::new(&secret).map_err(|e| format!("{}: {e}", args.signature_key_file.display()))?;
    let client = Client::try_default().await.map_err(|e| format!("connecting to the API server: {e}"))?;
    let (changes, _) = watch::channel(0u64);
    let failing: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let identity = dataworkspace_operator::config::Config {
        username_prefix: args.username_prefix.clone(),
        team_group_prefix: args.team_group_prefix.clone(),
        ..Default::default()
    };
    let console = Arc::new(Console {
        users: reflect(Api::all(client.clone()), changes.clone(), failing.clone(), 0),
        workspaces: reflect(Api::all(client.clone()), changes.clone(), failing.clone(), 1),
        projects: reflect(Api::all(client.clone()), changes.clone(), failing.clone(), 2),
        environments: reflect(Api::all(client.clone()), changes.clone(), failing.clone(), 3),
        client,
        key,
        identity,
        failing,
        streams: Arc::new(tokio::sync::Semaphore::new(STREAMS)),
        ready: AtomicBool::new(false),
        changes,
        metrics: metrics::Metrics::default(),
    });
    tokio::spawn({
        let console = console.clone();
        async move {
            let started = Instant::now();
            let synced = futures::future::join4(
                console.users.wait_until_ready(),
                console.workspaces.wait_until_ready(),
                console.projects.wait_until_ready(),
                console.environments.wait_until_ready(),
            )
            .await;
            if let (Ok(()), Ok(()), Ok(()), Ok(())) = synced {
                console.ready.store(true, Ordering::Release);
                info!(seconds = started.elapsed().as_secs_f64(), "caches synced");
            }
        }
    });

    let pages = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.listen))?;
    let health = tokio::net::TcpListener::bind(args.health_listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", args.health_listen))?;
    info!(pages = %args.listen, health = %args.health_listen, "serving");
    let shutdown = || async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let serve_pages = axum::serve(pages, router(console.clone())).with_graceful_shutdown(shutdown());
    let serve_health = axum::serve(health, health_router(console)).with_graceful_shutdown(shutdown());
    let (a, b) = tokio::join!(serve_pages, serve_health);
    a.and(b).map_err(|e| format!("serving: {e}"))
}

/// A reflector cache of one kind (managed fields dropped: never shown, half the bytes), whose
/// every change bumps `changes`. Objects are read through `DeserializeGuard`, so one object the
/// types cannot read (a tenant's, passing the schema) never stalls the kind's watch; while the
/// watch fails, `failing[slot]` holds since when.
fn reflect<K>(
    api: Api<DeserializeGuard<K>>,
    changes: watch::Sender<u64>,
    failing: Arc<[AtomicU64; 4]>,
    slot: usize,
) -> Store<DeserializeGuard<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    failing[slot].store(0, Ordering::Relaxed);
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(error) => {
                    let _ = failing[slot].compare_exchange(
                        0,
                        epoch_seconds(),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    warn!(%kind, %error, "watch failed; retrying");
                }
            }
        }
    });
    reader
}

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runtime") }))
        .route("/runtime", get(runtime))
        .route("/runtime/{namespace}/{name}", get(project))
        .route("/studio", get(studio))
        .route("/admin", get(admin))
        .route("/events", get(events))
        .route("/static/console.css", get(|| async { asset("text/css; charset=utf-8", pages::CSS) }))
        .route("/static/live.js", get(|| async { asset("text/javascript; charset=utf-8", pages::JS) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn_with_state(console.clone(), signed_in))
        .layer(middleware::map_response(security_headers))
        .with_state(console)
}

fn health_router(console: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(c): State<Shared>| async move {
                if c.ready.load(Ordering::Acquire) && !c.stale() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(c): State<Shared>| async move {
                let body = c.metrics.encode(&c.snapshot_counts());
                ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body)
            }),
        )
        .with_state(console)
}

impl Console {
    fn snapshot_counts(&self) -> [(&'static str, usize); 4] {
        [
            ("Workspace", self.workspaces.state().len()),
            ("User", self.users.state().len()),
            ("Project", self.projects.state().len()),
            ("PythonEnvironment", self.environments.state().len()),
        ]
    }
}

/// Admits a request only with a valid proxy signature and one `X-Forwarded-Email`; records the
/// address for the handlers. Everything else is 403, and counted by reason.
async fn signed_in(State(console): State<Shared>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let refuse = |reason: &'static str, message: &str| {
        console.metrics.refused(reason);
        warn!(reason, path = parts.uri.path(), "request refused");
        (StatusCode::FORBIDDEN, [(header::CACHE_CONTROL, "no-store")], format!("{message}\n")).into_response()
    };
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return refuse("BodyTooLarge", "the request body is too large");
    };
    let headers: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    let signed = Signed {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        body: &body,
    };
    if let Err(refusal) = console.key.verify(signed, &headers) {
        return refuse(refusal.reason(), &refusal.to_string());
    }
    // Counted before any is read, so a second, unreadable value never leaves a forged one alone.
    let emails: Vec<&HeaderValue> = parts.headers.get_all("x-forwarded-email").iter().collect();
    let [email] = emails.as_slice() else {
        return refuse("NoIdentity", "the proxy passed no single e-mail address for this request");
    };
    let Ok(email) = email.to_str() else {
        return refuse("NoIdentity", "the proxy passed no single e-mail address for this request");
    };
    if console.stale() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CACHE_CONTROL, "no-store")],
            "the console cannot follow the cluster right now (a watch keeps failing); try again shortly\n",
        )
            .into_response();
    }
    parts.extensions.insert(Email(email.to_string()));
    let started = Instant::now();
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    console.metrics.served(response.status().as_u16(), started.elapsed());
    response
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, max-age=300")], body)
        .into_response()
}

fn page(markup: maud::Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        markup.into_string(),
    )
        .into_response()
}

async fn runtime(
    State(console): State<Shared>,
    axum::Extension(Email(email)): axum::Extension<Email>,
) -> Response {
    let snapshot = console.snapshot();
    let person = console.person(&email, &snapshot);
    page(pages::runtime(&person, &snapshot))
}

async fn studio(
    State(console): State<Shared>,
    axum::Extension(Email(email)): axum::Extension<Email>,
) -> Response {
    let snapshot = console.snapshot();
    let person = console.person(&email, &snapshot);
    page(pages::studio(&person, &snapshot))
}

async fn admin(
    State(console): State<Shared>,
    axum::Extension(Email(email)): axum::Extension<Email>,
) -> Response {
    let snapshot = console.snapshot();
    let person = console.person(&email, &snapshot);
    page(pages::admin(&person, &snapshot, &console.identity))
}

/// A project page: only for a project of one of the person's workspaces; anything else is the
/// same 404, so the page tells nobody what exists elsewhere.
async fn project(
    State(console): State<Shared>,
    axum::Extension(Email(email)): axum::Extension<Email>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let snapshot = console.snapshot();
    let person = console.person(&email, &snapshot);
    let valid = dataworkspace_operator::names::check_dns_label(&namespace).is_ok()
        && dataworkspace_operator::names::check_dns_label(&name).is_ok();
    let found = valid.then(|| person.scope.workspace_of(&namespace)).flatten().and_then(|_| {
        snapshot
            .projects
            .iter()
            .find(|p| p.metadata.namespace.as_deref() == Some(&namespace) && p.name_any() == name)
    });
    let Some(found) = found else {
        let mut response = page(pages::not_found(&person, &snapshot));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    // Events are not cached (there are many, and only this page shows them): one list of this
    // project's, by field selector, when the page is asked for.
    let events: Api<Event> = Api::namespaced(console.client.clone(), &namespace);
    let selector = format!("involvedObject.kind=Project,involvedObject.name={name}");
    let events = match events.list(&ListParams::default().fields(&selector).limit(EVENTS_SHOWN * 5)).await {
        Ok(list) => Ok(list.items),
        Err(error) => {
            warn!(%namespace, %name, %error, "listing the project's events");
            Err("the project's events could not be listed".to_string())
        }
    };
    page(pages::project(&person, &snapshot, found, events, EVENTS_SHOWN as usize))
}

/// Server-Sent Events: a `change` event when the caches changed, at most every
/// [`ANNOUNCE_EVERY`]. The page reloads itself on one (live.js).
/// Only for a person with a User (anyone the identity provider knows reaches the console), and
/// at most [`STREAMS`] at once.
async fn events(
    State(console): State<Shared>,
    axum::Extension(Email(email)): axum::Extension<Email>,
) -> Response {
    let known = {
        let snapshot = console.snapshot();
        console.person(&email, &snapshot).scope.user.is_some()
    };
    if !known {
        return (StatusCode::FORBIDDEN, "live refresh is for people with a User\n").into_response();
    }
    let Ok(permit) = console.streams.clone().try_acquire_owned() else {
        return (StatusCode::TOO_MANY_REQUESTS, "too many live pages open; reload by hand\n").into_response();
    };
    let receiver = console.changes.subscribe();
    let stream = futures::stream::unfold((receiver, permit), |(mut receiver, permit)| async move {
        receiver.changed().await.ok()?;
        tokio::time::sleep(ANNOUNCE_EVERY).await;
        receiver.borrow_and_update();
        Some((Ok::<_, Infallible>(SseEvent::default().event("change").data("")), (receiver, permit)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
