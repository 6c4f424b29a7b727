//! Shared kernel utilities: numeric views of tensors (as f64 or i64) and back, broadcasting index maps,
//! axis normalization, and decoding of the 8-/4-bit float formats.

use carve_ir::DType;

use crate::tensor::{Data, Tensor, TensorError, strides};

fn err<T>(msg: impl Into<String>) -> Result<T, TensorError> {
    Err(TensorError(msg.into()))
}

/// Decodes an 8- or 4-bit float bit pattern (`f8e4m3fn`, `f8e4m3fnuz`, `f8e5m2`, `f8e5m2fnuz`, `f8e8m0`,
/// `f4e2m1`) to f32.
pub fn small_float_to_f32(d: DType, bits: u8) -> f32 {
    let (exp_bits, man_bits, bias, fnuz) = match d {
        DType::F8E4M3FN => (4, 3, 7, false),
        DType::F8E4M3FNUZ => (4, 3, 8, true),
        DType::F8E5M2 => (5, 2, 15, false),
        DType::F8E5M2FNUZ => (5, 2, 16, true),
        DType::F4E2M1 => (2, 1, 1, false),
        DType::F8E8M0 => {
            return if bits == 0xFF {
                f32::NAN
            } else {
                2f32.powi(i32::from(bits) - 127)
            };
        }
        _ => return f32::NAN,
    };
    let total = 1 + exp_bits + man_bits;
    let bits = bits & ((1u16 << total) - 1) as u8;
    if fnuz && bits == 0x80 {
        return f32::NAN;
    }
    let sign = if bits >> (total - 1) & 1 == 1 {
        -1.0
    } else {
        1.0
    };
    let e = i32::from((bits >> man_bits) & ((1 << exp_bits) - 1));
    let m = f32::from(bits & ((1 << man_bits) - 1));
    let emax = (1 << exp_bits) - 1;
    if d == DType::F8E4M3FN && e == emax && m == 7.0 {
        return f32::NAN;
    }
    if d == DType::F8E5M2 && e == emax {
        return if m == 0.0 {
            sign * f32::INFINITY
        } else {
            f32::NAN
        };
    }
    let scale = (1u32 << man_bits) as f32;
    if e == 0 {
        sign * (m / scale) * 2f32.powi(1 - bias)
    } else {
        sign * (1.0 + m / scale) * 2f32.powi(e - bias)
    }
}

/// Elements as f64 (any numeric dtype; bools as 0/1; complex refused).
pub fn to_f64(t: &Tensor) -> Result<Vec<f64>, TensorError> {
    Ok(match &t.data {
        Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::F64(v) => v.clone(),
        Data::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
        Data::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
        Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
        Data::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::U64(v) => v.iter().map(|&x| x as f64).collect(),
        Data::U32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::U16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        Data::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        Data::Small(d, v) if d.is_signed_int() => v.iter().map(|&x| f64::from(x as i8)).collect(),
        Data::Small(d, v) if d.is_unsigned_int() => v.iter().map(|&x| f64::from(x)).collect(),
        Data::Small(d, v) => v
            .iter()
            .map(|&x| f64::from(small_float_to_f32(*d, x)))
            .collect(),
        Data::Str(_) | Data::C64(_) | Data::C128(_) => {
            return err(format!("{} is not a real number type", t.dtype()));
        }
    })
}

/// Elements as i64 (integer and bool dtypes only).
pub fn to_i64(t: &Tensor) -> Result<Vec<i64>, TensorError> {
    Ok(match &t.data {
        Data::I64(v) => v.clone(),
        Data::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::U64(v) => v.iter().map(|&x| x as i64).collect(),
        Data::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::Bool(v) => v.iter().map(|&x| i64::from(x)).collect(),
        Data::Small(d, v) if d.is_signed_int() => v.iter().map(|&x| i64::from(x as i8)).collect(),
        Data::Small(d, v) if d.is_unsigned_int() => v.iter().map(|&x| i64::from(x)).collect(),
        _ => return err(format!("expected an integer tensor, got {}", t.dtype())),
    })
}

