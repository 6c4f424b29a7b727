//! The misc op family (being filled in: each op's typed attributes and type inference).

use crate::Type;
use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};

define_ops! {
    /// misc ops.
    pub enum MiscOp {
        /// Placeholder op of the family; its inference passes input 0's type through.
        Dropout = "dropout" {},
    }
}

impl Infer for Dropout {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }
}
