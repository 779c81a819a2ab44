//! What an MPC job is: its description, sent sealed by whoever launches it. Each server resolves
//! it into the inputs and outputs it declares (the aggregator's `jobs::job`) and reports them
//! in the job's status ([`crate::status::MpcJobStatus`]).

use serde::{Deserialize, Serialize};
use tessera_common::model_spec::ModelSpec;

use tessera_common::protocol::ProtocolKind;
use tessera_common::train_job::TrainJob;

/// A job description: the `launch` envelope's plaintext (JSON), the same at every server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The launcher's clock (seconds since the Unix epoch); a server refuses a description more
    /// than [`tessera_common::request::MAX_CLOCK_SKEW_SECS`] away from its own clock, so a
    /// recorded launch cannot be replayed once its id is forgotten.
    pub issued_at: u64,
    /// Drawn at random per launch, so that two launches of one id differ even within a second:
    /// an abort names one launch by the digest of its description.
    #[serde(default)]
    pub nonce: u64,
    /// What the job does.
    pub kind: JobKind,
}

/// The kinds of jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobKind {
    /// The model owner secret-shares a model's weights; the servers keep the shares under
    /// `model_id` for any number of predictions.
    Deploy {
        /// The name predictions use (and the cluster file's access list).
        model_id: String,
        /// The model.
        spec: ModelSpec,
        /// The protocol every prediction on it runs.
        protocol: ProtocolKind,
        /// Fractional bits of the weights and inputs (64-bit ring).
        frac_bits: u32,
    },
    /// A client shares a batch of inputs to a deployed model and alone receives the logits.
    Predict {
        /// The deployed model.
        model_id: String,
        /// Examples in the batch.
        batch: usize,
    },
    /// Data owners share labelled examples, the servers train on them in the 128-bit ring, the
    /// model owner alone receives the weights ([`tessera_common::train_job`]).
    Train {
        /// The protocol.
        protocol: ProtocolKind,
        /// The training settings.
        job: TrainJob,
    },
}

impl JobKind {
    /// A short name for logs and status.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::Deploy { .. } => "deploy",
            JobKind::Predict { .. } => "predict",
            JobKind::Train { .. } => "train",
        }
    }
}

/// The largest batch one prediction job takes.
pub const MAX_PREDICT_BATCH: usize = 4096;
