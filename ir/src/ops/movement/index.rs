//! Indexing ops: gather / scatter in their element, slice and N-d forms, the KV-cache `tensor_scatter`,
//! the value-producing `constant_of_shape` and `range`, `compress`, `non_zero`, `one_hot`,
//! `reverse_sequence` and `unique`.

use super::*;

// ---------------------------------------------------------------------------------------------------
// gather / scatter
// ---------------------------------------------------------------------------------------------------

fn check_indices<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    if !t.dtype.is_int() {
        return Err(cx.err(format!(
            "indices (input {i}) must be integers, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for Gather {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let (Some(dims), Some(idims)) = (t.dims(), idx.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        if dims.is_empty() {
            return Err(cx.err("cannot gather from a scalar"));
        }
        let axis = axis_of(cx, self.axis, dims.len())?;
        let mut res = dims[..axis].to_vec();
        res.extend_from_slice(idims);
        res.extend_from_slice(&dims[axis + 1..]);
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let data = cx.sym_value(0)?;
        let n = i64::try_from(data.len()).ok()?;
        cx.known_i64s(1)?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                data.get(usize::try_from(j).ok()?).cloned()
            })
            .collect()
    }
}

impl Infer for GatherElements {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        if let (Some(r), Some(q)) = (t.rank(), idx.rank()) {
            if r != q {
                return Err(cx.err(format!("data has rank {r}, indices rank {q}")));
            }
            if r == 0 {
                return Err(cx.err("cannot gather from a scalar"));
            }
            axis_of(cx, self.axis, r)?;
        }
        Ok(out_opt(t.dtype, idx.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for GatherNd {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let (Some(dims), Some(idims)) = (t.dims(), idx.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        let (r, q) = (dims.len(), idims.len());
        if r == 0 || q == 0 {
            return Err(cx.err("data and indices must have rank ≥ 1"));
        }
        let b = usize::try_from(self.batch_dims)
            .ok()
            .filter(|&b| b < r.min(q))
            .ok_or_else(|| {
                cx.err(format!(
                    "batch_dims {} must be below both ranks ({r} and {q})",
                    self.batch_dims
                ))
            })?;
        let Some(m) = idims[q - 1].known() else {
            return Ok(out_opt(t.dtype, None));
        };
        let m = usize::try_from(m).unwrap_or(usize::MAX);
        if m < 1 || m > r - b {
            return Err(cx.err(format!(
                "index tuples of length {m} do not fit data of rank {r} with {b} batch dims"
            )));
        }
        let mut res = Vec::with_capacity(q - 1 + r - b - m);
        for i in 0..q - 1 {
            res.push(if i < b {
                unify(cx, &idims[i], &dims[i], &format!("batch dim {i}"))?
            } else {
                idims[i].clone()
            });
        }
        res.extend_from_slice(&dims[b + m..]);
        Ok(out(t.dtype, res))
    }
}

impl Infer for ScatterElements {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let upd = cx.tensor(2)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "updates have type {}, data has {}",
                upd.dtype, t.dtype
            )));
        }
        let ranks = [t.rank(), idx.rank(), upd.rank()];
        if let Some(r) = ranks.iter().flatten().next() {
            if ranks.iter().flatten().any(|q| q != r) {
                return Err(cx.err(format!(
                    "data, indices and updates must have one rank, got {ranks:?}"
                )));
            }
            axis_of(cx, self.axis, *r)?;
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for ScatterNd {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let upd = cx.tensor(2)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "updates have type {}, data has {}",
                upd.dtype, t.dtype
            )));
        }
        if let (Some(dims), Some(idims), Some(udims)) = (t.dims(), idx.dims(), upd.dims()) {
            let q = idims.len();
            if q == 0 {
                return Err(cx.err("indices must have rank ≥ 1"));
            }
            if let Some(m) = idims[q - 1].known() {
                let m = usize::try_from(m).unwrap_or(usize::MAX);
                if m > dims.len() {
                    return Err(cx.err(format!(
                        "index tuples of length {m} for data of rank {}",
                        dims.len()
                    )));
                }
                let want = q - 1 + dims.len() - m;
                if udims.len() != want {
                    return Err(cx.err(format!(
                        "updates have rank {}, expected {want}",
                        udims.len()
                    )));
                }
            }
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for TensorScatter {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let upd = cx.tensor(1)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "update has type {}, the cache has {}",
                upd.dtype, t.dtype
            )));
        }
        if let Some(w) = cx.opt_tensor(2)?
            && !w.dtype.is_int()
        {
            return Err(cx.err("write_indices must be integers"));
        }
        let Some(dims) = t.dims() else {
            return Ok(out_opt(t.dtype, upd.rank().map(|r| vec![Dim::Unknown; r])));
        };
        let axis = axis_of(cx, self.axis, dims.len())?;
        if axis == 0 {
            return Err(cx.err("axis cannot be the batch axis 0"));
        }
        let mut res = dims.to_vec();
        if let Some(ud) = upd.dims() {
            if ud.len() != dims.len() {
                return Err(cx.err(format!(
                    "update has rank {}, the cache has rank {}",
                    ud.len(),
                    dims.len()
                )));
            }
            for (k, d) in ud.iter().enumerate() {
                if k != axis {
                    res[k] = unify(cx, &res[k], d, &format!("dim {k}"))?;
                }
            }
        }
        Ok(out(t.dtype, res))
    }
}

