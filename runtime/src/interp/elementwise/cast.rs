//! `cast` (ONNX Cast and CastLike) between every pair of element types, and `bitcast`.
//!
//! Conversions follow ONNX's reference (numpy `astype` plus ml_dtypes):
//! - to a float type: one round-to-nearest-even from the exact source value (integers beyond 2^53
//!   going to f16/bf16/8-bit floats round twice, through f64); 8-bit float targets honour `saturate`
//!   (out-of-range and ±∞ become ±max, else ±∞ or NaN), `f4e2m1` always saturates, `f8e8m0` uses
//!   ONNX's `round_mode` rule on the value rounded to f32;
//! - float to integer: truncation toward zero, then wrapping to the target width (numpy's behaviour for
//!   values inside i64). ONNX leaves the rest undefined; here NaN gives 0 (as ml_dtypes does), ±∞ and
//!   values outside i64 become i64::MIN first (as numpy on x86), so 0 in narrower types; u64 targets
//!   take values up to 2^64 directly;
//! - integer to integer (including the 4- and 2-bit ones): two's-complement wrapping;
//! - to bool: `x != 0` (NaN is true); bool to numbers: 0/1;
//! - to string: numpy's formatting: integers in decimal, bools `True`/`False`, floats with the shortest
//!   digits that round-trip in the source type, positional when `1e-4 <= |x| < 10^k` (k = 16 for f64, 6
//!   for f32, 3 for f16; bf16 and the 8-/4-bit floats use f32's rule) and otherwise scientific with a
//!   signed two-digit exponent (`1e-05`, `1.5e+16`), `nan`, `inf`, `-inf`, `-0.0`;
//! - from string: decimal or scientific numbers, `inf`/`infinity`/`nan` in any case, surrounding
//!   whitespace ignored; integer targets also accept a float string (truncated); bool targets accept
//!   `true`/`false` or a number; anything else is an error naming the string;
//! - complex: real ↔ complex through the real part (the imaginary part is dropped).

use carve_ir::DType;
use carve_ir::ops::elementwise::RoundMode;
use half::{bf16, f16};

use super::floats::{bf16_of, f16_of, is_small_float, small_float_of};
use super::{Res, wrap_small};
use crate::interp::util::{small_float_to_f32, to_f64, to_i64};
use crate::tensor::{Data, Tensor};

/// Converts `x` to element type `to`.
pub fn cast(x: &Tensor, to: DType, saturate: bool, mode: RoundMode) -> Res<Tensor> {
    let from = x.dtype();
    if from == to {
        return Ok(x.clone());
    }
    let data = match (&x.data, to) {
        (_, DType::String) => Data::Str(to_strings(x)?),
        (Data::Str(s), _) => from_strings(s, to, saturate, mode)?,
        (Data::C64(v), _) => from_complex(
            v.iter().map(|c| [f64::from(c[0]), f64::from(c[1])]),
            to,
            saturate,
            mode,
        )?,
        (Data::C128(v), _) => from_complex(v.iter().copied(), to, saturate, mode)?,
        (_, DType::C64 | DType::C128) => {
            let re = to_f64(x).map_err(|e| e.0)?;
            complex_data(to, re.into_iter().map(|r| [r, 0.0]))
        }
        _ if from.is_float() => {
            let v = to_f64(x).map_err(|e| e.0)?;
            reals_to(to, &v, saturate, mode)?
        }
        (Data::U64(v), _) => uints_to(to, v, saturate, mode)?,
        _ if from.is_unsigned_int() => {
            let v: Vec<u64> = to_i64(x)
                .map_err(|e| e.0)?
                .into_iter()
                .map(|i| i as u64)
                .collect();
            uints_to(to, &v, saturate, mode)?
        }
        _ => {
            let v = to_i64(x).map_err(|e| e.0)?;
            ints_to(to, &v, saturate, mode)?
        }
    };
    Tensor::new(x.shape.clone(), data).map_err(|e| e.0)
}

/// Reinterprets the bits of `x` as `to` (same bit width; not strings).
pub fn bitcast(x: &Tensor, to: DType) -> Res<Tensor> {
    let from = x.dtype();
    if from == DType::String || to == DType::String {
        return Err("strings cannot be bit-cast".into());
    }
    if from.bits() != to.bits() {
        return Err(format!(
            "cannot bit-cast {from} ({} bits) to {to} ({} bits)",
            from.bits(),
            to.bits()
        ));
    }
    let bytes = x
        .data
        .to_le_bytes()
        .ok_or_else(|| format!("{from} has no byte encoding"))?;
    let data = Data::from_le_bytes(to, &bytes, x.len()).map_err(|e| e.0)?;
    Tensor::new(x.shape.clone(), data).map_err(|e| e.0)
}

