//! [`prepare`]: makes a program's [`Needs`] ahead of its online phase, each kind by the protocol
//! whose pool holds it. It sits above the protocols; the pools themselves ([`crate::prep`]) sit
//! below them.

use crate::error::Broken;
use tessera_common::net::Network;

use crate::prep::{Need, Needs};
use crate::{MpcError, Session, aby3, pond, securenn};

/// Makes `needs` ahead, kind by kind in a fixed order; every server calls it with the same
/// needs. A kind this session's protocol has no pool for is [`crate::error::Broken::NoPool`].
pub async fn prepare<N: Network>(session: &Session<N>, needs: &Needs) -> Result<(), MpcError> {
    for (need, count) in needs.iter() {
        let n = usize::try_from(count).map_err(|_| Broken::TooMany {
            need: need.clone(),
            count,
        })?;
        match need {
            Need::DaBits { ring_bits: 64 } => aby3::prep::make_dabits::<u64, N>(session, n).await?,
            Need::DaBits { ring_bits: 128 } => {
                aby3::prep::make_dabits::<u128, N>(session, n).await?
            }
            Need::MsbMasks { ring_bits: 64 } => {
                securenn::prep::make_msb_masks::<u64, N>(session, n).await?
            }
            Need::MsbMasks { ring_bits: 128 } => {
                securenn::prep::make_msb_masks::<u128, N>(session, n).await?
            }
            Need::Triple {
                ring_bits: 64,
                shape,
            } => pond::prep::make_triples::<u64, N>(session, shape, n).await?,
            Need::Triple {
                ring_bits: 128,
                shape,
            } => pond::prep::make_triples::<u128, N>(session, shape, n).await?,
            _ => return Err(Broken::NoPool(need.clone()).into()),
        }
    }
    Ok(())
}
