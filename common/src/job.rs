//! Job settings: what the model owner starts on the servers and what every data owner receives with
//! each round.
//!
//! The settings fix the update vector every data owner uploads, encoded in fixed point in a
//! `ring_bits`-bit ring: `num_params` clipped parameter deltas times the owner's weight `w`, then
//! its mean local training loss (scaled into `[0, 1]`) times `w`, then `w` itself (its sample
//! count, capped at `max_weight`; exactly 1 under the robust rules and differential privacy,
//! [`JobSettings::equal_weights`]). The sum over contributors therefore gives the weighted mean delta and the
//! weighted mean training loss once divided by the last coordinate. [`JobSettings::validate`] refuses parameters whose overflow budget does not
//! fit: the sum over `max_clients` updates, each coordinate at most `max_weight * clip` in
//! magnitude, must not wrap the ring.

use serde::{Deserialize, Serialize};

use crate::dp::{DpError, DpSettings};
use crate::fixed::FixedPoint;
use crate::model_spec::{ModelSpec, SpecError};
use crate::ring::Ring;
use crate::rule::{AggregationRule, NormBound, NormBoundError};

/// The server-side optimizer the model owner applies to the averaged update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerOptimizer {
    /// FedAvg: `w += server_lr * mean_delta`.
    FedAvg {
        /// Server learning rate (1.0 is plain FedAvg).
        server_lr: f64,
    },
    /// FedAdam (Reddi et al. 2021, "Adaptive Federated Optimization").
    FedAdam {
        /// Server learning rate.
        server_lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Adaptivity `tau`.
        tau: f64,
    },
}

/// A job's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSettings {
    /// Job id (chosen by the model owner).
    pub job_id: u64,
    /// The model.
    pub model: ModelSpec,
    /// Parameters in the model (the update has one more coordinate: the weight).
    pub num_params: usize,
    /// Number of rounds.
    pub rounds: u64,
    /// Ring size in bits of the shares: 32, 64 or 128.
    pub ring_bits: u32,
    /// Fixed-point fractional bits.
    pub frac_bits: u32,
    /// Per-coordinate clipping bound on the (unweighted) delta.
    pub clip: f64,
    /// Largest weight (sample count) one data owner may claim; larger counts are capped.
    pub max_weight: f64,
    /// Largest number of contributors a round accepts.
    pub max_clients: usize,
    /// Contributors needed before a round may close.
    pub min_clients: usize,
    /// How long a round stays open for uploads, in milliseconds.
    pub round_deadline_ms: u64,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Local batch size.
    pub batch_size: usize,
    /// Local learning rate.
    pub learning_rate: f64,
    /// Number of compute servers (2 or 3).
    pub num_servers: usize,
    /// The model owner's optimizer (informational for servers and data owners).
    pub optimizer: ServerOptimizer,
    /// How a round combines the uploads (`mean` when absent).
    #[serde(default)]
    pub rule: AggregationRule,
    /// Distributed differential privacy: the servers' noise and the owners' clipping (none when
    /// absent; see [`crate::dp`]).
    #[serde(default)]
    pub dp: Option<DpSettings>,
}

/// Settings that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A field out of range.
    #[error("job setting {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The differential privacy settings.
    #[error(transparent)]
    Dp(#[from] DpError),
    /// The sum of updates could wrap the ring.
    #[error(
        "overflow budget exceeded: {max_clients} clients x weight {max_weight} x clip {clip} with {frac_bits} fractional bits can wrap a {ring_bits}-bit ring ({headroom_bits:.1} bits of headroom)"
    )]
    Overflow {
        /// Clients.
        max_clients: usize,
        /// Weight cap.
        max_weight: f64,
        /// Clip.
        clip: f64,
        /// Fractional bits.
        frac_bits: u32,
        /// Ring bits.
        ring_bits: u32,
        /// Headroom (negative).
        headroom_bits: f64,
    },
}

impl JobSettings {
    /// Settings of job `job_id` training `model`, every other field at its starting value:
    /// 3 rounds in the 32-bit ring with 16 fractional bits, clip 1, weights up to 1,000
    /// samples, 2 to 8 contributors, a 60 s round deadline, one local epoch of batches of 32 at
    /// learning rate 0.1, three servers, FedAvg, the mean, no DP. Change fields with struct
    /// update syntax, then [`JobSettings::validate`].
    pub fn new(job_id: u64, model: ModelSpec) -> Result<Self, SpecError> {
        Ok(JobSettings {
            job_id,
            num_params: model.num_params()?,
            model,
            rounds: 3,
            ring_bits: 32,
            frac_bits: 16,
            clip: 1.0,
            max_weight: 1000.0,
            max_clients: 8,
            min_clients: 2,
            round_deadline_ms: 60_000,
            local_epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            num_servers: 3,
            optimizer: ServerOptimizer::FedAvg { server_lr: 1.0 },
            rule: AggregationRule::Mean,
            dp: None,
        })
    }

