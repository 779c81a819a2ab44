//! [`MpcLimits`]: what one server's job service holds at most.

use std::collections::HashMap;
use std::time::Duration;

use tessera_common::train_policy::TrainingPolicy;

/// Bounds on what the service holds.
#[derive(Debug, Clone)]
pub struct MpcLimits {
    /// Jobs running at once.
    pub max_running: usize,
    /// Jobs one launcher may have running at once (so one client cannot take every place).
    pub max_running_per_launcher: usize,
    /// Finished jobs remembered (their outputs and ids); the oldest is forgotten first.
    pub max_finished: usize,
    /// Models deployed at once.
    pub max_models: usize,
    /// The most bytes of inputs one job may declare at this server (a training's examples).
    pub max_job_input_bytes: usize,
    /// How long a job waits for an outside party's input.
    pub input_timeout: Duration,
    /// How long one fetch waits for an output before answering "not ready".
    pub output_wait: Duration,
    /// How long after a job ends its late peer messages are dropped again.
    pub linger: Duration,
    /// What a training may reveal to the model owner (`[training]` of the cluster file): a
    /// training beyond it is refused at its launch.
    pub training: TrainingPolicy,
    /// Predictions each client may launch on a model (`max_queries` of the cluster file), by
    /// model id: counted at launch, in memory (a restarted server counts afresh).
    pub query_budgets: HashMap<String, u64>,
}

impl Default for MpcLimits {
    fn default() -> Self {
        MpcLimits {
            max_running: 16,
            max_running_per_launcher: 4,
            max_finished: 1024,
            max_models: 64,
            max_job_input_bytes: 1 << 30,
            input_timeout: Duration::from_secs(120),
            output_wait: Duration::from_secs(20),
            linger: Duration::from_secs(150),
            training: TrainingPolicy::default(),
            query_budgets: HashMap::new(),
        }
    }
}
