//! Convolution kernels: `conv` (im2col + GEMM per group, blocked over output positions so the column
//! buffer stays small), `conv_transpose` (GEMM + col2im), `deform_conv` (im2col with bilinearly sampled,
//! masked columns) and `causal_conv` (stateful depthwise 1-d).

use carve_ir::ops::conv::{
    AutoPad, CausalActivation, CausalConv, Conv, ConvTranspose, DeformConv, Window,
    transposed_output,
};

use super::{
    Geometry, Real, attrs, axis_table, forward_geometry, kernel_of, next_index, numel, out_dtype,
    real_tensor, reals, strides_of, to_usize, unravel, wide,
};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// Most elements of one im2col/col2im column block (8 MiB of f32).
const COL_BLOCK: usize = 1 << 21;

/// Positive `group` as usize.
fn group_of(cx: &EvalCtx, group: i64) -> Result<usize, RunError> {
    usize::try_from(group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| cx.err(format!("group must be positive, got {group}")))
}

/// Checks that `x` and `w` are ranked `N, C, spatial..` alike.
fn check_ranks(cx: &EvalCtx, x: &Tensor, w: &Tensor) -> Result<(), RunError> {
    if x.rank() < 3 {
        return Err(cx.err(format!(
            "input must have rank ≥ 3 (N, C, spatial dims), got shape {:?}",
            x.shape
        )));
    }
    if w.rank() != x.rank() {
        return Err(cx.err(format!(
            "the weight {:?} must have the input's rank {}",
            w.shape,
            x.rank()
        )));
    }
    Ok(())
}

/// Checks an optional bias of length `m`.
fn check_bias(cx: &EvalCtx, b: Option<&Tensor>, m: usize) -> Result<(), RunError> {
    if let Some(b) = b
        && b.shape != [m]
    {
        return Err(cx.err(format!(
            "the bias must have shape [{m}] (one per output channel), got {:?}",
            b.shape
        )));
    }
    Ok(())
}

/// Columns per block for a column buffer of `rows` rows over `total` positions.
fn block_width(rows: usize, total: usize) -> usize {
    (COL_BLOCK / rows.max(1)).max(1).min(total.max(1))
}

/// Per axis and kernel offset, the index table of [`axis_table`] (`iter` positions mapped into `target`
/// positions).
fn tables(
    iter: &[usize],
    target: &[usize],
    kernel: &[usize],
    stride: &[usize],
    dilation: &[usize],
    pad_begin: &[i64],
) -> Vec<Vec<Vec<isize>>> {
    (0..iter.len())
        .map(|a| {
            (0..kernel[a])
                .map(|k| axis_table(iter[a], target[a], stride[a], dilation[a], pad_begin[a], k))
                .collect()
        })
        .collect()
}

/// For kernel offset `kv` and the flat `iter` positions `p0..p0+dst.len()`, the flat `target` offset each
/// position maps to (`-1` where any axis falls outside).
fn block_index(
    tabs: &[Vec<Vec<isize>>],
    kv: &[usize],
    target_strides: &[usize],
    iter: &[usize],
    p0: usize,
    o: &mut [usize],
    dst: &mut [isize],
) {
    unravel(p0, iter, o);
    for slot in dst.iter_mut() {
        let mut off = 0isize;
        for a in 0..iter.len() {
            let t = tabs[a][kv[a]][o[a]];
            if t < 0 {
                off = -1;
                break;
            }
            off += t * target_strides[a] as isize;
        }
        *slot = off;
        next_index(o, iter);
    }
}

