//! The `dataworkspace-operator` binary: `run` starts the controllers, `crd` prints the CRDs.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
};

use clap::{Parser, Subcommand};
use dataworkspace_operator::{
    build::{
        access::{AccessLayer, Gateway},
        gateway::HTTPRoute,
    },
    config::Config,
    controller::{self, Managed, check_crd_installed},
    crd::{self, Project, PythonEnvironment, User, Workspace},
    leader,
    metrics::Metrics,
    server::{self, Health},
    telemetry::{self, LogFormat},
    throttle,
};
use futures::FutureExt;
use tracing::{error, info};

#[derive(Parser)]
#[command(version, about = "Kubernetes operator for Workspaces, Users, PythonEnvironments and Projects")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the controllers against the cluster of the kubeconfig (or in-cluster configuration).
    Run {
        /// Address of the HTTP endpoint serving /metrics, /healthz and /readyz.
        #[arg(long, env = "DWO_LISTEN_ADDRESS", default_value = "0.0.0.0:8080")]
        listen_address: SocketAddr,
        /// Log format; the level comes from RUST_LOG (default `info`).
        #[arg(long, env = "DWO_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Also bind each team as the group `<prefix><team>`, for clusters whose authentication
        /// supplies team groups (for example `oidc:`).
        #[arg(long, env = "DWO_TEAM_GROUP_PREFIX")]
        team_group_prefix: Option<String>,
        #[command(flatten)]
        access: AccessFlags,
        /// Every username must start with this prefix (the API server's
        /// `--oidc-username-prefix`); ServiceAccount usernames are exempt. Users without it
        /// are not bound and report `UsernamePrefix`.
        #[arg(long, env = "DWO_USERNAME_PREFIX")]
        username_prefix: Option<String>,
        /// Address ranges (CIDRs, comma-separated) that no workspace may reach, besides the
        /// always-denied link-local metadata range: for example the cluster's pod and service
        /// ranges, which also cuts workspaces off from the operator's own endpoints.
        #[arg(long, env = "DWO_EGRESS_DENY_CIDRS", value_delimiter = ',', value_parser = parse_cidr)]
        egress_deny_cidrs: Vec<String>,
        /// Delete RoleBindings in workspace namespaces that the operator did not make. Without
        /// it they are only reported (`Access` condition `ForeignRoleBindings`).
        #[arg(long, env = "DWO_REMOVE_FOREIGN_ROLEBINDINGS")]
        remove_foreign_rolebindings: bool,
        /// Prefix of every namespace the operator creates, so that a Workspace can never claim
        /// a name other software expects (`cert-manager`, `argocd`, …). A namespace a cluster
        /// admin hands over may have any name. Empty turns the check off.
        #[arg(long, env = "DWO_NAMESPACE_PREFIX", default_value = "dw-")]
        namespace_prefix: String,
        /// Image that Streamlit apps from Git run in when neither the Project nor its Python
        /// environment names one; it must contain Streamlit (nothing is installed at start).
        #[arg(long, env = "DWO_STREAMLIT_IMAGE")]
        streamlit_image: Option<String>,
        /// Repository of the Spark images Projects run when they name none: the image is
        /// `<repository>:<version>` (for a mirror of apache/spark, such as
        /// `registry.example.com/apache/spark`).
        #[arg(long, env = "DWO_SPARK_IMAGE_REPOSITORY", value_parser = image_repository)]
        spark_image_repository: Option<String>,
        /// Where Airflow images come from when a Project names none: tagged
        /// `<repository>:<version>` (for a mirror of apache/airflow, such as
        /// `registry.example.com/apache/airflow`).
        #[arg(long, env = "DWO_AIRFLOW_IMAGE_REPOSITORY", value_parser = image_repository)]
        airflow_image_repository: Option<String>,
        #[command(flatten)]
        election: ElectionFlags,
        #[command(flatten)]
        write_limit: WriteLimitFlags,
    },
    /// Print all CustomResourceDefinitions as one YAML stream, or write one file per kind.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
}

