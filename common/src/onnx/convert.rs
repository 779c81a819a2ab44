//! The node walk: each node that reads an activation becomes a graph node (or folds into the
//! node before it, is dropped, or is refused); nodes that only compute constants or a reshape's
//! target shape are left out. What each layer reads off its node (weights, windows, batch
//! norms) is in [`super::layers`].

use std::collections::BTreeMap;

use onnx_ir::{ArgType, Node, OnnxGraph};

use super::chain::as_chain;
use super::names::{FileNode, HELPER_OPS, align};
use super::weights::LayerWeights;
use super::{ImportedModel, OnnxError};
use crate::graph::{GraphError, INPUT, ModelGraph, Node as GraphNode, Op, shape};
use crate::model_spec::{ModelSpec, SpecError};

/// The graph walked so far.
pub(super) struct Walk {
    pub(super) input_shape: Vec<usize>,
    pub(super) nodes: Vec<GraphNode>,
    /// Per node, its parameters (dense, convolution, affine).
    pub(super) weights: Vec<Option<LayerWeights>>,
    /// Every activation's per-sample shape, by its name in the graph.
    pub(super) shapes: BTreeMap<String, Vec<usize>>,
    /// ONNX value names standing for another value (the input, what an identity, a dropout,
    /// a folded batch norm or the last softmax passes on).
    pub(super) alias: BTreeMap<String, String>,
    /// How many nodes (and the graph's output) read each ONNX value.
    pub(super) readers: BTreeMap<String, usize>,
    /// Which node produced each graph value.
    pub(super) producer: BTreeMap<String, usize>,
    pub(super) softmax: bool,
    /// The node being walked, as the file names it.
    pub(super) here: FileNode,
}

impl Walk {
    pub(super) fn unsupported(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::UnsupportedAttribute {
            op: self.here.op.clone(),
            node: self.here.name.clone(),
            reason: reason.into(),
        }
    }

    pub(super) fn bad_weights(&self, reason: String) -> OnnxError {
        OnnxError::Weights {
            node: self.here.name.clone(),
            reason,
        }
    }

    /// The graph value an ONNX value stands for, if it is an activation.
    pub(super) fn value(&self, onnx: &str) -> Option<String> {
        let name = self.alias.get(onnx).map_or(onnx, String::as_str);
        self.shapes.contains_key(name).then(|| name.to_owned())
    }

    /// The graph value of input `i`, which must be an activation.
    pub(super) fn activation(&self, node: &Node, i: usize) -> Result<String, OnnxError> {
        let arg = node
            .inputs()
            .get(i)
            .ok_or_else(|| self.unsupported(format!("has no input {i}")))?;
        self.value(&arg.name).ok_or_else(|| {
            self.unsupported(format!(
                "input {:?} is a constant where an activation is expected",
                arg.name
            ))
        })
    }

    pub(super) fn shape_of(&self, value: &str) -> &[usize] {
        &self.shapes[value]
    }

