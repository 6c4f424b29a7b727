//! Layout kernels: shape queries, reshape-like views (reshape, flatten, squeeze, unsqueeze), transpose,
//! concat, split, slice, pad, tile, expand, depth/space block moves, `trilu`, `eye_like` and
//! `center_crop_pad`. All are index maps applied with [`take`] / [`take_fill`], so every element type works.

use carve_ir::DType;
use carve_ir::ops::movement::{
    BlockMode, CenterCropPad, Concat, DepthToSpace, EyeLike, Flatten, Pad, PadMode, Reshape,
    ShapeOf, SpaceToDepth, Split, Transpose, Trilu,
};

use super::{
    FILL, dims_of, index_map, norm_axes, one, permute_tensor, take, take_fill, take_tensor, te,
};
use crate::interp::util::{self, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor, strides};

fn i64_vec(cx: &EvalCtx, v: Vec<i64>) -> Result<Vec<Value>, RunError> {
    let n = v.len();
    one(Tensor::new(vec![n], Data::I64(v)).map_err(|e| te(cx, e))?)
}

fn reshaped(cx: &EvalCtx, t: &Tensor, shape: Vec<usize>) -> Result<Vec<Value>, RunError> {
    one(Tensor::new(shape, t.data.clone()).map_err(|e| te(cx, e))?)
}

/// `shape`: the dims `[start, end)` of input 0 (clamped, negative from the end).
pub(super) fn shape_of(op: &ShapeOf, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank() as i64;
    let clamp = |x: i64| (if x < 0 { x.saturating_add(r) } else { x }).clamp(0, r) as usize;
    let s = clamp(op.start);
    let e = clamp(op.end.unwrap_or(r)).max(s);
    i64_vec(cx, t.shape[s..e].iter().map(|&d| d as i64).collect())
}

/// `size`: the element count as an i64 scalar.
pub(super) fn size(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    one(Tensor::scalar_i64(t.len() as i64))
}

/// Output dims of reshaping `input` to `target` (`0` copies unless `allowzero`, one `-1` is inferred).
pub(super) fn reshape_dims(
    input: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let mut dims = Vec::with_capacity(target.len());
    let mut minus_one = None;
    for (i, &v) in target.iter().enumerate() {
        dims.push(match v {
            -1 => {
                if minus_one.replace(i).is_some() {
                    return Err(format!("the target shape {target:?} has more than one -1"));
                }
                1
            }
            0 if !allowzero => *input.get(i).ok_or_else(|| {
                format!(
                    "target dim {i} is 0 (copy), but the input has rank {}",
                    input.len()
                )
            })?,
            v => usize::try_from(v).map_err(|_| format!("invalid target dim {v} in {target:?}"))?,
        });
    }
    let n_in: usize = input.iter().product();
    let others = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("target shape {target:?} overflows"))?;
    if let Some(k) = minus_one {
        if others == 0 || !n_in.is_multiple_of(others) {
            return Err(format!(
                "cannot reshape {input:?} ({n_in} elements) to {target:?}: the -1 has no exact value"
            ));
        }
        dims[k] = n_in / others;
    } else if others != n_in {
        return Err(format!(
            "cannot reshape {input:?} ({n_in} elements) to {dims:?} ({others} elements)"
        ));
    }
    Ok(dims)
}

/// `reshape`.
pub(super) fn reshape(op: &Reshape, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let target = cx.i64s(1)?;
    let dims = reshape_dims(&t.shape, &target, op.allowzero).map_err(|m| cx.err(m))?;
    reshaped(cx, t, dims)
}

/// `flatten`: to 2-D at `axis` (in `[-r, r]`).
pub(super) fn flatten(op: &Flatten, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank() as i64;
    let a = if op.axis < 0 { op.axis + r } else { op.axis };
    if !(0..=r).contains(&a) {
        return Err(cx.err(format!("axis {} is out of range for rank {r}", op.axis)));
    }
    let (h, w) = t.shape.split_at(a as usize);
    reshaped(cx, t, vec![h.iter().product(), w.iter().product()])
}

/// `squeeze`: drops the listed size-1 dims (all size-1 dims without axes).
pub(super) fn squeeze(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let dims: Vec<usize> = if cx.has(1) {
        let axes = norm_axes(cx, &cx.i64s(1)?, t.rank())?;
        if let Some(&a) = axes.iter().find(|&&a| t.shape[a] != 1) {
            return Err(cx.err(format!(
                "cannot squeeze dim {a} of size {} (shape {:?})",
                t.shape[a], t.shape
            )));
        }
        t.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect()
    } else {
        t.shape.iter().copied().filter(|&d| d != 1).collect()
    };
    reshaped(cx, t, dims)
}

