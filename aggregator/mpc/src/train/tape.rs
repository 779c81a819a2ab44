//! The forward pass that keeps what backpropagation needs, and the backward pass, for every
//! [`ResolvedLayer`] of a [`SecureModel`], written once over [`Protocol`].
//!
//! What each layer keeps (all of it shared; nothing is opened):
//!
//! | layer     | kept                                   | backward                                  |
//! |-----------|----------------------------------------|-------------------------------------------|
//! | Dense     | its input `x`                          | `dW = x^T dy`, `db = sum dy`, `dx = dy W^T` |
//! | Conv2d    | the im2col patches and their gather    | the same on the patches; `dx` by col2im (the gather's adjoint) |
//! | ReLU      | the comparison bit `d = [x >= 0]`      | `dx = d * dy` (no second comparison)      |
//! | MaxPool2d | the one-hot selection of each window   | `dx` = selection * `dy`, scattered back   |
//! | AvgPool2d | nothing (the window geometry)          | `dy / k^2` scattered back                 |
//! | Sigmoid   | its output `s`                         | `dx = dy * s (1 - s)`                     |
//! | Flatten   | the input shape                        | a reshape                                 |
//!
//! Products of two fixed-point values are truncated once; products with the 0/1 bits (ReLU,
//! max-pooling's selection) are exact and not truncated. Gradients are sums over the batch
//! (the loss's gradient is not divided by the batch size): the division happens once, in the
//! optimizer's step (TF Encrypted's "lazy normalisation"), where it costs no precision.
//! The first parametric layer does not compute the gradient of its input (nothing needs it).

use crate::error::Invalid;
use tessera_common::model_spec::{ResolvedLayer, StatelessLayer};
use tessera_common::ring::Ring;

use crate::MpcError;
use crate::layout::{Gather, Window, nchw_to_rows, repeat_each};
use crate::model::{Activations, SecureModel};
use crate::nn::{self, Im2col, gather};
use crate::protocol::Protocol;
use tessera_common::fixed::fx;

/// What one layer's forward pass kept.
#[derive(Debug, Clone)]
enum Saved<T> {
    Dense {
        x: T,
    },
    Conv {
        im2col: Im2col<T>,
        in_shape: Vec<usize>,
    },
    Relu {
        d: T,
    },
    Sigmoid {
        s: T,
    },
    MaxPool {
        selection: T,
        gather: Gather,
        in_shape: Vec<usize>,
    },
    AvgPool {
        gather: Gather,
        in_shape: Vec<usize>,
        area: usize,
    },
    Reshape {
        in_shape: Vec<usize>,
    },
}

/// The forward pass's record for [`backward`].
#[derive(Debug, Clone)]
pub struct Tape<T> {
    saved: Vec<Saved<T>>,
    batch: usize,
}

impl<T> Tape<T> {
    /// The batch size of the pass.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

fn window(k: usize, stride: usize) -> Window {
    Window::square((k, k), stride, 0)
}

/// Logits `[batch, outputs]` for `x` (`[batch, features...]`) and the [`Tape`] of the pass.
pub async fn forward<P: Protocol>(
    p: &P,
    model: &SecureModel,
    params: &[P::Tensor],
    x: &P::Tensor,
    activations: Activations,
) -> Result<(P::Tensor, Tape<P::Tensor>), MpcError> {
    let batch = *p.shape(x).first().unwrap_or(&0);
    let mut shape = vec![batch];
    shape.extend_from_slice(model.input_shape());
    let mut h = p.reshape(x, &shape)?;
    let mut next = params.iter();
    let mut param = || next.next().ok_or(MpcError::Invalid(Invalid::FewerParams));
    let layers = model.layers()?;
    let mut saved = Vec::with_capacity(layers.len());
    for layer in layers {
        let in_shape = p.shape(&h).to_vec();
        let (y, keep) = match *layer {
            ResolvedLayer::Dense { inputs, .. } => {
                let flat = p.reshape(&h, &[batch, inputs])?;
                let (w, b) = (param()?, param()?);
                let y = nn::dense(p, &flat, w, b).await?;
                (y, Saved::Dense { x: flat })
            }
            ResolvedLayer::Conv2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                let (w, b) = (param()?, param()?);
                let window = Window::square((kernel, kernel), stride, padding);
                let (y, im2col) = nn::conv2d_im2col(p, &h, w, window).await?;
                let y = nn::add_channel_bias(p, &y, b)?;
                (y, Saved::Conv { im2col, in_shape })
            }
            ResolvedLayer::Stateless(StatelessLayer::Relu) => {
                if activations == Activations::Polynomial {
                    return Err(crate::protocol::unsupported(
                        P::NAME,
                        "training through a polynomial ReLU",
                    ));
                }
                let d = p.drelu(&h).await?;
                let y = p.mul(&d, &h).await?;
                (y, Saved::Relu { d })
            }
            ResolvedLayer::Stateless(StatelessLayer::Sigmoid) => {
                let s = activations.sigmoid(p, &h).await?;
                (s.clone(), Saved::Sigmoid { s })
            }
            ResolvedLayer::Stateless(StatelessLayer::MaxPool2d(k, stride)) => {
                let (g, out_shape) = window(k, stride).pool(&in_shape)?;
                let patches = gather(p, &h, &g, &[g.len() / (k * k), k * k])?;
                let (m, selection) = nn::max_with_selection(p, &patches).await?;
                let y = p.reshape(&m, &out_shape)?;
                (
                    y,
                    Saved::MaxPool {
                        selection,
                        gather: g,
                        in_shape,
                    },
                )
            }
            ResolvedLayer::Stateless(StatelessLayer::AvgPool2d(k, stride)) => {
                let (g, _) = window(k, stride).pool(&in_shape)?;
                let y = nn::avgpool2d(p, &h, window(k, stride)).await?;
                (
                    y,
                    Saved::AvgPool {
                        gather: g,
                        in_shape,
                        area: k * k,
                    },
                )
            }
            ResolvedLayer::Stateless(StatelessLayer::Flatten) => {
                let n: usize = in_shape.iter().product();
                let y = p.reshape(&h, &[batch, n / batch.max(1)])?;
                (y, Saved::Reshape { in_shape })
            }
        };
        saved.push(keep);
        h = y;
    }
    let outputs: usize = model.output_shape().iter().product();
    Ok((p.reshape(&h, &[batch, outputs])?, Tape { saved, batch }))
}

