//! Normalizations as native f32 kernels: `batch_norm` (inference), `layer_norm` (with its mean and
//! inverse-standard-deviation outputs), `rms_norm`, `group_norm` and `instance_norm`.
//!
//! - `batch_norm` with constant parameters is folded at compile time into per-channel (or
//!   per-activation) `a = scale/√(var+ε)`, `b = bias − mean·a` (computed in f64, rounded once), and the
//!   kernel is `y = a·x + b`.
//! - `layer_norm`/`rms_norm` normalize contiguous rows of `prod(shape[axis..])` elements; constant
//!   scale/bias are broadcast to the row at compile time, run-time ones must already have the row's
//!   size. Statistics are two-pass (mean, then the mean squared deviation) in f32 with vector
//!   accumulators, as in the interpreter (which uses f64).
//! - `group_norm`/`instance_norm` normalize contiguous `[C/G, spatial]` blocks of `[N, C, ...]` input and
//!   then scale/shift per channel.
//!
//! Tiles are whole rows/blocks, so results do not depend on the thread count. Other element types,
//! `training_mode` and non-constant batch-norm parameters fall back to the interpreter.

use cranelift_codegen::ir::{InstBuilder, Value, types};

use carve_ir::ops::norm::{BatchNorm, LayerNorm, NormOp, RmsNorm};
use carve_ir::{DType, Op};

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::reduce::rows::{Accs, MIN_TILE_WORK, Tiling, row_chunks, row_unroll};
use crate::lower::reduce::vmath::{self, Comb};
use crate::lower::{EmitFn, Lowering, NodeInfo, WeightRef, Weights, needs_constants};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Norm(op) = info.op() else {
        return fallback("not a normalization op");
    };
    match op {
        NormOp::BatchNorm(b) => lower_batch_norm(info, b, w),
        NormOp::LayerNorm(l) => lower_layer_norm(info, l, w),
        NormOp::RmsNorm(r) => lower_rms_norm(info, r, w),
        NormOp::GroupNorm(g) => match usize::try_from(g.num_groups) {
            Ok(groups) if groups > 0 => lower_grouped(info, Some(groups), g.epsilon),
            _ => fallback(format!("num_groups = {} is not positive", g.num_groups)),
        },
        NormOp::InstanceNorm(i) => lower_grouped(info, None, i.epsilon),
        other => fallback(format!("no native kernel for {} yet", other.name())),
    }
}

fn fallback(msg: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(msg.into()))
}

fn nothing() -> Lowering {
    Lowering::Native {
        in_place: None,
        emit: Box::new(|_em: &mut Emitter| Ok(())),
    }
}

