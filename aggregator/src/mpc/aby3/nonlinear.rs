//! Non-linear layers on ABY3 sharings, built on [`super::boolean`]: select, ReLU (exact: the sign
//! bit from the A2B adder, then one multiplication), maximum and argmax along the last axis
//! (a tree of comparisons: `ceil(log2 k)` levels), max-pooling, and a bitonic sorting network
//! (`log2 n (log2 n + 1) / 2` compare-exchange stages, each one batched comparison and one
//! multiplication).

use tessera_common::net::Network;

use super::boolean::{less, msb};
use super::{Aby3Tensor, MpcError, Session, Shared, mul};
use crate::mpc::layout::{Gather, Window, bitonic_stages};

/// `c ? x : y` for an arithmetic 0/1 `c`: `y + c (x - y)`, one multiplication.
pub async fn select<N: Network>(
    session: &Session<N>,
    c: &Aby3Tensor,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    y.add(&mul(session, c, &x.sub(y)?).await?)
}

/// `x >= 0` as an arithmetic 0/1 (the derivative of ReLU).
pub async fn drelu<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    let ones = vec![1u64; x.len()];
    msb(session, x).await?.neg().add_public(session.me(), &ones)
}

/// `max(x, 0)`, exact in the ring for `|x| < 2^63`.
pub async fn relu<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    let d = drelu(session, x).await?;
    mul(session, &d, x).await
}

/// Elementwise maximum of two sharings.
pub async fn maximum<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    y: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    let c = less(session, x, y).await?;
    select(session, &c, y, x).await
}

fn rows_and_width(shape: &[usize]) -> Result<(usize, usize, Vec<usize>), MpcError> {
    match shape.split_last() {
        Some((&k, rest)) if k > 0 => Ok((rest.iter().product(), k, rest.to_vec())),
        _ => Err(MpcError::Invalid(format!(
            "cannot reduce the last axis of {shape:?}"
        ))),
    }
}

/// Maximum along the last axis and, with `with_index`, its position (an integer sharing).
async fn max_tree<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    with_index: bool,
) -> Result<(Aby3Tensor, Aby3Tensor), MpcError> {
    let (rows, mut k, out_shape) = rows_and_width(x.shape())?;
    let me = session.me();
    let mut v = x.reshape(&[rows, k])?;
    let positions: Vec<u64> = (0..rows).flat_map(|_| 0..k as u64).collect();
    let mut idx = Shared::public(me, &positions, &[rows, k]);
    while k > 1 {
        let half = k / 2;
        let left: Vec<usize> = (0..half).collect();
        let right: Vec<usize> = (half..2 * half).collect();
        let rest: Vec<usize> = (2 * half..k).collect();
        let (gl, gr, gt) = (
            Gather::columns(rows, k, &left),
            Gather::columns(rows, k, &right),
            Gather::columns(rows, k, &rest),
        );
        let pick = |t: &Aby3Tensor, g: &Gather, w: usize| t.map_local(&[rows, w], |s| g.apply(s));
        let (a, b) = (pick(&v, &gl, half)?, pick(&v, &gr, half)?);
        let c = less(session, &a, &b).await?;
        // One multiplication for the value and (batched) the index: c * (b - a).
        let (dv, di) = (
            b.sub(&a)?,
            if with_index {
                pick(&idx, &gr, half)?.sub(&pick(&idx, &gl, half)?)?
            } else {
                Shared::zeros(&[0])
            },
        );
        let cc = if with_index {
            Shared::concat(&[&c, &c])
        } else {
            c.reshape(&[rows * half])?
        };
        let prod = mul(session, &cc, &Shared::concat(&[&dv, &di])).await?;
        let mut parts = if with_index {
            prod.split(&[&[rows, half], &[rows, half]])?
        } else {
            vec![prod.reshape(&[rows, half])?]
        };
        let new_v = a.add(&parts.remove(0))?;
        let merge = |head: &Aby3Tensor, tail: &Aby3Tensor| -> Result<Aby3Tensor, MpcError> {
            let w = half + rest.len();
            let both = Shared::concat(&[head, tail]);
            let g = Gather::positions(
                &(0..rows)
                    .flat_map(|r| {
                        (0..half)
                            .map(move |c| r * half + c)
                            .chain((0..w - half).map(move |c| rows * half + r * (w - half) + c))
                    })
                    .collect::<Vec<_>>(),
            );
            both.map_local(&[rows, w], |s| g.apply(s))
        };
        v = merge(&new_v, &pick(&v, &gt, rest.len())?)?;
        if with_index {
            let new_i = pick(&idx, &gl, half)?.add(&parts.remove(0))?;
            idx = merge(&new_i, &pick(&idx, &gt, rest.len())?)?;
        }
        k = half + rest.len();
    }
    let idx = if with_index {
        idx.reshape(&out_shape)?
    } else {
        idx
    };
    Ok((v.reshape(&out_shape)?, idx))
}

