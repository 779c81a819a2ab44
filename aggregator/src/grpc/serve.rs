//! The server that hosts the peer service, the client services behind the gate
//! ([`super::federated`], [`super::mpc`]) and the gRPC health service on one listener.

use std::sync::Arc;
use std::time::Duration;

use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::v1::data_owner_service_server::DataOwnerServiceServer;
use tessera_proto::v1::model_owner_service_server::ModelOwnerServiceServer;
use tessera_proto::v1::mpc_job_service_server::MpcJobServiceServer;
use tokio::net::TcpListener;
use tracing::warn;

use super::federated::{DataOwnerGrpc, ModelOwnerGrpc, ServiceCell};
use super::gate::{Gate, Gated};
use super::mpc::{MpcCell, MpcGrpc};
use super::stream::MAX_CLIENT_MESSAGE_BYTES;
use crate::net::PeerHub;

/// A server's TLS identity: its certificate and private key, PEM.
#[derive(Clone)]
pub struct ServerTls {
    /// The certificate (chain), as in the cluster file.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(<redacted>)")
    }
}

/// The health service's name for secure aggregation (the data-owner and model-owner services).
pub const FEDERATED_SERVICE: &str = "tessera.federated";
/// The health service's name for the MPC job service.
pub const MPC_SERVICE: &str = "tessera.mpc";

/// Marks the server (`""`) and [`FEDERATED_SERVICE`] serving once the aggregation service is
/// up, and [`MPC_SERVICE`] once the MPC service is.
async fn report_health(
    health: tonic_health::server::HealthReporter,
    cell: ServiceCell,
    mpc: MpcCell,
) {
    use tonic_health::ServingStatus::Serving;
    let (mut federated, mut computing) = (false, false);
    while !(federated && computing) {
        if !federated && cell.get().is_some() {
            health.set_service_status("", Serving).await;
            health.set_service_status(FEDERATED_SERVICE, Serving).await;
            federated = true;
        }
        if !computing && mpc.get().is_some() {
            health.set_service_status(MPC_SERVICE, Serving).await;
            computing = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Serves the peer, data-owner, model-owner, MPC job and gRPC health services on `listener` until
/// the task is dropped, over TLS with `tls` if given; the client services behind `gate`.
pub fn serve(
    listener: TcpListener,
    hub: &PeerHub,
    cell: ServiceCell,
    mpc: MpcCell,
    gate: &Arc<Gate>,
    tls: Option<&ServerTls>,
) -> Result<tokio::task::JoinHandle<()>, tonic::transport::Error> {
    hub.trust_with(gate.conns());
    let incoming = gate.conns().incoming(listener);
    let (health, health_service) = tonic_health::server::health_reporter();
    let (health_cell, health_mpc) = (Arc::clone(&cell), Arc::clone(&mpc));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder =
            builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
    }
    let router = builder
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(hub.service())
        .add_service(health_service)
        .add_service(Gated::new(
            DataOwnerServiceServer::new(DataOwnerGrpc {
                cell: Arc::clone(&cell),
            })
            .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
            gate,
        ))
        .add_service(Gated::new(
            ModelOwnerServiceServer::new(ModelOwnerGrpc { cell })
                .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            gate,
        ))
        .add_service(Gated::new(
            MpcJobServiceServer::new(MpcGrpc { cell: mpc })
                .max_decoding_message_size(MAX_CLIENT_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            gate,
        ));
    Ok(tokio::spawn(async move {
        // Not serving until the services are up (the peers connected), then serving.
        for name in ["", FEDERATED_SERVICE, MPC_SERVICE] {
            health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        tokio::spawn(report_health(health, health_cell, health_mpc));
        if let Err(e) = router.serve_with_incoming(incoming).await {
            warn!(error = %e, "gRPC server stopped");
        }
    }))
}
