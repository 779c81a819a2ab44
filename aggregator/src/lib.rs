//! The Tessera compute server (`server0`, `server1`, `server2`).
//!
//! - [`net`]: the gRPC implementation of [`tessera_common::net::Network`] between servers.
//! - [`cli`]: the `aggregator` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod net;
