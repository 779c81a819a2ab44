//! An encrypted training job as every party agrees on it before it starts ([`TrainJob`], all
//! public): the model, the optimizer ([`Optimizer`]), epochs, batches, the data owners and their
//! bounds, DP-SGD; the labels of the transfers it makes ([`N`], [`X`], [`Y`], [`W0`], [`ROWS`],
//! [`LOSS`], [`weights_label`]) and what it reveals ([`TrainJob::terms`]).
//!
//! The servers' program that runs it is `tessera-mpc`'s `train::job::serve_training`; the
//! model owner launches it and data owners share into it through `tessera-jobs`; none of them
//! needs the engine to describe or check one.

mod error;
mod optimizer;

pub use error::TrainJobError;
pub use optimizer::Optimizer;

use serde::{Deserialize, Serialize};

use crate::PartyId;
use crate::batches::batch_order;
use crate::dp::{DpSettings, Spent};
use crate::model_spec::{ModelSpec, ResolvedLayer};
use crate::prg::Seed;
use crate::protocol::max_frac_bits;
use crate::train_policy::TrainingTerms;

/// Label of an owner's example count.
pub const N: &str = "n";
/// Label of an owner's examples.
pub const X: &str = "x";
/// Label of an owner's targets.
pub const Y: &str = "y";
/// Label of the model owner's initial weights.
pub const W0: &str = "w0";
/// Label of the owners' counts revealed to the model owner.
pub const ROWS: &str = "rows";
/// Label of the sampled batch losses revealed to the model owner (one output per sample).
pub const LOSS: &str = "loss";

/// Label of the weights revealed after epoch `e`.
pub fn weights_label(e: usize) -> String {
    format!("w/{e}")
}

/// The most examples one owner may contribute to a job.
pub const MAX_ROWS: usize = 1 << 20;

/// Everything the parties agree on before an encrypted training (all public).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainJob {
    /// The model.
    pub spec: ModelSpec,
    /// The optimizer and its (first epoch's) learning rate.
    pub optimizer: Optimizer,
    /// Epochs over the union of the owners' examples.
    pub epochs: usize,
    /// Examples per batch.
    pub batch_size: usize,
    /// Fractional bits (128-bit ring).
    pub frac_bits: u32,
    /// The data owners, in the order their examples are concatenated.
    pub owners: Vec<PartyId>,
    /// The most examples each owner may share.
    pub max_rows: usize,
    /// Seed of the batch order (epoch `e` shuffles with `seed + e`) and of the initial weights.
    pub seed: u64,
    /// The learning rate is multiplied by this after each epoch.
    pub lr_decay: f64,
    /// Reveal the loss of every `loss_every`-th batch of an epoch to the model owner (0: never).
    pub loss_every: usize,
    /// The servers draw the initial weights (He-uniform) from the seed; otherwise the model
    /// owner shares them.
    pub servers_init: bool,
    /// DP-SGD (see `tessera-mpc`'s `train::dp`): each example's gradient clipped to `clip`, every server's
    /// noise of multiplier `noise_multiplier` added, accounted at `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<DpSettings>,
}

/// What a checked [`TrainJob`] trains: the sizes every transfer of the job follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainShape {
    /// Values per example.
    pub features: usize,
    /// Targets per example: the logits (one-hot rows), or 1 for a one-logit (binary) model.
    pub classes: usize,
    /// Parameters of the model, in the canonical flat order.
    pub params: usize,
}

