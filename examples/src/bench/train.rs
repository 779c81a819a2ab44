//! `bench train`: one encrypted training step (forward, loss gradient, backward, optimizer) of
//! MNIST networks A-D at batch 128 under ABY3 and SecureNN in the 128-bit ring, simulated mode
//! (three servers in this process), against burn's plaintext step on the same machine.
//!
//! Per row: online seconds, communication rounds and bytes (all servers) per batch, the
//! offline seconds and bytes per batch (the preprocessing a step takes, made ahead: the first,
//! untimed step measures it and `train::prepare_steps` makes it for the timed steps), and the
//! floor of the online phase:
//!
//! - `plaintext_macs`: multiply-adds of the plaintext step (forward and backward matrix
//!   products). Every secure product costs [`products_per_matmul`] `u128` products of the same
//!   size across the parties online: 6 under ABY3 (three servers, two cross terms each:
//!   `x_i (y_i + y_{i+1}) + x_{i+1} y_i`), 4 under SecureNN (each server two:
//!   `e (b_0 + f) + a_0 f` and `e b_1 + a_1 f`; the dealer's product for the triple is offline).
//! - `floor_seconds`: those `u128` multiply-adds at the rate the kernel reaches on this machine
//!   with both cores (measured at the start, a 128 x 784 x 128 product on each core: about three 64-bit
//!   multiplications per multiply-add, the scalar floor), plus the bytes the step moves at the
//!   rate of a memory copy (simulated mode passes messages through memory). `x_floor` is the
//!   measured time over it.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tessera_common::dataset::{Dataset, Split};
use tessera_common::fixed::FixedPoint;
use tessera_common::model_spec::{ModelSpec, ResolvedLayer};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::Seed;
use tessera_common::protocol::ProtocolKind;
use tessera_common::ring::RingTensor;
use tessera_common::train_job::Optimizer;
use tessera_ml::{TrainSettings, train_local};
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Protocol, SecureNn};
use tessera_mpc::train::init::{Init, initial_params};
use tessera_mpc::train::{Loss, TrainSpec, Trainer, prepare_steps};
use tessera_mpc::{MpcError, Session};

use super::floor::Rates;
use super::tables::si;

const BATCH: usize = 128;
const F: u32 = 20;
/// Steps timed per row.
const STEPS: usize = 2;
/// `u128` products per secure matrix product online, over all parties (module docs).
fn products_per_matmul(protocol: &str) -> f64 {
    if protocol == "aby3" { 6.0 } else { 4.0 }
}

fn encode(values: &[f64], shape: &[usize]) -> RingTensor<u128> {
    let fixed = FixedPoint { frac_bits: F };
    let v = values
        .iter()
        .map(|x| fixed.encode(*x).expect("bench inputs are small reals"))
        .collect();
    RingTensor::from_vec(shape, v).expect("shape")
}

/// Multiply-adds of one plaintext training step (forward, and backward for weights and
/// inputs; the first layer's input gradient is skipped as the secure step skips it).
fn macs(spec: &ModelSpec, batch: usize) -> f64 {
    let Ok((layers, _)) = spec.resolve() else {
        return 0.0;
    };
    let mut shape = spec.input_shape.clone();
    let mut total = 0.0;
    let mut first = true;
    for layer in layers {
        match layer {
            ResolvedLayer::Dense { inputs, units } => {
                let fwd = (batch * inputs * units) as f64;
                total += fwd * if first { 2.0 } else { 3.0 };
                first = false;
                shape = vec![units];
            }
            ResolvedLayer::Conv2d {
                in_channels,
                channels,
                kernel,
                stride,
                padding,
            } => {
                let out = |d: usize| (d + 2 * padding - kernel) / stride + 1;
                let (oh, ow) = (out(shape[1]), out(shape[2]));
                let fwd = (batch * oh * ow * in_channels * kernel * kernel * channels) as f64;
                total += fwd * if first { 2.0 } else { 3.0 };
                first = false;
                shape = vec![channels, oh, ow];
            }
            ResolvedLayer::Stateless(s) => {
                use tessera_common::model_spec::StatelessLayer::*;
                shape = match s {
                    MaxPool2d(k, st) | AvgPool2d(k, st) => {
                        vec![shape[0], (shape[1] - k) / st + 1, (shape[2] - k) / st + 1]
                    }
                    Flatten => vec![shape.iter().product()],
                    _ => shape,
                };
            }
        }
    }
    total
}

