//! Tessera model owner: starts jobs, opens the aggregated results (it alone can), applies the
//! server optimizer, evaluates, checkpoints and reports.
//!
//! - [`trainer`]: the federated training loop over any transport ([`tessera_common::api::ServerApi`]).
//! - [`reveal`]: opening and summing the servers' sealed result shares.
//! - [`optimizer`]: FedAvg and FedAdam.
//! - [`checkpoint`], [`report`]: training state on disk, `metrics.csv` and `metrics.png`.
//! - [`simulate`]: simulated mode, every party in one process.
//! - [`cli`]: the `model-owner` command line.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod cli;
pub mod optimizer;
pub mod report;
pub mod reveal;
pub mod simulate;
pub mod trainer;