/// The access layer's settings. Without `--access-namespace` the layer is off: no UI is exposed
/// outside the cluster, and each keeps its own authentication.
#[derive(clap::Args)]
struct AccessFlags {
    /// Namespace the platform made for the authenticating proxies (one oauth2-proxy per exposed
    /// UI), their access lists, cookie secrets and routes. Setting it turns the layer on.
    #[arg(
        long,
        env = "DWO_ACCESS_NAMESPACE",
        requires_all = ["access_domain", "access_issuer_url", "access_client_id", "access_client_secret"]
    )]
    access_namespace: Option<String>,
    /// DNS domain every exposed host must lie inside, for example `data.example.com`.
    #[arg(long, env = "DWO_ACCESS_DOMAIN", requires = "access_namespace")]
    access_domain: Option<String>,
    /// OpenID Connect issuer URL of the identity provider.
    #[arg(long, env = "DWO_ACCESS_ISSUER_URL", requires = "access_namespace")]
    access_issuer_url: Option<String>,
    /// Client ID registered with the identity provider.
    #[arg(long, env = "DWO_ACCESS_CLIENT_ID", requires = "access_namespace")]
    access_client_id: Option<String>,
    /// Secret in the access namespace holding the client secret under `client-secret`.
    #[arg(long, env = "DWO_ACCESS_CLIENT_SECRET", requires = "access_namespace")]
    access_client_secret: Option<String>,
    /// The oauth2-proxy image.
    #[arg(long, env = "DWO_ACCESS_PROXY_IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    access_proxy_image: String,
    /// IngressClass of the Ingresses routing exposed hosts to their proxies.
    #[arg(long, env = "DWO_ACCESS_INGRESS_CLASS", requires = "access_namespace")]
    access_ingress_class: Option<String>,
    /// TLS Secret in the access namespace for every exposed host (a wildcard certificate of
    /// the domain), named in each Ingress.
    #[arg(long, env = "DWO_ACCESS_TLS_SECRET", requires = "access_ingress_class")]
    access_tls_secret: Option<String>,
    /// Gateway the HTTPRoutes of exposed hosts attach to: `<namespace>/<name>[/<listener>]`.
    #[arg(long, env = "DWO_ACCESS_GATEWAY", requires = "access_namespace", value_parser = parse_gateway)]
    access_gateway: Option<Gateway>,
}

/// Leader election, for running several replicas of which one reconciles.
#[derive(clap::Args)]
struct ElectionFlags {
    /// Reconcile only while holding a Lease in the operator's namespace; other replicas stand
    /// by, ready to take over.
    #[arg(long, env = "DWO_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the Lease (default: `POD_NAMESPACE`, else the ServiceAccount's namespace).
    #[arg(long, env = "DWO_LEADER_ELECT_NAMESPACE", requires = "leader_elect")]
    leader_elect_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "DWO_LEADER_ELECT_LEASE", default_value = "dataworkspace-operator")]
    leader_elect_lease: String,
}

impl ElectionFlags {
    /// The Lease to contend for, when election is on.
    fn settings(self) -> Result<Option<leader::Settings>, String> {
        if !self.leader_elect {
            return Ok(None);
        }
        let namespace = self.leader_elect_namespace.or_else(leader::own_namespace).ok_or(
            "--leader-elect needs the Lease's namespace: --leader-elect-namespace, POD_NAMESPACE, or an in-cluster ServiceAccount",
        )?;
        for (flag, name) in
            [("--leader-elect-namespace", &namespace), ("--leader-elect-lease", &self.leader_elect_lease)]
        {
            dataworkspace_operator::names::check_dns_label(name)
                .map_err(|e| format!("{flag} {name:?}: {e}"))?;
        }
        Ok(Some(leader::Settings { namespace, name: self.leader_elect_lease, identity: leader::identity() }))
    }
}

