//! The outside parties' end of inputs and outputs: a data owner or the model owner secret-shares
//! a tensor to the servers, or receives a result that only it may see. The servers' end is
//! `input_from`/`output_to` in [`super::pond`] and [`super::aby3`]; both ends name the exchange
//! with the same label.

use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor};
use tessera_common::sharing::outside::{Scheme, input_payloads, reconstruct};

use super::{MpcError, session::party_tag};

/// Secret-shares `value` to the servers under `label` (fresh randomness per call).
pub async fn send_input<R: Ring, N: Network>(
    net: &N,
    scheme: Scheme,
    label: &str,
    value: &RingTensor<R>,
) -> Result<(), MpcError> {
    let tag = party_tag(label);
    for (server, payload) in input_payloads(scheme, value)? {
        net.send(server, &tag, payload).await?;
    }
    Ok(())
}

/// Receives an output revealed to this party under `label` and reconstructs it.
pub async fn receive_output<R: Ring, N: Network>(
    net: &N,
    scheme: Scheme,
    label: &str,
    shape: &[usize],
) -> Result<RingTensor<R>, MpcError> {
    let tag = party_tag(label);
    let mut shares = Vec::with_capacity(scheme.holders());
    for i in 0..scheme.holders() {
        let peer = PartyId::Server(i as u8);
        shares.push((peer, net.recv(peer, &tag).await?));
    }
    Ok(reconstruct(label, &shares, shape)?)
}
