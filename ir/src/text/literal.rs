//! Scalar literals shared by the printer and the parser: exact float text (shortest round-trip decimal,
//! `inf`, `nan`, `nan(0x..)` for other NaN bit patterns) and the encoding of inline constant elements of
//! every dtype to and from little-endian bytes.

use half::{bf16, f16};

use crate::DType;

/// One literal element, as printed or parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    /// An integer (wide enough for every `u64` and `i64`).
    Int(i128),
    /// A float as written: a decimal with `.` or `e`, `inf`, `-inf`, `nan`, `NaN`, `-nan`.
    Float(String),
    /// A NaN with these exact bits, written `nan(0x..)`.
    NanBits(u64),
    /// `true` / `false`.
    Bool(bool),
    /// A quoted string.
    Str(String),
}

impl Scalar {
    /// The literal's text.
    pub(super) fn text(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(s) => s.clone(),
            Scalar::NanBits(b) => format!("nan({b:#x})"),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Str(s) => super::quoted(s),
        }
    }

    /// What kind of literal this is, for error messages.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Scalar::Int(_) => "an integer",
            Scalar::Float(_) | Scalar::NanBits(_) => "a float",
            Scalar::Bool(_) => "a boolean",
            Scalar::Str(_) => "a string",
        }
    }
}

const F32_NAN: u32 = 0x7fc0_0000;
const F64_NAN: u64 = 0x7ff8_0000_0000_0000;

/// The literal for an `f32`, exact: shortest round-trip decimal, `inf`/`-inf`, `nan` for the canonical NaN
/// and `nan(0x..)` for any other NaN bit pattern.
pub(super) fn f32_scalar(x: f32) -> Scalar {
    if x.is_nan() {
        if x.to_bits() == F32_NAN {
            Scalar::Float("nan".into())
        } else {
            Scalar::NanBits(u64::from(x.to_bits()))
        }
    } else {
        Scalar::Float(float_text(f64::from(x), format!("{x:?}")))
    }
}

fn f64_scalar(x: f64) -> Scalar {
    if x.is_nan() {
        if x.to_bits() == F64_NAN {
            Scalar::Float("nan".into())
        } else {
            Scalar::NanBits(x.to_bits())
        }
    } else {
        Scalar::Float(float_text(x, format!("{x:?}")))
    }
}

fn half_scalar(bits: u16, canonical_nan: u16, as_f32: f32) -> Scalar {
    if as_f32.is_nan() {
        if bits == canonical_nan {
            Scalar::Float("nan".into())
        } else {
            Scalar::NanBits(u64::from(bits))
        }
    } else {
        f32_scalar(as_f32)
    }
}

fn float_text(x: f64, debug: String) -> String {
    if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        debug
    }
}

/// The value of a special float word (`inf`, `nan`, optionally signed), if `s` is one.
fn special<T>(s: &str, inf: T, neg_inf: T, nan: T, neg_nan: T) -> Option<T> {
    match s {
        "inf" | "+inf" => Some(inf),
        "-inf" => Some(neg_inf),
        "nan" | "NaN" | "+nan" => Some(nan),
        "-nan" | "-NaN" => Some(neg_nan),
        _ => None,
    }
}

/// The `f32` a literal stands for, or why it cannot be one.
pub(super) fn to_f32(s: &Scalar) -> Result<f32, String> {
    match s {
        Scalar::Int(i) => Ok(*i as f32),
        Scalar::Float(t) => special(
            t,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(F32_NAN),
            f32::from_bits(F32_NAN | 0x8000_0000),
        )
        .map_or_else(
            || {
                t.parse::<f32>()
                    .map_err(|_| format!("'{t}' is not a float"))
            },
            Ok,
        ),
        Scalar::NanBits(b) => {
            let bits = u32::try_from(*b).map_err(|_| format!("{b:#x} has more than 32 bits"))?;
            let x = f32::from_bits(bits);
            if x.is_nan() {
                Ok(x)
            } else {
                Err(format!("{b:#x} is not a NaN bit pattern of f32"))
            }
        }
        o => Err(format!("expected a float, got {}", o.kind())),
    }
}

fn to_f64(s: &Scalar) -> Result<f64, String> {
    match s {
        Scalar::Int(i) => Ok(*i as f64),
        Scalar::Float(t) => special(
            t,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::from_bits(F64_NAN),
            f64::from_bits(F64_NAN | (1 << 63)),
        )
        .map_or_else(
            || {
                t.parse::<f64>()
                    .map_err(|_| format!("'{t}' is not a float"))
            },
            Ok,
        ),
        Scalar::NanBits(b) => {
            let x = f64::from_bits(*b);
            if x.is_nan() {
                Ok(x)
            } else {
                Err(format!("{b:#x} is not a NaN bit pattern of f64"))
            }
        }
        o => Err(format!("expected a float, got {}", o.kind())),
    }
}

