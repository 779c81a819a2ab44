//! Errors of secure computation.
//!
//! One enum, [`MpcError`], whose variants say whose fault a failure is, each with a typed
//! reason (as rustls splits its `Error` into `PeerMisbehaved`, `InvalidMessage` and friends):
//! the network ([`MpcError::Net`]), a peer that sent what the protocol forbids
//! ([`Misbehaved`]), a party missing or in the wrong role ([`PartyError`]), an argument out of
//! an operation's domain ([`Invalid`]), a training job's settings ([`TrainJobError`], defined
//! with the job in `tessera-common`), and an invariant of the engine itself ([`Broken`]: a bug,
//! never the input). Every enum derives `PartialEq`, so tests match the exact reason.

use tessera_common::PartyId;
use tessera_common::fixed::FixedPointError;
use tessera_common::model_spec::SpecError;
use tessera_common::net::NetError;
use tessera_common::ring::ShapeError;
use tessera_common::sharing::SharingError;
use tessera_common::train_job::TrainJobError;

use crate::prep::Need;

/// Errors of secure computation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MpcError {
    /// Communication failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Shapes do not fit the operation.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// A peer sent bytes that are not what the protocol expects.
    #[error("protocol violation by {peer}: {reason}")]
    Protocol {
        /// The peer.
        peer: PartyId,
        /// What was wrong.
        reason: Misbehaved,
    },
    /// The operation needs a party this session does not have, or is called by the wrong party.
    #[error(transparent)]
    Party(#[from] PartyError),
    /// The protocol does not provide this operation (e.g. exact max-pooling under Pond).
    #[error("{protocol} does not support {op}")]
    Unsupported {
        /// The protocol.
        protocol: &'static str,
        /// The operation.
        op: &'static str,
    },
    /// An argument is out of the operation's domain (axis, stride, bit count...).
    #[error("invalid argument: {0}")]
    Invalid(#[from] Invalid),
    /// A training job whose settings cannot run.
    #[error("invalid training job: {0}")]
    Job(#[from] TrainJobError),
    /// A computation that needs a wider ring than the protocol was bound to (training needs the
    /// 128-bit ring: in the 64-bit one its truncations fail too often, see
    /// `train::precision`).
    #[error(
        "this needs the {needed}-bit ring (bind the protocol with in_ring::<u{needed}>), not the {bits}-bit one"
    )]
    RingTooNarrow {
        /// The protocol's ring.
        bits: u32,
        /// The ring needed.
        needed: u32,
    },
    /// An invariant of the engine failed: a bug, not bad input.
    #[error("engine invariant: {0}")]
    Broken(#[from] Broken),
}

/// What a peer sent that the protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misbehaved {
    /// An outside party's replicated input whose copies at the servers differ (ABY3).
    #[error("input {label:?}: the servers' copies of a share differ")]
    InconsistentInput {
        /// The input's label.
        label: String,
    },
    /// An output share of the wrong length.
    #[error("output share under {label:?} is not {expected} elements")]
    OutputLength {
        /// The output's label.
        label: String,
        /// Its length.
        expected: usize,
    },
    /// A dealt share outside its modulus (SecureNN's `Z_67` and `Z_{2^64-1}`).
    #[error("{part} is not in {modulus}")]
    OutOfRange {
        /// The message part.
        part: &'static str,
        /// The modulus, as written in the paper.
        modulus: &'static str,
    },
    /// A pairwise seed of the wrong length.
    #[error("seed is not 32 bytes")]
    Seed,
    /// A message that is not whole ring elements.
    #[error("not whole ring elements")]
    NotRingElements,
    /// A message without the depth trailer every message between servers carries.
    #[error("message shorter than its depth trailer")]
    NoDepthTrailer,
    /// A message of the wrong length.
    #[error("expected {expected} bytes, got {got}")]
    Bytes {
        /// The length the protocol sends.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// An outside party's message of the wrong number of ring elements.
    #[error("expected {expected} ring elements under {label:?}")]
    Elements {
        /// The message's label.
        label: String,
        /// The number the protocol sends.
        expected: usize,
    },
    /// A server that runs another job description under the same job id.
    #[error("runs a different job description under the same id")]
    OtherDescription,
}

/// A party the operation needs but does not have, or a party in the wrong role.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PartyError {
    /// A session started by a party that is not a server.
    #[error("{0} is not a server")]
    NotAServer(PartyId),
    /// A protocol on a session with the wrong number of servers.
    #[error("{protocol} runs on {needed} servers, this session has {have}")]
    Servers {
        /// The protocol.
        protocol: &'static str,
        /// The servers it needs.
        needed: usize,
        /// The session's.
        have: usize,
    },
    /// An input whose owner did not supply the value.
    #[error("the owner must supply the value")]
    NoValue,
    /// A server called for a share it does not hold (e.g. Pond's producer).
    #[error("server{0} holds no share of this value")]
    NoShare(usize),
    /// No pairwise seed with this server.
    #[error("no seed with server{0}")]
    NoSeed(usize),
    /// An opening this party expected but did not receive.
    #[error("the opening did not reach this party")]
    NoOpening,
    /// A party that has no part in the job.
    #[error("{0} has no part in this job")]
    NotInJob(PartyId),
    /// A party's task ended without its result (it panicked or was cancelled).
    #[error("{what} task: {message}")]
    Task {
        /// Which task.
        what: &'static str,
        /// The runtime's account of it.
        message: String,
    },
    /// A peer server reported that the job failed there.
    #[error("the job failed at {peer}: {reason}")]
    FailedAt {
        /// The server.
        peer: PartyId,
        /// Its reason, as it sent it.
        reason: String,
    },
}

