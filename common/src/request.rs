//! Authenticated read requests: a data owner's round poll and weight fetch, and the model
//! owner's status query, carry a token sealed by the caller for the server, so a server answers
//! only registered parties and knows who asks.
//!
//! A token is an envelope of purpose [`Purpose::Request`] whose header binds the job, the
//! request's round argument and (in the `chunk` field) the caller's clock in whole seconds; its
//! plaintext is the request kind. The server accepts it within [`MAX_CLOCK_SKEW_SECS`] of its own
//! clock. Within that window a recorded token can be replayed only to ask the same question
//! again, whose answer is either public to the caller's role or sealed for the caller.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::party::PartyId;
use crate::seal::{Context, Expected, Purpose, SealError, Sealer};

/// How far a token's clock may be from the server's.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// What a token authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RequestKind {
    /// Poll for a round (`round` = the last round seen).
    FetchRound = 1,
    /// Fetch a round's weights (`round` = that round).
    FetchWeights = 2,
    /// A job's status (`round` = 0).
    Status = 3,
    /// Fetch an MPC job's output (`round` = the output's index in the job).
    FetchOutput = 4,
    /// Any call to a server's client services (`job_id` and `round` = 0): sent in the call's
    /// headers, it names the caller before the server reads a byte of the call's body.
    Call = 5,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The token failed to open: unknown sender, bad tag, another job or round.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// The token is for another kind of request.
    #[error("token is for another kind of request")]
    WrongKind,
    /// The token's clock is too far from the server's.
    #[error("token is {skew_secs} s away from the server's clock (at most {MAX_CLOCK_SKEW_SECS})")]
    Stale {
        /// The distance in seconds.
        skew_secs: u64,
    },
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seals a token for `server` authorising `kind` on `job_id` / `round` at `now` seconds.
pub fn seal_request(
    sealer: &Sealer,
    server: PartyId,
    kind: RequestKind,
    job_id: u64,
    round: u64,
    now: u64,
) -> Result<Vec<u8>, SealError> {
    let context = Context {
        purpose: Purpose::Request,
        job_id,
        round,
        chunk: now,
    };
    sealer.seal_for(server, &context, &[kind as u8])
}

/// Opens a token at the server: the caller it names, if it authorises `kind` on `job_id` /
/// `round` and its clock is within [`MAX_CLOCK_SKEW_SECS`] of `now`.
pub fn open_request(
    sealer: &Sealer,
    token: &[u8],
    kind: RequestKind,
    job_id: u64,
    round: u64,
    now: u64,
) -> Result<PartyId, RequestError> {
    let opened = sealer.open(
        token,
        &Expected {
            purpose: Purpose::Request,
            job_id,
            round,
            sender: None,
        },
    )?;
    if opened.plaintext != [kind as u8] {
        return Err(RequestError::WrongKind);
    }
    let skew_secs = opened.header.chunk.abs_diff(now);
    if skew_secs > MAX_CLOCK_SKEW_SECS {
        return Err(RequestError::Stale { skew_secs });
    }
    Ok(opened.header.sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn tokens_bind_caller_kind_job_round_and_time() {
        let owner = Identity::generate(PartyId::DataOwner(3), &mut rand::rng());
        let server = Identity::generate(PartyId::Server(0), &mut rand::rng());
        let keys = [
            (owner.party(), *owner.public_key()),
            (server.party(), *server.public_key()),
        ];
        let sealer = |id: &Identity| Sealer::new(id, keys.iter().map(|(p, k)| (*p, k)));
        let (o, s) = (sealer(&owner), sealer(&server));
        let t = seal_request(&o, PartyId::Server(0), RequestKind::FetchRound, 7, 2, 1000).unwrap();
        let open = |kind, job, round, now| open_request(&s, &t, kind, job, round, now);
        assert_eq!(
            open(RequestKind::FetchRound, 7, 2, 1100),
            Ok(PartyId::DataOwner(3))
        );
        assert_eq!(
            open(RequestKind::Status, 7, 2, 1000),
            Err(RequestError::WrongKind)
        );
        assert!(matches!(
            open(RequestKind::FetchRound, 8, 2, 1000),
            Err(RequestError::Seal(SealError::WrongJob { .. }))
        ));
        assert!(matches!(
            open(RequestKind::FetchRound, 7, 3, 1000),
            Err(RequestError::Seal(SealError::WrongRound { .. }))
        ));
        assert_eq!(
            open(
                RequestKind::FetchRound,
                7,
                2,
                1000 + MAX_CLOCK_SKEW_SECS + 1
            ),
            Err(RequestError::Stale {
                skew_secs: MAX_CLOCK_SKEW_SECS + 1
            })
        );
        // Garbage, or a token from a party without a registered key.
        assert!(matches!(
            open_request(&s, &[1, 2, 3], RequestKind::FetchRound, 7, 2, 1000),
            Err(RequestError::Seal(SealError::Malformed(_)))
        ));
        let stranger = Identity::generate(PartyId::DataOwner(9), &mut rand::rng());
        let forged = seal_request(
            &Sealer::new(&stranger, keys.iter().map(|(p, k)| (*p, k))),
            PartyId::Server(0),
            RequestKind::FetchRound,
            7,
            2,
            1000,
        )
        .unwrap();
        assert!(matches!(
            open_request(&s, &forged, RequestKind::FetchRound, 7, 2, 1000),
            Err(RequestError::Seal(SealError::UnknownSender(_)))
        ));
    }
}
