//! Bad uploads at the leader: every kind is refused with its own error and leaves the round's
//! result unaffected; one upload in flight per owner and bounded staging memory; settings
//! changed on the way; uploads sealed under static keys only.

use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundState, ServerApi};
use tessera_common::dataset::{Dataset, Split};
use tessera_common::identity::Identity;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Context, Purpose, SealError, Sealer};
use tessera_common::upload::{UploadPart, build_upload_vec};
use tessera_data_owner::node::{DataOwnerNode, RoundError};
use tessera_secagg::{Limits, ServiceError};

use super::{
    cluster, cluster_with, open_round, revealed, ring_sum, settings, update, upload_of, wait_final,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_the_round_unaffected() {
    let c = cluster(3, 3, 2).await;
    open_round(&c, 1).await;
    let good: Vec<RingVec> = (0..2).map(|o| update(&c, o)).collect();
    let leader = c.leader();
    leader.upload(upload_of(&c, 0, 1, &good[0])).await.unwrap();

    // Unknown sender: a party not in the cluster.
    let stranger = Identity::generate(PartyId::DataOwner(99), &mut rand::rng());
    let keys = c.keys.clone();
    let forger = Sealer::new(&stranger, keys.iter().map(|(p, k)| (*p, k)));
    let forged = build_upload_vec(&forger, 77, 1, &update(&c, 9), 16, 3, &mut rand::rng()).unwrap();
    let err = leader.upload(forged).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::Seal(SealError::UnknownSender(
                PartyId::DataOwner(99)
            )))
        ),
        "{err}"
    );

    // Bad tag: a flipped bit in a share chunk.
    let mut tampered = upload_of(&c, 1, 1, &good[1]);
    let last = tampered[1].len() - 1;
    tampered[1][last] ^= 1;
    let err = leader.upload(tampered).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::Seal(SealError::AuthenticationFailed { .. }))
        ),
        "{err}"
    );

    // Bad tag on a helper's seed: only the helper can tell, and it refuses.
    let mut bad_seed = upload_of(&c, 1, 1, &good[1]);
    let n = bad_seed.len();
    let end = bad_seed[n - 1].len() - 1;
    bad_seed[n - 1][end] ^= 1;
    let err = leader.upload(bad_seed).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::HelperRejected {
                helper: PartyId::Server(2),
                ..
            })
        ),
        "{err}"
    );

    // Wrong length: an update one element short.
    let short = match &good[1] {
        RingVec::U32(v) => RingVec::U32(v[1..].to_vec()),
        _ => unreachable!(),
    };
    let err = leader
        .upload(upload_of(&c, 1, 1, &short))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::WrongLength {
                what: "manifest elements",
                ..
            })
        ),
        "{err}"
    );

    // Duplicate upload: data-owner-0 again; and the very same envelopes replayed.
    let err = leader
        .upload(upload_of(&c, 0, 1, &good[0]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::DuplicateUpload(PartyId::DataOwner(0)))
        ),
        "{err}"
    );
    let first = upload_of(&c, 1, 1, &good[1]);
    leader.upload(first.clone()).await.unwrap();
    let err = leader.upload(first).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::DuplicateUpload(PartyId::DataOwner(1)))
        ),
        "{err}"
    );

    // A chunk replayed inside one upload.
    let mut replayed = upload_of(&c, 2, 1, &update(&c, 2));
    replayed.insert(2, replayed[1].clone());
    let err = leader.upload(replayed).await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::ReplayedChunk { chunk: 1 })
        ),
        "{err}"
    );

    // Wrong round: sealed for round 2 while round 1 is open.
    let err = leader
        .upload(upload_of(&c, 2, 2, &update(&c, 2)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::RoundClosed { job: 77, round: 2 })
        ),
        "{err}"
    );

    // The round closes at its deadline with exactly the two good contributors.
    let status = wait_final(&c, 1).await;
    assert_eq!(status.state, RoundState::Aggregated);
    assert_eq!(
        status.contributors,
        vec![PartyId::DataOwner(0), PartyId::DataOwner(1)]
    );
    assert_eq!(revealed(&c, 1).await, ring_sum(&good));

    // Upload for a closed round.
    let err = leader
        .upload(upload_of(&c, 3, 1, &update(&c, 3)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Rejected(ServiceError::RoundClosed { round: 1, .. })
        ),
        "{err}"
    );
    assert_eq!(revealed(&c, 1).await, ring_sum(&good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_upload_in_flight_per_owner_and_staging_memory_is_bounded() {
    let share_bytes = settings(3, 3, 2).update_len() * 4;
    let limits = Limits {
        staging_bytes: 2 * share_bytes,
        ..Limits::default()
    };
    let c = cluster_with(3, 3, 2, limits).await;
    open_round(&c, 1).await;
    let service = &c.leader().0;
    let env0 = upload_of(&c, 0, 1, &update(&c, 0));
    // A captured manifest replayed while the owner's upload is in flight: refused at chunk 0,
    // before anything is allocated for it.
    let mut first = service.begin_upload(77).unwrap();
    service.push_upload(&mut first, &env0[0]).unwrap();
    let mut replay = service.begin_upload(77).unwrap();
    assert!(matches!(
        service.push_upload(&mut replay, &env0[0]),
        Err(ServiceError::UploadInProgress(PartyId::DataOwner(0)))
    ));
    // The staging budget holds two share vectors: a second owner fits, a third does not.
    let env1 = upload_of(&c, 1, 1, &update(&c, 1));
    let mut second = service.begin_upload(77).unwrap();
    service.push_upload(&mut second, &env1[0]).unwrap();
    let env2 = upload_of(&c, 2, 1, &update(&c, 2));
    let mut third = service.begin_upload(77).unwrap();
    assert!(matches!(
        service.push_upload(&mut third, &env2[0]),
        Err(ServiceError::Busy { .. })
    ));
    assert_eq!(service.staged_bytes(), 2 * share_bytes);
    // A dropped upload frees its staging; the first completes and commits.
    drop((second, third, replay));
    assert_eq!(service.staged_bytes(), share_bytes);
    for e in &env0[1..] {
        service.push_upload(&mut first, e).unwrap();
    }
    service.finish_upload(first).await.unwrap();
    assert_eq!(service.staged_bytes(), 0);
    // After the commit the captured manifest is refused as a duplicate at chunk 0.
    let mut again = service.begin_upload(77).unwrap();
    assert!(matches!(
        service.push_upload(&mut again, &env0[0]),
        Err(ServiceError::DuplicateUpload(PartyId::DataOwner(0)))
    ));
    // The owners refused for room upload now, and the round is the exact sum.
    c.leader().upload(env1).await.unwrap();
    c.leader().upload(env2).await.unwrap();
    assert_eq!(wait_final(&c, 1).await.state, RoundState::Aggregated);
    let all: Vec<RingVec> = (0..3).map(|o| update(&c, o)).collect();
    assert_eq!(revealed(&c, 1).await, ring_sum(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changed_on_the_way_are_refused_and_the_manifest_names_its_encoding() {
    let c = cluster(3, 3, 2).await;
    open_round(&c, 1).await;
    let honest = c
        .leader()
        .fetch_round(PartyId::DataOwner(0), 77, 0)
        .await
        .unwrap();
    // A relay on the owner's path changes the announcement, which travels in clear.
    let mut tampered = honest.clone();
    tampered.settings.learning_rate = 9.9;
    let data = Dataset::bundled_mnist(Split::Train)
        .split_iid(80)
        .swap_remove(0);
    let node = DataOwnerNode::new(
        c.sealer(PartyId::DataOwner(0)),
        c.leader().clone(),
        data,
        false,
    );
    match node.take_part(&tampered).await {
        Err(RoundError::SettingsMismatch { field }) => assert_eq!(field, "learning_rate"),
        other => panic!("{other:?}"),
    }
    assert!(c.leader().status(77).await.unwrap().contributors.is_empty());
    node.take_part(&honest).await.unwrap();
    assert_eq!(
        c.leader().status(77).await.unwrap().contributors,
        vec![PartyId::DataOwner(0)]
    );
    // An update encoded with other fractional bits than the job's is refused at its manifest.
    let misscaled = build_upload_vec(
        &c.sealer(PartyId::DataOwner(1)),
        77,
        1,
        &update(&c, 1),
        20,
        3,
        &mut rand::rng(),
    )
    .unwrap();
    let service = &c.leader().0;
    let mut session = service.begin_upload(77).unwrap();
    assert!(matches!(
        service.push_upload(&mut session, &misscaled[0]),
        Err(ServiceError::FixedPointMismatch { got: 20, job: 16 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sealed_under_static_keys_only_are_refused() {
    let c = cluster(3, 3, 2).await;
    open_round(&c, 1).await;
    let owner = c.sealer(PartyId::DataOwner(0));
    let mut upload = upload_of(&c, 0, 1, &update(&c, 0));
    // The same manifest, sealed without an ephemeral key (a key stolen later would open it).
    let manifest = UploadPart::Manifest {
        chunks: (upload.len() - 3) as u32,
        elements: c.settings.update_len() as u64,
        ring_bits: 32,
        frac_bits: 16,
    };
    let ctx = Context {
        purpose: Purpose::Upload,
        job_id: 77,
        round: 1,
        chunk: 0,
    };
    upload[0] = owner
        .seal_for(PartyId::Server(0), &ctx, &manifest.to_bytes())
        .unwrap();
    let service = &c.leader().0;
    let mut session = service.begin_upload(77).unwrap();
    assert!(matches!(
        service.push_upload(&mut session, &upload[0]),
        Err(ServiceError::NotForwardSecret)
    ));
    // The forward-secret upload of the same owner is taken.
    drop(session);
    c.leader()
        .upload(upload_of(&c, 0, 1, &update(&c, 0)))
        .await
        .unwrap();
}
