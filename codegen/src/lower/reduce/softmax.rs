//! `softmax`, `log_softmax` and `hardmax` as native kernels: contiguous rows (`inner = 1`) or columns
//! around the axis.

use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::Variable;

use carve_ir::DType;
use carve_ir::ops::reduce::{ArgKind, Softmax, SoftmaxKind};

use super::aggregate::{Pre, block_pass};
use super::arg::{argbest, lane_addrs};
use super::rows::{Accs, MIN_TILE_WORK, Tiling, block_regs, lane_blocks, row_chunks, row_unroll};
use super::vmath::{self, Comb};
use super::{Cols, fallback, norm_axis, nothing, split_axis};
use crate::CodegenError;
use crate::emit::Emitter;
use crate::lower::{Lowering, NodeInfo};

// ---------------------------------------------------------------------------------------------------
// softmax / log_softmax / hardmax
// ---------------------------------------------------------------------------------------------------

pub(super) fn lower_softmax(info: &NodeInfo, s: &Softmax) -> Result<Lowering, CodegenError> {
    let (dt, out_dt) = (info.in_dtype(0)?, info.out_dtype(0)?);
    if dt != DType::F32 || out_dt != DType::F32 {
        return fallback(format!("softmax of {dt}: only f32 is native"));
    }
    let shape = info.in_shape(0)?;
    if shape.contains(&0) {
        return Ok(nothing());
    }
    let axis = if shape.is_empty() {
        0
    } else {
        norm_axis(info, s.axis, shape.len())?
    };
    let (outer, n, inner) = split_axis(&shape, axis, s.coerce_2d);
    let kind = s.kind;
    if kind == SoftmaxKind::Hardmax {
        return Ok(Lowering::Native {
            in_place: None,
            emit: Box::new(move |em| hardmax(em, outer, n, inner)),
        });
    }
    let log = kind == SoftmaxKind::LogSoftmax;
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        if inner == 1 {
            softmax_rows(em, outer, n, log)
        } else {
            softmax_cols(em, outer, n, inner, log)
        }
    };
    Ok(Lowering::Native {
        in_place: Some(0),
        emit: Box::new(emit),
    })
}

/// Softmax over contiguous rows of `n`: max, then `exp(x − max)` stored and summed, then scaled.
fn softmax_rows(em: &mut Emitter, outer: usize, n: usize, log: bool) -> Result<(), CodegenError> {
    let tiling = Tiling::new(outer, n * 4, MIN_TILE_WORK);
    em.kernel(tiling.tiles, |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let u = row_unroll(kb.target, n);
        tiling.for_items(kb, |kb, r| {
            let p = kb.offset(x, r, (n * 4) as i64);
            let q = kb.offset(y, r, (n * 4) as i64);
            // Pass 1: the maximum (NaN propagates).
            let mx = Accs::new(kb, u, Comb::Max, f32::NEG_INFINITY);
            row_chunks(kb, n, u, &mut |kb, off, ty, slot| {
                let a = kb.b.ins().iadd(p, off);
                let v = kb.load(ty, a, 0);
                mx.add(kb, slot, v);
                Ok(())
            })?;
            let m = mx.finish(kb);
            let m = vmath::pin(kb, m);
            let mv = (u > 0).then(|| kb.b.ins().splat(types::F32X4, m));
            // Pass 2: e = exp(x − m), stored (softmax) and summed.
            let sum = Accs::new(kb, u, Comb::Add, 0.0);
            row_chunks(kb, n, u, &mut |kb, off, ty, slot| {
                let a = kb.b.ins().iadd(p, off);
                let v = kb.load(ty, a, 0);
                let mm = if ty.is_vector() { mv.unwrap_or(m) } else { m };
                let d = kb.b.ins().fsub(v, mm);
                let e = vmath::exp(kb, ty, d);
                if !log {
                    let b = kb.b.ins().iadd(q, off);
                    kb.store(e, b, 0);
                }
                sum.add(kb, slot, e);
                Ok(())
            })?;
            let s = sum.finish(kb);
            // Pass 3: scale (softmax) or x − m − ln s (log_softmax).
            let f = if log {
                vmath::ln(kb, types::F32, s)
            } else {
                let one = kb.f32const(1.0);
                kb.b.ins().fdiv(one, s)
            };
            let f = vmath::pin(kb, f);
            let fv = (u > 0).then(|| kb.b.ins().splat(types::F32X4, f));
            row_chunks(kb, n, u, &mut |kb, off, ty, _slot| {
                let ff = if ty.is_vector() { fv.unwrap_or(f) } else { f };
                let b = kb.b.ins().iadd(q, off);
                let out = if log {
                    let a = kb.b.ins().iadd(p, off);
                    let v = kb.load(ty, a, 0);
                    let mm = if ty.is_vector() { mv.unwrap_or(m) } else { m };
                    let d = kb.b.ins().fsub(v, mm);
                    kb.b.ins().fsub(d, ff)
                } else {
                    let e = kb.load(ty, b, 0);
                    kb.b.ins().fmul(e, ff)
                };
                kb.store(out, b, 0);
                Ok(())
            })
        })
    })
}

