//! The servers' MPC job service in one process (the same envelopes the gRPC front carries):
//! deploy a model, predict from two clients at once under ABY3 and SecureNN against burn's
//! logits, refuse a client the access list does not name, and fail a job whose server is missing
//! with an error naming it; no job's messages stay queued afterwards. The service's other
//! refusals, by variant, are in `service_refusals.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tessera_aggregator::jobs::{LocalTransport, MpcLimits, MpcService};
use tessera_common::PartyId;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::identity::Identity;
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::Network;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::protocol::ProtocolKind;
use tessera_common::seal::Sealer;
use tessera_jobs::{ClientError, JobClient, JobKind, JobState, MpcServiceError};
use tessera_ml::{initial_params, logits};

use crate::runtime;

/// Asserts that `err` is a server's refusal whose reason matches the pattern.
macro_rules! assert_refused {
    ($err:expr, $reason:pat $(if $guard:expr)?) => {
        assert!(
            matches!(
                $err,
                ClientError::Refused {
                    reason: $reason,
                    ..
                } $(if $guard)?
            ),
            "{:?}",
            $err
        )
    };
}
pub(super) use assert_refused;

pub(super) const SERVERS: [PartyId; 3] =
    [PartyId::Server(0), PartyId::Server(1), PartyId::Server(2)];
pub(super) const OWNER: PartyId = PartyId::ModelOwner;
pub(super) const ALICE: PartyId = PartyId::DataOwner(0);
pub(super) const BOB: PartyId = PartyId::DataOwner(1);
const EVE: PartyId = PartyId::DataOwner(2);
pub(super) const F: u32 = 16;

pub(super) struct Cluster {
    pub(super) services: Vec<Arc<MpcService<MemoryNetwork>>>,
    pub(super) nets: Vec<Arc<MemoryNetwork>>,
    pub(super) sealers: HashMap<PartyId, Sealer>,
    pub(super) ids: Vec<Identity>,
    pub(super) recv_timeout: Duration,
    /// The limits every (re)started server gets, less its timeouts.
    pub(super) limits: MpcLimits,
}

impl Cluster {
    /// Three servers (only `running` of them with a service), the model owner and three
    /// clients; the access list lets Alice and Bob query `mnist`.
    pub(super) fn new(running: usize, recv_timeout: Duration) -> Self {
        let mut rng = rand::rng();
        let parties = [SERVERS.to_vec(), vec![OWNER, ALICE, BOB, EVE]].concat();
        let ids: Vec<Identity> = parties
            .iter()
            .map(|p| Identity::generate(*p, &mut rng))
            .collect();
        let mut cluster = Cluster {
            services: Vec::new(),
            nets: Vec::new(),
            sealers: HashMap::new(),
            ids,
            recv_timeout,
            limits: MpcLimits::default(),
        };
        cluster.start(running);
        cluster.sealers = cluster
            .ids
            .iter()
            .map(|i| (i.party(), cluster.sealer(i)))
            .collect();
        cluster
    }

    pub(super) fn sealer(&self, id: &Identity) -> Sealer {
        let keys: Vec<_> = self
            .ids
            .iter()
            .map(|i| (i.party(), *i.public_key()))
            .collect();
        Sealer::new(id, keys.iter().map(|(p, k)| (*p, k)))
    }

    /// Starts `running` servers afresh (the same keys, nothing remembered): a restart.
    pub(super) fn start(&mut self, running: usize) {
        self.nets = MemoryNetwork::cluster_with_timeout(&SERVERS, self.recv_timeout)
            .into_iter()
            .map(Arc::new)
            .collect();
        let access = HashMap::from([("mnist".to_string(), vec![ALICE, BOB])]);
        let limits = MpcLimits {
            input_timeout: self.recv_timeout,
            output_wait: Duration::from_millis(500),
            ..self.limits.clone()
        };
        self.services = self
            .nets
            .iter()
            .zip(&self.ids)
            .take(running)
            .map(|(net, id)| {
                MpcService::new(
                    self.sealer(id),
                    Arc::clone(net),
                    access.clone(),
                    limits.clone(),
                )
            })
            .collect();
    }

    pub(super) fn transport(&self) -> LocalTransport<MemoryNetwork> {
        LocalTransport::new(&self.services)
    }

