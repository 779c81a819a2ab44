//! The drivers: what moves the I/O-free round machines of [`crate::round`] over the network,
//! one file per role. Each is a part of [`crate::AggregatorService`]'s methods: the leader's
//! (rounds opened and closed, uploads forwarded to the helpers and committed on their answers) in
//! [`leader`], a helper's (its loop over the leader's messages) in [`helper`], and the robust
//! rules' checks under MPC, which both run, in [`check`]. The service's state and the methods
//! every server answers are in `service.rs`.
//!
//! The methods are grouped by role rather than in one `impl` block: one block would be a file of
//! about 1,500 lines, and role types of their own would need the whole state and a facade of
//! every public method, so the role is the seam and the file is its room.

pub(crate) mod check;
pub(crate) mod helper;
pub(crate) mod leader;