/// A tensor of `dtype` from f64 values: floats round to nearest; integers truncate toward zero and saturate
/// (NaN → 0); bools are `x != 0`. Sub-byte integers saturate to their range; 8-/4-bit floats are refused
/// (use the cast kernel).
pub fn from_f64(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Result<Tensor, TensorError> {
    let data = match dtype {
        DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => Data::F64(v.to_vec()),
        // Correctly rounded from f64 (`half`'s own from_f64 rounds twice and is sometimes off by one ulp).
        DType::F16 => Data::F16(
            v.iter()
                .map(|&x| super::elementwise::floats::f16_of(x))
                .collect(),
        ),
        DType::BF16 => Data::BF16(
            v.iter()
                .map(|&x| super::elementwise::floats::bf16_of(x))
                .collect(),
        ),
        DType::I64 => Data::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => Data::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I16 => Data::I16(v.iter().map(|&x| x as i16).collect()),
        DType::I8 => Data::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U64 => Data::U64(v.iter().map(|&x| x as u64).collect()),
        DType::U32 => Data::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U16 => Data::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
        DType::I4 | DType::I2 => {
            let hi = f64::from((1i32 << (dtype.bits() - 1)) - 1);
            Data::Small(
                dtype,
                v.iter()
                    .map(|&x| x.trunc().clamp(-hi - 1.0, hi) as i8 as u8)
                    .collect(),
            )
        }
        DType::U4 | DType::U2 => {
            let hi = f64::from((1u32 << dtype.bits()) - 1);
            Data::Small(
                dtype,
                v.iter().map(|&x| x.trunc().clamp(0.0, hi) as u8).collect(),
            )
        }
        d => return err(format!("cannot build a {d} tensor from real values here")),
    };
    Tensor::new(shape, data)
}

/// A tensor of integer (or bool) type `dtype` from i128 values, wrapped modulo 2^bits like a C cast
/// (bools are `x != 0`).
pub fn from_i128(dtype: DType, shape: Vec<usize>, v: &[i128]) -> Result<Tensor, TensorError> {
    let data = match dtype {
        DType::I64 => Data::I64(v.iter().map(|&x| x as i64).collect()),
        DType::I32 => Data::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I16 => Data::I16(v.iter().map(|&x| x as i16).collect()),
        DType::I8 => Data::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U64 => Data::U64(v.iter().map(|&x| x as u64).collect()),
        DType::U32 => Data::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U16 => Data::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
        DType::Bool => Data::Bool(v.iter().map(|&x| x != 0).collect()),
        d if d.is_int() => {
            let bits = d.bits();
            let mask = ((1u16 << bits) - 1) as u8;
            let signed = d.is_signed_int();
            Data::Small(
                d,
                v.iter()
                    .map(|&x| {
                        let raw = (x as u8) & mask;
                        if signed && raw & (1 << (bits - 1)) != 0 {
                            raw | !mask
                        } else {
                            raw
                        }
                    })
                    .collect(),
            )
        }
        d => return Err(TensorError(format!("{d} is not an integer type"))),
    };
    Tensor::new(shape, data)
}

/// A tensor of integer (or bool) `dtype` from i64 values, wrapped like a C cast (see [`from_i128`]); other
/// dtypes go through [`from_f64`].
pub fn from_i64(dtype: DType, shape: Vec<usize>, v: &[i64]) -> Result<Tensor, TensorError> {
    if dtype.is_int() || dtype == DType::Bool {
        return from_i128(
            dtype,
            shape,
            &v.iter().map(|&x| i128::from(x)).collect::<Vec<_>>(),
        );
    }
    from_f64(
        dtype,
        shape,
        &v.iter().map(|&x| x as f64).collect::<Vec<_>>(),
    )
}

/// Numpy broadcast of two shapes.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, TensorError> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let x = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let y = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (x, y) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return err(format!("shapes {a:?} and {b:?} cannot be broadcast")),
        };
    }
    Ok(out)
}

/// For each element of a tensor of shape `out` (row-major), the flat index of the element of a tensor of
/// shape `input` that broadcasts to it.
pub fn broadcast_index(out: &[usize], input: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let r = out.len();
    let in_strides = strides(input);
    // Stride per output axis (0 where the input is broadcast or absent).
    let bstride: Vec<usize> = (0..r)
        .map(|i| {
            if i + input.len() < r {
                return 0;
            }
            let j = i + input.len() - r;
            if input[j] == 1 { 0 } else { in_strides[j] }
        })
        .collect();
    let mut idx = vec![0usize; n];
    let mut counter = vec![0usize; r];
    let mut cur = 0usize;
    for slot in idx.iter_mut() {
        *slot = cur;
        for ax in (0..r).rev() {
            counter[ax] += 1;
            cur += bstride[ax];
            if counter[ax] < out[ax] {
                break;
            }
            cur -= bstride[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
    idx
}

/// The most elements a kernel may allocate for one result (2^31): a data-dependent size beyond this (a huge
/// `constant_of_shape`, `range`, `tile`, `expand`, `resize`) is an error, not an allocation attempt.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Element count of `shape`, refused when it overflows or exceeds [`MAX_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Result<usize, TensorError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| TensorError(format!("shape {shape:?} overflows")))?;
    if n > MAX_ELEMENTS {
        return err(format!(
            "shape {shape:?} has {n} elements, more than the {MAX_ELEMENTS} a result may have"
        ));
    }
    Ok(n)
}

/// Element types the GEMM entry points accept: f32 and f64, each bound to matrixmultiply's kernel.
pub trait GemmScalar: Copy {
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// matrixmultiply's `sgemm`/`dgemm` for this type.
    ///
    /// # Safety
    /// As matrixmultiply's: every strided index must lie inside the buffers, and `c` must not alias them.
    #[allow(clippy::too_many_arguments)]
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        lda: isize,
        b: *const Self,
        ldb: isize,
        beta: Self,
        c: *mut Self,
        ldc: isize,
    );
}

impl GemmScalar for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f32,
        lda: isize,
        b: *const f32,
        ldb: isize,
        beta: f32,
        c: *mut f32,
        ldc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, lda, 1, b, ldb, 1, beta, c, ldc, 1) }
    }
}