/// `unsqueeze`: inserts size-1 dims at the listed output positions.
pub(super) fn unsqueeze(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let axes = cx.i64s(1)?;
    let rank = t.rank() + axes.len();
    let axes = norm_axes(cx, &axes, rank)?;
    let mut src = t.shape.iter();
    let dims = (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                src.next().copied().unwrap_or(1)
            }
        })
        .collect();
    reshaped(cx, t, dims)
}

/// `transpose`.
pub(super) fn transpose(op: &Transpose, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank();
    let perm: Vec<usize> = match &op.perm {
        None => (0..r).rev().collect(),
        Some(p) => {
            let mut seen = vec![false; r];
            let mut perm = Vec::with_capacity(r);
            for &x in p {
                let k = usize::try_from(x)
                    .ok()
                    .filter(|&k| k < r && !seen[k])
                    .ok_or_else(|| {
                        cx.err(format!("perm {p:?} is not a permutation of rank {r}"))
                    })?;
                seen[k] = true;
                perm.push(k);
            }
            if perm.len() != r {
                return Err(cx.err(format!("perm {p:?} has {} entries for rank {r}", p.len())));
            }
            perm
        }
    };
    let shape = perm.iter().map(|&p| t.shape[p]).collect();
    one(permute_tensor(t, &t.shape, &perm, shape).map_err(|e| te(cx, e))?)
}

/// `concat` along `axis`.
pub(super) fn concat(op: &Concat, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let ts: Vec<&Tensor> = (0..cx.num_inputs())
        .map(|i| cx.tensor(i))
        .collect::<Result<_, _>>()?;
    let Some(first) = ts.first() else {
        return Err(cx.err("needs at least one input"));
    };
    let r = first.rank();
    if r == 0 {
        return Err(cx.err("cannot concatenate scalars"));
    }
    let axis = util::axis(op.axis, r).map_err(|e| te(cx, e))?;
    let mut shape = first.shape.clone();
    shape[axis] = 0;
    for (i, t) in ts.iter().enumerate() {
        let same = t.rank() == r && (0..r).all(|k| k == axis || t.shape[k] == first.shape[k]);
        if !same {
            return Err(cx.err(format!(
                "input {i} has shape {:?}, incompatible with input 0 {:?} along axis {axis}",
                t.shape, first.shape
            )));
        }
        shape[axis] += t.shape[axis];
    }
    let outer: usize = first.shape[..axis].iter().product();
    let inner: usize = first.shape[axis + 1..].iter().product();
    let data =
        super::cat(&ts.iter().map(|t| &t.data).collect::<Vec<_>>()).map_err(|e| te(cx, e))?;
    let mut bases = Vec::with_capacity(ts.len());
    let mut acc = 0;
    for t in &ts {
        bases.push(acc);
        acc += t.len();
    }
    let mut idx = Vec::with_capacity(acc);
    for o in 0..outer {
        for (t, &b) in ts.iter().zip(&bases) {
            let chunk = t.shape[axis] * inner;
            idx.extend(b + o * chunk..b + (o + 1) * chunk);
        }
    }
    one(Tensor::new(shape, take(&data, &idx).map_err(|e| te(cx, e))?).map_err(|e| te(cx, e))?)
}

/// Refuses a data-dependent shape whose element count, or any single dim (a per-axis table is
/// allocated for each), exceeds the interpreter's limit.
pub(super) fn guard_dims(cx: &EvalCtx, shape: &[usize]) -> Result<(), RunError> {
    for &d in shape {
        checked_numel(&[d]).map_err(|e| te(cx, e))?;
    }
    checked_numel(shape).map_err(|e| te(cx, e))?;
    Ok(())
}

/// Per-axis tables of the identity view of `shape` (for [`index_map`]).
fn identity_tables(shape: &[usize]) -> Vec<Vec<Option<usize>>> {
    let st = strides(shape);
    shape
        .iter()
        .zip(&st)
        .map(|(&d, &s)| (0..d).map(|o| Some(o * s)).collect())
        .collect()
}

