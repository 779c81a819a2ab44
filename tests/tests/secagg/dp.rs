//! Distributed differential privacy through the real services: every server adds its own
//! discrete Gaussian to its share, so the revealed aggregate minus the exact sum has the variance
//! of `num_servers` independent draws on every coordinate but the weight, which stays exact.

use tessera_common::api::{LeaderApi, RoundState};
use tessera_common::dp::DpSettings;
use tessera_common::ringvec::RingVec;
use tessera_model_owner::reveal::{AggregateError, decode_aggregate};

use super::{
    Cluster, cluster_custom, open_round, revealed, ring_sum, settings, update, upload_of,
    wait_final,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregate_carries_each_servers_noise_with_the_stated_variance() {
    let mut s = settings(3, 3, 2);
    let dp = DpSettings {
        noise_multiplier: 1.0,
        clip: 1.0,
        delta: 1e-5,
    };
    s.dp = Some(dp);
    s.validate().expect("dp settings");
    let c: Cluster = cluster_custom(s, Default::default(), Vec::new()).await;
    for (i, server) in c.servers.iter().enumerate() {
        server.0.reseed_noise(1000 + i as u64);
    }
    let n = c.settings.num_params;
    let mut noise = Vec::new();
    for round in 1..=c.settings.rounds {
        open_round(&c, round).await;
        let updates: Vec<RingVec> = (0..3).map(|o| update(&c, o + round as u32)).collect();
        for (o, u) in updates.iter().enumerate() {
            c.leader()
                .upload(upload_of(&c, o as u32, round, u))
                .await
                .unwrap();
        }
        let status = wait_final(&c, round).await;
        assert_eq!(status.state, RoundState::Aggregated);
        let (RingVec::U32(got), RingVec::U32(exact)) =
            (revealed(&c, round).await, ring_sum(&updates))
        else {
            panic!("the job's ring is 32 bits");
        };
        // The weight is not noised: the model owner divides by the exact total.
        assert_eq!(got[n + 1], exact[n + 1], "round {round}: the weight");
        noise.extend((0..=n).map(|i| f64::from(got[i].wrapping_sub(exact[i]) as i32)));
    }
    // 4 rounds of 7,851 coordinates. Each is the sum of three independent discrete Gaussians of
    // parameter s = (z S 2^16)^2 = 2^32, whose variance is s to within 10^-30 (CKS20 Prop. 19):
    // 3 s in all. The sample variance of m draws has standard deviation 3 s sqrt(2 / m) (0.8%
    // here); the sample mean sqrt(3 s / m). Both asserted within 6 of them (a spurious failure
    // has probability below 10^-8; with the fixed seeds the figures are the same every run).
    // Two servers drawing the same noise would show 5 s, one server none 2 s.
    let m = noise.len() as f64;
    assert_eq!(m as usize, 4 * (n + 1));
    let expected = 3.0 * dp.variance_units(16) as f64;
    let mean = noise.iter().sum::<f64>() / m;
    let var = noise.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (m - 1.0);
    eprintln!(
        "noise: mean {mean:.1}, variance {:.5} of the stated",
        var / expected
    );
    assert!(mean.abs() <= 6.0 * (expected / m).sqrt(), "mean {mean}");
    assert!(
        (var - expected).abs() <= 6.0 * expected * (2.0 / m).sqrt(),
        "variance {var}, stated {expected} ({:.4} of it)",
        var / expected
    );
}

/// The model owner decodes a noised aggregate whose mean delta the noise pushed past the clip
/// bound: the noise is the point, not a sign of a malicious owner.
#[tokio::test]
async fn a_noised_aggregate_decodes() {
    let mut s = settings(3, 4, 2);
    s.dp = Some(DpSettings {
        noise_multiplier: 2.0,
        clip: 1.0,
        delta: 1e-5,
    });
    let n = s.num_params;
    // Two owners at the clip bound on coordinate 0, plus 4 sigma of noise (three servers).
    let sigma = 2.0 * 3f64.sqrt();
    let mut values = vec![0.0; n + 2];
    values[0] = 2.0 + 4.0 * sigma;
    values[n] = 0.5 + 4.0 * sigma;
    values[n + 1] = 2.0;
    let sum = RingVec::encode(32, s.fixed_point(), &values).unwrap();
    let a = decode_aggregate(&s, &sum, 2).expect("within the noise");
    assert!((a.mean_delta[0] - (1.0 + 2.0 * sigma)).abs() < 1e-3);
    assert_eq!(a.mean_train_loss, 16.0, "the loss clamped to its bound");
    // Beyond 9 sigma of the noise it is refused as before.
    values[0] = 2.0 + 10.0 * sigma;
    let sum = RingVec::encode(32, s.fixed_point(), &values).unwrap();
    assert!(matches!(
        decode_aggregate(&s, &sum, 2),
        Err(AggregateError::OutOfRange { index: 0, .. })
    ));
}

/// Security review 2, finding 5: privacy budgets belong to the data owners, not to the model
/// owner that sets a job's DP. The servers refuse a job below the cluster's `[privacy]` minimum
/// at its start; a data owner refuses it too; and a data owner's own ledger, kept on disk across
/// jobs, refuses the round that would take it past its budget, uploading nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_minimum_and_each_owners_budget_hold_against_the_model_owner() {
    use tessera_common::PartyId;
    use tessera_common::dataset::{Dataset, Split};
    use tessera_common::dp::{Ledger, PrivacyPolicy, PrivacyRefusal};
    use tessera_common::seal::{Context, Purpose};
    use tessera_data_owner::node::{DataOwnerNode, RoundError};
    use tessera_secagg::{Limits, ServiceError};

    let policy = PrivacyPolicy {
        min_noise_multiplier: Some(2.0),
        max_delta: Some(1e-5),
    };
    let mut s = settings(3, 2, 2);
    s.dp = Some(DpSettings {
        noise_multiplier: 2.0,
        clip: 1.0,
        delta: 1e-5,
    });
    let limits = Limits {
        privacy: policy,
        ..Limits::default()
    };
    let c = cluster_custom(s.clone(), limits, Vec::new()).await;
    // The model owner starts a second job with less noise, and a third with none: refused.
    let mo = c.sealer(PartyId::ModelOwner);
    for (job_id, dp, expected) in [
        (
            78,
            Some(DpSettings {
                noise_multiplier: 1.0,
                ..s.dp.unwrap()
            }),
            "too little",
        ),
        (79, None, "none"),
    ] {
        let weaker = tessera_common::job::JobSettings {
            job_id,
            dp,
            ..s.clone()
        };
        let ctx = Context {
            purpose: Purpose::Control,
            job_id,
            round: 0,
            chunk: 0,
        };
        let json = serde_json::to_vec(&weaker).unwrap();
        let envelope = mo.seal_for(PartyId::Server(0), &ctx, &json).unwrap();
        match (c.leader().0.start_job(&envelope), expected) {
            (Err(ServiceError::Privacy(PrivacyRefusal::TooLittleNoise { .. })), "too little")
            | (Err(ServiceError::Privacy(PrivacyRefusal::NoNoise { .. })), "none") => {}
            (other, _) => panic!("{expected}: {other:?}"),
        }
    }
    // Owner 0 has a budget of 3.5 at delta 1e-5: two rounds at z = 2 cost 3.19, three 4.01.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("owner-0.dp-ledger.json");
    let data = Dataset::bundled_mnist(Split::Train)
        .split_iid(80)
        .swap_remove(0);
    let node = |data: Dataset| {
        DataOwnerNode::new(
            c.sealer(PartyId::DataOwner(0)),
            c.leader().clone(),
            data,
            false,
        )
        .with_privacy(policy)
        .with_ledger(Ledger::open(&path, 3.5, 1e-5).unwrap())
    };
    for round in 1..=3u64 {
        open_round(&c, round).await;
        // A node per round: the ledger is read from disk each time, as after a restart.
        let owner = node(data.clone());
        let ann = c
            .leader()
            .fetch_round(PartyId::DataOwner(0), 77, round - 1)
            .await
            .unwrap();
        let taken = owner.take_part(&ann).await;
        c.leader()
            .upload(upload_of(&c, 1, round, &update(&c, 1)))
            .await
            .unwrap();
        let status = wait_final(&c, round).await;
        if round <= 2 {
            taken.expect("within the budget");
            assert_eq!(status.state, RoundState::Aggregated, "round {round}");
        } else {
            assert!(
                matches!(
                    taken,
                    Err(RoundError::Privacy(PrivacyRefusal::OverBudget { .. }))
                ),
                "{taken:?}"
            );
            assert!(!status.contributors.contains(&PartyId::DataOwner(0)));
        }
    }
    let ledger = Ledger::open(&path, 3.5, 1e-5).unwrap();
    assert_eq!(ledger.charges().len(), 2);
    assert!((ledger.spent() - 3.1904).abs() < 1e-3, "{}", ledger.spent());
    // A data owner holding the cluster's minimum refuses a weaker job itself, even if a server
    // let it through.
    let weak = tessera_common::job::JobSettings {
        dp: Some(DpSettings {
            noise_multiplier: 1.0,
            ..s.dp.unwrap()
        }),
        ..s.clone()
    };
    let mut ann = c
        .leader()
        .fetch_round(PartyId::DataOwner(0), 77, 0)
        .await
        .unwrap();
    ann.settings = weak;
    assert!(matches!(
        node(data).take_part(&ann).await,
        Err(RoundError::Privacy(PrivacyRefusal::TooLittleNoise { .. }))
    ));
}
