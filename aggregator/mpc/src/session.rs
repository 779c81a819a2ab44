//! A computation session among the servers: operation ids, pairwise seeds, counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tessera_common::PartyId;
use tessera_common::net::{NetStats, Network, Tag};

pub use crate::error::MpcError;
use crate::error::{Broken, Misbehaved, PartyError};
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::{Ring, RingTensor, decode_elements, encode_elements_into};

use super::prep::{Ledger, Need, Needs, Pool};

/// The tag of an input or output exchanged with a party outside the servers: named by the
/// caller (both ends know the label; an operation id is internal to the servers). It carries no
/// session id: an outside party exchanges with one job's endpoint (in networked mode the job's
/// inputs and outputs, sealed with the job id in their headers; in simulated mode a network of
/// its own).
pub fn party_tag(label: &str) -> Tag {
    Tag::new(format!("mpc/io/{label}"))
}

/// Session ids with this bit set are secure aggregation's checks ([`secagg_session_id`]); MPC
/// jobs use ids below it.
pub const SECAGG_SESSIONS: u64 = 1 << 63;

/// The session of secure aggregation's check of the upload forwarded as `seq` in `round` of
/// `job`: a hash of the three (SHA-256, 63 bits kept) with [`SECAGG_SESSIONS`] set, the same at
/// every server.
pub fn secagg_session_id(job: u64, round: u64, seq: u64) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"tessera secagg check");
    for v in [job, round, seq] {
        h.update(v.to_le_bytes());
    }
    let d = h.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&d[..8]);
    u64::from_le_bytes(head) | SECAGG_SESSIONS
}

/// The prefix of every tag of session `id` between the servers.
pub fn session_prefix(id: u64) -> String {
    format!("mpc/{id}/")
}

/// One operation of a session: its id names its messages and its PRG streams.
#[derive(Debug, Clone)]
pub struct Op {
    /// Sequence number within the session (the same on every server: SPMD).
    pub id: u64,
    /// A short name for tags and statistics.
    pub name: &'static str,
}

/// Communication of one operation at this server.
#[derive(Debug, Clone)]
pub struct OpStats {
    /// The operation.
    pub name: &'static str,
    /// Counters accumulated while it ran.
    pub net: NetStats,
}

/// A session among the servers of one network.
///
/// Every message between the servers carries the session id in its tag
/// (`mpc/{session}/{op}/{name}/{part}`), so several sessions (jobs) run over one network at the
/// same time without their messages meeting, and a finished session's leftovers are dropped with
/// [`Session::forget`].
pub struct Session<N: Network> {
    net: Arc<N>,
    id: u64,
    me: usize,
    servers: usize,
    ops: AtomicU64,
    seeds: HashMap<usize, Seed>,
    stats: Mutex<Vec<OpStats>>,
    /// Per operation: communication rounds so far and whether its last action was a send.
    phases: Mutex<HashMap<u64, (u64, bool)>>,
    counters: Counters,
    /// Correlated randomness made ahead of the online phase, one pool per kind
    /// ([`crate::prep`]).
    pools: Mutex<HashMap<Need, Box<dyn Pool>>>,
}

/// This server's payload counters and its message-depth clock.
///
/// Every message carries the depth at which it arrives (the sender's clock plus one); a
/// receiver's clock becomes the larger of its own and the message's. After a [`Session::barrier`]
/// all clocks agree, so the largest clock after an operation minus the common clock before it is
/// the operation's number of sequential communication rounds (its critical path), whatever the
/// pattern of who sends to whom.
#[derive(Debug, Default)]
struct Counters {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    clock: AtomicU64,
}

/// Bytes of the depth trailer at the end of every message between servers (a trailer, not a
/// header: the sender appends it in place and the receiver truncates it off, no payload copy).
const DEPTH_BYTES: usize = 8;

/// The largest payload one message between servers carries; a larger one goes in pieces (half
/// the gRPC message limit, so a piece and its frame always fit).
pub const PIECE_BYTES: usize = 8 << 20;

/// The part name of piece `k` of a message in pieces (the first keeps the message's name).
fn piece_part(part: &str, k: usize) -> String {
    match k {
        0 => part.to_string(),
        _ => format!("{part}#{k}"),
    }
}

