//! What the MPC job service refuses, by variant: bad inputs, launches past their bound or out of
//! their clock window, job ids, aborts and fetches turned against the model owner, a training
//! that reveals too much or has too little privacy for the cluster's policy, and a client past its
//! query budget.

use std::collections::HashMap;
use std::time::Duration;

use tessera_aggregator::jobs::MpcLimits;
use tessera_common::PartyId;
use tessera_common::model_spec::{LayerSpec, ModelSpec, SpecError};
use tessera_common::protocol::ProtocolKind;
use tessera_common::request::now_secs;
use tessera_jobs::envelope::{open_output, seal_abort, seal_input, seal_launch};
use tessera_jobs::error::BadJob;
use tessera_jobs::job::MAX_PREDICT_BATCH;
use tessera_jobs::wire::{fetch_round, job_ids_of};
use tessera_jobs::{ClientError, JobKind, JobSpec, JobState, MpcServiceError};
use tessera_ml::initial_params;

use super::service::{ALICE, BOB, Cluster, F, OWNER, SERVERS, assert_refused, digits, query};
use crate::runtime;

/// Bad inputs get their own errors and leave the job able to finish.
#[test]
fn bad_inputs_are_rejected_by_variant() {
    let cluster = Cluster::new(3, Duration::from_secs(30));
    let transport = cluster.transport();
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).expect("weights");
    runtime().block_on(async {
        let owner = cluster.client(&transport, OWNER);
        owner
            .deploy("mnist", &spec, ProtocolKind::Aby3, F, &weights)
            .await
            .expect("deploy");
        let alice = cluster.client(&transport, ALICE);
        // An unknown model.
        let err = alice
            .launch(JobKind::Predict {
                model_id: "nope".into(),
                batch: 1,
            })
            .await
            .unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::NotAllowed { .. } | MpcServiceError::UnknownModel(_)
        );
        // A data owner may not deploy.
        let err = alice
            .deploy("mnist", &spec, ProtocolKind::Aby3, F, &weights)
            .await
            .unwrap_err();
        assert_refused!(err, MpcServiceError::Forbidden { party: ALICE, .. });
        // Descriptions a server cannot resolve, each by its reason: a batch out of range, a
        // deployment with no fractional bits or more than the 64-bit ring allows, and a model
        // that does not resolve (a dense layer of no units).
        for batch in [0, MAX_PREDICT_BATCH + 1] {
            let err = alice
                .launch(JobKind::Predict {
                    model_id: "mnist".into(),
                    batch,
                })
                .await
                .unwrap_err();
            assert_refused!(
                err,
                MpcServiceError::BadJob(BadJob::Batch { batch: b, max: MAX_PREDICT_BATCH })
                    if b == batch
            );
        }
        for frac_bits in [0, 31] {
            let err = owner
                .deploy("other", &spec, ProtocolKind::Aby3, frac_bits, &weights)
                .await
                .unwrap_err();
            assert_refused!(
                err,
                MpcServiceError::BadJob(BadJob::FracBits { frac_bits: f, max: 30, ring_bits: 64 })
                    if f == frac_bits
            );
        }
        let mut hollow = spec.clone();
        hollow.layers[1] = LayerSpec::Dense { units: 0 };
        let err = owner
            .deploy("other", &hollow, ProtocolKind::Aby3, F, &weights)
            .await
            .unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::BadJob(BadJob::Model(SpecError::Layer {
                layer: 1,
                kind: "dense",
                ..
            }))
        );
        let (job, status) = alice.launch(query(1)).await.expect("launch");
        // The same launch again: a duplicate id.
        let again = JobSpec {
            issued_at: now_secs(),
            nonce: 0,
            kind: query(1),
        };
        let envelope = seal_launch(&cluster.sealers[&ALICE], SERVERS[0], job, &again).unwrap();
        assert!(matches!(
            cluster.services[0].launch(&envelope),
            Err(MpcServiceError::DuplicateJob(j)) if j == job
        ));
        // A wrong shape: 783 values.
        let err = alice.submit(&status, 0, &vec![0.5; 783]).await.unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Local(MpcServiceError::WrongLength {
                    unit: "values",
                    got: 783,
                    expected: 784,
                    ..
                })
            ),
            "{err:?}"
        );
        // A payload of the wrong size sealed by hand reaches the server and is refused there.
        let short = seal_input(&cluster.sealers[&ALICE], SERVERS[0], job, 0, &[0u8; 24]).unwrap();
        assert!(matches!(
            cluster.services[0].submit_chunk(&short[0]),
            Err(MpcServiceError::WrongLength {
                unit: "bytes",
                got: 24,
                ..
            })
        ));
        // Bob is not a party of Alice's job.
        let bobs = seal_input(&cluster.sealers[&BOB], SERVERS[0], job, 0, &[0u8; 16]).unwrap();
        assert!(matches!(
            cluster.services[0].submit_chunk(&bobs[0]),
            Err(MpcServiceError::UnexpectedInput { party: BOB, .. })
        ));
        // A whole input at server1, then a replay of its chunk.
        let pieces = seal_input(
            &cluster.sealers[&ALICE],
            SERVERS[1],
            job,
            0,
            &vec![0u8; 784 * 16],
        )
        .unwrap();
        assert!(cluster.services[1].submit_chunk(&pieces[0]).unwrap());
        assert!(matches!(
            cluster.services[1].submit_chunk(&pieces[0]),
            Err(MpcServiceError::Seal(_) | MpcServiceError::DuplicateInput { .. })
        ));
        // The same input for server2 sealed under Alice's static key alone (a version-1
        // envelope, not forward secret) is refused (security review 2, finding 15), before it
        // is recorded: her forward-secret chunk with the same header then opens.
        let whole = vec![0u8; 784 * 16];
        let context = tessera_common::seal::Context {
            purpose: tessera_common::seal::Purpose::Input,
            job_id: job,
            round: 0,
            chunk: 0,
        };
        let plaintext = &tessera_jobs::wire::chunk_all(&whole)[0];
        let static_only = cluster.sealers[&ALICE]
            .seal_for(SERVERS[2], &context, plaintext)
            .unwrap();
        assert!(matches!(
            cluster.services[2].submit_chunk(&static_only),
            Err(MpcServiceError::NotForwardSecret { party: ALICE, .. })
        ));
        let forward = seal_input(&cluster.sealers[&ALICE], SERVERS[2], job, 0, &whole).unwrap();
        assert!(cluster.services[2].submit_chunk(&forward[0]).unwrap());
        // Alice's job now waits for her other shares; another client's job runs meanwhile.
        let other = cluster
            .client(&transport, BOB)
            .predict("mnist", 1, &digits(1))
            .await
            .expect("another client's job runs");
        assert_eq!(other.len(), 10);
        // Only the model owner aborts.
        let err = alice.abort(job).await.unwrap_err();
        assert_refused!(err, MpcServiceError::Forbidden { party: ALICE, .. });
        cluster
            .client(&transport, OWNER)
            .abort(job)
            .await
            .expect("abort");
        for s in &cluster.services {
            let token = tessera_common::request::seal_request(
                &cluster.sealers[&ALICE],
                s.me(),
                tessera_common::request::RequestKind::Status,
                job,
                0,
                now_secs(),
            )
            .unwrap();
            assert_eq!(s.status(job, &token).unwrap().state, JobState::Aborted);
        }
    });
    assert_eq!(cluster.queued(), 0);
}

