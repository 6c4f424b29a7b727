//! Indexing kernels: gather / scatter in their element, slice and N-d forms, the KV-cache
//! `tensor_scatter`, `compress`, `non_zero`, `one_hot`, `reverse_sequence`, `unique`, and the
//! value-producing `range` and `constant_of_shape`. Indices may be negative (counted from the end); an
//! index out of range is an error naming the offending value.

use std::cmp::Ordering;

use carve_ir::DType;
use carve_ir::ops::movement::{
    CacheMode, Compress, ConstantOfShape, Gather, GatherElements, GatherNd, OneHot,
    ReverseSequence, ScatterElements, ScatterNd, ScatterReduction, TensorScatter, Unique,
};

use super::layout::guard_dims;
use super::{
    El, Stored, dims_of, index_map, map_data, narrow, norm_index, one, repeat_first, take,
    take_tensor, te, widen, with_el,
};
use crate::interp::util::{self, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor, TensorError, strides};

/// Calls `f(flat, coords)` for every coordinate of `shape` in row-major order.
fn each_coord(
    shape: &[usize],
    mut f: impl FnMut(usize, &[usize]) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let n: usize = shape.iter().product();
    let mut c = vec![0usize; shape.len()];
    for k in 0..n {
        f(k, &c)?;
        for a in (0..shape.len()).rev() {
            c[a] += 1;
            if c[a] < shape[a] {
                break;
            }
            c[a] = 0;
        }
    }
    Ok(())
}

fn bad_index(cx: &EvalCtx, i: i64, n: usize, what: &str) -> RunError {
    cx.err(format!(
        "{what} index {i} is out of range for a dim of size {n}"
    ))
}

