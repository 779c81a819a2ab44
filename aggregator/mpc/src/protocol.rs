//! One interface over the three protocols, so a model written once runs on any of them.
//!
//! [`Protocol`] has the sharing, the local linear operations, the interactive products and
//! truncation every protocol provides, and the comparison ([`Protocol::drelu`]) only SecureNN and
//! ABY3 provide: under Pond it returns [`MpcError::Unsupported`], never a panic, and so does
//! everything built on it in [`super::nn`] (ReLU, max-pooling, argmax, sort...). Values live in
//! the ring of [`Protocol::Elem`]: `u64` for inference, `u128` for training, whose truncations
//! must not fail (see [`super::train::precision`]); fixed-point values carry
//! [`Protocol::frac_bits`] fractional bits. Comparisons run on the values modulo `2^64` in
//! every ring (exact while `|x| < 2^62`), so a wider ring costs wider products and truncations,
//! not wider comparison circuits.
//!
//! [`Pond`], [`SecureNn`] and [`Aby3`] bind a [`Session`] to a protocol and a ring (`u64`
//! unless given: `Aby3::new` is 64-bit, `Aby3::<_, u128>::in_ring` 128-bit).

use crate::error::Invalid;
use std::future::Future;
use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::protocol::max_frac_bits;
use tessera_common::ring::{Ring, RingTensor};

use super::aby3::{self, Aby3Tensor, Shared};
use super::pond::{self, PondTensor};
use super::prep::Needs;
use super::{MpcError, Session, securenn};

fn check_frac_bits<R: Ring>(frac_bits: u32) -> Result<(), MpcError> {
    let max = max_frac_bits(R::BITS);
    if frac_bits == 0 || frac_bits > max {
        return Err(Invalid::FracBits {
            frac_bits,
            max,
            ring_bits: R::BITS,
        }
        .into());
    }
    Ok(())
}

/// The error of an operation a protocol lacks.
pub fn unsupported(protocol: &'static str, op: &'static str) -> MpcError {
    MpcError::Unsupported { protocol, op }
}

/// A local map on one share's elements (a gather, reshape, sum...), as
/// [`Protocol::map_local`] takes it.
pub type LocalMap<'a, E> = &'a (dyn Fn(&[E]) -> Vec<E> + Sync);

/// The operations of a secret-sharing protocol (see the module docs).
pub trait Protocol: Send + Sync {
    /// A shared tensor as one server holds it.
    type Tensor: Clone + Send + Sync + std::fmt::Debug + 'static;
    /// The ring the values live in.
    type Elem: Ring;
    /// The protocol's name (`pond`, `securenn`, `aby3`).
    const NAME: &'static str;

