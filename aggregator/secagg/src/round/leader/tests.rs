//! Tests of [`super`].

use super::*;
use tessera_common::model_spec::ModelSpec;
use tessera_common::refusal::{HelperRefusal, Incomplete, Malformed, RoundOrder};
use tessera_common::seal::SealError;

pub(crate) fn settings(max_clients: usize, min_clients: usize) -> JobSettings {
    let model = ModelSpec::logistic_regression();
    JobSettings {
        rounds: 2,
        max_weight: 100.0,
        max_clients,
        min_clients,
        round_deadline_ms: 1_000,
        batch_size: 8,
        ..JobSettings::new(9, model).unwrap()
    }
}

fn kinds(out: &[(PartyId, RoundMsg)]) -> Vec<String> {
    out.iter()
        .map(|(to, m)| match &m.msg {
            PeerMsg::Forward { owner, .. } => format!("{to} F{} {owner}", m.seq),
            PeerMsg::Decide { forward, commit } => {
                format!("{to} D{} of {forward} {commit}", m.seq)
            }
            PeerMsg::Close {
                contributors,
                abort,
            } => format!("{to} C{} {} {abort}", m.seq, contributors.len()),
        })
        .collect()
}

fn staged(s: &JobSettings, v: u32) -> RingVec {
    RingVec::U32(vec![v; s.update_len()])
}

#[test]
fn uploads_overlap_and_the_close_waits_for_their_decisions() {
    let s = settings(10, 1);
    let mut m = LeaderRounds::new(&s);
    m.open(1).unwrap();
    let (a, b) = (PartyId::DataOwner(1), PartyId::DataOwner(2));
    let env = vec![vec![0u8; 4], vec![1u8; 4]];
    // Two uploads forwarded before either has its answer: nothing serialises them.
    let fa = m.forward(1, a, &env).unwrap();
    let fb = m.forward(1, b, &env).unwrap();
    assert_eq!(m.in_flight(), 2);
    // Asked to close with both in flight: closed to new uploads, the close not yet sent.
    assert_eq!(m.close(1), CloseStep::Waiting(2));
    assert!(matches!(
        m.forward(1, PartyId::DataOwner(3), &env),
        Err(ServiceError::RoundClosed { .. })
    ));
    // b's helpers answered first; a's refused.
    m.decide(fb, Ok(()), &staged(&s, 3), &[]).unwrap();
    assert!(!m.is_full());
    assert!(m.close_sent().is_none());
    let refused = ServiceError::HelperRejected {
        helper: PartyId::Server(2),
        reason: forged_seed(),
    };
    assert!(matches!(
        m.decide(fa, Err(refused), &staged(&s, 5), &[]),
        Err(ServiceError::HelperRejected { .. })
    ));
    // The last decision sent the close, after every decision, counting only b.
    assert_eq!(m.close_sent(), Some((4, false)));
    assert_eq!(m.contributors(), &[b]);
    assert_eq!(
        kinds(&m.take_outbox()),
        [
            "server1 F0 data-owner-1",
            "server2 F0 data-owner-1",
            "server1 F1 data-owner-2",
            "server2 F1 data-owner-2",
            "server1 D2 of 1 true",
            "server2 D2 of 1 true",
            "server1 D3 of 0 false",
            "server2 D3 of 0 false",
            "server1 C4 1 false",
            "server2 C4 1 false",
        ]
    );
    let sum = m.finish_close(None).unwrap();
    assert_eq!(sum, staged(&s, 3));
    m.sealed(Ok(()));
    assert_eq!(m.state(), RoundState::Aggregated);
}

