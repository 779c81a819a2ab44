//! `DataOwnerService` and `ModelOwnerService` over gRPC, and the server that hosts them beside the
//! peer service.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::request::RequestKind;
use tessera_common::seal::SealError;
use tessera_common::upload::UPLOAD_CHUNK_BYTES;
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::convert::{announcement_to_wire, receipt_to_wire, status_to_wire};
use tessera_proto::v1::data_owner_service_server::{DataOwnerService, DataOwnerServiceServer};
use tessera_proto::v1::model_owner_service_server::{ModelOwnerService, ModelOwnerServiceServer};
use tessera_proto::v1::mpc_job_service_server::MpcJobServiceServer;
use tessera_proto::v1::{
    DeclineReceipt, FetchResultRequest, FetchRoundRequest, FetchWeightsRequest, JobStatus,
    RoundAnnouncement, SealedChunk, StatusRequest, UploadReceipt,
};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::warn;

use super::gate::{Gate, Gated};
use super::mpc::{MpcCell, MpcGrpc};
use crate::net::PeerHub;
use crate::net::grpc::GrpcNetwork;
use tessera_secagg::local::FETCH_ROUND_WAIT;
use tessera_secagg::{AggregatorService, ServiceError};

/// The service, set once the peer network is up (requests before that get `unavailable`).
pub type ServiceCell = Arc<OnceLock<Arc<AggregatorService<GrpcNetwork>>>>;

fn to_status(e: ServiceError) -> Status {
    let msg = e.to_string();
    match e {
        ServiceError::UnknownJob(_) | ServiceError::NotReady { .. } => Status::not_found(msg),
        ServiceError::Seal(
            SealError::UnknownSender(_)
            | SealError::AuthenticationFailed { .. }
            | SealError::NonContributory(_),
        )
        | ServiceError::Request(_) => Status::unauthenticated(msg),
        ServiceError::Seal(SealError::Replayed { .. })
        | ServiceError::DuplicateUpload(_)
        | ServiceError::ReplayedChunk { .. } => Status::already_exists(msg),
        ServiceError::Forbidden { .. } => Status::permission_denied(msg),
        ServiceError::Peer(_) => Status::unavailable(msg),
        ServiceError::Busy { .. } => Status::resource_exhausted(msg),
        ServiceError::UploadInProgress(_) => Status::already_exists(msg),
        ServiceError::Seal(_)
        | ServiceError::OutOfOrder { .. }
        | ServiceError::WrongLength(_)
        | ServiceError::FixedPointMismatch { .. }
        | ServiceError::NotForwardSecret
        | ServiceError::Malformed(_)
        | ServiceError::Incomplete(_)
        | ServiceError::HelperRejected { .. }
        | ServiceError::BadJob(_)
        | ServiceError::Privacy(_) => Status::invalid_argument(msg),
        _ => Status::failed_precondition(msg),
    }
}

fn service(cell: &ServiceCell) -> Result<&Arc<AggregatorService<GrpcNetwork>>, Status> {
    cell.get()
        .ok_or_else(|| Status::unavailable("server is still connecting to its peers"))
}

/// The largest message a data owner or the model owner sends: one sealed chunk of at most
/// [`UPLOAD_CHUNK_BYTES`] plus its part header and envelope, with room to spare. A stalled call
/// can thus make the server buffer at most this much (before the gate's deadlines cut it), and
/// all calls together at most `GateLimits::calls_per_party` times it per party of the cluster.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = UPLOAD_CHUNK_BYTES + 4096;

/// The next chunk of a client stream: `None` at its end; refused if it does not decode, or
/// comes too slowly (the gate's deadlines, see [`super::gate`]).
pub(crate) async fn next_chunk(
    stream: &mut Streaming<SealedChunk>,
) -> Result<Option<Vec<u8>>, Status> {
    match stream.message().await {
        Ok(chunk) => Ok(chunk.map(|c| c.envelope)),
        Err(s) => Err(stream_error(s)),
    }
}

