//! Encoding f32 values into the 8- and 4-bit float formats (`f8e4m3fn`, `f8e4m3fnuz`, `f8e5m2`,
//! `f8e5m2fnuz`, `f4e2m1`) with round-to-nearest-even, as ONNX (`saturate_cast` /
//! `ml_dtypes`) does. Decoding is `util::small_float_to_f32`.

use carve_ir::DType;

/// Layout of a small float format.
struct Format {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    /// Largest finite magnitude's bit pattern (sign bit clear).
    max_bits: u8,
    /// NaN pattern (`None`: the format has no NaN).
    nan: Option<u8>,
    /// Infinity pattern (`None`: no infinities).
    inf: Option<u8>,
    /// `fnuz` formats: no negative zero (0x80 is NaN).
    fnuz: bool,
}

fn format(d: DType) -> Option<Format> {
    Some(match d {
        DType::F8E4M3FN => Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 7,
            max_bits: 0x7E,
            nan: Some(0x7F),
            inf: None,
            fnuz: false,
        },
        DType::F8E4M3FNUZ => Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 8,
            max_bits: 0x7F,
            nan: Some(0x80),
            inf: None,
            fnuz: true,
        },
        DType::F8E5M2 => Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 15,
            max_bits: 0x7B,
            nan: Some(0x7E),
            inf: Some(0x7C),
            fnuz: false,
        },
        DType::F8E5M2FNUZ => Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 16,
            max_bits: 0x7F,
            nan: Some(0x80),
            inf: None,
            fnuz: true,
        },
        DType::F4E2M1 => Format {
            exp_bits: 2,
            man_bits: 1,
            bias: 1,
            max_bits: 0x7,
            nan: None,
            inf: None,
            fnuz: false,
        },
        _ => return None,
    })
}

/// True for the types [`encode`] handles.
pub fn is_small_float(d: DType) -> bool {
    format(d).is_some()
}

/// Encodes `x` as a `d` bit pattern, rounding to nearest even. Out-of-range values (and infinities)
/// become the largest finite value when `saturate`, else infinity where the format has one, else NaN
/// where it has one; `f4e2m1` (no NaN or infinity) always saturates and maps NaN to 0. Returns `None`
/// for other types (including `f8e8m0`, whose rounding is Cast's business).
pub fn encode(d: DType, x: f32, saturate: bool) -> Option<u8> {
    let f = format(d)?;
    let total = 1 + f.exp_bits + f.man_bits;
    let sign_bit: u8 = 1 << (total - 1);
    let neg = x.is_sign_negative();
    let sign = if neg { sign_bit } else { 0 };
    if x.is_nan() {
        return Some(match f.nan {
            Some(n) if f.fnuz => n,
            Some(n) => n | (if neg { sign_bit } else { 0 }),
            None => 0,
        });
    }
    let max_bits = f.max_bits;
    let overflow = |sign: u8| -> u8 {
        if saturate || (f.inf.is_none() && f.nan.is_none()) {
            max_bits | sign
        } else if let Some(i) = f.inf {
            i | sign
        } else {
            // (fnuz: the single NaN pattern; fn: NaN with the sign)
            f.nan
                .map_or(max_bits | sign, |n| if f.fnuz { n } else { n | sign })
        }
    };
    if x.is_infinite() {
        return Some(overflow(sign));
    }
    let a = f64::from(x.abs());
    let min_normal_exp = 1 - f.bias;
    // Quantum (spacing of representable values) at |x|: fixed below the normal range.
    let e = if a > 0.0 {
        (a.log2().floor() as i32).max(min_normal_exp)
    } else {
        min_normal_exp
    };
    // log2 may be off by one near powers of two: fix e so that 2^e <= a < 2^(e+1) (or subnormal).
    let e = if e > min_normal_exp && pow2(e) > a {
        e - 1
    } else if pow2(e + 1) <= a {
        e + 1
    } else {
        e
    };
    let quantum = pow2(e - f.man_bits as i32);
    let q = (a / quantum).round_ties_even() * quantum;
    let max = f64::from(crate::interp::util::small_float_to_f32(d, max_bits));
    if q > max {
        return Some(overflow(sign));
    }
    if q == 0.0 {
        // (fnuz formats have no negative zero)
        return Some(if f.fnuz { 0 } else { sign });
    }
    let scale = pow2(f.man_bits as i32);
    let bits = if q < pow2(min_normal_exp) {
        // Subnormal: exponent field 0.
        (q / pow2(min_normal_exp - f.man_bits as i32)) as u8
    } else {
        let mut e = q.log2().floor() as i32;
        if pow2(e) > q {
            e -= 1;
        } else if pow2(e + 1) <= q {
            e += 1;
        }
        let m = (q / pow2(e) * scale - scale) as u8;
        (((e + f.bias) as u8) << f.man_bits) | m
    };
    Some(bits | sign)
}

fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::util::small_float_to_f32;

    const CASES: [f32; 14] = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e9,
        -1e9,
        464.0,
        470.0,
        0.0,
        -0.0,
        1e-10,
        -1e-10,
        0.000_976_562_5,
        0.001_464_843_8,
    ];

    fn enc(d: DType, sat: bool) -> Vec<u8> {
        CASES.iter().map(|&x| encode(d, x, sat).unwrap()).collect()
    }

    // Expected patterns from ml_dtypes (`astype`) and onnx.numpy_helper.saturate_cast.
    #[test]
    fn special_values_match_ml_dtypes() {
        assert_eq!(
            enc(DType::F8E4M3FN, false),
            [
                0x7f, 0xff, 0x7f, 0xff, 0x7f, 0xff, 0x7e, 0x7f, 0, 0x80, 0, 0x80, 0, 1
            ]
        );
        assert_eq!(
            enc(DType::F8E4M3FNUZ, false),
            [
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0, 0, 0, 0, 1, 2
            ]
        );
        assert_eq!(
            enc(DType::F8E5M2, false),
            [
                0x7e, 0xfe, 0x7c, 0xfc, 0x7c, 0xfc, 0x5f, 0x5f, 0, 0x80, 0, 0x80, 0x14, 0x16
            ]
        );
        assert_eq!(
            enc(DType::F8E5M2FNUZ, false),
            [
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x63, 0x63, 0, 0, 0, 0, 0x18, 0x1a
            ]
        );
        assert_eq!(
            enc(DType::F8E4M3FN, true),
            [
                0x7f, 0xff, 0x7e, 0xfe, 0x7e, 0xfe, 0x7e, 0x7e, 0, 0x80, 0, 0x80, 0, 1
            ]
        );
        assert_eq!(
            enc(DType::F8E4M3FNUZ, true),
            [
                0x80, 0x80, 0x7f, 0xff, 0x7f, 0xff, 0x7f, 0x7f, 0, 0, 0, 0, 1, 2
            ]
        );
        assert_eq!(
            enc(DType::F8E5M2, true),
            [
                0x7e, 0xfe, 0x7b, 0xfb, 0x7b, 0xfb, 0x5f, 0x5f, 0, 0x80, 0, 0x80, 0x14, 0x16
            ]
        );
        assert_eq!(
            enc(DType::F8E5M2FNUZ, true),
            [
                0x80, 0x80, 0x7f, 0xff, 0x7f, 0xff, 0x63, 0x63, 0, 0, 0, 0, 0x18, 0x1a
            ]
        );
        // f4e2m1 saturates always (NaN → 0 here; ml_dtypes gives a signed zero).
        assert_eq!(
            &enc(DType::F4E2M1, false)[2..],
            [0x7, 0xf, 0x7, 0xf, 0x7, 0x7, 0, 0x8, 0, 0x8, 0, 0]
        );
    }

    #[test]
    fn every_pattern_round_trips_and_ties_go_to_even() {
        for d in [
            DType::F8E4M3FN,
            DType::F8E4M3FNUZ,
            DType::F8E5M2,
            DType::F8E5M2FNUZ,
            DType::F4E2M1,
        ] {
            let n = 1u16 << d.bits();
            for b in 0..n {
                let b = b as u8;
                let v = small_float_to_f32(d, b);
                if v.is_nan() || v.is_infinite() {
                    continue;
                }
                let back = encode(d, v, true).unwrap();
                // (fnuz: -0 does not exist, 0x80 is NaN)
                assert_eq!(
                    small_float_to_f32(d, back).to_bits(),
                    v.to_bits(),
                    "{d} {b:#x}"
                );
            }
        }
        // 1.0625 lies halfway between 1.0 (mantissa 000) and 1.125 (001) in e4m3: even is 1.0.
        assert_eq!(encode(DType::F8E4M3FN, 1.0625, true), Some(0x38));
        // 1.1875 between 1.125 (001) and 1.25 (010): even is 1.25.
        assert_eq!(encode(DType::F8E4M3FN, 1.1875, true), Some(0x3A));
        // f4e2m1: 2.5 between 2 and 3 → 2; 5 between 4 and 6 → 4; 0.25 between 0 and 0.5 → 0.
        assert_eq!(encode(DType::F4E2M1, 2.5, true), Some(0x4));
        assert_eq!(encode(DType::F4E2M1, 5.0, true), Some(0x6));
        assert_eq!(encode(DType::F4E2M1, 0.25, true), Some(0x0));
        assert_eq!(encode(DType::F4E2M1, 0.75, true), Some(0x2));
        assert_eq!(encode(DType::F8E8M0, 1.0, true), None);
    }
}
