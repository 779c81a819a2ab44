//! What one server holds of its MPC jobs: the registry of jobs and deployed models, and an input
//! being assembled from its chunks.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::job::Job;
use tessera_common::PartyId;
use tessera_common::protocol::ProtocolKind;
use tessera_common::seal::ReplayGuard;
use tessera_jobs::MpcServiceError as Error;
use tessera_mpc::model::SecureModel;
use tokio::task::AbortHandle;

use super::endpoint::JobIo;

/// The shares of a deployed model's parameters at this server, as the protocol binding of the
/// deployment holds them (`Vec<P::Tensor>`).
pub(super) type Params = Arc<dyn Any + Send + Sync>;

/// A model deployed at this server.
#[derive(Clone)]
pub(super) struct Deployed {
    pub(super) protocol: ProtocolKind,
    pub(super) model: SecureModel,
    pub(super) frac_bits: u32,
    pub(super) params: Params,
}

/// An input being received in chunks.
#[derive(Default)]
pub(super) struct Assembly {
    chunks: u64,
    bytes: Vec<u8>,
    done: bool,
}

/// Where an input goes and what it must add up to.
pub(super) struct InputSlot {
    /// The job.
    pub(super) job: u64,
    /// The input's index (its envelopes' round).
    pub(super) round: u64,
    /// Its bytes at this server (for rows: the most it may hold).
    pub(super) expected: usize,
    /// For an input of whole rows: the bytes of a row.
    pub(super) row_bytes: Option<usize>,
}

impl Assembly {
    /// Bytes held so far.
    pub(super) fn held(&self) -> usize {
        self.bytes.len()
    }

    /// Adds chunk `chunk` of `total` of the input in `slot`; the whole input once its last chunk
    /// is in (`what` names it in a refusal).
    pub(super) fn push(
        &mut self,
        chunk: u64,
        total: u32,
        bytes: &[u8],
        slot: &InputSlot,
        what: impl Fn() -> String,
    ) -> Result<Option<Vec<u8>>, Error> {
        let expected = slot.expected;
        if self.done {
            return Err(Error::DuplicateInput {
                job: slot.job,
                round: slot.round,
            });
        }
        if chunk != self.chunks {
            return Err(Error::OutOfOrder {
                expected: self.chunks,
                got: chunk,
            });
        }
        if self.bytes.len() + bytes.len() > expected {
            return Err(Error::WrongLength {
                input: what(),
                unit: "bytes",
                got: (self.bytes.len() + bytes.len()) as u64,
                expected: expected as u64,
                row: slot.row_bytes.map(|r| r as u64),
            });
        }
        self.bytes.extend_from_slice(bytes);
        self.chunks += 1;
        if self.chunks < u64::from(total) {
            return Ok(None);
        }
        let whole = match slot.row_bytes {
            // Any number of whole rows (at least one) up to the most the job allows.
            Some(row) if row > 0 => !self.bytes.is_empty() && self.bytes.len().is_multiple_of(row),
            _ => self.bytes.len() == expected,
        };
        if !whole {
            return Err(Error::WrongLength {
                input: what(),
                unit: "bytes",
                got: self.bytes.len() as u64,
                expected: expected as u64,
                row: slot.row_bytes.map(|r| r as u64),
            });
        }
        self.done = true;
        Ok(Some(std::mem::take(&mut self.bytes)))
    }
}

pub(super) struct Entry {
    pub(super) job: Arc<Job>,
    /// SHA-256 of the launch description: what an abort must name.
    pub(super) digest: [u8; 32],
    pub(super) io: Arc<JobIo>,
    pub(super) task: Option<AbortHandle>,
    pub(super) inputs: HashMap<u64, Assembly>,
    pub(super) guard: ReplayGuard,
}

#[derive(Default)]
pub(super) struct Registry {
    pub(super) jobs: HashMap<u64, Entry>,
    pub(super) finished: VecDeque<u64>,
    pub(super) models: HashMap<String, Deployed>,
    /// Predictions launched per model and client (against [`MpcLimits::query_budgets`]).
    pub(super) queries: HashMap<(String, PartyId), u64>,
}
