//! The `aggregator` command line.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::{Parser, Subcommand};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, PartyArgs, keygen_exit_code};
use tessera_common::seal::Sealer;
use tracing::info;

use crate::grpc::{Gate, GateLimits, MpcCell, ServerTls, ServiceCell, serve};
use crate::jobs::{MpcLimits, MpcService};
use crate::net::{GrpcNetwork, GrpcNetworkSettings, PeerHub};
use tessera_secagg::{AggregatorService, Limits};

/// Tessera compute server.
#[derive(Debug, Parser)]
#[command(name = "aggregator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: tessera_common::cli::LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate this server's X25519 key file and print its public key.
    Keygen(KeygenArgs),
    /// Run the server: peer links to the other servers, the data-owner and model-owner services.
    Serve(ServeArgs),
}

/// Arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Cluster file, name and key file.
    #[command(flatten)]
    pub party: PartyArgs,
    /// Listen address (default: this server's address in the cluster file).
    #[arg(long)]
    pub listen: Option<String>,
    /// Seconds to wait for the other servers to connect.
    #[arg(long, default_value_t = 120)]
    pub connect_timeout_secs: u64,
    /// This server's TLS private key (PEM), for the certificate its cluster-file entry names in
    /// `tls_cert`; required when the entry has one.
    #[arg(long)]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics (`GET /metrics`: rounds, uploads accepted and refused by
    /// reason, bytes, MPC jobs, memory held by uploads) on this `host:port`; off by default.
    /// Bind it where only operators reach.
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

