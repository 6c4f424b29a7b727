//! Resampling kernels: `resize` (nearest by exact index selection for every dtype; linear and cubic,
//! optionally antialiased, separably one axis at a time in f64, as the ONNX reference does),
//! `grid_sample` (any spatial rank), `affine_grid` and `col2im`.

use carve_ir::DType;
use carve_ir::ops::movement::{
    AffineGrid, AspectPolicy, Col2Im, CoordMode, GridMode, GridPadding, GridSample, NearestMode,
    Resize, ResizeMode,
};

use super::layout::guard_dims;
use super::{index_map, norm_axes, one, take_fill, te};
use crate::interp::util::{self, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor, TensorError, strides};

/// A tensor of `dtype` from f64 results: integers round half to even and saturate (the reference's
/// `saturate_cast`), floats round to nearest.
fn from_f64_rounded(dtype: DType, shape: Vec<usize>, v: Vec<f64>) -> Result<Tensor, TensorError> {
    if dtype.is_int() {
        let r: Vec<f64> = v.iter().map(|x| x.round_ties_even()).collect();
        util::from_f64(dtype, shape, &r)
    } else {
        util::from_f64(dtype, shape, &v)
    }
}

/// Keys' cubic convolution weights of the four taps around a point at fraction `r` past tap 1.
pub(super) fn cubic_coeffs(r: f64, a: f64) -> Vec<f64> {
    let s = 1.0 - r;
    vec![
        ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
        ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
        ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0,
        ((a * (s + 1.0) - 5.0 * a) * (s + 1.0) + 8.0 * a) * (s + 1.0) - 4.0 * a,
    ]
}

fn normalized(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|x| x / s).collect()
}

/// Antialiased linear weights (a triangle filter stretched by `1 / scale` when downsampling).
pub(super) fn linear_aa(r: f64, scale: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let start = (-1.0 / scale).floor() as i64 + 1;
    let n = 2 - 2 * start;
    normalized(
        (start..start + n)
            .map(|i| (1.0 - ((i as f64 - r) * scale).abs()).clamp(0.0, 1.0))
            .collect(),
    )
}

