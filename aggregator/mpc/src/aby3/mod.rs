//! ABY3: three-party replicated secret sharing (Mohassel & Rindal, CCS 2018, "ABY3: A Mixed
//! Protocol Framework for Machine Learning").
//!
//! A value is `x = x0 + x1 + x2` (arithmetic, mod 2^64) or `x = x0 ^ x1 ^ x2` (boolean, 64 bits
//! packed per element); server `i` holds the pair `(x_i, x_{i+1})` (§2.2). Any two servers can
//! reconstruct, no single one learns anything. This module holds the sharing, linear operations,
//! multiplication with resharing from zero-sharings (§3, §5.1), opening and input/output; the
//! submodules add the rest:
//!
//! - [`boolean`]: AND/XOR, A2B with a Kogge-Stone adder, B2A, bit injection, MSB, comparisons
//!   (§5.3, §5.4).
//! - [`sliced`]: the sign of a value on bit planes (only the gates the carry needs).
//! - [`inject`]: bit injection in one round (three-party oblivious transfer).
//! - [`prep`]: the preprocessing phase (daBits made ahead, used once, with a ledger).
//! - [`range`]: a range check with the exact wrap count of the shares, on bit planes.
//! - [`trunc`]: fixed-point truncation with truncation pairs `(r, r/2^d)` (§5.1.1, Π_trunc2).
//!
//! Select, ReLU, maximum, argmax, max-pooling, sorting ([`crate::nn`]) and exp, log,
//! reciprocal, square roots, sigmoid, softmax ([`crate::approx`]) are written once over
//! [`crate::protocol::Protocol`] and run on ABY3 through its exact comparison
//! [`boolean::drelu`] and its one-round fixed-point product [`trunc::mul_trunc`].

pub mod boolean;
pub mod inject;
pub mod planes;
pub mod prep;
pub mod range;
pub mod sliced;
pub mod trunc;

use std::marker::PhantomData;

use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::ring::{Ring, RingTensor, ShapeError, matmul as ring_matmul};

use super::{MpcError, Op, Session};

/// The number of servers ABY3 runs on.
pub const SERVERS: usize = 3;

/// The algebra of a sharing: arithmetic mod `2^k` or boolean (XOR/AND on `k`-bit words), over
/// the words of a [`Ring`] (`u64`, or `u128` for training's precision).
pub trait Kind: Clone + Send + Sync + 'static {
    /// The word each share is made of.
    type Word: Ring;
    /// Name for messages and errors.
    const NAME: &'static str;
    /// Share combination (`+` or `^`).
    fn add(a: Self::Word, b: Self::Word) -> Self::Word;
    /// Its inverse (`-` or `^`).
    fn sub(a: Self::Word, b: Self::Word) -> Self::Word;
    /// Product (`*` or `&`).
    fn mul(a: Self::Word, b: Self::Word) -> Self::Word;
}

/// Arithmetic sharing in the ring `Z_{2^k}` of `R`.
#[derive(Debug, Clone, Copy)]
pub struct Arith<R = u64>(PhantomData<R>);

/// Boolean sharing: XOR shares of `R`'s words.
#[derive(Debug, Clone, Copy)]
pub struct Bool<R = u64>(PhantomData<R>);

impl<R: Ring> Kind for Arith<R> {
    type Word = R;
    const NAME: &'static str = "arith";
    fn add(a: R, b: R) -> R {
        a.add(b)
    }
    fn sub(a: R, b: R) -> R {
        a.sub(b)
    }
    fn mul(a: R, b: R) -> R {
        a.mul(b)
    }
}

impl<R: Ring> Kind for Bool<R> {
    type Word = R;
    const NAME: &'static str = "bool";
    fn add(a: R, b: R) -> R {
        a.xor(b)
    }
    fn sub(a: R, b: R) -> R {
        a.xor(b)
    }
    fn mul(a: R, b: R) -> R {
        a.and(b)
    }
}

/// A replicated sharing held by one server: its two shares `(x_me, x_{me+1})` and the shape.
#[derive(Clone)]
pub struct Shared<K: Kind> {
    s: [Vec<K::Word>; 2],
    shape: Vec<usize>,
    kind: PhantomData<K>,
}

/// An arithmetic ABY3 tensor (in the 64-bit ring unless said otherwise).
pub type Aby3Tensor<R = u64> = Shared<Arith<R>>;
/// A boolean ABY3 tensor (64 bits per element unless said otherwise).
pub type Aby3Bits<R = u64> = Shared<Bool<R>>;

