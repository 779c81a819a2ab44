//! The requests each role makes of the servers, as transport-free traits.
//!
//! A data owner talks to the leader through [`LeaderApi`]; the model owner talks to every server
//! through [`ServerApi`]. The aggregator crate implements both directly on its service (simulated
//! mode: no sockets, same logic, same sealing), and the gRPC clients implement them over the wire
//! (networked mode). Every payload that matters is a sealed envelope, so neither transport is
//! trusted.

use std::future::Future;

use crate::PartyId;
use crate::job::JobSettings;
use crate::refusal::ServiceError;
use crate::seal::SealError;

/// The state of a job's current round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RoundState {
    /// No round opened yet.
    Idle,
    /// Open, no upload committed yet.
    Open,
    /// Open, at least one upload committed.
    Collecting,
    /// Closed; the servers are finishing their result shares.
    Closed,
    /// Every server holds its sealed result share.
    Aggregated,
    /// Closed without a result (too few contributors, or a server failed).
    Failed,
}

impl RoundState {
    /// Whether uploads are accepted.
    pub fn accepts_uploads(self) -> bool {
        matches!(self, RoundState::Open | RoundState::Collecting)
    }

    /// Whether the round is over (a new one may open).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RoundState::Idle | RoundState::Aggregated | RoundState::Failed
        )
    }
}

/// What a data owner learns when it polls for a round.
#[derive(Debug, Clone)]
pub struct RoundAnnouncement {
    /// The job's settings.
    pub settings: JobSettings,
    /// The round.
    pub round: u64,
    /// Its state.
    pub state: RoundState,
    /// When uploads close (milliseconds since the Unix epoch).
    pub deadline_unix_ms: u64,
    /// No further rounds will come.
    pub job_done: bool,
}

/// A job's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    /// Job id.
    pub job_id: u64,
    /// Current round.
    pub round: u64,
    /// Its state.
    pub state: RoundState,
    /// Committed contributors of the current round.
    pub contributors: Vec<PartyId>,
    /// A human-readable note (why a round failed, say).
    pub message: String,
    /// The data owners that declined the job, with their reasons (see [`crate::notice`]).
    pub declined: Vec<(PartyId, String)>,
}

/// Acknowledgement of an accepted upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadReceipt {
    /// Job.
    pub job_id: u64,
    /// Round.
    pub round: u64,
    /// Envelopes accepted.
    pub chunks_accepted: u64,
}

/// Why a request failed, as the caller needs to act on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The server refused the request: retrying the same request will not help. In process the
    /// refusal's own variant; over gRPC [`ServiceError::Remote`] with the variant's name.
    #[error("rejected: {0}")]
    Rejected(ServiceError),
    /// What was asked for does not exist yet (a result still being computed): retry later.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The server could not be reached or failed: retry with backoff.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A server's address that does not make an endpoint.
    #[error("bad address {address}: {reason}")]
    BadAddress {
        /// The address as the cluster file gives it.
        address: String,
        /// Why it does not work.
        reason: String,
    },
    /// A server's answer that does not decode (a field out of its domain).
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// A refusal by the server's gRPC front before any service read the request (no call token,
    /// too many calls of this party, a message too slow or malformed), with the gRPC code's name.
    #[error("refused by the server's front ({code}): {message}")]
    Front {
        /// The gRPC status code, by name.
        code: String,
        /// The front's message.
        message: String,
    },
    /// This party could not seal its request token for the server (no key of it).
    #[error("cannot seal a request token: {0}")]
    Token(SealError),
}

/// A refusal as an in-process server gives it: "not yet" and "a peer is unreachable" are what
/// a client retries, any other is final (the gRPC clients map status codes the same way).
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotReady { .. } => ApiError::NotReady(e.to_string()),
            ServiceError::Peer(_) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Rejected(other),
        }
    }
}

/// A data owner's view of the leader.
pub trait LeaderApi: Send + Sync {
    /// Waits (bounded) for a round of `job_id` (0: the newest job) after `after_round`.
    fn fetch_round(
        &self,
        owner: PartyId,
        job_id: u64,
        after_round: u64,
    ) -> impl Future<Output = Result<RoundAnnouncement, ApiError>> + Send;

    /// The round's global weights, sealed for `owner`.
    fn fetch_weights(
        &self,
        owner: PartyId,
        job_id: u64,
        round: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, ApiError>> + Send;

    /// Uploads one update's sealed envelopes, in order.
    fn upload(
        &self,
        envelopes: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<UploadReceipt, ApiError>> + Send;

    /// Tells the leader this owner cannot take part in a job (a sealed notice, see
    /// [`crate::notice`]).
    fn decline(&self, envelope: Vec<u8>) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// The model owner's view of one server.
pub trait ServerApi: Send + Sync {
    /// Starts a job (a sealed control envelope holding the settings).
    fn start_job(
        &self,
        envelope: Vec<u8>,
    ) -> impl Future<Output = Result<JobStatus, ApiError>> + Send;

    /// Opens a round with the global weights (sealed chunks; leader only).
    fn open_round(
        &self,
        envelopes: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<JobStatus, ApiError>> + Send;

    /// A job's status.
    fn status(&self, job_id: u64) -> impl Future<Output = Result<JobStatus, ApiError>> + Send;

    /// This server's sealed share of a round's result.
    fn fetch_result(
        &self,
        job_id: u64,
        round: u64,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, ApiError>> + Send;
}
