//! Errors of the code generator, each naming what it is about (node, op, value or target).

/// A code-generation failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodegenError {
    /// The target triple or a feature flag is unknown or unsupported.
    #[error("target: {msg}")]
    Target {
        /// What was wrong.
        msg: String,
    },
    /// The graph cannot be compiled natively at all (dynamic shapes, non-tensor values, ...).
    #[error("cannot compile natively: {msg}")]
    Unsupported {
        /// Why.
        msg: String,
    },
    /// The graph is inconsistent.
    #[error("graph: {msg}")]
    Graph {
        /// What was wrong.
        msg: String,
    },
    /// Lowering a node failed.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Node name.
        node: String,
        /// Op name.
        op: String,
        /// What went wrong.
        msg: String,
    },
    /// Cranelift rejected generated code (a bug in a kernel emitter).
    #[error("cranelift: {msg}")]
    Cranelift {
        /// Its message.
        msg: String,
    },
}