/// A broken client stream: a message that does not decode is the client's fault
/// (`invalid_argument`), one over the size limit `resource_exhausted` (as gRPC itself answers),
/// one the gate found too slow `deadline_exceeded`, anything else a stream that broke
/// (`cancelled`).
fn stream_error(s: Status) -> Status {
    match s.code() {
        tonic::Code::DeadlineExceeded => s,
        tonic::Code::Internal => {
            Status::invalid_argument(format!("malformed message: {}", s.message()))
        }
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => {
            Status::resource_exhausted(format!("message too large: {}", s.message()))
        }
        _ => Status::cancelled(format!("stream broke: {}", s.message())),
    }
}

/// Runs `work` to its end in its own task, so that a client that resets its call cannot cancel
/// it half-way (an upload's commit talks to the helpers and must end in a decision).
async fn run_to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ServiceError>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(work)
        .await
        .map_err(|e| Status::internal(format!("request task failed: {e}")))?
        .map_err(to_status)
}

pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = Result<SealedChunk, Status>> + Send>>;

pub(crate) fn chunk_stream(envelopes: Vec<Vec<u8>>) -> ChunkStream {
    Box::pin(tokio_stream::iter(
        envelopes
            .into_iter()
            .map(|envelope| Ok(SealedChunk { envelope })),
    ))
}

/// The party a read request's token names.
fn caller(
    service: &AggregatorService<GrpcNetwork>,
    token: &[u8],
    kind: RequestKind,
    job_id: u64,
    round: u64,
) -> Result<PartyId, Status> {
    service
        .authenticate(token, kind, job_id, round)
        .map_err(to_status)
}

/// A data owner's request must come from the owner it names.
fn require_caller(caller: PartyId, named: &str) -> Result<(), Status> {
    let named: PartyId = named
        .parse()
        .map_err(|e| Status::invalid_argument(format!("{e}")))?;
    if caller == named && matches!(caller, PartyId::DataOwner(_)) {
        Ok(())
    } else {
        Err(to_status(ServiceError::Forbidden {
            party: caller,
            action: "make a data owner's request for another party",
        }))
    }
}

/// The data owners' gRPC service.
#[derive(Clone)]
pub struct DataOwnerGrpc {
    /// The service, once up.
    pub cell: ServiceCell,
}

#[tonic::async_trait]
impl DataOwnerService for DataOwnerGrpc {
    type FetchWeightsStream = ChunkStream;

    async fn fetch_round(
        &self,
        request: Request<FetchRoundRequest>,
    ) -> Result<Response<RoundAnnouncement>, Status> {
        let r = request.into_inner();
        let service = service(&self.cell)?;
        let owner = caller(
            service,
            &r.auth,
            RequestKind::FetchRound,
            r.job_id,
            r.after_round,
        )?;
        require_caller(owner, &r.data_owner)?;
        let ann = service
            .fetch_round(r.job_id, r.after_round, FETCH_ROUND_WAIT)
            .await
            .map_err(to_status)?;
        Ok(Response::new(announcement_to_wire(&ann)?))
    }

    async fn fetch_weights(
        &self,
        request: Request<FetchWeightsRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        let service = service(&self.cell)?;
        let owner = caller(
            service,
            &r.auth,
            RequestKind::FetchWeights,
            r.job_id,
            r.round,
        )?;
        require_caller(owner, &r.data_owner)?;
        let envelopes = service
            .fetch_weights(owner, r.job_id, r.round)
            .await
            .map_err(to_status)?;
        Ok(Response::new(chunk_stream(envelopes)))
    }