/// A flood of launches from one client stops at the bound on its running jobs, while another
/// client still gets in; a recorded launch replayed after the clock window is refused as stale.
#[test]
fn launches_are_bounded_and_stale_ones_refused() {
    let cluster = Cluster::new(3, Duration::from_secs(30));
    let transport = cluster.transport();
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).expect("weights");
    runtime().block_on(async {
        cluster
            .client(&transport, OWNER)
            .deploy("mnist", &spec, ProtocolKind::Aby3, F, &weights)
            .await
            .expect("deploy");
        let alice = cluster.client(&transport, ALICE);
        let limit = MpcLimits::default().max_running_per_launcher;
        for _ in 0..limit {
            alice.launch(query(1)).await.expect("within the bound");
        }
        let err = alice.launch(query(1)).await.unwrap_err();
        assert_refused!(err, MpcServiceError::Busy { .. });
        cluster
            .client(&transport, BOB)
            .launch(query(1))
            .await
            .expect("another client still gets a place");
        let old = JobSpec {
            nonce: 0,
            issued_at: now_secs() - 3600,
            kind: query(1),
        };
        let bobs_id = job_ids_of(BOB).unwrap().start + 7;
        let envelope = seal_launch(&cluster.sealers[&BOB], SERVERS[0], bobs_id, &old).unwrap();
        assert!(matches!(
            cluster.services[0].launch(&envelope),
            Err(MpcServiceError::Stale { .. })
        ));
    });
}

