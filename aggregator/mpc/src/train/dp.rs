//! DP-SGD under MPC (Abadi et al. 2016, "Deep Learning with Differential Privacy"; security
//! review 2, finding 4): each example's gradient is clipped to L2 norm `C` before the batch's
//! sum, and every server adds its own Gaussian noise to the clipped sum, all on shares.
//!
//! **Clipping without per-example gradients.** A dense layer's per-example weight gradient is
//! the outer product `x_i dy_i^T`, whose norm is `|x_i| |dy_i|`, and its bias gradient is `dy_i`
//! (Goodfellow 2015's trick): so `|g_i|^2 = sum over dense layers of (|x_i|^2 + 1) |dy_i|^2`,
//! from the inputs and output gradients the backward pass has anyway. The factor
//! `s_i = min(1, C / |g_i|)` scales `dy_i` (linear in it), and the clipped sums are the usual
//! `X^T (s dy)` and `sum_i s_i dy_i`. Convolutions are refused ([`MpcError::Unsupported`]).
//!
//! **The factor.** With `u = |g_i|^2 / C^2`, two comparisons (one batch) give `[u <= 1]` and
//! `[u <= H]` (`H` = [`MAX_NORM_RATIO_SQ`]); `v = max(u, 1)` clamped to `H`, and
//! `s = [u <= H] / sqrt(v)` by Newton from below ([`approx::inv_sqrt_banded`] over `[1, H]`), so
//! `s |g_i| <= C` up to fixed-point rounding: an example whose gradient is more than `2^16 C`
//! long is dropped (`s = 0`) rather than scaled by a start above its root. Comparisons are exact
//! while `u 2^f < 2^62`: a gradient beyond that (`2^21 C` at 20 bits) comes only from inputs far
//! outside any data set's range, which a data owner can send only about its own examples.
//!
//! **Noise.** Each of the three servers draws the discrete Gaussian `N_Z(0, (z C 2^f)^2)` per
//! coordinate ([`DpSettings::noise`], the sampler of federated DP) and secret-shares it
//! ([`Protocol::share`]); the step adds all three to the clipped sum. Any one honest server's
//! draw gives the guarantee (against a model owner that colludes with the other servers); the
//! sum carries three times its variance.
//!
//! **Accounting.** The batches partition the examples in every epoch (a public order), so each
//! example is in one noised sum per epoch: `epochs` Gaussian mechanisms of multiplier `z`
//! (no subsampling is credited: the order is public), under zero-out adjacency (one example's
//! features and label replaced by zeros). The model owner sees the per-epoch weights
//! (post-processing); no loss is revealed under DP (its value is not clipped or noised).

use tessera_common::dp::DpSettings;
use tessera_common::ring::{Ring, RingTensor};
use tessera_common::train_job::TrainJobError;

use crate::MpcError;
use crate::approx::{self, plus};
use crate::layout::{Gather, repeat_each};
use crate::nn::{self, gather};
use crate::protocol::Protocol;
use tessera_common::fixed::fx;

/// The largest `|g_i|^2 / C^2` an example is clipped at; beyond it the example is dropped.
pub const MAX_NORM_RATIO_SQ: f64 = 4_294_967_296.0;

/// The servers that draw noise (every protocol's session has three).
pub const NOISE_SERVERS: usize = 3;

