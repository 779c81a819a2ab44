//! The gRPC [`Network`]: one sealed bidirectional stream per pair of servers.
//!
//! Every server mounts the [`PeerHub::service`] on its gRPC server; the higher-numbered server of
//! each pair dials the lower one, so with three servers `server2` dials `server0` and `server1`, and
//! `server1` dials `server0`. A connection opens with a sealed hello each way, carrying fresh nonces
//! from which both ends derive the connection id (see [`super::frame`]); after that every frame is
//! sealed with the pair key, bound to the connection and numbered. Dialing retries with backoff
//! until the connect deadline.
//!
//! Failures never hang: a frame that fails to open, a stream that ends or errors, or an endpoint
//! that is dropped marks the peer gone in the mailbox, and pending and later receives from it fail
//! with a [`NetError`]; receives also time out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tessera_common::PartyId;
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::net::{Counters, Mailbox, NetError, NetStats, Network, Tag};
use tessera_common::seal::Sealer;
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::v1::PeerFrame;
use tessera_proto::v1::peer_service_client::PeerServiceClient;
use tessera_proto::v1::peer_service_server::{PeerService, PeerServiceServer};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::codec::Streaming;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::frame::{FrameError, HELLO_TAG, connection_id, open_frame, seal_frame};

/// Frames buffered per direction before `send` waits.
const LINK_BUFFER: usize = 64;
/// How long a new stream may take to deliver its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a server's peer network.
#[derive(Debug, Clone)]
pub struct GrpcNetworkSettings {
    /// Session id both ends bind hellos to (e.g. the job id); all servers must agree.
    pub session: u64,
    /// Every server of the session with its `host:port`, including this one.
    pub servers: Vec<(PartyId, String)>,
    /// How long a `recv` waits.
    pub recv_timeout: Duration,
    /// How long connecting to every peer may take.
    pub connect_timeout: Duration,
}

type FrameTx = mpsc::Sender<Result<PeerFrame, Status>>;

struct Link {
    tx: FrameTx,
    conn: u64,
    next_seq: u64,
}

struct HubInner {
    me: PartyId,
    servers: Vec<PartyId>,
    session: u64,
    sealer: Sealer,
    mailbox: Mailbox,
    counters: Counters,
    recv_timeout: Duration,
    links: StdMutex<HashMap<PartyId, Arc<Mutex<Link>>>>,
    linked: watch::Sender<usize>,
    readers: StdMutex<Vec<JoinHandle<()>>>,
}

/// The shared state of one server's peer connections; cheap to clone.
#[derive(Clone)]
pub struct PeerHub(Arc<HubInner>);

impl std::fmt::Debug for PeerHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerHub({})", self.0.me)
    }
}

fn random_nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand::rng().fill_bytes(&mut n);
    n
}

fn frame_error(peer: PartyId, e: FrameError) -> NetError {
    match e {
        FrameError::Seal(source) => NetError::Seal { peer, source },
        FrameError::Malformed(reason) => NetError::Transport {
            peer,
            reason: reason.to_owned(),
        },
    }
}

impl PeerHub {
    /// A hub for `identity` among `servers`, knowing their public keys.
    pub fn new<'a>(
        identity: &Identity,
        servers: &[PartyId],
        keys: impl IntoIterator<Item = (PartyId, &'a PublicKey)>,
        session: u64,
        recv_timeout: Duration,
    ) -> Self {
        let sealer = Sealer::new(identity, keys.into_iter().filter(|(p, _)| p.is_server()));
        PeerHub(Arc::new(HubInner {
            me: identity.party(),
            servers: servers.to_vec(),
            session,
            sealer,
            mailbox: Mailbox::new(),
            counters: Counters::default(),
            recv_timeout,
            links: StdMutex::new(HashMap::new()),
            linked: watch::Sender::new(0),
            readers: StdMutex::new(Vec::new()),
        }))
    }