/// Security review 2, finding 7: what the job service hands out cannot be turned against the
/// model owner. A client cannot take a job id the model owner will use (each launcher has a
/// range of its own); a recorded abort stops only the launch it names, not a later job under the
/// same id once a restart forgot the first (it used to abort the new job at every server); a
/// replayed fetch token gets the same value again instead of taking the next one (it used to
/// drain a training's queued losses); and an output does not open as a federated result (a
/// purpose of its own).
#[test]
fn job_ids_aborts_and_fetches_cannot_be_turned_against_the_model_owner() {
    let mut cluster = Cluster::new(3, Duration::from_secs(30));
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).expect("weights");
    let deploy = JobKind::Deploy {
        model_id: "mnist".into(),
        spec: spec.clone(),
        protocol: ProtocolKind::Aby3,
        frac_bits: F,
    };
    let recorded: Vec<Vec<u8>> = runtime().block_on(async {
        let transport = cluster.transport();
        let (owner, alice) = (
            cluster.client(&transport, OWNER),
            cluster.client(&transport, ALICE),
        );
        // Alice tries the id the model owner is about to use, and fails.
        let err = alice.launch_as(4444, query(1)).await.unwrap_err();
        assert_refused!(err, MpcServiceError::Forbidden { party: ALICE, .. });
        // The model owner launches it (the job waits for its weights) and aborts it; the
        // abort envelopes are recorded on the way.
        owner.launch_as(4444, deploy.clone()).await.expect("launch");
        let mut recorded = Vec::new();
        for (server, service) in SERVERS.iter().zip(&cluster.services) {
            let status = owner.status(*server, 4444).await.unwrap();
            let abort = seal_abort(
                &cluster.sealers[&OWNER],
                *server,
                4444,
                &status.launch_digest,
            )
            .unwrap();
            let after = service.abort(&abort).expect("abort");
            assert_eq!(after.state, JobState::Aborted);
            recorded.push(abort);
        }
        recorded
    });
    // The servers restart and forget the job; the model owner launches 4444 again.
    cluster.start(3);
    runtime().block_on(async {
        let transport = cluster.transport();
        let owner = cluster.client(&transport, OWNER);
        owner.launch_as(4444, deploy).await.expect("relaunch");
        for ((server, service), abort) in SERVERS.iter().zip(&cluster.services).zip(&recorded) {
            assert!(matches!(
                service.abort(abort),
                Err(MpcServiceError::AbortMismatch { job: 4444 })
            ));
            let status = owner.status(*server, 4444).await.unwrap();
            assert_eq!(status.state, JobState::Running, "{server}");
        }
        // The model owner's own abort still works.
        owner.abort(4444).await.expect("abort");
        for server in SERVERS {
            let status = owner.status(server, 4444).await.unwrap();
            assert_eq!(status.state, JobState::Aborted, "{server}");
        }
        // Fetches: Alice predicts one digit by hand, then her fetch token is replayed.
        owner
            .deploy("mnist", &spec, ProtocolKind::Aby3, F, &weights)
            .await
            .expect("deploy");
        let alice = cluster.client(&transport, ALICE);
        let (job, status) = alice.launch(query(1)).await.expect("launch");
        assert!(job_ids_of(ALICE).unwrap().contains(&job));
        // The model owner's random ids (`train-encrypted` without --job-id) are its own too.
        for _ in 0..1000 {
            let id = tessera_jobs::client::random_job_id(OWNER).unwrap();
            assert!(job_ids_of(OWNER).unwrap().contains(&id));
        }
        let digit: Vec<f64> = digits(1).iter().map(|x| f64::from(*x)).collect();
        alice.submit(&status, 0, &digit).await.expect("submit");
        let round = fetch_round(0, 0);
        for (server, service) in SERVERS.iter().zip(&cluster.services) {
            let token = tessera_common::request::seal_request(
                &cluster.sealers[&ALICE],
                *server,
                tessera_common::request::RequestKind::FetchOutput,
                job,
                round,
                now_secs(),
            )
            .unwrap();
            let mut opened = Vec::new();
            for _ in 0..3 {
                // Each fetch waits up to 0.5 s for the output: 60 of them bound the wait.
                let mut tries = 0..60;
                let envelopes = loop {
                    match service.fetch_output(job, round, &token).await {
                        Err(MpcServiceError::NotReady { .. }) if tries.next().is_some() => {}
                        other => break other.expect("fetch"),
                    }
                };
                // Sealed as an MPC output: it does not open as a federated result.
                let as_result = tessera_common::seal::Expected {
                    purpose: tessera_common::seal::Purpose::Result,
                    job_id: job,
                    round,
                    sender: Some(*server),
                };
                assert!(matches!(
                    cluster.sealers[&ALICE].open(&envelopes[0], &as_result),
                    Err(tessera_common::seal::SealError::WrongPurpose { .. })
                ));
                opened.push(
                    open_output(&cluster.sealers[&ALICE], *server, job, round, &envelopes).unwrap(),
                );
            }
            // The same token three times: the same value, still there for its owner.
            assert!(opened.iter().all(|o| *o == opened[0]), "{server}");
        }
        // Alice's client reads the logits as ever.
        assert_eq!(alice.output(&status, 0).await.expect("logits").len(), 10);
    });
}

