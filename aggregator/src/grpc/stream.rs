//! What every client service does with gRPC streams: the size bound of a client's message, the
//! next sealed chunk of a client stream (a broken or slow stream mapped to its status), and a
//! stream of sealed chunks to answer with.

use std::pin::Pin;

use tessera_common::upload::UPLOAD_CHUNK_BYTES;
use tessera_proto::v1::SealedChunk;
use tokio_stream::Stream;
use tonic::{Status, Streaming};

/// The largest message a data owner or the model owner sends: one sealed chunk of at most
/// [`UPLOAD_CHUNK_BYTES`] plus its part header and envelope, with room to spare. A stalled call
/// can thus make the server buffer at most this much (before the gate's deadlines cut it), and
/// all calls together at most `GateLimits::calls_per_party` times it per party of the cluster.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = UPLOAD_CHUNK_BYTES + 4096;

/// The next chunk of a client stream: `None` at its end; refused if it does not decode, or
/// comes too slowly (the gate's deadlines, see [`super::gate`]).
pub(crate) async fn next_chunk(
    stream: &mut Streaming<SealedChunk>,
) -> Result<Option<Vec<u8>>, Status> {
    match stream.message().await {
        Ok(chunk) => Ok(chunk.map(|c| c.envelope)),
        Err(s) => Err(stream_error(s)),
    }
}

/// A broken client stream: a message that does not decode is the client's fault
/// (`invalid_argument`), one over the size limit `resource_exhausted` (as gRPC itself answers),
/// one the gate found too slow `deadline_exceeded`, anything else a stream that broke
/// (`cancelled`).
fn stream_error(s: Status) -> Status {
    match s.code() {
        tonic::Code::DeadlineExceeded => s,
        tonic::Code::Internal => {
            Status::invalid_argument(format!("malformed message: {}", s.message()))
        }
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => {
            Status::resource_exhausted(format!("message too large: {}", s.message()))
        }
        _ => Status::cancelled(format!("stream broke: {}", s.message())),
    }
}

pub(crate) type ChunkStream = Pin<Box<dyn Stream<Item = Result<SealedChunk, Status>> + Send>>;

pub(crate) fn chunk_stream(envelopes: Vec<Vec<u8>>) -> ChunkStream {
    Box::pin(tokio_stream::iter(
        envelopes
            .into_iter()
            .map(|envelope| Ok(SealedChunk { envelope })),
    ))
}
