//! Interpreter kernels for the normalization op family (`carve_ir::ops::norm`): `batch_norm` (inference
//! and training mode), `layer_norm` (with its mean / inverse-standard-deviation outputs), `rms_norm`,
//! `group_norm`, `instance_norm`, `lrn` and `mean_var_norm`.
//!
//! Everything is computed in f64, whatever the input and `stash_type` element types, and rounded once
//! to each output's element type (as typed by the IR: statistics outputs have the stash type). Means and
//! variances are two-pass (mean first, then the mean squared deviation), and variances are the biased
//! (population) ones, as in ONNX.

use carve_ir::ops::norm::{
    BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Lrn, MeanVarNorm, NormOp, RmsNorm,
};

use super::reduce::{ReducedIndex, axes_mask, build_f64, f64s, norm_axis, out_dtype};
use super::util;
use super::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// Evaluates one normalization op.
pub fn eval(op: &NormOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        NormOp::BatchNorm(o) => batch_norm(o, cx),
        NormOp::LayerNorm(o) => layer_norm(o, cx),
        NormOp::RmsNorm(o) => rms_norm(o, cx),
        NormOp::GroupNorm(o) => group_norm(o, cx),
        NormOp::InstanceNorm(o) => instance_norm(o, cx),
        NormOp::Lrn(o) => lrn(o, cx),
        NormOp::MeanVarNorm(o) => mean_var_norm(o, cx),
    }
}

/// Input 0, which must have rank ≥ 2 (`[N, C, ...]`), with its channel count and spatial size.
fn nc_input<'a>(cx: &EvalCtx<'a>) -> Result<(&'a Tensor, usize, usize), RunError> {
    let x = cx.tensor(0)?;
    if x.rank() < 2 {
        return Err(cx.err(format!(
            "input 0 must have rank ≥ 2 ([N, C, ...]), got shape {:?}",
            x.shape
        )));
    }
    Ok((x, x.shape[1], x.shape[2..].iter().product()))
}

/// Mean and biased variance of `v`.
fn mean_var(v: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let (s, n) = v.clone().fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    let mean = s / n as f64;
    let var = v.map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
    (mean, var)
}

/// For each of the `prod(target)` positions of a tensor of shape `target`, the flat index of the element
/// of parameter input `i` that broadcasts to it (trailing-aligned, unidirectional).
fn broadcast_param(
    cx: &EvalCtx,
    i: usize,
    p: &Tensor,
    target: &[usize],
) -> Result<Vec<usize>, RunError> {
    let fits = p.rank() <= target.len()
        && p.shape
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(&d, &t)| d == 1 || d == t);
    if !fits {
        return Err(cx.err(format!(
            "input {i} of shape {:?} does not broadcast to the normalized shape {target:?}",
            p.shape
        )));
    }
    Ok(util::broadcast_index(target, &p.shape))
}

// ---------------------------------------------------------------------------------------------------
// batch_norm
// ---------------------------------------------------------------------------------------------------

/// How a batch-norm parameter lines up with the input's elements.
#[derive(Clone, Copy, PartialEq)]
enum ParamLayout {
    /// `[C]`: one value per channel.
    PerChannel,
    /// `x.shape[1..]`: one value per activation of a sample.
    PerActivation,
}

fn layout_of(cx: &EvalCtx, i: usize, p: &Tensor, x: &Tensor) -> Result<ParamLayout, RunError> {
    if p.rank() == 1 && p.shape[0] == x.shape[1] {
        Ok(ParamLayout::PerChannel)
    } else if p.shape == x.shape[1..] {
        Ok(ParamLayout::PerActivation)
    } else {
        Err(cx.err(format!(
            "input {i} has shape {:?}; it must be [C] = [{}] or the input's shape without N, {:?}",
            p.shape,
            x.shape[1],
            &x.shape[1..]
        )))
    }
}

