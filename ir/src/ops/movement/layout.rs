//! Layout ops: shape queries and `identity`, reshape-like views (`reshape`, `flatten`, `squeeze`,
//! `unsqueeze`), `transpose`, `concat`, `split`, `slice`, `pad`, `tile`, `expand`, the depth/space block
//! moves, `trilu`, `eye_like` and `center_crop_pad`.

use super::*;

// ---------------------------------------------------------------------------------------------------
// shape, size, identity
// ---------------------------------------------------------------------------------------------------

fn shape_range(op: &ShapeOf, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |x: i64| (if x < 0 { x.saturating_add(r) } else { x }).clamp(0, r) as usize;
    let s = clamp(op.start);
    let e = clamp(op.end.unwrap_or(r));
    (s, e.max(s))
}

impl Infer for ShapeOf {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let len = match t.rank() {
            Some(r) => {
                let (s, e) = shape_range(self, r);
                Dim::Known((e - s) as u64)
            }
            None => Dim::Unknown,
        };
        Ok(out(DType::I64, vec![len]))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let dims = cx.tensor(0).ok()?.dims()?;
        let (s, e) = shape_range(self, dims.len());
        Some(dims_to_sym(&dims[s..e]))
    }
}

impl Infer for Size {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        cx.tensor(0)?;
        Ok(out(DType::I64, Vec::new()))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let dims = cx.tensor(0).ok()?.dims()?;
        let n = dims_to_sym(dims)
            .iter()
            .fold(SymInt::Int(1), |acc, d| mul_sym(&acc, d));
        Some(vec![n])
    }
}

impl Infer for Identity {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

// ---------------------------------------------------------------------------------------------------
// reshape, flatten, squeeze, unsqueeze, transpose
// ---------------------------------------------------------------------------------------------------

/// The dim a `-1` in a reshape target stands for: input element count divided by the product of the
/// other target dims, cancelling symbolic factors that appear on both sides.
fn infer_minus_one(cx: &InferCtx, input: &[Dim], others: &[Dim]) -> Result<Dim, InferError> {
    let mut in_known: u64 = 1;
    let mut in_syms: Vec<&str> = Vec::new();
    for d in input {
        match d {
            Dim::Known(n) => match in_known.checked_mul(*n) {
                Some(p) => in_known = p,
                None => return Ok(Dim::Unknown),
            },
            Dim::Sym(s) => in_syms.push(s),
            Dim::Unknown => return Ok(Dim::Unknown),
        }
    }
    let mut out_known: u64 = 1;
    let mut out_syms: Vec<&str> = Vec::new();
    for d in others {
        match d {
            Dim::Known(n) => match out_known.checked_mul(*n) {
                Some(p) => out_known = p,
                None => return Ok(Dim::Unknown),
            },
            Dim::Sym(s) => {
                if let Some(k) = in_syms.iter().position(|x| x == s) {
                    in_syms.swap_remove(k);
                } else {
                    out_syms.push(s);
                }
            }
            Dim::Unknown => return Ok(Dim::Unknown),
        }
    }
    if !out_syms.is_empty() || out_known == 0 {
        return Ok(Dim::Unknown);
    }
    match in_syms.as_slice() {
        [] => {
            if !in_known.is_multiple_of(out_known) {
                return Err(cx.err(format!(
                    "cannot reshape {} elements into a shape whose other dims multiply to {out_known}",
                    in_known
                )));
            }
            Ok(Dim::Known(in_known / out_known))
        }
        [s] if in_known == out_known => Ok(Dim::Sym((*s).to_string())),
        _ => Ok(Dim::Unknown),
    }
}

/// Output dims of a reshape of `input` (when its rank is known) to `target`.
fn reshape_dims(
    cx: &InferCtx,
    input: Option<&[Dim]>,
    target: &[SymInt],
    allowzero: bool,
) -> Result<Vec<Dim>, InferError> {
    let mut dims = Vec::with_capacity(target.len());
    let mut minus_one = None;
    let mut has_zero = false;
    for (i, v) in target.iter().enumerate() {
        let d = match v {
            SymInt::Int(-1) => {
                if minus_one.is_some() {
                    return Err(cx.err("the target shape has more than one -1"));
                }
                minus_one = Some(i);
                Dim::Unknown
            }
            SymInt::Int(0) if !allowzero => match input {
                Some(dims) => dims.get(i).cloned().ok_or_else(|| {
                    cx.err(format!(
                        "target dim {i} is 0 (copy), but the input has rank {}",
                        dims.len()
                    ))
                })?,
                None => Dim::Unknown,
            },
            SymInt::Int(0) => {
                has_zero = true;
                Dim::Known(0)
            }
            SymInt::Int(n) if *n < 0 => {
                return Err(cx.err(format!("invalid target dim {n}")));
            }
            v => v.to_dim(),
        };
        dims.push(d);
    }
    if has_zero && minus_one.is_some() {
        return Err(cx.err("with allowzero, the target shape cannot hold both 0 and -1"));
    }
    let Some(input) = input else {
        return Ok(dims);
    };
    if let Some(k) = minus_one {
        let others: Vec<Dim> = dims
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .map(|(_, d)| d.clone())
            .collect();
        dims[k] = infer_minus_one(cx, input, &others)?;
    } else if let (Some(a), Some(b)) = (
        Shape(input.to_vec()).num_elements(),
        Shape(dims.clone()).num_elements(),
    ) && a != b
    {
        return Err(cx.err(format!(
            "cannot reshape {} ({a} elements) to {} ({b} elements)",
            Shape(input.to_vec()),
            Shape(dims.clone())
        )));
    }
    Ok(dims)
}

impl Infer for Reshape {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        Ok(match int_input(cx, 1, false)? {
            IntInput::Values(v) => out(t.dtype, reshape_dims(cx, t.dims(), &v, self.allowzero)?),
            IntInput::Len(n) => out(t.dtype, vec![Dim::Unknown; n]),
            IntInput::Unknown => out_opt(t.dtype, None),
        })
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Flatten {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 2]));
        };
        let r = dims.len() as i64;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..=r).contains(&a) {
            return Err(cx.err(format!("axis {} is out of range for rank {r}", self.axis)));
        }
        let (head, tail) = dims.split_at(a as usize);
        Ok(out(t.dtype, vec![product(head), product(tail)]))
    }
}

