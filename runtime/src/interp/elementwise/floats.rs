//! Rounding of real numbers into the narrow float formats: `f16`, `bf16`, the 8-bit floats (`f8e4m3fn`,
//! `f8e4m3fnuz`, `f8e5m2`, `f8e5m2fnuz`, `f8e8m0`) and the 4-bit `f4e2m1`. Decoding is
//! `util::small_float_to_f32`.
//!
//! Every encoder rounds the exact input to the nearest representable value, ties to even (one rounding:
//! `half`'s `from_f64` drops the low 32 mantissa bits before rounding, so it is not used). Out-of-range
//! values follow ONNX Cast: with `saturate` they become ±max; without it they become ±∞ where the format
//! has infinities and NaN where it does not. `f4e2m1` has neither, so it always saturates, and NaN
//! becomes `0b1000` (what ONNX's reference, ml_dtypes, produces). The `fnuz` formats have no −0: negative
//! values that round to zero give +0. `f8e8m0` (a bare power-of-two exponent) follows ONNX's own rounding
//! rule with `round_mode` on the value first rounded to f32.

use carve_ir::DType;
use carve_ir::ops::elementwise::RoundMode;
use half::{bf16, f16};

/// How a format spends its top exponent code.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Special {
    /// IEEE 754: top exponent is ±∞ (mantissa 0) or NaN.
    Ieee,
    /// `e4m3fn`: no infinities; only all-ones (exponent and mantissa) is NaN.
    Fn,
    /// `fnuz`: no infinities, no −0; the pattern of −0 (sign bit only) is the single NaN.
    Fnuz,
    /// `e2m1`: no infinities, no NaN.
    Nothing,
}

/// A binary float format with a sign bit, `exp_bits` exponent bits (biased by `bias`) and `man_bits`
/// explicit mantissa bits. Native code ([`format_of`]) builds its encoders and decoders from the same descriptions.
#[derive(Clone, Copy, Debug)]
pub struct Format {
    /// Exponent bits.
    pub exp_bits: u32,
    /// Explicit mantissa bits.
    pub man_bits: u32,
    /// Exponent bias.
    pub bias: i32,
    /// What the top exponent code and the pattern of −0 mean.
    pub special: Special,
}

/// The layout of the IEEE-like narrow float type `d` (f16, bf16, the four 8-bit floats with sign,
/// exponent and mantissa, and `f4e2m1`); `None` for every other type (including `f8e8m0`).
pub fn format_of(d: DType) -> Option<Format> {
    Some(match d {
        DType::F16 => F16,
        DType::BF16 => BF16,
        DType::F8E4M3FN => E4M3FN,
        DType::F8E4M3FNUZ => E4M3FNUZ,
        DType::F8E5M2 => E5M2,
        DType::F8E5M2FNUZ => E5M2FNUZ,
        DType::F4E2M1 => E2M1,
        _ => return None,
    })
}

const F16: Format = Format {
    exp_bits: 5,
    man_bits: 10,
    bias: 15,
    special: Special::Ieee,
};
const BF16: Format = Format {
    exp_bits: 8,
    man_bits: 7,
    bias: 127,
    special: Special::Ieee,
};
const E4M3FN: Format = Format {
    exp_bits: 4,
    man_bits: 3,
    bias: 7,
    special: Special::Fn,
};
const E4M3FNUZ: Format = Format {
    exp_bits: 4,
    man_bits: 3,
    bias: 8,
    special: Special::Fnuz,
};
const E5M2: Format = Format {
    exp_bits: 5,
    man_bits: 2,
    bias: 15,
    special: Special::Ieee,
};
const E5M2FNUZ: Format = Format {
    exp_bits: 5,
    man_bits: 2,
    bias: 16,
    special: Special::Fnuz,
};
const E2M1: Format = Format {
    exp_bits: 2,
    man_bits: 1,
    bias: 1,
    special: Special::Nothing,
};

/// `2^k` for `k` in the normal f64 exponent range (clamped to it).
fn pow2(k: i32) -> f64 {
    let k = k.clamp(-1022, 1023);
    f64::from_bits(((k + 1023) as u64) << 52)
}

