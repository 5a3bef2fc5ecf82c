//! The `dataworkspace-operator` binary: `run` starts the controllers, `crd` prints the CRDs.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::Ordering},
};

use clap::{Parser, Subcommand};
use dataworkspace_operator::{
    config::{Config, StudioAuth},
    controller::{self, Managed, check_crd_installed},
    crd::{self, Project, PythonEnvironment, User, Workspace},
    metrics::Metrics,
    server::{self, Health},
    telemetry::{self, LogFormat},
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
        /// Namespace of the ingress controller, whose pods may reach every workspace.
        #[arg(long, env = "DWO_INGRESS_NAMESPACE")]
        ingress_namespace: Option<String>,
        /// Also bind each team as the group `<prefix><team>`, for clusters whose authentication
        /// supplies team groups (for example `oidc:`).
        #[arg(long, env = "DWO_TEAM_GROUP_PREFIX")]
        team_group_prefix: Option<String>,
        /// Check endpoint of the shared authenticating proxy (oauth2-proxy `/oauth2/auth`).
        /// With it, Studio servers that set `spec.studio.host` get an Ingress that admits only
        /// the users allowed to open them; without it they stay reachable in-cluster only.
        #[arg(long, env = "DWO_STUDIO_AUTH_URL", requires = "studio_auth_signin_url")]
        studio_auth_url: Option<String>,
        /// Sign-in URL of the shared authenticating proxy (oauth2-proxy `/oauth2/start?rd=...`).
        #[arg(long, env = "DWO_STUDIO_AUTH_SIGNIN_URL", requires = "studio_auth_url")]
        studio_auth_signin_url: Option<String>,
        /// IngressClass for Studio Ingresses (the cluster default when unset).
        #[arg(long, env = "DWO_INGRESS_CLASS")]
        ingress_class: Option<String>,
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
    },
    /// Print all CustomResourceDefinitions as one YAML stream, or write one file per kind.
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        output_dir: Option<PathBuf>,
    },
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
            ingress_namespace,
            team_group_prefix,
            studio_auth_url,
            studio_auth_signin_url,
            ingress_class,
            username_prefix,
            egress_deny_cidrs,
            remove_foreign_rolebindings,
            namespace_prefix,
        } => {
            let studio_auth = studio_auth_url
                .zip(studio_auth_signin_url)
                .map(|(auth_url, signin_url)| StudioAuth { auth_url, signin_url, ingress_class });
            let config = Config {
                ingress_namespace,
                team_group_prefix,
                studio_auth,
                username_prefix,
                egress_deny_cidrs,
                remove_foreign_role_bindings: remove_foreign_rolebindings,
                namespace_prefix,
            };
            telemetry::init(log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(e) => {
                    error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(run(listen_address, config)) {
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
        None => print!("{}", crd::all_yaml()?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for definition in crd::all() {
                std::fs::write(dir.join(crd::file_name(&definition)), crd::to_yaml(&definition)?)?;
            }
        }
    }
    Ok(())
}

async fn run(listen_address: SocketAddr, config: Config) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("cannot configure the Kubernetes client (kubeconfig or in-cluster): {e}"))?;
    check_crd_installed::<Workspace>(&client).await?;
    check_crd_installed::<User>(&client).await?;
    check_crd_installed::<PythonEnvironment>(&client).await?;
    check_crd_installed::<Project>(&client).await?;
    info!(kinds = ?[Workspace::KIND, User::KIND, PythonEnvironment::KIND, Project::KIND], "CRDs installed");

    let shutdown = shutdown_signal().shared();
    let metrics = Arc::new(Metrics::default());
    let health = Health { metrics: metrics.clone(), ready: Arc::default() };
    let server = tokio::spawn(server::serve(listen_address, health.clone(), shutdown.clone()));

    // Ready once every cache has its initial list (the controllers flip it).
    controller::run(client, metrics, config, health.ready.clone(), shutdown).await;
    health.ready.store(false, Ordering::Relaxed);

    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the HTTP endpoint on {listen_address} failed: {e}")),
        Err(e) => Err(format!("the HTTP endpoint task failed: {e}")),
    }
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