/// An argument out of an operation's domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// Fractional bits the ring cannot hold.
    #[error("{frac_bits} fractional bits (1 to {max} fit the {ring_bits}-bit ring)")]
    FracBits {
        /// Asked for.
        frac_bits: u32,
        /// The most that fit.
        max: u32,
        /// The ring's width.
        ring_bits: u32,
    },
    /// An axis the shape does not have.
    #[error("axis {axis} out of range for shape {shape:?}")]
    Axis {
        /// The axis.
        axis: usize,
        /// The shape.
        shape: Vec<usize>,
    },
    /// A tensor of the wrong rank or layout for the operation.
    #[error("{what} must be {expected}, got {shape:?}")]
    Layout {
        /// Which tensor.
        what: &'static str,
        /// The layout the operation takes.
        expected: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// An input without the kernel's channels.
    #[error("input {input:?} does not have the kernel's {channels} channels")]
    Channels {
        /// The input's shape.
        input: Vec<usize>,
        /// The kernel's channels.
        channels: usize,
    },
    /// A window larger than its (padded) input.
    #[error(
        "a {}x{} window of stride {stride:?} and padding {pads:?} does not fit a {h}x{w} input",
        kernel.0,
        kernel.1
    )]
    Window {
        /// Kernel height and width.
        kernel: (usize, usize),
        /// Its vertical and horizontal stride.
        stride: (usize, usize),
        /// Its padding: top, left, bottom, right.
        pads: [usize; 4],
        /// Input height.
        h: usize,
        /// Input width.
        w: usize,
    },
    /// A division whose operands do not fit the comparison's bits.
    #[error(
        "division with {frac_bits} fractional and {int_bits} integer bits does not fit 62 bits"
    )]
    DivisionBits {
        /// Fractional bits.
        frac_bits: u32,
        /// Integer bits.
        int_bits: u32,
    },
    /// A range check below the bits the values already span.
    #[error("range check below 2^{0}")]
    RangeBits(u32),
    /// A trimmed sum that trims all uploads, or of uploads of different lengths.
    #[error("trimming {trim} of each side of {} uploads (of lengths {lengths:?})", lengths.len())]
    Trim {
        /// Trimmed from each side.
        trim: usize,
        /// The uploads' lengths.
        lengths: Vec<usize>,
    },
    /// A range check of a vector it cannot take (fewer than two elements, or a bound that
    /// leaves no room in the 64-bit ring).
    #[error("range check of {elements} elements to 2^{range_bits}")]
    RangeCheck {
        /// The vector's length.
        elements: usize,
        /// The bound's bits.
        range_bits: u32,
    },
    /// A model spec whose layers do not fit.
    #[error(transparent)]
    Model(#[from] SpecError),
    /// Parameters that do not match the model.
    #[error("{got} parameter tensors for a model with {expected}")]
    Params {
        /// Given.
        got: usize,
        /// The model's.
        expected: usize,
    },
    /// A flat parameter vector shorter than the model's parameters.
    #[error("fewer parameters than the model has")]
    FewerParams,
    /// A backward pass given a tape or parameters of another model.
    #[error("the tape or the parameters do not belong to this model")]
    TapeModel,
    /// A backward pass whose tape entry does not match its layer.
    #[error("layer {0} does not match what its forward pass kept")]
    TapeLayer(usize),
    /// A backward pass that produced no gradient for a parameter.
    #[error("no gradient for parameter {0}")]
    NoGradient(usize),
    /// A value that has no fixed-point encoding at the job's precision.
    #[error("{what}: {source}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// Why it does not fit.
        source: FixedPointError,
    },
    /// A prediction job run on a server that holds no shares of the deployed model.
    #[error("the deployed model's shares are missing")]
    NoDeployment,
}

