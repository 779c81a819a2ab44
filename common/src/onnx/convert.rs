//! The node walk: each node that reads an activation becomes a graph node (or folds into the
//! node before it, is dropped, or is refused); nodes that only compute constants or a reshape's
//! target shape are left out.

use std::collections::BTreeMap;

use onnx_ir::padding::{AutoPad, PaddingConfig2d};
use onnx_ir::{ArgType, Node, OnnxGraph};

use super::chain::as_chain;
use super::names::{FileNode, HELPER_OPS, align};
use super::weights::{LayerWeights, batch_norm_affine, bias, constant, transpose};
use super::{ImportedModel, OnnxError};
use crate::graph::op::{Conv, Pool};
use crate::graph::{GraphError, INPUT, ModelGraph, Node as GraphNode, Op, shape};
use crate::model_spec::{ModelSpec, SpecError};

/// The graph walked so far.
struct Walk {
    input_shape: Vec<usize>,
    nodes: Vec<GraphNode>,
    /// Per node, its parameters (dense, convolution, affine).
    weights: Vec<Option<LayerWeights>>,
    /// Every activation's per-sample shape, by its name in the graph.
    shapes: BTreeMap<String, Vec<usize>>,
    /// ONNX value names standing for another value (the input, what an identity, a dropout,
    /// a folded batch norm or the last softmax passes on).
    alias: BTreeMap<String, String>,
    /// How many nodes (and the graph's output) read each ONNX value.
    readers: BTreeMap<String, usize>,
    /// Which node produced each graph value.
    producer: BTreeMap<String, usize>,
    softmax: bool,
    /// The node being walked, as the file names it.
    here: FileNode,
}

impl Walk {
    fn unsupported(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::UnsupportedAttribute {
            op: self.here.op.clone(),
            node: self.here.name.clone(),
            reason: reason.into(),
        }
    }

    fn bad_weights(&self, reason: String) -> OnnxError {
        OnnxError::Weights {
            node: self.here.name.clone(),
            reason,
        }
    }

    /// The graph value an ONNX value stands for, if it is an activation.
    fn value(&self, onnx: &str) -> Option<String> {
        let name = self.alias.get(onnx).map_or(onnx, String::as_str);
        self.shapes.contains_key(name).then(|| name.to_owned())
    }

