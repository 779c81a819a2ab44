//! Graph models exported from PyTorch (`examples/models/onnx/make-graph-fixtures.py`: a
//! ResNet-8, a two-block DenseNet, a MobileNetV2 block, a model of the remaining operators and
//! one of MobileNetV3's)
//! import as graphs, give onnxruntime's outputs in the clear, and keep the plaintext's argmax
//! under ABY3 and SecureNN, their logits within the fixed-point error.

use tessera_common::dataset::{Dataset, Split};
use tessera_common::graph::Op;
use tessera_ml::logits;
use tessera_mpc::model::{Activations, SecureModel};

use super::onnx::{argmax, fixture, gives_onnxruntimes_outputs, reference};
use crate::{Aby3M, Make, SecureNnM, dec, enc, prog, run};

const MODELS: [&str; 5] = [
    "resnet8",
    "densenet2",
    "mobilenetv2-block",
    "ops-graph",
    "mobilenetv3-ops",
];

/// Tolerance: both sides compute in f32 over at most a few thousand terms per output of
/// magnitude below 10 (activations after batch norm), so reordered sums differ by a few units of
/// 2^-24 times those magnitudes, 1e-5 at most; folding batch norms rounds each weight once more
/// (relative 6e-8). 1e-4 leaves a factor 10.
#[test]
fn pytorch_graph_exports_give_onnxruntimes_outputs() {
    for name in MODELS {
        let r = reference(name);
        assert!(r.model.spec.is_graph(), "{name}");
        assert_eq!(
            Ok(r.model.weights.len()),
            r.model.spec.num_params(),
            "{name}"
        );
        gives_onnxruntimes_outputs(name, &r);
    }
    // What the graphs hold: residual additions, concatenations, depthwise convolutions, batch
    // norms as affine nodes where they read a concatenation.
    let ops = |name: &str| -> Vec<Op> {
        let graph = reference(name).model.spec.graph().unwrap();
        graph.nodes.iter().map(|n| n.op).collect()
    };
    assert_eq!(
        ops("resnet8")
            .iter()
            .filter(|o| matches!(o, Op::Add))
            .count(),
        3
    );
    assert!(!ops("resnet8").iter().any(|o| matches!(o, Op::Affine)));
    assert_eq!(
        ops("densenet2")
            .iter()
            .filter(|o| matches!(o, Op::Concat))
            .count(),
        4
    );
    assert_eq!(
        ops("densenet2")
            .iter()
            .filter(|o| matches!(o, Op::Affine))
            .count(),
        6
    );
    assert!(
        ops("mobilenetv2-block")
            .iter()
            .any(|o| matches!(o, Op::Conv2d(c) if c.groups == 64))
    );
    assert!(
        ops("ops-graph")
            .iter()
            .any(|o| matches!(o, Op::Conv2d(c) if c.dilation == [2, 2] && c.groups == 2))
    );
}

/// Inputs per model under MPC.
const BATCH: usize = 100;
/// Test digits looked at to find them.
const LOOKED_AT: usize = 130;
/// The bound on every secure logit's distance to burn's (see [`keeps_argmax`]).
const BOUND: f64 = 0.02;

/// The first `BATCH` test digits whose two largest plaintext logits are more than `2 * BOUND`
/// apart (an argmax the fixed-point error cannot flip), among the first `LOOKED_AT`.
fn inputs(name: &str) -> (Vec<f32>, Vec<f64>) {
    let model = reference(name).model;
    let test = Dataset::bundled_mnist(Split::Test);
    let width = test.sample_len();
    let all = &test.features[..LOOKED_AT * width];
    let plain = logits(&model.spec, &model.weights, all, LOOKED_AT).unwrap();
    let (mut x, mut kept) = (Vec::new(), Vec::new());
    for (s, row) in plain.chunks(10).enumerate() {
        let mut top: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
        top.sort_by(|a, b| b.total_cmp(a));
        if top[0] - top[1] > 2.0 * BOUND && kept.len() < BATCH * 10 {
            x.extend_from_slice(&all[s * width..(s + 1) * width]);
            kept.extend(row.iter().map(|v| f64::from(*v)));
        }
    }
    assert_eq!(kept.len(), BATCH * 10, "{name}: too many near ties");
    (x, kept)
}

/// The chosen inputs under protocol `P`: the secure logits and burn's.
fn secure_and_plain<P: Make>(name: &'static str) -> (Vec<f64>, Vec<f64>) {
    let model = reference(name).model;
    let (inputs, plain) = inputs(name);
    let width = inputs.len() / BATCH;
    let params: Vec<f64> = model.weights.iter().map(|v| f64::from(*v)).collect();
    let x: Vec<f64> = inputs.iter().map(|v| f64::from(*v)).collect();
    let got = dec(&run::<P>(
        vec![enc(&params, &[params.len()]), enc(&x, &[BATCH, width])],
        prog!(P, |p, v| {
            let spec = tessera_common::onnx::import(&fixture(&format!("{name}.onnx")))
                .expect("imports")
                .spec;
            let model = SecureModel::new(&spec)?;
            let params = model.split_params(&*p, &v[0])?;
            model.forward(&*p, &params, &v[1], Activations::Exact).await
        }),
    ));
    (got, plain)
}

/// Bound [`BOUND`] on every logit: each truncation and each rounding of an input or weight to
/// 16 fractional bits errs by at most 2^-16, and what follows amplifies it by its gain; the
/// largest gains here are the DenseNet's affine nodes (its batch norms read concatenations,
/// so they cannot fold, and multiply by `gamma / sqrt(var + eps)`, up to about 10 after its
/// training), and the MobileNet block's depthwise convolutions (3x3 kernels folded with their batch
/// norms' scales) come next: their logits err by up to 0.009 (both protocols) where the
/// ResNet's and the operator model's (every batch norm folded into a full convolution) err by
/// 7e-4. 0.02 is twice the worst seen. On the chosen inputs the two largest
/// plaintext logits are more than `2 * BOUND` apart, so the argmax must be the plaintext's.
fn keeps_argmax<P: Make>() {
    for name in MODELS {
        let (got, plain) = secure_and_plain::<P>(name);
        for (s, (g, w)) in got.chunks(10).zip(plain.chunks(10)).enumerate() {
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (a - b).abs() <= BOUND,
                    "{} {name}: sample {s} logit {j}: {a} vs {b}",
                    P::NAME
                );
            }
            assert_eq!(argmax(g), argmax(w), "{} {name}: sample {s}", P::NAME);
        }
    }
}

#[test]
fn graph_models_keep_their_argmax_under_aby3() {
    keeps_argmax::<Aby3M>();
}

#[test]
fn graph_models_keep_their_argmax_under_securenn() {
    keeps_argmax::<SecureNnM>();
}