impl Format {
    /// The sign bit's mask.
    pub fn sign_bit(self) -> u32 {
        1 << (self.exp_bits + self.man_bits)
    }

    /// The all-ones exponent field.
    pub fn exp_ones(self) -> u32 {
        (1 << self.exp_bits) - 1
    }

    /// Largest exponent field of a finite value.
    pub fn max_exp_field(self) -> u32 {
        match self.special {
            Special::Ieee => self.exp_ones() - 1,
            _ => self.exp_ones(),
        }
    }

    /// Largest mantissa field at the largest finite exponent.
    pub fn max_top_mantissa(self) -> u32 {
        let all = (1 << self.man_bits) - 1;
        if self.special == Special::Fn {
            all - 1
        } else {
            all
        }
    }

    /// Bits of the largest finite value (positive).
    pub fn max_bits(self) -> u32 {
        (self.max_exp_field() << self.man_bits) | self.max_top_mantissa()
    }

    /// The NaN this format encodes for a NaN of sign `neg` (one unsigned NaN for `fnuz`).
    pub fn nan(self, neg: bool) -> u32 {
        let sign = if neg { self.sign_bit() } else { 0 };
        match self.special {
            Special::Ieee => sign | (self.exp_ones() << self.man_bits) | (1 << (self.man_bits - 1)),
            Special::Fn => sign | (self.exp_ones() << self.man_bits) | ((1 << self.man_bits) - 1),
            Special::Fnuz | Special::Nothing => self.sign_bit(),
        }
    }

    /// What an out-of-range value of sign `neg` becomes.
    pub fn overflow(self, neg: bool, saturate: bool) -> u32 {
        let sign = if neg { self.sign_bit() } else { 0 };
        if saturate || self.special == Special::Nothing {
            return sign | self.max_bits();
        }
        match self.special {
            Special::Ieee => sign | (self.exp_ones() << self.man_bits),
            _ => self.nan(neg),
        }
    }

    /// Encodes `x`, rounding to nearest even.
    fn encode(self, x: f64, saturate: bool) -> u32 {
        let neg = x.is_sign_negative();
        if x.is_nan() {
            return self.nan(neg);
        }
        let a = x.abs();
        if a.is_infinite() {
            return self.overflow(neg, saturate);
        }
        let sign = if neg { self.sign_bit() } else { 0 };
        let man = self.man_bits as i32;
        let emin = 1 - self.bias;
        // floor(log2(a)) for normal f64 (f64 subnormals are far below every format here).
        let e_raw = ((a.to_bits() >> 52) & 0x7FF) as i32 - 1023;
        let mut e = e_raw.max(emin);
        if e > 1000 {
            return self.overflow(neg, saturate);
        }
        // a / 2^(e - man) is exact (power-of-two scaling of a value that stays normal).
        let mut m = (a * pow2(man - e)).round_ties_even() as u64;
        if m == 0 {
            return if self.special == Special::Fnuz {
                0
            } else {
                sign
            };
        }
        if m >= 1 << (man + 1) {
            m >>= 1;
            e += 1;
        }
        let normal = m >= 1 << man;
        let exp_field = if normal { e + self.bias } else { 0 };
        let frac = (m & ((1 << man) - 1)) as u32;
        let exp_field = exp_field as u32;
        if exp_field > self.max_exp_field()
            || (exp_field == self.max_exp_field() && frac > self.max_top_mantissa())
        {
            return self.overflow(neg, saturate);
        }
        sign | (exp_field << self.man_bits) | frac
    }
}

/// `x` rounded to f16 (nearest even; overflow to ±∞).
pub fn f16_of(x: f64) -> f16 {
    f16::from_bits(F16.encode(x, false) as u16)
}

/// `x` rounded to bf16 (nearest even; overflow to ±∞).
pub fn bf16_of(x: f64) -> bf16 {
    bf16::from_bits(BF16.encode(x, false) as u16)
}

