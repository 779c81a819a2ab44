//! `bench infer`: encrypted inference of large graph networks in simulated mode (three servers
//! in this process over the in-memory network, 64-bit ring, 16 fractional bits): ResNet-18 on
//! 3x32x32 at batch 1 and 128, ResNet-50, VGG-19 and DenseNet-121 on 3x224x224 at batch 1, under
//! ABY3 and SecureNN, each beside burn's plaintext forward pass of the same graph and weights on
//! this machine and TF Encrypted's published figure (its README and latest release: three
//! machines of 4 cores on a LAN).
//!
//! The networks are [`super::zoo`]'s (seeded He-uniform weights); the input is a seeded uniform
//! image batch in `[0, 1)`. Per row: `seconds` (the forward pass with its correlated randomness
//! made inline: preprocessing included, as TF Encrypted's figures include theirs), `rounds`
//! (the critical path) and `bytes` (sent by all servers), `peak_bytes` (the executor's schedule:
//! the most activation shares alive at once over all servers, 8 bytes an element, two shares a
//! server under ABY3 and one at each of SecureNN's two computing servers; the parameters' shares
//! and a node's temporaries, im2col patches above all, come on top), `rss_bytes` (this process's
//! peak resident memory after the row: every server's shares, the plaintext model and the
//! benchmark's own copies, a high-water mark over the rows so far), `plaintext_seconds`, and
//! `argmax_agree` (samples whose secure argmax is burn's, over the batch).
//!
//! The floor (`floor_seconds`, `x_floor`): the secure products at the kernel's measured rate
//! (`u64` multiply-adds: 6 products of each size online under ABY3, 4 under SecureNN, as
//! `bench train` counts them) plus the comparisons (every ReLU element, and `k^2 - 1` per
//! max-pooling output) at the per-element time a batch of 2^17 ReLUs takes here.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tessera_common::graph::Op;
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::NetStats;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::RingTensor;
use tessera_ml::SpecModel;
use tessera_mpc::harness::run_local;
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Protocol, SecureNn};
use tessera_mpc::{MpcError, Session, nn};

use super::floor::Rates;
use super::zoo::{self, Net};

/// Fractional bits.
const F: u32 = 16;

/// TF Encrypted's published LAN seconds for a model at batch 1, where it has one.
fn tf_encrypted(model: &str) -> Option<f64> {
    match model {
        "resnet50" => Some(13.55),
        "vgg19" => Some(49.63),
        "densenet121" => Some(33.53),
        _ => None,
    }
}

fn encode(values: &[f32], shape: &[usize]) -> RingTensor<u64> {
    let v = values
        .iter()
        .map(|x| (f64::from(*x) * f64::from(1u32 << F)).round() as i64 as u64)
        .collect();
    RingTensor::from_vec(shape, v).expect("shape")
}

