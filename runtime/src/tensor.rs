//! Runtime tensors: a shape plus typed element storage for every IR element type, and conversion from and
//! to the IR's little-endian constant bytes (sub-byte types unpacked to one element per byte in memory).

use carve_ir::{Buffer, ConstData, ConstFormat, Constant, DType, Shape, TensorType};
use half::{bf16, f16};

/// Typed element storage, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
    /// f16 elements.
    F16(Vec<f16>),
    /// bf16 elements.
    BF16(Vec<bf16>),
    /// i64 elements.
    I64(Vec<i64>),
    /// i32 elements.
    I32(Vec<i32>),
    /// i16 elements.
    I16(Vec<i16>),
    /// i8 elements.
    I8(Vec<i8>),
    /// u64 elements.
    U64(Vec<u64>),
    /// u32 elements.
    U32(Vec<u32>),
    /// u16 elements.
    U16(Vec<u16>),
    /// u8 elements.
    U8(Vec<u8>),
    /// bool elements.
    Bool(Vec<bool>),
    /// string elements.
    Str(Vec<String>),
    /// Sub-byte integers (`i4`, `i2`: signed; `u4`, `u2`: unsigned), one element per byte, and 8-/4-bit floats as
    /// raw bit patterns one per byte. The dtype says which.
    Small(DType, Vec<u8>),
    /// complex64 elements as (re, im).
    C64(Vec<[f32; 2]>),
    /// complex128 elements as (re, im).
    C128(Vec<[f64; 2]>),
}

/// A dense tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Elements; `data.len() == shape.iter().product()`.
    pub data: Data,
}

/// A tensor could not be built or converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TensorError(pub String);

fn le_chunks<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    b.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

impl Data {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::BF16(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I16(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::U64(v) => v.len(),
            Data::U32(v) => v.len(),
            Data::U16(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::Bool(v) => v.len(),
            Data::Str(v) => v.len(),
            Data::Small(_, v) => v.len(),
            Data::C64(v) => v.len(),
            Data::C128(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::I64(_) => DType::I64,
            Data::I32(_) => DType::I32,
            Data::I16(_) => DType::I16,
            Data::I8(_) => DType::I8,
            Data::U64(_) => DType::U64,
            Data::U32(_) => DType::U32,
            Data::U16(_) => DType::U16,
            Data::U8(_) => DType::U8,
            Data::Bool(_) => DType::Bool,
            Data::Str(_) => DType::String,
            Data::Small(d, _) => *d,
            Data::C64(_) => DType::C64,
            Data::C128(_) => DType::C128,
        }
    }

    /// `n` zero (or empty-string / false) elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::F64 => Data::F64(vec![0.0; n]),
            DType::F16 => Data::F16(vec![f16::ZERO; n]),
            DType::BF16 => Data::BF16(vec![bf16::ZERO; n]),
            DType::I64 => Data::I64(vec![0; n]),
            DType::I32 => Data::I32(vec![0; n]),
            DType::I16 => Data::I16(vec![0; n]),
            DType::I8 => Data::I8(vec![0; n]),
            DType::U64 => Data::U64(vec![0; n]),
            DType::U32 => Data::U32(vec![0; n]),
            DType::U16 => Data::U16(vec![0; n]),
            DType::U8 => Data::U8(vec![0; n]),
            DType::Bool => Data::Bool(vec![false; n]),
            DType::String => Data::Str(vec![String::new(); n]),
            DType::C64 => Data::C64(vec![[0.0; 2]; n]),
            DType::C128 => Data::C128(vec![[0.0; 2]; n]),
            d => Data::Small(d, vec![0; n]),
        }
    }