impl GemmScalar for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    unsafe fn raw_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: *const f64,
        lda: isize,
        b: *const f64,
        ldb: isize,
        beta: f64,
        c: *mut f64,
        ldc: isize,
    ) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { matrixmultiply::dgemm(m, k, n, 1.0, a, lda, 1, b, ldb, 1, beta, c, ldc, 1) }
    }
}

/// Row-major matrix product `c[m×n] = a[m×k] · b[k×n]` (+ `c` when `accumulate`), with explicit row
/// strides (`lda`, `ldb`, `ldc`, in elements) so that sub-matrices and batches can be addressed in place.
/// Uses the `matrixmultiply` crate's packed, cache-blocked SIMD kernels (single-threaded: results do not
/// depend on thread count). Panics only if the slices are too short for the given sizes and strides,
/// which callers guarantee by construction.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: GemmScalar>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(k == 0 || (a.len() >= (m - 1) * lda + k && b.len() >= (k - 1) * ldb + n));
    assert!(c.len() >= (m - 1) * ldc + n);
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(T::ZERO);
            }
        }
        return;
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: the asserts above guarantee every index matrixmultiply touches, `(m-1)*lda + k-1` in `a`,
    // `(k-1)*ldb + n-1` in `b` and `(m-1)*ldc + n-1` in `c`, lies inside the slices; `c` is borrowed
    // mutably, so it does not alias `a` or `b`.
    unsafe {
        T::raw_gemm(
            m,
            k,
            n,
            a.as_ptr(),
            lda as isize,
            b.as_ptr(),
            ldb as isize,
            beta,
            c.as_mut_ptr(),
            ldc as isize,
        )
    }
}

/// [`gemm`] on f32.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
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
    gemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate)
}

/// [`gemm`] on f64.
#[allow(clippy::too_many_arguments)]
pub fn dgemm(
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
    gemm(m, k, n, a, lda, b, ldb, c, ldc, accumulate)
}

/// Normalizes a possibly negative axis against `rank`.
pub fn axis(a: i64, rank: usize) -> Result<usize, TensorError> {
    let r = rank as i64;
    let x = if a < 0 { a + r } else { a };
    if x < 0 || x >= r.max(1) {
        return err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(x as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_index_repeats_the_broadcast_axes() {
        assert_eq!(broadcast_index(&[2, 3], &[3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_index(&[2, 3], &[2, 1]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_index(&[2, 3], &[]), vec![0; 6]);
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
    }

    #[test]
    fn sgemm_matches_a_naive_product_with_strides() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * 6).map(|i| i as f32 * 0.5).collect(); // lda = 6
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let mut c = vec![1.0f32; m * n];
        sgemm(m, k, n, &a, 6, &b, n, &mut c, n, true);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = 1.0 + (0..k).map(|p| a[i * 6 + p] * b[p * n + j]).sum::<f32>();
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
        assert!(checked_numel(&[1 << 20, 1 << 20]).is_err());
        assert_eq!(checked_numel(&[2, 3]).unwrap(), 6);
    }

    #[test]
    fn small_floats_decode_per_spec() {
        assert_eq!(small_float_to_f32(DType::F8E4M3FN, 0x38), 1.0);
        assert_eq!(small_float_to_f32(DType::F8E4M3FN, 0x7E), 448.0);
        assert!(small_float_to_f32(DType::F8E4M3FN, 0x7F).is_nan());
        assert_eq!(small_float_to_f32(DType::F8E5M2, 0x3C), 1.0);
        assert_eq!(small_float_to_f32(DType::F8E5M2, 0x7C), f32::INFINITY);
        assert!(small_float_to_f32(DType::F8E4M3FNUZ, 0x80).is_nan());
        assert_eq!(small_float_to_f32(DType::F8E4M3FNUZ, 0x40), 1.0);
        assert_eq!(small_float_to_f32(DType::F4E2M1, 0x7), 6.0);
        assert_eq!(small_float_to_f32(DType::F4E2M1, 0xF), -6.0);
        assert_eq!(small_float_to_f32(DType::F8E8M0, 127), 1.0);
    }
}
