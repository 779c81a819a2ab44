//! The gate in front of the client services against floods (security review 2, findings 10-12):
//! raw HTTP/2 calls that send part of a gRPC message and stall, with and without a call token,
//! while honest owners upload through the ordinary client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tessera_common::PartyId;
use tessera_common::api::{LeaderApi, RoundState};
use tessera_common::config::ServerEndpoint;
use tessera_common::request::{RequestKind, now_secs, seal_request};
use tessera_common::ringvec::RingVec;
use tessera_proto::GrpcLeader;
use tessera_proto::client::{CALL_TOKEN_KEY, CallToken};
use tessera_proto::v1::FetchWeightsRequest;
use tessera_secagg::MAX_WEIGHT_FETCHES;
use tessera_tests::GrpcAggregators;
use tokio::net::TcpStream;
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};

use tessera_aggregator::grpc::GateLimits;

use super::{
    JOB, cluster_with_round_open, cluster_with_round_open_under, settings, update, upload_of,
    wait_final,
};

const UPLOAD: &str = "/tessera.v1.DataOwnerService/UploadShares";
const STATUS: &str = "/tessera.v1.ModelOwnerService/Status";

/// One HTTP/2 connection for raw calls.
struct Raw {
    client: h2::client::SendRequest<Bytes>,
    address: String,
}

/// A raw call in progress: its request stream (kept open) and the answer, if one came.
struct Call {
    _send: h2::SendStream<Bytes>,
    code: Option<Code>,
}

impl Raw {
    async fn connect(address: &str) -> Raw {
        let tcp = TcpStream::connect(address).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        Raw {
            client,
            address: address.to_owned(),
        }
    }

    /// Calls `path` with `token` in the headers (if any), sends `prefix` (a message's 5-byte
    /// gRPC prefix announcing `announced` bytes) and `sent` bytes of it, keeps the stream open,
    /// and waits up to `wait` for the answer's `grpc-status`.
    async fn stall(
        &mut self,
        path: &str,
        token: Option<&[u8]>,
        announced: u32,
        sent: usize,
        wait: Duration,
    ) -> Call {
        let mut request =
            tonic::codegen::http::Request::post(format!("http://{}{path}", self.address))
                .header("content-type", "application/grpc")
                .header("te", "trailers");
        if let Some(token) = token {
            let mut metadata = MetadataMap::new();
            metadata.insert_bin(CALL_TOKEN_KEY, MetadataValue::from_bytes(token));
            for (k, v) in metadata.into_headers().iter() {
                request = request.header(k, v);
            }
        }
        let client = self.client.clone().ready().await.unwrap();
        self.client = client;
        let (answer, mut send) = self
            .client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        let mut body = vec![0u8];
        body.extend_from_slice(&announced.to_be_bytes());
        body.resize(5 + sent, 0x5a);
        // A refusal from the headers alone may close the stream before its body is sent.
        let _ = send.send_data(Bytes::from(body), false);
        let code = match tokio::time::timeout(wait, answer).await {
            Err(_) => None,
            Ok(Err(e)) => panic!("the server broke the connection: {e}"),
            Ok(Ok(response)) => {
                let code = |h: &tonic::codegen::http::HeaderMap| {
                    h.get("grpc-status")
                        .and_then(|v| v.to_str().ok()?.parse::<i32>().ok())
                        .map(Code::from_i32)
                };
                match code(response.headers()) {
                    Some(c) => Some(c),
                    None => {
                        let mut body = response.into_body();
                        let trailers = tokio::time::timeout(wait, body.trailers()).await;
                        match trailers {
                            Ok(Ok(Some(t))) => code(&t),
                            _ => None,
                        }
                    }
                }
            }
        };
        Call { _send: send, code }
    }
}

fn call_token(c: &GrpcAggregators, party: PartyId, server: u8) -> Vec<u8> {
    CallToken::new(
        std::sync::Arc::new(c.sealer(party)),
        PartyId::Server(server),
    )
    .seal()
    .unwrap()
}

fn leader_client(c: &GrpcAggregators, owner: u32) -> GrpcLeader {
    let endpoint = ServerEndpoint {
        address: c.addresses[0].clone(),
        tls_cert: None,
    };
    GrpcLeader::new(
        &endpoint,
        std::sync::Arc::new(c.sealer(PartyId::DataOwner(owner))),
    )
    .unwrap()
}

