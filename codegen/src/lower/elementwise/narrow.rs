//! Narrow floats in native code: `f16`, `bf16` and the 8-bit floats `f8e4m3fn`, `f8e4m3fnuz`, `f8e5m2`
//! and `f8e5m2fnuz`, held as their raw bits (i16 / i8) and converted to and from f64 with integer
//! instructions, bit-exact with the interpreter.
//!
//! The formats are the interpreter's own descriptions ([`format_of`]). As in the interpreter, every
//! operation on narrow floats decodes its operands exactly to f64, computes there, and rounds once
//! ([`encode`]: nearest, ties to even) into the result type; out-of-range values follow ONNX Cast
//! (`saturate` gives ±max, otherwise ±∞ where the format has infinities and NaN where it does not),
//! the `fnuz` formats give +0 for negative values that round to zero. [`decode`] gives what the
//! interpreter reads: `f16`/`bf16` NaNs keep their sign and payload (quiet bit set, as the `half` crate
//! does), 8-bit NaNs become the positive canonical NaN.

use super::*;
use carve_ir::ops::elementwise::RoundMode;
use carve_runtime::interp::elementwise::floats::{Format, Special, format_of};
use cranelift_codegen::ir::MemFlagsData;

/// The format of `d` when it is a narrow float handled natively (not `f4e2m1`, which is packed two to a
/// byte, nor `f8e8m0`, which has its own rounding rule).
pub(crate) fn narrow_format(d: DType) -> Option<Format> {
    match d {
        DType::F16
        | DType::BF16
        | DType::F8E4M3FN
        | DType::F8E4M3FNUZ
        | DType::F8E5M2
        | DType::F8E5M2FNUZ => format_of(d),
        _ => None,
    }
}

/// True for the narrow floats of [`narrow_format`].
pub(crate) fn is_narrow(d: DType) -> bool {
    narrow_format(d).is_some()
}

/// The integer type a format's bits are stored in.
pub(crate) fn narrow_storage(f: Format) -> types::Type {
    if f.exp_bits + f.man_bits + 1 > 8 {
        types::I16
    } else {
        types::I8
    }
}

/// Decodes `bits` (the storage integer of format `f`) to the exact f64 value.
pub(crate) fn decode(b: &mut FunctionBuilder, f: Format, bits: Value) -> Value {
    let man = i64::from(f.man_bits);
    let width = i64::from(f.exp_bits + f.man_bits);
    let sign_bit = i64::from(f.sign_bit());
    let u = b.ins().uextend(types::I64, bits);
    let sign = b.ins().band_imm_s(u, sign_bit);
    let sign64 = b.ins().ishl_imm_s(sign, 63 - width);
    let mag = b.ins().band_imm_s(u, sign_bit - 1);
    let exp = b.ins().ushr_imm_s(mag, man);
    let frac = b.ins().band_imm_s(mag, (1 << man) - 1);
    // Normal: rebias the exponent, left-align the mantissa.
    let e = b.ins().iadd_imm_s(exp, 1023 - i64::from(f.bias));
    let e = b.ins().ishl_imm_s(e, 52);
    let m = b.ins().ishl_imm_s(frac, 52 - man);
    let normal = b.ins().bor(e, m);
    // Subnormal (and zero): frac · 2^(1 − bias − man), exact in f64.
    let ff = b.ins().fcvt_from_uint(types::F64, frac);
    let scale = b.ins().f64const(pow2(1 - f.bias - f.man_bits as i32));
    let sub = b.ins().fmul(ff, scale);
    let sub = b.ins().bitcast(types::I64, MemFlagsData::new(), sub);
    let is_sub = b.ins().icmp_imm_s(IntCC::Equal, exp, 0);
    let r = b.ins().select(is_sub, sub, normal);
    let mut r = b.ins().bor(r, sign64);
    let canonical_nan = 0x7FF8_0000_0000_0000_u64 as i64;
    match f.special {
        Special::Ieee => {
            let top = b
                .ins()
                .icmp_imm_s(IntCC::Equal, exp, i64::from(f.exp_ones()));
            let inf = b.ins().iconst(types::I64, 0x7FF0_0000_0000_0000);
            let inf = b.ins().bor(inf, sign64);
            let nan = if narrow_storage(f) == types::I16 {
                // As `half`: the sign and the payload survive, the quiet bit is set.
                let q = b.ins().bor_imm_s(m, canonical_nan);
                b.ins().bor(q, sign64)
            } else {
                b.ins().iconst(types::I64, canonical_nan)
            };
            let z = b.ins().icmp_imm_s(IntCC::Equal, frac, 0);
            let special = b.ins().select(z, inf, nan);
            r = b.ins().select(top, special, r);
        }
        Special::Fn => {
            let is_nan = b.ins().icmp_imm_s(IntCC::Equal, mag, sign_bit - 1);
            let nan = b.ins().iconst(types::I64, canonical_nan);
            r = b.ins().select(is_nan, nan, r);
        }
        Special::Fnuz => {
            let is_nan = b.ins().icmp_imm_s(IntCC::Equal, u, sign_bit);
            let nan = b.ins().iconst(types::I64, canonical_nan);
            r = b.ins().select(is_nan, nan, r);
        }
        Special::Nothing => {}
    }
    b.ins().bitcast(types::F64, MemFlagsData::new(), r)
}

