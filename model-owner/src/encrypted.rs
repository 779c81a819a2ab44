//! Encrypted training in simulated mode (`simulate --encrypted`): every party in one process,
//! the servers running [`serve_training`], the program the aggregators' job service runs in
//! networked mode (`model-owner train-encrypted`; see [`train_job`] for the transfers).
//!
//! - Each data owner secret-shares its count, its examples and its targets (one-hot rows, fixed
//!   point in the 128-bit ring) to the servers once ([`tessera_mpc::io`]).
//! - The initial weights are He-uniform from the job's seed (so a plaintext run can start from
//!   the same values): the model owner shares them as a private input, or, with
//!   [`EncryptedOptions::servers_init`], the servers draw them and nobody sends them.
//! - The model owner learns the owners' counts (hence the public batch plan), receives the loss
//!   of every `loss_every`-th batch for the progress bar and the weights after each epoch,
//!   revealed to it alone, and evaluates them on the test digits.
//!
//! With `compare_plaintext`, burn trains the same model from the same weights in the same batch
//! order with the same learning rate, in the clear, for the side-by-side accuracy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tessera_common::PartyId;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::fixed::FixedPoint;
use tessera_common::model_file::ModelFileError;
use tessera_common::model_spec::{ModelSpec, SpecError};
use tessera_common::net::Network;
use tessera_common::net::memory::MemoryNetwork;
pub use tessera_common::protocol::ProtocolKind;
use tessera_common::ring::RingTensor;
use tessera_common::sharing::outside::Scheme;
use tessera_common::train_job::Optimizer;
use tessera_common::train_job::{self, TrainJob, targets};
use tessera_ml::{LocalOptimizer, TrainPlan, evaluate, train_plan};
use tessera_mpc::MpcError;
use tessera_mpc::Session;
use tessera_mpc::error::{Invalid, PartyError};
use tessera_mpc::harness::run_local_patient;
use tessera_mpc::io::{receive_output, send_input};
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_mpc::train::job::{initial_weights, model_of, serve_training};

use crate::report::{PlotLabels, RoundMetrics, write_metrics_csv, write_plot};

/// Options of an encrypted training run.
#[derive(Debug, Clone)]
pub struct EncryptedOptions {
    /// The protocol.
    pub protocol: ProtocolKind,
    /// The model.
    pub model: ModelSpec,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Epochs over the union of the data.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Data owners (the bundled training digits split evenly among them).
    pub data_owners: usize,
    /// Examples used (the first `limit` of the bundled training digits; all if `None`).
    pub limit: Option<usize>,
    /// The binary task of TF Encrypted's logistic-regression benchmark (small digits 0-4
    /// against large 5-9) for a model with one logit, trained with binary cross-entropy.
    pub small_vs_large: bool,
    /// Fractional bits.
    pub frac_bits: u32,
    /// Also train in the clear with burn.
    pub compare_plaintext: bool,
    /// Reveal the loss of every `loss_every`-th batch to the model owner (0: never).
    pub loss_every: usize,
    /// DP-SGD (see `tessera_mpc::train::dp`).
    pub dp: Option<tessera_common::dp::DpSettings>,
    /// Seed of the initial weights and the batch order (epoch `e` shuffles with `seed + e`).
    pub seed: u64,
    /// The learning rate is multiplied by this after each epoch.
    pub lr_decay: f64,
    /// The servers draw the initial weights from the common seed instead of receiving them
    /// from the model owner.
    pub servers_init: bool,
    /// Weights to start from instead of the seed's (an ONNX model's); the model owner shares
    /// them, so they exclude `servers_init`.
    pub start: Option<Vec<f32>>,
    /// Output folder.
    pub out: PathBuf,
    /// Progress bar and per-epoch lines.
    pub interactive: bool,
}

/// What an encrypted run produced.
#[derive(Debug, Clone)]
pub struct EncryptedSummary {
    /// Test accuracy of the revealed model after the last epoch.
    pub encrypted_accuracy: f64,
    /// Test accuracy of burn's plaintext run, if asked for.
    pub plaintext_accuracy: Option<f64>,
    /// Per-epoch metrics.
    pub metrics: Vec<RoundMetrics>,
    /// Mean wall-clock seconds per batch of the encrypted training.
    pub seconds_per_batch: f64,
    /// Under DP-SGD, the `(epsilon, delta)` of the whole training.
    pub spent: Option<tessera_common::dp::Spent>,
}