fn batch_norm(op: &BatchNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (x, c, spatial) = nc_input(cx)?;
    let per_sample = c * spatial;
    let mut params = Vec::with_capacity(4);
    let mut layouts = Vec::with_capacity(4);
    for i in 1..5 {
        let p = cx.tensor(i)?;
        layouts.push(layout_of(cx, i, p, x)?);
        params.push(f64s(cx, p)?);
    }
    let index = |layout: ParamLayout, e: usize| match layout {
        ParamLayout::PerChannel => (e / spatial.max(1)) % c.max(1),
        ParamLayout::PerActivation => e % per_sample.max(1),
    };
    let v = f64s(cx, x)?;
    let eps = f64::from(op.epsilon);
    let (scale, bias) = (&params[0], &params[1]);
    let dtype = out_dtype(cx, 0, x.dtype());
    if !op.training_mode {
        let (mean, var) = (&params[2], &params[3]);
        let y: Vec<f64> = v
            .iter()
            .enumerate()
            .map(|(e, &xv)| {
                let m = mean[index(layouts[2], e)];
                let s = var[index(layouts[3], e)];
                scale[index(layouts[0], e)] * (xv - m) / (s + eps).sqrt()
                    + bias[index(layouts[1], e)]
            })
            .collect();
        return Ok(vec![Value::Tensor(build_f64(
            cx,
            dtype,
            x.shape.clone(),
            &y,
        )?)]);
    }
    // Training mode: statistics of the batch, one per slot of the running mean.
    let slots = params[2].len();
    let stat = layouts[2];
    let mut sum = vec![0f64; slots];
    let mut cnt = vec![0usize; slots];
    for (e, &xv) in v.iter().enumerate() {
        let k = index(stat, e);
        sum[k] += xv;
        cnt[k] += 1;
    }
    let bmean: Vec<f64> = sum.iter().zip(&cnt).map(|(s, &n)| s / n as f64).collect();
    let mut sq = vec![0f64; slots];
    for (e, &xv) in v.iter().enumerate() {
        let k = index(stat, e);
        sq[k] += (xv - bmean[k]) * (xv - bmean[k]);
    }
    let bvar: Vec<f64> = sq.iter().zip(&cnt).map(|(s, &n)| s / n as f64).collect();
    let y: Vec<f64> = v
        .iter()
        .enumerate()
        .map(|(e, &xv)| {
            let k = index(stat, e);
            scale[index(layouts[0], e)] * (xv - bmean[k]) / (bvar[k] + eps).sqrt()
                + bias[index(layouts[1], e)]
        })
        .collect();
    let mut out = vec![Value::Tensor(build_f64(cx, dtype, x.shape.clone(), &y)?)];
    let mom = f64::from(op.momentum);
    for (k, (running, batch)) in [(&params[2], &bmean), (&params[3], &bvar)]
        .into_iter()
        .enumerate()
        .take(cx.num_outputs().saturating_sub(1))
    {
        let updated: Vec<f64> = running
            .iter()
            .zip(batch)
            .map(|(r, b)| r * mom + b * (1.0 - mom))
            .collect();
        let p = cx.tensor(3 + k)?;
        let d = out_dtype(cx, 1 + k, p.dtype());
        out.push(Value::Tensor(build_f64(cx, d, p.shape.clone(), &updated)?));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// layer_norm / rms_norm
// ---------------------------------------------------------------------------------------------------

fn layer_norm(op: &LayerNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, op.axis, x.rank())?;
    let target = &x.shape[a..];
    let cols: usize = target.iter().product();
    let rows: usize = x.shape[..a].iter().product();
    let scale_t = cx.tensor(1)?;
    let scale_i = broadcast_param(cx, 1, scale_t, target)?;
    let scale = f64s(cx, scale_t)?;
    let bias = match cx.opt_tensor(2)? {
        Some(b) => Some((broadcast_param(cx, 2, b, target)?, f64s(cx, b)?)),
        None => None,
    };
    let v = f64s(cx, x)?;
    let eps = f64::from(op.epsilon);
    let mut y = vec![0f64; v.len()];
    let mut means = Vec::with_capacity(rows);
    let mut inv_stds = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &v[r * cols..(r + 1) * cols];
        let (mean, var) = mean_var(row.iter().copied());
        let inv = 1.0 / (var + eps).sqrt();
        for (j, &xv) in row.iter().enumerate() {
            let mut o = (xv - mean) * inv * scale[scale_i[j]];
            if let Some((bi, b)) = &bias {
                o += b[bi[j]];
            }
            y[r * cols + j] = o;
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let mut out = vec![Value::Tensor(build_f64(
        cx,
        out_dtype(cx, 0, x.dtype()),
        x.shape.clone(),
        &y,
    )?)];
    let stats_shape: Vec<usize> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if i < a { d } else { 1 })
        .collect();
    for (k, stats) in [means, inv_stds].iter().enumerate() {
        if 1 + k < cx.num_outputs() {
            let d = out_dtype(cx, 1 + k, op.stash_type);
            out.push(Value::Tensor(build_f64(cx, d, stats_shape.clone(), stats)?));
        }
    }
    Ok(out)
}

fn rms_norm(op: &RmsNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank ≥ 1"));
    }
    let a = norm_axis(cx, op.axis, x.rank())?;
    let target = &x.shape[a..];
    let cols: usize = target.iter().product();
    let rows: usize = x.shape[..a].iter().product();
    let scale_t = cx.tensor(1)?;
    let scale_i = broadcast_param(cx, 1, scale_t, target)?;
    let scale = f64s(cx, scale_t)?;
    let v = f64s(cx, x)?;
    let eps = f64::from(op.epsilon);
    let mut y = vec![0f64; v.len()];
    for r in 0..rows {
        let row = &v[r * cols..(r + 1) * cols];
        let ms = row.iter().map(|x| x * x).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (j, &xv) in row.iter().enumerate() {
            y[r * cols + j] = xv * inv * scale[scale_i[j]];
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        out_dtype(cx, 0, scale_t.dtype()),
        x.shape.clone(),
        &y,
    )?)])
}

