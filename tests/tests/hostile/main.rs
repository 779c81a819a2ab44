//! Hostile callers against real aggregator gRPC fronts on 127.0.0.1 (the findings of the security
//! review, issue 13): a caller without a key cannot make a server hold what it sends, a data owner
//! with a key cannot cut the servers' links, and every refusal comes while the hostile stream is
//! still open, with a status code that says whose fault it is. `front.rs`: the gate against
//! floods of stalled calls; `transport.rs`: TLS, the message-size bound and the health service.

use std::time::Duration;

use tessera_aggregator::grpc::GateLimits;
use tessera_aggregator::net::GrpcNetwork;
use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundState, ServerApi};
use tessera_common::job::JobSettings;
use tessera_common::model_spec::ModelSpec;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Context, Header, Purpose, Sealer};
use tessera_common::upload::build_upload_vec;
use tessera_proto::client::CallerChannel;
use tessera_proto::v1::SealedChunk;
use tessera_proto::v1::data_owner_service_client::DataOwnerServiceClient;
use tessera_proto::v1::model_owner_service_client::ModelOwnerServiceClient;
use tessera_secagg::ServiceError;
use tessera_secagg::local::LocalServer;
use tessera_tests::GrpcAggregators;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

mod front;
mod transport;

const JOB: u64 = 77;

fn settings() -> JobSettings {
    let model = ModelSpec::logistic_regression();
    JobSettings {
        max_clients: 3,
        round_deadline_ms: 5_000,
        ..JobSettings::new(JOB, model).unwrap()
    }
}

fn test_limits() -> GateLimits {
    GateLimits {
        stream_idle: Duration::from_millis(500),
        message_deadline: Duration::from_millis(500),
        calls_per_party: 4,
        ..GateLimits::default()
    }
}

/// A cluster with the test job started on every server.
async fn cluster(limits: GateLimits) -> GrpcAggregators {
    start_job(GrpcAggregators::start(limits, 3).await)
}

/// Starts the test job on every server of `c`.
fn start_job(c: GrpcAggregators) -> GrpcAggregators {
    let mo = c.sealer(PartyId::ModelOwner);
    let json = serde_json::to_vec(&settings()).unwrap();
    for (i, s) in c.services.iter().enumerate() {
        let ctx = Context {
            purpose: Purpose::Control,
            job_id: JOB,
            round: 0,
            chunk: 0,
        };
        s.start_job(&mo.seal_for(PartyId::Server(i as u8), &ctx, &json).unwrap())
            .unwrap();
    }
    c
}

/// The model owner's client of `server` (its calls carry the model owner's call tokens).
async fn model_owner_client(
    c: &GrpcAggregators,
    server: usize,
) -> ModelOwnerServiceClient<CallerChannel> {
    ModelOwnerServiceClient::new(c.channel_as(server, PartyId::ModelOwner))
        .max_encoding_message_size(16 << 20)
}

/// Data owner `owner`'s client of the leader.
async fn data_owner_client(
    c: &GrpcAggregators,
    owner: u32,
) -> DataOwnerServiceClient<CallerChannel> {
    DataOwnerServiceClient::new(c.channel_as(0, PartyId::DataOwner(owner)))
}