/// Float → integer: truncation; NaN gives 0 (as ml_dtypes), ±∞ and values outside i64 give i64::MIN
/// (as numpy on x86).
fn f2i(x: f64) -> i64 {
    let t = x.trunc();
    if t.is_nan() {
        0
    } else if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&t) {
        t as i64
    } else {
        i64::MIN
    }
}

/// Float → u64: values in [2^63, 2^64) directly, everything else as [`f2i`], wrapped.
fn f2u(x: f64) -> u64 {
    let t = x.trunc();
    if (9_223_372_036_854_775_808.0..18_446_744_073_709_551_616.0).contains(&t) {
        t as u64
    } else {
        f2i(x) as u64
    }
}

/// Integer elements (as two's-complement i64 bit patterns) wrapped into integer or bool type `to`.
fn wrap_ints(to: DType, v: impl Iterator<Item = i64>) -> Res<Data> {
    Ok(match to {
        DType::I64 => Data::I64(v.collect()),
        DType::I32 => Data::I32(v.map(|x| x as i32).collect()),
        DType::I16 => Data::I16(v.map(|x| x as i16).collect()),
        DType::I8 => Data::I8(v.map(|x| x as i8).collect()),
        DType::U64 => Data::U64(v.map(|x| x as u64).collect()),
        DType::U32 => Data::U32(v.map(|x| x as u32).collect()),
        DType::U16 => Data::U16(v.map(|x| x as u16).collect()),
        DType::U8 => Data::U8(v.map(|x| x as u8).collect()),
        DType::Bool => Data::Bool(v.map(|x| x != 0).collect()),
        d if d.is_int() => {
            let (bits, signed) = (d.bits(), d.is_signed_int());
            Data::Small(d, v.map(|x| wrap_small(bits, signed, x)).collect())
        }
        d => return Err(format!("{d} is not an integer type")),
    })
}

/// Real values into any non-string, non-complex type.
fn reals_to(to: DType, v: &[f64], saturate: bool, mode: RoundMode) -> Res<Data> {
    Ok(match to {
        DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Data::F64(v.to_vec()),
        DType::F16 => Data::F16(v.iter().map(|&x| f16_of(x)).collect()),
        DType::BF16 => Data::BF16(v.iter().map(|&x| bf16_of(x)).collect()),
        DType::Bool => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
        DType::U64 => Data::U64(v.iter().map(|&x| f2u(x)).collect()),
        d if is_small_float(d) => Data::Small(
            d,
            v.iter()
                .map(|&x| small_float_of(d, x, saturate, mode).unwrap_or(0))
                .collect(),
        ),
        d if d.is_int() => wrap_ints(d, v.iter().map(|&x| f2i(x)))?,
        d => return Err(format!("cannot cast real numbers to {d}")),
    })
}

/// Signed integers into any non-string, non-complex type.
fn ints_to(to: DType, v: &[i64], saturate: bool, mode: RoundMode) -> Res<Data> {
    Ok(match to {
        DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Data::F64(v.iter().map(|&x| x as f64).collect()),
        d if d.is_float() => {
            let r: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            reals_to(d, &r, saturate, mode)?
        }
        d => wrap_ints(d, v.iter().copied())?,
    })
}

/// Unsigned integers into any non-string, non-complex type.
fn uints_to(to: DType, v: &[u64], saturate: bool, mode: RoundMode) -> Res<Data> {
    Ok(match to {
        DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Data::F64(v.iter().map(|&x| x as f64).collect()),
        d if d.is_float() => {
            let r: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            reals_to(d, &r, saturate, mode)?
        }
        d => wrap_ints(d, v.iter().map(|&x| x as i64))?,
    })
}

fn complex_data(to: DType, v: impl Iterator<Item = [f64; 2]>) -> Data {
    if to == DType::C64 {
        Data::C64(v.map(|[r, i]| [r as f32, i as f32]).collect())
    } else {
        Data::C128(v.collect())
    }
}

fn from_complex(
    v: impl Iterator<Item = [f64; 2]>,
    to: DType,
    saturate: bool,
    mode: RoundMode,
) -> Res<Data> {
    if to.is_complex() {
        return Ok(complex_data(to, v));
    }
    let re: Vec<f64> = v.map(|c| c[0]).collect();
    reals_to(to, &re, saturate, mode)
}

// ---------------------------------------------------------------------------------------------------
// Strings.

