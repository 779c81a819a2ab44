//! The reasons inside [`super::ServiceError`]'s broad variants: what is wrong with a message
//! whose envelope opened ([`Malformed`]), what an upload or request lacks ([`Incomplete`]), and
//! why a round cannot open now ([`RoundOrder`]).

use crate::PartyId;
use crate::notice::NoticeError;
use crate::upload::MalformedPart;

/// What is wrong with a message whose envelope opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// A weight of the round's model that is not a finite number.
    #[error("non-finite weight")]
    NonFiniteWeight,
    /// An upload chunk whose plaintext is no upload part.
    #[error(transparent)]
    Part(#[from] MalformedPart),
    /// A chunk that is not the part its index must be.
    #[error("chunk {chunk} must be {expected}")]
    WrongPart {
        /// Its index.
        chunk: u64,
        /// The part it must be (`"the manifest"`, `"a share piece"`, `"a seed"`).
        expected: &'static str,
    },
    /// A chunk past the upload's parts.
    #[error("unexpected chunk {0}")]
    UnexpectedChunk(u64),
    /// A seed envelope whose header is not the one its place in the upload requires.
    #[error("chunk {chunk} must be a seed envelope for {helper} in round {round}")]
    SeedHeader {
        /// Its index.
        chunk: u64,
        /// The helper it must be sealed for.
        helper: PartyId,
        /// The round.
        round: u64,
    },
    /// Job settings that do not parse (the parser's message).
    #[error("job settings: {0}")]
    Settings(String),
    /// Job settings naming another job than their envelope.
    #[error("the settings are for job {settings}, the envelope for job {envelope}")]
    SettingsJob {
        /// The envelope's job.
        envelope: u64,
        /// The settings'.
        settings: u64,
    },
    /// Job settings for another number of servers than the cluster's.
    #[error("job wants {job} servers, this cluster has {cluster}")]
    Servers {
        /// The job's.
        job: usize,
        /// The cluster's.
        cluster: usize,
    },
    /// A data owner's notice that does not parse or is not its own.
    #[error("notice: {0}")]
    Notice(NoticeError),
    /// A helper's reply on the peer link that does not parse.
    #[error("reply from {from}: {what}")]
    PeerReply {
        /// The helper.
        from: PartyId,
        /// What is wrong with it.
        what: &'static str,
    },
}

/// What a request or an upload lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Incomplete {
    /// A request of no envelopes at all.
    #[error("no envelopes")]
    NoEnvelopes,
    /// An upload whose chunks ended before its manifest.
    #[error("no manifest")]
    NoManifest,
    /// An upload that ended before all the envelopes its manifest announces.
    #[error("{got} of {expected} envelopes")]
    Envelopes {
        /// Envelopes received.
        got: u64,
        /// Envelopes the manifest announces (manifest, share pieces, one seed per helper).
        expected: u64,
    },
    /// An upload whose seed envelopes are not one per helper.
    #[error("{got} seed envelopes for {helpers} helpers")]
    SeedEnvelopes {
        /// Envelopes given.
        got: usize,
        /// Helpers of the job.
        helpers: usize,
    },
    /// A decision about an upload the leader has not forwarded (or already decided).
    #[error("no upload in flight as {0}")]
    NotInFlight(u64),
    /// The upload's task ended before a decision (it panicked, or the runtime shut down).
    #[error("the upload's task ended before a decision")]
    TaskEnded,
}

/// Why a round cannot open now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoundOrder {
    /// The round does not follow the current one, or the current one is not over.
    #[error("round {current} is {}", if *over { "over, and this is not the next" } else { "not over" })]
    NotNext {
        /// The current round.
        current: u64,
        /// Whether it is over.
        over: bool,
    },
    /// A round beyond the job's.
    #[error("the job has {rounds} rounds")]
    Beyond {
        /// The job's rounds.
        rounds: u64,
    },
}
