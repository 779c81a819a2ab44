//! `model-owner train`: the training loop against a networked cluster.

use std::path::Path;
use std::sync::Arc;

use rand::RngExt;
use tessera_common::PartyId;
use tessera_common::config::ClusterConfig;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::job::JobSettings;
use tessera_common::seal::Sealer;
use tessera_data_owner::model::initial_params;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cli::TrainingArgs;
use crate::client::GrpcServer;
use crate::trainer::{TrainError, Trainer, TrainerConfig, TrainingSummary, initial_checkpoint};

/// Errors of `train`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkedError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] tessera_common::cli::PartyLoadError),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] tessera_common::config::ConfigError),
    /// Unusable settings.
    #[error("{0}")]
    Invalid(String),
    /// Test data.
    #[error(transparent)]
    Data(#[from] tessera_common::dataset::DatasetError),
    /// Checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Training.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A server address.
    #[error(transparent)]
    Api(#[from] tessera_common::api::ApiError),
}

/// The job settings for a networked run, from the cluster file and the command line.
pub fn networked_settings(
    cluster: &ClusterConfig,
    training: &TrainingArgs,
) -> Result<JobSettings, NetworkedError> {
    let model = training.model.spec();
    let num_params = model
        .num_params()
        .map_err(|e| NetworkedError::Invalid(e.to_string()))?;
    let defaults = &cluster.job;
    let owners = cluster.data_owners().len();
    let settings = JobSettings {
        job_id: rand::rng().random_range(1..u64::MAX / 2),
        model,
        num_params,
        rounds: training.rounds,
        ring_bits: training.ring_bits.unwrap_or(defaults.ring_bits),
        frac_bits: defaults.frac_bits,
        clip: defaults.clip,
        max_weight: defaults.max_weight,
        max_clients: owners.max(1),
        min_clients: defaults.min_clients.min(owners.max(1)),
        round_deadline_ms: defaults.round_deadline_secs * 1000,
        local_epochs: training.local_epochs.unwrap_or(defaults.local_epochs),
        batch_size: training.batch_size.unwrap_or(defaults.batch_size),
        learning_rate: training.learning_rate.unwrap_or(defaults.learning_rate),
        num_servers: cluster.num_servers(),
        optimizer: training
            .optimizer
            .settings()
            .map_err(NetworkedError::Invalid)?,
    };
    settings
        .validate()
        .map_err(|e| NetworkedError::Invalid(e.to_string()))?;
    Ok(settings)
}

/// Runs `model-owner train`.
pub async fn train_command(
    training: TrainingArgs,
    config: &Path,
    key: &Path,
    resume: Option<&Path>,
    test_data: Option<&Path>,
    quiet: bool,
    audit_dir: Option<&Path>,
) -> Result<TrainingSummary, NetworkedError> {
    let (cluster, identity) = tessera_common::cli::load_party(config, key, PartyId::ModelOwner)?;
    let test = match test_data {
        Some(p) => Dataset::load_path(p, Split::Test)?,
        None => Dataset::bundled_mnist(Split::Test),
    };
    let (settings, checkpoint) = match resume {
        Some(path) => {
            let mut cp = Checkpoint::load(path)?;
            let done = cp.metrics.len() as u64;
            let mut settings = cp.settings.clone();
            settings.job_id = rand::rng().random_range(1..u64::MAX / 2);
            settings.rounds = training.rounds.saturating_sub(done).max(1);
            cp.settings = settings.clone();
            cp.next_round = 1;
            (settings, cp)
        }
        None => {
            let settings = networked_settings(&cluster, &training)?;
            let initial = initial_params(&settings.model).map_err(TrainError::from)?;
            let cp = initial_checkpoint(&settings, initial);
            (settings, cp)
        }
    };
    let token_sealer = Arc::new(Sealer::new(&identity, cluster.public_keys()));
    let servers = cluster
        .servers()
        .into_iter()
        .map(|p| {
            GrpcServer::new(&cluster.endpoint(p)?, p, Arc::clone(&token_sealer))
                .map_err(NetworkedError::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let sealer = Sealer::new(&identity, cluster.public_keys());
    let trainer_config = TrainerConfig {
        settings,
        out_dir: training.out.clone(),
        show_progress: !quiet,
        print_rounds: true,
        audit_dir: audit_dir.map(Path::to_path_buf),
    };
    let trainer = Trainer::new(servers, sealer, trainer_config, test);
    Ok(trainer.run(checkpoint).await?)
}
