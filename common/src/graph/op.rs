//! The operators a [`super::Node`] applies, with their attributes (ONNX's, where ONNX has the
//! operator).

use serde::{Deserialize, Serialize};

/// A 2-D convolution's attributes (ONNX `Conv`): `pads` are `[top, left, bottom, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv {
    /// Output channels.
    pub channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Zero padding: top, left, bottom, right.
    pub pads: [usize; 4],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Groups: 1 for a full convolution, the input channels for a depthwise one.
    pub groups: usize,
}

/// A 2-D pooling window (ONNX `MaxPool`, `AveragePool`): `pads` as [`Conv`]'s. An average
/// counts the padding's zeros (ONNX's `count_include_pad = 1`) only if `count_pad` says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    #[serde(default)]
    pub pads: [usize; 4],
    /// An average pool counts padded positions.
    #[serde(default)]
    pub count_pad: bool,
}

impl Pool {
    /// A square window of side `kernel`, stride `stride`, no padding (the chain's pooling).
    pub fn square(kernel: usize, stride: usize) -> Pool {
        Pool {
            kernel: [kernel, kernel],
            stride: [stride, stride],
            pads: [0; 4],
            count_pad: false,
        }
    }
}

/// What a node computes. Shapes are per sample (no batch axis).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Fully connected: `[inputs] -> [units]`, weight `[inputs, units]` and bias.
    Dense {
        /// Output width.
        units: usize,
    },
    /// 2-D convolution over `[c, h, w]`, weight `[channels, c / groups, kh, kw]` and bias.
    Conv2d(Conv),
    /// Per-channel `scale * x + shift` over `[c, ...]` (a batch norm in inference, where no
    /// linear node precedes it to fold into).
    Affine,
    /// `max(0, x)`.
    Relu,
    /// `x` if positive, else `alpha x`.
    LeakyRelu {
        /// The slope below zero.
        alpha: f64,
    },
    /// `min(max(x, min), max)` (ReLU6 is `[0, 6]`).
    Clip {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, min(1, alpha x + beta))` (ONNX `HardSigmoid`; PyTorch's is `alpha = 1/6`,
    /// `beta = 1/2`).
    HardSigmoid {
        /// The slope.
        alpha: f64,
        /// The offset.
        beta: f64,
    },
    /// `x * max(0, min(1, x / 6 + 1/2))` (MobileNetV3's activation).
    HardSwish,
    /// 2-D max pooling.
    MaxPool2d(Pool),
    /// 2-D average pooling.
    AvgPool2d(Pool),
    /// The mean of each channel: `[c, h, w] -> [c]`.
    GlobalAvgPool,
    /// The maximum of each channel: `[c, h, w] -> [c]`.
    GlobalMaxPool,
    /// `[d0, d1, ...] -> [d0 * d1 * ...]`.
    Flatten,
    /// Zero padding of `[c, h, w]`: `[top, left, bottom, right]` (ONNX `Pad` in constant mode
    /// with value 0 on the spatial axes).
    Pad {
        /// Top, left, bottom, right.
        pads: [usize; 4],
    },
    /// Elementwise sum of two values of one shape (a residual connection).
    Add,
    /// Elementwise difference of two values of one shape.
    Sub,
    /// Elementwise product of two values of one shape (a gate).
    Mul,
    /// Concatenation along the channel axis (a sample's first).
    Concat,
}

impl Op {
    /// A short name (node names of a chain graph, errors).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Dense { .. } => "dense",
            Op::Conv2d(_) => "conv2d",
            Op::Affine => "affine",
            Op::Relu => "relu",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Clip { .. } => "clip",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::HardSigmoid { .. } => "hard_sigmoid",
            Op::HardSwish => "hard_swish",
            Op::MaxPool2d(_) => "max_pool2d",
            Op::AvgPool2d(_) => "avg_pool2d",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::GlobalMaxPool => "global_max_pool",
            Op::Flatten => "flatten",
            Op::Pad { .. } => "pad",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Concat => "concat",
        }
    }

    /// How many values it reads: two for `Add`, `Sub` and `Mul`, any number (at least one) for
    /// `Concat`, one otherwise (`None`: any).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Add | Op::Sub | Op::Mul => Some(2),
            Op::Concat => None,
            _ => Some(1),
        }
    }
}
