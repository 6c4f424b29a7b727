//! Broadcasting (numpy) binary and variadic kernels: arithmetic, `pow`, `mod`, bit shifts, bitwise and
//! logical ops, comparisons, `prelu`, `max`/`min`/`sum`/`mean` and `where`.
//!
//! Integer semantics are numpy's, as in ONNX's reference: arithmetic wraps at the type's width; `div`
//! truncates toward zero; `mod` takes the divisor's sign (Python `%`) unless `fmod`, which takes the
//! dividend's (C `%`); division and remainder by zero give 0. Shifts by a negative amount or by the bit
//! width or more give 0 (−1 for a right shift of a negative value). Float `max`/`min` propagate NaN
//! (numpy `maximum`/`minimum`); comparisons with NaN are false. `pow` keeps the base's type: an integer
//! base with an integer exponent is an exact wrapping power (a negative exponent truncates `1/bⁿ`: 1 for
//! a base of 1, ±1 for −1, else 0), any float operand makes it a float power truncated back.

use std::cmp::Ordering;

use carve_ir::ops::elementwise::{ElementwiseOp as E, RoundMode};
use half::{bf16, f16};

use super::floats::{bf16_of, f16_of, is_small_float, small_float_of};
use super::unary::map_float;
use super::{Res, runs, wrap_small, zip2};
use crate::interp::util::{
    broadcast_shape, checked_numel, from_f64, from_i64, small_float_to_f32, to_f64, to_i64,
};
use crate::tensor::{Data, Tensor};

/// The output shape and element count of broadcasting `shapes` together.
fn out_shape(shapes: &[&[usize]]) -> Res<(Vec<usize>, usize)> {
    let mut out: Vec<usize> = Vec::new();
    for s in shapes {
        out = broadcast_shape(&out, s).map_err(|e| e.0)?;
    }
    let n = checked_numel(&out).map_err(|e| e.0)?;
    Ok((out, n))
}

fn same_dtype(a: &Tensor, b: &Tensor) -> Res<()> {
    if a.dtype() != b.dtype() {
        return Err(format!(
            "operands have different element types {} and {}",
            a.dtype(),
            b.dtype()
        ));
    }
    Ok(())
}

/// One arithmetic op on the three computation domains. Integer functions get the operand width in bits
/// and return a value that is wrapped to that width afterwards.
pub trait Arith {
    /// The op on reals (all float types).
    fn f(&self, a: f64, b: f64) -> f64;
    /// The op on signed integers.
    fn i(&self, a: i64, b: i64, bits: u32) -> i64;
    /// The op on unsigned integers.
    fn u(&self, a: u64, b: u64, bits: u32) -> u64;
    /// False for integer-only ops.
    fn floats(&self) -> bool {
        true
    }
}

/// `a + b`.
pub struct Add;
/// `a − b`.
pub struct Sub;
/// `a · b`.
pub struct Mul;
/// `a / b`.
pub struct Div;
/// Remainder; see the module doc.
pub struct Mod {
    /// C-style (`fmod`) instead of Python-style.
    pub fmod: bool,
}
/// Bit shift.
pub struct Shift {
    /// Left (else right).
    pub left: bool,
}
/// numpy `maximum`.
pub struct Max;
/// numpy `minimum`.
pub struct Min;
/// `a < 0 ? a·b : a`.
pub struct PRelu;
/// A bitwise op on integer bit patterns.
pub struct Bits<F: Fn(u64, u64) -> u64>(pub F);

impl Arith for Add {
    fn f(&self, a: f64, b: f64) -> f64 {
        a + b
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        a.wrapping_add(b)
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.wrapping_add(b)
    }
}

impl Arith for Sub {
    fn f(&self, a: f64, b: f64) -> f64 {
        a - b
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        a.wrapping_sub(b)
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.wrapping_sub(b)
    }
}

impl Arith for Mul {
    fn f(&self, a: f64, b: f64) -> f64 {
        a * b
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        a.wrapping_mul(b)
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.wrapping_mul(b)
    }
}

impl Arith for Div {
    fn f(&self, a: f64, b: f64) -> f64 {
        a / b
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        if b == 0 { 0 } else { a.wrapping_div(b) }
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.checked_div(b).unwrap_or(0)
    }
}

