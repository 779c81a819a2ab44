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

use super::job::JobState;

/// Outputs waiting for their receivers, by receiver and tag, in order.
type Outbox = HashMap<(PartyId, Tag), VecDeque<Vec<u8>>>;

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

    /// Bytes held in outputs not yet fetched.
    pub fn held_bytes(&self) -> usize {
        self.outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .map(Vec::len)
            .sum()
    }

    /// Takes the output for `to` under `tag`, waiting up to `wait` while the job runs. `Ok(None)`
    /// if the wait ran out; an error with the job's state if it ended without that output.
    pub async fn take_output(
        &self,
        to: PartyId,
        tag: &Tag,
        wait: Duration,
    ) -> Result<Option<Vec<u8>>, JobState> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let key = (to, tag.clone());
            if let Some(v) = self
                .outbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&key)
                .and_then(VecDeque::pop_front)
            {
                return Ok(Some(v));
            }
            let state = self.state();
            if state.is_over() {
                return Err(state);
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
}
