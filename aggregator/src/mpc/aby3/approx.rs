//! Fixed-point approximations on ABY3 sharings (`f` fractional bits), with the iteration counts
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
//! - `softmax` along the last axis: subtract the maximum (exact, [`super::nonlinear`]), `exp`,
//!   sum, reciprocal on `[1, k]` by Newton from `1/k`.

use tessera_common::net::Network;

use super::nonlinear::{drelu, max_last_axis, select};
use super::trunc::{mul_trunc, truncate};
use super::{Aby3Tensor, MpcError, Session, Shared};
use crate::mpc::layout::Gather;

/// Fixed-point encoding of `v` with `f` fractional bits.
pub fn fx(v: f64, f: u32) -> u64 {
    (v * (1u64 << f) as f64).round() as i64 as u64
}

fn constant(x: &Aby3Tensor, v: f64, f: u32) -> Vec<u64> {
    vec![fx(v, f); x.len()]
}

/// `a * x + b` for public reals `a`, `b` (one truncation).
async fn affine<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    a: f64,
    b: f64,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let scaled = truncate(session, &x.scale(fx(a, f)), f).await?;
    scaled.add_public(session.me(), &constant(x, b, f))
}

/// `e^x` (see the module docs for the error).
pub async fn exp<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    const ITERATIONS: u32 = 8;
    // Extra fractional bits kept while the base is near 1 (values stay below 2^44, so each
    // truncation fails with probability below 2^-19).
    const EXTRA: u32 = 4;
    let g = f + EXTRA;
    let me = session.me();
    // t = x / 2^8 with g fractional bits; base = 1 + t + t^2/2.
    let t = truncate(session, x, ITERATIONS - EXTRA).await?;
    let half_t2 = mul_trunc(session, &t, &t, g + 1).await?;
    let mut y = t.add(&half_t2)?.add_public(me, &constant(x, 1.0, g))?;
    for i in 0..ITERATIONS {
        // The last two squarings drop back to f bits (the first of them sheds the extra bits).
        let bits = match i {
            6 => g + EXTRA,
            7 => f,
            _ => g,
        };
        y = mul_trunc(session, &y, &y, bits).await?;
    }
    Ok(y)
}

/// Newton iterations for `1/x` from `y0`.
async fn newton_reciprocal<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    mut y: Aby3Tensor,
    iterations: usize,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let two = constant(x, 2.0, f);
    for _ in 0..iterations {
        let xy = mul_trunc(session, x, &y, f).await?;
        let t = xy.neg().add_public(session.me(), &two)?;
        y = mul_trunc(session, &y, &t, f).await?;
    }
    Ok(y)
}

/// `1/x` for `x` in `[0.1, 500]`.
pub async fn reciprocal<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let e = exp(
        session,
        &x.neg().add_public(session.me(), &constant(x, 0.5, f))?,
        f,
    )
    .await?;
    let y0 = affine(session, &e, 3.0, 0.003, f).await?;
    newton_reciprocal(session, x, y0, 10, f).await
}

/// `1/sqrt(x)` for `x` in `[0.1, 100]`.
pub async fn inv_sqrt<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let me = session.me();
    let e = exp(session, &affine(session, x, -0.5, -0.2, f).await?, f).await?;
    let mut y = affine(session, &e, 2.2, 0.2, f)
        .await?
        .sub(&truncate(session, x, 10).await?)?;
    let three = constant(x, 3.0, f);
    for _ in 0..4 {
        let y2 = mul_trunc(session, &y, &y, f).await?;
        let t = mul_trunc(session, x, &y2, f)
            .await?
            .neg()
            .add_public(me, &three)?;
        // y * t / 2: truncate by f + 1.
        y = mul_trunc(session, &y, &t, f + 1).await?;
    }
    Ok(y)
}

/// `sqrt(x)` for `x` in `[0.1, 100]`.
pub async fn sqrt<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let r = inv_sqrt(session, x, f).await?;
    mul_trunc(session, x, &r, f).await
}

