//! The signal op family (being filled in: each op's typed attributes and type inference).

use crate::Type;
use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};

define_ops! {
    /// signal ops.
    pub enum SignalOp {
        /// Placeholder op of the family; its inference passes input 0's type through.
        Dft = "dft" {},
    }
}

impl Infer for Dft {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }
}
