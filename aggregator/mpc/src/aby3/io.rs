//! Inputs and outputs of ABY3 sharings: a server or an outside party shares a value into the
//! three servers (with a consistency check of the copies), a value is opened to all or revealed
//! to one party.

use crate::error::{Misbehaved, PartyError};
use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor, ShapeError};

use super::share::{Kind, SERVERS, Shared, check_servers, next, numel, prev, zip};
use crate::{MpcError, Op, Session};

/// Shares a value held by server `owner` (`Some` there): the owner draws the three shares and
/// sends each other server its pair.
pub async fn share_from<K: Kind, N: Network>(
    session: &Session<N>,
    owner: usize,
    value: Option<&RingTensor<K::Word>>,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_share");
    let before = session.net_stats();
    let me = session.me();
    let n = numel(shape);
    let out = if me == owner {
        let x = value.ok_or(PartyError::NoValue)?;
        ShapeError::same(x.shape(), shape)?;
        let slots = split3::<K>(x.as_slice());
        for j in [next(me), prev(me)] {
            let mut pair = slots[j].clone();
            pair.extend_from_slice(&slots[next(j)]);
            session.send_vec(j, &op, "pair", &pair).await?;
        }
        Shared::from_parts(slots[me].clone(), slots[next(me)].clone(), shape)
    } else {
        let pair = session
            .recv_vec::<K::Word>(owner, &op, "pair", 2 * n)
            .await?;
        Shared::from_parts(pair[..n].to_vec(), pair[n..].to_vec(), shape)
    };
    session.record(&op, before);
    Ok(out)
}

/// Splits `x` into three fresh random shares (of kind `K`).
pub fn split3<K: Kind>(x: &[K::Word]) -> [Vec<K::Word>; 3] {
    let mut rng = rand::rng();
    let mut r = |n: usize| {
        let mut v = vec![K::Word::ZERO; n];
        rand::Rng::fill_bytes(&mut rng, bytemuck::cast_slice_mut(&mut v));
        v
    };
    let (a, b) = (r(x.len()), r(x.len()));
    let c = zip(&zip(x, &a, K::sub), &b, K::sub);
    [a, b, c]
}

/// Receives an input from a party outside the servers (a data owner or the model owner), sent
/// with [`crate::io::send_input`] under `label`: it sends each server its pair of shares.
pub async fn input_from<K: Kind, N: Network>(
    session: &Session<N>,
    from: PartyId,
    label: &str,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    check_servers(session)?;
    let n = numel(shape);
    let pair = session.recv_party::<K::Word>(from, label, 2 * n).await?;
    let x = Shared::from_parts(pair[..n].to_vec(), pair[n..].to_vec(), shape);
    check_input_consistency(session, &x, from, label).await?;
    Ok(x)
}

/// Checks that an outside party gave the two servers holding each component the same copy: each
/// server sends the other two a hash of both its components (one round, 64 bytes to each), so
/// every server compares all three components and all reach the same verdict. A party that sent
/// mismatched copies (which would make the servers compute on a value nobody chose) is refused
/// with [`MpcError::Protocol`] naming it.
async fn check_input_consistency<K: Kind, N: Network>(
    session: &Session<N>,
    x: &Shared<K>,
    from: PartyId,
    label: &str,
) -> Result<(), MpcError> {
    let op = session.op("aby3_input_check");
    let me = session.me();
    let digest = |component: usize, values: &[K::Word]| -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new()
            .chain_update(b"tessera/v1/aby3-input")
            .chain_update((label.len() as u64).to_le_bytes())
            .chain_update(label.as_bytes())
            .chain_update((component as u64).to_le_bytes());
        h.update(tessera_common::ring::encode_elements(values));
        h.finalize().into()
    };
    // Component index -> this server's hash of it.
    let mine = [
        (me, digest(me, &x.s[0])),
        (next(me), digest(next(me), &x.s[1])),
    ];
    let mut msg = mine[0].1.to_vec();
    msg.extend_from_slice(&mine[1].1);
    for peer in [next(me), prev(me)] {
        session.send_bytes(peer, &op, "hash", msg.clone()).await?;
    }
    let mut seen: [Vec<[u8; 32]>; SERVERS] = Default::default();
    for (c, h) in mine {
        seen[c].push(h);
    }
    for peer in [next(me), prev(me)] {
        let bytes = session.recv_bytes(peer, &op, "hash", 64).await?;
        let mut hashes = [[0u8; 32]; 2];
        hashes[0].copy_from_slice(&bytes[..32]);
        hashes[1].copy_from_slice(&bytes[32..]);
        seen[peer].push(hashes[0]);
        seen[next(peer)].push(hashes[1]);
    }
    if seen.iter().all(|h| h.windows(2).all(|w| w[0] == w[1])) {
        Ok(())
    } else {
        Err(MpcError::Protocol {
            peer: from,
            reason: Misbehaved::InconsistentInput {
                label: label.to_string(),
            },
        })
    }
}

/// Reveals `x` to a party outside the servers: each server sends its first share, the party
/// adds the three ([`crate::io::receive_output`]). The servers learn nothing.
pub async fn output_to<K: Kind, N: Network>(
    session: &Session<N>,
    x: &Shared<K>,
    to: PartyId,
    label: &str,
) -> Result<(), MpcError> {
    session
        .send_party(to, label, tessera_common::ring::encode_elements(&x.s[0]))
        .await
}

/// Opens `x` to all three servers (each sends its first share to the next: one round).
pub async fn open<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    x: &Shared<K>,
) -> Result<Vec<K::Word>, MpcError> {
    let me = session.me();
    session.send_vec(next(me), op, "open", &x.s[0]).await?;
    let missing = session
        .recv_vec::<K::Word>(prev(me), op, "open", x.len())
        .await?;
    Ok((0..x.len())
        .map(|i| K::add(K::add(x.s[0][i], x.s[1][i]), missing[i]))
        .collect())
}

/// Reveals `x` to server `receiver` only (the server after it sends the one share it lacks).
pub async fn reveal_to<K: Kind, N: Network>(
    session: &Session<N>,
    x: &Shared<K>,
    receiver: usize,
) -> Result<Option<RingTensor<K::Word>>, MpcError> {
    check_servers(session)?;
    let op = session.op("aby3_reveal");
    let before = session.net_stats();
    let me = session.me();
    let out = if me == next(receiver) {
        session.send_vec(receiver, &op, "open", &x.s[1]).await?;
        None
    } else if me == receiver {
        let missing = session
            .recv_vec::<K::Word>(next(me), &op, "open", x.len())
            .await?;
        let v = (0..x.len())
            .map(|i| K::add(K::add(x.s[0][i], x.s[1][i]), missing[i]))
            .collect();
        Some(RingTensor::from_vec(&x.shape, v)?)
    } else {
        None
    };
    session.record(&op, before);
    Ok(out)
}
