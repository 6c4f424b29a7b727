//! Typed scalar ops ([`TOp`]): comparisons, logic, `where`, integer, f64 and narrow-float arithmetic,
//! one element at a time. Narrow floats ([`super::narrow`]) are decoded to f64, computed there and
//! rounded once into their type, as the interpreter does.

use super::narrow::{decode, encode, is_narrow, narrow_format, narrow_storage, widen_narrow};
use super::*;
use carve_ir::ops::elementwise::{RoundMode, ShiftDirection};
use cranelift_codegen::ir::MemFlagsData;

// ---------------------------------------------------------------------------------------------------
// Typed scalar ops.

/// A typed scalar op (one element at a time, any supported element types).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TOp {
    /// Comparison of two operands of `dtype` → bool.
    Cmp(CmpKind, DType),
    /// `and`/`or`/`xor` of bools.
    Logic(LogicKind),
    /// `not` of a bool.
    Not,
    /// `cond ? a : b`.
    Where,
    /// Conversion `from → to`.
    Cast {
        /// The source type.
        from: DType,
        /// The target type.
        to: DType,
        /// ONNX Cast's `saturate` (8-bit float targets only).
        saturate: bool,
        /// ONNX Cast's `round_mode` (`f8e8m0` targets only).
        round_mode: RoundMode,
    },
    /// Integer, f64 or narrow-float binary arithmetic in `dtype`.
    Arith(ArithKind, DType),
    /// Integer, f64 or narrow-float unary op in `dtype`.
    Unary(UnaryKind, DType),
    /// Integer remainder in `dtype`: C-style (`fmod`: the dividend's sign) or Python-style (the
    /// divisor's sign); `x mod 0 = 0`.
    IntMod {
        /// C-style.
        fmod: bool,
        /// The integer type.
        dtype: DType,
    },
    /// `x` is NaN (a float of `dtype`) → bool.
    IsNan(DType),
    /// `x` is an infinity of a detected sign (a float of `dtype`) → bool.
    IsInf {
        /// The float type.
        dtype: DType,
        /// −∞ counts.
        negative: bool,
        /// +∞ counts.
        positive: bool,
    },
    /// Reinterprets the bits of an element as another type of the same width.
    Bitcast {
        /// The Cranelift type of the result.
        to: types::Type,
    },
    /// ONNX BitShift in `dtype`: a shift by the type's width or more gives 0 (a signed right shift
    /// of a negative value gives −1).
    Shift {
        /// Left (else right).
        left: bool,
        /// The integer type.
        dtype: DType,
    },
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpKind {
    /// `==`.
    Eq,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

/// A logical op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogicKind {
    /// `a && b`.
    And,
    /// `a || b`.
    Or,
    /// `a != b`.
    Xor,
}

/// Binary arithmetic of the typed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithKind {
    /// Wrapping `+`.
    Add,
    /// Wrapping `−`.
    Sub,
    /// Wrapping `·`.
    Mul,
    /// Division (integers truncate; division by zero gives 0, `MIN / −1` wraps).
    Div,
    /// Maximum.
    Max,
    /// Minimum.
    Min,
}

/// Unary ops of the typed path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryKind {
    /// Wrapping negation.
    Neg,
    /// Wrapping absolute value.
    Abs,
    /// `max(x, 0)`.
    Relu,
    /// `√x` (f64 and narrow floats only).
    Sqrt,
}

/// The Cranelift type elements of `d` are loaded as (None: not supported natively). Narrow floats are
/// loaded as their raw bits.
pub fn clif_type(d: DType) -> Option<types::Type> {
    if let Some(f) = narrow_format(d) {
        return Some(narrow_storage(f));
    }
    Some(match d {
        DType::F8E8M0 => types::I8,
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I64 | DType::U64 => types::I64,
        DType::I32 | DType::U32 => types::I32,
        DType::I16 | DType::U16 => types::I16,
        DType::I8 | DType::U8 | DType::Bool => types::I8,
        _ => return None,
    })
}

pub(crate) fn is_plain_int(d: DType) -> bool {
    matches!(
        d,
        DType::I64
            | DType::I32
            | DType::I16
            | DType::I8
            | DType::U64
            | DType::U32
            | DType::U16
            | DType::U8
    )
}