/// Data owners `0..owners` upload round 1 through the gRPC client; the round aggregates to
/// exactly the sum of their updates.
async fn owners_aggregate_exactly(
    c: &GrpcAggregators,
    leader: &tessera_secagg::local::LocalServer<tessera_aggregator::net::GrpcNetwork>,
    owners: u32,
) {
    let mut sum = RingVec::zeros(32, settings().update_len()).unwrap();
    for o in 0..owners {
        let u = update(o);
        leader_client(c, o)
            .upload(upload_of(&c.sealer(PartyId::DataOwner(o)), 1, &u))
            .await
            .unwrap();
        sum.add_assign(&u).unwrap();
    }
    let status = wait_final(leader).await;
    assert_eq!(status.state, RoundState::Aggregated, "{}", status.message);
    assert_eq!(super::revealed(c, 1).await, sum);
}

/// Finding 10: 256 upload streams that each send most of a 1 MiB message and stall (and as
/// many that send 1 KiB of one), with no call token or a forged one, took every streaming place
/// and locked honest owners out. Now each is refused `unauthenticated` at once, while its
/// stream is still open: the flood holds nothing, and three honest owners' uploads aggregate to
/// their exact sum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyless_flood_of_stalled_uploads_holds_nothing() {
    let (c, leader) = cluster_with_round_open().await;
    let forged = {
        let mut t = call_token(&c, PartyId::DataOwner(0), 0);
        let last = t.len() - 1;
        t[last] ^= 1;
        t
    };
    let mut held = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(Raw::connect(&c.addresses[0]).await);
    }
    for i in 0..512 {
        let conn = &mut conns[i % 8];
        let (token, sent) = match i % 4 {
            0 => (None, (1 << 20) - 100),
            1 => (None, 1 << 10),
            2 => (Some(forged.as_slice()), (1 << 20) - 100),
            _ => (Some(forged.as_slice()), 1 << 10),
        };
        let call = conn
            .stall(UPLOAD, token, 1 << 20, sent, Duration::from_secs(5))
            .await;
        assert_eq!(call.code, Some(Code::Unauthenticated), "call {i}");
        held.push(call);
    }
    // The flood's streams are still open; the honest owners upload through it.
    owners_aggregate_exactly(&c, &leader, 3).await;
    drop(held);
}

/// Finding 10, with a key: data-owner-2 holds its own places (4 in this cluster) with uploads
/// that stall mid-message; its fifth is refused `resource_exhausted`, and each stalled one is cut
/// `deadline_exceeded` once its message is late (0.5 s here), long before an idle stream would
/// be (10 s here; the test allows 4 s for the cut on a loaded machine). The other owners upload
/// meanwhile and the round aggregates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_owner_holds_only_its_own_places_and_half_messages_are_cut_soon() {
    let limits = GateLimits {
        stream_idle: Duration::from_secs(10),
        message_deadline: Duration::from_millis(500),
        calls_per_party: 4,
        ..GateLimits::default()
    };
    let (c, leader) = cluster_with_round_open_under(limits).await;
    let token = call_token(&c, PartyId::DataOwner(2), 0);
    let mut conn = Raw::connect(&c.addresses[0]).await;
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..4 {
        let call = conn
            .stall(
                UPLOAD,
                Some(&token),
                1 << 20,
                1 << 19,
                Duration::from_millis(50),
            )
            .await;
        assert_eq!(call.code, None, "an own place, held");
        held.push(call);
    }
    let fifth = conn
        .stall(
            UPLOAD,
            Some(&token),
            1 << 20,
            1 << 19,
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(fifth.code, Some(Code::ResourceExhausted));
    // The stalled halves are cut at their message deadline, and the places come back.
    while c.gate_held(0, PartyId::DataOwner(2)) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "cut by the message deadline (0.5 s), not the idle time (10 s)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = conn
        .stall(
            UPLOAD,
            Some(&token),
            1 << 20,
            1 << 19,
            Duration::from_millis(50),
        )
        .await;
    assert_eq!(again.code, None, "a place again");
    // The others were never held back.
    owners_aggregate_exactly(&c, &leader, 2).await;
    drop((held, again));
}

/// Finding 11: 2,000 `Status` calls that each sent 1 MiB of a message and stalled held 2 GiB at
/// the leader. Without a key each is refused at once; with the model owner's, four are held
/// (its places), the rest refused `resource_exhausted`, and the four are cut
/// `deadline_exceeded` at the message deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_are_bounded_per_party_and_in_time() {
    let (c, _leader) = cluster_with_round_open().await;
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(Raw::connect(&c.addresses[0]).await);
    }
    let mut held = Vec::new();
    for i in 0..2000 {
        let call = conns[i % 8]
            .stall(STATUS, None, 1 << 20, 1 << 19, Duration::from_secs(5))
            .await;
        assert_eq!(call.code, Some(Code::Unauthenticated), "call {i}");
        held.push(call);
    }
    let token = call_token(&c, PartyId::ModelOwner, 0);
    let mut mine = Vec::new();
    for _ in 0..4 {
        mine.push(
            conns[0]
                .stall(
                    STATUS,
                    Some(&token),
                    1 << 20,
                    1 << 19,
                    Duration::from_millis(50),
                )
                .await,
        );
    }
    assert!(mine.iter().all(|call| call.code.is_none()), "its places");
    assert_eq!(c.gate_held(0, PartyId::ModelOwner), 4);
    let more = conns[1]
        .stall(
            STATUS,
            Some(&token),
            1 << 20,
            1 << 19,
            Duration::from_secs(2),
        )
        .await;
    assert_eq!(more.code, Some(Code::ResourceExhausted));
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.gate_held(0, PartyId::ModelOwner) > 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled calls were never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((held, mine));
}

