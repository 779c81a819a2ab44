//! The file's own names for its nodes and operators.
//!
//! `onnx-ir` renames every node (`hidden_tanh` becomes `tanh1`) and names operators its own way
//! (`MaxPool2d`, `Linear` for a fused `Gemm` or `MatMul` + `Add`). Errors should name what the
//! user sees in the file (in Netron, or in the exporter's code), so the raw graph is read first:
//! an operator outside the supported set is refused right there by its ONNX op type and node
//! name, and the reader's nodes are matched back, in order, to the file's.

use onnx_ir::{Message, ModelProto, Node};

use super::OnnxError;

/// Operators that become (or fold into, or vanish from) layers.
const LAYER_OPS: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Conv",
    "BatchNormalization",
    "Relu",
    "Sigmoid",
    "Tanh",
    "LeakyRelu",
    "Clip",
    "HardSigmoid",
    "HardSwish",
    "Sub",
    "Mul",
    "GlobalMaxPool",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Concat",
    "Pad",
    "Softmax",
    "Dropout",
    "Identity",
];

/// Operators that only compute constants or a reshape's target shape (exporters write
/// `x.view(x.size(0), -1)` as `Shape`, `Gather`, `Unsqueeze`, `Concat`, `Reshape`).
pub(super) const HELPER_OPS: &[&str] = &[
    "Constant",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "Slice",
];

/// A node as the file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileNode {
    /// Its ONNX op type.
    pub op: String,
    /// Its name, or `<op> #<index>` when the file leaves it unnamed.
    pub name: String,
}

/// The file's nodes in order, after refusing any operator outside the supported set.
pub(super) fn file_nodes(bytes: &[u8]) -> Result<Option<Vec<FileNode>>, OnnxError> {
    // A file the raw reader cannot parse is left to `onnx-ir`'s error.
    let Ok(model) = ModelProto::parse_from_bytes(bytes) else {
        return Ok(None);
    };
    let Some(graph) = model.graph.as_ref() else {
        return Ok(None);
    };
    let mut nodes = Vec::with_capacity(graph.node.len());
    for (i, n) in graph.node.iter().enumerate() {
        let name = if n.name.is_empty() {
            format!("{} #{i}", n.op_type)
        } else {
            n.name.clone()
        };
        let standard = matches!(n.domain.as_str(), "" | "ai.onnx");
        let op = if standard {
            n.op_type.clone()
        } else {
            format!("{}::{}", n.domain, n.op_type)
        };
        if !standard
            || !(LAYER_OPS.contains(&n.op_type.as_str())
                || HELPER_OPS.contains(&n.op_type.as_str()))
        {
            return Err(OnnxError::UnsupportedOp { op, node: name });
        }
        nodes.push(FileNode { op, name });
    }
    Ok(Some(nodes))
}

/// The file's op types a reader node can stand for.
fn file_ops(node: &Node) -> Vec<String> {
    let own = node.node_type().to_string();
    match own.as_str() {
        "Linear" => vec!["Gemm".into(), "MatMul".into()],
        "Conv2d" => vec!["Conv".into()],
        "MaxPool2d" => vec!["MaxPool".into()],
        "AveragePool2d" => vec!["AveragePool".into()],
        _ => vec![own],
    }
}

/// For each reader node of `chain`, the file node it came from: the next file node (in order)
/// of a matching op type; the reader's own names where none matches.
pub(super) fn align(chain: &[&Node], file: Option<&[FileNode]>) -> Vec<FileNode> {
    let mut next = 0;
    chain
        .iter()
        .map(|node| {
            let ops = file_ops(node);
            let found = file.and_then(|file| {
                file[next..]
                    .iter()
                    .position(|f| ops.contains(&f.op))
                    .map(|k| {
                        next += k + 1;
                        file[next - 1].clone()
                    })
            });
            found.unwrap_or_else(|| FileNode {
                op: node.node_type().to_string(),
                name: node.name().to_owned(),
            })
        })
        .collect()
}
