//! ONNX import: a feed-forward ONNX model becomes a [`ModelSpec`] and its weights.
//!
//! `--model model.onnx` reads the file with `onnx-ir` (burn's pure-Rust reader: no protoc) and
//! walks its graph node by node. The weights become the initial global model of federated
//! training, or the model a model owner deploys for encrypted prediction (`model-owner deploy
//! --checkpoint model.onnx`).
//!
//! What imports (the layers a [`ModelSpec`] has, so that the same model trains in burn and runs
//! under every MPC protocol):
//!
//! | ONNX | becomes |
//! |---|---|
//! | `Gemm` (any `alpha`, `beta`, `transB`; `transA = 0`), `MatMul` + `Add`, `MatMul` | `dense` |
//! | `Conv` (square kernel, one stride, equal padding on all sides, no dilation or groups) | `conv2d` |
//! | `BatchNormalization` right after a `Gemm`/`MatMul`/`Conv` | folded into that layer |
//! | `Relu`, `Sigmoid` | `relu`, `sigmoid` |
//! | `MaxPool`, `AveragePool` (square window, one stride, no padding) | `max_pool2d`, `avg_pool2d` |
//! | `GlobalAveragePool` on a square input | `avg_pool2d` over the whole input |
//! | `Flatten` (axis 1), `Reshape` to `[batch, features]` | `flatten` |
//! | `Softmax` as the last node | dropped: the model's outputs are its logits |
//! | `Dropout`, `Identity` | nothing (inference) |
//!
//! The graph must be one chain from its single input to its single output, with every weight a
//! constant (an initializer). Anything else is a typed [`OnnxError`] naming the node and its
//! operator: [`OnnxError::UnsupportedOp`] for an operator outside the table,
//! [`OnnxError::UnsupportedAttribute`] for a supported operator used in a way a layer cannot
//! express. Batch normalisation is folded as inference computes it: with `s = scale /
//! sqrt(var + epsilon)` per output channel, the weights of that channel are multiplied by `s` and
//! the bias becomes `(bias - mean) * s + beta`.
//!
//! Weights come out in Tessera's canonical order ([`crate::model_spec`]): per layer the weight,
//! then the bias; a dense weight `[inputs, units]` row-major (a `Gemm` with `transB = 1` stores
//! `[units, inputs]` and is transposed), a convolution's `[channels, in_channels, k, k]` as ONNX
//! stores it.

mod convert;
mod names;
mod weights;

use std::path::{Path, PathBuf};

use crate::model_spec::{ModelSpec, SpecError};

/// An imported model: its spec and weights, ready to train or to deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedModel {
    /// The layers, with the input shape of one sample (the ONNX input without its batch axis).
    pub spec: ModelSpec,
    /// All parameters in canonical order (`spec.num_params()` of them).
    pub weights: Vec<f32>,
    /// Whether the ONNX model ended in a `Softmax` (dropped on import: the spec's outputs are the
    /// logits the softmax took).
    pub softmax_output: bool,
}

/// Why an ONNX model does not import.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The file cannot be read or is not an ONNX model `onnx-ir` can parse.
    #[error("ONNX model {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// The ONNX reader failed inside itself on this file (a malformed graph it does not check).
    #[error("ONNX model {path}: the reader cannot take this file ({reason})")]
    ReaderFailed {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
    /// An operator no Tessera layer computes.
    #[error("ONNX node {node:?}: operator {op} is not supported (supported: {SUPPORTED})")]
    UnsupportedOp {
        /// The operator (ONNX op type, or the reader's name for it).
        op: String,
        /// The node's name.
        node: String,
    },
    /// A supported operator with attributes or inputs no layer expresses.
    #[error("ONNX node {node:?} ({op}): {reason}")]
    UnsupportedAttribute {
        /// The operator.
        op: String,
        /// The node's name.
        node: String,
        /// What cannot be expressed.
        reason: String,
    },
    /// The graph is not a single chain of layers from one input to one output.
    #[error("ONNX graph: {reason}")]
    Graph {
        /// How it is not.
        reason: String,
    },
    /// A weight that is not a constant of the expected shape.
    #[error("ONNX node {node:?}: {reason}")]
    Weights {
        /// The node's name.
        node: String,
        /// What is wrong with its weights.
        reason: String,
    },
    /// The layers do not fit together.
    #[error("ONNX model: {0}")]
    Spec(#[from] SpecError),
}

/// The operators [`import`] takes, as errors list them.
pub const SUPPORTED: &str = "Gemm, MatMul, Add (after MatMul), Conv, BatchNormalization (after \
    Gemm, MatMul or Conv), Relu, Sigmoid, MaxPool, AveragePool, GlobalAveragePool, Flatten, \
    Reshape, Softmax (last), Dropout, Identity";

/// Imports the ONNX model in `path`.
pub fn import(path: &Path) -> Result<ImportedModel, OnnxError> {
    let bytes = std::fs::read(path).map_err(|e| OnnxError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    import_bytes(&bytes, path)
}

/// Imports an ONNX model held in memory (`path` only names it in errors).
pub fn import_bytes(bytes: &[u8], path: &Path) -> Result<ImportedModel, OnnxError> {
    let file = names::file_nodes(bytes)?;
    // The reader panics on some malformed graphs (found by fuzzing: `onnx-ir` 0.22's node
    // conversion indexes past a node's inputs); a file must get a typed error, not a crash.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        onnx_ir::OnnxGraphBuilder::new().parse_bytes(bytes)
    }))
    .map_err(|panic| OnnxError::ReaderFailed {
        path: path.to_owned(),
        reason: panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the reader panicked".into()),
    })?;
    let graph = parsed.map_err(|e| OnnxError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    convert::convert(&graph, file.as_deref())
}