#[test]
fn every_refusal_is_typed_and_a_full_round_counts_uploads_in_flight() {
    let s = settings(2, 1);
    let mut m = LeaderRounds::new(&s);
    let a = PartyId::DataOwner(1);
    let env = vec![vec![0u8; 4], vec![1u8; 4]];
    assert!(matches!(
        m.forward(1, a, &env),
        Err(ServiceError::RoundClosed { .. })
    ));
    assert_eq!(
        m.open(0),
        Err(ServiceError::BadRoundOrder {
            requested: 0,
            reason: RoundOrder::NotNext {
                current: 0,
                over: true
            }
        })
    );
    m.open(1).unwrap();
    assert_eq!(
        m.forward(1, a, &env[..1]),
        Err(Incomplete::SeedEnvelopes { got: 1, helpers: 2 }.into())
    );
    let fa = m.forward(1, a, &env).unwrap();
    assert!(matches!(
        m.forward(1, a, &env),
        Err(ServiceError::UploadInProgress(p)) if p == a
    ));
    m.forward(1, PartyId::DataOwner(2), &env).unwrap();
    assert!(matches!(
        m.forward(1, PartyId::DataOwner(3), &env),
        Err(ServiceError::RoundFull(2))
    ));
    m.decide(fa, Ok(()), &staged(&s, 1), &[]).unwrap();
    assert!(!m.is_full());
    assert_eq!(
        m.decide(fa, Ok(()), &staged(&s, 1), &[]),
        Err(Incomplete::NotInFlight(fa).into())
    );
    assert!(matches!(
        m.check_accepts(1, a),
        Err(ServiceError::DuplicateUpload(p)) if p == a
    ));
    assert!(matches!(
        m.open(2),
        Err(ServiceError::BadRoundOrder { requested: 2, .. })
    ));
}

/// A helper that restarted mid-round fails the round at once: an upload in flight then finds
/// the round closed, the failure names the helper, and a later report changes nothing.
#[test]
fn a_helper_restarted_mid_round_fails_it_at_once() {
    let s = settings(3, 1);
    let mut m = LeaderRounds::new(&s);
    let env = vec![vec![0u8; 4], vec![1u8; 4]];
    m.open(1).unwrap();
    let seq = m.forward(1, PartyId::DataOwner(0), &env).unwrap();
    m.helper_restarted(PartyId::Server(2));
    assert_eq!(m.state(), RoundState::Failed);
    let failed = RoundFailure::HelperRestarted {
        round: 1,
        helper: PartyId::Server(2),
    };
    assert_eq!(m.failure(), Some(&failed));
    assert_eq!(
        m.decide(seq, Ok(()), &staged(&s, 1), &[]),
        Err(ServiceError::RoundClosed { job: 9, round: 1 })
    );
    m.helper_restarted(PartyId::Server(1));
    assert_eq!(m.failure(), Some(&failed));
    assert!(matches!(
        m.forward(1, PartyId::DataOwner(1), &env),
        Err(ServiceError::RoundClosed { .. })
    ));
    m.open(2).unwrap();
}

/// A restarted leader holds a fresh machine: it takes the job up at the model owner's round,
/// and from there rounds follow one another again.
#[test]
fn a_fresh_machine_takes_up_the_job_at_any_round_then_rounds_follow() {
    let mut s = settings(2, 1);
    s.rounds = 5;
    let mut m = LeaderRounds::new(&s);
    assert_eq!(
        m.open(6),
        Err(ServiceError::BadRoundOrder {
            requested: 6,
            reason: RoundOrder::Beyond { rounds: 5 }
        })
    );
    m.open(3).unwrap();
    assert_eq!(m.round(), 3);
    m.fail(RoundFailure::Sealing(ServiceError::Malformed(
        Malformed::NonFiniteWeight,
    )));
    assert_eq!(
        m.open(5),
        Err(ServiceError::BadRoundOrder {
            requested: 5,
            reason: RoundOrder::NotNext {
                current: 3,
                over: true
            }
        })
    );
    m.open(4).unwrap();
}