/// Softmax along a strided axis: lane blocks of the `inner` contiguous lanes, three passes over the
/// axis each.
fn softmax_cols(
    em: &mut Emitter,
    outer: usize,
    n: usize,
    inner: usize,
    log: bool,
) -> Result<(), CodegenError> {
    let cols = Cols::new(outer, inner, n * 4);
    let row_bytes = (n * inner * 4) as i64;
    let axis = [(n, (inner * 4) as i64)];
    em.kernel(cols.tiling.tiles, |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        cols.emit(kb, &mut |kb, row, start, lanes| {
            let base = kb.b.ins().imul_imm_s(row, row_bytes);
            let base = kb.b.ins().iadd(base, start);
            let pin = kb.b.ins().iadd(x, base);
            let pout = kb.b.ins().iadd(y, base);
            lane_blocks(kb, lanes, &mut |kb, lb, w| {
                let (ty, regs) = block_regs(w);
                let pin = kb.b.ins().iadd(pin, lb);
                let pout = kb.b.ins().iadd(pout, lb);
                let m = block_pass(kb, pin, &axis, ty, regs, Comb::Max, Pre::Id, None)?;
                let m: Vec<Value> = m.into_iter().map(|v| vmath::pin(kb, v)).collect();
                // Pass 2: exp(x − m), stored and summed.
                let zero = vmath::splat(kb, ty, 0.0);
                let sums: Vec<Variable> = (0..regs)
                    .map(|_| {
                        let v = kb.b.declare_var(ty);
                        kb.b.def_var(v, zero);
                        v
                    })
                    .collect();
                let stride = (inner * 4) as i64;
                kb.for_n(0, n as i64, 1, |kb, j| {
                    let a = kb.offset(pin, j, stride);
                    let b = kb.offset(pout, j, stride);
                    for k in 0..regs {
                        let v = kb.load(ty, a, (16 * k) as i32);
                        let d = kb.b.ins().fsub(v, m[k]);
                        let e = vmath::exp(kb, ty, d);
                        if !log {
                            kb.store(e, b, (16 * k) as i32);
                        }
                        let s = kb.b.use_var(sums[k]);
                        let s = kb.b.ins().fadd(s, e);
                        kb.b.def_var(sums[k], s);
                    }
                    Ok(())
                })?;
                let f: Vec<Value> = sums
                    .iter()
                    .map(|&v| {
                        let s = kb.b.use_var(v);
                        let f = if log {
                            vmath::ln(kb, ty, s)
                        } else {
                            let one = vmath::splat(kb, ty, 1.0);
                            kb.b.ins().fdiv(one, s)
                        };
                        vmath::pin(kb, f)
                    })
                    .collect();
                kb.for_n(0, n as i64, 1, |kb, j| {
                    let a = kb.offset(pin, j, stride);
                    let b = kb.offset(pout, j, stride);
                    for k in 0..regs {
                        let o = (16 * k) as i32;
                        let out = if log {
                            let v = kb.load(ty, a, o);
                            let d = kb.b.ins().fsub(v, m[k]);
                            kb.b.ins().fsub(d, f[k])
                        } else {
                            let e = kb.load(ty, b, o);
                            kb.b.ins().fmul(e, f[k])
                        };
                        kb.store(out, b, o);
                    }
                    Ok(())
                })
            })
        })
    })
}

/// Hardmax: 1 at the first maximum of each lane (NaN above every number), 0 elsewhere. Scalar.
fn hardmax(em: &mut Emitter, outer: usize, n: usize, inner: usize) -> Result<(), CodegenError> {
    let tiling = Tiling::new(outer * inner, n, MIN_TILE_WORK);
    let stride = (inner * 4) as i64;
    em.kernel(tiling.tiles, |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        tiling.for_items(kb, |kb, item| {
            let (p, q) = lane_addrs(kb, x, y, item, n, inner);
            let best = argbest(kb, p, n, stride, types::F32, ArgKind::Max, false)?;
            let zero = kb.f32const(0.0);
            kb.for_n(0, n as i64, 1, |kb, j| {
                let b = kb.offset(q, j, stride);
                kb.store(zero, b, 0);
                Ok(())
            })?;
            let one = kb.f32const(1.0);
            let b = kb.offset(q, best, stride);
            kb.store(one, b, 0);
            Ok(())
        })
    })
}
