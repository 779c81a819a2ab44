//! The server half of MPC jobs (the contract both halves follow is `tessera-jobs`), served by the
//! aggregator processes: encrypted prediction on deployed models (and,
//! next, encrypted training), in networked mode, beside secure aggregation on the same servers.
//!
//! The choreography follows moose's launch / retrieve / abort:
//!
//! 1. **Launch.** Whoever starts a job (the model owner for a deployment, an allowed client for
//!    a prediction) sends every server the same [`tessera_jobs::JobSpec`], sealed for it (purpose
//!    `Control`, the job id in the header). Each server checks it ([`server::MpcService::launch`]:
//!    who may launch what, the cluster file's access list, the clock, a fresh id) and starts its
//!    part: a [`tessera_mpc::Session`] whose id is the job id, so the job's messages between the
//!    servers never meet another job's or a secure-aggregation round's, over an
//!    [`endpoint::JobNet`]. The servers first compare digests of their descriptions.
//! 2. **Inputs.** Each outside party named by the job sends each server its shares, sealed for
//!    that server in forward-secret envelopes (purpose `Input`, the input's index as the round),
//!    in chunks; the server checks sender, index, order, size and replays, then hands the whole
//!    input to the job's program, which reads it with `Protocol::input` exactly as in simulated
//!    mode. An outside party never talks to the peer network.
//! 3. **Outputs.** The program's `Protocol::output` to an outside party lands in the job's
//!    outbox at each server; the receiver fetches each server's share with a request token and
//!    gets it sealed for itself alone ([`tessera_jobs::envelope::open_output`], then
//!    [`tessera_common::sharing::outside::reconstruct`]).
//! 4. **Status and abort.** Parties of the job ask for its state; the model owner aborts it at
//!    every server. A finished, failed or aborted job's queued messages are dropped at once and
//!    again after a linger time; the service bounds running jobs, remembered jobs and models
//!    ([`server::MpcLimits`]).
//!
//! A server lost mid-job makes the others' receives fail (disconnected or timed out, naming it),
//! and a server whose part fails tells the others ([`watch`]), so the job fails at every server
//! at once and its fetchers get the failure; the other jobs go on.

pub mod endpoint;
mod job;
pub mod limits;
pub mod local;
mod program;
mod registry;
pub mod server;
pub mod watch;

pub use limits::MpcLimits;
pub use local::LocalTransport;
pub use server::MpcService;
