//! The options the `model-owner` commands share: training, encrypted training, DP-SGD, the
//! protocol, optimizer and initialisation choices, a job's reference.

use std::path::PathBuf;

use clap::ValueEnum;
use tessera_common::dp::DpSettings;
use tessera_common::job::ServerOptimizer;
use tessera_common::model_file::ModelChoice;
use tessera_common::protocol::ProtocolKind;
use tessera_common::rule::AggregationRule;
use tessera_common::train_job::Optimizer;

use crate::encrypted::EncryptedOptionsError;
use crate::networked::NotFederated;

/// Optimizers: the server optimizers of federated training, and those of encrypted training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerChoice {
    /// FedAvg (server learning rate 1).
    Fedavg,
    /// FedAdam (server learning rate 0.01, beta 0.9/0.99, tau 1e-3).
    Fedadam,
    /// Encrypted training: SGD (`--learning-rate`, default 0.1).
    Sgd,
    /// Encrypted training: Adam (`--learning-rate`, default 0.001).
    Adam,
    /// Encrypted training: AMSgrad (`--learning-rate`, default 0.001).
    Amsgrad,
}

impl OptimizerChoice {
    /// The name `--optimizer` takes.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerChoice::Fedavg => "fedavg",
            OptimizerChoice::Fedadam => "fedadam",
            OptimizerChoice::Sgd => "sgd",
            OptimizerChoice::Adam => "adam",
            OptimizerChoice::Amsgrad => "amsgrad",
        }
    }

    /// The federated server optimizer, or an error naming the choice for the encrypted ones.
    pub fn settings(self) -> Result<ServerOptimizer, NotFederated> {
        match self {
            OptimizerChoice::Fedavg => Ok(ServerOptimizer::FedAvg { server_lr: 1.0 }),
            OptimizerChoice::Fedadam => Ok(ServerOptimizer::FedAdam {
                server_lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            }),
            other => Err(NotFederated(other.name())),
        }
    }

    /// The encrypted-training optimizer with learning rate `lr` (or its default).
    pub fn mpc(self, lr: Option<f64>) -> Result<Optimizer, EncryptedOptionsError> {
        match self {
            OptimizerChoice::Sgd | OptimizerChoice::Fedavg => Ok(Optimizer::sgd(lr.unwrap_or(0.1))),
            OptimizerChoice::Adam => Ok(Optimizer::adam(lr.unwrap_or(0.001))),
            OptimizerChoice::Amsgrad => Ok(Optimizer::amsgrad(lr.unwrap_or(0.001))),
            OptimizerChoice::Fedadam => Err(EncryptedOptionsError::Federated(self.name())),
        }
    }
}

/// The protocol of encrypted training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolChoice {
    /// ABY3.
    Aby3,
    /// SecureNN.
    Securenn,
    /// Pond (polynomial activations: models without ReLU, max-pooling or softmax).
    Pond,
}

/// Who provides the initial weights of encrypted training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitChoice {
    /// The model owner draws them and shares them as a private input.
    ModelOwner,
    /// The servers draw them from the job's common seed (He-uniform); nobody sends them.
    Servers,
}

impl From<ProtocolChoice> for ProtocolKind {
    fn from(c: ProtocolChoice) -> Self {
        match c {
            ProtocolChoice::Aby3 => ProtocolKind::Aby3,
            ProtocolChoice::Securenn => ProtocolKind::SecureNn,
            ProtocolChoice::Pond => ProtocolKind::Pond,
        }
    }
}

/// Training options shared by `simulate` and `train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainingArgs {
    /// Number of rounds.
    #[arg(long, default_value_t = 10)]
    pub rounds: u64,
    /// The model: a preset, a model-spec file (`.json` or `.toml`: a chain of `layers` or a
    /// graph of `nodes`, see the guide) or an ONNX model (`.onnx`: its graph, and its weights
    /// to start from). Presets:
    /// network-a (FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10), network-b (two 5x5
    /// convolutions, 16 and 16, with max-pooling, FC 256-100-10), network-c (LeNet: 20 and 50,
    /// FC 800-500-10), network-d (a 5x5 stride-2 convolution of 5, FC 980-100-10), logreg (FC
    /// 784-10; with --encrypted one logit, small digits against large ones), residual (a 3x3
    /// stride-2 convolution of 8, one residual block of two 3x3 convolutions, max-pooling, FC
    /// 392-10). The input follows the data (a table's features) unless the file fixes
    /// `input_shape`.
    #[arg(long, default_value = "network-a")]
    pub model: ModelChoice,
    /// The server optimizer.
    #[arg(long, value_enum, default_value = "fedavg")]
    pub optimizer: OptimizerChoice,
    /// Local epochs per round [default: 1; under `train`, the cluster file's if set].
    #[arg(long)]
    pub local_epochs: Option<usize>,
    /// Local batch size [default: 32; under `train`, the cluster file's if set].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Local SGD learning rate [default: 0.1; under `train`, the cluster file's if set].
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Ring size of the shares: 32, 64 or 128 bits [default: 32; under `train`, the cluster
    /// file's if set].
    #[arg(long)]
    pub ring_bits: Option<u32>,
    /// Output folder (metrics.csv, metrics.png, metrics.svg, checkpoint.json).
    #[arg(long, default_value = "tessera-out")]
    pub out: PathBuf,
    /// Aggregation rule: `mean`; `norm-bound:B` (an upload joins only if the L2 norm of its
    /// update divided by its weight is at most B); `clip:B` (each update scaled down to that
    /// norm if longer); `trimmed-mean:k` (per coordinate, the mean
    /// without the k smallest and k largest values); `median`. All but `mean` run under MPC on
    /// three servers in the 64-bit ring [default: mean; under `train`, the cluster file's if set].
    #[arg(long)]
    pub rule: Option<AggregationRule>,
    /// Distributed differential privacy: each server adds discrete Gaussian noise of standard
    /// deviation Z times --dp-clip to the aggregate, each owner clips its update to --dp-clip
    /// in L2 and weighs 1, and the (epsilon, delta) spent is printed per round
    /// [default: none; under `train`, the cluster file's `[job.dp]` if set].
    #[arg(long, value_name = "Z")]
    pub dp_noise: Option<f64>,
    /// The L2 bound each owner clips its update to under --dp-noise.
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub dp_clip: f64,
    /// The delta the privacy spent is stated for, under --dp-noise.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
}

