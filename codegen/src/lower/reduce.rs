//! Reductions over axes (`reduce` of every kind), the softmax family (`softmax`, `log_softmax`,
//! `hardmax`) and `arg_reduce`, as native kernels.
//!
//! Shapes are canonicalized first: size-1 axes are dropped and adjacent axes that are all reduced or
//! all kept are merged. Two kernel shapes cover every axis set:
//! - the innermost group is reduced ("rows"): each output element reduces contiguous rows of `n`
//!   elements (f32x4 chunks with four accumulators, then a scalar tail), looping over any outer reduced
//!   groups; tiles are ranges of output elements;
//! - the innermost group is kept ("columns"): each output row of `m` contiguous lanes is computed in
//!   lane blocks of 16/4/1 lanes, each block accumulating in registers over every reduced index; tiles
//!   are (output row, lane chunk) pairs.
//!
//! Softmax is the same split around its axis: contiguous rows (`inner = 1`) or columns. Each output
//! element is produced by exactly one tile in a fixed order, so results do not depend on the thread
//! count. Numbers: f32 throughout (the interpreter's f64 results agree within ~1e-5 relative);
//! max/min propagate NaN like the interpreter; softmax subtracts the row maximum before `exp`.
//!
//! Native: f32 `reduce` (every kind), i32/i64 `reduce` sum/max/min/prod (scalar, wrapping), f32
//! softmax/log_softmax/hardmax, `arg_reduce` of f32/i32/i64. Everything else falls back.

pub(crate) mod rows;
pub(crate) mod vmath;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Type, Value, types};
use cranelift_frontend::Variable;

use carve_ir::ops::reduce::{
    ArgKind, ArgReduce, Reduce, ReduceKind, ReduceOp, Softmax, SoftmaxKind,
};
use carve_ir::{DType, Op};

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo, Weights};
use rows::{Accs, MIN_TILE_WORK, Tiling, block_regs, lane_blocks, nest, row_chunks, row_unroll};
use vmath::Comb;

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Reduce(op) = info.op() else {
        return Ok(Lowering::Fallback("not a reduce-family op".into()));
    };
    match op {
        ReduceOp::Reduce(r) => lower_reduce(info, r),
        ReduceOp::Softmax(s) => lower_softmax(info, s),
        ReduceOp::ArgReduce(a) => lower_arg(info, a),
        other => Ok(Lowering::Fallback(format!(
            "no native kernel for {} yet",
            other.name()
        ))),
    }
}

fn fallback(msg: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(msg.into()))
}

/// A native lowering that generates no code (empty output).
fn nothing() -> Lowering {
    Lowering::Native {
        in_place: None,
        emit: Box::new(|_em: &mut Emitter| Ok(())),
    }
}

/// Normalizes `axis` against `rank` (rank 0 accepts 0 and −1).
fn norm_axis(info: &NodeInfo, axis: i64, rank: usize) -> Result<usize, CodegenError> {
    carve_ir::infer::normalize_axis(axis, rank).map_err(|m| info.err(m))
}

/// `(outer, n, inner)` around `axis` (with `joint`, every axis from `axis` on forms `n`).
fn split_axis(shape: &[usize], axis: usize, joint: bool) -> (usize, usize, usize) {
    if shape.is_empty() {
        return (1, 1, 1);
    }
    let outer = shape[..axis].iter().product();
    if joint {
        (outer, shape[axis..].iter().product(), 1)
    } else {
        (outer, shape[axis], shape[axis + 1..].iter().product())
    }
}

// ---------------------------------------------------------------------------------------------------
// Shape canonicalization
// ---------------------------------------------------------------------------------------------------

/// A run of adjacent axes that are all reduced or all kept: size and element stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    size: usize,
    stride: usize,
    reduced: bool,
}

/// Merges `shape` into groups (size-1 axes dropped).
fn groups(shape: &[usize], mask: &[bool]) -> Vec<Group> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let mut g: Vec<Group> = Vec::new();
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let Some(last) = g.last_mut()
            && last.reduced == mask[i]
            && last.stride == shape[i] * strides[i]
        {
            last.size *= shape[i];
            last.stride = strides[i];
            continue;
        }
        g.push(Group {
            size: shape[i],
            stride: strides[i],
            reduced: mask[i],
        });
    }
    g
}

/// `(size, byte stride)` loops of `groups` for element size `esize`.
fn loops(groups: &[Group], esize: i64) -> Vec<(usize, i64)> {
    groups
        .iter()
        .map(|g| (g.size, g.stride as i64 * esize))
        .collect()
}

/// How a reduction is laid out for the kernels.
#[derive(Debug, Clone)]
struct Layout {
    /// Kept dims that index output rows (case rows: every kept group; case columns: all but the
    /// innermost), as (size, input byte stride) for element size 4 (rescaled for other sizes).
    kept: Vec<Group>,
    /// Reduced groups walked by loops (case rows: all but the innermost).
    red: Vec<Group>,
    /// Case rows: the innermost reduced group's size; `None` for the columns case.
    row: Option<usize>,
    /// Case columns: contiguous output lanes per row.
    lanes: usize,
    /// Elements reduced into each output.
    count: usize,
    /// Output elements.
    n_out: usize,
}

