//! `bench secagg`: one secure-aggregation round in simulated mode (three servers, the real services
//! over the in-memory network, real sealing) for N data owners x d parameters, against the same
//! round with no secret sharing (a plain sum of f32 updates).
//!
//! Timed: from the model owner opening the round until every server holds its sealed result share,
//! with the uploads prepared beforehand (sharing and sealing is the data owners' work, done in
//! parallel at the institutions; its cost per owner is its own column). `leader_seconds_per_owner`
//! is the round time over N (the leader handles uploads one after another); `helper_seconds_per_owner`
//! is what a helper does per owner: open the seed envelope and expand and add `d + 2` elements.
//! Floor: a round must at least read every upload once, N x 4(d + 2) bytes.
//!
//! Rules (second table): the same round in the 64-bit ring under `mean`, under `norm-bound`
//! (every upload checked under ABY3 before it joins), under `clip` (every upload scaled) and, up to 10^6 values, under
//! `trimmed-mean:1` and `median` (every upload converted as it arrives, all sorted at the close),
//! uploads one after another, so the round's seconds over N are the servers' seconds per owner; `peer bytes/owner` is what the three
//! servers sent each other per owner (the conversion to replicated shares and the check), and
//! `x mean` the ratio of seconds to `mean`'s in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_common::PartyId;
use tessera_common::api::{LeaderApi, RoundState, ServerApi};
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::job::JobSettings;
use tessera_common::model_spec::{LayerSpec, ModelSpec};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::ringvec::RingVec;
use tessera_common::rule::AggregationRule;
use tessera_common::seal::{Context, Expected, Purpose, Sealer};
use tessera_common::upload::{UploadPart, build_upload_vec};
use tessera_secagg::AggregatorService;
use tessera_secagg::local::LocalServer;

const OWNERS: [usize; 2] = [10, 100];
const PARAMS: [usize; 2] = [100_000, 1_000_000];
const SERVERS: usize = 3;

fn settings(owners: usize, params: usize, ring_bits: u32, rule: AggregationRule) -> JobSettings {
    // A dense layer [params - 1] -> 1 has exactly `params` parameters.
    let model = ModelSpec::chain(vec![params - 1], vec![LayerSpec::Dense { units: 1 }]);
    let mut s = JobSettings {
        rounds: 1,
        ring_bits,
        max_weight: 1.0,
        max_clients: owners,
        min_clients: owners,
        round_deadline_ms: 3_600_000,
        batch_size: 1,
        num_servers: SERVERS,
        rule,
        ..JobSettings::new(1, model).expect("a dense layer of params - 1 inputs resolves")
    };
    s.frac_bits = s.auto_frac_bits();
    s
}

struct Row {
    owners: usize,
    params: usize,
    secure_seconds: f64,
    helper_seconds_per_owner: f64,
    client_seconds_per_owner: f64,
    upload_bytes: usize,
    plain_seconds: f64,
    /// Bytes the servers sent each other in the round.
    peer_bytes: u64,
}

