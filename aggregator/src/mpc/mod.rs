//! The MPC engine: every server runs the same program with its own party index (SPMD) over the
//! [`tessera_common::net::Network`].
//!
//! - [`session`]: a computation session: operation ids (each operation gets its own message tags,
//!   so independent operations can be in flight), pairwise PRG seeds agreed at session start for
//!   correlated randomness, per-operation communication counters.
//! - [`harness`]: run one async program as all servers in one process over the in-memory network
//!   (the library equivalent of TF Encrypted's `LocalConfig`).
//! - [`pond`]: two-party additive sharing between `server0` and `server1` with `server2` as the
//!   crypto producer (Dahl et al. 2018, "Private Machine Learning in TensorFlow using Secure
//!   Computation", arXiv 1810.08130, §3).
//!
//! Status: the session, the harness and Pond's sharing, reveal, linear operations, Beaver
//! multiplication and matrix multiplication and probabilistic truncation are built and tested;
//! SecureNN and ABY3 are not yet.

pub mod aby3;
pub mod approx;
pub mod harness;
pub mod io;
pub mod layout;
pub mod nn;
pub mod pond;
pub mod protocol;
pub mod securenn;
pub mod session;

pub use session::{MpcError, Op, OpStats, Session};
