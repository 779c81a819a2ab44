//! Errors of the MPC job service; every rejection a caller can cause has its own variant.

use tessera_common::PartyId;
use tessera_common::model_spec::SpecError;
use tessera_common::refusal::Refusal;
use tessera_common::request::RequestError;
use tessera_common::seal::SealError;
use tessera_common::train_job::TrainJobError;

use crate::state::JobState;

/// Why a request to a server's MPC job service failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MpcServiceError {
    /// No such job on this server (never launched here, or forgotten long ago).
    #[error("unknown MPC job {0}")]
    UnknownJob(u64),
    /// A launch for a job id this server already has.
    #[error("MPC job {0} already exists")]
    DuplicateJob(u64),
    /// The description is unusable: an invalid model, a batch out of range...
    #[error("bad job: {0}")]
    BadJob(#[from] BadJob),
    /// The caller may not do this (deploy as a data owner, abort as a client...).
    #[error("{party} may not {what}")]
    Forbidden {
        /// The caller.
        party: PartyId,
        /// What it tried.
        what: String,
    },
    /// No model is deployed under this id on this server.
    #[error("no model deployed as {0:?}")]
    UnknownModel(String),
    /// The cluster file does not let this client query this model.
    #[error("{party} is not allowed to query model {model:?}")]
    NotAllowed {
        /// The client.
        party: PartyId,
        /// The model.
        model: String,
    },
    /// An envelope failed to open: unknown sender, bad tag, wrong job or round, replay.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// An input chunk sealed under the sender's static key alone (envelope version 1): inputs
    /// must be forward secret for their sender, as uploads are.
    #[error("input of job {job} from {party} is not sealed forward secret")]
    NotForwardSecret {
        /// The job.
        job: u64,
        /// The sender.
        party: PartyId,
    },
    /// A read request's token was refused.
    #[error("request token: {0}")]
    Request(#[from] RequestError),
    /// A launch whose clock is too far from the server's.
    #[error("launch is {skew_secs} s away from the server's clock")]
    Stale {
        /// The distance in seconds.
        skew_secs: u64,
    },
    /// A plaintext that does not parse, or is not the message its place requires.
    #[error("malformed: {0}")]
    Malformed(#[from] BadMessage),
    /// An input this job does not expect from this party under this index.
    #[error("job {job} expects no input {round} from {party}")]
    UnexpectedInput {
        /// The job.
        job: u64,
        /// The sender.
        party: PartyId,
        /// The input index.
        round: u64,
    },
    /// An input already received in full.
    #[error("input {round} of job {job} was already received")]
    DuplicateInput {
        /// The job.
        job: u64,
        /// The input index.
        round: u64,
    },
    /// Chunks out of order or missing.
    #[error("expected chunk {expected}, got chunk {got}")]
    OutOfOrder {
        /// Expected index.
        expected: u64,
        /// Index received.
        got: u64,
    },
    /// An input of the wrong size for its declared shape.
    #[error(
        "wrong length: {input} is {got} {unit}, the job takes {}{expected}",
        if row.is_some() { "whole rows up to " } else { "" }
    )]
    WrongLength {
        /// The input, as the job names it.
        input: String,
        /// What was counted: `"bytes"` at a server, `"values"` at the client.
        unit: &'static str,
        /// The count (at a server, of the chunks so far when they already exceed the input).
        got: u64,
        /// The input's size.
        expected: u64,
        /// The size of one row, for an input of any number of whole rows up to `expected`.
        row: Option<u64>,
    },
    /// A real without a fixed-point encoding at the job's precision (not finite, or too large).
    #[error("value {index}: {source}")]
    Unencodable {
        /// Its position.
        index: usize,
        /// Why it does not encode.
        source: tessera_common::fixed::FixedPointError,
    },
    /// No output for this caller under this index.
    #[error("job {job} has no output {round} for {party}")]
    NoSuchOutput {
        /// The job.
        job: u64,
        /// The caller.
        party: PartyId,
        /// The output index.
        round: u64,
    },
    /// A value of an output the caller already let go by fetching a later one.
    #[error("value {seq} of output {output} of job {job} was released (the first held is {first})")]
    Released {
        /// The job.
        job: u64,
        /// The output's index.
        output: u64,
        /// The value asked for.
        seq: u64,
        /// The first value still held.
        first: u64,
    },
    /// An abort that names another launch of the job than the one this server runs (a
    /// recorded abort replayed against a later job under the same id).
    #[error("the abort names another launch of MPC job {job}")]
    AbortMismatch {
        /// The job.
        job: u64,
    },
    /// A client that has run all the predictions the cluster file allows it on a model.
    #[error("{party} has run its {budget} predictions on model {model:?}")]
    QueryBudget {
        /// The client.
        party: PartyId,
        /// The model.
        model: String,
        /// Its budget.
        budget: u64,
    },
    /// A training that would reveal more than the cluster's `[training]` policy allows.
    #[error("training refused: {0}")]
    Training(#[from] tessera_common::train_policy::TrainingRefusal),
    /// The output is not ready yet (ask again).
    #[error("output {round} of job {job} is not ready yet")]
    NotReady {
        /// The job.
        job: u64,
        /// The output index.
        round: u64,
    },
    /// The job ended without the requested output (failed or aborted), or was over before an
    /// input arrived.
    #[error("MPC job {job} {state}")]
    Ended {
        /// The job.
        job: u64,
        /// How it ended.
        state: String,
    },
    /// A bound on what the service holds at once was reached; retry later.
    #[error("server busy: {what} is at its limit of {limit}")]
    Busy {
        /// What ran out.
        what: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// A refusal as a remote server reported it over gRPC: its variant's stable name
    /// ([`Refusal::name`]) and message.
    #[error("{message}")]
    Remote {
        /// The variant's name at the server.
        kind: &'static str,
        /// Its message.
        message: String,
    },
}

impl Refusal for MpcServiceError {
    const NAMES: &'static [&'static str] = &[
        "unknown_job",
        "duplicate_job",
        "bad_job",
        "forbidden",
        "unknown_model",
        "not_allowed",
        "seal",
        "not_forward_secret",
        "request",
        "stale",
        "malformed",
        "unexpected_input",
        "duplicate_input",
        "out_of_order",
        "wrong_length",
        "unencodable",
        "no_such_output",
        "released",
        "training_policy",
        "query_budget",
        "abort_mismatch",
        "not_ready",
        "ended",
        "busy",
    ];

    fn name(&self) -> &'static str {
        match self {
            MpcServiceError::UnknownJob(_) => "unknown_job",
            MpcServiceError::DuplicateJob(_) => "duplicate_job",
            MpcServiceError::BadJob(_) => "bad_job",
            MpcServiceError::Forbidden { .. } => "forbidden",
            MpcServiceError::UnknownModel(_) => "unknown_model",
            MpcServiceError::NotAllowed { .. } => "not_allowed",
            MpcServiceError::Seal(_) => "seal",
            MpcServiceError::NotForwardSecret { .. } => "not_forward_secret",
            MpcServiceError::Request(_) => "request",
            MpcServiceError::Stale { .. } => "stale",
            MpcServiceError::Malformed(_) => "malformed",
            MpcServiceError::UnexpectedInput { .. } => "unexpected_input",
            MpcServiceError::DuplicateInput { .. } => "duplicate_input",
            MpcServiceError::OutOfOrder { .. } => "out_of_order",
            MpcServiceError::WrongLength { .. } => "wrong_length",
            MpcServiceError::Unencodable { .. } => "unencodable",
            MpcServiceError::NoSuchOutput { .. } => "no_such_output",
            MpcServiceError::Released { .. } => "released",
            MpcServiceError::Training(_) => "training_policy",
            MpcServiceError::QueryBudget { .. } => "query_budget",
            MpcServiceError::AbortMismatch { .. } => "abort_mismatch",
            MpcServiceError::NotReady { .. } => "not_ready",
            MpcServiceError::Ended { .. } => "ended",
            MpcServiceError::Busy { .. } => "busy",
            MpcServiceError::Remote { kind, .. } => kind,
        }
    }

    fn remote(name: &str, message: String) -> Option<Self> {
        Self::known(name).map(|kind| MpcServiceError::Remote { kind, message })
    }
}