/// The typed op for `info`'s node, or why there is none.
pub(crate) fn typed_op(info: &NodeInfo) -> Result<TOp, String> {
    let Op::Elementwise(op) = info.op() else {
        return Err("not an elementwise op".into());
    };
    let dt = |k: usize| info.in_dtype(k).map_err(|e| e.to_string());
    let out = info.out_dtype(0).map_err(|e| e.to_string())?;
    let same2 = || -> Result<DType, String> {
        let (a, b) = (dt(0)?, dt(1)?);
        if a != b {
            return Err(format!("operands have types {a} and {b}"));
        }
        Ok(a)
    };
    let numeric = |d: DType| d == DType::F32 || d == DType::F64 || is_plain_int(d) || is_narrow(d);
    let cmp = |k: CmpKind| -> Result<TOp, String> {
        let d = same2()?;
        if numeric(d) || (d == DType::Bool && k == CmpKind::Eq) {
            Ok(TOp::Cmp(k, d))
        } else {
            Err(format!("no native comparison of {d}"))
        }
    };
    let logic = |k: LogicKind| -> Result<TOp, String> {
        if same2()? == DType::Bool {
            Ok(TOp::Logic(k))
        } else {
            Err("logic ops need bools".into())
        }
    };
    let arith = |k: ArithKind| -> Result<TOp, String> {
        let d = same2()?;
        let ok = d == DType::F64 || is_plain_int(d) || is_narrow(d);
        if ok {
            Ok(TOp::Arith(k, d))
        } else {
            Err(format!("no native {} on {d}", op.name()))
        }
    };
    let unary = |k: UnaryKind| -> Result<TOp, String> {
        let d = dt(0)?;
        let ok = match k {
            UnaryKind::Sqrt => d == DType::F64 || is_narrow(d),
            UnaryKind::Neg | UnaryKind::Abs | UnaryKind::Relu => {
                d == DType::F64 || is_narrow(d) || (is_plain_int(d) && d.is_signed_int())
            }
        };
        if ok {
            Ok(TOp::Unary(k, d))
        } else {
            Err(format!("no native {} on {d}", op.name()))
        }
    };
    match op {
        E::Equal(_) => cmp(CmpKind::Eq),
        E::Greater(_) => cmp(CmpKind::Gt),
        E::GreaterOrEqual(_) => cmp(CmpKind::Ge),
        E::Less(_) => cmp(CmpKind::Lt),
        E::LessOrEqual(_) => cmp(CmpKind::Le),
        E::And(_) => logic(LogicKind::And),
        E::Or(_) => logic(LogicKind::Or),
        E::Xor(_) => logic(LogicKind::Xor),
        E::Not(_) if dt(0)? == DType::Bool => Ok(TOp::Not),
        E::Where(_) => {
            let (c, a, b) = (dt(0)?, dt(1)?, dt(2)?);
            if c == DType::Bool && a == b && clif_type(a).is_some() {
                Ok(TOp::Where)
            } else {
                Err(format!("no native where over {c}, {a}, {b}"))
            }
        }
        E::Cast(c) => {
            let from = dt(0)?;
            let ok = |d: DType| clif_type(d).is_some();
            if !ok(from) || !ok(out) {
                return Err(format!("no native cast {from} → {out}"));
            }
            // f16 and the 8-bit floats never reach 2^63.
            let small = matches!(narrow_format(from), Some(f) if f.exp_bits <= 5);
            if from.is_float() && out == DType::U64 && !small {
                return Err("float → u64 casts fall back (values above 2^63)".into());
            }
            Ok(TOp::Cast {
                from,
                to: out,
                saturate: c.saturate,
                round_mode: c.round_mode,
            })
        }
        E::Add(_) => arith(ArithKind::Add),
        E::Sub(_) => arith(ArithKind::Sub),
        E::Mul(_) => arith(ArithKind::Mul),
        E::Div(_) => arith(ArithKind::Div),
        E::Max(_) if info.num_inputs() == 2 => arith(ArithKind::Max),
        E::Min(_) if info.num_inputs() == 2 => arith(ArithKind::Min),
        E::Mod(m) => {
            let d = same2()?;
            if is_plain_int(d) {
                Ok(TOp::IntMod {
                    fmod: m.fmod,
                    dtype: d,
                })
            } else {
                Err(format!("no native mod on {d}"))
            }
        }
        E::Bitcast(_) => {
            let from = dt(0)?;
            match (clif_type(from), clif_type(out)) {
                (Some(a), Some(b))
                    if a.bytes() == b.bytes() && from != DType::Bool && out != DType::Bool =>
                {
                    Ok(TOp::Bitcast { to: b })
                }
                _ => Err(format!("no native bitcast {from} → {out}")),
            }
        }
        E::BitShift(b) => {
            let d = same2()?;
            if is_plain_int(d) {
                Ok(TOp::Shift {
                    left: b.direction == ShiftDirection::Left,
                    dtype: d,
                })
            } else {
                Err(format!("no native bit_shift on {d}"))
            }
        }
        E::IsNan(_) | E::IsInf(_) => {
            let d = dt(0)?;
            if !(d == DType::F32 || d == DType::F64 || is_narrow(d)) {
                return Err(format!("no native {} on {d}", op.name()));
            }
            Ok(match op {
                E::IsInf(o) => TOp::IsInf {
                    dtype: d,
                    negative: o.detect_negative,
                    positive: o.detect_positive,
                },
                _ => TOp::IsNan(d),
            })
        }
        E::Neg(_) => unary(UnaryKind::Neg),
        E::Abs(_) => unary(UnaryKind::Abs),
        E::Relu(_) => unary(UnaryKind::Relu),
        E::Sqrt(_) => unary(UnaryKind::Sqrt),
        _ => Err(format!("no native kernel for {} on these types", op.name())),
    }
}

