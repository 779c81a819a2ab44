//! `data-owner share-data`: an institution's part in an encrypted training job the aggregators
//! serve. It secret-shares its count, its examples and their targets to the servers (sealed for
//! each, in chunks) and leaves; the servers train on the union under MPC and only the model
//! owner receives the weights. Before it shares anything it reads the training's settings from
//! the description each server seals for it, prints what the training will reveal to the model
//! owner, and refuses a training beyond its own limits (`--min-batch`, `--max-loss-reveals`,
//! `--max-checkpoints`, `--optimizers`; see [`tessera_common::train_policy`]).

use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::cli::{PartyArgs, PartyLoadError};
use tessera_common::refusal::Refusal;
use tessera_common::seal::{Expected, Purpose, Sealer};
use tessera_common::train_job::{self, TrainJob, targets};
use tessera_common::train_policy::{TrainingPolicy, TrainingRefusal};
use tessera_jobs::wire::DESCRIPTION_ROUND;
use tessera_jobs::{ClientError, JobKind, JobSpec, MpcJobStatus, MpcServiceError, TransferInfo};
use tessera_proto::GrpcJobs;

use crate::data::{DataError, load_dataset};

/// Arguments of `share-data`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShareArgs {
    /// Cluster file, name and key file.
    #[command(flatten)]
    pub party: PartyArgs,
    /// The training job (the id `model-owner train-encrypted` printed).
    #[arg(long)]
    pub job: u64,
    /// Local data: a folder of MNIST IDX files (train-*), a CSV file (features then a label
    /// column), or `bundled` for the bundled MNIST training digits.
    #[arg(long)]
    pub data: String,
    /// The label column of a CSV table (default: the column named `label` in any case, else the
    /// last column).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Use only the first N examples (before `--shard`).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Use only part K of N (an IID slice), as `K/N`, e.g. `0/3`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Seconds to wait for the job to appear on the servers.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Refuse a job whose batches are smaller (each revealed loss and each step averages a
    /// batch: with batches of one, revealed losses can name each example's label).
    #[arg(long, default_value_t = 16)]
    pub min_batch: usize,
    /// Refuse a job that can reveal more losses to the model owner over the whole training.
    #[arg(long)]
    pub max_loss_reveals: Option<u64>,
    /// Refuse a job that reveals more per-epoch weights.
    #[arg(long)]
    pub max_checkpoints: Option<u64>,
    /// The optimizers this owner accepts, comma-separated (`sgd,adam,amsgrad`) [default: all].
    #[arg(long, value_delimiter = ',')]
    pub optimizers: Option<Vec<String>>,
    /// Refuse a job that is not DP-SGD with at most this epsilon over the whole training
    /// [default: any job].
    #[arg(long)]
    pub max_epsilon: Option<f64>,
    /// The largest delta that epsilon may be stated at, under --max-epsilon.
    #[arg(long, default_value_t = tessera_common::train_policy::DEFAULT_MAX_DELTA)]
    pub max_delta: f64,
    /// This owner's own privacy budget: the epsilon (at --dp-delta) it may spend over every
    /// job, federated rounds and encrypted trainings alike; a training that would go past it
    /// is refused before anything is shared (so is one without DP-SGD). Kept in --dp-ledger.
    #[arg(long, value_name = "EPS")]
    pub dp_budget: Option<f64>,
    /// The delta this owner's budget is stated at.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
    /// The ledger file of --dp-budget [default: the key file's path with `.dp-ledger.json`,
    /// the one `data-owner serve` keeps].
    #[arg(long)]
    pub dp_ledger: Option<std::path::PathBuf>,
}

impl ShareArgs {
    /// This owner's limits on what the training may reveal.
    pub fn limits(&self) -> TrainingPolicy {
        TrainingPolicy {
            min_batch: self.min_batch,
            max_loss_reveals: self.max_loss_reveals,
            max_checkpoints: self.max_checkpoints,
            optimizers: self.optimizers.clone(),
            max_epsilon: self.max_epsilon,
            max_delta: Some(self.max_delta),
        }
    }
}

/// Errors of `share-data`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] PartyLoadError),
    /// The local data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The data does not fit the job.
    #[error("job {job}: {reason}")]
    Mismatch {
        /// The job.
        job: u64,
        /// What does not fit.
        reason: String,
    },
    /// A server refused, failed or could not be reached.
    #[error(transparent)]
    Job(#[from] ClientError),
    /// The training would reveal more than this owner allows: nothing was shared.
    #[error("job {job}: refused, {refusal}")]
    Refused {
        /// The job.
        job: u64,
        /// What is beyond the owner's limits.
        refusal: TrainingRefusal,
    },
    /// This owner's privacy ledger could not be used or refused the training: nothing was
    /// shared.
    #[error("job {job}: {source}")]
    Ledger {
        /// The job.
        job: u64,
        /// Why.
        source: tessera_common::dp::LedgerError,
    },
    /// A server's sealed description did not open, is not a training, or differs from another
    /// server's.
    #[error("job {job}: the description {server} sealed: {reason}")]
    Description {
        /// The job.
        job: u64,
        /// The server.
        server: PartyId,
        /// What is wrong.
        reason: String,
    },
}

