//! Integration tests live in tests/tests/; this library holds what several test binaries share.

use std::time::Duration;

use futures::future::join_all;
use tessera_aggregator::net::{GrpcNetwork, GrpcNetworkSettings};
use tessera_common::PartyId;
use tessera_common::identity::Identity;

/// The three compute servers.
pub const SERVERS: [PartyId; 3] = [PartyId::Server(0), PartyId::Server(1), PartyId::Server(2)];

/// Three servers connected over gRPC on 127.0.0.1 (real sockets, sealed frames, fresh
/// identities), with the given receive timeout.
pub async fn grpc_cluster(recv_timeout: Duration) -> Vec<GrpcNetwork> {
    let ids: Vec<Identity> = SERVERS
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
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
        session: 5,
        servers,
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
    join_all(starts)
        .await
        .into_iter()
        .map(|r| r.expect("gRPC network starts"))
        .collect()
}
