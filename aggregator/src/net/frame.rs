//! Peer frames: how a tagged message is sealed onto, and opened from, a peer stream.
//!
//! Plaintext of a frame: `tag length (u32 LE) || tag (UTF-8) || payload`. The envelope's header
//! binds purpose [`Purpose::Peer`], the connection id (in the `job_id` field), the frame's sequence
//! number in its direction (in the `round` field), sender and receiver. The receiver expects the
//! exact next sequence number, so a dropped, reordered or replayed frame fails to open.
//!
//! Handshake, challenge first, so that no hello can be replayed:
//!
//! 1. The acceptor sends a fresh 32-byte challenge `a` (raw, unsealed: a substituted challenge
//!    only makes the handshake fail).
//! 2. The dialer answers with its hello, sealed for the acceptor under the session id:
//!    [`Hello`] `{ answers: a, nonce: d, run }` with its own fresh nonce `d` and its process's
//!    run id. The acceptor refuses a hello that does not answer its challenge.
//! 3. The acceptor answers with its hello `{ answers: d, nonce: a, run }`; the dialer refuses
//!    one that does not answer `d`.
//!
//! Only then is the link registered (a live link is replaced only by a confirmed one). The
//! connection id is `SHA-256("tessera/v1/peer" || session || d || a)` (first 8 bytes, LE): fresh
//! on both sides, so frames recorded on an earlier connection fail to open on a later one.

use sha2::{Digest, Sha256};
use tessera_common::PartyId;
use tessera_common::net::Tag;
use tessera_common::seal::{Context, Expected, Purpose, SealError, Sealer};

/// The tag of the hello frames that open a connection.
pub const HELLO_TAG: &str = "\0hello";

/// A frame that opened but does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The envelope failed to open.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The plaintext is too short or its tag is not UTF-8.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

/// Seals `(tag, payload)` as frame number `seq` for `receiver` on connection `conn`.
pub fn seal_frame(
    sealer: &Sealer,
    receiver: PartyId,
    conn: u64,
    seq: u64,
    tag: &Tag,
    payload: &[u8],
) -> Result<Vec<u8>, SealError> {
    let tag_bytes = tag.0.as_bytes();
    let mut plain = Vec::with_capacity(4 + tag_bytes.len() + payload.len());
    plain.extend_from_slice(&(tag_bytes.len() as u32).to_le_bytes());
    plain.extend_from_slice(tag_bytes);
    plain.extend_from_slice(payload);
    let context = Context {
        purpose: Purpose::Peer,
        job_id: conn,
        round: seq,
        chunk: 0,
    };
    sealer.seal_for(receiver, &context, &plain)
}

/// Opens frame number `seq` from `sender` on connection `conn` into `(tag, payload)`.
pub fn open_frame(
    sealer: &Sealer,
    sender: Option<PartyId>,
    conn: u64,
    seq: u64,
    envelope: &[u8],
) -> Result<(PartyId, Tag, Vec<u8>), FrameError> {
    let expected = Expected {
        purpose: Purpose::Peer,
        job_id: conn,
        round: seq,
        sender,
    };
    let opened = sealer.open(envelope, &expected)?;
    let plain = opened.plaintext;
    if plain.len() < 4 {
        return Err(FrameError::Malformed("no tag length"));
    }
    let tag_len = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]) as usize;
    if plain.len() < 4 + tag_len {
        return Err(FrameError::Malformed("tag longer than frame"));
    }
    let tag = std::str::from_utf8(&plain[4..4 + tag_len])
        .map_err(|_| FrameError::Malformed("tag is not UTF-8"))?
        .to_owned();
    let payload = plain[4 + tag_len..].to_vec();
    Ok((opened.header.sender, Tag(tag), payload))
}

/// Bytes of a hello's payload.
pub const HELLO_BYTES: usize = 32 + 32 + 8;