/// Antialiased cubic weights.
fn cubic_aa(r: f64, scale: f64, a: f64) -> Vec<f64> {
    let scale = scale.min(1.0);
    let start = (-2.0 / scale).floor() as i64 + 1;
    let end = 2 - start;
    let w = |x: f64| {
        let x = x.abs();
        let (x2, x3) = (x * x, x * x * x);
        if x <= 1.0 {
            (a + 2.0) * x3 - (a + 3.0) * x2 + 1.0
        } else if x < 2.0 {
            a * x3 - 5.0 * a * x2 + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    };
    normalized((start..end).map(|i| w(scale * (i as f64 - r))).collect())
}

/// Source coordinate of output coordinate `y` along one axis, and whether it lies outside the input
/// (only `tf_crop_and_resize` extrapolates). Also used by code generators to build sampling tables.
pub fn source_coord(
    mode: CoordMode,
    y: f64,
    scale: f64,
    in_len: usize,
    out_len: usize,
    roi: (f64, f64),
) -> (f64, bool) {
    let inw = in_len as f64;
    let outw = scale * inw;
    let x = match mode {
        CoordMode::HalfPixel => (y + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / outw;
            let offset = inw / 2.0 * (1.0 - adjustment);
            offset + (y + 0.5) / scale - 0.5
        }
        CoordMode::PytorchHalfPixel => {
            if outw == 1.0 {
                -0.5
            } else {
                (y + 0.5) / scale - 0.5
            }
        }
        CoordMode::AlignCorners => {
            if outw == 1.0 {
                0.0
            } else {
                y * (inw - 1.0) / (outw - 1.0)
            }
        }
        CoordMode::Asymmetric => y / scale,
        CoordMode::TfHalfPixelForNn => (y + 0.5) / scale,
        CoordMode::TfCropAndResize => {
            let (s, e) = roi;
            let x = if outw == 1.0 {
                (e - s) * (inw - 1.0) / 2.0
            } else {
                y * (e - s) * (inw - 1.0) / (outw - 1.0)
            };
            let x = x + s * (inw - 1.0);
            return (x, x < 0.0 || x > inw - 1.0);
        }
    };
    (x, false)
}

/// The input index nearest-neighbour resize reads for source coordinate `x` on an axis of `n > 0`.
pub fn nearest_index(x: f64, mode: NearestMode, n: usize) -> usize {
    let xi = x.floor();
    let r = x - xi;
    let i = if r == 0.0 {
        x
    } else {
        match mode {
            NearestMode::RoundPreferFloor if r <= 0.5 => xi,
            NearestMode::RoundPreferCeil if r < 0.5 => xi,
            NearestMode::Floor => xi,
            _ => xi + 1.0,
        }
    };
    i.max(0.0).min((n - 1) as f64) as usize
}

/// Taps (clamped input indices) and weights of linear / cubic resize at source coordinate `x`.
pub fn taps(op: &Resize, x: f64, scale: f64, n: usize) -> (Vec<usize>, Vec<f64>) {
    let mut xi = x.floor();
    let mut r = x - xi;
    if r == 0.0 {
        // The reference keeps the ratio in (0, 1]: an exact hit is the right tap of the pair below it.
        r = 1.0;
        xi -= 1.0;
    }
    let a = f64::from(op.cubic_coeff_a);
    let mut w = match (op.mode, op.antialias) {
        (ResizeMode::Cubic, false) => cubic_coeffs(r, a),
        (ResizeMode::Cubic, true) => cubic_aa(r, scale, a),
        (_, false) => vec![1.0 - r, r],
        (_, true) => linear_aa(r, scale),
    };
    let k = w.len() as i64;
    let start = xi as i64 - k / 2 + 1;
    let raw: Vec<i64> = (0..k).map(|j| start + j).collect();
    if op.exclude_outside {
        for (wj, &i) in w.iter_mut().zip(&raw) {
            if i < 0 || i >= n as i64 {
                *wj = 0.0;
            }
        }
        let s: f64 = w.iter().sum();
        let s = if s == 0.0 { 1.0 } else { s };
        w.iter_mut().for_each(|x| *x /= s);
    }
    let idx = raw
        .iter()
        .map(|&i| i.clamp(0, n as i64 - 1) as usize)
        .collect();
    (idx, w)
}

/// Input `i` unless absent or empty (ONNX's "not given" for roi/scales/sizes).
fn given<'a>(cx: &EvalCtx<'a>, i: usize) -> Result<Option<&'a Tensor>, RunError> {
    Ok(cx.opt_tensor(i)?.filter(|t| !t.is_empty()))
}

