//! The element types the linalg kernels are generic over: [`Elem`] (f32, f64 and wrapping i64: whatever a
//! matrix product can be computed in) and [`Real`] (f32 and f64, with the transcendental functions,
//! loading/storing tensors of any float dtype and rounding to a narrower dtype to reproduce the
//! reference's intermediate casts).
//!
//! f16/bf16 tensors are computed in f32: every f16/bf16 value is exactly representable there, and an
//! f32 (or f64) operation on two such values followed by one rounding to the narrow type is the
//! correctly rounded narrow operation (the wider format has more than twice the precision plus two
//! bits), which is what numpy and ONNX Runtime compute for those types.

use std::borrow::Cow;
use std::ops::{Add, Div, Mul, Neg, Sub};

use carve_ir::DType;
use half::{bf16, f16};

use crate::interp::util;
use crate::tensor::{Data, Tensor};

/// An element type matrix products are computed in.
pub(crate) trait Elem: Copy + Default + PartialEq + std::fmt::Debug + 'static {
    /// The additive identity.
    const ZERO: Self;
    /// The multiplicative identity.
    const ONE: Self;
    /// `self + o` (wrapping for integers).
    fn plus(self, o: Self) -> Self;
    /// `self · o` (wrapping for integers).
    fn times(self, o: Self) -> Self;
    /// Row-major `c[m×n] = a[m×k] · b[k×n]` (+ `c` when `accumulate`) with row strides; the slices
    /// must cover the addressed elements.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        lda: usize,
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        accumulate: bool,
    );
}

impl Elem for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn plus(self, o: f32) -> f32 {
        self + o
    }
    fn times(self, o: f32) -> f32 {
        self * o
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        util::sgemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate);
    }
}

impl Elem for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn plus(self, o: f64) -> f64 {
        self + o
    }
    fn times(self, o: f64) -> f64 {
        self * o
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f64],
        lda: usize,
        b: &[f64],
        ldb: usize,
        c: &mut [f64],
        ldc: usize,
        accumulate: bool,
    ) {
        util::dgemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate);
    }
}

impl Elem for i64 {
    const ZERO: i64 = 0;
    const ONE: i64 = 1;
    fn plus(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    fn times(self, o: i64) -> i64 {
        self.wrapping_mul(o)
    }
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[i64],
        lda: usize,
        b: &[i64],
        ldb: usize,
        c: &mut [i64],
        ldc: usize,
        accumulate: bool,
    ) {
        // Integer products wrap like the fixed-width machine types (numpy, ONNX Runtime): computing
        // modulo 2^64 and truncating to the narrower type afterwards gives the same bits.
        for i in 0..m {
            let row = &mut c[i * ldc..i * ldc + n];
            if !accumulate {
                row.fill(0);
            }
            for p in 0..k {
                let x = a[i * lda + p];
                if x == 0 {
                    continue;
                }
                let brow = &b[p * ldb..p * ldb + n];
                for (o, &y) in row.iter_mut().zip(brow) {
                    *o = o.wrapping_add(x.wrapping_mul(y));
                }
            }
        }
    }
}

/// A real type attention-like kernels compute in.
pub(crate) trait Real:
    Elem
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// Negative infinity.
    const NEG_INF: Self;
    /// From f64 (rounding to nearest).
    fn of(x: f64) -> Self;
    /// `eˣ`.
    fn exp(self) -> Self;
    /// `tanh x`.
    fn tanh(self) -> Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
    /// A function rounding a value to the nearest value of `d` (identity when `d` is not narrower
    /// than `Self`), to reproduce a cast to `d` in the middle of a computation.
    fn rounder(d: DType) -> fn(Self) -> Self;
    /// `x` rounded to `d` once (not through `Self`), as a `Self`.
    fn cast(x: f64, d: DType) -> Self {
        Self::of(round_f64(x, d))
    }
    /// The elements of a real tensor of any dtype (borrowed when already of this type).
    fn load(t: &Tensor) -> Result<Cow<'_, [Self]>, String>;
    /// A tensor of `dtype` (rounding each value once).
    fn store(dtype: DType, shape: Vec<usize>, v: Vec<Self>) -> Result<Tensor, String>;
}

/// `x` rounded to the nearest value of float type `d` (unchanged for f64 and non-float types).
pub(crate) fn round_f64(x: f64, d: DType) -> f64 {
    match d {
        DType::F32 => f64::from(x as f32),
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        _ => x,
    }
}

fn r_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

fn r_bf16(x: f32) -> f32 {
    bf16::from_f32(x).to_f32()
}

