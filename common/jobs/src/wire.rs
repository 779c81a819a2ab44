//! The job service's wire conventions, the same at both ends: the `round` numbers of control,
//! description and fetch envelopes, the job-id ranges of launchers, and the chunk format of
//! inputs and outputs.

use tessera_common::PartyId;
use tessera_common::upload::UPLOAD_CHUNK_BYTES;

use crate::error::{BadMessage, MpcServiceError as Error};

/// The `round` of a launch envelope (purpose `JobControl`).
pub const LAUNCH_ROUND: u64 = 0;
/// The `round` of an abort envelope (purpose `JobControl`).
pub const ABORT_ROUND: u64 = 1;
/// The plaintext of an abort envelope starts with this; the digest of the launch it aborts
/// follows ([`crate::MpcJobStatus::launch_digest`]), so a recorded abort stops that one launch only,
/// never a later job under the same id.
pub const ABORT_PLAINTEXT: &[u8] = b"abort";
/// The `round` of the job description a server seals for a status request's caller (purpose
/// `JobControl`): what a data owner checks before it shares anything.
pub const DESCRIPTION_ROUND: u64 = 2;

/// The first job id of the range data owners' (prediction clients') ids start at: the model
/// owner's ids lie below it, data owner `i`'s in `[2^62 + i 2^30, 2^62 + (i + 1) 2^30)`.
pub const CLIENT_JOB_IDS: u64 = 1 << 62;

/// Job ids per data owner.
const IDS_PER_CLIENT: u64 = 1 << 30;

/// The job ids `launcher` may launch under, so that no party can take an id another will use
/// (a client launching the id the model owner hands its data owners): the model owner's below
/// [`CLIENT_JOB_IDS`], each data owner's a range of its own above; none for a server.
pub fn job_ids_of(launcher: PartyId) -> Option<std::ops::Range<u64>> {
    match launcher {
        PartyId::ModelOwner => Some(0..CLIENT_JOB_IDS),
        PartyId::DataOwner(i) => {
            let start = CLIENT_JOB_IDS + u64::from(i) * IDS_PER_CLIENT;
            Some(start..start + IDS_PER_CLIENT)
        }
        PartyId::Server(_) => None,
    }
}

/// The `round` of an output fetch (its token, its request and the envelopes of the answer):
/// the output's index in the job in the low 32 bits, the number of the value under it in the
/// high 32 (a training's losses are one output with a value per revealed loss).
pub fn fetch_round(index: u32, seq: u32) -> u64 {
    u64::from(index) | u64::from(seq) << 32
}

/// The plaintext of one chunk of an input or output: `total chunks (u32 LE) || bytes`.
pub fn chunk_plaintext(total: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + bytes.len());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Splits a chunk's plaintext into its total and bytes.
pub fn parse_chunk(plaintext: &[u8]) -> Result<(u32, &[u8]), Error> {
    if plaintext.len() < 4 {
        return Err(BadMessage::ChunkHeader.into());
    }
    let (head, bytes) = plaintext.split_at(4);
    let total = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if total == 0 {
        return Err(BadMessage::ZeroChunks.into());
    }
    Ok((total, bytes))
}

/// Cuts `bytes` into chunk plaintexts of at most [`UPLOAD_CHUNK_BYTES`] (one empty chunk for
/// nothing).
pub fn chunk_all(bytes: &[u8]) -> Vec<Vec<u8>> {
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![&[]]
    } else {
        bytes.chunks(UPLOAD_CHUNK_BYTES).collect()
    };
    let total = pieces.len() as u32;
    pieces
        .into_iter()
        .map(|p| chunk_plaintext(total, p))
        .collect()
}
