//! What an MPC job is: its description (sent sealed by whoever launches it), its declared inputs
//! and outputs, and its state.

use serde::{Deserialize, Serialize};
use tessera_common::PartyId;
use tessera_common::model_spec::ModelSpec;

use tessera_mpc::kind::ProtocolKind;
use tessera_mpc::model::SecureModel;
use tessera_mpc::train::job::{self as train_job, TrainJob};

use crate::error::MpcServiceError as ServiceError;

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
    /// model owner alone receives the weights ([`tessera_mpc::train::job`]).
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

/// One value an outside party secret-shares into a job, or receives from it. Its index in the
/// job's list is the `round` of the envelopes that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The outside party.
    pub party: PartyId,
    /// The label both ends name it by.
    pub label: String,
    /// Its shape (for an input of whole rows, the most it may hold).
    pub shape: Vec<usize>,
    /// For an input of any number of rows up to `shape`: the elements per row.
    pub row: Option<usize>,
}

impl Transfer {
    fn exact(party: PartyId, label: &str, shape: Vec<usize>) -> Self {
        Transfer {
            party,
            label: label.to_string(),
            shape,
            row: None,
        }
    }

    /// Number of elements (the most, for an input of rows).
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A job as a server runs it: the description with what it implies checked and resolved.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job id (every server the same; the session id of its messages).
    pub id: u64,
    /// Who launched it.
    pub launcher: PartyId,
    /// The description.
    pub spec: JobSpec,
    /// The protocol it runs.
    pub protocol: ProtocolKind,
    /// The model it runs.
    pub model: SecureModel,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Bits of the ring the job computes in (64, or 128 for training).
    pub ring_bits: u32,
    /// The inputs outside parties share, in order.
    pub inputs: Vec<Transfer>,
    /// The outputs revealed to outside parties, in order.
    pub outputs: Vec<Transfer>,
}

/// The largest batch one prediction job takes.
pub const MAX_PREDICT_BATCH: usize = 4096;

impl Job {
    /// The input of `party` under `round`, if the job declares one.
    pub fn input(&self, party: PartyId, round: u64) -> Option<&Transfer> {
        self.inputs
            .get(usize::try_from(round).ok()?)
            .filter(|t| t.party == party)
    }

    /// The output for `party` under `round`, if the job declares one.
    pub fn output(&self, party: PartyId, round: u64) -> Option<&Transfer> {
        self.outputs
            .get(usize::try_from(round).ok()?)
            .filter(|t| t.party == party)
    }

    /// A job for a deployment description from `launcher` (only the model owner may deploy).
    pub fn deploy(id: u64, launcher: PartyId, spec: JobSpec) -> Result<Job, ServiceError> {
        let JobKind::Deploy {
            spec: model_spec,
            protocol,
            frac_bits,
            ..
        } = &spec.kind
        else {
            return Err(ServiceError::BadJob("not a deployment".into()));
        };
        if launcher != PartyId::ModelOwner {
            return Err(ServiceError::Forbidden {
                party: launcher,
                what: "deploy a model".into(),
            });
        }
        let model =
            SecureModel::new(model_spec).map_err(|e| ServiceError::BadJob(e.to_string()))?;
        let max = tessera_mpc::protocol::max_frac_bits(64);
        if *frac_bits == 0 || *frac_bits > max {
            return Err(ServiceError::BadJob(format!(
                "{frac_bits} fractional bits (1 to {max} in the 64-bit ring)"
            )));
        }
        let inputs = vec![Transfer::exact(
            PartyId::ModelOwner,
            "weights",
            vec![model.num_params()],
        )];
        Ok(Job {
            id,
            launcher,
            protocol: *protocol,
            model,
            frac_bits: *frac_bits,
            ring_bits: 64,
            inputs,
            outputs: Vec::new(),
            spec,
        })
    }

    /// A prediction job of `launcher` on a deployed model (`protocol`, `model`, `frac_bits` are
    /// the deployment's).
    pub fn predict(
        id: u64,
        launcher: PartyId,
        spec: JobSpec,
        deployed: (ProtocolKind, &SecureModel, u32),
    ) -> Result<Job, ServiceError> {
        let JobKind::Predict { batch, .. } = &spec.kind else {
            return Err(ServiceError::BadJob("not a prediction".into()));
        };
        let batch = *batch;
        if batch == 0 || batch > MAX_PREDICT_BATCH {
            return Err(ServiceError::BadJob(format!(
                "batch of {batch} (1 to {MAX_PREDICT_BATCH})"
            )));
        }
        let (protocol, model, frac_bits) = deployed;
        let mut x = vec![batch];
        x.extend_from_slice(model.input_shape());
        let outputs: usize = model.output_shape().iter().product();
        Ok(Job {
            id,
            launcher,
            protocol,
            model: model.clone(),
            frac_bits,
            ring_bits: 64,
            inputs: vec![Transfer::exact(launcher, "x", x)],
            outputs: vec![Transfer::exact(launcher, "logits", vec![batch, outputs])],
            spec,
        })
    }

    /// A training job (only the model owner may start one).
    pub fn train(id: u64, launcher: PartyId, spec: JobSpec) -> Result<Job, ServiceError> {
        let JobKind::Train { protocol, job } = &spec.kind else {
            return Err(ServiceError::BadJob("not a training".into()));
        };
        if launcher != PartyId::ModelOwner {
            return Err(ServiceError::Forbidden {
                party: launcher,
                what: "start a training".into(),
            });
        }
        let model = job
            .check()
            .map_err(|e| ServiceError::BadJob(e.to_string()))?;
        let (features, classes) = (job.features(&model), job.classes(&model));
        let mut inputs = Vec::new();
        for owner in &job.owners {
            inputs.push(Transfer::exact(*owner, train_job::N, vec![1]));
            for (label, width) in [(train_job::X, features), (train_job::Y, classes)] {
                inputs.push(Transfer {
                    party: *owner,
                    label: label.to_string(),
                    shape: vec![job.max_rows * width],
                    row: Some(width),
                });
            }
        }
        let mo = PartyId::ModelOwner;
        if !job.servers_init {
            inputs.push(Transfer::exact(mo, train_job::W0, vec![model.num_params()]));
        }
        let mut outputs = vec![
            Transfer::exact(mo, train_job::ROWS, vec![job.owners.len()]),
            Transfer::exact(mo, train_job::LOSS, vec![1]),
        ];
        outputs.extend(
            (0..job.epochs).map(|e| {
                Transfer::exact(mo, &train_job::weights_label(e), vec![model.num_params()])
            }),
        );
        Ok(Job {
            id,
            launcher,
            protocol: *protocol,
            frac_bits: job.frac_bits,
            ring_bits: 128,
            model,
            inputs,
            outputs,
            spec,
        })
    }
}
