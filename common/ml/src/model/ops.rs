//! One graph node on burn tensors: the parameter-free operators, and the layers that hold
//! parameters applied to their input. Autodiff runs through every one (burn's own operators).

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{hard_sigmoid, hard_swish, leaky_relu, relu, sigmoid, tanh};
use burn::tensor::ops::PadMode;
use tessera_common::graph::Op;
use tessera_common::graph::op::Pool;

use super::activation::Activation;
use super::layer::Layer;

fn padding(pads: [usize; 4]) -> PaddingConfig2d {
    let [top, left, bottom, right] = pads;
    PaddingConfig2d::Explicit(top, left, bottom, right)
}

fn max_pool(pool: &Pool, x: Tensor<4>) -> Tensor<4> {
    MaxPool2dConfig::new(pool.kernel)
        .with_strides(pool.stride)
        .with_padding(padding(pool.pads))
        .init()
        .forward(x)
}

fn avg_pool(pool: &Pool, x: Tensor<4>) -> Tensor<4> {
    AvgPool2dConfig::new(pool.kernel)
        .with_strides(pool.stride)
        .with_padding(padding(pool.pads))
        .with_count_include_pad(pool.count_pad)
        .init()
        .forward(x)
}

/// Applies `op` to `inputs` (shape inference has checked their shapes and number); `layer` is
/// the node's parameters, if it has any.
pub(super) fn apply(op: &Op, layer: Option<&Layer>, inputs: Vec<Activation>) -> Activation {
    if let Op::Concat = op {
        return concat(inputs);
    }
    let mut inputs = inputs.into_iter();
    let x = inputs
        .next()
        .expect("shape inference checks the inputs' number");
    match (op, layer) {
        (Op::Dense { .. }, Some(Layer::Dense(l))) => Activation::Flat(l.forward(x.flat())),
        (Op::Conv2d(_), Some(Layer::Conv(c))) => Activation::Image(c.forward(x.image())),
        (Op::Affine, Some(Layer::Affine(a))) => a.forward(x),
        (Op::Relu, _) => x.map(relu, relu),
        (Op::LeakyRelu { alpha }, _) => x.map(|t| leaky_relu(t, *alpha), |t| leaky_relu(t, *alpha)),
        (Op::Clip { min, max }, _) => x.map(|t| t.clamp(*min, *max), |t| t.clamp(*min, *max)),
        (Op::Sigmoid, _) => x.map(sigmoid, sigmoid),
        (Op::Tanh, _) => x.map(tanh, tanh),
        (Op::HardSigmoid { alpha, beta }, _) => x.map(
            |t| hard_sigmoid(t, *alpha, *beta),
            |t| hard_sigmoid(t, *alpha, *beta),
        ),
        (Op::HardSwish, _) => x.map(hard_swish, hard_swish),
        (Op::MaxPool2d(pool), _) => Activation::Image(max_pool(pool, x.image())),
        (Op::AvgPool2d(pool), _) => Activation::Image(avg_pool(pool, x.image())),
        (Op::GlobalAvgPool, _) => {
            let t = x.image();
            let [n, c, h, w] = t.dims();
            Activation::Flat(t.reshape([n, c, h * w]).mean_dim(2).reshape([n, c]))
        }
        (Op::GlobalMaxPool, _) => {
            let t = x.image();
            let [n, c, h, w] = t.dims();
            Activation::Flat(t.reshape([n, c, h * w]).max_dim(2).reshape([n, c]))
        }
        (Op::Flatten, _) => Activation::Flat(x.flat()),
        (Op::Pad { pads }, _) => {
            let [top, left, bottom, right] = *pads;
            Activation::Image(
                x.image()
                    .pad([(top, bottom), (left, right)], PadMode::Constant(0.0)),
            )
        }
        (Op::Add, _) => binary(
            x,
            inputs.next().expect("two inputs"),
            |a, b| a + b,
            |a, b| a + b,
        ),
        (Op::Sub, _) => binary(
            x,
            inputs.next().expect("two inputs"),
            |a, b| a - b,
            |a, b| a - b,
        ),
        (Op::Mul, _) => binary(
            x,
            inputs.next().expect("two inputs"),
            |a, b| a * b,
            |a, b| a * b,
        ),
        (Op::Concat, _) => unreachable!("concatenated above"),
        (Op::Dense { .. } | Op::Conv2d(_) | Op::Affine, _) => {
            unreachable!("every parametric node has its layer")
        }
    }
}

/// An elementwise function of two values of one shape.
fn binary(
    a: Activation,
    b: Activation,
    f2: impl FnOnce(Tensor<2>, Tensor<2>) -> Tensor<2>,
    f4: impl FnOnce(Tensor<4>, Tensor<4>) -> Tensor<4>,
) -> Activation {
    match (a, b) {
        (Activation::Flat(a), Activation::Flat(b)) => Activation::Flat(f2(a, b)),
        (Activation::Image(a), Activation::Image(b)) => Activation::Image(f4(a, b)),
        _ => unreachable!("shape inference combines equal shapes"),
    }
}

/// Concatenation along the channel axis.
fn concat(inputs: Vec<Activation>) -> Activation {
    if matches!(inputs[0], Activation::Flat(_)) {
        Activation::Flat(Tensor::cat(
            inputs.into_iter().map(Activation::flat).collect(),
            1,
        ))
    } else {
        Activation::Image(Tensor::cat(
            inputs.into_iter().map(Activation::image).collect(),
            1,
        ))
    }
}