/// Finding 12: a keyed owner that fetched a round's weights 905 times without reading the
/// answers pinned 427 MiB. An owner now gets a round's weights at most
/// [`MAX_WEIGHT_FETCHES`] times (its first fetch and retries), read or not; the next is refused
/// `resource_exhausted`, and another owner still gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_gets_a_rounds_weights_a_bounded_number_of_times() {
    let (c, _leader) = cluster_with_round_open().await;
    let fetch = |owner: u32| {
        let auth = seal_request(
            &c.sealer(PartyId::DataOwner(owner)),
            PartyId::Server(0),
            RequestKind::FetchWeights,
            JOB,
            1,
            now_secs(),
        )
        .unwrap();
        FetchWeightsRequest {
            data_owner: PartyId::DataOwner(owner).to_string(),
            job_id: JOB,
            round: 1,
            auth,
        }
    };
    let mut owner = super::data_owner_client(&c, 0).await;
    let mut unread = Vec::new();
    for _ in 0..MAX_WEIGHT_FETCHES {
        unread.push(owner.fetch_weights(fetch(0)).await.unwrap());
    }
    let refused = owner.fetch_weights(fetch(0)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    let mut other = super::data_owner_client(&c, 1).await;
    let mut answer = other.fetch_weights(fetch(1)).await.unwrap().into_inner();
    let mut chunks = 0;
    while answer.message().await.unwrap().is_some() {
        chunks += 1;
    }
    assert!(chunks >= 2, "the settings and the weights");
    drop(unread);
}

/// Finding 10, connections: a keyless flood of TCP connections, silent or calling without a
/// token, holds at most the per-address bound at once (16 here): each new one evicts its
/// address's oldest untrusted connection, which reads end-of-stream. Connections that carried
/// an authenticated call or a peer hello are never evicted, so after a burst of 300 from the
/// owners' own address (127.0.0.1) and during one from 127.0.0.2, the peers' links hold and the
/// owners' uploads aggregate exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connections_holds_a_bounded_number_and_evicts_none_trusted() {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use tessera_aggregator::grpc::conns::ConnLimits;
    use tokio::io::AsyncReadExt;

    let limits = GateLimits {
        connections: ConnLimits {
            per_address: 16,
            max_total: 64,
        },
        ..super::test_limits()
    };
    let (c, leader) = cluster_with_round_open_under(limits).await;
    let target: SocketAddr = c.addresses[0].parse().unwrap();
    let from = move |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from((Ipv4Addr::from(ip), 0)))
            .unwrap();
        socket.connect(target).await.unwrap()
    };
    let conns = c.gates[0].conns();
    let (home, away) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
    let trusted_before = conns.open_from(home);
    // A burst of silent connections from the owners' own address.
    let mut burst = Vec::new();
    for _ in 0..300 {
        burst.push(from([127, 0, 0, 1]).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(conns.open_from(home) <= 16, "{}", conns.open_from(home));
    let mut first = burst.remove(0);
    // The server's HTTP/2 preface, then the end.
    let mut seen = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), first.read_to_end(&mut seen)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "an evicted connection reads its end: {read:?}"
    );
    // Another address keeps flooding, with silent connections and keyless calls.
    let flood = tokio::spawn(async move {
        let mut held = Vec::new();
        for i in 0..400 {
            let tcp = from([127, 0, 0, 2]).await;
            if i % 2 == 0 {
                held.push(tcp);
            } else if let Ok((mut client, connection)) = h2::client::handshake(tcp).await {
                tokio::spawn(connection);
                let request =
                    tonic::codegen::http::Request::post(format!("http://{target}{STATUS}"))
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                if let Ok((answer, _)) = client.send_request(request, false) {
                    let _ = tokio::time::timeout(Duration::from_millis(200), answer).await;
                }
            }
        }
        held
    });
    owners_aggregate_exactly(&c, &leader, 3).await;
    let held = flood.await.unwrap();
    assert!(conns.open_from(away) <= 16, "{}", conns.open_from(away));
    assert!(conns.open() <= 64);
    assert!(
        trusted_before >= 2,
        "the peers' links came in from 127.0.0.1"
    );
    drop((burst, held));
}
