//! Opening the servers' sealed result shares: only the model owner can, and only the sum of all of
//! them is the aggregate.

use tessera_common::PartyId;
use tessera_common::job::JobSettings;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Expected, Purpose, SealError, Sealer};

/// Errors of revealing a round's aggregate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevealError {
    /// A share failed to open.
    #[error("result share of {server}: {source}")]
    Seal {
        /// The server.
        server: PartyId,
        /// Why.
        source: SealError,
    },
    /// A share of the wrong length or out of order.
    #[error("result share of {server}: {reason}")]
    Malformed {
        /// The server.
        server: PartyId,
        /// Why.
        reason: String,
    },
}

/// The revealed sum of a round's updates, still in the ring (exact).
pub fn reveal_sum(
    sealer: &Sealer,
    settings: &JobSettings,
    round: u64,
    shares: &[(PartyId, Vec<Vec<u8>>)],
) -> Result<RingVec, RevealError> {
    let len = settings.update_len();
    let zeros = || RingVec::zeros(settings.ring_bits, len);
    let mut sum = zeros().map_err(|e| RevealError::Malformed {
        server: PartyId::ModelOwner,
        reason: e.to_string(),
    })?;
    for (server, envelopes) in shares {
        let malformed = |reason: String| RevealError::Malformed {
            server: *server,
            reason,
        };
        let expected = Expected {
            purpose: Purpose::Result,
            job_id: settings.job_id,
            round,
            sender: Some(*server),
        };
        let mut offset = 0usize;
        for (i, env) in envelopes.iter().enumerate() {
            let opened = sealer
                .open(env, &expected)
                .map_err(|source| RevealError::Seal {
                    server: *server,
                    source,
                })?;
            if opened.header.chunk != i as u64 {
                return Err(malformed(format!(
                    "chunk {} out of order",
                    opened.header.chunk
                )));
            }
            offset += sum
                .add_bytes_at(offset, &opened.plaintext)
                .map_err(|e| malformed(e.to_string()))?;
        }
        if offset != len {
            return Err(malformed(format!("{offset} of {len} elements")));
        }
    }
    Ok(sum)
}

/// The decoded aggregate: weighted mean delta, weighted mean training loss, total weight.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// `Σ w_k Δ_k / Σ w_k`.
    pub mean_delta: Vec<f64>,
    /// `Σ w_k loss_k / Σ w_k`.
    pub mean_train_loss: f64,
    /// `Σ w_k`.
    pub total_weight: f64,
}

/// Decodes a revealed sum.
pub fn decode_aggregate(settings: &JobSettings, sum: &RingVec) -> Aggregate {
    let values = sum.decode(settings.fixed_point());
    let n = settings.num_params;
    let total_weight = values[n + 1];
    let div = if total_weight > 0.0 {
        total_weight
    } else {
        1.0
    };
    Aggregate {
        mean_delta: values[..n].iter().map(|v| v / div).collect(),
        mean_train_loss: values[n] / div * tessera_data_owner::node::LOSS_BOUND,
        total_weight,
    }
}
