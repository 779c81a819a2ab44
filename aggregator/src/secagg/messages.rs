//! The leader-to-helper messages (and, re-exported, the values the service hands out).

use serde::{Deserialize, Serialize};
use tessera_common::PartyId;
pub use tessera_common::api::{JobStatus, RoundAnnouncement, RoundState, UploadReceipt};

/// Leader-to-helper messages of one round, in sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Open this owner's seed envelope and stage its expansion; answer with a [`PeerReply`].
    Forward {
        /// The data owner.
        owner: PartyId,
        /// Its seed envelope for this helper.
        envelope: Vec<u8>,
    },
    /// Commit (or drop) the staged expansion of the last `Forward`.
    Decide {
        /// Commit or drop.
        commit: bool,
    },
    /// The round is closed with this contributor set; seal the result share (unless `abort`).
    Close {
        /// The contributors, in commit order.
        contributors: Vec<PartyId>,
        /// The round failed: drop everything.
        abort: bool,
    },
}

/// A helper's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum PeerReply {
    /// Done.
    Ok,
    /// Refused, with the reason.
    Rejected(String),
}
