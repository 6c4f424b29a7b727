//! Unary elementwise kernels: math functions, activations, predicates (`is_nan`, `is_inf`), `not`,
//! `bitwise_not` and `clip`. The activation ops (`relu`, `sigmoid`, `gelu`, …) use the activation
//! vocabulary's reference definitions ([`crate::interp::activation`]).
//!
//! Float inputs of any width are computed in f64 and rounded once into the input's type. Ops that ONNX
//! also defines on integers (`abs`, `neg`, `sign`, `relu`, `clip`, `bitwise_not`, and `round`/`ceil`/
//! `floor`, which leave integers unchanged) run natively in i64/u64, wrapping like numpy (`abs(i8::MIN)`
//! is `i8::MIN`); any other op given an integer tensor goes through f64 and truncates back, as numpy's
//! `astype` does in ONNX's reference. NaN propagates wherever numpy propagates it (`relu`, `clip`,
//! `hard_sigmoid`), and follows numpy's `where` where the reference selects (`thresholded_relu`, `shrink`
//! give 0).

use std::f64::consts::{FRAC_2_SQRT_PI, PI};

use carve_ir::ops::activation::Activation;
use carve_ir::ops::elementwise::{ElementwiseOp as E, RoundMode};
use half::{bf16, f16};

use super::Res;
use super::floats::{bf16_of, f16_of, is_small_float, small_float_of};
use super::wrap_small;
use crate::interp::activation;
use crate::interp::util::{from_f64, small_float_to_f32, to_f64, to_i64};
use crate::tensor::{Data, Tensor};

/// Evaluates a unary op (everything in the family with one input except `clip`).
pub fn eval(op: &E, x: &Tensor) -> Res<Tensor> {
    let d = x.dtype();
    let int = d.is_int();
    if let Some(act) = Activation::of_elementwise(op)
        && !(int && matches!(op, E::Relu(_)))
    {
        return map_float(x, move |v| activation::apply(&act, v));
    }
    match op {
        E::Abs(_) if int => map_int(x, i64::wrapping_abs, |u| u),
        E::Abs(_) => map_float(x, f64::abs),
        E::Neg(_) if int => map_int(x, i64::wrapping_neg, u64::wrapping_neg),
        E::Neg(_) => map_float(x, |v| -v),
        E::Sign(_) if int => map_int(x, i64::signum, |u| u64::from(u != 0)),
        E::Sign(_) => map_float(x, |v| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v * 0.0 // ±0 → 0, NaN → NaN
            }
        }),
        E::Relu(_) if int => map_int(x, |v| v.max(0), |u| u),
        E::BitwiseNot(_) => map_int(x, |v| !v, |u| !u),
        E::Not(_) => match &x.data {
            Data::Bool(v) => tensor(x, Data::Bool(v.iter().map(|b| !b).collect())),
            _ => Err(format!("not needs a bool tensor, got {d}")),
        },
        E::Round(_) | E::Ceil(_) | E::Floor(_) if int => Ok(x.clone()),
        E::Round(_) => map_float(x, f64::round_ties_even),
        E::Ceil(_) => map_float(x, f64::ceil),
        E::Floor(_) => map_float(x, f64::floor),
        E::IsNan(_) => predicate(x, f64::is_nan),
        E::IsInf(o) => {
            let (neg, pos) = (o.detect_negative, o.detect_positive);
            predicate(x, move |v| {
                v.is_infinite() && if v > 0.0 { pos } else { neg }
            })
        }
        E::Acos(_) => map_float(x, f64::acos),
        E::Acosh(_) => map_float(x, f64::acosh),
        E::Asin(_) => map_float(x, f64::asin),
        E::Asinh(_) => map_float(x, f64::asinh),
        E::Atan(_) => map_float(x, f64::atan),
        E::Atanh(_) => map_float(x, f64::atanh),
        E::Cos(_) => map_float(x, f64::cos),
        E::Cosh(_) => map_float(x, f64::cosh),
        E::Erf(_) => map_float(x, erf),
        E::Exp(_) => map_float(x, f64::exp),
        E::Log(_) => map_float(x, f64::ln),
        E::Reciprocal(_) => map_float(x, f64::recip),
        E::Sin(_) => map_float(x, f64::sin),
        E::Sinh(_) => map_float(x, f64::sinh),
        E::Sqrt(_) => map_float(x, f64::sqrt),
        E::Tan(_) => map_float(x, f64::tan),
        E::Shrink(o) => {
            let (bias, lambd) = (f64::from(o.bias), f64::from(o.lambd));
            map_float(x, move |v| {
                if v < -lambd {
                    v + bias
                } else if v > lambd {
                    v - bias
                } else {
                    0.0
                }
            })
        }
        _ => Err(format!("{} is not a unary op", op.name())),
    }
}