/// Normalizes a loaded bool byte to 0/1.
pub(crate) fn truth(b: &mut FunctionBuilder, v: Value) -> Value {
    b.ins().icmp_imm_s(IntCC::NotEqual, v, 0)
}

/// Sign- or zero-extends an integer of type `d` to i64.
pub(crate) fn widen(b: &mut FunctionBuilder, d: DType, v: Value) -> Value {
    let ty = b.func.dfg.value_type(v);
    if ty == types::I64 {
        v
    } else if d.is_signed_int() {
        b.ins().sextend(types::I64, v)
    } else {
        b.ins().uextend(types::I64, v)
    }
}

/// Emits the typed op on scalar operands `x`.
pub(crate) fn eval_typed(b: &mut FunctionBuilder, op: TOp, x: &[Value]) -> Value {
    match op {
        TOp::Cmp(k, d) => {
            if d.is_float() {
                let (p, q) = (widen_narrow(b, d, x[0]), widen_narrow(b, d, x[1]));
                let cc = match k {
                    CmpKind::Eq => FloatCC::Equal,
                    CmpKind::Gt => FloatCC::GreaterThan,
                    CmpKind::Ge => FloatCC::GreaterThanOrEqual,
                    CmpKind::Lt => FloatCC::LessThan,
                    CmpKind::Le => FloatCC::LessThanOrEqual,
                };
                b.ins().fcmp(cc, p, q)
            } else {
                let s = d.is_signed_int();
                let cc = match (k, s) {
                    (CmpKind::Eq, _) => IntCC::Equal,
                    (CmpKind::Gt, true) => IntCC::SignedGreaterThan,
                    (CmpKind::Ge, true) => IntCC::SignedGreaterThanOrEqual,
                    (CmpKind::Lt, true) => IntCC::SignedLessThan,
                    (CmpKind::Le, true) => IntCC::SignedLessThanOrEqual,
                    (CmpKind::Gt, false) => IntCC::UnsignedGreaterThan,
                    (CmpKind::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
                    (CmpKind::Lt, false) => IntCC::UnsignedLessThan,
                    (CmpKind::Le, false) => IntCC::UnsignedLessThanOrEqual,
                };
                let (p, q) = if d == DType::Bool {
                    (truth(b, x[0]), truth(b, x[1]))
                } else {
                    (x[0], x[1])
                };
                b.ins().icmp(cc, p, q)
            }
        }
        TOp::Logic(k) => {
            let (p, q) = (truth(b, x[0]), truth(b, x[1]));
            match k {
                LogicKind::And => b.ins().band(p, q),
                LogicKind::Or => b.ins().bor(p, q),
                LogicKind::Xor => b.ins().bxor(p, q),
            }
        }
        TOp::Not => {
            let p = truth(b, x[0]);
            b.ins().bxor_imm_s(p, 1)
        }
        TOp::Where => {
            let c = truth(b, x[0]);
            b.ins().select(c, x[1], x[2])
        }
        TOp::IsNan(d) => {
            let v = widen_narrow(b, d, x[0]);
            b.ins().fcmp(FloatCC::Unordered, v, v)
        }
        TOp::IsInf {
            dtype,
            negative,
            positive,
        } => {
            let v = widen_narrow(b, dtype, x[0]);
            let ty = b.func.dfg.value_type(v);
            let (inf, ninf) = if ty == types::F32 {
                (
                    b.ins().f32const(f32::INFINITY),
                    b.ins().f32const(f32::NEG_INFINITY),
                )
            } else {
                (
                    b.ins().f64const(f64::INFINITY),
                    b.ins().f64const(f64::NEG_INFINITY),
                )
            };
            let p = b.ins().fcmp(FloatCC::Equal, v, inf);
            let n = b.ins().fcmp(FloatCC::Equal, v, ninf);
            match (negative, positive) {
                (true, true) => b.ins().bor(p, n),
                (false, true) => p,
                (true, false) => n,
                (false, false) => b.ins().iconst(types::I8, 0),
            }
        }
        TOp::Cast {
            from,
            to,
            saturate,
            round_mode,
        } => cast(b, from, to, saturate, round_mode, x[0]),
        TOp::Arith(k, d) => {
            if let Some(f) = narrow_format(d) {
                let (p, q) = (decode(b, f, x[0]), decode(b, f, x[1]));
                let r = float_arith(b, k, p, q);
                return encode(b, f, r, false);
            }
            let (p, q) = (x[0], x[1]);
            if d.is_float() {
                float_arith(b, k, p, q)
            } else {
                let s = d.is_signed_int();
                match k {
                    ArithKind::Add => b.ins().iadd(p, q),
                    ArithKind::Sub => b.ins().isub(p, q),
                    ArithKind::Mul => b.ins().imul(p, q),
                    ArithKind::Max if s => b.ins().smax(p, q),
                    ArithKind::Max => b.ins().umax(p, q),
                    ArithKind::Min if s => b.ins().smin(p, q),
                    ArithKind::Min => b.ins().umin(p, q),
                    ArithKind::Div => int_div(b, s, p, q),
                }
            }
        }
        TOp::IntMod { fmod, dtype } => int_mod(b, fmod, dtype.is_signed_int(), x[0], x[1]),
        TOp::Shift { left, dtype } => shift(b, left, dtype, x[0], x[1]),
        TOp::Bitcast { to } => {
            if b.func.dfg.value_type(x[0]) == to {
                x[0]
            } else {
                b.ins().bitcast(to, MemFlagsData::new(), x[0])
            }
        }
        TOp::Unary(k, d) => {
            if let Some(f) = narrow_format(d) {
                let v = decode(b, f, x[0]);
                let r = eval_typed(b, TOp::Unary(k, DType::F64), &[v]);
                return encode(b, f, r, false);
            }
            let v = x[0];
            if d.is_float() {
                match k {
                    UnaryKind::Neg => b.ins().fneg(v),
                    UnaryKind::Abs => b.ins().fabs(v),
                    UnaryKind::Sqrt => b.ins().sqrt(v),
                    UnaryKind::Relu => {
                        let z = b.ins().f64const(0.0);
                        let m = b.ins().fcmp(FloatCC::LessThan, v, z);
                        b.ins().select(m, z, v)
                    }
                }
            } else {
                let ty = b.func.dfg.value_type(v);
                match k {
                    UnaryKind::Neg => b.ins().ineg(v),
                    UnaryKind::Abs => b.ins().iabs(v),
                    UnaryKind::Relu => {
                        let z = b.ins().iconst(ty, 0);
                        b.ins().smax(v, z)
                    }
                    UnaryKind::Sqrt => v,
                }
            }
        }
    }
}

/// Float arithmetic as the interpreter's: `max`/`min` give the positive default NaN when either operand
/// is NaN, else `b` only when it is strictly greater (smaller), so `max(±0, ∓0)` is the first operand.
fn float_arith(b: &mut FunctionBuilder, k: ArithKind, p: Value, q: Value) -> Value {
    let cc = match k {
        ArithKind::Add => return b.ins().fadd(p, q),
        ArithKind::Sub => return b.ins().fsub(p, q),
        ArithKind::Mul => return b.ins().fmul(p, q),
        ArithKind::Div => return b.ins().fdiv(p, q),
        ArithKind::Max => FloatCC::LessThan,
        ArithKind::Min => FloatCC::GreaterThan,
    };
    let ty = b.func.dfg.value_type(p);
    let take_q = b.ins().fcmp(cc, p, q);
    let r = b.ins().select(take_q, q, p);
    let unordered = b.ins().fcmp(FloatCC::Unordered, p, q);
    let nan = if ty == types::F32 {
        b.ins().f32const(f32::NAN)
    } else {
        b.ins().f64const(f64::NAN)
    };
    b.ins().select(unordered, nan, r)
}

/// The interpreter's BitShift: in i64 after widening (zero- or sign-extended per type), a shift
/// amount outside `[0, width)` gives 0 (right shift of a negative signed value: −1), then narrowed.
fn shift(b: &mut FunctionBuilder, left: bool, d: DType, p: Value, q: Value) -> Value {
    let ty = b.func.dfg.value_type(p);
    let bits = i64::from(d.bits().clamp(1, 64));
    let a = widen(b, d, p);
    let n = widen(b, d, q);
    // Unsigned amounts compare unsigned (a huge u64 is out of range, not negative).
    let in_range = if d.is_signed_int() {
        let lo = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, n, 0);
        let hi = b.ins().icmp_imm_s(IntCC::SignedLessThan, n, bits);
        b.ins().band(lo, hi)
    } else {
        b.ins().icmp_imm_s(IntCC::UnsignedLessThan, n, bits)
    };
    let shifted = if left {
        b.ins().ishl(a, n)
    } else if d.is_signed_int() {
        b.ins().sshr(a, n)
    } else {
        b.ins().ushr(a, n)
    };
    let out = if !left && d.is_signed_int() {
        let neg = b.ins().icmp_imm_s(IntCC::SignedLessThan, a, 0);
        let m1 = b.ins().iconst(types::I64, -1);
        let z = b.ins().iconst(types::I64, 0);
        b.ins().select(neg, m1, z)
    } else {
        b.ins().iconst(types::I64, 0)
    };
    let r = b.ins().select(in_range, shifted, out);
    if ty == types::I64 {
        r
    } else {
        b.ins().ireduce(ty, r)
    }
}

