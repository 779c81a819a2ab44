//! [`GraphError`]: why a graph does not resolve, naming the node.

/// A graph that does not resolve: the node, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model graph: node {node:?}: {problem}")]
pub struct GraphError {
    /// The node (or `"output"` for the graph's output).
    pub node: String,
    /// What is wrong.
    pub problem: GraphProblem,
}

/// What is wrong at a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphProblem {
    /// A value produced twice (or named as the graph's input).
    #[error("value {0:?} is produced twice")]
    Duplicate(String),
    /// A value read before any node produced it.
    #[error("value {0:?} is not produced before it is read")]
    Unknown(String),
    /// Another number of inputs than the operator takes.
    #[error("{op} takes {expected} inputs, given {got}")]
    Arity {
        /// The operator.
        op: &'static str,
        /// Inputs it takes (for `Concat`, at least this many).
        expected: usize,
        /// Inputs given.
        got: usize,
    },
    /// An input of a shape the operator cannot take.
    #[error("{op} cannot take input of shape {input:?}")]
    Shape {
        /// The operator.
        op: &'static str,
        /// The input's shape.
        input: Vec<usize>,
    },
    /// Inputs whose shapes do not fit together (an addition of two shapes, a concatenation of
    /// different heights).
    #[error("{op} cannot combine shapes {left:?} and {right:?}")]
    Mismatch {
        /// The operator.
        op: &'static str,
        /// One shape.
        left: Vec<usize>,
        /// The other.
        right: Vec<usize>,
    },
    /// A value or the parameters larger than a model may be ([`super::MAX_ELEMENTS`] values
    /// a sample, [`super::MAX_PARAMS`] parameters, attributes up to
    /// [`super::shape::MAX_ATTRIBUTE`]): the graph comes from another party, and its sizes
    /// must neither overflow nor exhaust memory.
    #[error("{what} too large")]
    TooLarge {
        /// What: a value, the parameters, an attribute.
        what: &'static str,
    },
    /// An attribute out of range (a zero kernel, stride or unit count, groups that do not
    /// divide the channels, a clip whose bounds are reversed).
    #[error("{op}: {attribute} out of range")]
    Attribute {
        /// The operator.
        op: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
}
