//! `top_k`: the k largest or smallest elements along one axis and their indices.

use super::*;

// ---------------------------------------------------------------------------------------------------
// top_k
// ---------------------------------------------------------------------------------------------------

pub(super) fn top_k(op: &TopK, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let k = match cx.i64s(1)?.as_slice() {
        [k] => *k,
        k => {
            return Err(cx.err(format!("k (input 1) must hold one value, got {}", k.len())));
        }
    };
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, op.axis, x.rank())?;
    let (outer, n, inner) = split_at_axis(&x.shape, a, false);
    let k = usize::try_from(k).map_err(|_| cx.err(format!("k must be non-negative, got {k}")))?;
    if k > n {
        return Err(cx.err(format!("k = {k} exceeds the size {n} of axis {}", op.axis)));
    }
    let keys = Keys::of(cx, x)?;
    let mut shape = x.shape.clone();
    shape[a] = k;
    let total = outer * k * inner;
    let mut src = vec![0usize; total];
    let mut pos = vec![0i64; total];
    let mut lane: Vec<usize> = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            let base = o * n * inner + i;
            lane.clear();
            lane.extend(0..n);
            // Best first: by value (largest or smallest, NaN above every number), then lower index.
            let order = |p: &usize, q: &usize| {
                let c = keys.cmp(base + p * inner, base + q * inner);
                let c = if op.largest { c.reverse() } else { c };
                c.then(p.cmp(q))
            };
            if k > 0 && k < n {
                lane.select_nth_unstable_by(k - 1, order);
            }
            lane.truncate(k);
            lane.sort_unstable_by(order);
            for (r, &j) in lane.iter().enumerate() {
                let slot = (o * k + r) * inner + i;
                src[slot] = base + j * inner;
                pos[slot] = j as i64;
            }
        }
    }
    let values =
        Tensor::new(shape.clone(), gather(&x.data, &src)).map_err(|e| tensor_err(cx, e))?;
    let indices = Tensor::new(shape, Data::I64(pos)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![Value::Tensor(values), Value::Tensor(indices)])
}
