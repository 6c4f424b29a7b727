//! Element types of tensors: the full ONNX set, with names, bit widths and ONNX enum codes.

use std::fmt;

/// Element type of a tensor.
///
/// Sub-byte types (`i4`, `u4`, `i2`, `u2`, `f4e2m1`) are stored packed, low bits first, as in ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    F16,
    BF16,
    F8E4M3FN,
    F8E4M3FNUZ,
    F8E5M2,
    F8E5M2FNUZ,
    F8E8M0,
    F4E2M1,
    I64,
    I32,
    I16,
    I8,
    I4,
    I2,
    U64,
    U32,
    U16,
    U8,
    U4,
    U2,
    Bool,
    String,
    C64,
    C128,
}

/// One row of the dtype table: the single place that knows each dtype's name, width and ONNX code.
struct DTypeInfo {
    dtype: DType,
    name: &'static str,
    bits: u32,
    onnx: i32,
}

const TABLE: &[DTypeInfo] = &[
    DTypeInfo {
        dtype: DType::F32,
        name: "f32",
        bits: 32,
        onnx: 1,
    },
    DTypeInfo {
        dtype: DType::U8,
        name: "u8",
        bits: 8,
        onnx: 2,
    },
    DTypeInfo {
        dtype: DType::I8,
        name: "i8",
        bits: 8,
        onnx: 3,
    },
    DTypeInfo {
        dtype: DType::U16,
        name: "u16",
        bits: 16,
        onnx: 4,
    },
    DTypeInfo {
        dtype: DType::I16,
        name: "i16",
        bits: 16,
        onnx: 5,
    },
    DTypeInfo {
        dtype: DType::I32,
        name: "i32",
        bits: 32,
        onnx: 6,
    },
    DTypeInfo {
        dtype: DType::I64,
        name: "i64",
        bits: 64,
        onnx: 7,
    },
    DTypeInfo {
        dtype: DType::String,
        name: "string",
        bits: 0,
        onnx: 8,
    },
    DTypeInfo {
        dtype: DType::Bool,
        name: "bool",
        bits: 8,
        onnx: 9,
    },
    DTypeInfo {
        dtype: DType::F16,
        name: "f16",
        bits: 16,
        onnx: 10,
    },
    DTypeInfo {
        dtype: DType::F64,
        name: "f64",
        bits: 64,
        onnx: 11,
    },
    DTypeInfo {
        dtype: DType::U32,
        name: "u32",
        bits: 32,
        onnx: 12,
    },
    DTypeInfo {
        dtype: DType::U64,
        name: "u64",
        bits: 64,
        onnx: 13,
    },
    DTypeInfo {
        dtype: DType::C64,
        name: "c64",
        bits: 64,
        onnx: 14,
    },
    DTypeInfo {
        dtype: DType::C128,
        name: "c128",
        bits: 128,
        onnx: 15,
    },
    DTypeInfo {
        dtype: DType::BF16,
        name: "bf16",
        bits: 16,
        onnx: 16,
    },
    DTypeInfo {
        dtype: DType::F8E4M3FN,
        name: "f8e4m3fn",
        bits: 8,
        onnx: 17,
    },
    DTypeInfo {
        dtype: DType::F8E4M3FNUZ,
        name: "f8e4m3fnuz",
        bits: 8,
        onnx: 18,
    },
    DTypeInfo {
        dtype: DType::F8E5M2,
        name: "f8e5m2",
        bits: 8,
        onnx: 19,
    },
    DTypeInfo {
        dtype: DType::F8E5M2FNUZ,
        name: "f8e5m2fnuz",
        bits: 8,
        onnx: 20,
    },
    DTypeInfo {
        dtype: DType::U4,
        name: "u4",
        bits: 4,
        onnx: 21,
    },
    DTypeInfo {
        dtype: DType::I4,
        name: "i4",
        bits: 4,
        onnx: 22,
    },
    DTypeInfo {
        dtype: DType::F4E2M1,
        name: "f4e2m1",
        bits: 4,
        onnx: 23,
    },
    DTypeInfo {
        dtype: DType::F8E8M0,
        name: "f8e8m0",
        bits: 8,
        onnx: 24,
    },
    DTypeInfo {
        dtype: DType::U2,
        name: "u2",
        bits: 2,
        onnx: 25,
    },
    DTypeInfo {
        dtype: DType::I2,
        name: "i2",
        bits: 2,
        onnx: 26,
    },
];

