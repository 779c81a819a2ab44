//! [`TrainError`]: what stops the model owner's federated training, naming the server, round or
//! file it concerns.

use std::path::PathBuf;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::api::ApiError;
use tessera_common::seal::SealError;
use tessera_ml::ModelError;

use crate::checkpoint::CheckpointError;
use crate::reveal::RevealError;

/// Errors that stop training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A server refused or could not be reached.
    #[error("{server}: {source}")]
    Api {
        /// The server.
        server: PartyId,
        /// What it said.
        source: ApiError,
    },
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// A round did not finish in time.
    #[error("round {round} did not finish within {waited:?}")]
    RoundTimeout {
        /// The round.
        round: u64,
        /// How long we waited.
        waited: Duration,
    },
    /// The result shares did not reveal.
    #[error(transparent)]
    Reveal(#[from] RevealError),
    /// Evaluation failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Checkpoint or report I/O.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// No round of the run had an aggregate: the model did not change. The metrics and the
    /// checkpoint of the failed rounds are written all the same.
    #[error(
        "none of the {rounds} rounds had an aggregate (too few data owners contributed, or the aggregate was refused): the model did not train; see the rounds in {metrics}"
    )]
    NoContributions {
        /// Rounds run.
        rounds: u64,
        /// The metrics file listing them.
        metrics: PathBuf,
    },
    /// Data owners declined the job (their data does not fit the model) and too few are left to
    /// reach the job's `min_clients`.
    #[error(
        "only {able} of the cluster's data owners can take part, the job needs {min_clients}: {}",
        declined_list(declined)
    )]
    Declined {
        /// Who declined, and why.
        declined: Vec<(PartyId, String)>,
        /// The data owners left.
        able: usize,
        /// The job's minimum.
        min_clients: usize,
    },
    /// A failure inside this process (the evaluation task panicked, the settings would not
    /// serialise).
    #[error("internal error: {0}")]
    Internal(String),
    /// An output file or folder (`--out`, `--audit-dir`) cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Report {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `owner declined: reason; ...`.
fn declined_list(declined: &[(PartyId, String)]) -> String {
    let lines: Vec<String> = declined
        .iter()
        .map(|(p, reason)| format!("{p} declined: {reason}"))
        .collect();
    lines.join("; ")
}
