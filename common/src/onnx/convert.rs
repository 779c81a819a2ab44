//! The node walk: each node of the chain becomes a layer (or is folded, dropped or refused).

use onnx_ir::padding::{AutoPad, PaddingConfig2d};
use onnx_ir::{ArgType, Node, OnnxGraph};

use super::names::{FileNode, HELPER_OPS, align};
use super::weights::{LayerWeights, batch_norm_affine, bias, constant, transpose};
use super::{ImportedModel, OnnxError};
use crate::model_spec::{LayerSpec, ModelSpec};

/// The chain walked so far.
struct Walk {
    input_shape: Vec<usize>,
    layers: Vec<LayerSpec>,
    /// One entry per parametric layer, in order.
    params: Vec<LayerWeights>,
    /// The tensor the next node must take.
    current: String,
    /// Whether the last node made a dense or convolutional layer (a batch norm may follow).
    last_parametric: bool,
    softmax: bool,
    /// The node being walked, as the file names it.
    here: FileNode,
}

impl Walk {
    /// The shape of one sample after the layers so far.
    fn shape(&self) -> Result<Vec<usize>, OnnxError> {
        let spec = ModelSpec::chain(self.input_shape.clone(), self.layers.clone());
        Ok(spec.resolve()?.1)
    }

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

