//! Party identifiers.
//!
//! Every participant of a Tessera cluster has a stable name: the compute servers `server0`,
//! `server1`, `server2`, the `model-owner`, and the institutions `data-owner-0`, `data-owner-1`, ...
//! The name is what the cluster file, key files, logs and sealed envelopes use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The largest number of compute servers a cluster may have.
pub const MAX_SERVERS: u8 = 3;

/// One participant of a Tessera cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PartyId {
    /// A compute server (`server0` is the leader).
    Server(u8),
    /// The model owner: starts jobs and alone opens their results.
    ModelOwner,
    /// A data owner (an institution).
    DataOwner(u32),
}

/// A party name that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown party name {0:?} (expected server0..server2, model-owner or data-owner-N)")]
pub struct BadPartyName(pub String);

impl PartyId {
    /// Whether this party is one of the compute servers.
    pub fn is_server(self) -> bool {
        matches!(self, PartyId::Server(_))
    }

    /// The server index, if this is a server.
    pub fn server_index(self) -> Option<usize> {
        match self {
            PartyId::Server(i) => Some(usize::from(i)),
            _ => None,
        }
    }

    /// Fixed-size binary form used inside sealed envelopes: a kind byte and a little-endian index.
    pub fn to_bytes(self) -> [u8; 5] {
        let (kind, index) = match self {
            PartyId::Server(i) => (0u8, u32::from(i)),
            PartyId::ModelOwner => (1, 0),
            PartyId::DataOwner(i) => (2, i),
        };
        let mut out = [0u8; 5];
        out[0] = kind;
        out[1..].copy_from_slice(&index.to_le_bytes());
        out
    }

    /// Inverse of [`PartyId::to_bytes`]; `None` for an encoding no party has.
    pub fn from_bytes(bytes: [u8; 5]) -> Option<Self> {
        let index = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        match bytes[0] {
            0 => u8::try_from(index)
                .ok()
                .filter(|i| *i < MAX_SERVERS)
                .map(PartyId::Server),
            1 if index == 0 => Some(PartyId::ModelOwner),
            2 => Some(PartyId::DataOwner(index)),
            _ => None,
        }
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartyId::Server(i) => write!(f, "server{i}"),
            PartyId::ModelOwner => write!(f, "model-owner"),
            PartyId::DataOwner(i) => write!(f, "data-owner-{i}"),
        }
    }
}

impl FromStr for PartyId {
    type Err = BadPartyName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPartyName(s.to_owned());
        if s == "model-owner" {
            return Ok(PartyId::ModelOwner);
        }
        if let Some(rest) = s.strip_prefix("server") {
            let index: u8 = parse_index(rest).ok_or_else(bad)?;
            return if index < MAX_SERVERS {
                Ok(PartyId::Server(index))
            } else {
                Err(bad())
            };
        }
        if let Some(rest) = s.strip_prefix("data-owner-") {
            return parse_index(rest).map(PartyId::DataOwner).ok_or_else(bad);
        }
        Err(bad())
    }
}

/// Parses a decimal index with no sign, no leading zeros (except "0") and no spaces.
fn parse_index<T: FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical { s.parse().ok() } else { None }
}

impl TryFrom<String> for PartyId {
    type Error = BadPartyName;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PartyId> for String {
    fn from(p: PartyId) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            PartyId::Server(0),
            PartyId::Server(2),
            PartyId::ModelOwner,
            PartyId::DataOwner(0),
            PartyId::DataOwner(417),
        ] {
            assert_eq!(p.to_string().parse::<PartyId>(), Ok(p));
            assert_eq!(PartyId::from_bytes(p.to_bytes()), Some(p));
        }
    }

    #[test]
    fn bad_names_are_rejected() {
        for s in [
            "server3",
            "server",
            "server01",
            "data-owner-",
            "data-owner--1",
            "model_owner",
            "",
            "Server0",
        ] {
            assert!(s.parse::<PartyId>().is_err(), "{s:?} parsed");
        }
        assert_eq!(PartyId::from_bytes([0, 3, 0, 0, 0]), None);
        assert_eq!(PartyId::from_bytes([9, 0, 0, 0, 0]), None);
    }
}
