//! A helper's rounds of one job as a transport-free state machine.
//!
//! The leader's messages arrive in order; each is one call of [`HelperRounds::on_message`],
//! which returns the answer the leader waits for (if any). Opening a seed envelope and sealing
//! the result share are the caller's closures, so the machine runs without keys or network in
//! tests.
//!
//! Nothing wedges: every staged forward waits for its decision by sequence number, so a forward
//! whose decision never comes (the leader failed between them) is only a stale entry, dropped at
//! the round's close or when the leader moves to a later round; the number of staged forwards is
//! bounded, and a message of a later round ends whatever was left of the earlier one.

use std::collections::BTreeMap;

use tessera_common::PartyId;
use tessera_common::job::JobSettings;
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Header, ReplayGuard};

use tessera_common::refusal::HelperRefusal;

use crate::ServiceError;
use crate::messages::{PeerMsg, PeerReply, RoundMsg, RoundState};

/// One owner's seed, opened and expanded, waiting for the leader's decision.
#[derive(Debug, Clone)]
pub struct Staged {
    /// This helper's share of the update.
    pub expansion: RingVec,
    /// The seed envelope's authenticated header (for the replay guard).
    pub header: Header,
}

/// What one leader message led to.
#[derive(Debug, Default, PartialEq)]
pub struct HelperStep {
    /// The answer to send the leader under the message's round and sequence number.
    pub reply: Option<PeerReply>,
    /// Something worth a warning in the log (a stale message, a decision without its forward).
    pub note: Option<String>,
    /// The job's last round closed: the helper is done.
    pub done: bool,
}

impl HelperStep {
    fn reply(reply: PeerReply) -> Self {
        HelperStep {
            reply: Some(reply),
            ..Self::default()
        }
    }

    fn note(note: String) -> Self {
        HelperStep {
            note: Some(note),
            ..Self::default()
        }
    }
}

/// A helper's side of one job's rounds.
#[derive(Debug)]
pub struct HelperRounds {
    rounds: u64,
    ring_bits: u32,
    len: usize,
    max_pending: usize,
    round: u64,
    state: RoundState,
    acc: Option<RingVec>,
    contributors: Vec<PartyId>,
    guard: ReplayGuard,
    pending: BTreeMap<u64, (PartyId, Staged)>,
    message: String,
}

impl HelperRounds {
    /// No round yet; at most `max_pending` forwards staged at once.
    pub fn new(settings: &JobSettings, max_pending: usize) -> Self {
        HelperRounds {
            rounds: settings.rounds,
            ring_bits: settings.ring_bits,
            len: settings.update_len(),
            max_pending: max_pending.max(1),
            round: 0,
            state: RoundState::Idle,
            acc: None,
            contributors: Vec::new(),
            guard: ReplayGuard::new(),
            pending: BTreeMap::new(),
            message: String::new(),
        }
    }

    /// The current round (0 before the first).
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Its state.
    pub fn state(&self) -> RoundState {
        self.state
    }

    /// The owners committed to it, in commit order.
    pub fn contributors(&self) -> &[PartyId] {
        &self.contributors
    }