/// Security review 2, finding 3: the model owner alone set the batch size, the loss reveals,
/// the weights and the learning rate, and with batches of one and a loss per batch the revealed
/// losses named every label. The servers now refuse a training beyond the cluster's `[training]`
/// policy at its launch, and a data owner reads the settings from the description each server
/// seals for it and refuses a training beyond its own limits before sharing anything.
#[test]
fn a_training_that_reveals_too_much_is_refused_by_the_servers_and_by_the_owner() {
    use tessera_common::train_job::Optimizer;
    use tessera_common::train_job::TrainJob;
    use tessera_common::train_policy::{TrainingPolicy, TrainingRefusal};
    use tessera_data_owner::share::{ShareError, sealed_training};

    let mut cluster = Cluster::new(3, Duration::from_secs(30));
    cluster.limits.training = TrainingPolicy {
        min_batch: 8,
        ..TrainingPolicy::default()
    };
    cluster.start(3);
    let train = |batch_size: usize| JobKind::Train {
        protocol: ProtocolKind::Aby3,
        job: TrainJob {
            spec: ModelSpec::logistic_regression(),
            optimizer: Optimizer::sgd(1e-12),
            epochs: 1,
            batch_size,
            frac_bits: tessera_mpc::train::precision::FRAC_BITS,
            owners: vec![ALICE],
            max_rows: 2000,
            seed: 1,
            lr_decay: 1.0,
            loss_every: 1,
            servers_init: false,
            dp: None,
        },
    };
    runtime().block_on(async {
        let transport = cluster.transport();
        let owner = cluster.client(&transport, OWNER);
        // The label-recovery setting: batches of one, a loss each.
        let err = owner.launch(train(1)).await.unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::Training(TrainingRefusal::BatchTooSmall { batch: 1, min: 8 })
        );
        // Batches of 8 pass the cluster's policy; Alice asks for 16 at least.
        let (job, _) = owner
            .launch(train(8))
            .await
            .expect("within the cluster's policy");
        let alice = cluster.client(&transport, ALICE);
        let mut statuses = Vec::new();
        for server in SERVERS {
            statuses.push((server, alice.status(server, job).await.unwrap()));
        }
        let sealed = sealed_training(&cluster.sealers[&ALICE], job, &statuses).unwrap();
        let terms = sealed.terms();
        // 2000 rows in batches of 8, a loss each: 250 losses revealed at the most.
        assert_eq!((terms.batch_size, terms.loss_reveals), (8, 250));
        let limits = TrainingPolicy {
            min_batch: 16,
            ..TrainingPolicy::default()
        };
        assert_eq!(
            limits.check(&terms),
            Err(TrainingRefusal::BatchTooSmall { batch: 8, min: 16 })
        );
        // What the path does to a server's answer is caught: a changed sealed description
        // does not open, and the unsealed fields are not what the owner reads.
        let mut tampered = statuses.clone();
        let last = tampered[1].1.sealed_description.len() - 1;
        tampered[1].1.sealed_description[last] ^= 1;
        assert!(matches!(
            sealed_training(&cluster.sealers[&ALICE], job, &tampered),
            Err(ShareError::Description {
                server: PartyId::Server(1),
                ..
            })
        ));
        // Bob's status request is refused (not a party of the job): no description for him.
        let err = cluster
            .client(&transport, BOB)
            .status(SERVERS[0], job)
            .await
            .unwrap_err();
        assert_refused!(err, MpcServiceError::Forbidden { party: BOB, .. });
    });
}

