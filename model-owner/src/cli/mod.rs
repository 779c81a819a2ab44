//! The `model-owner` command line: the commands and how each runs; the options they share are
//! [`args`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera_common::PartyId;
use tessera_common::cli::{KeygenArgs, keygen_exit_code};
use tessera_common::model_file::ModelChoice;
use tessera_common::model_spec::ModelSpec;
use tessera_data_owner::attack::Attack;

pub mod args;

pub use args::{
    DpSgdArgs, EncryptedArgs, InitChoice, JobRef, MpcTrainArgs, OptimizerChoice, ProtocolChoice,
    TrainingArgs,
};

use crate::encrypted::{EncryptedOptions, EncryptedOptionsError, simulate_encrypted};
use crate::simulate::{SimulateOptions, simulate};
use tessera_common::train_job::TrainJob;

/// Tessera model owner: starts jobs, opens results, trains the global model.
#[derive(Debug, Parser)]
#[command(name = "model-owner", version, about)]
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
        /// Label-skewed split instead of IID (McMahan et al.'s: the examples sorted by label in
        /// 2N shards, owner i taking shards i and i+N): with 3 owners each sees 4-6 of the 10
        /// digits, with 10 owners 2-4.
        #[arg(long)]
        non_iid: bool,
        /// The last K data owners attack (with legitimate keys): see `--attack`.
        #[arg(long, default_value_t = 0)]
        attackers: usize,
        /// What the attackers send: `scale:F`, `sign-flip[:F]`, `gaussian:S` or `label-flip`.
        #[arg(long, default_value = "scale:100")]
        attack: Attack,
        /// Keep each round's revealed sum and contributor list, and each owner's encoded update,
        /// in this folder.
        #[arg(long)]
        audit_dir: Option<PathBuf>,
        /// The owners' training data, split among them: a CSV table (shuffled with a fixed
        /// seed) or a folder of IDX files [default: the bundled MNIST training digits].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The model owner's test data [default: with --data a CSV table, its last fifth, held
        /// out from training; a folder, its test files; else the bundled MNIST test digits].
        #[arg(long)]
        test_data: Option<PathBuf>,
        /// The label column of CSV tables (default: the column named `label` in any case, else
        /// the last column).
        #[arg(long)]
        label_column: Option<String>,
        /// Encrypted training: the servers train on secret-shared examples under MPC.
        #[command(flatten)]
        encrypted: EncryptedArgs,
    },
    /// Deploy a trained model for encrypted prediction: secret-share its weights to the
    /// servers, which keep the shares under `--model-id`.
    Deploy {
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
        /// The model owner's key file.
        #[arg(long)]
        key: PathBuf,
        /// The model to deploy: `checkpoint.json` of `train`, `simulate` or `train-encrypted`,
        /// or an ONNX model (`.onnx`).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The id clients predict with (the cluster file's `[models.<id>]` lists them).
        #[arg(long)]
        model_id: String,
        /// The protocol every prediction runs.
        #[arg(long, value_enum, default_value = "aby3")]
        protocol: ProtocolChoice,
        /// Fractional bits of the fixed-point weights and inputs (64-bit ring).
        #[arg(long, default_value_t = 16)]
        frac_bits: u32,
        /// Seconds the deployment may take.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Encrypted training as a job the servers serve: start it, share the initial weights,
    /// follow the losses, evaluate and save each epoch's weights (the data owners join with
    /// `data-owner share-data --job ID`).
    TrainEncrypted {
        /// The cluster file.
        #[arg(long)]
        config: PathBuf,
        /// The model owner's key file.
        #[arg(long)]
        key: PathBuf,
        /// The data owners whose examples the servers train on, comma-separated party names.
        #[arg(long)]
        data_owners: String,
        /// The most examples one data owner may share.
        #[arg(long, default_value_t = 10_000)]
        max_rows: usize,
        /// The model: a preset (network-a to network-d, logreg: one logit), a model-spec
        /// file (its input follows the test data unless the file fixes it) or an ONNX model
        /// (`.onnx`: its weights are the starting weights the model owner shares).
        #[arg(long, default_value = "network-a")]
        model: ModelChoice,
        /// The optimizer: sgd, adam or amsgrad.
        #[arg(long, value_enum, default_value = "sgd")]
        optimizer: OptimizerChoice,
        /// Learning rate [default: 0.1 for SGD, 0.001 for Adam and AMSgrad].
        #[arg(long)]
        learning_rate: Option<f64>,
        /// Examples per batch.
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
        /// The settings of the training itself.
        #[command(flatten)]
        mpc: MpcTrainArgs,
        /// DP-SGD.
        #[command(flatten)]
        dp: DpSgdArgs,
        /// The job id (tell it to the data owners) [default: random, printed].
        #[arg(long)]
        job_id: Option<u64>,
        /// Test data to evaluate each epoch's weights on [default: the bundled MNIST test digits].
        #[arg(long)]
        test_data: Option<PathBuf>,
        /// The label column of a CSV `--test-data` (default: the column named `label` in any
        /// case, else the last column).
        #[arg(long)]
        label_column: Option<String>,
        /// Output folder (metrics.csv, metrics.png, metrics.svg, checkpoint.json).
        #[arg(long, default_value = "tessera-out")]
        out: PathBuf,
        /// Seconds to wait for any one result (a data owner joining, an epoch).
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// A federated job's state at every server: its round and the round's state, the
    /// contributors so far, why a round failed, and the data owners that declined it and why
    /// (`train` prints the job id; `checkpoint.json` has it under `settings.job_id`).
    Status(JobRef),
    /// An MPC job's state at every server (deployments, trainings, predictions).
    JobStatus(JobRef),
    /// Abort an MPC job at every server (its inputs, outputs and messages are dropped).
    Abort(JobRef),
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
        /// The label column of a CSV `--test-data` (default: the column named `label` in any
        /// case, else the last column).
        #[arg(long)]
        label_column: Option<String>,
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
    tessera_common::cli::init_logging_quiet(cli.log_format);
    match cli.command {
        Command::Keygen(args) => {
            keygen_exit_code(&args, "model owner", |p| p == PartyId::ModelOwner)
        }
        Command::Simulate {
            training,
            data_owners,
            servers,
            non_iid,
            attackers,
            attack,
            audit_dir,
            data,
            test_data,
            label_column,
            encrypted,
        } => {
            if encrypted.encrypted {
                return run_encrypted(&training, data_owners, &encrypted);
            }
            let optimizer = match training.optimizer.settings() {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            };
            let opts = SimulateOptions {
                rounds: training.rounds,
                data_owners,
                servers,
                non_iid,
                out: training.out.clone(),
                model: training.model.clone(),
                data,
                test_data,
                label_column,
                optimizer,
                local_epochs: training.local_epochs.unwrap_or(1),
                batch_size: training.batch_size.unwrap_or(32),
                learning_rate: training.learning_rate.unwrap_or(0.1),
                ring_bits: training.ring_bits,
                rule: training.rule.unwrap_or_default(),
                dp: training.dp(),
                attackers,
                attack,
                audit_dir,
                interactive: true,
            };
            let Some(runtime) = runtime() else {
                return 1;
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
        Command::Deploy {
            config,
            key,
            checkpoint,
            model_id,
            protocol,
            frac_bits,
            timeout_secs,
        } => tessera_common::cli::block_on_exit_code(async move {
            let job = crate::deploy::deploy_command(
                &config,
                &key,
                &checkpoint,
                &model_id,
                protocol.into(),
                frac_bits,
                std::time::Duration::from_secs(timeout_secs),
            )
            .await?;
            println!("deployed model {model_id:?} (job {job})");
            Ok::<(), crate::deploy::DeployError>(())
        }),
        Command::TrainEncrypted {
            config,
            key,
            data_owners,
            max_rows,
            model,
            optimizer,
            learning_rate,
            batch_size,
            mpc,
            dp,
            job_id,
            test_data,
            label_column,
            out,
            timeout_secs,
        } => tessera_common::cli::block_on_exit_code(async move {
            use crate::train_encrypted::{
                Networked, TrainEncryptedError, load_test_data, parse_owners,
                train_encrypted_command,
            };
            let optimizer = optimizer.mpc(learning_rate)?;
            let test = load_test_data(test_data.as_deref(), label_column.as_deref())?;
            let (spec, _) = encrypted_model(&model, &test)?;
            let job = TrainJob {
                spec,
                optimizer,
                epochs: mpc.epochs,
                batch_size,
                frac_bits: mpc.frac_bits,
                owners: parse_owners(&data_owners)?,
                max_rows,
                seed: mpc.seed,
                lr_decay: mpc.lr_decay,
                loss_every: mpc.loss_every(dp.dp_noise.is_some()),
                servers_init: mpc.init == InitChoice::Servers,
                dp: dp.dp(),
            };
            let net = Networked {
                config,
                key,
                job_id,
                test,
                out: out.clone(),
                timeout: std::time::Duration::from_secs(timeout_secs),
                start: model.initial_weights().map(<[f32]>::to_vec),
            };
            let summary = train_encrypted_command(mpc.protocol.into(), job, net).await?;
            println!("metrics: {}", out.join("metrics.csv").display());
            println!("checkpoint: {}", out.join("checkpoint.json").display());
            println!("encrypted test accuracy: {:.4}", summary.accuracy);
            if let Some(spent) = summary.spent {
                println!(
                    "privacy spent (DP-SGD): epsilon {:.3} at delta {:e}",
                    spent.epsilon, spent.delta
                );
            }
            Ok::<(), TrainEncryptedError>(())
        }),
        Command::Status(JobRef { config, key, job }) => {
            tessera_common::cli::block_on_exit_code(async move {
                crate::networked::status_command(&config, &key, job).await
            })
        }
        Command::JobStatus(JobRef { config, key, job }) => {
            tessera_common::cli::block_on_exit_code(async move {
                crate::deploy::job_status_command(&config, &key, job).await
            })
        }
        Command::Abort(JobRef { config, key, job }) => {
            tessera_common::cli::block_on_exit_code(async move {
                crate::deploy::abort_command(&config, &key, job).await
            })
        }
        Command::Train {
            training,
            config,
            key,
            resume,
            test_data,
            label_column,
            quiet,
            audit_dir,
        } => {
            let out = training.out.clone();
            tessera_common::cli::block_on_exit_code(async move {
                let request = training.request()?;
                let summary = crate::networked::train_command(
                    request,
                    &config,
                    &key,
                    resume.as_deref(),
                    test_data.as_deref().map(|path| crate::networked::TestData {
                        path,
                        label_column: label_column.as_deref(),
                    }),
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

/// `simulate --encrypted`: runs, prints both accuracies last, returns the exit code.
fn run_encrypted(training: &TrainingArgs, data_owners: usize, args: &EncryptedArgs) -> i32 {
    let optimizer = match training.optimizer.mpc(training.learning_rate) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mnist =
        tessera_common::dataset::Dataset::bundled_mnist(tessera_common::dataset::Split::Test);
    let (model, small_vs_large) = match encrypted_model(&training.model, &mnist) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let opts = EncryptedOptions {
        protocol: args.mpc.protocol.into(),
        model,
        small_vs_large,
        optimizer,
        epochs: args.mpc.epochs,
        batch_size: training.batch_size.unwrap_or(128),
        data_owners,
        limit: args.limit,
        frac_bits: args.mpc.frac_bits,
        compare_plaintext: args.compare_plaintext,
        loss_every: args.mpc.loss_every(training.dp_noise.is_some()),
        dp: training.dp(),
        seed: args.mpc.seed,
        lr_decay: args.mpc.lr_decay,
        servers_init: args.mpc.init == InitChoice::Servers,
        start: training.model.initial_weights().map(<[f32]>::to_vec),
        out: training.out.clone(),
        interactive: true,
    };
    let Some(runtime) = runtime() else {
        return 1;
    };
    match runtime.block_on(simulate_encrypted(opts)) {
        Ok(summary) => {
            println!("metrics: {}", training.out.join("metrics.csv").display());
            println!("seconds per batch: {:.3}", summary.seconds_per_batch);
            println!("encrypted test accuracy: {:.4}", summary.encrypted_accuracy);
            if let Some(plain) = summary.plaintext_accuracy {
                println!("plaintext test accuracy: {plain:.4}");
            }
            if let Some(spent) = summary.spent {
                println!(
                    "privacy spent (DP-SGD): epsilon {:.3} at delta {:e}",
                    spent.epsilon, spent.delta
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The model of an encrypted training on `data`, and whether it is the `logreg` preset, which
/// under encrypted training is one logit on small digits against large ones.
fn encrypted_model(
    model: &ModelChoice,
    data: &tessera_common::dataset::Dataset,
) -> Result<(ModelSpec, bool), EncryptedOptionsError> {
    if matches!(model.preset_name(), Some("logreg" | "logistic-regression")) {
        let binary: ModelChoice = ModelSpec::binary_logistic_regression().into();
        let spec = binary.spec_for(&data.sample_shape, 1)?;
        return Ok((spec, true));
    }
    let spec = model.spec_for(&data.sample_shape, data.max_label())?;
    Ok((spec, false))
}

/// A tokio runtime, or `None` after printing why there is none.
fn runtime() -> Option<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new()
        .map_err(|e| eprintln!("error: {e}"))
        .ok()
}
