//! `trimmed-mean:k` and `median` on replicated uploads: for every coordinate, the contributors'
//! values sorted by a sorting network under ABY3, and the sum of all but the `k` smallest and the
//! `k` largest kept (`median` is the largest `k` that leaves one value, or two for an even count).
//! No server learns any value, their order, or which owner's value was trimmed.
//!
//! 1. The `N` uploads (`d` elements each, any 64-bit ring values a malicious owner likes) are
//!    biased by `2^63` (signed order becomes unsigned order) and converted to boolean sharing in
//!    one A2B of `N d` elements.
//! 2. Batcher's odd-even merge sort over the contributor axis, pruned to `N` inputs (a
//!    comparator touching a padded `+inf` position never moves anything, so dropping those
//!    leaves a network that sorts `N`): one layer at a time, every comparator of the layer and
//!    every coordinate in one batch. A comparator of words `a` (lower position) and `b` computes
//!    `a > b` as the carry out of `a + !b` (a Kogge-Stone prefix, 7 AND rounds), spreads the bit
//!    over the word (local: each share's bit times all ones) and swaps with one more AND:
//!    `t = swap & (a ^ b)`, `a ^= t`, `b ^= t`. Ties need no care: swapping equal words changes
//!    nothing.
//! 3. The kept positions `k .. N - k` go back to arithmetic sharing (one B2A), are summed, and
//!    the bias is taken off: an exact ring sum of the kept values, in the 64-bit ring.
//!
//! Memory: every server holds the `N` replicated uploads until the round closes (`2 N d` words):
//! these rules alone keep the uploads, the others only a running sum.

use tessera_common::net::Network;

use tessera_mpc::aby3::boolean::{a2b, b2a, ks_generate};
use tessera_mpc::aby3::{Aby3Bits, Aby3Tensor, Shared, and};
use tessera_mpc::error::Invalid;
use tessera_mpc::{MpcError, Session};

/// The bias that maps signed order onto unsigned order.
const BIAS: u64 = 1 << 63;

/// The layers of Batcher's odd-even merge sort for `n` inputs: comparators `(i, j)`, `i < j`,
/// after which position `i` holds the smaller value. Within a layer no position appears twice.
pub fn sorting_layers(n: usize) -> Vec<Vec<(usize, usize)>> {
    let size = n.next_power_of_two();
    let mut layers = Vec::new();
    let mut p = 1;
    while p < size {
        let mut k = p;
        while k >= 1 {
            let mut layer = Vec::new();
            let mut j = k % p;
            while j + k < size {
                for i in 0..k.min(size - j - k) {
                    let (a, b) = (i + j, i + j + k);
                    if a / (2 * p) == b / (2 * p) && b < n {
                        layer.push((a, b));
                    }
                }
                j += 2 * k;
            }
            if !layer.is_empty() {
                layers.push(layer);
            }
            k /= 2;
        }
        p *= 2;
    }
    layers
}