impl Arith for Mod {
    fn f(&self, a: f64, b: f64) -> f64 {
        let r = a % b;
        if self.fmod {
            r
        } else if r == 0.0 {
            0f64.copysign(b)
        } else if (r < 0.0) != (b < 0.0) {
            r + b
        } else {
            r
        }
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        if b == 0 {
            return 0;
        }
        let r = a.wrapping_rem(b);
        if !self.fmod && r != 0 && (r < 0) != (b < 0) {
            r + b
        } else {
            r
        }
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.checked_rem(b).unwrap_or(0)
    }
}

impl Arith for Shift {
    fn f(&self, _: f64, _: f64) -> f64 {
        f64::NAN
    }
    fn i(&self, a: i64, b: i64, bits: u32) -> i64 {
        let in_range = (0..i64::from(bits)).contains(&b);
        match (self.left, in_range) {
            (true, true) => a.wrapping_shl(b as u32),
            (true, false) => 0,
            (false, true) => a >> b,
            (false, false) => {
                if a < 0 {
                    -1
                } else {
                    0
                }
            }
        }
    }
    fn u(&self, a: u64, b: u64, bits: u32) -> u64 {
        if b >= u64::from(bits) {
            0
        } else if self.left {
            a.wrapping_shl(b as u32)
        } else {
            a >> b
        }
    }
    fn floats(&self) -> bool {
        false
    }
}

impl Arith for Max {
    fn f(&self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.max(b)
        }
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        a.max(b)
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.max(b)
    }
}

impl Arith for Min {
    fn f(&self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        a.min(b)
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        a.min(b)
    }
}

impl Arith for PRelu {
    fn f(&self, a: f64, b: f64) -> f64 {
        if a < 0.0 { a * b } else { a }
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        if a < 0 { a.wrapping_mul(b) } else { a }
    }
    fn u(&self, a: u64, _: u64, _: u32) -> u64 {
        a
    }
}

impl<F: Fn(u64, u64) -> u64> Arith for Bits<F> {
    fn f(&self, _: f64, _: f64) -> f64 {
        f64::NAN
    }
    fn i(&self, a: i64, b: i64, _: u32) -> i64 {
        (self.0)(a as u64, b as u64) as i64
    }
    fn u(&self, a: u64, b: u64, _: u32) -> u64 {
        (self.0)(a, b)
    }
    fn floats(&self) -> bool {
        false
    }
}

