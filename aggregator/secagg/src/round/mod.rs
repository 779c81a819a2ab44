//! The rounds of a job as explicit, transport-free state machines: the leader's
//! ([`leader::LeaderRounds`]) and a helper's ([`helper::HelperRounds`]).
//!
//! They hold everything a round decides (which uploads are in flight, which committed, when it
//! closes, how it ends) and nothing of how messages travel: the service
//! ([`crate::AggregatorService`]) feeds them calls and messages and sends what they
//! queue. Every path through them ends in a decision: an upload forwarded is committed or dropped
//! (and the helpers told which), a round closed is aggregated or failed (and the helpers told),
//! a helper whose leader vanished fails its round instead of waiting for it.

pub mod helper;
pub mod leader;

pub use helper::{HelperRounds, HelperStep, Staged};
pub use leader::{CloseStep, LeaderRounds, RoundFailure};
