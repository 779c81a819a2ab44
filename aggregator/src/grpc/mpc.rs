//! `MpcJobService` over gRPC: a thin adapter over the transport-free
//! [`crate::jobs::MpcService`]; every decision is the service's. Refusals name their variant
//! as secure aggregation's do (`tessera_proto::refusal`), so clients can tell them apart.

use std::sync::{Arc, OnceLock};

use tessera_proto::refusal::refusal_status;
use tessera_proto::v1::mpc_job_service_server::MpcJobService;
use tessera_proto::v1::{FetchOutputRequest, MpcReceipt, MpcStatus, MpcStatusRequest, SealedChunk};
use tonic::{Code, Request, Response, Status, Streaming};
use tracing::warn;

use super::stream::{ChunkStream, chunk_stream, next_chunk};
use crate::jobs::MpcService;
use crate::net::grpc::GrpcNetwork;
use tessera_jobs::{MpcJobStatus, MpcServiceError};

/// The MPC job service, set once the peer network is up.
pub type MpcCell = Arc<OnceLock<Arc<MpcService<GrpcNetwork>>>>;

/// The gRPC status of a refusal, naming its variant
/// ([`tessera_proto::refusal::refusal_status`]).
pub fn mpc_status(e: &MpcServiceError) -> Status {
    let code = match e {
        MpcServiceError::UnknownJob(_)
        | MpcServiceError::UnknownModel(_)
        | MpcServiceError::NoSuchOutput { .. } => Code::NotFound,
        MpcServiceError::Seal(_) | MpcServiceError::Request(_) | MpcServiceError::Stale { .. } => {
            Code::Unauthenticated
        }
        MpcServiceError::Forbidden { .. } | MpcServiceError::NotAllowed { .. } => {
            Code::PermissionDenied
        }
        MpcServiceError::DuplicateJob(_) | MpcServiceError::DuplicateInput { .. } => {
            Code::AlreadyExists
        }
        MpcServiceError::NotReady { .. } => Code::Unavailable,
        MpcServiceError::Busy { .. } | MpcServiceError::QueryBudget { .. } => {
            Code::ResourceExhausted
        }
        MpcServiceError::Ended { .. } => Code::Aborted,
        _ => Code::InvalidArgument,
    };
    refusal_status(code, e)
}

fn service(cell: &MpcCell) -> Result<&Arc<MpcService<GrpcNetwork>>, Status> {
    cell.get()
        .ok_or_else(|| Status::unavailable("server is still connecting to its peers"))
}

fn to_wire(status: &MpcJobStatus) -> Result<MpcStatus, Status> {
    Ok(MpcStatus {
        status_json: serde_json::to_string(status)
            .map_err(|e| Status::internal(format!("status: {e}")))?,
    })
}

/// The gRPC front of the MPC job service.
#[derive(Clone)]
pub struct MpcGrpc {
    /// The service, once up.
    pub cell: MpcCell,
}

#[tonic::async_trait]
impl MpcJobService for MpcGrpc {
    type FetchOutputStream = ChunkStream;

    async fn launch(&self, request: Request<SealedChunk>) -> Result<Response<MpcStatus>, Status> {
        let status = service(&self.cell)?
            .launch(&request.into_inner().envelope)
            .map_err(|e| {
                warn!(error = %e, "MPC launch refused");
                mpc_status(&e)
            })?;
        Ok(Response::new(to_wire(&status)?))
    }

    async fn submit_input(
        &self,
        request: Request<Streaming<SealedChunk>>,
    ) -> Result<Response<MpcReceipt>, Status> {
        let service = Arc::clone(service(&self.cell)?);
        let mut stream = request.into_inner();
        let mut receipt = MpcReceipt::default();
        while let Some(envelope) = next_chunk(&mut stream).await? {
            receipt.complete = service.submit_chunk(&envelope).map_err(|e| {
                warn!(error = %e, "MPC input refused");
                mpc_status(&e)
            })?;
            receipt.chunks_accepted += 1;
        }
        Ok(Response::new(receipt))
    }

    async fn fetch_output(
        &self,
        request: Request<FetchOutputRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        let service = service(&self.cell)?;
        let envelopes = service
            .fetch_output(r.job_id, r.output, &r.auth)
            .await
            .map_err(|e| mpc_status(&e))?;
        Ok(Response::new(chunk_stream(envelopes)))
    }

    async fn status(
        &self,
        request: Request<MpcStatusRequest>,
    ) -> Result<Response<MpcStatus>, Status> {
        let r = request.into_inner();
        let status = service(&self.cell)?
            .status(r.job_id, &r.auth)
            .map_err(|e| mpc_status(&e))?;
        Ok(Response::new(to_wire(&status)?))
    }

    async fn abort(&self, request: Request<SealedChunk>) -> Result<Response<MpcStatus>, Status> {
        let status = service(&self.cell)?
            .abort(&request.into_inner().envelope)
            .map_err(|e| mpc_status(&e))?;
        Ok(Response::new(to_wire(&status)?))
    }
}
