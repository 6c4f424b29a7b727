//! `reduce` of every kind as native kernels: f32 (rows or columns, see the family's doc in
//! [`super`]) and i32/i64 sum/max/min/prod (scalar, wrapping).

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value, types};
use cranelift_frontend::Variable;

use carve_ir::DType;
use carve_ir::ops::reduce::{Reduce, ReduceKind};

use super::rows::{
    self, Accs, MIN_TILE_WORK, Tiling, block_regs, lane_blocks, nest, row_chunks, row_unroll,
};
use super::vmath::{self, Comb};
use super::{Cols, Group, Layout, fallback, layout, loops, norm_axis, nothing};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo, needs_constants};

// ---------------------------------------------------------------------------------------------------
// reduce (f32)
// ---------------------------------------------------------------------------------------------------

/// The element-wise function applied before combining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pre {
    Id,
    Abs,
    Square,
    /// `exp(x − shift)`.
    ExpShift,
    /// `x` if finite, else −∞ (the log_sum_exp shift).
    Finite,
}

fn pre_of(kind: ReduceKind) -> (Comb, Pre) {
    match kind {
        ReduceKind::Max => (Comb::Max, Pre::Id),
        ReduceKind::Min => (Comb::Min, Pre::Id),
        ReduceKind::Prod => (Comb::Mul, Pre::Id),
        ReduceKind::L1 => (Comb::Add, Pre::Abs),
        ReduceKind::L2 | ReduceKind::SumSquare => (Comb::Add, Pre::Square),
        ReduceKind::LogSumExp => (Comb::Max, Pre::Finite),
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::LogSum => (Comb::Add, Pre::Id),
    }
}

/// An accumulator variable and, for vector max/min, its NaN-lane mask (see [`vmath::comb_fast`]).
#[derive(Clone, Copy)]
struct Acc {
    var: Variable,
    nan: Option<Variable>,
}

impl Acc {
    fn new(kb: &mut Kb, ty: Type, comb: Comb) -> Acc {
        let var = kb.b.declare_var(ty);
        let init = vmath::splat(kb, ty, comb.identity());
        kb.b.def_var(var, init);
        let nan = vmath::needs_nan_track(comb, ty).then(|| {
            let v = kb.b.declare_var(types::I32X4);
            let z = vmath::nan_mask_init(kb);
            kb.b.def_var(v, z);
            v
        });
        Acc { var, nan }
    }

    /// `acc = comb(acc, pre(x))`.
    fn step(self, kb: &mut Kb, comb: Comb, pre: Pre, ty: Type, x: Value, shift: Option<Value>) {
        let a = kb.b.use_var(self.var);
        let r = match pre {
            Pre::Square if comb == Comb::Add => vmath::mul_add(kb, x, x, a),
            _ => {
                let v = apply_pre(kb, ty, pre, x, shift);
                if let Some(nv) = self.nan {
                    let m = kb.b.use_var(nv);
                    let m = vmath::nan_track(kb, m, v);
                    kb.b.def_var(nv, m);
                }
                vmath::comb_fast(kb, comb, ty, a, v)
            }
        };
        kb.b.def_var(self.var, r);
    }

    fn get(self, kb: &mut Kb) -> Value {
        let v = kb.b.use_var(self.var);
        match self.nan {
            Some(nv) => {
                let m = kb.b.use_var(nv);
                vmath::nan_apply(kb, m, v)
            }
            None => v,
        }
    }
}

fn apply_pre(kb: &mut Kb, ty: Type, pre: Pre, x: Value, shift: Option<Value>) -> Value {
    match pre {
        Pre::Id => x,
        Pre::Abs => kb.b.ins().fabs(x),
        Pre::Square => kb.b.ins().fmul(x, x),
        Pre::ExpShift => {
            let d = match shift {
                Some(s) => kb.b.ins().fsub(x, s),
                None => x,
            };
            vmath::exp(kb, ty, d)
        }
        Pre::Finite => {
            let a = kb.b.ins().fabs(x);
            let inf = vmath::splat(kb, ty, f32::INFINITY);
            let fin = kb.b.ins().fcmp(FloatCC::LessThan, a, inf);
            let ninf = vmath::splat(kb, ty, f32::NEG_INFINITY);
            vmath::sel(kb, ty, fin, x, ninf)
        }
    }
}

