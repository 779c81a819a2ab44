//! burn modules built from a [`ModelSpec`] and their canonical flat parameter vector.
//!
//! [`SpecModel`] interprets the spec's graph (a chain is a chain graph): it holds one
//! parameterised layer per dense, convolution or affine node, in graph order, and walks the
//! nodes in their topological order ([`ops`]), each value dropped after its last reader.
//! [`SpecModel::flatten`] walks the module with a [`ModuleVisitor`] and [`SpecModel::load_flat`]
//! writes a vector back with a [`ModuleMapper`]; both see parameters in the same order (graph
//! order; weight before bias, scale before shift), which is the canonical order of every update
//! vector in Tessera (see `tessera_common::graph`).
//!
//! Batch normalisation reaches this model folded into the convolution before it, or as an
//! [`Op::Affine`] node (scale and shift, trained and averaged as any parameter); no running
//! statistics are kept, so there is nothing per owner to keep local.

mod activation;
mod layer;
mod ops;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use tessera_common::graph::Op;
use tessera_common::model_spec::{DataMismatch, ModelSpec, SpecError};

use activation::Activation;
pub use layer::{Affine, Layer};

/// Errors of building, loading or running a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The spec does not resolve.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A flat vector of the wrong length.
    #[error("parameter vector has {got} values, the model has {expected}")]
    WrongLength {
        /// Parameters in the model.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// Data the model cannot take (sample shape or labels).
    #[error(transparent)]
    Data(#[from] DataMismatch),
    /// A non-finite value in the parameters.
    #[error("parameter {0} is not finite")]
    NotFinite(usize),
    /// An input that is neither `[features]` nor `[channels, height, width]`.
    #[error("a model input of shape {0:?}: give [features] or [channels, height, width]")]
    InputRank(Vec<usize>),
}

/// One node as the walk runs it: where its inputs are in the value table, its layer if it has
/// one, and the values it is the last reader of.
#[derive(Clone, Debug)]
struct Step {
    op: Op,
    inputs: Vec<usize>,
    layer: Option<usize>,
    frees: Vec<usize>,
}

/// A network built from a [`ModelSpec`].
#[derive(Module, Debug)]
pub struct SpecModel {
    layers: Vec<Layer>,
    #[module(skip)]
    plan: Vec<Step>,
    /// The value table's size: the input, then one value per node.
    #[module(skip)]
    values: usize,
    /// Where the output is in the value table.
    #[module(skip)]
    output: usize,
    #[module(skip)]
    input_shape: Vec<usize>,
}

struct FlattenVisitor {
    values: Vec<f32>,
}

impl ModuleVisitor for FlattenVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        let slice = data
            .as_slice::<f32>()
            .expect("Tessera models hold f32 parameters");
        self.values.extend_from_slice(slice);
    }
}

struct LoadMapper<'a> {
    values: &'a [f32],
    offset: usize,
}

impl ModuleMapper for LoadMapper<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let values = self.values;
        let offset = &mut self.offset;
        param.map(|tensor| {
            let dims = tensor.dims();
            let n: usize = dims.iter().product();
            let slice = values[*offset..*offset + n].to_vec();
            *offset += n;
            let loaded = Tensor::from_data(TensorData::new(slice, dims), &tensor.device());
            // Keep the parameter trainable on an autodiff device.
            if tensor.is_require_grad() {
                loaded.set_require_grad(true)
            } else {
                loaded
            }
        })
    }
}

impl SpecModel {
    /// A freshly initialised model for `spec` on `device`.
    pub fn new(spec: &ModelSpec, device: &Device) -> Result<Self, ModelError> {
        let graph = spec.graph()?;
        let resolved = spec.resolve_graph()?;
        if !matches!(graph.input_shape.len(), 1 | 3) {
            return Err(ModelError::InputRank(graph.input_shape.clone()));
        }
        let schedule = graph.schedule();
        let mut layers = Vec::new();
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for (node, step) in graph.nodes.iter().zip(schedule.steps) {
            let input = &resolved.shapes[&node.inputs[0]];
            let layer = match node.op {
                Op::Dense { units } => Some(Layer::Dense(
                    LinearConfig::new(input.iter().product(), units).init(device),
                )),
                Op::Conv2d(c) => Some(Layer::Conv(
                    Conv2dConfig::new([input[0], c.channels], c.kernel)
                        .with_stride(c.stride)
                        .with_dilation(c.dilation)
                        .with_groups(c.groups)
                        .with_padding(PaddingConfig2d::Explicit(
                            c.pads[0], c.pads[1], c.pads[2], c.pads[3],
                        ))
                        .init(device),
                )),
                Op::Affine => Some(Layer::Affine(Affine::new(input[0], device))),
                _ => None,
            };
            let at = layer.map(|l| {
                layers.push(l);
                layers.len() - 1
            });
            steps.push(Step {
                op: node.op,
                inputs: step.inputs,
                layer: at,
                frees: step.frees,
            });
        }
        Ok(SpecModel {
            layers,
            plan: steps,
            values: graph.nodes.len() + 1,
            output: schedule.output,
            input_shape: graph.input_shape,
        })
    }