impl MpcTrainArgs {
    /// The loss reveals asked for: `--loss-every`, else 10, or 0 under DP-SGD (`dp`).
    pub fn loss_every(&self, dp: bool) -> usize {
        self.loss_every.unwrap_or(if dp { 0 } else { 10 })
    }
}

/// DP-SGD for `train-encrypted`.
#[derive(Debug, Clone, clap::Args)]
pub struct DpSgdArgs {
    /// DP-SGD: each example's gradient is clipped to --dp-clip in L2 under MPC, and each server
    /// adds discrete Gaussian noise of standard deviation Z times --dp-clip to every batch's
    /// sum; the (epsilon, delta) of the whole training is printed [default: none].
    #[arg(long, value_name = "Z")]
    pub dp_noise: Option<f64>,
    /// The L2 bound each example's gradient is clipped to under --dp-noise.
    #[arg(long, value_name = "C", default_value_t = 1.0)]
    pub dp_clip: f64,
    /// The delta the privacy spent is stated for, under --dp-noise.
    #[arg(long, default_value_t = 1e-5)]
    pub dp_delta: f64,
}

impl DpSgdArgs {
    /// The DP-SGD the flags ask for, if any.
    pub fn dp(&self) -> Option<DpSettings> {
        self.dp_noise.map(|noise_multiplier| DpSettings {
            noise_multiplier,
            clip: self.dp_clip,
            delta: self.dp_delta,
        })
    }
}

impl TrainingArgs {
    /// The networked training the flags ask for; an encrypted-training optimizer is refused
    /// naming it.
    pub fn request(&self) -> Result<crate::networked::TrainRequest, NotFederated> {
        Ok(crate::networked::TrainRequest {
            rounds: self.rounds,
            model: self.model.clone(),
            optimizer: self.optimizer.settings()?,
            local_epochs: self.local_epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            ring_bits: self.ring_bits,
            out: self.out.clone(),
            rule: self.rule,
            dp: self.dp(),
        })
    }

    /// The differential privacy the flags ask for, if any.
    pub fn dp(&self) -> Option<DpSettings> {
        self.dp_noise.map(|noise_multiplier| DpSettings {
            noise_multiplier,
            clip: self.dp_clip,
            delta: self.dp_delta,
        })
    }
}

/// Options of `simulate --encrypted`.
#[derive(Debug, Clone, clap::Args)]
pub struct EncryptedArgs {
    /// Train under MPC on secret-shared data instead of federated rounds.
    #[arg(long)]
    pub encrypted: bool,
    /// Use only the first N training digits.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also train the same model in the clear with burn (same weights, batches, learning rate).
    #[arg(long)]
    pub compare_plaintext: bool,
    /// The settings of the training itself.
    #[command(flatten)]
    pub mpc: MpcTrainArgs,
}

/// The settings of an encrypted training, simulated or networked.
#[derive(Debug, Clone, clap::Args)]
pub struct MpcTrainArgs {
    /// The MPC protocol.
    #[arg(long, value_enum, default_value = "aby3")]
    pub protocol: ProtocolChoice,
    /// Epochs over the union of the data owners' examples.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Fractional bits of the fixed-point values (128-bit ring).
    #[arg(long, default_value_t = tessera_mpc::train::precision::FRAC_BITS)]
    pub frac_bits: u32,
    /// Reveal the loss of every N-th batch to the model owner for the progress bar (0: never)
    /// [default: 10; 0 under DP-SGD, which reveals no loss].
    #[arg(long)]
    pub loss_every: Option<usize>,
    /// Seed of the initial weights and the batch order.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Multiply the learning rate by this after each epoch.
    #[arg(long, default_value_t = 1.0)]
    pub lr_decay: f64,
    /// Who provides the initial weights (the same He-uniform values from `--seed` either way).
    #[arg(long, value_enum, default_value = "model-owner")]
    pub init: InitChoice,
}

/// A job on a networked cluster, as the model owner names it.
#[derive(Debug, Clone, clap::Args)]
pub struct JobRef {
    /// The cluster file.
    #[arg(long)]
    pub config: PathBuf,
    /// The model owner's key file.
    #[arg(long)]
    pub key: PathBuf,
    /// The job id.
    #[arg(long)]
    pub job: u64,
}
