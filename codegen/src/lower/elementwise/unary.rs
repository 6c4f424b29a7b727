//! f32 unary functions of the elementwise family ([`Un`]) and their one lowering ([`un`]), the
//! activations of the IR vocabulary included ([`act_un`]).

use super::*;

/// An f32 unary function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Un {
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `√x`.
    Sqrt,
    /// `x^0.5` (as `√x`, but `(−0)^0.5 = +0` and `(−∞)^0.5 = +∞`).
    PowHalf,
    /// `1/x`.
    Recip,
    /// `−x`.
    Neg,
    /// `|x|`.
    Abs,
    /// Error function.
    Erf,
    /// `tanh x`.
    Tanh,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `x < 0 ? 0 : x`.
    Relu,
    /// `x < 0 ? αx : x`.
    LeakyRelu(f32),
    /// `clamp(αx + β, 0, 1)`.
    HardSigmoid(f32, f32),
    /// `x · clamp(x/6 + 1/2, 0, 1)`.
    HardSwish,
    /// `x/2 · (1 + erf(x/√2))`.
    GeluErf,
    /// `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`.
    GeluTanh,
    /// `x · sigmoid(αx)`.
    Swish(f32),
    /// `ln(1 + eˣ)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x · tanh(softplus(x))`.
    Mish,
    /// `x < 0 ? α(eˣ − 1) : x`.
    Elu(f32),
    /// `x ≤ 0 ? γα(eˣ − 1) : γx`.
    Selu(f32, f32),
    /// `max(0, x) + min(0, α(e^{x/α} − 1))`.
    Celu(f32),
    /// `x > α ? x : 0`.
    ThresholdedRelu(f32),
    /// `x < −λ ? x + b : x > λ ? x − b : 0` (bias, lambda).
    Shrink(f32, f32),
    /// −1, 0 or 1 (NaN stays NaN).
    Sign,
    /// Round down.
    Floor,
    /// Round up.
    Ceil,
    /// Round to nearest, ties to even.
    Round,
    /// `xⁿ` for a small integer `n`.
    PowI(i32),
}

/// Emits `op(x)` (the one lowering of each f32 unary function, activations included).
pub(crate) fn un(b: &mut FunctionBuilder, fx: Fx, op: Un, x: Value) -> Value {
    match op {
        Un::Exp => fx.exp(b, x),
        Un::Log => fx.log(b, x),
        Un::Sqrt => b.ins().sqrt(x),
        Un::PowHalf => {
            let s = b.ins().sqrt(x);
            let s = fx.addk(b, s, 0.0); // −0 → +0
            let ninf = fx.cmpk(b, FloatCC::Equal, x, f32::NEG_INFINITY);
            fx.selk(b, ninf, f32::INFINITY, s)
        }
        Un::Recip => {
            let one = fx.c(b, 1.0);
            b.ins().fdiv(one, x)
        }
        Un::Neg => b.ins().fneg(x),
        Un::Abs => b.ins().fabs(x),
        Un::Erf => fx.erf(b, x),
        Un::Tanh => fx.tanh(b, x),
        Un::Sigmoid => fx.sigmoid(b, x),
        Un::Relu => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            fx.selk(b, m, 0.0, x)
        }
        Un::LeakyRelu(a) => {
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let ax = fx.mulk(b, x, a);
            fx.sel(b, m, ax, x)
        }
        Un::HardSigmoid(a, c) => {
            let k = fx.c(b, a);
            let v = fx.maddk(b, x, k, c);
            clamp01(b, fx, v)
        }
        Un::HardSwish => {
            let k = fx.c(b, 1.0 / 6.0);
            let v = fx.maddk(b, x, k, 0.5);
            let v = clamp01(b, fx, v);
            b.ins().fmul(x, v)
        }
        Un::GeluErf => fx.gelu_erf(b, x),
        Un::GeluTanh => fx.gelu_tanh(b, x),
        Un::Swish(a) => {
            let ax = if a == 1.0 { x } else { fx.mulk(b, x, a) };
            let s = fx.sigmoid(b, ax);
            b.ins().fmul(x, s)
        }
        Un::Softplus => softplus(b, fx, x),
        Un::Softsign => {
            let a = b.ins().fabs(x);
            let d = fx.addk(b, a, 1.0);
            b.ins().fdiv(x, d)
        }
        Un::Mish => {
            let s = softplus(b, fx, x);
            let t = fx.tanh(b, s);
            b.ins().fmul(x, t)
        }
        Un::Elu(a) => {
            let e = fx.exp(b, x);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a);
            let m = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            fx.sel(b, m, e, x)
        }
        Un::Selu(a, g) => {
            let e = fx.exp(b, x);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a * g);
            let gx = fx.mulk(b, x, g);
            let m = fx.cmpk(b, FloatCC::LessThanOrEqual, x, 0.0);
            fx.sel(b, m, e, gx)
        }
        Un::Celu(a) => {
            let t = fx.mulk(b, x, 1.0 / a);
            let e = fx.exp(b, t);
            let e = fx.addk(b, e, -1.0);
            let e = fx.mulk(b, e, a);
            let z = fx.c(b, 0.0);
            let neg = b.ins().fmin(e, z);
            let pos = b.ins().fmax(x, z);
            b.ins().fadd(pos, neg)
        }
        Un::ThresholdedRelu(a) => {
            let m = fx.cmpk(b, FloatCC::GreaterThan, x, a);
            let z = fx.c(b, 0.0);
            fx.sel(b, m, x, z)
        }
        Un::Shrink(bias, lambd) => {
            let lo = fx.cmpk(b, FloatCC::LessThan, x, -lambd);
            let hi = fx.cmpk(b, FloatCC::GreaterThan, x, lambd);
            let xp = fx.addk(b, x, bias);
            let xm = fx.addk(b, x, -bias);
            let z = fx.c(b, 0.0);
            let r = fx.sel(b, hi, xm, z);
            fx.sel(b, lo, xp, r)
        }
        Un::Sign => {
            let pos = fx.cmpk(b, FloatCC::GreaterThan, x, 0.0);
            let neg = fx.cmpk(b, FloatCC::LessThan, x, 0.0);
            let z = fx.mulk(b, x, 0.0); // ±0 → ±0 (compares equal to 0), NaN → NaN
            let r = fx.selk(b, neg, -1.0, z);
            fx.selk(b, pos, 1.0, r)
        }
        Un::Floor => b.ins().floor(x),
        Un::Ceil => b.ins().ceil(x),
        Un::Round => b.ins().nearest(x),
        Un::PowI(n) => powi(b, fx, x, n),
    }
}

