//! The Tessera MPC engine: every server runs the same program with its own party index (SPMD) over the
//! [`tessera_common::net::Network`].
//!
//! - [`session`]: a computation session: operation ids (each operation gets its own message tags,
//!   so independent operations can be in flight), pairwise PRG seeds agreed at session start for
//!   correlated randomness (zero-sharings, common masks, the dealer's triples), per-operation
//!   counters and a message-depth clock for communication rounds.
//! - [`harness`]: run one async program as all servers in one process over the in-memory network
//!   (the library equivalent of TF Encrypted's `LocalConfig`), with outside parties if wanted, or
//!   over any network (gRPC).
//! - [`io`]: the outside parties' end over a [`tessera_common::net::Network`] (simulated mode):
//!   a data owner or the model owner shares an input to the servers or receives an output only
//!   it may see, in the layouts of [`tessera_common::sharing::outside`].
//! - [`pond`]: two-party additive sharing between `server0` and `server1` with `server2` as the
//!   crypto producer (Dahl et al. 2018, "Private Machine Learning in TensorFlow using Secure
//!   Computation", arXiv 1810.08130, §3).
//! - [`securenn`]: Pond's sharing plus exact comparisons with `server2` as helper (Wagh, Gupta,
//!   Chandran, PoPETs 2019).
//! - [`aby3`]: three-party replicated arithmetic and boolean sharing and conversions (Mohassel &
//!   Rindal, CCS 2018).
//! - [`protocol`]: one trait over the three; operations a protocol lacks fail with
//!   [`MpcError::Unsupported`].
//! - [`prep`]: preprocessing: the pools of correlated randomness made ahead of the online
//!   phase, their accounting, and what a program needs ([`prep::Needs`]).
//! - [`nn`], [`approx`]: layers and function approximations written once over the trait;
//!   [`layout`]: the local gathers they use (im2col, pooling windows, sorting network).

#![forbid(unsafe_code)]

pub mod aby3;
pub mod activations;
pub mod approx;
pub mod error;
pub mod graph;
pub mod harness;
pub mod io;
pub mod layout;
pub mod model;
pub mod nn;
pub mod pond;
pub mod prep;
pub mod prepare;
pub mod protocol;
pub mod securenn;
pub mod session;
pub mod train;

pub use error::MpcError;
pub use session::{Op, OpStats, Session};
