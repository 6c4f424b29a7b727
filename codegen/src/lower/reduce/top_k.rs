//! `top_k` of f32 as a native kernel: each lane along the axis keeps its best `k` elements sorted
//! best-first directly in the two outputs, inserting every element it scans (`O(n·k)` per lane in the
//! worst case). The order is the interpreter's: by value (largest or smallest first; NaN above every
//! number), ties by lower index — scanning indices in increasing order, a new element only moves past
//! strictly worse ones. Outputs are always sorted (`sorted = false` allows any order). Lanes are the
//! tiles, so results do not depend on the thread count.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{BlockArg, InstBuilder, Value, types};

use carve_ir::DType;
use carve_ir::ops::reduce::TopK;

use super::rows::{MIN_TILE_WORK, Tiling};
use super::{fallback, norm_axis, nothing, split_axis};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo};

pub(super) fn lower_top_k(info: &NodeInfo, op: &TopK) -> Result<Lowering, CodegenError> {
    if info.num_outputs() != 2
        || info.in_dtype(0)? != DType::F32
        || info.out_dtype(0)? != DType::F32
        || info.out_dtype(1)? != DType::I64
    {
        return fallback("top_k: only f32 values with i64 indices are native");
    }
    let shape = info.in_shape(0)?;
    if shape.is_empty() {
        return Err(info.err("input 0 must have rank >= 1"));
    }
    let a = norm_axis(info, op.axis, shape.len())?;
    let (outer, n, inner) = split_axis(&shape, a, false);
    let k = info.out_shape(0)?[a];
    if k > n {
        return Err(info.err(format!("k = {k} exceeds the size {n} of axis {a}")));
    }
    if outer * inner == 0 || k == 0 {
        return Ok(nothing());
    }
    let largest = op.largest;
    let emit = move |em: &mut Emitter| -> Result<(), CodegenError> {
        let tiling = Tiling::new(outer * inner, n * k.min(8), MIN_TILE_WORK);
        em.kernel(tiling.tiles, |kb| {
            let x = kb.input(0)?;
            let vals = kb.output(0)?;
            let idx = kb.output(1)?;
            let cnt = kb.b.declare_var(types::I64);
            tiling.for_items(kb, |kb, item| {
                // Lane (o, i): element j of the input at (o·n + j)·inner + i, of the outputs at
                // (o·k + r)·inner + i.
                let (o, i) = if inner == 1 {
                    (item, kb.iconst(0))
                } else {
                    let inn = kb.iconst(inner as i64);
                    (kb.b.ins().udiv(item, inn), kb.b.ins().urem(item, inn))
                };
                let lane = |kb: &mut Kb, len: usize| {
                    let ob = kb.b.ins().imul_imm_s(o, (len * inner) as i64);
                    kb.b.ins().iadd(ob, i)
                };
                let xo = lane(kb, n);
                let xl = kb.offset(x, xo, 4);
                let oo = lane(kb, k);
                let vl = kb.offset(vals, oo, 4);
                let il = kb.offset(idx, oo, 8);
                let lanes = Lane {
                    vals: vl,
                    idx: il,
                    stride: inner as i64,
                    k: k as i64,
                    largest,
                };
                let zero = kb.iconst(0);
                kb.b.def_var(cnt, zero);
                kb.for_n(0, n as i64, 1, |kb, j| {
                    let xa = kb.offset(xl, j, inner as i64 * 4);
                    let v = kb.load(types::F32, xa, 0);
                    insert(kb, &lanes, cnt, v, j);
                    Ok(())
                })
            })
        })
    };
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(emit),
    })
}

/// One lane's outputs: `k` slots `stride` elements apart.
struct Lane {
    vals: Value,
    idx: Value,
    stride: i64,
    k: i64,
    largest: bool,
}

impl Lane {
    fn val_addr(&self, kb: &mut Kb, p: Value) -> Value {
        kb.offset(self.vals, p, self.stride * 4)
    }

    fn idx_addr(&self, kb: &mut Kb, p: Value) -> Value {
        kb.offset(self.idx, p, self.stride * 8)
    }