// ---------------------------------------------------------------------------------------------------
// group_norm / instance_norm
// ---------------------------------------------------------------------------------------------------

/// Normalizes each of the `groups` channel groups of each sample of `[N, C, ...]` input 0 over its
/// channels and spatial positions, then applies per-channel `scale` (input 1) and `bias` (input 2).
fn grouped(cx: &EvalCtx, groups: usize, eps: f32) -> Result<Vec<Value>, RunError> {
    let (x, c, spatial) = nc_input(cx)?;
    if groups == 0 || c % groups != 0 {
        return Err(cx.err(format!("{c} channels cannot be split into {groups} groups")));
    }
    let mut params = Vec::with_capacity(2);
    for i in 1..3 {
        let p = cx.tensor(i)?;
        if p.rank() != 1 || p.shape[0] != c {
            return Err(cx.err(format!(
                "input {i} must have shape [C] = [{c}], got {:?}",
                p.shape
            )));
        }
        params.push(f64s(cx, p)?);
    }
    let v = f64s(cx, x)?;
    let eps = f64::from(eps);
    let block = (c / groups) * spatial;
    let mut y = vec![0f64; v.len()];
    if block > 0 {
        for (b, chunk) in v.chunks(block).enumerate() {
            let (mean, var) = mean_var(chunk.iter().copied());
            let inv = 1.0 / (var + eps).sqrt();
            for (j, &xv) in chunk.iter().enumerate() {
                let e = b * block + j;
                let ch = (e / spatial) % c;
                y[e] = (xv - mean) * inv * params[0][ch] + params[1][ch];
            }
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        out_dtype(cx, 0, x.dtype()),
        x.shape.clone(),
        &y,
    )?)])
}

fn group_norm(op: &GroupNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let groups = usize::try_from(op.num_groups).map_err(|_| {
        cx.err(format!(
            "num_groups must be positive, got {}",
            op.num_groups
        ))
    })?;
    grouped(cx, groups, op.epsilon)
}

