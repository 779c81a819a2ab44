//! Optimizers on shared parameters with shared state: SGD with momentum, Adam and AMSgrad
//! (Kingma & Ba 2015; Reddi, Kale & Kumar 2018), as TF Encrypted has them.
//!
//! The gradients arrive summed over the batch; each step divides by the batch size as part of
//! the learning rate (`lr / batch`, one public constant), so the division costs one truncation
//! and no precision. A public real constant `c` is applied as the integer `round(c 2^s)` with
//! `s` chosen so that it has [`CONST_BITS`] significant bits, then one truncation by `s`: a
//! learning rate of `0.01 / 128` keeps 24 bits instead of the 13 it would keep as a plain
//! fixed-point value with 20 fractional bits.
//!
//! Adam's second moment is tiny in fixed point: a mean gradient of `1e-3` squares to `1e-6`,
//! one unit at 20 fractional bits. So the moment is kept with `2f` fractional bits (the square
//! `g^2` is not truncated at all; the 128-bit ring has the room), and the denominator
//! `sqrt(v_hat) + eps` is computed as `1 / sqrt(v_hat + eps^2)` (burn and TF Encrypted add
//! `eps` after the root; the two agree once `v_hat >> eps^2`) by
//! [`crate::approx::inv_sqrt_banded`] over `[eps^2, 4096]`: from `eps^2 = 1e-8` up to a
//! mean squared gradient of 4096 (beyond `3 * 4096` the iteration would diverge), Newton from a
//! start picked by five comparisons (Pond, which has none, starts from `1/sqrt(4096)`).

use tessera_common::ring::Ring;

use crate::MpcError;
use crate::approx::inv_sqrt_banded;
use crate::protocol::Protocol;
use tessera_common::fixed::fx;
use tessera_common::train_job::Optimizer;

/// The largest `v_hat` Adam's inverse square root is made for (a mean gradient of 64).
const V_MAX: f64 = 4096.0;

/// Significant bits kept of a public real constant.
pub const CONST_BITS: i32 = 24;

/// One step of `optimizer`: the new flat parameters from the flat parameters `w`, the flat
/// gradients `g` (summed over a batch of `batch` examples) and the state.
pub async fn step<P: Protocol>(
    optimizer: &Optimizer,
    p: &P,
    state: &mut OptimState<P::Tensor>,
    w: &P::Tensor,
    g: &P::Tensor,
    batch: usize,
) -> Result<P::Tensor, MpcError> {
    let batch = batch.max(1) as f64;
    state.steps += 1;
    match *optimizer {
        Optimizer::Sgd { lr, momentum } => {
            let v = match (&state.m, momentum != 0.0) {
                (Some(m), true) => p.add(&scale_real(p, m, momentum).await?, g)?,
                _ => g.clone(),
            };
            if momentum != 0.0 {
                state.m = Some(v.clone());
            }
            p.sub(w, &scale_real(p, &v, lr / batch).await?)
        }
        Optimizer::Adam {
            lr,
            beta1,
            beta2,
            eps,
        }
        | Optimizer::Amsgrad {
            lr,
            beta1,
            beta2,
            eps,
        } => {
            let f = p.frac_bits();
            // The mean gradient (the division by the batch, once).
            let g = scale_real(p, g, 1.0 / batch).await?;
            // g^2 with 2f fractional bits, exact.
            let g2 = p.mul(&g, &g).await?;
            let (m, v) = match (&state.m, &state.v) {
                (Some(m), Some(v)) => {
                    let m = p.add(
                        &scale_real(p, m, beta1).await?,
                        &scale_real(p, &g, 1.0 - beta1).await?,
                    )?;
                    let v = p.add(
                        &scale_real(p, v, beta2).await?,
                        &scale_real(p, &g2, 1.0 - beta2).await?,
                    )?;
                    (m, v)
                }
                _ => (
                    scale_real(p, &g, 1.0 - beta1).await?,
                    scale_real(p, &g2, 1.0 - beta2).await?,
                ),
            };
            let denom_src = if matches!(optimizer, Optimizer::Amsgrad { .. }) {
                let vm = match &state.v_max {
                    Some(prev) => crate::nn::maximum(p, prev, &v).await?,
                    None => v.clone(),
                };
                state.v_max = Some(vm.clone());
                vm
            } else {
                v.clone()
            };
            // Bias corrections: m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t).
            let t = state.steps as i32;
            let c1 = 1.0 / (1.0 - beta1.powi(t));
            let c2 = 1.0 / (1.0 - beta2.powi(t));
            let v_hat = scale_real(p, &denom_src, c2).await?;
            let n = p.shape(&v_hat).iter().product::<usize>();
            let eps2 = vec![fx::<P::Elem>(eps * eps, 2 * f); n];
            let x = p.add_public(&v_hat, &eps2)?;
            let r = inv_sqrt_banded(p, &x, 2 * f, eps * eps, V_MAX).await?;
            let step = p.mul_trunc(&m, &r, f).await?;
            state.m = Some(m);
            state.v = Some(v);
            p.sub(w, &scale_real(p, &step, lr * c1).await?)
        }
    }
}

/// An optimizer's shared state (moments), flat in the canonical parameter order.
#[derive(Debug, Clone)]
pub struct OptimState<T> {
    /// Steps taken.
    pub steps: u64,
    /// Momentum or first moment.
    pub m: Option<T>,
    /// Second moment.
    pub v: Option<T>,
    /// AMSgrad's running maximum of the second moment.
    pub v_max: Option<T>,
}

impl<T> Default for OptimState<T> {
    fn default() -> Self {
        OptimState {
            steps: 0,
            m: None,
            v: None,
            v_max: None,
        }
    }
}

/// `x * c` for a public real `c`, with `c` kept to [`CONST_BITS`] significant bits (one
/// truncation).
pub async fn scale_real<P: Protocol>(p: &P, x: &P::Tensor, c: f64) -> Result<P::Tensor, MpcError> {
    if c == 0.0 {
        return Ok(p.scale(x, P::Elem::ZERO));
    }
    let s = (CONST_BITS - c.abs().log2().floor() as i32 - 1).max(0) as u32;
    p.truncate(&p.scale(x, fx::<P::Elem>(c, s)), s).await
}