impl MpcServiceError {
    /// The error for a request about a job that is over.
    pub fn ended(job: u64, state: &JobState) -> Self {
        let state = match state {
            JobState::Running => "is running".to_string(),
            JobState::Done => "is done".to_string(),
            JobState::Failed(why) => format!("failed: {why}"),
            JobState::Aborted => "was aborted".to_string(),
        };
        MpcServiceError::Ended { job, state }
    }
}

/// What is wrong with a message of the job service ([`MpcServiceError::Malformed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadMessage {
    /// A job description that does not parse, or cannot be written (the parser's message).
    #[error("job description: {0}")]
    Description(String),
    /// A launch under a job id from secure aggregation's range (`2^63` up).
    #[error("job id {0}: ids from 2^63 up are secure aggregation's sessions")]
    JobIdRange(u64),
    /// An abort whose plaintext is not the abort marker and a 32-byte launch digest.
    #[error("abort envelope")]
    Abort,
    /// A launch digest that is not 64 hex digits.
    #[error("launch digest {0:?}")]
    LaunchDigest(String),
    /// A chunk shorter than its 4-byte header.
    #[error("chunk shorter than its header")]
    ChunkHeader,
    /// A chunk that counts zero chunks.
    #[error("chunk count of zero")]
    ZeroChunks,
    /// Chunks of one message that count differently.
    #[error("chunks disagree on their count")]
    CountsDisagree,
    /// A message from `server` of fewer or more chunks than its chunks count.
    #[error("{got} of the output's chunks from {server}")]
    MissingChunks {
        /// The server.
        server: PartyId,
        /// Chunks it returned.
        got: usize,
    },
}

