//! The `bench` command line: which suites to run, their options, and `report`, which renders the
//! tables of JSON already written (and fills the guide's benchmark chapter with them).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Tessera's benchmark suites: each prints its table and writes `target/bench/<suite>.json`.
#[derive(Debug, Parser)]
#[command(name = "bench")]
pub struct BenchCli {
    /// The suites to run, in order; `report` renders the tables of the JSON already written.
    #[arg(required = true, value_enum)]
    pub suites: Vec<Suite>,
    /// Only this case: an operation (`mpc`), a rule family (`secagg-rules`) or a model (`train`,
    /// `accuracy`, `infer`).
    #[arg(long)]
    pub only: Option<String>,
    /// Parameters per update (`secagg-rules`).
    #[arg(long)]
    pub params: Option<usize>,
    /// Also train to accuracy, encrypted and in plaintext (`train`).
    #[arg(long)]
    pub accuracy: bool,
    /// Epochs of `--accuracy`.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Where `report` reads the JSON [default: `target/bench`].
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// A markdown file whose `<!-- bench:SUITE -->` regions `report` fills in place.
    #[arg(long)]
    pub guide: Option<PathBuf>,
}

/// A suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Suite {
    /// Ring arithmetic, the matmul kernel, the PRG and sealing.
    Ring,
    /// Secure aggregation against plaintext, by owners and parameters.
    Secagg,
    /// One round under each aggregation rule.
    SecaggRules,
    /// MPC operations under each protocol, with rounds, bytes and floors.
    Mpc,
    /// One federated round with many data owners.
    Owners,
    /// Encrypted prediction served over gRPC and in memory.
    Serve,
    /// Encrypted training steps.
    Train,
    /// Whole encrypted trainings to test accuracy, beside burn's (minutes each).
    Accuracy,
    /// Encrypted inference of ResNet-18/50, VGG-19 and DenseNet-121 (minutes).
    Infer,
    /// The tables of the JSON already written (`--from`, `--guide`).
    Report,
}

impl Suite {
    /// The suite's name, as its JSON file and the guide's markers spell it.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Ring => "ring",
            Suite::Secagg => "secagg",
            Suite::SecaggRules => "secagg-rules",
            Suite::Mpc => "mpc",
            Suite::Owners => "owners",
            Suite::Serve => "serve",
            Suite::Train => "train",
            Suite::Accuracy => "accuracy",
            Suite::Infer => "infer",
            Suite::Report => "report",
        }
    }
}