    /// The tonic service to mount on this server's gRPC server.
    pub fn service(&self) -> PeerServiceServer<PeerAcceptor> {
        PeerServiceServer::new(PeerAcceptor { hub: self.clone() })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<PartyId, Arc<Mutex<Link>>>> {
        self.0.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated connection and starts reading from it.
    fn register(&self, peer: PartyId, tx: FrameTx, conn: u64, inbound: Streaming<PeerFrame>) {
        self.0.mailbox.revive_peer(peer);
        {
            let mut links = self.links();
            links.insert(
                peer,
                Arc::new(Mutex::new(Link {
                    tx,
                    conn,
                    next_seq: 1,
                })),
            );
            // Published under the links lock, so two registrations racing cannot leave a stale
            // count behind.
            self.0.linked.send_replace(links.len());
        }
        let hub = self.clone();
        let reader = tokio::spawn(async move { hub.read_loop(peer, conn, inbound).await });
        self.0
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(reader);
        debug!(me = %self.0.me, %peer, "peer connected");
    }

    async fn read_loop(self, peer: PartyId, conn: u64, mut inbound: Streaming<PeerFrame>) {
        let mut seq = 1u64;
        let error = loop {
            match inbound.message().await {
                Ok(Some(frame)) => {
                    match open_frame(&self.0.sealer, Some(peer), conn, seq, &frame.envelope) {
                        Ok((_, tag, payload)) => {
                            seq += 1;
                            if !self.0.mailbox.deliver(peer, tag, payload) {
                                break NetError::Disconnected(self.0.me);
                            }
                        }
                        Err(e) => {
                            warn!(me = %self.0.me, %peer, error = %e, "dropping peer link: bad frame");
                            break frame_error(peer, e);
                        }
                    }
                }
                Ok(None) => break NetError::Disconnected(peer),
                Err(status) => {
                    break NetError::Transport {
                        peer,
                        reason: status.message().to_owned(),
                    };
                }
            }
        };
        debug!(me = %self.0.me, %peer, %error, "peer link closed");
        {
            let mut links = self.links();
            links.remove(&peer);
            self.0.linked.send_replace(links.len());
        }
        self.0.mailbox.fail_peer(peer, error);
    }

    fn check_dialer(&self, peer: PartyId) -> Result<(), Status> {
        let (Some(p), Some(me)) = (peer.server_index(), self.0.me.server_index()) else {
            return Err(Status::permission_denied(format!("{peer} is not a server")));
        };
        if !self.0.servers.contains(&peer) || p <= me {
            return Err(Status::permission_denied(format!(
                "{peer} may not dial {}",
                self.0.me
            )));
        }
        Ok(())
    }

    /// Dials `peer` at `address` until connected or `deadline`.
    async fn dial(&self, peer: PartyId, address: &str, deadline: Instant) -> Result<(), NetError> {
        let transport = |reason: String| NetError::Transport { peer, reason };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| transport(e.to_string()))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let mut backoff = Duration::from_millis(50);
        let channel = loop {
            match endpoint.connect().await {
                Ok(c) => break c,
                Err(e) if Instant::now() + backoff < deadline => {
                    debug!(me = %self.0.me, %peer, error = %e, "dial failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(transport(format!("could not connect to {address}: {e}"))),
            }
        };
        let mut client = PeerServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        let my_nonce = random_nonce();
        let hello = seal_frame(
            &self.0.sealer,
            peer,
            self.0.session,
            0,
            &Tag::from(HELLO_TAG),
            &my_nonce,
        )
        .map_err(|source| NetError::Seal { peer, source })?;
        tx.send(Ok(PeerFrame { envelope: hello }))
            .await
            .map_err(|_| NetError::Disconnected(peer))?;
        let outbound = ReceiverStream::new(rx).filter_map(Result::ok);
        let mut inbound = client
            .exchange(outbound)
            .await
            .map_err(|s| transport(format!("exchange refused: {}", s.message())))?
            .into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| transport("no hello".into()))?
            .map_err(|s| transport(s.message().to_owned()))?
            .ok_or(NetError::Disconnected(peer))?;
        let (_, tag, their_nonce) = open_frame(
            &self.0.sealer,
            Some(peer),
            self.0.session,
            0,
            &first.envelope,
        )
        .map_err(|e| frame_error(peer, e))?;
        let their_nonce: [u8; 32] = match (tag.0 == HELLO_TAG, their_nonce.try_into()) {
            (true, Ok(n)) => n,
            _ => return Err(transport("bad hello".into())),
        };
        let conn = connection_id(self.0.session, &my_nonce, &their_nonce);
        self.register(peer, tx, conn, inbound);
        Ok(())
    }

    /// Dials every lower-numbered server and waits until every peer is connected.
    pub async fn connect(&self, settings: &GrpcNetworkSettings) -> Result<(), NetError> {
        let deadline = Instant::now() + settings.connect_timeout;
        let me = self
            .0
            .me
            .server_index()
            .ok_or(NetError::UnknownPeer(self.0.me))?;
        for (peer, address) in &settings.servers {
            if peer.server_index().is_some_and(|p| p < me) {
                self.dial(*peer, address, deadline).await?;
            }
        }
        let expected = self.0.servers.len() - 1;
        let mut linked = self.0.linked.subscribe();
        let wait = linked.wait_for(|n| *n >= expected);
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                let links = self.links();
                let missing = self
                    .0
                    .servers
                    .iter()
                    .find(|p| **p != self.0.me && !links.contains_key(p))
                    .copied()
                    .unwrap_or(self.0.me);
                Err(NetError::Transport {
                    peer: missing,
                    reason: format!("did not connect within {:?}", settings.connect_timeout),
                })
            }
        }
    }

