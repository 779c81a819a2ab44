//! A job as a server runs it ([`Job`]): the launch description ([`JobSpec`]) with what it
//! implies checked and resolved, the model to run on shares and the inputs and outputs it
//! declares, in order (their index is the `round` of the envelopes that carry them).

use tessera_common::PartyId;
use tessera_common::protocol::{ProtocolKind, max_frac_bits};
use tessera_common::train_job;
use tessera_jobs::error::BadJob;
use tessera_jobs::job::{JobKind, JobSpec, MAX_PREDICT_BATCH};
use tessera_jobs::{JobState, MpcJobStatus, MpcServiceError as Error, TransferInfo};
use tessera_mpc::model::SecureModel;

/// A job as a server runs it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The job id (every server the same; the session id of its messages).
    pub(crate) id: u64,
    /// Who launched it.
    pub(crate) launcher: PartyId,
    /// The description.
    pub(crate) spec: JobSpec,
    /// The protocol it runs.
    pub(crate) protocol: ProtocolKind,
    /// The model it runs.
    pub(crate) model: SecureModel,
    /// Fractional bits.
    pub(crate) frac_bits: u32,
    /// Bits of the ring the job computes in (64, or 128 for training).
    pub(crate) ring_bits: u32,
    /// The inputs outside parties share, in order.
    pub(crate) inputs: Vec<TransferInfo>,
    /// The outputs revealed to outside parties, in order.
    pub(crate) outputs: Vec<TransferInfo>,
}

impl Job {
    /// The input of `party` under `round`, if the job declares one.
    pub(crate) fn input(&self, party: PartyId, round: u64) -> Option<&TransferInfo> {
        self.inputs
            .get(usize::try_from(round).ok()?)
            .filter(|t| t.party == party)
    }

    /// The output for `party` under `round`, if the job declares one.
    pub(crate) fn output(&self, party: PartyId, round: u64) -> Option<&TransferInfo> {
        self.outputs
            .get(usize::try_from(round).ok()?)
            .filter(|t| t.party == party)
    }

    /// A job for a deployment description from `launcher` (only the model owner may deploy).
    pub(crate) fn deploy(id: u64, launcher: PartyId, spec: JobSpec) -> Result<Job, Error> {
        let JobKind::Deploy {
            spec: model_spec,
            protocol,
            frac_bits,
            ..
        } = &spec.kind
        else {
            return Err(BadJob::NotKind("deploy").into());
        };
        if launcher != PartyId::ModelOwner {
            return Err(Error::Forbidden {
                party: launcher,
                what: "deploy a model".into(),
            });
        }
        let model = SecureModel::new(model_spec).map_err(BadJob::Model)?;
        let max = max_frac_bits(64);
        if *frac_bits == 0 || *frac_bits > max {
            return Err(BadJob::FracBits {
                frac_bits: *frac_bits,
                max,
                ring_bits: 64,
            }
            .into());
        }
        let inputs = vec![TransferInfo::exact(
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
    pub(crate) fn predict(
        id: u64,
        launcher: PartyId,
        spec: JobSpec,
        deployed: (ProtocolKind, &SecureModel, u32),
    ) -> Result<Job, Error> {
        let JobKind::Predict { batch, .. } = &spec.kind else {
            return Err(BadJob::NotKind("predict").into());
        };
        let batch = *batch;
        if batch == 0 || batch > MAX_PREDICT_BATCH {
            return Err(BadJob::Batch {
                batch,
                max: MAX_PREDICT_BATCH,
            }
            .into());
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
            inputs: vec![TransferInfo::exact(launcher, "x", x)],
            outputs: vec![TransferInfo::exact(
                launcher,
                "logits",
                vec![batch, outputs],
            )],
            spec,
        })
    }

    /// A training job (only the model owner may start one).
    pub(crate) fn train(id: u64, launcher: PartyId, spec: JobSpec) -> Result<Job, Error> {
        let JobKind::Train { protocol, job } = &spec.kind else {
            return Err(BadJob::NotKind("train").into());
        };
        if launcher != PartyId::ModelOwner {
            return Err(Error::Forbidden {
                party: launcher,
                what: "start a training".into(),
            });
        }
        let shape = job.check().map_err(BadJob::Train)?;
        let model = SecureModel::new(&job.spec).map_err(BadJob::Model)?;
        let (features, classes) = (shape.features, shape.classes);
        let mut inputs = Vec::new();
        for owner in &job.owners {
            inputs.push(TransferInfo::exact(*owner, train_job::N, vec![1]));
            for (label, width) in [(train_job::X, features), (train_job::Y, classes)] {
                inputs.push(TransferInfo {
                    party: *owner,
                    label: label.to_string(),
                    shape: vec![job.max_rows * width],
                    row: Some(width),
                });
            }
        }
        let mo = PartyId::ModelOwner;
        if !job.servers_init {
            inputs.push(TransferInfo::exact(mo, train_job::W0, vec![shape.params]));
        }
        let mut outputs = vec![
            TransferInfo::exact(mo, train_job::ROWS, vec![job.owners.len()]),
            TransferInfo::exact(mo, train_job::LOSS, vec![1]),
        ];
        outputs
            .extend((0..job.epochs).map(|e| {
                TransferInfo::exact(mo, &train_job::weights_label(e), vec![shape.params])
            }));
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

    /// What this server reports of the job, launched with description digest `digest`, in
    /// `state`.
    pub(crate) fn status(&self, digest: &[u8; 32], state: JobState) -> MpcJobStatus {
        MpcJobStatus {
            job_id: self.id,
            kind: self.spec.kind.name().to_string(),
            state,
            protocol: self.protocol,
            frac_bits: self.frac_bits,
            ring_bits: self.ring_bits,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            launch_digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
            sealed_description: Vec::new(),
        }
    }
}