fn add_bias<T: Real>(y: &mut [T], b: Option<&[T]>, m: usize, plane: usize) {
    let Some(b) = b else { return };
    if plane == 0 {
        return;
    }
    for (i, chunk) in y.chunks_mut(plane).enumerate() {
        let v = b[i % m];
        for e in chunk {
            *e += v;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// conv
// ---------------------------------------------------------------------------------------------------

/// `conv`: N-d grouped convolution.
pub(super) fn conv(op: &Conv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if wide(x.dtype()) {
        conv_t::<f64>(op, cx)
    } else {
        conv_t::<f32>(op, cx)
    }
}

fn conv_t<T: Real>(op: &Conv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let b = cx.opt_tensor(2)?;
    check_ranks(cx, x, w)?;
    let group = group_of(cx, op.group)?;
    let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
    if c % group != 0 || m % group != 0 || w.shape[1].checked_mul(group) != Some(c) {
        return Err(cx.err(format!(
            "input channels {c} and weight {:?} do not fit group {group}",
            w.shape
        )));
    }
    check_bias(cx, b, m)?;
    let kernel = kernel_of(cx, &op.kernel_shape, &w.shape)?;
    let a = attrs(&op.strides, &op.dilations, &op.pads, op.auto_pad, false);
    let g = forward_geometry(cx, &x.shape[2..], &kernel, &a)?;
    let mut shape = vec![n, m];
    shape.extend(&g.output);
    numel(cx, &shape)?;
    let xs = reals::<T>(cx, x)?;
    let ws = reals::<T>(cx, w)?;
    let bs = b.map(|b| reals::<T>(cx, b)).transpose()?;
    let y = conv_core(&xs, &ws, bs.as_deref(), n, c, m, group, &g);
    let dtype = out_dtype(cx, 0, x.dtype());
    Ok(vec![real_tensor(cx, dtype, shape, y)?.into()])
}

/// Grouped N-d convolution of `x[n, c, g.input..]` with `w[m, c/group, g.kernel..]` (+ `b[m]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_core<T: Real>(
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    g: &Geometry,
) -> Vec<T> {
    let (cg, mg) = (c / group, m / group);
    let kk: usize = g.kernel.iter().product();
    let in_sz: usize = g.input.iter().product();
    let out_sz: usize = g.output.iter().product();
    let rows = cg * kk;
    let mut y = vec![T::ZERO; n * m * out_sz];
    if y.is_empty() {
        return y;
    }
    // 1×1 kernels with unit strides and no padding read the input in place.
    let pointwise = kk == 1
        && g.stride.iter().all(|&s| s == 1)
        && g.pad_begin.iter().all(|&p| p == 0)
        && g.output == g.input;
    if pointwise {
        for ni in 0..n {
            for gi in 0..group {
                let xg = &x[(ni * c + gi * cg) * in_sz..];
                let wg = &w[gi * mg * rows..];
                let yg = &mut y[(ni * m + gi * mg) * out_sz..];
                T::gemm(mg, rows, out_sz, wg, rows, xg, in_sz, yg, out_sz, false);
            }
        }
        add_bias(&mut y, b, m, out_sz);
        return y;
    }
    let nd = g.input.len();
    let tabs = tables(
        &g.output,
        &g.input,
        &g.kernel,
        &g.stride,
        &g.dilation,
        &g.pad_begin,
    );
    let in_strides = strides_of(&g.input);
    let nb = block_width(rows, out_sz);
    let mut col = vec![T::ZERO; rows * nb];
    let mut idx = vec![0isize; kk * nb];
    let mut o = vec![0usize; nd];
    let mut kv = vec![0usize; nd];
    let mut p0 = 0;
    while p0 < out_sz {
        let bn = nb.min(out_sz - p0);
        kv.fill(0);
        for kf in 0..kk {
            block_index(
                &tabs,
                &kv,
                &in_strides,
                &g.output,
                p0,
                &mut o,
                &mut idx[kf * bn..(kf + 1) * bn],
            );
            next_index(&mut kv, &g.kernel);
        }
        for ni in 0..n {
            for gi in 0..group {
                let xg = &x[(ni * c + gi * cg) * in_sz..];
                for ci in 0..cg {
                    let xc = &xg[ci * in_sz..(ci + 1) * in_sz];
                    for kf in 0..kk {
                        let row = &mut col[(ci * kk + kf) * bn..(ci * kk + kf + 1) * bn];
                        for (dst, &i) in row.iter_mut().zip(&idx[kf * bn..(kf + 1) * bn]) {
                            *dst = if i >= 0 { xc[i as usize] } else { T::ZERO };
                        }
                    }
                }
                let wg = &w[gi * mg * rows..];
                let yg = &mut y[(ni * m + gi * mg) * out_sz + p0..];
                T::gemm(mg, rows, bn, wg, rows, &col, bn, yg, out_sz, false);
            }
        }
        p0 += bn;
    }
    add_bias(&mut y, b, m, out_sz);
    y
}

// ---------------------------------------------------------------------------------------------------
// conv_transpose
// ---------------------------------------------------------------------------------------------------

/// `conv_transpose`: N-d grouped transposed convolution.
pub(super) fn conv_transpose(op: &ConvTranspose, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if wide(x.dtype()) {
        conv_transpose_t::<f64>(op, cx)
    } else {
        conv_transpose_t::<f32>(op, cx)
    }
}

/// The geometry of a transposed conv: `g.input` are x's spatial dims, `g.output` the result's.
fn transposed_geometry(
    op: &ConvTranspose,
    cx: &EvalCtx,
    input: &[usize],
    kernel: &[usize],
) -> Result<Geometry, RunError> {
    let nd = input.len();
    let a = attrs(&op.strides, &op.dilations, &op.pads, op.auto_pad, false);
    a.check(nd).map_err(|e| cx.err(e))?;
    if kernel.len() != nd {
        return Err(cx.err(format!(
            "the kernel has {} spatial dims, the input {nd}",
            kernel.len()
        )));
    }
    if !op.output_padding.is_empty() && op.output_padding.len() != nd {
        return Err(cx.err(format!(
            "output_padding has {} values, expected {nd}",
            op.output_padding.len()
        )));
    }
    // Some exporters list N and C in output_shape too.
    let out_shape: &[i64] = if op.output_shape.len() == nd + 2 {
        &op.output_shape[2..]
    } else {
        &op.output_shape
    };
    if !out_shape.is_empty() && out_shape.len() != nd {
        return Err(cx.err(format!(
            "output_shape has {} values, expected {nd}",
            out_shape.len()
        )));
    }
    let mut g = Geometry {
        input: input.to_vec(),
        kernel: kernel.to_vec(),
        stride: Vec::new(),
        dilation: Vec::new(),
        pad_begin: Vec::new(),
        pad_end: Vec::new(),
        output: Vec::new(),
    };
    for i in 0..nd {
        let w: Window = a.window(i, kernel[i] as u64);
        let opad = op.output_padding.get(i).copied().unwrap_or(0);
        let opad = u64::try_from(opad)
            .map_err(|_| cx.err(format!("output_padding must not be negative, got {opad}")))?;
        let size = match out_shape.get(i) {
            Some(&s) => Some(
                u64::try_from(s)
                    .map_err(|_| cx.err(format!("output_shape must not be negative, got {s}")))?,
            ),
            None => None,
        };
        let (out, pb, pe) = transposed_output(input[i] as u64, &w, opad, op.auto_pad, size)
            .map_err(|e| cx.err(format!("spatial axis {i}: {e}")))?;
        g.stride.push(to_usize(cx, w.stride)?);
        g.dilation.push(to_usize(cx, w.dilation)?);
        g.pad_begin.push(pb);
        g.pad_end.push(pe);
        g.output.push(to_usize(cx, out)?);
    }
    Ok(g)
}

fn conv_transpose_t<T: Real>(op: &ConvTranspose, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let b = cx.opt_tensor(2)?;
    check_ranks(cx, x, w)?;
    let group = group_of(cx, op.group)?;
    let (n, c) = (x.shape[0], x.shape[1]);
    if w.shape[0] != c || c % group != 0 {
        return Err(cx.err(format!(
            "input channels {c} and weight {:?} do not fit group {group}",
            w.shape
        )));
    }
    let mg = w.shape[1];
    let m = mg
        .checked_mul(group)
        .ok_or_else(|| cx.err("output channel count overflows"))?;
    check_bias(cx, b, m)?;
    let kernel = kernel_of(cx, &op.kernel_shape, &w.shape)?;
    let g = transposed_geometry(op, cx, &x.shape[2..], &kernel)?;
    let mut shape = vec![n, m];
    shape.extend(&g.output);
    numel(cx, &shape)?;
    let xs = reals::<T>(cx, x)?;
    let ws = reals::<T>(cx, w)?;
    let bs = b.map(|b| reals::<T>(cx, b)).transpose()?;

    let cg = c / group;
    let kk: usize = g.kernel.iter().product();
    let in_sz: usize = g.input.iter().product();
    let out_sz: usize = g.output.iter().product();
    let rows = mg * kk;
    let mut y = vec![T::ZERO; n * m * out_sz];
    if !y.is_empty() && in_sz > 0 && rows > 0 {
        // Wᵀ per group: [mg·kk, cg].
        let mut wt = vec![T::ZERO; group * rows * cg];
        for gi in 0..group {
            for ci in 0..cg {
                for r in 0..rows {
                    wt[gi * rows * cg + r * cg + ci] = ws[(gi * cg + ci) * rows + r];
                }
            }
        }
        // Tables map input positions to output positions: o = s·stride - pad_begin + k·dilation.
        let tabs = tables(
            &g.input,
            &g.output,
            &g.kernel,
            &g.stride,
            &g.dilation,
            &g.pad_begin,
        );
        let out_strides = strides_of(&g.output);
        let nd = g.input.len();
        let nb = block_width(rows, in_sz);
        let mut col = vec![T::ZERO; rows * nb];
        let mut idx = vec![0isize; kk * nb];
        let mut o = vec![0usize; nd];
        let mut kv = vec![0usize; nd];
        let mut p0 = 0;
        while p0 < in_sz {
            let bn = nb.min(in_sz - p0);
            kv.fill(0);
            for kf in 0..kk {
                block_index(
                    &tabs,
                    &kv,
                    &out_strides,
                    &g.input,
                    p0,
                    &mut o,
                    &mut idx[kf * bn..(kf + 1) * bn],
                );
                next_index(&mut kv, &g.kernel);
            }
            for ni in 0..n {
                for gi in 0..group {
                    let xg = &xs[(ni * c + gi * cg) * in_sz + p0..];
                    let wg = &wt[gi * rows * cg..];
                    T::gemm(rows, cg, bn, wg, cg, xg, in_sz, &mut col, bn, false);
                    for mi in 0..mg {
                        let yc = &mut y[(ni * m + gi * mg + mi) * out_sz..][..out_sz];
                        for kf in 0..kk {
                            let src = &col[(mi * kk + kf) * bn..(mi * kk + kf + 1) * bn];
                            for (&v, &i) in src.iter().zip(&idx[kf * bn..(kf + 1) * bn]) {
                                if i >= 0 {
                                    yc[i as usize] += v;
                                }
                            }
                        }
                    }
                }
            }
            p0 += bn;
        }
    }
    add_bias(&mut y, bs.as_deref(), m, out_sz);
    let dtype = out_dtype(cx, 0, x.dtype());
    Ok(vec![real_tensor(cx, dtype, shape, y)?.into()])
}

// ---------------------------------------------------------------------------------------------------
// deform_conv
// ---------------------------------------------------------------------------------------------------

/// `deform_conv`: convolution whose taps are shifted by learned offsets (bilinear sampling, zero outside
/// the input) and optionally scaled by a mask.
pub(super) fn deform_conv(op: &DeformConv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if wide(x.dtype()) {
        deform_conv_t::<f64>(op, cx)
    } else {
        deform_conv_t::<f32>(op, cx)
    }
}

fn deform_conv_t<T: Real>(op: &DeformConv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let offset = cx.tensor(2)?;
    let b = cx.opt_tensor(3)?;
    let mask = cx.opt_tensor(4)?;
    check_ranks(cx, x, w)?;
    let group = group_of(cx, op.group)?;
    let og = usize::try_from(op.offset_group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| {
            cx.err(format!(
                "offset_group must be positive, got {}",
                op.offset_group
            ))
        })?;
    let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
    if c % group != 0 || m % group != 0 || w.shape[1].checked_mul(group) != Some(c) {
        return Err(cx.err(format!(
            "input channels {c} and weight {:?} do not fit group {group}",
            w.shape
        )));
    }
    if c % og != 0 {
        return Err(cx.err(format!(
            "input channels {c} are not divisible by offset_group {og}"
        )));
    }
    check_bias(cx, b, m)?;
    let kernel = kernel_of(cx, &op.kernel_shape, &w.shape)?;
    let a = attrs(&op.strides, &op.dilations, &op.pads, AutoPad::NotSet, false);
    let g = forward_geometry(cx, &x.shape[2..], &kernel, &a)?;
    let nd = g.input.len();
    let kk: usize = g.kernel.iter().product();
    let mut want = vec![n, og * kk * nd];
    want.extend(&g.output);
    if offset.shape != want {
        return Err(cx.err(format!(
            "offset must have shape {want:?} (N, offset_group·∏kernel·spatial rank, output dims), got {:?}",
            offset.shape
        )));
    }
    if let Some(mk) = mask {
        want[1] = og * kk;
        if mk.shape != want {
            return Err(cx.err(format!("mask must have shape {want:?}, got {:?}", mk.shape)));
        }
    }
    let mut shape = vec![n, m];
    shape.extend(&g.output);
    numel(cx, &shape)?;
    if nd > 16 {
        return Err(cx.err("deform_conv supports at most 16 spatial axes"));
    }
    let xs = reals::<T>(cx, x)?;
    let ws = reals::<T>(cx, w)?;
    let offs = reals::<T>(cx, offset)?;
    let masks = mask.map(|mk| reals::<T>(cx, mk)).transpose()?;
    let bs = b.map(|b| reals::<T>(cx, b)).transpose()?;

    let (cg, mg) = (c / group, m / group);
    let c_per_og = c / og;
    let in_sz: usize = g.input.iter().product();
    let out_sz: usize = g.output.iter().product();
    let rows = cg * kk;
    let corners = 1usize << nd;
    let in_strides = strides_of(&g.input);
    let mut y = vec![T::ZERO; n * m * out_sz];
    if !y.is_empty() {
        let nb = block_width(rows.max(corners * 2), out_sz);
        let mut col = vec![T::ZERO; rows * nb];
        // Per position of a block: `corners` (flat input offset, weight) pairs.
        let mut samp: Vec<(usize, T)> = vec![(0, T::ZERO); nb * corners];
        let mut o = vec![0usize; nd];
        let mut kv = vec![0usize; nd];
        let mut lo = vec![0i64; nd];
        let mut fr = vec![T::ZERO; nd];
        let mut p0 = 0;
        while p0 < out_sz {
            let bn = nb.min(out_sz - p0);
            for ni in 0..n {
                for gi in 0..group {
                    kv.fill(0);
                    for kf in 0..kk {
                        // Offset groups that share channels with this group.
                        let first = gi * cg / c_per_og;
                        let last = ((gi + 1) * cg - 1) / c_per_og;
                        for ogi in first..=last {
                            let ch = (ogi * kk + kf) * nd;
                            unravel(p0, &g.output, &mut o);
                            for j in 0..bn {
                                let p = p0 + j;
                                for ax in 0..nd {
                                    let base = (o[ax] * g.stride[ax]) as f64
                                        - g.pad_begin[ax] as f64
                                        + (kv[ax] * g.dilation[ax]) as f64;
                                    let d = offs[((ni * og * kk * nd) + ch + ax) * out_sz + p];
                                    let pos = base + d.f64();
                                    let f = pos.floor();
                                    lo[ax] = if f.is_finite() {
                                        f.clamp(-2.0, 1e15) as i64
                                    } else {
                                        -2
                                    };
                                    fr[ax] = T::of(pos - f);
                                }
                                let mval = masks.as_ref().map_or(T::ONE, |mk| {
                                    mk[(ni * og * kk + ogi * kk + kf) * out_sz + p]
                                });
                                for (cb, slot) in
                                    samp[j * corners..(j + 1) * corners].iter_mut().enumerate()
                                {
                                    let mut wgt = mval;
                                    let mut off = 0usize;
                                    for ax in 0..nd {
                                        let hi = cb >> ax & 1 == 1;
                                        let pos = lo[ax] + i64::from(hi);
                                        if pos < 0 || pos >= g.input[ax] as i64 {
                                            wgt = T::ZERO;
                                            break;
                                        }
                                        off += pos as usize * in_strides[ax];
                                        wgt *= if hi { fr[ax] } else { T::ONE - fr[ax] };
                                    }
                                    *slot = if wgt == T::ZERO {
                                        (0, T::ZERO)
                                    } else {
                                        (off, wgt)
                                    };
                                }
                                next_index(&mut o, &g.output);
                            }
                            let c_lo = (ogi * c_per_og).max(gi * cg);
                            let c_hi = ((ogi + 1) * c_per_og).min((gi + 1) * cg);
                            for ci in c_lo..c_hi {
                                let xc = &xs[(ni * c + ci) * in_sz..][..in_sz];
                                let r = (ci - gi * cg) * kk + kf;
                                let row = &mut col[r * bn..(r + 1) * bn];
                                for (j, dst) in row.iter_mut().enumerate() {
                                    let mut acc = T::ZERO;
                                    for &(off, wgt) in &samp[j * corners..(j + 1) * corners] {
                                        acc += wgt * xc[off];
                                    }
                                    *dst = acc;
                                }
                            }
                        }
                        next_index(&mut kv, &g.kernel);
                    }
                    let wg = &ws[gi * mg * rows..];
                    let yg = &mut y[(ni * m + gi * mg) * out_sz + p0..];
                    T::gemm(mg, rows, bn, wg, rows, &col, bn, yg, out_sz, false);
                }
            }
            p0 += bn;
        }
    }
    add_bias(&mut y, bs.as_deref(), m, out_sz);
    let dtype = out_dtype(cx, 0, x.dtype());
    Ok(vec![real_tensor(cx, dtype, shape, y)?.into()])
}

// ---------------------------------------------------------------------------------------------------
// causal_conv
// ---------------------------------------------------------------------------------------------------

/// `causal_conv`: depthwise causal 1-d conv over `past_state ++ x`, returning the output and the last
/// `k - 1` positions of the padded input as the new state.
pub(super) fn causal_conv(op: &CausalConv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let b = cx.opt_tensor(2)?;
    let past = cx.opt_tensor(3)?;
    let [bsz, c, l] = x.shape[..] else {
        return Err(cx.err(format!(
            "input must have rank 3 [B, C, L], got {:?}",
            x.shape
        )));
    };
    let [wc, 1, k] = w.shape[..] else {
        return Err(cx.err(format!(
            "weight must have shape [C, 1, K], got {:?}",
            w.shape
        )));
    };
    if wc != c || k == 0 {
        return Err(cx.err(format!(
            "weight {:?} does not match {c} channels (or the kernel is empty)",
            w.shape
        )));
    }
    check_bias(cx, b, c)?;
    let s = k - 1;
    if let Some(p) = past
        && p.shape != [bsz, c, s]
    {
        return Err(cx.err(format!(
            "past_state must have shape [{bsz}, {c}, {s}], got {:?}",
            p.shape
        )));
    }
    numel(cx, &[bsz, c, s.max(1)])?;
    let xs = reals::<f64>(cx, x)?;
    let ws = reals::<f64>(cx, w)?;
    let bs = b.map(|b| reals::<f64>(cx, b)).transpose()?;
    let ps = past.map(|p| reals::<f64>(cx, p)).transpose()?;
    let total = l + s;
    let mut y = vec![0.0f64; bsz * c * l];
    let mut state = vec![0.0f64; bsz * c * s];
    let mut padded = vec![0.0f64; total];
    for bc in 0..bsz * c {
        let ch = bc % c;
        padded[..s].fill(0.0);
        if let Some(ps) = &ps {
            padded[..s].copy_from_slice(&ps[bc * s..(bc + 1) * s]);
        }
        padded[s..].copy_from_slice(&xs[bc * l..(bc + 1) * l]);
        let wk = &ws[ch * k..(ch + 1) * k];
        let bias = bs.as_ref().map_or(0.0, |b| b[ch]);
        for t in 0..l {
            let mut acc = bias;
            for (j, &wv) in wk.iter().enumerate() {
                acc += wv * padded[t + j];
            }
            if op.activation != CausalActivation::None {
                let act = carve_ir::ops::activation::Activation::plain(op.activation);
                acc = crate::interp::activation::apply(&act, acc);
            }
            y[bc * l + t] = acc;
        }
        state[bc * s..(bc + 1) * s].copy_from_slice(&padded[total - s..]);
    }
    let dtype = out_dtype(cx, 0, x.dtype());
    let sdtype = out_dtype(cx, 1, x.dtype());
    let mut out: Vec<Value> = vec![real_tensor(cx, dtype, vec![bsz, c, l], y)?.into()];
    if cx.num_outputs() > 1 {
        out.push(real_tensor(cx, sdtype, vec![bsz, c, s], state)?.into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(input: &[usize], kernel: &[usize], stride: usize, pad: i64) -> Geometry {
        let nd = input.len();
        let output = input
            .iter()
            .zip(kernel)
            .map(|(&i, &k)| ((i as i64 + 2 * pad - k as i64) / stride as i64 + 1) as usize)
            .collect();
        Geometry {
            input: input.to_vec(),
            kernel: kernel.to_vec(),
            stride: vec![stride; nd],
            dilation: vec![1; nd],
            pad_begin: vec![pad; nd],
            pad_end: vec![pad; nd],
            output,
        }
    }

    /// Direct N-d convolution for cross-checking.
    fn naive(
        x: &[f64],
        w: &[f64],
        n: usize,
        c: usize,
        m: usize,
        group: usize,
        g: &Geometry,
    ) -> Vec<f64> {
        let (cg, mg) = (c / group, m / group);
        let in_sz: usize = g.input.iter().product();
        let out_sz: usize = g.output.iter().product();
        let kk: usize = g.kernel.iter().product();
        let nd = g.input.len();
        let mut y = vec![0.0; n * m * out_sz];
        for ni in 0..n {
            for mi in 0..m {
                let gi = mi / mg;
                for p in 0..out_sz {
                    let mut o = vec![0; nd];
                    unravel(p, &g.output, &mut o);
                    let mut acc = 0.0;
                    for ci in 0..cg {
                        for kf in 0..kk {
                            let mut kv = vec![0; nd];
                            unravel(kf, &g.kernel, &mut kv);
                            let mut off = 0usize;
                            let mut ok = true;
                            for a in 0..nd {
                                let i = (o[a] * g.stride[a] + kv[a] * g.dilation[a]) as i64
                                    - g.pad_begin[a];
                                if i < 0 || i >= g.input[a] as i64 {
                                    ok = false;
                                    break;
                                }
                                off = off * g.input[a] + i as usize;
                            }
                            if ok {
                                acc += x[(ni * c + gi * cg + ci) * in_sz + off]
                                    * w[(mi * cg + ci) * kk + kf];
                            }
                        }
                    }
                    y[(ni * m + mi) * out_sz + p] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn im2col_gemm_matches_direct_convolution_in_1d_2d_3d_with_groups() {
        for (input, kernel, stride, pad, c, m, group) in [
            (vec![7], vec![3], 2, 1, 4, 6, 2),
            (vec![5, 6], vec![3, 2], 1, 1, 3, 4, 1),
            (vec![5, 6], vec![3, 3], 2, 0, 4, 4, 4),
            (vec![4, 3, 5], vec![2, 2, 3], 1, 1, 2, 2, 1),
            (vec![4, 4], vec![1, 1], 1, 0, 3, 2, 1),
        ] {
            let g = geom(&input, &kernel, stride, pad);
            let n = 2;
            let in_sz: usize = input.iter().product();
            let kk: usize = kernel.iter().product();
            let x: Vec<f64> = (0..n * c * in_sz)
                .map(|i| ((i * 7) % 11) as f64 - 5.0)
                .collect();
            let w: Vec<f64> = (0..m * (c / group) * kk)
                .map(|i| ((i * 5) % 7) as f64 * 0.5 - 1.0)
                .collect();
            let got = conv_core(&x, &w, None, n, c, m, group, &g);
            let want = naive(&x, &w, n, c, m, group, &g);
            assert_eq!(got.len(), want.len());
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "{input:?} {kernel:?}: {a} vs {b}");
            }
        }
    }
}
