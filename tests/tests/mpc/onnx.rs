//! ONNX import against onnxruntime, in the clear and under ABY3: the models of
//! `examples/models/onnx` (written by its `make-fixtures.py`) import to the layers their graphs
//! describe, give the outputs onnxruntime gave for the same MNIST test digits (batch
//! normalisation folded, `Gemm` weights transposed, `alpha`/`beta` applied, the dropped softmax
//! applied again), and keep their argmax when run on secret shares under ABY3 (encrypted
//! prediction of an imported model).

use std::path::PathBuf;

use serde_json::Value;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::model_spec::LayerSpec;
use tessera_common::onnx::{ImportedModel, import};
use tessera_ml::logits;
use tessera_mpc::model::{Activations, SecureModel};

use crate::{Aby3M, dec, enc, prog, run};

pub(super) fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models/onnx")
        .join(name)
}

/// A model, the digits its reference names (pixels / 255, flattened) and onnxruntime's outputs.
pub(super) struct Reference {
    pub(super) model: ImportedModel,
    pub(super) inputs: Vec<f32>,
    pub(super) outputs: Vec<Vec<f64>>,
    pub(super) softmax: bool,
}

pub(super) fn reference(name: &str) -> Reference {
    let model = import(&fixture(&format!("{name}.onnx"))).expect("the fixture imports");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{name}.reference.json"))).unwrap(),
    )
    .unwrap();
    let test = Dataset::bundled_mnist(Split::Test);
    let width = test.sample_len();
    let mut inputs = Vec::new();
    for i in json["test_indices"].as_array().unwrap() {
        let i = i.as_u64().unwrap() as usize;
        inputs.extend_from_slice(&test.features[i * width..(i + 1) * width]);
    }
    let outputs = json["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    Reference {
        model,
        inputs,
        outputs,
        softmax: json["softmax_output"].as_bool().unwrap(),
    }
}

fn softmax(row: &[f64]) -> Vec<f64> {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

pub(super) fn argmax(row: &[f64]) -> usize {
    (0..row.len())
        .max_by(|a, b| row[*a].total_cmp(&row[*b]))
        .unwrap()
}

/// The imported model's outputs in burn (its logits, through a softmax when the ONNX model
/// ended in one), one row per sample.
pub(super) fn plain_outputs(r: &Reference) -> Vec<Vec<f64>> {
    let n = r.outputs.len();
    let flat = logits(&r.model.spec, &r.model.weights, &r.inputs, n).unwrap();
    flat.chunks(flat.len() / n)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
            if r.softmax { softmax(&row) } else { row }
        })
        .collect()
}

/// The imported model's outputs are onnxruntime's within 1e-4 (the callers argue the bound).
pub(super) fn gives_onnxruntimes_outputs(name: &str, r: &Reference) {
    let got = plain_outputs(r);
    for (s, (g, want)) in got.iter().zip(&r.outputs).enumerate() {
        assert_eq!(g.len(), want.len());
        for (j, (g, w)) in g.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-4,
                "{name}: sample {s} output {j}: {g} vs onnxruntime {w}"
            );
        }
    }
}

/// Tolerance: both sides compute in f32; a logit sums at most 784 products of inputs in [0, 1]
/// and weights below 0.1 in magnitude, so reordered sums differ by a few units of 2^-24 times
/// the sum of magnitudes (below 80): under 1e-5; folding the batch norm rounds each weight once
/// more (relative 6e-8). 1e-4 leaves a factor 10.
#[test]
fn imported_models_give_onnxruntimes_outputs() {
    for (name, layers, softmax) in [
        (
            "mnist-mlp",
            vec![
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 64 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 10 },
            ],
            true,
        ),
        (
            "mnist-cnn",
            vec![
                LayerSpec::Conv2d {
                    channels: 8,
                    kernel: 5,
                    stride: 2,
                    padding: 2,
                },
                LayerSpec::Relu,
                LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                },
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 10 },
            ],
            true,
        ),
        (
            "ops-cnn",
            vec![
                LayerSpec::Conv2d {
                    channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                LayerSpec::Sigmoid,
                LayerSpec::AvgPool2d {
                    kernel: 2,
                    stride: 2,
                },
                LayerSpec::AvgPool2d {
                    kernel: 14,
                    stride: 14,
                },
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 16 },
                LayerSpec::Relu,
                LayerSpec::Dense { units: 3 },
            ],
            false,
        ),
    ] {
        let r = reference(name);
        assert_eq!(r.model.spec.input_shape, vec![1, 28, 28], "{name}");
        assert_eq!(r.model.spec.layers, layers, "{name}");
        assert_eq!(r.model.softmax_output, softmax, "{name}");
        assert_eq!(r.softmax, softmax, "{name}");
        assert_eq!(
            Ok(r.model.weights.len()),
            r.model.spec.num_params(),
            "{name}"
        );
        gives_onnxruntimes_outputs(name, &r);
    }
}

/// Under ABY3 the logits carry fixed-point error (16 fractional bits: the rounding of inputs and
/// weights, one probabilistic truncation per product, a few units of 2^-16 per layer; below
/// 0.02 as `model.rs` bounds it), and the fixtures' inputs were chosen with a gap of at least
/// 0.1 between the two largest logits, checked here: more than twice that error, so the
/// argmax must be onnxruntime's.
#[test]
fn an_imported_model_keeps_its_argmax_under_aby3() {
    for name in ["mnist-mlp", "mnist-cnn"] {
        let r = reference(name);
        let n = r.outputs.len();
        let width = r.inputs.len() / n;
        for row in &r.outputs {
            let mut logs: Vec<f64> = row.iter().map(|p| p.ln()).collect();
            logs.sort_by(|a, b| b.total_cmp(a));
            assert!(logs[0] - logs[1] >= 0.1, "{name}: fixture margin");
        }
        let params: Vec<f64> = r.model.weights.iter().map(|v| f64::from(*v)).collect();
        let x: Vec<f64> = r.inputs.iter().map(|v| f64::from(*v)).collect();
        let got = dec(&run::<Aby3M>(
            vec![enc(&params, &[params.len()]), enc(&x, &[n, width])],
            prog!(Aby3M, |p, v| {
                // Each server imports the model's spec itself (the weights are the shared input).
                let spec = import(&fixture(&format!("{name}.onnx")))
                    .expect("imports")
                    .spec;
                let model = SecureModel::new(&spec)?;
                let params = model.split_params(&*p, &v[0])?;
                model.forward(&*p, &params, &v[1], Activations::Exact).await
            }),
        ));
        let plain = plain_outputs(&r);
        for (s, row) in got.chunks(got.len() / n).enumerate() {
            assert_eq!(
                argmax(row),
                argmax(&r.outputs[s]),
                "{name}: sample {s}: secure logits {row:?}"
            );
            // The secure logits are the plaintext ones within the fixed-point error.
            let logits: Vec<f64> = softmax(row);
            for (g, w) in logits.iter().zip(&plain[s]) {
                assert!((g - w).abs() <= 0.02, "{name}: sample {s}: {g} vs {w}");
            }
        }
    }
}