/// Rounds an f32 to the `f8e8m0` exponent code per ONNX (`onnx.numpy_helper.to_float8e8m0`): the sign is
/// dropped, NaN and ±∞ become 0xFF (NaN), and the mantissa decides rounding by `mode`; with `saturate`
/// the largest exponent never rounds up into the NaN code.
pub fn e8m0_of(x: f32, saturate: bool, mode: RoundMode) -> u8 {
    let b = x.to_bits();
    let exp = (b >> 23) & 0xFF;
    if exp == 0xFF {
        return 0xFF;
    }
    let up = match mode {
        RoundMode::Nearest => {
            let g = b & 0x40_0000 != 0;
            let r = b & 0x20_0000 != 0;
            let s = b & 0x1F_FFFF != 0;
            let lsb = exp > 0;
            g && (r || s || lsb)
        }
        RoundMode::Up => b & 0x7F_FFFF != 0,
        RoundMode::Down => false,
    };
    if up && !(saturate && exp == 0xFE) {
        (exp + 1) as u8
    } else {
        exp as u8
    }
}

/// Encodes `x` as the 8- or 4-bit float `d` (its bit pattern in the low bits of the byte). `saturate`
/// applies to the 8-bit formats; `f4e2m1` always saturates; `mode` applies to `f8e8m0` only. `None` when
/// `d` is not one of these formats.
pub fn small_float_of(d: DType, x: f64, saturate: bool, mode: RoundMode) -> Option<u8> {
    let fmt = match d {
        DType::F8E4M3FN => E4M3FN,
        DType::F8E4M3FNUZ => E4M3FNUZ,
        DType::F8E5M2 => E5M2,
        DType::F8E5M2FNUZ => E5M2FNUZ,
        DType::F4E2M1 => E2M1,
        DType::F8E8M0 => return Some(e8m0_of(x as f32, saturate, mode)),
        _ => return None,
    };
    Some(fmt.encode(x, saturate) as u8)
}

