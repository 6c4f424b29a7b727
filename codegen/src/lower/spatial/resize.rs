//! `resize` of the H and W axes of 4-D NCHW f32 tensors with compile-time scales or sizes.
//!
//! The per-axis sampling (source index and weight of every tap of every output row and column) is
//! computed at compile time exactly as the interpreter does (`runtime/src/interp/movement/resample.rs`,
//! called here at compile time). Nearest-neighbour resizes by integer factors (`out = in · f`, source index
//! `o / f`) expand each input row with vector shuffles and copy it to the repeated rows; every other
//! nearest / linear / cubic resize runs a table-driven kernel (row and column taps in the weights
//! blob). Work units are `(n, c)` planes.

use carve_ir::DType;
use carve_ir::ops::movement::{AspectPolicy, CoordMode, Resize, ResizeMode};
use carve_runtime::Data;
use carve_runtime::interp::movement::resize_sampling::{nearest_index, source_coord, taps};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::window::shuffle4;
use super::{fallback, fmadd, is_f32_in, tiles_for};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights, needs_constants};

/// Taps of one output index along an axis: (input index, weight).
type Taps = Vec<(usize, f64)>;

/// Select phase for `resize`.
pub(super) fn lower(
    info: &NodeInfo,
    op: &Resize,
    w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    if !is_f32_in(info, 0)? || info.out_dtype(0)? != DType::F32 {
        return fallback("resize: only f32 is native");
    }
    let x = info.in_shape(0)?;
    let out = info.out_shape(0)?;
    if x.len() != 4 || out.len() != 4 {
        return fallback("resize: only 4-D NCHW inputs are native");
    }
    if op.antialias && op.mode != ResizeMode::Nearest {
        return fallback("resize: antialiased filters are not native");
    }
    if op.coordinate_transformation_mode == CoordMode::TfCropAndResize {
        return fallback("resize: tf_crop_and_resize (roi, extrapolation) is not native");
    }
    let Some(scale) = scales(info, op, &x)? else {
        return Ok(needs_constants(
            &[1, 2, 3],
            "resize: scales/sizes are not compile-time constants of a supported type",
        ));
    };
    // N and C must be untouched.
    for a in 0..2 {
        if out[a] != x[a] || (scale[a] - 1.0).abs() > 1e-9 {
            return fallback("resize: resizing the batch or channel axis is not native");
        }
    }
    if x.iter().chain(&out).any(|&d| d == 0) {
        return fallback("resize: empty tensors are not native");
    }
    let bytes = |s: &[usize]| s.iter().product::<usize>() * 4;
    if bytes(&x) >= 1 << 31 || bytes(&out) >= 1 << 31 {
        return fallback("resize: tensors of 2 GiB or more are not native");
    }
    let th = axis_taps(op, scale[2], x[2], out[2]);
    let tw = axis_taps(op, scale[3], x[3], out[3]);
    let planes = x[0] * x[1];
    let geo = Geo {
        planes,
        ih: x[2],
        iw: x[3],
        oh: out[2],
        ow: out[3],
    };
    if let (Some(fh), Some(fw)) = (int_factor(&th, x[2], out[2]), int_factor(&tw, x[3], out[3])) {
        return Ok(Lowering::Native {
            in_place: None,
            emit: Box::new(move |e: &mut Emitter| emit_upsample(e, geo, fh, fw)),
        });
    }
    let kh = th[0].len();
    let kw = tw[0].len();
    let table = |w: &mut Weights, taps: &[Taps], stride: usize| {
        let mut b = Vec::new();
        for t in taps {
            for &(i, wt) in t {
                b.extend_from_slice(&((i * stride * 4) as i32).to_le_bytes());
                b.extend_from_slice(&(wt as f32).to_le_bytes());
            }
        }
        w.add_bytes(&b)
    };
    let rows = table(w, &th, x[3]);
    let cols = table(w, &tw, 1);
    let nearest = op.mode == ResizeMode::Nearest;
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| emit_table(e, geo, (rows, kh), (cols, kw), nearest)),
    })
}

/// Static sizes of one resize.
#[derive(Debug, Clone, Copy)]
struct Geo {
    planes: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
}

