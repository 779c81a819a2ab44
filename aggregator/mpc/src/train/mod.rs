//! Encrypted training: a [`SecureModel`] trained on secret-shared examples with shared
//! parameters and shared optimizer state, over any [`Protocol`] that has the operations.
//!
//! - [`tape`]: the forward pass that keeps what backpropagation needs, and the backward pass
//!   for every layer (Dense, Conv2d by im2col, ReLU, MaxPool2d, AvgPool2d, Sigmoid, Flatten).
//! - [`loss`]: softmax cross-entropy, binary cross-entropy, squared error: gradients with
//!   respect to the logits, values on request.
//! - [`optim`]: SGD with momentum, Adam and AMSgrad on shared state.
//! - [`precision`]: why training runs in the 128-bit ring and how often a truncation fails.
//! - [`dp`]: DP-SGD: per-example clipping from the dense layers' norms, every server's noise.
//! - [`init`]: initial weights drawn by the servers from a common seed (Glorot / He).
//! - [`job`]: the servers' program for a training job as the parties agree on it
//!   ([`tessera_common::train_job::TrainJob`]), the same in simulated mode and under the
//!   aggregators' job service.
//!
//! Which protocols train what: ABY3 and SecureNN everything (their comparisons give exact
//! ReLU, max-pooling and the softmax's maximum); Pond only models whose non-linearities its
//! polynomials approximate (logistic regression with the polynomial sigmoid): a ReLU,
//! max-pooling or softmax under Pond is [`MpcError::Unsupported`].
//!
//! Nothing is opened during a step except what the caller asks for ([`Trainer::step`] returns
//! the batch's loss as a sharing, to be revealed to the model owner only if the job says so).

pub mod dp;
pub mod init;
pub mod job;
pub mod loss;
pub mod optim;
pub mod precision;
pub mod tape;

pub use loss::Loss;
pub use optim::OptimState;

use super::MpcError;
use super::model::{Activations, SecureModel};
use super::prep::Needs;
use super::protocol::Protocol;
use crate::error::Invalid;
use tessera_common::train_job::Optimizer;

/// Steps whose preprocessing the servers make ahead at once (after the first step, which
/// measures what a step takes), at most: see [`PREP_BYTES`].
pub const PREP_STEPS: u64 = 4;

/// The most bytes of preprocessing a server holds for steps ahead: a step of a convolutional
/// network asks for hundreds of megabytes of triples and masks (network C under SecureNN: its
/// first convolution's im2col patches alone are 1.2 M x 25 values), so fewer steps are made
/// ahead at once, and none when one step's worth is over the budget (its values are then made
/// inline, as without preprocessing).
pub const PREP_BYTES: u64 = 512 << 20;

/// How many steps of `per_step` to make ahead at once (0: none) with `left` steps to go.
pub fn steps_ahead(per_step: &Needs, left: u64) -> u64 {
    let fit = PREP_BYTES / per_step.bytes().max(1);
    fit.min(PREP_STEPS).min(left)
}

/// Makes ahead what the next `steps` training steps will take from the preprocessing pools:
/// `per_step` (what one step asked, [`Protocol::wanted`] across it) times `steps`, less what
/// the pools still hold. Every server calls it with the same arguments. A step that asks for
/// more (one that also computes its loss, or a smaller last batch with other shapes) makes the
/// rest inline.
pub async fn prepare_steps<P: Protocol>(
    p: &P,
    per_step: &Needs,
    steps: u64,
) -> Result<(), MpcError> {
    p.prepare(&per_step.times(steps).since(&p.held())).await
}

/// Preprocessing across the steps of a training run: the first step makes what it needs
/// inline and measures it ([`Protocol::wanted`] across it); before every later step whose
/// needs the pools cannot cover, [`steps_ahead`] steps' worth is made ahead. Every server runs
/// the same steps, so all decide alike.
#[derive(Debug, Default)]
pub struct StepPrep {
    per_step: Option<Needs>,
    asked: Needs,
}

