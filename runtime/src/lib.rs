//! carve's runtime: tensors and (as it grows) the reference interpreter, the executable wrapper for JIT
//! code and the VPU simulator. It depends only on the IR, never on the compiler.
//!
//! ```
//! use carve_runtime::{Data, Tensor};
//! let t = Tensor::new(vec![2], Data::F32(vec![1.0, 2.0])).unwrap();
//! assert_eq!(t.dtype(), carve_ir::DType::F32);
//! ```

pub mod abi;
pub mod exec;
pub mod interp;
mod tensor;

pub use tensor::{Data, Tensor, TensorError, strides};