fn layout(shape: &[usize], mask: &[bool]) -> Layout {
    let g = groups(shape, mask);
    let count = shape
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| *d)
        .product();
    let n_out = shape
        .iter()
        .zip(mask)
        .filter(|(_, m)| !**m)
        .map(|(d, _)| *d)
        .product();
    let kept: Vec<Group> = g.iter().filter(|g| !g.reduced).copied().collect();
    let mut red: Vec<Group> = g.iter().filter(|g| g.reduced).copied().collect();
    match g.last() {
        Some(last) if last.reduced => {
            red.pop();
            Layout {
                kept,
                red,
                row: Some(last.size),
                lanes: 1,
                count,
                n_out,
            }
        }
        Some(last) => {
            let mut kept = kept;
            kept.pop();
            Layout {
                kept,
                red,
                row: None,
                lanes: last.size,
                count,
                n_out,
            }
        }
        None => Layout {
            kept,
            red,
            row: None,
            lanes: 1,
            count,
            n_out,
        },
    }
}

/// Callback for one column item: `(kb, row, first lane's byte offset within the row, lanes)`.
type ColFn<'a> = dyn FnMut(&mut Kb, Value, Value, usize) -> Result<(), CodegenError> + 'a;

/// Splits `rows × lanes` work into items (row, lane chunk) and tiles of items.
#[derive(Debug, Clone, Copy)]
struct Cols {
    lanes: usize,
    /// Lanes per chunk (a multiple of 16 unless it is all of `lanes`).
    ch: usize,
    n_chunks: usize,
    tiling: Tiling,
}

impl Cols {
    fn new(rows: usize, lanes: usize, work_per_lane: usize) -> Cols {
        let want = (MIN_TILE_WORK / work_per_lane.max(1))
            .max(64)
            .next_multiple_of(16);
        let (ch, n_chunks) = if rows > 1 || want >= lanes {
            (lanes.max(1), 1)
        } else {
            (want, lanes.div_ceil(want))
        };
        Cols {
            lanes,
            ch,
            n_chunks,
            tiling: Tiling::new(rows * n_chunks, work_per_lane * ch, MIN_TILE_WORK),
        }
    }