    /// Length of the update vector: the parameters, the weighted loss and the weight.
    pub fn update_len(&self) -> usize {
        self.num_params + 2
    }

    /// The most fractional bits (at most 20) whose overflow budget fits the other settings.
    pub fn auto_frac_bits(&self) -> u32 {
        (4..=20)
            .rev()
            .find(|f| {
                JobSettings {
                    frac_bits: *f,
                    ..self.clone()
                }
                .validate()
                .is_ok()
            })
            .unwrap_or(4)
    }

    /// The fixed-point parameters.
    pub fn fixed_point(&self) -> FixedPoint {
        FixedPoint::new(self.frac_bits)
    }

    /// Checks ranges, the model, and the overflow budget.
    pub fn validate(&self) -> Result<(), JobError> {
        let invalid =
            |field: &'static str, reason: String| Err(JobError::Invalid { field, reason });
        match self.model.num_params() {
            Ok(n) if n == self.num_params => {}
            Ok(n) => {
                return invalid(
                    "num_params",
                    format!("{} but the model has {n}", self.num_params),
                );
            }
            Err(e) => return invalid("model", e.to_string()),
        }
        if ![2, 3].contains(&self.num_servers) {
            return invalid(
                "num_servers",
                format!("{} (must be 2 or 3)", self.num_servers),
            );
        }
        // With one contributor the aggregate is that owner's update: the model owner would see it.
        if self.min_clients < 2 || self.min_clients > self.max_clients {
            return invalid(
                "min_clients",
                format!(
                    "{} with max_clients {} (at least 2, so that no aggregate is one owner's update)",
                    self.min_clients, self.max_clients
                ),
            );
        }
        for (field, v) in [
            ("clip", self.clip),
            ("max_weight", self.max_weight),
            ("learning_rate", self.learning_rate),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return invalid(field, format!("{v} (must be positive)"));
            }
        }
        // A job that runs nothing must not end as if it had trained.
        for (field, v) in [
            ("rounds", self.rounds),
            ("local_epochs", self.local_epochs as u64),
            ("batch_size", self.batch_size as u64),
        ] {
            if v == 0 {
                return invalid(field, "0 (must be at least 1)".into());
            }
        }
        let budget = match self.ring_bits {
            32 => self.budget::<u32>(),
            64 => self.budget::<u64>(),
            128 => self.budget::<u128>(),
            other => return invalid("ring_bits", format!("{other} (must be 32, 64 or 128)")),
        };
        if self.rule.is_robust() {
            self.check_robust()?;
        } else if self.checks_uploads() {
            self.range_check().map_err(|e| JobError::Invalid {
                field: "num_params",
                reason: e.to_string(),
            })?;
        }
        if let Some(dp) = &self.dp {
            dp.validate(self.frac_bits)?;
        }
        if !budget.fits() {
            return Err(JobError::Overflow {
                max_clients: self.max_clients,
                max_weight: self.max_weight,
                clip: self.clip,
                frac_bits: self.frac_bits,
                ring_bits: self.ring_bits,
                headroom_bits: budget.headroom_bits,
            });
        }
        Ok(())
    }

    /// A robust rule runs under ABY3 on three servers, on uploads in the 64-bit ring, and its
    /// check must fit the 128-bit ring.
    fn check_robust(&self) -> Result<(), JobError> {
        let invalid = |field: &'static str, reason: String| JobError::Invalid { field, reason };
        if self.num_servers != 3 {
            return Err(invalid(
                "num_servers",
                format!("{} (rule {} needs 3)", self.num_servers, self.rule),
            ));
        }
        if self.ring_bits != 64 {
            return Err(invalid(
                "ring_bits",
                format!("{} (rule {} needs 64)", self.ring_bits, self.rule),
            ));
        }
        match self.rule {
            AggregationRule::NormBound { bound } | AggregationRule::Clip { bound } => self
                .norm_bound(bound)
                .map(|_| ())
                .map_err(|e| invalid("rule", e.to_string())),
            // A round that closes with the fewest contributors must keep a value.
            AggregationRule::TrimmedMean { trim } if 2 * trim >= self.min_clients => Err(invalid(
                "rule",
                format!(
                    "{} drops {} values per coordinate, min_clients is {}",
                    self.rule,
                    2 * trim,
                    self.min_clients
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the servers check every upload under MPC before it joins the round: under every
    /// robust rule, and under `mean` wherever the check can run (three servers, the 64-bit
    /// ring), where it refuses an upload out of range, with a weight outside `[1, max_weight]`
    /// or a loss outside `[0, w]` individually, instead of letting one owner make the model
    /// owner refuse the whole round (security review 2, finding 14).
    pub fn checks_uploads(&self) -> bool {
        self.rule.is_robust() || (self.num_servers == 3 && self.ring_bits == 64)
    }

    /// The parameters of the check [`Self::checks_uploads`] runs under `mean`: the range and
    /// the weight and loss windows of `norm-bound` (its norm bound is not used there).
    pub fn range_check(&self) -> Result<NormBound, NormBoundError> {
        self.norm_bound(1.0)
    }

    /// Whether every owner counts once (weight exactly 1, whatever its sample count): under the
    /// robust rules, whose bounds no declared weight may loosen, and under differential privacy,
    /// whose sensitivity is one owner's clipped vector.
    pub fn equal_weights(&self) -> bool {
        self.rule.is_robust() || self.dp.is_some()
    }

    /// The weights an honest owner sends: exactly 1 under [`Self::equal_weights`], else its
    /// sample count (at least one) capped at `max_weight`.
    pub fn weight_range(&self) -> (f64, f64) {
        if self.equal_weights() {
            (1.0, 1.0)
        } else {
            (self.max_weight.min(1.0), self.max_weight)
        }
    }

    /// The parameters of the `norm-bound` check for bound `bound`.
    pub fn norm_bound(&self, bound: f64) -> Result<NormBound, NormBoundError> {
        NormBound::new(
            self.num_params,
            self.frac_bits,
            self.clip,
            self.weight_range(),
            bound,
        )
    }

    /// The overflow budget in ring `R`: every coordinate (deltas, loss and weight) is at most
    /// `max_weight * max(clip, 1)` in magnitude (the data owner reports its loss scaled into
    /// `[0, 1]`). Under differential privacy each server's noise counts as that many more
    /// contributors as cover 12 of its standard deviations (a discrete Gaussian draw goes beyond
    /// with probability below `10^-32`).
    fn budget<R: Ring>(&self) -> crate::fixed::SumBudget {
        let per_owner = self.max_weight * self.clip.max(1.0);
        let noise = self.dp.map_or(0.0, |dp| {
            let sigma = dp.sigma_units(self.frac_bits) * f64::from(self.frac_bits).exp2().recip();
            self.num_servers as f64 * (12.0 * sigma / per_owner).ceil()
        });
        self.fixed_point()
            .sum_budget::<R>(self.max_clients as u64 + noise as u64, per_owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings() -> JobSettings {
        let model = ModelSpec::logistic_regression();
        JobSettings {
            max_weight: 4000.0,
            round_deadline_ms: 1000,
            ..JobSettings::new(1, model).unwrap()
        }
    }

    #[test]
    fn budget_is_enforced() {
        let ok = settings();
        assert_eq!(ok.validate(), Ok(()));
        let too_many = JobSettings {
            max_clients: 100,
            ..settings()
        };
        assert!(matches!(
            too_many.validate(),
            Err(JobError::Overflow { .. })
        ));
        let wider = JobSettings {
            max_clients: 100,
            ring_bits: 64,
            ..settings()
        };
        assert_eq!(wider.validate(), Ok(()));
        for (field, zeroed) in [
            (
                "rounds",
                JobSettings {
                    rounds: 0,
                    ..settings()
                },
            ),
            (
                "local_epochs",
                JobSettings {
                    local_epochs: 0,
                    ..settings()
                },
            ),
            (
                "batch_size",
                JobSettings {
                    batch_size: 0,
                    ..settings()
                },
            ),
        ] {
            assert!(
                matches!(zeroed.validate(), Err(JobError::Invalid { field: f, .. }) if f == field),
                "{field}: {:?}",
                zeroed.validate()
            );
        }
        let wrong_len = JobSettings {
            num_params: 3,
            ..settings()
        };
        assert!(matches!(
            wrong_len.validate(),
            Err(JobError::Invalid {
                field: "num_params",
                ..
            })
        ));
    }
}
