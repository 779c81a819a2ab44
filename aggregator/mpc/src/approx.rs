//! Fixed-point approximations over any [`Protocol`] (`f` fractional bits), with the iteration counts
//! CrypTen uses (Knott et al. 2021, "CrypTen", §3.3 and its `crypten.common.functions`):
//!
//! - `exp(x)` by `(e^(x/2^8))^(2^8)`, the inner power by its second-order Taylor polynomial
//!   `1 + t + t^2/2` (CrypTen uses `1 + t`, whose relative error `x^2/512` is 3% at `x = 4`),
//!   then 8 squarings, the first six with 4 extra fractional bits: relative error about
//!   `|x|^3/196608 + 6e-4` for `x` in `[-512, 4]` (the base stays in `[0.5, 1]` for `x < 0`, so
//!   very negative inputs give a tiny positive result, not an overflow); 10 rounds.
//! - `reciprocal(x)` by Newton `y <- y (2 - x y)` from `y0 = 3 exp(0.5 - x) + 0.003`, 10
//!   iterations (quadratic convergence; `0 < x y0 < 2` holds on `[0.1, 500]`).
//! - `inv_sqrt(x)` by Newton `y <- y (3 - x y^2) / 2` from
//!   `y0 = 2.2 exp(-(x/2 + 0.2)) + 0.2 - x/1024`, 4 iterations (CrypTen's 3 leave 0.3% at
//!   `x = 10`, where `1 - x y0^2 = 0.59`); `sqrt(x) = x inv_sqrt(x)`.
//! - `log(x)` by 2 Householder iterations `y <- y - sum_{k=1..8} h^k / k` with
//!   `h = 1 - x exp(-y)`, from `y0 = x/120 - 20 exp(-2x - 1) + 3`.
//! - `sigmoid(x) = 1 / (1 + exp(-|x|))` mirrored for `x < 0`: the reciprocal's argument lies in
//!   `(1, 2]`, so 4 Newton steps from `0.75` suffice (`|1 - x y0| <= 0.5`, error `0.5^16`).
//! - `softmax` along the last axis: subtract the maximum (exact, [`super::nn`]), `exp`,
//!   sum, reciprocal on `[1, k]` by Newton from `1/k`.
//! - `inv_sqrt_wide(x)` over many decades (Adam's second moment, a norm): the same Newton from
//!   `1/sqrt(hi)`, rising by 1.5 a step; `inv_sqrt_banded` starts it from the top of `x`'s band,
//!   picked by five comparisons, and needs 9 steps for Adam's range where the first needs 37.
//!
//! `exp`, `reciprocal`, `inv_sqrt`, `inv_sqrt_wide`, `sqrt` and `log` need only products and
//! truncation (every protocol); `sigmoid`, `softmax` and `inv_sqrt_banded` also compare (SecureNN
//! and ABY3; the last falls back to `inv_sqrt_wide` under Pond).

use tessera_common::fixed::fx;
use tessera_common::ring::Ring;

use super::MpcError;
use super::layout::Gather;
use super::nn::{max_last_axis, powers, select};
use super::protocol::Protocol;

fn numel<P: Protocol>(p: &P, x: &P::Tensor) -> usize {
    p.shape(x).iter().product()
}

/// `x + v` for a public real `v` (fixed point with `bits` fractional bits).
pub(crate) fn plus<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    v: f64,
    bits: u32,
) -> Result<P::Tensor, MpcError> {
    p.add_public(x, &vec![fx(v, bits); numel(p, x)])
}

/// `a * x + b` for public reals `a`, `b` (one truncation).
async fn affine<P: Protocol>(p: &P, x: &P::Tensor, a: f64, b: f64) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let scaled = p.truncate(&p.scale(x, fx(a, f)), f).await?;
    plus(p, &scaled, b, f)
}