    /// This server's index.
    fn me(&self) -> usize;
    /// Fractional bits of fixed-point values.
    fn frac_bits(&self) -> u32;
    /// A tensor's public shape.
    fn shape<'a>(&self, x: &'a Self::Tensor) -> &'a [usize];

    /// What the program has asked of this session's preprocessing pools so far
    /// ([`Session::wanted`]); the difference across one run of a program sizes the next.
    fn wanted(&self) -> Needs;
    /// What this session's pools hold made and not yet used ([`Session::held`]).
    fn held(&self) -> Needs;
    /// Makes `needs` ahead of the online phase ([`crate::prepare::prepare`]); every server calls it
    /// with the same needs.
    fn prepare(&self, needs: &Needs) -> impl Future<Output = Result<(), MpcError>> + Send;

    /// Shares a value held by server `owner`.
    fn share(
        &self,
        owner: usize,
        value: Option<&RingTensor<Self::Elem>>,
        shape: &[usize],
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send;
    /// Receives an input secret-shared by an outside party ([`super::io::send_input`]).
    fn input(
        &self,
        from: PartyId,
        label: &str,
        shape: &[usize],
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send;
    /// Reveals `x` to server `to` only.
    fn reveal(
        &self,
        x: &Self::Tensor,
        to: usize,
    ) -> impl Future<Output = Result<Option<RingTensor<Self::Elem>>, MpcError>> + Send;
    /// Reveals `x` to an outside party only ([`super::io::receive_output`]).
    fn output(
        &self,
        x: &Self::Tensor,
        to: PartyId,
        label: &str,
    ) -> impl Future<Output = Result<(), MpcError>> + Send;

    /// A public tensor as a sharing.
    fn public(&self, value: &[Self::Elem], shape: &[usize]) -> Self::Tensor;
    /// `x + y`.
    fn add(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, MpcError>;
    /// `x - y`.
    fn sub(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, MpcError>;
    /// `x * k` for a public ring scalar (no truncation).
    fn scale(&self, x: &Self::Tensor, k: Self::Elem) -> Self::Tensor;
    /// `x * c` elementwise for a public tensor (no truncation).
    fn mul_public(&self, x: &Self::Tensor, c: &[Self::Elem]) -> Result<Self::Tensor, MpcError>;
    /// A linear local map applied to the shares (gather, reshape, sum...).
    fn map_local(
        &self,
        x: &Self::Tensor,
        shape: &[usize],
        f: LocalMap<'_, Self::Elem>,
    ) -> Result<Self::Tensor, MpcError>;

    /// Elementwise product (exact in the ring).
    fn mul(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send;
    /// Matrix product (exact in the ring).
    fn matmul(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send;
    /// Signed shift right by `bits` (within one unit).
    fn truncate(
        &self,
        x: &Self::Tensor,
        bits: u32,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send;
    /// `(x * y) >> bits`.
    fn mul_trunc(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        bits: u32,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send {
        async move { self.truncate(&self.mul(x, y).await?, bits).await }
    }
    /// `(x · y) >> bits`.
    fn matmul_trunc(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        bits: u32,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send {
        async move { self.truncate(&self.matmul(x, y).await?, bits).await }
    }
    /// `x >= 0` as an arithmetic 0/1 (exact). Pond has no exact comparison.
    fn drelu(
        &self,
        x: &Self::Tensor,
    ) -> impl Future<Output = Result<Self::Tensor, MpcError>> + Send {
        let _ = x;
        async move { Err(unsupported(Self::NAME, "comparison (drelu)")) }
    }

    /// `-x`.
    fn neg(&self, x: &Self::Tensor) -> Self::Tensor {
        self.scale(x, Self::Elem::ONE.neg())
    }
    /// `x + c` for a public tensor.
    fn add_public(&self, x: &Self::Tensor, c: &[Self::Elem]) -> Result<Self::Tensor, MpcError> {
        self.add(x, &self.public(c, self.shape(x)))
    }
    /// The same shares under another shape.
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor, MpcError> {
        self.map_local(x, shape, &<[Self::Elem]>::to_vec)
    }
    /// Concatenates flat tensors (to batch independent operations into one round).
    fn concat(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor, MpcError>;
    /// Splits a flat tensor into pieces of the given shapes.
    fn split(&self, x: &Self::Tensor, shapes: &[&[usize]]) -> Result<Vec<Self::Tensor>, MpcError>;
}

macro_rules! binding {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<N: Network, R: Ring = u64> {
            session: Arc<Session<N>>,
            frac_bits: u32,
            ring: std::marker::PhantomData<R>,
        }

        impl<N: Network> $name<N> {
            /// Binds `session` in the 64-bit ring with fixed-point values of `frac_bits`
            /// fractional bits (at most [`MAX_FRAC_BITS`]).
            pub fn new(session: Arc<Session<N>>, frac_bits: u32) -> Result<Self, MpcError> {
                Self::in_ring(session, frac_bits)
            }
        }

        impl<N: Network, R: Ring> $name<N, R> {
            /// Binds `session` in the ring of `R` with fixed-point values of `frac_bits`
            /// fractional bits (at most [`max_frac_bits`]).
            pub fn in_ring(session: Arc<Session<N>>, frac_bits: u32) -> Result<Self, MpcError> {
                check_frac_bits::<R>(frac_bits)?;
                Ok($name {
                    session,
                    frac_bits,
                    ring: std::marker::PhantomData,
                })
            }

            /// The session.
            pub fn session(&self) -> &Session<N> {
                &self.session
            }
        }
    };
}

binding!(
    /// Pond (two computing servers and a producer).
    Pond
);
binding!(
    /// SecureNN: Pond's sharing plus exact comparisons with server2 as the helper.
    SecureNn
);
/// ABY3 (three servers, replicated sharing). Truncation is ABY3's two-share truncation
/// ([`aby3::trunc::truncate_two_share`]): one round, no preprocessing; the truncation-pair
/// variant stays in [`aby3::trunc`].
pub struct Aby3<N: Network, R: Ring = u64> {
    session: Arc<Session<N>>,
    frac_bits: u32,
    ring: std::marker::PhantomData<R>,
}

impl<N: Network> Aby3<N> {
    /// Binds `session` in the 64-bit ring with fixed-point values of `frac_bits` fractional
    /// bits (at most [`MAX_FRAC_BITS`]).
    pub fn new(session: Arc<Session<N>>, frac_bits: u32) -> Result<Self, MpcError> {
        Self::in_ring(session, frac_bits)
    }
}

impl<N: Network, R: Ring> Aby3<N, R> {
    /// Binds `session` in the ring of `R` with fixed-point values of `frac_bits` fractional
    /// bits (at most [`max_frac_bits`]).
    pub fn in_ring(session: Arc<Session<N>>, frac_bits: u32) -> Result<Self, MpcError> {
        check_frac_bits::<R>(frac_bits)?;
        Ok(Aby3 {
            session,
            frac_bits,
            ring: std::marker::PhantomData,
        })
    }

    /// The session.
    pub fn session(&self) -> &Session<N> {
        &self.session
    }
}

/// The methods every binding forwards to its protocol module (`pond` or `aby3`), which name them
/// the same.
macro_rules! delegate_impl {
    ($m:ident) => {
        fn me(&self) -> usize {
            self.session.me()
        }
        fn frac_bits(&self) -> u32 {
            self.frac_bits
        }
        fn shape<'a>(&self, x: &'a Self::Tensor) -> &'a [usize] {
            x.shape()
        }
        fn wanted(&self) -> Needs {
            self.session.wanted()
        }
        fn held(&self) -> Needs {
            self.session.held()
        }
        async fn prepare(&self, needs: &Needs) -> Result<(), MpcError> {
            crate::prepare::prepare(&self.session, needs).await
        }
        async fn share(
            &self,
            owner: usize,
            value: Option<&RingTensor<R>>,
            shape: &[usize],
        ) -> Result<Self::Tensor, MpcError> {
            $m::share_from(&self.session, owner, value, shape).await
        }
        async fn input(
            &self,
            from: PartyId,
            label: &str,
            shape: &[usize],
        ) -> Result<Self::Tensor, MpcError> {
            $m::input_from(&self.session, from, label, shape).await
        }
        async fn reveal(
            &self,
            x: &Self::Tensor,
            to: usize,
        ) -> Result<Option<RingTensor<R>>, MpcError> {
            $m::reveal_to(&self.session, x, to).await
        }
        async fn output(&self, x: &Self::Tensor, to: PartyId, label: &str) -> Result<(), MpcError> {
            $m::output_to(&self.session, x, to, label).await
        }
        fn add(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, MpcError> {
            x.add(y)
        }
        fn sub(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, MpcError> {
            x.sub(y)
        }
        fn scale(&self, x: &Self::Tensor, k: R) -> Self::Tensor {
            x.scale(k)
        }
        fn mul_public(&self, x: &Self::Tensor, c: &[R]) -> Result<Self::Tensor, MpcError> {
            x.mul_public(c)
        }
        fn map_local(
            &self,
            x: &Self::Tensor,
            shape: &[usize],
            f: LocalMap<'_, R>,
        ) -> Result<Self::Tensor, MpcError> {
            x.map_local(shape, f)
        }
        async fn mul(&self, x: &Self::Tensor, y: &Self::Tensor) -> Result<Self::Tensor, MpcError> {
            $m::mul(&self.session, x, y).await
        }
        async fn matmul(
            &self,
            x: &Self::Tensor,
            y: &Self::Tensor,
        ) -> Result<Self::Tensor, MpcError> {
            $m::matmul(&self.session, x, y).await
        }
    };
}

/// The parts of Pond and SecureNN that are the same: both hold [`PondTensor`]s.
macro_rules! additive_impl {
    () => {
        type Tensor = PondTensor<R>;
        type Elem = R;

        delegate_impl!(pond);

        fn public(&self, value: &[R], shape: &[usize]) -> Self::Tensor {
            let share = (self.me() < pond::PRODUCER).then(|| {
                let v = if self.me() == 0 {
                    value.to_vec()
                } else {
                    vec![R::ZERO; value.len()]
                };
                RingTensor::from_vec(shape, v).unwrap_or_else(|_| RingTensor::zeros(shape))
            });
            PondTensor::from_share(share, shape)
        }
        async fn truncate(&self, x: &Self::Tensor, bits: u32) -> Result<Self::Tensor, MpcError> {
            Ok(pond::truncate(self.me(), x, bits))
        }
        fn concat(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor, MpcError> {
            pond::concat(parts)
        }
        fn split(
            &self,
            x: &Self::Tensor,
            shapes: &[&[usize]],
        ) -> Result<Vec<Self::Tensor>, MpcError> {
            pond::split(x, shapes)
        }
    };
}

impl<N: Network, R: Ring> Protocol for Pond<N, R> {
    const NAME: &'static str = "pond";
    additive_impl!();
}

impl<N: Network, R: Ring> Protocol for SecureNn<N, R> {
    const NAME: &'static str = "securenn";
    additive_impl!();

    async fn drelu(&self, x: &Self::Tensor) -> Result<Self::Tensor, MpcError> {
        securenn::drelu(&self.session, x).await
    }
}

impl<N: Network, R: Ring> Protocol for Aby3<N, R> {
    type Tensor = Aby3Tensor<R>;
    type Elem = R;
    const NAME: &'static str = "aby3";

    delegate_impl!(aby3);

    fn public(&self, value: &[R], shape: &[usize]) -> Self::Tensor {
        Shared::public(self.me(), value, shape)
    }
    async fn truncate(&self, x: &Self::Tensor, bits: u32) -> Result<Self::Tensor, MpcError> {
        aby3::trunc::truncate_two_share(&self.session, x, bits).await
    }
    async fn mul_trunc(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        bits: u32,
    ) -> Result<Self::Tensor, MpcError> {
        aby3::trunc::mul_trunc_two_share(&self.session, x, y, bits).await
    }
    async fn matmul_trunc(
        &self,
        x: &Self::Tensor,
        y: &Self::Tensor,
        bits: u32,
    ) -> Result<Self::Tensor, MpcError> {
        aby3::trunc::matmul_trunc_two_share(&self.session, x, y, bits).await
    }
    async fn drelu(&self, x: &Self::Tensor) -> Result<Self::Tensor, MpcError> {
        aby3::boolean::drelu(&self.session, x).await
    }
    fn concat(&self, parts: &[&Self::Tensor]) -> Result<Self::Tensor, MpcError> {
        Ok(Shared::concat(parts))
    }
    fn split(&self, x: &Self::Tensor, shapes: &[&[usize]]) -> Result<Vec<Self::Tensor>, MpcError> {
        x.split(shapes)
    }
}
