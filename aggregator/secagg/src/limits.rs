//! What secure aggregation lets requests hold at a server, so that no sender (with or without a
//! key) can exhaust its memory: staging memory shared by all uploads in flight, one upload in
//! flight per data owner and round, and the jobs a long-lived server holds (finished and
//! abandoned ones are dropped). The gRPC front's own bounds (calls, connections, slow messages)
//! are the aggregator's `GateLimits`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_common::PartyId;

use super::ServiceError;

/// Bounds a server enforces on its callers.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bytes all uploads in flight may stage together (each stages one share vector).
    pub staging_bytes: usize,
    /// Jobs a server holds at once. Starting one more first drops finished jobs and jobs idle
    /// longer than `job_idle` (oldest first); if none can go, the start is refused as busy.
    pub max_jobs: usize,
    /// How long a job whose round is over may wait for its next round before it counts as
    /// abandoned (a model owner that crashed and resumed as a new job) and may be dropped.
    pub job_idle: Duration,
    /// The cluster's minimum privacy (`[privacy]` in the cluster file): a job below it is
    /// refused at its start.
    pub privacy: tessera_common::dp::PrivacyPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            staging_bytes: 1 << 30,
            max_jobs: 16,
            job_idle: Duration::from_secs(3600),
            privacy: Default::default(),
        }
    }
}

/// Staging memory shared by every upload in flight at one server.
#[derive(Debug)]
pub(crate) struct StagingBudget {
    limit: usize,
    used: AtomicUsize,
}

impl StagingBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(StagingBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Reserves `bytes` until the returned reservation is dropped, or refuses if the budget
    /// would be exceeded.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, ServiceError> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next =
                used.checked_add(bytes)
                    .filter(|n| *n <= self.limit)
                    .ok_or(ServiceError::Busy {
                        what: "upload staging memory",
                        limit: self.limit,
                    })?;
            match self
                .used
                .compare_exchange(used, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(Reservation {
                        budget: Arc::clone(self),
                        bytes,
                    });
                }
                Err(now) => used = now,
            }
        }
    }

    /// Bytes reserved now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Staging memory held by one upload; released on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<StagingBudget>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Which data owners are uploading to, or have committed to, a job's current round (leader).
#[derive(Debug, Default)]
pub(crate) struct UploadSlots {
    round: u64,
    uploading: HashSet<PartyId>,
    committed: HashSet<PartyId>,
}

/// The one upload in flight of a data owner for a round; frees its place on drop.
#[derive(Debug)]
pub(crate) struct UploadSlot {
    slots: Arc<Mutex<UploadSlots>>,
    owner: PartyId,
    round: u64,
}

fn lock(slots: &Mutex<UploadSlots>) -> std::sync::MutexGuard<'_, UploadSlots> {
    slots.lock().unwrap_or_else(|p| p.into_inner())
}

impl UploadSlots {
    /// A new round: nobody uploading or committed.
    pub(crate) fn open(slots: &Mutex<UploadSlots>, round: u64) {
        let mut s = lock(slots);
        s.round = round;
        s.uploading.clear();
        s.committed.clear();
    }

    /// Claims `owner`'s upload slot for `round`: refused if the round is not the current one,
    /// the owner committed already (a replayed manifest), or another upload of it is in flight.
    pub(crate) fn claim(
        slots: &Arc<Mutex<UploadSlots>>,
        job: u64,
        owner: PartyId,
        round: u64,
    ) -> Result<UploadSlot, ServiceError> {
        let mut s = lock(slots);
        if s.round != round {
            return Err(ServiceError::RoundClosed { job, round });
        }
        if s.committed.contains(&owner) {
            return Err(ServiceError::DuplicateUpload(owner));
        }
        if !s.uploading.insert(owner) {
            return Err(ServiceError::UploadInProgress(owner));
        }
        Ok(UploadSlot {
            slots: Arc::clone(slots),
            owner,
            round,
        })
    }
}

impl UploadSlot {
    /// The upload was committed: the owner may not upload again this round.
    pub(crate) fn commit(&self) {
        let mut s = lock(&self.slots);
        if s.round == self.round {
            s.committed.insert(self.owner);
        }
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut s = lock(&self.slots);
        if s.round == self.round {
            s.uploading.remove(&self.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_past_its_limit_and_frees_on_drop() {
        let budget = StagingBudget::new(100);
        let a = budget.reserve(60).unwrap();
        assert!(matches!(
            budget.reserve(41),
            Err(ServiceError::Busy { limit: 100, .. })
        ));
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.used(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert!(matches!(
            budget.reserve(usize::MAX),
            Err(ServiceError::Busy {
                what: "upload staging memory",
                ..
            })
        ));
    }

    #[test]
    fn one_upload_in_flight_per_owner_and_none_after_a_commit() {
        let slots = Arc::new(Mutex::new(UploadSlots::default()));
        UploadSlots::open(&slots, 3);
        let owner = PartyId::DataOwner(1);
        assert!(matches!(
            UploadSlots::claim(&slots, 7, owner, 2),
            Err(ServiceError::RoundClosed { round: 2, .. })
        ));
        let first = UploadSlots::claim(&slots, 7, owner, 3).unwrap();
        assert!(matches!(
            UploadSlots::claim(&slots, 7, owner, 3),
            Err(ServiceError::UploadInProgress(o)) if o == owner
        ));
        // Another owner is not affected.
        let other = UploadSlots::claim(&slots, 7, PartyId::DataOwner(2), 3).unwrap();
        drop(other);
        first.commit();
        drop(first);
        assert!(matches!(
            UploadSlots::claim(&slots, 7, owner, 3),
            Err(ServiceError::DuplicateUpload(o)) if o == owner
        ));
        // A dropped, uncommitted upload frees its place.
        let second = UploadSlots::claim(&slots, 7, PartyId::DataOwner(2), 3).unwrap();
        drop(second);
        UploadSlots::claim(&slots, 7, PartyId::DataOwner(2), 3).unwrap();
    }
}
