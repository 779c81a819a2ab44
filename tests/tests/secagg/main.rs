//! Secure aggregation in one process (the real services over the in-memory network, real sealing):
//! the revealed aggregate is the exact ring sum of the committed updates; every kind of bad upload
//! is refused with its own error and leaves the round's result unaffected; a server's share is not
//! the update; an upload costs about one plaintext copy. The refusals of bad uploads are in
//! `refusals.rs`, the rounds' failure paths between leader and helpers in `rounds.rs`.

mod dp;
mod refusals;
mod robust;
mod rounds;
mod tap;

use std::sync::Arc;

use tap::{Hook, Tap};
use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundState, ServerApi};
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::job::JobSettings;
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Context, Expected, Purpose, SealError, Sealer};
use tessera_common::upload::{UploadPart, build_upload_vec};
use tessera_model_owner::reveal::{AggregateError, decode_aggregate, reveal_sum};
use tessera_secagg::local::LocalServer;
use tessera_secagg::{AggregatorService, Limits, ServiceError};

struct Cluster {
    servers: Vec<LocalServer<Tap>>,
    ids: Vec<Identity>,
    keys: Vec<(PartyId, PublicKey)>,
    settings: JobSettings,
}

impl Cluster {
    fn sealer(&self, party: PartyId) -> Sealer {
        let id = self.ids.iter().find(|i| i.party() == party).unwrap();
        Sealer::new(id, self.keys.iter().map(|(p, k)| (*p, k)))
    }

    fn leader(&self) -> &LocalServer<Tap> {
        &self.servers[0]
    }
}

fn settings(num_servers: usize, max_clients: usize, min_clients: usize) -> JobSettings {
    let model = ModelSpec::logistic_regression();
    JobSettings {
        rounds: 4,
        max_clients,
        min_clients,
        round_deadline_ms: 2_000,
        num_servers,
        ..JobSettings::new(77, model).unwrap()
    }
}

async fn cluster(num_servers: usize, max_clients: usize, min_clients: usize) -> Cluster {
    cluster_with(num_servers, max_clients, min_clients, Limits::default()).await
}

async fn cluster_with(
    num_servers: usize,
    max_clients: usize,
    min_clients: usize,
    limits: Limits,
) -> Cluster {
    cluster_tapped(num_servers, max_clients, min_clients, limits, Vec::new()).await
}

/// A cluster whose servers' sends pass through `hooks` (one per server, from `server0`; missing
/// ones pass everything).
async fn cluster_tapped(
    num_servers: usize,
    max_clients: usize,
    min_clients: usize,
    limits: Limits,
    hooks: Vec<Hook>,
) -> Cluster {
    let settings = settings(num_servers, max_clients, min_clients);
    cluster_custom(settings, limits, hooks).await
}

/// A cluster running a job of the given settings (job id 77, data owners 0 to 3).
async fn cluster_custom(settings: JobSettings, limits: Limits, mut hooks: Vec<Hook>) -> Cluster {
    let num_servers = settings.num_servers;
    hooks.resize_with(num_servers, Hook::pass);
    let mut parties: Vec<PartyId> = (0..num_servers as u8).map(PartyId::Server).collect();
    parties.extend((0..14).map(PartyId::DataOwner));
    parties.push(PartyId::ModelOwner);
    let ids: Vec<Identity> = parties
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
    let keys = ids.iter().map(|i| (i.party(), *i.public_key())).collect();
    let mut c = Cluster {
        servers: Vec::new(),
        ids,
        keys,
        settings,
    };
    let servers: Vec<PartyId> = (0..num_servers as u8).map(PartyId::Server).collect();
    let nets = MemoryNetwork::cluster(&servers).into_iter().zip(hooks);
    for ((net, hook), p) in nets.zip(&servers) {
        c.servers.push(LocalServer(AggregatorService::with_limits(
            c.sealer(*p),
            num_servers,
            Arc::new(Tap::new(net, hook)),
            limits.clone(),
        )));
    }
    let mo = c.sealer(PartyId::ModelOwner);
    let json = serde_json::to_vec(&c.settings).unwrap();
    for (i, s) in c.servers.iter().enumerate() {
        let ctx = Context {
            purpose: Purpose::Control,
            job_id: 77,
            round: 0,
            chunk: 0,
        };
        s.start_job(mo.seal_for(PartyId::Server(i as u8), &ctx, &json).unwrap())
            .await
            .unwrap();
    }
    c
}

