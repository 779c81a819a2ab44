//! The model owner's gRPC client of one server ([`ServerApi`] over the wire).

use tessera_common::api::{ApiError, JobStatus, ServerApi};
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::convert::{api_error_from_status, status_from_wire};
use tessera_proto::v1::model_owner_service_client::ModelOwnerServiceClient;
use tessera_proto::v1::{FetchResultRequest, SealedChunk, StatusRequest};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// One server, reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcServer {
    client: ModelOwnerServiceClient<Channel>,
}

impl GrpcServer {
    /// A client of the server at `host:port` (connects on first use).
    pub fn new(address: &str) -> Result<Self, ApiError> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| ApiError::Rejected(format!("bad address {address}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        let client = ModelOwnerServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcServer { client })
    }
}

impl ServerApi for GrpcServer {
    async fn start_job(&self, envelope: Vec<u8>) -> Result<JobStatus, ApiError> {
        let response = self
            .client
            .clone()
            .start_job(SealedChunk { envelope })
            .await
            .map_err(api_error_from_status)?;
        status_from_wire(response.into_inner())
    }

    async fn open_round(&self, envelopes: Vec<Vec<u8>>) -> Result<JobStatus, ApiError> {
        let stream = tokio_stream::iter(
            envelopes
                .into_iter()
                .map(|envelope| SealedChunk { envelope }),
        );
        let response = self
            .client
            .clone()
            .open_round(stream)
            .await
            .map_err(api_error_from_status)?;
        status_from_wire(response.into_inner())
    }

    async fn status(&self, job_id: u64) -> Result<JobStatus, ApiError> {
        let response = self
            .client
            .clone()
            .status(StatusRequest { job_id })
            .await
            .map_err(api_error_from_status)?;
        status_from_wire(response.into_inner())
    }

    async fn fetch_result(&self, job_id: u64, round: u64) -> Result<Vec<Vec<u8>>, ApiError> {
        let mut stream = self
            .client
            .clone()
            .fetch_result(FetchResultRequest { job_id, round })
            .await
            .map_err(api_error_from_status)?
            .into_inner();
        let mut envelopes = Vec::new();
        while let Some(chunk) = stream.next().await {
            envelopes.push(chunk.map_err(api_error_from_status)?.envelope);
        }
        Ok(envelopes)
    }
}
