//! Integration tests live in tests/tests/; this library holds what several test binaries share,
//! and the fuzz targets ([`fuzz`]).

pub mod arch;
pub mod fuzz;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::join_all;
use tessera_aggregator::grpc::{Gate, GateLimits, MpcCell, ServerTls, ServiceCell, serve};
use tessera_aggregator::net::{GrpcNetwork, GrpcNetworkSettings, PeerHub};
use tessera_common::PartyId;
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::seal::Sealer;
use tessera_secagg::{AggregatorService, Limits};

/// The three compute servers.
pub const SERVERS: [PartyId; 3] = [PartyId::Server(0), PartyId::Server(1), PartyId::Server(2)];

/// Three servers connected over gRPC on 127.0.0.1 (real sockets, sealed frames, fresh
/// identities), with the given receive timeout.
pub async fn grpc_cluster(recv_timeout: Duration) -> Vec<GrpcNetwork> {
    GrpcParts::start(recv_timeout, false).await.nets
}

/// A gRPC cluster of three servers and what a test needs to attack it.
pub struct GrpcParts {
    /// Each server's endpoint.
    pub nets: Vec<GrpcNetwork>,
    /// Each server's identity.
    pub ids: Vec<Identity>,
    /// Each server's own listening address.
    pub addresses: Vec<String>,
    /// With `via_proxy`: the TCP relay every connection to `server0` goes through.
    pub proxy: Option<Proxy>,
}

impl GrpcParts {
    /// Starts three servers (session id 5); with `via_proxy` the others reach `server0` through
    /// a [`Proxy`] that a test can cut.
    pub async fn start(recv_timeout: Duration, via_proxy: bool) -> Self {
        Self::start_with(recv_timeout, via_proxy.then_some(0)).await
    }

    /// [`GrpcParts::start`]; with `Some(n)` the relay in front of `server0` breaks the first `n`
    /// connections through it as soon as they are made (start-up under a flaky network).
    pub async fn start_with(recv_timeout: Duration, proxy_breaking_first: Option<usize>) -> Self {
        let ids: Vec<Identity> = SERVERS
            .iter()
            .map(|p| Identity::generate(*p, &mut rand::rng()))
            .collect();
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        for _ in SERVERS {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1");
            addresses.push(l.local_addr().expect("local address").to_string());
            listeners.push(l);
        }
        let proxy = match proxy_breaking_first {
            Some(n) => Some(Proxy::start(&addresses[0], n).await),
            None => None,
        };
        let mut servers: Vec<(PartyId, String)> =
            SERVERS.iter().copied().zip(addresses.clone()).collect();
        if let Some(p) = &proxy {
            servers[0].1 = p.address.clone();
        }
        let settings = GrpcNetworkSettings {
            session: 5,
            servers,
            tls_certs: Default::default(),
            recv_timeout,
            connect_timeout: Duration::from_secs(10),
        };
        let keys: Vec<_> = ids
            .iter()
            .map(|id| (id.party(), *id.public_key()))
            .collect();
        let starts = ids.iter().zip(listeners).map(|(id, listener)| {
            let keys = keys.clone();
            let settings = settings.clone();
            async move {
                GrpcNetwork::start(id, keys.iter().map(|(p, k)| (*p, k)), &settings, listener).await
            }
        });
        let nets = join_all(starts)
            .await
            .into_iter()
            .map(|r| r.expect("gRPC network starts"))
            .collect();
        GrpcParts {
            nets,
            ids,
            addresses,
            proxy,
        }
    }

    /// A sealer for server `i`, knowing the servers.
    pub fn sealer(&self, i: usize) -> Sealer {
        Sealer::new(
            &self.ids[i],
            self.ids.iter().map(|id| (id.party(), id.public_key())),
        )
    }
}

/// A TCP relay on 127.0.0.1 to one address; [`Proxy::cut`] breaks every connection through it
/// (as a network failure would) while it keeps accepting new ones.
pub struct Proxy {
    /// Where to connect to reach the target through the relay.
    pub address: String,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: &str, break_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let address = listener.local_addr().expect("local address").to_string();
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (target, conns) = (target.to_owned(), Arc::clone(&connections));
        tokio::spawn(async move {
            let mut accepted = 0;
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepted += 1;
                if accepted <= break_first {
                    // Let the client start its HTTP/2 handshake, then break the connection.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap_or_else(|p| p.into_inner()).push(relay);
            }
        });
        Proxy {
            address,
            connections,
        }
    }

    /// Breaks every connection through the relay.
    pub fn cut(&self) {
        for c in self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }
}

/// Three aggregator servers in this process, each serving its gRPC front (peer, data-owner and
/// model-owner services) on 127.0.0.1 exactly as `aggregator serve` does, with the given limits;
/// the cluster also knows `data_owners` data owners and the model owner.
pub struct GrpcAggregators {
    /// `host:port` of each server.
    pub addresses: Vec<String>,
    /// Every party's identity: the servers, the data owners, the model owner.
    pub ids: Vec<Identity>,
    /// The servers' services.
    pub services: Vec<Arc<AggregatorService<GrpcNetwork>>>,
    /// The gates in front of the servers' client services.
    pub gates: Vec<Arc<Gate>>,
}