/// Why a server refuses a job's description ([`MpcServiceError::BadJob`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BadJob {
    /// A description of another kind of job than the one resolved (`deploy`, `predict`,
    /// `train`).
    #[error("not a {0} job")]
    NotKind(&'static str),
    /// A model that does not resolve.
    #[error("model: {0}")]
    Model(SpecError),
    /// Fractional bits out of range for the job's ring.
    #[error("{frac_bits} fractional bits (1 to {max} in the {ring_bits}-bit ring)")]
    FracBits {
        /// Asked for.
        frac_bits: u32,
        /// The most allowed.
        max: u32,
        /// The ring.
        ring_bits: u32,
    },
    /// A prediction batch out of range.
    #[error("batch of {batch} (1 to {max})")]
    Batch {
        /// Asked for.
        batch: usize,
        /// The most allowed ([`crate::job::MAX_PREDICT_BATCH`]).
        max: usize,
    },
    /// A training job's settings that cannot run.
    #[error("training: {0}")]
    Train(TrainJobError),
    /// Inputs larger than a server holds for one job.
    #[error("its inputs may take {bytes} bytes at {server}, more than the {max} a job may")]
    InputBytes {
        /// The server.
        server: PartyId,
        /// Its share of the declared inputs, in bytes.
        bytes: usize,
        /// The most a job may declare.
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_comes_back_as_itself() {
        for name in MpcServiceError::NAMES {
            let back = MpcServiceError::remote(name, "m".into()).unwrap();
            assert_eq!(back.name(), *name);
            assert_eq!(back.to_string(), "m");
        }
        assert_eq!(
            MpcServiceError::remote("no_such_variant", String::new()),
            None
        );
        assert_eq!(MpcServiceError::UnknownJob(3).name(), "unknown_job");
        assert_eq!(
            MpcServiceError::BadJob(BadJob::NotKind("deploy")).name(),
            "bad_job"
        );
    }
}
