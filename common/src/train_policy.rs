//! What an encrypted training may reveal to the model owner, bounded from outside its control:
//! the `[training]` table of the cluster file (every server enforces it at the launch) and each
//! data owner's own limits (`data-owner share-data --min-batch ... --max-loss-reveals ...`,
//! checked against the job's description as each server seals it for the owner, before any
//! example is shared). Security review 2, finding 3: the model owner alone chose the batch size,
//! how often a loss is revealed, the initial weights and the learning rate; with batches of one,
//! a loss per batch, a learning rate of `1e-12` and output biases `b_c = c`, each revealed loss
//! `lse(b) - b_y` named the example's label, and a model of it recovered 2000 labels of 2000.
//! A loss revealed over a batch of `k` examples is their mean: it tells the model owner about
//! the batch as a whole, not one example.
//!
//! ```toml
//! [training]
//! min_batch = 32            # every revealed loss and gradient step averages this many examples
//! max_loss_reveals = 100    # losses revealed over the whole training
//! max_checkpoints = 20      # per-epoch weights revealed
//! optimizers = ["sgd", "adam", "amsgrad"]
//! max_epsilon = 3.0         # DP-SGD required, at most this epsilon over the whole training
//! max_delta = 1e-5          # at a delta no larger (the default under max_epsilon)
//! ```
//!
//! The privacy bound counts what the job's description fixes (its noise, clip, epochs and
//! delta, accounted as the model owner's run prints it), so a model owner cannot loosen it by
//! declaring a larger delta or less noise.

use serde::Deserialize;

/// Bounds on what a training may reveal (none by default).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingPolicy {
    /// The smallest batch (every revealed loss is a mean over one batch).
    pub min_batch: usize,
    /// The most losses revealed over the whole training.
    pub max_loss_reveals: Option<u64>,
    /// The most per-epoch weights revealed (the number of epochs).
    pub max_checkpoints: Option<u64>,
    /// The optimizers allowed (`sgd`, `adam`, `amsgrad`); all when absent.
    pub optimizers: Option<Vec<String>>,
    /// DP-SGD required, with at most this epsilon over the whole training; any training when
    /// absent.
    pub max_epsilon: Option<f64>,
    /// The largest delta that epsilon may be stated at (under `max_epsilon`; 1e-5 when absent).
    pub max_delta: Option<f64>,
}

/// The delta a privacy bound holds at when the policy names none.
pub const DEFAULT_MAX_DELTA: f64 = 1e-5;

/// What a training job reveals, as its description fixes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingTerms {
    /// Examples per batch.
    pub batch_size: usize,
    /// The most losses it can reveal (every epoch at the most examples the owners may share).
    pub loss_reveals: u64,
    /// Per-epoch weights it reveals.
    pub checkpoints: u64,
    /// Its optimizer's name.
    pub optimizer: String,
    /// Under DP-SGD, its `(epsilon, delta)` over the whole training; `None` without DP.
    pub privacy: Option<(f64, f64)>,
}

impl std::fmt::Display for TrainingTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batches of {}, at most {} losses revealed, {} checkpoints revealed, optimizer {}",
            self.batch_size, self.loss_reveals, self.checkpoints, self.optimizer
        )?;
        match self.privacy {
            Some((epsilon, delta)) => write!(f, ", DP-SGD epsilon {epsilon:.3} at delta {delta:e}"),
            None => write!(f, ", no DP-SGD"),
        }
    }
}

/// A training that reveals more than a policy allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainingRefusal {
    /// Batches smaller than the minimum.
    #[error("batches of {batch} examples, fewer than the {min} required")]
    BatchTooSmall {
        /// The job's batch size.
        batch: usize,
        /// The minimum.
        min: usize,
    },
    /// More revealed losses than allowed.
    #[error("up to {reveals} losses revealed, more than the {max} allowed")]
    TooManyLosses {
        /// The job's most.
        reveals: u64,
        /// The limit.
        max: u64,
    },
    /// More revealed checkpoints than allowed.
    #[error("{checkpoints} per-epoch weights revealed, more than the {max} allowed")]
    TooManyCheckpoints {
        /// The job's.
        checkpoints: u64,
        /// The limit.
        max: u64,
    },
    /// An optimizer not on the list.
    #[error("optimizer {0} is not allowed")]
    Optimizer(String),
    /// No DP-SGD where it is required.
    #[error(
        "the training is not differentially private (DP-SGD with epsilon at most {max} required)"
    )]
    NotPrivate {
        /// The largest epsilon allowed.
        max: f64,
    },
    /// DP-SGD with more epsilon, or at a larger delta, than allowed.
    #[error(
        "epsilon {epsilon} at delta {delta}: at most {max_epsilon} at delta {max_delta} allowed"
    )]
    TooLittlePrivacy {
        /// The job's epsilon.
        epsilon: f64,
        /// The job's delta.
        delta: f64,
        /// The largest epsilon allowed.
        max_epsilon: f64,
        /// The largest delta allowed.
        max_delta: f64,
    },
}