#[cfg(test)]
mod tests {
    use onnx_ir::{Message, ModelProto};

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/models/onnx")
            .join(name)
    }

    /// A fixture rewritten by `edit`, then imported.
    fn edited(name: &str, edit: impl FnOnce(&mut ModelProto)) -> Result<ImportedModel, OnnxError> {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let mut model = ModelProto::parse_from_bytes(&bytes).unwrap();
        edit(&mut model);
        import_bytes(&model.write_to_bytes().unwrap(), &fixture(name))
    }

    #[test]
    fn an_unsupported_operator_is_named_with_its_node() {
        let err = import(&fixture("tanh-mlp.onnx")).unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedOp { op, node } if op == "Tanh" && node == "hidden_tanh"),
            "{err:?}"
        );
        assert!(err.to_string().contains("hidden_tanh"), "{err}");
    }

    #[test]
    fn a_supported_operator_a_layer_cannot_express_is_refused() {
        // MaxPool with strides [2, 1].
        let err = edited("mnist-cnn.onnx", |m| {
            let graph = m.graph.as_mut().unwrap();
            let pool = graph.node.iter_mut().find(|n| n.name == "pool1").unwrap();
            let strides = pool
                .attribute
                .iter_mut()
                .find(|a| a.name == "strides")
                .unwrap();
            strides.ints = vec![2, 1];
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedAttribute { node, .. } if node == "pool1"),
            "{err:?}"
        );
        // Padding on one side only.
        let err = edited("mnist-cnn.onnx", |m| {
            let graph = m.graph.as_mut().unwrap();
            let conv = graph.node.iter_mut().find(|n| n.name == "conv1").unwrap();
            let pads = conv
                .attribute
                .iter_mut()
                .find(|a| a.name == "pads")
                .unwrap();
            pads.ints = vec![2, 2, 1, 1];
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedAttribute { node, .. } if node == "conv1"),
            "{err:?}"
        );
    }

    #[test]
    fn a_batch_norm_after_an_activation_does_not_fold() {
        // fc1 -> relu1 -> bn1 -> fc2: the ReLU stands between the Gemm and the batch norm.
        let err = edited("mnist-mlp.onnx", |m| {
            let graph = m.graph.as_mut().unwrap();
            let bn = graph.node.iter().position(|n| n.name == "bn1").unwrap();
            let relu = graph.node.iter().position(|n| n.name == "relu1").unwrap();
            graph.node[relu].input = vec!["fc1".into()];
            graph.node[relu].output = vec!["relu_out".into()];
            graph.node[bn].input[0] = "relu_out".into();
            graph.node[bn].output = vec!["act1".into()];
            graph.node.swap(bn, relu);
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedAttribute { node, .. } if node == "bn1"),
            "{err:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_onnx_says_which() {
        let path = fixture("make-fixtures.py");
        assert!(matches!(import(&path), Err(OnnxError::Read { path: p, .. }) if p == path));
        let missing = fixture("missing.onnx");
        assert!(matches!(import(&missing), Err(OnnxError::Read { .. })));
    }
}