/// The training job as every server seals its description for this owner (each must open from
/// its server, be a training, and equal the others): the settings the servers will run, not what
/// the unauthenticated rest of a status answer says.
pub fn sealed_training(
    sealer: &Sealer,
    job: u64,
    statuses: &[(PartyId, MpcJobStatus)],
) -> Result<TrainJob, ShareError> {
    let mut agreed: Option<TrainJob> = None;
    for (server, status) in statuses {
        let refuse = |reason: String| ShareError::Description {
            job,
            server: *server,
            reason,
        };
        let expected = Expected {
            purpose: Purpose::JobControl,
            job_id: job,
            round: DESCRIPTION_ROUND,
            sender: Some(*server),
        };
        let opened = sealer
            .open(&status.sealed_description, &expected)
            .map_err(|e| refuse(e.to_string()))?;
        let spec: JobSpec =
            serde_json::from_slice(&opened.plaintext).map_err(|e| refuse(e.to_string()))?;
        let JobKind::Train { job: train, .. } = spec.kind else {
            return Err(refuse(format!(
                "a {} job, not a training",
                spec.kind.name()
            )));
        };
        match &agreed {
            None => agreed = Some(train),
            Some(first) if *first == train => {}
            Some(_) => return Err(refuse("differs from another server's".into())),
        }
    }
    agreed.ok_or_else(|| ShareError::Mismatch {
        job,
        reason: "the cluster has no servers".into(),
    })
}

/// This party's input under `label`: its index and description.
fn input<'s>(
    status: &'s MpcJobStatus,
    me: PartyId,
    label: &str,
) -> Result<(usize, &'s TransferInfo), ShareError> {
    status
        .inputs
        .iter()
        .enumerate()
        .find(|(_, t)| t.party == me && t.label == label)
        .ok_or_else(|| ShareError::Mismatch {
            job: status.job_id,
            reason: format!("{me} shares no {label:?} in this job (not one of its data owners?)"),
        })
}

/// Shares this owner's data into the job; returns how many examples.
pub async fn share_command(args: ShareArgs) -> Result<usize, ShareError> {
    let (cluster, identity) = args.party.load()?;
    let me = identity.party();
    let data = load_dataset(
        &args.data,
        args.label_column.as_deref(),
        args.limit,
        args.shard.as_deref(),
    )?;
    let jobs = GrpcJobs::new(&cluster, &identity)?;
    let client = jobs.client(Duration::from_secs(args.timeout_secs));
    // The servers may still be starting, and the job may not be launched on all of them yet:
    // ask each until it has the job.
    let deadline = tokio::time::Instant::now() + client.timeout;
    let unknown_job = MpcServiceError::UnknownJob(0);
    let mut agreed = None;
    let mut statuses = Vec::new();
    for server in &client.servers {
        let status = loop {
            let waiting = match client.status(*server, args.job).await {
                Err(ClientError::Refused { reason, .. }) if reason.name() == unknown_job.name() => {
                    format!("job {} is not on {server} yet", args.job)
                }
                Err(ClientError::Unreachable { server, reason }) => format!("{server}: {reason}"),
                other => break other?,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(ShareError::Mismatch {
                    job: args.job,
                    reason: format!("gave up after {:?}: {waiting}", client.timeout),
                });
            }
            tracing::info!(%waiting, "waiting");
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        statuses.push((*server, status.clone()));
        agreed.get_or_insert(status);
    }
    let train = sealed_training(client.sealer, args.job, &statuses)?;
    let terms = train.terms();
    println!("job {}: {terms}; {} epochs", args.job, train.epochs);
    args.limits()
        .check(&terms)
        .map_err(|refusal| ShareError::Refused {
            job: args.job,
            refusal,
        })?;
    if let Some(budget) = args.dp_budget {
        let ledger_error = |source| ShareError::Ledger {
            job: args.job,
            source,
        };
        let path = args.dp_ledger.clone().unwrap_or_else(|| {
            let mut p = args.party.key.clone().into_os_string();
            p.push(".dp-ledger.json");
            p.into()
        });
        let mut ledger =
            tessera_common::dp::Ledger::open(&path, budget, args.dp_delta).map_err(ledger_error)?;
        let spent = ledger
            .charge_training(
                args.job,
                train.epochs as u64,
                train.dp.as_ref(),
                train.frac_bits,
            )
            .map_err(ledger_error)?;
        println!(
            "privacy ledger {}: epsilon {spent:.3} of {budget} spent",
            path.display()
        );
    }
    let status = agreed.ok_or_else(|| ShareError::Mismatch {
        job: args.job,
        reason: "the cluster has no servers".into(),
    })?;
    let (n_round, _) = input(&status, me, train_job::N)?;
    let (x_round, x) = input(&status, me, train_job::X)?;
    let (y_round, y) = input(&status, me, train_job::Y)?;
    let (features, classes) = (x.row.unwrap_or(0), y.row.unwrap_or(0));
    let bad = |reason: String| ShareError::Mismatch {
        job: args.job,
        reason,
    };
    if data.sample_len() != features {
        return Err(bad(format!(
            "examples have {} values, the model takes {features}",
            data.sample_len()
        )));
    }
    if classes == 1 && data.labels.iter().any(|l| *l > 1) {
        return Err(bad("a one-logit model takes labels 0 and 1 only".into()));
    }
    if let Some(l) = data
        .labels
        .iter()
        .find(|l| classes > 1 && usize::from(**l) >= classes)
    {
        return Err(bad(format!("label {l} for a model of {classes} classes")));
    }
    let n = data.len();
    client.submit_ring(&status, n_round, &[n as u128]).await?;
    let features: Vec<f64> = data.features.iter().map(|v| f64::from(*v)).collect();
    client.submit(&status, x_round, &features).await?;
    let targets: Vec<f64> = targets(&data.labels, classes).collect();
    client.submit(&status, y_round, &targets).await?;
    println!("shared {n} examples with job {}", args.job);
    Ok(n)
}