/// Errors of an encrypted run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedError {
    /// Bad options.
    #[error("bad options: {0}")]
    Options(#[from] EncryptedOptionsError),
    /// The MPC computation failed.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// Plaintext evaluation or training failed.
    #[error("plaintext model: {0}")]
    Model(#[from] tessera_ml::ModelError),
    /// Writing the outputs failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Options an encrypted training cannot run with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptedOptionsError {
    /// Zero data owners, epochs or batch size.
    #[error("--data-owners, --epochs and --batch-size must be at least 1")]
    Zero,
    /// A comparison with burn for an optimizer burn's run does not have.
    #[error("--compare-plaintext has no SGD with momentum in burn's run")]
    CompareMomentum,
    /// The small-against-large task with a model of more than one logit, or another task with
    /// a one-logit model.
    #[error("the small-against-large task takes a model with one logit, and only it")]
    SmallVsLarge,
    /// A model spec whose layers do not fit.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A model that does not fit the data.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// A federated optimizer (FedAdam updates the global model between rounds).
    #[error("--optimizer {0} is federated; encrypted training takes sgd, adam or amsgrad")]
    Federated(&'static str),
    /// Servers asked to draw the weights of a model that brings its own.
    #[error(
        "the model brings its own weights, which the model owner shares: use --init \
         model-owner (the servers can only draw weights from the seed)"
    )]
    ServersCannotDraw,
    /// Starting weights of another model.
    #[error("{got} starting weights for a model of {params} parameters")]
    StartWeights {
        /// Weights given.
        got: usize,
        /// The model's parameters.
        params: usize,
    },
}

/// The model the model owner received, as written to `checkpoint.json` (`model deploy` reads
/// it).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EncryptedCheckpoint<'a> {
    pub model: &'a ModelSpec,
    pub protocol: &'static str,
    pub optimizer: &'static str,
    pub epochs: usize,
    pub frac_bits: u32,
    pub weights: Vec<f32>,
    pub metrics: &'a [RoundMetrics],
}

/// Fixed-point encoding in the 128-bit ring; a value that does not encode (not finite, out of
/// range) is refused with the data's name.
fn encode(
    values: impl Iterator<Item = f64>,
    f: u32,
    shape: &[usize],
    what: &'static str,
) -> Result<RingTensor<u128>, MpcError> {
    let fixed = FixedPoint { frac_bits: f };
    let v = values
        .map(|x| fixed.encode::<u128>(x))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Invalid::Encode { what, source })?;
    Ok(RingTensor::from_vec(shape, v)?)
}

fn decode(x: &RingTensor<u128>, f: u32) -> Vec<f32> {
    FixedPoint { frac_bits: f }
        .decode_slice(x.as_slice())
        .iter()
        .map(|v| *v as f32)
        .collect()
}

/// The weights an encrypted training starts from: `start` (an ONNX model's) if given, else the
/// He-uniform weights of the job's seed.
pub(crate) fn start_weights(
    start: Option<&[f32]>,
    job: &TrainJob,
    model: &SecureModel,
) -> Result<Vec<f64>, EncryptedOptionsError> {
    match start {
        None => Ok(initial_weights(job, model)),
        Some(_) if job.servers_init => Err(EncryptedOptionsError::ServersCannotDraw),
        Some(w) if w.len() != model.num_params() => Err(EncryptedOptionsError::StartWeights {
            got: w.len(),
            params: model.num_params(),
        }),
        Some(w) => Ok(w.iter().map(|v| f64::from(*v)).collect()),
    }
}

/// The model owner's hook after each epoch: the epoch, the revealed weights, the losses seen.
type OnEpoch = Arc<dyn Fn(usize, Vec<f32>, Vec<f64>) + Send + Sync>;

