//! The ABY3 sharing itself: the algebra of a share ([`Kind`]: arithmetic or boolean), a server's
//! pair of shares ([`Shared`]) with its local (linear) operations, and who holds which share.

use crate::error::PartyError;
use std::marker::PhantomData;

use tessera_common::net::Network;
use tessera_common::ring::{Ring, ShapeError};

use crate::{MpcError, Session};

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
    /// This server's two shares (the ABY3 module's code reads them directly).
    pub(super) s: [Vec<K::Word>; 2],
    pub(super) shape: Vec<usize>,
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

pub(super) fn zip<W: Ring>(a: &[W], b: &[W], f: impl Fn(W, W) -> W) -> Vec<W> {
    a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect()
}

pub(super) fn numel(shape: &[usize]) -> usize {
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

    pub(super) fn check_same(&self, other: &Self) -> Result<(), MpcError> {
        Ok(ShapeError::same(&self.shape, &other.shape)?)
    }

    pub(super) fn zip_with(
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

/// Refuses a session of other than three servers.
pub(crate) fn check_servers<N: Network>(session: &Session<N>) -> Result<(), MpcError> {
    if session.servers() != SERVERS {
        return Err(PartyError::Servers {
            protocol: "ABY3",
            needed: 3,
            have: session.servers(),
        }
        .into());
    }
    Ok(())
}
