//! The leader's rounds of one job as a transport-free state machine.
//!
//! Inputs are method calls (a round opened, an upload ready to forward, the helpers' verdict on
//! it, the round's close and the helpers' answers to it); everything the helpers must be told is
//! queued in an outbox, in the order they must see it. The driver
//! ([`crate::AggregatorService`]) takes the outbox under the same lock that changed the
//! machine and sends it in that order, so a decision always reaches a helper before the close
//! that counts it.
//!
//! Uploads do not wait for each other: any number may be between their forward and their
//! decision at once (each names its forward by sequence number), and a close asked for while
//! some are in flight waits until each has its decision, which every path gives (a helper's
//! refusal, a lost helper, a timeout: a drop).

use std::collections::{BTreeMap, BTreeSet};

use tessera_common::PartyId;
use tessera_common::job::JobSettings;
use tessera_common::refusal::{Incomplete, RoundOrder};
use tessera_common::ringvec::RingVec;
use tessera_common::seal::{Header, ReplayGuard};

use crate::ServiceError;
use crate::messages::{PeerMsg, RoundMsg, RoundState};

/// An upload between its forward and its decision.
#[derive(Debug)]
struct InFlight {
    owner: PartyId,
}

/// What a close asks of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseStep {
    /// The round is not open (closed already, or another round): nothing to do.
    NotOpen,
    /// Closed to new uploads; these many are still waiting for their decision.
    Waiting(usize),
    /// The close went to the outbox under this sequence number: collect the helpers' answers.
    Sent {
        /// Its sequence number.
        seq: u64,
        /// Whether the round fails for lack of contributors.
        abort: bool,
    },
}

/// The leader's side of one job's rounds.
#[derive(Debug)]
pub struct LeaderRounds {
    job_id: u64,
    helpers: usize,
    rounds: u64,
    max_clients: usize,
    min_clients: usize,
    ring_bits: u32,
    len: usize,
    round: u64,
    state: RoundState,
    next_seq: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// A close was asked for; set with the state `Closed`.
    closing: bool,
    /// The close's sequence number once it went out.
    close_sent: Option<u64>,
    contributors: Vec<PartyId>,
    /// Owners whose upload the job's rule refused this round (they count toward a full round
    /// and may not try again).
    refused: BTreeSet<PartyId>,
    /// Owners that declined the job, and why (job-wide: they take a place in every round and
    /// may not upload).
    declined: BTreeMap<PartyId, String>,
    acc: Option<RingVec>,
    guard: ReplayGuard,
    failure: Option<RoundFailure>,
    outbox: Vec<(PartyId, RoundMsg)>,
}

