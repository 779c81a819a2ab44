//! The failures between leader and helpers, staged with [`Tap`]: a helper that answers late does
//! not serialise the uploads, and a decision lost on the way (the leader failed between a
//! forward and its decision) fails that round cleanly, with the next round exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::future::join_all;
use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundState, ServerApi};
use tessera_secagg::Limits;
use tessera_secagg::messages::{PeerMsg, RoundMsg};

use super::tap::{Hook, Verdict};
use super::{
    cluster_tapped, exact_round, open_round, revealed, ring_sum, update, upload_of, wait_final,
};

#[tokio::test]
async fn uploads_overlap_while_a_helper_answers_only_after_seeing_them_all() {
    // server1 holds its answers back until it has staged all four forwards: a leader that
    // waited for one upload's answers before forwarding the next would never get them.
    let answers = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&answers);
    let slow_helper = Hook::new(move |_, tag, _| {
        if !tag.0.ends_with("/reply") {
            return Verdict::Pass;
        }
        if seen.fetch_add(1, Ordering::SeqCst) + 1 < 4 {
            Verdict::Hold
        } else {
            Verdict::Release
        }
    });
    let c = cluster_tapped(3, 4, 2, Limits::default(), vec![Hook::pass(), slow_helper]).await;
    open_round(&c, 1).await;
    let updates: Vec<_> = (0..4).map(|o| update(&c, o)).collect();
    let uploads = (0..4u32).map(|o| {
        let envelopes = upload_of(&c, o, 1, &updates[o as usize]);
        let leader = c.leader().clone();
        async move { leader.upload(envelopes).await }
    });
    for receipt in join_all(uploads).await {
        receipt.expect("every upload commits");
    }
    assert_eq!(wait_final(&c, 1).await.state, RoundState::Aggregated);
    assert_eq!(revealed(&c, 1).await, ring_sum(&updates));
}

#[tokio::test]
async fn a_lost_decision_fails_its_round_cleanly_and_the_next_round_is_exact() {
    // The leader's first decision to server1 never arrives, as if the leader had failed right
    // after the forward. server1 keeps the staged seed without a decision; it must neither add it
    // nor wedge on it.
    let dropped = Arc::new(AtomicBool::new(false));
    let once = Arc::clone(&dropped);
    let lossy_leader = Hook::new(move |to, tag, bytes| {
        let decide = tag.0.ends_with("/leader")
            && matches!(
                RoundMsg::from_bytes(bytes),
                Ok(RoundMsg {
                    msg: PeerMsg::Decide { .. },
                    ..
                })
            );
        if decide && to == PartyId::Server(1) && !once.swap(true, Ordering::SeqCst) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    });
    let c = cluster_tapped(3, 2, 2, Limits::default(), vec![lossy_leader]).await;
    open_round(&c, 1).await;
    for o in 0..2 {
        let u = update(&c, o);
        c.leader().upload(upload_of(&c, o, 1, &u)).await.unwrap();
    }
    // Full at two: the close finds server1's contributor set short of the leader's.
    let status = wait_final(&c, 1).await;
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(status.state, RoundState::Failed);
    assert!(
        status.message.contains("server1") && status.message.contains("contributor sets differ"),
        "{}",
        status.message
    );
    let helper = c.servers[1].status(77).await.unwrap();
    assert_eq!((helper.round, helper.state), (1, RoundState::Failed));
    assert_eq!(helper.contributors, vec![PartyId::DataOwner(1)]);
    // No result share of round 1 leaves the leader: there is none ("not ready" is how the
    // in-process transport reports a missing result).
    assert!(matches!(
        c.leader().fetch_result(77, 1).await,
        Err(ApiError::NotReady(_))
    ));

    exact_round(&c, 2, 2).await;
}
