//! `lp_norm`: division by the L1 or L2 norm along one axis.

use super::*;

// ---------------------------------------------------------------------------------------------------
// lp_norm
// ---------------------------------------------------------------------------------------------------

pub(super) fn lp_norm(op: &LpNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if !matches!(op.p, 1 | 2) {
        return Err(cx.err(format!("p must be 1 or 2, got {}", op.p)));
    }
    let dtype = out_dtype(cx, 0, x.dtype());
    let (outer, n, inner) = if x.rank() == 0 {
        (1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, x.rank())?;
        split_at_axis(&x.shape, a, false)
    };
    let v = f64s(cx, x)?;
    let mut y = vec![0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let norm = if op.p == 1 {
                (0..n).map(|j| v[base + j * inner].abs()).sum::<f64>()
            } else {
                (0..n)
                    .map(|j| v[base + j * inner].powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            for j in 0..n {
                let e = base + j * inner;
                // A zero norm gives 0 rather than 0/0 (the ONNX reference's choice).
                y[e] = if norm == 0.0 { 0.0 } else { v[e] / norm };
            }
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        dtype,
        x.shape.clone(),
        &y,
    )?)])
}