/// Encodes the f64 `x` in format `f` (its storage integer), rounding to nearest even once; `saturate`
/// sends out-of-range values and ±∞ to ±max instead of ±∞ / NaN.
pub(crate) fn encode(b: &mut FunctionBuilder, f: Format, x: Value, saturate: bool) -> Value {
    let man = i64::from(f.man_bits);
    let emin = 1 - i64::from(f.bias);
    let bits = b.ins().bitcast(types::I64, MemFlagsData::new(), x);
    let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, bits, 0);
    let a = b.ins().band_imm_s(bits, i64::MAX);
    let is_nan = b
        .ins()
        .icmp_imm_s(IntCC::UnsignedGreaterThan, a, 0x7FF0_0000_0000_0000);
    // a = M · 2^(e_x − 52) with M < 2^53 (the implicit bit only for normal f64).
    let ef = b.ins().ushr_imm_s(a, 52);
    let frac = b.ins().band_imm_s(a, (1 << 52) - 1);
    let normal = b.ins().icmp_imm_s(IntCC::NotEqual, ef, 0);
    let one52 = b.ins().iconst(types::I64, 1 << 52);
    let zero = b.ins().iconst(types::I64, 0);
    let implicit = b.ins().select(normal, one52, zero);
    let mm = b.ins().bor(frac, implicit);
    let one = b.ins().iconst(types::I64, 1);
    let ef1 = b.ins().smax(ef, one);
    let ex = b.ins().iadd_imm_s(ef1, -1023);
    // The target exponent e = max(e_x, emin); m = round(M / 2^s), s = 52 − man + (e − e_x) ∈ [42, 63].
    let emin_v = b.ins().iconst(types::I64, emin);
    let e = b.ins().smax(ex, emin_v);
    let d = b.ins().isub(e, ex);
    let s = b.ins().iadd_imm_s(d, 52 - man);
    let s63 = b.ins().iconst(types::I64, 63);
    let s = b.ins().smin(s, s63);
    let q = b.ins().ushr(mm, s);
    let back = b.ins().ishl(q, s);
    let rem = b.ins().isub(mm, back);
    let s1 = b.ins().iadd_imm_s(s, -1);
    let half = b.ins().ishl(one, s1);
    let above = b.ins().icmp(IntCC::UnsignedGreaterThan, rem, half);
    let tie = b.ins().icmp(IntCC::Equal, rem, half);
    let odd = b.ins().band_imm_s(q, 1);
    let odd = b.ins().icmp_imm_s(IntCC::NotEqual, odd, 0);
    let tie_up = b.ins().band(tie, odd);
    let up = b.ins().bor(above, tie_up);
    let up = b.ins().uextend(types::I64, up);
    let m = b.ins().iadd(q, up);
    // Magnitude bits: ((e + bias − 1) << man) + m covers subnormals (e = emin), normals (m carries the
    // implicit bit into the exponent field) and a round-up into the next binade.
    let eb = b.ins().iadd_imm_s(e, i64::from(f.bias) - 1);
    let eb = b.ins().ishl_imm_s(eb, man);
    let mag = b.ins().iadd(eb, m);
    let sign = b.ins().iconst(types::I64, i64::from(f.sign_bit()));
    let sign = b.ins().select(neg, sign, zero);
    let mut out = b.ins().bor(mag, sign);
    if f.special == Special::Fnuz {
        // No −0: a zero magnitude is +0.
        let z = b.ins().icmp_imm_s(IntCC::Equal, mag, 0);
        out = b.ins().select(z, zero, out);
    }
    // Overflow (±∞ lands here too: its exponent is beyond every format's).
    let over = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThan, mag, i64::from(f.max_bits()));
    let ovf = pick(
        b,
        neg,
        f.overflow(true, saturate),
        f.overflow(false, saturate),
    );
    let out = b.ins().select(over, ovf, out);
    let nan = pick(b, neg, f.nan(true), f.nan(false));
    let out = b.ins().select(is_nan, nan, out);
    b.ins().ireduce(narrow_storage(f), out)
}

