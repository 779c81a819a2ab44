//! The peer hub: the links of one server to the others over gRPC, one sealed bidirectional
//! stream per pair of servers, and the `PeerService` that accepts them ([`PeerAcceptor`]).
//! [`super::grpc::GrpcNetwork`] is the [`tessera_common::net::Network`] over it.
//!
//! One concern, a link's life, in one file of some 650 lines: registering a link, reading it,
//! redialling it when it drops, dialling and accepting with the handshake; each of these calls
//! the others around that life, so splitting them would make files that import each other.
//!
//! Every server mounts the [`PeerHub::service`] on its gRPC server; the higher-numbered server of
//! each pair dials the lower one, so with three servers `server2` dials `server0` and `server1`, and
//! `server1` dials `server0`. A connection opens with the acceptor's fresh challenge and a sealed
//! hello each way that answers the other end's fresh value (see [`super::frame`]), so a recorded
//! hello cannot be replayed, and a live link is replaced only by a confirmed one; after that every
//! frame is sealed with the pair key, bound to the connection and numbered. Dialing (the TCP
//! connect and the whole handshake) retries with backoff until the connect deadline, and a dialer
//! whose link is lost dials again until it is back.
//!
//! Failures never hang: a frame that fails to open, a stream that ends or errors, or an endpoint
//! that is dropped marks the peer gone in the mailbox, and pending and later receives from it fail
//! with a [`NetError`]; receives also time out. A message too large for one frame is refused with
//! [`NetError::TooLarge`] before anything is sent, so it cannot break the link.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tessera_common::PartyId;
use tessera_common::config::ServerEndpoint;
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::net::{Counters, Mailbox, NetError, Tag};
use tessera_common::seal::Sealer;
use tessera_proto::MAX_MESSAGE_BYTES;
use tessera_proto::v1::PeerFrame;
use tessera_proto::v1::peer_service_client::PeerServiceClient;
use tessera_proto::v1::peer_service_server::{PeerService, PeerServiceServer};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::Streaming;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::frame::{FrameError, HELLO_TAG, Hello, connection_id, open_frame, seal_frame};
use super::handshakes::{HELLO_TIMEOUT, Handshakes, Ticket};

/// The tag of a flush marker (see [`PeerHub::flush`]); its payload is the flush's nonce.
const FLUSH_TAG: &str = "\0flush";
/// The tag prefix of a flush marker's answer (`<prefix>/<nonce>`).
const FLUSHED_TAG: &str = "\0flushed";
/// Frames buffered per direction before `send` waits.
const LINK_BUFFER: usize = 64;
/// Longest pause between two attempts to dial a peer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Bytes a frame adds around its payload besides the tag: the envelope, the tag length, and
/// (generously) the protobuf field header.
const FRAME_OVERHEAD: usize = tessera_common::seal::OVERHEAD + 4 + 16;

/// The largest payload one frame carries under `tag` within the gRPC message limit.
pub fn max_payload_bytes(tag: &Tag) -> usize {
    MAX_MESSAGE_BYTES.saturating_sub(FRAME_OVERHEAD + tag.0.len())
}

