//! Layers written once over [`Protocol`]: they run on every protocol that has the operations
//! they need, and return [`MpcError::Unsupported`] on one that lacks them (the comparison-based
//! layers under Pond).
//!
//! - Linear: dense (`x·w + b`), conv2d via im2col (one matrix product), average pooling, mean.
//! - Comparison-based (exact): select, ReLU, maximum, maximum and argmax along the last axis (a
//!   tree of `ceil(log2 k)` levels, each one batched comparison and one multiplication),
//!   max-pooling, and a bitonic sorting network (`log2 n (log2 n + 1) / 2` compare-exchange
//!   stages).
//! - Linear reductions: sum and mean along any axis.
//! - Division (SecureNN Algorithm 9): long division, one comparison per quotient bit.
//! - Polynomials (Pond's approximations, TF Encrypted `pond.py`): sigmoid by a degree-9 odd
//!   polynomial, ReLU by a degree-8 Chebyshev one; both only as good as the fit on their
//!   interval. Powers take `ceil(log2 degree)` rounds.

use crate::error::{Broken, Invalid};
use tessera_common::ring::Ring;

use super::MpcError;
use super::layout::{Gather, Window, bitonic_stages, rows_to_nchw};
use super::protocol::Protocol;
use tessera_common::fixed::fx;

/// `c ? x : y` for an arithmetic 0/1 `c`: `y + c (x - y)`, one multiplication.
pub async fn select<P: Protocol>(
    p: &P,
    c: &P::Tensor,
    x: &P::Tensor,
    y: &P::Tensor,
) -> Result<P::Tensor, MpcError> {
    p.add(y, &p.mul(c, &p.sub(x, y)?).await?)
}

/// `x < y` as an arithmetic 0/1 (exact while `|x - y| < 2^62`).
pub async fn less<P: Protocol>(p: &P, x: &P::Tensor, y: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let ge = p.drelu(&p.sub(x, y)?).await?;
    let ones = vec![P::Elem::ONE; p.shape(x).iter().product()];
    p.add_public(&p.neg(&ge), &ones)
}

/// `max(x, 0)`, exact in the ring.
pub async fn relu<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let d = p.drelu(x).await?;
    p.mul(&d, x).await
}

/// Elementwise maximum.
pub async fn maximum<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    y: &P::Tensor,
) -> Result<P::Tensor, MpcError> {
    let c = less(p, x, y).await?;
    select(p, &c, y, x).await
}

fn rows_and_width(shape: &[usize]) -> Result<(usize, usize, Vec<usize>), MpcError> {
    match shape.split_last() {
        Some((&k, rest)) if k > 0 => Ok((rest.iter().product(), k, rest.to_vec())),
        _ => Err(Invalid::Layout {
            what: "a reduced tensor",
            expected: "of rank 1 or more",
            shape: shape.to_vec(),
        }
        .into()),
    }
}

pub(crate) fn gather<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    g: &Gather,
    shape: &[usize],
) -> Result<P::Tensor, MpcError> {
    p.map_local(x, shape, &|s| g.apply(s))
}

/// What the maximum tree carries along with each candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carry {
    /// Nothing: the maximum only.
    Nothing,
    /// Its position (one integer per candidate).
    Index,
    /// A one-hot vector of its position (the width of the axis per candidate): the selection
    /// max-pooling's backward pass routes the gradient through.
    OneHot,
}

/// Columns `cols` of `[rows, k]` candidates carrying `width` values each, as a gather on the
/// flat `[rows, k, width]` layout.
fn candidate_columns(rows: usize, k: usize, width: usize, cols: &[usize]) -> Gather {
    let wide: Vec<usize> = cols
        .iter()
        .flat_map(|c| c * width..(c + 1) * width)
        .collect();
    Gather::columns(rows, k * width, &wide)
}

