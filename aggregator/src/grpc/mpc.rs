//! `MpcJobService` over gRPC: a thin adapter over the transport-free
//! [`crate::jobs::MpcService`]; every decision is the service's. Refusals carry the
//! error's kind in the `tessera-error` metadata so clients can tell them apart.

use std::sync::{Arc, OnceLock};

use tessera_proto::v1::mpc_job_service_server::MpcJobService;
use tessera_proto::v1::{FetchOutputRequest, MpcReceipt, MpcStatus, MpcStatusRequest, SealedChunk};
use tonic::{Request, Response, Status, Streaming};
use tracing::warn;

use super::stream::{ChunkStream, chunk_stream, next_chunk};
use crate::jobs::MpcService;
use crate::net::grpc::GrpcNetwork;
use tessera_jobs::{MpcJobStatus, MpcServiceError};

/// The MPC job service, set once the peer network is up.
pub type MpcCell = Arc<OnceLock<Arc<MpcService<GrpcNetwork>>>>;

/// The gRPC status of a refusal, with its kind in the `tessera-error` metadata.
pub fn mpc_status(e: &MpcServiceError) -> Status {
    let msg = e.to_string();
    let mut status = match e {
        MpcServiceError::UnknownJob(_)
        | MpcServiceError::UnknownModel(_)
        | MpcServiceError::NoSuchOutput { .. } => Status::not_found(msg),
        MpcServiceError::Seal(_) | MpcServiceError::Request(_) | MpcServiceError::Stale { .. } => {
            Status::unauthenticated(msg)
        }
        MpcServiceError::Forbidden { .. } | MpcServiceError::NotAllowed { .. } => {
            Status::permission_denied(msg)
        }
        MpcServiceError::DuplicateJob(_) | MpcServiceError::DuplicateInput { .. } => {
            Status::already_exists(msg)
        }
        MpcServiceError::NotReady { .. } => Status::unavailable(msg),
        MpcServiceError::Busy { .. } | MpcServiceError::QueryBudget { .. } => {
            Status::resource_exhausted(msg)
        }
        MpcServiceError::Ended { .. } => Status::aborted(msg),
        _ => Status::invalid_argument(msg),
    };
    if let Ok(kind) = e.kind().parse() {
        status.metadata_mut().insert("tessera-error", kind);
    }
    status
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
