//! The outside parties' end of a job's inputs and outputs, without the engine: how a data owner
//! or the model owner splits a value into what each server receives ([`input_payloads`]) and
//! how it puts an output back together from the servers' shares ([`reconstruct`]). The servers'
//! end (`input_from`/`output_to` in `tessera-mpc`'s Pond and ABY3) reads exactly these layouts.

use crate::PartyId;
use crate::ring::{Ring, RingTensor, decode_elements, encode_elements};

use super::{SharingError, share_additive, share_replicated};

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
/// [`Scheme::Replicated`] server `i` the pair `(x_i, x_{i+1})`, `x_i` first, as encoded ring
/// elements.
pub fn input_payloads<R: Ring>(
    scheme: Scheme,
    value: &RingTensor<R>,
) -> Result<Vec<(PartyId, Vec<u8>)>, SharingError> {
    let mut rng = rand::rng();
    Ok(match scheme {
        Scheme::Additive => share_additive(value, 2, &mut rng)?
            .iter()
            .enumerate()
            .map(|(i, s)| (PartyId::Server(i as u8), encode_elements(s.as_slice())))
            .collect(),
        Scheme::Replicated => share_replicated(value, &mut rng)?
            .iter()
            .enumerate()
            .map(|(i, pair)| {
                let mut both = pair.first.as_slice().to_vec();
                both.extend_from_slice(pair.second.as_slice());
                (PartyId::Server(i as u8), encode_elements(&both))
            })
            .collect(),
    })
}

/// Reconstructs an output of `shape` from the servers' encoded shares (their sum); a share of
/// the wrong length is [`SharingError::ShareLength`] naming the server that sent it.
pub fn reconstruct<R: Ring>(
    label: &str,
    shares: &[(PartyId, Vec<u8>)],
    shape: &[usize],
) -> Result<RingTensor<R>, SharingError> {
    let n: usize = shape.iter().product();
    let mut sum = vec![R::ZERO; n];
    for (peer, bytes) in shares {
        let share = decode_elements::<R>(bytes)
            .filter(|v| v.len() == n)
            .ok_or_else(|| SharingError::ShareLength {
                from: *peer,
                label: label.to_string(),
                expected: n,
            })?;
        for (s, v) in sum.iter_mut().zip(share) {
            *s = s.add(v);
        }
    }
    Ok(RingTensor::from_vec(shape, sum)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value `payloads` share: the sum of every server's first component (under
    /// [`Scheme::Replicated`], after checking that each pair's second component is the next
    /// server's first).
    fn open<R: Ring>(scheme: Scheme, payloads: &[(PartyId, Vec<u8>)]) -> Vec<R> {
        let words: Vec<Vec<R>> = payloads
            .iter()
            .map(|(_, bytes)| decode_elements::<R>(bytes).unwrap())
            .collect();
        let firsts: Vec<&[R]> = match scheme {
            Scheme::Additive => words.iter().map(Vec::as_slice).collect(),
            Scheme::Replicated => {
                fn half<R>(w: &[R]) -> (&[R], &[R]) {
                    w.split_at(w.len() / 2)
                }
                for i in 0..3 {
                    assert_eq!(half(&words[i]).1, half(&words[(i + 1) % 3]).0);
                }
                words.iter().map(|w| half(w).0).collect()
            }
        };
        let mut sum = vec![R::ZERO; firsts[0].len()];
        for first in firsts {
            for (s, v) in sum.iter_mut().zip(first) {
                *s = s.add(*v);
            }
        }
        sum
    }

    #[test]
    fn payloads_open_to_the_value() {
        let x = RingTensor::from_vec(&[4], vec![1u64, u64::MAX, 7, 1 << 40]).unwrap();
        for scheme in [Scheme::Additive, Scheme::Replicated] {
            let payloads = input_payloads(scheme, &x).unwrap();
            assert_eq!(payloads.len(), scheme.holders());
            assert_eq!(open::<u64>(scheme, &payloads), x.as_slice());
        }
    }

    #[test]
    fn reconstruct_sums_and_names_a_short_share() {
        let x = RingTensor::from_vec(&[3], vec![5u128, 0, u128::MAX]).unwrap();
        let payloads = input_payloads(Scheme::Additive, &x).unwrap();
        assert_eq!(reconstruct::<u128>("y", &payloads, &[3]).unwrap(), x);
        let mut short = payloads.clone();
        short[1].1.truncate(16);
        assert_eq!(
            reconstruct::<u128>("y", &short, &[3]),
            Err(SharingError::ShareLength {
                from: PartyId::Server(1),
                label: "y".into(),
                expected: 3,
            })
        );
    }
}
