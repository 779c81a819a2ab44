//! Client-side plumbing shared by the data owner's and the model owner's gRPC clients.

use tessera_common::api::ApiError;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::convert::api_error_from_status;
use crate::v1::SealedChunk;

/// A channel to `host:port` that connects on first use and reconnects by itself.
pub fn lazy_channel(address: &str) -> Result<Channel, ApiError> {
    let endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| ApiError::Rejected(format!("bad address {address}: {e}")))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Reads a stream of sealed chunks to the end.
pub async fn collect_envelopes(
    mut stream: Streaming<SealedChunk>,
) -> Result<Vec<Vec<u8>>, ApiError> {
    let mut envelopes = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(api_error_from_status)? {
        envelopes.push(chunk.envelope);
    }
    Ok(envelopes)
}

/// A request stream of sealed chunks.
pub fn envelope_stream(
    envelopes: Vec<Vec<u8>>,
) -> impl tokio_stream::Stream<Item = SealedChunk> + Send + 'static {
    tokio_stream::iter(
        envelopes
            .into_iter()
            .map(|envelope| SealedChunk { envelope }),
    )
}
