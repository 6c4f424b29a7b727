//! Inference of the convolutions: `conv`, `conv_transpose`, `deform_conv` and `causal_conv`.

use super::*;

// ---------------------------------------------------------------------------------------------------
// Inference
// ---------------------------------------------------------------------------------------------------

impl Infer for Conv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        // Quantized operands: the i32 accumulator type (see `ops::quant::typing`).
        let quant = crate::ops::quant::typing::conv_accumulator(cx)?;
        if quant.is_none() {
            require_float(cx, x.dtype)?;
            float_like(cx, 1, x.dtype)?;
            float_like(cx, 2, x.dtype)?;
        }
        let out_dtype = if quant.is_some() { DType::I32 } else { x.dtype };
        let group = positive_attr(cx, "group", self.group)?;
        min_rank(cx, 0, 3)?;
        min_rank(cx, 1, 3)?;
        let n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?;
        let m = dim(w, 0);
        divisible(cx, "the output channel count", &m, group)?;
        let wc = dim(w, 1).mul(&Dim::Known(group));
        unify(
            cx,
            "the input channels and weight dim 1 × group",
            &dim(x, 1),
            &wc,
        )?;
        let m = check_bias(cx, 2, &m)?;
        let Some(n) = n else {
            let mut t = TensorType::unranked(out_dtype);
            t.quant = quant;
            return Ok(vec![t.into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            false,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), m];
        dims.extend(sp);
        let mut t = TensorType::new(out_dtype, Shape(dims));
        t.quant = quant;
        Ok(vec![t.into()])
    }
}

