//! From an upload's additive sharing to ABY3's replicated one, at the servers.
//!
//! A data owner's update `x` arrives as three additive components in the 64-bit ring: the
//! explicit vector `x0` at the leader and seeds expanding to `x1`, `x2` at the helpers. ABY3 has
//! server `i` hold `(x_i, x_{i+1})`, so each server gives its component to the one before it:
//! server 1 its seed to server 0 (32 bytes), server 2 its seed to server 1, and server 0 its
//! explicit vector to server 2 (`8 d` bytes). The owner uploads nothing more than for `mean`;
//! afterwards each server holds two of the three components, as ABY3 wants, and no server
//! holds all three.

use tessera_common::net::Network;
use tessera_common::prg::Seed;
use tessera_common::ringvec::RingVec;

use tessera_mpc::aby3::{Aby3Tensor, Shared, next, prev};
use tessera_mpc::error::Broken;
use tessera_mpc::{MpcError, Session};

/// This server's additive component of one upload.
#[derive(Clone)]
pub enum Component {
    /// The explicit vector (the leader's).
    Vector(Vec<u64>),
    /// The seed it expands from (a helper's), with the stream [`RingVec::add_seed`] uses.
    Seed(Seed),
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Component::Vector(v) => write!(f, "Component::Vector({} elements)", v.len()),
            Component::Seed(_) => write!(f, "Component::Seed(<redacted>)"),
        }
    }
}

/// A seed's expansion in the 64-bit ring, exactly as a helper stages it.
pub fn expand_seed(seed: &Seed, len: usize) -> Vec<u64> {
    let mut v = RingVec::U64(vec![0; len]);
    v.add_seed(seed);
    match v {
        RingVec::U64(v) => v,
        _ => unreachable!("a U64 stays a U64"),
    }
}

impl Component {
    /// The component as a vector of `len` elements.
    pub fn expand(&self, len: usize) -> Vec<u64> {
        match self {
            Component::Vector(v) => v.clone(),
            Component::Seed(seed) => expand_seed(seed, len),
        }
    }
}

/// The three components of an upload of `x` whose helpers get `seeds` (as a data owner's
/// seed-compressed sharing makes them): the explicit `x - PRG(seed1) - PRG(seed2)`, then the
/// seeds.
pub fn components_of(x: &[u64], seeds: [Seed; 2]) -> [Component; 3] {
    let len = x.len();
    let (e1, e2) = (expand_seed(&seeds[0], len), expand_seed(&seeds[1], len));
    let x0 = (0..len)
        .map(|i| x[i].wrapping_sub(e1[i]).wrapping_sub(e2[i]))
        .collect();
    let [s1, s2] = seeds;
    [
        Component::Vector(x0),
        Component::Seed(s1),
        Component::Seed(s2),
    ]
}

/// The replicated sharing of the upload whose component this server holds (`len` elements;
/// server 0's component must be the vector, the helpers' seeds). One message per server.
pub async fn replicate<N: Network>(
    session: &Session<N>,
    mine: &Component,
    len: usize,
) -> Result<Aby3Tensor<u64>, MpcError> {
    let op = session.op("secagg_replicate");
    let before = session.net_stats();
    let me = session.me();
    match (me, mine) {
        (0, Component::Vector(v)) if v.len() == len => {
            session.send_vec(prev(me), &op, "component", v).await?
        }
        (1 | 2, Component::Seed(seed)) => {
            session
                .send_bytes(prev(me), &op, "component", seed.0.to_vec())
                .await?
        }
        _ => {
            return Err(Broken::WrongComponent(me).into());
        }
    }
    let from = next(me);
    let theirs = if from == 0 {
        session.recv_vec::<u64>(from, &op, "component", len).await?
    } else {
        let bytes = session.recv_bytes(from, &op, "component", 32).await?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&bytes);
        expand_seed(&Seed(seed), len)
    };
    session.record(&op, before);
    Ok(Shared::from_parts(mine.expand(len), theirs, &[len]))
}
