//! burn modules built from a [`ModelSpec`], their canonical flat parameter vector, local training
//! and evaluation.
//!
//! [`SpecModel`] holds the parameterised layers (dense, conv) in spec order and a plan of the
//! parameter-free steps between them. [`SpecModel::flatten`] walks the module with a
//! [`ModuleVisitor`] and [`SpecModel::load_flat`] writes a vector back with a [`ModuleMapper`]; both
//! see parameters in the same order (spec order; weight before bias), which is the canonical order
//! of every update vector in Tessera (see `tessera_common::model_spec`).
//!
//! Training uses burn's autodiff over the pure-Rust `flex` CPU backend
//! (`Device::flex().autodiff()`), SGD, and cross-entropy on the logits.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use tessera_common::dataset::Dataset;
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

/// Settings of local training.
#[derive(Debug, Clone, Copy)]
pub struct TrainSettings {
    /// Epochs over the local data.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// SGD learning rate.
    pub learning_rate: f64,
    /// Seed of the per-epoch shuffle.
    pub shuffle_seed: u64,
}

/// What one local training run produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The trained parameters.
    pub params: Vec<f32>,
    /// Mean cross-entropy over the last epoch's batches.
    pub mean_loss: f64,
}

/// Trains `spec` from `start` on `data`; `on_batch(done, total)` reports progress.
pub fn train_local(
    spec: &ModelSpec,
    start: &[f32],
    data: &Dataset,
    settings: &TrainSettings,
    on_batch: impl FnMut(usize, usize),
) -> Result<TrainOutcome, ModelError> {
    let batch = settings.batch_size.max(1);
    let plan = TrainPlan {
        epochs: batch_order(data.len(), batch, settings.epochs, settings.shuffle_seed),
        rates: vec![settings.learning_rate; settings.epochs],
        optimizer: LocalOptimizer::Sgd,
    };
    train_plan(spec, start, data, &plan, on_batch)
}

/// The optimizer of a plaintext run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LocalOptimizer {
    /// SGD without momentum.
    Sgd,
    /// Adam (`amsgrad`: AMSgrad) with its decays and epsilon.
    Adam {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Epsilon.
        eps: f64,
        /// AMSgrad's running maximum of the second moment.
        amsgrad: bool,
    },
}

/// A plaintext run spelled out: the batches of each epoch, the learning rate of each epoch and
/// the optimizer (encrypted training's `--compare-plaintext` replays its own plan here).
#[derive(Debug, Clone)]
pub struct TrainPlan {
    /// Per epoch, the batches (sample indices).
    pub epochs: Vec<Vec<Vec<usize>>>,
    /// Per epoch, the learning rate.
    pub rates: Vec<f64>,
    /// The optimizer.
    pub optimizer: LocalOptimizer,
}

/// Trains `spec` from `start` on `data` following `plan` (mean cross-entropy per batch; binary
/// cross-entropy on 0/1 labels for a model with a single logit).
pub fn train_plan(
    spec: &ModelSpec,
    start: &[f32],
    data: &Dataset,
    plan: &TrainPlan,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<TrainOutcome, ModelError> {
    let device = Device::flex().autodiff();
    let mut model = SpecModel::from_flat(spec, start, &device)?;
    spec.check_data(&data.sample_shape, data.max_label())?;
    let mut optim = match plan.optimizer {
        LocalOptimizer::Sgd => SgdConfig::new().init(),
        LocalOptimizer::Adam {
            beta1,
            beta2,
            eps,
            amsgrad,
        } => AdamConfig::new()
            .with_beta_1(beta1 as f32)
            .with_beta_2(beta2 as f32)
            .with_epsilon(eps as f32)
            .with_amsgrad(amsgrad)
            .init(),
    };
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let binary = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    let total: usize = plan.epochs.iter().map(Vec::len).sum();
    let mut mean_loss = 0.0;
    let mut done = 0;
    for (batches, rate) in plan.epochs.iter().zip(&plan.rates) {
        let mut loss_sum = 0.0;
        for idx in batches {
            let part = data.subset(idx);
            let logits = model.forward(&part.features, idx.len(), &device);
            let targets: Vec<i64> = part.labels.iter().map(|l| i64::from(*l)).collect();
            let loss = if logits.dims()[1] == 1 {
                let targets =
                    Tensor::<2, Int>::from_data(TensorData::new(targets, [idx.len(), 1]), &device);
                binary.forward(logits, targets)
            } else {
                let targets =
                    Tensor::<1, Int>::from_data(TensorData::new(targets, [idx.len()]), &device);
                loss_fn.forward(logits, targets)
            };
            loss_sum += f64::from(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(*rate, model, grads);
            done += 1;
            on_batch(done, total);
        }
        mean_loss = loss_sum / batches.len().max(1) as f64;
    }
    Ok(TrainOutcome {
        params: model.flatten(),
        mean_loss,
    })
}

/// A single logit's correct predictions (`z > 0` for label 1) and summed binary cross-entropy
/// over a chunk.
fn binary_scores(logits: Tensor<2>, labels: &[u8], device: &Device) -> (usize, f64) {
    let n = labels.len();
    let z = logits.clone().into_data();
    let z = z.as_slice::<f32>().map(<[f32]>::to_vec).unwrap_or_default();
    let right = z
        .iter()
        .zip(labels)
        .filter(|(v, l)| (**v > 0.0) == (**l == 1))
        .count();
    let targets: Vec<i64> = labels.iter().map(|l| i64::from(*l)).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), device);
    let loss = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device)
        .forward(logits, targets)
        .into_scalar::<f32>();
    (right, f64::from(loss) * n as f64)
}