    /// Why it failed, if it did.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Forwards staged and waiting for their decision.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn fail(&mut self, message: String) {
        self.state = RoundState::Failed;
        self.acc = None;
        self.pending.clear();
        self.message = message;
    }

    /// The leader cannot be reached: the round in progress fails.
    pub fn leader_lost(&mut self, reason: &str) {
        if !self.state.is_final() {
            self.fail(format!("leader unreachable: {reason}"));
        } else {
            self.pending.clear();
        }
    }

    /// Follows the leader to `round`: a later round ends the current one.
    fn enter(&mut self, round: u64) -> Result<(), ServiceError> {
        if round == self.round {
            return Ok(());
        }
        if !self.state.is_final() && self.round > 0 {
            self.fail(format!("the leader moved on to round {round}"));
        }
        self.acc = Some(RingVec::zeros(self.ring_bits, self.len)?);
        self.round = round;
        self.state = RoundState::Open;
        self.contributors.clear();
        self.guard = ReplayGuard::new();
        self.pending.clear();
        self.message.clear();
        Ok(())
    }

    /// Handles the leader's next message. `stage` opens and expands an owner's seed envelope
    /// for the round; `seal` seals the round's sum for the model owner.
    pub fn on_message(
        &mut self,
        msg: RoundMsg,
        stage: impl FnOnce(u64, PartyId, &[u8]) -> Result<Staged, ServiceError>,
        seal: impl FnOnce(u64, RingVec) -> Result<(), ServiceError>,
    ) -> HelperStep {
        let RoundMsg { round, seq, msg } = msg;
        if round == 0 || round > self.rounds || round < self.round {
            let why = HelperRefusal::NotCurrent {
                round,
                current: self.round,
            };
            return match msg {
                PeerMsg::Decide { .. } => HelperStep::note(why.to_string()),
                _ => HelperStep {
                    note: Some(why.to_string()),
                    reply: Some(PeerReply::Rejected(why)),
                    done: false,
                },
            };
        }
        if let Err(e) = self.enter(round) {
            return HelperStep::reply(refused(e));
        }
        match msg {
            PeerMsg::Forward { owner, envelope } => {
                HelperStep::reply(match self.forward(round, seq, owner, &envelope, stage) {
                    Ok(()) => PeerReply::Ok,
                    Err(e) => refused(e),
                })
            }
            PeerMsg::Decide { forward, commit } => match self.decide(forward, commit) {
                Ok(()) => HelperStep::default(),
                Err(note) => HelperStep::note(note),
            },
            PeerMsg::Close {
                contributors,
                abort,
            } => {
                let reply = self.close(round, &contributors, abort, seal);
                HelperStep {
                    reply: Some(reply),
                    note: None,
                    done: round == self.rounds,
                }
            }
        }
    }

    fn forward(
        &mut self,
        round: u64,
        seq: u64,
        owner: PartyId,
        envelope: &[u8],
        stage: impl FnOnce(u64, PartyId, &[u8]) -> Result<Staged, ServiceError>,
    ) -> Result<(), ServiceError> {
        if !self.state.accepts_uploads() {
            return Err(ServiceError::RoundClosed { job: 0, round });
        }
        if self.contributors.contains(&owner) {
            return Err(ServiceError::DuplicateUpload(owner));
        }
        if self.pending.values().any(|(o, _)| *o == owner) {
            return Err(ServiceError::UploadInProgress(owner));
        }
        if self.pending.len() >= self.max_pending {
            return Err(ServiceError::Busy {
                what: "staged forwards",
                limit: self.max_pending,
            });
        }
        let staged = stage(round, owner, envelope)?;
        if staged.expansion.len() != self.len {
            return Err(ServiceError::WrongLength {
                what: "seed expansion elements",
                got: staged.expansion.len() as u64,
                expected: self.len as u64,
            });
        }
        self.pending.insert(seq, (owner, staged));
        Ok(())
    }

    fn decide(&mut self, forward: u64, commit: bool) -> Result<(), String> {
        let Some((owner, staged)) = self.pending.remove(&forward) else {
            // The leader committed what this helper never staged: the contributor sets will
            // differ at the close, which fails the round there.
            return if commit {
                Err(format!(
                    "commit of forward {forward}, which is not staged here"
                ))
            } else {
                Ok(())
            };
        };
        if !commit {
            return Ok(());
        }
        let Some(acc) = self.acc.as_mut() else {
            return Err(format!("commit of {owner} after the round failed"));
        };
        self.guard
            .record(&staged.header)
            .map_err(|e| format!("commit of {owner}: {e}"))?;
        acc.add_assign(&staged.expansion)
            .map_err(|e| format!("commit of {owner}: {e}"))?;
        self.contributors.push(owner);
        self.state = RoundState::Collecting;
        Ok(())
    }

    fn close(
        &mut self,
        round: u64,
        contributors: &[PartyId],
        abort: bool,
        seal: impl FnOnce(u64, RingVec) -> Result<(), ServiceError>,
    ) -> PeerReply {
        // Forwards without a decision by now never get one.
        self.pending.clear();
        if self.state.is_final() {
            return PeerReply::Rejected(HelperRefusal::Over(round));
        }
        if abort {
            self.fail(format!("round {round} aborted by the leader"));
            return PeerReply::Ok;
        }
        if contributors != self.contributors {
            let why = HelperRefusal::Contributors {
                leader: contributors.to_vec(),
                mine: self.contributors.clone(),
            };
            self.fail(why.to_string());
            return PeerReply::Rejected(why);
        }
        let Some(acc) = self.acc.take() else {
            return PeerReply::Rejected(HelperRefusal::NoSum(round));
        };
        match seal(round, acc) {
            Ok(()) => {
                self.state = RoundState::Aggregated;
                PeerReply::Ok
            }
            Err(e) => {
                self.fail(e.to_string());
                refused(e)
            }
        }
    }
}

