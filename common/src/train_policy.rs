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
//! ```

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
}

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
}

impl std::fmt::Display for TrainingTerms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batches of {}, at most {} losses revealed, {} checkpoints revealed, optimizer {}",
            self.batch_size, self.loss_reveals, self.checkpoints, self.optimizer
        )
    }
}

/// A training that reveals more than a policy allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        };
        assert_eq!(TrainingPolicy::default().check(&terms), Ok(()));
        let strict = TrainingPolicy {
            min_batch: 64,
            max_loss_reveals: Some(10),
            max_checkpoints: Some(1),
            optimizers: Some(vec!["sgd".into()]),
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
    }
}
