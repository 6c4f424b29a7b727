//! Pooling kernels: `pool` (max with optional argmax indices, avg, lp; N-d, dilations, ceil mode),
//! `global_pool` and `max_unpool`. Values are reduced in f64 and rounded once to the output dtype.

use carve_ir::DType;
use carve_ir::ops::conv::{AutoPad, transposed_output};
use carve_ir::ops::conv::{GlobalPool, MaxUnpool, Pool, PoolKind, StorageOrder, Window};

use super::{attrs, forward_geometry, lowest, next_index, numel, out_dtype, to_usize};
use crate::interp::util::{from_f64, from_i64, to_f64};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// Input dims `[N, C, spatial..]` with at least one spatial axis.
fn check_rank(cx: &EvalCtx, x: &Tensor, min: usize) -> Result<(), RunError> {
    if x.rank() < min {
        return Err(cx.err(format!(
            "input must have rank ≥ {min} (N, C, spatial dims), got shape {:?}",
            x.shape
        )));
    }
    Ok(())
}

fn tensor_of(cx: &EvalCtx, dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor, RunError> {
    from_f64(dtype, shape, v).map_err(|e| cx.err(e.0))
}

/// Positive kernel sizes from a required `kernel_shape` attribute.
fn kernel_attr(cx: &EvalCtx, k: &[i64]) -> Result<Vec<usize>, RunError> {
    if k.is_empty() {
        return Err(cx.err("kernel_shape is required"));
    }
    k.iter()
        .map(|&v| {
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| cx.err(format!("kernel_shape values must be positive, got {v}")))
        })
        .collect()
}

/// For output index `o` along one axis: `((first valid input index, number of valid taps), number of
/// taps inside the padded extent)`. Taps are at `o·stride - pad_begin + k·dilation`, `k < kernel`.
fn window_taps(
    o: usize,
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: i64,
    pad_end: i64,
) -> ((usize, usize), usize) {
    let (len, kernel, d) = (len as i128, kernel as i128, dilation as i128);
    let start = o as i128 * stride as i128 - i128::from(pad_begin);
    // Taps k with start + k·d < limit.
    let below = |limit: i128| -> i128 {
        if start >= limit {
            0
        } else {
            ((limit - 1 - start) / d + 1).min(kernel)
        }
    };
    // First tap with start + k·d >= 0.
    let k_lo = if start >= 0 { 0 } else { (-start + d - 1) / d };
    let k_hi = below(len);
    let count = (k_hi - k_lo).max(0);
    let first = if count > 0 { start + k_lo * d } else { 0 };
    (
        (first as usize, count as usize),
        below(len + i128::from(pad_end)) as usize,
    )
}