/// `split` into the node's outputs along `axis`.
pub(super) fn split(op: &Split, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let n = cx.num_outputs().max(1);
    if t.rank() == 0 {
        return Err(cx.err("cannot split a scalar"));
    }
    let axis = util::axis(op.axis, t.rank()).map_err(|e| te(cx, e))?;
    let d = t.shape[axis];
    let sizes: Vec<usize> = if cx.has(1) {
        let s = dims_of(cx, &cx.i64s(1)?, "split")?;
        if s.len() != n {
            return Err(cx.err(format!("{} split sizes for {n} outputs", s.len())));
        }
        if s.iter().try_fold(0usize, |a, &b| a.checked_add(b)) != Some(d) {
            return Err(cx.err(format!(
                "split sizes {s:?} do not add up to dim {axis} of size {d}"
            )));
        }
        s
    } else {
        let chunk = d.div_ceil(n);
        let mut left = d;
        (0..n)
            .map(|_| {
                let c = chunk.min(left);
                left -= c;
                c
            })
            .collect()
    };
    let mut tables = identity_tables(&t.shape);
    let st = strides(&t.shape);
    let mut start = 0;
    let mut outs = Vec::with_capacity(n);
    for s in sizes {
        tables[axis] = (start..start + s).map(|o| Some(o * st[axis])).collect();
        let mut shape = t.shape.clone();
        shape[axis] = s;
        let idx = index_map(&shape, &tables);
        outs.push(Value::Tensor(
            take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?,
        ));
        start += s;
    }
    Ok(outs)
}

/// `(first index, length)` of `start:end:step` on a dim of size `d` (ONNX clamping rules).
pub fn slice_range(d: usize, start: i64, end: i64, step: i64) -> (i128, usize) {
    let di = d as i128;
    let (mut s, mut e) = (i128::from(start), i128::from(end));
    if s < 0 {
        s += di;
    }
    if e < 0 {
        e += di;
    }
    let st = i128::from(step);
    let (s, n) = if step > 0 {
        let (s, e) = (s.clamp(0, di), e.clamp(0, di));
        (s, (e - s + st - 1).div_euclid(st))
    } else {
        let (s, e) = (s.clamp(0, (di - 1).max(0)), e.clamp(-1, di - 1));
        (s, (s - e + (-st) - 1).div_euclid(-st))
    };
    if d == 0 {
        return (0, 0);
    }
    (s, n.clamp(0, di) as usize)
}

/// `slice` (inputs: data, starts, ends, optional axes, optional steps).
pub(super) fn slice(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank();
    let starts = cx.i64s(1)?;
    let ends = cx.i64s(2)?;
    let n = starts.len();
    if ends.len() != n {
        return Err(cx.err(format!("{n} starts but {} ends", ends.len())));
    }
    let axes = if cx.has(3) {
        let a = cx.i64s(3)?;
        if a.len() != n {
            return Err(cx.err(format!("axes has {} entries, expected {n}", a.len())));
        }
        norm_axes(cx, &a, r)?
    } else {
        if n > r {
            return Err(cx.err(format!("{n} slice entries for rank {r}")));
        }
        (0..n).collect()
    };
    let steps = if cx.has(4) {
        let s = cx.i64s(4)?;
        if s.len() != n {
            return Err(cx.err(format!("steps has {} entries, expected {n}", s.len())));
        }
        if s.contains(&0) {
            return Err(cx.err("slice steps cannot be 0"));
        }
        s
    } else {
        vec![1; n]
    };
    let st = strides(&t.shape);
    let mut tables = identity_tables(&t.shape);
    let mut shape = t.shape.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (s, len) = slice_range(t.shape[a], starts[i], ends[i], steps[i]);
        shape[a] = len;
        tables[a] = (0..len as i128)
            .map(|k| Some((s + k * i128::from(steps[i])) as usize * st[a]))
            .collect();
    }
    let idx = index_map(&shape, &tables);
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

/// Source coordinate in `[0, n)` of padded coordinate `j` (relative to the data start) for the
/// non-constant modes; `None` for constant padding.
fn pad_source(mode: PadMode, j: i64, n: i64) -> Option<i64> {
    if (0..n).contains(&j) {
        return Some(j);
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(j.clamp(0, n - 1)),
        PadMode::Wrap => Some(j.rem_euclid(n)),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let p = 2 * (n - 1);
            let m = j.rem_euclid(p);
            Some(if m >= n { p - m } else { m })
        }
    }
}