fn r_f32(x: f64) -> f64 {
    f64::from(x as f32)
}

fn r_f16_64(x: f64) -> f64 {
    f16::from_f64(x).to_f64()
}

fn r_bf16_64(x: f64) -> f64 {
    bf16::from_f64(x).to_f64()
}

impl Real for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn tanh(self) -> f32 {
        f32::tanh(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn rounder(d: DType) -> fn(f32) -> f32 {
        match d {
            DType::F16 => r_f16,
            DType::BF16 => r_bf16,
            _ => |x| x,
        }
    }
    fn load(t: &Tensor) -> Result<Cow<'_, [f32]>, String> {
        Ok(match &t.data {
            Data::F32(v) => Cow::Borrowed(v.as_slice()),
            Data::F16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
            Data::BF16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
            _ => Cow::Owned(
                util::to_f64(t)
                    .map_err(|e| e.0)?
                    .into_iter()
                    .map(|x| x as f32)
                    .collect(),
            ),
        })
    }
    fn store(dtype: DType, shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, String> {
        let data = match dtype {
            DType::F32 => Data::F32(v),
            DType::F16 => Data::F16(v.into_iter().map(f16::from_f32).collect()),
            DType::BF16 => Data::BF16(v.into_iter().map(bf16::from_f32).collect()),
            DType::F64 => Data::F64(v.into_iter().map(f64::from).collect()),
            d => {
                let w: Vec<f64> = v.into_iter().map(f64::from).collect();
                return util::from_f64(d, shape, &w).map_err(|e| e.0);
            }
        };
        Tensor::new(shape, data).map_err(|e| e.0)
    }
}

impl Real for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    fn of(x: f64) -> f64 {
        x
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn tanh(self) -> f64 {
        f64::tanh(self)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn rounder(d: DType) -> fn(f64) -> f64 {
        match d {
            DType::F32 => r_f32,
            DType::F16 => r_f16_64,
            DType::BF16 => r_bf16_64,
            _ => |x| x,
        }
    }
    fn load(t: &Tensor) -> Result<Cow<'_, [f64]>, String> {
        Ok(match &t.data {
            Data::F64(v) => Cow::Borrowed(v.as_slice()),
            _ => Cow::Owned(util::to_f64(t).map_err(|e| e.0)?),
        })
    }
    fn store(dtype: DType, shape: Vec<usize>, v: Vec<f64>) -> Result<Tensor, String> {
        match dtype {
            DType::F64 => Tensor::new(shape, Data::F64(v)).map_err(|e| e.0),
            d => util::from_f64(d, shape, &v).map_err(|e| e.0),
        }
    }
}

/// The largest element of `row`, NaN if any element is NaN (numpy's `max`); `None` when empty.
pub(crate) fn nan_max<R: Real>(row: &[R]) -> Option<R> {
    let mut it = row.iter().copied();
    let mut m = it.next()?;
    for x in it {
        if x.is_nan() {
            return Some(x);
        }
        if m.is_nan() {
            return Some(m);
        }
        if x > m {
            m = x;
        }
    }
    Some(m)
}

/// `[rows × cols]` row-major → `[cols × rows]`.
pub(crate) fn transpose<T: Copy>(v: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for c in 0..cols {
        out.extend((0..rows).map(|r| v[r * cols + c]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_gemm_wraps() {
        let a = [i64::MAX, 2];
        let b = [2, 3];
        let mut c = [0i64];
        i64::gemm(1, 2, 1, &a, 2, &b, 1, &mut c, 1, false);
        assert_eq!(c[0], i64::MAX.wrapping_mul(2).wrapping_add(6));
    }

    #[test]
    fn rounders_round_to_the_narrow_type() {
        let r = f32::rounder(DType::F16);
        assert_eq!(r(1.0 + 1e-4), 1.0);
        assert_eq!(f32::rounder(DType::F32)(1.0 + 1e-7), 1.0 + 1e-7);
        assert_eq!(f64::rounder(DType::F32)(0.1), f64::from(0.1f32));
        assert_eq!(f32::cast(0.1, DType::BF16), bf16::from_f64(0.1).to_f32());
    }

    #[test]
    fn nan_max_propagates_nan() {
        assert!(nan_max(&[1.0f32, f32::NAN, 3.0]).is_some_and(f32::is_nan));
        assert!(nan_max(&[f32::NAN, 3.0]).is_some_and(f32::is_nan));
        assert_eq!(nan_max(&[1.0f32, 3.0, 2.0]), Some(3.0));
        assert_eq!(nan_max::<f32>(&[]), None);
    }
}
