//! The leader-to-helper messages and their binary wire format (and, re-exported, the values the
//! service hands out).
//!
//! All of a job's leader-to-helper messages travel in order under one tag, `secagg/{job}/leader`
//! ([`leader_tag`]); each names its round and its sequence number within the round, so a helper
//! follows the leader by round: a message of a later round ends whatever the helper had of the
//! earlier one. A decision names the forward it decides, so uploads overlap. A helper answers a
//! `Forward` or a `Close` under `secagg/{job}/{round}/{seq}/reply` ([`reply_tag`]).
//!
//! Wire format, integers little-endian (no JSON on the peer link):
//!
//! ```text
//! RoundMsg  = round u64 | seq u64 | kind u8 | body
//!   Forward   kind 0: owner (5 bytes) | the owner's sealed seed envelope (exactly
//!                     SEED_ENVELOPE_BYTES)
//!   Decide    kind 1: forward u64 | commit u8 (0 or 1)   (forward: the decided forward's seq)
//!   Close     kind 2: abort u8 (0 or 1) | count u32 | count x owner (5 bytes)
//! PeerReply = 0 (ok) | 1 refusal
//!   NotCurrent    kind 0: round u64 | current u64
//!   Over          kind 1: round u64
//!   Contributors  kind 2: count u32 | count x party | count u32 | count x party (leader, mine)
//!   NoSum         kind 3: round u64
//!   Refused       kind 4: name length u8 | the ServiceError's stable name | message (UTF-8)
//! ```

use tessera_common::PartyId;
pub use tessera_common::api::{JobStatus, RoundAnnouncement, RoundState, UploadReceipt};
use tessera_common::net::Tag;
use tessera_common::refusal::{HelperRefusal, Refusal, ServiceError};
use tessera_common::upload::SEED_ENVELOPE_BYTES;

/// Leader-to-helper messages of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// Open this owner's seed envelope and stage its expansion; answer with a [`PeerReply`].
    Forward {
        /// The data owner.
        owner: PartyId,
        /// Its seed envelope for this helper.
        envelope: Vec<u8>,
    },
    /// Commit (or drop) the staged expansion of the forward numbered `forward`.
    Decide {
        /// The forward decided.
        forward: u64,
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

/// A [`PeerMsg`] with the round and sequence number it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundMsg {
    /// The round.
    pub round: u64,
    /// Its number within the round.
    pub seq: u64,
    /// The message.
    pub msg: PeerMsg,
}

/// A helper's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerReply {
    /// Done.
    Ok,
    /// Refused, with the reason.
    Rejected(HelperRefusal),
}

/// Bytes that do not decode as a peer message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub struct MalformedPeerMsg(pub &'static str);

const HEAD: usize = 17;

/// The tag of every leader-to-helper message of a job (they arrive in order).
pub fn leader_tag(job: u64) -> Tag {
    Tag::new(format!("secagg/{job}/leader"))
}

/// The tag of a helper's answer to the leader's message `seq` of `round`.
pub fn reply_tag(job: u64, round: u64, seq: u64) -> Tag {
    Tag::new(format!("secagg/{job}/{round}/{seq}/reply"))
}

/// The prefix of every tag of a job's round (to forget what is left of it).
pub fn round_prefix(job: u64, round: u64) -> String {
    format!("secagg/{job}/{round}/")
}

/// The prefix of every tag of a job.
pub fn job_prefix(job: u64) -> String {
    format!("secagg/{job}/")
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn party_at(b: &[u8], at: usize) -> Result<PartyId, MalformedPeerMsg> {
    let mut x = [0u8; 5];
    x.copy_from_slice(&b[at..at + 5]);
    PartyId::from_bytes(x).ok_or(MalformedPeerMsg("bad party encoding"))
}

fn flag(b: u8) -> Result<bool, MalformedPeerMsg> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(MalformedPeerMsg("flag is neither 0 nor 1")),
    }
}

