//! f32 binary functions of the elementwise family ([`Bin`]) and their lowering ([`bin`]).

use super::*;

/// An f32 binary function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// numpy `maximum` (NaN propagates).
    Max,
    /// numpy `minimum` (NaN propagates).
    Min,
    /// `aᵇ`.
    Pow,
    /// `a < 0 ? a·b : a`.
    PRelu,
    /// `a < b ? b : a` (clip's lower bound).
    ClipLo,
    /// `a > b ? b : a` (clip's upper bound).
    ClipHi,
}

pub(crate) fn bin(b: &mut FunctionBuilder, fx: Fx, op: Bin, x: Value, y: Value) -> Value {
    match op {
        Bin::Add => b.ins().fadd(x, y),
        Bin::Sub => b.ins().fsub(x, y),
        Bin::Mul => b.ins().fmul(x, y),
        Bin::Div => b.ins().fdiv(x, y),
        Bin::Max => b.ins().fmax(x, y),
        Bin::Min => b.ins().fmin(x, y),
        Bin::Pow => fx.pow(b, x, y),
        Bin::PRelu => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let p = b.ins().fmul(x, y);
            fx.sel(b, m, p, x)
        }
        Bin::ClipLo => fx.clamp_lo(b, x, y),
        Bin::ClipHi => fx.clamp_hi(b, x, y),
    }
}
