//! Losses: their gradient with respect to the logits (what backpropagation starts from) and,
//! on request, their value (what a progress bar shows).
//!
//! Every gradient is per example and not divided by the batch size: the optimizer divides the
//! summed parameter gradients once (lazy normalisation), so no precision is lost to a division
//! of small values by 128 in fixed point.
//!
//! - Softmax cross-entropy, `L = -sum_j y_j log softmax(z)_j`: gradient `softmax(z) - y`, the
//!   softmax computed stably (the row maximum subtracted first, exactly, by comparisons;
//!   [`crate::approx::softmax`]). Value `max + log(sum_j e^(z_j - max)) - sum_j y_j z_j`:
//!   the logarithm's argument lies in `[1, k]`, inside [`crate::approx::log`]'s range.
//! - Binary cross-entropy on one logit (logistic regression), `L = -y log s - (1-y) log(1-s)`
//!   with `s = sigmoid(z)`: gradient `s - y`; the sigmoid exact-comparison based, or Pond's
//!   polynomial where the protocol cannot compare.
//! - Mean squared error, `L = 1/2 sum_j (z_j - y_j)^2`: gradient `z - y` (exact, local).

use crate::error::Invalid;
use tessera_common::ring::Ring;

use crate::MpcError;
use crate::approx;
use crate::layout::repeat_each;
use crate::model::Activations;
use crate::nn::{self, gather};
use crate::protocol::Protocol;

/// A training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Softmax cross-entropy over the last axis (classification).
    SoftmaxCrossEntropy,
    /// Binary cross-entropy on a single logit (logistic regression).
    BinaryCrossEntropy,
    /// Half the squared error (regression).
    MeanSquaredError,
}

impl Loss {
    /// The loss of a classifier with `classes` logits: binary cross-entropy for one logit,
    /// softmax cross-entropy otherwise.
    pub fn for_classes(classes: usize) -> Loss {
        if classes == 1 {
            Loss::BinaryCrossEntropy
        } else {
            Loss::SoftmaxCrossEntropy
        }
    }

    /// The gradient with respect to the logits `z` (`[batch, k]`) for targets `y` (one-hot
    /// rows, or 0/1 for the binary loss, or real targets), fixed point.
    pub async fn gradient<P: Protocol>(
        self,
        p: &P,
        z: &P::Tensor,
        y: &P::Tensor,
        activations: Activations,
    ) -> Result<P::Tensor, MpcError> {
        let y = p.reshape(y, p.shape(z))?;
        match self {
            Loss::SoftmaxCrossEntropy => p.sub(&approx::softmax(p, z).await?, &y),
            Loss::BinaryCrossEntropy => {
                let s = activations.sigmoid(p, z).await?;
                p.sub(&s, &y)
            }
            Loss::MeanSquaredError => p.sub(z, &y),
        }
    }

    /// The loss summed over the batch, as a one-element fixed-point sharing (to be opened to
    /// whoever may see it). Implemented for softmax cross-entropy and the squared error; the
    /// binary loss is reported as the squared error of its probability (a Brier score), since
    /// `log(1 - s)` near `s = 1` is outside the logarithm's range.
    pub async fn value<P: Protocol>(
        self,
        p: &P,
        z: &P::Tensor,
        y: &P::Tensor,
        activations: Activations,
    ) -> Result<P::Tensor, MpcError> {
        let f = p.frac_bits();
        let shape = p.shape(z).to_vec();
        let y = p.reshape(y, &shape)?;
        let total = |t: &P::Tensor| -> Result<P::Tensor, MpcError> {
            p.map_local(t, &[1], &|s| {
                vec![s.iter().fold(P::Elem::ZERO, |a, b| a.add(*b))]
            })
        };
        let half_squares = |d: P::Tensor| async move {
            let sq = p.mul_trunc(&d, &d, f + 1).await?;
            total(&sq)
        };
        match self {
            Loss::SoftmaxCrossEntropy => {
                let (rows, k) = match shape.as_slice() {
                    [rows, k] => (*rows, *k),
                    _ => {
                        return Err(Invalid::Layout {
                            what: "logits",
                            expected: "[batch, classes]",
                            shape,
                        }
                        .into());
                    }
                };
                let m = nn::max_last_axis(p, z).await?;
                let mb = gather(p, &m, &repeat_each(rows, k), &shape)?;
                let e = approx::exp(p, &p.sub(z, &mb)?).await?;
                let sums = nn::sum_axis(p, &e, 1)?;
                let lse = approx::log(p, &sums).await?;
                let yz = p.truncate(&p.mul(&y, z).await?, f).await?;
                // The sum over rows of (m + lse), minus the sum of y z.
                p.sub(&total(&p.add(&m, &lse)?)?, &total(&yz)?)
            }
            Loss::BinaryCrossEntropy => {
                let s = activations.sigmoid(p, z).await?;
                half_squares(p.sub(&s, &y)?)
                    .await
                    .map(|v| p.scale(&v, P::Elem::from_u64(2)))
            }
            Loss::MeanSquaredError => half_squares(p.sub(z, &y)?).await,
        }
    }
}