fn decode(x: &RingTensor<u64>) -> Vec<f64> {
    x.as_slice()
        .iter()
        .map(|v| *v as i64 as f64 / f64::from(1u32 << F))
        .collect()
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// A benchmarked network: its name, its builder and the batch sizes it runs at.
type Case = (&'static str, fn() -> Net, &'static [usize]);

/// The spec, and the encoded weights and input batch, every server reads.
type Shared = Arc<(ModelSpec, [RingTensor<u64>; 2])>;

/// What one server measured.
struct Measured {
    seconds: f64,
    stats: NetStats,
    logits: Option<RingTensor<u64>>,
}

async fn forward<P: Protocol<Elem = u64>>(
    session: Arc<Session<MemoryNetwork>>,
    p: P,
    net: Shared,
) -> Result<Measured, MpcError> {
    let me = p.me();
    let (spec, data) = (&net.0, &net.1);
    let params = p
        .share(0, (me == 0).then_some(&data[0]), data[0].shape())
        .await?;
    let x = p
        .share(1, (me == 1).then_some(&data[1]), data[1].shape())
        .await?;
    let model = SecureModel::new(spec)?;
    let params = model.split_params(&p, &params)?;
    session.barrier().await?;
    let before = session.net_stats();
    let start = Instant::now();
    let logits = model.forward(&p, &params, &x, Activations::Exact).await?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = session.net_stats().since(&before);
    let logits = p.reveal(&logits, 0).await?;
    Ok(Measured {
        seconds,
        stats,
        logits,
    })
}

fn secure(
    runtime: &tokio::runtime::Runtime,
    protocol: &'static str,
    net: Shared,
) -> Result<Vec<Measured>, MpcError> {
    runtime.block_on(run_local(3, move |s: Arc<Session<MemoryNetwork>>| {
        let net = Arc::clone(&net);
        async move {
            if protocol == "securenn" {
                forward(Arc::clone(&s), SecureNn::new(s, F)?, net).await
            } else {
                forward(Arc::clone(&s), Aby3::new(s, F)?, net).await
            }
        }
    }))
}

/// Seconds per element of a batch of 2^17 ReLUs under `protocol`.
fn relu_cost(runtime: &tokio::runtime::Runtime, protocol: &'static str) -> f64 {
    let n = 1 << 17;
    let data = RingTensor::from_vec(&[n], Prg::new(&Seed([3; 32]), 0).ring_vec(n)).expect("shape");
    let times = runtime.block_on(run_local(3, move |s: Arc<Session<MemoryNetwork>>| {
        let data = data.clone();
        async move {
            async fn relu<P: Protocol<Elem = u64>>(
                s: Arc<Session<MemoryNetwork>>,
                p: P,
                data: RingTensor<u64>,
            ) -> Result<f64, MpcError> {
                let me = p.me();
                let x = p.share(0, (me == 0).then_some(&data), data.shape()).await?;
                s.barrier().await?;
                let start = Instant::now();
                nn::relu(&p, &x).await?;
                Ok(start.elapsed().as_secs_f64())
            }
            if protocol == "securenn" {
                relu(Arc::clone(&s), SecureNn::new(s, F)?, data).await
            } else {
                relu(Arc::clone(&s), Aby3::new(s, F)?, data).await
            }
        }
    }));
    times.map_or(f64::NAN, |t| t.into_iter().fold(0.0, f64::max) / n as f64)
}

/// Multiply-adds of the products and the comparisons of one forward pass of one sample.
fn costs(net: &Net) -> (f64, f64) {
    let graph = net.spec.graph().expect("a graph");
    let resolved = net.spec.resolve_graph().expect("resolves");
    let (mut macs, mut comparisons) = (0.0, 0.0);
    for node in &graph.nodes {
        let out: usize = resolved.shapes[&node.output].iter().product();
        let input = &resolved.shapes[&node.inputs[0]];
        match node.op {
            Op::Conv2d(c) => {
                let per = input[0] / c.groups.max(1) * c.kernel[0] * c.kernel[1];
                macs += (out * per) as f64;
            }
            Op::Dense { .. } => macs += (out * input.iter().product::<usize>()) as f64,
            Op::Relu | Op::LeakyRelu { .. } => comparisons += out as f64,
            Op::Clip { .. } => comparisons += 2.0 * out as f64,
            Op::MaxPool2d(p) => {
                comparisons += (out * (p.kernel[0] * p.kernel[1] - 1)) as f64;
            }
            _ => {}
        }
    }
    (macs, comparisons)
}

/// This process's peak resident memory (`VmHWM`), in bytes.
fn rss_peak() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

/// Runs every case (or those of model `only`); prints the table, returns the JSON rows.
pub fn run(only: Option<&str>) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let rates = Rates::measure();
    let relu = [
        ("aby3", relu_cost(&runtime, "aby3")),
        ("securenn", relu_cost(&runtime, "securenn")),
    ];
    println!(
        "floor rates: u64 matmul {:.2} GMAC/s (two cores); ReLU {:.2} us (ABY3), {:.2} us (SecureNN) an element\n",
        rates.macs_u64 / 1e9,
        relu[0].1 * 1e6,
        relu[1].1 * 1e6
    );
    let cases: [Case; 4] = [
        ("resnet18", || zoo::resnet18(32, 10), &[1, 128]),
        ("resnet50", zoo::resnet50, &[1]),
        ("densenet121", zoo::densenet121, &[1]),
        ("vgg19", zoo::vgg19, &[1]),
    ];
    let mut rows = Vec::new();
    for (name, build, batches) in cases {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let net = build();
        let (macs, comparisons) = costs(&net);
        let model = SecureModel::new(&net.spec).expect("the zoo's graphs resolve");
        let device = burn::tensor::Device::flex();
        let plain_model =
            SpecModel::from_flat(&net.spec, &net.weights, &device).expect("the zoo's weights fit");
        for &batch in batches {
            let features: usize = net.spec.input_shape.iter().product();
            let raw: Vec<u64> = Prg::new(&Seed([9; 32]), 0).ring_vec(batch * features);
            let x: Vec<f32> = raw
                .iter()
                .map(|r| (*r >> 40) as f32 / (1u64 << 24) as f32)
                .collect();
            let start = Instant::now();
            let plain = plain_model.forward(&x, batch, &device).into_data();
            let plaintext_seconds = start.elapsed().as_secs_f64();
            let plain: Vec<f64> = plain
                .as_slice::<f32>()
                .expect("f32 logits")
                .iter()
                .map(|v| f64::from(*v))
                .collect();
            let mut shape = vec![batch];
            shape.extend_from_slice(&net.spec.input_shape);
            let data = Arc::new((
                net.spec.clone(),
                [
                    encode(&net.weights, &[net.weights.len()]),
                    encode(&x, &shape),
                ],
            ));
            for (protocol, relu_seconds) in relu {
                let measured = match secure(&runtime, protocol, Arc::clone(&data)) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("{protocol} {name}: {e}");
                        continue;
                    }
                };
                let seconds = measured.iter().map(|m| m.seconds).fold(0.0, f64::max);
                let rounds = measured.iter().map(|m| m.stats.rounds).max().unwrap_or(0);
                let bytes: u64 = measured.iter().map(|m| m.stats.bytes_sent).sum();
                let logits = measured
                    .iter()
                    .find_map(|m| m.logits.as_ref())
                    .map(decode)
                    .unwrap_or_default();
                let classes = plain.len() / batch;
                let agree = logits
                    .chunks(classes)
                    .zip(plain.chunks(classes))
                    .filter(|(s, p)| argmax(s) == argmax(p))
                    .count();
                let max_error = logits
                    .iter()
                    .zip(&plain)
                    .map(|(s, p)| (s - p).abs())
                    .fold(0.0, f64::max);
                let (products, shares) = if protocol == "aby3" {
                    (6.0, 6)
                } else {
                    (4.0, 2)
                };
                let b = batch as f64;
                let floor = products * macs * b / rates.macs_u64 + comparisons * b * relu_seconds;
                rows.push(json!({
                    "model": name, "protocol": protocol, "batch": batch, "seconds": seconds,
                    "rounds": rounds, "bytes": bytes,
                    "peak_bytes": model.graph().peak_elements(batch) * 8 * shares,
                    "rss_bytes": rss_peak(),
                    "plaintext_seconds": plaintext_seconds,
                    "argmax_agree": agree as f64 / batch as f64,
                    "max_logit_error": max_error,
                    "macs": macs * b, "comparisons": comparisons * b,
                    "floor_seconds": floor, "x_floor": seconds / floor,
                    "tf_encrypted_seconds": tf_encrypted(name).filter(|_| batch == 1),
                }));
                super::report::print_rows("infer", &rows[rows.len() - 1..]);
            }
        }
    }
    println!();
    super::report::print_rows("infer", &rows);
    rows
}