/// Decodes an `f8e8m0` code (a bare power-of-two exponent; 0xFF is NaN) to f64, as the interpreter.
pub(crate) fn decode_e8m0(b: &mut FunctionBuilder, bits: Value) -> Value {
    let u = b.ins().uextend(types::I64, bits);
    let e = b.ins().iadd_imm_s(u, 1023 - 127);
    let v = b.ins().ishl_imm_s(e, 52);
    let nan = b.ins().iconst(types::I64, 0x7FF8_0000_0000_0000_u64 as i64);
    let is_nan = b.ins().icmp_imm_s(IntCC::Equal, u, 0xFF);
    let v = b.ins().select(is_nan, nan, v);
    b.ins().bitcast(types::F64, MemFlagsData::new(), v)
}

/// Encodes the f32 `x` as `f8e8m0` by ONNX's rule (the interpreter's `e8m0_of`): the sign is dropped,
/// NaN and ±∞ give 0xFF, `mode` decides from the mantissa whether the exponent rounds up, and with
/// `saturate` 0xFE never rounds up into NaN.
pub(crate) fn encode_e8m0(
    b: &mut FunctionBuilder,
    x: Value,
    saturate: bool,
    mode: RoundMode,
) -> Value {
    let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), x);
    let bits = b.ins().uextend(types::I64, bits);
    let e = b.ins().ushr_imm_s(bits, 23);
    let e = b.ins().band_imm_s(e, 0xFF);
    let up = match mode {
        RoundMode::Nearest => {
            let g = b.ins().band_imm_s(bits, 0x40_0000);
            let g = b.ins().icmp_imm_s(IntCC::NotEqual, g, 0);
            let rs = b.ins().band_imm_s(bits, 0x3F_FFFF);
            let rs = b.ins().icmp_imm_s(IntCC::NotEqual, rs, 0);
            let lsb = b.ins().icmp_imm_s(IntCC::NotEqual, e, 0);
            let any = b.ins().bor(rs, lsb);
            b.ins().band(g, any)
        }
        RoundMode::Up => {
            let m = b.ins().band_imm_s(bits, 0x7F_FFFF);
            b.ins().icmp_imm_s(IntCC::NotEqual, m, 0)
        }
        RoundMode::Down => b.ins().iconst(types::I8, 0),
    };
    let up = if saturate {
        let top = b.ins().icmp_imm_s(IntCC::NotEqual, e, 0xFE);
        b.ins().band(up, top)
    } else {
        up
    };
    let special = b.ins().icmp_imm_s(IntCC::Equal, e, 0xFF);
    let not_special = b.ins().bxor_imm_s(special, 1);
    let up = b.ins().band(up, not_special);
    let up = b.ins().uextend(types::I64, up);
    let r = b.ins().iadd(e, up);
    b.ins().ireduce(types::I8, r)
}

/// `c ? t : e` of two constants, as i64.
fn pick(b: &mut FunctionBuilder, c: Value, t: u32, e: u32) -> Value {
    let t = b.ins().iconst(types::I64, i64::from(t));
    let e = b.ins().iconst(types::I64, i64::from(e));
    b.ins().select(c, t, e)
}

/// `2^k` (k within f64's normal range).
fn pow2(k: i32) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// Decodes `v` of type `d` to f64 when `d` is narrow; other values pass unchanged.
pub(crate) fn widen_narrow(b: &mut FunctionBuilder, d: DType, v: Value) -> Value {
    match narrow_format(d) {
        Some(f) => decode(b, f, v),
        None => v,
    }
}
