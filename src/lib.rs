//! carve: a compiler backend for neural-network graphs. It reads an ONNX model, lowers it to a typed graph
//! IR, optimizes it, and compiles it to native kernels — just in time ([`Compiler`]) or ahead of time
//! ([`build`]).
//!
//! Load, compile, run (the bundled example classifier, input `image` f32[N,3,16,16], output `probs`):
//!
//! ```
//! use carve::{Data, Tensor, Value};
//!
//! let model = carve::load(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/models/tiny_cnn.onnx"))?;
//! let compiled = carve::Compiler::new().compile(&model)?;
//!
//! let image = Tensor::new(vec![1, 3, 16, 16], Data::F32(vec![0.5; 3 * 16 * 16]))?;
//! let outputs = compiled.run(vec![("image".to_string(), Value::from(image))])?;
//!
//! let (name, probs) = &outputs[0];
//! let probs = probs.as_tensor().ok_or("probs is not a tensor")?;
//! assert_eq!((name.as_str(), probs.shape.as_slice()), ("probs", &[1, 4][..]));
//! let Data::F32(p) = &probs.data else { panic!("probs is not f32") };
//! assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5); // softmax
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The types a user handles are at the crate root: [`Model`] (an imported graph), [`Compiler`] and
//! [`CompiledModel`], and the runtime values [`Value`] (a [`Tensor`], a sequence or an optional, as ONNX
//! values are) with their element storage [`Data`]. (`carve::ir::Value` is something else: a value *in the
//! graph*, with a name and a type.)
//!
//! The crates behind this facade: [`ir`] (graph, types, ops, inference, verifier, text format), [`frontend`]
//! (ONNX decoding and import), [`passes`] (canonicalization and the e-graph optimizer), [`codegen`]
//! (schedule and native code), [`runtime`] (tensors, the reference interpreter, running native code).
//!
//! Cargo features: `cli` (default) builds the `carve` command-line tool and enables `npy`; `npy` adds the
//! `npy` module (`.npy`/`.npz` reading and writing). The library alone (`default-features = false`) pulls
//! in none of clap, indicatif, anyhow, npyz or zip.

pub use carve_codegen as codegen;
pub use carve_frontend as frontend;
pub use carve_ir as ir;
pub use carve_passes as passes;
pub use carve_runtime as runtime;

pub mod bench;
pub mod build;
pub mod compare;
pub mod compiler;
pub mod compress;
pub mod conformance;
pub mod cost;
pub mod data;
pub mod fuzz;
pub mod inputs;
pub mod inspect;
#[cfg(feature = "npy")]
pub mod npy;
pub mod optimize;
pub mod output;
pub mod pipeline;
pub mod segments;
pub mod shapes;
pub mod show;
pub mod specialize;

pub use carve_frontend::{ImportError, Model};
pub use carve_ir::DType;
pub use carve_runtime::interp::Value;
pub use carve_runtime::{Data, Tensor, TensorError};
pub use compiler::{CompileError, CompiledModel, Compiler};

/// Loads and imports an ONNX model file and verifies the imported graph.
pub fn load(path: impl AsRef<std::path::Path>) -> Result<Model, ImportError> {
    let m = carve_frontend::load(path)?;
    carve_ir::verify::verify(&m.graph).map_err(|e| ImportError::Graph {
        graph: m.graph.name.clone(),
        msg: e.to_string(),
    })?;
    Ok(m)
}

/// `e` with its chain of sources, `outer: inner: ...` — the CLI's error format, shared by the C API
/// and the Python package so that every front end prints the same message (a source whose text the
/// message already holds is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
