//! Tessera data-owner node (an institution).
//!
//! - [`data`]: the owner's local data (`--data`, `--limit`, `--shard`).
//! - [`node`]: the round loop: fetch weights, train, share, seal, upload.
//! - [`predict`]: encrypted prediction on a model deployed to the servers.
//! - [`share`]: this party's examples shared into an encrypted training job.
//! - [`cli`]: the `data-owner` command line.

#![forbid(unsafe_code)]

pub mod attack;
pub mod cli;
pub mod data;
pub mod node;
pub mod predict;
pub mod share;
