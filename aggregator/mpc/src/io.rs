//! The outside parties' end of inputs and outputs: a data owner or the model owner secret-shares
//! a tensor to the servers, or receives a result that only it may see. The servers' end is
//! `input_from`/`output_to` in [`super::pond`] and [`super::aby3`]; both ends name the exchange
//! with the same label.

use crate::error::Misbehaved;
use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor, encode_elements};

use super::aby3::{self, Arith};
use super::{MpcError, session::party_tag};

/// How the servers hold a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Two additive shares at `server0` and `server1` (Pond and SecureNN).
    Additive,
    /// Three replicated shares, server `i` holding `(x_i, x_{i+1})` (ABY3).
    Replicated,
}

impl Scheme {
    /// The servers that send their shares of an output.
    pub fn holders(self) -> usize {
        match self {
            Scheme::Additive => 2,
            Scheme::Replicated => 3,
        }
    }
}

/// What each server receives when an outside party secret-shares `value` (fresh randomness per
/// call): under [`Scheme::Additive`] `server0` and `server1` one share each, under
/// [`Scheme::Replicated`] server `i` the pair `(x_i, x_{i+1})`. Simulated mode sends these over
/// the network ([`send_input`]); networked mode seals them for each server.
pub fn input_payloads<R: Ring>(scheme: Scheme, value: &RingTensor<R>) -> Vec<(PartyId, Vec<u8>)> {
    let shares = aby3::split3::<Arith<R>>(value.as_slice());
    match scheme {
        Scheme::Additive => {
            let [a, b, c] = shares;
            let second: Vec<R> = b.iter().zip(&c).map(|(x, y)| x.add(*y)).collect();
            vec![
                (PartyId::Server(0), encode_elements(&a)),
                (PartyId::Server(1), encode_elements(&second)),
            ]
        }
        Scheme::Replicated => (0..3)
            .map(|i| {
                let mut pair = shares[i].clone();
                pair.extend_from_slice(&shares[(i + 1) % 3]);
                (PartyId::Server(i as u8), encode_elements(&pair))
            })
            .collect(),
    }
}

/// Secret-shares `value` to the servers under `label` (fresh randomness per call).
pub async fn send_input<R: Ring, N: Network>(
    net: &N,
    scheme: Scheme,
    label: &str,
    value: &RingTensor<R>,
) -> Result<(), MpcError> {
    let tag = party_tag(label);
    for (server, payload) in input_payloads(scheme, value) {
        net.send(server, &tag, payload).await?;
    }
    Ok(())
}

/// Adds the output shares the servers sent (`scheme.holders()` of them, in any order) into the
/// value of `shape`; a share of the wrong size is a protocol error naming its server.
pub fn reconstruct<R: Ring>(
    label: &str,
    shares: &[(PartyId, Vec<u8>)],
    shape: &[usize],
) -> Result<RingTensor<R>, MpcError> {
    let n: usize = shape.iter().product();
    let mut sum = vec![R::ZERO; n];
    for (peer, bytes) in shares {
        let share = tessera_common::ring::decode_elements::<R>(bytes)
            .filter(|v| v.len() == n)
            .ok_or_else(|| MpcError::Protocol {
                peer: *peer,
                reason: Misbehaved::OutputLength {
                    label: label.to_string(),
                    expected: n,
                },
            })?;
        for (s, v) in sum.iter_mut().zip(share) {
            *s = s.add(v);
        }
    }
    Ok(RingTensor::from_vec(shape, sum)?)
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
    reconstruct(label, &shares, shape)
}