/// The reply refusing a message for `e`.
fn refused(e: ServiceError) -> PeerReply {
    PeerReply::Rejected(HelperRefusal::Refused(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::seal::{Purpose, SealError};

    use crate::round::leader::tests::settings;

    fn header(owner: PartyId, round: u64) -> Header {
        Header {
            purpose: Purpose::Upload,
            sender: owner,
            receiver: PartyId::Server(1),
            job_id: 9,
            round,
            chunk: 0,
        }
    }

    /// Stages `owner`'s update as the vector of `owner`'s number repeated.
    fn stage(len: usize) -> impl Fn(u64, PartyId, &[u8]) -> Result<Staged, ServiceError> {
        move |round, owner, envelope| {
            if envelope == b"forged" {
                return Err(ServiceError::Seal(SealError::AuthenticationFailed {
                    sender: owner,
                }));
            }
            let PartyId::DataOwner(n) = owner else {
                unreachable!()
            };
            Ok(Staged {
                expansion: RingVec::U32(vec![n; len]),
                header: header(owner, round),
            })
        }
    }

    fn msg(round: u64, seq: u64, msg: PeerMsg) -> RoundMsg {
        RoundMsg { round, seq, msg }
    }

    fn forward(owner: u32, envelope: &[u8]) -> PeerMsg {
        PeerMsg::Forward {
            owner: PartyId::DataOwner(owner),
            envelope: envelope.to_vec(),
        }
    }

    #[test]
    fn a_forward_whose_decision_never_comes_does_not_wedge_the_helper() {
        let s = settings(10, 1);
        let len = s.update_len();
        let mut h = HelperRounds::new(&s, 4);
        let mut sealed = None;
        let no_seal = |_: u64, _: RingVec| -> Result<(), ServiceError> { unreachable!() };
        // The leader forwarded owner 1's seed, then failed before deciding it (its decision is
        // lost); it went on with owner 2.
        let step = h.on_message(msg(1, 0, forward(1, b"ok")), stage(len), no_seal);
        assert_eq!(step.reply, Some(PeerReply::Ok));
        let step = h.on_message(msg(1, 1, forward(2, b"ok")), stage(len), no_seal);
        assert_eq!(step.reply, Some(PeerReply::Ok));
        assert_eq!(h.pending(), 2);
        let step = h.on_message(
            msg(
                1,
                2,
                PeerMsg::Decide {
                    forward: 1,
                    commit: true,
                },
            ),
            stage(len),
            no_seal,
        );
        assert_eq!(step, HelperStep::default());
        // The close counts owner 2 only; owner 1's staged share is dropped, not added.
        let step = h.on_message(
            msg(
                1,
                3,
                PeerMsg::Close {
                    contributors: vec![PartyId::DataOwner(2)],
                    abort: false,
                },
            ),
            stage(len),
            |round, sum| {
                sealed = Some((round, sum));
                Ok(())
            },
        );
        assert_eq!(step.reply, Some(PeerReply::Ok));
        assert!(!step.done);
        assert_eq!(sealed, Some((1, RingVec::U32(vec![2; len]))));
        assert_eq!(h.pending(), 0);
        assert_eq!(h.state(), RoundState::Aggregated);
    }

    #[test]
    fn a_later_round_ends_an_unfinished_one_and_stale_messages_are_refused() {
        let s = settings(10, 1);
        let len = s.update_len();
        let mut h = HelperRounds::new(&s, 1);
        let no_seal = |_: u64, _: RingVec| -> Result<(), ServiceError> { unreachable!() };
        h.on_message(msg(1, 0, forward(1, b"ok")), stage(len), no_seal);
        // The staging bound holds.
        let step = h.on_message(msg(1, 1, forward(2, b"ok")), stage(len), no_seal);
        assert!(matches!(
            step.reply,
            Some(PeerReply::Rejected(HelperRefusal::Refused(e)))
                if matches!(*e, ServiceError::Busy { what: "staged forwards", limit: 1 })
        ));
        // The leader restarted round 1 as round 2 without closing it.
        let step = h.on_message(msg(2, 0, forward(1, b"forged")), stage(len), no_seal);
        assert!(matches!(
            step.reply,
            Some(PeerReply::Rejected(HelperRefusal::Refused(e)))
                if matches!(*e, ServiceError::Seal(SealError::AuthenticationFailed { .. }))
        ));
        assert_eq!(
            (h.round(), h.state(), h.pending()),
            (2, RoundState::Open, 0)
        );
        let step = h.on_message(msg(1, 5, forward(3, b"ok")), stage(len), no_seal);
        assert_eq!(
            step.reply,
            Some(PeerReply::Rejected(HelperRefusal::NotCurrent {
                round: 1,
                current: 2
            }))
        );
        let step = h.on_message(
            msg(
                1,
                6,
                PeerMsg::Decide {
                    forward: 0,
                    commit: true,
                },
            ),
            stage(len),
            no_seal,
        );
        assert_eq!(step.reply, None);
        assert!(step.note.is_some());
        // A commit of a forward it refused: noted, and the close finds the sets differ.
        let step = h.on_message(
            msg(
                2,
                1,
                PeerMsg::Decide {
                    forward: 0,
                    commit: true,
                },
            ),
            stage(len),
            no_seal,
        );
        assert!(step.note.unwrap().contains("not staged"));
        let step = h.on_message(
            msg(
                2,
                2,
                PeerMsg::Close {
                    contributors: vec![PartyId::DataOwner(1)],
                    abort: false,
                },
            ),
            stage(len),
            no_seal,
        );
        assert_eq!(
            step.reply,
            Some(PeerReply::Rejected(HelperRefusal::Contributors {
                leader: vec![PartyId::DataOwner(1)],
                mine: vec![]
            }))
        );
        assert_eq!(h.state(), RoundState::Failed);
        assert!(step.done, "round 2 is the job's last");
    }

    #[test]
    fn losing_the_leader_fails_the_round_and_an_abort_is_acknowledged() {
        let s = settings(10, 1);
        let len = s.update_len();
        let mut h = HelperRounds::new(&s, 4);
        let no_seal = |_: u64, _: RingVec| -> Result<(), ServiceError> { unreachable!() };
        h.on_message(msg(1, 0, forward(1, b"ok")), stage(len), no_seal);
        h.leader_lost("connection reset");
        assert_eq!(h.state(), RoundState::Failed);
        assert_eq!(h.pending(), 0);
        assert!(h.message().contains("connection reset"));
        let step = h.on_message(
            msg(
                2,
                0,
                PeerMsg::Close {
                    contributors: Vec::new(),
                    abort: true,
                },
            ),
            stage(len),
            no_seal,
        );
        assert_eq!(step.reply, Some(PeerReply::Ok));
        assert_eq!((h.round(), h.state()), (2, RoundState::Failed));
    }
}