    fn shutdown(&self) {
        self.0.mailbox.close();
        self.links().clear();
        for reader in self
            .0
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            reader.abort();
        }
    }
}

/// The `PeerService` implementation: accepts streams from higher-numbered servers.
#[derive(Clone, Debug)]
pub struct PeerAcceptor {
    hub: PeerHub,
}

#[tonic::async_trait]
impl PeerService for PeerAcceptor {
    type ExchangeStream = ReceiverStream<Result<PeerFrame, Status>>;

    async fn exchange(
        &self,
        request: Request<Streaming<PeerFrame>>,
    ) -> Result<Response<Self::ExchangeStream>, Status> {
        let hub = &self.hub.0;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello"))??
            .ok_or_else(|| Status::cancelled("stream closed before hello"))?;
        let (peer, tag, their_nonce) =
            open_frame(&hub.sealer, None, hub.session, 0, &first.envelope)
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
        self.hub.check_dialer(peer)?;
        let their_nonce: [u8; 32] = match (tag.0 == HELLO_TAG, their_nonce.try_into()) {
            (true, Ok(n)) => n,
            _ => return Err(Status::invalid_argument("bad hello")),
        };
        let my_nonce = random_nonce();
        let hello = seal_frame(
            &hub.sealer,
            peer,
            hub.session,
            0,
            &Tag::from(HELLO_TAG),
            &my_nonce,
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        tx.send(Ok(PeerFrame { envelope: hello }))
            .await
            .map_err(|_| Status::internal("link closed"))?;
        let conn = connection_id(hub.session, &their_nonce, &my_nonce);
        self.hub.register(peer, tx, conn, inbound);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

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
        let incoming = TcpListenerStream::new(listener);
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

    fn parties(&self) -> &[PartyId] {
        &self.hub.0.servers
    }

    async fn send(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) -> Result<(), NetError> {
        let hub = &self.hub.0;
        if !hub.servers.contains(&to) {
            return Err(NetError::UnknownPeer(to));
        }
        if to == hub.me {
            let len = payload.len();
            if !hub.mailbox.deliver(to, tag.clone(), payload) {
                return Err(NetError::Disconnected(to));
            }
            hub.counters.on_send(len);
            return Ok(());
        }
        let link = self
            .hub
            .links()
            .get(&to)
            .cloned()
            .ok_or(NetError::Disconnected(to))?;
        let mut link = link.lock().await;
        let envelope = seal_frame(&hub.sealer, to, link.conn, link.next_seq, tag, &payload)
            .map_err(|source| NetError::Seal { peer: to, source })?;
        link.next_seq += 1;
        link.tx
            .send(Ok(PeerFrame { envelope }))
            .await
            .map_err(|_| NetError::Disconnected(to))?;
        hub.counters.on_send(payload.len());
        Ok(())
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
}
