//! An encrypted training job: what every party agrees on before it starts ([`TrainJob`], all
//! public), the servers' program ([`serve_training`]) and the transfers it makes. Simulated
//! mode (`model-owner simulate --encrypted`) and the aggregators' job service run this same
//! program.
//!
//! Transfers, in order:
//! 1. each data owner `i` shares [`N`] (its number of examples, a plain integer; the servers
//!    open it: how many examples an institution contributes is public in this job, as the batch
//!    order is), then [`X`] (`n x features`, fixed point) and [`Y`] (`n x classes`: one-hot
//!    rows, or the 0/1 label of a one-logit model);
//! 2. the model owner shares [`W0`], the initial weights, unless the servers draw them from the
//!    job's seed ([`TrainJob::servers_init`]);
//! 3. the servers reveal to the model owner [`ROWS`] (every owner's count, so it knows the
//!    batch plan), the loss of every `loss_every`-th batch under [`LOSS`] (in order), and
//!    after each epoch `e` the weights under [`weights_label`]`(e)`. Nothing else is opened.
//!
//! Preprocessing ([`StepPrep`]): the first step runs with what it needs made inline and
//! measures it; from then on the servers make a few steps' worth ahead whenever the pools
//! cannot cover the next step, so a step's online phase takes its Beaver triples, ComputeMSB
//! masks and daBits from the pools.

use crate::error::{Invalid, JobProblem, PartyError};
use serde::{Deserialize, Serialize};
use tessera_common::PartyId;
use tessera_common::batches::batch_order;
use tessera_common::dp::{DpSettings, Spent};
use tessera_common::fixed::FixedPoint;
use tessera_common::model_spec::{ModelSpec, ResolvedLayer};
use tessera_common::prg::Seed;
use tessera_common::ring::{Ring, RingTensor};
use tessera_common::train_policy::TrainingTerms;

use super::init::{Init, initial_params};
use super::{Loss, Optimizer, StepPrep, TrainSpec, Trainer};
use crate::MpcError;
use crate::model::{Activations, SecureModel};
use crate::protocol::{Protocol, max_frac_bits};

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
    /// DP-SGD (see [`super::dp`]): each example's gradient clipped to `clip`, every server's
    /// noise of multiplier `noise_multiplier` added, accounted at `delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<DpSettings>,
}

