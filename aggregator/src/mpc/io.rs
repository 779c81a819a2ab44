//! The outside parties' end of inputs and outputs: a data owner or the model owner secret-shares
//! a tensor to the servers, or receives a result that only it may see. The servers' end is
//! `input_from`/`output_to` in [`super::pond`] and [`super::aby3`]; both ends name the exchange
//! with the same label.

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
    fn holders(self) -> usize {
        match self {
            Scheme::Additive => 2,
            Scheme::Replicated => 3,
        }
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
    match scheme {
        Scheme::Additive => {
            let [a, b, c] = aby3::split3::<Arith<R>>(value.as_slice());
            let second: Vec<R> = b.iter().zip(&c).map(|(x, y)| x.add(*y)).collect();
            net.send(PartyId::Server(0), &tag, encode_elements(&a))
                .await?;
            net.send(PartyId::Server(1), &tag, encode_elements(&second))
                .await?;
        }
        Scheme::Replicated => {
            let shares = aby3::split3::<Arith<R>>(value.as_slice());
            for i in 0..3 {
                let mut pair = shares[i].clone();
                pair.extend_from_slice(&shares[(i + 1) % 3]);
                net.send(PartyId::Server(i as u8), &tag, encode_elements(&pair))
                    .await?;
            }
        }
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
    let n: usize = shape.iter().product();
    let mut sum = vec![R::ZERO; n];
    for i in 0..scheme.holders() {
        let peer = PartyId::Server(i as u8);
        let bytes = net.recv(peer, &tag).await?;
        let share = tessera_common::ring::decode_elements::<R>(&bytes)
            .filter(|v| v.len() == n)
            .ok_or_else(|| MpcError::Protocol {
                peer,
                reason: format!("output share under {label:?} is not {n} elements"),
            })?;
        for (s, v) in sum.iter_mut().zip(share) {
            *s = s.add(v);
        }
    }
    Ok(RingTensor::from_vec(shape, sum)?)
}