/// The gradients of the parameters (canonical order, each summed over the batch) given the
/// gradient `dlogits` (`[batch, outputs]`) of the loss with respect to the logits.
pub async fn backward<P: Protocol>(
    p: &P,
    model: &SecureModel,
    params: &[P::Tensor],
    tape: &Tape<P::Tensor>,
    dlogits: &P::Tensor,
) -> Result<Vec<P::Tensor>, MpcError> {
    backward_with(p, model, params, tape, dlogits, None).await
}

/// [`backward`] with each example's gradient clipped to L2 norm `clip` before the sum (DP-SGD;
/// see [`super::dp`]): `sum_i min(1, clip / |g_i|) g_i`. Dense layers only: their per-example
/// norms come from the layer's input and output gradient without forming `g_i`
/// ([`super::dp::clipped_dense`]); a convolution is [`MpcError::Unsupported`].
pub async fn backward_clipped<P: Protocol>(
    p: &P,
    model: &SecureModel,
    params: &[P::Tensor],
    tape: &Tape<P::Tensor>,
    dlogits: &P::Tensor,
    clip: f64,
) -> Result<Vec<P::Tensor>, MpcError> {
    backward_with(p, model, params, tape, dlogits, Some(clip)).await
}

async fn backward_with<P: Protocol>(
    p: &P,
    model: &SecureModel,
    params: &[P::Tensor],
    tape: &Tape<P::Tensor>,
    dlogits: &P::Tensor,
    clip: Option<f64>,
) -> Result<Vec<P::Tensor>, MpcError> {
    let f = p.frac_bits();
    // Under clipping, each dense layer's (parameter index, input, output gradient), for the
    // per-example norms once every layer's output gradient is known.
    let mut dense = Vec::new();
    let layers = model.layers()?;
    if tape.saved.len() != layers.len() || params.len() != model.param_shapes().len() {
        return Err(Invalid::TapeModel.into());
    }
    let first_param = layers
        .iter()
        .position(|l| !matches!(l, ResolvedLayer::Stateless(_)))
        .unwrap_or(layers.len());
    let mut grads: Vec<Option<P::Tensor>> = vec![None; params.len()];
    let mut param_at = params.len();
    let mut dy = dlogits.clone();
    for (i, (layer, saved)) in layers.iter().zip(&tape.saved).enumerate().rev() {
        let needs_dx = i > first_param;
        dy = match (layer, saved) {
            (ResolvedLayer::Dense { inputs, units }, Saved::Dense { x }) => {
                param_at -= 2;
                let w = &params[param_at];
                let batch = tape.batch;
                let dy2 = p.reshape(&dy, &[batch, *units])?;
                if clip.is_some() {
                    dense.push((param_at, p.reshape(x, &[batch, *inputs])?, dy2.clone()));
                } else {
                    let xt = gather(p, x, &Gather::transpose(batch, *inputs), &[*inputs, batch])?;
                    grads[param_at] = Some(p.matmul_trunc(&xt, &dy2, f).await?);
                    grads[param_at + 1] = Some(nn::sum_axis(p, &dy2, 0)?);
                }
                if !needs_dx {
                    break;
                }
                let wt = gather(
                    p,
                    w,
                    &Gather::transpose(*inputs, *units),
                    &[*units, *inputs],
                )?;
                p.matmul_trunc(&dy2, &wt, f).await?
            }
            (
                ResolvedLayer::Conv2d {
                    in_channels,
                    channels,
                    kernel,
                    ..
                },
                Saved::Conv { im2col, in_shape },
            ) => {
                if clip.is_some() {
                    return Err(MpcError::Unsupported {
                        protocol: P::NAME,
                        op: "per-example clipping of a convolution (DP-SGD takes dense layers)",
                    });
                }
                param_at -= 2;
                let w = &params[param_at];
                let (n, oh, ow) = im2col.out;
                let (o, ckk) = (*channels, in_channels * kernel * kernel);
                let rows = n * oh * ow;
                let dy_rows = gather(p, &dy, &nchw_to_rows(n, oh, ow, o), &[rows, o])?;
                let cols_t = gather(p, &im2col.cols, &Gather::transpose(rows, ckk), &[ckk, rows])?;
                let dk = p.matmul_trunc(&cols_t, &dy_rows, f).await?;
                let kernel_shape = p.shape(w).to_vec();
                grads[param_at] = Some(gather(p, &dk, &Gather::transpose(ckk, o), &kernel_shape)?);
                grads[param_at + 1] = Some(nn::sum_axis(p, &dy_rows, 0)?);
                if !needs_dx {
                    break;
                }
                // dcols = dy_rows · kmat^T where kmat = w as [ckk, o]: kmat^T is w as [o, ckk].
                let wm = p.reshape(w, &[o, ckk])?;
                let dcols = p.matmul_trunc(&dy_rows, &wm, f).await?;
                let len: usize = in_shape.iter().product();
                let g = im2col.gather.clone();
                p.map_local(&dcols, in_shape, &move |s| g.scatter_add(s, len))?
            }
            (ResolvedLayer::Stateless(_), Saved::Relu { d }) => p.mul(d, &dy).await?,
            (ResolvedLayer::Stateless(_), Saved::Sigmoid { s }) => {
                let n = p.shape(s).iter().product::<usize>();
                let one_minus = p.add_public(&p.neg(s), &vec![fx::<P::Elem>(1.0, f); n])?;
                let ds = p.mul_trunc(s, &one_minus, f).await?;
                let dy = p.reshape(&dy, p.shape(s))?;
                p.mul_trunc(&dy, &ds, f).await?
            }
            (
                ResolvedLayer::Stateless(_),
                Saved::MaxPool {
                    selection,
                    gather: g,
                    in_shape,
                },
            ) => {
                let sel_shape = p.shape(selection).to_vec();
                let (windows, area) = (sel_shape[0], sel_shape[1]);
                let dyb = gather(p, &dy, &repeat_each(windows, area), &sel_shape)?;
                let routed = p.mul(selection, &dyb).await?;
                let len: usize = in_shape.iter().product();
                let g = g.clone();
                p.map_local(&routed, in_shape, &move |s| g.scatter_add(s, len))?
            }
            (
                ResolvedLayer::Stateless(_),
                Saved::AvgPool {
                    gather: g,
                    in_shape,
                    area,
                },
            ) => {
                let windows = p.shape(&dy).iter().product::<usize>();
                let dyb = gather(p, &dy, &repeat_each(windows, *area), &[windows * area])?;
                let len: usize = in_shape.iter().product();
                let g = g.clone();
                let summed = p.map_local(&dyb, in_shape, &move |s| g.scatter_add(s, len))?;
                let scaled = p.scale(&summed, fx::<P::Elem>(1.0 / *area as f64, f));
                p.truncate(&scaled, f).await?
            }
            (ResolvedLayer::Stateless(_), Saved::Reshape { in_shape }) => {
                p.reshape(&dy, in_shape)?
            }
            _ => {
                return Err(Invalid::TapeLayer(i).into());
            }
        };
    }
    if let Some(clip) = clip {
        for (at, (w, b)) in super::dp::clipped_dense(p, &dense, clip).await? {
            grads[at] = Some(w);
            grads[at + 1] = Some(b);
        }
    }
    grads
        .into_iter()
        .enumerate()
        .map(|(i, g)| g.ok_or(MpcError::Invalid(Invalid::NoGradient(i))))
        .collect()
}

/// Whether the ring of `P` is wide enough for training (see [`super::precision`]).
pub(crate) fn check_ring<P: Protocol>() -> Result<(), MpcError> {
    if P::Elem::BITS < 128 {
        return Err(MpcError::RingTooNarrow {
            bits: P::Elem::BITS,
            needed: 128,
        });
    }
    Ok(())
}
