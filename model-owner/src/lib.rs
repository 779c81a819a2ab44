//! Tessera model owner: starts jobs, opens results, trains the global model.
//!
//! - [`cli`]: the `model-owner` command line.

#![forbid(unsafe_code)]

pub mod cli;
