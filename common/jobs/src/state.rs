//! [`JobState`]: where a job is, as statuses and refusals report it.

use serde::{Deserialize, Serialize};

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum JobState {
    /// Running (waiting for inputs, computing, or waiting for its outputs to be fetched).
    Running,
    /// Finished: its outputs can be fetched.
    Done,
    /// Failed; the message names the cause (and the server, if one was lost).
    Failed(String),
    /// Aborted by the model owner.
    Aborted,
}

impl JobState {
    /// Whether the job is over.
    pub fn is_over(&self) -> bool {
        !matches!(self, JobState::Running)
    }
}