impl TrainJob {
    /// Checks the settings; the model as a [`SecureModel`].
    pub fn check(&self) -> Result<SecureModel, MpcError> {
        let bad = |p: JobProblem| Err(MpcError::Job(p));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad(JobProblem::Empty);
        }
        if self.owners.is_empty()
            || self
                .owners
                .iter()
                .any(|p| !matches!(p, PartyId::DataOwner(_)))
        {
            return bad(JobProblem::Owners);
        }
        if self.max_rows == 0 || self.max_rows > MAX_ROWS {
            return bad(JobProblem::MaxRows {
                rows: self.max_rows,
                max: MAX_ROWS,
            });
        }
        let max = max_frac_bits(128);
        if self.frac_bits == 0 || self.frac_bits > max {
            return Err(Invalid::FracBits {
                frac_bits: self.frac_bits,
                max,
                ring_bits: 128,
            }
            .into());
        }
        if !(self.lr_decay.is_finite() && self.lr_decay > 0.0) {
            return bad(JobProblem::Rate {
                what: "learning-rate decay",
                value: self.lr_decay,
            });
        }
        let lr = self.optimizer.learning_rate();
        if !(lr.is_finite() && lr > 0.0) {
            return bad(JobProblem::Rate {
                what: "learning rate",
                value: lr,
            });
        }
        let model = SecureModel::new(&self.spec)?;
        if let Some(dp) = &self.dp {
            dp.validate(self.frac_bits).map_err(JobProblem::Dp)?;
            if self.loss_every > 0 {
                return bad(JobProblem::DpLoss);
            }
            if model
                .layers()
                .iter()
                .any(|l| matches!(l, ResolvedLayer::Conv2d { .. }))
            {
                return bad(JobProblem::DpConv);
            }
        }
        Ok(model)
    }

    /// `(epsilon, delta)` of the whole training under DP-SGD: each example is in one noised sum
    /// per epoch (see [`super::dp`]).
    pub fn spent(&self) -> Option<Spent> {
        self.dp
            .as_ref()
            .map(|dp| dp.spent(self.epochs as u64, self.frac_bits))
    }

    /// Values per example.
    pub fn features(&self, model: &SecureModel) -> usize {
        model.input_shape().iter().product()
    }

    /// Targets per example: the logits (one-hot rows), or 1 for a one-logit (binary) model.
    pub fn classes(&self, model: &SecureModel) -> usize {
        model.output_shape().iter().product()
    }

    /// The loss: binary cross-entropy for one logit, softmax cross-entropy otherwise.
    pub fn loss(&self, model: &SecureModel) -> Loss {
        if self.classes(model) == 1 {
            Loss::BinaryCrossEntropy
        } else {
            Loss::SoftmaxCrossEntropy
        }
    }

    /// The seed of the initial weights.
    pub fn weights_seed(&self) -> Seed {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.seed.to_le_bytes());
        Seed(seed)
    }

    /// The initial weights (He-uniform from the seed): the same values whoever draws them.
    pub fn initial_weights(&self, model: &SecureModel) -> Vec<f64> {
        initial_params(model, Init::He, &self.weights_seed())
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

/// Opens `x` to every server (all three protocols run on three servers).
async fn open_to_servers<P: Protocol>(
    p: &P,
    x: &P::Tensor,
) -> Result<RingTensor<P::Elem>, MpcError> {
    let mut mine = None;
    for to in 0..3 {
        if let Some(v) = p.reveal(x, to).await? {
            mine = Some(v);
        }
    }
    mine.ok_or(MpcError::Party(PartyError::NoOpening))
}

/// The servers' program (see the module docs).
pub async fn serve_training<P: Protocol<Elem = u128>>(
    p: &P,
    job: &TrainJob,
    activations: Activations,
) -> Result<(), MpcError> {
    let model = job.check()?;
    let (features, classes) = (job.features(&model), job.classes(&model));
    let mut counts = Vec::with_capacity(job.owners.len());
    for owner in &job.owners {
        let n = p.input(*owner, N, &[1]).await?;
        let n = open_to_servers(p, &n).await?.as_slice()[0].to_i128();
        if n < 1 || n > job.max_rows as i128 {
            return Err(JobProblem::Rows {
                owner: *owner,
                rows: n,
                max: job.max_rows,
            }
            .into());
        }
        counts.push(n as usize);
    }
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for (owner, n) in job.owners.iter().zip(&counts) {
        xs.push(p.input(*owner, X, &[n * features]).await?);
        ys.push(p.input(*owner, Y, &[n * classes]).await?);
    }
    let x = p.concat(&xs.iter().collect::<Vec<_>>())?;
    let y = p.concat(&ys.iter().collect::<Vec<_>>())?;
    drop((xs, ys));
    let rows: Vec<u128> = counts.iter().map(|n| *n as u128).collect();
    p.output(&p.public(&rows, &[rows.len()]), PartyId::ModelOwner, ROWS)
        .await?;
    let w0 = if job.servers_init {
        let fixed = FixedPoint {
            frac_bits: job.frac_bits,
        };
        let w = job
            .initial_weights(&model)
            .iter()
            .map(|v| fixed.encode::<u128>(*v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Invalid::Encode {
                what: "initial weights",
                source,
            })?;
        p.public(&w, &[w.len()])
    } else {
        p.input(PartyId::ModelOwner, W0, &[model.num_params()])
            .await?
    };
    let params = model.split_params(p, &w0)?;
    let spec = TrainSpec {
        loss: job.loss(&model),
        optimizer: job.optimizer,
        activations,
        dp: job.dp,
    };
    let mut trainer = Trainer::new::<P>(model, spec, params)?;
    let rows_of = |t: &P::Tensor, idx: &[usize], width: usize| {
        let gather: Vec<usize> = idx
            .iter()
            .flat_map(|r| r * width..(r + 1) * width)
            .collect();
        p.map_local(t, &[idx.len(), width], &|s| {
            gather.iter().map(|i| s[*i]).collect()
        })
    };
    let rates = job.rates();
    let order = job.order(counts.iter().sum());
    let total: u64 = order.iter().map(|e| e.len() as u64).sum();
    let mut prep = StepPrep::default();
    let mut step = 0u64;
    for (e, batches) in order.iter().enumerate() {
        trainer.set_learning_rate(rates[e]);
        for (b, idx) in batches.iter().enumerate() {
            let xb = rows_of(&x, idx, features)?;
            let yb = rows_of(&y, idx, classes)?;
            prep.before(p, total - step).await?;
            if let Some(l) = trainer.step(p, &xb, &yb, job.wants_loss(b)).await? {
                p.output(&l, PartyId::ModelOwner, LOSS).await?;
            }
            prep.after(p);
            step += 1;
        }
        let flat = p.concat(&trainer.params().iter().collect::<Vec<_>>())?;
        p.output(&flat, PartyId::ModelOwner, &weights_label(e))
            .await?;
    }
    Ok(())
}