/// What a hello frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// The other end's fresh value this hello answers (the acceptor's challenge, or the dialer's
    /// nonce).
    pub answers: [u8; 32],
    /// This end's fresh value.
    pub nonce: [u8; 32],
    /// This end's process run id (random per process: a new one means the peer restarted).
    pub run: u64,
}

impl Hello {
    /// The payload.
    pub fn to_bytes(&self) -> [u8; HELLO_BYTES] {
        let mut out = [0u8; HELLO_BYTES];
        out[..32].copy_from_slice(&self.answers);
        out[32..64].copy_from_slice(&self.nonce);
        out[64..].copy_from_slice(&self.run.to_le_bytes());
        out
    }

    /// Parses an opened hello frame: its tag must be [`HELLO_TAG`] and its payload
    /// [`HELLO_BYTES`] long.
    pub fn parse(tag: &Tag, payload: &[u8]) -> Result<Self, FrameError> {
        if tag.0 != HELLO_TAG || payload.len() != HELLO_BYTES {
            return Err(FrameError::Malformed("not a hello"));
        }
        let mut hello = Hello {
            answers: [0; 32],
            nonce: [0; 32],
            run: 0,
        };
        hello.answers.copy_from_slice(&payload[..32]);
        hello.nonce.copy_from_slice(&payload[32..64]);
        let mut run = [0u8; 8];
        run.copy_from_slice(&payload[64..]);
        hello.run = u64::from_le_bytes(run);
        Ok(hello)
    }
}

/// The connection id both ends derive from the session and the two hello nonces.
pub fn connection_id(session: u64, dialer_nonce: &[u8; 32], acceptor_nonce: &[u8; 32]) -> u64 {
    let digest = Sha256::new()
        .chain_update(b"tessera/v1/peer")
        .chain_update(session.to_le_bytes())
        .chain_update(dialer_nonce)
        .chain_update(acceptor_nonce)
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::identity::Identity;

    fn sealers() -> (Sealer, Sealer) {
        let a = Identity::generate(PartyId::Server(2), &mut rand::rng());
        let b = Identity::generate(PartyId::Server(0), &mut rand::rng());
        let keys = [(a.party(), *a.public_key()), (b.party(), *b.public_key())];
        (
            Sealer::new(&a, keys.iter().map(|(p, k)| (*p, k))),
            Sealer::new(&b, keys.iter().map(|(p, k)| (*p, k))),
        )
    }

    #[test]
    fn frames_round_trip_and_bind_sequence_and_connection() {
        let (a, b) = sealers();
        let tag = Tag::new("op7/open");
        let env = seal_frame(&a, PartyId::Server(0), 99, 3, &tag, b"payload").unwrap();
        let (sender, got_tag, payload) =
            open_frame(&b, Some(PartyId::Server(2)), 99, 3, &env).unwrap();
        assert_eq!(
            (sender, got_tag, payload.as_slice()),
            (PartyId::Server(2), tag, &b"payload"[..])
        );
        // Replayed (expected the next sequence number) or from an earlier connection: rejected.
        assert!(matches!(
            open_frame(&b, Some(PartyId::Server(2)), 99, 4, &env),
            Err(FrameError::Seal(SealError::WrongRound {
                expected: 4,
                got: 3
            }))
        ));
        assert!(matches!(
            open_frame(&b, Some(PartyId::Server(2)), 100, 3, &env),
            Err(FrameError::Seal(SealError::WrongJob { .. }))
        ));
    }

    #[test]
    fn connection_ids_depend_on_both_nonces() {
        let base = connection_id(1, &[1; 32], &[2; 32]);
        assert_ne!(base, connection_id(1, &[1; 32], &[3; 32]));
        assert_ne!(base, connection_id(1, &[3; 32], &[2; 32]));
        assert_ne!(base, connection_id(2, &[1; 32], &[2; 32]));
        assert_eq!(base, connection_id(1, &[1; 32], &[2; 32]));
    }
}