impl RoundMsg {
    /// Encodes the message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEAD + 6 + SEED_ENVELOPE_BYTES);
        v.extend_from_slice(&self.round.to_le_bytes());
        v.extend_from_slice(&self.seq.to_le_bytes());
        match &self.msg {
            PeerMsg::Forward { owner, envelope } => {
                v.push(0);
                v.extend_from_slice(&owner.to_bytes());
                v.extend_from_slice(envelope);
            }
            PeerMsg::Decide { forward, commit } => {
                v.push(1);
                v.extend_from_slice(&forward.to_le_bytes());
                v.push(u8::from(*commit));
            }
            PeerMsg::Close {
                contributors,
                abort,
            } => {
                v.push(2);
                v.push(u8::from(*abort));
                v.extend_from_slice(&(contributors.len() as u32).to_le_bytes());
                for c in contributors {
                    v.extend_from_slice(&c.to_bytes());
                }
            }
        }
        v
    }

    /// Decodes [`RoundMsg::to_bytes`]; every length is checked exactly.
    pub fn from_bytes(b: &[u8]) -> Result<Self, MalformedPeerMsg> {
        if b.len() < HEAD {
            return Err(MalformedPeerMsg("shorter than its header"));
        }
        let (round, seq) = (u64_at(b, 0), u64_at(b, 8));
        let body = &b[HEAD..];
        let msg = match b[16] {
            0 if body.len() == 5 + SEED_ENVELOPE_BYTES => PeerMsg::Forward {
                owner: party_at(body, 0)?,
                envelope: body[5..].to_vec(),
            },
            1 if body.len() == 9 => PeerMsg::Decide {
                forward: u64_at(body, 0),
                commit: flag(body[8])?,
            },
            2 if body.len() >= 5 => {
                let count = u32::from_le_bytes([body[1], body[2], body[3], body[4]]) as usize;
                if body.len() != 5 + 5 * count {
                    return Err(MalformedPeerMsg("contributor count does not match"));
                }
                PeerMsg::Close {
                    abort: flag(body[0])?,
                    contributors: (0..count)
                        .map(|i| party_at(body, 5 + 5 * i))
                        .collect::<Result<_, _>>()?,
                }
            }
            0..=2 => return Err(MalformedPeerMsg("wrong length for its kind")),
            _ => return Err(MalformedPeerMsg("unknown kind")),
        };
        Ok(RoundMsg { round, seq, msg })
    }
}

impl PeerReply {
    /// Encodes the reply.
    pub fn to_bytes(&self) -> Vec<u8> {
        let PeerReply::Rejected(refusal) = self else {
            return vec![0];
        };
        let mut v = vec![1];
        let parties = |v: &mut Vec<u8>, ps: &[PartyId]| {
            v.extend_from_slice(&(ps.len() as u32).to_le_bytes());
            for p in ps {
                v.extend_from_slice(&p.to_bytes());
            }
        };
        match refusal {
            HelperRefusal::NotCurrent { round, current } => {
                v.push(0);
                v.extend_from_slice(&round.to_le_bytes());
                v.extend_from_slice(&current.to_le_bytes());
            }
            HelperRefusal::Over(round) => {
                v.push(1);
                v.extend_from_slice(&round.to_le_bytes());
            }
            HelperRefusal::Contributors { leader, mine } => {
                v.push(2);
                parties(&mut v, leader);
                parties(&mut v, mine);
            }
            HelperRefusal::NoSum(round) => {
                v.push(3);
                v.extend_from_slice(&round.to_le_bytes());
            }
            HelperRefusal::Refused(e) => {
                v.push(4);
                let name = e.name().as_bytes();
                v.push(name.len() as u8);
                v.extend_from_slice(name);
                v.extend_from_slice(e.to_string().as_bytes());
            }
        }
        v
    }

    /// Decodes [`PeerReply::to_bytes`]; every length is checked exactly. A refusal at the
    /// helper comes back as [`ServiceError::Remote`] under its stable name.
    pub fn from_bytes(b: &[u8]) -> Result<Self, MalformedPeerMsg> {
        let body = match b.split_first() {
            Some((0, [])) => return Ok(PeerReply::Ok),
            Some((1, body)) => body,
            _ => return Err(MalformedPeerMsg("unknown reply")),
        };
        let (&kind, body) = body
            .split_first()
            .ok_or(MalformedPeerMsg("refusal without a kind"))?;
        let refusal = match kind {
            0 if body.len() == 16 => HelperRefusal::NotCurrent {
                round: u64_at(body, 0),
                current: u64_at(body, 8),
            },
            1 if body.len() == 8 => HelperRefusal::Over(u64_at(body, 0)),
            2 => {
                let (leader, rest) = parties_at(body)?;
                let (mine, rest) = parties_at(rest)?;
                if !rest.is_empty() {
                    return Err(MalformedPeerMsg("bytes after the contributor sets"));
                }
                HelperRefusal::Contributors { leader, mine }
            }
            3 if body.len() == 8 => HelperRefusal::NoSum(u64_at(body, 0)),
            4 => {
                let (&n, rest) = body
                    .split_first()
                    .ok_or(MalformedPeerMsg("refusal without a name"))?;
                let (name, message) = rest
                    .split_at_checked(usize::from(n))
                    .ok_or(MalformedPeerMsg("refusal name longer than the reply"))?;
                let message = std::str::from_utf8(message)
                    .map_err(|_| MalformedPeerMsg("refusal message is not UTF-8"))?;
                let refused = std::str::from_utf8(name)
                    .ok()
                    .and_then(|name| ServiceError::remote(name, message.to_owned()))
                    .ok_or(MalformedPeerMsg("unknown refusal name"))?;
                HelperRefusal::Refused(Box::new(refused))
            }
            0..=3 => return Err(MalformedPeerMsg("wrong length for its kind")),
            _ => return Err(MalformedPeerMsg("unknown refusal")),
        };
        Ok(PeerReply::Rejected(refusal))
    }
}