/// Maximum along the last axis and what `carry` asks for. A tree of adjacent pairs: at each
/// level candidate `2j` meets `2j + 1` and the odd one left over goes last, so candidates stay
/// in position order and a tie keeps the left one: ties go to the earliest position, as in a
/// plaintext scan (and burn's max-pooling).
async fn max_tree<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    carry: Carry,
) -> Result<(P::Tensor, Option<P::Tensor>), MpcError> {
    let (rows, mut k, out_shape) = rows_and_width(p.shape(x))?;
    let k0 = k;
    let width = match carry {
        Carry::Nothing => 0,
        Carry::Index => 1,
        Carry::OneHot => k0,
    };
    let mut v = p.reshape(x, &[rows, k])?;
    let mut pay = match carry {
        Carry::Nothing => None,
        Carry::Index => {
            let positions: Vec<P::Elem> = (0..rows)
                .flat_map(|_| (0..k as u64).map(P::Elem::from_u64))
                .collect();
            Some(p.public(&positions, &[rows * k]))
        }
        Carry::OneHot => {
            let eye: Vec<P::Elem> = (0..rows * k * k)
                .map(|i| {
                    let (j, t) = ((i / k) % k, i % k);
                    if j == t { P::Elem::ONE } else { P::Elem::ZERO }
                })
                .collect();
            Some(p.public(&eye, &[rows * k * k]))
        }
    };
    while k > 1 {
        let half = k / 2;
        let rest = k - 2 * half;
        let even: Vec<usize> = (0..half).map(|c| 2 * c).collect();
        let odd: Vec<usize> = (0..half).map(|c| 2 * c + 1).collect();
        let left: Vec<usize> = (2 * half..k).collect();
        let (gl, gr, gt) = (
            Gather::columns(rows, k, &even),
            Gather::columns(rows, k, &odd),
            Gather::columns(rows, k, &left),
        );
        let (a, b) = (
            gather(p, &v, &gl, &[rows, half])?,
            gather(p, &v, &gr, &[rows, half])?,
        );
        let c = less(p, &a, &b).await?;
        // One multiplication for the value and (batched) the payload: c * (b - a).
        let dv = p.sub(&b, &a)?;
        let n_pay = rows * half * width;
        let (new_v, new_pay) = match &pay {
            Some(q) => {
                let (qa, qb) = (
                    gather(p, q, &candidate_columns(rows, k, width, &even), &[n_pay])?,
                    gather(p, q, &candidate_columns(rows, k, width, &odd), &[n_pay])?,
                );
                let dq = p.sub(&qb, &qa)?;
                let cq = gather(
                    p,
                    &c,
                    &super::layout::repeat_each(rows * half, width),
                    &[n_pay],
                )?;
                let flat_c = p.reshape(&c, &[rows * half])?;
                let flat_dv = p.reshape(&dv, &[rows * half])?;
                let prod = p
                    .mul(&p.concat(&[&flat_c, &cq])?, &p.concat(&[&flat_dv, &dq])?)
                    .await?;
                let parts = p.split(&prod, &[&[rows, half], &[n_pay]])?;
                (p.add(&a, &parts[0])?, Some(p.add(&qa, &parts[1])?))
            }
            None => (p.add(&a, &p.mul(&c, &dv).await?)?, None),
        };
        // Rows become [the half winners, the odd column left over], `width` values each.
        let w = half + rest;
        let merge = |width: usize| {
            Gather::positions(
                &(0..rows)
                    .flat_map(|r| {
                        (0..half * width).map(move |c| r * half * width + c).chain(
                            (0..rest * width)
                                .map(move |c| rows * half * width + r * rest * width + c),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let tail = gather(p, &v, &gt, &[rows, rest])?;
        v = gather(p, &p.concat(&[&new_v, &tail])?, &merge(1), &[rows, w])?;
        if let (Some(nq), Some(q)) = (new_pay, &pay) {
            let gq = candidate_columns(rows, k, width, &left);
            let tail = gather(p, q, &gq, &[rows * rest * width])?;
            let joined = p.concat(&[&nq, &tail])?;
            pay = Some(gather(p, &joined, &merge(width), &[rows * w * width])?);
        }
        k = w;
    }
    let pay = match (pay, carry) {
        (Some(q), Carry::OneHot) => {
            let mut shape = out_shape.clone();
            shape.push(k0);
            Some(p.reshape(&q, &shape)?)
        }
        (Some(q), _) => Some(p.reshape(&q, &out_shape)?),
        (None, _) => None,
    };
    Ok((p.reshape(&v, &out_shape)?, pay))
}

/// Maximum along the last axis.
pub async fn max_last_axis<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    Ok(max_tree(p, x, Carry::Nothing).await?.0)
}

/// Position of the maximum along the last axis (an integer, not fixed-point, sharing; ties go
/// to the earliest position).
pub async fn argmax<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    max_tree(p, x, Carry::Index)
        .await?
        .1
        .ok_or(MpcError::Broken(Broken::NoSelection("argmax")))
}

/// Maximum along the last axis and the one-hot selection of its position (shape
/// `[..., k]`, integer 0/1; ties go to the earliest position): the forward pass of max-pooling
/// keeps it so the backward pass routes the gradient without a second comparison.
pub async fn max_with_selection<P: Protocol>(
    p: &P,
    x: &P::Tensor,
) -> Result<(P::Tensor, P::Tensor), MpcError> {
    let (m, sel) = max_tree(p, x, Carry::OneHot).await?;
    let sel = sel.ok_or(Broken::NoSelection("maximum"))?;
    Ok((m, sel))
}

/// The pooling windows of an `[n, c, h, w]` sharing as rows `[n*c*oh*ow, kh*kw]`, and the
/// pooled shape `[n, c, oh, ow]`.
fn pool_patches<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    window: Window,
) -> Result<(P::Tensor, Vec<usize>), MpcError> {
    let (g, out_shape) = window.pool(p.shape(x))?;
    let (kh, kw) = window.kernel;
    let patches = gather(p, x, &g, &[g.len() / (kh * kw), kh * kw])?;
    Ok((patches, out_shape))
}

/// Max-pooling of an `[n, c, h, w]` sharing (exact).
pub async fn maxpool2d<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    window: Window,
) -> Result<P::Tensor, MpcError> {
    let (patches, out_shape) = pool_patches(p, x, window)?;
    p.reshape(&max_last_axis(p, &patches).await?, &out_shape)
}

/// Average pooling of an `[n, c, h, w]` fixed-point sharing: the mean of each window (local
/// sums, the public `1/(kh kw)`, one truncation).
pub async fn avgpool2d<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    window: Window,
) -> Result<P::Tensor, MpcError> {
    let (patches, out_shape) = pool_patches(p, x, window)?;
    p.reshape(&mean_axis(p, &patches, 1).await?, &out_shape)
}