impl Infer for Squeeze {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let dims = t.dims();
        if !cx.has_input(1) {
            let Some(dims) = dims else {
                return Ok(out_opt(t.dtype, None));
            };
            // Without axes every size-1 dim goes; a dim not known to be 1 or not-1 makes the rank unknown.
            if dims.iter().any(|d| d.known().is_none()) {
                return Ok(out_opt(t.dtype, None));
            }
            let kept = dims.iter().filter(|d| **d != Dim::Known(1)).cloned();
            return Ok(out(t.dtype, kept.collect()));
        }
        let axes = match int_input(cx, 1, true)? {
            IntInput::Values(v) => v.iter().map(SymInt::int).collect::<Option<Vec<_>>>(),
            IntInput::Len(n) => {
                return Ok(match dims {
                    Some(d) if n <= d.len() => out(t.dtype, vec![Dim::Unknown; d.len() - n]),
                    Some(d) => {
                        return Err(cx.err(format!("{n} axes to squeeze from rank {}", d.len())));
                    }
                    None => out_opt(t.dtype, None),
                });
            }
            IntInput::Unknown => None,
        };
        let (Some(axes), Some(dims)) = (axes, dims) else {
            return Ok(out_opt(t.dtype, None));
        };
        let axes = norm_axes(cx, &axes, dims.len())?;
        for &a in &axes {
            if let Dim::Known(n) = dims[a]
                && n != 1
            {
                return Err(cx.err(format!("cannot squeeze dim {a} of size {n}")));
            }
        }
        let kept = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone());
        Ok(out(t.dtype, kept.collect()))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Unsqueeze {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let axes = match int_input(cx, 1, true)? {
            IntInput::Values(v) => v.iter().map(SymInt::int).collect::<Option<Vec<_>>>(),
            IntInput::Len(n) => {
                return Ok(out_opt(
                    t.dtype,
                    t.dims().map(|d| vec![Dim::Unknown; d.len() + n]),
                ));
            }
            IntInput::Unknown => None,
        };
        let (Some(axes), Some(dims)) = (axes, t.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        let rank = dims.len() + axes.len();
        let axes = norm_axes(cx, &axes, rank)?;
        let mut src = dims.iter();
        let mut res = Vec::with_capacity(rank);
        for i in 0..rank {
            if axes.contains(&i) {
                res.push(Dim::Known(1));
            } else {
                res.push(src.next().cloned().unwrap_or(Dim::Unknown));
            }
        }
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Transpose {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                self.perm.as_ref().map(|p| vec![Dim::Unknown; p.len()]),
            ));
        };
        let Some(perm) = &self.perm else {
            return Ok(out(t.dtype, dims.iter().rev().cloned().collect()));
        };
        if perm.len() != dims.len() {
            return Err(cx.err(format!(
                "perm {perm:?} has {} entries for rank {}",
                perm.len(),
                dims.len()
            )));
        }
        let mut seen = vec![false; dims.len()];
        let mut res = Vec::with_capacity(dims.len());
        for &p in perm {
            let k = usize::try_from(p)
                .ok()
                .filter(|&k| k < dims.len() && !seen[k])
                .ok_or_else(|| cx.err(format!("perm {perm:?} is not a permutation")))?;
            seen[k] = true;
            res.push(dims[k].clone());
        }
        Ok(out(t.dtype, res))
    }
}

