//! Simulated mode (TF Encrypted's LocalConfig): every party in one process.
//!
//! Servers are [`AggregatorService`]s over the in-memory [`MemoryNetwork`]; data owners are
//! [`DataOwnerNode`]s and the model owner a [`Trainer`], both calling the services in-process. Every
//! party has its own X25519 identity and every payload is sealed exactly as in networked mode: only
//! the sockets are missing.

use std::path::PathBuf;
use std::sync::Arc;

use rand::RngExt;
use tessera_common::PartyId;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::job::{JobError, JobSettings, ServerOptimizer};
use tessera_common::model_file::{ModelChoice, ModelFileError};
use tessera_common::model_spec::{ModelSpec, SpecError};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::rule::AggregationRule;
use tessera_common::seal::Sealer;
use tessera_data_owner::attack::Attack;
use tessera_data_owner::node::DataOwnerNode;
use tessera_secagg::AggregatorService;
use tessera_secagg::local::LocalServer;

use crate::trainer::{
    TrainError, Trainer, TrainerConfig, TrainingSummary, initial_checkpoint, starting_weights,
};

/// Options of a simulated training run.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Rounds.
    pub rounds: u64,
    /// Data owners.
    pub data_owners: usize,
    /// Servers (2 or 3).
    pub servers: usize,
    /// Label-skewed split instead of IID.
    pub non_iid: bool,
    /// Output folder.
    pub out: PathBuf,
    /// The model (its input follows the training data unless fixed).
    pub model: ModelChoice,
    /// The owners' training data, split among them: a CSV table or a folder of IDX files
    /// [default: the bundled MNIST training digits].
    pub data: Option<PathBuf>,
    /// The model owner's test data [default: with `data` a folder, its test files; a CSV table,
    /// its last fifth (held out from training); else the bundled MNIST test digits].
    pub test_data: Option<PathBuf>,
    /// The label column of CSV tables (see [`Dataset::load_csv`]).
    pub label_column: Option<String>,
    /// Server optimizer.
    pub optimizer: ServerOptimizer,
    /// Local epochs per round.
    pub local_epochs: usize,
    /// Local batch size.
    pub batch_size: usize,
    /// Local learning rate.
    pub learning_rate: f64,
    /// Ring bits of the shares [default: 32, or 64 under a robust rule].
    pub ring_bits: Option<u32>,
    /// How rounds combine the uploads.
    pub rule: AggregationRule,
    /// Distributed differential privacy, if any.
    pub dp: Option<tessera_common::dp::DpSettings>,
    /// The last `attackers` data owners mount `attack`.
    pub attackers: usize,
    /// What the attackers send.
    pub attack: Attack,
    /// Keep every revealed aggregate and contributor list, and every owner's encoded update,
    /// in this folder (`aggregate-<job>-<round>.{bin,txt}`, `update-<owner>-<job>-<round>.bin`).
    pub audit_dir: Option<PathBuf>,
    /// Progress bars and per-round lines.
    pub interactive: bool,
}

impl Default for SimulateOptions {
    /// `model-owner simulate`'s defaults, without progress output: 10 rounds, 3 data owners, 3
    /// servers, IID, MNIST network A on the bundled digits, FedAvg, 1 local epoch of batch 32 at
    /// learning rate 0.1, the `mean` rule, no attackers.
    fn default() -> Self {
        SimulateOptions {
            rounds: 10,
            data_owners: 3,
            servers: 3,
            non_iid: false,
            out: PathBuf::from("tessera-out"),
            model: ModelSpec::network_a().into(),
            data: None,
            test_data: None,
            label_column: None,
            optimizer: ServerOptimizer::FedAvg { server_lr: 1.0 },
            local_epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            ring_bits: None,
            rule: AggregationRule::Mean,
            dp: None,
            attackers: 0,
            attack: Attack::Scale(100.0),
            audit_dir: None,
            interactive: false,
        }
    }
}

