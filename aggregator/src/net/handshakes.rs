//! The acceptor's places for peer handshakes in progress. A stream that has not yet sent an
//! authentic hello is anyone's: it holds a place for at most [`HELLO_TIMEOUT`], one source (a
//! remote address: one TCP connection) holds at most [`PER_SOURCE`] places, and when every place
//! is taken a new stream evicts the oldest unauthenticated one instead of being refused. A peer
//! needs its place for one round trip (challenge out, hello back), so a flood of streams that
//! never speak can slow a restarted peer's rejoining but not stop it (security review 2,
//! finding 13: sixteen silent streams held every place for ten seconds at a time, and a
//! restarted server gave up and exited). A place is given back as soon as the hello
//! authenticates, so a confirmed peer is never evicted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::AbortHandle;
use tonic::Status;

/// How long a new stream may take to deliver its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// Handshakes an acceptor runs at once; past it the oldest is evicted.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes one remote address runs at once (a peer needs one).
pub const PER_SOURCE: usize = 4;

/// One place.
struct Place {
    id: u64,
    source: Option<SocketAddr>,
    abort: Option<AbortHandle>,
}

#[derive(Default)]
struct Pending {
    next: u64,
    places: VecDeque<Place>,
}

/// The places of one acceptor.
#[derive(Default)]
pub struct Handshakes {
    pending: Mutex<Pending>,
}

impl std::fmt::Debug for Handshakes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Handshakes({} in progress)", self.in_progress())
    }
}

/// A stream's place, given back when dropped (the handshake ended, failed or was evicted).
pub struct Ticket {
    id: u64,
    handshakes: Arc<Handshakes>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.handshakes.remove(self.id);
    }
}

impl Handshakes {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handshakes in progress.
    pub fn in_progress(&self) -> usize {
        self.pending().places.len()
    }

    /// A place for a new stream from `source`: refused if the source holds [`PER_SOURCE`];
    /// when all [`MAX_HANDSHAKES`] are taken, the oldest is evicted (its task aborted).
    pub fn admit(self: &Arc<Self>, source: Option<SocketAddr>) -> Result<Ticket, Status> {
        let mut pending = self.pending();
        if let Some(src) = source
            && pending
                .places
                .iter()
                .filter(|p| p.source == Some(src))
                .count()
                >= PER_SOURCE
        {
            return Err(Status::resource_exhausted(
                "too many handshakes in progress from this address",
            ));
        }
        if pending.places.len() >= MAX_HANDSHAKES
            && let Some(oldest) = pending.places.pop_front()
            && let Some(abort) = oldest.abort
        {
            abort.abort();
        }
        pending.next += 1;
        let id = pending.next;
        pending.places.push_back(Place {
            id,
            source,
            abort: None,
        });
        Ok(Ticket {
            id,
            handshakes: Arc::clone(self),
        })
    }

    /// Gives the ticket's task handle to its place, so an eviction can stop it.
    pub fn attach(&self, ticket_id: u64, abort: AbortHandle) {
        if let Some(place) = self.pending().places.iter_mut().find(|p| p.id == ticket_id) {
            place.abort = Some(abort);
        }
    }

    fn remove(&self, id: u64) {
        self.pending().places.retain(|p| p.id != id);
    }
}

impl Ticket {
    /// Its id (for [`Handshakes::attach`]).
    pub fn id(&self) -> u64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_acceptor_evicts_its_oldest_handshake_and_bounds_each_source() {
        let h = Arc::new(Handshakes::default());
        let addr = |port: usize| Some(SocketAddr::from(([127, 0, 0, 1], port as u16)));
        // Every place taken by silent streams, PER_SOURCE per source, each with a task that
        // would wait forever.
        let mut tickets = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..MAX_HANDSHAKES {
            let t = h.admit(addr(1000 + i / PER_SOURCE)).unwrap();
            let task = tokio::spawn(std::future::pending::<()>());
            h.attach(t.id(), task.abort_handle());
            tickets.push(t);
            tasks.push(task);
        }
        assert_eq!(h.in_progress(), MAX_HANDSHAKES);
        // A source at its bound is refused.
        let refused = h.admit(addr(1000)).err().expect("a source at its bound");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        // A restarted peer is admitted: the oldest place is evicted and its task stopped.
        let peer = h.admit(addr(9)).unwrap();
        assert_eq!(h.in_progress(), MAX_HANDSHAKES);
        let stopped = tasks.remove(0).await;
        assert!(stopped.unwrap_err().is_cancelled());
        // A ticket dropped (the hello authenticated, or the stream ended) gives its place back.
        drop(peer);
        assert_eq!(h.in_progress(), MAX_HANDSHAKES - 1);
        drop(tickets);
        assert_eq!(h.in_progress(), 0);
    }
}