/// `op(a, b)` with broadcasting; both operands have one element type, which the result keeps.
pub fn arith(a: &Tensor, b: &Tensor, op: &impl Arith) -> Res<Tensor> {
    same_dtype(a, b)?;
    let d = a.dtype();
    if !op.floats() && !d.is_int() {
        return Err(format!("needs integer operands, got {d}"));
    }
    let (out, n) = out_shape(&[&a.shape, &b.shape])?;
    let bits = d.bits();
    macro_rules! z {
        ($x:expr, $y:expr, $f:expr) => {
            zip2($x, &a.shape, $y, &b.shape, &out, n, $f)
        };
    }
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(z!(x, y, |&p, &q| {
            op.f(f64::from(p), f64::from(q)) as f32
        })),
        (Data::F64(x), Data::F64(y)) => Data::F64(z!(x, y, |&p, &q| op.f(p, q))),
        (Data::F16(x), Data::F16(y)) => Data::F16(z!(x, y, |p: &f16, q: &f16| {
            f16_of(op.f(p.to_f64(), q.to_f64()))
        })),
        (Data::BF16(x), Data::BF16(y)) => Data::BF16(z!(x, y, |p: &bf16, q: &bf16| {
            bf16_of(op.f(p.to_f64(), q.to_f64()))
        })),
        (Data::I64(x), Data::I64(y)) => Data::I64(z!(x, y, |&p, &q| op.i(p, q, bits))),
        (Data::I32(x), Data::I32(y)) => {
            Data::I32(z!(x, y, |&p, &q| op.i(p.into(), q.into(), bits) as i32))
        }
        (Data::I16(x), Data::I16(y)) => {
            Data::I16(z!(x, y, |&p, &q| op.i(p.into(), q.into(), bits) as i16))
        }
        (Data::I8(x), Data::I8(y)) => {
            Data::I8(z!(x, y, |&p, &q| op.i(p.into(), q.into(), bits) as i8))
        }
        (Data::U64(x), Data::U64(y)) => Data::U64(z!(x, y, |&p, &q| op.u(p, q, bits))),
        (Data::U32(x), Data::U32(y)) => {
            Data::U32(z!(x, y, |&p, &q| op.u(p.into(), q.into(), bits) as u32))
        }
        (Data::U16(x), Data::U16(y)) => {
            Data::U16(z!(x, y, |&p, &q| op.u(p.into(), q.into(), bits) as u16))
        }
        (Data::U8(x), Data::U8(y)) => {
            Data::U8(z!(x, y, |&p, &q| op.u(p.into(), q.into(), bits) as u8))
        }
        (Data::Small(d, x), Data::Small(_, y)) if d.is_signed_int() => Data::Small(
            *d,
            z!(x, y, |&p, &q| {
                wrap_small(
                    bits,
                    true,
                    op.i(i64::from(p as i8), i64::from(q as i8), bits),
                )
            }),
        ),
        (Data::Small(d, x), Data::Small(_, y)) if d.is_unsigned_int() => Data::Small(
            *d,
            z!(x, y, |&p, &q| {
                wrap_small(bits, false, op.u(p.into(), q.into(), bits) as i64)
            }),
        ),
        (Data::Small(d, x), Data::Small(_, y)) if is_small_float(*d) => Data::Small(
            *d,
            z!(x, y, |&p, &q| {
                let r = op.f(
                    f64::from(small_float_to_f32(*d, p)),
                    f64::from(small_float_to_f32(*d, q)),
                );
                small_float_of(*d, r, false, RoundMode::Nearest).unwrap_or(0)
            }),
        ),
        _ => return Err(format!("no arithmetic on {d} tensors")),
    };
    Tensor::new(out, data).map_err(|e| e.0)
}

/// `a & b`, `a | b`, `a ^ b` on integers.
pub fn bitwise(a: &Tensor, b: &Tensor, f: fn(u64, u64) -> u64) -> Res<Tensor> {
    arith(a, b, &Bits(f))
}

/// `prelu(x, slope)`.
pub fn prelu(x: &Tensor, slope: &Tensor) -> Res<Tensor> {
    arith(x, slope, &PRelu)
}

/// `a ^ b`; the result has the base's element type (see the module doc).
pub fn pow(a: &Tensor, b: &Tensor) -> Res<Tensor> {
    let (out, n) = out_shape(&[&a.shape, &b.shape])?;
    let (sa, sb) = (&a.shape[..], &b.shape[..]);
    let (da, db) = (a.dtype(), b.dtype());
    if da.is_int() && db.is_int() {
        let x = to_i64(a).map_err(|e| e.0)?;
        let y = to_i64(b).map_err(|e| e.0)?;
        let signed = da.is_signed_int();
        let unsigned_exp = db.is_unsigned_int();
        let v = zip2(&x, sa, &y, sb, &out, n, |&p, &q| {
            int_pow(p, q, signed, unsigned_exp)
        });
        return from_i64(da, out, &v).map_err(|e| e.0);
    }
    let y = to_f64(b).map_err(|e| e.0)?;
    let data = match &a.data {
        Data::F32(x) => Data::F32(zip2(x, sa, &y, sb, &out, n, |&p, &q| {
            f64::from(p).powf(q) as f32
        })),
        Data::F64(x) => Data::F64(zip2(x, sa, &y, sb, &out, n, |&p, &q| p.powf(q))),
        Data::F16(x) => Data::F16(zip2(x, sa, &y, sb, &out, n, |p: &f16, &q| {
            f16_of(p.to_f64().powf(q))
        })),
        Data::BF16(x) => Data::BF16(zip2(x, sa, &y, sb, &out, n, |p: &bf16, &q| {
            bf16_of(p.to_f64().powf(q))
        })),
        Data::Small(d, x) if is_small_float(*d) => Data::Small(
            *d,
            zip2(x, sa, &y, sb, &out, n, |&p, &q| {
                let r = f64::from(small_float_to_f32(*d, p)).powf(q);
                small_float_of(*d, r, false, RoundMode::Nearest).unwrap_or(0)
            }),
        ),
        _ if da.is_int() => {
            let x = to_f64(a).map_err(|e| e.0)?;
            let v = zip2(&x, sa, &y, sb, &out, n, |&p, &q| p.powf(q));
            return from_f64(da, out, &v).map_err(|e| e.0);
        }
        _ => return Err(format!("pow needs a numeric base, got {da}")),
    };
    Tensor::new(out, data).map_err(|e| e.0)
}