fn isclose(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// `resize`.
pub(super) fn resize(op: &Resize, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let r = x.rank();
    let axes = if op.axes.is_empty() {
        (0..r).collect()
    } else {
        norm_axes(cx, &op.axes, r)?
    };
    let k = axes.len();
    let mut scale = vec![1.0f64; r];
    let mut out = x.shape.clone();
    match (given(cx, 2)?, given(cx, 3)?) {
        (Some(_), Some(_)) => return Err(cx.err("only one of scales and sizes may be given")),
        (None, None) => {
            return Err(cx.err("one of scales (input 2) and sizes (input 3) is required"));
        }
        (Some(s), None) => {
            let s = util::to_f64(s).map_err(|e| te(cx, e))?;
            if s.len() != k {
                return Err(cx.err(format!("scales has {} entries for {k} axes", s.len())));
            }
            for (&a, &v) in axes.iter().zip(&s) {
                let v32 = v as f32;
                if !(v32.is_finite() && v32 > 0.0) {
                    return Err(cx.err(format!("scales must be positive, got {v}")));
                }
                scale[a] = f64::from(v32);
                // onnxruntime: trunc(scale · dim) in f32.
                out[a] = (v32 * x.shape[a] as f32) as usize;
            }
        }
        (None, Some(_)) => {
            let sz = super::dims_of(cx, &cx.i64s(3)?, "sizes")?;
            if sz.len() != k {
                return Err(cx.err(format!("sizes has {} entries for {k} axes", sz.len())));
            }
            if op.keep_aspect_ratio_policy == AspectPolicy::Stretch {
                for (&a, &s) in axes.iter().zip(&sz) {
                    out[a] = s;
                    scale[a] = if x.shape[a] == 0 {
                        1.0
                    } else {
                        s as f64 / x.shape[a] as f64
                    };
                }
            } else {
                let mut one_scale: Option<f32> = None;
                for (&a, &s) in axes.iter().zip(&sz) {
                    let d = x.shape[a];
                    let q = if d == 0 { 1.0 } else { s as f32 / d as f32 };
                    one_scale = Some(match (one_scale, op.keep_aspect_ratio_policy) {
                        (None, _) => q,
                        (Some(p), AspectPolicy::NotLarger) => p.min(q),
                        (Some(p), _) => p.max(q),
                    });
                }
                let s = one_scale.unwrap_or(1.0);
                for &a in &axes {
                    scale[a] = f64::from(s);
                    out[a] = (s * x.shape[a] as f32).round().max(0.0) as usize;
                }
            }
        }
    }
    guard_dims(cx, &out)?;
    let mut roi: Vec<(f64, f64)> = vec![(0.0, 1.0); r];
    let mut has_roi = false;
    if op.coordinate_transformation_mode == CoordMode::TfCropAndResize
        && let Some(t) = given(cx, 1)?
    {
        let v = util::to_f64(t).map_err(|e| te(cx, e))?;
        if v.len() != 2 * k {
            return Err(cx.err(format!(
                "roi has {} entries, expected {} (start and end for {k} axes)",
                v.len(),
                2 * k
            )));
        }
        for (i, &a) in axes.iter().enumerate() {
            roi[a] = (v[i], v[k + i]);
        }
        has_roi = true;
    }
    for &a in &axes {
        if x.shape[a] == 0 && out[a] > 0 {
            return Err(cx.err(format!("cannot resize empty dim {a} to {}", out[a])));
        }
    }
    let mode = op.coordinate_transformation_mode;
    if op.mode == ResizeMode::Nearest {
        let st = strides(&x.shape);
        let tables: Vec<Vec<Option<usize>>> = (0..r)
            .map(|a| {
                let trivial_roi = !has_roi || (isclose(roi[a].0, 0.0) && isclose(roi[a].1, 1.0));
                if isclose(scale[a], 1.0) && x.shape[a] == out[a] && trivial_roi {
                    return (0..out[a]).map(|y| Some(y * st[a])).collect();
                }
                (0..out[a])
                    .map(|y| {
                        let (c, ext) =
                            source_coord(mode, y as f64, scale[a], x.shape[a], out[a], roi[a]);
                        if ext {
                            None
                        } else {
                            Some(nearest_index(c, op.nearest_mode, x.shape[a]) * st[a])
                        }
                    })
                    .collect()
            })
            .collect();
        let idx = index_map(&out, &tables);
        let fill = from_f64_rounded(x.dtype(), vec![1], vec![f64::from(op.extrapolation_value)])
            .map(|t| t.data)
            .unwrap_or_else(|_| Data::zeros(x.dtype(), 1));
        let data = take_fill(&x.data, &idx, &fill).map_err(|e| te(cx, e))?;
        return one(Tensor::new(out, data).map_err(|e| te(cx, e))?);
    }
    let mut cur = util::to_f64(x).map_err(|e| te(cx, e))?;
    let mut shape = x.shape.clone();
    for &a in &axes {
        let (m_in, m_out) = (shape[a], out[a]);
        let trivial_roi = !has_roi || (isclose(roi[a].0, 0.0) && isclose(roi[a].1, 1.0));
        if isclose(scale[a], 1.0) && m_in == m_out && trivial_roi {
            continue;
        }
        let outer: usize = shape[..a].iter().product();
        let inner: usize = shape[a + 1..].iter().product();
        let plan: Vec<Option<(Vec<usize>, Vec<f64>)>> = (0..m_out)
            .map(|y| {
                let (c, ext) = source_coord(mode, y as f64, scale[a], m_in, m_out, roi[a]);
                (!ext).then(|| taps(op, c, scale[a], m_in))
            })
            .collect();
        let mut next = vec![0.0f64; outer * m_out * inner];
        for o in 0..outer {
            for (y, p) in plan.iter().enumerate() {
                let dst = &mut next[(o * m_out + y) * inner..(o * m_out + y + 1) * inner];
                match p {
                    None => dst.fill(f64::from(op.extrapolation_value)),
                    Some((idx, w)) => {
                        for (&i, &wi) in idx.iter().zip(w) {
                            let src = &cur[(o * m_in + i) * inner..(o * m_in + i + 1) * inner];
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d += wi * s;
                            }
                        }
                    }
                }
            }
        }
        cur = next;
        shape[a] = m_out;
    }
    one(from_f64_rounded(x.dtype(), out, cur).map_err(|e| te(cx, e))?)
}

