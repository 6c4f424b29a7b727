//! Inference of the training optimizers: `adagrad`, `adam` and `momentum`.

use super::*;

/// The optimizers: inputs `(R, T, groups × n tensors)`, outputs `out_groups × n` tensors whose types are
/// those of input groups `out_from`.
fn optimizer_types(
    cx: &InferCtx,
    groups: usize,
    out_from: &[usize],
) -> Result<Vec<Type>, InferError> {
    check_scalar(cx, 0, "the learning rate R (input 0)", DType::is_float)?;
    check_scalar(cx, 1, "the step count T (input 1)", |d| d == DType::I64)?;
    cx.required(0)?;
    cx.required(1)?;
    let rest = cx.num_inputs().saturating_sub(2);
    if rest == 0 || !rest.is_multiple_of(groups) {
        return Err(cx.err(format!(
            "expected R, T and {groups} groups of n tensors, got {} inputs",
            cx.num_inputs()
        )));
    }
    let n = rest / groups;
    for i in 2..cx.num_inputs() {
        check_float(cx, i, &format!("input {i}"))?;
    }
    for k in 0..n {
        let x = cx.tensor(2 + k)?;
        for g in 1..groups {
            let y = cx.tensor(2 + g * n + k)?;
            let same = y.dtype == x.dtype
                && match (x.dims(), y.dims()) {
                    (Some(a), Some(b)) => {
                        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| !p.conflicts(q))
                    }
                    _ => true,
                };
            if !same {
                return Err(cx.err(format!(
                    "tensor {k} of group {g} is {y} but the parameter is {x}"
                )));
            }
        }
    }
    if cx.num_outputs() != out_from.len() * n {
        return Err(cx.err(format!(
            "expected {} outputs for {n} parameters, the node has {}",
            out_from.len() * n,
            cx.num_outputs()
        )));
    }
    let mut out = Vec::with_capacity(out_from.len() * n);
    for &g in out_from {
        for k in 0..n {
            let t = cx.tensor(2 + g * n + k)?;
            out.push(tensor_out(t.dtype, t.shape.clone()));
        }
    }
    Ok(out)
}

impl Infer for Adagrad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 3, &[0, 2])
    }
}

impl Infer for Adam {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 4, &[0, 2, 3])
    }
}

impl Infer for Momentum {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        optimizer_types(cx, 3, &[0, 2])
    }
}
