//! Who does what in Pond: `server0` and `server1` compute on additive shares, `server2` produces
//! their correlated randomness ([`PRODUCER`]), from PRGs it shares with each of them.

use crate::error::PartyError;
use tessera_common::net::Network;

use crate::{MpcError, Op, Session};

/// The producer of correlated randomness.
pub const PRODUCER: usize = 2;

/// PRG stream of `c0`, the part of a triple's product `server0` derives itself.
pub(crate) const C0_STREAM: u64 = 7;

/// The PRG computing server `i` shares with the producer for `op`'s stream `sub`, from whichever of
/// the two this server is (the correlated randomness of a triple costs no communication).
pub(crate) fn producer_prg<N: Network>(
    session: &Session<N>,
    op: &Op,
    i: usize,
    sub: u64,
) -> Result<tessera_common::prg::Prg, MpcError> {
    let other = if session.me() == PRODUCER {
        i
    } else {
        PRODUCER
    };
    session.shared_prg(other, op, sub)
}

pub(crate) fn computing(session: &Session<impl Network>) -> bool {
    session.me() < PRODUCER
}

pub(crate) fn check_servers<N: Network>(session: &Session<N>) -> Result<(), MpcError> {
    if session.servers() < 3 {
        return Err(PartyError::Servers {
            protocol: "Pond",
            needed: 3,
            have: session.servers(),
        }
        .into());
    }
    Ok(())
}