impl<N: Network> std::fmt::Debug for Session<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session(server{} of {})", self.me, self.servers)
    }
}

impl<N: Network> Session<N> {
    /// Opens session 0 (simulated mode: one session per network); see [`Session::with_id`].
    pub async fn new(net: Arc<N>) -> Result<Self, MpcError> {
        Self::with_id(net, 0).await
    }

    /// Opens session `id`: each pair of servers agrees on a PRG seed (the lower-numbered one
    /// draws it and sends it over the sealed network). Every server of a session must use the
    /// same id, and no two live sessions on one network may share it.
    pub async fn with_id(net: Arc<N>, id: u64) -> Result<Self, MpcError> {
        let me = net
            .me()
            .server_index()
            .ok_or(PartyError::NotAServer(net.me()))?;
        let servers = net.parties().iter().filter(|p| p.is_server()).count();
        let mut seeds = HashMap::new();
        let tag = Tag::new(format!("mpc/{id}/setup/seed"));
        for j in me + 1..servers {
            let seed = Seed::random(&mut rand::rng());
            net.send(PartyId::Server(j as u8), &tag, seed.0.to_vec())
                .await?;
            seeds.insert(j, seed);
        }
        for j in 0..me {
            let bytes = net.recv(PartyId::Server(j as u8), &tag).await?;
            let raw: [u8; 32] = bytes.try_into().map_err(|_| MpcError::Protocol {
                peer: PartyId::Server(j as u8),
                reason: Misbehaved::Seed,
            })?;
            seeds.insert(j, Seed(raw));
        }
        Ok(Session {
            net,
            id,
            me,
            servers,
            ops: AtomicU64::new(0),
            seeds,
            stats: Mutex::new(Vec::new()),
            phases: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// This server's index.
    pub fn me(&self) -> usize {
        self.me
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Drops the messages of this session still queued at this server (call when the session is
    /// over, finished or aborted); returns how many.
    pub fn forget(&self) -> usize {
        self.net.forget(&session_prefix(self.id))
    }

    /// Number of servers.
    pub fn servers(&self) -> usize {
        self.servers
    }

    /// Runs `f` on this session's pool of `need` (made empty on first use). A pool's type is
    /// fixed by its kind; the same kind with another type is a programming error, reported as
    /// [`crate::error::Broken::PoolType`].
    pub fn with_pool<T: Pool + Default, V>(
        &self,
        need: &Need,
        f: impl FnOnce(&mut T) -> V,
    ) -> Result<V, MpcError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if !pools.contains_key(need) {
            pools.insert(need.clone(), Box::new(T::default()));
        }
        let pool: Option<&mut dyn std::any::Any> = pools.get_mut(need).map(|p| &mut **p as _);
        let pool = pool
            .and_then(|p| p.downcast_mut::<T>())
            .ok_or_else(|| Broken::PoolType(need.clone()))?;
        Ok(f(pool))
    }

    /// One count per pool, read off its ledger.
    fn tally(&self, count: impl Fn(&Ledger) -> u64) -> Needs {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let mut needs = Needs::default();
        for (need, pool) in pools.iter() {
            needs.add(need.clone(), count(pool.ledger()));
        }
        needs
    }

    /// What the program asked of every pool so far, taken or short (see [`crate::prep`]):
    /// the difference across one run of a program is what [`crate::prepare::prepare`] makes
    /// ahead of the next.
    pub fn wanted(&self) -> Needs {
        self.tally(Ledger::wanted)
    }

    /// What the pools hold made and not yet handed out.
    pub fn held(&self) -> Needs {
        self.tally(Ledger::available)
    }

    /// What calls found their pools short of (and made inline), by kind.
    pub fn short(&self) -> Needs {
        self.tally(|l| l.short)
    }

    /// The ledger of the pool of `need` (empty if the session never used it).
    pub fn ledger(&self, need: &Need) -> Ledger {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .get(need)
            .map(|p| p.ledger().clone())
            .unwrap_or_default()
    }

    /// The next operation (every server calls operations in the same order).
    pub fn op(&self, name: &'static str) -> Op {
        Op {
            id: self.ops.fetch_add(1, Ordering::Relaxed),
            name,
        }
    }

    fn tag(&self, op: &Op, part: &str) -> Tag {
        Tag::new(format!("mpc/{}/{}/{}/{part}", self.id, op.id, op.name))
    }

    /// Counts rounds per operation the way [`tessera_common::net::Counters`] does per endpoint: a
    /// send after a receive (or the operation's first send) starts a round.
    fn phase(&self, op: &Op, sending: bool) {
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        let (rounds, in_send) = phases.entry(op.id).or_insert((0, false));
        if sending && !*in_send {
            *rounds += 1;
        }
        *in_send = sending;
    }

    /// Sends ring elements to server `to` under `op`/`part`.
    pub async fn send<R: Ring>(
        &self,
        to: usize,
        op: &Op,
        part: &str,
        x: &RingTensor<R>,
    ) -> Result<(), MpcError> {
        self.send_vec(to, op, part, x.as_slice()).await
    }

    /// Sends a flat vector of ring elements to server `to` under `op`/`part`.
    pub async fn send_vec<R: Ring>(
        &self,
        to: usize,
        op: &Op,
        part: &str,
        x: &[R],
    ) -> Result<(), MpcError> {
        let mut bytes = Vec::with_capacity(x.len() * R::BYTES + DEPTH_BYTES);
        encode_elements_into(x, &mut bytes);
        self.send_bytes(to, op, part, bytes).await
    }

    /// Receives exactly `len` ring elements from server `from` under `op`/`part`.
    pub async fn recv_vec<R: Ring>(
        &self,
        from: usize,
        op: &Op,
        part: &str,
        len: usize,
    ) -> Result<Vec<R>, MpcError> {
        let bytes = self.recv_bytes(from, op, part, len * R::BYTES).await?;
        decode_elements::<R>(&bytes).ok_or(MpcError::Protocol {
            peer: PartyId::Server(from as u8),
            reason: Misbehaved::NotRingElements,
        })
    }

    /// Sends raw bytes (e.g. elements of a small field, one byte each) to server `to`. A
    /// payload over [`PIECE_BYTES`] goes as consecutive pieces of that size (the receiver,
    /// which knows the length, expects the same pieces), so no message outgrows a network
    /// frame however large an operation is.
    pub async fn send_bytes(
        &self,
        to: usize,
        op: &Op,
        part: &str,
        mut framed: Vec<u8>,
    ) -> Result<(), MpcError> {
        self.phase(op, true);
        let c = &self.counters;
        c.bytes_sent
            .fetch_add(framed.len() as u64, Ordering::Relaxed);
        let depth = (c.clock.load(Ordering::Relaxed) + 1).to_le_bytes();
        let peer = PartyId::Server(to as u8);
        if framed.len() <= PIECE_BYTES {
            c.messages_sent.fetch_add(1, Ordering::Relaxed);
            framed.extend_from_slice(&depth);
            return Ok(self.net.send(peer, &self.tag(op, part), framed).await?);
        }
        for (k, chunk) in framed.chunks(PIECE_BYTES).enumerate() {
            c.messages_sent.fetch_add(1, Ordering::Relaxed);
            let mut piece = Vec::with_capacity(chunk.len() + DEPTH_BYTES);
            piece.extend_from_slice(chunk);
            piece.extend_from_slice(&depth);
            self.net
                .send(peer, &self.tag(op, &piece_part(part, k)), piece)
                .await?;
        }
        Ok(())
    }

    /// Receives exactly `len` raw bytes from server `from` under `op`/`part` (in pieces if
    /// `len` is over [`PIECE_BYTES`], as [`Session::send_bytes`] sends them).
    pub async fn recv_bytes(
        &self,
        from: usize,
        op: &Op,
        part: &str,
        len: usize,
    ) -> Result<Vec<u8>, MpcError> {
        if len <= PIECE_BYTES {
            return self.recv_piece(from, op, part, len).await;
        }
        let mut bytes = Vec::with_capacity(len);
        for k in 0..len.div_ceil(PIECE_BYTES) {
            let want = PIECE_BYTES.min(len - k * PIECE_BYTES);
            let piece = self
                .recv_piece(from, op, &piece_part(part, k), want)
                .await?;
            bytes.extend_from_slice(&piece);
        }
        Ok(bytes)
    }

    /// Receives one message of exactly `len` payload bytes and its depth trailer.
    async fn recv_piece(
        &self,
        from: usize,
        op: &Op,
        part: &str,
        len: usize,
    ) -> Result<Vec<u8>, MpcError> {
        let peer = PartyId::Server(from as u8);
        let mut bytes = self.net.recv(peer, &self.tag(op, part)).await?;
        self.phase(op, false);
        let Some(payload) = bytes.len().checked_sub(DEPTH_BYTES) else {
            return Err(MpcError::Protocol {
                peer,
                reason: Misbehaved::NoDepthTrailer,
            });
        };
        let mut depth = [0u8; DEPTH_BYTES];
        depth.copy_from_slice(&bytes[payload..]);
        bytes.truncate(payload);
        let c = &self.counters;
        c.clock
            .fetch_max(u64::from_le_bytes(depth), Ordering::Relaxed);
        c.messages_received.fetch_add(1, Ordering::Relaxed);
        c.bytes_received
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if bytes.len() != len {
            return Err(MpcError::Protocol {
                peer,
                reason: Misbehaved::Bytes {
                    expected: len,
                    got: bytes.len(),
                },
            });
        }
        Ok(bytes)
    }

    /// Sends bytes to any party of the network (a data owner or the model owner) under `label`.
    pub async fn send_party(
        &self,
        to: PartyId,
        label: &str,
        bytes: Vec<u8>,
    ) -> Result<(), MpcError> {
        Ok(self.net.send(to, &party_tag(label), bytes).await?)
    }

    /// Receives `len` ring elements from any party of the network under `label`.
    pub async fn recv_party<R: Ring>(
        &self,
        from: PartyId,
        label: &str,
        len: usize,
    ) -> Result<Vec<R>, MpcError> {
        let bytes = self.net.recv(from, &party_tag(label)).await?;
        match decode_elements::<R>(&bytes) {
            Some(v) if v.len() == len => Ok(v),
            _ => Err(MpcError::Protocol {
                peer: from,
                reason: Misbehaved::Elements {
                    label: label.to_string(),
                    expected: len,
                },
            }),
        }
    }

    /// Receives ring elements of `shape` from server `from` under `op`/`part`.
    pub async fn recv<R: Ring>(
        &self,
        from: usize,
        op: &Op,
        part: &str,
        shape: &[usize],
    ) -> Result<RingTensor<R>, MpcError> {
        let n = shape.iter().product();
        let values = self.recv_vec(from, op, part, n).await?;
        Ok(RingTensor::from_vec(shape, values)?)
    }

    /// Waits until every server has reached this point (each sends an empty message to every
    /// other); afterwards all depth clocks agree.
    pub async fn barrier(&self) -> Result<(), MpcError> {
        let op = self.op("barrier");
        let mine = self.counters.clock.load(Ordering::Relaxed) + 1;
        for j in (0..self.servers).filter(|j| *j != self.me) {
            self.send_bytes(j, &op, "sync", Vec::new()).await?;
        }
        for j in (0..self.servers).filter(|j| *j != self.me) {
            self.recv_bytes(j, &op, "sync", 0).await?;
        }
        // Every server now holds the largest clock plus one (its own message counts too).
        self.counters.clock.fetch_max(mine, Ordering::Relaxed);
        Ok(())
    }

    /// The PRG this server shares with server `other` for stream `sub` of `op`.
    pub fn shared_prg(&self, other: usize, op: &Op, sub: u64) -> Result<Prg, MpcError> {
        let seed = self.seeds.get(&other).ok_or(PartyError::NoSeed(other))?;
        Ok(Prg::new(seed, (op.id << 8) | sub))
    }

    /// This server's counters so far: payload messages and bytes between the servers (without
    /// the depth trailer), and as `rounds` its depth clock (see [`Counters`]).
    pub fn net_stats(&self) -> NetStats {
        let c = &self.counters;
        NetStats {
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            messages_received: c.messages_received.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            rounds: c.clock.load(Ordering::Relaxed),
        }
    }

    /// Records the communication of an operation that started at `before`.
    pub fn record(&self, op: &Op, before: NetStats) {
        let mut net = self.net_stats().since(&before);
        net.rounds = self
            .phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&op.id)
            .map_or(0, |(rounds, _)| rounds);
        self.stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(OpStats { name: op.name, net });
    }

    /// Per-operation counters recorded so far.
    pub fn op_stats(&self) -> Vec<OpStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
