//! Static shape inference of one node: the per-sample shape an operator makes of its inputs'
//! ([`output_shape`]), and its parameters' shapes in their canonical order ([`param_shapes`]).
//! [`super::ModelGraph::resolve`] walks the graph with them.

use super::error::GraphProblem;
use super::op::{Conv, Op, Pool};

/// The shapes of `op`'s parameters given its (first) input's shape, in the canonical order.
pub fn param_shapes(op: &Op, input: &[usize]) -> Vec<Vec<usize>> {
    match *op {
        Op::Dense { units } => vec![vec![input.iter().product(), units], vec![units]],
        Op::Conv2d(c) => {
            let in_channels = input.first().copied().unwrap_or(0);
            vec![
                vec![
                    c.channels,
                    in_channels / c.groups.max(1),
                    c.kernel[0],
                    c.kernel[1],
                ],
                vec![c.channels],
            ]
        }
        Op::Affine => {
            let channels = input.first().copied().unwrap_or(0);
            vec![vec![channels], vec![channels]]
        }
        _ => Vec::new(),
    }
}

/// The largest size, stride, padding, dilation or group count an operator may have: the
/// shape arithmetic on values of at most [`super::MAX_ELEMENTS`] elements stays far from
/// overflowing.
pub const MAX_ATTRIBUTE: usize = 1 << 24;

/// Every size-like attribute of `op`.
fn sizes(op: &Op) -> Vec<usize> {
    match *op {
        Op::Dense { units } => vec![units],
        Op::Conv2d(c) => [c.channels, c.groups]
            .into_iter()
            .chain(c.kernel)
            .chain(c.stride)
            .chain(c.pads)
            .chain(c.dilation)
            .collect(),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => {
            p.kernel.into_iter().chain(p.stride).chain(p.pads).collect()
        }
        Op::Pad { pads } => pads.to_vec(),
        _ => Vec::new(),
    }
}

/// The shape `op` produces from `inputs` (each per sample).
pub fn output_shape(op: &Op, inputs: &[&[usize]]) -> Result<Vec<usize>, GraphProblem> {
    if sizes(op).into_iter().any(|s| s > MAX_ATTRIBUTE) {
        return Err(GraphProblem::TooLarge {
            what: "an attribute",
        });
    }
    let name = op.name();
    let first = inputs[0];
    let bad_input = || GraphProblem::Shape {
        op: name,
        input: first.to_vec(),
    };
    let attribute = |attribute| GraphProblem::Attribute {
        op: name,
        attribute,
    };
    match *op {
        Op::Dense { units } => match first {
            [n] if *n > 0 && units > 0 => Ok(vec![units]),
            [_] => Err(attribute("units")),
            _ => Err(bad_input()),
        },
        Op::Conv2d(c) => conv(&c, first).ok_or_else(bad_input)?,
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => pool(&p, first).ok_or_else(bad_input)?,
        Op::Affine => match first {
            [c, ..] if *c > 0 => Ok(first.to_vec()),
            _ => Err(bad_input()),
        },
        Op::LeakyRelu { alpha } if !alpha.is_finite() => Err(attribute("alpha")),
        // Reversed, or not numbers.
        Op::Clip { min, max } if min.partial_cmp(&max).is_none_or(|o| o.is_gt()) => {
            Err(attribute("bounds"))
        }
        Op::HardSigmoid { alpha, beta } if !(alpha.is_finite() && beta.is_finite()) => {
            Err(attribute("alpha or beta"))
        }
        Op::Relu
        | Op::LeakyRelu { .. }
        | Op::Clip { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSigmoid { .. }
        | Op::HardSwish => Ok(first.to_vec()),
        Op::GlobalAvgPool | Op::GlobalMaxPool => match first {
            [c, h, w] if *h > 0 && *w > 0 => Ok(vec![*c]),
            _ => Err(bad_input()),
        },
        Op::Flatten => Ok(vec![first.iter().product()]),
        Op::Pad { pads } => match first {
            [c, h, w] => Ok(vec![*c, h + pads[0] + pads[2], w + pads[1] + pads[3]]),
            _ => Err(bad_input()),
        },
        Op::Add | Op::Sub | Op::Mul => {
            let second = inputs[1];
            if first == second {
                Ok(first.to_vec())
            } else {
                Err(GraphProblem::Mismatch {
                    op: name,
                    left: first.to_vec(),
                    right: second.to_vec(),
                })
            }
        }
        Op::Concat => {
            let mut out = first.to_vec();
            if out.is_empty() {
                return Err(bad_input());
            }
            for other in &inputs[1..] {
                if other.len() != first.len() || other[1..] != first[1..] {
                    return Err(GraphProblem::Mismatch {
                        op: name,
                        left: first.to_vec(),
                        right: other.to_vec(),
                    });
                }
                out[0] += other[0];
            }
            Ok(out)
        }
    }
}

/// One spatial side after a window: `None` if the window does not fit.
fn side(len: usize, pad: usize, window: usize, stride: usize) -> Option<usize> {
    let padded = len + pad;
    (window > 0 && stride > 0 && padded >= window).then(|| (padded - window) / stride + 1)
}

/// A convolution's output shape; `Some(Err)` for attributes out of range.
fn conv(c: &Conv, input: &[usize]) -> Option<Result<Vec<usize>, GraphProblem>> {
    let &[channels, h, w] = input else {
        return None;
    };
    let attribute = |attribute| {
        Some(Err(GraphProblem::Attribute {
            op: "conv2d",
            attribute,
        }))
    };
    if c.channels == 0 {
        return attribute("channels");
    }
    if c.groups == 0 || !channels.is_multiple_of(c.groups) || !c.channels.is_multiple_of(c.groups) {
        return attribute("groups");
    }
    if c.dilation.contains(&0) || c.kernel.contains(&0) || c.stride.contains(&0) {
        return attribute("kernel, stride or dilation");
    }
    // A dilated kernel spans `d (k - 1) + 1` positions.
    let span = |i: usize| c.dilation[i] * (c.kernel[i] - 1) + 1;
    let oh = side(h, c.pads[0] + c.pads[2], span(0), c.stride[0])?;
    let ow = side(w, c.pads[1] + c.pads[3], span(1), c.stride[1])?;
    Some(Ok(vec![c.channels, oh, ow]))
}

/// A pooling's output shape; `Some(Err)` for attributes out of range.
fn pool(p: &Pool, input: &[usize]) -> Option<Result<Vec<usize>, GraphProblem>> {
    let &[channels, h, w] = input else {
        return None;
    };
    // ONNX: a pad is less than the window along its axis (a window wholly of padding is none).
    if p.pads[0].max(p.pads[2]) >= p.kernel[0].max(1)
        || p.pads[1].max(p.pads[3]) >= p.kernel[1].max(1)
    {
        return Some(Err(GraphProblem::Attribute {
            op: "pool2d",
            attribute: "pads",
        }));
    }
    let oh = side(h, p.pads[0] + p.pads[2], p.kernel[0], p.stride[0])?;
    let ow = side(w, p.pads[1] + p.pads[3], p.kernel[1], p.stride[1])?;
    Some(Ok(vec![channels, oh, ow]))
}