/// Sends `chunks` on an `OpenRound` call to `server`, then ends the stream, or with `keep_open`
/// keeps it open; returns the answer's code, or fails the test if none comes within five seconds
/// (the server is still reading what it was sent).
async fn open_round_answer(
    c: &GrpcAggregators,
    server: usize,
    chunks: Vec<Vec<u8>>,
    keep_open: bool,
) -> Code {
    let (tx, rx) = mpsc::channel(chunks.len() + 1);
    for envelope in chunks {
        tx.send(SealedChunk { envelope }).await.unwrap();
    }
    let tx = keep_open.then_some(tx);
    let mut client = model_owner_client(c, server).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        client.open_round(ReceiverStream::new(rx)),
    )
    .await
    .expect("no answer while the stream is open: the server keeps reading");
    drop(tx);
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// A header that names the model owner and the leader, followed by 1 MiB of noise: what a
/// caller without the model owner's key can send.
fn forged_weights_chunk() -> Vec<u8> {
    let header = Header {
        purpose: Purpose::Control,
        job_id: JOB,
        round: 1,
        sender: PartyId::ModelOwner,
        receiver: PartyId::Server(0),
        chunk: 0,
    };
    let mut env = header.to_bytes().to_vec();
    env.extend((0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    env
}

fn weights_envelopes(c: &GrpcAggregators, round: u64, params: usize) -> Vec<Vec<u8>> {
    let mo = c.sealer(PartyId::ModelOwner);
    vec![0u8; params * 4]
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, piece)| {
            let ctx = Context {
                purpose: Purpose::Control,
                job_id: JOB,
                round,
                chunk: i as u64,
            };
            mo.seal_for(PartyId::Server(0), &ctx, piece).unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_round_refuses_an_unauthenticated_first_chunk_at_once() {
    let c = cluster(test_limits()).await;
    // Noise that does not even parse, and a well-formed header over noise.
    let garbage = vec![0xa5u8; 1 << 20];
    assert_eq!(
        open_round_answer(&c, 0, vec![garbage.clone(), garbage], true).await,
        Code::InvalidArgument
    );
    assert_eq!(
        open_round_answer(
            &c,
            0,
            vec![forged_weights_chunk(), forged_weights_chunk()],
            true
        )
        .await,
        Code::Unauthenticated
    );
    // A helper takes no round openings: refused before anything is read.
    assert_eq!(
        open_round_answer(&c, 1, vec![forged_weights_chunk()], true).await,
        Code::FailedPrecondition
    );
    // The round opens for the model owner all the same.
    let params = settings().num_params;
    assert_eq!(
        open_round_answer(&c, 0, weights_envelopes(&c, 1, params), false).await,
        Code::Ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_round_refuses_more_weights_than_the_job_has() {
    let c = cluster(test_limits()).await;
    let params = settings().num_params;
    // Authentic chunks for four times the job's parameters: refused at the first excess chunk.
    let mo = c.sealer(PartyId::ModelOwner);
    let too_many: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let ctx = Context {
                purpose: Purpose::Control,
                job_id: JOB,
                round: 1,
                chunk: i,
            };
            mo.seal_for(PartyId::Server(0), &ctx, &vec![0u8; params * 4])
                .unwrap()
        })
        .collect();
    assert_eq!(
        open_round_answer(&c, 0, too_many, true).await,
        Code::InvalidArgument
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_streams_are_cut_and_their_number_is_bounded() {
    let limits = GateLimits {
        stream_idle: Duration::from_secs(3),
        message_deadline: Duration::from_secs(3),
        ..test_limits()
    };
    let c = cluster(limits).await;
    let params = settings().num_params;
    // Four openings by the model owner that never send hold each of its places.
    let mut held = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = mpsc::channel(4);
        let mut client = model_owner_client(&c, 0).await;
        calls.push(tokio::spawn(async move {
            client.open_round(ReceiverStream::new(rx)).await
        }));
        held.push(tx);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A fifth of the model owner's is refused at once.
    assert_eq!(
        open_round_answer(&c, 0, weights_envelopes(&c, 1, params), false).await,
        Code::ResourceExhausted
    );
    // The stalled ones are cut after the idle time, which frees their places.
    for call in calls {
        let status = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("a stalled stream is cut")
            .unwrap()
            .unwrap_err();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    }
    drop(held);
    assert_eq!(
        open_round_answer(&c, 0, weights_envelopes(&c, 1, params), false).await,
        Code::Ok
    );
}

/// A cluster with round 1 open, and its leader reached in-process.
async fn cluster_with_round_open() -> (GrpcAggregators, LocalServer<GrpcNetwork>) {
    cluster_with_round_open_under(test_limits()).await
}

/// [`cluster_with_round_open`] under `limits`.
async fn cluster_with_round_open_under(
    limits: GateLimits,
) -> (GrpcAggregators, LocalServer<GrpcNetwork>) {
    let c = cluster(limits).await;
    let leader = LocalServer(c.services[0].clone());
    leader
        .open_round(weights_envelopes(&c, 1, settings().num_params))
        .await
        .unwrap();
    (c, leader)
}

/// The leader's status once the current round is final.
async fn wait_final(leader: &LocalServer<GrpcNetwork>) -> tessera_common::api::JobStatus {
    loop {
        let s = leader.status(JOB).await.unwrap();
        if s.state.is_final() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn update(owner: u32) -> RingVec {
    let n = settings().update_len();
    RingVec::U32(
        (0..n as u32)
            .map(|i| i.wrapping_mul(2_654_435_761).wrapping_add(owner))
            .collect(),
    )
}

fn upload_of(sealer: &Sealer, round: u64, update: &RingVec) -> Vec<Vec<u8>> {
    build_upload_vec(sealer, JOB, round, update, 16, 3, &mut rand::rng()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_seed_envelope_is_refused_and_the_links_survive() {
    let (c, leader) = cluster_with_round_open().await;
    // A data owner with a legitimate key seals 5 MiB as its "seed" for server1.
    let owner = c.sealer(PartyId::DataOwner(0));
    let mut upload = upload_of(&owner, 1, &update(0));
    let n = upload.len();
    let ctx = Context {
        purpose: Purpose::Upload,
        job_id: JOB,
        round: 1,
        chunk: (n - 2) as u64,
    };
    upload[n - 2] = owner
        .seal_for(PartyId::Server(1), &ctx, &vec![7u8; 5 << 20])
        .unwrap();
    let err = leader.upload(upload).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::WrongLength {
                what: "seed envelope bytes",
                ..
            })
        ),
        "{err}"
    );
    // The peer links still carry the honest uploads; the round aggregates both exactly.
    let mut sum = RingVec::zeros(32, settings().update_len()).unwrap();
    for o in 1..3 {
        let u = update(o);
        leader
            .upload(upload_of(&c.sealer(PartyId::DataOwner(o)), 1, &u))
            .await
            .unwrap();
        sum.add_assign(&u).unwrap();
    }
    let status = wait_final(&leader).await;
    assert_eq!(status.state, RoundState::Aggregated, "{}", status.message);
    assert_eq!(revealed(&c, 1).await, sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_reset_by_their_clients_still_end_in_a_decision() {
    let (c, leader) = cluster_with_round_open().await;
    // data-owner-0 sends a whole upload and resets the call at once, mid-commit or before: the
    // commit (forward, decision) runs to its end all the same.
    let env = upload_of(&c.sealer(PartyId::DataOwner(0)), 1, &update(0));
    let mut client = data_owner_client(&c, 0).await;
    let call = tokio::spawn(async move {
        client
            .upload_shares(tokio_stream::iter(
                env.into_iter().map(|envelope| SealedChunk { envelope }),
            ))
            .await
    });
    tokio::time::sleep(Duration::from_millis(15)).await;
    call.abort();
    // The other owners' uploads are answered, and the round is the exact sum of its
    // contributors, whichever way data-owner-0's upload went.
    for o in 1..3 {
        leader
            .upload(upload_of(&c.sealer(PartyId::DataOwner(o)), 1, &update(o)))
            .await
            .unwrap();
    }
    let status = wait_final(&leader).await;
    assert_eq!(status.state, RoundState::Aggregated, "{}", status.message);
    let mut sum = RingVec::zeros(32, settings().update_len()).unwrap();
    for owner in &status.contributors {
        let PartyId::DataOwner(o) = owner else {
            panic!("{owner}")
        };
        sum.add_assign(&update(*o)).unwrap();
    }
    assert_eq!(revealed(&c, 1).await, sum);
}

async fn revealed(c: &GrpcAggregators, round: u64) -> RingVec {
    let mut shares = Vec::new();
    for (i, s) in c.services.iter().enumerate() {
        let local = LocalServer(s.clone());
        shares.push((
            PartyId::Server(i as u8),
            local.fetch_result(JOB, round).await.unwrap(),
        ));
    }
    tessera_model_owner::reveal::reveal_sum(
        &c.sealer(PartyId::ModelOwner),
        &settings(),
        round,
        &shares,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_requests_answer_only_the_party_entitled() {
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    }
    use tessera_common::request::{RequestKind, now_secs, seal_request};
    use tessera_proto::v1::{FetchRoundRequest, FetchWeightsRequest, StatusRequest};
    let (c, _) = cluster_with_round_open().await;
    let token = |party: PartyId, kind, round| {
        seal_request(
            &c.sealer(party),
            PartyId::Server(0),
            kind,
            JOB,
            round,
            now_secs(),
        )
        .unwrap()
    };
    let mut mo = model_owner_client(&c, 0).await;
    let status = |auth: Vec<u8>| StatusRequest { job_id: JOB, auth };
    // Status: no token, a data owner's token, the model owner's.
    assert_eq!(
        code(mo.status(status(Vec::new())).await),
        Code::Unauthenticated
    );
    let owners = token(PartyId::DataOwner(0), RequestKind::Status, 0);
    assert_eq!(
        code(mo.status(status(owners)).await),
        Code::PermissionDenied
    );
    let mine = token(PartyId::ModelOwner, RequestKind::Status, 0);
    assert_eq!(code(mo.status(status(mine)).await), Code::Ok);
    // Round polls and weights: only for the owner the token names.
    let mut owner = data_owner_client(&c, 0).await;
    let poll = |name: &str, auth| FetchRoundRequest {
        data_owner: name.into(),
        job_id: JOB,
        after_round: 0,
        auth,
    };
    assert_eq!(
        code(owner.fetch_round(poll("data-owner-0", Vec::new())).await),
        Code::Unauthenticated
    );
    let ones = token(PartyId::DataOwner(1), RequestKind::FetchRound, 0);
    assert_eq!(
        code(owner.fetch_round(poll("data-owner-0", ones.clone())).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(owner.fetch_round(poll("data-owner-1", ones)).await),
        Code::Ok
    );
    let fetch = |auth| FetchWeightsRequest {
        data_owner: "data-owner-1".into(),
        job_id: JOB,
        round: 1,
        auth,
    };
    assert_eq!(
        code(owner.fetch_weights(fetch(Vec::new())).await),
        Code::Unauthenticated
    );
    // A token for another request does not do.
    let poll_token = token(PartyId::DataOwner(1), RequestKind::FetchRound, 1);
    assert_eq!(
        code(owner.fetch_weights(fetch(poll_token)).await),
        Code::Unauthenticated
    );
    let weights_token = token(PartyId::DataOwner(1), RequestKind::FetchWeights, 1);
    assert_eq!(
        code(owner.fetch_weights(fetch(weights_token)).await),
        Code::Ok
    );
}