/// `pool`: sliding-window max/avg/lp pooling.
pub(super) fn pool(op: &Pool, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let dtype = x.dtype();
    let int8 = matches!(dtype, DType::I8 | DType::U8);
    if !(dtype.is_float() && dtype.bits() >= 16 || op.kind == PoolKind::Max && int8) {
        return Err(cx.err(format!(
            "{} pooling does not support element type {dtype}",
            op.kind.keyword()
        )));
    }
    check_rank(cx, x, 3)?;
    let kernel = kernel_attr(cx, &op.kernel_shape)?;
    let a = attrs(
        &op.strides,
        &op.dilations,
        &op.pads,
        op.auto_pad,
        op.ceil_mode,
    );
    let g = forward_geometry(cx, &x.shape[2..], &kernel, &a)?;
    let p = match op.kind {
        PoolKind::Lp => i32::try_from(op.p)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| cx.err(format!("p must be a positive integer, got {}", op.p)))?,
        _ => 1,
    };
    let nd = g.input.len();
    let (n, c) = (x.shape[0], x.shape[1]);
    let mut shape = vec![n, c];
    shape.extend(&g.output);
    let total = numel(cx, &shape)?;
    // Per axis and output index: the valid window taps as (first input index, count) — taps are
    // `dilation` apart — and the number of taps inside the (explicitly or automatically) padded extent.
    let mut valid: Vec<Vec<(usize, usize)>> = Vec::with_capacity(nd);
    let mut padded: Vec<Vec<usize>> = Vec::with_capacity(nd);
    for ax in 0..nd {
        let (va, pa) = (0..g.output[ax])
            .map(|o| {
                window_taps(
                    o,
                    g.input[ax],
                    g.kernel[ax],
                    g.stride[ax],
                    g.dilation[ax],
                    g.pad_begin[ax],
                    g.pad_end[ax],
                )
            })
            .unzip();
        valid.push(va);
        padded.push(pa);
    }
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let plane_in: usize = g.input.iter().product();
    let plane_out: usize = g.output.iter().product();
    // Index weights: row-major or column-major linearization of the spatial position.
    let mut lin = vec![0usize; nd];
    match op.storage_order {
        StorageOrder::RowMajor => {
            let mut s = 1;
            for ax in (0..nd).rev() {
                lin[ax] = s;
                s *= g.input[ax];
            }
        }
        StorageOrder::ColMajor => {
            let mut s = 1;
            for (l, &d) in lin.iter_mut().zip(&g.input) {
                *l = s;
                s *= d;
            }
        }
    }
    let in_strides = super::strides_of(&g.input);
    let want_idx = op.kind == PoolKind::Max && cx.num_outputs() > 1;
    let mut y = vec![0.0f64; total];
    let mut ind = if want_idx {
        vec![0i64; total]
    } else {
        Vec::new()
    };
    let floor = lowest(dtype);
    let mut o = vec![0usize; nd];
    let mut w = vec![0usize; nd];
    for nc in 0..n * c {
        let xp = &xs[nc * plane_in..(nc + 1) * plane_in];
        o.fill(0);
        for q in 0..plane_out {
            let taps: Vec<(usize, usize)> = (0..nd).map(|ax| valid[ax][o[ax]]).collect();
            let lens: Vec<usize> = taps.iter().map(|t| t.1).collect();
            let count: usize = lens.iter().product();
            let mut best: Option<(f64, usize)> = None;
            let mut sum = 0.0f64;
            if count > 0 {
                w.fill(0);
                loop {
                    let mut off = 0;
                    let mut li = 0;
                    for ax in 0..nd {
                        let i = taps[ax].0 + w[ax] * g.dilation[ax];
                        off += i * in_strides[ax];
                        li += i * lin[ax];
                    }
                    let v = xp[off];
                    match op.kind {
                        PoolKind::Max => {
                            if best.is_none_or(|(b, _)| v > b) && !v.is_nan() {
                                best = Some((v, li));
                            }
                        }
                        PoolKind::Avg => sum += v,
                        PoolKind::Lp => sum += v.abs().powi(p),
                    }
                    if !next_index(&mut w, &lens) {
                        break;
                    }
                }
            }
            let out = nc * plane_out + q;
            y[out] = match op.kind {
                PoolKind::Max => best.map_or(floor, |b| b.0),
                PoolKind::Avg => {
                    let div = if op.count_include_pad {
                        (0..nd).map(|ax| padded[ax][o[ax]]).product()
                    } else {
                        count
                    };
                    sum / div as f64
                }
                PoolKind::Lp => sum.powf(1.0 / f64::from(p)),
            };
            if want_idx {
                ind[out] = best.map_or(-1, |b| (nc * plane_in + b.1) as i64);
            }
            next_index(&mut o, &g.output);
        }
    }
    let mut outs: Vec<Value> =
        vec![tensor_of(cx, out_dtype(cx, 0, dtype), shape.clone(), &y)?.into()];
    if want_idx {
        outs.push(
            from_i64(DType::I64, shape, &ind)
                .map_err(|e| cx.err(e.0))?
                .into(),
        );
    }
    Ok(outs)
}

/// `global_pool`: max/avg/lp over all spatial positions of each `(n, c)` plane.
pub(super) fn global_pool(op: &GlobalPool, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let dtype = x.dtype();
    if !(dtype.is_float() && dtype.bits() >= 16) {
        return Err(cx.err(format!("expects a floating-point input, got {dtype}")));
    }
    check_rank(cx, x, 2)?;
    let p = match op.kind {
        PoolKind::Lp => i32::try_from(op.p)
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| cx.err(format!("p must be a positive integer, got {}", op.p)))?,
        _ => 1,
    };
    let (n, c) = (x.shape[0], x.shape[1]);
    numel(cx, &[n, c])?;
    let plane: usize = x.shape[2..].iter().product();
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let mut y = Vec::with_capacity(n * c);
    for nc in 0..n * c {
        let v = &xs[nc * plane..(nc + 1) * plane];
        y.push(match op.kind {
            PoolKind::Max => v
                .iter()
                .copied()
                .filter(|x| !x.is_nan())
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
                .unwrap_or(lowest(dtype)),
            PoolKind::Avg => v.iter().sum::<f64>() / plane as f64,
            PoolKind::Lp => v
                .iter()
                .map(|x| x.abs().powi(p))
                .sum::<f64>()
                .powf(1.0 / f64::from(p)),
        });
    }
    let mut shape = vec![n, c];
    shape.resize(x.rank(), 1);
    Ok(vec![
        tensor_of(cx, out_dtype(cx, 0, dtype), shape, &y)?.into(),
    ])
}

