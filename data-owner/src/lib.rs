//! Tessera data-owner node (an institution).
//!
//! - [`cli`]: the `data-owner` command line.

#![forbid(unsafe_code)]

pub mod cli;