impl Infer for ConvTranspose {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        float_like(cx, 2, x.dtype)?;
        let group = positive_attr(cx, "group", self.group)?;
        min_rank(cx, 0, 3)?;
        min_rank(cx, 1, 3)?;
        let mut n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
                ("output_padding", self.output_padding.len()),
            ],
        )?;
        // `output_shape` lists the spatial dims; some exporters include N and C as well.
        let out_shape: &[i64] = match n {
            Some(n) if self.output_shape.len() == n + 2 => &self.output_shape[2..],
            _ => &self.output_shape,
        };
        if !out_shape.is_empty() {
            match n {
                Some(m) if m != out_shape.len() => {
                    return Err(cx.err(format!(
                        "output_shape has {} values, expected {m}",
                        out_shape.len()
                    )));
                }
                _ => n = Some(out_shape.len()),
            }
            if let Some(v) = out_shape.iter().find(|&&v| v < 0) {
                return Err(cx.err(format!("output_shape values must not be negative, got {v}")));
            }
        }
        unify(
            cx,
            "the input channels and weight dim 0",
            &dim(x, 1),
            &dim(w, 0),
        )?;
        divisible(cx, "the input channel count", &dim(x, 1), group)?;
        let m = dim(w, 1).mul(&Dim::Known(group));
        let m = check_bias(cx, 2, &m)?;
        let Some(n) = n else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            false,
        );
        attrs.check(n).map_err(|e| cx.err(e))?;
        check_list("output_padding", &self.output_padding, n, 0).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), m];
        for (i, k) in kernel.iter().enumerate() {
            let wnd = attrs.window(i, k.unwrap_or(1));
            let op = self.output_padding.get(i).copied().unwrap_or(0) as u64;
            if let Some(&o) = out_shape.get(i) {
                dims.push(Dim::Known(o as u64));
                continue;
            }
            let d = match (dim(x, i + 2), k) {
                (Dim::Known(len), Some(_)) => Dim::Known(
                    transposed_output(len, &wnd, op, self.auto_pad, None)
                        .map_err(|e| cx.err(e))?
                        .0,
                ),
                (Dim::Known(len), None)
                    if matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) =>
                {
                    len.checked_mul(wnd.stride).map_or(Dim::Unknown, Dim::Known)
                }
                (d @ Dim::Sym(_), _)
                    if wnd.stride == 1
                        && matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) =>
                {
                    d
                }
                (d @ Dim::Sym(_), Some(_)) if wnd.stride == 1 => {
                    let pads = match self.auto_pad {
                        AutoPad::Valid => 0,
                        _ => wnd.pad_begin.saturating_add(wnd.pad_end),
                    };
                    let extent = wnd.extent().map_err(|e| cx.err(e))?;
                    if pads.checked_add(1) == extent.checked_add(op) {
                        d
                    } else {
                        Dim::Unknown
                    }
                }
                _ => Dim::Unknown,
            };
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for DeformConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        let offset = cx.tensor(2)?;
        require_float(cx, x.dtype)?;
        for i in 1..5 {
            float_like(cx, i, x.dtype)?;
        }
        let group = positive_attr(cx, "group", self.group)?;
        let offset_group = positive_attr(cx, "offset_group", self.offset_group)?;
        for i in [0, 1, 2, 4] {
            if cx.has_input(i) {
                min_rank(cx, i, 3)?;
            }
        }
        let n = spatial_rank(
            cx,
            &[0, 1, 2, 4],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?;
        let m = dim(w, 0);
        divisible(cx, "the output channel count", &m, group)?;
        let c = unify(
            cx,
            "the input channels and weight dim 1 × group",
            &dim(x, 1),
            &dim(w, 1).mul(&Dim::Known(group)),
        )?;
        divisible(cx, "the input channel count", &c, offset_group)?;
        let m = check_bias(cx, 3, &m)?;
        let mut batch = unify(
            cx,
            "the batch sizes of x and offset",
            &dim(x, 0),
            &dim(offset, 0),
        )?;
        let mask = cx.opt_tensor(4)?;
        if let Some(mask) = mask {
            batch = unify(cx, "the batch sizes of x and mask", &batch, &dim(mask, 0))?;
        }
        let Some(n) = n else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        // offset has offset_group·∏k·n channels, mask offset_group·∏k.
        if let Some(kprod) = kernel
            .iter()
            .try_fold(offset_group, |acc, k| acc.checked_mul((*k)?))
        {
            let want = kprod.checked_mul(n as u64).map_or(Dim::Unknown, Dim::Known);
            unify(
                cx,
                "offset channels and offset_group·∏kernel·spatial rank",
                &dim(offset, 1),
                &want,
            )?;
            if let Some(mask) = mask {
                unify(
                    cx,
                    "mask channels and offset_group·∏kernel",
                    &dim(mask, 1),
                    &Dim::Known(kprod),
                )?;
            }
        }
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            AutoPad::NotSet,
            false,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![batch, m];
        for (i, d) in sp.into_iter().enumerate() {
            let mut d = unify(
                cx,
                "the output size and the offset's spatial dims",
                &d,
                &dim(offset, i + 2),
            )?;
            if let Some(mask) = mask {
                d = unify(
                    cx,
                    "the output size and the mask's spatial dims",
                    &d,
                    &dim(mask, i + 2),
                )?;
            }
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for CausalConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        for i in 1..4 {
            float_like(cx, i, x.dtype)?;
        }
        exact_rank(cx, 0, 3)?;
        exact_rank(cx, 1, 3)?;
        exact_rank(cx, 3, 3)?;
        let mut c = unify(
            cx,
            "the input channels and weight dim 0",
            &dim(x, 1),
            &dim(w, 0),
        )?;
        unify(cx, "weight dim 1 (depthwise)", &dim(w, 1), &Dim::Known(1))?;
        c = check_bias(cx, 2, &c)?;
        let state = match dim(w, 2) {
            Dim::Known(0) => return Err(cx.err("the kernel size (weight dim 2) must be positive")),
            Dim::Known(k) => Dim::Known(k - 1),
            _ => Dim::Unknown,
        };
        let mut b = dim(x, 0);
        let mut state_dims = vec![b.clone(), c.clone(), state];
        if let Some(p) = cx.opt_tensor(3)? {
            b = unify(
                cx,
                "the batch sizes of input and past_state",
                &b,
                &dim(p, 0),
            )?;
            c = unify(cx, "the channels of input and past_state", &c, &dim(p, 1))?;
            let s = unify(
                cx,
                "past_state length and kernel size - 1",
                &state_dims[2],
                &dim(p, 2),
            )?;
            state_dims = vec![b.clone(), c.clone(), s];
        }
        let out = tensor(x.dtype, vec![b, c, dim(x, 2)]);
        let state = tensor(x.dtype, state_dims);
        Ok([out, state].into_iter().take(cx.num_outputs()).collect())
    }
}
