//! Evaluation and reference computations of a [`ModelSpec`] model in plaintext: accuracy and loss,
//! logits, and the gradients by burn's autodiff that encrypted training's tests compare with.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use tessera_common::dataset::Dataset;
use tessera_common::model_spec::ModelSpec;

use crate::model::{ModelError, SpecModel};

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