// ---------------------------------------------------------------------------------------------------
// concat, split, slice, pad, tile, expand
// ---------------------------------------------------------------------------------------------------

impl Infer for Concat {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if cx.num_inputs() == 0 {
            return Err(cx.err("needs at least one input"));
        }
        let mut ts = Vec::with_capacity(cx.num_inputs());
        for i in 0..cx.num_inputs() {
            ts.push(cx.tensor(i)?);
        }
        let dtype = ts[0].dtype;
        if let Some(bad) = ts.iter().find(|t| t.dtype != dtype) {
            return Err(cx.err(format!(
                "inputs must share one element type, got {dtype} and {}",
                bad.dtype
            )));
        }
        let Some(rank) = ts.iter().find_map(|t| t.rank()) else {
            return Ok(out_opt(dtype, None));
        };
        if rank == 0 {
            return Err(cx.err("cannot concatenate scalars"));
        }
        let axis = axis_of(cx, self.axis, rank)?;
        let mut res: Vec<Dim> = vec![Dim::Unknown; rank];
        let mut along: Vec<Dim> = Vec::new();
        let mut all_ranked = true;
        for (i, t) in ts.iter().enumerate() {
            let Some(dims) = t.dims() else {
                all_ranked = false;
                continue;
            };
            if dims.len() != rank {
                return Err(cx.err(format!(
                    "input {i} has rank {}, input 0 has rank {rank}",
                    dims.len()
                )));
            }
            for (k, d) in dims.iter().enumerate() {
                if k == axis {
                    along.push(d.clone());
                } else {
                    res[k] = unify(cx, &res[k], d, &format!("input {i} dim {k}"))?;
                }
            }
        }
        res[axis] = if all_ranked {
            along.iter().fold(Dim::Known(0), |acc, d| add_dims(&acc, d))
        } else {
            Dim::Unknown
        };
        Ok(out(dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let mut v = Vec::new();
        for i in 0..cx.num_inputs() {
            v.extend(cx.sym_value(i)?);
        }
        Some(v)
    }
}

impl Infer for Split {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let n = cx.num_outputs();
        if n == 0 {
            return Err(cx.err("needs at least one output"));
        }
        let Some(dims) = t.dims() else {
            return Ok(vec![Type::Tensor(TensorType::unranked(t.dtype)); n]);
        };
        let axis = axis_of(cx, self.axis, dims.len())?;
        let parts: Vec<Dim> = if cx.has_input(1) {
            match int_input(cx, 1, false)? {
                IntInput::Values(v) => {
                    if v.len() != n {
                        return Err(cx.err(format!("{} split sizes for {n} outputs", v.len())));
                    }
                    let parts = v
                        .iter()
                        .map(|s| dim_from_int(cx, s, "split"))
                        .collect::<Result<Vec<_>, _>>()?;
                    if let (Dim::Known(d), Some(sizes)) = (
                        &dims[axis],
                        parts.iter().map(Dim::known).collect::<Option<Vec<_>>>(),
                    ) {
                        let sum = sizes.iter().try_fold(0u64, |a, b| a.checked_add(*b));
                        if sum != Some(*d) {
                            return Err(cx.err(format!(
                                "split sizes {sizes:?} do not add up to dim {axis} of size {d}"
                            )));
                        }
                    }
                    parts
                }
                IntInput::Len(k) if k != n => {
                    return Err(cx.err(format!("{k} split sizes for {n} outputs")));
                }
                _ => vec![Dim::Unknown; n],
            }
        } else {
            match &dims[axis] {
                _ if n == 1 => vec![dims[axis].clone()],
                Dim::Known(d) => {
                    let k = n as u64;
                    let chunk = d.div_ceil(k);
                    // Too few elements for `n` chunks (e.g. in an If branch that is never taken):
                    // ONNX does not define the sizes, so they stay unknown rather than failing.
                    match chunk
                        .checked_mul(k - 1)
                        .and_then(|used| d.checked_sub(used))
                    {
                        Some(last) => {
                            let mut v = vec![Dim::Known(chunk); n - 1];
                            v.push(Dim::Known(last));
                            v
                        }
                        None => vec![Dim::Unknown; n],
                    }
                }
                _ => vec![Dim::Unknown; n],
            }
        };
        Ok(parts
            .into_iter()
            .map(|p| {
                let mut d = dims.to_vec();
                d[axis] = p;
                Type::Tensor(TensorType::new(t.dtype, Shape(d)))
            })
            .collect())
    }
}