/// Reflects `x` into `[lo, hi]` by bouncing off the borders (the reference's `_gs_reflect`).
pub(super) fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 { lo + r } else { hi - r }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / rng).trunc();
        let r = dx - n * rng;
        if n % 2.0 == 0.0 { hi - r } else { lo + r }
    } else {
        x
    }
}

/// `grid_sample`: samples input 0 `[N, C, spatial...]` at the normalized coordinates of the grid
/// `[N, out spatial..., k]` (grid component 0 addresses the last spatial dim).
pub(super) fn grid_sample(op: &GridSample, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let g = cx.tensor(1)?;
    let r = x.rank();
    if r < 3 {
        return Err(cx.err(format!("input must have rank ≥ 3, got {r}")));
    }
    let k = r - 2;
    if g.rank() != r || g.shape[r - 1] != k || g.shape[0] != x.shape[0] {
        return Err(cx.err(format!(
            "grid shape {:?} does not match input shape {:?}",
            g.shape, x.shape
        )));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let dims = &x.shape[2..];
    let mut shape = vec![n, c];
    shape.extend_from_slice(&g.shape[1..r - 1]);
    let total = checked_numel(&shape).map_err(|e| te(cx, e))?;
    let p: usize = g.shape[1..r - 1].iter().product();
    let xs = util::to_f64(x).map_err(|e| te(cx, e))?;
    let gs = util::to_f64(g).map_err(|e| te(cx, e))?;
    let single = g.dtype() != DType::F64;
    let ac = op.align_corners;
    let (lo, hi): (Vec<f64>, Vec<f64>) = dims
        .iter()
        .map(|&d| {
            if ac {
                (0.0, d as f64 - 1.0)
            } else {
                (-0.5, d as f64 - 0.5)
            }
        })
        .unzip();
    let plane: usize = dims.iter().product();
    let st = strides(dims);
    let mut outv = vec![0.0f64; total];
    // Per spatial dim: the taps (input index, or None for a zero) and weights of one sample point.
    let mut taps: Vec<Vec<(Option<usize>, f64)>> = vec![Vec::new(); k];
    for ni in 0..n {
        for pi in 0..p {
            for (i, tp) in taps.iter_mut().enumerate() {
                let len = dims[i];
                let v = gs[(ni * p + pi) * k + (k - 1 - i)];
                let mut xc = if single {
                    let (v, l) = (v as f32, len as f32);
                    f64::from(if ac {
                        (v + 1.0) / 2.0 * (l - 1.0)
                    } else {
                        ((v + 1.0) * l - 1.0) / 2.0
                    })
                } else if ac {
                    (v + 1.0) / 2.0 * (len as f64 - 1.0)
                } else {
                    ((v + 1.0) * len as f64 - 1.0) / 2.0
                };
                if op.mode == GridMode::Nearest {
                    xc = xc.round_ties_even();
                }
                if xc < lo[i] || xc > hi[i] {
                    match op.padding_mode {
                        GridPadding::Border => xc = xc.clamp(0.0, len as f64 - 1.0),
                        GridPadding::Reflection => xc = reflect(xc, lo[i], hi[i]),
                        GridPadding::Zeros => {}
                    }
                }
                let pixel = |j: i64| -> Option<usize> {
                    let d = len as i64;
                    if d == 0 {
                        return None;
                    }
                    match op.padding_mode {
                        GridPadding::Zeros => (0..d).contains(&j).then_some(j as usize),
                        GridPadding::Border => Some(j.clamp(0, d - 1) as usize),
                        GridPadding::Reflection => {
                            let m = reflect(j as f64, lo[i], hi[i]) as i64;
                            Some(m.clamp(0, d - 1) as usize)
                        }
                    }
                };
                tp.clear();
                match op.mode {
                    GridMode::Nearest => {
                        let j = if xc.is_finite() {
                            xc.trunc() as i64
                        } else {
                            -1
                        };
                        tp.push((pixel(j), 1.0));
                    }
                    GridMode::Linear => {
                        let x0 = xc.floor();
                        let t = xc - x0;
                        // (clamped far outside any input, so the taps below cannot overflow)
                        let x0 = if x0.is_finite() {
                            x0.clamp(-1e15, 1e15) as i64
                        } else {
                            -2
                        };
                        tp.push((pixel(x0), 1.0 - t));
                        tp.push((pixel(x0 + 1), t));
                    }
                    GridMode::Cubic => {
                        let x0 = xc.floor();
                        let t = xc - x0;
                        let x0 = if x0.is_finite() {
                            x0.clamp(-1e15, 1e15) as i64
                        } else {
                            -3
                        };
                        for (j, w) in cubic_coeffs(t, -0.75).into_iter().enumerate() {
                            tp.push((pixel(x0 - 1 + j as i64), w));
                        }
                    }
                }
            }
            for ci in 0..c {
                let base = (ni * c + ci) * plane;
                let mut acc = 0.0;
                let mut ctr = vec![0usize; k];
                'combos: loop {
                    let mut w = 1.0;
                    let mut off = Some(base);
                    for i in 0..k {
                        let (j, wi) = taps[i][ctr[i]];
                        w *= wi;
                        off = match (off, j) {
                            (Some(o), Some(j)) => Some(o + j * st[i]),
                            _ => None,
                        };
                    }
                    if let Some(o) = off {
                        acc += w * xs[o];
                    }
                    for i in (0..k).rev() {
                        ctr[i] += 1;
                        if ctr[i] < taps[i].len() {
                            continue 'combos;
                        }
                        ctr[i] = 0;
                    }
                    break;
                }
                outv[(ni * c + ci) * p + pi] = acc;
            }
        }
    }
    one(util::from_f64(x.dtype(), shape, &outv).map_err(|e| te(cx, e))?)
}

