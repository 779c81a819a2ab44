//! Client-side plumbing shared by the data owner's and the model owner's gRPC clients.

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::api::ApiError;
use tessera_common::config::ServerEndpoint;
use tessera_common::request::{RequestKind, now_secs, seal_request};
use tessera_common::seal::Sealer;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status, Streaming};

use crate::convert::api_error_from_status;
use crate::v1::SealedChunk;

/// The gRPC endpoint of a server: `https` trusting exactly its certificate when it has one
/// (the name checked is the address's host), plaintext `http` otherwise.
pub fn endpoint(target: &ServerEndpoint) -> Result<Endpoint, ApiError> {
    let address = &target.address;
    let bad = |e: &dyn std::fmt::Display| ApiError::BadAddress {
        address: address.clone(),
        reason: e.to_string(),
    };
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

/// The metadata key of a call token (binary metadata: base64 on the wire).
pub const CALL_TOKEN_KEY: &str = "tessera-call-bin";

/// Puts a call token ([`RequestKind::Call`], sealed by the caller for `server`) in the headers
/// of every call, so that the server knows the caller before it reads the call's body: a
/// server gives its places only to parties of its cluster, and bounds each one's.
#[derive(Clone)]
pub struct CallToken {
    sealer: Arc<Sealer>,
    server: PartyId,
}

impl std::fmt::Debug for CallToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallToken(for {})", self.server)
    }
}

impl CallToken {
    /// Tokens sealed with `sealer` for `server`.
    pub fn new(sealer: Arc<Sealer>, server: PartyId) -> Self {
        CallToken { sealer, server }
    }

    /// A fresh token (the caller's clock in it).
    pub fn seal(&self) -> Result<Vec<u8>, Status> {
        seal_request(
            &self.sealer,
            self.server,
            RequestKind::Call,
            0,
            0,
            now_secs(),
        )
        .map_err(|e| Status::internal(format!("cannot seal a call token: {e}")))
    }
}

impl Interceptor for CallToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = self.seal()?;
        request
            .metadata_mut()
            .insert_bin(CALL_TOKEN_KEY, MetadataValue::from_bytes(&token));
        Ok(request)
    }
}

/// A channel whose calls carry the caller's [`CallToken`].
pub type CallerChannel = InterceptedService<Channel, CallToken>;

/// A lazily connected channel to `target`, server `server`, whose calls carry tokens sealed
/// with `sealer`.
pub fn caller_channel(
    target: &ServerEndpoint,
    server: PartyId,
    sealer: Arc<Sealer>,
) -> Result<CallerChannel, ApiError> {
    Ok(InterceptedService::new(
        lazy_channel(target)?,
        CallToken::new(sealer, server),
    ))
}
