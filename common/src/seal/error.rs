//! [`SealError`]: each way an envelope can be wrong, a variant of its own.

use super::purpose::Purpose;
use crate::party::PartyId;

/// Errors of sealing and opening. Each way an envelope can be wrong has its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Too short to hold a header, nonce and tag, or a header field no party encodes.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// A format version this build does not speak.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// Addressed to another party.
    #[error("envelope is for {got}, not for {expected}")]
    WrongReceiver {
        /// This party.
        expected: PartyId,
        /// The header's receiver.
        got: PartyId,
    },
    /// From a different sender than expected.
    #[error("envelope is from {got}, expected {expected}")]
    WrongSender {
        /// The expected sender.
        expected: PartyId,
        /// The header's sender.
        got: PartyId,
    },
    /// Sealed for another purpose (an upload opened as a result, say).
    #[error("envelope purpose {got:?}, expected {expected:?}")]
    WrongPurpose {
        /// The expected purpose.
        expected: Purpose,
        /// The header's purpose byte.
        got: u8,
    },
    /// Sealed for another job.
    #[error("envelope is for job {got}, expected job {expected}")]
    WrongJob {
        /// The expected job.
        expected: u64,
        /// The header's job.
        got: u64,
    },
    /// Sealed for another round.
    #[error("envelope is for round {got}, expected round {expected}")]
    WrongRound {
        /// The expected round.
        expected: u64,
        /// The header's round.
        got: u64,
    },
    /// The sender has no registered public key.
    #[error("unknown sender {0}")]
    UnknownSender(PartyId),
    /// The peer's public key yields a non-contributory (low-order) shared secret.
    #[error("public key of {0} gives a non-contributory shared secret")]
    NonContributory(PartyId),
    /// The tag did not verify: the ciphertext, header or nonce was altered, or the key is wrong.
    #[error("envelope from {sender} failed authentication")]
    AuthenticationFailed {
        /// The header's (unauthenticated) sender.
        sender: PartyId,
    },
    /// An authentic envelope seen before.
    #[error("replayed envelope: {sender} job {job_id} round {round} chunk {chunk}")]
    Replayed {
        /// Sender.
        sender: PartyId,
        /// Job.
        job_id: u64,
        /// Round.
        round: u64,
        /// Chunk index.
        chunk: u64,
    },
}