/// `clip(x, min, max)`: absent bounds do not clip; `min > max` gives `max` everywhere (numpy's
/// `minimum(max, maximum(x, min))`); NaN elements stay NaN.
pub fn clip(x: &Tensor, lo: Option<&Tensor>, hi: Option<&Tensor>) -> Res<Tensor> {
    let d = x.dtype();
    let bound = |t: Option<&Tensor>, what: &str| -> Res<Option<Tensor>> {
        match t {
            None => Ok(None),
            Some(t) if t.dtype() != d => Err(format!(
                "{what} has element type {}, the input {d}",
                t.dtype()
            )),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) if t.len() != 1 => Err(format!(
                "{what} must have one element, it has shape {:?}",
                t.shape
            )),
            Some(t) => Ok(Some(t.clone())),
        }
    };
    let (lo, hi) = (bound(lo, "min")?, bound(hi, "max")?);
    if d.is_int() {
        let get = |t: &Option<Tensor>| -> Res<Option<i64>> {
            match t {
                Some(t) => Ok(to_i64(t).map_err(|e| e.0)?.first().copied()),
                None => Ok(None),
            }
        };
        let (l, h) = (get(&lo)?, get(&hi)?);
        // Unsigned bounds come back from `to_i64` bit-preserved (u64 wraps), so `as u64` restores them.
        map_int(
            x,
            |v| {
                let v = l.map_or(v, |l| v.max(l));
                h.map_or(v, |h| v.min(h))
            },
            |u| {
                let u = l.map_or(u, |l| u.max(l as u64));
                h.map_or(u, |h| u.min(h as u64))
            },
        )
    } else {
        let get = |t: &Option<Tensor>| -> Res<Option<f64>> {
            match t {
                Some(t) => Ok(to_f64(t).map_err(|e| e.0)?.first().copied()),
                None => Ok(None),
            }
        };
        let (l, h) = (get(&lo)?, get(&hi)?);
        map_float(x, |v| {
            let mut v = v;
            if let Some(l) = l
                && v < l
            {
                v = l;
            }
            if let Some(h) = h
                && v > h
            {
                v = h;
            }
            v
        })
    }
}

fn tensor(like: &Tensor, data: Data) -> Res<Tensor> {
    Tensor::new(like.shape.clone(), data).map_err(|e| e.0)
}

/// The error function, to about 1e-15 relative: for |x| < 2.5 the all-positive series
/// `erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (2n+1)!!`, above it `1 − erfc(x)` with erfc from its
/// continued fraction (Lentz's method); |x| ≥ 6 gives ±1 (erfc(6) < 2.2e-17).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        let a2 = a * a;
        let mut term = a;
        let mut sum = a;
        let mut n = 0u32;
        while n < 200 {
            n += 1;
            term *= 2.0 * a2 / f64::from(2 * n + 1);
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        FRAC_2_SQRT_PI * (-a2).exp() * sum
    } else if a < 6.0 {
        1.0 - erfc_cf(a)
    } else {
        1.0
    };
    r.copysign(x)
}

