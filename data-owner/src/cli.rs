//! The `data-owner` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, PartyArgs, keygen_exit_code};
use tessera_common::dataset::{Dataset, Split};
use tessera_common::seal::Sealer;
use tracing::info;

use crate::client::GrpcLeader;
use crate::node::DataOwnerNode;

/// Tessera data-owner node (an institution).
#[derive(Debug, Parser)]
#[command(name = "data-owner", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
    /// Use only part K of N (an IID slice), as `K/N`, e.g. `0/3`.
    #[arg(long)]
    pub shard: Option<String>,
    /// The job to join (0: the newest on the leader).
    #[arg(long, default_value_t = 0)]
    pub job: u64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Keep a record of every encoded update uploaded (`update-<owner>-<job>-<round>.bin`) in this folder.
    #[arg(long)]
    pub audit_dir: Option<PathBuf>,
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
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
    /// The data.
    #[error(transparent)]
    Data(#[from] tessera_common::dataset::DatasetError),
    /// The leader's address.
    #[error(transparent)]
    Api(#[from] tessera_common::api::ApiError),
}

fn load_data(args: &ServeArgs) -> Result<Dataset, ServeError> {
    let data = if args.data == "bundled" {
        Dataset::bundled_mnist(Split::Train)
    } else {
        Dataset::load_path(std::path::Path::new(&args.data), Split::Train)?
    };
    match &args.shard {
        None => Ok(data),
        Some(spec) => {
            let bad = || ServeError::Invalid(format!("--shard {spec:?}: expected K/N with K < N"));
            let (k, n) = spec.split_once('/').ok_or_else(bad)?;
            let (k, n): (usize, usize) =
                (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
            if k >= n {
                return Err(bad());
            }
            Ok(data.split_iid(n).swap_remove(k))
        }
    }
}

/// Runs the node until the job is done.
pub async fn serve_command(args: ServeArgs) -> Result<(), ServeError> {
    if !matches!(args.party.name, PartyId::DataOwner(_)) {
        return Err(ServeError::Invalid(format!(
            "{} is not a data owner",
            args.party.name
        )));
    }
    let (cluster, identity) = args.party.load()?;
    let data = load_data(&args)?;
    let leader_endpoint = cluster.endpoint(PartyId::Server(0))?;
    let leader_address = leader_endpoint.address.clone();
    let leader = GrpcLeader::new(
        &leader_endpoint,
        std::sync::Arc::new(Sealer::new(&identity, cluster.public_keys())),
    )?;
    let sealer = Sealer::new(&identity, cluster.public_keys());
    info!(me = %args.party.name, samples = data.len(), leader = %leader_address, "waiting for rounds");
    let mut node = DataOwnerNode::new(sealer, leader, data, !args.quiet);
    if let Some(dir) = &args.audit_dir {
        node = node.with_audit_dir(dir.clone());
    }
    let reports = node.run(args.job).await;
    let ok = reports.iter().filter(|r| r.is_ok()).count();
    info!(me = %args.party.name, rounds = reports.len(), uploaded = ok, "job done");
    Ok(())
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging();
    match cli.command {
        Command::Keygen(args) => {
            keygen_exit_code(&args, "data owner", |p| matches!(p, PartyId::DataOwner(_)))
        }
        Command::Serve(args) => tessera_common::cli::block_on_exit_code(serve_command(args)),
        Command::Predict(args) => tessera_common::cli::block_on_exit_code(async move {
            crate::predict::predict_command(args).await.map(|_| ())
        }),
    }
}