// ---------------------------------------------------------------------------------------------------
// constant_of_shape, range
// ---------------------------------------------------------------------------------------------------

impl Infer for ConstantOfShape {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if self.value.num_elements() != 1 {
            return Err(cx.err(format!(
                "value must hold one element, got {}",
                self.value.ty
            )));
        }
        let dtype = self.value.ty.dtype;
        Ok(match int_input(cx, 0, false)? {
            IntInput::Values(v) => out(
                dtype,
                v.iter()
                    .map(|s| dim_from_int(cx, s, "shape"))
                    .collect::<Result<_, _>>()?,
            ),
            IntInput::Len(n) => out(dtype, vec![Dim::Unknown; n]),
            IntInput::Unknown => out_opt(dtype, None),
        })
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let shape = cx.known_i64s(0)?;
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))?;
        if n > SYM_MAX_ELEMENTS {
            return None;
        }
        let v = *self.value.to_i64s()?.first()?;
        Some(vec![SymInt::Int(v); n as usize])
    }
}

/// Number of elements of `range(start, limit, delta)`, computed as onnxruntime does.
fn range_len_f64(diff: f64, delta: f64) -> Option<u64> {
    if delta == 0.0 || !(diff.is_finite() && delta.is_finite()) {
        return None;
    }
    let n = (diff / delta).ceil();
    Some(if n <= 0.0 { 0 } else { n as u64 })
}

fn range_len_i64(start: i64, limit: i64, delta: i64) -> Option<u64> {
    if delta == 0 {
        return None;
    }
    let (s, l, d) = (i128::from(start), i128::from(limit), i128::from(delta));
    let n = if d > 0 {
        (l - s + d - 1).div_euclid(d)
    } else {
        (s - l + (-d) - 1).div_euclid(-d)
    };
    u64::try_from(n.max(0)).ok()
}

impl Infer for Range {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = scalar_input(cx, 0)?.dtype;
        for i in 1..3 {
            let t = scalar_input(cx, i)?;
            if t.dtype != dtype {
                return Err(cx.err(format!(
                    "start, limit and delta must share one type, got {dtype} and {}",
                    t.dtype
                )));
            }
        }
        let len = if dtype.is_int() {
            match (cx.known_i64s(0), cx.known_i64s(1), cx.known_i64s(2)) {
                (Some(s), Some(l), Some(d)) => match (s.first(), l.first(), d.first()) {
                    (Some(&s), Some(&l), Some(&d)) => {
                        if d == 0 {
                            return Err(cx.err("delta cannot be 0"));
                        }
                        range_len_i64(s, l, d).map_or(Dim::Unknown, Dim::Known)
                    }
                    _ => Dim::Unknown,
                },
                (Some(s), _, Some(d)) if s == [0] && d == [1] => match cx.sym_value(1) {
                    Some(v) if v.len() == 1 => v[0].to_dim(),
                    _ => Dim::Unknown,
                },
                _ => Dim::Unknown,
            }
        } else {
            match (cx.const_f64s(0), cx.const_f64s(1), cx.const_f64s(2)) {
                (Some(s), Some(l), Some(d)) => match (s.first(), l.first(), d.first()) {
                    (Some(&s), Some(&l), Some(&d)) => {
                        // onnxruntime subtracts in the element type, then divides in f64.
                        let diff = if dtype == DType::F64 {
                            l - s
                        } else {
                            f64::from(l as f32 - s as f32)
                        };
                        range_len_f64(diff, d).map_or(Dim::Unknown, Dim::Known)
                    }
                    _ => Dim::Unknown,
                },
                _ => Dim::Unknown,
            }
        };
        Ok(out(dtype, vec![len]))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let s = *cx.known_i64s(0)?.first()?;
        let l = *cx.known_i64s(1)?.first()?;
        let d = *cx.known_i64s(2)?.first()?;
        let n = range_len_i64(s, l, d)?;
        if n > SYM_MAX_ELEMENTS {
            return None;
        }
        (0..n as i64)
            .map(|k| k.checked_mul(d)?.checked_add(s).map(SymInt::Int))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// compress, non_zero, one_hot, reverse_sequence, unique
// ---------------------------------------------------------------------------------------------------

impl Infer for Compress {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let c = cx.tensor(1)?;
        if c.dtype != DType::Bool {
            return Err(cx.err(format!("condition must be bool, got {}", c.dtype)));
        }
        if let Some(r) = c.rank()
            && r != 1
        {
            return Err(cx.err(format!("condition must be 1-D, got rank {r}")));
        }
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                if self.axis.is_none() {
                    Some(vec![Dim::Unknown])
                } else {
                    None
                },
            ));
        };
        let (axis, len) = match self.axis {
            Some(a) => {
                let a = axis_of(cx, a, dims.len())?;
                (Some(a), dims[a].clone())
            }
            None => (None, product(dims)),
        };
        // A constant condition gives the count: true entries among the first `len` (the rest are ignored).
        let small = c
            .shape
            .as_ref()
            .and_then(Shape::num_elements)
            .is_some_and(|n| n <= MAX_SCAN_ELEMENTS);
        let cond = small.then(|| cx.const_i64s(1)).flatten();
        let count = match (cond, len.known()) {
            (Some(cond), Some(n)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                Dim::Known(cond.iter().take(n).filter(|&&x| x != 0).count() as u64)
            }
            _ => Dim::Unknown,
        };
        Ok(match axis {
            Some(a) => {
                let mut res = dims.to_vec();
                res[a] = count;
                out(t.dtype, res)
            }
            None => out(t.dtype, vec![count]),
        })
    }
}