impl DType {
    /// All element types, in ONNX code order.
    pub fn all() -> impl Iterator<Item = DType> {
        TABLE.iter().map(|i| i.dtype)
    }

    fn info(self) -> &'static DTypeInfo {
        // Every variant has exactly one row; the `dtype_table_is_complete` test guards this.
        TABLE.iter().find(|i| i.dtype == self).unwrap_or(&TABLE[0])
    }

    /// Short name used in the IR text format (`f32`, `i64`, `bool`, ...).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Parses a short name as printed by [`DType::name`].
    pub fn from_name(name: &str) -> Option<DType> {
        TABLE.iter().find(|i| i.name == name).map(|i| i.dtype)
    }

    /// The `TensorProto.DataType` code of this type.
    pub fn onnx_code(self) -> i32 {
        self.info().onnx
    }

    /// The dtype of a `TensorProto.DataType` code, or `None` for UNDEFINED/unknown codes.
    pub fn from_onnx_code(code: i32) -> Option<DType> {
        TABLE.iter().find(|i| i.onnx == code).map(|i| i.dtype)
    }

    /// Storage bits per element (0 for strings, which are not stored as fixed-width bytes).
    pub fn bits(self) -> u32 {
        self.info().bits
    }

    /// Bytes needed to store `count` elements densely (sub-byte types packed, rounded up);
    /// `None` on overflow or for strings.
    pub fn storage_bytes(self, count: u64) -> Option<u64> {
        match self.bits() {
            0 => None,
            b if b < 8 => count.checked_mul(u64::from(b)).map(|bits| bits.div_ceil(8)),
            b => count.checked_mul(u64::from(b / 8)),
        }
    }

    /// True for floating-point types of any width (including the 8- and 4-bit floats).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::F32
                | DType::F64
                | DType::F16
                | DType::BF16
                | DType::F8E4M3FN
                | DType::F8E4M3FNUZ
                | DType::F8E5M2
                | DType::F8E5M2FNUZ
                | DType::F8E8M0
                | DType::F4E2M1
        )
    }

    /// True for signed integer types.
    pub fn is_signed_int(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::I4 | DType::I2
        )
    }

    /// True for unsigned integer types.
    pub fn is_unsigned_int(self) -> bool {
        matches!(
            self,
            DType::U64 | DType::U32 | DType::U16 | DType::U8 | DType::U4 | DType::U2
        )
    }

    /// True for any integer type.
    pub fn is_int(self) -> bool {
        self.is_signed_int() || self.is_unsigned_int()
    }

    /// True for complex types.
    pub fn is_complex(self) -> bool {
        matches!(self, DType::C64 | DType::C128)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_table_is_complete() {
        for d in DType::all() {
            assert_eq!(DType::from_name(d.name()), Some(d));
            assert_eq!(DType::from_onnx_code(d.onnx_code()), Some(d));
        }
        assert_eq!(DType::all().count(), 26);
    }

    #[test]
    fn storage_bytes_packs_sub_byte_types_and_detects_overflow() {
        assert_eq!(DType::I4.storage_bytes(3), Some(2));
        assert_eq!(DType::U2.storage_bytes(5), Some(2));
        assert_eq!(DType::F32.storage_bytes(10), Some(40));
        assert_eq!(DType::F64.storage_bytes(u64::MAX), None);
        assert_eq!(DType::String.storage_bytes(1), None);
    }
}