    /// Decodes `n` elements of `dtype` from little-endian bytes (sub-byte types packed low bits first).
    pub fn from_le_bytes(dtype: DType, b: &[u8], n: usize) -> Result<Data, TensorError> {
        let want = dtype
            .storage_bytes(n as u64)
            .ok_or_else(|| TensorError(format!("{dtype} has no fixed-width byte encoding")))?;
        if b.len() as u64 != want {
            return Err(TensorError(format!(
                "{n} elements of {dtype} need {want} bytes, got {}",
                b.len()
            )));
        }
        Ok(match dtype {
            DType::F32 => Data::F32(le_chunks::<4>(b).map(f32::from_le_bytes).collect()),
            DType::F64 => Data::F64(le_chunks::<8>(b).map(f64::from_le_bytes).collect()),
            DType::F16 => Data::F16(le_chunks::<2>(b).map(f16::from_le_bytes).collect()),
            DType::BF16 => Data::BF16(le_chunks::<2>(b).map(bf16::from_le_bytes).collect()),
            DType::I64 => Data::I64(le_chunks::<8>(b).map(i64::from_le_bytes).collect()),
            DType::I32 => Data::I32(le_chunks::<4>(b).map(i32::from_le_bytes).collect()),
            DType::I16 => Data::I16(le_chunks::<2>(b).map(i16::from_le_bytes).collect()),
            DType::I8 => Data::I8(b.iter().map(|&x| x as i8).collect()),
            DType::U64 => Data::U64(le_chunks::<8>(b).map(u64::from_le_bytes).collect()),
            DType::U32 => Data::U32(le_chunks::<4>(b).map(u32::from_le_bytes).collect()),
            DType::U16 => Data::U16(le_chunks::<2>(b).map(u16::from_le_bytes).collect()),
            DType::U8 => Data::U8(b.to_vec()),
            DType::Bool => Data::Bool(b.iter().map(|&x| x != 0).collect()),
            DType::C64 => Data::C64(
                le_chunks::<8>(b)
                    .map(|c| {
                        let [a0, a1, a2, a3, b0, b1, b2, b3] = c;
                        [
                            f32::from_le_bytes([a0, a1, a2, a3]),
                            f32::from_le_bytes([b0, b1, b2, b3]),
                        ]
                    })
                    .collect(),
            ),
            DType::C128 => Data::C128(
                le_chunks::<16>(b)
                    .map(|c| {
                        let mut re = [0u8; 8];
                        let mut im = [0u8; 8];
                        re.copy_from_slice(&c[..8]);
                        im.copy_from_slice(&c[8..]);
                        [f64::from_le_bytes(re), f64::from_le_bytes(im)]
                    })
                    .collect(),
            ),
            DType::String => return Err(TensorError("strings have no byte encoding".into())),
            d => {
                let bits = d.bits() as usize;
                let per_byte = 8 / bits;
                let mask = ((1u16 << bits) - 1) as u8;
                let signed = d.is_signed_int();
                let v = (0..n)
                    .map(|i| {
                        let raw = (b[i / per_byte] >> ((i % per_byte) * bits)) & mask;
                        if signed && bits < 8 && raw & (1 << (bits - 1)) != 0 {
                            raw | !mask // sign-extend into the byte
                        } else {
                            raw
                        }
                    })
                    .collect();
                Data::Small(d, v)
            }
        })
    }

    /// Writes the little-endian bytes of fixed-width numeric data into `dst` (exactly the encoded
    /// length) without an intermediate vector; falls back to [`Data::to_le_bytes`] for other variants.
    /// Returns false if the lengths differ or the data has no byte encoding.
    pub fn write_le_bytes(&self, dst: &mut [u8]) -> bool {
        macro_rules! put {
            ($v:expr, $n:literal) => {{
                if dst.len() != $v.len() * $n {
                    return false;
                }
                for (d, x) in dst.chunks_exact_mut($n).zip($v.iter()) {
                    d.copy_from_slice(&x.to_le_bytes());
                }
                true
            }};
        }
        match self {
            Data::F32(v) => put!(v, 4),
            Data::F64(v) => put!(v, 8),
            Data::I64(v) => put!(v, 8),
            Data::I32(v) => put!(v, 4),
            Data::I16(v) => put!(v, 2),
            Data::U16(v) => put!(v, 2),
            Data::U32(v) => put!(v, 4),
            Data::U64(v) => put!(v, 8),
            Data::U8(v) => {
                if dst.len() != v.len() {
                    return false;
                }
                dst.copy_from_slice(v);
                true
            }
            other => match other.to_le_bytes() {
                Some(b) if b.len() == dst.len() => {
                    dst.copy_from_slice(&b);
                    true
                }
                _ => false,
            },
        }
    }

