//! carve's ONNX frontend: decodes `.onnx` files (prost messages written in this crate, weights
//! memory-mapped and zero-copy) and imports them into carve's IR.
//!
//! ```no_run
//! let model = carve_frontend::load("model.onnx")?;
//! println!("{} nodes", model.graph.nodes.len());
//! # Ok::<(), carve_frontend::ImportError>(())
//! ```
//!
//! Every failure is an [`ImportError`] that names the file, tensor, node, op or attribute involved;
//! hostile files (truncated, oversized declarations, escaping external data paths, cycles, deep nesting)
//! are refused without panicking or allocating in proportion to declared sizes.

mod error;
mod external;
mod load;
pub mod onnx;
pub mod proto;
pub mod tensor;

pub use error::{ImportError, UnsupportedOp};
pub use load::{decode_file, load, load_bytes};
pub use onnx::import::{Model, import_model};
