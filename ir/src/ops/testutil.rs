//! Helpers shared by the op families' inference unit tests: building inputs with concrete and symbolic
//! dims and running one node's inference to its printed output types.

use crate::infer::InferError;
use crate::{DType, Dim, Graph, Op, Shape, TensorType, Type, ValueId};

/// Adds a tensor input of `dtype` with `dims`.
pub fn input(g: &mut Graph, name: &str, dtype: DType, dims: &[Dim]) -> ValueId {
    g.add_input(
        name,
        Type::Tensor(TensorType::new(dtype, Shape(dims.to_vec()))),
    )
}

/// A concrete dim.
pub fn k(n: u64) -> Dim {
    Dim::Known(n)
}

/// A symbolic dim.
pub fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

/// Adds a node running `op` on `inputs` with `n_out` outputs; returns the printed output types.
pub fn run(
    g: &mut Graph,
    op: impl Into<Op>,
    inputs: &[Option<ValueId>],
    n_out: usize,
) -> Result<Vec<String>, InferError> {
    let names = (0..n_out).map(|i| format!("o{i}")).collect();
    let outs = g.add_node("n", op.into(), inputs.to_vec(), names)?;
    Ok(outs.iter().map(|&o| g.ty(o).to_string()).collect())
}