/// What one server measured, per step.
struct Step {
    /// Online seconds, rounds and bytes sent.
    seconds: f64,
    rounds: u64,
    bytes: u64,
    /// The preprocessing made ahead: seconds and bytes sent.
    offline_seconds: f64,
    offline_bytes: u64,
    /// Bytes one step's preprocessing takes in a computing server's pools.
    pool_bytes: u64,
}

/// One untimed step (it measures what a step takes from the pools), the preprocessing of
/// [`STEPS`] steps made ahead, then the timed steps.
async fn steps<P: Protocol<Elem = u128>>(
    session: Arc<Session<MemoryNetwork>>,
    p: P,
    spec: ModelSpec,
    optimizer: Optimizer,
    inputs: Arc<[RingTensor<u128>; 3]>,
) -> Result<Step, MpcError> {
    let me = p.me();
    let mut shared = Vec::new();
    for (owner, x) in inputs.iter().enumerate() {
        shared.push(
            p.share(owner, (me == owner).then_some(x), x.shape())
                .await?,
        );
    }
    let model = SecureModel::new(&spec)?;
    let params = model.split_params(&p, &shared[0])?;
    let train = TrainSpec {
        loss: Loss::SoftmaxCrossEntropy,
        optimizer,
        activations: Activations::Exact,
        dp: None,
    };
    let mut trainer = Trainer::new::<P>(model, train, params)?;
    let asked = p.wanted();
    trainer.step(&p, &shared[1], &shared[2], false).await?;
    let per_step = p.wanted().since(&asked);
    session.barrier().await?;
    let before = session.net_stats();
    let start = Instant::now();
    prepare_steps(&p, &per_step, STEPS as u64).await?;
    let offline_seconds = start.elapsed().as_secs_f64() / STEPS as f64;
    let offline = session.net_stats().since(&before);
    session.barrier().await?;
    let before = session.net_stats();
    let start = Instant::now();
    for _ in 0..STEPS {
        trainer.step(&p, &shared[1], &shared[2], false).await?;
    }
    let seconds = start.elapsed().as_secs_f64() / STEPS as f64;
    let stats = session.net_stats().since(&before);
    Ok(Step {
        seconds,
        rounds: stats.rounds / STEPS as u64,
        bytes: stats.bytes_sent / STEPS as u64,
        offline_seconds,
        offline_bytes: offline.bytes_sent / STEPS as u64,
        pool_bytes: per_step.bytes(),
    })
}

fn plaintext_seconds(spec: &ModelSpec, data: &Dataset, start: &[f32]) -> f64 {
    let settings = TrainSettings {
        epochs: 1,
        batch_size: BATCH,
        learning_rate: 0.01,
        shuffle_seed: 1,
    };
    let _ = train_local(spec, start, data, &settings, |_, _| {});
    let t = Instant::now();
    for _ in 0..3 {
        let _ = train_local(spec, start, data, &settings, |_, _| {});
    }
    t.elapsed().as_secs_f64() / 3.0
}

/// Test accuracies after `epochs` epochs of the encrypted and the plaintext run of a row (the
/// whole job of [`super::accuracy::run_job`], learning rate 0.5 decayed by 0.7 per epoch for
/// SGD, 0.002 for Adam and AMSgrad).
fn accuracy(
    runtime: &tokio::runtime::Runtime,
    protocol: &str,
    spec: &ModelSpec,
    optimizer: Optimizer,
    epochs: usize,
) -> Option<(f64, f64)> {
    let rate = match optimizer {
        Optimizer::Sgd { .. } => 0.5,
        _ => 0.002,
    };
    let protocol = match protocol {
        "securenn" => ProtocolKind::SecureNn,
        _ => ProtocolKind::Aby3,
    };
    let optimizer = optimizer.with_learning_rate(rate);
    match super::accuracy::run_job(runtime, protocol, spec, optimizer, 0.7, epochs) {
        Ok(s) => Some((
            s.encrypted_accuracy,
            s.plaintext_accuracy.unwrap_or(f64::NAN),
        )),
        Err(e) => {
            eprintln!("{protocol}: accuracy run failed: {e}");
            None
        }
    }
}