/// The interpreter's integer `mod`: `x mod 0 = 0`, `MIN mod −1 = 0`; Python-style (not `fmod`) moves
/// a nonzero remainder whose sign differs from the divisor's by one divisor. Never traps.
fn int_mod(b: &mut FunctionBuilder, fmod: bool, signed: bool, p: Value, q: Value) -> Value {
    let ty = b.func.dfg.value_type(p);
    let zero = b.ins().iconst(ty, 0);
    let one = b.ins().iconst(ty, 1);
    let z = b.ins().icmp_imm_s(IntCC::Equal, q, 0);
    if !signed {
        let safe = b.ins().select(z, one, q);
        let r = b.ins().urem(p, safe);
        return b.ins().select(z, zero, r);
    }
    // Divisors 0 and −1 give remainder 0 (srem would trap on 0, and on MIN / −1).
    let m1 = b.ins().icmp_imm_s(IntCC::Equal, q, -1);
    let bad = b.ins().bor(z, m1);
    let safe = b.ins().select(bad, one, q);
    let r = b.ins().srem(p, safe);
    let r = b.ins().select(bad, zero, r);
    if fmod {
        return r;
    }
    let nonzero = b.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
    let rn = b.ins().icmp_imm_s(IntCC::SignedLessThan, r, 0);
    let qn = b.ins().icmp_imm_s(IntCC::SignedLessThan, q, 0);
    let differ = b.ins().bxor(rn, qn);
    let shift = b.ins().band(nonzero, differ);
    let moved = b.ins().iadd(r, q);
    b.ins().select(shift, moved, r)
}

/// numpy integer division: truncating, `x / 0 = 0`, `MIN / −1 = MIN` (wrapping); never traps.
pub(crate) fn int_div(b: &mut FunctionBuilder, signed: bool, p: Value, q: Value) -> Value {
    let ty = b.func.dfg.value_type(p);
    let zero = b.ins().iconst(ty, 0);
    let one = b.ins().iconst(ty, 1);
    let z = b.ins().icmp_imm_s(IntCC::Equal, q, 0);
    if signed {
        let m1 = b.ins().icmp_imm_s(IntCC::Equal, q, -1);
        let bad = b.ins().bor(z, m1);
        let safe = b.ins().select(bad, one, q);
        let r = b.ins().sdiv(p, safe);
        let neg = b.ins().ineg(p);
        let r = b.ins().select(m1, neg, r);
        b.ins().select(z, zero, r)
    } else {
        let safe = b.ins().select(z, one, q);
        let r = b.ins().udiv(p, safe);
        b.ins().select(z, zero, r)
    }
}