impl<K: Kind> std::fmt::Debug for Shared<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Aby3[{}]({:?}, <shares redacted>)", K::NAME, self.shape)
    }
}

/// The server after `me` in the ring of three (who holds `me`'s second share as its first).
pub fn next(me: usize) -> usize {
    (me + 1) % SERVERS
}

/// The server before `me` in the ring of three.
pub fn prev(me: usize) -> usize {
    (me + 2) % SERVERS
}

fn zip<W: Ring>(a: &[W], b: &[W], f: impl Fn(W, W) -> W) -> Vec<W> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl<K: Kind> Shared<K> {
    /// A share from this server's two components (`s0` its own, `s1` the next server's), both of
    /// `shape`'s length: for protocols outside the engine that build replicated shares locally
    /// (secure aggregation's checks).
    pub fn from_parts(s0: Vec<K::Word>, s1: Vec<K::Word>, shape: &[usize]) -> Self {
        Shared {
            s: [s0, s1],
            shape: shape.to_vec(),
            kind: PhantomData,
        }
    }

    /// The public shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.s[0].len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.s[0].is_empty()
    }

    /// This server's two shares `(x_me, x_{me+1})`. Exposed for tests of what a server sees.
    pub fn shares(&self) -> (&[K::Word], &[K::Word]) {
        (&self.s[0], &self.s[1])
    }

    /// All zeros (a valid sharing of zero).
    pub fn zeros(shape: &[usize]) -> Self {
        let n = numel(shape);
        Self::from_parts(vec![K::Word::ZERO; n], vec![K::Word::ZERO; n], shape)
    }

    /// A sharing of a value the two holders of slot `slot` both know (the others pass zeros):
    /// it sits in that slot only, so no communication is needed.
    pub(crate) fn from_slot(me: usize, slot: usize, value: &[K::Word], shape: &[usize]) -> Self {
        let n = value.len();
        let pick = |j: usize| {
            if j == slot {
                value.to_vec()
            } else {
                vec![K::Word::ZERO; n]
            }
        };
        Self::from_parts(pick(me), pick(next(me)), shape)
    }

    /// A public value as a sharing (in slot 0).
    pub fn public(me: usize, value: &[K::Word], shape: &[usize]) -> Self {
        Self::from_slot(me, 0, value, shape)
    }

    /// Applies a local map to both shares. `f` must be linear for the kind (a gather, reshape,
    /// transpose, sum, shift for boolean shares...), since it is applied to each share.
    pub fn map_local(
        &self,
        shape: &[usize],
        f: impl Fn(&[K::Word]) -> Vec<K::Word>,
    ) -> Result<Self, MpcError> {
        let (a, b) = (f(&self.s[0]), f(&self.s[1]));
        if a.len() != numel(shape) {
            return Err(ShapeError::Length {
                len: a.len(),
                shape: shape.to_vec(),
            }
            .into());
        }
        Ok(Self::from_parts(a, b, shape))
    }

    /// The same shares under another shape with the same number of elements.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self, MpcError> {
        self.map_local(shape, <[K::Word]>::to_vec)
    }

    fn check_same(&self, other: &Self) -> Result<(), MpcError> {
        if self.shape != other.shape {
            return Err(ShapeError::Mismatch {
                left: self.shape.clone(),
                right: other.shape.clone(),
            }
            .into());
        }
        Ok(())
    }

    fn zip_with(
        &self,
        other: &Self,
        f: impl Fn(K::Word, K::Word) -> K::Word,
    ) -> Result<Self, MpcError> {
        self.check_same(other)?;
        Ok(Self::from_parts(
            zip(&self.s[0], &other.s[0], &f),
            zip(&self.s[1], &other.s[1], &f),
            &self.shape,
        ))
    }

    /// `self + other` (arithmetic) or `self ^ other` (boolean); local.
    pub fn add(&self, other: &Self) -> Result<Self, MpcError> {
        self.zip_with(other, K::add)
    }

    /// `self - other` (arithmetic) or `self ^ other` (boolean); local.
    pub fn sub(&self, other: &Self) -> Result<Self, MpcError> {
        self.zip_with(other, K::sub)
    }

    /// Adds a public tensor (to slot 0, held by servers 0 and 2).
    pub fn add_public(&self, me: usize, c: &[K::Word]) -> Result<Self, MpcError> {
        self.add(&Self::public(me, c, &self.shape))
    }

    /// Elementwise product with a public tensor (local, no truncation).
    pub fn mul_public(&self, c: &[K::Word]) -> Result<Self, MpcError> {
        if c.len() != self.len() {
            return Err(ShapeError::Length {
                len: c.len(),
                shape: self.shape.clone(),
            }
            .into());
        }
        Ok(Self::from_parts(
            zip(&self.s[0], c, K::mul),
            zip(&self.s[1], c, K::mul),
            &self.shape,
        ))
    }

    /// Each element times the public scalar `k` (`&` for boolean sharing).
    pub fn scale(&self, k: K::Word) -> Self {
        let f = |v: &Vec<K::Word>| v.iter().map(|a| K::mul(*a, k)).collect();
        Self::from_parts(f(&self.s[0]), f(&self.s[1]), &self.shape)
    }

    /// Concatenates flat sharings (for batching independent operations into one round).
    pub fn concat(parts: &[&Self]) -> Self {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for p in parts {
            a.extend_from_slice(&p.s[0]);
            b.extend_from_slice(&p.s[1]);
        }
        let n = a.len();
        Self::from_parts(a, b, &[n])
    }

    /// Splits a flat sharing into consecutive pieces of the given shapes (inverse of `concat`).
    pub fn split(&self, shapes: &[&[usize]]) -> Result<Vec<Self>, MpcError> {
        let total: usize = shapes.iter().map(|s| numel(s)).sum();
        if total != self.len() {
            return Err(ShapeError::Length {
                len: total,
                shape: vec![self.len()],
            }
            .into());
        }
        let mut out = Vec::new();
        let mut at = 0;
        for shape in shapes {
            let n = numel(shape);
            out.push(Self::from_parts(
                self.s[0][at..at + n].to_vec(),
                self.s[1][at..at + n].to_vec(),
                shape,
            ));
            at += n;
        }
        Ok(out)
    }
}