/// The function applied to each combined value (after `log_sum_exp`'s two passes, see [`lse_finish`]).
fn post(kb: &mut Kb, ty: Type, kind: ReduceKind, v: Value, count: usize) -> Value {
    match kind {
        ReduceKind::Mean => {
            let c = vmath::splat(kb, ty, count as f32);
            kb.b.ins().fdiv(v, c)
        }
        ReduceKind::L2 => kb.b.ins().sqrt(v),
        ReduceKind::LogSum => vmath::ln(kb, ty, v),
        _ => v,
    }
}

/// The log_sum_exp shift from the finite maximum `m`: `m`, or 0 when there is no finite element.
fn lse_shift(kb: &mut Kb, ty: Type, m: Value) -> Value {
    let ninf = vmath::splat(kb, ty, f32::NEG_INFINITY);
    let none = kb.b.ins().fcmp(FloatCC::Equal, m, ninf);
    let zero = vmath::splat(kb, ty, 0.0);
    vmath::sel(kb, ty, none, zero, m)
}

fn lse_finish(kb: &mut Kb, ty: Type, s: Value, shift: Value) -> Value {
    let l = vmath::ln(kb, ty, s);
    kb.b.ins().fadd(l, shift)
}

pub(super) fn lower_reduce(info: &NodeInfo, r: &Reduce) -> Result<Lowering, CodegenError> {
    let dt = info.in_dtype(0)?;
    let shape = info.in_shape(0)?;
    let rank = shape.len();
    let axes = if info.has_input(1) {
        match info.const_i64s(1) {
            Some(a) => a,
            None => {
                return Ok(needs_constants(
                    &[1],
                    "reduction axes (input 1) are not a compile-time constant",
                ));
            }
        }
    } else {
        Vec::new()
    };
    let mask = if axes.is_empty() {
        vec![!r.noop_with_empty_axes; rank]
    } else if rank == 0 {
        Vec::new()
    } else {
        let mut m = vec![false; rank];
        for &a in &axes {
            let n = norm_axis(info, a, rank)?;
            if m[n] {
                return Err(info.err(format!("axis {a} is listed twice in {axes:?}")));
            }
            m[n] = true;
        }
        m
    };
    let out_dt = info.out_dtype(0)?;
    let lay = layout(&shape, &mask);
    if lay.n_out == 0 {
        return Ok(nothing());
    }
    match (dt, out_dt) {
        (DType::F32, DType::F32) => Ok(reduce_f32(r.kind, lay)),
        (DType::I32 | DType::I64, o) if o == dt => reduce_int(r.kind, dt, lay),
        _ => fallback(format!(
            "reduce {{kind={}}} of {dt} to {out_dt}: only f32, i32 and i64 are native",
            r.kind.keyword()
        )),
    }
}