/// Per-axis scales as the interpreter derives them (None: not constant / unsupported).
fn scales(info: &NodeInfo, op: &Resize, x: &[usize]) -> Result<Option<Vec<f64>>, CodegenError> {
    let r = x.len();
    let axes: Vec<usize> = if op.axes.is_empty() {
        (0..r).collect()
    } else {
        let mut v = Vec::new();
        for &a in &op.axes {
            let a = if a < 0 { a + r as i64 } else { a };
            match usize::try_from(a) {
                Ok(a) if a < r => v.push(a),
                _ => return Err(info.err(format!("axis {a} out of range"))),
            }
        }
        v
    };
    let given = |i: usize| -> Option<Option<carve_runtime::Tensor>> {
        if !info.has_input(i) {
            return Some(None);
        }
        let t = info.const_tensor(i)?;
        Some((!t.is_empty()).then_some(t))
    };
    let (Some(sc), Some(sz)) = (given(2), given(3)) else {
        return Ok(None);
    };
    let mut scale = vec![1.0f64; r];
    match (sc, sz) {
        (Some(s), None) => {
            let Data::F32(v) = &s.data else {
                return Ok(None);
            };
            if v.len() != axes.len() {
                return Err(info.err("scales length differs from the axes"));
            }
            for (&a, &v) in axes.iter().zip(v) {
                scale[a] = f64::from(v);
            }
        }
        (None, Some(_)) => {
            let Some(sz) = info.const_i64s(3) else {
                return Ok(None);
            };
            if sz.len() != axes.len() {
                return Err(info.err("sizes length differs from the axes"));
            }
            if op.keep_aspect_ratio_policy == AspectPolicy::Stretch {
                for (&a, &s) in axes.iter().zip(&sz) {
                    scale[a] = if x[a] == 0 {
                        1.0
                    } else {
                        s as f64 / x[a] as f64
                    };
                }
            } else {
                let mut one: Option<f32> = None;
                for (&a, &s) in axes.iter().zip(&sz) {
                    let d = x[a];
                    let q = if d == 0 { 1.0 } else { s as f32 / d as f32 };
                    one = Some(match (one, op.keep_aspect_ratio_policy) {
                        (None, _) => q,
                        (Some(p), AspectPolicy::NotLarger) => p.min(q),
                        (Some(p), _) => p.max(q),
                    });
                }
                let s = one.unwrap_or(1.0);
                for &a in &axes {
                    scale[a] = f64::from(s);
                }
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(scale))
}

fn isclose(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Taps of every output index along one axis (identity axes get one tap of weight 1).
fn axis_taps(op: &Resize, scale: f64, m_in: usize, m_out: usize) -> Vec<Taps> {
    if isclose(scale, 1.0) && m_in == m_out {
        return (0..m_out).map(|o| vec![(o, 1.0)]).collect();
    }
    let mode = op.coordinate_transformation_mode;
    (0..m_out)
        .map(|o| {
            // tf_crop_and_resize (the only mode that reads the roi) falls back before this point.
            let (c, _) = source_coord(mode, o as f64, scale, m_in, m_out, (0.0, 1.0));
            match op.mode {
                ResizeMode::Nearest => vec![(nearest_index(c, op.nearest_mode, m_in), 1.0)],
                _ => {
                    let (idx, w) = taps(op, c, scale, m_in);
                    idx.into_iter().zip(w).collect()
                }
            }
        })
        .collect()
}

/// `Some(f)` when the axis is a nearest upsampling by integer factor `f`: `out = in · f` and output
/// `o` reads exactly input `o / f`.
fn int_factor(taps: &[Taps], m_in: usize, m_out: usize) -> Option<usize> {
    if !m_out.is_multiple_of(m_in) {
        return None;
    }
    let f = m_out / m_in;
    taps.iter()
        .enumerate()
        .all(|(o, t)| t.len() == 1 && t[0] == (o / f, 1.0))
        .then_some(f)
}

/// Work-unit range of a kernel: all units in one call when `n_tiles == 1`.
fn unit_range(kb: &mut Kb, n_tiles: u64, units: usize) -> (Value, Value) {
    if n_tiles == 1 {
        (kb.iconst(0), kb.iconst(units as i64))
    } else {
        (kb.begin, kb.end)
    }
}

/// Nearest upsampling by integer factors: each input row is expanded into its first output row, which
/// is then copied to the next `fh - 1` rows.
fn emit_upsample(e: &mut Emitter, g: Geo, fh: usize, fw: usize) -> Result<(), CodegenError> {
    let n_tiles = tiles_for(g.planes, g.oh * g.ow);
    let vec = e.target().f32_lanes() >= 4;
    e.kernel(n_tiles, move |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let (lo, hi) = unit_range(kb, n_tiles, g.planes);
        kb.for_range(lo, hi, 1, |kb, p| {
            let xp = kb.offset(x, p, (g.ih * g.iw * 4) as i64);
            let yp = kb.offset(y, p, (g.oh * g.ow * 4) as i64);
            kb.for_n(0, g.ih as i64, 1, |kb, iy| {
                let xr = kb.offset(xp, iy, (g.iw * 4) as i64);
                let yr = kb.offset(yp, iy, (fh * g.ow * 4) as i64);
                expand_row(kb, xr, yr, g.iw, fw, vec)?;
                for r in 1..fh {
                    let dst = kb.b.ins().iadd_imm_s(yr, (r * g.ow * 4) as i64);
                    kb.copy_bytes(dst, yr, (g.ow * 4) as i64)?;
                }
                Ok(())
            })
        })
    })
}

/// Writes `y[i·f + k] = x[i]` for `i < iw`, `k < f`.
fn expand_row(
    kb: &mut Kb,
    xr: Value,
    yr: Value,
    iw: usize,
    f: usize,
    vec: bool,
) -> Result<(), CodegenError> {
    let nv = if vec { iw / 4 } else { 0 };
    if nv > 0 {
        kb.for_n(0, nv as i64, 1, |kb, i| {
            let xa = kb.offset(xr, i, 16);
            let ya = kb.offset(yr, i, (16 * f) as i64);
            let v = kb.load(types::F32X4, xa, 0);
            match f {
                1 => kb.store(v, ya, 0),
                2 => {
                    let a = shuffle4(kb, v, v, [0, 0, 1, 1]);
                    let b = shuffle4(kb, v, v, [2, 2, 3, 3]);
                    kb.store(a, ya, 0);
                    kb.store(b, ya, 16);
                }
                _ if f.is_multiple_of(4) => {
                    for l in 0..4u8 {
                        let s = shuffle4(kb, v, v, [l; 4]);
                        for k in 0..f / 4 {
                            kb.store(s, ya, ((l as usize * f + 4 * k) * 4) as i32);
                        }
                    }
                }
                _ => {
                    for l in 0..4u8 {
                        let s = kb.b.ins().extractlane(v, l);
                        for k in 0..f {
                            kb.store(s, ya, ((l as usize * f + k) * 4) as i32);
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
    for i in nv * 4..iw {
        let s = kb.load(types::F32, xr, (i * 4) as i32);
        for k in 0..f {
            kb.store(s, yr, ((i * f + k) * 4) as i32);
        }
    }
    Ok(())
}

/// The general kernel: `y[oy][ox] = Σ_i wy_i · Σ_j wx_j · x[row_i][col_j]` with the taps read from the
/// row and column tables (8-byte records: i32 byte offset, f32 weight).
fn emit_table(
    e: &mut Emitter,
    g: Geo,
    rows: (WeightRef, usize),
    cols: (WeightRef, usize),
    nearest: bool,
) -> Result<(), CodegenError> {
    let (kh, kw) = (rows.1, cols.1);
    let n_tiles = tiles_for(g.planes, g.oh * g.ow * kh * kw);
    e.kernel(n_tiles, move |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let rt = kb.weight(rows.0);
        let ct = kb.weight(cols.0);
        let (lo, hi) = unit_range(kb, n_tiles, g.planes);
        kb.for_range(lo, hi, 1, |kb, p| {
            let xp = kb.offset(x, p, (g.ih * g.iw * 4) as i64);
            let yp = kb.offset(y, p, (g.oh * g.ow * 4) as i64);
            kb.for_n(0, g.oh as i64, 1, |kb, oy| {
                let rrec = kb.offset(rt, oy, (kh * 8) as i64);
                let mut rtaps = Vec::with_capacity(kh);
                for i in 0..kh {
                    let off = kb.load_ro(types::I32, rrec, (i * 8) as i32);
                    let off = kb.b.ins().sextend(types::I64, off);
                    let addr = kb.b.ins().iadd(xp, off);
                    let wt = kb.load_ro(types::F32, rrec, (i * 8 + 4) as i32);
                    rtaps.push((addr, wt));
                }
                let yr = kb.offset(yp, oy, (g.ow * 4) as i64);
                kb.for_n(0, g.ow as i64, 1, |kb, ox| {
                    let crec = kb.offset(ct, ox, (kw * 8) as i64);
                    let mut ctaps = Vec::with_capacity(kw);
                    for j in 0..kw {
                        let off = kb.load_ro(types::I32, crec, (j * 8) as i32);
                        let off = kb.b.ins().sextend(types::I64, off);
                        let wt = kb.load_ro(types::F32, crec, (j * 8 + 4) as i32);
                        ctaps.push((off, wt));
                    }
                    let v = if nearest {
                        let a = kb.b.ins().iadd(rtaps[0].0, ctaps[0].0);
                        kb.load(types::F32, a, 0)
                    } else {
                        let mut acc = None;
                        for &(ra, rw) in &rtaps {
                            let mut row = None;
                            for &(co, cw) in &ctaps {
                                let a = kb.b.ins().iadd(ra, co);
                                let v = kb.load(types::F32, a, 0);
                                row = Some(match row {
                                    None => kb.b.ins().fmul(v, cw),
                                    Some(r) => fmadd(kb, v, cw, r),
                                });
                            }
                            let row = row.ok_or_else(no_taps)?;
                            acc = Some(match acc {
                                None => kb.b.ins().fmul(row, rw),
                                Some(a) => fmadd(kb, row, rw, a),
                            });
                        }
                        acc.ok_or_else(no_taps)?
                    };
                    let ya = kb.offset(yr, ox, 4);
                    kb.store(v, ya, 0);
                    Ok(())
                })
            })
        })
    })
}

fn no_taps() -> CodegenError {
    CodegenError::Graph {
        msg: "resize axis without taps".into(),
    }
}
