//! The frontend's error type: every failure names the file, tensor, node, op, attribute or value involved.

use std::fmt;
use std::path::PathBuf;

use carve_ir::infer::InferError;

/// One (domain, op, opset) the importer does not support, with the nodes that use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    /// Operator domain (`ai.onnx` for the default domain).
    pub domain: String,
    /// Operator type.
    pub op_type: String,
    /// Opset version of the domain imported by the model.
    pub opset: i64,
    /// Names of the nodes using it (node index when unnamed).
    pub nodes: Vec<String>,
    /// Why, when the op is known but this form of it is deliberately not supported.
    pub reason: Option<String>,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<&str> = self.nodes.iter().take(5).map(String::as_str).collect();
        let more = self.nodes.len().saturating_sub(shown.len());
        write!(
            f,
            "{}::{} (opset {}) used by node(s) {}",
            self.domain,
            self.op_type,
            self.opset,
            shown.join(", ")
        )?;
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        if let Some(r) = &self.reason {
            write!(f, ": {r}")?;
        }
        Ok(())
    }
}

fn fmt_unsupported(list: &[UnsupportedOp]) -> String {
    let items: Vec<String> = list.iter().map(|u| format!("  - {u}")).collect();
    format!(
        "{} unsupported operator(s):\n{}",
        list.len(),
        items.join("\n")
    )
}

/// Why a model could not be loaded or imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened, mapped or read.
    #[error("cannot read '{path}': {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error (included in the message, so not also reported as a separate cause).
        error: std::io::Error,
    },
    /// The bytes are not a valid ONNX protobuf.
    #[error("'{path}' is not a valid ONNX model: {msg}")]
    Decode {
        /// The file (or `<memory>`).
        path: String,
        /// What the decoder reported.
        msg: String,
    },
    /// A tensor's declared type, dims or data are inconsistent.
    #[error("tensor '{tensor}': {msg}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// A tensor's external data location was refused or could not be read.
    #[error("tensor '{tensor}': external data: {msg}")]
    ExternalData {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// Operators the importer does not support; lists every one in the model at once.
    #[error("{}", fmt_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
    /// A node could not be imported.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Node name (or `#index` when unnamed).
        node: String,
        /// Operator type.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A node attribute is missing, of the wrong type, or out of range.
    #[error("node '{node}' ({op}): attribute '{attr}': {msg}")]
    Attribute {
        /// Node name.
        node: String,
        /// Operator type.
        op: String,
        /// Attribute name.
        attr: String,
        /// What is wrong.
        msg: String,
    },
    /// Type inference rejected a node.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// A graph-level problem: undefined value, cycle, duplicate definition, missing type.
    #[error("graph '{graph}': {msg}")]
    Graph {
        /// Graph name.
        graph: String,
        /// What is wrong.
        msg: String,
    },
}
