//! Shape manipulation, indexing and data movement: reshape/transpose/concat/slice/gather/scatter/pad and
//! friends, plus shape-computing ops (`shape`, `size`, `range`) with symbolic evaluation.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, SymInt};
use crate::{DType, Dim, Shape, TensorType, Type};

define_ops! {
    /// Data movement ops.
    pub enum MovementOp {
        /// The shape of input 0 as an i64 vector, dims `[start, end)` (negative = from the end).
        ShapeOf = "shape" { start: i64 = 0, end: Option<i64> = None },
        /// Returns its input unchanged.
        Identity = "identity" {},
    }
}

fn shape_range(op: &ShapeOf, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let s = clamp(op.start);
    let e = clamp(op.end.unwrap_or(r));
    (s, e.max(s))
}

impl Infer for ShapeOf {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let len = match t.rank() {
            Some(r) => {
                let (s, e) = shape_range(self, r);
                Dim::Known((e - s) as u64)
            }
            None => Dim::Unknown,
        };
        Ok(vec![Type::Tensor(TensorType::new(
            DType::I64,
            Shape(vec![len]),
        ))])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let dims = cx.tensor(0).ok()?.dims()?;
        let (s, e) = shape_range(self, dims.len());
        Some(dims[s..e].iter().map(SymInt::from_dim).collect())
    }
}

impl Infer for Identity {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}