impl LeaderRounds {
    /// No round yet.
    pub fn new(settings: &JobSettings) -> Self {
        LeaderRounds {
            job_id: settings.job_id,
            helpers: settings.num_servers - 1,
            rounds: settings.rounds,
            max_clients: settings.max_clients,
            min_clients: settings.min_clients,
            ring_bits: settings.ring_bits,
            len: settings.update_len(),
            round: 0,
            state: RoundState::Idle,
            next_seq: 0,
            in_flight: BTreeMap::new(),
            closing: false,
            close_sent: None,
            contributors: Vec::new(),
            refused: BTreeSet::new(),
            declined: BTreeMap::new(),
            acc: None,
            guard: ReplayGuard::new(),
            failure: None,
            outbox: Vec::new(),
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
    pub fn failure(&self) -> Option<&RoundFailure> {
        self.failure.as_ref()
    }

    /// Why it failed, as the round's status says it (empty unless it failed).
    pub fn message(&self) -> String {
        self.failure
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Owners the round is done with: committed, or refused by the job's rule.
    fn taken(&self) -> usize {
        let declined = self
            .declined
            .keys()
            .filter(|o| !self.contributors.contains(o) && !self.refused.contains(o))
            .count();
        self.contributors.len() + self.refused.len() + declined
    }

    /// Records that `owner` declined the job (its data does not fit the model, see
    /// `tessera_common::notice`): it takes a place in every round from now on, so a round
    /// does not wait its deadline for it; the driver then asks [`LeaderRounds::is_full`].
    pub fn decline(&mut self, owner: PartyId, reason: String) {
        self.declined.insert(owner, reason);
    }

    /// The owners that declined the job, and why.
    pub fn declined(&self) -> &BTreeMap<PartyId, String> {
        &self.declined
    }

    /// Uploads between their forward and their decision.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the last round is over.
    pub fn job_done(&self) -> bool {
        self.round >= self.rounds && self.state.is_final()
    }

    /// The messages for the helpers queued since the last call, in sending order.
    pub fn take_outbox(&mut self) -> Vec<(PartyId, RoundMsg)> {
        std::mem::take(&mut self.outbox)
    }

    fn queue_all(&mut self, seq: u64, msg: PeerMsg) {
        for h in 1..=self.helpers {
            self.outbox.push((
                PartyId::Server(h as u8),
                RoundMsg {
                    round: self.round,
                    seq,
                    msg: msg.clone(),
                },
            ));
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Opens `round`, which must follow a finished one. A machine that has opened no round
    /// yet takes up any round of the job: a restarted leader continues the job at the model
    /// owner's round (the rounds before it are the model owner's record, not the leader's).
    pub fn open(&mut self, round: u64) -> Result<(), ServiceError> {
        let follows = round == self.round + 1 || (self.round == 0 && round > 0);
        if !follows || !self.state.is_final() {
            return Err(ServiceError::BadRoundOrder {
                requested: round,
                reason: RoundOrder::NotNext {
                    current: self.round,
                    over: self.state.is_final(),
                },
            });
        }
        if round > self.rounds {
            return Err(ServiceError::BadRoundOrder {
                requested: round,
                reason: RoundOrder::Beyond {
                    rounds: self.rounds,
                },
            });
        }
        let acc = RingVec::zeros(self.ring_bits, self.len)?;
        self.round = round;
        self.state = RoundState::Open;
        self.next_seq = 0;
        self.in_flight.clear();
        self.closing = false;
        self.close_sent = None;
        self.contributors.clear();
        self.refused.clear();
        self.acc = Some(acc);
        // Envelopes of earlier rounds fail the round check; the guard only needs this one's.
        self.guard = ReplayGuard::new();
        self.failure = None;
        Ok(())
    }

    /// Whether `owner` may upload to `round` now; `Ok` means a forward may follow.
    pub fn check_accepts(&self, round: u64, owner: PartyId) -> Result<(), ServiceError> {
        if self.round != round || !self.state.accepts_uploads() {
            return Err(ServiceError::RoundClosed {
                job: self.job_id,
                round,
            });
        }
        if self.contributors.contains(&owner) {
            return Err(ServiceError::DuplicateUpload(owner));
        }
        if self.in_flight.values().any(|f| f.owner == owner) {
            return Err(ServiceError::UploadInProgress(owner));
        }
        if self.refused.contains(&owner) {
            return Err(ServiceError::AlreadyRefused(owner));
        }
        if self.declined.contains_key(&owner) {
            return Err(ServiceError::Forbidden {
                party: owner,
                action: "upload to a job it declined",
            });
        }
        // Uploads in flight count: each may commit.
        let taken = self.taken() + self.in_flight.len();
        if taken >= self.max_clients {
            return Err(ServiceError::RoundFull(taken));
        }
        Ok(())
    }

    /// Queues the forward of `owner`'s seed envelopes (one per helper, in helper order) and
    /// returns its sequence number, under which the helpers answer.
    pub fn forward(
        &mut self,
        round: u64,
        owner: PartyId,
        seed_envelopes: &[Vec<u8>],
    ) -> Result<u64, ServiceError> {
        self.check_accepts(round, owner)?;
        if seed_envelopes.len() != self.helpers {
            return Err(Incomplete::SeedEnvelopes {
                got: seed_envelopes.len(),
                helpers: self.helpers,
            }
            .into());
        }
        let seq = self.take_seq();
        for (i, envelope) in seed_envelopes.iter().enumerate() {
            self.outbox.push((
                PartyId::Server(i as u8 + 1),
                RoundMsg {
                    round,
                    seq,
                    msg: PeerMsg::Forward {
                        owner,
                        envelope: envelope.clone(),
                    },
                },
            ));
        }
        self.in_flight.insert(seq, InFlight { owner });
        Ok(seq)
    }

    /// Decides the upload forwarded as `seq`: with every helper's yes (`verdict` is `Ok`) its
    /// staged share joins the sum and its owner the contributors; otherwise it is dropped (and
    /// its owner counted as refused if the job's rule refused it). Either way the decision is
    /// queued for the helpers. Returns the reason the upload was dropped, if it was; the driver
    /// then asks [`LeaderRounds::is_full`].
    pub fn decide(
        &mut self,
        seq: u64,
        verdict: Result<(), ServiceError>,
        staged: &RingVec,
        headers: &[Header],
    ) -> Result<(), ServiceError> {
        let flight = self
            .in_flight
            .remove(&seq)
            .ok_or(Incomplete::NotInFlight(seq))?;
        let verdict = verdict.and_then(|()| self.commit(flight.owner, staged, headers));
        if let Err(ServiceError::RuleRejected { .. }) = verdict {
            self.refused.insert(flight.owner);
        }
        let decide = PeerMsg::Decide {
            forward: seq,
            commit: verdict.is_ok(),
        };
        let decide_seq = self.take_seq();
        self.queue_all(decide_seq, decide);
        self.queue_close_if_ready();
        verdict
    }

    /// Whether every place of the round is taken (committed or refused by the rule): the
    /// driver closes it.
    pub fn is_full(&self) -> bool {
        self.taken() >= self.max_clients
    }

    fn commit(
        &mut self,
        owner: PartyId,
        staged: &RingVec,
        headers: &[Header],
    ) -> Result<(), ServiceError> {
        // Nothing can have dropped the sum: a close waits for every upload in flight.
        let acc = self.acc.as_mut().ok_or(ServiceError::RoundClosed {
            job: self.job_id,
            round: self.round,
        })?;
        if acc.element_bytes() != staged.element_bytes() {
            return Err(ServiceError::WrongLength {
                what: "staged share element bytes",
                got: staged.element_bytes() as u64,
                expected: acc.element_bytes() as u64,
            });
        }
        if acc.len() != staged.len() {
            return Err(ServiceError::WrongLength {
                what: "staged share elements",
                got: staged.len() as u64,
                expected: acc.len() as u64,
            });
        }
        // A replay inside one upload was refused as it arrived; across uploads the guard holds.
        self.guard.record_all(headers)?;
        // Same ring and length, checked above: the sum cannot fail.
        acc.add_assign(staged)?;
        self.contributors.push(owner);
        if self.state == RoundState::Open {
            self.state = RoundState::Collecting;
        }
        Ok(())
    }

    /// Closes `round` to new uploads; the close itself is queued once every upload in flight
    /// has its decision (at once if none is).
    pub fn close(&mut self, round: u64) -> CloseStep {
        if self.round != round || !self.state.accepts_uploads() {
            return CloseStep::NotOpen;
        }
        self.state = RoundState::Closed;
        self.closing = true;
        match self.queue_close_if_ready() {
            Some((seq, abort)) => CloseStep::Sent { seq, abort },
            None => CloseStep::Waiting(self.in_flight.len()),
        }
    }

    /// The close's sequence number and abort flag once it went out.
    pub fn close_sent(&self) -> Option<(u64, bool)> {
        self.close_sent
            .map(|seq| (seq, self.contributors.len() < self.min_clients))
    }

    fn queue_close_if_ready(&mut self) -> Option<(u64, bool)> {
        if !self.closing || !self.in_flight.is_empty() || self.close_sent.is_some() {
            return None;
        }
        let abort = self.contributors.len() < self.min_clients;
        let seq = self.take_seq();
        let msg = PeerMsg::Close {
            contributors: self.contributors.clone(),
            abort,
        };
        self.queue_all(seq, msg);
        self.close_sent = Some(seq);
        Some((seq, abort))
    }

    /// Ends the round after the helpers answered its close (`failure`: the first helper that
    /// refused or could not be reached). On success returns the sum of this server's shares
    /// to seal; the round is `Closed` until [`LeaderRounds::sealed`] says how sealing went.
    pub fn finish_close(&mut self, failure: Option<String>) -> Option<RingVec> {
        let acc = self.acc.take();
        if self.contributors.len() < self.min_clients {
            self.fail(RoundFailure::TooFewContributors {
                round: self.round,
                contributors: self.contributors.len(),
                min_clients: self.min_clients,
            });
            return None;
        }
        if let Some(f) = failure {
            self.fail(RoundFailure::AtHelper {
                round: self.round,
                reason: f,
            });
            return None;
        }
        acc
    }

    /// The result share was sealed (`Ok`) or could not be.
    pub fn sealed(&mut self, result: Result<(), ServiceError>) {
        match result {
            Ok(()) => self.state = RoundState::Aggregated,
            Err(e) => self.fail(RoundFailure::Sealing(e)),
        }
    }

    /// `helper` restarted since the round opened: it holds none of the round (no staged
    /// seed, no sum), so the round fails now rather than wait for answers that will not come.
    pub fn helper_restarted(&mut self, helper: PartyId) {
        if !self.state.is_final() {
            self.fail(RoundFailure::HelperRestarted {
                round: self.round,
                helper,
            });
        }
    }

    /// Fails the round.
    pub fn fail(&mut self, failure: RoundFailure) {
        self.state = RoundState::Failed;
        self.acc = None;
        self.failure = Some(failure);
    }
}

/// Why the leader's round failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RoundFailure {
    /// The round closed with fewer contributors than the job's minimum.
    #[error(
        "round {round} closed with {contributors} contributors, fewer than min_clients {min_clients}"
    )]
    TooFewContributors {
        /// The round.
        round: u64,
        /// Its contributors.
        contributors: usize,
        /// The job's minimum.
        min_clients: usize,
    },
    /// A helper refused the close or could not be reached.
    #[error("round {round} failed at a helper: {reason}")]
    AtHelper {
        /// The round.
        round: u64,
        /// The helper's answer (it names the helper).
        reason: String,
    },
    /// The result share could not be sealed.
    #[error("{0}")]
    Sealing(ServiceError),
    /// A helper restarted since the round opened, losing its part of the round.
    #[error("round {round} failed: {helper} restarted since it opened")]
    HelperRestarted {
        /// The round.
        round: u64,
        /// The helper.
        helper: PartyId,
    },
}

#[cfg(test)]
pub(crate) mod tests;