async fn open_round(c: &Cluster, round: u64) {
    let mo = c.sealer(PartyId::ModelOwner);
    let weights: Vec<u8> = vec![0u8; c.settings.num_params * 4];
    let ctx = Context {
        purpose: Purpose::Control,
        job_id: 77,
        round,
        chunk: 0,
    };
    let env = mo.seal_for(PartyId::Server(0), &ctx, &weights).unwrap();
    c.leader().open_round(vec![env]).await.unwrap();
}

/// A deterministic update per owner, in the ring.
fn update(c: &Cluster, owner: u32) -> RingVec {
    let n = c.settings.update_len();
    RingVec::U32(
        (0..n as u32)
            .map(|i| {
                i.wrapping_mul(2_654_435_761)
                    .wrapping_add(owner * 1_000_003)
            })
            .collect(),
    )
}

fn upload_of(c: &Cluster, owner: u32, round: u64, update: &RingVec) -> Vec<Vec<u8>> {
    build_upload_vec(
        &c.sealer(PartyId::DataOwner(owner)),
        77,
        round,
        update,
        c.settings.frac_bits,
        c.settings.num_servers,
        &mut rand::rng(),
    )
    .unwrap()
}

async fn wait_final(c: &Cluster, round: u64) -> tessera_common::api::JobStatus {
    for _ in 0..400 {
        let s = c.leader().status(77).await.unwrap();
        if s.round == round && s.state.is_final() {
            return s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("round {round} did not finish");
}

async fn revealed(c: &Cluster, round: u64) -> RingVec {
    let mut shares = Vec::new();
    for (i, s) in c.servers.iter().enumerate() {
        let mut got = None;
        for _ in 0..200 {
            match s.fetch_result(77, round).await {
                Ok(r) => {
                    got = Some(r);
                    break;
                }
                Err(ApiError::NotReady(_)) => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        shares.push((PartyId::Server(i as u8), got.expect("result share")));
    }
    reveal_sum(&c.sealer(PartyId::ModelOwner), &c.settings, round, &shares).unwrap()
}

fn ring_sum(parts: &[RingVec]) -> RingVec {
    let bits = parts[0].element_bytes() as u32 * 8;
    let mut acc = RingVec::zeros(bits, parts[0].len()).unwrap();
    for p in parts {
        acc.add_assign(p).unwrap();
    }
    acc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_is_the_exact_sum_with_two_and_three_servers() {
    for servers in [2, 3] {
        let c = cluster(servers, 3, 2).await;
        open_round(&c, 1).await;
        let updates: Vec<RingVec> = (0..3).map(|o| update(&c, o)).collect();
        for (o, u) in updates.iter().enumerate() {
            c.leader()
                .upload(upload_of(&c, o as u32, 1, u))
                .await
                .unwrap();
        }
        let status = wait_final(&c, 1).await;
        assert_eq!(status.state, RoundState::Aggregated);
        assert_eq!(status.contributors.len(), 3);
        assert_eq!(
            revealed(&c, 1).await,
            ring_sum(&updates),
            "{servers} servers"
        );
        // The round left no message behind at any server.
        for s in &c.servers {
            assert_eq!(s.0.queued_messages(), 0, "{servers} servers");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_below_min_clients_fails_and_the_next_one_works() {
    let c = cluster(2, 3, 2).await;
    open_round(&c, 1).await;
    c.leader()
        .upload(upload_of(&c, 0, 1, &update(&c, 0)))
        .await
        .unwrap();
    let status = wait_final(&c, 1).await;
    assert_eq!(status.state, RoundState::Failed);
    assert!(matches!(
        c.leader().fetch_result(77, 1).await,
        Err(ApiError::NotReady(_))
    ));
    exact_round(&c, 2, 3).await;
}

/// Opens `round`, uploads the first `owners` owners' updates, and checks the round aggregates to
/// exactly their ring sum.
async fn exact_round(c: &Cluster, round: u64, owners: u32) {
    open_round(c, round).await;
    let updates: Vec<RingVec> = (0..owners).map(|o| update(c, o)).collect();
    for (o, u) in updates.iter().enumerate() {
        c.leader()
            .upload(upload_of(c, o as u32, round, u))
            .await
            .unwrap();
    }
    assert_eq!(wait_final(c, round).await.state, RoundState::Aggregated);
    assert_eq!(revealed(c, round).await, ring_sum(&updates));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_share_is_not_the_update_and_changes_between_runs() {
    let c = cluster(3, 3, 2).await;
    let server0 = c.sealer(PartyId::Server(0));
    let u = update(&c, 0);
    let expected = Expected {
        purpose: Purpose::Upload,
        job_id: 77,
        round: 1,
        sender: Some(PartyId::DataOwner(0)),
    };
    let share_of = |envelopes: &[Vec<u8>]| match UploadPart::from_bytes(
        &server0.open(&envelopes[1], &expected).unwrap().plaintext,
    )
    .unwrap()
    {
        UploadPart::Share { bytes, .. } => bytes,
        other => panic!("{other:?}"),
    };
    let a = share_of(&upload_of(&c, 0, 1, &u));
    let b = share_of(&upload_of(&c, 0, 1, &u));
    let plain = u.to_le_bytes(0..u.len());
    assert_eq!(a.len(), plain.len());
    assert_ne!(a, plain);
    assert_ne!(a, b);
    // Not even close: about 1/2^32 of the elements coincide by chance.
    let same = a
        .chunks(4)
        .zip(plain.chunks(4))
        .filter(|(x, y)| x == y)
        .count();
    assert!(same < 3, "{same} elements equal the plaintext");
    // The leader cannot open a helper's seed.
    let envelopes = upload_of(&c, 0, 1, &u);
    assert!(matches!(
        server0.open(envelopes.last().unwrap(), &expected),
        Err(SealError::WrongReceiver {
            got: PartyId::Server(2),
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_is_about_one_plaintext_copy_with_a_32_bit_ring() {
    let c = cluster(3, 3, 2).await;
    let model = ModelSpec::network_a();
    let n = model.num_params().unwrap();
    let update = RingVec::U32(vec![7; n + 2]);
    let envelopes = upload_of(&c, 0, 1, &update);
    let bytes: usize = envelopes.iter().map(Vec::len).sum();
    let plaintext = n * 4;
    let ratio = bytes as f64 / plaintext as f64;
    assert!(
        ratio <= 1.1,
        "upload {bytes} bytes for {plaintext} plaintext bytes ({ratio:.4}x)"
    );
    assert!(ratio >= 1.0);
}

/// A plaintext update as an honest owner forms it: deltas and loss times the weight, then the
/// weight.
fn formed(c: &Cluster, delta: f64, loss: f64, weight: f64) -> Vec<f64> {
    let mut v = vec![delta * weight; c.settings.num_params];
    v.push(loss * weight);
    v.push(weight);
    v
}

fn encoded(c: &Cluster, values: &[f64]) -> RingVec {
    RingVec::encode(32, c.settings.fixed_point(), values).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_owner_refuses_an_aggregate_honest_owners_could_not_give() {
    let c = cluster(3, 3, 2).await;
    let honest = [formed(&c, 0.01, 0.2, 100.0), formed(&c, -0.02, 0.3, 50.0)];
    let honest_total: f64 = 150.0;
    let unit = 1.0 / 65536.0;
    // What a malicious owner may send (any ring vector), and what the model owner concludes.
    let attacks: Vec<(&str, Vec<f64>)> = vec![
        // Minus the honest total plus one unit: the mean would explode.
        (
            "negative weight",
            formed(&c, 0.0, 0.0, 1.0)
                .iter()
                .enumerate()
                .map(|(i, _)| {
                    if i == c.settings.num_params + 1 {
                        -honest_total + unit
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
        // A weight above max_weight (1000).
        ("weight over the cap", formed(&c, 0.0, 0.1, 24_000.0)),
        // Deltas far beyond clip (1.0) at a legal weight.
        ("unclipped delta", formed(&c, 300.0, 0.1, 10.0)),
        // A loss beyond its bound.
        ("loss", formed(&c, 0.0, 100.0, 10.0)),
    ];
    for (round, (name, attack)) in attacks.into_iter().enumerate() {
        let round = round as u64 + 1;
        open_round(&c, round).await;
        let mut all = honest.to_vec();
        all.push(attack);
        for (o, u) in all.iter().enumerate() {
            c.leader()
                .upload(upload_of(&c, o as u32, round, &encoded(&c, u)))
                .await
                .unwrap();
        }
        let status = wait_final(&c, round).await;
        assert_eq!(status.state, RoundState::Aggregated, "{name}");
        let sum = revealed(&c, round).await;
        let verdict = decode_aggregate(&c.settings, &sum, status.contributors.len());
        let expected = match name {
            "negative weight" | "weight over the cap" => {
                matches!(verdict, Err(AggregateError::TotalWeight { .. }))
            }
            "unclipped delta" => matches!(verdict, Err(AggregateError::OutOfRange { .. })),
            _ => matches!(verdict, Err(AggregateError::Loss { .. })),
        };
        assert!(expected, "{name}: {verdict:?}");
    }
}

#[test]
fn an_honest_aggregate_decodes_to_the_weighted_mean() {
    let settings = settings(3, 3, 2);
    let n = settings.num_params;
    let fp = settings.fixed_point();
    let mut sum = RingVec::zeros(32, settings.update_len()).unwrap();
    for (delta, loss, w) in [(1.0, 0.5, 100.0), (-1.0, 0.0, 300.0), (0.25, 1.0, 1000.0)] {
        let mut v = vec![delta * w; n];
        v.push(loss * w);
        v.push(w);
        sum.add_assign(&RingVec::encode(32, fp, &v).unwrap())
            .unwrap();
    }
    let a = decode_aggregate(&settings, &sum, 3).unwrap();
    assert_eq!(a.total_weight, 1400.0);
    let mean = (100.0 - 300.0 + 250.0) / 1400.0;
    assert!(a.mean_delta.iter().all(|v| (v - mean).abs() < 1e-4));
    let loss = (50.0 + 1000.0) / 1400.0 * 16.0;
    assert!((a.mean_train_loss - loss).abs() < 1e-3);
    // A round of full-clip updates at the cap is at the edge of the bounds, and accepted.
    let mut edge = RingVec::zeros(32, settings.update_len()).unwrap();
    for _ in 0..3 {
        let mut v = vec![-1000.0; n];
        v.push(1000.0);
        v.push(1000.0);
        edge.add_assign(&RingVec::encode(32, fp, &v).unwrap())
            .unwrap();
    }
    assert!(decode_aggregate(&settings, &edge, 3).is_ok());
}

/// Starts job `job_id` (the cluster's settings otherwise) on every server: each server's answer.
async fn start_another(c: &Cluster, job_id: u64) -> Vec<Result<(), ApiError>> {
    let mo = c.sealer(PartyId::ModelOwner);
    let json = serde_json::to_vec(&JobSettings {
        job_id,
        ..c.settings.clone()
    })
    .unwrap();
    let mut out = Vec::new();
    for (i, s) in c.servers.iter().enumerate() {
        let ctx = Context {
            purpose: Purpose::Control,
            job_id,
            round: 0,
            chunk: 0,
        };
        let env = mo.seal_for(PartyId::Server(i as u8), &ctx, &json).unwrap();
        out.push(s.start_job(env).await.map(|_| ()));
    }
    out
}

/// A long-lived cluster holds a bounded number of jobs: starting one more drops a finished job
/// (or one idle past `job_idle`), and with none to drop the start is refused as busy, naming the
/// limit (before, every job ever started stayed in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_and_idle_jobs_make_room_and_the_job_count_is_bounded() {
    let limits = Limits {
        max_jobs: 2,
        ..Limits::default()
    };
    let c = cluster_custom(
        JobSettings {
            rounds: 1,
            ..settings(3, 3, 2)
        },
        limits,
        Vec::new(),
    )
    .await;
    exact_round(&c, 1, 3).await;
    // Job 77 ran its one round; 78 fills the second place.
    assert!(start_another(&c, 78).await.iter().all(Result::is_ok));
    // 79 takes 77's place: finished jobs go first.
    assert!(start_another(&c, 79).await.iter().all(Result::is_ok));
    for s in &c.servers {
        assert_eq!(s.0.jobs_held(), 2);
        assert!(matches!(
            s.status(77).await,
            Err(ApiError::Rejected(ServiceError::UnknownJob(77)))
        ));
    }
    // 78 and 79 are fresh, neither finished nor idle: an 80th is refused, naming the limit.
    for answer in start_another(&c, 80).await {
        match answer {
            Err(ApiError::Rejected(ServiceError::Busy { limit: 2, .. })) => {}
            other => panic!("a third job with room for two: {other:?}"),
        }
    }
    assert!(c.leader().status(78).await.is_ok());

    // An abandoned job (its round over, untouched for `job_idle`) makes room as well.
    let limits = Limits {
        max_jobs: 1,
        job_idle: std::time::Duration::ZERO,
        ..Limits::default()
    };
    let c = cluster_with(3, 3, 2, limits).await;
    assert!(start_another(&c, 78).await.iter().all(Result::is_ok));
    assert_eq!(c.leader().0.jobs_held(), 1);
    assert!(matches!(
        c.leader().status(77).await,
        Err(ApiError::Rejected(ServiceError::UnknownJob(77)))
    ));
}
