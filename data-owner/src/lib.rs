//! Tessera data-owner node (an institution).
//!
//! - [`model`]: burn modules from a `ModelSpec`, flat parameters, local training, evaluation.
//! - [`node`]: the round loop: fetch weights, train, share, seal, upload.
//! - [`cli`]: the `data-owner` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod model;
pub mod node;