/// The sum, coordinate by coordinate, of the values at sorted positions `trim .. N - trim` of the
/// `N` uploads (each `d` elements; every server passes them in the same order).
pub async fn trimmed_sum<N: Network>(
    session: &Session<N>,
    uploads: &[Aby3Tensor<u64>],
    trim: usize,
) -> Result<Aby3Tensor<u64>, MpcError> {
    let n = uploads.len();
    let d = uploads.first().map_or(0, Shared::len);
    if n == 0 || 2 * trim >= n || uploads.iter().any(|u| u.len() != d) {
        return Err(Invalid::Trim {
            trim,
            lengths: uploads.iter().map(Shared::len).collect(),
        }
        .into());
    }
    let me = session.me();
    let row = [d];
    let refs: Vec<&Aby3Tensor<u64>> = uploads.iter().collect();
    let biased = Shared::concat(&refs).add_public(me, &vec![BIAS; n * d])?;
    let mut rows: Vec<Aby3Bits<u64>> = a2b(session, &biased).await?.split(&vec![&row[..]; n])?;
    for layer in sorting_layers(n) {
        let lows: Vec<&Aby3Bits<u64>> = layer.iter().map(|(i, _)| &rows[*i]).collect();
        let highs: Vec<&Aby3Bits<u64>> = layer.iter().map(|(_, j)| &rows[*j]).collect();
        let (a, b) = (Shared::concat(&lows), Shared::concat(&highs));
        let (_, carries) = ks_generate(session, &a, &b.not(me)).await?;
        // Bit 63 of the carries is `a > b`; spread over the word, it swaps the pair.
        let swap = carries.map_local(carries.shape(), |v| {
            v.iter().map(|w| 0u64.wrapping_sub(w >> 63)).collect()
        })?;
        let t = and(session, &swap, &a.add(&b)?).await?;
        let shapes = vec![&row[..]; layer.len()];
        let (mins, maxes) = (a.add(&t)?.split(&shapes)?, b.add(&t)?.split(&shapes)?);
        for (((i, j), lo), hi) in layer.iter().zip(mins).zip(maxes) {
            rows[*i] = lo;
            rows[*j] = hi;
        }
    }
    let kept: Vec<&Aby3Bits<u64>> = rows[trim..n - trim].iter().collect();
    let m = kept.len();
    let values = b2a(session, &Shared::concat(&kept)).await?;
    let parts = values.split(&vec![&row[..]; m])?;
    let mut sum = parts[0].clone();
    for p in &parts[1..] {
        sum = sum.add(p)?;
    }
    sum.add_public(me, &vec![BIAS.wrapping_mul(m as u64).wrapping_neg(); d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_mpc::aby3::{Arith, split3};
    use tessera_mpc::harness::run_local;

    /// A network sorts every input if it sorts every 0/1 input (Knuth's 0-1 principle).
    #[test]
    fn the_pruned_networks_sort_every_size_up_to_12() {
        for n in 1..=12usize {
            let layers = sorting_layers(n);
            for layer in &layers {
                let mut seen = vec![false; n];
                for (i, j) in layer {
                    assert!(i < j && *j < n);
                    assert!(!seen[*i] && !seen[*j], "n {n}: a position twice in a layer");
                    seen[*i] = true;
                    seen[*j] = true;
                }
            }
            for input in 0u32..(1 << n) {
                let mut v: Vec<u32> = (0..n).map(|b| (input >> b) & 1).collect();
                for layer in &layers {
                    for (i, j) in layer {
                        if v[*i] > v[*j] {
                            v.swap(*i, *j);
                        }
                    }
                }
                assert!(v.windows(2).all(|w| w[0] <= w[1]), "n {n}: {input:b}");
            }
        }
        // Ten contributors: 10 layers (the depth of the 16-input network).
        assert_eq!(sorting_layers(10).len(), 10);
    }

    /// Plaintext reference: per coordinate, the signed values sorted and positions
    /// `trim .. n - trim` summed in the ring.
    fn reference(uploads: &[Vec<u64>], trim: usize) -> Vec<u64> {
        let (n, d) = (uploads.len(), uploads[0].len());
        (0..d)
            .map(|c| {
                let mut col: Vec<i64> = uploads.iter().map(|u| u[c] as i64).collect();
                col.sort();
                col[trim..n - trim]
                    .iter()
                    .fold(0u64, |acc, v| acc.wrapping_add(*v as u64))
            })
            .collect()
    }

    #[tokio::test]
    async fn trimmed_sums_equal_the_plaintext_reference_with_ties_and_extremes() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let d = 64;
        for (n, trim) in [(10, 1), (10, 4), (7, 3), (5, 0), (3, 1), (2, 0)] {
            // Small values from a few choices (many ties), plus extremes of the signed range.
            let choices = [
                0u64,
                1,
                (-1i64) as u64,
                5 << 16,
                (-3i64 << 16) as u64,
                i64::MAX as u64,
                i64::MIN as u64,
            ];
            let uploads: Vec<Vec<u64>> = (0..n)
                .map(|_| {
                    (0..d)
                        .map(|_| match next() % 10 {
                            k @ 0..=6 => choices[k as usize],
                            _ => next(),
                        })
                        .collect()
                })
                .collect();
            let want = reference(&uploads, trim);
            let shares: Vec<[Vec<u64>; 3]> = uploads.iter().map(|u| split3::<Arith>(u)).collect();
            let out = run_local(3, move |session| {
                let me = session.me();
                let mine: Vec<Aby3Tensor<u64>> = shares
                    .iter()
                    .map(|s| Shared::from_parts(s[me].clone(), s[(me + 1) % 3].clone(), &[d]))
                    .collect();
                async move {
                    let sum = trimmed_sum(&session, &mine, trim).await?;
                    Ok(sum.shares().0.to_vec())
                }
            })
            .await
            .unwrap();
            let got: Vec<u64> = (0..d)
                .map(|i| out[0][i].wrapping_add(out[1][i]).wrapping_add(out[2][i]))
                .collect();
            assert_eq!(got, want, "n {n} trim {trim}");
        }
    }
}