    /// Emits `body(kb, row, first lane's byte offset within the row (f32 lanes), lanes)` for every item
    /// of this kernel's tiles.
    fn emit(self, kb: &mut Kb, body: &mut ColFn) -> Result<(), CodegenError> {
        self.tiling.for_items(kb, |kb, item| {
            if self.n_chunks == 1 {
                let zero = kb.iconst(0);
                return body(kb, item, zero, self.lanes);
            }
            let nc = kb.iconst(self.n_chunks as i64);
            let row = kb.b.ins().udiv(item, nc);
            let c = kb.b.ins().urem(item, nc);
            let start = kb.b.ins().imul_imm_s(c, (self.ch * 4) as i64);
            let last_lanes = self.lanes - (self.n_chunks - 1) * self.ch;
            let is_last = rows::ieq(kb, c, (self.n_chunks - 1) as i64);
            let full = kb.b.create_block();
            let last = kb.b.create_block();
            let join = kb.b.create_block();
            kb.b.ins().brif(is_last, last, &[], full, &[]);
            kb.b.switch_to_block(full);
            body(kb, row, start, self.ch)?;
            kb.b.ins().jump(join, &[]);
            kb.b.switch_to_block(last);
            body(kb, row, start, last_lanes)?;
            kb.b.ins().jump(join, &[]);
            kb.b.switch_to_block(join);
            Ok(())
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// reduce (f32)
// ---------------------------------------------------------------------------------------------------

/// The element-wise function applied before combining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pre {
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

fn lower_reduce(info: &NodeInfo, r: &Reduce) -> Result<Lowering, CodegenError> {
    let dt = info.in_dtype(0)?;
    let shape = info.in_shape(0)?;
    let rank = shape.len();
    let axes = if info.has_input(1) {
        match info.const_i64s(1) {
            Some(a) => a,
            None => return fallback("reduction axes (input 1) are not a compile-time constant"),
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
fn block_pass(
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

// ---------------------------------------------------------------------------------------------------
// softmax / log_softmax / hardmax
// ---------------------------------------------------------------------------------------------------

fn lower_softmax(info: &NodeInfo, s: &Softmax) -> Result<Lowering, CodegenError> {
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

/// Addresses of element `(o, 0, i)` of input `x` and output `y` (same f32 shape) for lane
/// `item = o·inner + i` of an `(outer, n, inner)` split.
fn lane_addrs(
    kb: &mut Kb,
    x: Value,
    y: Value,
    item: Value,
    n: usize,
    inner: usize,
) -> (Value, Value) {
    let off = if inner == 1 {
        kb.b.ins().imul_imm_s(item, (n * 4) as i64)
    } else {
        let inn = kb.iconst(inner as i64);
        let o = kb.b.ins().udiv(item, inn);
        let i = kb.b.ins().urem(item, inn);
        let ob = kb.b.ins().imul_imm_s(o, (n * inner * 4) as i64);
        let ib = kb.b.ins().imul_imm_s(i, 4);
        kb.b.ins().iadd(ob, ib)
    };
    let p = kb.b.ins().iadd(x, off);
    let q = kb.b.ins().iadd(y, off);
    (p, q)
}

/// Index (i64) of the extremum among `n ≥ 1` elements of type `ty` at `p + j·stride`, with the
/// interpreter's rules: ties go to the first index (or the last with `last`); a NaN beats every number
/// (the first NaN, or the last with `last`).
fn argbest(
    kb: &mut Kb,
    p: Value,
    n: usize,
    stride: i64,
    ty: Type,
    kind: ArgKind,
    last: bool,
) -> Result<Value, CodegenError> {
    let bv = kb.b.declare_var(ty);
    let bi = kb.b.declare_var(types::I64);
    let v0 = kb.load(ty, p, 0);
    kb.b.def_var(bv, v0);
    let zero = kb.iconst(0);
    kb.b.def_var(bi, zero);
    let max = kind == ArgKind::Max;
    kb.for_n(1, n as i64, 1, |kb, j| {
        let a = kb.offset(p, j, stride);
        let v = kb.load(ty, a, 0);
        let b = kb.b.use_var(bv);
        let better = if ty == types::F32 {
            let cc = match (max, last) {
                (true, false) => FloatCC::GreaterThan,
                (true, true) => FloatCC::GreaterThanOrEqual,
                (false, false) => FloatCC::LessThan,
                (false, true) => FloatCC::LessThanOrEqual,
            };
            let cmp = kb.b.ins().fcmp(cc, v, b);
            let vnan = kb.b.ins().fcmp(FloatCC::Unordered, v, v);
            let bnan = kb.b.ins().fcmp(FloatCC::Unordered, b, b);
            // bnan ? (last & vnan) : (vnan | cmp)
            let when_b = if last {
                vnan
            } else {
                kb.b.ins().iconst(types::I8, 0)
            };
            let when_n = kb.b.ins().bor(vnan, cmp);
            kb.b.ins().select(bnan, when_b, when_n)
        } else {
            let cc = match (max, last) {
                (true, false) => IntCC::SignedGreaterThan,
                (true, true) => IntCC::SignedGreaterThanOrEqual,
                (false, false) => IntCC::SignedLessThan,
                (false, true) => IntCC::SignedLessThanOrEqual,
            };
            kb.b.ins().icmp(cc, v, b)
        };
        let nb = kb.b.ins().select(better, v, b);
        kb.b.def_var(bv, nb);
        let oi = kb.b.use_var(bi);
        let ni = kb.b.ins().select(better, j, oi);
        kb.b.def_var(bi, ni);
        Ok(())
    })?;
    Ok(kb.b.use_var(bi))
}

// ---------------------------------------------------------------------------------------------------
// arg_reduce
// ---------------------------------------------------------------------------------------------------

fn lower_arg(info: &NodeInfo, a: &ArgReduce) -> Result<Lowering, CodegenError> {
    let dt = info.in_dtype(0)?;
    let (ty, esize) = match dt {
        DType::F32 => (types::F32, 4i64),
        DType::I32 => (types::I32, 4),
        DType::I64 => (types::I64, 8),
        _ => {
            return fallback(format!(
                "arg_reduce of {dt}: only f32, i32 and i64 are native"
            ));
        }
    };
    if info.out_dtype(0)? != DType::I64 {
        return fallback("arg_reduce output is not i64");
    }
    let shape = info.in_shape(0)?;
    let axis = if shape.is_empty() {
        0
    } else {
        norm_axis(info, a.axis, shape.len())?
    };
    let (outer, n, inner) = split_axis(&shape, axis, false);
    if outer * inner == 0 {
        return Ok(nothing());
    }
    if n == 0 {
        return fallback("arg_reduce over an empty axis has no answer");
    }
    let (kind, last) = (a.kind, a.select_last_index);
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let tiling = Tiling::new(outer * inner, n, MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let y = kb.output(0)?;
            tiling.for_items(kb, |kb, item| {
                let p = if inner == 1 {
                    kb.offset(x, item, n as i64 * esize)
                } else {
                    let inn = kb.iconst(inner as i64);
                    let o = kb.b.ins().udiv(item, inn);
                    let i = kb.b.ins().urem(item, inn);
                    let ob = kb.b.ins().imul_imm_s(o, (n * inner) as i64 * esize);
                    let ib = kb.b.ins().imul_imm_s(i, esize);
                    let off = kb.b.ins().iadd(ob, ib);
                    kb.b.ins().iadd(x, off)
                };
                let best = argbest(kb, p, n, inner as i64 * esize, ty, kind, last)?;
                let q = kb.offset(y, item, 8);
                kb.store(best, q, 0);
                Ok(())
            })
        })
    };
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(emit),
    })
}
