//! [`ServiceError`]: why a secure-aggregation server refused a request, every rejection a sender
//! can cause a variant of its own. It lives here, beside the API traits, so that a client gets
//! the same variant from an in-process server ([`crate::api::ApiError::Rejected`]); over gRPC the
//! variant's stable name travels in the `tessera-refusal` metadata and comes back as
//! [`ServiceError::Remote`].
//!
//! [`Refusal`] is what both services' refusals (this one and `tessera-jobs`' `MpcServiceError`)
//! have in common on the wire: a stable name per variant, and the `Remote` variant a client
//! rebuilds from a name and a message. `tessera-proto` carries either with the same two
//! functions.

mod detail;

pub use detail::{Incomplete, Malformed, RoundOrder};

use crate::PartyId;
use crate::job::JobError;
use crate::net::NetError;
use crate::request::RequestError;
use crate::ringvec::RingVecError;
use crate::seal::SealError;

/// Why a request to an aggregator failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No such job on this server.
    #[error("unknown job {0}")]
    UnknownJob(u64),
    /// A leader-only request sent to a helper.
    #[error("{0} is not the leader")]
    NotLeader(PartyId),
    /// The job settings are unusable.
    #[error(transparent)]
    BadJob(#[from] JobError),
    /// The job's privacy is below the cluster's minimum (`[privacy]`).
    #[error("job refused: {0}")]
    Privacy(#[from] crate::dp::PrivacyRefusal),
    /// A job id reused with different settings.
    #[error("job {0} already exists with different settings")]
    JobConflict(u64),
    /// An envelope failed to open: unknown sender, bad tag, wrong round/receiver/job, replay.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A read request's token was refused (unknown caller, forged, stale, for another request).
    #[error("request token: {0}")]
    Request(#[from] RequestError),
    /// The sender may not make this request (e.g. a data owner starting a job).
    #[error("{party} may not {action}")]
    Forbidden {
        /// The sender.
        party: PartyId,
        /// What it tried.
        action: &'static str,
    },
    /// The round is not accepting uploads (closed, aggregated, failed, or another round is open).
    #[error("round {round} of job {job} is not open for uploads")]
    RoundClosed {
        /// Job.
        job: u64,
        /// Round the upload was for.
        round: u64,
    },
    /// The owner already contributed to this round.
    #[error("{0} already contributed to this round")]
    DuplicateUpload(PartyId),
    /// A chunk index seen before in this upload.
    #[error("chunk {chunk} replayed within the upload")]
    ReplayedChunk {
        /// The chunk index.
        chunk: u64,
    },
    /// Chunks out of order or missing.
    #[error("expected chunk {expected}, got chunk {got}")]
    OutOfOrder {
        /// Expected index.
        expected: u64,
        /// Index received.
        got: u64,
    },
    /// An update, share piece, seed or weight vector of the wrong length or ring.
    #[error("wrong length: {what} is {got}, the job needs {expected}")]
    WrongLength {
        /// What was measured (e.g. `"weight bytes"`, `"manifest elements"`).
        what: &'static str,
        /// Its value.
        got: u64,
        /// The job's.
        expected: u64,
    },
    /// An upload envelope sealed under the static keys only (not forward secret).
    #[error("upload envelopes must be sealed under an ephemeral key (forward secrecy)")]
    NotForwardSecret,
    /// An update encoded with other fractional bits than the job's.
    #[error("update encoded with {got} fractional bits; the job uses {job}")]
    FixedPointMismatch {
        /// The manifest's.
        got: u32,
        /// The job's.
        job: u32,
    },
    /// A plaintext that does not parse, or is not the message its place requires.
    #[error("malformed: {0}")]
    Malformed(#[from] Malformed),
    /// The request or upload ended before all its parts arrived.
    #[error("incomplete: {0}")]
    Incomplete(#[from] Incomplete),
    /// The round already has `max_clients` contributors.
    #[error("round is full ({0} contributors)")]
    RoundFull(usize),
    /// A helper refused the upload's seed (forged or mangled) or the leader's close.
    #[error("helper {helper} rejected the upload: {reason}")]
    HelperRejected {
        /// The helper.
        helper: PartyId,
        /// Its reason.
        reason: HelperRefusal,
    },
    /// Opening a round out of sequence.
    #[error("cannot open round {requested}: {reason}")]
    BadRoundOrder {
        /// The round asked for.
        requested: u64,
        /// Why not.
        reason: RoundOrder,
    },
    /// Vectors of another ring or length than the job's (the service sizes them from the
    /// checked settings, so this is its own bug, never the sender's).
    #[error("ring vectors: {0}")]
    Ring(#[from] RingVecError),
    /// The result of a round is not (yet) available.
    #[error("no result for round {round} of job {job}: {state}")]
    NotReady {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// The round's state.
        state: String,
    },
    /// Another upload of this owner for this round is still in flight.
    #[error("an upload of {0} for this round is already in progress")]
    UploadInProgress(PartyId),
    /// A bound on what requests may hold at once was reached; retry later.
    #[error("server busy: {what} is at its limit of {limit}")]
    Busy {
        /// What ran out.
        what: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// The upload failed the job's robust-aggregation check: a coordinate out of range, a weight
    /// other than one (every owner counts once under the robust rules), a loss coordinate
    /// outside `[0, w]`, or the norm of the update above the bound. It is not in the round.
    #[error(
        "update rejected by the {rule} check: out of range, a weight or loss outside its window, or above the bound"
    )]
    RuleRejected {
        /// The job's rule.
        rule: String,
    },
    /// The owner's upload was refused by the job's rule earlier in this round.
    #[error("{0}'s update was refused by the job's rule in this round")]
    AlreadyRefused(PartyId),
    /// The check between the servers could not run to its end (a server unreachable, a
    /// protocol error); the upload is not in the round.
    #[error("robust-aggregation check failed: {0}")]
    CheckFailed(String),
    /// Server-to-server communication failed.
    #[error("peer network: {0}")]
    Peer(#[from] NetError),
    /// A refusal a server reported over gRPC: the variant's stable name ([`Refusal::name`])
    /// and the server's message.
    #[error("{message}")]
    Remote {
        /// The refused request's variant, as [`Refusal::name`] names it.
        reason: &'static str,
        /// The server's message.
        message: String,
    },
}

/// Why a helper refused a message of the leader: the answer it sends back over the peer link,
/// and the reason in [`ServiceError::HelperRejected`].
///
/// Exhaustive: the peer link's format has a kind for each variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HelperRefusal {
    /// A message of a round the helper is past, or beyond the job's rounds.
    #[error("round {round} is not current (this helper is at {current})")]
    NotCurrent {
        /// The message's round.
        round: u64,
        /// The helper's.
        current: u64,
    },
    /// A close of a round that is already aggregated or failed.
    #[error("round {0} is already over")]
    Over(u64),
    /// A close whose contributor set is not the one the helper committed.
    #[error("contributor sets differ: leader {leader:?}, mine {mine:?}")]
    Contributors {
        /// The leader's set.
        leader: Vec<PartyId>,
        /// The helper's.
        mine: Vec<PartyId>,
    },
    /// A close of a round whose sum the helper no longer holds.
    #[error("round {0} has no sum")]
    NoSum(u64),
    /// The forwarded upload or the sealing of the result was refused at the helper (over the
    /// peer link it arrives as [`ServiceError::Remote`] with the variant's stable name).
    #[error(transparent)]
    Refused(Box<ServiceError>),
}

/// A service's refusal as it travels between processes: the variant's stable name, and the
/// `Remote` variant a client rebuilds from a name the enum gives and the server's message.
pub trait Refusal: std::error::Error + Sized {
    /// Every name [`Refusal::name`] gives but `Remote`'s.
    const NAMES: &'static [&'static str];

    /// A short, stable name of the variant (`replayed_chunk`, `seal`, ...): the `reason` label
    /// of a server's rejection counters, and the `tessera-refusal` metadata of a gRPC refusal.
    fn name(&self) -> &'static str;

    /// The refusal a remote server reported as `name` with `message`: the enum's `Remote`
    /// variant, if `name` is one of [`Refusal::NAMES`] (`None` for any other text).
    fn remote(name: &str, message: String) -> Option<Self>;

    /// `name` as [`Refusal::NAMES`] spells it, if it is one.
    fn known(name: &str) -> Option<&'static str> {
        Self::NAMES.iter().copied().find(|n| *n == name)
    }
}

impl Refusal for ServiceError {
    const NAMES: &'static [&'static str] = REASONS;

    fn name(&self) -> &'static str {
        match self {
            ServiceError::UnknownJob(_) => "unknown_job",
            ServiceError::NotLeader(_) => "not_leader",
            ServiceError::BadJob(_) => "bad_job",
            ServiceError::Privacy(_) => "privacy",
            ServiceError::JobConflict(_) => "job_conflict",
            ServiceError::Seal(SealError::Replayed { .. }) => "replayed",
            ServiceError::Seal(_) => "seal",
            ServiceError::Request(_) => "request_token",
            ServiceError::Forbidden { .. } => "forbidden",
            ServiceError::RoundClosed { .. } => "round_closed",
            ServiceError::DuplicateUpload(_) => "duplicate_upload",
            ServiceError::ReplayedChunk { .. } => "replayed_chunk",
            ServiceError::OutOfOrder { .. } => "out_of_order",
            ServiceError::WrongLength { .. } => "wrong_length",
            ServiceError::NotForwardSecret => "not_forward_secret",
            ServiceError::FixedPointMismatch { .. } => "fixed_point_mismatch",
            ServiceError::Malformed(_) => "malformed",
            ServiceError::Incomplete(_) => "incomplete",
            ServiceError::RoundFull(_) => "round_full",
            ServiceError::HelperRejected { .. } => "helper_rejected",
            ServiceError::BadRoundOrder { .. } => "bad_round_order",
            ServiceError::NotReady { .. } => "not_ready",
            ServiceError::UploadInProgress(_) => "upload_in_progress",
            ServiceError::Busy { .. } => "busy",
            ServiceError::RuleRejected { .. } => "rule_rejected",
            ServiceError::AlreadyRefused(_) => "already_refused",
            ServiceError::CheckFailed(_) => "check_failed",
            ServiceError::Peer(_) => "peer",
            ServiceError::Ring(_) => "ring",
            ServiceError::Remote { reason, .. } => reason,
        }
    }

    fn remote(name: &str, message: String) -> Option<Self> {
        Self::known(name).map(|reason| ServiceError::Remote { reason, message })
    }
}

/// Every name [`ServiceError`]'s [`Refusal::name`] gives but `Remote`'s.
const REASONS: &[&str] = &[
    "unknown_job",
    "not_leader",
    "bad_job",
    "privacy",
    "job_conflict",
    "replayed",
    "seal",
    "request_token",
    "forbidden",
    "round_closed",
    "duplicate_upload",
    "replayed_chunk",
    "out_of_order",
    "wrong_length",
    "not_forward_secret",
    "fixed_point_mismatch",
    "malformed",
    "incomplete",
    "round_full",
    "helper_rejected",
    "bad_round_order",
    "not_ready",
    "upload_in_progress",
    "busy",
    "rule_rejected",
    "already_refused",
    "check_failed",
    "peer",
    "ring",
];
