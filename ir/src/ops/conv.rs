//! The conv op family (being filled in: each op's typed attributes and type inference).

use crate::Type;
use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};

define_ops! {
    /// conv ops.
    pub enum ConvOp {
        /// Placeholder op of the family; its inference passes input 0's type through.
        GlobalAveragePool = "global_average_pool" {},
    }
}

impl Infer for GlobalAveragePool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }
}