#[test]
fn owners_refused_by_the_rule_fill_the_round_and_may_not_retry() {
    let s = settings(3, 2);
    let mut m = LeaderRounds::new(&s);
    m.open(1).unwrap();
    let env = vec![vec![0u8; 4], vec![1u8; 4]];
    let refused = || ServiceError::RuleRejected {
        rule: "norm-bound:1".into(),
    };
    let bad = PartyId::DataOwner(9);
    let f = m.forward(1, bad, &env).unwrap();
    assert!(matches!(
        m.decide(f, Err(refused()), &staged(&s, 1), &[]),
        Err(ServiceError::RuleRejected { .. })
    ));
    assert!(!m.is_full());
    assert!(matches!(
        m.forward(1, bad, &env),
        Err(ServiceError::AlreadyRefused(p)) if p == bad
    ));
    // A helper's refusal (a forged seed) does not count: that owner may try again.
    let other = PartyId::DataOwner(8);
    let f = m.forward(1, other, &env).unwrap();
    let forged = ServiceError::HelperRejected {
        helper: PartyId::Server(1),
        reason: forged_seed(),
    };
    assert!(matches!(
        m.decide(f, Err(forged), &staged(&s, 1), &[]),
        Err(ServiceError::HelperRejected {
            helper: PartyId::Server(1),
            ..
        })
    ));
    let f = m.forward(1, other, &env).unwrap();
    m.decide(f, Ok(()), &staged(&s, 1), &[]).unwrap();
    assert!(!m.is_full());
    // Two committed and one refused of max_clients 3: full.
    let f = m.forward(1, PartyId::DataOwner(7), &env).unwrap();
    m.decide(f, Ok(()), &staged(&s, 1), &[]).unwrap();
    assert!(m.is_full());
    assert_eq!(m.contributors().len(), 2);
}

#[test]
fn an_owner_that_declined_takes_a_place_and_may_not_upload() {
    let s = settings(3, 2);
    let mut m = LeaderRounds::new(&s);
    let env = vec![vec![0u8; 4], vec![1u8; 4]];
    let out = PartyId::DataOwner(0);
    // Declined before the first round: a job-wide place, in every round.
    m.decline(out, "data samples have shape [8]".into());
    for round in 1..=2 {
        m.open(round).unwrap();
        assert!(matches!(
            m.forward(round, out, &env),
            Err(ServiceError::Forbidden { party, .. }) if party == out
        ));
        for owner in [1, 2] {
            assert!(!m.is_full());
            let f = m.forward(round, PartyId::DataOwner(owner), &env).unwrap();
            m.decide(f, Ok(()), &staged(&s, 1), &[]).unwrap();
        }
        // Two committed and one declined of max_clients 3: full, no deadline to wait.
        assert!(m.is_full());
        assert_eq!(m.contributors().len(), 2);
        assert!(matches!(
            m.close(round),
            CloseStep::Sent { abort: false, .. }
        ));
        m.finish_close(None).unwrap();
        m.sealed(Ok(()));
    }
    // A second notice replaces the first; the count does not grow.
    m.decline(out, "again".into());
    assert_eq!(m.declined().len(), 1);
    assert_eq!(m.declined()[&out], "again");
}

#[test]
fn a_round_short_of_min_clients_aborts_and_the_next_opens() {
    let s = settings(4, 2);
    let mut m = LeaderRounds::new(&s);
    m.open(1).unwrap();
    assert_eq!(
        m.close(1),
        CloseStep::Sent {
            seq: 0,
            abort: true
        }
    );
    assert_eq!(m.close(1), CloseStep::NotOpen);
    assert!(m.finish_close(None).is_none());
    assert_eq!(m.state(), RoundState::Failed);
    assert!(matches!(
        m.failure(),
        Some(RoundFailure::TooFewContributors { min_clients: 2, .. })
    ));
    m.open(2).unwrap();
    assert_eq!(m.state(), RoundState::Open);
    let fa = m
        .forward(2, PartyId::DataOwner(0), &[vec![], vec![]])
        .unwrap();
    assert_eq!(fa, 0);
    m.decide(fa, Ok(()), &staged(&s, 1), &[]).unwrap();
    let fb = m
        .forward(2, PartyId::DataOwner(1), &[vec![], vec![]])
        .unwrap();
    m.decide(fb, Ok(()), &staged(&s, 1), &[]).unwrap();
    assert_eq!(
        m.close(2),
        CloseStep::Sent {
            seq: 4,
            abort: false
        }
    );
    // A helper refused the close: the round fails with its reason.
    assert!(
        m.finish_close(Some("server2: sets differ".into()))
            .is_none()
    );
    assert!(matches!(
        m.failure(),
        Some(RoundFailure::AtHelper { reason, .. }) if reason == "server2: sets differ"
    ));
    assert!(m.job_done());
}

/// A helper's refusal of a seed whose tag does not verify.
fn forged_seed() -> HelperRefusal {
    HelperRefusal::Refused(Box::new(ServiceError::Seal(
        SealError::AuthenticationFailed {
            sender: PartyId::DataOwner(3),
        },
    )))
}