/// Wrapping integer power (two's-complement bits, so the same for signed and unsigned bases).
fn int_pow(base: i64, exp: i64, signed_base: bool, unsigned_exp: bool) -> i64 {
    if exp < 0 && !unsigned_exp {
        return match base {
            1 => 1,
            -1 if signed_base => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let mut e = exp as u64;
    let mut b = base;
    let mut r: i64 = 1;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

/// Logical `f(a, b)` of bool tensors.
pub fn logic(a: &Tensor, b: &Tensor, f: fn(bool, bool) -> bool) -> Res<Tensor> {
    let (out, n) = out_shape(&[&a.shape, &b.shape])?;
    match (&a.data, &b.data) {
        (Data::Bool(x), Data::Bool(y)) => {
            let v = zip2(x, &a.shape, y, &b.shape, &out, n, |&p, &q| f(p, q));
            Tensor::new(out, Data::Bool(v)).map_err(|e| e.0)
        }
        _ => Err(format!(
            "needs bool operands, got {} and {}",
            a.dtype(),
            b.dtype()
        )),
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
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

impl Cmp {
    fn holds(self, o: Option<Ordering>) -> bool {
        matches!(
            (self, o),
            (Cmp::Eq, Some(Ordering::Equal))
                | (Cmp::Gt, Some(Ordering::Greater))
                | (Cmp::Ge, Some(Ordering::Greater | Ordering::Equal))
                | (Cmp::Lt, Some(Ordering::Less))
                | (Cmp::Le, Some(Ordering::Less | Ordering::Equal))
        )
    }
}

/// `a <op> b` → bool, with broadcasting; any element type for `Eq` (strings, bools, complex), real
/// ones for the orderings. NaN compares false.
pub fn compare(a: &Tensor, b: &Tensor, c: Cmp) -> Res<Tensor> {
    same_dtype(a, b)?;
    let (out, n) = out_shape(&[&a.shape, &b.shape])?;
    let (sa, sb) = (&a.shape[..], &b.shape[..]);
    macro_rules! z {
        ($x:expr, $y:expr) => {
            zip2($x, sa, $y, sb, &out, n, |p, q| c.holds(p.partial_cmp(q)))
        };
    }
    let v = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => z!(x, y),
        (Data::F64(x), Data::F64(y)) => z!(x, y),
        (Data::F16(x), Data::F16(y)) => z!(x, y),
        (Data::BF16(x), Data::BF16(y)) => z!(x, y),
        (Data::I64(x), Data::I64(y)) => z!(x, y),
        (Data::I32(x), Data::I32(y)) => z!(x, y),
        (Data::I16(x), Data::I16(y)) => z!(x, y),
        (Data::I8(x), Data::I8(y)) => z!(x, y),
        (Data::U64(x), Data::U64(y)) => z!(x, y),
        (Data::U32(x), Data::U32(y)) => z!(x, y),
        (Data::U16(x), Data::U16(y)) => z!(x, y),
        (Data::U8(x), Data::U8(y)) => z!(x, y),
        (Data::Bool(x), Data::Bool(y)) => z!(x, y),
        (Data::Str(x), Data::Str(y)) => z!(x, y),
        (Data::Small(d, x), Data::Small(_, y)) if d.is_signed_int() => {
            zip2(x, sa, y, sb, &out, n, |&p, &q| {
                c.holds((p as i8).partial_cmp(&(q as i8)))
            })
        }
        (Data::Small(d, x), Data::Small(_, y)) if d.is_unsigned_int() => z!(x, y),
        (Data::Small(d, x), Data::Small(_, y)) => zip2(x, sa, y, sb, &out, n, |&p, &q| {
            c.holds(small_float_to_f32(*d, p).partial_cmp(&small_float_to_f32(*d, q)))
        }),
        (Data::C64(x), Data::C64(y)) if c == Cmp::Eq => zip2(x, sa, y, sb, &out, n, |p, q| p == q),
        (Data::C128(x), Data::C128(y)) if c == Cmp::Eq => {
            zip2(x, sa, y, sb, &out, n, |p, q| p == q)
        }
        _ => return Err(format!("cannot order {} values", a.dtype())),
    };
    Tensor::new(out, Data::Bool(v)).map_err(|e| e.0)
}

/// `max`, `min`, `sum`, `mean` of one or more inputs, broadcasting all of them; folded left to right
/// with one rounding per step (as numpy and ONNX Runtime accumulate), `mean` dividing at the end.
pub fn variadic(op: &E, xs: &[&Tensor]) -> Res<Tensor> {
    let Some((first, rest)) = xs.split_first() else {
        return Err("needs at least one input".into());
    };
    let mut acc = (*first).clone();
    for x in rest {
        acc = match op {
            E::Max(_) => arith(&acc, x, &Max)?,
            E::Min(_) => arith(&acc, x, &Min)?,
            _ => arith(&acc, x, &Add)?,
        };
    }
    if let E::Mean(_) = op {
        let k = xs.len() as f64;
        if acc.dtype().is_int() {
            return Err(format!("mean needs float inputs, got {}", acc.dtype()));
        }
        acc = map_float(&acc, |v| v / k)?;
    }
    Ok(acc)
}

/// `cond ? x : y`, broadcasting all three.
pub fn where_(c: &Tensor, x: &Tensor, y: &Tensor) -> Res<Tensor> {
    let Data::Bool(cv) = &c.data else {
        return Err(format!("the condition must be bool, got {}", c.dtype()));
    };
    same_dtype(x, y)?;
    let (out, n) = out_shape(&[&c.shape, &x.shape, &y.shape])?;
    macro_rules! pick {
        ($p:expr, $q:expr) => {{
            let mut v = Vec::with_capacity(n);
            runs(&out, [&c.shape, &x.shape, &y.shape], |o, s, len| {
                for j in 0..len {
                    v.push(if cv[o[0] + j * s[0]] {
                        $p[o[1] + j * s[1]].clone()
                    } else {
                        $q[o[2] + j * s[2]].clone()
                    });
                }
            });
            v
        }};
    }
    let data = match (&x.data, &y.data) {
        (Data::F32(p), Data::F32(q)) => Data::F32(pick!(p, q)),
        (Data::F64(p), Data::F64(q)) => Data::F64(pick!(p, q)),
        (Data::F16(p), Data::F16(q)) => Data::F16(pick!(p, q)),
        (Data::BF16(p), Data::BF16(q)) => Data::BF16(pick!(p, q)),
        (Data::I64(p), Data::I64(q)) => Data::I64(pick!(p, q)),
        (Data::I32(p), Data::I32(q)) => Data::I32(pick!(p, q)),
        (Data::I16(p), Data::I16(q)) => Data::I16(pick!(p, q)),
        (Data::I8(p), Data::I8(q)) => Data::I8(pick!(p, q)),
        (Data::U64(p), Data::U64(q)) => Data::U64(pick!(p, q)),
        (Data::U32(p), Data::U32(q)) => Data::U32(pick!(p, q)),
        (Data::U16(p), Data::U16(q)) => Data::U16(pick!(p, q)),
        (Data::U8(p), Data::U8(q)) => Data::U8(pick!(p, q)),
        (Data::Bool(p), Data::Bool(q)) => Data::Bool(pick!(p, q)),
        (Data::Str(p), Data::Str(q)) => Data::Str(pick!(p, q)),
        (Data::Small(d, p), Data::Small(_, q)) => Data::Small(*d, pick!(p, q)),
        (Data::C64(p), Data::C64(q)) => Data::C64(pick!(p, q)),
        (Data::C128(p), Data::C128(q)) => Data::C128(pick!(p, q)),
        _ => return Err(format!("where cannot select {} values", x.dtype())),
    };
    Tensor::new(out, data).map_err(|e| e.0)
}
