//! A job's network at one server: its messages to the other servers go over the server's peer
//! network (the session id in their tags keeps jobs apart), and its exchanges with outside
//! parties go through the job's own [`JobIo`], which the service fills with opened inputs and
//! empties as the receivers fetch their outputs. The MPC programs are the same as in simulated
//! mode: they call `input` / `output` with a party and a label and never see the difference.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::net::{Mailbox, NetError, NetStats, Network, Tag};
use tokio::sync::watch;

use tessera_jobs::JobState;

/// Outputs waiting for their receivers, by receiver and tag, in order.
type Outbox = HashMap<(PartyId, Tag), Queue>;

/// The values of one output for one receiver: `values[0]` is value number `first`.
#[derive(Debug, Default)]
struct Queue {
    first: u64,
    values: VecDeque<Vec<u8>>,
}

/// Why a value cannot be fetched.
#[derive(Debug, Clone, PartialEq)]
pub enum TakeError {
    /// The job ended without it (its state).
    Ended(JobState),
    /// The receiver already fetched a later value, which let this one go.
    Released {
        /// The first value still held.
        first: u64,
    },
}

/// The outside parties' side of one job at one server.
#[derive(Debug)]
pub struct JobIo {
    inbox: Mailbox,
    /// Outputs by receiver and tag; a label output several times (a training's losses) queues
    /// its values in order.
    outbox: Mutex<Outbox>,
    /// Bumped on every output and on every change of state, so fetchers wake up.
    changed: watch::Sender<u64>,
    state: Mutex<JobState>,
    /// How long the job waits for an outside party's input.
    input_timeout: Duration,
}

impl JobIo {
    /// An empty endpoint whose job waits up to `input_timeout` for each input.
    pub fn new(input_timeout: Duration) -> Self {
        JobIo {
            inbox: Mailbox::new(),
            outbox: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            state: Mutex::new(JobState::Running),
            input_timeout,
        }
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Delivers an opened, complete input of `from` under `tag`.
    pub fn deliver_input(&self, from: PartyId, tag: Tag, payload: Vec<u8>) {
        self.inbox.deliver(from, tag, payload);
    }

    /// The job's state.
    pub fn state(&self) -> JobState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Ends the job in `state` (a job already over keeps its first end); drops its queued
    /// inputs, and for a failure or an abort its outputs too.
    pub fn finish(&self, state: JobState) {
        {
            let mut current = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_over() {
                return;
            }
            *current = state.clone();
        }
        if state != JobState::Done {
            self.outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        self.inbox.close();
        self.bump();
    }

    /// Bytes held in outputs not yet released.
    pub fn held_bytes(&self) -> usize {
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flat_map(|q| &q.values)
            .map(Vec::len)
            .sum()
    }

    /// Value number `seq` of the output for `to` under `tag` (a label output several times, a
    /// training's losses, numbers its values from 0), waiting up to `wait` while the job runs.
    /// `Ok(None)` if the wait ran out. Fetching is idempotent: asking for value `seq` again gets
    /// the same bytes, and asking for `seq` releases the values before it (the receiver asks
    /// for them in order), so a replayed request cannot drain values the receiver has not read.
    pub async fn take_output(
        &self,
        to: PartyId,
        tag: &Tag,
        seq: u64,
        wait: Duration,
    ) -> Result<Option<Vec<u8>>, TakeError> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let key = (to, tag.clone());
            {
                let mut outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
                let queue = outbox.entry(key).or_default();
                if seq < queue.first {
                    return Err(TakeError::Released { first: queue.first });
                }
                while queue.first < seq && !queue.values.is_empty() {
                    queue.values.pop_front();
                    queue.first += 1;
                }
                if queue.first == seq
                    && let Some(v) = queue.values.front()
                {
                    return Ok(Some(v.clone()));
                }
            }
            let state = self.state();
            if state.is_over() {
                return Err(TakeError::Ended(state));
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(None),
            }
        }
    }

    fn put_output(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) {
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((to, tag.clone()))
            .or_default()
            .values
            .push_back(payload);
        self.bump();
    }
}

/// The [`Network`] a job's session runs on at one server (see the module docs).
pub struct JobNet<N: Network> {
    peers: Arc<N>,
    io: Arc<JobIo>,
    parties: Vec<PartyId>,
}

impl<N: Network> JobNet<N> {
    /// The job's network: the servers of `peers` plus the outside parties `outside`.
    pub fn new(peers: Arc<N>, io: Arc<JobIo>, outside: &[PartyId]) -> Self {
        let mut parties: Vec<PartyId> = peers
            .parties()
            .iter()
            .copied()
            .filter(|p| p.is_server())
            .collect();
        parties.extend(outside.iter().copied().filter(|p| !p.is_server()));
        JobNet { peers, io, parties }
    }
}

impl<N: Network> Network for JobNet<N> {
    fn me(&self) -> PartyId {
        self.peers.me()
    }

    fn parties(&self) -> &[PartyId] {
        &self.parties
    }

    async fn send(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) -> Result<(), NetError> {
        if to.is_server() {
            return self.peers.send(to, tag, payload).await;
        }
        if !self.parties.contains(&to) {
            return Err(NetError::UnknownPeer(to));
        }
        self.io.put_output(to, tag, payload);
        Ok(())
    }

    async fn recv(&self, from: PartyId, tag: &Tag) -> Result<Vec<u8>, NetError> {
        if from.is_server() {
            return self.peers.recv(from, tag).await;
        }
        if !self.parties.contains(&from) {
            return Err(NetError::UnknownPeer(from));
        }
        self.io.inbox.recv(from, tag, self.io.input_timeout).await
    }

    fn stats(&self) -> NetStats {
        self.peers.stats()
    }

    fn forget(&self, prefix: &str) -> usize {
        self.peers.forget(prefix)
    }

    fn queued(&self) -> usize {
        self.peers.queued() + self.io.inbox.queued()
    }

    async fn linked(&self, within: Duration) -> Result<(), NetError> {
        self.peers.linked(within).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values are fetched by number: asking again gets the same bytes, asking for the next
    /// releases the one before, a released number is refused, and a failed job ends the wait.
    #[tokio::test]
    async fn outputs_are_fetched_by_number_and_released_in_order() {
        let io = JobIo::new(Duration::from_secs(1));
        let (to, tag) = (PartyId::ModelOwner, Tag("loss".into()));
        for v in 0..3u8 {
            io.put_output(to, &tag, vec![v; 4]);
        }
        let wait = Duration::from_millis(10);
        let take = |seq| io.take_output(to, &tag, seq, wait);
        // A replayed request for value 0: the same value, nothing drained.
        assert_eq!(take(0).await, Ok(Some(vec![0; 4])));
        assert_eq!(take(0).await, Ok(Some(vec![0; 4])));
        assert_eq!(io.held_bytes(), 12);
        // Value 2 releases 0 and 1.
        assert_eq!(take(2).await, Ok(Some(vec![2; 4])));
        assert_eq!(io.held_bytes(), 4);
        assert_eq!(take(1).await, Err(TakeError::Released { first: 2 }));
        // Value 3 is not there yet.
        assert_eq!(take(3).await, Ok(None));
        io.finish(JobState::Failed("stopped".into()));
        assert!(matches!(
            take(3).await,
            Err(TakeError::Ended(JobState::Failed(_)))
        ));
    }
}