/// An invariant of the engine that failed: each names the bug, none is caused by input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Broken {
    /// A sharing of the engine's own making that does not fit (a party count or shapes).
    #[error("sharing: {0}")]
    Sharing(SharingError),
    /// A preprocessing pool this kind of value does not have.
    #[error("no pool for {0:?}")]
    NoPool(Need),
    /// A pool that holds values of another ring.
    #[error("pool {0:?} holds another type")]
    PoolType(Need),
    /// A pool whose ledger counts a value it does not hold.
    #[error("server{server}'s pool {need:?} counts a value it does not hold")]
    PoolCount {
        /// The server.
        server: usize,
        /// The pool.
        need: &'static str,
    },
    /// More values asked of a pool than an index can count.
    #[error("{count} values of {need:?}")]
    TooMany {
        /// The pool.
        need: Need,
        /// How many.
        count: u64,
    },
    /// A boolean circuit that used more gates than it was built with.
    #[error("{0} circuit ran out of gates")]
    Gates(&'static str),
    /// Operands of an internal step of unequal lengths.
    #[error("{what}: {got} for {expected} elements")]
    Lengths {
        /// The step.
        what: &'static str,
        /// The length given.
        got: usize,
        /// The length needed.
        expected: usize,
    },
    /// A comparison tree that ended without its selection.
    #[error("{0} without selection")]
    NoSelection(&'static str),
    /// A server holding another component of a replicated vector than its role's.
    #[error("server{0} does not hold its component of a replicated vector")]
    WrongComponent(usize),
    /// A server holding the other half of a two-share value than its role's.
    #[error("server{0} holds the wrong half of a two-share truncation")]
    WrongHalf(usize),
}

impl From<SharingError> for MpcError {
    /// A server's share of the wrong length is its misbehaviour; a shape error is the
    /// caller's; anything else is the engine's bug.
    fn from(e: SharingError) -> Self {
        match e {
            SharingError::ShareLength {
                from,
                label,
                expected,
            } => MpcError::Protocol {
                peer: from,
                reason: Misbehaved::OutputLength { label, expected },
            },
            SharingError::Shape(e) => MpcError::Shape(e),
            other => MpcError::Broken(Broken::Sharing(other)),
        }
    }
}

impl From<SpecError> for MpcError {
    fn from(e: SpecError) -> Self {
        MpcError::Invalid(Invalid::Model(e))
    }
}
