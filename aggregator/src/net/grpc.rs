//! [`GrpcNetwork`]: the [`Network`] of one server over its [`PeerHub`] (see [`super::hub`] for
//! the links, the handshake and how failures surface).

use std::net::SocketAddr;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::net::{NetError, NetStats, Network, Tag};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::warn;

use super::hub::{GrpcNetworkSettings, PeerHub};

/// One server's endpoint on the gRPC peer network.
pub struct GrpcNetwork {
    hub: PeerHub,
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GrpcNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrpcNetwork({})", self.hub.0.me)
    }
}

impl GrpcNetwork {
    /// Serves the peer service on `listener`, dials the peers, and returns once all are connected.
    pub async fn start<'a>(
        identity: &Identity,
        keys: impl IntoIterator<Item = (PartyId, &'a PublicKey)>,
        settings: &GrpcNetworkSettings,
        listener: TcpListener,
    ) -> Result<Self, NetError> {
        let servers: Vec<PartyId> = settings.servers.iter().map(|(p, _)| *p).collect();
        let hub = PeerHub::new(
            identity,
            &servers,
            keys,
            settings.session,
            settings.recv_timeout,
        );
        let router = tonic::transport::Server::builder().add_service(hub.service());
        let incoming = crate::grpc::conns::nodelay(listener);
        let me = identity.party();
        let server = tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                warn!(%me, error = %e, "peer server stopped");
            }
        });
        let network = GrpcNetwork {
            hub,
            server: Some(server),
        };
        network.hub.connect(settings).await?;
        Ok(network)
    }

    /// A network over a hub whose service is mounted elsewhere (the aggregator's main server).
    pub async fn over_hub(hub: PeerHub, settings: &GrpcNetworkSettings) -> Result<Self, NetError> {
        hub.connect(settings).await?;
        Ok(GrpcNetwork { hub, server: None })
    }

    /// Binds `address` (host:port) for the peer service.
    pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
        match address.parse::<SocketAddr>() {
            Ok(addr) => TcpListener::bind(addr).await,
            Err(_) => TcpListener::bind(address).await,
        }
    }

    /// [`PeerHub::flush`]: waits until the peers have read every frame sent so far.
    pub async fn flush(&self, timeout: Duration) -> bool {
        self.hub.flush(timeout).await
    }
}

impl Drop for GrpcNetwork {
    fn drop(&mut self) {
        self.hub.shutdown();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Network for GrpcNetwork {
    fn me(&self) -> PartyId {
        self.hub.0.me
    }

    fn peer_run(&self, peer: PartyId) -> Option<u64> {
        self.hub.peer_run(peer)
    }

    fn parties(&self) -> &[PartyId] {
        &self.hub.0.servers
    }

    async fn send(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) -> Result<(), NetError> {
        self.hub.send_frame(to, tag, payload).await
    }

    async fn recv(&self, from: PartyId, tag: &Tag) -> Result<Vec<u8>, NetError> {
        let hub = &self.hub.0;
        if !hub.servers.contains(&from) {
            return Err(NetError::UnknownPeer(from));
        }
        let msg = hub.mailbox.recv(from, tag, hub.recv_timeout).await?;
        hub.counters.on_recv(msg.len());
        Ok(msg)
    }

    fn stats(&self) -> NetStats {
        self.hub.0.counters.snapshot()
    }

    fn forget(&self, prefix: &str) -> usize {
        self.hub.0.mailbox.forget(prefix)
    }

    fn queued(&self) -> usize {
        self.hub.0.mailbox.queued()
    }

    async fn linked(&self, within: Duration) -> Result<(), NetError> {
        self.hub.linked(within).await
    }
}