impl TrainingPolicy {
    /// Whether a training with `terms` stays within the policy.
    pub fn check(&self, terms: &TrainingTerms) -> Result<(), TrainingRefusal> {
        if terms.batch_size < self.min_batch {
            return Err(TrainingRefusal::BatchTooSmall {
                batch: terms.batch_size,
                min: self.min_batch,
            });
        }
        if let Some(max) = self.max_loss_reveals
            && terms.loss_reveals > max
        {
            return Err(TrainingRefusal::TooManyLosses {
                reveals: terms.loss_reveals,
                max,
            });
        }
        if let Some(max) = self.max_checkpoints
            && terms.checkpoints > max
        {
            return Err(TrainingRefusal::TooManyCheckpoints {
                checkpoints: terms.checkpoints,
                max,
            });
        }
        if let Some(allowed) = &self.optimizers
            && !allowed.contains(&terms.optimizer)
        {
            return Err(TrainingRefusal::Optimizer(terms.optimizer.clone()));
        }
        if let Some(max_epsilon) = self.max_epsilon {
            let max_delta = self.max_delta.unwrap_or(DEFAULT_MAX_DELTA);
            let Some((epsilon, delta)) = terms.privacy else {
                return Err(TrainingRefusal::NotPrivate { max: max_epsilon });
            };
            // NaN compares false: refused as well.
            if !(epsilon <= max_epsilon && delta <= max_delta) {
                return Err(TrainingRefusal::TooLittlePrivacy {
                    epsilon,
                    delta,
                    max_epsilon,
                    max_delta,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_refuses_by_its_own_reason() {
        let terms = TrainingTerms {
            batch_size: 32,
            loss_reveals: 40,
            checkpoints: 2,
            optimizer: "adam".into(),
            privacy: None,
        };
        assert_eq!(TrainingPolicy::default().check(&terms), Ok(()));
        let strict = TrainingPolicy {
            min_batch: 64,
            max_loss_reveals: Some(10),
            max_checkpoints: Some(1),
            optimizers: Some(vec!["sgd".into()]),
            max_epsilon: None,
            max_delta: None,
        };
        assert!(matches!(
            strict.check(&terms),
            Err(TrainingRefusal::BatchTooSmall { batch: 32, min: 64 })
        ));
        let batch_ok = TrainingPolicy {
            min_batch: 32,
            ..strict.clone()
        };
        assert!(matches!(
            batch_ok.check(&terms),
            Err(TrainingRefusal::TooManyLosses { .. })
        ));
        let losses_ok = TrainingPolicy {
            max_loss_reveals: Some(40),
            ..batch_ok
        };
        assert!(matches!(
            losses_ok.check(&terms),
            Err(TrainingRefusal::TooManyCheckpoints { .. })
        ));
        let checkpoints_ok = TrainingPolicy {
            max_checkpoints: Some(2),
            ..losses_ok
        };
        assert_eq!(
            checkpoints_ok.check(&terms),
            Err(TrainingRefusal::Optimizer("adam".into()))
        );
        // Privacy: required, then bounded in epsilon and in delta.
        let private = TrainingPolicy {
            max_epsilon: Some(3.0),
            ..TrainingPolicy::default()
        };
        assert!(matches!(
            private.check(&terms),
            Err(TrainingRefusal::NotPrivate { .. })
        ));
        let at = |epsilon, delta| TrainingTerms {
            privacy: Some((epsilon, delta)),
            ..terms.clone()
        };
        assert_eq!(private.check(&at(2.9, 1e-5)), Ok(()));
        assert!(matches!(
            private.check(&at(3.1, 1e-5)),
            Err(TrainingRefusal::TooLittlePrivacy { .. })
        ));
        // A larger delta would make epsilon smaller: it does not loosen the bound.
        assert!(matches!(
            private.check(&at(0.5, 0.1)),
            Err(TrainingRefusal::TooLittlePrivacy { .. })
        ));
        assert!(matches!(
            private.check(&at(f64::NAN, 1e-5)),
            Err(TrainingRefusal::TooLittlePrivacy { .. })
        ));
    }
}
