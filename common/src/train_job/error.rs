//! [`TrainJobError`]: why an encrypted training's settings cannot run, or an owner's share of it
//! breaks them.

use crate::PartyId;
use crate::dp::DpError;
use crate::model_spec::SpecError;

/// A training job's settings that cannot run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainJobError {
    /// Zero epochs or a zero batch size.
    #[error("epochs and batch size must be at least 1")]
    Empty,
    /// No data owners, or a sharer that is not a data owner.
    #[error("a training job needs data owners, and only data owners share data")]
    Owners,
    /// A bound on examples per owner out of range.
    #[error("max_rows {rows} (1 to {max})")]
    MaxRows {
        /// Asked for.
        rows: usize,
        /// The most allowed.
        max: usize,
    },
    /// Fractional bits out of range for the 128-bit ring training computes in.
    #[error("{frac_bits} fractional bits (1 to {max} in the 128-bit ring)")]
    FracBits {
        /// Asked for.
        frac_bits: u32,
        /// The most allowed.
        max: u32,
    },
    /// A learning rate or its decay that is not a positive number.
    #[error("{what} {value}")]
    Rate {
        /// `"learning rate"` or `"learning-rate decay"`.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A model that does not resolve.
    #[error("model: {0}")]
    Model(#[from] SpecError),
    /// DP-SGD settings out of range.
    #[error("DP-SGD: {0}")]
    Dp(#[from] DpError),
    /// DP-SGD with a revealed loss (a loss is neither clipped nor noised).
    #[error("DP-SGD reveals no loss (a loss is neither clipped nor noised): loss_every must be 0")]
    DpLoss,
    /// DP-SGD of a model with a layer whose per-example gradients it does not clip.
    #[error("DP-SGD clips dense layers' per-example gradients only: this model has a convolution")]
    DpConv,
    /// DP-SGD of a model without a dense layer.
    #[error("DP-SGD needs a dense layer")]
    DpNoDense,
    /// An owner that shares more (or fewer) examples than the job allows.
    #[error("{owner} shares {rows} examples (1 to {max})")]
    Rows {
        /// The owner.
        owner: PartyId,
        /// What it declared.
        rows: i128,
        /// The bound.
        max: usize,
    },
}