impl StepPrep {
    /// Call before a step, with the steps left in the run (this one included).
    pub async fn before<P: Protocol>(&mut self, p: &P, left: u64) -> Result<(), MpcError> {
        if let Some(needs) = &self.per_step
            && !needs.since(&p.held()).is_empty()
        {
            prepare_steps(p, needs, steps_ahead(needs, left)).await?;
        }
        self.asked = p.wanted();
        Ok(())
    }

    /// Call after a step.
    pub fn after<P: Protocol>(&mut self, p: &P) {
        if self.per_step.is_none() {
            self.per_step = Some(p.wanted().since(&self.asked));
        }
    }

    /// What one step takes, once the first step has run.
    pub fn per_step(&self) -> Option<&Needs> {
        self.per_step.as_ref()
    }
}

/// How a model is trained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainSpec {
    /// The loss.
    pub loss: Loss,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Exact activations (comparisons) or Pond's polynomials.
    pub activations: Activations,
    /// DP-SGD: each example's gradient clipped to `clip`, every server's noise added (see
    /// [`dp`]).
    pub dp: Option<tessera_common::dp::DpSettings>,
}

/// A model being trained: its shared parameters and optimizer state at one server.
pub struct Trainer<T> {
    model: SecureModel,
    spec: TrainSpec,
    params: Vec<T>,
    state: OptimState<T>,
}

impl<T: Clone> Trainer<T> {
    /// Starts from shared parameters `params` (canonical order, one tensor per weight and
    /// bias; [`SecureModel::split_params`]).
    pub fn new<P: Protocol<Tensor = T>>(
        model: SecureModel,
        spec: TrainSpec,
        params: Vec<T>,
    ) -> Result<Self, MpcError> {
        tape::check_ring::<P>()?;
        if params.len() != model.param_shapes().len() {
            return Err(Invalid::Params {
                got: params.len(),
                expected: model.param_shapes().len(),
            }
            .into());
        }
        Ok(Trainer {
            model,
            spec,
            params,
            state: OptimState::default(),
        })
    }

    /// The current shared parameters.
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// The model.
    pub fn model(&self) -> &SecureModel {
        &self.model
    }

    /// Sets the learning rate of the following steps (the optimizer's state is kept).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.spec.optimizer = self.spec.optimizer.with_learning_rate(lr);
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.state.steps
    }

    /// One step on a batch `x` (`[batch, features...]`) with targets `y` (`[batch, outputs]`).
    /// With `with_loss`, also the batch's summed loss as a one-element sharing.
    pub async fn step<P: Protocol<Tensor = T>>(
        &mut self,
        p: &P,
        x: &T,
        y: &T,
        with_loss: bool,
    ) -> Result<Option<T>, MpcError> {
        let act = self.spec.activations;
        let (z, tape) = tape::forward(p, &self.model, &self.params, x, act).await?;
        let dz = self.spec.loss.gradient(p, &z, y, act).await?;
        let loss = if with_loss {
            Some(self.spec.loss.value(p, &z, y, act).await?)
        } else {
            None
        };
        let grads = match &self.spec.dp {
            None => tape::backward(p, &self.model, &self.params, &tape, &dz).await?,
            Some(dp) => {
                tape::backward_clipped(p, &self.model, &self.params, &tape, &dz, dp.clip).await?
            }
        };
        let flat_w = p.concat(&self.params.iter().collect::<Vec<_>>())?;
        let mut flat_g = p.concat(&grads.iter().collect::<Vec<_>>())?;
        if let Some(dp) = &self.spec.dp {
            flat_g = dp::add_noise(p, &flat_g, dp).await?;
        }
        let new = optim::step(
            &self.spec.optimizer,
            p,
            &mut self.state,
            &flat_w,
            &flat_g,
            tape.batch(),
        )
        .await?;
        self.params = self.model.split_params(p, &new)?;
        Ok(loss)
    }
}