/// Sum along `axis` (local: the map adds shares).
pub fn sum_axis<P: Protocol>(p: &P, x: &P::Tensor, axis: usize) -> Result<P::Tensor, MpcError> {
    let shape = p.shape(x).to_vec();
    if axis >= shape.len() {
        return Err(Invalid::Axis {
            axis,
            shape: shape.to_vec(),
        }
        .into());
    }
    let (outer, k) = (shape[..axis].iter().product::<usize>(), shape[axis]);
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out_shape = shape.clone();
    out_shape.remove(axis);
    p.map_local(x, &out_shape, &|s| {
        let mut out = vec![P::Elem::ZERO; outer * inner];
        for o in 0..outer {
            for j in 0..k {
                let row = &s[(o * k + j) * inner..(o * k + j + 1) * inner];
                for (acc, v) in out[o * inner..(o + 1) * inner].iter_mut().zip(row) {
                    *acc = acc.add(*v);
                }
            }
        }
        out
    })
}

/// Mean along `axis` of a fixed-point sharing (local sum, public scale `1/k`, one truncation).
pub async fn mean_axis<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    axis: usize,
) -> Result<P::Tensor, MpcError> {
    let k = p.shape(x).get(axis).copied().unwrap_or(1);
    let sums = sum_axis(p, x, axis)?;
    let f = p.frac_bits();
    p.truncate(&p.scale(&sums, fx(1.0 / k as f64, f)), f).await
}