impl GrpcAggregators {
    /// Starts the cluster, its gRPC fronts under `limits` (secure aggregation under its default
    /// limits).
    pub async fn start(limits: GateLimits, data_owners: u32) -> Self {
        Self::start_with_tls(limits, data_owners, None).await
    }

    /// Starts the cluster; with `tls`, every server serves TLS with that identity (one
    /// certificate for all, as a test may), and the servers dial each other over TLS.
    pub async fn start_with_tls(
        limits: GateLimits,
        data_owners: u32,
        tls: Option<ServerTls>,
    ) -> Self {
        let mut parties: Vec<PartyId> = SERVERS.to_vec();
        parties.extend((0..data_owners).map(PartyId::DataOwner));
        parties.push(PartyId::ModelOwner);
        let ids: Vec<Identity> = parties
            .iter()
            .map(|p| Identity::generate(*p, &mut rand::rng()))
            .collect();
        let keys: Vec<(PartyId, PublicKey)> =
            ids.iter().map(|i| (i.party(), *i.public_key())).collect();
        let mut listeners = Vec::new();
        let mut servers = Vec::new();
        for p in SERVERS {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1");
            servers.push((p, l.local_addr().expect("local address").to_string()));
            listeners.push(l);
        }
        let settings = GrpcNetworkSettings {
            session: 0,
            servers: servers.clone(),
            tls_certs: tls
                .iter()
                .flat_map(|t| SERVERS.map(|p| (p, t.cert_pem.clone())))
                .collect(),
            recv_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        };
        let starts = ids[..3].iter().zip(listeners).map(|(id, listener)| {
            let (keys, settings, limits, tls) = (&keys, &settings, &limits, &tls);
            async move {
                let hub = PeerHub::new(
                    id,
                    &SERVERS,
                    keys.iter().map(|(p, k)| (*p, k)),
                    settings.session,
                    settings.recv_timeout,
                );
                let cell: ServiceCell = Arc::new(OnceLock::new());
                let mpc: MpcCell = Arc::new(OnceLock::new());
                let callers = Arc::new(Sealer::new(id, keys.iter().map(|(p, k)| (*p, k))));
                let gate = Gate::new(callers, limits.clone());
                serve(listener, &hub, Arc::clone(&cell), mpc, &gate, tls.as_ref())
                    .expect("TLS identity loads");
                let network = GrpcNetwork::over_hub(hub, settings)
                    .await
                    .expect("peers connect");
                let sealer = Sealer::new(id, keys.iter().map(|(p, k)| (*p, k)));
                let service =
                    AggregatorService::with_limits(sealer, 3, Arc::new(network), Limits::default());
                let _ = cell.set(Arc::clone(&service));
                (service, gate)
            }
        });
        let (services, gates) = join_all(starts).await.into_iter().unzip();
        GrpcAggregators {
            addresses: servers.into_iter().map(|(_, a)| a).collect(),
            ids,
            services,
            gates,
        }
    }

    /// Calls `party` holds at server `server`'s gate.
    pub fn gate_held(&self, server: usize, party: PartyId) -> usize {
        self.gates[server].held_by(party)
    }

    /// A sealer for `party`, knowing every party of the cluster.
    pub fn sealer(&self, party: PartyId) -> Sealer {
        let id = self
            .ids
            .iter()
            .find(|i| i.party() == party)
            .expect("a party of the cluster");
        Sealer::new(id, self.ids.iter().map(|i| (i.party(), i.public_key())))
    }

    /// A plaintext channel to server `server` whose calls carry `party`'s call tokens (a
    /// party of the cluster at the gate); it connects on first use.
    pub fn channel_as(
        &self,
        server: usize,
        party: PartyId,
    ) -> tessera_proto::client::CallerChannel {
        let endpoint = tessera_common::config::ServerEndpoint {
            address: self.addresses[server].clone(),
            tls_cert: None,
        };
        tessera_proto::client::caller_channel(
            &endpoint,
            PartyId::Server(server as u8),
            Arc::new(self.sealer(party)),
        )
        .expect("an address")
    }
}

/// A server's endpoint that keeps a copy of every message it receives (to inspect a server's
/// view of a protocol).
pub struct Recording {
    inner: tessera_common::net::memory::MemoryNetwork,
    seen: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl Recording {
    /// `inner`, copying what it receives into `seen`.
    pub fn new(
        inner: tessera_common::net::memory::MemoryNetwork,
        seen: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    ) -> Self {
        Recording { inner, seen }
    }
}

impl tessera_common::net::Network for Recording {
    fn me(&self) -> PartyId {
        self.inner.me()
    }
    fn parties(&self) -> &[PartyId] {
        self.inner.parties()
    }
    async fn send(
        &self,
        to: PartyId,
        tag: &tessera_common::net::Tag,
        payload: Vec<u8>,
    ) -> Result<(), tessera_common::net::NetError> {
        self.inner.send(to, tag, payload).await
    }
    async fn recv(
        &self,
        from: PartyId,
        tag: &tessera_common::net::Tag,
    ) -> Result<Vec<u8>, tessera_common::net::NetError> {
        let msg = self.inner.recv(from, tag).await?;
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg.clone());
        Ok(msg)
    }
    fn stats(&self) -> tessera_common::net::NetStats {
        self.inner.stats()
    }
    fn forget(&self, prefix: &str) -> usize {
        self.inner.forget(prefix)
    }
    fn queued(&self) -> usize {
        self.inner.queued()
    }
}
