//! Region-of-interest kernels: `max_roi_pool` (Caffe/ONNX Runtime MaxRoiPool: rounded ROI corners,
//! floor/ceil bins) and `roi_align` (bilinear samples per bin, averaged or maxed, as the ONNX reference
//! and ONNX Runtime compute them).

use carve_ir::ops::conv::{MaxRoiPool, RoiAlign, RoiAlignMode, RoiCoordMode};

use super::{lowest, numel, out_dtype};
use crate::interp::util::{from_f64, to_f64};
use crate::interp::{EvalCtx, RunError, Value};

/// Checks `x[N, C, H, W]` and returns its dims.
fn image_dims(cx: &EvalCtx, shape: &[usize]) -> Result<[usize; 4], RunError> {
    match *shape {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(cx.err(format!(
            "input must have rank 4 [N, C, H, W], got {shape:?}"
        ))),
    }
}

fn batch_index(cx: &EvalCtx, b: f64, n: usize) -> Result<usize, RunError> {
    if b.is_finite() && b >= 0.0 && (b as usize) < n {
        Ok(b as usize)
    } else {
        Err(cx.err(format!("ROI batch index {b} is outside the batch of {n}")))
    }
}

fn positive(cx: &EvalCtx, name: &str, v: i64) -> Result<usize, RunError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| cx.err(format!("{name} must be positive, got {v}")))
}

/// `max_roi_pool`: `rois[R, 5]` rows are `(batch, x1, y1, x2, y2)`.
pub(super) fn max_roi_pool(op: &MaxRoiPool, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rois = cx.tensor(1)?;
    let [n, c, h, w] = image_dims(cx, &x.shape)?;
    let r = match rois.shape[..] {
        [r, 5] => r,
        _ => {
            return Err(cx.err(format!("rois must have shape [R, 5], got {:?}", rois.shape)));
        }
    };
    let [ph, pw] = op.pooled_shape[..] else {
        return Err(cx.err("pooled_shape must have 2 values"));
    };
    let (ph, pw) = (
        positive(cx, "pooled_shape[0]", ph)?,
        positive(cx, "pooled_shape[1]", pw)?,
    );
    let shape = vec![r, c, ph, pw];
    let total = numel(cx, &shape)?;
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let rs = to_f64(rois).map_err(|e| cx.err(e.0))?;
    let scale = f64::from(op.spatial_scale);
    let floor = lowest(x.dtype());
    let mut y = vec![0.0f64; total];
    for ri in 0..r {
        let roi = &rs[ri * 5..ri * 5 + 5];
        let b = batch_index(cx, roi[0], n)?;
        // Rounded corner coordinates, bounded so the bin arithmetic below cannot overflow.
        let corner = |v: f64| (v * scale).round().clamp(-1e12, 1e12) as i64;
        let (sw, sh, ew, eh) = (
            corner(roi[1]),
            corner(roi[2]),
            corner(roi[3]),
            corner(roi[4]),
        );
        let rh = (eh - sh + 1).max(1) as f64;
        let rw = (ew - sw + 1).max(1) as f64;
        let (bh, bw) = (rh / ph as f64, rw / pw as f64);
        for ci in 0..c {
            let plane = &xs[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
            for i in 0..ph {
                let hs = ((i as f64 * bh).floor() as i64 + sh).clamp(0, h as i64) as usize;
                let he = (((i + 1) as f64 * bh).ceil() as i64 + sh).clamp(0, h as i64) as usize;
                for j in 0..pw {
                    let ws = ((j as f64 * bw).floor() as i64 + sw).clamp(0, w as i64) as usize;
                    let we = (((j + 1) as f64 * bw).ceil() as i64 + sw).clamp(0, w as i64) as usize;
                    let out = &mut y[((ri * c + ci) * ph + i) * pw + j];
                    if he <= hs || we <= ws {
                        *out = 0.0;
                        continue;
                    }
                    let mut m = floor;
                    for yy in hs..he {
                        for &v in &plane[yy * w + ws..yy * w + we] {
                            if v > m {
                                m = v;
                            }
                        }
                    }
                    *out = m;
                }
            }
        }
    }
    let t = from_f64(out_dtype(cx, 0, x.dtype()), shape, &y).map_err(|e| cx.err(e.0))?;
    Ok(vec![t.into()])
}

/// One bilinear sample: four flat offsets into an `H×W` plane and their weights.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f64; 4],
}