/// A 16-bit float's bits: NaN payloads exact, other values through `f32` (exact for printed values).
fn to_half_bits(s: &Scalar, name: &str, from_f32: fn(f32) -> u16) -> Result<u16, String> {
    match s {
        Scalar::NanBits(b) => {
            let bits = u16::try_from(*b).map_err(|_| format!("{b:#x} has more than 16 bits"))?;
            let nan = if name == "f16" {
                f16::from_bits(bits).is_nan()
            } else {
                bf16::from_bits(bits).is_nan()
            };
            if nan {
                Ok(bits)
            } else {
                Err(format!("{b:#x} is not a NaN bit pattern of {name}"))
            }
        }
        s => to_f32(s).map(from_f32),
    }
}

/// An integer literal within `[lo, hi]`.
fn to_int(s: &Scalar, lo: i128, hi: i128, dtype: DType) -> Result<i128, String> {
    match s {
        Scalar::Int(i) if (lo..=hi).contains(i) => Ok(*i),
        Scalar::Int(i) => Err(format!("{i} is out of range for {dtype}")),
        o => Err(format!("expected an integer, got {}", o.kind())),
    }
}

/// Decodes `n` densely stored elements of `dtype` from `bytes` into literals, or `None` when the dtype
/// has no element syntax (f8, f4, complex, strings) or the bytes would not re-encode identically (wrong
/// length, non-zero padding bits, bools other than 0/1): such constants are printed as raw bytes.
pub(super) fn decode(dtype: DType, bytes: &[u8], n: usize) -> Option<Vec<Scalar>> {
    if dtype.storage_bytes(n as u64)? != bytes.len() as u64 {
        return None;
    }
    let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    let le4 = |c: &[u8]| u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    let le8 = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    let out: Vec<Scalar> = match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32_scalar(f32::from_bits(le4(c))))
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64_scalar(f64::from_bits(le8(c))))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let b = le2(c);
                half_scalar(b, f16::NAN.to_bits(), f16::from_bits(b).to_f32())
            })
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| {
                let b = le2(c);
                half_scalar(b, bf16::NAN.to_bits(), bf16::from_bits(b).to_f32())
            })
            .collect(),
        DType::I8 => bytes
            .iter()
            .map(|&b| Scalar::Int(i128::from(b as i8)))
            .collect(),
        DType::U8 => bytes.iter().map(|&b| Scalar::Int(i128::from(b))).collect(),
        DType::I16 => bytes
            .chunks_exact(2)
            .map(|c| Scalar::Int(i128::from(le2(c) as i16)))
            .collect(),
        DType::U16 => bytes
            .chunks_exact(2)
            .map(|c| Scalar::Int(i128::from(le2(c))))
            .collect(),
        DType::I32 => bytes
            .chunks_exact(4)
            .map(|c| Scalar::Int(i128::from(le4(c) as i32)))
            .collect(),
        DType::U32 => bytes
            .chunks_exact(4)
            .map(|c| Scalar::Int(i128::from(le4(c))))
            .collect(),
        DType::I64 => bytes
            .chunks_exact(8)
            .map(|c| Scalar::Int(i128::from(le8(c) as i64)))
            .collect(),
        DType::U64 => bytes
            .chunks_exact(8)
            .map(|c| Scalar::Int(i128::from(le8(c))))
            .collect(),
        DType::Bool => bytes
            .iter()
            .map(|&b| (b <= 1).then_some(Scalar::Bool(b == 1)))
            .collect::<Option<_>>()?,
        DType::I4 | DType::U4 | DType::I2 | DType::U2 => {
            let w = dtype.bits() as usize;
            let mask = (1u8 << w) - 1;
            (0..n)
                .map(|i| {
                    let raw = (bytes[i * w / 8] >> (i * w % 8)) & mask;
                    let v = if dtype.is_signed_int() && raw >> (w - 1) == 1 {
                        i128::from(raw) - (1i128 << w)
                    } else {
                        i128::from(raw)
                    };
                    Scalar::Int(v)
                })
                .collect()
        }
        _ => return None,
    };
    // What is printed must parse back to the same bytes (this rejects non-zero padding bits).
    (encode(dtype, &out).ok()? == bytes).then_some(out)
}

