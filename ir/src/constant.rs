//! Constants: shared immutable byte buffers (possibly memory-mapped) with a tensor type and a storage format.

use std::fmt;
use std::sync::Arc;

use crate::{DType, TensorType};

/// A cheaply clonable, immutable view of bytes owned by something shared (a `Vec`, a memory map, ...).
#[derive(Clone)]
pub struct Buffer {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    offset: usize,
    len: usize,
}

impl Buffer {
    /// Wraps an owner; the view covers all of its bytes.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Buffer {
        let len = (*owner).as_ref().len();
        Buffer {
            owner,
            offset: 0,
            len,
        }
    }

    /// A buffer owning a copy of `bytes`.
    pub fn from_vec(bytes: Vec<u8>) -> Buffer {
        Buffer::new(Arc::new(bytes))
    }

    /// A sub-view `[start, start+len)` of this view, or `None` if it does not fit.
    pub fn slice(&self, start: usize, len: usize) -> Option<Buffer> {
        let end = start.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Buffer {
            owner: self.owner.clone(),
            offset: self.offset + start,
            len,
        })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.offset..self.offset + self.len]
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({} bytes)", self.len)
    }
}

impl PartialEq for Buffer {
    fn eq(&self, other: &Buffer) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// How a constant's non-zero values are stored. Visible in the constant's printed type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstFormat {
    /// Every element stored, row-major.
    Dense,
    /// Compressed sparse rows over the last two dims.
    Csr,
    /// Block-CSR with `rows × cols` blocks.
    BlockCsr { rows: u32, cols: u32 },
    /// A presence bitmap followed by the non-zero values.
    Bitmap,
    /// At most `n` non-zeros in every group of `m` consecutive elements along the last dim.
    NofM { n: u32, m: u32 },
}

impl fmt::Display for ConstFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConstFormat::Dense => f.write_str("dense"),
            ConstFormat::Csr => f.write_str("csr"),
            ConstFormat::BlockCsr { rows, cols } => write!(f, "bcsr{rows}x{cols}"),
            ConstFormat::Bitmap => f.write_str("bitmap"),
            ConstFormat::NofM { n, m } => write!(f, "{n}:{m}"),
        }
    }
}

/// The stored content of a constant.
#[derive(Debug, Clone, PartialEq)]
pub enum ConstData {
    /// Little-endian element bytes in the layout given by the format (sub-byte types packed low bits first,
    /// bools one byte each).
    Bytes(Buffer),
    /// String elements.
    Strings(Vec<String>),
    /// Content known only by its hash: what the parser builds from a large constant printed by hash.
    /// Such a graph can be printed, verified and compared, but not executed.
    Elided { hash: u64 },
}

/// A constant tensor value.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// The type; the shape is always fully known for constants.
    pub ty: TensorType,
    /// Storage format of `data`.
    pub format: ConstFormat,
    /// The content.
    pub data: ConstData,
}

/// Constants with at most this many elements are printed inline in the text format.
pub const INLINE_ELEMENTS: u64 = 16;

impl Constant {
    /// A dense constant over `bytes`, checking that the byte length matches the type.
    pub fn dense(ty: TensorType, bytes: Buffer) -> Result<Constant, String> {
        let count = ty
            .shape
            .as_ref()
            .and_then(|s| s.num_elements())
            .ok_or_else(|| format!("constant of type {ty} must have a concrete shape"))?;
        let want = ty.dtype.storage_bytes(count).ok_or_else(|| {
            format!("constant of type {ty}: size overflows or dtype has no fixed width")
        })?;
        if want != bytes.len() as u64 {
            return Err(format!(
                "constant of type {ty} needs {want} bytes, got {}",
                bytes.len()
            ));
        }
        Ok(Constant {
            ty,
            format: ConstFormat::Dense,
            data: ConstData::Bytes(bytes),
        })
    }

    /// A dense constant from a slice of `i64` values with shape `dims`.
    pub fn from_i64s(dims: &[u64], values: &[i64]) -> Constant {
        // Not `flat_map(..).collect()`: that pushes byte by byte, ~10× slower on multi-MB weights.
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Constant {
            ty: TensorType::known(DType::I64, dims),
            format: ConstFormat::Dense,
            data: ConstData::Bytes(Buffer::from_vec(bytes)),
        }
    }

    /// A dense f32 constant from its little-endian bytes; `None` unless there are `4 · ∏dims` of them.
    pub fn from_f32_bytes(dims: &[u64], bytes: Vec<u8>) -> Option<Constant> {
        let n = dims.iter().try_fold(4u64, |a, &d| a.checked_mul(d))?;
        (n == bytes.len() as u64).then(|| Constant {
            ty: TensorType::known(DType::F32, dims),
            format: ConstFormat::Dense,
            data: ConstData::Bytes(Buffer::from_vec(bytes)),
        })
    }

    /// A dense constant from a slice of `f32` values with shape `dims`.
    pub fn from_f32s(dims: &[u64], values: &[f32]) -> Constant {
        // Not `flat_map(..).collect()`: that pushes byte by byte, ~10× slower on multi-MB weights.
        let mut bytes = Vec::with_capacity(values.len() * 4);
        for v in values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        Constant {
            ty: TensorType::known(DType::F32, dims),
            format: ConstFormat::Dense,
            data: ConstData::Bytes(Buffer::from_vec(bytes)),
        }
    }

    /// Number of elements.
    pub fn num_elements(&self) -> u64 {
        self.ty
            .shape
            .as_ref()
            .and_then(|s| s.num_elements())
            .unwrap_or(0)
    }

    /// A stable 64-bit content hash (xxh3 over dtype, dims, format and bytes), the same on every platform.
    pub fn content_hash(&self) -> u64 {
        match &self.data {
            ConstData::Elided { hash } => *hash,
            ConstData::Bytes(b) => xxhash_rust::xxh3::xxh3_64(b.as_bytes()),
            ConstData::Strings(s) => {
                let mut joined = Vec::new();
                for x in s {
                    joined.extend_from_slice(&(x.len() as u64).to_le_bytes());
                    joined.extend_from_slice(x.as_bytes());
                }
                xxhash_rust::xxh3::xxh3_64(&joined)
            }
        }
    }

    /// Values as `i64` when this is a dense integer or bool constant (any width), else `None`.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        let ConstData::Bytes(b) = &self.data else {
            return None;
        };
        if self.format != ConstFormat::Dense {
            return None;
        }
        let b = b.as_bytes();
        let v = match self.ty.dtype {
            DType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            DType::U64 => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as i64)
                .collect(),
            DType::I32 => b
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
            DType::U32 => b
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes(c.try_into().unwrap_or([0; 4]))))
                .collect(),
            DType::I16 => b
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::U16 => b
                .chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            DType::I8 => b.iter().map(|&x| i64::from(x as i8)).collect(),
            DType::U8 | DType::Bool => b.iter().map(|&x| i64::from(x)).collect(),
            _ => return None,
        };
        Some(v)
    }

    /// Values as `f64` when this is a dense numeric constant of a common type, else `None`.
    pub fn to_f64s(&self) -> Option<Vec<f64>> {
        let ConstData::Bytes(b) = &self.data else {
            return None;
        };
        if self.format != ConstFormat::Dense {
            return None;
        }
        let b = b.as_bytes();
        let v = match self.ty.dtype {
            DType::F32 => b
                .chunks_exact(4)
                .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            DType::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            DType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            DType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
                .collect(),
            _ => {
                return self
                    .to_i64s()
                    .map(|v| v.into_iter().map(|x| x as f64).collect());
            }
        };
        Some(v)
    }
}