impl Infer for NonZero {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let rank = t.rank().map_or(Dim::Unknown, |r| Dim::Known(r as u64));
        let count = cx
            .const_value(0)
            .filter(|c| c.num_elements() <= MAX_SCAN_ELEMENTS)
            .and_then(Constant::to_f64s)
            .map_or(Dim::Unknown, |v| {
                Dim::Known(v.iter().filter(|&&x| x != 0.0).count() as u64)
            });
        Ok(out(DType::I64, vec![rank, count]))
    }
}

impl Infer for OneHot {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let idx = cx.tensor(0)?;
        let depth_t = scalar_input(cx, 1)?;
        let values = cx.tensor(2)?;
        if let Some(d) = values.dims()
            && (d.len() != 1 || d[0].conflicts(&Dim::Known(2)))
        {
            return Err(cx.err(format!("values must be [off, on], got {values}")));
        }
        let depth = if depth_t.dtype.is_int() {
            cx.sym_value(1)
                .and_then(|v| v.first().map(SymInt::to_dim))
                .unwrap_or(Dim::Unknown)
        } else {
            cx.const_f64s(1)
                .and_then(|v| v.first().copied())
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map_or(Dim::Unknown, |d| Dim::Known(d as u64))
        };
        let Some(dims) = idx.dims() else {
            return Ok(out_opt(values.dtype, None));
        };
        let rank = dims.len() + 1;
        let r = rank as i64;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..r).contains(&a) {
            return Err(cx.err(format!(
                "axis {} is out of range for output rank {rank}",
                self.axis
            )));
        }
        let mut res = dims.to_vec();
        res.insert(a as usize, depth);
        Ok(out(values.dtype, res))
    }
}

impl Infer for ReverseSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let lens = cx.tensor(1)?;
        if !lens.dtype.is_int() {
            return Err(cx.err("sequence_lens must be integers"));
        }
        if !matches!((self.batch_axis, self.time_axis), (0, 1) | (1, 0)) {
            return Err(cx.err(format!(
                "batch_axis and time_axis must be 0 and 1 in some order, got {} and {}",
                self.batch_axis, self.time_axis
            )));
        }
        if let Some(r) = t.rank()
            && r < 2
        {
            return Err(cx.err(format!("input must have rank ≥ 2, got {r}")));
        }
        let mut dims = t.dims().map(<[Dim]>::to_vec);
        if let (Some(d), Some(ld)) = (&mut dims, lens.dims()) {
            let b = self.batch_axis as usize;
            if ld.len() != 1 {
                return Err(cx.err("sequence_lens must be 1-D"));
            }
            d[b] = unify(cx, &d[b], &ld[0], "batch size and sequence_lens length")?;
        }
        Ok(out_opt(t.dtype, dims))
    }
}

impl Infer for Unique {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let n = cx.num_outputs();
        if !(1..=4).contains(&n) {
            return Err(cx.err(format!("has 1 to 4 outputs, the node has {n}")));
        }
        let (y, along) = match (self.axis, t.dims()) {
            (None, Some(d)) => (Some(vec![Dim::Unknown]), product(d)),
            (None, None) => (Some(vec![Dim::Unknown]), Dim::Unknown),
            (Some(a), Some(d)) => {
                let a = axis_of(cx, a, d.len())?;
                let mut y = d.to_vec();
                y[a] = Dim::Unknown;
                (Some(y), d[a].clone())
            }
            (Some(_), None) => (None, Dim::Unknown),
        };
        let mut res = out_opt(t.dtype, y);
        res.extend(out(DType::I64, vec![Dim::Unknown]));
        res.extend(out(DType::I64, vec![along]));
        res.extend(out(DType::I64, vec![Dim::Unknown]));
        res.truncate(n);
        Ok(res)
    }
}
