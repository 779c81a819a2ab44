//! Tessera's plaintext machine learning, shared by every party that trains or checks a model in the
//! clear: burn modules built from a `ModelSpec` with their canonical flat parameter vector
//! ([`model`]), local training ([`train`]), and evaluation, logits and reference gradients
//! ([`eval`]). A data owner trains with it each round; the model owner evaluates the global model
//! with it; encrypted training's tests and `--compare-plaintext` replay their runs on it.

#![forbid(unsafe_code)]

pub mod eval;
pub mod model;
pub mod train;

pub use eval::{PlainLoss, evaluate, gradients, gradients_with, logits};
pub use model::{Layer, ModelError, SpecModel, initial_params};
pub use train::{LocalOptimizer, TrainOutcome, TrainPlan, TrainSettings, train_local, train_plan};
