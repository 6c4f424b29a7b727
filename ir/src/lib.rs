//! carve's graph IR: typed SSA values over ops with typed attributes, shape inference, a verifier and a
//! deterministic text format that round-trips.
//!
//! ```
//! use carve_ir::{DType, Graph, TensorType, Type, ops::elementwise::Relu};
//!
//! let mut g = Graph::new("tiny");
//! let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[1, 4])));
//! let y = g.add_node("r", Relu::default().into(), vec![Some(x)], vec!["y".into()]).unwrap();
//! g.outputs = y;
//! assert_eq!(g.ty(g.outputs[0]).to_string(), "f32[1,4]");
//! ```
//!
//! The IR knows nothing of ONNX, Cranelift or egg: the frontend lowers ONNX into it, passes rewrite it,
//! codegen compiles it, and the runtime's interpreter defines what each op computes.

pub mod algo;
mod constant;
mod dtype;
pub mod fold;
mod graph;
pub mod infer;
pub mod ops;
mod shape;
pub mod text;
mod types;
pub mod verify;

pub use constant::{Buffer, ConstData, ConstFormat, Constant, INLINE_ELEMENTS};
pub use dtype::DType;
pub use graph::{Capture, Graph, Node, NodeId, Value, ValueId};
pub use ops::Op;
pub use shape::{Dim, Shape};
pub use types::{Quant, QuantAxis, TensorType, Type};
