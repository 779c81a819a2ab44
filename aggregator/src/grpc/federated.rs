//! The secure-aggregation services over gRPC: `DataOwnerService` and `ModelOwnerService`, thin
//! adapters over the transport-free [`tessera_secagg::AggregatorService`] (decode, call, encode;
//! every decision is the service's), and the mapping of its refusals to gRPC status codes.

use std::sync::{Arc, OnceLock};

use tessera_common::PartyId;
use tessera_common::request::RequestKind;
use tessera_common::seal::SealError;
use tessera_proto::convert::{announcement_to_wire, receipt_to_wire, status_to_wire};
use tessera_proto::refusal::refusal_status;
use tessera_proto::v1::data_owner_service_server::DataOwnerService;
use tessera_proto::v1::model_owner_service_server::ModelOwnerService;
use tessera_proto::v1::{
    DeclineReceipt, FetchResultRequest, FetchRoundRequest, FetchWeightsRequest, JobStatus,
    RoundAnnouncement, SealedChunk, StatusRequest, UploadReceipt,
};
use tessera_secagg::local::FETCH_ROUND_WAIT;
use tessera_secagg::{AggregatorService, ServiceError, Upload};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::warn;

use super::stream::{ChunkStream, chunk_stream, next_chunk};
use crate::net::grpc::GrpcNetwork;

/// The service, set once the peer network is up (requests before that get `unavailable`).
pub type ServiceCell = Arc<OnceLock<Arc<AggregatorService<GrpcNetwork>>>>;

/// The gRPC status of a refusal. A final one (not "not yet", "unreachable" or "busy", which a
/// client retries) names its variant ([`tessera_proto::refusal::refusal_status`]) so the client
/// maps it back.
fn to_status(e: ServiceError) -> Status {
    let code = code_of(&e);
    if matches!(
        code,
        Code::NotFound | Code::Unavailable | Code::ResourceExhausted
    ) {
        Status::new(code, e.to_string())
    } else {
        refusal_status(code, &e)
    }
}

fn code_of(e: &ServiceError) -> Code {
    match e {
        ServiceError::UnknownJob(_) | ServiceError::NotReady { .. } => Code::NotFound,
        ServiceError::Seal(
            SealError::UnknownSender(_)
            | SealError::AuthenticationFailed { .. }
            | SealError::NonContributory(_),
        )
        | ServiceError::Request(_) => Code::Unauthenticated,
        ServiceError::Seal(SealError::Replayed { .. })
        | ServiceError::DuplicateUpload(_)
        | ServiceError::ReplayedChunk { .. } => Code::AlreadyExists,
        ServiceError::Forbidden { .. } => Code::PermissionDenied,
        ServiceError::Peer(_) => Code::Unavailable,
        ServiceError::Ring(_) => Code::Internal,
        ServiceError::Busy { .. } => Code::ResourceExhausted,
        ServiceError::UploadInProgress(_) => Code::AlreadyExists,
        ServiceError::Seal(_)
        | ServiceError::OutOfOrder { .. }
        | ServiceError::WrongLength { .. }
        | ServiceError::FixedPointMismatch { .. }
        | ServiceError::NotForwardSecret
        | ServiceError::Malformed(_)
        | ServiceError::Incomplete(_)
        | ServiceError::HelperRejected { .. }
        | ServiceError::BadJob(_)
        | ServiceError::Privacy(_) => Code::InvalidArgument,
        _ => Code::FailedPrecondition,
    }
}

fn service(cell: &ServiceCell) -> Result<&Arc<AggregatorService<GrpcNetwork>>, Status> {
    cell.get()
        .ok_or_else(|| Status::unavailable("server is still connecting to its peers"))
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
        let mut upload = Upload::new(service);
        while let Some(envelope) = next_chunk(&mut stream).await? {
            if let Err(e) = upload.push(&envelope) {
                warn!(owner = ?upload.owner(), error = %e, "upload rejected");
                return Err(to_status(e));
            }
        }
        let owner = upload.owner();
        let receipt = run_to_completion(upload.finish()).await;
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