fn parse_real(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

fn from_strings(s: &[String], to: DType, saturate: bool, mode: RoundMode) -> Res<Data> {
    let bad = |x: &str| format!("cannot parse the string {x:?} as {to}");
    if to == DType::F32 {
        return s
            .iter()
            .map(|x| x.trim().parse::<f32>().map_err(|_| bad(x)))
            .collect::<Res<Vec<_>>>()
            .map(Data::F32);
    }
    if to.is_float() {
        let v = s
            .iter()
            .map(|x| parse_real(x).ok_or_else(|| bad(x)))
            .collect::<Res<Vec<_>>>()?;
        return reals_to(to, &v, saturate, mode);
    }
    if to == DType::Bool {
        return s
            .iter()
            .map(|x| {
                let t = x.trim();
                if t.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if t.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    parse_real(t).map(|r| r != 0.0).ok_or_else(|| bad(x))
                }
            })
            .collect::<Res<Vec<_>>>()
            .map(Data::Bool);
    }
    if to.is_int() {
        let v = s
            .iter()
            .map(|x| {
                let t = x.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Ok(i)
                } else if let Ok(u) = t.parse::<u64>() {
                    Ok(u as i64)
                } else if to == DType::U64 {
                    parse_real(t).map(|r| f2u(r) as i64).ok_or_else(|| bad(x))
                } else {
                    parse_real(t).map(f2i).ok_or_else(|| bad(x))
                }
            })
            .collect::<Res<Vec<_>>>()?;
        return wrap_ints(to, v.into_iter());
    }
    if to.is_complex() {
        let v = s
            .iter()
            .map(|x| parse_real(x).map(|r| [r, 0.0]).ok_or_else(|| bad(x)))
            .collect::<Res<Vec<_>>>()?;
        return Ok(complex_data(to, v.into_iter()));
    }
    Err(format!("cannot cast strings to {to}"))
}

fn to_strings(x: &Tensor) -> Res<Vec<String>> {
    const F32_UPPER: f64 = 1e6;
    Ok(match &x.data {
        Data::F64(v) => v.iter().map(|&a| fmt_real(a, 1e16, digits_f64)).collect(),
        Data::F32(v) => v
            .iter()
            .map(|&a| fmt_real(f64::from(a), F32_UPPER, |r| digits_f32(r as f32)))
            .collect(),
        Data::F16(v) => v
            .iter()
            .map(|a: &f16| fmt_real(a.to_f64(), 1e3, |r| digits_rt(r, |p| f16_of(p).to_f64())))
            .collect(),
        Data::BF16(v) => v
            .iter()
            .map(|a: &bf16| {
                fmt_real(a.to_f64(), F32_UPPER, |r| {
                    digits_rt(r, |p| bf16_of(p).to_f64())
                })
            })
            .collect(),
        Data::Small(d, v) if is_small_float(*d) => v
            .iter()
            .map(|&b| {
                let r = f64::from(small_float_to_f32(*d, b));
                fmt_real(r, F32_UPPER, |r| {
                    digits_rt(r, |p| {
                        let code = small_float_of(*d, p, false, RoundMode::Nearest).unwrap_or(0);
                        f64::from(small_float_to_f32(*d, code))
                    })
                })
            })
            .collect(),
        Data::Bool(v) => v
            .iter()
            .map(|&b| if b { "True" } else { "False" }.to_string())
            .collect(),
        Data::U64(v) => v.iter().map(u64::to_string).collect(),
        Data::C64(v) => v
            .iter()
            .map(|c| {
                fmt_complex(f64::from(c[0]), f64::from(c[1]), &|r| {
                    fmt_real(r, F32_UPPER, |r| digits_f32(r as f32))
                })
            })
            .collect(),
        Data::C128(v) => v
            .iter()
            .map(|c| fmt_complex(c[0], c[1], &|r| fmt_real(r, 1e16, digits_f64)))
            .collect(),
        Data::Str(v) => v.clone(),
        _ => to_i64(x)
            .map_err(|e| e.0)?
            .iter()
            .map(i64::to_string)
            .collect(),
    })
}

/// numpy's `str` of a complex number: `(1+2j)`, `-1.5j` style parts.
fn fmt_complex(re: f64, im: f64, f: &dyn Fn(f64) -> String) -> String {
    let trim = |s: String| s.strip_suffix(".0").map(str::to_string).unwrap_or(s);
    let i = trim(f(im));
    let sign = if i.starts_with('-') { "" } else { "+" };
    format!("({}{sign}{i}j)", trim(f(re)))
}

