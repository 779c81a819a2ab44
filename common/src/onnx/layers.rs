//! The layers a node becomes: dense and convolution weights read off the graph, batch norms
//! folded or kept as affine nodes, pooling windows, reshapes, clips and padding (methods of the
//! walk of [`super::convert`]).

use onnx_ir::padding::{AutoPad, PaddingConfig2d};
use onnx_ir::{ArgType, Node};

use super::OnnxError;
use super::convert::Walk;
use super::weights::{LayerWeights, batch_norm_affine, bias, constant, transpose};
use crate::graph::Op;
use crate::graph::op::{Conv, Pool};

impl Walk {
    /// A dense layer from `weight` (`[units, inputs]` if `transposed`, else `[inputs, units]`),
    /// scaled by `alpha`, and an optional bias scaled by `beta`.
    pub(super) fn dense(
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
    pub(super) fn pads(
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

    pub(super) fn image(&self, x: &str) -> Result<(usize, usize, usize), OnnxError> {
        match self.shape_of(x) {
            [c, h, w] => Ok((*c, *h, *w)),
            other => Err(self.unsupported(format!(
                "takes a sample of shape {other:?}, not [channels, height, width]"
            ))),
        }
    }

    pub(super) fn conv(
        &mut self,
        node: &Node,
        c: &onnx_ir::conv2d::Conv2dConfig,
    ) -> Result<(), OnnxError> {
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
    pub(super) fn batch_norm(&mut self, node: &Node, epsilon: f64) -> Result<(), OnnxError> {
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
    pub(super) fn pool(
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
    pub(super) fn reshape_flattens(&self, x: &str, target: &[i64]) -> bool {
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

    pub(super) fn reshape(
        &mut self,
        node: &Node,
        n: &onnx_ir::reshape::ReshapeNode,
    ) -> Result<(), OnnxError> {
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

    pub(super) fn clip(
        &mut self,
        node: &Node,
        c: &onnx_ir::clip::ClipConfig,
    ) -> Result<(), OnnxError> {
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
    pub(super) fn pad(
        &mut self,
        node: &Node,
        c: &onnx_ir::pad::PadConfig,
    ) -> Result<(), OnnxError> {
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
}