    /// A model for `spec` with parameters `flat` (canonical order).
    pub fn from_flat(spec: &ModelSpec, flat: &[f32], device: &Device) -> Result<Self, ModelError> {
        Self::new(spec, device)?.load_flat(flat)
    }

    /// All parameters in canonical order.
    pub fn flatten(&self) -> Vec<f32> {
        let mut visitor = FlattenVisitor { values: Vec::new() };
        self.visit(&mut visitor);
        visitor.values
    }

    /// Replaces every parameter from `flat` (canonical order).
    pub fn load_flat(self, flat: &[f32]) -> Result<Self, ModelError> {
        let expected = self.num_params();
        if flat.len() != expected {
            return Err(ModelError::WrongLength {
                expected,
                got: flat.len(),
            });
        }
        if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::NotFinite(i));
        }
        let mut mapper = LoadMapper {
            values: flat,
            offset: 0,
        };
        Ok(self.map(&mut mapper))
    }

    /// Logits for a batch of `n` samples given row-major.
    pub fn forward(&self, batch: &[f32], n: usize, device: &Device) -> Tensor<2> {
        let x = match self.input_shape.as_slice() {
            &[c, h, w] => Activation::Image(Tensor::from_data(
                TensorData::new(batch.to_vec(), [n, c, h, w]),
                device,
            )),
            shape => Activation::Flat(Tensor::from_data(
                TensorData::new(batch.to_vec(), [n, shape.iter().product()]),
                device,
            )),
        };
        let mut values: Vec<Option<Activation>> = vec![None; self.values];
        values[0] = Some(x);
        for (i, step) in self.plan.iter().enumerate() {
            let inputs = step
                .inputs
                .iter()
                .map(|&v| {
                    values[v]
                        .clone()
                        .expect("the plan reads values before freeing them")
                })
                .collect();
            for &v in &step.frees {
                values[v] = None;
            }
            let layer = step.layer.map(|l| &self.layers[l]);
            values[i + 1] = Some(ops::apply(&step.op, layer, inputs));
        }
        values[self.output]
            .take()
            .expect("the output is never freed")
            .flat()
    }
}

/// Initial parameters for `spec` (burn's default initialisers) from a fresh module.
pub fn initial_params(spec: &ModelSpec) -> Result<Vec<f32>, ModelError> {
    Ok(SpecModel::new(spec, &Device::flex())?.flatten())
}

#[cfg(test)]
mod tests {
    use tessera_common::graph::{INPUT, ModelGraph, Node};

    use super::*;

    #[test]
    fn flatten_and_load_round_trip_in_canonical_order() {
        let spec = ModelSpec::network_a();
        let device = Device::flex();
        let n = spec.num_params().unwrap();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 1e-6).collect();
        let model = SpecModel::from_flat(&spec, &values, &device).unwrap();
        assert_eq!(model.flatten(), values);
        // Canonical order: first dense weight is [784, 128] row-major, then its bias.
        let first = &model.layers[0];
        let Layer::Dense(l) = first else {
            panic!("dense first")
        };
        assert_eq!(l.weight.val().dims(), [784, 128]);
        let w = l.weight.val().into_data();
        assert_eq!(w.as_slice::<f32>().unwrap()[..3], values[..3]);
        let b = l.bias.as_ref().unwrap().val().into_data();
        assert_eq!(b.as_slice::<f32>().unwrap()[0], values[784 * 128]);
        assert!(matches!(
            SpecModel::from_flat(&spec, &values[1..], &device),
            Err(ModelError::WrongLength { .. })
        ));
    }

    /// Every value of a small graph computed by hand: an affine node, a residual addition
    /// reading the input twice, a concatenation, global pooling and a dense head.
    #[test]
    fn a_graph_runs_node_by_node_with_its_parameters_in_graph_order() {
        let spec = ModelSpec::from_graph(ModelGraph {
            input_shape: vec![2, 2, 2],
            nodes: vec![
                Node::new("a", Op::Affine, &[INPUT]),
                Node::new("s", Op::Add, &[INPUT, "a"]),
                Node::new("cat", Op::Concat, &["s", INPUT]),
                Node::new("g", Op::GlobalAvgPool, &["cat"]),
                Node::new("fc", Op::Dense { units: 1 }, &["g"]),
            ],
            output: "fc".into(),
        });
        // Scale [2, 3], shift [1, 0]; the dense weight [4, 1] is 1, 10, 100, 1000, bias 0.5.
        let params = [2.0, 3.0, 1.0, 0.0, 1.0, 10.0, 100.0, 1000.0, 0.5];
        assert_eq!(spec.num_params(), Ok(params.len()));
        let device = Device::flex();
        let model = SpecModel::from_flat(&spec, &params, &device).unwrap();
        assert_eq!(model.flatten(), params);
        // Channel 0 is 1, 2, 3, 4 (mean 2.5), channel 1 is 5, 6, 7, 8 (mean 6.5).
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        // s = x + (scale x + shift): channel 0 is 3x + 1 (mean 8.5), channel 1 is 4x (mean 26).
        let expected = 8.5 + 10.0 * 26.0 + 100.0 * 2.5 + 1000.0 * 6.5 + 0.5;
        let logits = model.forward(&x, 1, &device).into_data();
        assert_eq!(logits.as_slice::<f32>().unwrap(), &[expected]);
    }
}
