//! [`GrpcTransport`]: an outside party's [`MpcTransport`] over gRPC, one lazily connected
//! channel per server. A refusal comes back as the server's error kind and message
//! ([`MpcServiceError::Remote`]); a connection that fails names the server and its address.
//! [`GrpcJobs`] is what every outside party's command starts from: the transport and the
//! sealer of its cluster file and key, handing out [`JobClient`]s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::config::ClusterConfig;
use tessera_common::identity::Identity;
use tessera_common::seal::Sealer;
use tessera_jobs::{
    ClientError, Inconsistency, JobClient, MpcJobStatus, MpcServiceError, MpcTransport,
};
use tonic::Status;

use crate::MAX_MESSAGE_BYTES;
use crate::client::{CallerChannel, caller_channel, collect_envelopes, envelope_stream};
use crate::refusal::refusal_of;
use crate::v1::mpc_job_service_client::MpcJobServiceClient;
use crate::v1::{FetchOutputRequest, MpcStatus, MpcStatusRequest, SealedChunk};

/// The servers' MPC job services over gRPC.
pub struct GrpcTransport {
    channels: HashMap<PartyId, (String, CallerChannel)>,
}

impl GrpcTransport {
    /// Channels to every server of `cluster` (connecting on first use), whose calls carry call
    /// tokens sealed with `sealer` (the caller's).
    pub fn new(cluster: &ClusterConfig, sealer: Arc<Sealer>) -> Result<Self, ClientError> {
        let mut channels = HashMap::new();
        for server in cluster.servers() {
            let endpoint = cluster
                .endpoint(server)
                .map_err(|e| ClientError::Unreachable {
                    server,
                    reason: e.to_string(),
                })?;
            let channel = caller_channel(&endpoint, server, Arc::clone(&sealer)).map_err(|e| {
                ClientError::Unreachable {
                    server,
                    reason: e.to_string(),
                }
            })?;
            channels.insert(server, (endpoint.address, channel));
        }
        Ok(GrpcTransport { channels })
    }

    fn client(
        &self,
        server: PartyId,
    ) -> Result<(MpcJobServiceClient<CallerChannel>, &str), ClientError> {
        let (address, channel) =
            self.channels
                .get(&server)
                .ok_or_else(|| ClientError::Unreachable {
                    server,
                    reason: "not in the cluster file".into(),
                })?;
        let client = MpcJobServiceClient::new(channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok((client, address))
    }
}

/// An outside party's connection to the cluster's job services: its sealer and the transport
/// whose calls it seals.
pub struct GrpcJobs {
    servers: Vec<PartyId>,
    sealer: Arc<Sealer>,
    transport: GrpcTransport,
}

impl GrpcJobs {
    /// The connection of `identity` to the servers of `cluster` (connecting on first use).
    pub fn new(cluster: &ClusterConfig, identity: &Identity) -> Result<Self, ClientError> {
        let sealer = Arc::new(Sealer::new(identity, cluster.public_keys()));
        Ok(GrpcJobs {
            servers: cluster.servers(),
            transport: GrpcTransport::new(cluster, Arc::clone(&sealer))?,
            sealer,
        })
    }

    /// A client whose jobs may take `timeout` from launch to their output.
    pub fn client(&self, timeout: Duration) -> JobClient<'_, GrpcTransport> {
        JobClient {
            transport: &self.transport,
            sealer: &self.sealer,
            servers: self.servers.clone(),
            timeout,
        }
    }
}

/// A gRPC failure as the client's error: the server's refusal if it sent one, else the
/// transport's failure naming the server and address.
fn from_status(server: PartyId, address: &str, s: Status) -> ClientError {
    match refusal_of::<MpcServiceError>(&s) {
        Some(reason) => ClientError::Refused { server, reason },
        None => ClientError::Unreachable {
            server,
            reason: format!("{address}: {:?}: {}", s.code(), s.message()),
        },
    }
}

fn status_from_wire(server: PartyId, s: MpcStatus) -> Result<MpcJobStatus, ClientError> {
    serde_json::from_str(&s.status_json).map_err(|e| {
        Inconsistency::Unparsable {
            server,
            detail: e.to_string(),
        }
        .into()
    })
}

impl MpcTransport for GrpcTransport {
    async fn launch(
        &self,
        server: PartyId,
        envelope: Vec<u8>,
    ) -> Result<MpcJobStatus, ClientError> {
        let (mut client, address) = self.client(server)?;
        let reply = client
            .launch(SealedChunk { envelope })
            .await
            .map_err(|s| from_status(server, address, s))?;
        status_from_wire(server, reply.into_inner())
    }

    async fn submit(&self, server: PartyId, envelopes: Vec<Vec<u8>>) -> Result<(), ClientError> {
        let (mut client, address) = self.client(server)?;
        let count = envelopes.len() as u64;
        let receipt = client
            .submit_input(envelope_stream(envelopes))
            .await
            .map_err(|s| from_status(server, address, s))?
            .into_inner();
        if receipt.chunks_accepted != count || !receipt.complete {
            return Err(Inconsistency::Partial {
                server,
                accepted: receipt.chunks_accepted,
                sent: count,
                complete: receipt.complete,
            }
            .into());
        }
        Ok(())
    }

    async fn fetch(
        &self,
        server: PartyId,
        job_id: u64,
        round: u64,
        token: Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let (mut client, address) = self.client(server)?;
        let stream = client
            .fetch_output(FetchOutputRequest {
                job_id,
                output: round,
                auth: token,
            })
            .await
            .map_err(|s| from_status(server, address, s))?
            .into_inner();
        collect_envelopes(stream)
            .await
            .map_err(|e| ClientError::Unreachable {
                server,
                reason: format!("{address}: {e}"),
            })
    }

    async fn status(
        &self,
        server: PartyId,
        job_id: u64,
        token: Vec<u8>,
    ) -> Result<MpcJobStatus, ClientError> {
        let (mut client, address) = self.client(server)?;
        let reply = client
            .status(MpcStatusRequest {
                job_id,
                auth: token,
            })
            .await
            .map_err(|s| from_status(server, address, s))?;
        status_from_wire(server, reply.into_inner())
    }

    async fn abort(&self, server: PartyId, envelope: Vec<u8>) -> Result<MpcJobStatus, ClientError> {
        let (mut client, address) = self.client(server)?;
        let reply = client
            .abort(SealedChunk { envelope })
            .await
            .map_err(|s| from_status(server, address, s))?;
        status_from_wire(server, reply.into_inner())
    }
}
