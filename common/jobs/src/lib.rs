//! The contract between the MPC job service the servers run (`tessera-aggregator`'s `jobs`) and
//! the outside parties that use it (the model owner, data owners): what a job is, what a server
//! reports of it, the wire conventions both ends follow, and the transport-free client.
//!
//! - [`job`]: [`JobSpec`] and [`JobKind`] (the sealed launch description); [`state`]:
//!   [`JobState`].
//! - [`status`]: [`MpcJobStatus`], what a server answers a launch or a status request with: the
//!   inputs and outputs the job declares ([`TransferInfo`]).
//! - [`wire`]: the `round` numbers of control, description and fetch envelopes, job-id ranges,
//!   the chunk format of inputs and outputs.
//! - [`error`]: [`MpcServiceError`], every refusal of the service, carried over the wire
//!   ([`error::BadJob`]: why a description is refused).
//! - [`client`]: [`JobClient`] over any [`MpcTransport`] (gRPC in `tessera-proto`, in-process in
//!   the aggregator's `jobs::local`): launch, share inputs, fetch outputs, wait, abort;
//!   [`envelope`]: the sealed envelopes it exchanges; [`client_error`]: [`ClientError`], why a
//!   job failed on the client's side.
//!
//! It depends on `tessera-common` alone, not on the engine: what a client must share the way
//! the servers read it (the protocol kinds, the sharing schemes, the model and training
//! descriptions) is common to every party.

#![forbid(unsafe_code)]

pub mod client;
pub mod client_error;
pub mod envelope;
pub mod error;
pub mod job;
pub mod state;
pub mod status;
pub mod wire;

pub use client::{JobClient, MpcTransport};
pub use client_error::{ClientError, Inconsistency};
pub use error::MpcServiceError;
pub use job::{JobKind, JobSpec};
pub use state::JobState;
pub use status::{MpcJobStatus, TransferInfo};
