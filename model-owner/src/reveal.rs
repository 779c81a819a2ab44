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

/// Why a revealed aggregate is refused: the round is dropped and the global model kept.
///
/// Clipping and the weight cap happen at the data owners, so a malicious owner can send any
/// vector; until the servers check ranges on shares (robust aggregation), the model owner checks
/// that the aggregate is one honest owners could have produced.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The total weight is below what the contributors must have (an honest owner's weight is
    /// its sample count, at least one, capped at `max_weight`; exactly one where every owner
    /// counts once, [`JobSettings::equal_weights`]) or above what they may claim.
    #[error("total weight {total} is outside [{min}, {max}] for {contributors} contributors")]
    TotalWeight {
        /// The revealed total.
        total: f64,
        /// `contributors` times the smallest honest weight (less the rounding bound).
        min: f64,
        /// `contributors` times the largest honest weight (plus the rounding bound).
        max: f64,
        /// Contributors of the round.
        contributors: usize,
    },
    /// A coordinate of the mean update is beyond the clip bound, or not finite.
    #[error("mean update coordinate {index} is {value}, beyond the clip bound {clip}")]
    OutOfRange {
        /// The coordinate.
        index: usize,
        /// Its value.
        value: f64,
        /// The bound.
        clip: f64,
    },
    /// The mean training loss is outside `[0, LOSS_BOUND]`.
    #[error("mean training loss {loss} is outside [0, {bound}]")]
    Loss {
        /// The revealed mean loss.
        loss: f64,
        /// The bound.
        bound: f64,
    },
}

/// Decodes a revealed sum of `contributors` updates and checks it (see [`AggregateError`]).
///
/// Rounding: each owner's coordinate is encoded to within half a unit `2^-f`, so the sum is
/// within `contributors / 2` units of the exact weighted sum, and the mean within
/// `contributors / 2 / total` units of a value in `[-clip, clip]`; the checks allow one unit per
/// contributor. Under differential privacy every coordinate but the weight also carries the
/// servers' noise: the checks allow 9 of its standard deviations more (a Gaussian goes beyond
/// with probability `2e-19` per coordinate), and the mean loss is clamped into `[0, 1]`.
pub fn decode_aggregate(
    settings: &JobSettings,
    sum: &RingVec,
    contributors: usize,
) -> Result<Aggregate, AggregateError> {
    let values = sum.decode(settings.fixed_point());
    let n = settings.num_params;
    let unit = (-(settings.frac_bits as f64)).exp2();
    let slack = contributors as f64 * unit;
    let noise = settings.dp.map_or(0.0, |dp| {
        9.0 * (settings.num_servers as f64 * dp.variance_units(settings.frac_bits) as f64).sqrt()
            * unit
    });
    let total_weight = values[n + 1];
    let (lightest, heaviest) = settings.weight_range();
    let max = contributors as f64 * heaviest + slack;
    let min = (contributors as f64 * lightest - slack).max(unit);
    if !(min..=max).contains(&total_weight) {
        return Err(AggregateError::TotalWeight {
            total: total_weight,
            min,
            max,
            contributors,
        });
    }
    let bound = settings.clip + (slack + noise) / total_weight;
    let mean_delta: Vec<f64> = values[..n].iter().map(|v| v / total_weight).collect();
    if let Some((index, value)) = mean_delta
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && v.abs() <= bound))
    {
        return Err(AggregateError::OutOfRange {
            index,
            value: *value,
            clip: settings.clip,
        });
    }
    let scaled_loss = values[n] / total_weight;
    let loss_bound = tessera_data_owner::node::LOSS_BOUND;
    let loss_slack = (slack + noise) / total_weight;
    if !(-loss_slack..=1.0 + loss_slack).contains(&scaled_loss) {
        return Err(AggregateError::Loss {
            loss: scaled_loss * loss_bound,
            bound: loss_bound,
        });
    }
    Ok(Aggregate {
        mean_delta,
        mean_train_loss: scaled_loss.clamp(0.0, 1.0) * loss_bound,
        total_weight,
    })
}