/// The bilinear sample at `(y, x)` (zero weights outside `[-1, H] × [-1, W]`).
fn sample(h: usize, w: usize, mut y: f64, mut x: f64) -> Sample {
    let (hf, wf) = (h as f64, w as f64);
    if y < -1.0 || y > hf || x < -1.0 || x > wf || h == 0 || w == 0 {
        return Sample::default();
    }
    y = y.max(0.0);
    x = x.max(0.0);
    let mut yl = y as usize;
    let mut xl = x as usize;
    let yh;
    let xh;
    if yl >= h - 1 {
        yl = h - 1;
        yh = h - 1;
        y = yl as f64;
    } else {
        yh = yl + 1;
    }
    if xl >= w - 1 {
        xl = w - 1;
        xh = w - 1;
        x = xl as f64;
    } else {
        xh = xl + 1;
    }
    let (ly, lx) = (y - yl as f64, x - xl as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Sample {
        pos: [yl * w + xl, yl * w + xh, yh * w + xl, yh * w + xh],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

/// `roi_align`: `rois[R, 4]` rows are `(x1, y1, x2, y2)`, `batch_indices[R]` pick the image.
pub(super) fn roi_align(op: &RoiAlign, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let rois = cx.tensor(1)?;
    let bi = cx.i64s(2)?;
    let [n, c, h, w] = image_dims(cx, &x.shape)?;
    let r = match rois.shape[..] {
        [r, 4] if r == bi.len() => r,
        _ => {
            return Err(cx.err(format!(
                "rois must have shape [R, 4] with R = {} batch indices, got {:?}",
                bi.len(),
                rois.shape
            )));
        }
    };
    let oh = positive(cx, "output_height", op.output_height)?;
    let ow = positive(cx, "output_width", op.output_width)?;
    let ratio = usize::try_from(op.sampling_ratio).map_err(|_| {
        cx.err(format!(
            "sampling_ratio must not be negative, got {}",
            op.sampling_ratio
        ))
    })?;
    let shape = vec![r, c, oh, ow];
    let total = numel(cx, &shape)?;
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let rs = to_f64(rois).map_err(|e| cx.err(e.0))?;
    let scale = f64::from(op.spatial_scale);
    let half = op.coordinate_transformation_mode == RoiCoordMode::HalfPixel;
    let shift = if half { 0.5 } else { 0.0 };
    let mut y = vec![0.0f64; total];
    let mut samples: Vec<Sample> = Vec::new();
    for ri in 0..r {
        let b = usize::try_from(bi[ri])
            .ok()
            .filter(|&b| b < n)
            .ok_or_else(|| {
                cx.err(format!(
                    "batch index {} of ROI {ri} is outside the batch of {n}",
                    bi[ri]
                ))
            })?;
        let roi = &rs[ri * 4..ri * 4 + 4];
        let (sw, sh) = (roi[0] * scale - shift, roi[1] * scale - shift);
        let (ew, eh) = (roi[2] * scale - shift, roi[3] * scale - shift);
        let (mut rw, mut rh) = (ew - sw, eh - sh);
        if !half {
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (rh / oh as f64, rw / ow as f64);
        let grid = |len: f64, out: usize| -> Result<usize, RunError> {
            if ratio > 0 {
                return Ok(ratio);
            }
            let g = (len / out as f64).ceil();
            if !g.is_finite() || g > 1e6 {
                return Err(cx.err(format!("ROI {ri} needs too many samples per bin")));
            }
            Ok(g.max(0.0) as usize)
        };
        let (gh, gw) = (grid(rh, oh)?, grid(rw, ow)?);
        let per_bin = gh
            .checked_mul(gw)
            .ok_or_else(|| cx.err(format!("ROI {ri} needs too many samples")))?;
        let count = per_bin.max(1) as f64;
        let needed = per_bin
            .checked_mul(oh)
            .and_then(|v| v.checked_mul(ow))
            .filter(|&v| v <= 1 << 26)
            .ok_or_else(|| cx.err(format!("ROI {ri} needs too many samples")))?;
        samples.clear();
        samples.reserve(needed);
        for i in 0..oh {
            for j in 0..ow {
                for iy in 0..gh {
                    let yy = sh + i as f64 * bh + (iy as f64 + 0.5) * bh / gh as f64;
                    for ix in 0..gw {
                        let xx = sw + j as f64 * bw + (ix as f64 + 0.5) * bw / gw as f64;
                        samples.push(sample(h, w, yy, xx));
                    }
                }
            }
        }
        for ci in 0..c {
            let plane = &xs[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
            for bin in 0..oh * ow {
                let ss = &samples[bin * per_bin..(bin + 1) * per_bin];
                let val = match op.mode {
                    RoiAlignMode::Avg => {
                        ss.iter()
                            .map(|s| {
                                (0..4)
                                    .map(|k| s.w[k] * plane_at(plane, s.pos[k]))
                                    .sum::<f64>()
                            })
                            .sum::<f64>()
                            / count
                    }
                    RoiAlignMode::Max => ss
                        .iter()
                        .map(|s| {
                            (0..4)
                                .map(|k| s.w[k] * plane_at(plane, s.pos[k]))
                                .fold(f64::NEG_INFINITY, f64::max)
                        })
                        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
                        .unwrap_or(0.0),
                };
                y[(ri * c + ci) * oh * ow + bin] = val;
            }
        }
    }
    let t = from_f64(out_dtype(cx, 0, x.dtype()), shape, &y).map_err(|e| cx.err(e.0))?;
    Ok(vec![t.into()])
}

/// `plane[i]`, or 0 for an empty plane (zero-weight samples of a 0×0 image).
fn plane_at(plane: &[f64], i: usize) -> f64 {
    plane.get(i).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_sample_weights_sum_to_one_inside_and_clamp_at_edges() {
        let s = sample(4, 5, 1.25, 2.5);
        assert!((s.w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(s.pos[0], 5 + 2);
        // Beyond the last row/column the sample clamps to the edge pixel.
        let e = sample(4, 5, 3.5, 4.2);
        assert_eq!(e.pos, [19, 19, 19, 19]);
        // Far outside: all weights zero.
        assert_eq!(sample(4, 5, -1.5, 0.0).w, [0.0; 4]);
    }
}