/// True if input `i` (when present) and every output are f32.
fn all_f32(info: &NodeInfo, inputs: &[usize]) -> Result<bool, CodegenError> {
    for &i in inputs {
        if info.has_input(i) && info.in_dtype(i)? != DType::F32 {
            return Ok(false);
        }
    }
    for k in 0..info.num_outputs() {
        if info.out_dtype(k)? != DType::F32 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where a per-row parameter vector lives.
#[derive(Debug, Clone, Copy)]
enum Param {
    /// Packed (broadcast) at compile time.
    Weight(WeightRef),
    /// A run-time input that already has the row's shape.
    Input(usize),
}

impl Param {
    fn addr(self, kb: &mut Kb) -> Result<Value, CodegenError> {
        match self {
            Param::Weight(r) => Ok(kb.weight(r)),
            Param::Input(i) => kb.input(i),
        }
    }
}

/// `p` (shape `pshape`) broadcast trailing-aligned to `target`, flattened; `None` if it does not
/// broadcast.
fn broadcast(p: &[f32], pshape: &[usize], target: &[usize]) -> Option<Vec<f32>> {
    if pshape.len() > target.len() {
        return None;
    }
    let lead = target.len() - pshape.len();
    let mut pstrides = vec![0usize; target.len()];
    let mut s = 1usize;
    for k in (0..pshape.len()).rev() {
        let t = target[lead + k];
        if pshape[k] == t {
            pstrides[lead + k] = if t == 1 { 0 } else { s };
        } else if pshape[k] != 1 {
            return None;
        }
        s *= pshape[k];
    }
    let n: usize = target.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; target.len()];
    for _ in 0..n {
        let off: usize = idx.iter().zip(&pstrides).map(|(i, s)| i * s).sum();
        out.push(*p.get(off)?);
        for d in (0..target.len()).rev() {
            idx[d] += 1;
            if idx[d] < target[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(out)
}

/// Parameter input `i` as a row of `target`'s elements: constants are broadcast and packed, run-time
/// inputs must have exactly `prod(target)` elements. `Err(reason)` when neither holds.
fn row_param(
    info: &NodeInfo,
    w: &mut Weights,
    i: usize,
    target: &[usize],
) -> Result<Result<Param, String>, CodegenError> {
    let shape = info.in_shape(i)?;
    if let Some(v) = info.const_f32s(i) {
        return Ok(match broadcast(&v, &shape, target) {
            Some(b) => Ok(Param::Weight(w.add_f32(&b))),
            None => Err(format!(
                "input {i} of shape {shape:?} does not broadcast to {target:?}"
            )),
        });
    }
    if shape.iter().product::<usize>() == target.iter().product::<usize>() {
        Ok(Ok(Param::Input(i)))
    } else {
        Ok(Err(format!(
            "input {i} is a run-time tensor of shape {shape:?} that would need broadcasting to {target:?}"
        )))
    }
}

// ---------------------------------------------------------------------------------------------------
// batch_norm
// ---------------------------------------------------------------------------------------------------

fn lower_batch_norm(
    info: &NodeInfo,
    op: &BatchNorm,
    w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    if op.training_mode {
        return fallback("batch_norm in training mode");
    }
    if !all_f32(info, &[0, 1, 2, 3, 4])? {
        return fallback("batch_norm of non-f32 tensors");
    }
    let shape = info.in_shape(0)?;
    if shape.len() < 2 {
        return Err(info.err("input 0 must have rank ≥ 2 ([N, C, ...])"));
    }
    let (n, c) = (shape[0], shape[1]);
    let spatial: usize = shape[2..].iter().product();
    if n * c * spatial == 0 {
        return Ok(nothing());
    }
    let per_sample = c * spatial;
    // Each parameter as given: per channel ([C]) or per activation (x.shape[1..]). They are only
    // expanded to per-activation values when one of them varies within a channel (ppocrv4_det's
    // batch norms over 160×160 planes would otherwise build 4 × 6.5M-element vectors).
    let mut params: Vec<Vec<f64>> = Vec::with_capacity(4);
    for i in 1..5 {
        let Some(v) = info.const_f32s(i) else {
            return Ok(needs_constants(
                &[1, 2, 3, 4],
                format!("batch_norm parameter (input {i}) is not a compile-time constant"),
            ));
        };
        let p = info.in_shape(i)?;
        if !((p.len() == 1 && p[0] == c && v.len() == c)
            || (p == shape[1..] && v.len() == per_sample))
        {
            return Err(info.err(format!(
                "input {i} has shape {p:?}; it must be [{c}] or {:?}",
                &shape[1..]
            )));
        }
        params.push(v.iter().map(|&x| f64::from(x)).collect());
    }
    let eps = f64::from(op.epsilon);
    // `y = a·x + b` with a = scale/√(var+ε) and b = bias − mean·a, per channel when every parameter
    // is per channel, else per activation.
    let len = if params.iter().all(|p| p.len() == c) {
        c
    } else {
        per_sample
    };
    let at = |p: &[f64], e: usize| if p.len() == len { p[e] } else { p[e / spatial] };
    let [scale, bias, mean, var] = &params[..] else {
        return Err(info.err("batch_norm needs 4 parameters"));
    };
    let (mut a, mut b) = (Vec::with_capacity(len), Vec::with_capacity(len));
    for e in 0..len {
        let k = at(scale, e) / (at(var, e) + eps).sqrt();
        a.push(k as f32);
        b.push((at(bias, e) - at(mean, e) * k) as f32);
    }
    // Per channel (splatted a, b over contiguous spatial rows) unless the rows are short or the
    // parameters vary within a channel.
    let uniform = |v: &[f32], ch: usize| {
        let r = &v[ch * spatial..(ch + 1) * spatial];
        r.iter().all(|x| x.to_bits() == r[0].to_bits())
    };
    let per_channel =
        spatial >= 16 && (len == c || (0..c).all(|ch| uniform(&a, ch) && uniform(&b, ch)));
    if per_channel && len != c {
        a = (0..c).map(|ch| a[ch * spatial]).collect();
        b = (0..c).map(|ch| b[ch * spatial]).collect();
    } else if !per_channel && len == c {
        a = (0..per_sample).map(|e| a[e / spatial]).collect();
        b = (0..per_sample).map(|e| b[e / spatial]).collect();
    }
    let emit: EmitFn = if per_channel {
        let ab: Vec<f32> = a.iter().zip(&b).flat_map(|(&x, &y)| [x, y]).collect();
        let wr = w.add_f32(&ab);
        Box::new(move |em: &mut Emitter| {
            let tiling = Tiling::new(n * c, spatial, MIN_TILE_WORK);
            em.kernel(tiling.tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let wp = kb.weight(wr);
                let u = row_unroll(kb.target, spatial);
                tiling.for_items(kb, |kb, row| {
                    let cc = kb.iconst(c as i64);
                    let ch = kb.b.ins().urem(row, cc);
                    let pa = kb.offset(wp, ch, 8);
                    let av = kb.load_ro(types::F32, pa, 0);
                    let bv = kb.load_ro(types::F32, pa, 4);
                    let a4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, av));
                    let b4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, bv));
                    let p = kb.offset(x, row, (spatial * 4) as i64);
                    let q = kb.offset(y, row, (spatial * 4) as i64);
                    row_chunks(kb, spatial, u, &mut |kb, off, ty, _| {
                        let (aa, bb) = if ty.is_vector() {
                            (a4.unwrap_or(av), b4.unwrap_or(bv))
                        } else {
                            (av, bv)
                        };
                        let pa = kb.b.ins().iadd(p, off);
                        let v = kb.load(ty, pa, 0);
                        let r = vmath::mul_add(kb, v, aa, bb);
                        let qa = kb.b.ins().iadd(q, off);
                        kb.store(r, qa, 0);
                        Ok(())
                    })
                })
            })
        })
    } else {
        let wa = w.add_f32(&a);
        let wb = w.add_f32(&b);
        Box::new(move |em: &mut Emitter| {
            let tiling = Tiling::new(n, per_sample, MIN_TILE_WORK);
            em.kernel(tiling.tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let pa = kb.weight(wa);
                let pb = kb.weight(wb);
                let u = row_unroll(kb.target, per_sample);
                tiling.for_items(kb, |kb, s| {
                    let p = kb.offset(x, s, (per_sample * 4) as i64);
                    let q = kb.offset(y, s, (per_sample * 4) as i64);
                    row_chunks(kb, per_sample, u, &mut |kb, off, ty, _| {
                        let ad = kb.b.ins().iadd(pa, off);
                        let av = kb.load_ro(ty, ad, 0);
                        let bd = kb.b.ins().iadd(pb, off);
                        let bv = kb.load_ro(ty, bd, 0);
                        let xa = kb.b.ins().iadd(p, off);
                        let v = kb.load(ty, xa, 0);
                        let r = vmath::mul_add(kb, v, av, bv);
                        let qa = kb.b.ins().iadd(q, off);
                        kb.store(r, qa, 0);
                        Ok(())
                    })
                })
            })
        })
    };
    Ok(Lowering::Native {
        in_place: Some(0),
        emit,
    })
}