impl TrainJob {
    /// Checks the settings and resolves the model: what its examples, targets and parameters
    /// are. The engine runs the model this resolves (`tessera-mpc`'s `train::job::model_of`).
    pub fn check(&self) -> Result<TrainShape, TrainJobError> {
        use TrainJobError as E;
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(E::Empty);
        }
        if self.owners.is_empty()
            || self
                .owners
                .iter()
                .any(|p| !matches!(p, PartyId::DataOwner(_)))
        {
            return Err(E::Owners);
        }
        if self.max_rows == 0 || self.max_rows > MAX_ROWS {
            return Err(E::MaxRows {
                rows: self.max_rows,
                max: MAX_ROWS,
            });
        }
        let max = max_frac_bits(128);
        if self.frac_bits == 0 || self.frac_bits > max {
            return Err(E::FracBits {
                frac_bits: self.frac_bits,
                max,
            });
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0) {
            return Err(E::Rate {
                what: "learning-rate decay",
                value: self.lr_decay,
            });
        }
        let lr = self.optimizer.learning_rate();
        if !(lr.is_finite() && lr > 0.0) {
            return Err(E::Rate {
                what: "learning rate",
                value: lr,
            });
        }
        let (layers, output_shape) = self.spec.resolve()?;
        if let Some(dp) = &self.dp {
            dp.validate(self.frac_bits)?;
            if self.loss_every > 0 {
                return Err(E::DpLoss);
            }
            if layers
                .iter()
                .any(|l| matches!(l, ResolvedLayer::Conv2d { .. }))
            {
                return Err(E::DpConv);
            }
        }
        Ok(TrainShape {
            features: self.spec.input_shape.iter().product(),
            classes: output_shape.iter().product(),
            params: layers.iter().map(ResolvedLayer::num_params).sum(),
        })
    }

    /// `(epsilon, delta)` of the whole training under DP-SGD: each example is in one noised sum
    /// per epoch (see `tessera-mpc`'s `train::dp`).
    pub fn spent(&self) -> Option<Spent> {
        self.dp
            .as_ref()
            .map(|dp| dp.spent(self.epochs as u64, self.frac_bits))
    }

    /// The seed of the initial weights.
    pub fn weights_seed(&self) -> Seed {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        Seed(seed)
    }

    /// The learning rate of each epoch.
    pub fn rates(&self) -> Vec<f64> {
        let lr = self.optimizer.learning_rate();
        (0..self.epochs)
            .map(|e| lr * self.lr_decay.powi(e as i32))
            .collect()
    }

    /// The batches of each epoch over `total` examples (epoch `e` shuffles with `seed + e`, as
    /// the plaintext comparison trains one epoch at a time).
    pub fn order(&self, total: usize) -> Vec<Vec<Vec<usize>>> {
        (0..self.epochs)
            .map(|e| batch_order(total, self.batch_size, 1, self.seed + e as u64).remove(0))
            .collect()
    }

    /// Whether batch `b` of an epoch reveals its loss.
    pub fn wants_loss(&self, b: usize) -> bool {
        self.loss_every > 0 && b.is_multiple_of(self.loss_every)
    }

    /// How many losses an epoch of `batches` batches reveals.
    pub fn losses_per_epoch(&self, batches: usize) -> usize {
        (0..batches).filter(|b| self.wants_loss(*b)).count()
    }

    /// What the job reveals to the model owner, at the most examples its owners may share
    /// (checked against the cluster's `[training]` policy and each data owner's limits).
    pub fn terms(&self) -> TrainingTerms {
        let most_rows = self.max_rows.saturating_mul(self.owners.len());
        let batches = most_rows.div_ceil(self.batch_size.max(1));
        let per_epoch = if self.loss_every == 0 {
            0
        } else {
            batches.div_ceil(self.loss_every)
        };
        TrainingTerms {
            batch_size: self.batch_size,
            loss_reveals: (per_epoch as u64).saturating_mul(self.epochs as u64),
            checkpoints: self.epochs as u64,
            optimizer: self.optimizer.name().to_string(),
            privacy: self.spent().map(|s| (s.epsilon, s.delta)),
        }
    }
}

/// The targets of `labels`: one-hot rows of `width` classes, or the 0/1 label itself for a
/// one-logit model.
pub fn targets(labels: &[u8], width: usize) -> impl Iterator<Item = f64> + '_ {
    labels.iter().flat_map(move |l| {
        (0..width).map(move |c| {
            let hit = if width == 1 {
                *l == 1
            } else {
                c == *l as usize
            };
            if hit { 1.0 } else { 0.0 }
        })
    })
}
