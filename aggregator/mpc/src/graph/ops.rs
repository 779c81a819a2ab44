//! One graph node on shares: each operator written once over [`Protocol`], from the layers of
//! [`crate::nn`] (dense, im2col convolution, pooling, comparisons) and local maps (broadcasts,
//! concatenation, flattening), so it runs under every protocol that has the operations it needs.
//!
//! - A grouped (or depthwise) convolution is one matrix product with a block-diagonal kernel:
//!   the gather that spreads the kernel's shares writes zeros outside each group's block, so it
//!   costs one product's rounds and communication (the output's size), and `groups` times the
//!   local multiply-adds of a grouped product.
//! - LeakyReLU is `alpha x + (1 - alpha) relu(x)` and ReLU6 (any clip) `min + relu(x - min) -
//!   relu(x - max)`: the comparison bits the ReLU computes, both halves of a clip in one batched
//!   comparison, and one truncation for the public slopes.
//! - Tanh is `2 sigmoid(2x) - 1` on the protocol's sigmoid; HardSigmoid the clip of a public
//!   line, HardSwish `x` times it (one product); GlobalMaxPool the maximum tree of each plane.
//! - Max pooling pads with a public `-2^20` (below any activation a fixed-point model holds), so
//!   a padded position never wins; average pooling divides by the window's inside positions
//!   unless the pool counts its padding (ONNX's `count_include_pad`).

use tessera_common::fixed::fx;
use tessera_common::graph::Op;
use tessera_common::graph::op::{Conv, Pool};
use tessera_common::ring::Ring;

use crate::activations::Activations;
use crate::layout::{Gather, Window};
use crate::protocol::Protocol;
use crate::{MpcError, nn};

/// What a padded max-pooling position holds: below any activation.
const POOL_PAD: f64 = -1_048_576.0;

fn conv_window(c: &Conv) -> Window {
    Window {
        kernel: (c.kernel[0], c.kernel[1]),
        stride: (c.stride[0], c.stride[1]),
        pads: c.pads,
        dilation: (c.dilation[0], c.dilation[1]),
    }
}

fn pool_window(pool: &Pool) -> Window {
    Window {
        kernel: (pool.kernel[0], pool.kernel[1]),
        stride: (pool.stride[0], pool.stride[1]),
        pads: pool.pads,
        dilation: (1, 1),
    }
}

/// Element `i` of an `[n, c, rest...]` value reads channel `(i / plane) % c` of a `[c]` one.
fn per_channel(shape: &[usize]) -> Gather {
    let c = shape.get(1).copied().unwrap_or(1);
    let plane: usize = shape.iter().skip(2).product();
    let len: usize = shape.iter().product();
    Gather::positions(&(0..len).map(|i| (i / plane) % c).collect::<Vec<_>>())
}

/// A `[o, c / groups, kh, kw]` kernel as the block-diagonal `[o, c, kh, kw]` one.
fn block_diagonal(o: usize, c: usize, groups: usize, k: usize) -> Gather {
    let (cg, og) = (c / groups, o / groups);
    let idx = (0..o * c * k)
        .map(|i| {
            let (out, ch, at) = (i / (c * k), (i / k) % c, i % k);
            (ch / cg == out / og).then(|| (out * cg + ch % cg) * k + at)
        })
        .collect();
    Gather::with_zeros(idx)
}

/// `[n, c, h, w]` to `[n, c, top + h + bottom, left + w + right]`, zeros around.
fn zero_pad(shape: &[usize], [top, left, bottom, right]: [usize; 4]) -> Gather {
    let (planes, h, w) = (shape[0] * shape[1], shape[2], shape[3]);
    let (ph, pw) = (top + h + bottom, left + w + right);
    let idx = (0..planes * ph * pw)
        .map(|i| {
            let (plane, y, x) = (i / (ph * pw), (i / pw) % ph, i % pw);
            let (y, x) = (y.checked_sub(top)?, x.checked_sub(left)?);
            (y < h && x < w).then(|| (plane * h + y) * w + x)
        })
        .collect();
    Gather::with_zeros(idx)
}