/// Splits Rust's `{:e}` output (`"1.2345e-7"`) into significant digits (no trailing zeros) and the
/// decimal exponent of the first digit.
fn split_sci(s: &str) -> (String, i32) {
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    let mut digits: String = m.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, e.parse().unwrap_or(0))
}

/// Shortest round-trip digits of a positive finite f64. Rust's shortest form breaks a tie in the last
/// digit upward; numpy's (Dragon4) takes the correctly rounded (ties-to-even) digits of that length,
/// which [`nearest_of_len`] recomputes.
fn digits_f64(a: f64) -> (String, i32) {
    let s = format!("{a:e}");
    nearest_of_len(a, &s, |t| t.parse::<f64>().is_ok_and(|b| b == a))
}

/// Shortest round-trip digits of a positive finite f32 (see [`digits_f64`]).
fn digits_f32(a: f32) -> (String, i32) {
    let s = format!("{a:e}");
    nearest_of_len(f64::from(a), &s, |t| t.parse::<f32>().is_ok_and(|b| b == a))
}

/// The exact value `a` correctly rounded to as many significant digits as `shortest` has, if that
/// still round-trips (`ok`), else `shortest`'s digits.
fn nearest_of_len(a: f64, shortest: &str, ok: impl Fn(&str) -> bool) -> (String, i32) {
    let (d, e) = split_sci(shortest);
    let p = d.len() - 1;
    let s = format!("{a:.p$e}");
    if ok(&s) { split_sci(&s) } else { (d, e) }
}

/// Shortest digits of `a` that round-trip through `round` (a narrow type's rounding): the fewest
/// significant digits whose correctly rounded decimal maps back to `a`.
fn digits_rt(a: f64, round: impl Fn(f64) -> f64) -> (String, i32) {
    for p in 0..17 {
        let s = format!("{a:.p$e}");
        if s.parse::<f64>().is_ok_and(|b| round(b) == a) {
            return split_sci(&s);
        }
    }
    split_sci(&format!("{a:e}"))
}

