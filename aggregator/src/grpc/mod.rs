//! Thin tonic adapters over the transport-free [`crate::secagg::AggregatorService`]: decode, call,
//! encode; every decision is the service's.

pub mod services;

pub use services::{ServerTls, ServiceCell, serve};