    /// Encodes as little-endian bytes (sub-byte types packed low bits first); `None` for strings.
    pub fn to_le_bytes(&self) -> Option<Vec<u8>> {
        // Fixed-width numeric data: one allocation, written in place (much faster than flat_map).
        let width = match self {
            Data::F32(_) | Data::I32(_) | Data::U32(_) => 4,
            Data::F64(_) | Data::I64(_) | Data::U64(_) => 8,
            Data::I16(_) | Data::U16(_) => 2,
            _ => 0,
        };
        if width > 0 {
            let mut out = vec![0u8; self.len() * width];
            if self.write_le_bytes(&mut out) {
                return Some(out);
            }
        }
        Some(match self {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Data::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U8(v) => v.clone(),
            Data::Bool(v) => v.iter().map(|&x| u8::from(x)).collect(),
            Data::C64(v) => v
                .iter()
                .flat_map(|[a, b]| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
                .collect(),
            Data::C128(v) => v
                .iter()
                .flat_map(|[a, b]| a.to_le_bytes().into_iter().chain(b.to_le_bytes()))
                .collect(),
            Data::Str(_) => return None,
            Data::Small(d, v) => {
                let bits = d.bits() as usize;
                if bits >= 8 {
                    v.clone()
                } else {
                    let per_byte = 8 / bits;
                    let mask = ((1u16 << bits) - 1) as u8;
                    let mut out = vec![0u8; v.len().div_ceil(per_byte)];
                    for (i, &x) in v.iter().enumerate() {
                        out[i / per_byte] |= (x & mask) << ((i % per_byte) * bits);
                    }
                    out
                }
            }
        })
    }
}

impl Tensor {
    /// A tensor from a shape and data; checks the element count.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor, TensorError> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| TensorError("shape overflows".into()))?;
        if n != data.len() {
            return Err(TensorError(format!(
                "shape {shape:?} has {n} elements, data has {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: Data::zeros(dtype, n),
        }
    }

    /// A scalar f32.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor {
            shape: Vec::new(),
            data: Data::F32(vec![v]),
        }
    }

    /// A scalar i64.
    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            shape: Vec::new(),
            data: Data::I64(vec![v]),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        strides(&self.shape)
    }

    /// The IR type of this tensor.
    pub fn ty(&self) -> TensorType {
        TensorType::new(
            self.dtype(),
            Shape::known(&self.shape.iter().map(|&d| d as u64).collect::<Vec<_>>()),
        )
    }

    /// Converts a dense IR constant. Elided constants (parsed from text by hash) cannot be executed.
    pub fn from_constant(c: &Constant) -> Result<Tensor, TensorError> {
        let dims =
            c.ty.shape
                .as_ref()
                .and_then(Shape::as_known)
                .ok_or_else(|| {
                    TensorError(format!("constant of type {} has no concrete shape", c.ty))
                })?;
        let shape: Vec<usize> = dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| TensorError("dimension too large".into())))
            .collect::<Result<_, _>>()?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| TensorError("shape overflows".into()))?;
        if c.format != ConstFormat::Dense {
            return Err(TensorError(format!(
                "constant stored as {} must be densified before execution",
                c.format
            )));
        }
        let data = match &c.data {
            ConstData::Bytes(b) => Data::from_le_bytes(c.ty.dtype, b.as_bytes(), n)?,
            ConstData::Strings(s) => Data::Str(s.clone()),
            ConstData::Elided { hash } => {
                return Err(TensorError(format!(
                    "constant #{hash:016x} has no data (it was parsed from IR text)"
                )));
            }
        };
        Tensor::new(shape, data)
    }

    /// Converts to a dense IR constant.
    pub fn to_constant(&self) -> Constant {
        let data = match (&self.data, self.data.to_le_bytes()) {
            (Data::Str(s), _) => ConstData::Strings(s.clone()),
            (_, Some(b)) => ConstData::Bytes(Buffer::from_vec(b)),
            (_, None) => ConstData::Strings(Vec::new()),
        };
        Constant {
            ty: self.ty(),
            format: ConstFormat::Dense,
            data,
        }
    }
}

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixed_width_dtype_round_trips_through_bytes() {
        for d in DType::all().filter(|d| *d != DType::String) {
            let n = 5;
            let bytes: Vec<u8> = (0..d.storage_bytes(n as u64).unwrap())
                .map(|i| (i * 37 + 11) as u8)
                .collect();
            let data = Data::from_le_bytes(d, &bytes, n).unwrap();
            assert_eq!(data.dtype(), d);
            assert_eq!(data.len(), n);
            let back = data.to_le_bytes().unwrap();
            assert_eq!(Data::from_le_bytes(d, &back, n).unwrap(), data, "{d}");
            if d != DType::Bool && d.bits() >= 8 {
                assert_eq!(back, bytes, "{d}"); // (bools normalize to 0/1; sub-byte padding bits are dropped)
            }
        }
    }

    #[test]
    fn int4_is_sign_extended_and_packed_low_nibble_first() {
        let d = Data::from_le_bytes(DType::I4, &[0xF7, 0x08], 3).unwrap();
        assert_eq!(d, Data::Small(DType::I4, vec![7, 0xFF, 0xF8]));
        assert_eq!(d.to_le_bytes().unwrap(), vec![0xF7, 0x08]);
    }

    #[test]
    fn constants_convert_both_ways() {
        let c = Constant::from_f32s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
        let t = Tensor::from_constant(&c).unwrap();
        assert_eq!(t.shape, vec![2, 2]);
        assert_eq!(t.data, Data::F32(vec![1.0, 2.0, 3.0, 4.0]));
        assert_eq!(t.to_constant(), c);
    }
}
