//! `arg_reduce` (f32/i32/i64) as native kernels, and the per-lane arg-best loop `hardmax` shares.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Type, Value, types};

use carve_ir::DType;
use carve_ir::ops::reduce::{ArgKind, ArgReduce};

use super::rows::{MIN_TILE_WORK, Tiling};
use super::{fallback, norm_axis, nothing, split_axis};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo};

/// Addresses of element `(o, 0, i)` of input `x` and output `y` (same f32 shape) for lane
/// `item = o·inner + i` of an `(outer, n, inner)` split.
pub(super) fn lane_addrs(
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
pub(super) fn argbest(
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

pub(super) fn lower_arg(info: &NodeInfo, a: &ArgReduce) -> Result<Lowering, CodegenError> {
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
