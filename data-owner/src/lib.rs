//! Tessera data-owner node (an institution).
//!
//! - [`model`]: burn modules from a `ModelSpec`, flat parameters, local training, evaluation.
//! - [`cli`]: the `data-owner` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod model;