/// Ends at or beyond this are taken as "to the end" of a dim whose size is not concrete.
const SLICE_TO_END: i64 = i32::MAX as i64;

/// Normalized `[start, end)` bounds of a slice of a dim of size `d` (ONNX clamping rules).
fn slice_bounds(d: i64, start: i64, end: i64, step: i64) -> (i128, i128) {
    let (d, mut s, mut e) = (i128::from(d), i128::from(start), i128::from(end));
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, (d - 1).max(0)), e.clamp(-1, d - 1))
    }
}

/// Number of elements a slice of a dim of size `d` keeps.
fn slice_len(d: i64, start: i64, end: i64, step: i64) -> u64 {
    if d <= 0 {
        return 0;
    }
    let (s, e) = slice_bounds(d, start, end, step);
    let step = i128::from(step);
    let n = if step > 0 {
        (e - s + step - 1).div_euclid(step)
    } else {
        (s - e + (-step) - 1).div_euclid(-step)
    };
    n.clamp(0, i128::from(u64::MAX)) as u64
}

fn slice_dim(d: &Dim, start: &SymInt, end: &SymInt, step: i64) -> Dim {
    match (d, start, end) {
        (Dim::Known(n), SymInt::Int(s), SymInt::Int(e)) => match i64::try_from(*n) {
            Ok(n) => Dim::Known(slice_len(n, *s, *e, step)),
            Err(_) => Dim::Unknown,
        },
        // The whole dim, forwards or reversed.
        (_, SymInt::Int(0), SymInt::Int(e)) if step == 1 && *e >= SLICE_TO_END => d.clone(),
        (_, SymInt::Int(-1), SymInt::Int(e)) if step == -1 && *e <= -SLICE_TO_END => d.clone(),
        // `x[0:n]` where `n` is the dim's own symbol.
        (Dim::Sym(a), SymInt::Int(0), SymInt::Sym(b)) if step == 1 && a == b => d.clone(),
        _ => Dim::Unknown,
    }
}

