//! The quant op family (being filled in: each op's typed attributes and type inference).

use crate::Type;
use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};

define_ops! {
    /// quant ops.
    pub enum QuantOp {
        /// Placeholder op of the family; its inference passes input 0's type through.
        DequantizeLinear = "dequantize_linear" {},
    }
}

impl Infer for DequantizeLinear {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }
}