/// The unary function computing activation `act`, when it is one (`none`, `clip`, `affine` and
/// `scaled_tanh` are not: they are compositions, lowered by the fused epilogue).
pub(crate) fn act_un(act: &Activation) -> Option<Un> {
    let (a, b) = (act.alpha, act.beta);
    Some(match act.kind {
        ActKind::Relu => Un::Relu,
        ActKind::LeakyRelu => Un::LeakyRelu(a),
        ActKind::HardSigmoid => Un::HardSigmoid(a, b),
        ActKind::HardSwish => Un::HardSwish,
        ActKind::Sigmoid => Un::Sigmoid,
        ActKind::Tanh => Un::Tanh,
        ActKind::GeluErf => Un::GeluErf,
        ActKind::GeluTanh => Un::GeluTanh,
        ActKind::Silu => Un::Swish(a),
        ActKind::ThresholdedRelu => Un::ThresholdedRelu(a),
        ActKind::Elu => Un::Elu(a),
        ActKind::Selu => Un::Selu(a, b),
        ActKind::Celu => Un::Celu(a),
        ActKind::Softsign => Un::Softsign,
        ActKind::Softplus => Un::Softplus,
        ActKind::Mish => Un::Mish,
        ActKind::None | ActKind::Clip | ActKind::Affine | ActKind::ScaledTanh => return None,
    })
}

/// numpy `maximum(0, minimum(1, v))` (NaN stays NaN).
pub(crate) fn clamp01(b: &mut FunctionBuilder, fx: Fx, v: Value) -> Value {
    let z = fx.c(b, 0.0);
    let o = fx.c(b, 1.0);
    let v = fx.clamp_hi(b, v, o);
    fx.clamp_lo(b, v, z)
}

/// `ln(1 + eˣ)` = `max(x, 0) + ln(1 + e^{−|x|})`.
pub(crate) fn softplus(b: &mut FunctionBuilder, fx: Fx, x: Value) -> Value {
    let a = b.ins().fabs(x);
    let na = b.ins().fneg(a);
    let e = fx.exp(b, na);
    let l = fx.log1p_pos(b, e);
    let z = fx.c(b, 0.0);
    let m = b.ins().fmax(x, z);
    b.ins().fadd(m, l)
}

/// `xⁿ` by repeated squaring; negative `n` divides once at the end.
pub(crate) fn powi(b: &mut FunctionBuilder, fx: Fx, x: Value, n: i32) -> Value {
    if n == 0 {
        return fx.c(b, 1.0);
    }
    let mut e = n.unsigned_abs();
    let mut base = x;
    let mut acc: Option<Value> = None;
    while e > 0 {
        if e & 1 == 1 {
            acc = Some(match acc {
                None => base,
                Some(a) => b.ins().fmul(a, base),
            });
        }
        e >>= 1;
        if e > 0 {
            base = b.ins().fmul(base, base);
        }
    }
    let r = acc.unwrap_or(x);
    if n < 0 {
        let one = fx.c(b, 1.0);
        b.ins().fdiv(one, r)
    } else {
        r
    }
}