/// What is known of a slice's operands: starts/ends (maybe symbolic), axes and steps.
struct SliceArgs {
    starts: Vec<SymInt>,
    ends: Vec<SymInt>,
    axes: Option<Vec<usize>>,
    steps: Vec<i64>,
}

fn slice_args(cx: &InferCtx, rank: usize) -> Result<Option<SliceArgs>, InferError> {
    let starts = int_input(cx, 1, false)?;
    let ends = int_input(cx, 2, false)?;
    let axes = if cx.has_input(3) {
        int_values(cx, 3, false)?
    } else {
        None
    };
    let steps = if cx.has_input(4) {
        int_values(cx, 4, false)?
    } else {
        None
    };
    let n = [&starts, &ends].iter().find_map(|x| match x {
        IntInput::Values(v) => Some(v.len()),
        IntInput::Len(n) => Some(*n),
        IntInput::Unknown => None,
    });
    let Some(n) = n else {
        return Ok(None);
    };
    let vals = |x: IntInput, what: &str| -> Result<Vec<SymInt>, InferError> {
        let v = match x {
            IntInput::Values(v) => v,
            _ => vec![SymInt::Unknown; n],
        };
        if v.len() != n {
            return Err(cx.err(format!("{what} has {} entries, expected {n}", v.len())));
        }
        Ok(v)
    };
    let starts = vals(starts, "starts")?;
    let ends = vals(ends, "ends")?;
    let axes = match (cx.has_input(3), axes) {
        (false, _) => {
            if n > rank {
                return Err(cx.err(format!("{n} slice entries for rank {rank}")));
            }
            Some((0..n).collect())
        }
        (true, Some(a)) => {
            if a.len() != n {
                return Err(cx.err(format!("axes has {} entries, expected {n}", a.len())));
            }
            Some(norm_axes(cx, &a, rank)?)
        }
        (true, None) => None,
    };
    let steps = match (cx.has_input(4), steps) {
        (false, _) => vec![1; n],
        (true, Some(s)) => {
            if s.len() != n {
                return Err(cx.err(format!("steps has {} entries, expected {n}", s.len())));
            }
            if s.contains(&0) {
                return Err(cx.err("slice steps cannot be 0"));
            }
            s
        }
        (true, None) => vec![0; n], // 0 marks an unknown step
    };
    Ok(Some(SliceArgs {
        starts,
        ends,
        axes,
        steps,
    }))
}

impl Infer for Slice {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            for i in 1..5 {
                if cx.has_input(i) {
                    int_input(cx, i, false)?;
                }
            }
            return Ok(out_opt(t.dtype, None));
        };
        let Some(args) = slice_args(cx, dims.len())? else {
            return Ok(out(t.dtype, vec![Dim::Unknown; dims.len()]));
        };
        let Some(axes) = &args.axes else {
            return Ok(out(t.dtype, vec![Dim::Unknown; dims.len()]));
        };
        let mut res = dims.to_vec();
        for (i, &a) in axes.iter().enumerate() {
            res[a] = match args.steps[i] {
                0 => Dim::Unknown,
                step => slice_dim(&dims[a], &args.starts[i], &args.ends[i], step),
            };
        }
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let args = slice_args(cx, 1).ok()??;
        let mut data = data;
        for (i, _) in args.axes?.iter().enumerate() {
            let (start, end, step) = (args.starts[i].int()?, args.ends[i].int()?, args.steps[i]);
            if step == 0 {
                return None;
            }
            let n = i64::try_from(data.len()).ok()?;
            let (s, _) = slice_bounds(n, start, end, step);
            let len = slice_len(n, start, end, step);
            data = (0..len)
                .map(|k| {
                    let idx = s + i128::from(k) * i128::from(step);
                    data.get(usize::try_from(idx).ok()?).cloned()
                })
                .collect::<Option<Vec<_>>>()?;
        }
        Some(data)
    }
}