/// `pad` (inputs: data, pads `[begins..., ends...]`, optional constant value, optional axes). Negative
/// pads crop first; the remaining data is then padded.
pub(super) fn pad(op: &Pad, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank();
    let pads = cx.i64s(1)?;
    let axes = if cx.has(3) {
        norm_axes(cx, &cx.i64s(3)?, r)?
    } else {
        (0..r).collect()
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return Err(cx.err(format!(
            "pads has {} entries, expected {} (begin and end for {k} axes)",
            pads.len(),
            2 * k
        )));
    }
    let fill = match cx.opt_tensor(2)? {
        Some(v) if op.mode == PadMode::Constant && !v.is_empty() => v.data.clone(),
        _ => Data::zeros(t.dtype(), 1),
    };
    let st = strides(&t.shape);
    let mut tables = identity_tables(&t.shape);
    let mut shape = t.shape.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (b, e) = (i128::from(pads[i]), i128::from(pads[k + i]));
        let d = t.shape[a] as i128;
        let lo = (-b).max(0);
        let len = d - lo - (-e).max(0);
        let (pb, pe) = (b.max(0), e.max(0));
        let out = len + pb + pe;
        if len < 0 || out < 0 {
            return Err(cx.err(format!(
                "pads {b} and {e} crop dim {a} of size {d} below zero"
            )));
        }
        if len == 0 && out > 0 && op.mode != PadMode::Constant {
            return Err(cx.err(format!(
                "cannot pad an empty dim {a} in mode '{}'",
                op.mode.keyword()
            )));
        }
        let out = usize::try_from(out).map_err(|_| cx.err("padded size overflows"))?;
        shape[a] = out;
        guard_dims(cx, &shape)?;
        let (pb, len, lo) = (pb as i64, len as i64, lo as usize);
        tables[a] = (0..out as i64)
            .map(|o| pad_source(op.mode, o - pb, len).map(|j| (lo + j as usize) * st[a]))
            .collect();
    }
    checked_numel(&shape).map_err(|e| te(cx, e))?;
    let idx = index_map(&shape, &tables);
    let data = take_fill(&t.data, &idx, &fill).map_err(|e| te(cx, e))?;
    one(Tensor::new(shape, data).map_err(|e| te(cx, e))?)
}

/// `tile`.
pub(super) fn tile(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let reps = dims_of(cx, &cx.i64s(1)?, "repeats")?;
    if reps.len() != t.rank() {
        return Err(cx.err(format!("{} repeats for rank {}", reps.len(), t.rank())));
    }
    let shape: Vec<usize> = t
        .shape
        .iter()
        .zip(&reps)
        .map(|(&d, &k)| d.checked_mul(k))
        .collect::<Option<_>>()
        .ok_or_else(|| cx.err("tiled shape overflows"))?;
    guard_dims(cx, &shape)?;
    let st = strides(&t.shape);
    let tables: Vec<Vec<Option<usize>>> = (0..t.rank())
        .map(|a| {
            (0..shape[a])
                .map(|o| Some((o % t.shape[a]) * st[a]))
                .collect()
        })
        .collect();
    let idx = index_map(&shape, &tables);
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

/// `expand`: numpy broadcast of input 0 with the shape in input 1.
pub(super) fn expand(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let target = dims_of(cx, &cx.i64s(1)?, "shape")?;
    let shape = util::broadcast_shape(&t.shape, &target).map_err(|e| te(cx, e))?;
    checked_numel(&shape).map_err(|e| te(cx, e))?;
    let idx = util::broadcast_index(&shape, &t.shape);
    one(take_tensor(t, shape, &idx).map_err(|e| te(cx, e))?)
}

fn block(cx: &EvalCtx, b: i64) -> Result<usize, RunError> {
    usize::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| cx.err(format!("blocksize must be positive, got {b}")))
}

fn nchw<'a>(cx: &EvalCtx<'a>) -> Result<(&'a Tensor, [usize; 4]), RunError> {
    let t = cx.tensor(0)?;
    match t.shape[..] {
        [n, c, h, w] => Ok((t, [n, c, h, w])),
        _ => Err(cx.err(format!("input must be 4-D (NCHW), got shape {:?}", t.shape))),
    }
}

/// `depth_to_space` (DCR or CRD).
pub(super) fn depth_to_space(op: &DepthToSpace, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let b = block(cx, op.blocksize)?;
    let (t, [n, c, h, w]) = nchw(cx)?;
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| cx.err("blocksize is too large"))?;
    if c % bb != 0 {
        return Err(cx.err(format!("channels {c} are not divisible by blocksize² {bb}")));
    }
    let (virt, perm) = match op.mode {
        BlockMode::Dcr => (vec![n, b, b, c / bb, h, w], [0, 3, 4, 1, 5, 2]),
        BlockMode::Crd => (vec![n, c / bb, b, b, h, w], [0, 1, 4, 2, 5, 3]),
    };
    let (hb, wb) = h
        .checked_mul(b)
        .zip(w.checked_mul(b))
        .ok_or_else(|| cx.err("output size overflows"))?;
    let shape = vec![n, c / bb, hb, wb];
    one(permute_tensor(t, &virt, &perm, shape).map_err(|e| te(cx, e))?)
}

