//! `model-owner train-encrypted`: encrypted training as a job the aggregators serve. The model
//! owner starts the job at every server (the id is printed for the data owners, who then run
//! `data-owner share-data --job ID`), shares the initial weights unless the servers draw them,
//! follows the progress (the sampled losses, revealed to it alone), evaluates the weights it
//! receives after each epoch, and writes the same `metrics.csv`, `metrics.png`, `metrics.svg`
//! and `checkpoint.json` as the simulated run (a checkpoint `deploy` takes).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_common::PartyId;
use tessera_common::cli::{PartyLoadError, load_party};
use tessera_common::dataset::{Dataset, DatasetError, Split};
use tessera_common::party::BadPartyName;
use tessera_common::protocol::ProtocolKind;
use tessera_common::train_job::{self, TrainJob};
use tessera_jobs::client::random_job_id;
use tessera_jobs::{ClientError, JobKind};
use tessera_ml::evaluate;
use tessera_mpc::MpcError;
use tessera_proto::GrpcJobs;

use crate::encrypted::{EncryptedCheckpoint, EncryptedError, EncryptedOptionsError, write_run};
use crate::report::RoundMetrics;

/// Errors of `train-encrypted`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainEncryptedError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] PartyLoadError),
    /// The job's settings (checked before anything is sent).
    #[error(transparent)]
    Settings(#[from] MpcError),
    /// The options (the model, the optimizer, the starting weights).
    #[error(transparent)]
    Options(#[from] EncryptedOptionsError),
    /// A data owner the cluster file does not list.
    #[error("{0} is not in the cluster file")]
    NotInCluster(PartyId),
    /// A name in `--data-owners` that is not a party name.
    #[error("--data-owners: {0}")]
    Owners(#[from] BadPartyName),
    /// The test data does not load.
    #[error("--test-data {}: {source}", path.display())]
    TestData {
        /// The file or folder.
        path: PathBuf,
        /// Why it does not load.
        source: DatasetError,
    },
    /// The servers' status of the job lacks an input or output every training job has.
    #[error("the job has no {0:?}")]
    MissingTransfer(String),
    /// A server refused, failed or could not be reached.
    #[error(transparent)]
    Job(#[from] ClientError),
    /// Evaluating the received weights.
    #[error("evaluating the weights: {0}")]
    Model(#[from] tessera_ml::ModelError),
    /// Writing the outputs.
    #[error(transparent)]
    Output(#[from] EncryptedError),
}

/// What `train-encrypted` needs beyond the training settings.
#[derive(Debug, Clone)]
pub struct Networked {
    /// The cluster file.
    pub config: PathBuf,
    /// The model owner's key file.
    pub key: PathBuf,
    /// The job id to use (the data owners need it); random if `None`.
    pub job_id: Option<u64>,
    /// Test data to evaluate each epoch's weights on (see [`load_test_data`]).
    pub test: Dataset,
    /// Output folder.
    pub out: PathBuf,
    /// How long the whole job may wait for one output (a data owner joining, an epoch).
    pub timeout: Duration,
    /// Weights to start from instead of the seed's (an ONNX model's).
    pub start: Option<Vec<f32>>,
}

/// What the run produced.
#[derive(Debug, Clone)]
pub struct TrainEncryptedSummary {
    /// The job id.
    pub job_id: u64,
    /// Test accuracy of the last epoch's weights.
    pub accuracy: f64,
    /// The weights received after the last epoch.
    pub weights: Vec<f32>,
    /// Under DP-SGD, the `(epsilon, delta)` of the whole training.
    pub spent: Option<tessera_common::dp::Spent>,
}

/// `--test-data` (a folder of IDX files or a CSV table with its label column), or the bundled
/// MNIST test digits.
pub fn load_test_data(
    path: Option<&Path>,
    label_column: Option<&str>,
) -> Result<Dataset, TrainEncryptedError> {
    match path {
        Some(path) => Dataset::load_path(path, Split::Test, label_column).map_err(|source| {
            TrainEncryptedError::TestData {
                path: path.to_owned(),
                source,
            }
        }),
        None => Ok(Dataset::bundled_mnist(Split::Test)),
    }
}

/// Runs a training job on the cluster (see the module docs).
pub async fn train_encrypted_command(
    protocol: ProtocolKind,
    job: TrainJob,
    net: Networked,
) -> Result<TrainEncryptedSummary, TrainEncryptedError> {
    let model = tessera_mpc::train::job::model_of(&job)?;
    let (cluster, identity) = load_party(&net.config, &net.key, PartyId::ModelOwner)?;
    for owner in &job.owners {
        if cluster.party(*owner).is_err() {
            return Err(TrainEncryptedError::NotInCluster(*owner));
        }
    }
    let test = &net.test;
    let jobs = GrpcJobs::new(&cluster, &identity)?;
    let client = jobs.client(net.timeout);
    let kind = JobKind::Train {
        protocol,
        job: job.clone(),
    };
    // A random id in the model owner's own range (a client may not launch it).
    let job_id = match net.job_id {
        Some(id) => id,
        None => random_job_id(PartyId::ModelOwner).map_err(ClientError::from)?,
    };
    let (job_id, status) = client.launch_as(job_id, kind).await?;
    println!(
        "training job {job_id} started; each data owner now runs: data-owner share-data --job {job_id} ..."
    );
    let round_of = |label: &str, list: &[tessera_jobs::TransferInfo]| {
        list.iter()
            .position(|t| t.label == label && t.party == PartyId::ModelOwner)
            .ok_or_else(|| TrainEncryptedError::MissingTransfer(label.to_owned()))
    };
    let init = crate::encrypted::start_weights(net.start.as_deref(), &job, &model)?;
    if !job.servers_init {
        client
            .submit(&status, round_of(train_job::W0, &status.inputs)?, &init)
            .await?;
    }
    let rows = client
        .output_ring::<u128>(&status, round_of(train_job::ROWS, &status.outputs)?)
        .await?;
    let counts: Vec<usize> = rows.as_slice().iter().map(|n| *n as usize).collect();
    let total: usize = counts.iter().sum();
    println!("examples per owner: {counts:?} ({total} in all)");
    let loss_round = round_of(train_job::LOSS, &status.outputs)?;
    let started = Instant::now();
    let mut metrics = Vec::new();
    let mut weights = Vec::new();
    // The losses are one output with a value per revealed loss, fetched by number.
    let mut losses_read = 0u32;
    for (e, batches) in job.order(total).iter().enumerate() {
        let mut losses = Vec::new();
        for (b, idx) in batches.iter().enumerate() {
            if job.wants_loss(b) {
                let l = client.output_at(&status, loss_round, losses_read).await?;
                losses_read += 1;
                losses.push(l[0] / idx.len() as f64);
                println!(
                    "epoch {} batch {}/{}: loss {:.4}",
                    e + 1,
                    b + 1,
                    batches.len(),
                    losses[losses.len() - 1]
                );
            }
        }
        let label = train_job::weights_label(e);
        let w = client
            .output(&status, round_of(&label, &status.outputs)?)
            .await?;
        weights = w.iter().map(|v| *v as f32).collect();
        let (accuracy, test_loss) = evaluate(&job.spec, &weights, test)?;
        let (train_loss, line) = crate::encrypted::epoch_line(e, &losses, test_loss, accuracy);
        println!("{line}");
        metrics.push(RoundMetrics {
            round: e as u64 + 1,
            train_loss,
            test_loss,
            test_accuracy: accuracy,
            clients: job.owners.len(),
            bytes: 0,
            seconds: started.elapsed().as_secs_f64(),
            epsilon: None,
        });
    }
    client.wait_done(job_id).await?;
    let checkpoint = EncryptedCheckpoint {
        model: &job.spec,
        protocol: protocol.name(),
        optimizer: job.optimizer.name(),
        epochs: job.epochs,
        frac_bits: job.frac_bits,
        weights: weights.clone(),
        metrics: &metrics,
    };
    write_run(&net.out, &checkpoint)?;
    Ok(TrainEncryptedSummary {
        job_id,
        accuracy: metrics.last().map_or(0.0, |m| m.test_accuracy),
        weights,
        spent: job.spent(),
    })
}

/// The data owners named on the command line (`data-owner-0,hospital-b,...` as party names).
pub fn parse_owners(list: &str) -> Result<Vec<PartyId>, TrainEncryptedError> {
    list.split(',')
        .map(|n| Ok(n.trim().parse::<PartyId>()?))
        .collect()
}

/// Where the checkpoint lands.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.json")
}
