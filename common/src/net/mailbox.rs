//! The receive side shared by every [`super::Network`]: messages wait under `(from, tag)` until
//! asked for, and a waiting `recv` is woken by the message, by its peer's disconnection, or by the
//! timeout.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{NetError, Tag};
use crate::party::PartyId;

type Waiter = oneshot::Sender<Result<Vec<u8>, NetError>>;

enum Slot {
    Queued(VecDeque<Vec<u8>>),
    Waiting(Waiter),
}

#[derive(Default)]
struct State {
    slots: HashMap<(PartyId, Tag), Slot>,
    gone: HashMap<PartyId, NetError>,
    closed: bool,
}

/// Messages delivered to one party, keyed by sender and tag.
#[derive(Default)]
pub struct Mailbox {
    state: Mutex<State>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every update is one insert
        // or remove), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a message from `from` under `tag`; `false` if the mailbox is closed (its owner
    /// left) and the message was dropped.
    pub fn deliver(&self, from: PartyId, tag: Tag, payload: Vec<u8>) -> bool {
        let mut state = self.lock();
        if state.closed {
            return false;
        }
        let key = (from, tag);
        let payload = match state.slots.remove(&key) {
            Some(Slot::Waiting(waiter)) => match waiter.send(Ok(payload)) {
                Ok(()) => return true,
                // The receiver gave up (timeout); keep the message for a later recv.
                Err(Ok(payload)) => payload,
                Err(Err(_)) => return true,
            },
            Some(Slot::Queued(mut queue)) => {
                queue.push_back(payload);
                state.slots.insert(key, Slot::Queued(queue));
                return true;
            }
            None => payload,
        };
        state
            .slots
            .insert(key, Slot::Queued(VecDeque::from([payload])));
        true
    }

    /// Closes the mailbox: its owner left, later deliveries are refused and queued messages
    /// dropped.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.slots.clear();
    }

    /// Marks `peer` as gone: waiting and future receives from it fail with `error` (messages it
    /// sent before leaving can still be received).
    pub fn fail_peer(&self, peer: PartyId, error: NetError) {
        let mut state = self.lock();
        let waiting: Vec<(PartyId, Tag)> = state
            .slots
            .iter()
            .filter(|((from, _), slot)| *from == peer && matches!(slot, Slot::Waiting(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in waiting {
            if let Some(Slot::Waiting(waiter)) = state.slots.remove(&key) {
                let _ = waiter.send(Err(error.clone()));
            }
        }
        state.gone.insert(peer, error);
    }

    /// Drops every queued message whose tag starts with `prefix` (a session or round that is
    /// over: nobody will ask for them); returns how many were dropped. Waiting receives are left
    /// alone.
    pub fn forget(&self, prefix: &str) -> usize {
        let mut state = self.lock();
        let mut dropped = 0;
        state.slots.retain(|(_, tag), slot| match slot {
            Slot::Queued(queue) if tag.0.starts_with(prefix) => {
                dropped += queue.len();
                false
            }
            _ => true,
        });
        dropped
    }

    /// Messages queued and not yet received.
    pub fn queued(&self) -> usize {
        self.lock()
            .slots
            .values()
            .map(|slot| match slot {
                Slot::Queued(queue) => queue.len(),
                Slot::Waiting(_) => 0,
            })
            .sum()
    }

    /// Clears a peer's gone mark (it reconnected).
    pub fn revive_peer(&self, peer: PartyId) {
        self.lock().gone.remove(&peer);
    }

    /// Waits for the message `from` sent under `tag`, at most `timeout`.
    pub async fn recv(
        &self,
        from: PartyId,
        tag: &Tag,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let key = (from, tag.clone());
        let rx = {
            let mut state = self.lock();
            match state.slots.remove(&key) {
                Some(Slot::Queued(mut queue)) => {
                    let msg = queue.pop_front();
                    if !queue.is_empty() {
                        state.slots.insert(key.clone(), Slot::Queued(queue));
                    }
                    if let Some(msg) = msg {
                        return Ok(msg);
                    }
                }
                Some(Slot::Waiting(_)) => {
                    // Two concurrent receives of one (from, tag): tags must be unique.
                    return Err(NetError::Transport {
                        peer: from,
                        reason: format!("two concurrent receives of tag {tag:?}"),
                    });
                }
                None => {}
            }
            if let Some(err) = state.gone.get(&from) {
                return Err(err.clone());
            }
            let (tx, rx) = oneshot::channel();
            state.slots.insert(key.clone(), Slot::Waiting(tx));
            rx
        };
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NetError::Disconnected(from)),
            Err(_) => {
                let mut state = self.lock();
                // Remove our waiter unless a message raced in and replaced it.
                if let Some(Slot::Waiting(_)) = state.slots.get(&key) {
                    state.slots.remove(&key);
                }
                Err(NetError::Timeout {
                    from,
                    tag: tag.clone(),
                    after: timeout,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forget_drops_only_the_queued_messages_of_a_prefix() {
        let m = Mailbox::new();
        let p = PartyId::Server(1);
        for tag in ["job/7/a", "job/7/b", "job/70/a", "job/8/a"] {
            assert!(m.deliver(p, Tag::new(tag), vec![1]));
        }
        assert!(m.deliver(p, Tag::new("job/7/a"), vec![2]));
        assert_eq!(m.queued(), 5);
        assert_eq!(m.forget("job/7/"), 3);
        assert_eq!(m.queued(), 2);
        let wait = Duration::from_millis(10);
        assert!(matches!(
            m.recv(p, &Tag::new("job/7/a"), wait).await,
            Err(NetError::Timeout { .. })
        ));
        assert_eq!(
            m.recv(p, &Tag::new("job/70/a"), wait).await.unwrap(),
            vec![1]
        );
        assert_eq!(
            m.recv(p, &Tag::new("job/8/a"), wait).await.unwrap(),
            vec![1]
        );
        assert_eq!(m.queued(), 0);
    }
}