// ---------------------------------------------------------------------------------------------------
// Row statistics
// ---------------------------------------------------------------------------------------------------

/// Mean and `1/√(var + ε)` of the `n` contiguous f32 at `p` (two passes).
fn mean_inv_std(kb: &mut Kb, p: Value, n: usize, eps: f32) -> Result<(Value, Value), CodegenError> {
    let u = row_unroll(kb.target, n);
    let sum = Accs::new(kb, u, Comb::Add, 0.0);
    row_chunks(kb, n, u, &mut |kb, off, ty, slot| {
        let a = kb.b.ins().iadd(p, off);
        let v = kb.load(ty, a, 0);
        sum.add(kb, slot, v);
        Ok(())
    })?;
    let s = sum.finish(kb);
    let cnt = kb.f32const(n as f32);
    let mean = kb.b.ins().fdiv(s, cnt);
    let mean = vmath::pin(kb, mean);
    let mean4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, mean));
    let sq = Accs::new(kb, u, Comb::Add, 0.0);
    row_chunks(kb, n, u, &mut |kb, off, ty, slot| {
        let a = kb.b.ins().iadd(p, off);
        let v = kb.load(ty, a, 0);
        let m = if ty.is_vector() {
            mean4.unwrap_or(mean)
        } else {
            mean
        };
        let d = kb.b.ins().fsub(v, m);
        sq.step(kb, slot, |kb, acc| Ok(vmath::mul_add(kb, d, d, acc)))
    })?;
    let ss = sq.finish(kb);
    let var = kb.b.ins().fdiv(ss, cnt);
    let e = kb.f32const(eps);
    let ve = kb.b.ins().fadd(var, e);
    let sd = kb.b.ins().sqrt(ve);
    let one = kb.f32const(1.0);
    let inv = kb.b.ins().fdiv(one, sd);
    let inv = vmath::pin(kb, inv);
    Ok((mean, inv))
}