fn instance_norm(op: &InstanceNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (_, c, _) = nc_input(cx)?;
    grouped(cx, c.max(1), op.epsilon)
}

// ---------------------------------------------------------------------------------------------------
// lrn
// ---------------------------------------------------------------------------------------------------

fn lrn(op: &Lrn, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (x, c, spatial) = nc_input(cx)?;
    let size = usize::try_from(op.size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| cx.err(format!("size must be positive, got {}", op.size)))?;
    // Channels c - ⌊(size−1)/2⌋ ..= c + ⌈(size−1)/2⌉, clipped to the valid range.
    let before = (size - 1) / 2;
    let after = (size - 1).div_ceil(2);
    let v = f64s(cx, x)?;
    let (alpha, beta, bias) = (f64::from(op.alpha), f64::from(op.beta), f64::from(op.bias));
    let mut y = vec![0f64; v.len()];
    let n = x.shape[0];
    for s in 0..n {
        for ch in 0..c {
            let lo = ch.saturating_sub(before);
            let hi = (ch + after).min(c - 1);
            for p in 0..spatial {
                let sq: f64 = (lo..=hi)
                    .map(|k| v[(s * c + k) * spatial + p].powi(2))
                    .sum();
                let e = (s * c + ch) * spatial + p;
                y[e] = v[e] / (bias + alpha / size as f64 * sq).powf(beta);
            }
        }
    }
    Ok(vec![Value::Tensor(build_f64(
        cx,
        out_dtype(cx, 0, x.dtype()),
        x.shape.clone(),
        &y,
    )?)])
}

// ---------------------------------------------------------------------------------------------------
// mean_var_norm
// ---------------------------------------------------------------------------------------------------

fn mean_var_norm(op: &MeanVarNorm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let mask = axes_mask(cx, &op.axes, x.rank())?;
    let slots: usize = x
        .shape
        .iter()
        .zip(&mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .product();
    let count = x
        .shape
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m)
        .map(|(&d, _)| d)
        .product::<usize>() as f64;
    let v = f64s(cx, x)?;
    let idx = || ReducedIndex::new(&x.shape, &mask);
    let mut mean = vec![0f64; slots];
    for (&xv, o) in v.iter().zip(idx()) {
        mean[o] += xv;
    }
    mean.iter_mut().for_each(|m| *m /= count);
    let mut var = vec![0f64; slots];
    for (&xv, o) in v.iter().zip(idx()) {
        var[o] += (xv - mean[o]) * (xv - mean[o]);
    }
    var.iter_mut().for_each(|s| *s /= count);
    // The ONNX function body: (x − E[x]) / (√Var[x] + 1e-9).
    let y: Vec<f64> = v
        .iter()
        .zip(idx())
        .map(|(&xv, o)| (xv - mean[o]) / (var[o].sqrt() + 1e-9))
        .collect();
    Ok(vec![Value::Tensor(build_f64(
        cx,
        out_dtype(cx, 0, x.dtype()),
        x.shape.clone(),
        &y,
    )?)])
}

#[cfg(test)]
mod tests {
    use carve_ir::DType;

    use super::super::reduce::testing::{as_f32, close, f32s, run_op};
    use super::*;
    use crate::tensor::Data;

    #[test]
    fn batch_norm_inference_and_training_statistics() {
        // x: N=2, C=2, one spatial position.
        let x = f32s(&[2, 2, 1], &[1.0, 10.0, 3.0, 30.0]);
        let p = |v: [f32; 2]| Some(f32s(&[2], &v));
        let inputs = || {
            vec![
                Some(x.clone()),
                p([2.0, 1.0]),
                p([0.5, 0.0]),
                p([1.0, 0.0]),
                p([4.0, 1.0]),
            ]
        };
        let op = BatchNorm {
            epsilon: 0.0,
            ..BatchNorm::default()
        };
        let out = run_op(op, inputs(), 1).unwrap();
        close(&as_f32(&out[0]), &[0.5, 10.0, 2.5, 30.0]);
        let train = BatchNorm {
            epsilon: 0.0,
            momentum: 0.5,
            training_mode: true,
        };
        let out = run_op(train, inputs(), 3).unwrap();
        // Channel 0: batch mean 2, var 1; channel 1: mean 20, var 100.
        close(&as_f32(&out[0]), &[-1.5, -1.0, 2.5, 1.0]);
        close(&as_f32(&out[1]), &[1.5, 10.0]);
        close(&as_f32(&out[2]), &[2.5, 50.5]);
    }

