//! Server-to-server networking.
//!
//! The [`Network`] trait is how MPC protocols and aggregation rounds exchange bytes between compute
//! servers: `send(to, tag, bytes)` and `recv(from, tag)`. Tags name a message within a session
//! (e.g. `"job7/op12/open"`), so independent operations can be in flight at once and messages may
//! arrive in any order: a message waits in the receiver's [`Mailbox`] until someone asks for its
//! `(from, tag)`. A `recv` never hangs: it fails after the network's timeout, or as soon as the peer
//! is known to be gone.
//!
//! Two implementations share the mailbox and the counters (moose's `networking/` has the same
//! split): [`memory::MemoryNetwork`] (tokio channels in one process: simulated mode and tests) and
//! the gRPC one in the aggregator crate (a sealed bidirectional stream per pair of servers).

mod mailbox;
pub mod memory;
mod stats;

use std::future::Future;
use std::time::Duration;

pub use mailbox::Mailbox;
pub use stats::{Counters, NetStats};

use crate::party::PartyId;
use crate::seal::SealError;

/// How long a `recv` waits by default before it fails with [`NetError::Timeout`].
pub const DEFAULT_RECV_TIMEOUT: Duration = Duration::from_secs(60);

/// A message tag: unique per message within a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub String);

impl Tag {
    /// A tag from any string.
    pub fn new(s: impl Into<String>) -> Self {
        Tag(s.into())
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Tag {
    fn from(s: &str) -> Self {
        Tag(s.to_owned())
    }
}

/// Errors of sending and receiving.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// No message arrived in time.
    #[error("timed out after {after:?} waiting for {tag:?} from {from}")]
    Timeout {
        /// The peer.
        from: PartyId,
        /// The tag.
        tag: Tag,
        /// How long we waited.
        after: Duration,
    },
    /// The peer disconnected (or was never reachable).
    #[error("peer {0} disconnected")]
    Disconnected(PartyId),
    /// The peer is not part of this network.
    #[error("unknown peer {0}")]
    UnknownPeer(PartyId),
    /// A transport-level failure (connect, stream).
    #[error("transport error with {peer}: {reason}")]
    Transport {
        /// The peer.
        peer: PartyId,
        /// What happened.
        reason: String,
    },
    /// A message too large for one frame on the link; nothing was sent and the link stays up.
    #[error("message of {bytes} bytes to {peer} exceeds the frame limit of {limit}")]
    TooLarge {
        /// The peer.
        peer: PartyId,
        /// The message's size.
        bytes: usize,
        /// The largest payload a frame carries.
        limit: usize,
    },
    /// A frame failed to open (forged, replayed, misrouted).
    #[error("frame from {peer} rejected: {source}")]
    Seal {
        /// The peer.
        peer: PartyId,
        /// Why it failed to open.
        source: SealError,
    },
}

/// Byte exchange between the compute servers of one session.
pub trait Network: Send + Sync {
    /// This party.
    fn me(&self) -> PartyId;

    /// The parties this network reaches (including this one).
    fn parties(&self) -> &[PartyId];

    /// Sends `payload` to `to` under `tag`.
    fn send(
        &self,
        to: PartyId,
        tag: &Tag,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Receives the message `from` sent under `tag`, waiting up to the network's timeout.
    fn recv(
        &self,
        from: PartyId,
        tag: &Tag,
    ) -> impl Future<Output = Result<Vec<u8>, NetError>> + Send;

    /// Counters since this endpoint was created.
    fn stats(&self) -> NetStats;

    /// Drops the messages queued under tags starting with `prefix` (a session or round that is
    /// over); returns how many.
    fn forget(&self, prefix: &str) -> usize;

    /// Messages received and not yet asked for.
    fn queued(&self) -> usize;

    /// Which run (process start) of `peer` this endpoint is linked to, if the network tells: a
    /// new value means the peer restarted and holds none of the state its last run had, so a
    /// message that needs that state will never be answered. `None` where peers never restart
    /// (in memory, the default).
    fn peer_run(&self, peer: PartyId) -> Option<u64> {
        let _ = peer;
        None
    }

    /// Waits, at most `within`, until this party holds a live link to every other server, and
    /// fails naming one that is missing. A job started right after a peer restarted would
    /// otherwise fail at once on the link not yet back (the default: links are always up).
    fn linked(&self, within: Duration) -> impl Future<Output = Result<(), NetError>> + Send {
        let _ = within;
        async { Ok(()) }
    }
}