/// `y[j] = (x[j] − mean)·inv·s[j] (+ b[j])` over a row of `n` (scale/bias rows at `s`/`b`).
#[allow(clippy::too_many_arguments)]
fn normalize_row(
    kb: &mut Kb,
    p: Value,
    q: Value,
    n: usize,
    mean: Value,
    inv: Value,
    s: Value,
    b: Option<Value>,
) -> Result<(), CodegenError> {
    let u = row_unroll(kb.target, n);
    let m4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, mean));
    let i4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, inv));
    row_chunks(kb, n, u, &mut |kb, off, ty, _| {
        let (m, iv) = if ty.is_vector() {
            (m4.unwrap_or(mean), i4.unwrap_or(inv))
        } else {
            (mean, inv)
        };
        let xa = kb.b.ins().iadd(p, off);
        let v = kb.load(ty, xa, 0);
        let d = kb.b.ins().fsub(v, m);
        let t = kb.b.ins().fmul(d, iv);
        let sa = kb.b.ins().iadd(s, off);
        let sv = kb.load(ty, sa, 0);
        let r = match b {
            Some(b) => {
                let ba = kb.b.ins().iadd(b, off);
                let bv = kb.load(ty, ba, 0);
                vmath::mul_add(kb, t, sv, bv)
            }
            None => kb.b.ins().fmul(t, sv),
        };
        let qa = kb.b.ins().iadd(q, off);
        kb.store(r, qa, 0);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------------
// layer_norm / rms_norm
// ---------------------------------------------------------------------------------------------------

/// `(rows, cols)` of a normalization over axes `axis..` of `shape`.
fn rows_cols(
    info: &NodeInfo,
    shape: &[usize],
    axis: i64,
) -> Result<(usize, usize, usize), CodegenError> {
    if shape.is_empty() {
        return Err(info.err("input 0 must have rank ≥ 1"));
    }
    let a = carve_ir::infer::normalize_axis(axis, shape.len()).map_err(|m| info.err(m))?;
    Ok((shape[..a].iter().product(), shape[a..].iter().product(), a))
}

fn lower_layer_norm(
    info: &NodeInfo,
    op: &LayerNorm,
    w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    if !all_f32(info, &[0, 1, 2])? {
        return fallback(format!(
            "layer_norm with non-f32 tensors (stash_type {})",
            op.stash_type
        ));
    }
    let shape = info.in_shape(0)?;
    let (rows, cols, a) = rows_cols(info, &shape, op.axis)?;
    if rows == 0 {
        return Ok(nothing());
    }
    if cols == 0 {
        return fallback("layer_norm over an empty row");
    }
    let target = &shape[a..];
    let scale = match row_param(info, w, 1, target)? {
        Ok(p) => p,
        Err(m) => return fallback(m),
    };
    let bias = if info.has_input(2) {
        match row_param(info, w, 2, target)? {
            Ok(p) => Some(p),
            Err(m) => return fallback(m),
        }
    } else {
        None
    };
    let n_stats = info.num_outputs().saturating_sub(1);
    let eps = op.epsilon;
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let tiling = Tiling::new(rows, cols * 3, MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let y = kb.output(0)?;
            let s = scale.addr(kb)?;
            let b = match bias {
                Some(b) => Some(b.addr(kb)?),
                None => None,
            };
            let stats: Vec<Value> = (0..n_stats)
                .map(|k| kb.output(1 + k))
                .collect::<Result<_, _>>()?;
            tiling.for_items(kb, |kb, r| {
                let p = kb.offset(x, r, (cols * 4) as i64);
                let q = kb.offset(y, r, (cols * 4) as i64);
                let (mean, inv) = mean_inv_std(kb, p, cols, eps)?;
                for (k, &o) in stats.iter().enumerate() {
                    let a = kb.offset(o, r, 4);
                    kb.store(if k == 0 { mean } else { inv }, a, 0);
                }
                normalize_row(kb, p, q, cols, mean, inv, s, b)
            })
        })
    };
    Ok(Lowering::Native {
        in_place: Some(0),
        emit: Box::new(emit),
    })
}

