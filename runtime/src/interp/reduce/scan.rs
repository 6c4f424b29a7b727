//! `cumulative`: running sums and products along one axis (exclusive / reverse variants).

use super::*;

// ---------------------------------------------------------------------------------------------------
// cumulative
// ---------------------------------------------------------------------------------------------------

pub(super) fn cumulative(op: &Cumulative, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let axis = match cx.i64s(1)?.as_slice() {
        [a] => *a,
        a => {
            return Err(cx.err(format!(
                "axis (input 1) must hold one value, got {}",
                a.len()
            )));
        }
    };
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(&x.shape, a, false);
    let dtype = out_dtype(cx, 0, x.dtype());
    let prod = op.kind == CumKind::Prod;
    // Visits each lane in order (forward or reversed), handing out (position, element index).
    let lanes = |f: &mut dyn FnMut(usize, usize)| {
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                for step in 0..n {
                    let j = if op.reverse { n - 1 - step } else { step };
                    f(step, base + j * inner);
                }
            }
        }
    };
    if let (Some(v), true) = (ints(x), x.dtype().is_int()) {
        let mut y = vec![0i128; v.len()];
        let mut acc = 0i128;
        lanes(&mut |step, k| {
            if step == 0 {
                acc = i128::from(prod);
            }
            let before = acc;
            acc = if prod {
                acc.wrapping_mul(v[k])
            } else {
                acc.wrapping_add(v[k])
            };
            y[k] = if op.exclusive { before } else { acc };
        });
        return tensor_out(cx, from_i128(dtype, x.shape.clone(), &y));
    }
    let v = f64s(cx, x)?;
    let mut y = vec![0f64; v.len()];
    let mut acc = 0f64;
    lanes(&mut |step, k| {
        if step == 0 {
            acc = if prod { 1.0 } else { 0.0 };
        }
        let before = acc;
        if prod {
            acc *= v[k];
        } else {
            acc += v[k];
        }
        y[k] = if op.exclusive { before } else { acc };
    });
    Ok(vec![Value::Tensor(build_f64(
        cx,
        dtype,
        x.shape.clone(),
        &y,
    )?)])
}