async fn secure_round(owners: usize, params: usize, ring_bits: u32, rule: AggregationRule) -> Row {
    let settings = settings(owners, params, ring_bits, rule);
    let mut parties: Vec<PartyId> = (0..SERVERS as u8).map(PartyId::Server).collect();
    parties.extend((0..owners as u32).map(PartyId::DataOwner));
    parties.push(PartyId::ModelOwner);
    let ids: Vec<Identity> = parties
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
    let keys: Vec<(PartyId, PublicKey)> =
        ids.iter().map(|i| (i.party(), *i.public_key())).collect();
    let sealer = |i: usize| Sealer::new(&ids[i], keys.iter().map(|(p, k)| (*p, k)));
    let servers: Vec<PartyId> = parties[..SERVERS].to_vec();
    let services: Vec<LocalServer<MemoryNetwork>> = MemoryNetwork::cluster(&servers)
        .into_iter()
        .enumerate()
        .map(|(i, net)| LocalServer(AggregatorService::new(sealer(i), SERVERS, Arc::new(net))))
        .collect();
    let model_owner = sealer(parties.len() - 1);
    let json = serde_json::to_vec(&settings).expect("settings serialise");
    for (i, s) in services.iter().enumerate() {
        let ctx = Context {
            purpose: Purpose::Control,
            job_id: 1,
            round: 0,
            chunk: 0,
        };
        s.start_job(
            model_owner
                .seal_for(PartyId::Server(i as u8), &ctx, &json)
                .expect("seal"),
        )
        .await
        .expect("start job");
    }

    // The data owners' side: encode, share, seal (timed separately).
    let mut update: Vec<f64> = (0..settings.update_len())
        .map(|i| ((i % 200) as f64 - 100.0) * 1e-3)
        .collect();
    // The weighted loss and the weight (1, the cap), as an honest owner sends them.
    update[params] = 0.5;
    update[params + 1] = 1.0;
    let encoded = RingVec::encode(ring_bits, settings.fixed_point(), &update).expect("encode");
    let client_start = Instant::now();
    let uploads: Vec<Vec<Vec<u8>>> = (0..owners)
        .map(|o| {
            build_upload_vec(
                &sealer(SERVERS + o),
                1,
                1,
                &encoded,
                settings.frac_bits,
                SERVERS,
                &mut rand::rng(),
            )
            .expect("upload")
        })
        .collect();
    let client_seconds_per_owner = client_start.elapsed().as_secs_f64() / owners as f64;
    let upload_bytes = uploads[0].iter().map(Vec::len).sum();

    // A helper's work per owner, measured on the same envelopes.
    let helper = sealer(1);
    let expected = Expected {
        purpose: Purpose::Upload,
        job_id: 1,
        round: 1,
        sender: Some(PartyId::DataOwner(0)),
    };
    let helper_start = Instant::now();
    let reps = owners.min(10);
    for _ in 0..reps {
        let seed_env = &uploads[0][uploads[0].len() - 2];
        let opened = helper
            .open(seed_env, &expected)
            .expect("helper opens its seed");
        if let Ok(UploadPart::Seed { seed, .. }) = UploadPart::from_bytes(&opened.plaintext) {
            let mut acc = RingVec::zeros(ring_bits, settings.update_len()).expect("ring");
            acc.add_seed(&seed);
            std::hint::black_box(&acc);
        }
    }
    let helper_seconds_per_owner = helper_start.elapsed().as_secs_f64() / reps as f64;

    let weights = vec![0u8; params * 4];
    let open: Vec<Vec<u8>> = weights
        .chunks(1 << 20)
        .enumerate()
        .map(|(i, piece)| {
            let ctx = Context {
                purpose: Purpose::Control,
                job_id: 1,
                round: 1,
                chunk: i as u64,
            };
            model_owner
                .seal_for(PartyId::Server(0), &ctx, piece)
                .expect("seal")
        })
        .collect();
    services[0].open_round(open).await.expect("open round");

    let peer_before: u64 = services.iter().map(|s| s.0.peer_stats().bytes_sent).sum();
    let started = Instant::now();
    for upload in uploads {
        services[0].upload(upload).await.expect("upload accepted");
    }
    loop {
        let status = services[0].status(1).await.expect("status");
        if status.state == RoundState::Aggregated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for s in &services {
        while s.fetch_result(1, 1).await.is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let secure_seconds = started.elapsed().as_secs_f64();
    let peer_bytes = services
        .iter()
        .map(|s| s.0.peer_stats().bytes_sent)
        .sum::<u64>()
        - peer_before;

    // The same round without secret sharing: sum N plaintext f32 updates.
    let plain_updates: Vec<Vec<f32>> = (0..owners)
        .map(|_| update.iter().map(|v| *v as f32).collect())
        .collect();
    let plain_start = Instant::now();
    let mut sum = vec![0f32; settings.update_len()];
    for u in &plain_updates {
        for (s, v) in sum.iter_mut().zip(u) {
            *s += v;
        }
    }
    std::hint::black_box(&sum);
    let plain_seconds = plain_start.elapsed().as_secs_f64();

    Row {
        owners,
        params,
        secure_seconds,
        helper_seconds_per_owner,
        client_seconds_per_owner,
        upload_bytes,
        plain_seconds,
        peer_bytes,
    }
}

/// Runs the suite and returns its JSON rows (also printing the table).
pub fn run() -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut rows = Vec::new();
    for owners in OWNERS {
        for params in PARAMS {
            let r = runtime.block_on(secure_round(owners, params, 32, AggregationRule::Mean));
            let plaintext = params * 4;
            for (mode, seconds, leader, helper, upload) in [
                (
                    "secure",
                    r.secure_seconds,
                    r.secure_seconds / owners as f64,
                    r.helper_seconds_per_owner,
                    r.upload_bytes,
                ),
                (
                    "plain",
                    r.plain_seconds,
                    r.plain_seconds / owners as f64,
                    0.0,
                    plaintext,
                ),
            ] {
                rows.push(json!({
                    "owners": r.owners, "params": r.params, "mode": mode, "ring_bits": 32,
                    "seconds": seconds, "leader_seconds_per_owner": leader,
                    "helper_seconds_per_owner": helper, "upload_bytes_per_owner": upload,
                    "plaintext_bytes_per_owner": plaintext,
                    "client_seconds_per_owner": if mode == "secure" { r.client_seconds_per_owner } else { 0.0 },
                }));
            }
        }
    }
    super::report::print_rows("secagg", &rows);
    rows
}

/// Only the rule rows (`bench secagg-rules`).
/// The rule rows alone; `only` keeps one rule family (and `mean`, the baseline), `params` one
/// model size.
pub fn run_rules(only: Option<&str>, params: Option<usize>) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    rules(&runtime, only, params)
}

