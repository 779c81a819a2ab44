//! The model owner's gRPC client of one server ([`ServerApi`] over the wire).

use std::sync::Arc;

use crate::MAX_MESSAGE_BYTES;
use crate::client::{CallerChannel, caller_channel, collect_envelopes, envelope_stream};
use crate::convert::{api_error_from_status, status_from_wire};
use crate::v1::model_owner_service_client::ModelOwnerServiceClient;
use crate::v1::{FetchResultRequest, SealedChunk, StatusRequest};
use tessera_common::PartyId;
use tessera_common::api::{ApiError, JobStatus, ServerApi};
use tessera_common::config::ServerEndpoint;
use tessera_common::request::{RequestKind, now_secs, seal_request};
use tessera_common::seal::Sealer;

/// One server, reached over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcServer {
    client: ModelOwnerServiceClient<CallerChannel>,
    server: PartyId,
    address: String,
    sealer: Arc<Sealer>,
}

impl GrpcServer {
    /// A client of `server` at `target` (connects on first use, over TLS if the server has a
    /// certificate) that seals its request tokens with `sealer`.
    pub fn new(
        target: &ServerEndpoint,
        server: PartyId,
        sealer: Arc<Sealer>,
    ) -> Result<Self, ApiError> {
        let channel = caller_channel(target, server, Arc::clone(&sealer))?;
        let client = ModelOwnerServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcServer {
            client,
            server,
            address: target.address.clone(),
            sealer,
        })
    }

    /// A failed call's error; an unreachable server's names the address dialled.
    fn error(&self) -> impl Fn(tonic::Status) -> ApiError + '_ {
        |status| match api_error_from_status(status) {
            ApiError::Unavailable(reason) => {
                ApiError::Unavailable(format!("{} at {}: {reason}", self.server, self.address))
            }
            other => other,
        }
    }
}

impl ServerApi for GrpcServer {
    async fn start_job(&self, envelope: Vec<u8>) -> Result<JobStatus, ApiError> {
        let response = self
            .client
            .clone()
            .start_job(SealedChunk { envelope })
            .await
            .map_err(self.error())?;
        status_from_wire(response.into_inner())
    }

    async fn open_round(&self, envelopes: Vec<Vec<u8>>) -> Result<JobStatus, ApiError> {
        let stream = envelope_stream(envelopes);
        let response = self
            .client
            .clone()
            .open_round(stream)
            .await
            .map_err(self.error())?;
        status_from_wire(response.into_inner())
    }

    async fn status(&self, job_id: u64) -> Result<JobStatus, ApiError> {
        let response = self
            .client
            .clone()
            .status(StatusRequest {
                job_id,
                auth: seal_request(
                    &self.sealer,
                    self.server,
                    RequestKind::Status,
                    job_id,
                    0,
                    now_secs(),
                )
                .map_err(ApiError::Token)?,
            })
            .await
            .map_err(self.error())?;
        status_from_wire(response.into_inner())
    }

    async fn fetch_result(&self, job_id: u64, round: u64) -> Result<Vec<Vec<u8>>, ApiError> {
        let stream = self
            .client
            .clone()
            .fetch_result(FetchResultRequest { job_id, round })
            .await
            .map_err(self.error())?
            .into_inner();
        collect_envelopes(stream).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::identity::Identity;

    /// A server that is not listening: the error names the server and the address dialled (at
    /// 59c017e it named neither).
    #[tokio::test]
    async fn an_unreachable_server_is_named_with_its_address() {
        // A port just released: nothing listens there.
        let address = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let me = Identity::generate(PartyId::ModelOwner, &mut rand::rng());
        let server = Identity::generate(PartyId::Server(2), &mut rand::rng());
        let sealer = Arc::new(Sealer::new(
            &me,
            [(PartyId::Server(2), server.public_key())],
        ));
        let target = ServerEndpoint {
            address: address.clone(),
            tls_cert: None,
        };
        let client = GrpcServer::new(&target, PartyId::Server(2), sealer).unwrap();
        match client.start_job(vec![1, 2, 3]).await {
            Err(ApiError::Unavailable(reason)) => {
                assert!(
                    reason.contains("server2") && reason.contains(&address),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
