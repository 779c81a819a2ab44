//! Robust aggregation rules computed on secret shares: the servers convert each upload into
//! ABY3's replicated sharing ([`replicate`]) and check or transform it under MPC, so that a
//! malicious data owner's update is bounded before it joins the sum while no server learns more
//! than the rule's verdict.
//!
//! - [`norm`]: `norm-bound`, the L2 norm of the update divided by its weight at most `B`, with
//!   every coordinate range-checked so the squares cannot wrap.
//! - [`clip`]: `clip`, the update scaled by `min(1, B w / ||u||)` before it joins the sum.
//! - [`sort`]: `trimmed-mean:k` and `median`, coordinate-wise over the contributors by a sorting
//!   network at the round's close.

pub mod clip;
pub mod norm;
pub mod replicate;
pub mod sort;

pub use norm::{check_upload, norm_bound_verdict};
pub use replicate::{Component, replicate};
pub use tessera_common::rule::NormBound;