/// `affine_grid`: `theta[n] · [x, y, (z,) 1]` over the normalized output coordinates.
pub(super) fn affine_grid(op: &AffineGrid, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let theta = cx.tensor(0)?;
    let size = super::dims_of(cx, &cx.i64s(1)?, "size")?;
    if size.len() < 3 {
        return Err(cx.err("size must be [N, C, H, W] or [N, C, D, H, W]"));
    }
    let k = size.len() - 2;
    let n = size[0];
    if theta.shape != [n, k, k + 1] {
        return Err(cx.err(format!(
            "theta must be [{n}, {k}, {}] for size {size:?}, got {:?}",
            k + 1,
            theta.shape
        )));
    }
    let spatial = &size[2..];
    let mut shape = vec![n];
    shape.extend_from_slice(spatial);
    shape.push(k);
    guard_dims(cx, &shape)?;
    let th = util::to_f64(theta).map_err(|e| te(cx, e))?;
    let base = |i: usize, len: usize| -> f64 {
        if op.align_corners {
            if len <= 1 {
                -1.0
            } else {
                -1.0 + i as f64 * 2.0 / (len as f64 - 1.0)
            }
        } else {
            let step = 2.0 / len as f64;
            -1.0 + step / 2.0 + i as f64 * step
        }
    };
    let p: usize = spatial.iter().product();
    let sst = strides(spatial);
    let mut out = Vec::with_capacity(n * p * k);
    let mut v = vec![1.0f64; k + 1];
    for ni in 0..n {
        let t = &th[ni * k * (k + 1)..(ni + 1) * k * (k + 1)];
        for pi in 0..p {
            // Homogeneous point: spatial coordinates in reverse order (x = last dim), then 1.
            for (i, vi) in v.iter_mut().take(k).enumerate() {
                let d = k - 1 - i;
                *vi = base((pi / sst[d]) % spatial[d], spatial[d]);
            }
            for row in 0..k {
                out.push((0..=k).map(|j| t[row * (k + 1) + j] * v[j]).sum::<f64>());
            }
        }
    }
    one(util::from_f64(theta.dtype(), shape, &out).map_err(|e| te(cx, e))?)
}

