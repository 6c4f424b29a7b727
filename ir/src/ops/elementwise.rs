//! Elementwise ops: unary math and activations, binary arithmetic/comparison/logic with broadcasting,
//! casts. One definition table; type rules shared by kind.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, broadcast, same_as_input};
use crate::{DType, TensorType, Type};

define_ops! {
    /// Elementwise ops.
    pub enum ElementwiseOp {
        /// `max(x, 0)`.
        Relu = "relu" {},
        /// `x < 0 ? alpha·x : x`.
        LeakyRelu = "leaky_relu" { alpha: f32 = 0.01 },
        /// `a + b` with broadcasting.
        Add = "add" {},
        /// Conversion to `to` (ONNX Cast; CastLike imports as this).
        Cast = "cast" { to: DType = DType::F32, saturate: bool = true },
    }
}

impl Infer for Relu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        same_as_input(cx)
    }
}

impl Infer for LeakyRelu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        same_as_input(cx)
    }
}

impl Infer for Add {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        broadcast(cx, None, true)
    }
}

impl Infer for Cast {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: self.to,
            shape: t.shape.clone(),
            quant: None,
        })])
    }
}
