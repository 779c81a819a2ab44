//! The in-process transport: [`LeaderApi`] and [`ServerApi`] straight on the service (simulated
//! mode and tests), with the same errors a gRPC client would map to.

use std::sync::Arc;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::api::{
    ApiError, JobStatus, LeaderApi, RoundAnnouncement, ServerApi, UploadReceipt,
};
use tessera_common::net::Network;

use super::{AggregatorService, Upload};

/// How long a round poll waits before answering with the current state.
pub const FETCH_ROUND_WAIT: Duration = Duration::from_secs(20);

/// A server reached in-process.
pub struct LocalServer<N: Network + 'static>(pub Arc<AggregatorService<N>>);

impl<N: Network + 'static> Clone for LocalServer<N> {
    fn clone(&self) -> Self {
        LocalServer(Arc::clone(&self.0))
    }
}

impl<N: Network + 'static> LeaderApi for LocalServer<N> {
    async fn fetch_round(
        &self,
        _owner: PartyId,
        job_id: u64,
        after_round: u64,
    ) -> Result<RoundAnnouncement, ApiError> {
        Ok(AggregatorService::fetch_round(&self.0, job_id, after_round, FETCH_ROUND_WAIT).await?)
    }

    async fn fetch_weights(
        &self,
        owner: PartyId,
        job_id: u64,
        round: u64,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        Ok(AggregatorService::fetch_weights(&self.0, owner, job_id, round).await?)
    }

    async fn upload(&self, envelopes: Vec<Vec<u8>>) -> Result<UploadReceipt, ApiError> {
        let mut upload = Upload::new(Arc::clone(&self.0));
        for envelope in &envelopes {
            upload.push(envelope)?;
        }
        Ok(upload.finish().await?)
    }

    async fn decline(&self, envelope: Vec<u8>) -> Result<(), ApiError> {
        self.0.decline(&envelope).await?;
        Ok(())
    }
}

impl<N: Network + 'static> ServerApi for LocalServer<N> {
    async fn start_job(&self, envelope: Vec<u8>) -> Result<JobStatus, ApiError> {
        Ok(AggregatorService::start_job(&self.0, &envelope)?)
    }

    async fn open_round(&self, envelopes: Vec<Vec<u8>>) -> Result<JobStatus, ApiError> {
        Ok(AggregatorService::open_round(&self.0, &envelopes).await?)
    }

    async fn status(&self, job_id: u64) -> Result<JobStatus, ApiError> {
        Ok(AggregatorService::status(&self.0, job_id).await?)
    }

    async fn fetch_result(&self, job_id: u64, round: u64) -> Result<Vec<Vec<u8>>, ApiError> {
        Ok(AggregatorService::fetch_result(&self.0, job_id, round).await?)
    }
}