impl<R: Ring> Aby3Tensor<R> {
    /// `-self` (local).
    pub fn neg(&self) -> Self {
        self.scale(R::ONE.neg())
    }

    /// The same value modulo `2^64` (local: each share reduced). A value below `2^63` in
    /// magnitude keeps its signed value, so comparisons of such values run in the 64-bit ring
    /// whatever ring the values live in.
    pub fn low64(&self) -> Aby3Tensor {
        let f = |v: &Vec<R>| v.iter().map(|a| a.low_u64()).collect();
        Shared::from_parts(f(&self.s[0]), f(&self.s[1]), &self.shape)
    }
}

impl<K: Kind<Word = u64>> Shared<K> {
    /// Each share zero-extended to 128 bits (local). For boolean sharings this is the same bits;
    /// for arithmetic ones it shares `x0 + x1 + x2` over the integers, which is `x` plus the
    /// number of times the shares wrapped `2^64` ([`range::range_and_wraps`] says how many).
    pub fn widen<K2: Kind<Word = u128>>(&self) -> Shared<K2> {
        let f = |v: &Vec<u64>| v.iter().map(|a| u128::from(*a)).collect();
        Shared::from_parts(f(&self.s[0]), f(&self.s[1]), &self.shape)
    }
}

impl<R: Ring> Aby3Bits<R> {
    /// Bitwise NOT (flip slot 0).
    pub fn not(&self, me: usize) -> Self {
        let flip = |v: &Vec<R>| v.iter().map(|a| a.not()).collect();
        // Slot 0 is this server's first share at server 0 and its second at server 2.
        match me {
            0 => Self::from_parts(flip(&self.s[0]), self.s[1].clone(), &self.shape),
            2 => Self::from_parts(self.s[0].clone(), flip(&self.s[1]), &self.shape),
            _ => self.clone(),
        }
    }

    /// Logical shift left by `bits` (local).
    pub fn shl(&self, bits: u32) -> Self {
        let f = |v: &Vec<R>| v.iter().map(|a| a.shl(bits)).collect();
        Self::from_parts(f(&self.s[0]), f(&self.s[1]), &self.shape)
    }

    /// Logical shift right by `bits` (local).
    pub fn shr(&self, bits: u32) -> Self {
        let f = |v: &Vec<R>| v.iter().map(|a| a.shr(bits)).collect();
        Self::from_parts(f(&self.s[0]), f(&self.s[1]), &self.shape)
    }
}

pub(crate) fn check_servers<N: Network>(session: &Session<N>) -> Result<(), MpcError> {
    if session.servers() != SERVERS {
        return Err(MpcError::Party(format!(
            "ABY3 runs on exactly three servers, this session has {}",
            session.servers()
        )));
    }
    Ok(())
}