/// Errors of `serve`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] tessera_common::cli::PartyLoadError),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] tessera_common::config::ConfigError),
    /// Not a server name.
    #[error("{0} is not a server")]
    NotServer(PartyId),
    /// Binding or serving.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server cannot listen on its address (taken, not this machine's, not resolvable).
    #[error(
        "{party} cannot listen on {address:?}: {source} (is another process on that port? `--listen HOST:PORT` picks another address)"
    )]
    Bind {
        /// The server.
        party: PartyId,
        /// The address it tried (its `--listen`, else its address in the cluster file).
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server has no address to listen on.
    #[error("{0} has no address in the cluster file; give it one or pass --listen HOST:PORT")]
    NoAddress(PartyId),
    /// Connecting to the other servers.
    #[error(transparent)]
    Net(#[from] tessera_common::net::NetError),
    /// TLS settings: a certificate without a key or the reverse, an unreadable key file, or a
    /// certificate and key that do not load.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Binds server `party`'s listener on `address`; an error names both.
pub async fn bind_listener(
    party: PartyId,
    address: &str,
) -> Result<tokio::net::TcpListener, ServeError> {
    GrpcNetwork::bind(address)
        .await
        .map_err(|source| ServeError::Bind {
            party,
            address: address.to_string(),
            source,
        })
}

/// Runs a server until Ctrl-C.
pub async fn serve_command(args: ServeArgs) -> Result<(), ServeError> {
    let (cluster, identity) = args.party.load()?;
    let me = identity.party();
    if !me.is_server() {
        return Err(ServeError::NotServer(me));
    }
    let entry = cluster.party(me)?;
    let address = args
        .listen
        .clone()
        .or_else(|| entry.address.clone())
        .ok_or(ServeError::NoAddress(me))?;
    let listener = bind_listener(me, &address).await?;
    let servers: Vec<(PartyId, String)> = cluster
        .servers()
        .into_iter()
        .map(|p| {
            (
                p,
                cluster
                    .party(p)
                    .ok()
                    .and_then(|e| e.address.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let tls = match (&entry.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            tessera_common::identity::check_private(key)
                .map_err(|e| ServeError::Tls(e.to_string()))?;
            Some(ServerTls {
                cert_pem: cert.clone(),
                key_pem: std::fs::read_to_string(key)
                    .map_err(|e| ServeError::Tls(format!("key file {}: {e}", key.display())))?,
            })
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(ServeError::Tls(format!(
                "{} has a tls_cert in the cluster file: pass its key with --tls-key",
                me
            )));
        }
        (None, Some(_)) => {
            return Err(ServeError::Tls(format!(
                "--tls-key given but {} has no tls_cert in the cluster file",
                me
            )));
        }
    };
    let tls_certs = cluster
        .servers()
        .into_iter()
        .filter_map(|p| Some((p, cluster.party(p).ok()?.tls_cert.clone()?)))
        .collect();
    let settings = GrpcNetworkSettings {
        session: 0,
        servers,
        tls_certs,
        recv_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(args.connect_timeout_secs),
    };
    let server_ids = cluster.servers();
    let hub = PeerHub::new(
        &identity,
        &server_ids,
        cluster.public_keys(),
        settings.session,
        settings.recv_timeout,
    );
    let cell: ServiceCell = Arc::new(OnceLock::new());
    let limits = Limits {
        privacy: cluster.privacy,
        ..Limits::default()
    };
    let mpc_cell: MpcCell = Arc::new(OnceLock::new());
    if let Some(metrics_addr) = &args.metrics_addr {
        let metrics = bind_listener(me, metrics_addr).await?;
        let (cell, mpc_cell) = (Arc::clone(&cell), Arc::clone(&mpc_cell));
        let exposition = Arc::new(move || {
            crate::metrics::render(cell.get().map(|s| &**s), mpc_cell.get().map(|m| &**m))
        });
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_metrics(metrics, exposition).await {
                tracing::warn!(error = %e, "metrics endpoint stopped");
            }
        });
        info!(me = %me, address = %metrics_addr, "metrics at /metrics");
    }
    let server = serve(
        listener,
        &hub,
        Arc::clone(&cell),
        Arc::clone(&mpc_cell),
        &Gate::new(
            Arc::new(Sealer::new(&identity, cluster.public_keys())),
            GateLimits::default(),
        ),
        tls.as_ref(),
    )
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    info!(me = %me, %address, "listening; connecting to peers");
    let network = GrpcNetwork::over_hub(hub, &settings).await?;
    let network = Arc::new(network);
    let network_for_flush = Arc::clone(&network);
    let sealer = Sealer::new(&identity, cluster.public_keys());
    let service =
        AggregatorService::with_limits(sealer, cluster.num_servers(), Arc::clone(&network), limits);
    let _ = cell.set(service);
    let access = cluster
        .models
        .iter()
        .map(|(id, clients)| (id.clone(), clients.clone()))
        .collect();
    let mpc = MpcService::new(
        Sealer::new(&identity, cluster.public_keys()),
        network,
        access,
        MpcLimits {
            training: cluster.training.clone(),
            query_budgets: cluster.query_budgets.clone().into_iter().collect(),
            ..MpcLimits::default()
        },
    );
    let _ = mpc_cell.set(mpc);
    info!(me = %me, servers = cluster.num_servers(), "ready");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            // Let the peers read what this server already sent before its links go.
            let flushed = network_for_flush.flush(Duration::from_secs(5)).await;
            info!(flushed, "shutting down");
        }
        _ = server => {}
    }
    Ok(())
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging(cli.log_format);
    match cli.command {
        Command::Keygen(args) => keygen_exit_code(&args, "server", |p| p.is_server()),
        Command::Serve(args) => tessera_common::cli::block_on_exit_code(serve_command(args)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A taken port and an address that is not this machine's: each error names the server
    /// and the address (at 59c017e they said only `Address already in use`).
    #[tokio::test]
    async fn a_listener_that_cannot_bind_names_its_server_and_address() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().to_string();
        for address in [taken.as_str(), "192.0.2.1:7000"] {
            let err = bind_listener(PartyId::Server(1), address)
                .await
                .expect_err(address);
            assert!(
                matches!(&err, ServeError::Bind { party: PartyId::Server(1), address: a, .. } if a == address),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(text.contains("server1") && text.contains(address), "{text}");
        }
    }
}