/// Errors of a simulation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    /// Bad options.
    #[error("bad options: {0}")]
    Options(#[from] OptionsError),
    /// The training or test data.
    #[error(transparent)]
    Data(#[from] tessera_common::dataset::DatasetError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
}

/// Options a simulation cannot run with, each naming the flag (or the file) to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// A server count other than 2 or 3.
    #[error("--servers {0} (must be 2 or 3)")]
    Servers(usize),
    /// As many attackers as data owners, or more.
    #[error("--attackers {attackers} of {owners} data owners leaves no honest one")]
    Attackers {
        /// `--attackers`.
        attackers: usize,
        /// `--data-owners`.
        owners: usize,
    },
    /// Fewer than two data owners (an aggregate of one is that owner's update).
    #[error("--data-owners {0}: need at least two (an aggregate of one is that owner's update)")]
    Owners(usize),
    /// Zero rounds.
    #[error("--rounds 0: need at least one round")]
    NoRounds,
    /// A data file too small to hold out a fifth for testing.
    #[error(
        "{}: {rows} rows are too few to hold out a fifth for testing and give each of \
         {owners} data owners one (or pass --test-data)",
        path.display()
    )]
    NoHeldOut {
        /// The data file.
        path: PathBuf,
        /// Its rows.
        rows: usize,
        /// `--data-owners`.
        owners: usize,
    },
    /// Fewer training examples than data owners.
    #[error("{owners} data owners need at least one training example each; the data has {rows}")]
    TooLittleData {
        /// `--data-owners`.
        owners: usize,
        /// The training examples.
        rows: usize,
    },
    /// A model that does not fit the data.
    #[error(transparent)]
    Model(#[from] ModelFileError),
    /// A model spec whose layers do not fit.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Job settings that cannot work (a zero epoch count, a ring the sum can wrap...).
    #[error(transparent)]
    Job(#[from] JobError),
}

/// The job settings a simulation of `model` uses, sized for `data_owners` owners holding
/// `max_samples` each.
pub fn simulation_settings(
    opts: &SimulateOptions,
    model: &ModelSpec,
    max_samples: usize,
) -> Result<JobSettings, SimulateError> {
    let num_params = model.num_params().map_err(OptionsError::Spec)?;
    let mut settings = JobSettings {
        job_id: rand::rng().random_range(1..u64::MAX / 2),
        model: model.clone(),
        num_params,
        rounds: opts.rounds,
        ring_bits: opts
            .ring_bits
            .unwrap_or(if opts.rule.is_robust() { 64 } else { 32 }),
        frac_bits: 16,
        clip: 1.0,
        max_weight: max_samples as f64,
        max_clients: opts.data_owners,
        min_clients: opts.data_owners.div_ceil(2).max(2),
        round_deadline_ms: 600_000,
        local_epochs: opts.local_epochs,
        batch_size: opts.batch_size,
        learning_rate: opts.learning_rate,
        num_servers: opts.servers,
        optimizer: opts.optimizer,
        rule: opts.rule,
        dp: opts.dp,
    };
    settings.frac_bits = settings.auto_frac_bits();
    settings.validate().map_err(OptionsError::Job)?;
    Ok(settings)
}

/// The training and test data of a simulation (see [`SimulateOptions::data`]).
pub fn simulation_data(opts: &SimulateOptions) -> Result<(Dataset, Dataset), SimulateError> {
    let label = opts.label_column.as_deref();
    let train = match &opts.data {
        Some(path) if path.is_dir() => Dataset::load_path(path, Split::Train, label)?,
        // Shuffled (with a fixed seed): the owners' parts and the held-out fifth are contiguous.
        Some(path) => Dataset::load_path(path, Split::Train, label)?.shuffled(1),
        None => Dataset::bundled_mnist(Split::Train),
    };
    match (&opts.test_data, &opts.data) {
        (Some(path), _) => Ok((train, Dataset::load_path(path, Split::Test, label)?)),
        (None, Some(path)) if path.is_dir() => {
            Ok((train, Dataset::load_path(path, Split::Test, label)?))
        }
        (None, Some(path)) => {
            let held_out = train.len() / 5;
            if held_out == 0 || train.len() - held_out < opts.data_owners {
                return Err(OptionsError::NoHeldOut {
                    path: path.clone(),
                    rows: train.len(),
                    owners: opts.data_owners,
                }
                .into());
            }
            let keep: Vec<usize> = (0..train.len() - held_out).collect();
            let test: Vec<usize> = (train.len() - held_out..train.len()).collect();
            Ok((train.subset(&keep), train.subset(&test)))
        }
        (None, None) => Ok((train, Dataset::bundled_mnist(Split::Test))),
    }
}

/// Runs a whole federated training in this process.
pub async fn simulate(opts: SimulateOptions) -> Result<TrainingSummary, SimulateError> {
    if ![2, 3].contains(&opts.servers) {
        return Err(OptionsError::Servers(opts.servers).into());
    }
    if opts.attackers >= opts.data_owners {
        return Err(OptionsError::Attackers {
            attackers: opts.attackers,
            owners: opts.data_owners,
        }
        .into());
    }
    if opts.data_owners < 2 {
        return Err(OptionsError::Owners(opts.data_owners).into());
    }
    if opts.rounds == 0 {
        return Err(OptionsError::NoRounds.into());
    }
    let (train, test) = simulation_data(&opts)?;
    let max_label = train.max_label().max(test.max_label());
    let model = opts
        .model
        .spec_for(&train.sample_shape, max_label)
        .map_err(OptionsError::Model)?;
    if train.len() < opts.data_owners {
        return Err(OptionsError::TooLittleData {
            owners: opts.data_owners,
            rows: train.len(),
        }
        .into());
    }
    let parts = if opts.non_iid {
        train.split_label_skew(opts.data_owners)
    } else {
        train.split_iid(opts.data_owners)
    };
    let max_samples = parts.iter().map(Dataset::len).max().unwrap_or(1);
    let settings = simulation_settings(&opts, &model, max_samples)?;

    let servers: Vec<PartyId> = (0..opts.servers as u8).map(PartyId::Server).collect();
    let owners: Vec<PartyId> = (0..opts.data_owners as u32)
        .map(PartyId::DataOwner)
        .collect();
    let identities: Vec<Identity> = servers
        .iter()
        .chain(&owners)
        .chain(std::iter::once(&PartyId::ModelOwner))
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
    let keys: Vec<(PartyId, PublicKey)> = identities
        .iter()
        .map(|i| (i.party(), *i.public_key()))
        .collect();
    // Identities in party order: servers, owners, model owner. A data owner's sealer knows
    // the servers and the model owner only (it writes to no other owner), so setting up N
    // owners is linear in N, not quadratic.
    let sealer_of = |party: PartyId| {
        let index = match party {
            PartyId::Server(i) => usize::from(i),
            PartyId::DataOwner(i) => opts.servers + i as usize,
            _ => identities.len() - 1,
        };
        let id = &identities[index];
        debug_assert_eq!(id.party(), party);
        let known = keys.iter().filter(|(p, _)| {
            !matches!(party, PartyId::DataOwner(_)) || !matches!(p, PartyId::DataOwner(_))
        });
        Sealer::new(id, known.map(|(p, k)| (*p, k)))
    };

    let networks = MemoryNetwork::cluster(&servers);
    let services: Vec<LocalServer<MemoryNetwork>> = networks
        .into_iter()
        .zip(&servers)
        .map(|(net, p)| {
            LocalServer(AggregatorService::new(
                sealer_of(*p),
                opts.servers,
                Arc::new(net),
            ))
        })
        .collect();

    let config = TrainerConfig {
        settings: settings.clone(),
        out_dir: opts.out.clone(),
        show_progress: opts.interactive,
        print_rounds: true,
        audit_dir: opts.audit_dir.clone(),
        data_owners: (0..opts.data_owners)
            .map(|i| PartyId::DataOwner(i as u32))
            .collect(),
    };
    let trainer = Trainer::new(
        services.clone(),
        sealer_of(PartyId::ModelOwner),
        config,
        test,
    );
    trainer.start_job().await?;

    let mut nodes = Vec::new();
    let honest = opts.data_owners - opts.attackers;
    for (i, (owner, data)) in owners.iter().zip(parts).enumerate() {
        let node = DataOwnerNode::new(sealer_of(*owner), services[0].clone(), data, false);
        let node = if i >= honest {
            node.with_hook(opts.attack)
        } else {
            node
        };
        let node = match &opts.audit_dir {
            Some(dir) => node.with_audit_dir(dir.clone()),
            None => node,
        };
        let job_id = settings.job_id;
        nodes.push(tokio::spawn(async move { node.run(job_id).await }));
    }
    let initial = starting_weights(&opts.model, &settings)?;
    let summary = trainer.run(initial_checkpoint(&settings, initial)).await?;
    for node in nodes {
        let _ = node.await;
    }
    Ok(summary)
}
