//! `model-owner deploy`: secret-shares a trained model's weights to the servers, which keep the
//! shares under a model id for any number of encrypted predictions (`data-owner predict`).
//! Nobody but the model owner ever holds the weights in the clear. Also `job-status` and
//! `abort` for any MPC job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tessera_common::PartyId;
use tessera_common::cli::{PartyLoadError, load_party};
use tessera_common::model_spec::ModelSpec;
use tessera_common::protocol::ProtocolKind;
use tessera_jobs::{ClientError, JobClient};
use tessera_proto::{GrpcJobs, GrpcTransport};

/// Errors of `deploy`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] PartyLoadError),
    /// The checkpoint.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ONNX model does not import.
    #[error(transparent)]
    Onnx(tessera_common::onnx::OnnxError),
    /// A server refused, failed or could not be reached.
    #[error(transparent)]
    Job(#[from] ClientError),
}

/// The model and weights of a checkpoint: the federated one (`settings.model`) or the
/// encrypted-training one (`model`), both with `weights`.
#[derive(Deserialize)]
struct AnyCheckpoint {
    model: Option<ModelSpec>,
    settings: Option<Settings>,
    weights: Vec<f32>,
}

#[derive(Deserialize)]
struct Settings {
    model: ModelSpec,
}

/// Reads a checkpoint's model and weights (checked against each other), or imports an ONNX
/// model (`.onnx`: its layers and weights, see [`tessera_common::onnx`]).
pub fn load_model(path: &Path) -> Result<(ModelSpec, Vec<f32>), DeployError> {
    let bad = |reason: String| DeployError::Checkpoint {
        path: path.to_owned(),
        reason,
    };
    if path.extension().and_then(|e| e.to_str()) == Some("onnx") {
        let model = tessera_common::onnx::import(path).map_err(DeployError::Onnx)?;
        return Ok((model.spec, model.weights));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let cp: AnyCheckpoint = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let model = cp
        .model
        .or(cp.settings.map(|s| s.model))
        .ok_or_else(|| bad("names no model (`model` or `settings.model`)".into()))?;
    let expected = model.num_params().map_err(|e| bad(e.to_string()))?;
    if cp.weights.len() != expected {
        return Err(bad(format!(
            "{} weights for a model of {expected} parameters",
            cp.weights.len()
        )));
    }
    if let Some(i) = cp.weights.iter().position(|w| !w.is_finite()) {
        return Err(bad(format!("weight {i} is not finite")));
    }
    Ok((model, cp.weights))
}

/// The model owner's client of every server of the cluster.
struct Owner {
    cluster: tessera_common::config::ClusterConfig,
    jobs: GrpcJobs,
}

impl Owner {
    fn load(config: &Path, key: &Path) -> Result<Self, DeployError> {
        let (cluster, identity) = load_party(config, key, PartyId::ModelOwner)?;
        Ok(Owner {
            jobs: GrpcJobs::new(&cluster, &identity)?,
            cluster,
        })
    }

    fn client(&self, timeout: Duration) -> JobClient<'_, GrpcTransport> {
        self.jobs.client(timeout)
    }
}

/// Prints a job's kind and state at every server.
pub async fn job_status_command(config: &Path, key: &Path, job: u64) -> Result<(), DeployError> {
    let owner = Owner::load(config, key)?;
    let client = owner.client(Duration::from_secs(10));
    for server in &client.servers {
        let status = client.status(*server, job).await?;
        println!("{server}: job {job} ({}): {:?}", status.kind, status.state);
    }
    Ok(())
}

/// Aborts a job at every server.
pub async fn abort_command(config: &Path, key: &Path, job: u64) -> Result<(), DeployError> {
    let owner = Owner::load(config, key)?;
    owner.client(Duration::from_secs(10)).abort(job).await?;
    println!("job {job} aborted");
    Ok(())
}

/// Deploys the checkpoint's model under `model_id`; returns the deployment's job id.
pub async fn deploy_command(
    config: &Path,
    key: &Path,
    checkpoint: &Path,
    model_id: &str,
    protocol: ProtocolKind,
    frac_bits: u32,
    timeout: Duration,
) -> Result<u64, DeployError> {
    let owner = Owner::load(config, key)?;
    let (model, weights) = load_model(checkpoint)?;
    let job = owner
        .client(timeout)
        .deploy(model_id, &model, protocol, frac_bits, &weights)
        .await?;
    if !owner.cluster.models.contains_key(model_id) {
        eprintln!(
            "warning: the cluster file has no [models.{model_id}] entry: no client may query it"
        );
    }
    Ok(job)
}