    /// Adds node `op` reading `inputs`, producing the ONNX output of `node`.
    pub(super) fn push(
        &mut self,
        node: &Node,
        op: Op,
        inputs: Vec<String>,
        weights: Option<LayerWeights>,
    ) -> Result<(), OnnxError> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|v| self.shape_of(v)).collect();
        let out = shape::output_shape(&op, &shapes).map_err(|problem| {
            SpecError::Graph(GraphError {
                node: self.here.name.clone(),
                problem,
            })
        })?;
        let output = self.output_name(node)?;
        self.shapes.insert(output.clone(), out);
        self.producer.insert(output.clone(), self.nodes.len());
        self.nodes.push(GraphNode {
            name: self.here.name.clone(),
            op,
            inputs,
            output,
        });
        self.weights.push(weights);
        Ok(())
    }

    pub(super) fn output_name(&self, node: &Node) -> Result<String, OnnxError> {
        match node.outputs() {
            [out, ..] => Ok(out.name.clone()),
            [] => Err(OnnxError::Graph {
                reason: format!("node {:?} has no output", self.here.name),
            }),
        }
    }

    /// The node's output stands for `value` (nothing is computed).
    pub(super) fn pass(&mut self, node: &Node, value: String) -> Result<(), OnnxError> {
        let output = self.output_name(node)?;
        self.alias.insert(output, value);
        Ok(())
    }

    fn step(&mut self, node: &Node, last: bool) -> Result<(), OnnxError> {
        match node {
            Node::Linear(n) => self.dense(node, n.config.transpose_weight, 1.0, 1.0),
            Node::Gemm(n) => {
                let c = &n.config;
                if c.trans_a != 0 {
                    return Err(self.unsupported("transA = 1"));
                }
                self.dense(node, c.trans_b != 0, c.alpha, c.beta)
            }
            Node::MatMul(_) => self.dense(node, false, 1.0, 1.0),
            Node::Conv2d(n) => self.conv(node, &n.config),
            Node::BatchNormalization(n) => {
                let epsilon = match &n.config {
                    onnx_ir::batch_norm::BatchNormConfig::Static(c) => c.epsilon,
                    onnx_ir::batch_norm::BatchNormConfig::Runtime(c) => c.epsilon,
                };
                self.batch_norm(node, epsilon)
            }
            Node::Relu(_) => self.unary(node, Op::Relu),
            Node::Sigmoid(_) => self.unary(node, Op::Sigmoid),
            Node::Tanh(_) => self.unary(node, Op::Tanh),
            Node::LeakyRelu(n) => self.unary(
                node,
                Op::LeakyRelu {
                    alpha: n.config.alpha,
                },
            ),
            Node::Clip(n) => self.clip(node, &n.config),
            Node::HardSigmoid(n) => self.unary(
                node,
                Op::HardSigmoid {
                    alpha: n.config.alpha,
                    beta: n.config.beta,
                },
            ),
            Node::HardSwish(_) => self.unary(node, Op::HardSwish),
            Node::GlobalMaxPool(_) => self.unary(node, Op::GlobalMaxPool),
            Node::MaxPool2d(n) => {
                let c = &n.config;
                self.pool(
                    node,
                    c.kernel_size,
                    c.strides,
                    (&c.auto_pad, &c.padding),
                    c.dilation,
                    c.ceil_mode,
                    None,
                )
            }
            Node::AveragePool2d(n) => {
                let c = &n.config;
                self.pool(
                    node,
                    c.kernel_size,
                    c.strides,
                    (&c.auto_pad, &c.padding),
                    c.dilation,
                    c.ceil_mode,
                    Some(c.count_include_pad),
                )
            }
            Node::GlobalAveragePool(_) => self.unary(node, Op::GlobalAvgPool),
            Node::Flatten(n) if n.config.axis == 1 => self.unary(node, Op::Flatten),
            Node::Flatten(n) => Err(self.unsupported(format!(
                "axis {}: only axis 1 keeps the batch",
                n.config.axis
            ))),
            Node::Reshape(n) => self.reshape(node, n),
            Node::Pad(n) => self.pad(node, &n.config),
            Node::Add(_) => self.binary(node, Op::Add),
            Node::Sub(_) => self.binary(node, Op::Sub),
            Node::Mul(_) => self.binary(node, Op::Mul),
            Node::Concat(n) => {
                if n.config.axis != 1 {
                    return Err(self.unsupported(format!(
                        "axis {}: only the channel axis (1)",
                        n.config.axis
                    )));
                }
                let inputs = (0..node.inputs().len())
                    .map(|i| self.activation(node, i))
                    .collect::<Result<Vec<_>, _>>()?;
                self.push(node, Op::Concat, inputs, None)
            }
            Node::Softmax(_) if last => {
                self.softmax = true;
                let x = self.activation(node, 0)?;
                self.pass(node, x)
            }
            Node::Softmax(_) => Err(self.unsupported(
                "softmax only as the model's output (it is dropped: the outputs are logits)",
            )),
            Node::Dropout(_) | Node::Identity(_) => {
                let x = self.activation(node, 0)?;
                self.pass(node, x)
            }
            _ => Err(OnnxError::UnsupportedOp {
                op: self.here.op.clone(),
                node: self.here.name.clone(),
            }),
        }
    }

    /// `op` of two activations of one shape (a constant operand is not imported yet).
    fn binary(&mut self, node: &Node, op: Op) -> Result<(), OnnxError> {
        match (self.activation(node, 0), self.activation(node, 1)) {
            (Ok(a), Ok(b)) => self.push(node, op, vec![a, b], None),
            _ => Err(self.unsupported(
                "a constant operand: only two activations of one shape (a bias after a MatMul \
                 folds into it)",
            )),
        }
    }

    pub(super) fn unary(&mut self, node: &Node, op: Op) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        self.push(node, op, vec![x], None)
    }
}