    #[test]
    fn layer_norm_outputs_statistics_in_the_stash_type() {
        let x = Tensor::new(
            vec![2, 2],
            Data::F16(
                [1.0f32, 3.0, -2.0, 2.0]
                    .iter()
                    .map(|&v| half::f16::from_f32(v))
                    .collect(),
            ),
        )
        .unwrap();
        let s = Tensor::new(vec![2], Data::F16(vec![half::f16::ONE; 2])).unwrap();
        let op = LayerNorm {
            epsilon: 0.0,
            ..LayerNorm::default()
        };
        let out = run_op(op, vec![Some(x), Some(s), None], 3).unwrap();
        assert_eq!(out[0].dtype(), DType::F16);
        assert_eq!(out[1].dtype(), DType::F32);
        assert_eq!(out[1].shape, vec![2, 1]);
        close(&as_f32(&out[1]), &[2.0, 0.0]);
        close(&as_f32(&out[2]), &[1.0, 0.5]);
    }

    #[test]
    fn rms_norm_scales_by_the_root_mean_square() {
        let x = f32s(&[1, 2], &[3.0, 4.0]);
        let s = f32s(&[2], &[1.0, 2.0]);
        let op = RmsNorm {
            epsilon: 0.0,
            ..RmsNorm::default()
        };
        let out = run_op(op, vec![Some(x), Some(s)], 1).unwrap();
        let rms = (12.5f32).sqrt();
        close(&as_f32(&out[0]), &[3.0 / rms, 8.0 / rms]);
    }

    #[test]
    fn group_norm_with_one_group_per_channel_is_instance_norm() {
        let x: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 * 0.3).collect();
        let x = f32s(&[2, 3, 4], &x);
        let s = f32s(&[3], &[1.0, 2.0, -1.0]);
        let b = f32s(&[3], &[0.0, 0.5, 1.0]);
        let ins = || vec![Some(x.clone()), Some(s.clone()), Some(b.clone())];
        let g = GroupNorm {
            num_groups: 3,
            ..GroupNorm::default()
        };
        let a = run_op(g, ins(), 1).unwrap();
        let i = run_op(InstanceNorm::default(), ins(), 1).unwrap();
        close(&as_f32(&a[0]), &as_f32(&i[0]));
        let bad = GroupNorm {
            num_groups: 2,
            ..GroupNorm::default()
        };
        assert!(run_op(bad, ins(), 1).is_err());
    }

    #[test]
    fn lrn_window_is_asymmetric_for_even_sizes() {
        // size 2: channel c sums channels c and c+1.
        let x = f32s(&[1, 3, 1], &[1.0, 2.0, 3.0]);
        let op = Lrn {
            size: 2,
            alpha: 2.0,
            beta: 1.0,
            bias: 1.0,
        };
        let out = run_op(op, vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[1.0 / 6.0, 2.0 / 14.0, 3.0 / 10.0]);
    }

    #[test]
    fn mean_var_norm_standardizes_over_its_axes() {
        let x = f32s(&[2, 2], &[1.0, 3.0, 5.0, 5.0]);
        let op = MeanVarNorm { axes: vec![1] };
        let out = run_op(op, vec![Some(x)], 1).unwrap();
        close(&as_f32(&out[0]), &[-1.0, 1.0, 0.0, 0.0]);
    }
}