/// A dense layer on fixed-point sharings: `x·w + b` for `x: [m, k]`, `w: [k, n]`, `b: [n]`.
pub async fn dense<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    w: &P::Tensor,
    b: &P::Tensor,
) -> Result<P::Tensor, MpcError> {
    let y = p.matmul_trunc(x, w, p.frac_bits()).await?;
    let shape = p.shape(&y).to_vec();
    let n = *shape.last().unwrap_or(&1);
    let spread = Gather::positions(
        &(0..shape.iter().product())
            .map(|i| i % n)
            .collect::<Vec<_>>(),
    );
    p.add(&y, &gather(p, b, &spread, &shape)?)
}

/// 2-D convolution of `x: [n, c, h, w]` with `kernel: [o, c, kh, kw]` (fixed point, no bias)
/// via im2col: the patches `[n*oh*ow, c*kh*kw]` times the kernel as `[c*kh*kw, o]`, one matrix
/// product and one truncation; the result is `[n, o, oh, ow]`.
pub async fn conv2d<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    kernel: &P::Tensor,
    stride: usize,
    padding: usize,
) -> Result<P::Tensor, MpcError> {
    let (kh, kw) = match p.shape(kernel) {
        &[_, _, kh, kw] => (kh, kw),
        _ => (0, 0),
    };
    conv2d_window(p, x, kernel, Window::square((kh, kw), stride, padding)).await
}

/// [`conv2d`] over any window (per-axis stride, asymmetric padding, dilation); the window's
/// kernel size is the kernel's.
pub async fn conv2d_window<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    kernel: &P::Tensor,
    window: Window,
) -> Result<P::Tensor, MpcError> {
    Ok(conv2d_im2col(p, x, kernel, window).await?.0)
}

/// A convolution's im2col form, kept by training's forward pass: the patches, the gather that
/// made them from the input and the output geometry `(n, oh, ow)`.
#[derive(Debug, Clone)]
pub struct Im2col<T> {
    /// The patches `[n*oh*ow, c*kh*kw]`.
    pub cols: T,
    /// The gather from the input `[n, c, h, w]` to the patches.
    pub gather: Gather,
    /// Batch and output height and width.
    pub out: (usize, usize, usize),
}

/// [`conv2d_window`] and its [`Im2col`] (the window's kernel size is the kernel's).
pub async fn conv2d_im2col<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    kernel: &P::Tensor,
    window: Window,
) -> Result<(P::Tensor, Im2col<P::Tensor>), MpcError> {
    let (o, c, kh, kw) = match p.shape(kernel) {
        &[o, c, kh, kw] => (o, c, kh, kw),
        s => {
            return Err(Invalid::Layout {
                what: "a kernel",
                expected: "[o, c, kh, kw]",
                shape: s.to_vec(),
            }
            .into());
        }
    };
    if p.shape(x).get(1) != Some(&c) {
        return Err(Invalid::Channels {
            input: p.shape(x).to_vec(),
            channels: c,
        }
        .into());
    }
    let window = Window {
        kernel: (kh, kw),
        ..window
    };
    let (g, (n, oh, ow)) = window.im2col(p.shape(x))?;
    let cols = gather(p, x, &g, &[n * oh * ow, c * kh * kw])?;
    let kmat = gather(
        p,
        kernel,
        &Gather::transpose(o, c * kh * kw),
        &[c * kh * kw, o],
    )?;
    let rows = p.matmul_trunc(&cols, &kmat, p.frac_bits()).await?;
    let y = gather(p, &rows, &rows_to_nchw(n, oh, ow, o), &[n, o, oh, ow])?;
    Ok((
        y,
        Im2col {
            cols,
            gather: g,
            out: (n, oh, ow),
        },
    ))
}

