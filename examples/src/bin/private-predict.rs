//! `private-predict`: encrypted prediction of MNIST digits with MNIST network A, in simulated
//! mode (three servers, the model owner and a prediction client in one process over the
//! in-memory network).
//!
//! ```text
//! cargo run --release -p tessera-examples --bin private-predict -- [--samples 100] [--epochs 2]
//! ```
//!
//! The model owner trains network A in the clear on the bundled digits (burn), then, for each
//! protocol, secret-shares its weights to the servers; the prediction client secret-shares a batch
//! of test digits; the servers run the network on shares and reveal the logits to the client only.
//! Printed per protocol, and written as `target/bench/predict.json` (the rows `bench report`
//! renders into the guide's protocols chapter): seconds, communication, the accuracy of the
//! encrypted predictions and how many agree with the plaintext model's. Pond has no exact comparison, so it runs TF Encrypted's
//! polynomial ReLU (and shows what that costs in accuracy); SecureNN and ABY3 run exact ReLU.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use serde_json::json;
use tessera_common::PartyId;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::net::{NetStats, Network};
use tessera_common::ring::RingTensor;
use tessera_common::sharing::outside::Scheme;
use tessera_examples::bench::report::{print_rows, write_json};
use tessera_examples::private_predict::PrivatePredictArgs;
use tessera_ml::{TrainSettings, initial_params, logits, train_local};
use tessera_mpc::error::PartyError;
use tessera_mpc::harness::run_local_with;
use tessera_mpc::io::{receive_output, send_input};
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_mpc::{MpcError, Session};

/// Fractional bits of the fixed-point encoding.
const F: u32 = 16;

fn encode(values: &[f32], shape: &[usize]) -> RingTensor<u64> {
    let v = values
        .iter()
        .map(|x| (f64::from(*x) * f64::from(1u32 << F)).round() as i64 as u64)
        .collect();
    RingTensor::from_vec(shape, v).unwrap_or_else(|_| RingTensor::zeros(shape))
}

fn argmax(row: &[f64]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f64::MIN),
            |best, (i, v)| if *v > best.1 { (i, *v) } else { best },
        )
        .0
}

/// The servers' side: weights from the model owner, inputs from the client, logits to the
/// client. Returns this server's traffic.
async fn serve<P: Protocol<Elem = u64>>(
    p: P,
    session: Arc<Session<MemoryNetwork>>,
    model: SecureModel,
    batch: usize,
    features: usize,
    activations: Activations,
) -> Result<NetStats, MpcError> {
    let before = session.net_stats();
    let flat = p
        .input(PartyId::ModelOwner, "weights", &[model.num_params()])
        .await?;
    let params = model.split_params(&p, &flat)?;
    let x = p
        .input(PartyId::DataOwner(0), "digits", &[batch, features])
        .await?;
    let out = model.forward(&p, &params, &x, activations).await?;
    p.output(&out, PartyId::DataOwner(0), "logits").await?;
    Ok(session.net_stats().since(&before))
}

struct Outcome {
    seconds: f64,
    stats: Vec<NetStats>,
    logits: Vec<f64>,
}