/// Accuracy and mean cross-entropy of `params` on `data` (a model with a single logit is a
/// binary classifier: label 1 when the logit is positive, binary cross-entropy).
pub fn evaluate(
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
) -> Result<(f64, f64), ModelError> {
    let device = Device::flex();
    let model = SpecModel::from_flat(spec, params, &device)?;
    spec.check_data(&data.sample_shape, data.max_label())?;
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut correct = 0usize;
    let mut loss_sum = 0.0;
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(500) {
        let part = data.subset(chunk);
        let logits = model.forward(&part.features, chunk.len(), &device);
        if logits.dims()[1] == 1 {
            let (right, loss) = binary_scores(logits, &part.labels, &device);
            correct += right;
            loss_sum += loss;
            continue;
        }
        let predicted = logits.clone().argmax(1).into_data();
        let predicted = predicted
            .as_slice::<i64>()
            .map(<[i64]>::to_vec)
            .unwrap_or_else(|_| {
                predicted
                    .as_slice::<i32>()
                    .map(|v| v.iter().map(|x| i64::from(*x)).collect())
                    .unwrap_or_default()
            });
        correct += predicted
            .iter()
            .zip(&part.labels)
            .filter(|(p, l)| **p == i64::from(**l))
            .count();
        let targets: Vec<i64> = part.labels.iter().map(|l| i64::from(*l)).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [chunk.len()]), &device);
        loss_sum +=
            f64::from(loss_fn.forward(logits, targets).into_scalar::<f32>()) * chunk.len() as f64;
    }
    let n = data.len().max(1) as f64;
    Ok((correct as f64 / n, loss_sum / n))
}

/// Plaintext logits `[n, outputs]` (row-major) of `params` for `n` samples given row-major.
pub fn logits(
    spec: &ModelSpec,
    params: &[f32],
    features: &[f32],
    n: usize,
) -> Result<Vec<f32>, ModelError> {
    let expected = n * spec.input_shape.iter().product::<usize>();
    if features.len() != expected {
        return Err(ModelError::WrongLength {
            expected,
            got: features.len(),
        });
    }
    let device = Device::flex();
    let model = SpecModel::from_flat(spec, params, &device)?;
    let out = model.forward(features, n, &device).into_data();
    Ok(out
        .as_slice::<f32>()
        .map(<[f32]>::to_vec)
        .unwrap_or_default())
}

/// The gradient of the cross-entropy summed over a batch of `n` samples (not averaged: the
/// scale encrypted training's backward pass works in) with respect to `params`, in canonical
/// order, by burn's autodiff. The reference of the encrypted gradients' tests.
pub fn gradients(
    spec: &ModelSpec,
    params: &[f32],
    features: &[f32],
    labels: &[u8],
    n: usize,
) -> Result<Vec<f32>, ModelError> {
    gradients_with(spec, params, features, n, PlainLoss::CrossEntropy(labels))
}

