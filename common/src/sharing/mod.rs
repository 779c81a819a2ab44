//! Secret sharing over rings.
//!
//! - [`additive`]: n-party additive sharing, `x = x_0 + ... + x_{n-1}` (Pond, SecureNN, secure
//!   aggregation).
//! - [`replicated`]: 3-party replicated sharing (ABY3 §2): `x = x_0 + x_1 + x_2` and party `i` holds
//!   the pair `(x_i, x_{i+1})`.
//! - [`seeded`]: seed-compressed additive sharing: shares `1..n` are PRG expansions of 32-byte
//!   seeds and only share 0 travels in full, so an upload is about one plaintext copy.
//! - [`outside`]: what an outside party sends each MPC server of a value it shares, and how it
//!   reconstructs an output from their shares.
//!
//! Every sharing returns [`SharingError`] for inconsistent inputs rather than panicking.

pub mod additive;
pub mod outside;
pub mod replicated;
pub mod seeded;

pub use additive::{reveal_additive, share_additive};
pub use replicated::{ReplicatedShare, reveal_replicated, share_replicated};
pub use seeded::{SeededShares, expand_seed_share, reveal_seeded, share_seeded};

use crate::ring::ShapeError;

/// Errors of sharing and reconstruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharingError {
    /// Fewer than two parties, or more than supported.
    #[error("cannot share among {0} parties")]
    BadPartyCount(usize),
    /// No shares to reconstruct from.
    #[error("no shares given")]
    NoShares,
    /// Shares of different shapes.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// Replicated shares whose overlapping components disagree.
    #[error(
        "replicated shares are inconsistent: party {0}'s second component differs from party {1}'s first"
    )]
    Inconsistent(usize, usize),
    /// A server's share of an output that is not the output's length.
    #[error("{from} sent a share of {label:?} that is not {expected} elements")]
    ShareLength {
        /// The server.
        from: crate::PartyId,
        /// The output.
        label: String,
        /// Its elements.
        expected: usize,
    },
}