/// This server's share of a fresh zero-sharing for `op`/`sub`: `F(k_{i,i+1}) - F(k_{i-1,i})`
/// (§2.2), so the three shares sum (or XOR) to zero and no server can predict another's.
pub(crate) fn zero_share<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    len: usize,
) -> Result<Vec<K::Word>, MpcError> {
    let me = session.me();
    let mut a: Vec<K::Word> = session.shared_prg(next(me), op, sub)?.ring_vec(len);
    let b: Vec<K::Word> = session.shared_prg(prev(me), op, sub)?.ring_vec(len);
    for (x, y) in a.iter_mut().zip(b) {
        *x = K::sub(*x, y);
    }
    Ok(a)
}

/// A random sharing no server knows: slot `j` comes from the PRG of the pair `{j-1, j}`, the
/// two servers that hold it. No communication.
pub(crate) fn random_shared<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    let me = session.me();
    let n = numel(shape);
    let mine: Vec<K::Word> = session.shared_prg(prev(me), op, sub)?.ring_vec(n);
    let theirs: Vec<K::Word> = session.shared_prg(next(me), op, sub)?.ring_vec(n);
    Ok(Shared::from_parts(mine, theirs, shape))
}

/// Turns a 3-out-of-3 sharing `z_me` (already masked by a zero-sharing) back into a replicated
/// one: each server sends its share to the previous server (one round, one element each).
async fn reshare<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    z: Vec<K::Word>,
    shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    let me = session.me();
    session.send_vec(prev(me), op, "reshare", &z).await?;
    let other = session.recv_vec(next(me), op, "reshare", z.len()).await?;
    Ok(Shared::from_parts(z, other, shape))
}

/// How a product is formed: elementwise or matrix product (arithmetic only).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Product {
    Hadamard,
    Matmul { m: usize, k: usize, n: usize },
}

impl Product {
    pub(crate) fn for_matmul(x: &[usize], y: &[usize]) -> Result<(Self, Vec<usize>), MpcError> {
        match (x, y) {
            (&[m, k], &[k2, n]) if k == k2 => Ok((Product::Matmul { m, k, n }, vec![m, n])),
            _ => Err(ShapeError::Matmul {
                left: x.to_vec(),
                right: y.to_vec(),
            }
            .into()),
        }
    }

    /// `x_i·y_i + x_i·y_{i+1} + x_{i+1}·y_i`: this server's additive share of the product.
    fn cross<K: Kind>(self, x: &Shared<K>, y: &Shared<K>) -> Result<Vec<K::Word>, MpcError> {
        match self {
            // x_i (y_i + y_{i+1}) + x_{i+1} y_i: two products per element.
            Product::Hadamard => Ok(x.s[0]
                .iter()
                .zip(&x.s[1])
                .zip(y.s[0].iter().zip(&y.s[1]))
                .map(|((a0, a1), (b0, b1))| K::add(K::mul(*a0, K::add(*b0, *b1)), K::mul(*a1, *b0)))
                .collect()),
            // x_i (y_i + y_{i+1}) + x_{i+1} y_i: two matrix products on the shares as they are.
            Product::Matmul { m, k, n } => {
                let y01: Vec<K::Word> = zip(&y.s[0], &y.s[1], K::add);
                let mut z = ring_matmul(&x.s[0], &y01, m, k, n);
                for (z, v) in z.iter_mut().zip(ring_matmul(&x.s[1], &y.s[0], m, k, n)) {
                    *z = K::add(*z, v);
                }
                Ok(z)
            }
        }
    }
}

/// This server's share of a product in three-out-of-three form: its cross terms plus its share
/// of a fresh zero-sharing, so the share alone is uniform to anyone else (every product, fused
/// truncation or not, starts here).
pub(crate) fn masked_cross<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    product: Product,
    x: &Shared<K>,
    y: &Shared<K>,
) -> Result<Vec<K::Word>, MpcError> {
    let mut z = product.cross(x, y)?;
    mask::<K, N>(session, op, 0, &mut z)?;
    Ok(z)
}

/// Adds this server's share of a fresh zero-sharing for `op`/`sub` to `z`, in place.
fn mask<K: Kind, N: Network>(
    session: &Session<N>,
    op: &Op,
    sub: u64,
    z: &mut [K::Word],
) -> Result<(), MpcError> {
    let alpha = zero_share::<K, N>(session, op, sub, z.len())?;
    for (a, b) in z.iter_mut().zip(alpha) {
        *a = K::add(*a, b);
    }
    Ok(())
}

