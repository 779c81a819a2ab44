//! Local training of a [`ModelSpec`] model: burn's autodiff over the pure-Rust `flex` CPU backend
//! (`Device::flex().autodiff()`), SGD or Adam, cross-entropy on the logits (binary cross-entropy
//! for a single logit).

use burn::nn::loss::{BinaryCrossEntropyLossConfig, CrossEntropyLossConfig};
use burn::optim::{AdamConfig, GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use tessera_common::batches::batch_order;
use tessera_common::dataset::Dataset;
use tessera_common::model_spec::ModelSpec;

use crate::model::{ModelError, SpecModel};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::evaluate;
    use crate::model::initial_params;
    use tessera_common::dataset::Split;
    use tessera_common::model_spec::LayerSpec;

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

    #[test]
    fn conv_pool_specs_build_train_and_flatten() {
        let spec = ModelSpec::chain(
            vec![1, 28, 28],
            vec![
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
        );
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
