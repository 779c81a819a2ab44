//! `data-owner share-data`: an institution's part in an encrypted training job the aggregators
//! serve. It secret-shares its count, its examples and their targets to the servers (sealed for
//! each, in chunks) and leaves; the servers train on the union under MPC and only the model
//! owner receives the weights.

use std::time::Duration;

use tessera_aggregator::grpc::GrpcTransport;
use tessera_aggregator::mpc::service::server::TransferInfo;
use tessera_aggregator::mpc::service::{ClientError, JobClient, MpcJobStatus, MpcServiceError};
use tessera_aggregator::mpc::train::job::{self as train_job, targets};
use tessera_common::PartyId;
use tessera_common::cli::{PartyArgs, PartyLoadError};
use tessera_common::seal::Sealer;

use crate::cli::{DataError, load_dataset};

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
    let transport = GrpcTransport::new(&cluster)?;
    let sealer = Sealer::new(&identity, cluster.public_keys());
    let client = JobClient {
        transport: &transport,
        sealer: &sealer,
        servers: cluster.servers(),
        timeout: Duration::from_secs(args.timeout_secs),
    };
    // The servers may still be starting, and the job may not be launched on all of them yet:
    // ask each until it has the job.
    let deadline = tokio::time::Instant::now() + client.timeout;
    let unknown_job = MpcServiceError::UnknownJob(0);
    let mut agreed = None;
    for server in &client.servers {
        let status = loop {
            let waiting = match client.status(*server, args.job).await {
                Err(ClientError::Refused { reason, .. }) if reason.kind() == unknown_job.kind() => {
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
        agreed.get_or_insert(status);
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