    /// Whether `v` (scanned after every kept element) ranks strictly before kept value `e`.
    fn better(&self, kb: &mut Kb, v: Value, e: Value) -> Value {
        let vnan = kb.b.ins().fcmp(FloatCC::Unordered, v, v);
        let enan = kb.b.ins().fcmp(FloatCC::Unordered, e, e);
        if self.largest {
            // v is NaN and e is not, or v > e.
            let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, v, e);
            let ne = kb.b.ins().bxor_imm_s(enan, 1);
            let nan_first = kb.b.ins().band(vnan, ne);
            kb.b.ins().bor(nan_first, gt)
        } else {
            // e is NaN and v is not, or v < e.
            let lt = kb.b.ins().fcmp(FloatCC::LessThan, v, e);
            let nv = kb.b.ins().bxor_imm_s(vnan, 1);
            let nan_last = kb.b.ins().band(nv, enan);
            kb.b.ins().bor(nan_last, lt)
        }
    }
}

/// Inserts `(v, j)` into the lane's sorted slots (`cnt` of them used): appended while fewer than `k`
/// are kept, else replacing the worst if `v` ranks before it; then moved up past strictly worse
/// elements.
fn insert(kb: &mut Kb, lane: &Lane, cnt: cranelift_frontend::Variable, v: Value, j: Value) {
    let check_last = kb.b.create_block();
    let start = kb.b.create_block();
    let head = kb.b.create_block();
    let check_prev = kb.b.create_block();
    let shift = kb.b.create_block();
    let done = kb.b.create_block();
    let next = kb.b.create_block();
    kb.b.append_block_param(start, types::I64); // slot to fill
    kb.b.append_block_param(head, types::I64);
    kb.b.append_block_param(check_prev, types::I64);
    kb.b.append_block_param(shift, types::I64);
    kb.b.append_block_param(done, types::I64);

    let c = kb.b.use_var(cnt);
    let full = kb.b.ins().icmp_imm_s(IntCC::Equal, c, lane.k);
    kb.b.ins()
        .brif(full, check_last, &[], start, &[BlockArg::Value(c)]);

    // Full: only an element ranking before the worst enters, in the worst's slot.
    kb.b.switch_to_block(check_last);
    let last = kb.iconst(lane.k - 1);
    let la = lane.val_addr(kb, last);
    let worst = kb.load(types::F32, la, 0);
    let b = lane.better(kb, v, worst);
    kb.b.ins()
        .brif(b, start, &[BlockArg::Value(last)], next, &[]);

    // Not full: append (cnt += 1).
    kb.b.switch_to_block(start);
    let p0 = kb.b.block_params(start)[0];
    let c = kb.b.use_var(cnt);
    let grow = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, c, lane.k);
    let c1 = kb.b.ins().iadd_imm_s(c, 1);
    let c = kb.b.ins().select(grow, c1, c);
    kb.b.def_var(cnt, c);
    kb.b.ins().jump(head, &[BlockArg::Value(p0)]);

    // while p > 0 && v ranks before slot p − 1: move slot p − 1 down to p.
    kb.b.switch_to_block(head);
    let p = kb.b.block_params(head)[0];
    let more = kb.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, p, 0);
    kb.b.ins().brif(
        more,
        check_prev,
        &[BlockArg::Value(p)],
        done,
        &[BlockArg::Value(p)],
    );

    kb.b.switch_to_block(check_prev);
    let p = kb.b.block_params(check_prev)[0];
    let q = kb.b.ins().iadd_imm_s(p, -1);
    let qa = lane.val_addr(kb, q);
    let prev = kb.load(types::F32, qa, 0);
    let b = lane.better(kb, v, prev);
    kb.b.ins()
        .brif(b, shift, &[BlockArg::Value(p)], done, &[BlockArg::Value(p)]);

    kb.b.switch_to_block(shift);
    let p = kb.b.block_params(shift)[0];
    let q = kb.b.ins().iadd_imm_s(p, -1);
    let qa = lane.val_addr(kb, q);
    let pa = lane.val_addr(kb, p);
    let pv = kb.load(types::F32, qa, 0);
    kb.store(pv, pa, 0);
    let qi = lane.idx_addr(kb, q);
    let pi = lane.idx_addr(kb, p);
    let iv = kb.load(types::I64, qi, 0);
    kb.store(iv, pi, 0);
    kb.b.ins().jump(head, &[BlockArg::Value(q)]);

    kb.b.switch_to_block(done);
    let p = kb.b.block_params(done)[0];
    let pa = lane.val_addr(kb, p);
    kb.store(v, pa, 0);
    let pi = lane.idx_addr(kb, p);
    kb.store(j, pi, 0);
    kb.b.ins().jump(next, &[]);

    kb.b.switch_to_block(next);
}