/// The client-side limit on write requests (see `dataworkspace_operator::throttle`).
#[derive(clap::Args, Clone, Copy)]
struct WriteLimitFlags {
    /// Write requests per second the operator sends at most, on average (applies, status
    /// writes, Events, deletes; reads come from caches): a rollout of many objects then leaves
    /// the API server room for everyone else. 0 turns the limit off. Leader election is exempt.
    #[arg(long, env = "DWO_API_WRITE_RATE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    api_write_rate: u32,
    /// Write requests that may go at once after a quiet spell (at least 1).
    #[arg(long, env = "DWO_API_WRITE_BURST", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    api_write_burst: u32,
}

/// The pinned oauth2-proxy image.
const DEFAULT_PROXY_IMAGE: &str = "quay.io/oauth2-proxy/oauth2-proxy:v7.15.6";

impl AccessFlags {
    /// The layer, when turned on: a route (Ingress or Gateway) is required, and every name is
    /// checked before it reaches an object.
    fn layer(self) -> Result<Option<AccessLayer>, String> {
        let Some(namespace) = self.access_namespace else { return Ok(None) };
        if self.access_ingress_class.is_none() && self.access_gateway.is_none() {
            return Err("the access layer needs a route: --access-ingress-class or --access-gateway".into());
        }
        let client_secret = self.access_client_secret.unwrap_or_default();
        for (flag, name) in [("--access-namespace", &namespace), ("--access-client-secret", &client_secret)] {
            dataworkspace_operator::names::check_dns_label(name)
                .map_err(|e| format!("{flag} {name:?}: {e}"))?;
        }
        let domain = self.access_domain.unwrap_or_default();
        if !domain.contains('.') {
            return Err(format!(
                "--access-domain {domain:?} must have at least two labels, such as data.example.com"
            ));
        }
        domain
            .split('.')
            .try_for_each(dataworkspace_operator::names::check_dns_label)
            .map_err(|e| format!("--access-domain {domain:?}: {e}"))?;
        let issuer_url = self.access_issuer_url.unwrap_or_default();
        let issuer =
            url::Url::parse(&issuer_url).map_err(|e| format!("--access-issuer-url {issuer_url:?}: {e}"))?;
        if issuer.scheme() != "https"
            || issuer.host_str().is_none()
            || issuer.password().is_some()
            || !issuer.username().is_empty()
        {
            return Err(format!(
                "--access-issuer-url {issuer_url:?} must be an https:// URL without credentials"
            ));
        }
        Ok(Some(AccessLayer {
            namespace,
            domain,
            issuer_url,
            client_id: self.access_client_id.unwrap_or_default(),
            client_secret,
            image: self.access_proxy_image,
            ingress_class: self.access_ingress_class,
            tls_secret: self.access_tls_secret,
            gateway: self.access_gateway,
        }))
    }
}

