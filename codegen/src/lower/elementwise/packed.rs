//! ONNX Cast to or from the sub-byte types (`i4`, `u4`, `i2`, `u2`, `f4e2m1`), which are stored packed,
//! low bits first. Cast keeps the shape, so the kernel is one flat loop: a packed source element is
//! unpacked (integers sign- or zero-extended to i64, `f4e2m1` decoded to f64) and converted as
//! [`cast`] does; a packed result is built a whole byte at a time (elements past the end give 0 bits).
//! Integer results wrap to their width, `f4e2m1` results round once to nearest even and always saturate,
//! as in the interpreter. One tile: these tensors are small.

use super::narrow::{decode, encode};
use super::*;
use carve_ir::ops::elementwise::RoundMode;
use carve_runtime::interp::elementwise::floats::format_of;

/// True for the sub-byte types stored packed.
pub(crate) fn is_packed(d: DType) -> bool {
    (1..8).contains(&d.bits())
}

/// The lowering of a cast `from → to` where one side is packed.
pub(super) fn lower(
    info: &NodeInfo,
    from: DType,
    to: DType,
    saturate: bool,
    mode: RoundMode,
) -> Result<Lowering, CodegenError> {
    let ok = |d: DType| is_packed(d) || clif_type(d).is_some();
    if !ok(from) || !ok(to) {
        return Ok(Lowering::Fallback(format!("no native cast {from} → {to}")));
    }
    if to == DType::U64 && from.is_float() && !is_packed(from) {
        return Ok(Lowering::Fallback(
            "float → u64 casts fall back (values above 2^63)".into(),
        ));
    }
    let n: usize = info.out_shape(0)?.iter().product();
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| emit(e, n, from, to, saturate, mode)),
    })
}

fn emit(
    e: &mut Emitter,
    n: usize,
    from: DType,
    to: DType,
    saturate: bool,
    mode: RoundMode,
) -> Result<(), CodegenError> {
    if n == 0 {
        return Ok(());
    }
    let out_ty = if is_packed(to) {
        types::I8
    } else {
        clif_type(to).ok_or_else(|| e.info.err("unsupported output type"))?
    };
    e.kernel(1, |kb| {
        let src = kb.input(0)?;
        let dst = kb.output(0)?;
        kb.for_tiles(|kb, _t| {
            if !is_packed(to) {
                let (lo, hi) = (kb.iconst(0), kb.iconst(n as i64));
                return kb.for_range(lo, hi, 1, |kb, i| {
                    let (x, d) = load_elem(kb, src, from, i);
                    let v = cast(kb.b, d, to, saturate, mode, x);
                    let a = kb.offset(dst, i, i64::from(out_ty.bytes()));
                    kb.store(v, a, 0);
                    Ok(())
                });
            }
            let bits = i64::from(to.bits());
            let per = 8 / bits;
            let units = (n as i64 + per - 1) / per;
            let (lo, hi) = (kb.iconst(0), kb.iconst(units));
            kb.for_range(lo, hi, 1, |kb, j| {
                let mut acc = kb.iconst(0);
                let first = kb.b.ins().imul_imm_s(j, per);
                for k in 0..per {
                    let i = kb.b.ins().iadd_imm_s(first, k);
                    let last = kb.iconst(n as i64 - 1);
                    let ic = kb.b.ins().smin(i, last);
                    let (x, d) = load_elem(kb, src, from, ic);
                    let code = to_code(kb.b, d, to, saturate, x);
                    let code = kb.b.ins().band_imm_s(code, (1 << bits) - 1);
                    let inside = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, n as i64);
                    let zero = kb.iconst(0);
                    let code = kb.b.ins().select(inside, code, zero);
                    let code = kb.b.ins().ishl_imm_s(code, k * bits);
                    acc = kb.b.ins().bor(acc, code);
                }
                let byte = kb.b.ins().ireduce(types::I8, acc);
                let a = kb.b.ins().iadd(dst, j);
                kb.store(byte, a, 0);
                Ok(())
            })
        })
    })
}

/// Element `i` of the source (type `d`): packed integers as i64, `f4e2m1` as its f64 value, anything
/// else loaded as is. Returns the value and the type it now has.
fn load_elem(kb: &mut Kb, src: Value, d: DType, i: Value) -> (Value, DType) {
    if !is_packed(d) {
        let ty = clif_type(d).unwrap_or(types::I8);
        let a = kb.offset(src, i, i64::from(ty.bytes()));
        return (kb.load(ty, a, 0), d);
    }
    let bits = i64::from(d.bits());
    let per = 8 / bits;
    let byte_i = kb.b.ins().ushr_imm_s(i, i64::from(per.trailing_zeros()));
    let a = kb.b.ins().iadd(src, byte_i);
    let byte = kb.load(types::I8, a, 0);
    let byte = kb.b.ins().uextend(types::I64, byte);
    let slot = kb.b.ins().band_imm_s(i, per - 1);
    let shift = kb.b.ins().imul_imm_s(slot, bits);
    let raw = kb.b.ins().ushr(byte, shift);
    let raw = kb.b.ins().band_imm_s(raw, (1 << bits) - 1);
    if let Some(f) = format_of(d) {
        let code = kb.b.ins().ireduce(types::I8, raw);
        return (decode(kb.b, f, code), DType::F64);
    }
    if d.is_signed_int() {
        let up = kb.b.ins().ishl_imm_s(raw, 64 - bits);
        return (kb.b.ins().sshr_imm_s(up, 64 - bits), DType::I64);
    }
    (raw, DType::I64)
}

/// The code of `x` (of type `d`) in the packed type `to`, in the low bits of an i64.
fn to_code(b: &mut FunctionBuilder, d: DType, to: DType, saturate: bool, x: Value) -> Value {
    if let Some(f) = format_of(to) {
        let v = cast(b, d, DType::F64, saturate, RoundMode::Up, x);
        let c = encode(b, f, v, true);
        return b.ins().uextend(types::I64, c);
    }
    cast(b, d, DType::I64, saturate, RoundMode::Up, x)
}
