//! The data owner's gRPC client of the leader ([`LeaderApi`] over the wire). The channel connects
//! lazily and reconnects by itself; the node's loop retries with backoff.

use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundAnnouncement, UploadReceipt};
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::convert::{announcement_from_wire, api_error_from_status, receipt_from_wire};
use tessera_proto::v1::data_owner_service_client::DataOwnerServiceClient;
use tessera_proto::v1::{FetchRoundRequest, FetchWeightsRequest, SealedChunk};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

/// The leader, reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcLeader {
    client: DataOwnerServiceClient<Channel>,
}

impl GrpcLeader {
    /// A client of the leader at `host:port` (connects on first use).
    pub fn new(address: &str) -> Result<Self, ApiError> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| ApiError::Rejected(format!("bad address {address}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        let client = DataOwnerServiceClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcLeader { client })
    }
}

impl LeaderApi for GrpcLeader {
    async fn fetch_round(
        &self,
        owner: PartyId,
        job_id: u64,
        after_round: u64,
    ) -> Result<RoundAnnouncement, ApiError> {
        let request = FetchRoundRequest {
            data_owner: owner.to_string(),
            job_id,
            after_round,
        };
        let response = self
            .client
            .clone()
            .fetch_round(request)
            .await
            .map_err(api_error_from_status)?;
        announcement_from_wire(response.into_inner())
    }

    async fn fetch_weights(
        &self,
        owner: PartyId,
        job_id: u64,
        round: u64,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let request = FetchWeightsRequest {
            data_owner: owner.to_string(),
            job_id,
            round,
        };
        let mut stream = self
            .client
            .clone()
            .fetch_weights(request)
            .await
            .map_err(api_error_from_status)?
            .into_inner();
        let mut envelopes = Vec::new();
        while let Some(chunk) = stream.next().await {
            envelopes.push(chunk.map_err(api_error_from_status)?.envelope);
        }
        Ok(envelopes)
    }

    async fn upload(&self, envelopes: Vec<Vec<u8>>) -> Result<UploadReceipt, ApiError> {
        let stream = tokio_stream::iter(
            envelopes
                .into_iter()
                .map(|envelope| SealedChunk { envelope }),
        );
        let response = self
            .client
            .clone()
            .upload_shares(stream)
            .await
            .map_err(api_error_from_status)?;
        Ok(receipt_from_wire(response.into_inner()))
    }
}