/// `space_to_depth` (DCR or CRD).
pub(super) fn space_to_depth(op: &SpaceToDepth, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let b = block(cx, op.blocksize)?;
    let (t, [n, c, h, w]) = nchw(cx)?;
    if h % b != 0 || w % b != 0 {
        return Err(cx.err(format!(
            "height {h} and width {w} must be divisible by blocksize {b}"
        )));
    }
    let virt = vec![n, c, h / b, b, w / b, b];
    let perm = match op.mode {
        BlockMode::Dcr => [0, 3, 5, 1, 2, 4],
        BlockMode::Crd => [0, 1, 3, 5, 2, 4],
    };
    let cc = c
        .checked_mul(
            b.checked_mul(b)
                .ok_or_else(|| cx.err("blocksize is too large"))?,
        )
        .ok_or_else(|| cx.err("output channels overflow"))?;
    one(permute_tensor(t, &virt, &perm, vec![n, cc, h / b, w / b]).map_err(|e| te(cx, e))?)
}

/// `trilu`: keeps the upper (`j - i >= k`) or lower (`j - i <= k`) triangle of the last two dims.
pub(super) fn trilu(op: &Trilu, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank();
    if r < 2 {
        return Err(cx.err(format!("input must have rank ≥ 2, got {r}")));
    }
    let k = if cx.has(1) {
        match cx.i64s(1)?[..] {
            [k] => k,
            _ => return Err(cx.err("k must be a single integer")),
        }
    } else {
        0
    };
    let (rows, cols) = (t.shape[r - 2], t.shape[r - 1]);
    let idx: Vec<usize> = (0..t.len())
        .map(|f| {
            let i = ((f / cols.max(1)) % rows.max(1)) as i128;
            let j = (f % cols.max(1)) as i128;
            let d = j - i;
            let keep = if op.upper {
                d >= i128::from(k)
            } else {
                d <= i128::from(k)
            };
            if keep { f } else { FILL }
        })
        .collect();
    let data = take_fill(&t.data, &idx, &Data::zeros(t.dtype(), 1)).map_err(|e| te(cx, e))?;
    one(Tensor::new(t.shape.clone(), data).map_err(|e| te(cx, e))?)
}

/// `eye_like`: ones on diagonal `k` of a 2-D tensor shaped like input 0.
pub(super) fn eye_like(op: &EyeLike, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let [rows, cols] = t.shape[..] else {
        return Err(cx.err(format!("input must be 2-D, got shape {:?}", t.shape)));
    };
    let dtype = op.dtype.unwrap_or(t.dtype());
    let v: Vec<i64> = (0..rows * cols)
        .map(|f| {
            let (i, j) = ((f / cols) as i128, (f % cols) as i128);
            i64::from(j - i == i128::from(op.k))
        })
        .collect();
    let shape = vec![rows, cols];
    let out = if dtype.is_int() || dtype == DType::Bool {
        util::from_i64(dtype, shape, &v)
    } else {
        let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
        util::from_f64(dtype, shape, &f)
    };
    one(out.map_err(|e| te(cx, e))?)
}

/// `center_crop_pad`: centre-crops or zero-pads the `axes` to the sizes of input 1.
pub(super) fn center_crop_pad(op: &CenterCropPad, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let t = cx.tensor(0)?;
    let r = t.rank();
    let axes = if op.axes.is_empty() {
        (0..r).collect()
    } else {
        norm_axes(cx, &op.axes, r)?
    };
    let sizes = dims_of(cx, &cx.i64s(1)?, "shape")?;
    if sizes.len() != axes.len() {
        return Err(cx.err(format!(
            "shape has {} entries for {} axes",
            sizes.len(),
            axes.len()
        )));
    }
    let st = strides(&t.shape);
    let mut tables = identity_tables(&t.shape);
    let mut shape = t.shape.clone();
    for (&a, &s) in axes.iter().zip(&sizes) {
        let d = t.shape[a];
        shape[a] = s;
        guard_dims(cx, &shape)?;
        tables[a] = if s <= d {
            let off = (d - s) / 2;
            (0..s).map(|o| Some((o + off) * st[a])).collect()
        } else {
            let off = (s - d) / 2;
            (0..s)
                .map(|o| o.checked_sub(off).filter(|&i| i < d).map(|i| i * st[a]))
                .collect()
        };
    }
    checked_numel(&shape).map_err(|e| te(cx, e))?;
    let idx = index_map(&shape, &tables);
    let data = take_fill(&t.data, &idx, &Data::zeros(t.dtype(), 1)).map_err(|e| te(cx, e))?;
    one(Tensor::new(shape, data).map_err(|e| te(cx, e))?)
}