/// `e^x` (see the module docs for the error).
pub async fn exp<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    const ITERATIONS: u32 = 8;
    // Extra fractional bits kept while the base is near 1 (values stay below 2^44, so each
    // truncation fails with probability below 2^-19).
    const EXTRA: u32 = 4;
    let f = p.frac_bits();
    let g = f + EXTRA;
    // t = x / 2^8 with g fractional bits; base = 1 + t + t^2/2.
    let t = p.truncate(x, ITERATIONS - EXTRA).await?;
    let half_t2 = p.mul_trunc(&t, &t, g + 1).await?;
    let mut y = plus(p, &p.add(&t, &half_t2)?, 1.0, g)?;
    for i in 0..ITERATIONS {
        y = p.mul_trunc(&y, &y, exp_bits(i, f, g)).await?;
    }
    Ok(y)
}

/// The truncation of exp's squaring `i`: the last two drop back to `f` bits (the first of them
/// sheds the extra bits).
fn exp_bits(i: u32, f: u32, g: u32) -> u32 {
    match i {
        6 => g + (g - f),
        7 => f,
        _ => g,
    }
}

/// Newton iterations for `1/x` from `y`.
async fn newton_reciprocal<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    mut y: P::Tensor,
    iterations: usize,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    for _ in 0..iterations {
        let xy = p.mul_trunc(x, &y, f).await?;
        let t = plus(p, &p.neg(&xy), 2.0, f)?;
        y = p.mul_trunc(&y, &t, f).await?;
    }
    Ok(y)
}

/// `1/x` for `x` in `[0.1, 500]`.
pub async fn reciprocal<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let e = exp(p, &plus(p, &p.neg(x), 0.5, p.frac_bits())?).await?;
    let y0 = affine(p, &e, 3.0, 0.003).await?;
    newton_reciprocal(p, x, y0, 10).await
}

/// `1/sqrt(x)` for `x` in `[0.1, 100]`.
pub async fn inv_sqrt<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let e = exp(p, &affine(p, x, -0.5, -0.2).await?).await?;
    let mut y = p.sub(&affine(p, &e, 2.2, 0.2).await?, &p.truncate(x, 10).await?)?;
    for _ in 0..4 {
        let y2 = p.mul_trunc(&y, &y, f).await?;
        let t = plus(p, &p.neg(&p.mul_trunc(x, &y2, f).await?), 3.0, f)?;
        // y * t / 2: truncate by f + 1.
        y = p.mul_trunc(&y, &t, f + 1).await?;
    }
    Ok(y)
}

/// `sqrt(x)` for `x` in `[0.1, 100]`.
pub async fn sqrt<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let r = inv_sqrt(p, x).await?;
    p.mul_trunc(x, &r, p.frac_bits()).await
}

/// `ln x` for `x` in `[0.5, 100]`.
pub async fn log<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let e = exp(p, &affine(p, x, -2.0, -1.0).await?).await?;
    let mut y = p.sub(
        &affine(p, x, 1.0 / 120.0, 3.0).await?,
        &p.scale(&e, P::Elem::from_u64(20)),
    )?;
    for _ in 0..2 {
        let ey = exp(p, &p.neg(&y)).await?;
        let h = plus(p, &p.neg(&p.mul_trunc(x, &ey, f).await?), 1.0, f)?;
        let pw = powers(p, &h, 8).await?;
        let mut sum = p.scale(x, P::Elem::ZERO);
        for (k, power) in pw.iter().enumerate() {
            sum = p.add(&sum, &p.scale(power, fx(1.0 / (k + 1) as f64, f)))?;
        }
        y = p.sub(&y, &p.truncate(&sum, f).await?)?;
    }
    Ok(y)
}

