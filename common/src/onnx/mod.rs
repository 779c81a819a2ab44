//! ONNX import: an ONNX model becomes a [`ModelSpec`] (a graph, or the chain it always was
//! when its layers are a chain's) and its weights.
//!
//! `--model model.onnx` reads the file with `onnx-ir` (burn's pure-Rust reader: no protoc) and
//! walks its nodes in order. The weights become the initial global model of federated
//! training, or the model a model owner deploys for encrypted prediction (`model-owner deploy
//! --checkpoint model.onnx`).
//!
//! What imports (the operators of [`crate::graph`], so that the same model trains in burn and
//! runs under MPC):
//!
//! | ONNX | becomes |
//! |---|---|
//! | `Gemm` (any `alpha`, `beta`, `transB`; `transA = 0`), `MatMul` + `Add`, `MatMul` | `dense` |
//! | `Conv` (any kernel, strides, dilation and groups, depthwise included; asymmetric `pads`; `auto_pad`) | `conv2d` |
//! | `BatchNormalization` | folded into the `Gemm`/`MatMul`/`Conv` before it when nothing else reads that layer's output, else `affine` |
//! | `Relu`, `Sigmoid`, `Tanh`, `LeakyRelu`, `Clip` with constant bounds (ReLU6), `HardSigmoid`, `HardSwish` | `relu`, `sigmoid`, `tanh`, `leaky_relu`, `clip`, `hard_sigmoid`, `hard_swish` |
//! | `MaxPool`, `AveragePool` (any window and strides, padding, `count_include_pad`, `ceil_mode` where the windows tile) | `max_pool2d`, `avg_pool2d` |
//! | `GlobalAveragePool`, `GlobalMaxPool` | `global_avg_pool`, `global_max_pool` |
//! | `Flatten` (axis 1), `Reshape` to `[batch, features]` (also computed at run time, `x.view(x.size(0), -1)`) | `flatten` |
//! | `Add`, `Sub`, `Mul` of two activations of one shape (a residual connection, a gate) | `add`, `sub`, `mul` |
//! | `Concat` of activations on the channel axis | `concat` |
//! | `Pad` (constant 0, height and width only; PyTorch writes one before some poolings) | `pad` (nothing when it pads nothing) |
//! | `Softmax` producing the output | dropped: the model's outputs are its logits |
//! | `Dropout`, `Identity` | nothing (inference) |
//!
//! The nodes that read an activation (the input, or a model node's output) make the model;
//! `Shape` and the shape arithmetic after it (`Gather`, `Unsqueeze`, `Concat`, `Cast`, `Slice`)
//! and `Constant` nodes only compute a reshape's target and are left out. Every weight must be a
//! constant (an initializer). Anything else is a typed [`OnnxError`] naming the node and its
//! operator: [`OnnxError::UnsupportedOp`] for an operator outside the table,
//! [`OnnxError::UnsupportedAttribute`] for a supported operator used in a way the graph cannot
//! express. Batch normalisation is what inference computes: with `s = scale / sqrt(var +
//! epsilon)` per channel, folded into the layer before (the weights of output channel `o`
//! multiplied by `s[o]`, the bias becoming `(bias - mean) * s + beta`) or an affine node of scale
//! `s` and shift `beta - mean * s`.
//!
//! Weights come out in Tessera's canonical order ([`crate::graph`]): per node the weight, then
//! the bias (scale, then shift); a dense weight `[inputs, units]` row-major (a `Gemm` with
//! `transB = 1` stores `[units, inputs]` and is transposed), a convolution's `[channels,
//! in_channels / groups, kh, kw]` as ONNX stores it. A model whose nodes are a chain of the
//! chain's layers imports as that chain ([`chain`]), as before graphs existed.