/// The clipping factors `s_i = min(1, C / |g_i|)` of a batch from the squared norms
/// `norms_sq` (`[batch]`), and 0 where `|g_i|^2 > H C^2` (see the module docs).
pub async fn clip_factors<P: Protocol>(
    p: &P,
    norms_sq: &P::Tensor,
    clip: f64,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let batch = p.shape(norms_sq).iter().product::<usize>();
    let norms_sq = p.reshape(norms_sq, &[batch])?;
    let u = if clip == 1.0 {
        norms_sq
    } else {
        p.truncate(&p.scale(&norms_sq, fx((clip * clip).recip(), f)), f)
            .await?
    };
    let one_less = plus(p, &p.neg(&u), 1.0, f)?;
    let h_less = plus(p, &p.neg(&u), MAX_NORM_RATIO_SQ, f)?;
    let bits = p.drelu(&p.concat(&[&one_less, &h_less])?).await?;
    let bits = p.split(&bits, &[&[batch], &[batch]])?;
    let (below_one, within) = (&bits[0], &bits[1]);
    // max(u, 1) = u + [u <= 1] (1 - u); then clamped: H + [u <= H] (max(u, 1) - H).
    let at_least_one = p.add(&u, &p.mul(below_one, &one_less).await?)?;
    let excess = plus(p, &at_least_one, -MAX_NORM_RATIO_SQ, f)?;
    let v = plus(p, &p.mul(within, &excess).await?, MAX_NORM_RATIO_SQ, f)?;
    let y = approx::inv_sqrt_banded(p, &v, f, 1.0, MAX_NORM_RATIO_SQ).await?;
    p.mul(within, &y).await
}

/// The clipped gradients of dense layers from each one's (parameter index, input `[batch,
/// inputs]`, output gradient `[batch, units]`): per parameter index, the clipped weight and
/// bias gradient sums.
pub async fn clipped_dense<P: Protocol>(
    p: &P,
    dense: &[(usize, P::Tensor, P::Tensor)],
    clip: f64,
) -> Result<Vec<(usize, (P::Tensor, P::Tensor))>, MpcError> {
    let f = p.frac_bits();
    let Some(batch) = dense.first().map(|(_, x, _)| p.shape(x)[0]) else {
        return Ok(Vec::new());
    };
    let mut norms_sq: Option<P::Tensor> = None;
    for (_, x, dy) in dense {
        let xx = nn::sum_axis(p, &p.mul_trunc(x, x, f).await?, 1)?;
        let dd = nn::sum_axis(p, &p.mul_trunc(dy, dy, f).await?, 1)?;
        let layer = p.mul_trunc(&plus(p, &xx, 1.0, f)?, &dd, f).await?;
        norms_sq = Some(match norms_sq {
            None => layer,
            Some(n) => p.add(&n, &layer)?,
        });
    }
    let norms_sq = norms_sq.ok_or(TrainJobError::DpNoDense)?;
    let s = clip_factors(p, &norms_sq, clip).await?;
    let mut out = Vec::with_capacity(dense.len());
    for (at, x, dy) in dense {
        let (inputs, units) = (p.shape(x)[1], p.shape(dy)[1]);
        let s_rows = gather(p, &s, &repeat_each(batch, units), &[batch, units])?;
        let scaled = p.mul_trunc(dy, &s_rows, f).await?;
        let xt = gather(p, x, &Gather::transpose(batch, inputs), &[inputs, batch])?;
        let w = p.matmul_trunc(&xt, &scaled, f).await?;
        out.push((*at, (w, nn::sum_axis(p, &scaled, 0)?)));
    }
    Ok(out)
}

/// `g` plus every server's noise: each of [`NOISE_SERVERS`] draws `N_Z(0, (z C 2^f)^2)` per
/// coordinate from its own operating-system-seeded generator and shares it.
pub async fn add_noise<P: Protocol>(
    p: &P,
    g: &P::Tensor,
    dp: &DpSettings,
) -> Result<P::Tensor, MpcError> {
    let shape = p.shape(g).to_vec();
    let len = shape.iter().product::<usize>();
    let mut noised = g.clone();
    for server in 0..NOISE_SERVERS {
        let mine = if p.me() == server {
            let draws = dp.noise(&mut rand::rng(), len, p.frac_bits());
            let values = draws
                .into_iter()
                .map(|d| P::Elem::from_i128(i128::from(d)))
                .collect();
            Some(RingTensor::from_vec(&shape, values)?)
        } else {
            None
        };
        let shared = p.share(server, mine.as_ref(), &shape).await?;
        noised = p.add(&noised, &shared)?;
    }
    Ok(noised)
}
