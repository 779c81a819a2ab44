//! Client-side plumbing shared by the data owner's and the model owner's gRPC clients.

use tessera_common::api::ApiError;
use tessera_common::config::ServerEndpoint;
use tonic::Streaming;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::convert::api_error_from_status;
use crate::v1::SealedChunk;

/// The gRPC endpoint of a server: `https` trusting exactly its certificate when it has one
/// (the name checked is the address's host), plaintext `http` otherwise.
pub fn endpoint(target: &ServerEndpoint) -> Result<Endpoint, ApiError> {
    let address = &target.address;
    let bad = |e: &dyn std::fmt::Display| ApiError::Rejected(format!("bad address {address}: {e}"));
    let endpoint = match &target.tls_cert {
        None => Endpoint::from_shared(format!("http://{address}")).map_err(|e| bad(&e))?,
        Some(cert) => {
            let host = address
                .rsplit_once(':')
                .map_or(address.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(cert))
                .domain_name(host);
            Endpoint::from_shared(format!("https://{address}"))
                .map_err(|e| bad(&e))?
                .tls_config(tls)
                .map_err(|e| bad(&e))?
        }
    };
    Ok(endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true))
}

/// A channel to a server that connects on first use and reconnects by itself.
pub fn lazy_channel(target: &ServerEndpoint) -> Result<Channel, ApiError> {
    Ok(endpoint(target)?.connect_lazy())
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