/// True for the 8- and 4-bit float types stored as raw bits in `Data::Small`.
pub fn is_small_float(d: DType) -> bool {
    matches!(
        d,
        DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F8E8M0
            | DType::F4E2M1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::util::small_float_to_f32;

    fn enc(d: DType, x: f64, sat: bool) -> u8 {
        small_float_of(d, x, sat, RoundMode::Up).unwrap()
    }

    #[test]
    fn f16_rounds_once_from_f64() {
        // 1 + 2^-11 + 2^-40: just above the midpoint between 1 and 1 + 2^-10; must round up.
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(f16_of(x), f16::from_f64(1.0 + 2f64.powi(-10)));
        // An exact tie rounds to even.
        assert_eq!(f16_of(1.0 + 2f64.powi(-11)), f16::ONE);
        assert_eq!(f16_of(65520.0), f16::INFINITY);
        assert_eq!(f16_of(65519.0), f16::MAX);
        assert_eq!(f16_of(2f64.powi(-25)), f16::ZERO); // tie with 0 rounds to even (0)
        assert_eq!(f16_of(2f64.powi(-25) * 1.5).to_bits(), 1);
        assert!(f16_of(f64::NAN).is_nan());
        assert_eq!(f16_of(-0.0).to_bits(), 0x8000);
        for v in [0.1f32, 3.3, -7.77e-5, 1e-7, 60000.0, 1e10] {
            assert_eq!(f16_of(f64::from(v)), f16::from_f32(v), "{v}");
            assert_eq!(bf16_of(f64::from(v)), bf16::from_f32(v), "{v}");
        }
    }

    #[test]
    fn float8_matches_ml_dtypes() {
        // Values and bit patterns checked against ml_dtypes (ONNX's reference).
        let xs = [
            448.0, 449.0, 463.9, 464.0, 465.0, 480.0, 500.0, 1e9, -0.0, 1e-10, -1e-10,
        ];
        let e4m3fn = [126, 126, 126, 126, 127, 127, 127, 127, 128, 0, 128];
        let e4m3fnuz = [128, 128, 128, 128, 128, 128, 128, 128, 0, 0, 0];
        let e5m2 = [95, 95, 95, 95, 95, 96, 96, 124, 128, 0, 128];
        let e5m2fnuz = [99, 99, 99, 99, 99, 100, 100, 128, 0, 0, 0];
        let e2m1 = [7, 7, 7, 7, 7, 7, 7, 7, 8, 0, 8];
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(enc(DType::F8E4M3FN, x, false), e4m3fn[i], "{x}");
            assert_eq!(enc(DType::F8E4M3FNUZ, x, false), e4m3fnuz[i], "{x}");
            assert_eq!(enc(DType::F8E5M2, x, false), e5m2[i], "{x}");
            assert_eq!(enc(DType::F8E5M2FNUZ, x, false), e5m2fnuz[i], "{x}");
            assert_eq!(enc(DType::F4E2M1, x, false), e2m1[i], "{x}");
        }
        // Subnormals: 2^-10, 2^-9, 1.5·2^-9.
        let sub = [2f64.powi(-10), 2f64.powi(-9), 1.5 * 2f64.powi(-9)];
        let want = [(0, 1, 20, 24), (1, 2, 24, 28), (2, 3, 26, 30)];
        for (x, w) in sub.iter().zip(want) {
            assert_eq!(enc(DType::F8E4M3FN, *x, false), w.0);
            assert_eq!(enc(DType::F8E4M3FNUZ, *x, false), w.1);
            assert_eq!(enc(DType::F8E5M2, *x, false), w.2);
            assert_eq!(enc(DType::F8E5M2FNUZ, *x, false), w.3);
        }
        // Infinities: saturate to ±max, or ∞ / NaN.
        assert_eq!(enc(DType::F8E4M3FN, f64::INFINITY, true), 0x7E);
        assert_eq!(enc(DType::F8E4M3FN, f64::NEG_INFINITY, true), 0xFE);
        assert_eq!(enc(DType::F8E5M2, f64::NEG_INFINITY, false), 0xFC);
        assert_eq!(enc(DType::F8E5M2FNUZ, f64::INFINITY, false), 0x80);
        assert_eq!(enc(DType::F8E5M2FNUZ, 1e6, true), 0x7F);
        assert!(small_float_to_f32(DType::F8E4M3FN, enc(DType::F8E4M3FN, f64::NAN, true)).is_nan());
    }

    #[test]
    fn every_small_float_code_round_trips() {
        for d in [
            DType::F8E4M3FN,
            DType::F8E4M3FNUZ,
            DType::F8E5M2,
            DType::F8E5M2FNUZ,
            DType::F4E2M1,
        ] {
            let codes = if d == DType::F4E2M1 { 16 } else { 256 };
            for b in 0..codes {
                let v = small_float_to_f32(d, b as u8);
                if v.is_nan() {
                    continue;
                }
                let back = enc(d, f64::from(v), false);
                // −0 of fnuz is NaN, handled above; +0 and −0 are distinct elsewhere.
                assert_eq!(back, b as u8, "{d} code {b:#x} = {v}");
            }
        }
    }

    #[test]
    fn e8m0_follows_the_onnx_rounding_modes() {
        assert_eq!(e8m0_of(1.0, true, RoundMode::Up), 127);
        assert_eq!(e8m0_of(1.5, true, RoundMode::Up), 128);
        assert_eq!(e8m0_of(1.5, true, RoundMode::Down), 127);
        assert_eq!(e8m0_of(1.4, true, RoundMode::Nearest), 127);
        assert_eq!(e8m0_of(1.6, true, RoundMode::Nearest), 128);
        assert_eq!(e8m0_of(-4.0, true, RoundMode::Up), 129);
        assert_eq!(e8m0_of(f32::MAX, true, RoundMode::Up), 254);
        assert_eq!(e8m0_of(f32::MAX, false, RoundMode::Up), 255);
        assert_eq!(e8m0_of(f32::INFINITY, true, RoundMode::Up), 255);
        assert_eq!(e8m0_of(0.0, true, RoundMode::Up), 0);
    }
}
