//! `DataOwnerService` and `ModelOwnerService` over gRPC, and the server that hosts them beside the
//! peer service.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tessera_common::PartyId;
use tessera_common::seal::SealError;
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::convert::{announcement_to_wire, receipt_to_wire, status_to_wire};
use tessera_proto::v1::data_owner_service_server::{DataOwnerService, DataOwnerServiceServer};
use tessera_proto::v1::model_owner_service_server::{ModelOwnerService, ModelOwnerServiceServer};
use tessera_proto::v1::{
    FetchResultRequest, FetchRoundRequest, FetchWeightsRequest, JobStatus, RoundAnnouncement,
    SealedChunk, StatusRequest, UploadReceipt,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::warn;

use crate::net::PeerHub;
use crate::net::grpc::GrpcNetwork;
use crate::secagg::local::FETCH_ROUND_WAIT;
use crate::secagg::{AggregatorService, ServiceError};

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
        ) => Status::unauthenticated(msg),
        ServiceError::Seal(SealError::Replayed { .. })
        | ServiceError::DuplicateUpload(_)
        | ServiceError::ReplayedChunk { .. } => Status::already_exists(msg),
        ServiceError::Forbidden { .. } => Status::permission_denied(msg),
        ServiceError::Peer(_) => Status::unavailable(msg),
        ServiceError::OutOfOrder { .. }
        | ServiceError::WrongLength(_)
        | ServiceError::Malformed(_)
        | ServiceError::Incomplete(_)
        | ServiceError::HelperRejected { .. }
        | ServiceError::BadJob(_) => Status::invalid_argument(msg),
        _ => Status::failed_precondition(msg),
    }
}

fn service(cell: &ServiceCell) -> Result<&Arc<AggregatorService<GrpcNetwork>>, Status> {
    cell.get()
        .ok_or_else(|| Status::unavailable("server is still connecting to its peers"))
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<SealedChunk, Status>> + Send>>;

fn chunk_stream(envelopes: Vec<Vec<u8>>) -> ChunkStream {
    Box::pin(tokio_stream::iter(
        envelopes
            .into_iter()
            .map(|envelope| Ok(SealedChunk { envelope })),
    ))
}

/// The data owners' gRPC service.
#[derive(Clone)]
pub struct DataOwnerGrpc(pub ServiceCell);

#[tonic::async_trait]
impl DataOwnerService for DataOwnerGrpc {
    type FetchWeightsStream = ChunkStream;

    async fn fetch_round(
        &self,
        request: Request<FetchRoundRequest>,
    ) -> Result<Response<RoundAnnouncement>, Status> {
        let r = request.into_inner();
        let ann = service(&self.0)?
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
        let owner: PartyId = r
            .data_owner
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let envelopes = service(&self.0)?
            .fetch_weights(owner, r.job_id, r.round)
            .await
            .map_err(to_status)?;
        Ok(Response::new(chunk_stream(envelopes)))
    }

    async fn upload_shares(
        &self,
        request: Request<Streaming<SealedChunk>>,
    ) -> Result<Response<UploadReceipt>, Status> {
        let service = service(&self.0)?;
        let mut stream = request.into_inner();
        let mut session = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|s| Status::cancelled(format!("upload stream broke: {}", s.message())))?;
            if session.is_none() {
                let job_id = tessera_common::seal::Header::parse(&chunk.envelope)
                    .map_err(|e| to_status(e.into()))?
                    .job_id;
                session = Some(service.begin_upload(job_id).map_err(to_status)?);
            }
            if let Some(s) = session.as_mut()
                && let Err(e) = service.push_upload(s, &chunk.envelope)
            {
                warn!(owner = ?s.owner(), error = %e, "upload rejected");
                return Err(to_status(e));
            }
        }
        let session = session.ok_or_else(|| Status::invalid_argument("empty upload"))?;
        let owner = session.owner();
        let receipt = service.finish_upload(session).await.map_err(|e| {
            warn!(?owner, error = %e, "upload rejected");
            to_status(e)
        })?;
        Ok(Response::new(receipt_to_wire(&receipt)))
    }
}

/// The model owner's gRPC service.
#[derive(Clone)]
pub struct ModelOwnerGrpc(pub ServiceCell);

#[tonic::async_trait]
impl ModelOwnerService for ModelOwnerGrpc {
    type FetchResultStream = ChunkStream;

    async fn start_job(
        &self,
        request: Request<SealedChunk>,
    ) -> Result<Response<JobStatus>, Status> {
        let status = service(&self.0)?
            .start_job(&request.into_inner().envelope)
            .map_err(to_status)?;
        Ok(Response::new(status_to_wire(&status)))
    }

    async fn open_round(
        &self,
        request: Request<Streaming<SealedChunk>>,
    ) -> Result<Response<JobStatus>, Status> {
        let mut stream = request.into_inner();
        let mut envelopes = Vec::new();
        while let Some(chunk) = stream.next().await {
            envelopes.push(chunk?.envelope);
        }
        let status = service(&self.0)?
            .open_round(&envelopes)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_to_wire(&status)))
    }

    async fn fetch_result(
        &self,
        request: Request<FetchResultRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        let envelopes = service(&self.0)?
            .fetch_result(r.job_id, r.round)
            .await
            .map_err(to_status)?;
        Ok(Response::new(chunk_stream(envelopes)))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<JobStatus>, Status> {
        let status = service(&self.0)?
            .status(request.into_inner().job_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(status_to_wire(&status)))
    }
}

/// Serves the peer, data-owner and model-owner services on `listener` until the task is dropped.
pub fn serve(
    listener: TcpListener,
    hub: &PeerHub,
    cell: ServiceCell,
) -> tokio::task::JoinHandle<()> {
    let router = tonic::transport::Server::builder()
        .add_service(hub.service())
        .add_service(
            DataOwnerServiceServer::new(DataOwnerGrpc(Arc::clone(&cell)))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            ModelOwnerServiceServer::new(ModelOwnerGrpc(cell))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
        {
            warn!(error = %e, "gRPC server stopped");
        }
    })
}