    pub(super) fn client<'a>(
        &'a self,
        transport: &'a LocalTransport<MemoryNetwork>,
        party: PartyId,
    ) -> JobClient<'a, LocalTransport<MemoryNetwork>> {
        JobClient {
            transport,
            sealer: &self.sealers[&party],
            servers: SERVERS.to_vec(),
            timeout: Duration::from_secs(60),
        }
    }

    pub(super) fn queued(&self) -> usize {
        self.nets.iter().map(|n| n.queued()).sum()
    }
}

/// A prediction of `batch` examples on the model `mnist`.
pub(super) fn query(batch: usize) -> JobKind {
    JobKind::Predict {
        model_id: "mnist".into(),
        batch,
    }
}

pub(super) fn digits(n: usize) -> Vec<f32> {
    let test = Dataset::bundled_mnist(Split::Test);
    test.features[..n * test.sample_len()].to_vec()
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// Deploys network A (burn's initial weights) under `protocol`; Alice and Bob predict 50
/// digits each at the same time. Bound: 16 fractional bits, three layers; each logit is off by
/// a few units of 2^-16 per truncation and input rounding times the weights' fan-in norms
/// (measured below 1e-3 in `model.rs`): 0.01. Every class whose top two logits differ by more
/// than twice that must be burn's.
fn deploy_and_predict(protocol: ProtocolKind) {
    let cluster = Cluster::new(3, Duration::from_secs(30));
    let transport = cluster.transport();
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).expect("weights");
    let x = digits(100);
    let plain = logits(&spec, &weights, &x, 100).expect("burn logits");
    runtime().block_on(async {
        cluster
            .client(&transport, OWNER)
            .deploy("mnist", &spec, protocol, F, &weights)
            .await
            .expect("deploy");
        let (alice, bob) = (
            cluster.client(&transport, ALICE),
            cluster.client(&transport, BOB),
        );
        let half = x.len() / 2;
        let (a, b) = tokio::join!(
            alice.predict("mnist", 50, &x[..half]),
            bob.predict("mnist", 50, &x[half..])
        );
        let got: Vec<f64> = [a.expect("alice"), b.expect("bob")].concat();
        assert_eq!(got.len(), plain.len());
        for (i, (g, p)) in got.iter().zip(&plain).enumerate() {
            assert!(
                (g - f64::from(*p)).abs() <= 0.01,
                "{protocol} logit {i}: {g} vs {p}"
            );
        }
        for (row, (g, p)) in got.chunks(10).zip(plain.chunks(10)).enumerate() {
            let p: Vec<f64> = p.iter().map(|v| f64::from(*v)).collect();
            let mut sorted = p.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] > 0.02 {
                assert_eq!(argmax(g), argmax(&p), "{protocol} digit {row}");
            }
        }
        let eve = cluster.client(&transport, EVE);
        let err = eve.predict("mnist", 1, &x[..784]).await.unwrap_err();
        assert_refused!(err, MpcServiceError::NotAllowed { party: EVE, .. });
    });
    assert_eq!(cluster.queued(), 0, "messages left after the jobs");
}

#[test]
fn deployed_model_predicts_like_burn_under_aby3() {
    deploy_and_predict(ProtocolKind::Aby3);
}

#[test]
fn deployed_model_predicts_like_burn_under_securenn() {
    deploy_and_predict(ProtocolKind::SecureNn);
}

/// A job launched where `server2` has no service: the others time out waiting for it, and the
/// error names it.
#[test]
fn a_missing_server_fails_the_job_naming_it() {
    let cluster = Cluster::new(2, Duration::from_secs(2));
    let transport = cluster.transport();
    let spec = ModelSpec::network_a();
    runtime().block_on(async {
        let owner = JobClient {
            servers: vec![SERVERS[0], SERVERS[1]],
            ..cluster.client(&transport, OWNER)
        };
        let kind = JobKind::Deploy {
            model_id: "mnist".into(),
            spec: spec.clone(),
            protocol: ProtocolKind::Aby3,
            frac_bits: F,
        };
        let (job, _) = owner.launch(kind).await.expect("launch at the two");
        let err = owner.wait_done(job).await.unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                ClientError::JobEnded {
                    state: JobState::Failed(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(text.contains("server2"), "{text}");
    });
}