/// Encodes literals as densely stored elements of `dtype`; the error names the element index.
pub(super) fn encode(dtype: DType, elems: &[Scalar]) -> Result<Vec<u8>, (usize, String)> {
    let mut out = Vec::new();
    let sub_byte = matches!(dtype, DType::I4 | DType::U4 | DType::I2 | DType::U2);
    for (i, s) in elems.iter().enumerate() {
        let at = |m: String| (i, m);
        match dtype {
            DType::F32 => out.extend_from_slice(&to_f32(s).map_err(at)?.to_le_bytes()),
            DType::F64 => out.extend_from_slice(&to_f64(s).map_err(at)?.to_le_bytes()),
            DType::F16 => out.extend_from_slice(
                &to_half_bits(s, "f16", |x| f16::from_f32(x).to_bits())
                    .map_err(at)?
                    .to_le_bytes(),
            ),
            DType::BF16 => out.extend_from_slice(
                &to_half_bits(s, "bf16", |x| bf16::from_f32(x).to_bits())
                    .map_err(at)?
                    .to_le_bytes(),
            ),
            DType::I8 => out.push(to_int(s, -128, 127, dtype).map_err(at)? as u8),
            DType::U8 => out.push(to_int(s, 0, 255, dtype).map_err(at)? as u8),
            DType::I16 => out.extend_from_slice(
                &(to_int(s, i16::MIN.into(), i16::MAX.into(), dtype).map_err(at)? as i16)
                    .to_le_bytes(),
            ),
            DType::U16 => out.extend_from_slice(
                &(to_int(s, 0, u16::MAX.into(), dtype).map_err(at)? as u16).to_le_bytes(),
            ),
            DType::I32 => out.extend_from_slice(
                &(to_int(s, i32::MIN.into(), i32::MAX.into(), dtype).map_err(at)? as i32)
                    .to_le_bytes(),
            ),
            DType::U32 => out.extend_from_slice(
                &(to_int(s, 0, u32::MAX.into(), dtype).map_err(at)? as u32).to_le_bytes(),
            ),
            DType::I64 => out.extend_from_slice(
                &(to_int(s, i64::MIN.into(), i64::MAX.into(), dtype).map_err(at)? as i64)
                    .to_le_bytes(),
            ),
            DType::U64 => out.extend_from_slice(
                &(to_int(s, 0, u64::MAX.into(), dtype).map_err(at)? as u64).to_le_bytes(),
            ),
            DType::Bool => match s {
                Scalar::Bool(b) => out.push(u8::from(*b)),
                o => return Err(at(format!("expected true or false, got {}", o.kind()))),
            },
            _ if sub_byte => {
                let w = dtype.bits() as usize;
                let (lo, hi) = if dtype.is_signed_int() {
                    (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
                } else {
                    (0, (1i128 << w) - 1)
                };
                let v = to_int(s, lo, hi, dtype).map_err(at)?;
                let raw = (v & ((1 << w) - 1)) as u8;
                if (i * w).is_multiple_of(8) {
                    out.push(0);
                }
                if let Some(last) = out.last_mut() {
                    *last |= raw << (i * w % 8);
                }
            }
            _ => {
                return Err(at(format!(
                    "{dtype} constants have no element syntax: write their bytes as x\"..\""
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f32_kind_prints_exactly() {
        for x in [
            0.0f32,
            -0.0,
            1.0,
            0.1,
            1e-45,
            3.4028235e38,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ] {
            let s = f32_scalar(x);
            assert_eq!(to_f32(&s).unwrap().to_bits(), x.to_bits(), "{s:?}");
        }
        let odd_nan = f32::from_bits(0xffc0_0001);
        assert_eq!(f32_scalar(odd_nan).text(), "nan(0xffc00001)");
        assert_eq!(to_f32(&f32_scalar(odd_nan)).unwrap().to_bits(), 0xffc0_0001);
        assert_eq!(f32_scalar(f32::NAN).text(), "nan");
    }

    #[test]
    fn sub_byte_ints_pack_low_bits_first_and_reject_dirty_padding() {
        let v = [Scalar::Int(-1), Scalar::Int(7), Scalar::Int(-8)];
        let b = encode(DType::I4, &v).unwrap();
        assert_eq!(b, vec![0x7f, 0x08]);
        assert_eq!(decode(DType::I4, &b, 3), Some(v.to_vec()));
        assert_eq!(decode(DType::I4, &[0x7f, 0xf8], 3), None);
        let u2 = [0, 1, 2, 3, 3].map(Scalar::Int);
        let b = encode(DType::U2, &u2).unwrap();
        assert_eq!(b, vec![0b1110_0100, 0b11]);
        assert_eq!(decode(DType::U2, &b, 5), Some(u2.to_vec()));
    }
}
