//! Server-to-server networking over gRPC.
//!
//! [`grpc::GrpcNetwork`] (over [`hub::PeerHub`], the links and their handshakes) implements [`tessera_common::net::Network`] with one bidirectional
//! `PeerService.Exchange` stream per pair of servers, every frame sealed with the pair's key. The
//! in-memory implementation lives beside the trait in `tessera-common`.

pub mod frame;
pub mod grpc;
pub mod handshakes;
pub mod hub;

pub use grpc::GrpcNetwork;
pub use hub::{GrpcNetworkSettings, PeerHub};
