//! ABY3: three-party replicated secret sharing (Mohassel & Rindal, CCS 2018, "ABY3: A Mixed
//! Protocol Framework for Machine Learning").
//!
//! A value is `x = x0 + x1 + x2` (arithmetic, mod 2^64) or `x = x0 ^ x1 ^ x2` (boolean, 64 bits
//! packed per element); server `i` holds the pair `(x_i, x_{i+1})` (§2.2). Any two servers can
//! reconstruct, no single one learns anything. The sharing and its linear operations are
//! [`share`], multiplication with resharing from zero-sharings (§3, §5.1) [`product`], opening and
//! input/output [`io`]; the other submodules add the rest:
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
pub mod io;
pub mod planes;
pub mod prep;
pub mod product;
pub mod range;
pub mod share;
pub mod sliced;
pub mod trunc;

pub use io::{input_from, open, output_to, reveal_to, share_from, split3};
pub(crate) use product::{Product, masked_cross, product_batch, random_shared};
pub use product::{and, matmul, mul, sum_squares};
pub(crate) use share::check_servers;
pub use share::{Aby3Bits, Aby3Tensor, Arith, Bool, Kind, SERVERS, Shared, next, prev};