    /// The graph value of input `i`, which must be an activation.
    fn activation(&self, node: &Node, i: usize) -> Result<String, OnnxError> {
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

    fn shape_of(&self, value: &str) -> &[usize] {
        &self.shapes[value]
    }

    /// Adds node `op` reading `inputs`, producing the ONNX output of `node`.
    fn push(
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

    fn output_name(&self, node: &Node) -> Result<String, OnnxError> {
        match node.outputs() {
            [out, ..] => Ok(out.name.clone()),
            [] => Err(OnnxError::Graph {
                reason: format!("node {:?} has no output", self.here.name),
            }),
        }
    }

    /// The node's output stands for `value` (nothing is computed).
    fn pass(&mut self, node: &Node, value: String) -> Result<(), OnnxError> {
        let output = self.output_name(node)?;
        self.alias.insert(output, value);
        Ok(())
    }

    /// A dense layer from `weight` (`[units, inputs]` if `transposed`, else `[inputs, units]`),
    /// scaled by `alpha`, and an optional bias scaled by `beta`.
    fn dense(
        &mut self,
        node: &Node,
        transposed: bool,
        alpha: f32,
        beta: f32,
    ) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        let name = self.here.name.clone();
        let name = name.as_str();
        let inputs = node.inputs();
        let (shape, values) = constant(name, &inputs[1], "weight")?;
        let width: usize = match self.shape_of(&x) {
            [w] => *w,
            other => {
                return Err(self.unsupported(format!(
                    "takes a sample of shape {other:?}; flatten it first"
                )));
            }
        };
        let (rows, cols) = match shape.as_slice() {
            [r, c] => (*r, *c),
            _ => {
                return Err(
                    self.bad_weights(format!("a weight of shape {shape:?} is not a matrix"))
                );
            }
        };
        let (ins, units) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if ins != width {
            return Err(self.bad_weights(format!(
                "a weight of shape {shape:?} does not take {width} inputs"
            )));
        }
        let mut weight = if transposed {
            transpose(&values, rows, cols)
        } else {
            values
        };
        weight.iter_mut().for_each(|w| *w *= alpha);
        let bias = match inputs.get(2).filter(|a| !a.is_optional()) {
            Some(arg) => {
                let (shape, values) = constant(name, arg, "bias")?;
                bias(name, &shape, &values, units, beta)?
            }
            None => vec![0.0; units],
        };
        let weights = LayerWeights {
            weight,
            bias,
            columns: true,
        };
        self.push(node, Op::Dense { units }, vec![x], Some(weights))
    }

    /// `auto_pad` and `pads` as explicit `[top, left, bottom, right]` for an `h x w` input.
    fn pads(
        &self,
        auto_pad: &AutoPad,
        padding: &PaddingConfig2d,
        (h, w): (usize, usize),
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Result<[usize; 4], OnnxError> {
        let (top, left, bottom, right) = padding.as_tuple();
        match auto_pad {
            AutoPad::NotSet => Ok([top, left, bottom, right]),
            AutoPad::Valid => Ok([0; 4]),
            AutoPad::SameUpper | AutoPad::SameLower => {
                // Output ceil(size / stride): the padding a dilated kernel needs for it, the odd
                // unit at the end (upper) or the start (lower).
                let total = |size: usize, k: usize, s: usize, d: usize| {
                    let out = size.div_ceil(s.max(1));
                    ((out - 1) * s + (k - 1) * d + 1).saturating_sub(size)
                };
                let th = total(h, kernel[0], stride[0], dilation[0]);
                let tw = total(w, kernel[1], stride[1], dilation[1]);
                let upper = matches!(auto_pad, AutoPad::SameUpper);
                let split = |t: usize| {
                    if upper {
                        (t / 2, t - t / 2)
                    } else {
                        (t - t / 2, t / 2)
                    }
                };
                let ((t, b), (l, r)) = (split(th), split(tw));
                Ok([t, l, b, r])
            }
        }
    }

    fn image(&self, x: &str) -> Result<(usize, usize, usize), OnnxError> {
        match self.shape_of(x) {
            [c, h, w] => Ok((*c, *h, *w)),
            other => Err(self.unsupported(format!(
                "takes a sample of shape {other:?}, not [channels, height, width]"
            ))),
        }
    }

    fn conv(&mut self, node: &Node, c: &onnx_ir::conv2d::Conv2dConfig) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        let name = self.here.name.clone();
        let name = name.as_str();
        let (in_channels, h, w) = self.image(&x)?;
        let pads = self.pads(
            &c.auto_pad,
            &c.padding,
            (h, w),
            c.kernel_size,
            c.stride,
            c.dilation,
        )?;
        let inputs = node.inputs();
        let (shape, weight) = constant(name, &inputs[1], "weight")?;
        let groups = c.groups.max(1);
        let [kh, kw] = c.kernel_size;
        let channels = match shape.as_slice() {
            [o, i, a, b] if *i * groups == in_channels && *a == kh && *b == kw => *o,
            _ => {
                return Err(self.bad_weights(format!(
                    "a weight of shape {shape:?} is not [channels, {}, {kh}, {kw}]",
                    in_channels / groups
                )));
            }
        };
        let bias = match inputs.get(2).filter(|a| !a.is_optional()) {
            Some(arg) => {
                let (shape, values) = constant(name, arg, "bias")?;
                bias(name, &shape, &values, channels, 1.0)?
            }
            None => vec![0.0; channels],
        };
        let op = Op::Conv2d(Conv {
            channels,
            kernel: c.kernel_size,
            stride: c.stride,
            pads,
            dilation: c.dilation,
            groups,
        });
        let weights = LayerWeights {
            weight,
            bias,
            columns: false,
        };
        self.push(node, op, vec![x], Some(weights))
    }

    /// Folds into the dense, convolution or affine node that produced the input when nothing
    /// else reads that node's output; otherwise becomes an affine node.
    fn batch_norm(&mut self, node: &Node, epsilon: f64) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        let name = self.here.name.clone();
        let name = name.as_str();
        let channels = self.shape_of(&x).first().copied().unwrap_or(0);
        let inputs = node.inputs();
        let mut stats = Vec::with_capacity(4);
        for (arg, what) in inputs[1..]
            .iter()
            .zip(["scale", "bias", "mean", "variance"])
        {
            stats.push(constant(name, arg, what)?.1);
        }
        if stats.len() != 4 || stats.iter().any(|s| s.len() != channels) {
            return Err(self.bad_weights(format!(
                "needs scale, bias, mean and variance of {channels} values each"
            )));
        }
        if let Some(v) = stats[3].iter().find(|v| f64::from(**v) + epsilon <= 0.0) {
            return Err(
                self.bad_weights(format!("a variance of {v} (plus epsilon) is not positive"))
            );
        }
        let (scale, shift) = batch_norm_affine(&stats[0], &stats[1], &stats[2], &stats[3], epsilon);
        let onnx_input = &inputs[0].name;
        let alone = self.readers.get(onnx_input).copied() == Some(1);
        let foldable = self.producer.get(&x).copied().filter(|&i| {
            alone
                && matches!(
                    self.nodes[i].op,
                    Op::Dense { .. } | Op::Conv2d(_) | Op::Affine
                )
        });
        if let Some(i) = foldable {
            let layer = self.weights[i]
                .as_mut()
                .expect("parametric nodes hold weights");
            layer.scale_outputs(&scale, &shift);
            return self.pass(node, x);
        }
        let weights = LayerWeights {
            weight: scale,
            bias: shift,
            columns: false,
        };
        self.push(node, Op::Affine, vec![x], Some(weights))
    }

