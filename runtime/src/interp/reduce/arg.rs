//! `arg_reduce`: index of the maximum or minimum along one axis.

use super::*;

// ---------------------------------------------------------------------------------------------------
// arg_reduce
// ---------------------------------------------------------------------------------------------------

/// Index within `0..n` of the extremum of the lane `base + j*stride`: the largest (`max`) or smallest
/// element; ties go to the first index, or the last with `last`. A NaN wins either way (numpy's
/// `argmax` and `argmin` both return the first NaN).
fn extremum(keys: &Keys, base: usize, n: usize, stride: usize, max: bool, last: bool) -> usize {
    use std::cmp::Ordering;
    let mut best = 0usize;
    for j in 1..n {
        let (p, q) = (base + j * stride, base + best * stride);
        let better = match (keys.is_nan(p), keys.is_nan(q)) {
            (true, true) => last,
            (true, false) => true,
            (false, true) => false,
            (false, false) => match keys.cmp(p, q) {
                Ordering::Greater => max,
                Ordering::Less => !max,
                Ordering::Equal => last,
            },
        };
        if better {
            best = j;
        }
    }
    best
}

impl Keys {
    fn is_nan(&self, i: usize) -> bool {
        match self {
            Keys::Int(_) => false,
            Keys::Float(v) => v[i].is_nan(),
        }
    }
}

pub(super) fn arg_reduce(op: &ArgReduce, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rank = x.rank();
    let (shape, outer, n, inner) = if rank == 0 {
        if op.axis != 0 && op.axis != -1 {
            return Err(cx.err(format!("axis {} is out of range for a scalar", op.axis)));
        }
        (Vec::new(), 1, 1, 1)
    } else {
        let a = norm_axis(cx, op.axis, rank)?;
        let mut mask = vec![false; rank];
        mask[a] = true;
        let (outer, n, inner) = split_at_axis(&x.shape, a, false);
        (reduced_shape(&x.shape, &mask, op.keepdims), outer, n, inner)
    };
    let total = outer * inner;
    if n == 0 && total > 0 {
        return Err(cx.err("arg_reduce over an empty axis has no answer"));
    }
    let keys = Keys::of(cx, x)?;
    let max = op.kind == ArgKind::Max;
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for i in 0..inner {
            let j = extremum(
                &keys,
                o * n * inner + i,
                n,
                inner,
                max,
                op.select_last_index,
            );
            out.push(j as i64);
        }
    }
    tensor_out(cx, Tensor::new(shape, Data::I64(out)))
}