/// numpy's layout of a real number given its shortest digits: positional for `1e-4 <= |x| < upper`
/// (and zero), scientific otherwise.
fn fmt_real(x: f64, upper: f64, digits: impl Fn(f64) -> (String, i32)) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let a = x.abs();
    if a == 0.0 {
        return format!("{sign}0.0");
    }
    let (d, e) = digits(a);
    if (1e-4..upper).contains(&a) {
        let l = d.len() as i32;
        if e >= 0 {
            let int_len = (e + 1) as usize;
            if l > e + 1 {
                format!("{sign}{}.{}", &d[..int_len], &d[int_len..])
            } else {
                format!("{sign}{d}{}.0", "0".repeat(int_len - d.len()))
            }
        } else {
            format!("{sign}0.{}{d}", "0".repeat((-e - 1) as usize))
        }
    } else {
        let (first, rest) = d.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let es = if e < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{es}{:02}", e.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(t: &Tensor) -> Vec<String> {
        match &t.data {
            Data::Str(s) => s.clone(),
            d => panic!("not strings: {d:?}"),
        }
    }

    #[test]
    fn floats_format_like_numpy() {
        // Expected strings produced by numpy 2.4 `astype(np.str_)`.
        let f32s = [
            0.1f32,
            1.0,
            100.0,
            1e-5,
            1.5e16,
            1e-4,
            0.00012345,
            -0.0,
            123456789.0,
            3.4028235e38,
            1e-45,
            0.3,
            999999.9,
            1e6,
            1234.5678,
        ];
        let want = [
            "0.1",
            "1.0",
            "100.0",
            "1e-05",
            "1.5e+16",
            "1e-04",
            "0.00012345",
            "-0.0",
            "1.2345679e+08",
            "3.4028235e+38",
            "1e-45",
            "0.3",
            "999999.9",
            "1e+06",
            "1234.5677",
        ];
        let t = Tensor::new(vec![f32s.len()], Data::F32(f32s.to_vec())).unwrap();
        let s = strs(&cast(&t, DType::String, true, RoundMode::Up).unwrap());
        assert_eq!(s, want);
        let f64s = [
            0.1f64,
            1e16,
            9999999999999998.0,
            1.2345678901234568e17,
            0.0001,
            9.9999e-5,
        ];
        let want = [
            "0.1",
            "1e+16",
            "9999999999999998.0",
            "1.2345678901234568e+17",
            "0.0001",
            "9.9999e-05",
        ];
        let t = Tensor::new(vec![f64s.len()], Data::F64(f64s.to_vec())).unwrap();
        assert_eq!(
            strs(&cast(&t, DType::String, true, RoundMode::Up).unwrap()),
            want
        );
        let f16s: Vec<f16> = [0.1f32, 0.00012345, 3.3, 0.6666667, 65504.0, 999.5, 1000.0]
            .iter()
            .map(|&x| f16::from_f32(x))
            .collect();
        let want = [
            "0.1",
            "0.0001235",
            "3.3",
            "0.6665",
            "6.55e+04",
            "999.5",
            "1e+03",
        ];
        let t = Tensor::new(vec![f16s.len()], Data::F16(f16s)).unwrap();
        assert_eq!(
            strs(&cast(&t, DType::String, true, RoundMode::Up).unwrap()),
            want
        );
        let t = Tensor::new(
            vec![3],
            Data::F32(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]),
        )
        .unwrap();
        assert_eq!(
            strs(&cast(&t, DType::String, true, RoundMode::Up).unwrap()),
            ["nan", "inf", "-inf"]
        );
    }

    #[test]
    fn strings_parse_to_numbers() {
        let s: Vec<String> = [" 1.5", "-inf", "NaN", "1e-5", "+3", "INF"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let t = Tensor::new(vec![6], Data::Str(s)).unwrap();
        let f = cast(&t, DType::F32, true, RoundMode::Up).unwrap();
        let Data::F32(v) = f.data else { panic!() };
        assert_eq!(v[0], 1.5);
        assert_eq!(v[1], f32::NEG_INFINITY);
        assert!(v[2].is_nan());
        assert_eq!(v[3], 1e-5);
        assert_eq!(v[4], 3.0);
        assert_eq!(v[5], f32::INFINITY);
        let t = Tensor::new(
            vec![3],
            Data::Str(vec!["12".into(), "-3".into(), "7.9".into()]),
        )
        .unwrap();
        let i = cast(&t, DType::I8, true, RoundMode::Up).unwrap();
        assert_eq!(i.data, Data::I8(vec![12, -3, 7]));
        let bad = Tensor::new(vec![1], Data::Str(vec!["abc".into()])).unwrap();
        assert!(cast(&bad, DType::F32, true, RoundMode::Up).is_err());
        let b = Tensor::new(vec![2], Data::Bool(vec![true, false])).unwrap();
        assert_eq!(
            strs(&cast(&b, DType::String, true, RoundMode::Up).unwrap()),
            ["True", "False"]
        );
    }

    #[test]
    fn floats_to_ints_truncate_and_wrap() {
        let t = Tensor::new(
            vec![6],
            Data::F32(vec![-9.0, 15.5, 300.0, f32::NAN, -1.0, 2.9]),
        )
        .unwrap();
        let i4 = cast(&t, DType::I4, true, RoundMode::Up).unwrap();
        // -9 → 7, 15 → -1, 300 → 12 → -4 (as ml_dtypes), NaN → 0.
        assert_eq!(
            i4.data,
            Data::Small(DType::I4, vec![7, 0xFF, 0xFC, 0, 0xFF, 2])
        );
        let u8s = cast(&t, DType::U8, true, RoundMode::Up).unwrap();
        assert_eq!(u8s.data, Data::U8(vec![247, 15, 44, 0, 255, 2]));
        let u64s = cast(
            &Tensor::new(vec![1], Data::F64(vec![1.5e19])).unwrap(),
            DType::U64,
            true,
            RoundMode::Up,
        )
        .unwrap();
        assert_eq!(u64s.data, Data::U64(vec![15_000_000_000_000_000_000]));
    }

    #[test]
    fn ints_cast_exactly_and_bitcast_reinterprets() {
        let big = Tensor::new(vec![2], Data::I64(vec![i64::MAX, -(1 << 62) - 1])).unwrap();
        let f = cast(&big, DType::F32, true, RoundMode::Up).unwrap();
        assert_eq!(
            f.data,
            Data::F32(vec![i64::MAX as f32, (-(1i64 << 62) - 1) as f32])
        );
        let u = Tensor::new(vec![1], Data::U64(vec![u64::MAX])).unwrap();
        assert_eq!(
            cast(&u, DType::I8, true, RoundMode::Up).unwrap().data,
            Data::I8(vec![-1])
        );
        let x = Tensor::new(vec![2], Data::F32(vec![1.0, -2.0])).unwrap();
        let b = bitcast(&x, DType::I32).unwrap();
        assert_eq!(b.data, Data::I32(vec![0x3F80_0000, 0xC000_0000u32 as i32]));
        assert!(bitcast(&x, DType::I64).is_err());
    }
}
