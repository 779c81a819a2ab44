//! The Tessera compute server (`server0`, `server1`, `server2`).
//!
//! - [`net`]: the gRPC implementation of [`tessera_common::net::Network`] between servers.
//! - [`secagg`]: secure-aggregation rounds (transport-free service logic).
//! - [`grpc`]: the tonic adapters of the data-owner and model-owner services.
//! - [`jobs`]: MPC jobs (deployments, predictions, trainings) served in networked mode: launch,
//!   sealed inputs and outputs, status, abort. The engine itself is `tessera-mpc`.
//! - [`metrics`]: the Prometheus endpoint (`--metrics-addr`).
//! - [`cli`]: the `aggregator` command line.

#![forbid(unsafe_code)]

pub mod cli;
pub mod grpc;
pub mod jobs;
pub mod metrics;
pub mod net;
pub mod secagg;
