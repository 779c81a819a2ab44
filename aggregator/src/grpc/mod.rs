//! The gRPC front of a server: thin tonic adapters over the transport-free
//! [`tessera_secagg::AggregatorService`] ([`federated`]) and [`crate::jobs::MpcService`] ([`mpc`]):
//! decode, call, encode; every decision is the service's. In front of them the [`gate`] (call
//! tokens, places per party, slow messages) over bounded connections ([`conns`]); [`stream`] is
//! what both services do with gRPC streams; [`serve`] hosts them all on one listener.

pub mod conns;
pub mod federated;
pub mod gate;
pub mod mpc;
pub mod serve;
pub mod stream;

pub use federated::ServiceCell;
pub use gate::{Gate, GateLimits};
pub use mpc::MpcCell;
pub use serve::{FEDERATED_SERVICE, MPC_SERVICE, ServerTls, serve};