/// `max_unpool`: scatters `x` into a zero tensor at the flat positions `indices` (as produced by max
/// pooling of a tensor of the output's shape).
///
/// The output shape is the `output_shape` input when given, else the inverse of the pooling geometry.
/// Indices are flat offsets into the output tensor, as in ONNX Runtime and PyTorch; the ONNX reference
/// implementation instead addresses the default-shaped tensor and pads it, which only differs when an
/// explicit `output_shape` is larger than the default one.
pub(super) fn max_unpool(op: &MaxUnpool, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let indices = cx.tensor(1)?;
    let dtype = x.dtype();
    if !dtype.is_float() {
        return Err(cx.err(format!("expects a floating-point input, got {dtype}")));
    }
    check_rank(cx, x, 3)?;
    if indices.shape != x.shape {
        return Err(cx.err(format!(
            "indices {:?} must have the shape of x {:?}",
            indices.shape, x.shape
        )));
    }
    let kernel = kernel_attr(cx, &op.kernel_shape)?;
    let nd = x.rank() - 2;
    if kernel.len() != nd {
        return Err(cx.err(format!(
            "kernel_shape has {} values, expected {nd}",
            kernel.len()
        )));
    }
    let a = attrs(&op.strides, &[], &op.pads, AutoPad::NotSet, false);
    a.check(nd).map_err(|e| cx.err(e))?;
    let shape: Vec<usize> = match cx.opt_tensor(2)? {
        Some(_) => {
            let s = cx.i64s(2)?;
            if s.len() != x.rank() {
                return Err(cx.err(format!(
                    "output_shape has {} values, expected {}",
                    s.len(),
                    x.rank()
                )));
            }
            s.iter()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| {
                        cx.err(format!("output_shape values must not be negative, got {d}"))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        None => {
            let mut s = vec![x.shape[0], x.shape[1]];
            for (ax, &k) in kernel.iter().enumerate() {
                let w: Window = a.window(ax, k as u64);
                let (out, _, _) =
                    transposed_output(x.shape[ax + 2] as u64, &w, 0, AutoPad::NotSet, None)
                        .map_err(|e| cx.err(format!("spatial axis {ax}: {e}")))?;
                s.push(to_usize(cx, out)?);
            }
            s
        }
    };
    let total = numel(cx, &shape)?;
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let is = cx.i64s(1)?;
    let mut y = vec![0.0f64; total];
    for (&v, &i) in xs.iter().zip(&is) {
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| y.get_mut(i))
            .ok_or_else(|| {
                cx.err(format!(
                    "index {i} is outside the output of {total} elements"
                ))
            })?;
        *slot = v;
    }
    Ok(vec![
        tensor_of(cx, out_dtype(cx, 0, dtype), shape, &y)?.into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force version of [`window_taps`].
    fn taps(
        o: usize,
        len: usize,
        k: usize,
        s: usize,
        d: usize,
        pb: i64,
        pe: i64,
    ) -> ((usize, usize), usize) {
        let start = o as i64 * s as i64 - pb;
        let pos: Vec<i64> = (0..k as i64).map(|j| start + j * d as i64).collect();
        let valid: Vec<i64> = pos
            .iter()
            .copied()
            .filter(|&p| p >= 0 && p < len as i64)
            .collect();
        let padded = pos.iter().filter(|&&p| p < len as i64 + pe).count();
        let first = valid.first().map_or(0, |&p| p as usize);
        ((first, valid.len()), padded)
    }

    #[test]
    fn window_taps_count_valid_and_padded_positions() {
        for len in 1..7 {
            for k in 1..5 {
                for s in 1..4 {
                    for d in 1..4 {
                        for pb in 0..3 {
                            for pe in 0..3 {
                                for o in 0..6 {
                                    assert_eq!(
                                        window_taps(o, len, k, s, d, pb, pe),
                                        taps(o, len, k, s, d, pb, pe),
                                        "o={o} len={len} k={k} s={s} d={d} pads={pb},{pe}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