/// Runs `op` on `inputs` (shares of a batch: `[n, per-sample shape...]`), with `params` the
/// node's parameters in canonical order; `out` is the per-sample output shape.
pub(crate) async fn apply<P: Protocol>(
    p: &P,
    op: &Op,
    inputs: &[&P::Tensor],
    params: &[P::Tensor],
    out: &[usize],
    activations: Activations,
) -> Result<P::Tensor, MpcError> {
    let x = inputs[0];
    let shape = p.shape(x).to_vec();
    let n = shape[0];
    let mut full = vec![n];
    full.extend_from_slice(out);
    let f = p.frac_bits();
    let y = match op {
        Op::Dense { .. } => {
            let flat = p.reshape(x, &[n, shape[1..].iter().product()])?;
            nn::dense(p, &flat, &params[0], &params[1]).await?
        }
        Op::Conv2d(c) => {
            let kshape = p.shape(&params[0]).to_vec();
            let kernel = if c.groups == 1 {
                params[0].clone()
            } else {
                let (o, ch, k) = (kshape[0], shape[1], kshape[2] * kshape[3]);
                let g = block_diagonal(o, ch, c.groups, k);
                nn::gather(p, &params[0], &g, &[o, ch, kshape[2], kshape[3]])?
            };
            let y = nn::conv2d_window(p, x, &kernel, conv_window(c)).await?;
            nn::add_channel_bias(p, &y, &params[1])?
        }
        Op::Affine => {
            let g = per_channel(&shape);
            let scale = nn::gather(p, &params[0], &g, &shape)?;
            let shift = nn::gather(p, &params[1], &g, &shape)?;
            p.add(&p.mul_trunc(x, &scale, f).await?, &shift)?
        }
        Op::Relu => relu(p, x, activations).await?,
        Op::LeakyRelu { alpha } => {
            let r = relu(p, x, activations).await?;
            let sum = p.add(&p.scale(&r, fx(1.0 - alpha, f)), &p.scale(x, fx(*alpha, f)))?;
            p.truncate(&sum, f).await?
        }
        Op::Clip { min, max } => clip(p, x, *min, *max, activations).await?,
        Op::Sigmoid => activations.sigmoid(p, x).await?,
        Op::HardSigmoid { alpha, beta } => hard_sigmoid(p, x, *alpha, *beta, activations).await?,
        Op::HardSwish => {
            let gate = hard_sigmoid(p, x, 1.0 / 6.0, 0.5, activations).await?;
            p.mul_trunc(x, &gate, f).await?
        }
        Op::Tanh => {
            let s = activations
                .sigmoid(p, &p.scale(x, P::Elem::from_u64(2)))
                .await?;
            let len = s_len(p, &s);
            p.add_public(&p.scale(&s, P::Elem::from_u64(2)), &vec![fx(-1.0, f); len])?
        }
        Op::MaxPool2d(pool) => {
            let window = pool_window(pool);
            let (g, pooled) = window.pool(&shape)?;
            let (kh, kw) = window.kernel;
            let patches = nn::gather(p, x, &g, &[g.len() / (kh * kw), kh * kw])?;
            let patches = if g.pads() {
                let mask: Vec<P::Elem> = g
                    .padding()
                    .map(|pad| if pad { fx(POOL_PAD, f) } else { P::Elem::ZERO })
                    .collect();
                p.add_public(&patches, &mask)?
            } else {
                patches
            };
            p.reshape(&nn::max_last_axis(p, &patches).await?, &pooled)?
        }
        Op::AvgPool2d(pool) => {
            let window = pool_window(pool);
            let (g, pooled) = window.pool(&shape)?;
            let k = window.kernel.0 * window.kernel.1;
            let patches = nn::gather(p, x, &g, &[g.len() / k, k])?;
            let sums = nn::sum_axis(p, &patches, 1)?;
            let scales: Vec<P::Elem> = g
                .padding()
                .collect::<Vec<bool>>()
                .chunks(k)
                .map(|w| {
                    let inside = w.iter().filter(|pad| !**pad).count().max(1);
                    fx(1.0 / if pool.count_pad { k } else { inside } as f64, f)
                })
                .collect();
            let mean = p.truncate(&p.mul_public(&sums, &scales)?, f).await?;
            p.reshape(&mean, &pooled)?
        }
        Op::GlobalAvgPool => {
            let planes = p.reshape(x, &[n, shape[1], shape[2..].iter().product()])?;
            nn::mean_axis(p, &planes, 2).await?
        }
        Op::GlobalMaxPool => {
            let planes = p.reshape(x, &[n, shape[1], shape[2..].iter().product()])?;
            nn::max_last_axis(p, &planes).await?
        }
        Op::Flatten => x.clone(),
        Op::Pad { pads } => {
            let g = zero_pad(&shape, *pads);
            nn::gather(p, x, &g, &full)?
        }
        Op::Add => p.add(x, inputs[1])?,
        Op::Sub => p.sub(x, inputs[1])?,
        Op::Mul => p.mul_trunc(x, inputs[1], f).await?,
        Op::Concat => concat(p, inputs)?,
    };
    p.reshape(&y, &full)
}