/// `y + b` for `y: [n, o, oh, ow]` and a bias `b: [o]` (one per channel; local).
pub fn add_channel_bias<P: Protocol>(
    p: &P,
    y: &P::Tensor,
    b: &P::Tensor,
) -> Result<P::Tensor, MpcError> {
    let shape = p.shape(y).to_vec();
    let (channels, plane) = match shape.as_slice() {
        [_, o, rest @ ..] => (*o, rest.iter().product::<usize>()),
        _ => {
            return Err(Invalid::Layout {
                what: "a biased tensor",
                expected: "[n, c, ...]",
                shape: shape.to_vec(),
            }
            .into());
        }
    };
    let n: usize = shape.iter().product();
    let spread = Gather::positions(&(0..n).map(|i| (i / plane) % channels).collect::<Vec<_>>());
    p.add(y, &gather(p, b, &spread, &shape)?)
}

/// `x, x^2, ..., x^n` of a fixed-point sharing in `ceil(log2 n)` rounds (each level multiplies
/// the powers known so far by the highest one, batched).
pub async fn powers<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    n: usize,
) -> Result<Vec<P::Tensor>, MpcError> {
    let shape = p.shape(x).to_vec();
    let mut pw = vec![x.clone()];
    while pw.len() < n {
        let top = pw[pw.len() - 1].clone();
        let take = pw.len().min(n - pw.len());
        let lhs: Vec<&P::Tensor> = (0..take).map(|_| &top).collect();
        let rhs: Vec<&P::Tensor> = pw[..take].iter().collect();
        let prod = p
            .mul_trunc(&p.concat(&lhs)?, &p.concat(&rhs)?, p.frac_bits())
            .await?;
        let shapes: Vec<&[usize]> = (0..take).map(|_| shape.as_slice()).collect();
        pw.extend(p.split(&prod, &shapes)?);
    }
    Ok(pw)
}

/// `sum_i coeffs[i] x^i` for a fixed-point sharing: the powers in `ceil(log2 degree)` rounds,
/// the weighted sum truncated once.
pub async fn polynomial<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    coeffs: &[f64],
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let n: usize = p.shape(x).iter().product();
    let shape = p.shape(x).to_vec();
    let degree = coeffs.len().saturating_sub(1);
    let pw = if degree > 0 {
        powers(p, x, degree).await?
    } else {
        Vec::new()
    };
    let mut acc = p.public(
        &vec![fx(coeffs.first().copied().unwrap_or(0.0), 2 * f); n],
        &shape,
    );
    for (c, power) in coeffs.iter().skip(1).zip(&pw) {
        if *c != 0.0 {
            acc = p.add(&acc, &p.scale(power, fx(*c, f)))?;
        }
    }
    p.truncate(&acc, f).await
}

/// A polynomial evaluated in `z = x / 2^shift` with coefficients `c_i 2^(shift i)`: the same
/// value, but high-degree coefficients far below one fixed-point unit (7e-9 for sigmoid's `x^9`)
/// become representable.
async fn scaled_polynomial<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    coeffs: &[f64],
    shift: u32,
) -> Result<P::Tensor, MpcError> {
    let scaled: Vec<f64> = coeffs
        .iter()
        .enumerate()
        .map(|(i, c)| c * (shift as f64 * i as f64).exp2())
        .collect();
    let z = p.truncate(x, shift).await?;
    polynomial(p, &z, &scaled).await
}

/// TF Encrypted's Pond sigmoid (`pond.py`): an odd degree-9 polynomial fitted on `[-8, 8]`
/// (largest error there 0.0234; outside it diverges).
pub async fn sigmoid_poly<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    const COEFFS: [f64; 10] = [
        0.5,
        0.2159198015,
        0.0,
        -0.0082176259,
        0.0,
        0.0001825597,
        0.0,
        -0.0000018848,
        0.0,
        0.0000000072,
    ];
    scaled_polynomial(p, x, &COEFFS, 3).await
}

