//! Secure aggregation rounds: the servers' side of federated learning.
//!
//! Transport-free service logic ([`service::AggregatorService`]); the aggregator's gRPC layer
//! converts and delegates, and simulated mode calls it directly.
//!
//! One round, as the leader (`server0`) runs it:
//!
//! 1. The model owner opens round `r` with the global weights ([`service::AggregatorService::open_round`]);
//!    data owners learn of it by long poll and fetch the weights, sealed for each of them.
//! 2. A data owner uploads its update as sealed chunks ([`session::UploadSession`]): the explicit share
//!    is checked and staged chunk by chunk (memory O(d) per upload in flight, never O(clients x d)),
//!    and each helper's seed envelope is kept unopened.
//! 3. At the end of an upload the leader forwards the seed envelopes to the helpers, which open them
//!    (only they can), expand them and answer; on every helper's yes the leader commits: the staged
//!    share joins the round's running sum, the helpers add their expansions, and the owner joins the
//!    contributor set. A forged seed, a replay, a wrong length, a closed round: the upload is refused
//!    with a typed error and the round is untouched.
//! 4. The round closes when `max_clients` owners have contributed (an owner the rule refused, or
//!    one that declined the job because its data does not fit the model, takes a place: see
//!    `tessera_common::notice`) or at the deadline; with fewer than
//!    `min_clients` it fails. On close the leader sends the contributor set to the helpers, which
//!    check it is exactly theirs; every server seals its share of the sum for the model owner.
//!
//! Leader-to-helper messages travel over the [`tessera_common::net::Network`] in order under one tag
//! per job, `secagg/{job}/leader`, each naming its round and sequence number (binary, see
//! [`messages`]); helpers answer under `secagg/{job}/{round}/{seq}/reply`. Bounds on what callers
//! may hold are in [`limits`].

#![forbid(unsafe_code)]

mod driver;
pub mod limits;
pub mod local;
pub mod messages;
pub mod metrics;
pub mod robust;
pub mod round;
pub mod service;
pub mod session;
pub mod upload;

pub use driver::leader::{MAX_WEIGHT_FETCHES, RoundOpening};
pub use limits::Limits;
pub use messages::{JobStatus, RoundAnnouncement, RoundState, UploadReceipt};
pub use metrics::{SecaggCounts, SecaggMetrics};
pub use service::AggregatorService;
pub use session::UploadSession;
pub use tessera_common::refusal::ServiceError;
pub use upload::Upload;
