//! What travels in clear and is authenticated: an envelope's purpose and header, what a receiver
//! expects of it, and what opening it gives.

use super::error::SealError;
use super::format::{EPHEMERAL_OVERHEAD, HEADER_LEN, OVERHEAD, VERSION, VERSION_EPHEMERAL};
use super::purpose::Purpose;
use crate::party::PartyId;

/// Where a sealed message belongs: bound into the envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// What the message is for.
    pub purpose: Purpose,
    /// The job.
    pub job_id: u64,
    /// The round (or, on a peer stream, the frame sequence number).
    pub round: u64,
    /// Index of this chunk within the message.
    pub chunk: u64,
}

/// The cleartext, authenticated header of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message is for.
    pub purpose: Purpose,
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// Who sealed it.
    pub sender: PartyId,
    /// Who can open it.
    pub receiver: PartyId,
    /// Chunk index.
    pub chunk: u64,
}

impl Header {
    /// The 36-byte encoding (the AEAD's associated data).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = self.purpose as u8;
        out[2..10].copy_from_slice(&self.job_id.to_le_bytes());
        out[10..18].copy_from_slice(&self.round.to_le_bytes());
        out[18..23].copy_from_slice(&self.sender.to_bytes());
        out[23..28].copy_from_slice(&self.receiver.to_bytes());
        out[28..36].copy_from_slice(&self.chunk.to_le_bytes());
        out
    }

    /// Parses the header at the front of an envelope (without authenticating it).
    pub fn parse(envelope: &[u8]) -> Result<Self, SealError> {
        if envelope.len() < OVERHEAD {
            return Err(SealError::Malformed("shorter than header, nonce and tag"));
        }
        match envelope[0] {
            VERSION => {}
            VERSION_EPHEMERAL if envelope.len() >= EPHEMERAL_OVERHEAD => {}
            VERSION_EPHEMERAL => {
                return Err(SealError::Malformed(
                    "shorter than header, ephemeral key, nonce and tag",
                ));
            }
            other => return Err(SealError::UnsupportedVersion(other)),
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&envelope[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let party_at = |i: usize| {
            let mut b = [0u8; 5];
            b.copy_from_slice(&envelope[i..i + 5]);
            PartyId::from_bytes(b).ok_or(SealError::Malformed("bad party encoding"))
        };
        let purpose =
            Purpose::from_byte(envelope[1]).ok_or(SealError::Malformed("unknown purpose byte"))?;
        Ok(Header {
            purpose,
            job_id: u64_at(2),
            round: u64_at(10),
            sender: party_at(18)?,
            receiver: party_at(23)?,
            chunk: u64_at(28),
        })
    }
}

/// What the receiver expects of an envelope before it authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Expected purpose.
    pub purpose: Purpose,
    /// Expected job.
    pub job_id: u64,
    /// Expected round.
    pub round: u64,
    /// Expected sender, if the receiver knows it (a peer stream does; an upload service does not).
    pub sender: Option<PartyId>,
}

/// An authenticated, decrypted envelope.
pub struct Opened {
    /// Its header.
    pub header: Header,
    /// Its plaintext.
    pub plaintext: Vec<u8>,
    /// Whether it was sealed under an ephemeral key (version 2: forward secret for the sender).
    pub ephemeral: bool,
}
