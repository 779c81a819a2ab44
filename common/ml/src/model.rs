//! burn modules built from a [`ModelSpec`] and their canonical flat parameter vector.
//!
//! [`SpecModel`] holds the parameterised layers (dense, conv) in spec order and a plan of the
//! parameter-free steps between them. [`SpecModel::flatten`] walks the module with a
//! [`ModuleVisitor`] and [`SpecModel::load_flat`] writes a vector back with a [`ModuleMapper`]; both
//! see parameters in the same order (spec order; weight before bias), which is the canonical order
//! of every update vector in Tessera (see `tessera_common::model_spec`).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use tessera_common::model_spec::{
    DataMismatch, ModelSpec, ResolvedLayer, SpecError, StatelessLayer,
};

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
}

/// A parameterised layer.
#[derive(Module, Debug)]
pub enum Layer {
    /// Fully connected.
    Dense(Linear),
    /// 2-D convolution.
    Conv(Conv2d),
}

#[derive(Clone, Debug)]
enum Step {
    Layer(usize),
    Stateless(StatelessLayer),
}

/// A network built from a [`ModelSpec`].
#[derive(Module, Debug)]
pub struct SpecModel {
    layers: Vec<Layer>,
    #[module(skip)]
    plan: Vec<Step>,
    #[module(skip)]
    input_shape: Vec<usize>,
}

enum Activation {
    Flat(Tensor<2>),
    Image(Tensor<4>),
}

impl Activation {
    fn flat(self) -> Tensor<2> {
        match self {
            Activation::Flat(t) => t,
            Activation::Image(t) => t.flatten(1, 3),
        }
    }
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
        let (resolved, _) = spec.resolve()?;
        let mut layers = Vec::new();
        let mut plan = Vec::new();
        for layer in resolved {
            match layer {
                ResolvedLayer::Dense { inputs, units } => {
                    plan.push(Step::Layer(layers.len()));
                    layers.push(Layer::Dense(LinearConfig::new(inputs, units).init(device)));
                }
                ResolvedLayer::Conv2d {
                    in_channels,
                    channels,
                    kernel,
                    stride,
                    padding,
                } => {
                    plan.push(Step::Layer(layers.len()));
                    let conv = Conv2dConfig::new([in_channels, channels], [kernel, kernel])
                        .with_stride([stride, stride])
                        .with_padding(PaddingConfig2d::Explicit(
                            padding, padding, padding, padding,
                        ))
                        .init(device);
                    layers.push(Layer::Conv(conv));
                }
                ResolvedLayer::Stateless(s) => plan.push(Step::Stateless(s)),
            }
        }
        Ok(SpecModel {
            layers,
            plan,
            input_shape: spec.input_shape.clone(),
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
        let mut x = match self.input_shape.as_slice() {
            &[c, h, w] => Activation::Image(Tensor::from_data(
                TensorData::new(batch.to_vec(), [n, c, h, w]),
                device,
            )),
            shape => Activation::Flat(Tensor::from_data(
                TensorData::new(batch.to_vec(), [n, shape.iter().product()]),
                device,
            )),
        };
        for step in &self.plan {
            x = match (step, x) {
                (Step::Layer(i), x) => match (&self.layers[*i], x) {
                    (Layer::Dense(l), x) => Activation::Flat(l.forward(x.flat())),
                    (Layer::Conv(c), Activation::Image(t)) => Activation::Image(c.forward(t)),
                    (Layer::Conv(_), Activation::Flat(_)) => {
                        unreachable!("ModelSpec::resolve rejects conv on flat input")
                    }
                },
                (Step::Stateless(StatelessLayer::Relu), Activation::Flat(t)) => {
                    Activation::Flat(relu(t))
                }
                (Step::Stateless(StatelessLayer::Relu), Activation::Image(t)) => {
                    Activation::Image(relu(t))
                }
                (Step::Stateless(StatelessLayer::Sigmoid), Activation::Flat(t)) => {
                    Activation::Flat(sigmoid(t))
                }
                (Step::Stateless(StatelessLayer::Sigmoid), Activation::Image(t)) => {
                    Activation::Image(sigmoid(t))
                }
                (Step::Stateless(StatelessLayer::Flatten), x) => Activation::Flat(x.flat()),
                (Step::Stateless(StatelessLayer::MaxPool2d(k, s)), Activation::Image(t)) => {
                    Activation::Image(
                        MaxPool2dConfig::new([*k, *k])
                            .with_strides([*s, *s])
                            .init()
                            .forward(t),
                    )
                }
                (Step::Stateless(StatelessLayer::AvgPool2d(k, s)), Activation::Image(t)) => {
                    Activation::Image(
                        AvgPool2dConfig::new([*k, *k])
                            .with_strides([*s, *s])
                            .init()
                            .forward(t),
                    )
                }
                (Step::Stateless(_), Activation::Flat(_)) => {
                    unreachable!("ModelSpec::resolve rejects pooling on flat input")
                }
            };
        }
        x.flat()
    }
}

/// Initial parameters for `spec` (burn's default initialisers) from a fresh module.
pub fn initial_params(spec: &ModelSpec) -> Result<Vec<f32>, ModelError> {
    Ok(SpecModel::new(spec, &Device::flex())?.flatten())
}

#[cfg(test)]
mod tests {
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
}
