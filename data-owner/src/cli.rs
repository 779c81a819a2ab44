//! The `data-owner` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, PartyArgs, keygen_exit_code};
use tessera_common::seal::Sealer;
use tracing::info;

use crate::attack::Attack;
use crate::data::{DataError, load_dataset};
use crate::node::DataOwnerNode;
use tessera_proto::GrpcLeader;

/// Tessera data-owner node (an institution).
#[derive(Debug, Parser)]
#[command(name = "data-owner", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr as text or as one JSON object per line.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: tessera_common::cli::LogFormat,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate this party's X25519 key file and print its public key.
    Keygen(KeygenArgs),
    /// Take part in a job: dial the leader, train on local data each round, upload shares.
    Serve(ServeArgs),
    /// Encrypted prediction: share examples to the servers, get logits only this party opens.
    Predict(crate::predict::PredictArgs),
    /// Encrypted training: share this party's examples into a training job the servers run.
    ShareData(crate::share::ShareArgs),
}

/// Arguments of `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Cluster file, name and key file.
    #[command(flatten)]
    pub party: PartyArgs,
    /// Local data: a folder of MNIST IDX files (train-*), a CSV file (features then a label column),
    /// or `bundled` for the bundled MNIST training digits.
    #[arg(long)]
    pub data: String,
    /// The label column of a CSV table (default: the column named `label` in any case, else the
    /// last column).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Use only part K of N (an IID slice), as `K/N`, e.g. `0/3`.
    #[arg(long)]
    pub shard: Option<String>,
    /// The job to join and leave when it is done; 0 (the default): serve every job the leader
    /// starts, one after another, until stopped.
    #[arg(long, default_value_t = 0)]
    pub job: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Keep a record of every encoded update uploaded (`update-<owner>-<job>-<round>.bin`) in this folder.
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
    /// Test a cluster's defences: send crafted updates instead of honest ones
    /// (`scale:F`, `sign-flip[:F]`, `gaussian:S`, `label-flip`), with this party's legitimate key.
    #[arg(long)]
    pub attack: Option<Attack>,
    /// This owner's own privacy budget: the epsilon (at --dp-delta) it may spend over every
    /// round of every job; a round that would go past it is refused and nothing is uploaded
    /// (so is any job without DP noise). Kept in --dp-ledger across jobs and restarts.
    #[arg(long, value_name = "EPS")]
    pub dp_budget: Option<f64>,
    /// The delta this owner's budget is stated at.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
    /// The ledger file of --dp-budget [default: the key file's path with `.dp-ledger.json`].
    #[arg(long)]
    pub dp_ledger: Option<PathBuf>,
}

/// Errors of `serve`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] tessera_common::cli::PartyLoadError),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] tessera_common::config::ConfigError),
    /// A key file of a party that is not a data owner.
    #[error("{0} is not a data owner")]
    NotADataOwner(PartyId),
    /// The data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The leader's address.
    #[error(transparent)]
    Api(#[from] tessera_common::api::ApiError),
    /// The privacy ledger.
    #[error(transparent)]
    Ledger(#[from] tessera_common::dp::LedgerError),
}

/// Runs the node until the job is done.
pub async fn serve_command(args: ServeArgs) -> Result<(), ServeError> {
    let (cluster, identity) = args.party.load()?;
    let me = identity.party();
    if !matches!(me, PartyId::DataOwner(_)) {
        return Err(ServeError::NotADataOwner(me));
    }
    let data = load_dataset(
        &args.data,
        args.label_column.as_deref(),
        None,
        args.shard.as_deref(),
    )?;
    let leader_endpoint = cluster.endpoint(PartyId::Server(0))?;
    let leader_address = leader_endpoint.address.clone();
    let leader = GrpcLeader::new(
        &leader_endpoint,
        std::sync::Arc::new(Sealer::new(&identity, cluster.public_keys())),
    )?;
    let sealer = Sealer::new(&identity, cluster.public_keys());
    info!(%me, samples = data.len(), leader = %leader_address, "waiting for rounds");
    let mut node =
        DataOwnerNode::new(sealer, leader, data, !args.quiet).with_privacy(cluster.privacy);
    if let Some(budget) = args.dp_budget {
        let path = args.dp_ledger.clone().unwrap_or_else(|| {
            let mut p = args.party.key.clone().into_os_string();
            p.push(".dp-ledger.json");
            PathBuf::from(p)
        });
        let ledger = tessera_common::dp::Ledger::open(&path, budget, args.dp_delta)?;
        info!(%me, budget, spent = ledger.spent(), ledger = %path.display(), "privacy budget");
        node = node.with_ledger(ledger);
    }
    if let Some(attack) = args.attack {
        tracing::warn!(%attack, "this node attacks: it sends crafted updates");
        node = node.with_hook(attack);
    }
    if let Some(dir) = &args.audit_dir {
        node = node.with_audit_dir(dir.clone());
    }
    node.serve(args.job).await;
    Ok(())
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging(cli.log_format);
    match cli.command {
        Command::Keygen(args) => {
            keygen_exit_code(&args, "data owner", |p| matches!(p, PartyId::DataOwner(_)))
        }
        Command::Serve(args) => tessera_common::cli::block_on_exit_code(serve_command(args)),
        Command::ShareData(args) => tessera_common::cli::block_on_exit_code(async move {
            crate::share::share_command(args).await.map(|_| ())
        }),
        Command::Predict(args) => tessera_common::cli::block_on_exit_code(async move {
            crate::predict::predict_command(args).await.map(|_| ())
        }),
    }
}
