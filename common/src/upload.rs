//! The upload of one data owner's update for one round: what is sealed for which server.
//!
//! The update (an encoded vector of `n` ring elements) is shared with seed compression among the
//! job's servers ([`crate::sharing::seeded`]). The upload is a sequence of sealed envelopes, all
//! with purpose `Upload`, the job id and the round, numbered by chunk index:
//!
//! | chunk index | receiver | plaintext ([`UploadPart`]) |
//! | --- | --- | --- |
//! | 0 | `server0` | `Manifest { chunks: k, elements: n, ring_bits, frac_bits }` |
//! | 1..=k | `server0` | `Share { offset, elements }`: consecutive pieces of the explicit share |
//! | k + i (i = 1, 2) | `server{i}` | `Seed { seed, elements: n }` |
//!
//! Each share piece holds at most [`UPLOAD_CHUNK_BYTES`] of elements, so an upload is about one
//! plaintext copy of the update plus 96 bytes per envelope. Every envelope is forward secret
//! ([`Sealer::seal_ephemeral_for`]): a data owner's key stolen later does not open its recorded
//! uploads, and the servers refuse upload envelopes that are not. The leader opens chunks `0..=k` and
//! forwards each helper's seed envelope unopened; only the helper can open it.

use crate::prg::Seed;
use crate::ring::{Ring, decode_elements, encode_elements};
use crate::seal::{Context, Purpose, SealError, Sealer};
use crate::sharing::{SharingError, share_seeded};
use crate::{PartyId, RingTensor};

/// Largest share piece carried by one envelope (1 MiB).
pub const UPLOAD_CHUNK_BYTES: usize = 1 << 20;

/// Bytes of a [`UploadPart::Seed`] plaintext: kind, seed, element count.
pub const SEED_PART_BYTES: usize = 1 + 32 + 8;

/// Bytes of a helper's sealed seed envelope (forward secret, like every upload envelope): the
/// leader forwards exactly this many.
pub const SEED_ENVELOPE_BYTES: usize = crate::seal::EPHEMERAL_OVERHEAD + SEED_PART_BYTES;

/// The plaintext of one upload envelope.
#[derive(Clone, PartialEq, Eq)]
pub enum UploadPart {
    /// What follows for the leader.
    Manifest {
        /// Number of share chunks.
        chunks: u32,
        /// Elements in the update.
        elements: u64,
        /// Ring size.
        ring_bits: u32,
        /// Fractional bits the update was encoded with (the leader refuses a mismatch with the
        /// job's, so an owner misled about the job cannot add a mis-scaled update).
        frac_bits: u32,
    },
    /// A piece of the explicit share.
    Share {
        /// Index of its first element.
        offset: u64,
        /// Little-endian ring elements.
        bytes: Vec<u8>,
    },
    /// A helper's seed.
    Seed {
        /// The seed.
        seed: Seed,
        /// Elements it expands to.
        elements: u64,
    },
}

impl std::fmt::Debug for UploadPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadPart::Manifest {
                chunks,
                elements,
                ring_bits,
                frac_bits,
            } => {
                write!(
                    f,
                    "Manifest({chunks} chunks, {elements} x u{ring_bits}, {frac_bits} fractional bits)"
                )
            }
            UploadPart::Share { offset, bytes } => {
                write!(f, "Share(@{offset}, {} bytes)", bytes.len())
            }
            UploadPart::Seed { elements, .. } => write!(f, "Seed(<redacted>, {elements})"),
        }
    }
}

/// An upload plaintext that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed upload part: {0}")]
pub struct MalformedPart(pub &'static str);

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl UploadPart {
    /// Encodes: a kind byte, then the fields little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            UploadPart::Manifest {
                chunks,
                elements,
                ring_bits,
                frac_bits,
            } => {
                let mut v = vec![0u8];
                v.extend_from_slice(&chunks.to_le_bytes());
                v.extend_from_slice(&elements.to_le_bytes());
                v.extend_from_slice(&ring_bits.to_le_bytes());
                v.extend_from_slice(&frac_bits.to_le_bytes());
                v
            }
            UploadPart::Share { offset, bytes } => {
                let mut v = Vec::with_capacity(9 + bytes.len());
                v.push(1);
                v.extend_from_slice(&offset.to_le_bytes());
                v.extend_from_slice(bytes);
                v
            }
            UploadPart::Seed { seed, elements } => {
                let mut v = vec![2u8];
                v.extend_from_slice(&seed.0);
                v.extend_from_slice(&elements.to_le_bytes());
                v
            }
        }
    }

    /// Decodes [`UploadPart::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, MalformedPart> {
        match (b.first(), b.len()) {
            (Some(0), 21) => Ok(UploadPart::Manifest {
                chunks: u32::from_le_bytes([b[1], b[2], b[3], b[4]]),
                elements: u64_at(b, 5),
                ring_bits: u32::from_le_bytes([b[13], b[14], b[15], b[16]]),
                frac_bits: u32::from_le_bytes([b[17], b[18], b[19], b[20]]),
            }),
            (Some(1), n) if n >= 9 => Ok(UploadPart::Share {
                offset: u64_at(b, 1),
                bytes: b[9..].to_vec(),
            }),
            (Some(2), SEED_PART_BYTES) => {
                let mut seed = [0u8; 32];
                seed.copy_from_slice(&b[1..33]);
                Ok(UploadPart::Seed {
                    seed: Seed(seed),
                    elements: u64_at(b, 33),
                })
            }
            (Some(0..=2), _) => Err(MalformedPart("wrong length for its kind")),
            _ => Err(MalformedPart("unknown kind")),
        }
    }
}

