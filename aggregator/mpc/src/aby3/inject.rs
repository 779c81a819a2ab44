//! Bit injection in one round: a boolean-shared bit becomes an arithmetic 0/1, with three-party
//! oblivious transfer (ABY3 §5.4.1 uses the same sender/receiver/helper pattern).
//!
//! A bit `b = b0 ^ b1 ^ b2` splits into `b0` (slot 0: servers 0 and 2 know it) and
//! `c = b1 ^ b2` (server 1 holds both slots). The result is the replicated sharing
//! `(gamma, alpha, beta)`: `alpha` (slot 1) from the PRG servers 0 and 1 share, `beta` (slot 2)
//! from the one servers 1 and 2 share, and `gamma = (b0 ^ c) + e - alpha - beta`, which servers
//! 0 and 2 must both learn. Server 1 knows the two candidates `m_j = (j ^ c) + e - alpha - beta`
//! (`j` the unknown `b0`, `e` an optional value of its own added for free, see
//! [`inject_with`]) and sends each receiver both, padded: to server 0 under pads from the PRG it
//! shares with server 2, which sends server 0 the pad of `m_{b0}`; to server 2 symmetrically.
//!
//! Each receiver learns `gamma` and a padded value it has no pad for; `gamma` is uniform to it
//! (server 0 does not know `beta`, server 2 not `alpha`). Server 1 receives nothing. One round,
//! six words per bit (server 1 four, the others one): the two products of the textbook
//! injection (`b0 ^ b1` then `^ b2`, each `a + b - 2ab`) also move six words, in two rounds.

use crate::error::Broken;
use tessera_common::net::Network;
use tessera_common::ring::Ring;

use super::planes::plane_bits;
use super::{Aby3Bits, Aby3Tensor, Shared, check_servers};
use crate::{MpcError, Session};

/// The bits of a packed boolean plane (bit `j` of word `w` for element `64 w + j`, `len`
/// elements) as arithmetic 0/1 in `R`, in one round (module docs).
pub async fn inject<R: Ring, N: Network>(
    session: &Session<N>,
    plane: &Aby3Bits<u64>,
    len: usize,
    shape: &[usize],
) -> Result<Aby3Tensor<R>, MpcError> {
    inject_with(session, plane, len, &[], shape).await
}

/// Whether `plane` holds `len` elements packed 64 to a word.
pub(super) fn check_plane(plane: &Aby3Bits<u64>, len: usize) -> Result<(), MpcError> {
    if plane.len() != len.div_ceil(64) {
        return Err(Broken::Lengths {
            what: "a plane of words",
            got: plane.len(),
            expected: len.div_ceil(64),
        }
        .into());
    }
    Ok(())
}

