//! Tessera's shared core.
//!
//! Everything two or more roles (data owner, aggregator, model owner) need lives here:
//!
//! - [`ring`]: wrapping arithmetic on `u32`, `u64` and `u128` behind one [`ring::Ring`] trait, ring
//!   tensors and a blocked, parallel matmul kernel;
//! - [`ringvec`]: vectors in a ring chosen at run time (a job's `ring_bits`);
//! - [`fixed`]: fixed-point encoding of reals into a ring, with an explicit overflow budget;
//! - [`prg`]: the AES-128-CTR expansion of a 32-byte seed into ring elements;
//! - [`sharing`]: additive, replicated and seed-compressed secret sharing, and an outside
//!   party's end of an MPC job's inputs and outputs;
//! - [`upload`]: which sealed parts a data owner's update upload consists of;
//! - [`party`]: party identifiers (`server0`, `model-owner`, `data-owner-3`);
//! - [`identity`]: X25519 static key pairs and their key files;
//! - [`seal`]: the authenticated envelope every message between parties travels in;
//!   [`chunks`]: a message bigger than one envelope as numbered chunk envelopes;
//! - [`dataset`]: the bundled MNIST digits, IDX and CSV loaders, IID and label-skewed splits;
//! - [`model_spec`] and [`job`]: the serde model description and a job's settings;
//!   [`graph`]: a model as a graph of nodes (residual and concatenating networks), of which a
//!   chain spec is the simplest case;
//! - [`model_file`] and [`onnx`]: what `--model` names: a preset, a model-spec file, or an ONNX
//!   model whose weights start training or are deployed for encrypted prediction;
//! - [`dp`]: distributed differential privacy: the discrete Gaussian the servers add, the
//!   accountant the model owner prints `(epsilon, delta)` with, the cluster's minimum and each
//!   data owner's own budget ledger;
//! - [`protocol`]: which MPC protocol a job runs, and the fixed-point limits all share;
//! - [`train_job`]: an encrypted training job as every party agrees on it;
//!   [`train_policy`]: what such a training may reveal to the model owner;
//! - [`rule`]: the aggregation rule of a job (`mean`, `norm-bound`) and its check's parameters;
//! - [`config`]: the cluster file naming each party's address and public key;
//! - [`api`]: what data owners and the model owner ask of the servers, as transport-free traits;
//!   [`refusal`]: why a secure-aggregation server refused, one variant per cause;
//! - [`batches`]: the public order of training batches;
//! - [`cli`]: command-line pieces every binary shares (`keygen`, logging);
//! - [`net`]: the [`net::Network`] trait between servers and its in-memory implementation.

#![forbid(unsafe_code)]

pub mod api;
pub mod batches;
pub mod chunks;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod dp;
pub mod fixed;
pub mod graph;
pub mod identity;
pub mod job;
pub mod model_file;
pub mod model_spec;
pub mod net;
pub mod notice;
pub mod onnx;
pub mod party;
pub mod prg;
pub mod protocol;
pub mod refusal;
pub mod request;
pub mod ring;
pub mod ringvec;
pub mod rule;
pub mod seal;
pub mod sharing;
pub mod train_job;
pub mod train_policy;
pub mod upload;

pub use party::PartyId;
pub use ring::{Ring, RingTensor};