fn reduce_f32(kind: ReduceKind, lay: Layout) -> Lowering {
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let (comb, pre) = pre_of(kind);
        let red = loops(&lay.red, 4);
        let kept = loops(&lay.kept, 4);
        let count = lay.count;
        if let Some(n) = lay.row {
            // Rows: each output reduces contiguous rows of n.
            let tiling = Tiling::new(lay.n_out, lay.count, MIN_TILE_WORK);
            em.kernel(tiling.tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                tiling.for_items(kb, |kb, o| {
                    let base = rows::unflatten(kb, o, &kept);
                    let p = kb.b.ins().iadd(x, base);
                    let v = if kind == ReduceKind::LogSumExp {
                        let m = row_pass(kb, p, &red, n, comb, pre, None)?;
                        let shift = lse_shift(kb, types::F32, m);
                        let shift = vmath::pin(kb, shift);
                        let s = row_pass(kb, p, &red, n, Comb::Add, Pre::ExpShift, Some(shift))?;
                        lse_finish(kb, types::F32, s, shift)
                    } else {
                        let v = row_pass(kb, p, &red, n, comb, pre, None)?;
                        post(kb, types::F32, kind, v, count)
                    };
                    let q = kb.offset(y, o, 4);
                    kb.store(v, q, 0);
                    Ok(())
                })
            })
        } else {
            // Columns: each output row of `lanes` contiguous lanes accumulates over every reduced index.
            let rows_n = lay.n_out / lay.lanes.max(1);
            let cols = Cols::new(rows_n, lay.lanes, lay.count.max(1));
            let lanes_total = lay.lanes;
            em.kernel(cols.tiling.tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                cols.emit(kb, &mut |kb, row, start, lanes| {
                    let base = rows::unflatten(kb, row, &kept);
                    let base = kb.b.ins().iadd(base, start);
                    let pin = kb.b.ins().iadd(x, base);
                    let ob = kb.b.ins().imul_imm_s(row, (lanes_total * 4) as i64);
                    let ob = kb.b.ins().iadd(ob, start);
                    let pout = kb.b.ins().iadd(y, ob);
                    lane_blocks(kb, lanes, &mut |kb, lb, w| {
                        let (ty, regs) = block_regs(w);
                        let pin = kb.b.ins().iadd(pin, lb);
                        let pout = kb.b.ins().iadd(pout, lb);
                        let res: Vec<Value> = if kind == ReduceKind::LogSumExp {
                            let m = block_pass(kb, pin, &red, ty, regs, comb, pre, None)?;
                            let shifts: Vec<Value> = m
                                .iter()
                                .map(|&m| {
                                    let s = lse_shift(kb, ty, m);
                                    vmath::pin(kb, s)
                                })
                                .collect();
                            let s = block_pass(
                                kb,
                                pin,
                                &red,
                                ty,
                                regs,
                                Comb::Add,
                                Pre::ExpShift,
                                Some(&shifts),
                            )?;
                            s.iter()
                                .zip(&shifts)
                                .map(|(&s, &sh)| lse_finish(kb, ty, s, sh))
                                .collect()
                        } else {
                            let v = block_pass(kb, pin, &red, ty, regs, comb, pre, None)?;
                            v.iter().map(|&v| post(kb, ty, kind, v, count)).collect()
                        };
                        for (k, v) in res.into_iter().enumerate() {
                            kb.store(v, pout, (16 * k) as i32);
                        }
                        Ok(())
                    })
                })
            })
        }
    };
    Lowering::Native {
        in_place: None,
        emit: Box::new(emit),
    }
}

/// Reduces the rows of `n` contiguous f32 at `p + Σ loop offsets` into one scalar.
fn row_pass(
    kb: &mut Kb,
    p: Value,
    red: &[(usize, i64)],
    n: usize,
    comb: Comb,
    pre: Pre,
    shift: Option<Value>,
) -> Result<Value, CodegenError> {
    let u = row_unroll(kb.target, n);
    let accs = Accs::new(kb, u, comb, comb.identity());
    let shift_v = match (shift, u > 0) {
        (Some(s), true) => Some(kb.b.ins().splat(types::F32X4, s)),
        _ => None,
    };
    nest(kb, p, red, &mut |kb, rp| {
        row_chunks(kb, n, u, &mut |kb, off, ty, slot| {
            let a = kb.b.ins().iadd(rp, off);
            let x = kb.load(ty, a, 0);
            let sh = if ty.is_vector() { shift_v } else { shift };
            if pre == Pre::Square && comb == Comb::Add {
                accs.step(kb, slot, |kb, acc| Ok(vmath::mul_add(kb, x, x, acc)))
            } else {
                let v = apply_pre(kb, ty, pre, x, sh);
                accs.add(kb, slot, v);
                Ok(())
            }
        })
    })?;
    Ok(accs.finish(kb))
}

