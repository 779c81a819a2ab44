//! Checkpoints: the model owner's whole training state in one JSON file, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_common::job::JobSettings;

use crate::optimizer::OptimizerState;
use crate::report::RoundMetrics;

/// Errors of saving or loading a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// I/O.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not a checkpoint, or for another model.
    #[error("checkpoint {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Everything needed to continue training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The job's settings.
    pub settings: JobSettings,
    /// The next round to run.
    pub next_round: u64,
    /// Current global weights.
    pub weights: Vec<f32>,
    /// Optimizer state.
    pub optimizer: OptimizerState,
    /// Metrics so far.
    pub metrics: Vec<RoundMetrics>,
    /// Rounds whose aggregate the model owner saw (what differential privacy accounts for).
    #[serde(default)]
    pub revealed_rounds: u64,
}

impl Checkpoint {
    /// Writes to `path` (via a temporary file and a rename).
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        };
        let json = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads `path` and checks it fits `num_params` parameters.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let cp: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if cp.weights.len() != cp.settings.num_params {
            return Err(invalid(format!(
                "{} weights for {} parameters",
                cp.weights.len(),
                cp.settings.num_params
            )));
        }
        if cp.weights.iter().any(|w| !w.is_finite()) {
            return Err(invalid("non-finite weight".into()));
        }
        Ok(cp)
    }
}
