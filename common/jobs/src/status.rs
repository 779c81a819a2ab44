//! What a server reports of a job: its state, its transfers, the digest of its launch.

use serde::{Deserialize, Serialize};
use tessera_common::PartyId;
use tessera_mpc::kind::ProtocolKind;

use crate::job::{Job, Transfer};
use crate::state::JobState;

/// One transfer of a job as its status describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInfo {
    /// The outside party.
    pub party: PartyId,
    /// The label.
    pub label: String,
    /// The shape (for an input of whole rows, the most it may hold).
    pub shape: Vec<usize>,
    /// For an input of any number of whole rows: the elements per row.
    pub row: Option<usize>,
}

/// Status of a job as the service reports it (to the launcher on launch, and to the job's
/// parties on request): enough for a client to share its inputs and read its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpcJobStatus {
    /// The job.
    pub job_id: u64,
    /// Its kind (`deploy`, `predict`).
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// The protocol it runs.
    pub protocol: ProtocolKind,
    /// Fractional bits of its fixed-point values.
    pub frac_bits: u32,
    /// Bits of its ring (64, or 128 for training).
    pub ring_bits: u32,
    /// Its inputs, by index (the `round` of their envelopes).
    pub inputs: Vec<TransferInfo>,
    /// Its outputs, by index.
    pub outputs: Vec<TransferInfo>,
    /// SHA-256 of its launch description, in hex: an abort names it.
    #[serde(default)]
    pub launch_digest: String,
    /// In an answer to a status request: the job's description (JSON) sealed by the server for
    /// the caller ([`crate::wire::DESCRIPTION_ROUND`]), so that a data owner reads the training settings as
    /// the server runs them, whatever the path did to the rest of the answer.
    #[serde(default)]
    pub sealed_description: Vec<u8>,
}

impl MpcJobStatus {
    /// The status of `job`, launched with description digest `digest`, in `state`.
    pub fn of(job: &Job, digest: &[u8; 32], state: JobState) -> Self {
        let info = |t: &Transfer| TransferInfo {
            party: t.party,
            label: t.label.clone(),
            shape: t.shape.clone(),
            row: t.row,
        };
        MpcJobStatus {
            job_id: job.id,
            kind: job.spec.kind.name().to_string(),
            state,
            protocol: job.protocol,
            frac_bits: job.frac_bits,
            ring_bits: job.ring_bits,
            inputs: job.inputs.iter().map(info).collect(),
            outputs: job.outputs.iter().map(info).collect(),
            launch_digest: digest.iter().map(|b| format!("{b:02x}")).collect(),
            sealed_description: Vec::new(),
        }
    }
}