/// A count (u32) and that many parties, and the bytes after them.
fn parties_at(b: &[u8]) -> Result<(Vec<PartyId>, &[u8]), MalformedPeerMsg> {
    let (count, rest) = b
        .split_first_chunk::<4>()
        .ok_or(MalformedPeerMsg("party count cut short"))?;
    let count = u32::from_le_bytes(*count) as usize;
    let len = count
        .checked_mul(5)
        .filter(|len| *len <= rest.len())
        .ok_or(MalformedPeerMsg("party count does not match"))?;
    let parties = (0..count)
        .map(|i| party_at(rest, 5 * i))
        .collect::<Result<_, _>>()?;
    Ok((parties, &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<RoundMsg> {
        let msgs = [
            PeerMsg::Forward {
                owner: PartyId::DataOwner(7),
                envelope: vec![3; SEED_ENVELOPE_BYTES],
            },
            PeerMsg::Decide {
                forward: 0,
                commit: true,
            },
            PeerMsg::Decide {
                forward: u64::MAX,
                commit: false,
            },
            PeerMsg::Close {
                contributors: vec![PartyId::DataOwner(1), PartyId::DataOwner(0)],
                abort: false,
            },
            PeerMsg::Close {
                contributors: Vec::new(),
                abort: true,
            },
        ];
        msgs.into_iter()
            .enumerate()
            .map(|(i, msg)| RoundMsg {
                round: 3,
                seq: i as u64,
                msg,
            })
            .collect()
    }

    #[test]
    fn messages_round_trip_and_every_length_is_exact() {
        for m in samples() {
            let bytes = m.to_bytes();
            assert_eq!(RoundMsg::from_bytes(&bytes), Ok(m.clone()));
            // One byte more or less never decodes.
            assert!(matches!(
                RoundMsg::from_bytes(&bytes[..bytes.len() - 1]),
                Err(MalformedPeerMsg(_))
            ));
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                RoundMsg::from_bytes(&longer),
                Err(MalformedPeerMsg(_))
            ));
        }
        let refusals = [
            HelperRefusal::NotCurrent {
                round: 3,
                current: 4,
            },
            HelperRefusal::Over(2),
            HelperRefusal::Contributors {
                leader: vec![PartyId::DataOwner(1), PartyId::DataOwner(7)],
                mine: vec![PartyId::DataOwner(1)],
            },
            HelperRefusal::NoSum(9),
        ];
        let replies =
            std::iter::once(PeerReply::Ok).chain(refusals.clone().map(PeerReply::Rejected));
        for r in replies {
            assert_eq!(PeerReply::from_bytes(&r.to_bytes()), Ok(r));
        }
        // A refusal of the forward travels as its stable name and message.
        let busy = ServiceError::Busy {
            what: "staged forwards",
            limit: 4,
        };
        let sent = PeerReply::Rejected(HelperRefusal::Refused(Box::new(busy.clone())));
        assert_eq!(
            PeerReply::from_bytes(&sent.to_bytes()),
            Ok(PeerReply::Rejected(HelperRefusal::Refused(Box::new(
                ServiceError::Remote {
                    reason: "busy",
                    message: busy.to_string(),
                }
            ))))
        );
        let mut unknown = sent.to_bytes();
        unknown[3] = b'x';
        let contributors = PeerReply::Rejected(refusals[2].clone()).to_bytes();
        for bad in [
            &[0, 0][..],
            &[1, 0xff],
            &[1],
            &[1, 0, 0],
            &[1, 4, 200, b'b'],
            &unknown,
            &contributors[..contributors.len() - 1],
            &[1, 2, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(matches!(
                PeerReply::from_bytes(bad),
                Err(MalformedPeerMsg(_))
            ));
        }
    }

    #[test]
    fn a_forward_carries_exactly_one_seed_envelope() {
        let mut m = samples().remove(0);
        m.msg = PeerMsg::Forward {
            owner: PartyId::DataOwner(1),
            envelope: vec![0; 5 << 20],
        };
        assert_eq!(
            RoundMsg::from_bytes(&m.to_bytes()),
            Err(MalformedPeerMsg("wrong length for its kind"))
        );
    }
}