/// Settings of a server's peer network.
#[derive(Debug, Clone)]
pub struct GrpcNetworkSettings {
    /// Session id both ends bind hellos to (e.g. the job id); all servers must agree.
    pub session: u64,
    /// Every server of the session with its `host:port`, including this one.
    pub servers: Vec<(PartyId, String)>,
    /// The TLS certificates (PEM) of the servers that serve TLS: dialled over TLS, trusting
    /// exactly that certificate.
    pub tls_certs: HashMap<PartyId, String>,
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

/// A registered link: its connection id (to tell it from a newer one) and its sending side.
type LinkEntry = (u64, Arc<Mutex<Link>>);

pub(super) struct HubInner {
    pub(super) me: PartyId,
    pub(super) servers: Vec<PartyId>,
    session: u64,
    sealer: Sealer,
    pub(super) mailbox: Mailbox,
    pub(super) counters: Counters,
    pub(super) recv_timeout: Duration,
    links: StdMutex<HashMap<PartyId, LinkEntry>>,
    linked: watch::Sender<usize>,
    readers: StdMutex<Vec<JoinHandle<()>>>,
    /// This process's run id, sent in every hello.
    run: u64,
    /// Each peer's run id from its last confirmed hello (a new one means it restarted).
    peer_runs: StdMutex<HashMap<PartyId, u64>>,
    /// The peers this server dials, with their endpoints (to dial again after a loss).
    dial_targets: StdMutex<HashMap<PartyId, ServerEndpoint>>,
    closed: AtomicBool,
    /// Places for handshakes in progress (see [`super::handshakes`]).
    handshakes: Arc<Handshakes>,
    /// The connections of the gRPC front this hub is mounted on, if bounded: a peer's is
    /// trusted once its hello is authentic.
    conns: std::sync::OnceLock<Arc<crate::grpc::conns::Conns>>,
}

/// The shared state of one server's peer connections; cheap to clone.
#[derive(Clone)]
pub struct PeerHub(pub(super) Arc<HubInner>);

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
            run: rand::rng().next_u64(),
            peer_runs: StdMutex::new(HashMap::new()),
            dial_targets: StdMutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            handshakes: Arc::new(Handshakes::default()),
            conns: std::sync::OnceLock::new(),
        }))
    }

    /// The tonic service to mount on this server's gRPC server.
    pub fn service(&self) -> PeerServiceServer<PeerAcceptor> {
        PeerServiceServer::new(PeerAcceptor { hub: self.clone() })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// Trusts, in `conns`, the connections of peers whose hello is authentic (the gRPC front
    /// this hub is mounted on bounds its connections with `conns`).
    pub fn trust_with(&self, conns: &Arc<crate::grpc::conns::Conns>) {
        let _ = self.0.conns.set(Arc::clone(conns));
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<PartyId, LinkEntry>> {
        self.0.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an authenticated connection from the peer process `run` and starts reading
    /// from it. If the peer restarted (a run id other than its last), whatever waits on it here
    /// fails at once: the new process never saw what the old one was asked, and the old link's
    /// closing may come after this one replaced it, too late to fail them (they would wait out
    /// the whole receive timeout).
    fn register(
        &self,
        peer: PartyId,
        run: u64,
        tx: FrameTx,
        conn: u64,
        inbound: Streaming<PeerFrame>,
    ) {
        let previous = self
            .0
            .peer_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, run);
        if previous.is_some_and(|r| r != run) {
            warn!(me = %self.0.me, %peer, "peer restarted: failing what waited on its last run");
            self.0.mailbox.fail_peer(peer, NetError::Disconnected(peer));
        }
        self.0.mailbox.revive_peer(peer);
        {
            let mut links = self.links();
            // A confirmed handshake replaces an older link (the peer restarted or redialled).
            links.insert(
                peer,
                (
                    conn,
                    Arc::new(Mutex::new(Link {
                        tx,
                        conn,
                        next_seq: 1,
                    })),
                ),
            );
            // Published under the links lock, so two registrations racing cannot leave a stale
            // count behind.
            self.0.linked.send_replace(links.len());
        }
        let hub = self.clone();
        let reader = tokio::spawn(async move { hub.read_loop(peer, conn, inbound).await });
        let mut readers = self.0.readers.lock().unwrap_or_else(|p| p.into_inner());
        // Links come and go (redials): keep only the readers still running.
        readers.retain(|r| !r.is_finished());
        readers.push(reader);
        debug!(me = %self.0.me, %peer, "peer connected");
    }

    /// The run id `peer` gave in its last confirmed handshake.
    pub(super) fn peer_run(&self, peer: PartyId) -> Option<u64> {
        self.0
            .peer_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .copied()
    }

    /// Seals and queues one frame to `to` (or delivers it here if `to` is this server).
    pub(super) async fn send_frame(
        &self,
        to: PartyId,
        tag: &Tag,
        payload: Vec<u8>,
    ) -> Result<(), NetError> {
        let hub = &self.0;
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
        let limit = max_payload_bytes(tag);
        if payload.len() > limit {
            return Err(NetError::TooLarge {
                peer: to,
                bytes: payload.len(),
                limit,
            });
        }
        let (_, link) = self
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

    /// Waits until every frame this server queued to its peers so far has reached them (at
    /// most `timeout`): a flush marker goes to each linked peer behind those frames, and each
    /// answers it once it has read them (frames on a link arrive in order). Call it before a
    /// server leaves, so its last frames are not cut off with its connections. `false` if a
    /// peer did not answer in time or is not linked.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let peers: Vec<PartyId> = self.links().keys().copied().collect();
        let nonce = rand::rng().next_u64();
        let reply = Tag::new(format!("{FLUSHED_TAG}/{nonce}"));
        let mut all = true;
        for peer in &peers {
            if self
                .send_frame(*peer, &Tag::new(FLUSH_TAG), nonce.to_le_bytes().to_vec())
                .await
                .is_err()
            {
                all = false;
            }
        }
        for peer in peers {
            if self.0.mailbox.recv(peer, &reply, timeout).await.is_err() {
                all = false;
            }
        }
        self.0.mailbox.forget(&reply.0);
        all
    }

    async fn read_loop(self, peer: PartyId, conn: u64, mut inbound: Streaming<PeerFrame>) {
        let mut seq = 1u64;
        let error = loop {
            match inbound.message().await {
                Ok(Some(frame)) => {
                    match open_frame(&self.0.sealer, Some(peer), conn, seq, &frame.envelope) {
                        Ok((_, tag, payload)) if tag.0 == FLUSH_TAG => {
                            seq += 1;
                            // Every frame before the marker is in the mailbox: answer it.
                            let (hub, nonce) = (self.clone(), payload);
                            tokio::spawn(async move {
                                let Ok(raw) = <[u8; 8]>::try_from(nonce.as_slice()) else {
                                    return;
                                };
                                let reply =
                                    Tag::new(format!("{FLUSHED_TAG}/{}", u64::from_le_bytes(raw)));
                                let _ = hub.send_frame(peer, &reply, Vec::new()).await;
                            });
                        }
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
        let current = {
            let mut links = self.links();
            // A newer link may have replaced this one: leave it alone.
            let current = links.get(&peer).is_some_and(|(c, _)| *c == conn);
            if current {
                links.remove(&peer);
            }
            self.0.linked.send_replace(links.len());
            current
        };
        if current {
            self.0.mailbox.fail_peer(peer, error);
            self.redial_later(peer);
        }
    }

    /// After a lost link to a peer this server dials: dial again, with backoff, until the link
    /// is back or the hub is shut down.
    fn redial_later(&self, peer: PartyId) {
        let Some(target) = self
            .0
            .dial_targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
        else {
            return;
        };
        let hub = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while !hub.0.closed.load(Ordering::Acquire) && !hub.links().contains_key(&peer) {
                match hub.dial_once(peer, &target).await {
                    Ok(()) => {
                        warn!(me = %hub.0.me, %peer, "peer link re-established");
                        return;
                    }
                    Err(e) => {
                        debug!(me = %hub.0.me, %peer, error = %e, "redial failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        });
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

    /// Dials `peer` at `address` until connected or `deadline`: the TCP connect and the whole
    /// handshake are retried with backoff.
    async fn dial(
        &self,
        peer: PartyId,
        target: &ServerEndpoint,
        deadline: Instant,
    ) -> Result<(), NetError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.dial_once(peer, target).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() + backoff < deadline => {
                    debug!(me = %self.0.me, %peer, error = %e, "dial failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: connect, answer the acceptor's challenge, check its hello, register.
    async fn dial_once(&self, peer: PartyId, target: &ServerEndpoint) -> Result<(), NetError> {
        let transport = |reason: String| NetError::Transport { peer, reason };
        let address = &target.address;
        let endpoint = tessera_proto::client::endpoint(target)
            .map_err(|e| transport(e.to_string()))?
            .connect_timeout(Duration::from_secs(2));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| transport(format!("could not connect to {address}: {e}")))?;
        let mut client = PeerServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        let outbound = ReceiverStream::new(rx).filter_map(Result::ok);
        let mut inbound = client
            .exchange(outbound)
            .await
            .map_err(|s| transport(format!("exchange refused: {}", s.message())))?
            .into_inner();
        let mut next_frame = async || {
            tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
                .await
                .map_err(|_| transport("no challenge or hello in time".into()))?
                .map_err(|s| transport(s.message().to_owned()))?
                .ok_or(NetError::Disconnected(peer))
        };
        let challenge: [u8; 32] = next_frame()
            .await?
            .envelope
            .try_into()
            .map_err(|_| transport("bad challenge".into()))?;
        let nonce = random_nonce();
        let hello = Hello {
            answers: challenge,
            nonce,
            run: self.0.run,
        };
        let sealed = seal_frame(
            &self.0.sealer,
            peer,
            self.0.session,
            0,
            &Tag::from(HELLO_TAG),
            &hello.to_bytes(),
        )
        .map_err(|source| NetError::Seal { peer, source })?;
        tx.send(Ok(PeerFrame { envelope: sealed }))
            .await
            .map_err(|_| NetError::Disconnected(peer))?;
        let first = next_frame().await?;
        let (_, tag, payload) = open_frame(
            &self.0.sealer,
            Some(peer),
            self.0.session,
            0,
            &first.envelope,
        )
        .map_err(|e| frame_error(peer, e))?;
        let theirs = Hello::parse(&tag, &payload).map_err(|e| frame_error(peer, e))?;
        if theirs.answers != nonce || theirs.nonce != challenge {
            return Err(transport("hello does not answer this connection".into()));
        }
        let conn = connection_id(self.0.session, &nonce, &challenge);
        debug!(me = %self.0.me, %peer, run = theirs.run, "handshake confirmed");
        self.register(peer, theirs.run, tx, conn, inbound);
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
                let target = ServerEndpoint {
                    address: address.clone(),
                    tls_cert: settings.tls_certs.get(peer).cloned(),
                };
                self.0
                    .dial_targets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(*peer, target.clone());
                self.dial(*peer, &target, deadline).await?;
            }
        }
        self.wait_linked(deadline)
            .await
            .map_err(|missing| NetError::Transport {
                peer: missing,
                reason: format!("did not connect within {:?}", settings.connect_timeout),
            })
    }

    /// [`Network::linked`]: waits, at most `within`, for a link to every other server.
    pub async fn linked(&self, within: Duration) -> Result<(), NetError> {
        self.wait_linked(Instant::now() + within)
            .await
            .map_err(|missing| NetError::Transport {
                peer: missing,
                reason: format!("no link within {within:?}"),
            })
    }

    /// Waits until this server is linked with every other one, or fails at `deadline` naming
    /// one it is not linked with.
    async fn wait_linked(&self, deadline: Instant) -> Result<(), PartyId> {
        let expected = self.0.servers.len() - 1;
        let mut linked = self.0.linked.subscribe();
        let wait = linked.wait_for(|n| *n >= expected);
        if let Ok(Ok(_)) = tokio::time::timeout_at(deadline.into(), wait).await {
            return Ok(());
        }
        let links = self.links();
        Err(self
            .0
            .servers
            .iter()
            .find(|p| **p != self.0.me && !links.contains_key(p))
            .copied()
            .unwrap_or(self.0.me))
    }

    pub(super) fn shutdown(&self) {
        self.0.closed.store(true, Ordering::Release);
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

    /// The acceptor's side of the handshake after its challenge: the dialer's hello must answer
    /// it (its place, `ticket`, is given back once it does); then this end's hello, then the
    /// link is registered.
    async fn accept(
        &self,
        challenge: [u8; 32],
        tx: FrameTx,
        mut inbound: Streaming<PeerFrame>,
        ticket: Ticket,
        remote: Option<SocketAddr>,
    ) -> Result<(), Status> {
        let hub = &self.0;
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no hello"))??
            .ok_or_else(|| Status::cancelled("stream closed before hello"))?;
        let (peer, tag, payload) = open_frame(&hub.sealer, None, hub.session, 0, &first.envelope)
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        self.check_dialer(peer)?;
        let theirs =
            Hello::parse(&tag, &payload).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if theirs.answers != challenge {
            return Err(Status::unauthenticated(
                "hello does not answer this connection's challenge (a replay?)",
            ));
        }
        // An authentic peer: no longer anyone's stream, and never evicted (nor its connection).
        drop(ticket);
        if let (Some(conns), Some(remote)) = (hub.conns.get(), remote) {
            conns.trust(remote);
        }
        let mine = Hello {
            answers: theirs.nonce,
            nonce: challenge,
            run: hub.run,
        };
        let sealed = seal_frame(
            &hub.sealer,
            peer,
            hub.session,
            0,
            &Tag::from(HELLO_TAG),
            &mine.to_bytes(),
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        tx.send(Ok(PeerFrame { envelope: sealed }))
            .await
            .map_err(|_| Status::cancelled("link closed"))?;
        let conn = connection_id(hub.session, &theirs.nonce, &challenge);
        debug!(me = %hub.me, %peer, run = theirs.run, "handshake confirmed");
        self.register(peer, theirs.run, tx, conn, inbound);
        Ok(())
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
        let remote = request.remote_addr();
        let ticket = self.hub.0.handshakes.admit(remote)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(LINK_BUFFER);
        let challenge = random_nonce();
        tx.send(Ok(PeerFrame {
            envelope: challenge.to_vec(),
        }))
        .await
        .map_err(|_| Status::internal("link closed"))?;
        // The handshake goes on once the response (and the challenge) is on its way.
        let hub = self.hub.clone();
        let id = ticket.id();
        let task = tokio::spawn(async move {
            if let Err(status) = hub
                .accept(challenge, tx.clone(), inbound, ticket, remote)
                .await
            {
                debug!(me = %hub.0.me, %status, "peer handshake refused");
                let _ = tx.send(Err(status)).await;
            }
        });
        self.hub.0.handshakes.attach(id, task.abort_handle());
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