/// [`inject`] of `b + e` for a value `e` only server 1 knows (`extra`: `len` values at server 1,
/// ignored elsewhere), at no extra cost: `e` enters the candidates server 1 sends.
pub async fn inject_with<R: Ring, N: Network>(
    session: &Session<N>,
    plane: &Aby3Bits<u64>,
    len: usize,
    extra: &[R],
    shape: &[usize],
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    check_plane(plane, len)?;
    let me = session.me();
    if me == 1 && !extra.is_empty() && extra.len() != len {
        return Err(Broken::Lengths {
            what: "extra values",
            got: extra.len(),
            expected: len,
        }
        .into());
    }
    let op = session.op("aby3_inject_ot");
    let before = session.net_stats();
    let (a, b) = plane.shares();
    // alpha: slot 1 (servers 0, 1); beta: slot 2 (servers 1, 2); pads for the messages to
    // server 0 from the PRG of servers 1 and 2, to server 2 from that of servers 0 and 1.
    let prg = |other: usize, sub: u64, n: usize| -> Result<Vec<R>, MpcError> {
        Ok(session.shared_prg(other, &op, sub)?.ring_vec(n))
    };
    let pick = |pads: &[R], choice: &[u64]| -> Vec<R> {
        choice
            .iter()
            .enumerate()
            .map(|(i, j)| pads[2 * i + *j as usize])
            .collect()
    };
    let out = match me {
        1 => {
            let alpha = prg(0, 0, len)?;
            let beta = prg(2, 1, len)?;
            let to0 = prg(2, 2, 2 * len)?;
            let to2 = prg(0, 3, 2 * len)?;
            let c: Vec<u64> = plane_bits(a, len)
                .iter()
                .zip(plane_bits(b, len))
                .map(|(x, y)| x ^ y)
                .collect();
            let mut m0 = Vec::with_capacity(2 * len);
            let mut m2 = Vec::with_capacity(2 * len);
            for i in 0..len {
                let e = extra.get(i).copied().unwrap_or(R::ZERO);
                let base = e.sub(alpha[i]).sub(beta[i]);
                for j in 0..2 {
                    let m = base.add(R::from_u64(j ^ c[i]));
                    m0.push(m.add(to0[2 * i + j as usize]));
                    m2.push(m.add(to2[2 * i + j as usize]));
                }
            }
            session.send_vec(0, &op, "m", &m0).await?;
            session.send_vec(2, &op, "m", &m2).await?;
            Shared::from_parts(alpha, beta, shape)
        }
        0 | 2 => {
            // b0 is this server's first share at server 0, its second at server 2.
            let (b0, helper, pads_sub, own) = if me == 0 {
                (plane_bits(a, len), 2, 3, prg(1, 0, len)?)
            } else {
                (plane_bits(b, len), 0, 2, prg(1, 1, len)?)
            };
            // The pads of the other receiver's messages, from this server's PRG with server 1.
            let theirs = prg(1, pads_sub, 2 * len)?;
            session
                .send_vec(helper, &op, "pad", &pick(&theirs, &b0))
                .await?;
            let m = session.recv_vec::<R>(1, &op, "m", 2 * len).await?;
            let pad = session.recv_vec::<R>(helper, &op, "pad", len).await?;
            let gamma: Vec<R> = pick(&m, &b0)
                .iter()
                .zip(&pad)
                .map(|(m, p)| m.sub(*p))
                .collect();
            if me == 0 {
                Shared::from_parts(gamma, own, shape)
            } else {
                Shared::from_parts(own, gamma, shape)
            }
        }
        _ => unreachable!("check_servers allows three servers"),
    };
    session.record(&op, before);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aby3::{Bool, open, random_shared};
    use crate::harness::run_local;

    /// Random bits (200: three words, the last partial), injected into both rings, with and
    /// without server 1's extra values: the opened results equal the bits (plus the extras).
    #[tokio::test]
    async fn injected_bits_open_to_the_bits() {
        let len: usize = 200;
        let out = run_local(3, move |session| async move {
            let op = session.op("test_bits");
            let bits: Aby3Bits<u64> = random_shared::<Bool<u64>, _>(&session, &op, 0, &[4])?;
            let bits = bits
                .split(&[&[len.div_ceil(64)], &[4 - len.div_ceil(64)]])?
                .remove(0);
            let extra: Vec<u64> = (0..len as u64).map(|i| i * 1000).collect();
            let mine = if session.me() == 1 { extra } else { Vec::new() };
            let plain: Aby3Tensor<u64> = inject(&session, &bits, len, &[len]).await?;
            let with: Aby3Tensor<u64> = inject_with(&session, &bits, len, &mine, &[len]).await?;
            let wide: Aby3Tensor<u128> = inject(&session, &bits, len, &[len]).await?;
            let op = session.op("test_open");
            Ok((
                open(&session, &op, &bits).await?,
                open(&session, &op, &plain).await?,
                open(&session, &op, &with).await?,
                open(&session, &op, &wide).await?,
            ))
        })
        .await
        .unwrap();
        let (bits, plain, with, wide) = &out[0];
        let bits = plane_bits(bits, len);
        assert!(bits.contains(&0) && bits.contains(&1));
        for i in 0..len {
            assert_eq!(plain[i], bits[i], "element {i}");
            assert_eq!(with[i], bits[i] + 1000 * i as u64, "element {i}");
            assert_eq!(wide[i], u128::from(bits[i]), "element {i}");
        }
        assert!(
            out.iter().all(|o| &o.1 == plain),
            "every server opens the same"
        );
    }
}
