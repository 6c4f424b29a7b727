//! Resampling ops: `resize` (with its scales/sizes resolution), `grid_sample`, `affine_grid` and `col2im`.

use super::*;

// ---------------------------------------------------------------------------------------------------
// resize, grid_sample, affine_grid, col2im
// ---------------------------------------------------------------------------------------------------

/// Whether an optional resize operand is given: ONNX passes an empty tensor for "not given".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    /// Absent or known to be empty.
    No,
    /// Present, length unknown.
    Maybe,
    /// Present with a known, non-zero length.
    Yes(usize),
}

fn given(cx: &InferCtx, i: usize) -> Given {
    match cx.input(i) {
        None => Given::No,
        Some(Type::Tensor(t)) => match t.dims() {
            Some([Dim::Known(0)]) => Given::No,
            Some([Dim::Known(n)]) => usize::try_from(*n).map_or(Given::Maybe, Given::Yes),
            _ => Given::Maybe,
        },
        Some(_) => Given::Maybe,
    }
}

impl Resize {
    fn out_dims(&self, cx: &InferCtx, dims: &[Dim]) -> Result<Vec<Dim>, InferError> {
        let rank = dims.len();
        let axes: Vec<usize> = if self.axes.is_empty() {
            (0..rank).collect()
        } else {
            norm_axes(cx, &self.axes, rank)?
        };
        let mut res = dims.to_vec();
        let check_len = |n: usize, what: &str| {
            if n != axes.len() {
                Err(cx.err(format!(
                    "{what} has {n} entries, expected {} (one per resized axis)",
                    axes.len()
                )))
            } else {
                Ok(())
            }
        };
        let use_sizes = match (given(cx, 2), given(cx, 3)) {
            (Given::Yes(_), Given::Yes(_)) => {
                return Err(cx.err("only one of scales and sizes may be given"));
            }
            (_, Given::Yes(_)) | (Given::No, Given::Maybe) => true,
            (Given::Yes(_), _) | (Given::Maybe, Given::No) => false,
            (Given::Maybe, Given::Maybe) => {
                // Both present, lengths unknown: which one is used is decided at run time.
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
                return Ok(res);
            }
            (Given::No, Given::No) => {
                return Err(cx.err("one of scales (input 2) and sizes (input 3) is required"));
            }
        };
        if use_sizes {
            let sizes = match int_input(cx, 3, false)? {
                IntInput::Values(v) => v,
                IntInput::Len(n) => {
                    check_len(n, "sizes")?;
                    vec![SymInt::Unknown; n]
                }
                IntInput::Unknown => vec![SymInt::Unknown; axes.len()],
            };
            check_len(sizes.len(), "sizes")?;
            if self.keep_aspect_ratio_policy == AspectPolicy::Stretch {
                for (i, &a) in axes.iter().enumerate() {
                    res[a] = dim_from_int(cx, &sizes[i], "sizes")?;
                }
                return Ok(res);
            }
            // One scale for every resized axis, as onnxruntime computes it (f32).
            let mut scale: Option<f32> = None;
            for (i, &a) in axes.iter().enumerate() {
                let (Some(s), Some(d)) = (sizes[i].int(), dims[a].known()) else {
                    for &a in &axes {
                        res[a] = Dim::Unknown;
                    }
                    return Ok(res);
                };
                let r = if d == 0 { 1.0 } else { s as f32 / d as f32 };
                scale = Some(match (scale, self.keep_aspect_ratio_policy) {
                    (None, _) => r,
                    (Some(x), AspectPolicy::NotLarger) => x.min(r),
                    (Some(x), _) => x.max(r),
                });
            }
            let scale = scale.unwrap_or(1.0);
            for &a in &axes {
                if let Some(d) = dims[a].known() {
                    res[a] = Dim::Known((scale * d as f32).round().max(0.0) as u64);
                }
            }
            return Ok(res);
        }
        {
            let st = cx.tensor(2)?;
            if !st.dtype.is_float() {
                return Err(cx.err(format!("scales must be floats, got {}", st.dtype)));
            }
            let short = st
                .shape
                .as_ref()
                .and_then(Shape::num_elements)
                .is_some_and(|n| n <= MAX_INT_OPERAND);
            let Some(scales) = short.then(|| cx.const_f64s(2)).flatten() else {
                if let Some([Dim::Known(n)]) = st.dims() {
                    check_len(*n as usize, "scales")?;
                }
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
                return Ok(res);
            };
            check_len(scales.len(), "scales")?;
            for (i, &a) in axes.iter().enumerate() {
                let s = scales[i] as f32;
                if s.is_nan() || s <= 0.0 || !s.is_finite() {
                    return Err(cx.err(format!("scales must be positive, got {s}")));
                }
                // onnxruntime: trunc(scale · dim) in f32 (the roi does not enter the output size).
                res[a] = match &dims[a] {
                    Dim::Known(d) => Dim::Known((s * *d as f32) as u64),
                    d if s == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
            Ok(res)
        }
    }
}

impl Infer for Resize {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(roi) = cx.opt_tensor(1)?
            && !roi.dtype.is_float()
        {
            return Err(cx.err(format!("roi must be floats, got {}", roi.dtype)));
        }
        let Some(dims) = t.dims() else {
            // Without axes, scales/sizes have one entry per dim.
            let n = match (given(cx, 2), given(cx, 3)) {
                (Given::Yes(_), Given::Yes(_)) => {
                    return Err(cx.err("only one of scales and sizes may be given"));
                }
                (Given::Yes(n), _) | (_, Given::Yes(n)) if self.axes.is_empty() => Some(n),
                _ => None,
            }
            .filter(|&n| n as u64 <= MAX_INT_OPERAND);
            return Ok(out_opt(t.dtype, n.map(|n| vec![Dim::Unknown; n])));
        };
        Ok(out(t.dtype, self.out_dims(cx, dims)?))
    }
}

impl Infer for GridSample {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let g = cx.tensor(1)?;
        if !g.dtype.is_float() {
            return Err(cx.err(format!("grid must be floats, got {}", g.dtype)));
        }
        let rank = t.rank().or(g.rank());
        let Some(rank) = rank else {
            return Ok(out_opt(t.dtype, None));
        };
        if rank < 3 {
            return Err(cx.err(format!("input must have rank ≥ 3, got {rank}")));
        }
        let mut res = vec![Dim::Unknown; rank];
        if let Some(d) = t.dims() {
            res[0] = d[0].clone();
            res[1] = d[1].clone();
        }
        if let Some(gd) = g.dims() {
            if gd.len() != rank {
                return Err(cx.err(format!("grid has rank {}, input has rank {rank}", gd.len())));
            }
            if gd[rank - 1].conflicts(&Dim::Known(rank as u64 - 2)) {
                return Err(cx.err(format!(
                    "the grid's last dim must be {}, got {}",
                    rank - 2,
                    gd[rank - 1]
                )));
            }
            res[0] = unify(cx, &res[0], &gd[0], "batch")?;
            res[2..rank].clone_from_slice(&gd[1..rank - 1]);
        }
        Ok(out(t.dtype, res))
    }
}