impl Infer for Pad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(v) = cx.opt_tensor(2)?
            && v.dtype != t.dtype
        {
            return Err(cx.err(format!(
                "constant_value has type {}, data has {}",
                v.dtype, t.dtype
            )));
        }
        let pads = int_values(cx, 1, false)?;
        let axes = if cx.has_input(3) {
            int_values(cx, 3, false)?
        } else {
            None
        };
        let Some(dims) = t.dims() else {
            // Without axes the pads cover every dim, which gives the rank.
            return Ok(out_opt(
                t.dtype,
                match (&pads, cx.has_input(3)) {
                    (Some(p), false) => Some(vec![Dim::Unknown; p.len() / 2]),
                    _ => None,
                },
            ));
        };
        let rank = dims.len();
        let axes = match (cx.has_input(3), axes) {
            (false, _) => (0..rank).collect(),
            (true, Some(a)) => norm_axes(cx, &a, rank)?,
            (true, None) => return Ok(out(t.dtype, vec![Dim::Unknown; rank])),
        };
        let mut res = dims.to_vec();
        let Some(pads) = pads else {
            for &a in &axes {
                res[a] = Dim::Unknown;
            }
            return Ok(out(t.dtype, res));
        };
        let n = axes.len();
        if pads.len() != 2 * n {
            return Err(cx.err(format!(
                "pads has {} entries, expected {} (begin and end for {n} axes)",
                pads.len(),
                2 * n
            )));
        }
        for (i, &a) in axes.iter().enumerate() {
            let total = i128::from(pads[i]) + i128::from(pads[i + n]);
            res[a] = match &dims[a] {
                Dim::Known(d) => {
                    let v = i128::from(*d) + total;
                    if v < 0 {
                        return Err(cx.err(format!(
                            "pads {} and {} crop dim {a} of size {d} below zero",
                            pads[i],
                            pads[i + n]
                        )));
                    }
                    u64::try_from(v).map_or(Dim::Unknown, Dim::Known)
                }
                d if total == 0 => d.clone(),
                _ => Dim::Unknown,
            };
        }
        Ok(out(t.dtype, res))
    }
}

impl Infer for Tile {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let repeats = int_input(cx, 1, false)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                match repeats {
                    IntInput::Values(v) => Some(vec![Dim::Unknown; v.len()]),
                    IntInput::Len(n) => Some(vec![Dim::Unknown; n]),
                    IntInput::Unknown => None,
                },
            ));
        };
        let res = match repeats {
            IntInput::Values(v) => {
                if v.len() != dims.len() {
                    return Err(cx.err(format!("{} repeats for rank {}", v.len(), dims.len())));
                }
                dims.iter()
                    .zip(&v)
                    .map(|(d, r)| Ok(d.mul(&dim_from_int(cx, r, "repeats")?)))
                    .collect::<Result<Vec<_>, InferError>>()?
            }
            IntInput::Len(n) if n != dims.len() => {
                return Err(cx.err(format!("{n} repeats for rank {}", dims.len())));
            }
            _ => vec![Dim::Unknown; dims.len()],
        };
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let reps = usize::try_from(*cx.known_i64s(1)?.first()?).ok()?;
        if (data.len() as u64).saturating_mul(reps as u64) > SYM_MAX_ELEMENTS {
            return None;
        }
        Some(
            data.iter()
                .cloned()
                .cycle()
                .take(data.len() * reps)
                .collect(),
        )
    }
}

