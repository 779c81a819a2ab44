//! The `model-owner` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, keygen_exit_code};
use tessera_common::job::ServerOptimizer;
use tessera_common::model_spec::ModelSpec;

use crate::simulate::{SimulateOptions, simulate};

/// Tessera model owner: starts jobs, opens results, trains the global model.
#[derive(Debug, Parser)]
#[command(name = "model-owner", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Named model presets.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelPreset {
    /// MNIST network A: FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10.
    NetworkA,
    /// Logistic regression: FC 784-10.
    Logreg,
}

impl ModelPreset {
    /// The spec.
    pub fn spec(self) -> ModelSpec {
        match self {
            ModelPreset::NetworkA => ModelSpec::network_a(),
            ModelPreset::Logreg => ModelSpec::logistic_regression(),
        }
    }
}

/// Server optimizers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptimizerChoice {
    /// FedAvg (server learning rate 1).
    Fedavg,
    /// FedAdam (server learning rate 0.01, beta 0.9/0.99, tau 1e-3).
    Fedadam,
}

impl OptimizerChoice {
    /// The optimizer settings.
    pub fn settings(self) -> ServerOptimizer {
        match self {
            OptimizerChoice::Fedavg => ServerOptimizer::FedAvg { server_lr: 1.0 },
            OptimizerChoice::Fedadam => ServerOptimizer::FedAdam {
                server_lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            },
        }
    }
}

/// Training options shared by `simulate` and `train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainingArgs {
    /// Number of rounds.
    #[arg(long, default_value_t = 10)]
    pub rounds: u64,
    /// The model.
    #[arg(long, value_enum, default_value = "network-a")]
    pub model: ModelPreset,
    /// The server optimizer.
    #[arg(long, value_enum, default_value = "fedavg")]
    pub optimizer: OptimizerChoice,
    /// Local epochs per round [default: the cluster file's, else 1].
    #[arg(long)]
    pub local_epochs: Option<usize>,
    /// Local batch size [default: the cluster file's, else 32].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Local SGD learning rate [default: the cluster file's, else 0.1].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Ring size of the shares: 32, 64 or 128 bits [default: the cluster file's, else 32].
    #[arg(long)]
    pub ring_bits: Option<u32>,
    /// Output folder (metrics.csv, metrics.png, checkpoint.json).
    #[arg(long, default_value = "tessera-out")]
    pub out: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the model owner's X25519 key file and print its public key.
    Keygen(KeygenArgs),
    /// Run a whole federated training in one process (servers, data owners, model owner) on the
    /// bundled MNIST digits.
    Simulate {
        /// Training options.
        #[command(flatten)]
        training: TrainingArgs,
        /// Number of data owners.
        #[arg(long, default_value_t = 3)]
        data_owners: usize,
        /// Number of servers (2 or 3).
        #[arg(long, default_value_t = 3)]
        servers: usize,
        /// Label-skewed split (each owner sees about two digits) instead of IID.
        #[arg(long)]
        non_iid: bool,
    },
    /// Drive a federated training on a networked cluster (servers and data owners already running).
    Train {
        /// Training options.
        #[command(flatten)]
        training: TrainingArgs,
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
        /// The model owner's key file.
        #[arg(long)]
        key: PathBuf,
        /// Continue from a checkpoint (runs the rounds left, as a new job).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Test data (folder of IDX files or CSV) [default: the bundled MNIST test digits].
        #[arg(long)]
        test_data: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Keep each round's revealed sum and contributor list in this folder.
        #[arg(long)]
        audit_dir: Option<PathBuf>,
    },
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    tessera_common::cli::init_logging_quiet();
    match cli.command {
        Command::Keygen(args) => {
            keygen_exit_code(&args, "model owner", |p| p == PartyId::ModelOwner)
        }
        Command::Simulate {
            training,
            data_owners,
            servers,
            non_iid,
        } => {
            let opts = SimulateOptions {
                rounds: training.rounds,
                data_owners,
                servers,
                non_iid,
                out: training.out.clone(),
                model: training.model.spec(),
                optimizer: training.optimizer.settings(),
                local_epochs: training.local_epochs.unwrap_or(1),
                batch_size: training.batch_size.unwrap_or(32),
                learning_rate: training.learning_rate.unwrap_or(0.1),
                ring_bits: training.ring_bits.unwrap_or(32),
                interactive: true,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 1;
                }
            };
            match runtime.block_on(simulate(opts)) {
                Ok(summary) => {
                    println!("metrics: {}", training.out.join("metrics.csv").display());
                    println!("final test accuracy: {:.4}", summary.final_accuracy);
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Train {
            training,
            config,
            key,
            resume,
            test_data,
            quiet,
            audit_dir,
        } => {
            let out = training.out.clone();
            tessera_common::cli::block_on_exit_code(async move {
                let summary = crate::networked::train_command(
                    training,
                    &config,
                    &key,
                    resume.as_deref(),
                    test_data.as_deref(),
                    quiet,
                    audit_dir.as_deref(),
                )
                .await?;
                println!("metrics: {}", out.join("metrics.csv").display());
                println!("final test accuracy: {:.4}", summary.final_accuracy);
                Ok::<(), crate::networked::NetworkedError>(())
            })
        }
    }
}
