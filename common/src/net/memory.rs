//! The in-memory network: every party in one process (simulated mode and tests).
//!
//! [`MemoryNetwork::cluster`] makes one connected endpoint per party. Sending delivers straight into
//! the receiver's [`Mailbox`]; dropping an endpoint (or calling [`MemoryNetwork::disconnect`]) tells
//! every other endpoint that its party is gone, so their pending and future receives from it fail
//! with [`NetError::Disconnected`] instead of hanging.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Counters, DEFAULT_RECV_TIMEOUT, Mailbox, NetError, NetStats, Network, Tag};
use crate::party::PartyId;

/// One party's endpoint on an in-memory network.
#[derive(Debug)]
pub struct MemoryNetwork {
    me: PartyId,
    parties: Vec<PartyId>,
    mailboxes: Arc<HashMap<PartyId, Arc<Mailbox>>>,
    counters: Counters,
    timeout: Duration,
}

impl MemoryNetwork {
    /// Connected endpoints for `parties`, in the same order, with the default receive timeout.
    pub fn cluster(parties: &[PartyId]) -> Vec<MemoryNetwork> {
        Self::cluster_with_timeout(parties, DEFAULT_RECV_TIMEOUT)
    }

    /// Connected endpoints with a given receive timeout.
    pub fn cluster_with_timeout(parties: &[PartyId], timeout: Duration) -> Vec<MemoryNetwork> {
        let mailboxes: Arc<HashMap<PartyId, Arc<Mailbox>>> = Arc::new(
            parties
                .iter()
                .map(|p| (*p, Arc::new(Mailbox::new())))
                .collect(),
        );
        parties
            .iter()
            .map(|p| MemoryNetwork {
                me: *p,
                parties: parties.to_vec(),
                mailboxes: Arc::clone(&mailboxes),
                counters: Counters::default(),
                timeout,
            })
            .collect()
    }

    /// Leaves the network: every peer's receives from this party fail from now on.
    pub fn disconnect(&self) {
        if let Some(mine) = self.mailboxes.get(&self.me) {
            mine.close();
        }
        for (party, mailbox) in self.mailboxes.iter() {
            if *party != self.me {
                mailbox.fail_peer(self.me, NetError::Disconnected(self.me));
            }
        }
    }
}

impl Drop for MemoryNetwork {
    fn drop(&mut self) {
        self.disconnect();
    }
}

impl Network for MemoryNetwork {
    fn me(&self) -> PartyId {
        self.me
    }

    fn parties(&self) -> &[PartyId] {
        &self.parties
    }

    async fn send(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) -> Result<(), NetError> {
        let mailbox = self.mailboxes.get(&to).ok_or(NetError::UnknownPeer(to))?;
        let len = payload.len();
        if !mailbox.deliver(self.me, tag.clone(), payload) {
            return Err(NetError::Disconnected(to));
        }
        self.counters.on_send(len);
        Ok(())
    }

    async fn recv(&self, from: PartyId, tag: &Tag) -> Result<Vec<u8>, NetError> {
        if !self.mailboxes.contains_key(&from) {
            return Err(NetError::UnknownPeer(from));
        }
        let mailbox = &self.mailboxes[&self.me];
        let msg = mailbox.recv(from, tag, self.timeout).await?;
        self.counters.on_recv(msg.len());
        Ok(msg)
    }

    fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    fn forget(&self, prefix: &str) -> usize {
        self.mailboxes.get(&self.me).map_or(0, |m| m.forget(prefix))
    }

    fn queued(&self) -> usize {
        self.mailboxes.get(&self.me).map_or(0, |m| m.queued())
    }
}