mod chain;
mod convert;
mod layers;
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
pub const SUPPORTED: &str = "Gemm, MatMul, Add, Sub, Mul, Conv, BatchNormalization, Relu, \
    Sigmoid, Tanh, LeakyRelu, Clip, HardSigmoid, HardSwish, MaxPool, AveragePool, \
    GlobalAveragePool, GlobalMaxPool, Flatten, Reshape, Concat, Pad, Softmax (last), Dropout, \
    Identity";

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

    /// The attribute `name` of node `node` set to `ints`.
    fn set_ints(m: &mut ModelProto, node: &str, name: &str, ints: Vec<i64>) {
        let graph = m.graph.as_mut().unwrap();
        let n = graph.node.iter_mut().find(|n| n.name == node).unwrap();
        match n.attribute.iter_mut().find(|a| a.name == name) {
            Some(a) => a.ints = ints,
            None => {
                let mut a = onnx_ir::AttributeProto::new();
                a.name = name.into();
                a.ints = ints;
                a.type_ = onnx_ir::AttributeType::INTS.into();
                n.attribute.push(a);
            }
        }
    }

    #[test]
    fn an_unsupported_operator_is_named_with_its_node() {
        let err = edited("tanh-mlp.onnx", |m| {
            let graph = m.graph.as_mut().unwrap();
            let tanh = graph
                .node
                .iter_mut()
                .find(|n| n.name == "hidden_tanh")
                .unwrap();
            tanh.op_type = "Softsign".into();
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedOp { op, node } if op == "Softsign" && node == "hidden_tanh"),
            "{err:?}"
        );
        // The message names the node as the file does.
        assert_eq!(
            err.to_string(),
            format!(
                "ONNX node \"hidden_tanh\": operator Softsign is not supported (supported: {SUPPORTED})"
            )
        );
    }

    #[test]
    fn what_a_chain_cannot_express_imports_as_a_graph_and_the_rest_is_refused() {
        // A max pool and a convolution padded on two sides only (the sizes stay those the
        // dense layer takes): a graph.
        let model = edited("mnist-cnn.onnx", |m| {
            set_ints(m, "pool1", "pads", vec![0, 0, 1, 1]);
            set_ints(m, "conv1", "pads", vec![2, 2, 1, 1]);
        })
        .unwrap();
        assert!(model.spec.is_graph());
        let graph = model.spec.graph().unwrap();
        let conv = graph.nodes.iter().find(|n| n.name == "conv1").unwrap();
        assert!(matches!(conv.op, crate::graph::Op::Conv2d(c) if c.pads == [2, 2, 1, 1]));
        assert_eq!(model.spec.num_params().ok(), Some(model.weights.len()));
        // A dilated pooling window.
        let err = edited("mnist-cnn.onnx", |m| {
            set_ints(m, "pool1", "dilations", vec![2, 2]);
        })
        .unwrap_err();
        assert!(
            matches!(&err, OnnxError::UnsupportedAttribute { node, .. } if node == "pool1"),
            "{err:?}"
        );
    }

    #[test]
    fn a_batch_norm_after_an_activation_is_an_affine_node() {
        // fc1 -> relu1 -> bn1 -> fc2: the ReLU stands between the Gemm and the batch norm.
        let model = edited("mnist-mlp.onnx", |m| {
            let graph = m.graph.as_mut().unwrap();
            let bn = graph.node.iter().position(|n| n.name == "bn1").unwrap();
            let relu = graph.node.iter().position(|n| n.name == "relu1").unwrap();
            graph.node[relu].input = vec!["fc1".into()];
            graph.node[relu].output = vec!["relu_out".into()];
            graph.node[bn].input[0] = "relu_out".into();
            graph.node[bn].output = vec!["act1".into()];
            graph.node.swap(bn, relu);
        })
        .unwrap();
        let graph = model.spec.graph().unwrap();
        let ops: Vec<&str> = graph.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(ops, ["flatten", "dense", "relu", "affine", "dense"]);
        assert_eq!(graph.nodes[3].name, "bn1");
        // The folded import has 64 fewer scale and 64 fewer shift values.
        let folded = import(&fixture("mnist-mlp.onnx")).unwrap();
        assert_eq!(model.weights.len(), folded.weights.len() + 128);
    }

    #[test]
    fn a_file_that_is_not_onnx_says_which() {
        let path = fixture("make-fixtures.py");
        assert!(matches!(import(&path), Err(OnnxError::Read { path: p, .. }) if p == path));
        let missing = fixture("missing.onnx");
        assert!(matches!(import(&missing), Err(OnnxError::Read { .. })));
    }
}