    fn push(&mut self, layer: LayerSpec, weights: Option<LayerWeights>) {
        self.last_parametric = weights.is_some();
        self.layers.push(layer);
        self.params.extend(weights);
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
        let name = self.here.name.clone();
        let name = name.as_str();
        let inputs = node.inputs();
        let (shape, values) = constant(name, &inputs[1], "weight")?;
        let width: usize = match self.shape()?.as_slice() {
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
        self.push(
            LayerSpec::Dense { units },
            Some(LayerWeights {
                weight,
                bias,
                columns: true,
            }),
        );
        Ok(())
    }

    fn conv(&mut self, node: &Node, c: &onnx_ir::conv2d::Conv2dConfig) -> Result<(), OnnxError> {
        let name = self.here.name.clone();
        let name = name.as_str();
        if c.kernel_size[0] != c.kernel_size[1] {
            return Err(self.unsupported(format!("kernel {:?} is not square", c.kernel_size)));
        }
        if c.stride[0] != c.stride[1] {
            return Err(self.unsupported(format!("strides {:?} differ", c.stride)));
        }
        if c.dilation != [1, 1] || c.groups != 1 {
            return Err(
                self.unsupported(format!("dilation {:?} and groups {}", c.dilation, c.groups))
            );
        }
        let padding = self.equal_padding(&c.padding)?;
        if !matches!(c.auto_pad, AutoPad::NotSet | AutoPad::Valid) {
            return Err(self.unsupported(format!("auto_pad {:?}; give explicit pads", c.auto_pad)));
        }
        let inputs = node.inputs();
        let (shape, weight) = constant(name, &inputs[1], "weight")?;
        let in_channels = match self.shape()?.as_slice() {
            [ch, _, _] => *ch,
            other => {
                return Err(self.unsupported(format!(
                    "takes a sample of shape {other:?}, not [channels, height, width]"
                )));
            }
        };
        let k = c.kernel_size[0];
        let channels = match shape.as_slice() {
            [o, i, kh, kw] if *i == in_channels && *kh == k && *kw == k => *o,
            _ => {
                return Err(self.bad_weights(format!(
                    "a weight of shape {shape:?} is not [channels, {in_channels}, {k}, {k}]"
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
        self.push(
            LayerSpec::Conv2d {
                channels,
                kernel: k,
                stride: c.stride[0],
                padding,
            },
            Some(LayerWeights {
                weight,
                bias,
                columns: false,
            }),
        );
        Ok(())
    }

    fn batch_norm(&mut self, node: &Node, epsilon: f64) -> Result<(), OnnxError> {
        let name = self.here.name.clone();
        let name = name.as_str();
        if !self.last_parametric {
            return Err(self.unsupported(
                "batch normalisation folds only into a Gemm, MatMul or Conv right before it",
            ));
        }
        let inputs = node.inputs();
        let mut stats = Vec::with_capacity(4);
        for (arg, what) in inputs[1..]
            .iter()
            .zip(["scale", "bias", "mean", "variance"])
        {
            stats.push(constant(name, arg, what)?.1);
        }
        let outputs = self.params.last().map_or(0, LayerWeights::outputs);
        if stats.len() != 4 || stats.iter().any(|s| s.len() != outputs) {
            return Err(self.bad_weights(format!(
                "needs scale, bias, mean and variance of {outputs} values each"
            )));
        }
        if let Some(v) = stats[3].iter().find(|v| f64::from(**v) + epsilon <= 0.0) {
            return Err(
                self.bad_weights(format!("a variance of {v} (plus epsilon) is not positive"))
            );
        }
        let layer = self.params.last_mut().expect("a parametric layer precedes");
        let (scale, shift) = batch_norm_affine(&stats[0], &stats[1], &stats[2], &stats[3], epsilon);
        layer.scale_outputs(&scale, &shift);
        // A second batch norm in a row folds too: the layer is still affine.
        Ok(())
    }

    /// A pooling window: square, one stride, no padding, no dilation.
    fn pool(
        &mut self,
        kernel: [usize; 2],
        strides: [usize; 2],
        padding: &PaddingConfig2d,
        dilation: [usize; 2],
        ceil_mode: bool,
        max: bool,
    ) -> Result<(), OnnxError> {
        if kernel[0] != kernel[1] || strides[0] != strides[1] {
            return Err(self.unsupported(format!(
                "window {kernel:?} with strides {strides:?}: only square windows with one stride"
            )));
        }
        if self.equal_padding(padding)? != 0 || dilation != [1, 1] {
            return Err(self.unsupported(format!(
                "padding {padding} and dilation {dilation:?}: pools take neither"
            )));
        }
        let (k, s) = (kernel[0], strides[0]);
        if ceil_mode
            && let [_, h, w] = self.shape()?.as_slice()
            && ((h.saturating_sub(k)) % s != 0 || (w.saturating_sub(k)) % s != 0)
        {
            return Err(self.unsupported("ceil_mode with windows that do not tile the input"));
        }
        let layer = if max {
            LayerSpec::MaxPool2d {
                kernel: k,
                stride: s,
            }
        } else {
            LayerSpec::AvgPool2d {
                kernel: k,
                stride: s,
            }
        };
        self.push(layer, None);
        Ok(())
    }

    /// Whether a reshape to `target` (ONNX semantics: 0 keeps a dimension, -1 takes the rest)
    /// keeps the batch axis and flattens the rest.
    fn reshape_flattens(&self, target: &[i64]) -> Result<bool, OnnxError> {
        let features = self.shape()?.iter().product::<usize>() as i64;
        Ok(match target {
            // [0 | 1 | -1, features] or [0 | 1, -1].
            [batch, rest] => {
                (*rest == features && (-1..=1).contains(batch))
                    || (*rest == -1 && (0..=1).contains(batch))
            }
            _ => false,
        })
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
            Node::Relu(_) => {
                self.push(LayerSpec::Relu, None);
                Ok(())
            }
            Node::Sigmoid(_) => {
                self.push(LayerSpec::Sigmoid, None);
                Ok(())
            }
            Node::MaxPool2d(n) => {
                let c = &n.config;
                self.pool(
                    c.kernel_size,
                    c.strides,
                    &c.padding,
                    c.dilation,
                    c.ceil_mode,
                    true,
                )
            }
            Node::AveragePool2d(n) => {
                let c = &n.config;
                self.pool(
                    c.kernel_size,
                    c.strides,
                    &c.padding,
                    c.dilation,
                    c.ceil_mode,
                    false,
                )
            }
            Node::GlobalAveragePool(_) => match self.shape()?.as_slice() {
                [_, h, w] if h == w => {
                    self.push(
                        LayerSpec::AvgPool2d {
                            kernel: *h,
                            stride: *h,
                        },
                        None,
                    );
                    Ok(())
                }
                other => Err(self.unsupported(format!(
                    "input of shape {other:?}: only square [channels, side, side]"
                ))),
            },
            Node::Flatten(n) if n.config.axis == 1 => {
                self.push(LayerSpec::Flatten, None);
                Ok(())
            }
            Node::Flatten(n) => Err(self.unsupported(format!(
                "axis {}: only axis 1 keeps the batch",
                n.config.axis
            ))),
            Node::Reshape(n) => {
                let flattens = match &n.config.shape {
                    onnx_ir::reshape::ReshapeInput::Static(target) => {
                        self.reshape_flattens(target)?
                    }
                    onnx_ir::reshape::ReshapeInput::Runtime(_) => {
                        // A shape computed at run time (`x.view(x.size(0), -1)`): the reader's
                        // inferred output must be a matrix of the sample's values.
                        let features = self.shape()?.iter().product::<usize>();
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
                self.push(LayerSpec::Flatten, None);
                Ok(())
            }
            Node::Softmax(_) if last => {
                self.softmax = true;
                Ok(())
            }
            Node::Softmax(_) => Err(self.unsupported(
                "softmax only as the model's output (it is dropped: the outputs are logits)",
            )),
            Node::Dropout(_) | Node::Identity(_) => Ok(()),
            _ => Err(OnnxError::UnsupportedOp {
                op: self.here.op.clone(),
                node: self.here.name.clone(),
            }),
        }
    }

    /// The one padding of all four sides.
    fn equal_padding(&self, padding: &PaddingConfig2d) -> Result<usize, OnnxError> {
        let (t, l, b, r) = padding.as_tuple();
        if t == l && l == b && b == r {
            Ok(t)
        } else {
            Err(self.unsupported(format!(
                "padding {padding}: only the same padding on every side"
            )))
        }
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
    let input_shape = match &input.ty {
        ArgType::Tensor(t) => match t.static_shape.as_deref() {
            Some([_batch, rest @ ..]) if !rest.is_empty() && rest.iter().all(Option::is_some) => {
                rest.iter().map(|d| d.unwrap_or(0)).collect::<Vec<_>>()
            }
            _ => {
                return Err(graph_err(format!(
                    "input {:?} has shape {:?}: give [batch, features...] with every feature \
                     dimension fixed",
                    input.name, t.static_shape
                )));
            }
        },
        other => {
            return Err(graph_err(format!(
                "input {:?} is {other:?}, not a tensor",
                input.name
            )));
        }
    };
    let mut walk = Walk {
        input_shape,
        layers: Vec::new(),
        params: Vec::new(),
        current: input.name.clone(),
        last_parametric: false,
        softmax: false,
        here: FileNode {
            op: String::new(),
            name: String::new(),
        },
    };
    // Initializers appear as `Constant` nodes (the layers read them as their inputs' values);
    // shape arithmetic the reader could not fold feeds a reshape's target, off the chain.
    let chain: Vec<&Node> = graph
        .nodes
        .iter()
        .filter(|n| !HELPER_OPS.contains(&n.node_type().to_string().as_str()))
        .collect();
    let names = align(&chain, file);
    let count = chain.len();
    for (i, (node, here)) in chain.into_iter().zip(names).enumerate() {
        walk.here = here;
        let takes = node.inputs().first().map(|a| a.name.as_str());
        if takes != Some(walk.current.as_str()) {
            return Err(graph_err(format!(
                "node {:?} ({}) does not take the output of the node before: only a chain of \
                 layers imports",
                walk.here.name, walk.here.op
            )));
        }
        walk.step(node, i + 1 == count)?;
        let [out, ..] = node.outputs() else {
            return Err(graph_err(format!("node {:?} has no output", node.name())));
        };
        walk.current = out.name.clone();
    }
    if output.name != walk.current {
        return Err(graph_err(format!(
            "the output {:?} is not the end of the chain ({:?})",
            output.name, walk.current
        )));
    }
    if walk.params.is_empty() {
        return Err(graph_err(
            "no Gemm, MatMul or Conv: nothing to train".into(),
        ));
    }
    let spec = ModelSpec::chain(walk.input_shape, walk.layers);
    let mut weights = Vec::with_capacity(spec.num_params()?);
    for layer in walk.params {
        weights.extend(layer.weight);
        weights.extend(layer.bias);
    }
    debug_assert_eq!(Ok(weights.len()), spec.num_params());
    Ok(ImportedModel {
        spec,
        weights,
        softmax_output: walk.softmax,
    })
}
