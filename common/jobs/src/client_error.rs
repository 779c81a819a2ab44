//! [`ClientError`]: why an outside party's job failed, by whose doing: a server's refusal, the
//! transport, the job's end, servers that disagree ([`Inconsistency`]), time, or this side.

use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::sharing::SharingError;

use crate::error::MpcServiceError as Error;
use crate::state::JobState;

/// Why an outside party's job failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A server refused a request (its reason as it gave it).
    #[error("{server} refused: {reason}")]
    Refused {
        /// The server.
        server: PartyId,
        /// The refusal, as the server's error.
        reason: Error,
    },
    /// A server could not be reached, or its connection broke.
    #[error("{server} unreachable: {reason}")]
    Unreachable {
        /// The server.
        server: PartyId,
        /// What the transport reported.
        reason: String,
    },
    /// The job failed or was aborted (as a server reports it).
    #[error("job {job_id} at {server}: {state:?}")]
    JobEnded {
        /// The server.
        server: PartyId,
        /// The job.
        job_id: u64,
        /// How it ended.
        state: JobState,
    },
    /// The servers describe the job differently, or not as asked.
    #[error("inconsistent job: {0}")]
    Inconsistent(#[from] Inconsistency),
    /// The job did not finish in time.
    #[error("job {job_id} did not finish within {after:?} (waiting for {server})")]
    Timeout {
        /// The server waited for.
        server: PartyId,
        /// The job.
        job_id: u64,
        /// How long we waited.
        after: Duration,
    },
    /// Sealing, encoding or reconstructing on this side.
    #[error(transparent)]
    Local(#[from] Error),
    /// Sharing an input, or reconstructing an output: a server's share of the wrong length
    /// ([`SharingError::ShareLength`] names it).
    #[error(transparent)]
    Sharing(#[from] SharingError),
}

impl ClientError {
    /// The server this error names, if one.
    pub fn server(&self) -> Option<PartyId> {
        match self {
            ClientError::Refused { server, .. }
            | ClientError::Unreachable { server, .. }
            | ClientError::JobEnded { server, .. }
            | ClientError::Timeout { server, .. } => Some(*server),
            _ => None,
        }
    }
}

/// How the servers' answers disagree with each other or with what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Inconsistency {
    /// A server's status of a job differs from the first server's.
    #[error("{server} describes job {job_id} differently")]
    Differs {
        /// The server.
        server: PartyId,
        /// The job.
        job_id: u64,
    },
    /// A client with no servers.
    #[error("no servers")]
    NoServers,
    /// A transfer the job does not declare for this party.
    #[error("job has no {what} {round} for this party")]
    NoTransfer {
        /// `"input"` or `"output"`.
        what: &'static str,
        /// Its index.
        round: usize,
    },
    /// Values of another ring than the job's.
    #[error("job computes in the {job}-bit ring, not {given}")]
    Ring {
        /// The job's ring bits.
        job: u32,
        /// The values'.
        given: u32,
    },
    /// A status that does not parse.
    #[error("{server} sent a status that does not parse: {detail}")]
    Unparsable {
        /// The server.
        server: PartyId,
        /// The parser's message.
        detail: String,
    },
    /// A server that took fewer chunks of an input than were sent.
    #[error("{server} accepted {accepted} of {sent} chunks (complete: {complete})")]
    Partial {
        /// The server.
        server: PartyId,
        /// Chunks it accepted.
        accepted: u64,
        /// Chunks sent.
        sent: u64,
        /// Whether it says the input is complete.
        complete: bool,
    },
}