/// TF Encrypted's Pond ReLU (`pond.py`): a degree-8 Chebyshev approximation, within 0.17 of
/// ReLU on `[-12, 12]` for `|x| >= 1` and 0.44 at `x = 0`; not exact: use [`relu`] where the
/// protocol can compare.
pub async fn relu_poly<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    const COEFFS: [f64; 9] = [
        0.44015372000819103,
        0.5,
        0.11217537671414643,
        0.0,
        -0.0013660836712429923,
        0.0,
        9.009136367360004e-06,
        0.0,
        -2.1097433984e-08,
    ];
    scaled_polynomial(p, x, &COEFFS, 3).await
}

/// Sorts a 1-D sharing ascending with a bitonic network (padded to a power of two with a large
/// public value; inputs must satisfy `|x| < 2^61`).
pub async fn sort<P: Protocol>(p: &P, x: &P::Tensor) -> Result<P::Tensor, MpcError> {
    let n: usize = p.shape(x).iter().product();
    let size = n.next_power_of_two();
    let pad = vec![P::Elem::ONE.shl(61); size - n];
    let mut v = p.concat(&[&p.reshape(x, &[n])?, &p.public(&pad, &[size - n])])?;
    for stage in bitonic_stages(size) {
        let m = stage.len();
        let at = |pick: &dyn Fn(&(usize, usize, bool)) -> usize| {
            Gather::positions(&stage.iter().map(pick).collect::<Vec<_>>())
        };
        let vi = gather(p, &v, &at(&|q| q.0), &[m])?;
        let vl = gather(p, &v, &at(&|q| q.1), &[m])?;
        // Swap when the pair is out of order: v[l] < v[i] ascending, v[i] < v[l] descending.
        let lo = gather(p, &v, &at(&|q| if q.2 { q.1 } else { q.0 }), &[m])?;
        let hi = gather(p, &v, &at(&|q| if q.2 { q.0 } else { q.1 }), &[m])?;
        let c = less(p, &lo, &hi).await?;
        let d = p.mul(&c, &p.sub(&vl, &vi)?).await?;
        let both = p.concat(&[&p.add(&vi, &d)?, &p.sub(&vl, &d)?])?;
        // Scatter back: position i <- new v[i] (j), position l <- new v[l] (m + j).
        let mut src = vec![0usize; size];
        for (j, (i, l, _)) in stage.iter().enumerate() {
            src[*i] = j;
            src[*l] = m + j;
        }
        v = gather(p, &both, &Gather::positions(&src), &[size])?;
    }
    let shape = p.shape(x).to_vec();
    p.map_local(&v, &shape, &|s| s[..n].to_vec())
}

/// `x / y` for fixed-point `x >= 0`, `y > 0` whose quotient is below `2^int_bits`: exactly
/// `floor(x 2^f / y)` (f fractional bits), by long division bit by bit (SecureNN Algorithm 9):
/// `f + int_bits` steps, each one comparison and one multiplication. Needs
/// `x 2^f < 2^62` and `y 2^(f + int_bits) < 2^62` in raw units.
pub async fn divide<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    y: &P::Tensor,
    int_bits: u32,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    if f + int_bits > 62 {
        return Err(Invalid::DivisionBits {
            frac_bits: f,
            int_bits,
        }
        .into());
    }
    let num = p.scale(x, P::Elem::ONE.shl(f));
    let mut used = p.scale(x, P::Elem::ZERO);
    let mut q = p.scale(x, P::Elem::ZERO);
    for i in (0..f + int_bits).rev() {
        let yi = p.scale(y, P::Elem::ONE.shl(i));
        let rest = p.sub(&p.sub(&num, &used)?, &yi)?;
        let bit = p.drelu(&rest).await?;
        used = p.add(&used, &p.mul(&bit, &yi).await?)?;
        q = p.add(&q, &p.scale(&bit, P::Elem::ONE.shl(i)))?;
    }
    Ok(q)
}