/// Runs the rows (those of model `only`, if given; with `accuracy_epochs`, also the accuracy
/// runs); prints the table, returns the JSON rows.
pub fn run(accuracy_epochs: Option<usize>, only: Option<&str>) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let rates = Rates::measure();
    println!(
        "floor rates: u128 matmul {}MAC/s (two cores), memory copy {}B/s",
        si(rates.macs_u128),
        si(rates.copy)
    );
    let data = Dataset::bundled_mnist(Split::Train).subset(&(0..BATCH).collect::<Vec<_>>());
    let models = [
        ("network_a", ModelSpec::network_a()),
        ("network_b", ModelSpec::network_b()),
        ("network_c", ModelSpec::network_c()),
        ("network_d", ModelSpec::network_d()),
    ];
    let mut cases: Vec<(&str, &str, ModelSpec, Optimizer)> = Vec::new();
    for protocol in ["aby3", "securenn"] {
        for (name, spec) in &models {
            cases.push((protocol, name, spec.clone(), Optimizer::sgd(0.01)));
        }
    }
    cases.push((
        "aby3",
        "network_a",
        ModelSpec::network_a(),
        Optimizer::adam(0.001),
    ));
    cases.push((
        "aby3",
        "network_a",
        ModelSpec::network_a(),
        Optimizer::amsgrad(0.001),
    ));
    let mut rows = Vec::new();
    cases.retain(|case| only.is_none_or(|o| o == case.1));
    for (protocol, name, spec, optimizer) in cases {
        let Ok(model) = SecureModel::new(&spec) else {
            continue;
        };
        let init = initial_params(&model, Init::He, &Seed([1; 32]));
        let x: Vec<f64> = data.features.iter().map(|v| f64::from(*v)).collect();
        let mut y = vec![0.0; BATCH * 10];
        for (i, l) in data.labels.iter().enumerate() {
            y[i * 10 + *l as usize] = 1.0;
        }
        let inputs = Arc::new([
            encode(&init, &[init.len()]),
            encode(&x, &[BATCH, data.sample_len()]),
            encode(&y, &[BATCH, 10]),
        ]);
        let result = runtime.block_on(tessera_mpc::harness::run_local(
            3,
            move |s: Arc<Session<MemoryNetwork>>| {
                let (spec, inputs) = (spec.clone(), Arc::clone(&inputs));
                async move {
                    match protocol {
                        "securenn" => {
                            let p = SecureNn::<_, u128>::in_ring(Arc::clone(&s), F)?;
                            steps(s, p, spec, optimizer, inputs).await
                        }
                        _ => {
                            let p = Aby3::<_, u128>::in_ring(Arc::clone(&s), F)?;
                            steps(s, p, spec, optimizer, inputs).await
                        }
                    }
                }
            },
        ));
        let per_server = match result {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{protocol} {name}: {e}");
                continue;
            }
        };
        let seconds = per_server.iter().map(|m| m.seconds).fold(0.0, f64::max);
        let rounds = per_server.iter().map(|m| m.rounds).max().unwrap_or(0);
        let bytes: u64 = per_server.iter().map(|m| m.bytes).sum();
        let offline_seconds = per_server
            .iter()
            .map(|m| m.offline_seconds)
            .fold(0.0, f64::max);
        let offline_bytes: u64 = per_server.iter().map(|m| m.offline_bytes).sum();
        let pool_bytes = per_server[0].pool_bytes;
        let spec = models
            .iter()
            .find(|m| m.0 == name)
            .map(|m| m.1.clone())
            .unwrap_or_else(ModelSpec::network_a);
        let start: Vec<f32> = init.iter().map(|v| *v as f32).collect();
        let plain = plaintext_seconds(&spec, &data, &start);
        let m = macs(&spec, BATCH);
        let floor = products_per_matmul(protocol) * m / rates.macs_u128 + bytes as f64 / rates.copy;
        let mut row = json!({
            "protocol": protocol, "model": name, "optimizer": optimizer.name(),
            "batch": BATCH, "seconds_per_batch": seconds, "rounds_per_batch": rounds,
            "bytes_per_batch": bytes, "plaintext_seconds_per_batch": plain,
            "offline_seconds_per_batch": offline_seconds,
            "offline_bytes_per_batch": offline_bytes,
            "pool_bytes_per_batch": pool_bytes,
            "plaintext_macs": m, "frac_bits": F, "ring_bits": 128,
            "floor_seconds": floor, "x_floor": seconds / floor,
        });
        if let Some(epochs) = accuracy_epochs {
            let acc = accuracy(&runtime, protocol, &spec, optimizer, epochs);
            let (enc, plain) = acc.unwrap_or((f64::NAN, f64::NAN));
            row["epochs"] = json!(epochs);
            row["encrypted_accuracy"] = json!(enc);
            row["plaintext_accuracy"] = json!(plain);
        }
        rows.push(row);
    }
    super::report::print_rows("train", &rows);
    rows
}
