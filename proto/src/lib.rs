//! Tessera's wire protocol: the gRPC services and messages of `proto/tessera.proto`, generated at
//! build time by `tonic-prost-build` from descriptors compiled by the pure-Rust `protox` (so no
//! `protoc` install is needed), [`convert`]: conversions to and from `tessera-common` types, and the
//! gRPC clients: [`client`] (channels whose calls carry call tokens, envelope streams), the
//! secure-aggregation clients of a data owner ([`leader_client`]) and of the model owner
//! ([`server_client`]), and [`mpc_client`] (the MPC job service's transport).

#![forbid(unsafe_code)]

pub mod client;
pub mod convert;
pub mod leader_client;
pub mod mpc_client;
pub mod refusal;
pub mod server_client;

pub use leader_client::GrpcLeader;
pub use mpc_client::{GrpcJobs, GrpcTransport};
pub use server_client::GrpcServer;

/// Largest payload a single chunk carries (1 MiB), well under the gRPC message limit.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// The gRPC message size limit Tessera configures on every client and server (a chunk plus its
/// envelope overhead fits many times over).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Generated code of package `tessera.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("tessera.v1");
}
