//! A data owner's notice that it cannot take part in a job, and why.
//!
//! A data owner checks a job's model against its own data when it first sees the job (sample
//! shape, labels: [`crate::model_spec::ModelSpec::check_data`]). If they do not fit it seals a
//! notice for the leader naming the reason and sits the job out; the leader keeps one reason
//! per owner in the job's status, and the model owner prints it and stops the job when too few
//! owners are left to reach `min_clients`. Without this the reason stayed in the owner's own
//! log and the model owner saw only rounds without contributors.
//!
//! The notice is sealed like everything else (purpose [`Purpose::Notice`], the job's id, round
//! 0), so only a data owner of the cluster can decline, and only for itself.

use crate::PartyId;
use crate::seal::{Context, Expected, Header, Purpose, SealError, Sealer};

/// The longest reason a notice carries, in bytes (a longer one is cut at a character boundary
/// when sealed, and refused when opened).
pub const MAX_REASON_BYTES: usize = 1024;

/// Why a notice was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoticeError {
    /// It does not open: unknown sender, forged, not for this server, wrong purpose.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Only data owners decline jobs.
    #[error("{0} is not a data owner")]
    NotDataOwner(PartyId),
    /// A reason longer than [`MAX_REASON_BYTES`].
    #[error("notice: reason of {0} bytes (at most {MAX_REASON_BYTES})")]
    TooLong(usize),
    /// A reason that is not UTF-8.
    #[error("notice: reason is not UTF-8")]
    NotUtf8,
}

/// A notice that `sealer`'s owner cannot take part in job `job_id` because of `reason`, sealed
/// for the leader.
pub fn seal_decline(sealer: &Sealer, job_id: u64, reason: &str) -> Result<Vec<u8>, SealError> {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let ctx = Context {
        purpose: Purpose::Notice,
        job_id,
        round: 0,
        chunk: 0,
    };
    sealer.seal_for(PartyId::Server(0), &ctx, &reason.as_bytes()[..end])
}

/// Opens a notice: who declined which job, and why.
pub fn open_decline(
    sealer: &Sealer,
    envelope: &[u8],
) -> Result<(PartyId, u64, String), NoticeError> {
    let header = Header::parse(envelope)?;
    let opened = sealer.open(
        envelope,
        &Expected {
            purpose: Purpose::Notice,
            job_id: header.job_id,
            round: 0,
            sender: None,
        },
    )?;
    let sender = opened.header.sender;
    if !matches!(sender, PartyId::DataOwner(_)) {
        return Err(NoticeError::NotDataOwner(sender));
    }
    if opened.plaintext.len() > MAX_REASON_BYTES {
        return Err(NoticeError::TooLong(opened.plaintext.len()));
    }
    let reason = String::from_utf8(opened.plaintext).map_err(|_| NoticeError::NotUtf8)?;
    Ok((sender, header.job_id, reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn sealers() -> (Sealer, Sealer, Sealer) {
        let ids: Vec<Identity> = [
            PartyId::Server(0),
            PartyId::DataOwner(3),
            PartyId::ModelOwner,
        ]
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
        let of = |i: usize| Sealer::new(&ids[i], ids.iter().map(|i| (i.party(), i.public_key())));
        (of(0), of(1), of(2))
    }

    #[test]
    fn only_a_data_owner_declines_and_reasons_are_bounded() {
        let (leader, owner, model_owner) = sealers();
        let long = "é".repeat(MAX_REASON_BYTES);
        let envelope = seal_decline(&owner, 42, &long).unwrap();
        let (who, job, reason) = open_decline(&leader, &envelope).unwrap();
        assert_eq!((who, job), (PartyId::DataOwner(3), 42));
        assert_eq!(
            reason.len(),
            MAX_REASON_BYTES,
            "cut at a character boundary"
        );
        let from_model_owner = seal_decline(&model_owner, 42, "no").unwrap();
        assert_eq!(
            open_decline(&leader, &from_model_owner),
            Err(NoticeError::NotDataOwner(PartyId::ModelOwner))
        );
        let mut forged = seal_decline(&owner, 42, "shape").unwrap();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(matches!(
            open_decline(&leader, &forged),
            Err(NoticeError::Seal(_))
        ));
        // Another purpose's envelope is not a notice.
        let ctx = Context {
            purpose: Purpose::Control,
            job_id: 42,
            round: 0,
            chunk: 0,
        };
        let control = owner.seal_for(PartyId::Server(0), &ctx, b"x").unwrap();
        assert!(matches!(
            open_decline(&leader, &control),
            Err(NoticeError::Seal(_))
        ));
        // A notice sealed by hand, past the bound or not UTF-8, is refused as such.
        let notice = Context {
            purpose: Purpose::Notice,
            ..ctx
        };
        let seal = |reason: &[u8]| owner.seal_for(PartyId::Server(0), &notice, reason).unwrap();
        assert_eq!(
            open_decline(&leader, &seal(&[b'x'; MAX_REASON_BYTES + 1])),
            Err(NoticeError::TooLong(MAX_REASON_BYTES + 1))
        );
        assert_eq!(
            open_decline(&leader, &seal(&[0xff, 0xfe])),
            Err(NoticeError::NotUtf8)
        );
    }
}