/// `<namespace>/<name>[/<listener>]`.
fn parse_gateway(value: &str) -> Result<Gateway, String> {
    let parts: Vec<&str> = value.split('/').collect();
    let (namespace, name, listener) = match parts.as_slice() {
        [namespace, name] => (*namespace, *name, None),
        [namespace, name, listener] => (*namespace, *name, Some(listener.to_string())),
        _ => return Err("expected <namespace>/<name>[/<listener>]".into()),
    };
    for part in [namespace, name].into_iter().chain(listener.as_deref()) {
        dataworkspace_operator::names::check_dns_label(part).map_err(|e| format!("{part:?}: {e}"))?;
    }
    Ok(Gateway { namespace: namespace.into(), name: name.into(), listener })
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd { output_dir } => match write_crds(output_dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            listen_address,
            log_format,
            team_group_prefix,
            access,
            username_prefix,
            egress_deny_cidrs,
            remove_foreign_rolebindings,
            namespace_prefix,
            streamlit_image,
            spark_image_repository,
            airflow_image_repository,
            election,
            write_limit,
        } => {
            let (access, election) = match access.layer().and_then(|a| Ok((a, election.settings()?))) {
                Ok(settings) => settings,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let config = Config {
                team_group_prefix,
                access,
                username_prefix,
                egress_deny_cidrs,
                remove_foreign_role_bindings: remove_foreign_rolebindings,
                namespace_prefix,
                streamlit_image,
                spark_image_repository,
                airflow_image_repository,
            };
            telemetry::init(log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(listen_address, config, election, write_limit)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A CIDR as a NetworkPolicy takes it: an IPv4 or IPv6 address and a prefix length.
fn parse_cidr(value: &str) -> Result<String, String> {
    let (address, bits) = value.trim().split_once('/').ok_or("expected <address>/<prefix length>")?;
    let address: std::net::IpAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let bits: u8 = bits.parse().map_err(|e| format!("{bits}: {e}"))?;
    if bits > if address.is_ipv4() { 32 } else { 128 } {
        return Err(format!("prefix length {bits} is too long"));
    }
    Ok(format!("{address}/{bits}"))
}

fn write_crds(output_dir: Option<PathBuf>) -> Result<(), Box<dyn std::error::Error>> {
    match output_dir {
        // Written, not printed: a closed pipe (`| head`) is an error to report, not a panic.
        None => std::io::Write::write_all(&mut std::io::stdout().lock(), crd::all_yaml()?.as_bytes())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for definition in crd::all() {
                std::fs::write(dir.join(crd::file_name(&definition)), crd::to_yaml(&definition)?)?;
            }
        }
    }
    Ok(())
}

async fn run(
    listen_address: SocketAddr,
    config: Config,
    election: Option<leader::Settings>,
    write_limit: WriteLimitFlags,
) -> Result<(), String> {
    let client_config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot configure the Kubernetes client (kubeconfig or in-cluster): {e}"))?;
    let metrics = Arc::new(Metrics::default());
    let (client, limiter) = limited_client(client_config.clone(), write_limit, &metrics)?;
    check_crd_installed::<Workspace>(&client).await?;
    check_crd_installed::<User>(&client).await?;
    check_crd_installed::<PythonEnvironment>(&client).await?;
    check_crd_installed::<Project>(&client).await?;
    info!(kinds = ?[Workspace::KIND, User::KIND, PythonEnvironment::KIND, Project::KIND], "CRDs installed");
    if let Some(layer) = &config.access {
        check_access_layer(&client, layer).await?;
    }

    let shutdown = shutdown_signal().shared();
    if let Some(limiter) = limiter {
        // The passes still running on a shutdown finish without waiting for the limit, so the
        // process is done (and the Lease handed over) within the grace period.
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.await;
            limiter.open();
        });
    }
    let health = Health { metrics: metrics.clone(), ready: Arc::default(), standby: Arc::default() };
    let server = tokio::spawn(server::serve(listen_address, health.clone(), shutdown.clone()));

    match election {
        None => {
            metrics.leader.set(1);
            // Ready once every cache has its initial list (the controllers flip it).
            controller::run(client, metrics.clone(), config, health.ready.clone(), shutdown.clone()).await;
        }
        Some(settings) => {
            // Lease renewals never wait behind the write limit.
            let election_client = kube::Client::try_from(client_config)
                .map_err(|e| format!("cannot build the leader election client: {e}"))?;
            let clients = (election_client, client);
            lead(clients, settings, metrics.clone(), config, &health, shutdown.clone()).await
        }
    }
    health.ready.store(false, Ordering::Relaxed);
    health.standby.store(false, Ordering::Relaxed);
    metrics.leader.set(0);
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the HTTP endpoint on {listen_address} failed: {e}")),
        Err(e) => Err(format!("the HTTP endpoint task failed: {e}")),
    }
}

