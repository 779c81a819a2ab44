//! Tessera model owner: starts jobs, opens the aggregated results (it alone can), applies the
//! server optimizer, evaluates, checkpoints and reports.
//!
//! - [`trainer`]: the federated training loop over any transport ([`tessera_common::api::ServerApi`]).
//! - [`reveal`]: opening and summing the servers' sealed result shares.
//! - [`optimizer`]: FedAvg and FedAdam.
//! - [`checkpoint`], [`report`]: training state on disk, `metrics.csv` and the `metrics.png`/`metrics.svg` plots.
//! - [`networked`]: `model-owner train` against a networked cluster.
//! - [`simulate`]: simulated mode, every party in one process.
//! - [`encrypted`]: encrypted training in simulated mode; [`train_encrypted`]: the same as a
//!   job the aggregators serve; [`deploy`]: a model's weights shared to the servers for
//!   encrypted prediction.
//! - [`cli`]: the `model-owner` command line.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cli;
pub mod deploy;
pub mod encrypted;
pub mod networked;
pub mod optimizer;
pub mod report;
pub mod reveal;
pub mod simulate;
pub mod train_encrypted;
pub mod trainer;
