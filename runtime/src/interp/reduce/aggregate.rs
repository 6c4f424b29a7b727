//! `reduce` of every kind (sum, mean, max, min, prod, the norms, log-sum-exp) over integer and float inputs.

use super::*;

// ---------------------------------------------------------------------------------------------------
// reduce
// ---------------------------------------------------------------------------------------------------

pub(super) fn reduce(op: &Reduce, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rank = x.rank();
    let axes = if cx.has(1) { cx.i64s(1)? } else { Vec::new() };
    let mask = if axes.is_empty() {
        vec![!op.noop_with_empty_axes; rank]
    } else if rank == 0 {
        // A scalar has nothing to reduce; axis 0 / -1 is accepted for it.
        for &a in &axes {
            if a != 0 && a != -1 {
                return Err(cx.err(format!("axis {a} is out of range for a scalar")));
            }
        }
        Vec::new()
    } else {
        axes_mask(cx, &axes, rank)?
    };
    let shape = reduced_shape(&x.shape, &mask, op.keepdims);
    let n_out: usize = shape.iter().product();
    let count: usize = x
        .shape
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| *d)
        .product();
    let dtype = x.dtype();
    let out = out_dtype(cx, 0, dtype);
    let idx = || ReducedIndex::new(&x.shape, &mask);
    if let Data::Bool(v) = &x.data {
        let (init, any) = match op.kind {
            ReduceKind::Max => (false, true),
            ReduceKind::Min => (true, false),
            k => {
                return Err(cx.err(format!(
                    "reduce {{kind={}}} is not defined on bool tensors",
                    k.keyword()
                )));
            }
        };
        let mut acc = vec![init; n_out];
        for (&b, o) in v.iter().zip(idx()) {
            if b == any {
                acc[o] = any;
            }
        }
        return tensor_out(cx, Tensor::new(shape, Data::Bool(acc)));
    }
    let float_kind = matches!(op.kind, ReduceKind::LogSum | ReduceKind::LogSumExp);
    if let (Some(v), false) = (ints(x).filter(|_| dtype.is_int()), float_kind) {
        let acc = reduce_ints(op.kind, dtype, &v, idx(), n_out, count);
        return tensor_out(cx, from_i128(out, shape, &acc));
    }
    if x.data.dtype() == DType::String || dtype.is_complex() {
        return Err(cx.err(format!("reduce is not defined on {dtype} tensors")));
    }
    let v = f64s(cx, x)?;
    let acc = reduce_floats(op.kind, &v, idx, n_out, count);
    if out.is_int() {
        // log_sum / log_sum_exp of integers: computed in f64 and truncated like a Cast.
        tensor_out(cx, util::from_f64(out, shape, &acc))
    } else {
        Ok(vec![Value::Tensor(build_f64(cx, out, shape, &acc)?)])
    }
}

/// Integer reduction with wrapping arithmetic in i128 (exact modulo 2^bits of any integer type).
fn reduce_ints(
    kind: ReduceKind,
    dtype: DType,
    v: &[i128],
    idx: ReducedIndex,
    n_out: usize,
    count: usize,
) -> Vec<i128> {
    let (lo, hi) = int_range(dtype);
    let init = match kind {
        ReduceKind::Max => lo,
        ReduceKind::Min => hi,
        ReduceKind::Prod => 1,
        _ => 0,
    };
    let mut acc = vec![init; n_out];
    for (&x, o) in v.iter().zip(idx) {
        let a = &mut acc[o];
        *a = match kind {
            ReduceKind::Max => (*a).max(x),
            ReduceKind::Min => (*a).min(x),
            ReduceKind::Prod => a.wrapping_mul(x),
            ReduceKind::L1 => a.wrapping_add(x.wrapping_abs()),
            ReduceKind::L2 | ReduceKind::SumSquare => a.wrapping_add(x.wrapping_mul(x)),
            _ => a.wrapping_add(x),
        };
    }
    match kind {
        ReduceKind::Mean => {
            let n = i128::try_from(count).unwrap_or(i128::MAX);
            for a in &mut acc {
                *a = if n == 0 { 0 } else { *a / n };
            }
        }
        ReduceKind::L2 => {
            for a in &mut acc {
                *a = (*a as f64).sqrt() as i128;
            }
        }
        _ => {}
    }
    acc
}

/// Floating-point reduction in f64.
fn reduce_floats(
    kind: ReduceKind,
    v: &[f64],
    idx: impl Fn() -> ReducedIndex,
    n_out: usize,
    count: usize,
) -> Vec<f64> {
    let init = match kind {
        ReduceKind::Max => f64::NEG_INFINITY,
        ReduceKind::Min => f64::INFINITY,
        ReduceKind::Prod => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; n_out];
    match kind {
        ReduceKind::Max | ReduceKind::Min => {
            let max = kind == ReduceKind::Max;
            for (&x, o) in v.iter().zip(idx()) {
                let a = &mut acc[o];
                if !a.is_nan() && (x.is_nan() || (max && x > *a) || (!max && x < *a)) {
                    *a = x;
                }
            }
        }
        ReduceKind::LogSumExp => {
            // Shift each slice by its largest finite element so that exp cannot overflow.
            let mut shift = vec![f64::NEG_INFINITY; n_out];
            for (&x, o) in v.iter().zip(idx()) {
                if x.is_finite() && x > shift[o] {
                    shift[o] = x;
                }
            }
            for s in &mut shift {
                if !s.is_finite() {
                    *s = 0.0;
                }
            }
            for (&x, o) in v.iter().zip(idx()) {
                acc[o] += (x - shift[o]).exp();
            }
            for (a, s) in acc.iter_mut().zip(&shift) {
                *a = a.ln() + s;
            }
        }
        _ => {
            for (&x, o) in v.iter().zip(idx()) {
                let a = &mut acc[o];
                match kind {
                    ReduceKind::Prod => *a *= x,
                    ReduceKind::L1 => *a += x.abs(),
                    ReduceKind::L2 | ReduceKind::SumSquare => *a += x * x,
                    _ => *a += x,
                }
            }
            match kind {
                ReduceKind::Mean => acc.iter_mut().for_each(|a| *a /= count as f64),
                ReduceKind::L2 => acc.iter_mut().for_each(|a| *a = a.sqrt()),
                ReduceKind::LogSum => acc.iter_mut().for_each(|a| *a = a.ln()),
                _ => {}
            }
        }
    }
    acc
}