/// Security review 2, finding 9: queries were unlimited. A model's `max_queries` in the cluster
/// file bounds the predictions each listed client may run on it, counted at every server.
#[test]
fn a_client_runs_at_most_its_query_budget() {
    let mut cluster = Cluster::new(3, Duration::from_secs(30));
    cluster.limits.query_budgets = HashMap::from([("mnist".to_string(), 2)]);
    cluster.start(3);
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).expect("weights");
    runtime().block_on(async {
        let transport = cluster.transport();
        cluster
            .client(&transport, OWNER)
            .deploy("mnist", &spec, ProtocolKind::Aby3, F, &weights)
            .await
            .expect("deploy");
        let alice = cluster.client(&transport, ALICE);
        for _ in 0..2 {
            alice
                .predict("mnist", 1, &digits(1))
                .await
                .expect("within the budget");
        }
        let err = alice.predict("mnist", 1, &digits(1)).await.unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::QueryBudget {
                party: ALICE,
                budget: 2,
                ..
            }
        );
        // Another client's budget is its own.
        cluster
            .client(&transport, BOB)
            .predict("mnist", 1, &digits(1))
            .await
            .expect("Bob's first query");
    });
}

/// Security review 2, finding 4: where the cluster's `[training]` requires DP-SGD with at most
/// epsilon 3 (at delta 1e-5), the servers refuse a training without it, one with too little
/// noise, and one that states its epsilon at a larger delta; a data owner asking for epsilon 1
/// at most refuses a job the cluster let through. The bound is computed from what the
/// description fixes (noise, clip, epochs, delta), not from anything the model owner states.
#[test]
fn a_training_without_enough_privacy_is_refused_where_it_is_required() {
    use tessera_common::dp::DpSettings;
    use tessera_common::train_job::Optimizer;
    use tessera_common::train_job::TrainJob;
    use tessera_common::train_policy::{TrainingPolicy, TrainingRefusal};
    use tessera_data_owner::share::sealed_training;

    let mut cluster = Cluster::new(3, Duration::from_secs(30));
    cluster.limits.training = TrainingPolicy {
        max_epsilon: Some(3.0),
        ..TrainingPolicy::default()
    };
    cluster.start(3);
    let train = |dp: Option<(f64, f64)>| JobKind::Train {
        protocol: ProtocolKind::Aby3,
        job: TrainJob {
            spec: ModelSpec::logistic_regression(),
            optimizer: Optimizer::sgd(0.1),
            epochs: 2,
            batch_size: 64,
            frac_bits: tessera_mpc::train::precision::FRAC_BITS,
            owners: vec![ALICE],
            max_rows: 2000,
            seed: 1,
            lr_decay: 1.0,
            loss_every: 0,
            servers_init: false,
            dp: dp.map(|(noise_multiplier, delta)| DpSettings {
                noise_multiplier,
                clip: 1.0,
                delta,
            }),
        },
    };
    runtime().block_on(async {
        let transport = cluster.transport();
        let owner = cluster.client(&transport, OWNER);
        let err = owner.launch(train(None)).await.unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::Training(TrainingRefusal::NotPrivate { .. })
        );
        let err = owner.launch(train(Some((0.5, 1e-5)))).await.unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::Training(TrainingRefusal::TooLittlePrivacy { .. })
        );
        let err = owner.launch(train(Some((0.5, 0.5)))).await.unwrap_err();
        assert_refused!(
            err,
            MpcServiceError::Training(TrainingRefusal::TooLittlePrivacy { .. })
        );
        let (job, _) = owner
            .launch(train(Some((4.0, 1e-5))))
            .await
            .expect("private enough for the cluster");
        let alice = cluster.client(&transport, ALICE);
        let mut statuses = Vec::new();
        for server in SERVERS {
            statuses.push((server, alice.status(server, job).await.unwrap()));
        }
        let terms = sealed_training(&cluster.sealers[&ALICE], job, &statuses)
            .unwrap()
            .terms();
        let (epsilon, delta) = terms.privacy.expect("DP-SGD");
        assert!(epsilon < 3.0 && epsilon > 1.0 && delta == 1e-5, "{terms}");
        let alices = TrainingPolicy {
            max_epsilon: Some(1.0),
            ..TrainingPolicy::default()
        };
        assert!(matches!(
            alices.check(&terms),
            Err(TrainingRefusal::TooLittlePrivacy { .. })
        ));
    });
}
