//! The sealed envelopes an outside party exchanges with each server's job service: the launch
//! and abort of a job, the chunks of an input (forward secret), and the opening of the output
//! chunks a server returns. The gRPC clients only carry these bytes.

use tessera_common::PartyId;
use tessera_common::chunks::{Keys, Message, seal_chunks};
use tessera_common::seal::{Context, Expected, Purpose, Sealer};

use crate::error::{BadMessage, MpcServiceError as Error};
use crate::job::JobSpec;
use crate::wire::{ABORT_PLAINTEXT, ABORT_ROUND, LAUNCH_ROUND, chunk_all, parse_chunk};

/// The launch envelope of job `job_id` for `server`.
pub fn seal_launch(
    sealer: &Sealer,
    server: PartyId,
    job_id: u64,
    spec: &JobSpec,
) -> Result<Vec<u8>, Error> {
    let json = serde_json::to_vec(spec).map_err(|e| BadMessage::Description(e.to_string()))?;
    let context = Context {
        purpose: Purpose::JobControl,
        job_id,
        round: LAUNCH_ROUND,
        chunk: 0,
    };
    Ok(sealer.seal_for(server, &context, &json)?)
}

/// The abort envelope of job `job_id` for `server` (only the model owner's is obeyed), naming
/// the launch it aborts by the digest the server reports ([`crate::MpcJobStatus::launch_digest`]).
pub fn seal_abort(
    sealer: &Sealer,
    server: PartyId,
    job_id: u64,
    launch_digest: &str,
) -> Result<Vec<u8>, Error> {
    let digest = hex_digest(launch_digest)
        .ok_or_else(|| BadMessage::LaunchDigest(launch_digest.to_string()))?;
    let context = Context {
        purpose: Purpose::JobControl,
        job_id,
        round: ABORT_ROUND,
        chunk: 0,
    };
    let plaintext = [ABORT_PLAINTEXT, &digest].concat();
    Ok(sealer.seal_for(server, &context, &plaintext)?)
}

/// The 32 bytes of a digest written as 64 hex digits.
fn hex_digest(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The chunks of input `round` (its index in the job) carrying `payload` (this server's
/// shares) to `server`, each in a forward-secret envelope.
pub fn seal_input(
    sealer: &Sealer,
    server: PartyId,
    job_id: u64,
    round: u64,
    payload: &[u8],
) -> Result<Vec<Vec<u8>>, Error> {
    let message = Message {
        purpose: Purpose::Input,
        job_id,
        round,
    };
    let pieces = chunk_all(payload);
    Ok(seal_chunks(
        sealer,
        server,
        message,
        Keys::Ephemeral,
        &pieces,
    )?)
}

/// Opens the output chunks `server` returned for the fetch `round` ([`crate::wire::fetch_round`]: an
/// output and a value of it) of job `job_id` and joins them: every chunk must come from that
/// server, for this job, output and value, in order, and all of them must be there.
pub fn open_output(
    sealer: &Sealer,
    server: PartyId,
    job_id: u64,
    round: u64,
    envelopes: &[Vec<u8>],
) -> Result<Vec<u8>, Error> {
    let expected = Expected {
        purpose: Purpose::Output,
        job_id,
        round,
        sender: Some(server),
    };
    let mut out = Vec::new();
    let mut total = None;
    for (i, envelope) in envelopes.iter().enumerate() {
        let opened = sealer.open(envelope, &expected)?;
        if opened.header.chunk != i as u64 {
            return Err(Error::OutOfOrder {
                expected: i as u64,
                got: opened.header.chunk,
            });
        }
        let (n, bytes) = parse_chunk(&opened.plaintext)?;
        if *total.get_or_insert(n) != n {
            return Err(BadMessage::CountsDisagree.into());
        }
        out.extend_from_slice(bytes);
    }
    match total {
        Some(n) if u64::from(n) == envelopes.len() as u64 => Ok(out),
        _ => Err(BadMessage::MissingChunks {
            server,
            got: envelopes.len(),
        }
        .into()),
    }
}
