//! carve: a compiler backend for neural-network graphs. It reads an ONNX model, lowers it to a typed graph
//! IR, and (as the project grows) compresses, optimizes and compiles it to native kernels.
//!
//! ```no_run
//! let model = carve::load("model.onnx")?;
//! println!("{}", carve::ir::text::print(&model.graph));
//! # Ok::<(), carve::frontend::ImportError>(())
//! ```
//!
//! The crates behind this facade: [`ir`] (graph, types, ops, inference, verifier, text format) and
//! [`frontend`] (ONNX decoding and import).

pub use carve_codegen as codegen;
pub use carve_frontend as frontend;
pub use carve_ir as ir;
pub use carve_passes as passes;
pub use carve_runtime as runtime;

pub mod bench;
pub mod build;
pub mod compare;
pub mod compiler;
pub mod conformance;
pub mod cost;
pub mod data;
pub mod inputs;
pub mod inspect;
pub mod npy;
pub mod optimize;
pub mod output;
pub mod pipeline;
pub mod shapes;
pub mod show;

pub use carve_frontend::{ImportError, Model};
pub use compiler::{CompiledModel, Compiler};

/// Loads and imports an ONNX model file and verifies the imported graph.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Model, ImportError> {
    let m = carve_frontend::load(path)?;
    carve_ir::verify::verify(&m.graph).map_err(|e| ImportError::Graph {
        graph: m.graph.name.clone(),
        msg: e.to_string(),
    })?;
    Ok(m)
}