/// A loss and its targets for [`gradients_with`].
#[derive(Debug, Clone, Copy)]
pub enum PlainLoss<'a> {
    /// Softmax cross-entropy against class labels.
    CrossEntropy(&'a [u8]),
    /// Binary cross-entropy of the sigmoid of a single logit against 0/1 labels.
    BinaryCrossEntropy(&'a [u8]),
    /// Half the squared error against real targets (`n x outputs`, row-major).
    HalfSquaredError(&'a [f32]),
}

/// The gradient of a loss summed over a batch of `n` samples (see [`gradients`]).
pub fn gradients_with(
    spec: &ModelSpec,
    params: &[f32],
    features: &[f32],
    n: usize,
    loss: PlainLoss<'_>,
) -> Result<Vec<f32>, ModelError> {
    let device = Device::flex().autodiff();
    let model = SpecModel::from_flat(spec, params, &device)?;
    let logits = model.forward(features, n, &device);
    let ints = |labels: &[u8], shape: [usize; 2]| {
        let v: Vec<i64> = labels.iter().map(|l| i64::from(*l)).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, shape), &device)
    };
    let loss = match loss {
        PlainLoss::CrossEntropy(labels) => {
            let targets = ints(labels, [n, 1]).reshape([n]);
            CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits, targets)
                .mul_scalar(n as f32)
        }
        PlainLoss::BinaryCrossEntropy(labels) => BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&device)
            .forward(logits, ints(labels, [n, 1]))
            .mul_scalar(n as f32),
        PlainLoss::HalfSquaredError(targets) => {
            let k = targets.len() / n.max(1);
            let t = Tensor::<2>::from_data(TensorData::new(targets.to_vec(), [n, k]), &device);
            logits.sub(t).square().sum().mul_scalar(0.5)
        }
    };
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut visitor = GradVisitor {
        grads: &grads,
        values: Vec::new(),
    };
    model.visit(&mut visitor);
    Ok(visitor.values)
}

struct GradVisitor<'a> {
    grads: &'a GradientsParams,
    values: Vec<f32>,
}

impl ModuleVisitor for GradVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let n: usize = param.val().dims().iter().product();
        match self.grads.get::<D>(param.id) {
            Some(g) => {
                let data = g.into_data();
                let slice = data
                    .as_slice::<f32>()
                    .expect("Tessera models hold f32 parameters");
                self.values.extend_from_slice(slice);
            }
            None => self.values.extend(std::iter::repeat_n(0.0, n)),
        }
    }
}

pub use tessera_common::batches::batch_order;

/// Initial parameters for `spec` (burn's default initialisers) from a fresh module.
pub fn initial_params(spec: &ModelSpec) -> Result<Vec<f32>, ModelError> {
    Ok(SpecModel::new(spec, &Device::flex())?.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::dataset::Split;

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

    #[test]
    fn local_training_reduces_loss() {
        let spec = ModelSpec::logistic_regression();
        let data = Dataset::bundled_mnist(Split::Train).split_iid(8).remove(0);
        let start = initial_params(&spec).unwrap();
        let (acc0, loss0) = evaluate(&spec, &start, &data).unwrap();
        let settings = TrainSettings {
            epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            shuffle_seed: 1,
        };
        let out = train_local(&spec, &start, &data, &settings, |_, _| {}).unwrap();
        let (acc1, loss1) = evaluate(&spec, &out.params, &data).unwrap();
        assert!(loss1 < loss0, "loss {loss0} -> {loss1}");
        assert!(acc1 > acc0.max(0.6), "accuracy {acc0} -> {acc1}");
    }
}

#[cfg(test)]
mod conv_tests {
    use super::*;
    use tessera_common::model_spec::LayerSpec;

    #[test]
    fn conv_pool_specs_build_train_and_flatten() {
        let spec = ModelSpec {
            input_shape: vec![1, 28, 28],
            layers: vec![
                LayerSpec::Conv2d {
                    channels: 4,
                    kernel: 5,
                    stride: 2,
                    padding: 2,
                },
                LayerSpec::Relu,
                LayerSpec::MaxPool2d {
                    kernel: 2,
                    stride: 2,
                },
                LayerSpec::Sigmoid,
                LayerSpec::AvgPool2d {
                    kernel: 2,
                    stride: 1,
                },
                LayerSpec::Flatten,
                LayerSpec::Dense { units: 10 },
            ],
        };
        let start = initial_params(&spec).unwrap();
        assert_eq!(start.len(), spec.num_params().unwrap());
        let device = Device::flex();
        let model = SpecModel::from_flat(&spec, &start, &device).unwrap();
        assert_eq!(model.flatten(), start);
        let data = Dataset::bundled_mnist(tessera_common::dataset::Split::Test)
            .subset(&(0..64).collect::<Vec<_>>());
        assert_eq!(model.forward(&data.features, 64, &device).dims(), [64, 10]);
        let settings = TrainSettings {
            epochs: 1,
            batch_size: 16,
            learning_rate: 0.1,
            shuffle_seed: 3,
        };
        let out = train_local(&spec, &start, &data, &settings, |_, _| {}).unwrap();
        assert_eq!(out.params.len(), start.len());
        assert_ne!(out.params, start);
    }
}