/// The per-sample input shape of the graph's one input.
fn input_shape(input: &onnx_ir::Argument) -> Result<Vec<usize>, OnnxError> {
    let graph_err = |reason: String| OnnxError::Graph { reason };
    match &input.ty {
        ArgType::Tensor(t) => match t.static_shape.as_deref() {
            Some([_batch, rest @ ..]) if !rest.is_empty() && rest.iter().all(Option::is_some) => {
                Ok(rest.iter().map(|d| d.unwrap_or(0)).collect())
            }
            _ => Err(graph_err(format!(
                "input {:?} has shape {:?}: give [batch, features...] with every feature \
                 dimension fixed",
                input.name, t.static_shape
            ))),
        },
        other => Err(graph_err(format!(
            "input {:?} is {other:?}, not a tensor",
            input.name
        ))),
    }
}

/// The model of `graph`, whose nodes the file names `file` (if it could be read raw).
pub(super) fn convert(
    graph: &OnnxGraph,
    file: Option<&[FileNode]>,
) -> Result<ImportedModel, OnnxError> {
    let graph_err = |reason: String| OnnxError::Graph { reason };
    let [input] = graph.inputs.as_slice() else {
        return Err(graph_err(format!(
            "{} inputs; a model takes one (a batch of samples)",
            graph.inputs.len()
        )));
    };
    let [output] = graph.outputs.as_slice() else {
        return Err(graph_err(format!(
            "{} outputs; a model gives one (its logits or probabilities)",
            graph.outputs.len()
        )));
    };
    let input_shape = input_shape(input)?;
    // The model's nodes: those that read an activation (the input, or what a model node
    // made). `Shape` reads one but only computes a reshape's target, off the model, as do the
    // helpers (initializers as `Constant` nodes, shape arithmetic the reader did not fold).
    let mut activations = std::collections::BTreeSet::from([input.name.as_str()]);
    let mut model: Vec<&Node> = Vec::new();
    for node in &graph.nodes {
        let kind = node.node_type().to_string();
        let reads = node
            .inputs()
            .iter()
            .any(|a| activations.contains(a.name.as_str()));
        if kind == "Shape" || (!reads && HELPER_OPS.contains(&kind.as_str())) {
            continue;
        }
        if !reads {
            return Err(graph_err(format!(
                "node {:?} ({kind}) does not read the model's input or any node's output",
                node.name()
            )));
        }
        activations.extend(node.outputs().iter().map(|a| a.name.as_str()));
        model.push(node);
    }
    let mut readers: BTreeMap<String, usize> = BTreeMap::new();
    for node in &model {
        for arg in node.inputs() {
            *readers.entry(arg.name.clone()).or_default() += 1;
        }
    }
    *readers.entry(output.name.clone()).or_default() += 1;
    let mut walk = Walk {
        shapes: BTreeMap::from([(INPUT.to_string(), input_shape.clone())]),
        alias: BTreeMap::from([(input.name.clone(), INPUT.to_string())]),
        input_shape,
        nodes: Vec::new(),
        weights: Vec::new(),
        readers,
        producer: BTreeMap::new(),
        softmax: false,
        here: FileNode {
            op: String::new(),
            name: String::new(),
        },
    };
    let names = align(&model, file);
    for (node, here) in model.iter().zip(names) {
        walk.here = here;
        let last = node.outputs().iter().any(|a| a.name == output.name);
        walk.step(node, last)?;
    }
    let out = walk.value(&output.name).ok_or_else(|| {
        graph_err(format!(
            "the output {:?} is not computed from the input",
            output.name
        ))
    })?;
    if walk.weights.iter().all(Option::is_none) {
        return Err(graph_err(
            "no Gemm, MatMul or Conv: nothing to train".into(),
        ));
    }
    let mut weights = Vec::new();
    for layer in walk.weights.iter().flatten() {
        weights.extend(&layer.weight);
        weights.extend(&layer.bias);
    }
    let graph = ModelGraph {
        input_shape: walk.input_shape,
        nodes: walk.nodes,
        output: out,
    };
    let spec = as_chain(&graph).unwrap_or_else(|| ModelSpec::from_graph(graph));
    if spec.num_params()? != weights.len() {
        return Err(graph_err(format!(
            "{} weights for a model of {} parameters",
            weights.len(),
            spec.num_params()?
        )));
    }
    Ok(ImportedModel {
        spec,
        weights,
        softmax_output: walk.softmax,
    })
}