/// Owners and parameters of the rule rows.
const RULE_SIZES: [(usize, usize); 4] = [
    (10, 100_000),
    (50, 100_000),
    (10, 1_000_000),
    (50, 1_000_000),
];

/// The most values (owners times parameters) the sorting rules are benchmarked at.
const ORDER_STATISTIC_VALUES: usize = 1_000_000;

/// The rounds under each rule in the 64-bit ring (see the module docs), printed as a table.
fn rules(runtime: &tokio::runtime::Runtime, only: Option<&str>, size: Option<usize>) -> Vec<Value> {
    let mut rows = Vec::new();
    for (owners, params) in RULE_SIZES {
        if size.is_some_and(|p| p != params) {
            continue;
        }
        let mut mean_seconds = None;
        // The bench's updates have norm 0.058 sqrt(d): a bound of 100 lets every one through.
        // Under clip a bound of 1 scales every one of them.
        let mut rules = vec![
            AggregationRule::Mean,
            AggregationRule::NormBound { bound: 100.0 },
            AggregationRule::Clip { bound: 1.0 },
        ];
        // The sorting rules keep every upload (2 N d words per server) and sort N d values: at
        // 10 owners and 100k parameters (the size), not at 50 x 1M (400 MB of shares
        // before the circuit's own copies).
        if owners * params <= ORDER_STATISTIC_VALUES {
            rules.extend([
                AggregationRule::TrimmedMean { trim: 1 },
                AggregationRule::Median,
            ]);
        }
        rules.retain(|rule| {
            let name = rule.to_string();
            let family = name.split(':').next().unwrap_or_default();
            family == "mean" || only.is_none_or(|o| o == family)
        });
        for rule in rules {
            let r = runtime.block_on(secure_round(owners, params, 64, rule));
            let per_owner = r.secure_seconds / owners as f64;
            let base = *mean_seconds.get_or_insert(r.secure_seconds);
            let peer = r.peer_bytes as f64 / owners as f64;
            let name = rule.to_string();
            let family = name.split(':').next().unwrap_or_default();
            rows.push(json!({
                "owners": owners, "params": params, "mode": "rule", "rule": family, "rule_spec": name,
                "trim": rule.trim(owners),
                "ring_bits": 64, "seconds": r.secure_seconds,
                "server_seconds_per_owner": per_owner,
                "upload_bytes_per_owner": r.upload_bytes,
                "peer_bytes_per_owner": peer,
                "seconds_vs_mean": r.secure_seconds / base,
            }));
        }
    }
    super::report::print_rows("secagg-rules", &rows);
    rows
}