fn predict(
    runtime: &tokio::runtime::Runtime,
    protocol: &'static str,
    spec: &ModelSpec,
    weights: &[f32],
    digits: &[f32],
    batch: usize,
) -> Result<Outcome, MpcError> {
    let model = SecureModel::new(spec)?;
    let features = digits.len() / batch;
    let scheme = if protocol == "aby3" {
        Scheme::Replicated
    } else {
        Scheme::Additive
    };
    let activations = if protocol == "pond" {
        Activations::Polynomial
    } else {
        Activations::Exact
    };
    let w = encode(weights, &[weights.len()]);
    let x = encode(digits, &[batch, features]);
    let start = Instant::now();
    let (stats, outside) = runtime.block_on(run_local_with(
        3,
        &[PartyId::ModelOwner, PartyId::DataOwner(0)],
        |s| {
            let model = model.clone();
            async move {
                let session = Arc::clone(&s);
                match protocol {
                    "pond" => {
                        serve(
                            Pond::new(s, F)?,
                            session,
                            model,
                            batch,
                            features,
                            activations,
                        )
                        .await
                    }
                    "securenn" => {
                        serve(
                            SecureNn::new(s, F)?,
                            session,
                            model,
                            batch,
                            features,
                            activations,
                        )
                        .await
                    }
                    _ => {
                        serve(
                            Aby3::new(s, F)?,
                            session,
                            model,
                            batch,
                            features,
                            activations,
                        )
                        .await
                    }
                }
            }
        },
        |net| {
            let (w, x) = (w.clone(), x.clone());
            async move {
                if net.me() == PartyId::ModelOwner {
                    send_input(&net, scheme, "weights", &w).await?;
                    Ok(None)
                } else {
                    send_input(&net, scheme, "digits", &x).await?;
                    Ok(Some(
                        receive_output::<u64, _>(&net, scheme, "logits", &[batch, 10]).await?,
                    ))
                }
            }
        },
    ))?;
    let seconds = start.elapsed().as_secs_f64();
    let revealed = outside
        .into_iter()
        .flatten()
        .next()
        .ok_or(MpcError::Party(PartyError::NoOpening))?;
    let logits = revealed
        .as_slice()
        .iter()
        .map(|v| *v as i64 as f64 / f64::from(1u32 << F))
        .collect();
    Ok(Outcome {
        seconds,
        stats,
        logits,
    })
}

fn main() {
    tessera_alloc::init();
    let args = PrivatePredictArgs::parse();
    let spec = ModelSpec::network_a();
    let train = Dataset::bundled_mnist(Split::Train);
    let test = Dataset::bundled_mnist(Split::Test);
    let batch = args.samples.clamp(1, test.len());
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let start = initial_params(&spec)?;
        let settings = TrainSettings {
            epochs: args.epochs,
            batch_size: 32,
            learning_rate: 0.1,
            shuffle_seed: 7,
        };
        let t = Instant::now();
        let trained = train_local(&spec, &start, &train, &settings, |_, _| {})?;
        println!(
            "trained network A in the clear: {} epochs on {} digits in {:.1} s",
            args.epochs,
            train.len(),
            t.elapsed().as_secs_f64()
        );
        let idx: Vec<usize> = (0..batch).collect();
        let digits = test.subset(&idx);
        let plain = logits(&spec, &trained.params, &digits.features, batch)?;
        let plain_pred: Vec<usize> = plain
            .chunks(10)
            .map(|r| argmax(&r.iter().map(|v| f64::from(*v)).collect::<Vec<_>>()))
            .collect();
        let accuracy = |pred: &[usize]| {
            pred.iter()
                .zip(&digits.labels)
                .filter(|(p, l)| **p == usize::from(**l))
                .count() as f64
                / batch as f64
        };
        println!(
            "plaintext accuracy on {batch} test digits: {:.3}\n",
            accuracy(&plain_pred)
        );
        let runtime = tokio::runtime::Runtime::new()?;
        let mut rows = Vec::new();
        for protocol in ["pond", "securenn", "aby3"] {
            let out = predict(
                &runtime,
                protocol,
                &spec,
                &trained.params,
                &digits.features,
                batch,
            )?;
            let pred: Vec<usize> = out.logits.chunks(10).map(argmax).collect();
            let agree = pred.iter().zip(&plain_pred).filter(|(a, b)| a == b).count();
            let bytes: u64 = out.stats.iter().map(|s| s.bytes_sent).sum();
            rows.push(json!({
                "protocol": protocol,
                "relu": if protocol == "pond" { "polynomial" } else { "exact" },
                "batch": batch,
                "seconds": out.seconds,
                "bytes": bytes,
                "accuracy": accuracy(&pred),
                "agree": agree,
                "plaintext_accuracy": accuracy(&plain_pred),
                "epochs": args.epochs,
            }));
        }
        print_rows("predict", &rows);
        println!("wrote {}", write_json("predict", &rows)?.display());
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("private-predict: {e}");
        std::process::exit(1);
    }
}