impl Infer for AffineGrid {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let theta = cx.tensor(0)?;
        if !theta.dtype.is_float() {
            return Err(cx.err(format!("theta must be floats, got {}", theta.dtype)));
        }
        let size = int_input(cx, 1, false)?;
        // Spatial rank from the size vector or from theta ([N, 2, 3] is 2-D, [N, 3, 4] is 3-D).
        let from_theta = theta.dims().and_then(|d| match d {
            [_, Dim::Known(2), _] | [_, _, Dim::Known(3)] => Some(2),
            [_, Dim::Known(3), _] | [_, _, Dim::Known(4)] => Some(3),
            _ => None,
        });
        let (k, vals) = match &size {
            IntInput::Values(v) => (v.len().checked_sub(2), Some(v)),
            IntInput::Len(n) => (n.checked_sub(2), None),
            IntInput::Unknown => (from_theta, None),
        };
        let Some(k) = k.filter(|k| *k == 2 || *k == 3) else {
            return Err(cx.err("size must be [N, C, H, W] or [N, C, D, H, W]"));
        };
        if let Some(d) = theta.dims() {
            let want = [Dim::Known(k as u64), Dim::Known(k as u64 + 1)];
            if d.len() != 3 || d[1].conflicts(&want[0]) || d[2].conflicts(&want[1]) {
                return Err(cx.err(format!(
                    "theta must be [N, {}, {}] for a {k}-D grid, got {theta}",
                    k,
                    k + 1
                )));
            }
        }
        let mut res = vec![Dim::Unknown; k + 2];
        if let Some(v) = vals {
            res[0] = dim_from_int(cx, &v[0], "size")?;
            for i in 0..k {
                res[1 + i] = dim_from_int(cx, &v[2 + i], "size")?;
            }
        }
        if let Some(d) = theta.dims() {
            res[0] = unify(cx, &res[0], &d[0], "batch")?;
        }
        res[k + 1] = Dim::Known(k as u64);
        Ok(out(theta.dtype, res))
    }
}

impl Infer for Col2Im {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let image = int_input(cx, 1, false)?;
        let block = int_values(cx, 2, false)?;
        let k = match (&image, &block) {
            (IntInput::Values(v), _) => Some(v.len()),
            (IntInput::Len(n), _) => Some(*n),
            (_, Some(b)) => Some(b.len()),
            _ => None,
        };
        let Some(k) = k else {
            return Ok(out_opt(t.dtype, None));
        };
        if let Some(b) = &block {
            if b.len() != k {
                return Err(cx.err(format!(
                    "block_shape has {} entries, image_shape has {k}",
                    b.len()
                )));
            }
            if b.iter().any(|&x| x <= 0) {
                return Err(cx.err(format!("block_shape {b:?} must be positive")));
            }
        }
        let mut res = vec![Dim::Unknown; k + 2];
        if let Some(d) = t.dims() {
            if d.len() != 3 {
                return Err(cx.err(format!("input must be [N, C·∏block, L], got {t}")));
            }
            res[0] = d[0].clone();
            if let Some(b) = &block {
                let prod = b
                    .iter()
                    .try_fold(1u64, |a, &x| a.checked_mul(x as u64))
                    .ok_or_else(|| cx.err("block_shape overflows"))?;
                res[1] = div_dim(cx, &d[1], prod, "channels")?;
            }
        }
        if let IntInput::Values(v) = &image {
            for i in 0..k {
                res[2 + i] = dim_from_int(cx, &v[i], "image_shape")?;
            }
        }
        Ok(out(t.dtype, res))
    }
}