/// The logistic function (see the module docs); needs a comparison.
pub async fn sigmoid<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let pos = p.drelu(x).await?;
    let abs = select(p, &pos, x, &p.neg(x)).await?;
    let e = exp(p, &p.neg(&abs)).await?;
    let d = plus(p, &e, 1.0, f)?;
    let y0 = p.public(&vec![fx(0.75, f); numel(p, x)], p.shape(x));
    let r = newton_reciprocal(p, &d, y0, 4).await?;
    let mirrored = plus(p, &p.neg(&r), 1.0, f)?;
    select(p, &pos, &r, &mirrored).await
}

/// Softmax along the last axis; needs a comparison.
pub async fn softmax<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let shape = p.shape(x).to_vec();
    let k = *shape.last().unwrap_or(&1);
    let rows = numel(p, x) / k.max(1);
    let m = max_last_axis(p, x).await?;
    let spread = Gather::positions(&(0..rows * k).map(|i| i / k).collect::<Vec<_>>());
    let mb = p.map_local(&m, &shape, &|s| spread.apply(s))?;
    let e = exp(p, &p.sub(x, &mb)?).await?;
    let sum = p.map_local(&e, &[rows], &|s| {
        s.chunks(k)
            .map(|c| c.iter().fold(P::Elem::ZERO, |a, b| a.add(*b)))
            .collect()
    })?;
    // Newton from 1/k: |1 - s/k| <= 1 - 1/k, squared each step; stop below 1e-6.
    let mut iterations = 0;
    let mut err = 1.0 - 1.0 / k as f64;
    while err > 1e-6 {
        err *= err;
        iterations += 1;
    }
    let y0 = p.public(&vec![fx(1.0 / k as f64, f); rows], &[rows]);
    let r = newton_reciprocal(p, &sum, y0, iterations).await?;
    let rb = p.map_local(&r, &shape, &|s| spread.apply(s))?;
    p.mul_trunc(&e, &rb, f).await
}

/// `1/sqrt(x)` over many decades, for `x` in `[lo, hi]` given with `x_bits` fractional bits
/// (more than the protocol's `f` when `x` is tiny, e.g. Adam's second moment kept with `2f`);
/// the result has `f` fractional bits. No comparison: Newton's `y <- y (3 - x y^2) / 2` from
/// `y0 = 1/sqrt(hi)`, which is below every root, so the ratio `t = y sqrt(x)` rises
/// monotonically to 1 (`t <- t (3 - t^2) / 2` stays below 1), by a factor near 1.5 while
/// `t` is small, then quadratically. `log_1.5(sqrt(hi / lo))` steps reach `t = 0.5` from the
/// worst start, and 5 more take the relative error from 0.5 to below `2^-30`; each step is
/// three fixed-point products of `n` values, in three rounds. (A full range reduction by
/// comparisons against powers of 4 needs `log_4(hi / lo)` comparisons per element, about 20 for
/// Adam; [`inv_sqrt_banded`] spends a few to shorten the rise instead.)
pub async fn inv_sqrt_wide<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    x_bits: u32,
    lo: f64,
    hi: f64,
) -> Result<P::Tensor, MpcError> {
    let n = numel(p, x);
    let y0 = p.public(
        &vec![fx::<P::Elem>(1.0 / hi.sqrt(), p.frac_bits()); n],
        p.shape(x),
    );
    newton_inv_sqrt(p, x, x_bits, y0, hi / lo).await
}

/// Comparisons [`inv_sqrt_banded`] spends to pick a start: `x` against `BAND_COMPARISONS`
/// thresholds splits `[lo, hi]` into one more band, each `(hi / lo)^(1/6)` wide.
const BAND_COMPARISONS: usize = 5;

