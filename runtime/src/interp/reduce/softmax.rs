//! The softmax family: `softmax`, `log_softmax`, `hardmax`.

use super::*;

// ---------------------------------------------------------------------------------------------------
// softmax / log_softmax / hardmax
// ---------------------------------------------------------------------------------------------------

pub(super) fn softmax(op: &Softmax, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let dtype = out_dtype(cx, 0, x.dtype());
    if x.is_empty() {
        return Ok(vec![Value::Tensor(x.clone())]);
    }
    let (outer, n, inner) = if x.rank() == 0 {
        (1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, x.rank())?;
        split_at_axis(&x.shape, a, op.coerce_2d)
    };
    let v = f64s(cx, x)?;
    let mut y = vec![0.0f64; v.len()];
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            let at = |j: usize| base + j * inner;
            match op.kind {
                SoftmaxKind::Hardmax => {
                    let mut best = 0usize;
                    for j in 1..n {
                        if cmp_nan_max(v[at(j)], v[at(best)]) == std::cmp::Ordering::Greater {
                            best = j;
                        }
                    }
                    y[at(best)] = 1.0;
                }
                SoftmaxKind::Softmax | SoftmaxKind::LogSoftmax => {
                    // numpy's max: NaN propagates (and then every output of the lane is NaN).
                    let mut m = f64::NEG_INFINITY;
                    for j in 0..n {
                        let e = v[at(j)];
                        if e.is_nan() || e > m {
                            m = e;
                            if e.is_nan() {
                                break;
                            }
                        }
                    }
                    let mut s = 0.0f64;
                    for j in 0..n {
                        let e = (v[at(j)] - m).exp();
                        y[at(j)] = e;
                        s += e;
                    }
                    if op.kind == SoftmaxKind::Softmax {
                        for j in 0..n {
                            y[at(j)] /= s;
                        }
                    } else {
                        let ls = s.ln();
                        for j in 0..n {
                            y[at(j)] = v[at(j)] - m - ls;
                        }
                    }
                }
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
