//! Inference of the pooling ops: `pool`, `global_pool` and `max_unpool`.

use super::*;

impl Infer for Pool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let int8 = matches!(x.dtype, DType::I8 | DType::U8);
        if !(x.dtype.is_float() || (self.kind == PoolKind::Max && int8)) {
            return Err(cx.err(format!(
                "{} pooling does not support element type {}",
                self.kind.keyword(),
                x.dtype
            )));
        }
        if cx.num_outputs() > 2 || (cx.num_outputs() == 2 && self.kind != PoolKind::Max) {
            return Err(cx.err("only max pooling has a second (indices) output"));
        }
        if self.kernel_shape.is_empty() {
            return Err(cx.err("kernel_shape is required"));
        }
        if self.kind == PoolKind::Lp && self.p <= 0 {
            return Err(cx.err(format!("p must be positive, got {}", self.p)));
        }
        min_rank(cx, 0, 3)?;
        let n = spatial_rank(
            cx,
            &[0],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?
        .unwrap_or(self.kernel_shape.len());
        let kernel = kernel_dims(cx, &self.kernel_shape, None, n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            self.ceil_mode,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        dims.extend(sp);
        let y = tensor(x.dtype, dims.clone());
        let idx = tensor(DType::I64, dims);
        Ok([y, idx].into_iter().take(cx.num_outputs()).collect())
    }
}

impl Infer for GlobalPool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        require_float(cx, x.dtype)?;
        if self.kind == PoolKind::Lp && self.p <= 0 {
            return Err(cx.err(format!("p must be positive, got {}", self.p)));
        }
        let Some(r) = min_rank(cx, 0, 2)? else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        dims.resize(r, Dim::Known(1));
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for MaxUnpool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let idx = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        if idx.dtype != DType::I64 {
            return Err(cx.err(format!("indices must be i64, got {}", idx.dtype)));
        }
        if self.kernel_shape.is_empty() {
            return Err(cx.err("kernel_shape is required"));
        }
        min_rank(cx, 0, 3)?;
        let n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?
        .unwrap_or(self.kernel_shape.len());
        for i in 0..n + 2 {
            unify(cx, "the shapes of x and indices", &dim(x, i), &dim(idx, i))?;
        }
        let kernel = kernel_dims(cx, &self.kernel_shape, None, n)?;
        let attrs = window_attrs(&self.strides, &[], &self.pads, AutoPad::NotSet, false);
        attrs.check(n).map_err(|e| cx.err(e))?;
        if let Some(s) = cx.opt_tensor(2)? {
            if s.dtype != DType::I64 {
                return Err(cx.err(format!("output_shape must be i64, got {}", s.dtype)));
            }
            exact_rank(cx, 2, 1)?;
            unify(
                cx,
                "output_shape length and the input rank",
                &dim(s, 0),
                &Dim::Known(n as u64 + 2),
            )?;
            let dims = match cx.sym_value(2) {
                Some(v) if v.len() == n + 2 => v.iter().map(|s| s.to_dim()).collect(),
                _ => vec![Dim::Unknown; n + 2],
            };
            return Ok(vec![tensor(x.dtype, dims)]);
        }
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        for (i, k) in kernel.iter().enumerate() {
            let wnd = attrs.window(i, k.unwrap_or(1));
            let d = match dim(x, i + 2) {
                Dim::Known(len) => Dim::Known(
                    transposed_output(len, &wnd, 0, AutoPad::NotSet, None)
                        .map_err(|e| cx.err(e))?
                        .0,
                ),
                d @ Dim::Sym(_)
                    if wnd.stride == 1
                        && wnd.pad_begin.saturating_add(wnd.pad_end).checked_add(1)
                            == Some(wnd.kernel) =>
                {
                    d
                }
                _ => Dim::Unknown,
            };
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}
