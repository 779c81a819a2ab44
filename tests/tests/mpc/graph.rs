//! Graph models under MPC and in burn: a graph using every operator the model graph has (an
//! asymmetrically padded, a depthwise and a dilated grouped convolution, an affine node,
//! LeakyReLU, ReLU6, tanh, sigmoid, hard sigmoid and hard swish, zero padding, padded max and
//! average pooling, global average and max pooling, a residual addition, a difference, a
//! product and a concatenation) gives the same logits on shares under ABY3 and SecureNN as
//! burn's interpreter gives in the clear; Pond refuses its exact comparisons; the executor's
//! schedule frees each activation after its last reader.

use tessera_common::graph::op::{Conv, Pool};
use tessera_common::graph::{INPUT, ModelGraph, Node, Op};
use tessera_common::model_spec::ModelSpec;
use tessera_ml::initial_params;
use tessera_mpc::MpcError;
use tessera_mpc::model::SecureModel;

use super::model::secure_and_burn;
use crate::{Aby3M, Make, PondM, SecureNnM};

fn conv(channels: usize, pads: [usize; 4], dilation: usize, groups: usize) -> Op {
    Op::Conv2d(Conv {
        channels,
        kernel: [3, 3],
        stride: [1, 1],
        pads,
        dilation: [dilation, dilation],
        groups,
    })
}

fn pool(count_pad: bool) -> Pool {
    Pool {
        kernel: [3, 3],
        stride: [2, 2],
        pads: [1; 4],
        count_pad,
    }
}

/// Every operator once, on `[4, 6, 6]` samples.
fn spec() -> ModelSpec {
    ModelSpec::from_graph(ModelGraph {
        input_shape: vec![4, 6, 6],
        nodes: vec![
            Node::new("c1", conv(4, [1, 0, 1, 2], 1, 1), &[INPUT]),
            Node::new("bn", Op::Affine, &["c1"]),
            Node::new("leaky", Op::LeakyRelu { alpha: 0.1 }, &["bn"]),
            Node::new("dw", conv(4, [1; 4], 1, 4), &["leaky"]),
            Node::new("relu6", Op::Clip { min: 0.0, max: 6.0 }, &["dw"]),
            Node::new("res", Op::Add, &[INPUT, "relu6"]),
            Node::new("padded", Op::Pad { pads: [0, 1, 2, 0] }, &["res"]),
            Node::new("unpad", conv(4, [0, 0, 0, 1], 1, 4), &["padded"]),
            Node::new("t", Op::Tanh, &["res"]),
            Node::new("mp", Op::MaxPool2d(pool(false)), &["t"]),
            Node::new("ap", Op::AvgPool2d(pool(false)), &["unpad"]),
            Node::new("apc", Op::AvgPool2d(pool(true)), &["res"]),
            Node::new("cat", Op::Concat, &["mp", "ap", "apc"]),
            Node::new("dil", conv(4, [2; 4], 2, 2), &["cat"]),
            Node::new("r", Op::Relu, &["dil"]),
            Node::new("gap", Op::GlobalAvgPool, &["r"]),
            Node::new("sg", Op::Sigmoid, &["gap"]),
            Node::new("flat", Op::Flatten, &["cat"]),
            Node::new("fc1", Op::Dense { units: 4 }, &["flat"]),
            Node::new("sum", Op::Add, &["fc1", "sg"]),
            Node::new("gmp", Op::GlobalMaxPool, &["r"]),
            Node::new("hswish", Op::HardSwish, &["gmp"]),
            Node::new(
                "hsig",
                Op::HardSigmoid {
                    alpha: 0.2,
                    beta: 0.5,
                },
                &["fc1"],
            ),
            Node::new("gate", Op::Mul, &["hswish", "hsig"]),
            Node::new("diff", Op::Sub, &["sum", "gate"]),
            Node::new("fc2", Op::Dense { units: 3 }, &["diff"]),
        ],
        output: "fc2".into(),
    })
}

/// burn's initial parameters, with the affine node's scale and shift moved off 1 and 0 (they
/// follow the first convolution's 4 * 4 * 9 weights and 4 biases).
fn params(spec: &ModelSpec) -> Vec<f32> {
    let mut params = initial_params(spec).expect("initial parameters");
    let at = 4 * 4 * 9 + 4;
    params[at..at + 4].copy_from_slice(&[1.5, 0.5, -1.0, 2.0]);
    params[at + 4..at + 8].copy_from_slice(&[0.25, -0.5, 0.0, 1.0]);
    params
}

fn secure_logits<P: Make>(batch: usize) -> Result<(Vec<f64>, Vec<f32>), MpcError> {
    secure_and_burn::<P>(spec, &params(&spec()), batch, (82, 2.0))
}

/// Bound: the fixed-point steps add a few units of 2^-16 each; the sigmoid approximation
/// (behind tanh and the sigmoid) is within 0.003 of the function (its own test's bound), twice
/// that for tanh (`2 sigmoid(2x) - 1`), and what follows them is a few linear layers of
/// burn's initial weights (below 0.5 in size) that sum 72 and 4 terms: a tanh error of 0.006
/// through max pooling, the concatenation and `fc1` (72 inputs, weights below 1/sqrt(72) = 0.12
/// in size) moves a logit by at most 72 * 0.12 * 0.006 = 0.05, and the observed error is far
/// below it. 0.05 is asserted.
fn matches_burn<P: Make>() {
    let batch = 2;
    let (got, plain) = secure_logits::<P>(batch).expect("secure forward");
    assert_eq!(got.len(), plain.len());
    for (i, (g, want)) in got.iter().zip(&plain).enumerate() {
        assert!(
            (g - f64::from(*want)).abs() <= 0.05,
            "{}: logit {i}: {g} vs {want}",
            P::NAME
        );
    }
}

#[test]
fn a_graph_of_every_operator_runs_the_same_under_aby3_securenn_and_burn() {
    matches_burn::<Aby3M>();
    matches_burn::<SecureNnM>();
}

#[test]
fn pond_refuses_a_graphs_exact_comparisons() {
    let err = secure_logits::<PondM>(1).unwrap_err();
    assert!(matches!(err, MpcError::Unsupported { .. }), "{err:?}");
}

/// A residual block on `[1, 4, 4]` (16 values a sample): the input stays alive until the
/// addition reads it, every other value goes after its one reader. Alive after each node:
/// conv 32 (at most 32), relu 48 then 32 (the conv's output freed), add 48 then 16 (the input
/// and the ReLU's freed), flatten 32 then 16, dense 18 then 2. The peak is 48 a sample, where
/// keeping every value would hold 16 * 5 + 2 = 82.
#[test]
fn the_executor_frees_each_activation_after_its_last_reader() {
    let spec = ModelSpec::from_graph(ModelGraph {
        input_shape: vec![1, 4, 4],
        nodes: vec![
            Node::new("c", conv(1, [1; 4], 1, 1), &[INPUT]),
            Node::new("r", Op::Relu, &["c"]),
            Node::new("s", Op::Add, &[INPUT, "r"]),
            Node::new("f", Op::Flatten, &["s"]),
            Node::new("fc", Op::Dense { units: 2 }, &["f"]),
        ],
        output: "fc".into(),
    });
    let model = SecureModel::new(&spec).unwrap();
    assert_eq!(model.graph().peak_elements(1), 48);
    assert_eq!(model.graph().peak_elements(128), 48 * 128);
}