/// `x, x^2, ..., x^n` with `ceil(log2 n)` rounds (each level multiplies the known powers by the
/// highest one, batched).
async fn powers<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    n: usize,
    f: u32,
) -> Result<Vec<Aby3Tensor>, MpcError> {
    let mut pw = vec![x.clone()];
    while pw.len() < n {
        let top = pw.last().cloned().unwrap_or_else(|| x.clone());
        let take = pw.len().min(n - pw.len());
        let lhs: Vec<&Aby3Tensor> = (0..take).map(|_| &top).collect();
        let rhs: Vec<&Aby3Tensor> = pw[..take].iter().collect();
        let prod = mul_trunc(session, &Shared::concat(&lhs), &Shared::concat(&rhs), f).await?;
        let shapes: Vec<&[usize]> = (0..take).map(|_| x.shape()).collect();
        pw.extend(prod.split(&shapes)?);
    }
    Ok(pw)
}

/// `ln x` for `x` in `[0.5, 100]`.
pub async fn log<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let me = session.me();
    let e = exp(session, &affine(session, x, -2.0, -1.0, f).await?, f).await?;
    let mut y = affine(session, x, 1.0 / 120.0, 3.0, f)
        .await?
        .sub(&e.scale(20))?;
    let one = constant(x, 1.0, f);
    for _ in 0..2 {
        let ey = exp(session, &y.neg(), f).await?;
        let h = mul_trunc(session, x, &ey, f)
            .await?
            .neg()
            .add_public(me, &one)?;
        let pw = powers(session, &h, 8, f).await?;
        let mut sum = Shared::zeros(x.shape());
        for (k, p) in pw.iter().enumerate() {
            sum = sum.add(&p.scale(fx(1.0 / (k + 1) as f64, f)))?;
        }
        y = y.sub(&truncate(session, &sum, f).await?)?;
    }
    Ok(y)
}

/// The logistic function (see the module docs).
pub async fn sigmoid<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let me = session.me();
    let pos = drelu(session, x).await?;
    let abs = select(session, &pos, x, &x.neg()).await?;
    let e = exp(session, &abs.neg(), f).await?;
    let d = e.add_public(me, &constant(x, 1.0, f))?;
    let y0 = Shared::public(me, &constant(x, 0.75, f), x.shape());
    let r = newton_reciprocal(session, &d, y0, 4, f).await?;
    let mirrored = r.neg().add_public(me, &constant(x, 1.0, f))?;
    select(session, &pos, &r, &mirrored).await
}

/// Softmax along the last axis.
pub async fn softmax<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    f: u32,
) -> Result<Aby3Tensor, MpcError> {
    let me = session.me();
    let shape = x.shape().to_vec();
    let k = *shape.last().unwrap_or(&1);
    let rows = x.len() / k.max(1);
    let m = max_last_axis(session, x).await?;
    let spread = Gather::positions(&(0..rows * k).map(|i| i / k).collect::<Vec<_>>());
    let mb = m.map_local(&shape, |s| spread.apply(s))?;
    let e = exp(session, &x.sub(&mb)?, f).await?;
    let sum_rows = |s: &[u64]| {
        s.chunks(k)
            .map(|c| c.iter().fold(0u64, |a, b| a.wrapping_add(*b)))
            .collect::<Vec<_>>()
    };
    let sum = e.map_local(&[rows], sum_rows)?;
    // Newton from 1/k: |1 - s/k| <= 1 - 1/k, squared each step; stop below 2^-20.
    let mut iterations = 0;
    let mut err = 1.0 - 1.0 / k as f64;
    while err > 1e-6 {
        err *= err;
        iterations += 1;
    }
    let y0 = Shared::public(me, &vec![fx(1.0 / k as f64, f); rows], &[rows]);
    let r = newton_reciprocal(session, &sum, y0, iterations, f).await?;
    let rb = r.map_local(&shape, |s| spread.apply(s))?;
    mul_trunc(session, &e, &rb, f).await
}
