//! What a server reports of a job: its state, its transfers, the digest of its launch.

use serde::{Deserialize, Serialize};
use tessera_common::PartyId;
use tessera_common::protocol::ProtocolKind;

use crate::state::JobState;

/// One value an outside party secret-shares into a job, or receives from it, as the job's
/// status describes it. Its index in the job's list is the `round` of the envelopes that carry
/// it.
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

impl TransferInfo {
    /// A transfer of exactly `shape`.
    pub fn exact(party: PartyId, label: &str, shape: Vec<usize>) -> Self {
        TransferInfo {
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
