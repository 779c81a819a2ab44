//! The aggregation service's counters for operators: rounds by outcome, uploads accepted and
//! refused by reason, bytes of accepted uploads. Read by [`crate::metrics`], which adds the
//! gauges it reads from the service at scrape time (bytes staged, uploads kept, jobs held).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::ServiceError;
use super::messages::RoundState;
use tessera_common::refusal::Refusal;

/// Counters of one server's federated rounds and uploads (all only grow).
#[derive(Debug, Default)]
pub struct SecaggMetrics {
    rounds_opened: AtomicU64,
    rounds_aggregated: AtomicU64,
    rounds_failed: AtomicU64,
    uploads_accepted: AtomicU64,
    upload_bytes: AtomicU64,
    /// Refused uploads by [`ServiceError::reason`] (a fixed set of names: bounded).
    uploads_rejected: Mutex<BTreeMap<&'static str, u64>>,
}

/// What [`SecaggMetrics`] counted so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecaggCounts {
    /// Rounds opened (leader).
    pub rounds_opened: u64,
    /// Rounds closed with a result (leader).
    pub rounds_aggregated: u64,
    /// Rounds closed without one (leader).
    pub rounds_failed: u64,
    /// Uploads committed to a round.
    pub uploads_accepted: u64,
    /// Bytes of the committed uploads' envelopes.
    pub upload_bytes: u64,
    /// Uploads refused, by reason.
    pub uploads_rejected: BTreeMap<&'static str, u64>,
}

impl SecaggMetrics {
    /// A round opened.
    pub(crate) fn round_opened(&self) {
        self.rounds_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// A round closed in `state` (`Aggregated` or `Failed`; anything else is not an end).
    pub(crate) fn round_closed(&self, state: RoundState) {
        match state {
            RoundState::Aggregated => &self.rounds_aggregated,
            RoundState::Failed => &self.rounds_failed,
            _ => return,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// An upload of `bytes` envelope bytes committed.
    pub(crate) fn upload_accepted(&self, bytes: u64) {
        self.uploads_accepted.fetch_add(1, Ordering::Relaxed);
        self.upload_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// An upload refused with `error`.
    pub(crate) fn upload_rejected(&self, error: &ServiceError) {
        let mut map = self
            .uploads_rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *map.entry(error.name()).or_default() += 1;
    }

    /// The counts now.
    pub fn counts(&self) -> SecaggCounts {
        SecaggCounts {
            rounds_opened: self.rounds_opened.load(Ordering::Relaxed),
            rounds_aggregated: self.rounds_aggregated.load(Ordering::Relaxed),
            rounds_failed: self.rounds_failed.load(Ordering::Relaxed),
            uploads_accepted: self.uploads_accepted.load(Ordering::Relaxed),
            upload_bytes: self.upload_bytes.load(Ordering::Relaxed),
            uploads_rejected: self
                .uploads_rejected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