fn s_len<P: Protocol>(p: &P, x: &P::Tensor) -> usize {
    p.shape(x).iter().product()
}

async fn relu<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    activations: Activations,
) -> Result<P::Tensor, MpcError> {
    match activations {
        Activations::Exact => nn::relu(p, x).await,
        Activations::Polynomial => nn::relu_poly(p, x).await,
    }
}

/// `min + relu(x - min) - relu(x - max)`: both ReLUs in one batched call.
async fn clip<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    min: f64,
    max: f64,
    activations: Activations,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let len = s_len(p, x);
    let flat = p.reshape(x, &[len])?;
    let low = p.add_public(&flat, &vec![fx(-min, f); len])?;
    let high = p.add_public(&flat, &vec![fx(-max, f); len])?;
    let both = relu(p, &p.concat(&[&low, &high])?, activations).await?;
    let parts = p.split(&both, &[&[len], &[len]])?;
    let y = p.add_public(&p.sub(&parts[0], &parts[1])?, &vec![fx(min, f); len])?;
    p.reshape(&y, p.shape(x))
}

/// `clip(alpha x + beta, 0, 1)`: a public slope (one truncation) and offset, then [`clip`].
async fn hard_sigmoid<P: Protocol>(
    p: &P,
    x: &P::Tensor,
    alpha: f64,
    beta: f64,
    activations: Activations,
) -> Result<P::Tensor, MpcError> {
    let f = p.frac_bits();
    let len = s_len(p, x);
    let line = p.truncate(&p.scale(x, fx(alpha, f)), f).await?;
    let line = p.add_public(&line, &vec![fx(beta, f); len])?;
    clip(p, &line, 0.0, 1.0, activations).await
}

/// Concatenation along the channel axis of `[n, c_i, rest...]` values.
fn concat<P: Protocol>(p: &P, inputs: &[&P::Tensor]) -> Result<P::Tensor, MpcError> {
    let n = p.shape(inputs[0])[0];
    let sizes: Vec<usize> = inputs.iter().map(|t| s_len(p, t) / n.max(1)).collect();
    let flats = inputs
        .iter()
        .map(|t| p.reshape(t, &[s_len(p, t)]))
        .collect::<Result<Vec<_>, _>>()?;
    let joined = p.concat(&flats.iter().collect::<Vec<_>>())?;
    // Input `j` starts at `starts[j]` in the joined vector; sample `b` of it at
    // `starts[j] + b * sizes[j]`.
    let mut starts = Vec::with_capacity(sizes.len());
    let mut at = 0;
    for s in &sizes {
        starts.push(at);
        at += s * n;
    }
    let per_sample: usize = sizes.iter().sum();
    let idx: Vec<usize> = (0..n)
        .flat_map(|b| {
            sizes
                .iter()
                .zip(&starts)
                .flat_map(move |(s, start)| (0..*s).map(move |i| start + b * s + i))
        })
        .collect();
    let g = Gather::positions(&idx);
    nn::gather(p, &joined, &g, &[n, per_sample])
}