/// `gather` along `axis`.
pub(super) fn gather(op: &Gather, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let it = cx.tensor(1)?;
    let ind = cx.i64s(1)?;
    if t.rank() == 0 {
        return Err(cx.err("cannot gather from a scalar"));
    }
    let axis = util::axis(op.axis, t.rank()).map_err(|e| te(cx, e))?;
    let d = t.shape[axis];
    let outer: usize = t.shape[..axis].iter().product();
    let inner: usize = t.shape[axis + 1..].iter().product();
    let js: Vec<usize> = ind
        .iter()
        .map(|&i| norm_index(i, d).ok_or_else(|| bad_index(cx, i, d, "gather")))
        .collect::<Result<_, _>>()?;
    let mut shape = t.shape[..axis].to_vec();
    shape.extend_from_slice(&it.shape);
    shape.extend_from_slice(&t.shape[axis + 1..]);
    let n = checked_numel(&shape).map_err(|e| te(cx, e))?;
    let mut idx = Vec::with_capacity(n);
    for o in 0..outer {
        for &j in &js {
            let base = (o * d + j) * inner;
            idx.extend(base..base + inner);
        }
    }
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

/// Flat data index of each indices element for the element-wise gather/scatter along `axis`.
fn element_targets(
    cx: &EvalCtx,
    data: &[usize],
    ishape: &[usize],
    ind: &[i64],
    axis: usize,
) -> Result<Vec<usize>, RunError> {
    if ishape.len() != data.len() {
        return Err(cx.err(format!(
            "indices have rank {}, data has rank {}",
            ishape.len(),
            data.len()
        )));
    }
    if let Some(a) = (0..data.len()).find(|&a| a != axis && ishape[a] > data[a]) {
        return Err(cx.err(format!(
            "indices shape {ishape:?} exceeds data shape {data:?} in dim {a}"
        )));
    }
    let st = strides(data);
    let mut out = Vec::with_capacity(ind.len());
    each_coord(ishape, |k, c| {
        let j = norm_index(ind[k], data[axis])
            .ok_or_else(|| bad_index(cx, ind[k], data[axis], "element"))?;
        let mut f = j * st[axis];
        for (a, &x) in c.iter().enumerate() {
            if a != axis {
                f += x * st[a];
            }
        }
        out.push(f);
        Ok(())
    })?;
    Ok(out)
}

/// `gather_elements` along `axis`.
pub(super) fn gather_elements(op: &GatherElements, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let it = cx.tensor(1)?;
    if t.rank() == 0 {
        return Err(cx.err("cannot gather from a scalar"));
    }
    let axis = util::axis(op.axis, t.rank()).map_err(|e| te(cx, e))?;
    let idx = element_targets(cx, &t.shape, &it.shape, &cx.i64s(1)?, axis)?;
    one(take_tensor(t, it.shape.clone(), &idx).map_err(|e| te(cx, e))?)
}

/// Flat offsets (within one batch) of the index tuples of `gather_nd` / `scatter_nd`: tuples of
/// length `m` address dims `b..b+m` of `data`.
fn tuple_offsets(
    cx: &EvalCtx,
    data: &[usize],
    b: usize,
    ind: &[i64],
    m: usize,
) -> Result<Vec<usize>, RunError> {
    let st = strides(data);
    if m == 0 {
        return Ok(Vec::new());
    }
    ind.chunks_exact(m)
        .map(|tuple| {
            tuple.iter().enumerate().try_fold(0usize, |acc, (k, &i)| {
                let d = data[b + k];
                let j = norm_index(i, d).ok_or_else(|| bad_index(cx, i, d, "tuple"))?;
                Ok(acc + j * st[b + k])
            })
        })
        .collect()
}

/// `gather_nd` with `batch_dims` leading batch dims.
pub(super) fn gather_nd(op: &GatherNd, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let it = cx.tensor(1)?;
    let (ds, is) = (&t.shape, &it.shape);
    let (r, q) = (ds.len(), is.len());
    if r == 0 || q == 0 {
        return Err(cx.err("data and indices must have rank ≥ 1"));
    }
    let b = usize::try_from(op.batch_dims)
        .ok()
        .filter(|&b| b < r.min(q))
        .ok_or_else(|| {
            cx.err(format!(
                "batch_dims {} must be below both ranks ({r} and {q})",
                op.batch_dims
            ))
        })?;
    let m = is[q - 1];
    if m > r - b {
        return Err(cx.err(format!(
            "index tuples of length {m} do not fit data of rank {r} with {b} batch dims"
        )));
    }
    if ds[..b] != is[..b] {
        return Err(cx.err(format!(
            "batch dims of data {ds:?} and indices {is:?} differ"
        )));
    }
    let batches: usize = ds[..b].iter().product();
    let batch_size: usize = ds[b..].iter().product();
    let inner: usize = ds[b + m..].iter().product();
    let per_batch: usize = is[b..q - 1].iter().product();
    let ind = cx.i64s(1)?;
    let offs = if m == 0 {
        vec![0; batches * per_batch]
    } else {
        tuple_offsets(cx, ds, b, &ind, m)?
    };
    let mut shape = is[..q - 1].to_vec();
    shape.extend_from_slice(&ds[b + m..]);
    let n = checked_numel(&shape).map_err(|e| te(cx, e))?;
    let mut idx = Vec::with_capacity(n);
    for bi in 0..batches {
        for ti in 0..per_batch {
            let base = bi * batch_size + offs[bi * per_batch + ti];
            idx.extend(base..base + inner);
        }
    }
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

fn scatter_vec<T: El + Stored>(
    d: &[T],
    u: &Data,
    pairs: &[(usize, usize)],
    r: ScatterReduction,
) -> Result<Vec<T>, TensorError> {
    let u = T::vec(u).ok_or_else(|| TensorError("updates and data types differ".into()))?;
    let mut out = d.to_vec();
    for &(t, s) in pairs {
        out[t].combine(&u[s], r).map_err(TensorError)?;
    }
    Ok(out)
}

/// A copy of `d` with `u[s]` combined into position `t` for each `(t, s)` of `pairs` (in order).
pub(super) fn scatter_data(
    d: &Data,
    u: &Data,
    pairs: &[(usize, usize)],
    r: ScatterReduction,
) -> Result<Data, TensorError> {
    if d.dtype() != u.dtype() {
        return Err(TensorError(format!(
            "updates have type {}, data has {}",
            u.dtype(),
            d.dtype()
        )));
    }
    if let Some(&(t, s)) = pairs.iter().find(|&&(t, s)| t >= d.len() || s >= u.len()) {
        return Err(TensorError(format!(
            "internal: scatter pair ({t}, {s}) out of range"
        )));
    }
    if let Data::Small(dt, _) = d
        && r != ScatterReduction::None
    {
        let out = scatter_data(&widen(d), &widen(u), pairs, r)?;
        return narrow(out, *dt);
    }
    Ok(map_data!(d, v => scatter_vec(v, u, pairs, r)?))
}

/// `scatter_elements` along `axis` with an optional reduction.
pub(super) fn scatter_elements(op: &ScatterElements, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let it = cx.tensor(1)?;
    let u = cx.tensor(2)?;
    if it.shape != u.shape {
        return Err(cx.err(format!(
            "indices {:?} and updates {:?} must have one shape",
            it.shape, u.shape
        )));
    }
    if t.rank() == 0 {
        return Err(cx.err("cannot scatter into a scalar"));
    }
    let axis = util::axis(op.axis, t.rank()).map_err(|e| te(cx, e))?;
    let targets = element_targets(cx, &t.shape, &it.shape, &cx.i64s(1)?, axis)?;
    let pairs: Vec<(usize, usize)> = targets
        .into_iter()
        .enumerate()
        .map(|(s, t)| (t, s))
        .collect();
    let data = scatter_data(&t.data, &u.data, &pairs, op.reduction).map_err(|e| te(cx, e))?;
    one(Tensor::new(t.shape.clone(), data).map_err(|e| te(cx, e))?)
}

/// `scatter_nd` with an optional reduction.
pub(super) fn scatter_nd(op: &ScatterNd, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let it = cx.tensor(1)?;
    let u = cx.tensor(2)?;
    let (ds, is) = (&t.shape, &it.shape);
    let q = is.len();
    if q == 0 {
        return Err(cx.err("indices must have rank ≥ 1"));
    }
    let m = is[q - 1];
    if m > ds.len() {
        return Err(cx.err(format!(
            "index tuples of length {m} for data of rank {}",
            ds.len()
        )));
    }
    let mut want = is[..q - 1].to_vec();
    want.extend_from_slice(&ds[m..]);
    if u.shape != want {
        return Err(cx.err(format!(
            "updates have shape {:?}, expected {want:?}",
            u.shape
        )));
    }
    let inner: usize = ds[m..].iter().product();
    let tuples: usize = is[..q - 1].iter().product();
    let offs = if m == 0 {
        vec![0; tuples]
    } else {
        tuple_offsets(cx, ds, 0, &cx.i64s(1)?, m)?
    };
    let mut pairs = Vec::with_capacity(u.len());
    for (ti, &off) in offs.iter().enumerate() {
        pairs.extend((0..inner).map(|e| (off + e, ti * inner + e)));
    }
    let data = scatter_data(&t.data, &u.data, &pairs, op.reduction).map_err(|e| te(cx, e))?;
    one(Tensor::new(t.shape.clone(), data).map_err(|e| te(cx, e))?)
}

/// `tensor_scatter`: writes the update (input 1) into the cache (input 0) along `axis`, batch `b` at
/// offset `write_indices[b]` (input 2, zeros when absent); circular mode wraps around.
pub(super) fn tensor_scatter(op: &TensorScatter, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let u = cx.tensor(1)?;
    let r = t.rank();
    let axis = util::axis(op.axis, r).map_err(|e| te(cx, e))?;
    if axis == 0 {
        return Err(cx.err("axis cannot be the batch axis 0"));
    }
    let same = u.rank() == r
        && (0..r).all(|k| {
            if k == axis {
                u.shape[k] <= t.shape[k]
            } else {
                u.shape[k] == t.shape[k]
            }
        });
    if !same {
        return Err(cx.err(format!(
            "update shape {:?} does not fit the cache {:?} along axis {axis}",
            u.shape, t.shape
        )));
    }
    let batch = t.shape[0];
    let wi = if cx.has(2) {
        let w = cx.i64s(2)?;
        if w.len() != batch {
            return Err(cx.err(format!(
                "write_indices has {} entries for batch size {batch}",
                w.len()
            )));
        }
        w
    } else {
        vec![0; batch]
    };
    let max_len = t.shape[axis];
    let seq = u.shape[axis];
    let inner: usize = t.shape[axis + 1..].iter().product();
    let outer: usize = t.shape[..axis].iter().product();
    let per_batch: usize = t.shape[1..axis].iter().product();
    let mut pairs = Vec::with_capacity(u.len());
    for p in 0..outer {
        let b = p / per_batch.max(1);
        for s in 0..seq {
            let pos = wi[b].checked_add(s as i64).unwrap_or(i64::MAX);
            let ci = match op.mode {
                CacheMode::Circular if max_len > 0 => pos.rem_euclid(max_len as i64) as usize,
                _ => usize::try_from(pos)
                    .ok()
                    .filter(|&c| c < max_len)
                    .ok_or_else(|| {
                        cx.err(format!(
                            "write position {pos} of batch {b} is outside the cache of length {max_len}"
                        ))
                    })?,
            };
            let tb = (p * max_len + ci) * inner;
            let sb = (p * seq + s) * inner;
            pairs.extend((0..inner).map(|e| (tb + e, sb + e)));
        }
    }
    let data =
        scatter_data(&t.data, &u.data, &pairs, ScatterReduction::None).map_err(|e| te(cx, e))?;
    one(Tensor::new(t.shape.clone(), data).map_err(|e| te(cx, e))?)
}

/// `constant_of_shape`.
pub(super) fn constant_of_shape(
    op: &ConstantOfShape,
    cx: &EvalCtx,
) -> Result<Vec<Value>, RunError> {
    let shape = dims_of(cx, &cx.i64s(0)?, "shape")?;
    let n = checked_numel(&shape).map_err(|e| te(cx, e))?;
    let v = Tensor::from_constant(&op.value).map_err(|e| te(cx, e))?;
    let data = repeat_first(&v.data, n).map_err(|e| te(cx, e))?;
    one(Tensor::new(shape, data).map_err(|e| te(cx, e))?)
}

fn scalar_f64(cx: &EvalCtx, i: usize) -> Result<f64, RunError> {
    let v = util::to_f64(cx.tensor(i)?).map_err(|e| te(cx, e))?;
    match v[..] {
        [x] => Ok(x),
        _ => Err(cx.err(format!("input {i} must hold one element, got {}", v.len()))),
    }
}

fn scalar_i64(cx: &EvalCtx, i: usize) -> Result<i64, RunError> {
    match cx.i64s(i)?[..] {
        [x] => Ok(x),
        ref v => Err(cx.err(format!("input {i} must hold one element, got {}", v.len()))),
    }
}

/// `range(start, limit, delta)`: integers exactly; floats as `start + k·delta` in f64, rounded once, with
/// the element count onnxruntime computes (the difference taken in the element type).
pub(super) fn range(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let dtype = cx.tensor(0)?.dtype();
    for i in 1..3 {
        if cx.tensor(i)?.dtype() != dtype {
            return Err(cx.err("start, limit and delta must share one type"));
        }
    }
    let out = if dtype.is_int() {
        let (s, l, d) = (scalar_i64(cx, 0)?, scalar_i64(cx, 1)?, scalar_i64(cx, 2)?);
        if d == 0 {
            return Err(cx.err("delta cannot be 0"));
        }
        let (s, l, d) = (i128::from(s), i128::from(l), i128::from(d));
        let n = if d > 0 {
            (l - s + d - 1).div_euclid(d)
        } else {
            (s - l - d - 1).div_euclid(-d)
        }
        .max(0);
        let n = usize::try_from(n).map_err(|_| cx.err("range is too long"))?;
        checked_numel(&[n]).map_err(|e| te(cx, e))?;
        let v: Vec<i64> = (0..n as i128).map(|k| (s + k * d) as i64).collect();
        util::from_i64(dtype, vec![n], &v)
    } else {
        let (s, l, d) = (scalar_f64(cx, 0)?, scalar_f64(cx, 1)?, scalar_f64(cx, 2)?);
        if d == 0.0 {
            return Err(cx.err("delta cannot be 0"));
        }
        let diff = if dtype == DType::F64 {
            l - s
        } else {
            f64::from(l as f32 - s as f32)
        };
        let q = (diff / d).ceil();
        if !q.is_finite() {
            return Err(cx.err(format!("range({s}, {l}, {d}) has no finite length")));
        }
        let n = if q <= 0.0 { 0 } else { q as usize };
        checked_numel(&[n]).map_err(|e| te(cx, e))?;
        let v: Vec<f64> = (0..n).map(|k| s + k as f64 * d).collect();
        util::from_f64(dtype, vec![n], &v)
    };
    one(out.map_err(|e| te(cx, e))?)
}

/// Integer values of any numeric tensor (floats truncated toward zero, as a cast).
fn ints_lossy(cx: &EvalCtx, i: usize) -> Result<Vec<i64>, RunError> {
    let t = cx.tensor(i)?;
    if t.dtype().is_float() {
        let v = util::to_f64(t).map_err(|e| te(cx, e))?;
        Ok(v.iter().map(|&x| x as i64).collect())
    } else {
        cx.i64s(i)
    }
}

/// `compress`: the slices along `axis` (of the flattened input when absent) where the condition holds;
/// condition entries past the dim are ignored.
pub(super) fn compress(op: &Compress, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let cond = cx.i64s(1)?;
    let Some(a) = op.axis else {
        let idx: Vec<usize> = (0..t.len().min(cond.len()))
            .filter(|&i| cond[i] != 0)
            .collect();
        return one(take_tensor(t, vec![idx.len()], &idx).map_err(|e| te(cx, e))?);
    };
    let a = util::axis(a, t.rank()).map_err(|e| te(cx, e))?;
    let st = strides(&t.shape);
    let kept: Vec<Option<usize>> = (0..t.shape[a].min(cond.len()))
        .filter(|&i| cond[i] != 0)
        .map(|i| Some(i * st[a]))
        .collect();
    let mut tables: Vec<Vec<Option<usize>>> = t
        .shape
        .iter()
        .zip(&st)
        .map(|(&d, &s)| (0..d).map(|o| Some(o * s)).collect())
        .collect();
    let mut shape = t.shape.clone();
    shape[a] = kept.len();
    tables[a] = kept;
    let idx = index_map(&shape, &tables);
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

/// `non_zero`: the coordinates of the non-zero elements as `i64[rank, count]`.
pub(super) fn non_zero(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let hits: Vec<usize> = with_el!(&t.data, v => v
        .iter()
        .enumerate()
        .filter(|(_, x)| x.nonzero())
        .map(|(i, _)| i)
        .collect());
    let r = t.rank();
    let c = hits.len();
    let st = strides(&t.shape);
    let mut out = vec![0i64; r * c];
    for (k, &f) in hits.iter().enumerate() {
        for a in 0..r {
            out[a * c + k] = ((f / st[a]) % t.shape[a]) as i64;
        }
    }
    one(Tensor::new(vec![r, c], Data::I64(out)).map_err(|e| te(cx, e))?)
}

/// `one_hot`: `values[1]` where the (wrapped) index equals the class, `values[0]` elsewhere.
pub(super) fn one_hot(op: &OneHot, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let it = cx.tensor(0)?;
    let ind = ints_lossy(cx, 0)?;
    let depth = match ints_lossy(cx, 1)?[..] {
        [d] => usize::try_from(d).map_err(|_| cx.err(format!("depth must be ≥ 0, got {d}")))?,
        _ => return Err(cx.err("depth must hold one element")),
    };
    let values = cx.tensor(2)?;
    if values.len() != 2 {
        return Err(cx.err(format!(
            "values must be [off, on], got {} elements",
            values.len()
        )));
    }
    let r = it.rank() as i64 + 1;
    let a = if op.axis < 0 { op.axis + r } else { op.axis };
    if !(0..r).contains(&a) {
        return Err(cx.err(format!(
            "axis {} is out of range for output rank {r}",
            op.axis
        )));
    }
    let a = a as usize;
    let mut shape = it.shape.clone();
    shape.insert(a, depth);
    guard_dims(cx, &shape)?;
    let outer: usize = it.shape[..a].iter().product();
    let inner: usize = it.shape[a..].iter().product();
    let dep = depth as i64;
    let mut idx = Vec::with_capacity(outer * depth * inner);
    for o in 0..outer {
        for k in 0..dep {
            for i in 0..inner {
                let v = ind[o * inner + i];
                let v = if v < 0 { v.saturating_add(dep) } else { v };
                idx.push(usize::from(v == k));
            }
        }
    }
    one(
        Tensor::new(shape, take(&values.data, &idx).map_err(|e| te(cx, e))?)
            .map_err(|e| te(cx, e))?,
    )
}

/// `reverse_sequence`: reverses the first `sequence_lens[b]` steps along `time_axis` of each batch.
pub(super) fn reverse_sequence(op: &ReverseSequence, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let lens = cx.i64s(1)?;
    let (ba, ta) = match (op.batch_axis, op.time_axis) {
        (0, 1) => (0, 1),
        (1, 0) => (1, 0),
        (b, s) => {
            return Err(cx.err(format!(
                "batch_axis and time_axis must be 0 and 1 in some order, got {b} and {s}"
            )));
        }
    };
    if t.rank() < 2 {
        return Err(cx.err(format!("input must have rank ≥ 2, got {}", t.rank())));
    }
    let (nb, nt) = (t.shape[ba], t.shape[ta]);
    if lens.len() != nb {
        return Err(cx.err(format!(
            "sequence_lens has {} entries for batch size {nb}",
            lens.len()
        )));
    }
    let lens: Vec<usize> = lens
        .iter()
        .map(|&l| {
            usize::try_from(l)
                .ok()
                .filter(|&l| l <= nt)
                .ok_or_else(|| cx.err(format!("sequence length {l} is outside [0, {nt}]")))
        })
        .collect::<Result<_, _>>()?;
    let (d0, d1) = (t.shape[0], t.shape[1]);
    let inner: usize = t.shape[2..].iter().product();
    let mut idx = Vec::with_capacity(t.len());
    for i0 in 0..d0 {
        for i1 in 0..d1 {
            let (b, s) = if ba == 0 { (i0, i1) } else { (i1, i0) };
            let s2 = if s < lens[b] { lens[b] - 1 - s } else { s };
            let (j0, j1) = if ba == 0 { (i0, s2) } else { (s2, i1) };
            let base = (j0 * d1 + j1) * inner;
            idx.extend(base..base + inner);
        }
    }
    one(take_tensor(t, t.shape.clone(), &idx).map_err(|e| te(cx, e))?)
}

/// Unique items of `v` (item `i` is the elements at `elem(i, k)`, `k < len`, compared lexicographically):
/// groups in sorted order as (first occurrence, members).
fn unique_groups<T: El>(
    v: &[T],
    n: usize,
    len: usize,
    elem: impl Fn(usize, usize) -> usize,
) -> Vec<(usize, Vec<usize>)> {
    let cmp = |a: usize, b: usize| -> Ordering {
        (0..len)
            .map(|k| v[elem(a, k)].order(&v[elem(b, k)]))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| cmp(a, b)); // stable: equal items keep their original order
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some((first, members)) if cmp(*first, i).is_eq() => members.push(i),
            _ => groups.push((i, vec![i])),
        }
    }
    groups
}

/// `unique`: values, first-occurrence indices, inverse indices and counts, sorted or in order of first
/// occurrence; items are elements (flattened) or slices along `axis`.
pub(super) fn unique(op: &Unique, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let axis = match op.axis {
        Some(a) => Some(util::axis(a, t.rank()).map_err(|e| te(cx, e))?),
        None => None,
    };
    let (n, outer, inner) = match axis {
        None => (t.len(), 1, 1),
        Some(a) => (
            t.shape[a],
            t.shape[..a].iter().product::<usize>(),
            t.shape[a + 1..].iter().product::<usize>(),
        ),
    };
    let len = outer * inner;
    let elem = |i: usize, k: usize| ((k / inner) * n + i) * inner + k % inner;
    let mut groups = with_el!(&t.data, v => unique_groups(v, n, len, elem));
    if !op.sorted {
        groups.sort_by_key(|g| g.0);
    }
    let firsts: Vec<usize> = groups.iter().map(|g| g.0).collect();
    let u = firsts.len();
    let y = match axis {
        None => take_tensor(t, vec![u], &firsts),
        Some(a) => {
            let st = strides(&t.shape);
            let mut tables: Vec<Vec<Option<usize>>> = t
                .shape
                .iter()
                .zip(&st)
                .map(|(&d, &s)| (0..d).map(|o| Some(o * s)).collect())
                .collect();
            tables[a] = firsts.iter().map(|&j| Some(j * st[a])).collect();
            let mut shape = t.shape.clone();
            shape[a] = u;
            let idx = index_map(&shape, &tables);
            take_tensor(t, shape, &idx)
        }
    }
    .map_err(|e| te(cx, e))?;
    let mut inverse = vec![0i64; n];
    for (g, (_, members)) in groups.iter().enumerate() {
        for &m in members {
            inverse[m] = g as i64;
        }
    }
    let i64s = |v: Vec<i64>| -> Result<Value, RunError> {
        let k = v.len();
        Ok(Value::Tensor(
            Tensor::new(vec![k], Data::I64(v)).map_err(|e| te(cx, e))?,
        ))
    };
    Ok(vec![
        Value::Tensor(y),
        i64s(firsts.iter().map(|&f| f as i64).collect())?,
        i64s(inverse)?,
        i64s(groups.iter().map(|g| g.1.len() as i64).collect())?,
    ])
}
