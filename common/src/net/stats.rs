//! Communication counters: messages, bytes and communication rounds.
//!
//! A *round* is counted the way protocol papers count them, from one party's point of view: a
//! send that follows a receive (or the first send) starts a new round; several sends in a row, or
//! sends to several peers, are one round. For a protocol whose parties send, then receive, then
//! send again, this is exactly the number of sequential message flights.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A snapshot of one endpoint's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Communication rounds.
    pub rounds: u64,
}

impl NetStats {
    /// The counters accumulated since `earlier` (for per-operation accounting).
    pub fn since(&self, earlier: &NetStats) -> NetStats {
        NetStats {
            messages_sent: self.messages_sent - earlier.messages_sent,
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            messages_received: self.messages_received - earlier.messages_received,
            bytes_received: self.bytes_received - earlier.bytes_received,
            rounds: self.rounds - earlier.rounds,
        }
    }
}

/// Lock-free counters shared by an endpoint's tasks.
#[derive(Debug)]
pub struct Counters {
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    rounds: AtomicU64,
    in_send_phase: AtomicBool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            messages_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            in_send_phase: AtomicBool::new(false),
        }
    }
}

impl Counters {
    /// Records one sent message of `bytes` payload bytes.
    pub fn on_send(&self, bytes: usize) {
        self.messages_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
        if !self.in_send_phase.swap(true, Ordering::Relaxed) {
            self.rounds.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one received message of `bytes` payload bytes.
    pub fn on_recv(&self, bytes: usize) {
        self.messages_received.fetch_add(1, Ordering::Relaxed);
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.in_send_phase.store(false, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> NetStats {
        NetStats {
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            messages_received: self.messages_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            rounds: self.rounds.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_count_send_phases() {
        let c = Counters::default();
        c.on_send(10);
        c.on_send(10); // same flight
        c.on_recv(5);
        c.on_recv(5);
        c.on_send(1); // next flight
        let s = c.snapshot();
        assert_eq!(s.rounds, 2);
        assert_eq!(s.bytes_sent, 21);
        assert_eq!(s.messages_received, 2);
        assert_eq!(s.since(&NetStats { rounds: 1, ..s }).rounds, 1);
    }
}
