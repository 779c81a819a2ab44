//! The data owner's gRPC client of the leader ([`LeaderApi`] over the wire). The channel connects
//! lazily and reconnects by itself; the node's loop retries with backoff.

use std::sync::Arc;

use crate::MAX_MESSAGE_BYTES;
use crate::client::{CallerChannel, caller_channel, collect_envelopes, envelope_stream};
use crate::convert::{announcement_from_wire, api_error_from_status, receipt_from_wire};
use crate::v1::data_owner_service_client::DataOwnerServiceClient;
use crate::v1::{FetchRoundRequest, FetchWeightsRequest, SealedChunk};
use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundAnnouncement, UploadReceipt};
use tessera_common::config::ServerEndpoint;
use tessera_common::request::{RequestKind, now_secs, seal_request};
use tessera_common::seal::Sealer;

/// The leader, reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcLeader {
    client: DataOwnerServiceClient<CallerChannel>,
    sealer: Arc<Sealer>,
}

impl GrpcLeader {
    /// A client of the leader at `leader` (connects on first use, over TLS if the leader has a
    /// certificate) that seals its request tokens with `sealer`.
    pub fn new(leader: &ServerEndpoint, sealer: Arc<Sealer>) -> Result<Self, ApiError> {
        let channel = caller_channel(leader, PartyId::Server(0), Arc::clone(&sealer))?;
        let client = DataOwnerServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcLeader { client, sealer })
    }

    fn token(&self, kind: RequestKind, job_id: u64, round: u64) -> Result<Vec<u8>, ApiError> {
        seal_request(
            &self.sealer,
            PartyId::Server(0),
            kind,
            job_id,
            round,
            now_secs(),
        )
        .map_err(ApiError::Token)
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
            auth: self.token(RequestKind::FetchRound, job_id, after_round)?,
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
            auth: self.token(RequestKind::FetchWeights, job_id, round)?,
        };
        let stream = self
            .client
            .clone()
            .fetch_weights(request)
            .await
            .map_err(api_error_from_status)?
            .into_inner();
        collect_envelopes(stream).await
    }

    async fn upload(&self, envelopes: Vec<Vec<u8>>) -> Result<UploadReceipt, ApiError> {
        let stream = envelope_stream(envelopes);
        let response = self
            .client
            .clone()
            .upload_shares(stream)
            .await
            .map_err(api_error_from_status)?;
        Ok(receipt_from_wire(response.into_inner()))
    }

    async fn decline(&self, envelope: Vec<u8>) -> Result<(), ApiError> {
        self.client
            .clone()
            .decline(SealedChunk { envelope })
            .await
            .map_err(api_error_from_status)?;
        Ok(())
    }
}