/// Errors of building an upload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadBuildError {
    /// Sharing failed.
    #[error(transparent)]
    Sharing(#[from] SharingError),
    /// Sealing failed.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Shares `update` among `num_servers` servers with seed compression and seals every part: the
/// envelopes to send, in chunk-index order.
pub fn build_upload<R: Ring, G: rand::CryptoRng + ?Sized>(
    sealer: &Sealer,
    job_id: u64,
    round: u64,
    update: &[R],
    frac_bits: u32,
    num_servers: usize,
    rng: &mut G,
) -> Result<Vec<Vec<u8>>, UploadBuildError> {
    let x = RingTensor::from_vec(&[update.len()], update.to_vec()).map_err(SharingError::from)?;
    let shares = share_seeded(&x, num_servers, rng)?;
    let per_chunk = (UPLOAD_CHUNK_BYTES / R::BYTES).max(1);
    let pieces: Vec<&[R]> = shares.explicit.as_slice().chunks(per_chunk).collect();
    let ctx = |chunk: u64| Context {
        purpose: Purpose::Upload,
        job_id,
        round,
        chunk,
    };
    let mut out = Vec::with_capacity(pieces.len() + num_servers);
    let manifest = UploadPart::Manifest {
        chunks: pieces.len() as u32,
        elements: update.len() as u64,
        ring_bits: R::BITS,
        frac_bits,
    };
    out.push(sealer.seal_ephemeral_for(PartyId::Server(0), &ctx(0), &manifest.to_bytes())?);
    for (i, piece) in pieces.iter().enumerate() {
        let part = UploadPart::Share {
            offset: (i * per_chunk) as u64,
            bytes: encode_elements(piece),
        };
        out.push(sealer.seal_ephemeral_for(
            PartyId::Server(0),
            &ctx(1 + i as u64),
            &part.to_bytes(),
        )?);
    }
    for (i, seed) in shares.seeds.iter().enumerate() {
        let helper = i + 1;
        let part = UploadPart::Seed {
            seed: seed.clone(),
            elements: update.len() as u64,
        };
        let chunk = (pieces.len() + helper) as u64;
        out.push(sealer.seal_ephemeral_for(
            PartyId::Server(helper as u8),
            &ctx(chunk),
            &part.to_bytes(),
        )?);
    }
    Ok(out)
}

/// Decodes a share piece's elements.
pub fn share_elements<R: Ring>(bytes: &[u8]) -> Result<Vec<R>, MalformedPart> {
    decode_elements(bytes).ok_or(MalformedPart("share bytes are not whole ring elements"))
}

/// [`build_upload`] for an update held as a [`crate::ringvec::RingVec`].
pub fn build_upload_vec<G: rand::CryptoRng + ?Sized>(
    sealer: &Sealer,
    job_id: u64,
    round: u64,
    update: &crate::ringvec::RingVec,
    frac_bits: u32,
    num_servers: usize,
    rng: &mut G,
) -> Result<Vec<Vec<u8>>, UploadBuildError> {
    use crate::ringvec::RingVec;
    match update {
        RingVec::U32(v) => build_upload(sealer, job_id, round, v, frac_bits, num_servers, rng),
        RingVec::U64(v) => build_upload(sealer, job_id, round, v, frac_bits, num_servers, rng),
        RingVec::U128(v) => build_upload(sealer, job_id, round, v, frac_bits, num_servers, rng),
    }
}

/// Number of share chunks an update of `elements` elements of `element_bytes` bytes is cut into.
pub fn share_chunk_count(elements: usize, element_bytes: usize) -> usize {
    let per_chunk = (UPLOAD_CHUNK_BYTES / element_bytes).max(1);
    elements.div_ceil(per_chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        for part in [
            UploadPart::Manifest {
                chunks: 3,
                elements: 99,
                ring_bits: 32,
                frac_bits: 16,
            },
            UploadPart::Share {
                offset: 7,
                bytes: vec![1, 2, 3, 4],
            },
            UploadPart::Seed {
                seed: Seed([9; 32]),
                elements: 5,
            },
        ] {
            assert_eq!(UploadPart::from_bytes(&part.to_bytes()), Ok(part));
        }
        for bad in [&[0, 1][..], &[7], &[]] {
            assert!(matches!(UploadPart::from_bytes(bad), Err(MalformedPart(_))));
        }
    }
}