fn lower_rms_norm(
    info: &NodeInfo,
    op: &RmsNorm,
    w: &mut Weights,
) -> Result<Lowering, CodegenError> {
    if !all_f32(info, &[0, 1])? {
        return fallback("rms_norm with non-f32 tensors");
    }
    let shape = info.in_shape(0)?;
    let (rows, cols, a) = rows_cols(info, &shape, op.axis)?;
    if rows * cols == 0 {
        return Ok(nothing());
    }
    let scale = match row_param(info, w, 1, &shape[a..])? {
        Ok(p) => p,
        Err(m) => return fallback(m),
    };
    let eps = op.epsilon;
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let tiling = Tiling::new(rows, cols * 2, MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let y = kb.output(0)?;
            let s = scale.addr(kb)?;
            let u = row_unroll(kb.target, cols);
            tiling.for_items(kb, |kb, r| {
                let p = kb.offset(x, r, (cols * 4) as i64);
                let q = kb.offset(y, r, (cols * 4) as i64);
                let sq = Accs::new(kb, u, Comb::Add, 0.0);
                row_chunks(kb, cols, u, &mut |kb, off, ty, slot| {
                    let a = kb.b.ins().iadd(p, off);
                    let v = kb.load(ty, a, 0);
                    sq.step(kb, slot, |kb, acc| Ok(vmath::mul_add(kb, v, v, acc)))
                })?;
                let ss = sq.finish(kb);
                let cnt = kb.f32const(cols as f32);
                let ms = kb.b.ins().fdiv(ss, cnt);
                let e = kb.f32const(eps);
                let me = kb.b.ins().fadd(ms, e);
                let sd = kb.b.ins().sqrt(me);
                let one = kb.f32const(1.0);
                let inv = kb.b.ins().fdiv(one, sd);
                let inv = vmath::pin(kb, inv);
                let zero = kb.f32const(0.0);
                normalize_row(kb, p, q, cols, zero, inv, s, None)
            })
        })
    };
    Ok(Lowering::Native {
        in_place: Some(0),
        emit: Box::new(emit),
    })
}

