//! The Tessera compute server (`server0`, `server1`, `server2`): the processes that serve the
//! transport-free services of `tessera-secagg` (secure aggregation) and of [`jobs`] (MPC jobs on the
//! `tessera-mpc` engine) over gRPC.
//!
//! - [`net`]: the gRPC implementation of [`tessera_common::net::Network`] between servers.
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