    async fn upload_shares(
        &self,
        request: Request<Streaming<SealedChunk>>,
    ) -> Result<Response<UploadReceipt>, Status> {
        let service = Arc::clone(service(&self.cell)?);
        if !service.is_leader() {
            return Err(to_status(ServiceError::NotLeader(service.me())));
        }
        let mut stream = request.into_inner();
        let mut session = None;
        while let Some(envelope) = next_chunk(&mut stream).await? {
            let s = match session.as_mut() {
                Some(s) => s,
                None => {
                    let job_id = tessera_common::seal::Header::parse(&envelope)
                        .map_err(|e| to_status(service.refuse_upload(e.into())))?
                        .job_id;
                    session.insert(service.begin_upload(job_id).map_err(to_status)?)
                }
            };
            if let Err(e) = service.push_upload(s, &envelope) {
                warn!(owner = ?s.owner(), error = %e, "upload rejected");
                return Err(to_status(e));
            }
        }
        let session = session.ok_or_else(|| Status::invalid_argument("empty upload"))?;
        let owner = session.owner();
        let receipt = run_to_completion(async move { service.finish_upload(session).await }).await;
        if let Err(e) = &receipt {
            warn!(?owner, error = %e.message(), "upload rejected");
        }
        Ok(Response::new(receipt_to_wire(&receipt?)))
    }

    async fn decline(
        &self,
        request: Request<SealedChunk>,
    ) -> Result<Response<DeclineReceipt>, Status> {
        let service = service(&self.cell)?;
        let (_, job_id) = service
            .decline(&request.into_inner().envelope)
            .await
            .map_err(to_status)?;
        Ok(Response::new(DeclineReceipt { job_id }))
    }
}

/// The model owner's gRPC service.
#[derive(Clone)]
pub struct ModelOwnerGrpc {
    /// The service, once up.
    pub cell: ServiceCell,
}

#[tonic::async_trait]
impl ModelOwnerService for ModelOwnerGrpc {
    type FetchResultStream = ChunkStream;

    async fn start_job(
        &self,
        request: Request<SealedChunk>,
    ) -> Result<Response<JobStatus>, Status> {
        let status = service(&self.cell)?
            .start_job(&request.into_inner().envelope)
            .map_err(to_status)?;
        Ok(Response::new(status_to_wire(&status)))
    }

    async fn open_round(
        &self,
        request: Request<Streaming<SealedChunk>>,
    ) -> Result<Response<JobStatus>, Status> {
        // The role first, then each chunk authenticated as it arrives: nothing unauthenticated
        // is ever kept, and no more than the job's weights.
        let service = Arc::clone(service(&self.cell)?);
        if !service.is_leader() {
            return Err(to_status(ServiceError::NotLeader(service.me())));
        }
        let mut stream = request.into_inner();
        let mut opening = None;
        while let Some(envelope) = next_chunk(&mut stream).await? {
            let o = match opening.as_mut() {
                Some(o) => o,
                None => opening.insert(service.begin_open_round(&envelope).map_err(to_status)?),
            };
            service.push_weights(o, &envelope).map_err(to_status)?;
        }
        let opening = opening.ok_or_else(|| Status::invalid_argument("no envelopes"))?;
        let status =
            run_to_completion(async move { service.finish_open_round(opening).await }).await?;
        Ok(Response::new(status_to_wire(&status)))
    }

    async fn fetch_result(
        &self,
        request: Request<FetchResultRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        let envelopes = service(&self.cell)?
            .fetch_result(r.job_id, r.round)
            .await
            .map_err(to_status)?;
        Ok(Response::new(chunk_stream(envelopes)))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<JobStatus>, Status> {
        let r = request.into_inner();
        let service = service(&self.cell)?;
        let who = caller(service, &r.auth, RequestKind::Status, r.job_id, 0)?;
        if who != PartyId::ModelOwner {
            return Err(to_status(ServiceError::Forbidden {
                party: who,
                action: "read a job's status",
            }));
        }
        let status = service.status(r.job_id).await.map_err(to_status)?;
        Ok(Response::new(status_to_wire(&status)))
    }
}

/// Accepted connections with `TCP_NODELAY`: an MPC round is a few small frames each way, and
/// Nagle's algorithm with delayed acknowledgements would hold each one back.
pub(crate) fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

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