// ---------------------------------------------------------------------------------------------------
// group_norm / instance_norm
// ---------------------------------------------------------------------------------------------------

/// Group normalization of `[N, C, ...]` input 0 with `groups` groups (`None`: one per channel, i.e.
/// instance normalization) and per-channel scale/bias (inputs 1, 2).
fn lower_grouped(
    info: &NodeInfo,
    groups: Option<usize>,
    eps: f32,
) -> Result<Lowering, CodegenError> {
    if !all_f32(info, &[0, 1, 2])? {
        return fallback("group/instance norm of non-f32 tensors");
    }
    let shape = info.in_shape(0)?;
    if shape.len() < 2 {
        return Err(info.err("input 0 must have rank ≥ 2 ([N, C, ...])"));
    }
    let (n, c) = (shape[0], shape[1]);
    let spatial: usize = shape[2..].iter().product();
    let g = groups.unwrap_or(c);
    if n * c * spatial == 0 {
        return Ok(nothing());
    }
    if g == 0 || c % g != 0 {
        return Err(info.err(format!("{c} channels cannot be split into {g} groups")));
    }
    for i in 1..3 {
        if info.in_shape(i)? != [c] {
            return Err(info.err(format!("input {i} must have shape [{c}]")));
        }
    }
    let cpg = c / g;
    let block = cpg * spatial;
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let tiling = Tiling::new(n * g, block * 3, MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let y = kb.output(0)?;
            let sp = kb.input(1)?;
            let bp = kb.input(2)?;
            let u = row_unroll(kb.target, spatial);
            tiling.for_items(kb, |kb, item| {
                let p = kb.offset(x, item, (block * 4) as i64);
                let q = kb.offset(y, item, (block * 4) as i64);
                let (mean, inv) = mean_inv_std(kb, p, block, eps)?;
                let gg = kb.iconst(g as i64);
                let gi = kb.b.ins().urem(item, gg);
                let ch0 = kb.b.ins().imul_imm_s(gi, (cpg * 4) as i64);
                let s0 = kb.b.ins().iadd(sp, ch0);
                let b0 = kb.b.ins().iadd(bp, ch0);
                let m4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, mean));
                let i4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, inv));
                kb.for_n(0, cpg as i64, 1, |kb, k| {
                    let sa = kb.offset(s0, k, 4);
                    let sv = kb.load(types::F32, sa, 0);
                    let ba = kb.offset(b0, k, 4);
                    let bv = kb.load(types::F32, ba, 0);
                    let s4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, sv));
                    let b4 = (u > 0).then(|| kb.b.ins().splat(types::F32X4, bv));
                    let pr = kb.offset(p, k, (spatial * 4) as i64);
                    let qr = kb.offset(q, k, (spatial * 4) as i64);
                    row_chunks(kb, spatial, u, &mut |kb, off, ty, _| {
                        let pick = |v: Option<Value>, s: Value| {
                            if ty.is_vector() { v.unwrap_or(s) } else { s }
                        };
                        let (m, iv, s, b) =
                            (pick(m4, mean), pick(i4, inv), pick(s4, sv), pick(b4, bv));
                        let xa = kb.b.ins().iadd(pr, off);
                        let v = kb.load(ty, xa, 0);
                        let d = kb.b.ins().fsub(v, m);
                        let t = kb.b.ins().fmul(d, iv);
                        let r = vmath::mul_add(kb, t, s, b);
                        let qa = kb.b.ins().iadd(qr, off);
                        kb.store(r, qa, 0);
                        Ok(())
                    })
                })
            })
        })
    };
    Ok(Lowering::Native {
        in_place: Some(0),
        emit: Box::new(emit),
    })
}