/// Reduces a lane block (`regs` registers of `ty` at `p`) over the loops `red`; one value per register.
#[allow(clippy::too_many_arguments)]
pub(super) fn block_pass(
    kb: &mut Kb,
    p: Value,
    red: &[(usize, i64)],
    ty: Type,
    regs: usize,
    comb: Comb,
    pre: Pre,
    shifts: Option<&[Value]>,
) -> Result<Vec<Value>, CodegenError> {
    let accs: Vec<Acc> = (0..regs).map(|_| Acc::new(kb, ty, comb)).collect();
    nest(kb, p, red, &mut |kb, rp| {
        for (k, acc) in accs.iter().enumerate() {
            let x = kb.load(ty, rp, (16 * k) as i32);
            acc.step(kb, comb, pre, ty, x, shifts.map(|s| s[k]));
        }
        Ok(())
    })?;
    Ok(accs.iter().map(|a| a.get(kb)).collect())
}

// ---------------------------------------------------------------------------------------------------
// reduce (i32 / i64)
// ---------------------------------------------------------------------------------------------------

fn reduce_int(kind: ReduceKind, dt: DType, lay: Layout) -> Result<Lowering, CodegenError> {
    let (ity, esize): (Type, i64) = if dt == DType::I64 {
        (types::I64, 8)
    } else {
        (types::I32, 4)
    };
    let (lo, hi) = if dt == DType::I64 {
        (i64::MIN, i64::MAX)
    } else {
        (i64::from(i32::MIN), i64::from(i32::MAX))
    };
    let init = match kind {
        ReduceKind::Sum | ReduceKind::Mean => 0,
        ReduceKind::Prod => 1,
        ReduceKind::Max => lo,
        ReduceKind::Min => hi,
        k => {
            return fallback(format!(
                "reduce {{kind={}}} of integers has no native kernel",
                k.keyword()
            ));
        }
    };
    if kind == ReduceKind::Mean && lay.count == 0 {
        return fallback("integer mean over an empty set");
    }
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        // Scalar: every output element walks its reduced elements (all groups as loops).
        let mut red = lay.red.clone();
        let mut kept = lay.kept.clone();
        match lay.row {
            Some(n) => red.push(Group {
                size: n,
                stride: 1,
                reduced: true,
            }),
            None => kept.push(Group {
                size: lay.lanes,
                stride: 1,
                reduced: false,
            }),
        }
        let red = loops(&red, esize);
        let kept = loops(&kept, esize);
        let count = lay.count;
        let tiling = Tiling::new(lay.n_out, lay.count, MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let y = kb.output(0)?;
            tiling.for_items(kb, |kb, o| {
                let base = rows::unflatten(kb, o, &kept);
                let p = kb.b.ins().iadd(x, base);
                let var = kb.b.declare_var(ity);
                let i0 = kb.b.ins().iconst(ity, init);
                kb.b.def_var(var, i0);
                nest(kb, p, &red, &mut |kb, a| {
                    let v = kb.load(ity, a, 0);
                    let acc = kb.b.use_var(var);
                    let r = match kind {
                        ReduceKind::Prod => kb.b.ins().imul(acc, v),
                        ReduceKind::Max => kb.b.ins().smax(acc, v),
                        ReduceKind::Min => kb.b.ins().smin(acc, v),
                        _ => kb.b.ins().iadd(acc, v),
                    };
                    kb.b.def_var(var, r);
                    Ok(())
                })?;
                let mut r = kb.b.use_var(var);
                if kind == ReduceKind::Mean {
                    let c = kb.b.ins().iconst(ity, count as i64);
                    r = kb.b.ins().sdiv(r, c);
                }
                let q = kb.offset(y, o, esize);
                kb.store(r, q, 0);
                Ok(())
            })
        })
    };
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(emit),
    })
}