/// The outside parties' programs: data owner `i` shares its count, examples and targets; the
/// model owner shares the initial weights (unless the servers draw them), learns the counts,
/// and collects the sampled losses and the per-epoch weights.
async fn outside(
    net: MemoryNetwork,
    job: Arc<TrainJob>,
    parts: Arc<Vec<Dataset>>,
    init: Arc<Vec<f64>>,
    scheme: Scheme,
    on_epoch: OnEpoch,
    on_loss: Arc<dyn Fn(usize, f64) + Send + Sync>,
) -> Result<(), MpcError> {
    let f = job.frac_bits;
    let shape = job.check()?;
    match net.me() {
        PartyId::DataOwner(i) => {
            let part = &parts[i as usize];
            let n = part.len();
            let (features, classes) = (shape.features, shape.classes);
            let count = RingTensor::from_vec(&[1], vec![n as u128])?;
            let x = encode(
                part.features.iter().map(|v| f64::from(*v)),
                f,
                &[n * features],
                "examples",
            )?;
            let y = encode(targets(&part.labels, classes), f, &[n * classes], "labels")?;
            send_input(&net, scheme, train_job::N, &count).await?;
            send_input(&net, scheme, train_job::X, &x).await?;
            send_input(&net, scheme, train_job::Y, &y).await
        }
        PartyId::ModelOwner => {
            if !job.servers_init {
                let w0 = encode(init.iter().copied(), f, &[init.len()], "initial weights")?;
                send_input(&net, scheme, train_job::W0, &w0).await?;
            }
            let owners = job.owners.len();
            let rows: RingTensor<u128> =
                receive_output(&net, scheme, train_job::ROWS, &[owners]).await?;
            let total: usize = rows.as_slice().iter().map(|n| *n as usize).sum();
            let mut step = 0;
            for (e, batches) in job.order(total).iter().enumerate() {
                let mut losses = Vec::new();
                for (b, idx) in batches.iter().enumerate() {
                    if job.wants_loss(b) {
                        let l: RingTensor<u128> =
                            receive_output(&net, scheme, train_job::LOSS, &[1]).await?;
                        let mean = f64::from(decode(&l, f)[0]) / idx.len() as f64;
                        on_loss(step, mean);
                        losses.push(mean);
                    }
                    step += 1;
                }
                let label = train_job::weights_label(e);
                let w: RingTensor<u128> =
                    receive_output(&net, scheme, &label, &[init.len()]).await?;
                on_epoch(e, decode(&w, f), losses);
            }
            Ok(())
        }
        other => Err(PartyError::NotInJob(other).into()),
    }
}

/// Runs the servers under protocol `P` (made by `make`) and the outside parties.
async fn launch<P: Protocol<Elem = u128> + 'static>(
    make: fn(Arc<Session<MemoryNetwork>>, u32) -> Result<P, MpcError>,
    job: Arc<TrainJob>,
    activations: Activations,
    outsiders: &[PartyId],
    outsider: impl Fn(MemoryNetwork) -> tokio::task::JoinHandle<Result<(), MpcError>>,
) -> Result<(), MpcError> {
    // Every party waits up to an hour for a message: the model owner waits a whole epoch for
    // the weights, the servers wait while the owners share their data.
    run_local_patient(
        3,
        outsiders,
        std::time::Duration::from_secs(3600),
        move |s| {
            let job = Arc::clone(&job);
            async move {
                let p = make(s, job.frac_bits)?;
                serve_training(&p, &job, activations).await
            }
        },
        move |net| {
            let h = outsider(net);
            async move {
                h.await.map_err(|e| PartyError::Task {
                    what: "outside party",
                    message: e.to_string(),
                })?
            }
        },
    )
    .await?;
    Ok(())
}

fn aby3(s: Arc<Session<MemoryNetwork>>, f: u32) -> Result<Aby3<MemoryNetwork, u128>, MpcError> {
    Aby3::in_ring(s, f)
}

fn securenn(
    s: Arc<Session<MemoryNetwork>>,
    f: u32,
) -> Result<SecureNn<MemoryNetwork, u128>, MpcError> {
    SecureNn::in_ring(s, f)
}

fn pond(s: Arc<Session<MemoryNetwork>>, f: u32) -> Result<Pond<MemoryNetwork, u128>, MpcError> {
    Pond::in_ring(s, f)
}

/// What the model owner collects during the run.
#[derive(Default)]
struct Received {
    metrics: Vec<RoundMetrics>,
    weights: Vec<f32>,
}

