//! Thin tonic adapters over the transport-free [`tessera_secagg::AggregatorService`] and
//! [`crate::jobs::MpcService`]: decode, call, encode; every decision is the service's.

pub mod conns;
pub mod gate;
pub mod mpc;
pub mod services;

pub use gate::{Gate, GateLimits};
pub use mpc::MpcCell;
pub use services::{FEDERATED_SERVICE, MPC_SERVICE, ServerTls, ServiceCell, serve};