/// Several independent elementwise products (AND for boolean sharings) in one round and one
/// message per server: the cross terms of each pair written one after another, masked once.
pub(crate) async fn product_batch<K: Kind, N: Network>(
    session: &Session<N>,
    name: &'static str,
    pairs: &[(&Shared<K>, &Shared<K>)],
) -> Result<Vec<Shared<K>>, MpcError> {
    check_servers(session)?;
    let op = session.op(name);
    let before = session.net_stats();
    let mut z = Vec::with_capacity(pairs.iter().map(|(x, _)| x.len()).sum());
    for (x, y) in pairs {
        x.check_same(y)?;
        z.extend(Product::Hadamard.cross(x, y)?);
    }
    mask::<K, N>(session, &op, 0, &mut z)?;
    let me = session.me();
    session.send_vec(prev(me), &op, "reshare", &z).await?;
    let other: Vec<K::Word> = session.recv_vec(next(me), &op, "reshare", z.len()).await?;
    session.record(&op, before);
    let mut out = Vec::with_capacity(pairs.len());
    let mut at = 0;
    for (x, _) in pairs {
        let n = x.len();
        out.push(Shared::from_parts(
            z[at..at + n].to_vec(),
            other[at..at + n].to_vec(),
            &x.shape,
        ));
        at += n;
    }
    Ok(out)
}

/// Product of two sharings (mul for arithmetic, AND for boolean) with resharing: one round,
/// each server sends one element per output element (§3 semi-honest multiplication).
pub(crate) async fn product<K: Kind, N: Network>(
    session: &Session<N>,
    name: &'static str,
    x: &Shared<K>,
    y: &Shared<K>,
    product: Product,
    out_shape: &[usize],
) -> Result<Shared<K>, MpcError> {
    check_servers(session)?;
    let op = session.op(name);
    let before = session.net_stats();
    let z = masked_cross(session, &op, product, x, y)?;
    let out = reshare(session, &op, z, out_shape).await?;
    session.record(&op, before);
    Ok(out)
}

/// Elementwise product `x * y` (exact in the ring).
pub async fn mul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    x.check_same(y)?;
    product(session, "aby3_mul", x, y, Product::Hadamard, &x.shape).await
}

/// Matrix product of `m x k` and `k x n` sharings (exact in the ring).
pub async fn matmul<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    y: &Aby3Tensor<R>,
) -> Result<Aby3Tensor<R>, MpcError> {
    let (p, shape) = Product::for_matmul(&x.shape, &y.shape)?;
    product(session, "aby3_matmul", x, y, p, &shape).await
}

/// `sum_{i < len} x_i^2` as a one-element sharing: each server sums its cross terms
/// `x_i (x_i + 2 x_{i+1})` locally, then one element is reshared (an inner product costs what
/// one product costs).
pub async fn sum_squares<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Tensor<R>,
    len: usize,
) -> Result<Aby3Tensor<R>, MpcError> {
    check_servers(session)?;
    if len > x.len() {
        return Err(MpcError::Invalid(format!(
            "sum of {len} squares of {} elements",
            x.len()
        )));
    }
    let op = session.op("aby3_sum_squares");
    let before = session.net_stats();
    let (a, b) = x.shares();
    let local = a[..len]
        .iter()
        .zip(&b[..len])
        .fold(R::ZERO, |acc, (a0, a1)| {
            acc.add(a0.mul(a0.add(a1.add(*a1))))
        });
    let mut z = vec![local];
    mask::<Arith<R>, N>(session, &op, 0, &mut z)?;
    let out = reshare(session, &op, z, &[1]).await?;
    session.record(&op, before);
    Ok(out)
}

/// Bitwise AND of two boolean sharings.
pub async fn and<R: Ring, N: Network>(
    session: &Session<N>,
    x: &Aby3Bits<R>,
    y: &Aby3Bits<R>,
) -> Result<Aby3Bits<R>, MpcError> {
    x.check_same(y)?;
    product(session, "aby3_and", x, y, Product::Hadamard, &x.shape).await
}

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
        let x = value.ok_or_else(|| MpcError::Party("the owner must supply the value".into()))?;
        if x.shape() != shape {
            return Err(ShapeError::Mismatch {
                left: x.shape().to_vec(),
                right: shape.to_vec(),
            }
            .into());
        }
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
            reason: format!("input {label:?}: the servers' copies of a share differ"),
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