/// Runs an encrypted training (see the module docs).
pub async fn simulate_encrypted(
    opts: EncryptedOptions,
) -> Result<EncryptedSummary, EncryptedError> {
    if opts.data_owners == 0 || opts.epochs == 0 || opts.batch_size == 0 {
        return Err(EncryptedOptionsError::Zero.into());
    }
    let momentum = matches!(opts.optimizer, Optimizer::Sgd { momentum, .. } if momentum != 0.0);
    if opts.compare_plaintext && momentum {
        return Err(EncryptedOptionsError::CompareMomentum.into());
    }
    let mut train_data = Dataset::bundled_mnist(Split::Train);
    if let Some(limit) = opts.limit {
        train_data = train_data.subset(&(0..limit.min(train_data.len())).collect::<Vec<_>>());
    }
    let mut test = Dataset::bundled_mnist(Split::Test);
    let outputs: usize = model_outputs(&opts.model)?;
    if opts.small_vs_large != (outputs == 1) {
        return Err(EncryptedOptionsError::SmallVsLarge.into());
    }
    if opts.small_vs_large {
        train_data = train_data.small_vs_large();
        test = test.small_vs_large();
    }
    let parts = Arc::new(train_data.split_iid(opts.data_owners));
    let job = Arc::new(TrainJob {
        spec: opts.model.clone(),
        optimizer: opts.optimizer,
        epochs: opts.epochs,
        batch_size: opts.batch_size,
        frac_bits: opts.frac_bits,
        owners: (0..opts.data_owners as u32)
            .map(PartyId::DataOwner)
            .collect(),
        max_rows: parts.iter().map(Dataset::len).max().unwrap_or(1).max(1),
        seed: opts.seed,
        lr_decay: opts.lr_decay,
        loss_every: opts.loss_every,
        servers_init: opts.servers_init,
        dp: opts.dp,
    });
    let model = model_of(&job)?;
    // The same values either way: the servers draw them from the seed of the job, or the model
    // owner draws them and shares them.
    let init = Arc::new(start_weights(opts.start.as_deref(), &job, &model)?);
    let activations = Activations::of(opts.protocol);
    let order = job.order(train_data.len());
    let batches: usize = order.iter().map(Vec::len).sum();
    let progress = if opts.interactive {
        indicatif::ProgressBar::new(batches as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} batches {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let received = Arc::new(std::sync::Mutex::new(Received::default()));
    let started = Instant::now();
    let on_epoch: OnEpoch = {
        let (received, spec, test, progress) = (
            Arc::clone(&received),
            opts.model.clone(),
            test.clone(),
            progress.clone(),
        );
        let clients = opts.data_owners;
        Arc::new(move |epoch, weights, losses| {
            let (accuracy, test_loss) = evaluate(&spec, &weights, &test).unwrap_or((0.0, f64::NAN));
            let (train_loss, line) = epoch_line(epoch, &losses, test_loss, accuracy);
            if progress.is_hidden() {
                println!("{line}");
            } else {
                progress.println(line);
            }
            let mut r = received.lock().unwrap_or_else(|p| p.into_inner());
            r.metrics.push(RoundMetrics {
                round: epoch as u64 + 1,
                train_loss,
                test_loss,
                test_accuracy: accuracy,
                clients,
                bytes: 0,
                seconds: started.elapsed().as_secs_f64(),
                epsilon: None,
            });
            r.weights = weights;
        })
    };
    let on_loss: Arc<dyn Fn(usize, f64) + Send + Sync> = {
        let progress = progress.clone();
        Arc::new(move |step, loss| {
            progress.set_position(step as u64);
            progress.set_message(format!("loss {loss:.4}"));
        })
    };
    let scheme = opts.protocol.scheme();
    let mut outsiders: Vec<PartyId> = (0..opts.data_owners as u32)
        .map(PartyId::DataOwner)
        .collect();
    outsiders.push(PartyId::ModelOwner);
    let outsider = {
        let job = Arc::clone(&job);
        let init = Arc::clone(&init);
        move |net: MemoryNetwork| {
            let (job, parts, init) = (Arc::clone(&job), Arc::clone(&parts), Arc::clone(&init));
            let (on_epoch, on_loss) = (Arc::clone(&on_epoch), Arc::clone(&on_loss));
            tokio::spawn(outside(net, job, parts, init, scheme, on_epoch, on_loss))
        }
    };
    progress.enable_steady_tick(std::time::Duration::from_millis(500));
    match opts.protocol {
        ProtocolKind::Aby3 => {
            launch(aby3, Arc::clone(&job), activations, &outsiders, outsider).await?
        }
        ProtocolKind::SecureNn => {
            launch(
                securenn,
                Arc::clone(&job),
                activations,
                &outsiders,
                outsider,
            )
            .await?
        }
        ProtocolKind::Pond => {
            launch(pond, Arc::clone(&job), activations, &outsiders, outsider).await?
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let received = std::mem::take(&mut *received.lock().unwrap_or_else(|p| p.into_inner()));
    let encrypted_accuracy = received.metrics.last().map_or(0.0, |m| m.test_accuracy);
    let plaintext_accuracy = if opts.compare_plaintext {
        let start: Vec<f32> = init.iter().map(|v| *v as f32).collect();
        let local = TrainPlan {
            epochs: order.clone(),
            rates: job.rates(),
            optimizer: match opts.optimizer {
                Optimizer::Sgd { .. } => LocalOptimizer::Sgd,
                Optimizer::Adam {
                    beta1, beta2, eps, ..
                } => LocalOptimizer::Adam {
                    beta1,
                    beta2,
                    eps,
                    amsgrad: false,
                },
                Optimizer::Amsgrad {
                    beta1, beta2, eps, ..
                } => LocalOptimizer::Adam {
                    beta1,
                    beta2,
                    eps,
                    amsgrad: true,
                },
            },
        };
        let weights = train_plan(&opts.model, &start, &train_data, &local, |_, _| {})?.params;
        Some(evaluate(&opts.model, &weights, &test)?.0)
    } else {
        None
    };
    write_outputs(&opts, &received)?;
    Ok(EncryptedSummary {
        encrypted_accuracy,
        plaintext_accuracy,
        metrics: received.metrics,
        seconds_per_batch: seconds / batches.max(1) as f64,
        spent: job.spent(),
    })
}

/// An epoch's mean revealed loss (NaN when none was revealed, as under DP-SGD) and its line
/// of output (`train loss -` then).
pub fn epoch_line(epoch: usize, losses: &[f64], test_loss: f64, accuracy: f64) -> (f64, String) {
    let (train_loss, shown) = if losses.is_empty() {
        (f64::NAN, "-".to_string())
    } else {
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        (mean, format!("{mean:.4}"))
    };
    let line = format!(
        "epoch {}: train loss {shown}  test loss {test_loss:.4}  test accuracy {accuracy:.4}",
        epoch + 1
    );
    (train_loss, line)
}

/// The number of logits of `spec`.
fn model_outputs(spec: &ModelSpec) -> Result<usize, EncryptedError> {
    spec.resolve()
        .map(|(_, out)| out.iter().product())
        .map_err(|e| EncryptedOptionsError::Spec(e).into())
}

fn write_outputs(opts: &EncryptedOptions, received: &Received) -> Result<(), EncryptedError> {
    let checkpoint = EncryptedCheckpoint {
        model: &opts.model,
        protocol: opts.protocol.name(),
        optimizer: opts.optimizer.name(),
        epochs: opts.epochs,
        frac_bits: opts.frac_bits,
        weights: received.weights.clone(),
        metrics: &received.metrics,
    };
    write_run(&opts.out, &checkpoint)
}

/// Writes `metrics.csv`, `metrics.png` and `checkpoint.json` of an encrypted training to `out`.
pub(crate) fn write_run(
    out: &std::path::Path,
    checkpoint: &EncryptedCheckpoint<'_>,
) -> Result<(), EncryptedError> {
    let io = |path: PathBuf| move |source| EncryptedError::Io { path, source };
    std::fs::create_dir_all(out).map_err(io(out.to_path_buf()))?;
    let csv = out.join("metrics.csv");
    write_metrics_csv(&csv, checkpoint.metrics).map_err(io(csv.clone()))?;
    let title = format!(
        "Tessera: encrypted training ({}, {}, {} epochs)",
        checkpoint.protocol, checkpoint.optimizer, checkpoint.epochs
    );
    let labels = PlotLabels {
        title: &title,
        step: "epoch",
    };
    for name in ["metrics.png", "metrics.svg"] {
        let path = out.join(name);
        write_plot(&path, labels, checkpoint.metrics).map_err(io(path.clone()))?;
    }
    let path = out.join("checkpoint.json");
    let json = serde_json::to_vec(checkpoint).map_err(|e| EncryptedError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, json).map_err(io(path.clone()))
}