/// Waits for the leader Lease, then runs the controllers while holding it. On a shutdown the
/// controllers stop (their running passes finish) while the Lease is still renewed, then it is
/// handed over. A lost Lease ends the process at once (exit 1, its restart stands by again):
/// another replica may already lead, so not even a running pass may finish.
async fn lead<F>(
    (election_client, client): (kube::Client, kube::Client),
    settings: leader::Settings,
    metrics: Arc<Metrics>,
    config: Config,
    health: &Health,
    shutdown: F,
) where
    F: std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
{
    let mut elector = leader::Elector::new(election_client, settings);
    info!(identity = elector.identity(), "waiting for the leader Lease");
    health.standby.store(true, Ordering::Relaxed);
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown.clone() => return,
    }
    health.standby.store(false, Ordering::Relaxed);
    metrics.leader.set(1);
    let controllers = controller::run(client, metrics, config, health.ready.clone(), shutdown);
    tokio::select! {
        () = controllers => {}
        reason = elector.hold() => {
            error!("lost the leader Lease ({reason}); exiting at once");
            std::process::exit(1);
        }
    }
    elector.release().await;
}

/// The controllers' client: its write requests wait for the limit of `--api-write-rate` (unless
/// it is 0), which is returned too, to be lifted on shutdown.
fn limited_client(
    config: kube::Config,
    limit: WriteLimitFlags,
    metrics: &Metrics,
) -> Result<(kube::Client, Option<Arc<throttle::Limiter>>), String> {
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
    if limit.api_write_rate == 0 {
        return Ok((builder.build(), None));
    }
    info!(rate = limit.api_write_rate, burst = limit.api_write_burst, "write requests are limited");
    let limiter = Arc::new(throttle::Limiter::new(
        limit.api_write_rate,
        limit.api_write_burst,
        metrics.write_wait.clone(),
    ));
    let client = builder
        .with_layer(&tower::buffer::BufferLayer::new(1024))
        .with_layer(&throttle::WriteLimitLayer(limiter.clone()))
        .build();
    Ok((client, Some(limiter)))
}

/// The access layer's namespace must exist, and with a Gateway, the HTTPRoute kind too: the
/// operator stops at start rather than failing every exposure later.
async fn check_access_layer(client: &kube::Client, layer: &AccessLayer) -> Result<(), String> {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
    match namespaces.get_metadata_opt(&layer.namespace).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(format!(
                "the access namespace {} does not exist; create it (--access-namespace)",
                layer.namespace
            ));
        }
        Err(e) => return Err(format!("cannot read the access namespace {}: {e}", layer.namespace)),
    }
    if layer.gateway.is_some() {
        let routes: kube::Api<HTTPRoute> = kube::Api::namespaced(client.clone(), &layer.namespace);
        routes.list_metadata(&kube::api::ListParams::default().limit(1)).await.map_err(|e| {
            format!("--access-gateway needs Gateway API's HTTPRoute (gateway.networking.k8s.io/v1): {e}")
        })?;
    }
    info!(namespace = %layer.namespace, domain = %layer.domain, "access layer configured");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = terminate => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
    }
}

/// An image repository without tag or digest, such as `registry.example.com/apache/spark`: a
/// registry host (with an optional port) and lowercase path components.
fn image_repository(value: &str) -> Result<String, String> {
    let (host, path) = match value.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => (Some(host), path),
        _ => (None, value),
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
            && !h.starts_with('-')
    });
    let path_ok = !path.is_empty()
        && path.split('/').all(|part| {
            !part.is_empty()
                && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        });
    if value.len() <= 255 && host_ok && path_ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{value:?} is not an image repository such as 'registry.example.com/apache/spark' (no tag or digest: the Project's Spark version is the tag)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::image_repository;

    #[test]
    fn image_repositories_have_no_tag_digest_or_options() {
        for ok in
            ["apache/spark", "registry.example.com/apache/spark", "localhost:5000/spark", "mirror:443/a/b_c"]
        {
            assert_eq!(image_repository(ok).as_deref(), Ok(ok), "{ok}");
        }
        for bad in
            ["", "apache/spark:4.1.2", "apache/spark@sha256:00", "-x/spark", "Apache/Spark", "a//b", "a b"]
        {
            assert!(image_repository(bad).is_err(), "{bad:?} accepted");
        }
    }
}