impl Infer for Expand {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let target = match int_input(cx, 1, false)? {
            IntInput::Values(v) => v
                .iter()
                .map(|s| dim_from_int(cx, s, "expand shape"))
                .collect::<Result<Vec<_>, _>>()?,
            IntInput::Len(n) => vec![Dim::Unknown; n],
            IntInput::Unknown => return Ok(out_opt(t.dtype, None)),
        };
        let Some(shape) = &t.shape else {
            return Ok(out_opt(t.dtype, None));
        };
        let res =
            crate::infer::broadcast_shapes(&[shape, &Shape(target)]).map_err(|m| cx.err(m))?;
        Ok(out(t.dtype, res.0))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        let target = cx.known_i64s(1)?;
        let n = match target.as_slice() {
            [] => 1,
            [n] => u64::try_from(*n).ok()?,
            _ => return None,
        };
        match data.len() {
            1 if n <= SYM_MAX_ELEMENTS => Some(vec![data[0].clone(); n.max(1) as usize]),
            k if n <= 1 || k as u64 == n => Some(data),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// depth_to_space, space_to_depth, trilu, eye_like, center_crop_pad
// ---------------------------------------------------------------------------------------------------

fn rank4<'a>(cx: &InferCtx<'a>) -> Result<(&'a TensorType, Option<&'a [Dim]>), InferError> {
    let t = cx.tensor(0)?;
    match t.dims() {
        Some(d) if d.len() != 4 => Err(cx.err(format!("input must be 4-D (NCHW), got {t}"))),
        d => Ok((t, d)),
    }
}

fn blocksize(cx: &InferCtx, b: i64) -> Result<u64, InferError> {
    u64::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| cx.err(format!("blocksize must be positive, got {b}")))
}

impl Infer for DepthToSpace {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let b = blocksize(cx, self.blocksize)?;
        let (t, dims) = rank4(cx)?;
        let Some(d) = dims else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 4]));
        };
        let bb = b
            .checked_mul(b)
            .ok_or_else(|| cx.err("blocksize is too large"))?;
        let c = div_dim(cx, &d[1], bb, "channels")?;
        let k = Dim::Known(b);
        Ok(out(
            t.dtype,
            vec![d[0].clone(), c, d[2].mul(&k), d[3].mul(&k)],
        ))
    }
}

impl Infer for SpaceToDepth {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let b = blocksize(cx, self.blocksize)?;
        let (t, dims) = rank4(cx)?;
        let Some(d) = dims else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 4]));
        };
        let bb = b
            .checked_mul(b)
            .ok_or_else(|| cx.err("blocksize is too large"))?;
        Ok(out(
            t.dtype,
            vec![
                d[0].clone(),
                d[1].mul(&Dim::Known(bb)),
                div_dim(cx, &d[2], b, "height")?,
                div_dim(cx, &d[3], b, "width")?,
            ],
        ))
    }
}

impl Infer for Trilu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(r) = t.rank()
            && r < 2
        {
            return Err(cx.err(format!("input must have rank ≥ 2, got {r}")));
        }
        if cx.has_input(1) {
            let k = scalar_input(cx, 1)?;
            if !k.dtype.is_int() {
                return Err(cx.err("k must be an integer"));
            }
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for EyeLike {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let dims = match t.dims() {
            Some(d) if d.len() != 2 => {
                return Err(cx.err(format!("input must be 2-D, got {t}")));
            }
            Some(d) => d.to_vec(),
            None => vec![Dim::Unknown; 2],
        };
        Ok(out(self.dtype.unwrap_or(t.dtype), dims))
    }
}

impl Infer for CenterCropPad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let shape = int_input(cx, 1, false)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(t.dtype, None));
        };
        let axes: Vec<usize> = if self.axes.is_empty() {
            (0..dims.len()).collect()
        } else {
            norm_axes(cx, &self.axes, dims.len())?
        };
        let mut res = dims.to_vec();
        match shape {
            IntInput::Values(v) => {
                if v.len() != axes.len() {
                    return Err(cx.err(format!(
                        "shape has {} entries for {} axes",
                        v.len(),
                        axes.len()
                    )));
                }
                for (i, &a) in axes.iter().enumerate() {
                    res[a] = dim_from_int(cx, &v[i], "shape")?;
                }
            }
            _ => {
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
            }
        }
        Ok(out(t.dtype, res))
    }
}