/// `erfc(x)` for x ≥ 2.5 from `erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …))))`.
fn erfc_cf(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..2000u32 {
        let a = f64::from(k) / 2.0;
        d = x + a * d;
        if d.abs() < TINY {
            d = TINY;
        }
        d = 1.0 / d;
        c = x + a / c;
        if c.abs() < TINY {
            c = TINY;
        }
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (PI.sqrt() * f)
}

/// Applies `f` (computed in f64) to a float tensor, rounding once into its type; integer and bool
/// tensors go through f64 and truncate back (numpy `astype`).
pub(crate) fn map_float(t: &Tensor, f: impl Fn(f64) -> f64) -> Res<Tensor> {
    let data = match &t.data {
        Data::F32(v) => Data::F32(v.iter().map(|&x| f(f64::from(x)) as f32).collect()),
        Data::F64(v) => Data::F64(v.iter().map(|&x| f(x)).collect()),
        Data::F16(v) => Data::F16(v.iter().map(|x: &f16| f16_of(f(x.to_f64()))).collect()),
        Data::BF16(v) => Data::BF16(v.iter().map(|x: &bf16| bf16_of(f(x.to_f64()))).collect()),
        Data::Small(d, v) if is_small_float(*d) => Data::Small(
            *d,
            v.iter()
                .map(|&b| {
                    let y = f(f64::from(small_float_to_f32(*d, b)));
                    small_float_of(*d, y, false, RoundMode::Nearest).unwrap_or(0)
                })
                .collect(),
        ),
        Data::Str(_) | Data::C64(_) | Data::C128(_) => {
            return Err(format!("needs a real number tensor, got {}", t.dtype()));
        }
        _ => {
            let xs = to_f64(t).map_err(|e| e.0)?;
            let ys: Vec<f64> = xs.into_iter().map(f).collect();
            return from_f64(t.dtype(), t.shape.clone(), &ys).map_err(|e| e.0);
        }
    };
    tensor(t, data)
}

/// Applies `fi` (signed, in i64) or `fu` (unsigned, in u64) to an integer tensor, wrapping the result to
/// its width.
pub(crate) fn map_int(t: &Tensor, fi: impl Fn(i64) -> i64, fu: impl Fn(u64) -> u64) -> Res<Tensor> {
    let data = match &t.data {
        Data::I64(v) => Data::I64(v.iter().map(|&x| fi(x)).collect()),
        Data::I32(v) => Data::I32(v.iter().map(|&x| fi(x.into()) as i32).collect()),
        Data::I16(v) => Data::I16(v.iter().map(|&x| fi(x.into()) as i16).collect()),
        Data::I8(v) => Data::I8(v.iter().map(|&x| fi(x.into()) as i8).collect()),
        Data::U64(v) => Data::U64(v.iter().map(|&x| fu(x)).collect()),
        Data::U32(v) => Data::U32(v.iter().map(|&x| fu(x.into()) as u32).collect()),
        Data::U16(v) => Data::U16(v.iter().map(|&x| fu(x.into()) as u16).collect()),
        Data::U8(v) => Data::U8(v.iter().map(|&x| fu(x.into()) as u8).collect()),
        Data::Small(d, v) if d.is_signed_int() => {
            let bits = d.bits();
            Data::Small(
                *d,
                v.iter()
                    .map(|&x| wrap_small(bits, true, fi(i64::from(x as i8))))
                    .collect(),
            )
        }
        Data::Small(d, v) if d.is_unsigned_int() => {
            let bits = d.bits();
            Data::Small(
                *d,
                v.iter()
                    .map(|&x| wrap_small(bits, false, fu(u64::from(x)) as i64))
                    .collect(),
            )
        }
        _ => return Err(format!("needs an integer tensor, got {}", t.dtype())),
    };
    tensor(t, data)
}

/// A bool tensor of `p` over a real tensor's elements (integers are never NaN or infinite).
fn predicate(t: &Tensor, p: impl Fn(f64) -> bool) -> Res<Tensor> {
    let v = to_f64(t).map_err(|e| e.0)?;
    tensor(t, Data::Bool(v.into_iter().map(p).collect()))
}
