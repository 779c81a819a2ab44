//! `model-owner train`: the training loop against a networked cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::RngExt;
use tessera_common::PartyId;
use tessera_common::api::{JobStatus, ServerApi};
use tessera_common::config::ClusterConfig;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::dp::DpSettings;
use tessera_common::job::{JobSettings, ServerOptimizer};
use tessera_common::model_file::ModelChoice;
use tessera_common::model_spec::ModelSpec;
use tessera_common::rule::AggregationRule;
use tessera_common::seal::Sealer;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::trainer::{
    TrainError, Trainer, TrainerConfig, TrainingSummary, initial_checkpoint, starting_weights,
};
use tessera_proto::GrpcServer;

/// An optimizer of encrypted training (named as `--optimizer` takes it) asked of a federated
/// job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--optimizer {0} is for encrypted training (--encrypted); federated training takes fedavg \
     or fedadam"
)]
pub struct NotFederated(pub &'static str);

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
    /// An encrypted-training optimizer for a federated job.
    #[error(transparent)]
    Optimizer(#[from] NotFederated),
    /// A model spec whose layers do not fit.
    #[error(transparent)]
    Spec(#[from] tessera_common::model_spec::SpecError),
    /// A model that does not fit the test data.
    #[error(transparent)]
    Model(#[from] tessera_common::model_file::ModelFileError),
    /// Job settings that cannot work.
    #[error(transparent)]
    Settings(#[from] tessera_common::job::JobError),
    /// A trained model (`--resume` of an encrypted training's checkpoint) that does not load.
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    /// A trained model of another model than the job's.
    #[error("{}: the checkpoint's model is not the job's (--model)", .0.display())]
    OtherModel(std::path::PathBuf),
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
    /// Training stopped on a server that stayed unreachable (or a round that never ended)
    /// after some rounds were checkpointed: the message says how to go on from there.
    #[error(
        "{source}\nthe checkpoint after {rounds} rounds is {}: run the same command with `--resume {}` to train the rounds left",
        checkpoint.display(),
        checkpoint.display()
    )]
    Interrupted {
        /// Why training stopped (boxed: the error stays small).
        source: Box<TrainError>,
        /// The checkpoint written after the last round.
        checkpoint: std::path::PathBuf,
        /// Rounds it holds (this run's and those it resumed from).
        rounds: usize,
    },
}

/// A run of job `job` stopped by an unreachable server or a round that never ended, with a
/// checkpoint of that job to go on from: [`NetworkedError::Interrupted`]; any other error as it
/// is.
fn interrupted(source: TrainError, out: &Path, job: u64) -> NetworkedError {
    let checkpoint = out.join("checkpoint.json");
    let resumable = matches!(
        source,
        TrainError::Api { .. } | TrainError::RoundTimeout { .. }
    );
    match Checkpoint::load(&checkpoint) {
        Ok(cp) if resumable && cp.settings.job_id == job && !cp.metrics.is_empty() => {
            NetworkedError::Interrupted {
                source: Box::new(source),
                rounds: cp.metrics.len(),
                checkpoint,
            }
        }
        _ => source.into(),
    }
}

/// A networked training as the model owner asks for it (`model-owner train`'s flags); each
/// `None` takes the cluster file's `[job]` value.
#[derive(Debug, Clone)]
pub struct TrainRequest {
    /// Rounds.
    pub rounds: u64,
    /// The model.
    pub model: ModelChoice,
    /// The server optimizer.
    pub optimizer: ServerOptimizer,
    /// Local epochs per round.
    pub local_epochs: Option<usize>,
    /// Local batch size.
    pub batch_size: Option<usize>,
    /// Local learning rate.
    pub learning_rate: Option<f64>,
    /// Ring size of the shares.
    pub ring_bits: Option<u32>,
    /// Output folder.
    pub out: PathBuf,
    /// Aggregation rule.
    pub rule: Option<AggregationRule>,
    /// Distributed differential privacy.
    pub dp: Option<DpSettings>,
}

/// The job settings for a networked run of `model`, from the cluster file and the command line.
pub fn networked_settings(
    cluster: &ClusterConfig,
    training: &TrainRequest,
    model: ModelSpec,
) -> Result<JobSettings, NetworkedError> {
    let num_params = model.num_params()?;
    let defaults = &cluster.job;
    let owners = cluster.data_owners().len();
    let rule = training.rule.unwrap_or(defaults.rule);
    // A robust rule runs in the 64-bit ring unless told otherwise (and refuses other rings).
    let ring_bits = if rule.is_robust() {
        64
    } else {
        defaults.ring_bits
    };
    let settings = JobSettings {
        job_id: rand::rng().random_range(1..u64::MAX / 2),
        model,
        num_params,
        rounds: training.rounds,
        ring_bits: training.ring_bits.unwrap_or(ring_bits),
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
        optimizer: training.optimizer,
        rule,
        dp: training.dp.or(defaults.dp),
    };
    settings.validate()?;
    Ok(settings)
}

/// Whether `path` holds a model and weights (`checkpoint.json` of encrypted training).
fn is_model_checkpoint(path: &Path) -> bool {
    crate::deploy::load_model(path).is_ok()
}

/// A fresh federated job whose initial global model is the one in `path` (an encrypted
/// training's `checkpoint.json`: a model and its weights), which must be `settings`' model.
pub fn from_trained_model(
    path: &Path,
    settings: &JobSettings,
) -> Result<Checkpoint, NetworkedError> {
    let (model, weights) = crate::deploy::load_model(path)?;
    if model != settings.model {
        return Err(NetworkedError::OtherModel(path.to_owned()));
    }
    Ok(initial_checkpoint(settings, weights))
}

/// Where the model owner's test data is: a folder of IDX files or a CSV table and its label
/// column.
#[derive(Debug, Clone, Copy)]
pub struct TestData<'a> {
    /// The folder or file.
    pub path: &'a Path,
    /// The label column of a CSV table (see [`Dataset::load_csv`]).
    pub label_column: Option<&'a str>,
}

/// A gRPC client of every server of `cluster`, in index order, sealing its request tokens as
/// `identity`.
fn grpc_servers(
    cluster: &ClusterConfig,
    identity: &tessera_common::identity::Identity,
) -> Result<Vec<GrpcServer>, NetworkedError> {
    let token_sealer = Arc::new(Sealer::new(identity, cluster.public_keys()));
    cluster
        .servers()
        .into_iter()
        .map(|p| {
            GrpcServer::new(&cluster.endpoint(p)?, p, Arc::clone(&token_sealer))
                .map_err(NetworkedError::from)
        })
        .collect()
}

/// One server's view of a federated job, as `model-owner status` prints it.
pub fn describe_status(server: PartyId, s: &JobStatus) -> String {
    let names = |parties: &[PartyId]| {
        parties
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "{server}: job {} round {} {:?}, {} contributors",
        s.job_id,
        s.round,
        s.state,
        s.contributors.len()
    );
    if !s.contributors.is_empty() {
        out += &format!(" ({})", names(&s.contributors));
    }
    if !s.message.is_empty() {
        out += &format!("; {}", s.message);
    }
    for (owner, reason) in &s.declined {
        out += &format!("\n  {owner} declined: {reason}");
    }
    out
}

/// Runs `model-owner status`: every server's view of federated job `job`.
pub async fn status_command(config: &Path, key: &Path, job: u64) -> Result<(), NetworkedError> {
    let (cluster, identity) = tessera_common::cli::load_party(config, key, PartyId::ModelOwner)?;
    for (i, server) in grpc_servers(&cluster, &identity)?.iter().enumerate() {
        let status = server.status(job).await?;
        println!("{}", describe_status(PartyId::Server(i as u8), &status));
    }
    Ok(())
}

/// Runs `model-owner train`.
pub async fn train_command(
    training: TrainRequest,
    config: &Path,
    key: &Path,
    resume: Option<&Path>,
    test_data: Option<TestData<'_>>,
    quiet: bool,
    audit_dir: Option<&Path>,
) -> Result<TrainingSummary, NetworkedError> {
    let (cluster, identity) = tessera_common::cli::load_party(config, key, PartyId::ModelOwner)?;
    let test = match test_data {
        Some(t) => Dataset::load_path(t.path, Split::Test, t.label_column)?,
        None => Dataset::bundled_mnist(Split::Test),
    };
    // The model's input follows the test data (the data owners' tables have its columns); a
    // model that cannot take it fails here, before round 1.
    let model = training
        .model
        .spec_for(&test.sample_shape, test.max_label())?;
    let (settings, checkpoint) = match resume {
        Some(path) => match Checkpoint::load(path) {
            Ok(mut cp) => {
                let done = cp.metrics.len() as u64;
                let mut settings = cp.settings.clone();
                settings.job_id = rand::rng().random_range(1..u64::MAX / 2);
                settings.rounds = training.rounds.saturating_sub(done).max(1);
                cp.settings = settings.clone();
                cp.next_round = 1;
                (settings, cp)
            }
            // Neither a federated checkpoint nor a trained model: report it as the former.
            Err(federated) if !is_model_checkpoint(path) => return Err(federated.into()),
            // A model trained elsewhere (encrypted training): a new job starting from it.
            Err(_) => {
                let settings = networked_settings(&cluster, &training, model.clone())?;
                let cp = from_trained_model(path, &settings)?;
                (settings, cp)
            }
        },
        None => {
            let settings = networked_settings(&cluster, &training, model.clone())?;
            let initial = starting_weights(&training.model, &settings)?;
            let cp = initial_checkpoint(&settings, initial);
            (settings, cp)
        }
    };
    let servers = grpc_servers(&cluster, &identity)?;
    let sealer = Sealer::new(&identity, cluster.public_keys());
    let trainer_config = TrainerConfig {
        settings,
        out_dir: training.out.clone(),
        show_progress: !quiet,
        print_rounds: true,
        audit_dir: audit_dir.map(Path::to_path_buf),
        data_owners: cluster.data_owners(),
    };
    let job = trainer_config.settings.job_id;
    let trainer = Trainer::new(servers, sealer, trainer_config, test);
    trainer
        .run(checkpoint)
        .await
        .map_err(|e| interrupted(e, &training.out, job))
}

#[cfg(test)]
mod tests {
    use tessera_common::identity::Identity;

    use super::*;

    fn settings(model: ModelSpec) -> JobSettings {
        let mut toml = String::new();
        for (i, p) in [
            "server0",
            "server1",
            "server2",
            "model-owner",
            "data-owner-0",
            "data-owner-1",
        ]
        .iter()
        .enumerate()
        {
            let id = Identity::generate(p.parse().unwrap(), &mut rand::rng());
            toml += &format!(
                "[parties.{p}]\npublic_key = \"{}\"\n",
                id.public_key_base64()
            );
            if p.starts_with("server") {
                toml += &format!("address = \"127.0.0.1:{}\"\n", 7000 + i);
            }
        }
        let cluster = ClusterConfig::from_toml(&toml).unwrap();
        let training = TrainRequest {
            rounds: 3,
            model: model.clone().into(),
            optimizer: ServerOptimizer::FedAvg { server_lr: 1.0 },
            local_epochs: None,
            batch_size: None,
            learning_rate: None,
            ring_bits: None,
            out: "unused".into(),
            rule: None,
            dp: None,
        };
        networked_settings(&cluster, &training, model).unwrap()
    }

    /// `train --resume` with an encrypted training's checkpoint starts a new federated job from
    /// its weights, and refuses one whose model is not the job's.
    #[test]
    fn a_trained_model_starts_a_federated_job() {
        let dir = std::env::temp_dir().join(format!("tessera-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.json");
        let spec = ModelSpec::network_a();
        let n = spec.num_params().unwrap();
        let weights: Vec<f32> = (0..n).map(|i| (i % 7) as f32 * 0.01).collect();
        let json = serde_json::json!({"model": spec, "protocol": "aby3", "weights": weights});
        std::fs::write(&path, json.to_string()).unwrap();

        let cp = from_trained_model(&path, &settings(ModelSpec::network_a())).unwrap();
        assert_eq!(cp.weights, weights);
        assert_eq!(cp.next_round, 1);
        assert!(cp.metrics.is_empty());
        assert!(matches!(
            from_trained_model(&path, &settings(ModelSpec::logistic_regression())),
            Err(NetworkedError::OtherModel(p)) if p == path
        ));
        assert!(is_model_checkpoint(&path));
        std::fs::write(&path, "{}").unwrap();
        assert!(!is_model_checkpoint(&path));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A run stopped by a server that stayed away says which checkpoint to `--resume` from,
    /// only when that checkpoint is this job's and holds rounds; other failures are as they are.
    #[test]
    fn a_run_stopped_by_an_unreachable_server_says_how_to_resume() {
        let dir = std::env::temp_dir().join(format!("tessera-interrupted-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let settings = settings(ModelSpec::logistic_regression());
        let job = settings.job_id;
        let lost = || TrainError::Api {
            server: PartyId::Server(1),
            source: tessera_common::api::ApiError::Unavailable("connection refused".into()),
        };
        // No checkpoint yet: nothing to resume from.
        assert!(matches!(
            interrupted(lost(), &dir, job),
            NetworkedError::Train(_)
        ));
        let mut cp = crate::trainer::initial_checkpoint(&settings, vec![0.0; settings.num_params]);
        cp.metrics.push(crate::report::RoundMetrics {
            round: 1,
            train_loss: 0.5,
            test_loss: 0.5,
            test_accuracy: 0.8,
            clients: 2,
            bytes: 1,
            seconds: 0.1,
            epsilon: None,
        });
        let path = dir.join("checkpoint.json");
        cp.save(&path).unwrap();
        let e = interrupted(lost(), &dir, job);
        assert!(
            matches!(e, NetworkedError::Interrupted { rounds: 1, .. }),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("server1: unavailable: connection refused"),
            "{text}"
        );
        assert!(
            text.contains(&format!("--resume {}", path.display())),
            "{text}"
        );
        // Another job's checkpoint in the same folder, or a failure resuming cannot mend.
        assert!(matches!(
            interrupted(lost(), &dir, job + 1),
            NetworkedError::Train(_)
        ));
        let declined = TrainError::Declined {
            declined: vec![],
            able: 1,
            min_clients: 2,
        };
        assert!(matches!(
            interrupted(declined, &dir, job),
            NetworkedError::Train(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
