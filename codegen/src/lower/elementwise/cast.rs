//! ONNX Cast between the natively supported element types (narrow floats through [`super::narrow`]).

use super::narrow::{decode, decode_e8m0, encode, encode_e8m0, narrow_format, narrow_storage};
use super::*;
use carve_ir::ops::elementwise::RoundMode;

/// ONNX Cast between the natively supported types (see the interpreter's `cast` module): floats to
/// integers truncate, NaN gives 0, values outside i64 give i64::MIN, then wrap to the width; to bool is
/// `!= 0` (NaN is true). Narrow floats go through f64: decoded exactly, or rounded once from the f64
/// value (integers convert to f64 first, as in the interpreter); `saturate` applies to 8-bit targets,
/// `mode` to `f8e8m0` targets.
pub(crate) fn cast(
    b: &mut FunctionBuilder,
    from: DType,
    to: DType,
    saturate: bool,
    mode: RoundMode,
    v: Value,
) -> Value {
    if from == to {
        return v;
    }
    if let Some(f) = narrow_format(from) {
        let x = decode(b, f, v);
        return cast(b, DType::F64, to, saturate, mode, x);
    }
    if from == DType::F8E8M0 {
        let x = decode_e8m0(b, v);
        return cast(b, DType::F64, to, saturate, mode, x);
    }
    if let Some(f) = narrow_format(to) {
        let x = cast(b, from, DType::F64, saturate, mode, v);
        return encode(b, f, x, saturate && narrow_storage(f) == types::I8);
    }
    if to == DType::F8E8M0 {
        // The interpreter rounds to f32 first (integers through f64).
        let x = cast(b, from, DType::F64, saturate, mode, v);
        let x = cast(b, DType::F64, DType::F32, saturate, mode, x);
        return encode_e8m0(b, x, saturate, mode);
    }
    cast_wide(b, from, to, v)
}

/// [`cast`] between f32, f64, the integers and bool.
fn cast_wide(b: &mut FunctionBuilder, from: DType, to: DType, v: Value) -> Value {
    if from == to {
        return v;
    }
    let from_ty = b.func.dfg.value_type(v);
    let Some(to_ty) = clif_type(to) else {
        return v;
    };
    if to == DType::Bool {
        return if from.is_float() {
            let z = if from_ty == types::F32 {
                b.ins().f32const(0.0)
            } else {
                b.ins().f64const(0.0)
            };
            b.ins().fcmp(FloatCC::NotEqual, v, z)
        } else {
            b.ins().icmp_imm_s(IntCC::NotEqual, v, 0)
        };
    }
    if from.is_float() && to.is_float() {
        return if to_ty == types::F64 {
            b.ins().fpromote(types::F64, v)
        } else {
            b.ins().fdemote(types::F32, v)
        };
    }
    if from.is_float() {
        // → integer (not u64): trunc with saturation, then values ≥ 2^63 become i64::MIN.
        let i = b.ins().fcvt_to_sint_sat(types::I64, v);
        let big = if from_ty == types::F32 {
            b.ins().f32const(9.223_372e18)
        } else {
            b.ins().f64const(9.223_372_036_854_776e18)
        };
        let over = b.ins().fcmp(FloatCC::GreaterThanOrEqual, v, big);
        let min = b.ins().iconst(types::I64, i64::MIN);
        let i = b.ins().select(over, min, i);
        return if to_ty == types::I64 {
            i
        } else {
            b.ins().ireduce(to_ty, i)
        };
    }
    // From an integer or bool.
    let w = if from == DType::Bool {
        let t = truth(b, v);
        b.ins().uextend(types::I64, t)
    } else {
        widen(b, from, v)
    };
    if to.is_float() {
        return if from == DType::U64 {
            b.ins().fcvt_from_uint(to_ty, w)
        } else {
            b.ins().fcvt_from_sint(to_ty, w)
        };
    }
    if to_ty == types::I64 {
        w
    } else {
        b.ins().ireduce(to_ty, w)
    }
}