    #[allow(clippy::too_many_arguments)]
    fn pool(
        &mut self,
        node: &Node,
        kernel: [usize; 2],
        strides: [usize; 2],
        (auto_pad, padding): (&AutoPad, &PaddingConfig2d),
        dilation: [usize; 2],
        ceil_mode: bool,
        kind: Option<bool>,
    ) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        let (_, h, w) = self.image(&x)?;
        if dilation != [1, 1] {
            return Err(self.unsupported(format!("dilation {dilation:?}: pools take none")));
        }
        let pads = self.pads(auto_pad, padding, (h, w), kernel, strides, dilation)?;
        let tiles = |size: usize, k: usize, s: usize, before: usize, after: usize| {
            (size + before + after)
                .saturating_sub(k)
                .is_multiple_of(s.max(1))
        };
        if ceil_mode
            && !(tiles(h, kernel[0], strides[0], pads[0], pads[2])
                && tiles(w, kernel[1], strides[1], pads[1], pads[3]))
        {
            return Err(self.unsupported("ceil_mode with windows that do not tile the input"));
        }
        let pool = Pool {
            kernel,
            stride: strides,
            pads,
            count_pad: kind == Some(true),
        };
        let op = match kind {
            None => Op::MaxPool2d(pool),
            Some(_) => Op::AvgPool2d(pool),
        };
        self.push(node, op, vec![x], None)
    }

    /// Whether a reshape to `target` (ONNX semantics: 0 keeps a dimension, -1 takes the rest)
    /// keeps the batch axis and flattens the rest.
    fn reshape_flattens(&self, x: &str, target: &[i64]) -> bool {
        let features = self.shape_of(x).iter().product::<usize>() as i64;
        match target {
            // [0 | 1 | -1, features] or [0 | 1, -1].
            [batch, rest] => {
                (*rest == features && (-1..=1).contains(batch))
                    || (*rest == -1 && (0..=1).contains(batch))
            }
            _ => false,
        }
    }

    fn reshape(&mut self, node: &Node, n: &onnx_ir::reshape::ReshapeNode) -> Result<(), OnnxError> {
        let x = self.activation(node, 0)?;
        let flattens = match &n.config.shape {
            onnx_ir::reshape::ReshapeInput::Static(target) => self.reshape_flattens(&x, target),
            onnx_ir::reshape::ReshapeInput::Runtime(_) => {
                // A shape computed at run time (`x.view(x.size(0), -1)`): the reader's inferred
                // output must be a matrix of the sample's values.
                let features = self.shape_of(&x).iter().product::<usize>();
                match &node.outputs()[0].ty {
                    ArgType::Tensor(t) => {
                        t.rank == 2
                            && t.static_shape
                                .as_ref()
                                .is_none_or(|s| s.get(1) == Some(&Some(features)))
                    }
                    _ => false,
                }
            }
        };
        if !flattens {
            return Err(self.unsupported(format!(
                "{:?}: only a reshape to [batch, features]",
                n.config.shape
            )));
        }
        self.push(node, Op::Flatten, vec![x], None)
    }

    fn clip(&mut self, node: &Node, c: &onnx_ir::clip::ClipConfig) -> Result<(), OnnxError> {
        use onnx_ir::clip::ClipInput;
        let x = self.activation(node, 0)?;
        let bound = |b: &Option<ClipInput>| match b {
            None => Ok(None),
            Some(ClipInput::Static(v)) => Ok(Some(*v)),
            Some(ClipInput::Runtime(_)) => Err(self.unsupported("bounds that are not constants")),
        };
        match (bound(&c.min)?, bound(&c.max)?) {
            (Some(min), Some(max)) if min <= max => {
                self.push(node, Op::Clip { min, max }, vec![x], None)
            }
            (Some(0.0), None) => self.push(node, Op::Relu, vec![x], None),
            (min, max) => Err(self.unsupported(format!(
                "bounds {min:?} and {max:?}: give both, the lower not above the upper"
            ))),
        }
    }

    /// Zero padding of the spatial axes; none at all passes the input on.
    fn pad(&mut self, node: &Node, c: &onnx_ir::pad::PadConfig) -> Result<(), OnnxError> {
        use onnx_ir::pad::{ConstantValueInput, PadInput, PadMode};
        let x = self.activation(node, 0)?;
        if c.mode != PadMode::Constant {
            return Err(self.unsupported(format!("mode {}: only constant", c.mode.as_str())));
        }
        if !matches!(c.constant_value, ConstantValueInput::Static(v) if v == 0.0) {
            return Err(self.unsupported("a value other than a constant 0"));
        }
        let PadInput::Static(pads) = &c.pads else {
            return Err(self.unsupported("pads that are not constants"));
        };
        let pads = match pads.as_slice() {
            [(0, 0), (0, 0), (top, bottom), (left, right)] => [*top, *left, *bottom, *right],
            _ => {
                return Err(self.unsupported(format!(
                    "pads {pads:?}: only the height and width of [batch, channels, h, w]"
                )));
            }
        };
        if pads == [0; 4] {
            return self.pass(node, x);
        }
        self.push(node, Op::Pad { pads }, vec![x], None)
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

    fn unary(&mut self, node: &Node, op: Op) -> Result<(), OnnxError> {
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