/// Maximum along the last axis.
pub async fn max_last_axis<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    Ok(max_tree(session, x, false).await?.0)
}

/// Position of the maximum along the last axis (an integer, not fixed-point, sharing; ties go
/// to the earlier position).
pub async fn argmax<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    Ok(max_tree(session, x, true).await?.1)
}

/// Max-pooling of an `[n, c, h, w]` sharing.
pub async fn maxpool2d<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
    window: Window,
) -> Result<Aby3Tensor, MpcError> {
    let (g, out_shape) = window.pool(x.shape())?;
    let (kh, kw) = window.kernel;
    let rows = g.len() / (kh * kw);
    let patches = x.map_local(&[rows, kh * kw], |s| g.apply(s))?;
    max_last_axis(session, &patches).await?.reshape(&out_shape)
}

/// Sorts a 1-D sharing ascending with a bitonic network (padded to a power of two with a large
/// public value; inputs must satisfy `|x| < 2^62`).
pub async fn sort<N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor,
) -> Result<Aby3Tensor, MpcError> {
    let n = x.len();
    let size = n.next_power_of_two();
    let pad = vec![1u64 << 62; size - n];
    let me = session.me();
    let mut v = Shared::concat(&[&x.reshape(&[n])?, &Shared::public(me, &pad, &[size - n])]);
    for stage in bitonic_stages(size) {
        let firsts: Vec<usize> = stage.iter().map(|p| p.0).collect();
        let seconds: Vec<usize> = stage.iter().map(|p| p.1).collect();
        let m = stage.len();
        let (vi, vl) = (
            v.map_local(&[m], |s| Gather::positions(&firsts).apply(s))?,
            v.map_local(&[m], |s| Gather::positions(&seconds).apply(s))?,
        );
        // Swap when the pair is out of order: v[l] < v[i] ascending, v[i] < v[l] descending.
        let lo: Vec<usize> = stage.iter().map(|p| if p.2 { p.1 } else { p.0 }).collect();
        let hi: Vec<usize> = stage.iter().map(|p| if p.2 { p.0 } else { p.1 }).collect();
        let c = less(
            session,
            &v.map_local(&[m], |s| Gather::positions(&lo).apply(s))?,
            &v.map_local(&[m], |s| Gather::positions(&hi).apply(s))?,
        )
        .await?;
        let d = mul(session, &c, &vl.sub(&vi)?).await?;
        let (new_i, new_l) = (vi.add(&d)?, vl.sub(&d)?);
        // Scatter back: position firsts[j] <- new_i[j], seconds[j] <- new_l[j].
        let mut src = vec![0usize; size];
        for (j, (i, l, _)) in stage.iter().enumerate() {
            src[*i] = j;
            src[*l] = m + j;
        }
        v = Shared::concat(&[&new_i, &new_l])
            .map_local(&[size], |s| Gather::positions(&src).apply(s))?;
    }
    v.map_local(&[n], |s| s[..n].to_vec())?.reshape(x.shape())
}