/// `col2im`: sums the column blocks of `[N, C·∏block, L]` back into `[N, C, image...]`.
pub(super) fn col2im(op: &Col2Im, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let img = super::dims_of(cx, &cx.i64s(1)?, "image_shape")?;
    let blk = super::dims_of(cx, &cx.i64s(2)?, "block_shape")?;
    let k = img.len();
    if blk.len() != k || k == 0 {
        return Err(cx.err(format!(
            "block_shape {blk:?} and image_shape {img:?} must have one (non-zero) length"
        )));
    }
    let attr = |v: &[i64], def: i64, len: usize, what: &str| -> Result<Vec<i64>, RunError> {
        if v.is_empty() {
            return Ok(vec![def; len]);
        }
        if v.len() != len {
            return Err(cx.err(format!("{what} has {} entries, expected {len}", v.len())));
        }
        Ok(v.to_vec())
    };
    let dil = attr(&op.dilations, 1, k, "dilations")?;
    let pads = attr(&op.pads, 0, 2 * k, "pads")?;
    let strd = attr(&op.strides, 1, k, "strides")?;
    if dil.iter().chain(&strd).any(|&v| v <= 0) || pads.iter().any(|&v| v < 0) {
        return Err(cx.err("dilations and strides must be positive, pads non-negative"));
    }
    let [n, ck, l] = x.shape[..] else {
        return Err(cx.err(format!("input must be [N, C·∏block, L], got {:?}", x.shape)));
    };
    let kk = checked_numel(&blk).map_err(|e| te(cx, e))?;
    if kk == 0 || ck % kk != 0 {
        return Err(cx.err(format!(
            "input channels {ck} are not divisible by the block size {kk}"
        )));
    }
    let c = ck / kk;
    let mut cols = Vec::with_capacity(k);
    for i in 0..k {
        let span = i128::from(dil[i]) * (blk[i] as i128 - 1) + 1;
        let v = (img[i] as i128 + i128::from(pads[i]) + i128::from(pads[k + i]) - span)
            .div_euclid(i128::from(strd[i]))
            + 1;
        let v = usize::try_from(v)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| cx.err(format!("no sliding blocks fit along image dim {i}")))?;
        cols.push(v);
    }
    if checked_numel(&cols).ok() != Some(l) {
        return Err(cx.err(format!(
            "input has {l} blocks, the image and block shapes give {cols:?}"
        )));
    }
    let mut shape = vec![n, c];
    shape.extend_from_slice(&img);
    guard_dims(cx, &shape)?;
    let plane = checked_numel(&img).map_err(|e| te(cx, e))?;
    let xs = util::to_f64(x).map_err(|e| te(cx, e))?;
    let mut out = vec![0.0f64; n * c * plane];
    let (bst, cst, ist) = (strides(&blk), strides(&cols), strides(&img));
    for ni in 0..n {
        for ci in 0..c {
            let obase = (ni * c + ci) * plane;
            for b in 0..kk {
                let ibase = ((ni * c + ci) * kk + b) * l;
                for col in 0..l {
                    let mut off = Some(0usize);
                    for i in 0..k {
                        let o = ((b / bst[i]) % blk[i]) as i128;
                        let q = ((col / cst[i]) % cols[i]) as i128;
                        let pos =
                            q * i128::from(strd[i]) - i128::from(pads[i]) + o * i128::from(dil[i]);
                        off = match off {
                            Some(acc) if (0..img[i] as i128).contains(&pos) => {
                                Some(acc + pos as usize * ist[i])
                            }
                            _ => None,
                        };
                    }
                    if let Some(o) = off {
                        out[obase + o] += xs[ibase + col];
                    }
                }
            }
        }
    }
    one(from_f64_rounded(x.dtype(), shape, out).map_err(|e| te(cx, e))?)
}

/// The weight and reflection helpers, for unit tests.
#[cfg(test)]
pub(super) mod tests_support {
    pub(in crate::interp::movement) use super::{cubic_coeffs as cubic, linear_aa, reflect};
}
