//! [`ReplayGuard`]: which authentic envelopes were opened, to refuse a second copy.

use std::collections::HashSet;

use super::error::SealError;
use super::header::Header;
use super::purpose::Purpose;
use crate::party::PartyId;

/// Remembers which authentic envelopes were opened, to refuse a second copy.
#[derive(Debug, Default)]
pub struct ReplayGuard {
    seen: HashSet<(PartyId, Purpose, u64, u64, u64)>,
}

impl ReplayGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(header: &Header) -> (PartyId, Purpose, u64, u64, u64) {
        (
            header.sender,
            header.purpose,
            header.job_id,
            header.round,
            header.chunk,
        )
    }

    fn replayed(header: &Header) -> SealError {
        SealError::Replayed {
            sender: header.sender,
            job_id: header.job_id,
            round: header.round,
            chunk: header.chunk,
        }
    }

    /// Records an authenticated header; fails if the same header was recorded before.
    pub fn record(&mut self, header: &Header) -> Result<(), SealError> {
        if self.seen.insert(Self::key(header)) {
            Ok(())
        } else {
            Err(Self::replayed(header))
        }
    }

    /// Records all of `headers` or, if any was recorded before (or repeats within them), none.
    pub fn record_all(&mut self, headers: &[Header]) -> Result<(), SealError> {
        let mut fresh = std::collections::HashSet::with_capacity(headers.len());
        for h in headers {
            let key = Self::key(h);
            if self.seen.contains(&key) || !fresh.insert(key) {
                return Err(Self::replayed(h));
            }
        }
        self.seen.extend(fresh);
        Ok(())
    }
}