/// `1/sqrt(x)` as [`inv_sqrt_wide`], but from a start picked by comparisons: `x` is compared with
/// [`BAND_COMPARISONS`] thresholds spaced geometrically over `[lo, hi]` (one batch of comparisons,
/// in the rounds of one), and Newton starts from the top of `x`'s band, so it needs only
/// `log_1.5(sqrt(ratio))` rising steps for one band's `ratio` instead of the whole range's. For
/// Adam (`[1e-8, 4096]`) that is 9 steps instead of 37 for five comparisons per element.
///
/// Falls back to [`inv_sqrt_wide`] where the protocol has no exact comparison (Pond), or where
/// `hi` at `x_bits` fractional bits does not fit the comparison's `2^61`. The start is below
/// `1/sqrt(x)` for every `x` in its band (the band's top, lowered by `2^-10` against rounding),
/// so Newton still rises from below and `x y^2` stays below 1, as [`inv_sqrt_wide`] argues.
/// Values below `lo` start in the lowest band and above `hi` at `1/sqrt(hi)`, as there.
pub async fn inv_sqrt_banded<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    x_bits: u32,
    lo: f64,
    hi: f64,
) -> Result<P::Tensor, MpcError> {
    let fits = hi * f64::from(x_bits).exp2() < 2f64.powi(61) && lo > 0.0 && hi > lo;
    if !fits {
        return inv_sqrt_wide(p, x, x_bits, lo, hi).await;
    }
    let f = p.frac_bits();
    let (n, shape) = (numel(p, x), p.shape(x).to_vec());
    let k = BAND_COMPARISONS;
    let ratio = (hi / lo).powf(1.0 / (k + 1) as f64);
    // Band j (0..=k) is [lo ratio^j, lo ratio^(j+1)); its start is 1/sqrt of its top.
    let start = |j: usize| (1.0 - 2f64.powi(-10)) / (lo * ratio.powi(j as i32 + 1)).sqrt();
    let flat = p.reshape(x, &[n])?;
    let diffs: Vec<P::Tensor> = (1..=k)
        .map(|j| plus(p, &flat, -lo * ratio.powi(j as i32), x_bits))
        .collect::<Result<_, _>>()?;
    let above = match p.drelu(&p.concat(&diffs.iter().collect::<Vec<_>>())?).await {
        Ok(bits) => bits,
        Err(MpcError::Unsupported { .. }) => return inv_sqrt_wide(p, x, x_bits, lo, hi).await,
        Err(e) => return Err(e),
    };
    // y0 = start(0) + sum_j [x >= threshold j] (start(j) - start(j - 1)): linear in the bits.
    let steps: Vec<P::Elem> = (1..=k).map(|j| fx(start(j) - start(j - 1), f)).collect();
    let y0 = p.map_local(&above, &shape, &|s| {
        (0..n)
            .map(|i| {
                steps
                    .iter()
                    .enumerate()
                    .fold(P::Elem::ZERO, |acc, (j, d)| acc.add(s[j * n + i].mul(*d)))
            })
            .collect()
    })?;
    let y0 = plus(p, &y0, start(0), f)?;
    newton_inv_sqrt(p, x, x_bits, y0, ratio).await
}

/// Newton's `y <- y (3 - x y^2) / 2` from `y0`, below `1/sqrt(x)` by at most `sqrt(ratio)`:
/// enough rising steps to reach half the root from the worst start, then 5 (see
/// [`inv_sqrt_wide`]).
async fn newton_inv_sqrt<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    x_bits: u32,
    mut y: P::Tensor,
    ratio: f64,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let rise = ((0.5 * ratio.sqrt()).log2() / 1.5f64.log2())
        .ceil()
        .max(0.0) as usize;
    for _ in 0..rise + 5 {
        // y^2 untruncated (2f bits): truncated to f it would keep only a few significant bits
        // when y is small. x y^2 stays at most 1 (Newton from below), so the product before its
        // truncation is below 2^(x_bits + 2f): 2^80 for Adam.
        let y2 = p.mul(&y, &y).await?;
        let xy2 = p.mul_trunc(x, &y2, x_bits + f).await?;
        let t = plus(p, &p.neg(&xy2), 3.0, f)?;
        y = p.mul_trunc(&y, &t, f + 1).await?;
    }
    Ok(y)
}
