//! [`LocalTransport`]: an outside party calling the servers' job services directly, in one
//! process (tests, and simulated deployments); the same envelopes as over gRPC.

use std::collections::HashMap;
use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::Network;

use tessera_jobs::MpcJobStatus;
use tessera_jobs::{ClientError, MpcTransport};

use super::server::MpcService;

/// The servers' services, by party.
pub struct LocalTransport<N: Network + 'static> {
    services: HashMap<PartyId, Arc<MpcService<N>>>,
}

impl<N: Network + 'static> LocalTransport<N> {
    /// A transport reaching `services`.
    pub fn new(services: &[Arc<MpcService<N>>]) -> Self {
        LocalTransport {
            services: services.iter().map(|s| (s.me(), Arc::clone(s))).collect(),
        }
    }

    fn service(&self, server: PartyId) -> Result<&Arc<MpcService<N>>, ClientError> {
        self.services
            .get(&server)
            .ok_or_else(|| ClientError::Unreachable {
                server,
                reason: "no such server".into(),
            })
    }
}

fn refused(server: PartyId) -> impl Fn(tessera_jobs::MpcServiceError) -> ClientError {
    move |reason| ClientError::Refused { server, reason }
}

impl<N: Network + 'static> MpcTransport for LocalTransport<N> {
    async fn launch(
        &self,
        server: PartyId,
        envelope: Vec<u8>,
    ) -> Result<MpcJobStatus, ClientError> {
        self.service(server)?
            .launch(&envelope)
            .map_err(refused(server))
    }

    async fn submit(&self, server: PartyId, envelopes: Vec<Vec<u8>>) -> Result<(), ClientError> {
        let service = self.service(server)?;
        for envelope in &envelopes {
            service.submit_chunk(envelope).map_err(refused(server))?;
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
        self.service(server)?
            .fetch_output(job_id, round, &token)
            .await
            .map_err(refused(server))
    }

    async fn status(
        &self,
        server: PartyId,
        job_id: u64,
        token: Vec<u8>,
    ) -> Result<MpcJobStatus, ClientError> {
        self.service(server)?
            .status(job_id, &token)
            .map_err(refused(server))
    }

    async fn abort(&self, server: PartyId, envelope: Vec<u8>) -> Result<MpcJobStatus, ClientError> {
        self.service(server)?
            .abort(&envelope)
            .map_err(refused(server))
    }
}
