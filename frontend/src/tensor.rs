//! TensorProto → IR constant for every ONNX element type: dtype and dims checks, `raw_data` (zero-copy),
//! the typed data fields as the ONNX specification assigns them, external data (through
//! [`crate::external`]), and sparse (COO) tensors densified with every index bounds-checked.
//!
//! Sizes are checked before anything is allocated: element counts and byte sizes use checked arithmetic,
//! and no buffer is sized from a declaration alone — only from data actually present in the file, or, for
//! sparse tensors, from dense dims under [`MAX_SPARSE_DENSE_BYTES`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carve_ir::{Buffer, ConstData, ConstFormat, Constant, DType, Shape, TensorType};

use crate::error::ImportError;
use crate::external::ExternalFiles;
use crate::proto::{DataLocation, SparseTensorProto, TensorProto};

/// A sparse tensor is refused when its dense form would need more bytes than this (1 GiB): its dims
/// are a declaration that costs the file nothing, so they alone must not decide an allocation.
pub const MAX_SPARSE_DENSE_BYTES: u64 = 1 << 30;

/// Turns tensor protos into constants; knows the model's directory for external data and maps each
/// external file once.
#[derive(Debug, Default)]
pub struct TensorLoader {
    external: ExternalFiles,
}

fn tensor_err(t: &TensorProto, msg: impl Into<String>) -> ImportError {
    named_err(&t.name, msg)
}

fn named_err(name: &str, msg: impl Into<String>) -> ImportError {
    ImportError::Tensor {
        tensor: name.to_string(),
        msg: msg.into(),
    }
}

/// Checked dims of a tensor: non-negative, element count not overflowing `u64`.
pub fn checked_dims(name: &str, dims: &[i64]) -> Result<(Vec<u64>, u64), ImportError> {
    let mut out = Vec::with_capacity(dims.len());
    let mut count: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d)
            .map_err(|_| named_err(name, format!("negative dim {d} in {dims:?}")))?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| named_err(name, format!("dims {dims:?} overflow the element count")))?;
        out.push(d);
    }
    Ok((out, count))
}

fn dtype_of(name: &str, code: i32) -> Result<DType, ImportError> {
    DType::from_onnx_code(code)
        .ok_or_else(|| named_err(name, format!("unknown or undefined data_type {code}")))
}

/// The typed data fields of `t` that hold values, by name.
fn typed_fields(t: &TensorProto) -> Vec<&'static str> {
    let fields = [
        ("float_data", t.float_data.is_empty()),
        ("int32_data", t.int32_data.is_empty()),
        ("string_data", t.string_data.is_empty()),
        ("int64_data", t.int64_data.is_empty()),
        ("double_data", t.double_data.is_empty()),
        ("uint64_data", t.uint64_data.is_empty()),
    ];
    fields
        .into_iter()
        .filter(|(_, empty)| !empty)
        .map(|(n, _)| n)
        .collect()
}

impl TensorLoader {
    /// A loader that resolves external data in (and confines it to) directory `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> TensorLoader {
        TensorLoader {
            external: ExternalFiles::new(Some(dir.into())),
        }
    }

    /// A loader for a model held in memory: external data is refused. Same as `default()`.
    pub fn in_memory() -> TensorLoader {
        TensorLoader::default()
    }

    /// The directory external data is resolved in, if any.
    pub fn base_dir(&self) -> Option<&Path> {
        self.external.base_dir()
    }

    /// Converts a tensor proto to a dense constant.
    pub fn constant(&self, t: &TensorProto) -> Result<Constant, ImportError> {
        if let Some(seg) = &t.segment {
            return Err(tensor_err(
                t,
                format!(
                    "is a segment [{}, {}) of a larger tensor (TensorProto.segment); segmented \
                     tensors are not supported — save the model with whole tensors",
                    seg.begin, seg.end
                ),
            ));
        }
        let dtype = dtype_of(&t.name, t.data_type)?;
        let (dims, count) = checked_dims(&t.name, &t.dims)?;
        let ty = TensorType::new(dtype, Shape::known(&dims));
        let external = match DataLocation::try_from(t.data_location) {
            Ok(DataLocation::Default) => false,
            Ok(DataLocation::External) => true,
            Err(_) => {
                return Err(tensor_err(
                    t,
                    format!("unknown data_location {}", t.data_location),
                ));
            }
        };
        let typed = typed_fields(t);
        if dtype == DType::String {
            if external || !t.raw_data.is_empty() {
                return Err(tensor_err(
                    t,
                    "string tensors must use string_data (not raw_data or external data)",
                ));
            }
            return strings_constant(t, ty, count);
        }
        let want = dtype
            .storage_bytes(count)
            .ok_or_else(|| tensor_err(t, format!("{ty} overflows the byte size")))?;
        let bytes = if external {
            if !t.raw_data.is_empty() || !typed.is_empty() {
                return Err(tensor_err(
                    t,
                    "has both external data and inline data (raw_data or a typed field)",
                ));
            }
            self.external.read(t, want)?
        } else if !t.raw_data.is_empty() {
            if let Some(field) = typed.first() {
                return Err(tensor_err(t, format!("has both raw_data and {field}")));
            }
            if t.raw_data.len() as u64 != want {
                return Err(tensor_err(
                    t,
                    format!("raw_data has {} bytes, {ty} needs {want}", t.raw_data.len()),
                ));
            }
            // Zero-copy: `raw_data` is a slice of the decoded buffer (the file's memory map).
            Buffer::new(Arc::new(t.raw_data.clone()))
        } else {
            Buffer::from_vec(typed_bytes(t, dtype, count, want)?)
        };
        Constant::dense(ty, bytes).map_err(|m| tensor_err(t, m))
    }

    /// Converts a sparse tensor proto (COO: `values` `[NNZ]`, `indices` `[NNZ, rank]` or linearized
    /// `[NNZ]`) to a dense constant. Every index is bounds-checked; the dense size is capped at
    /// [`MAX_SPARSE_DENSE_BYTES`]. Indices may come in any order; a repeated index keeps the later value.
    pub fn sparse_constant(&self, s: &SparseTensorProto) -> Result<Constant, ImportError> {
        let values = s
            .values
            .as_ref()
            .ok_or_else(|| named_err("", "sparse tensor without values"))?;
        let name = values.name.as_str();
        let indices = s
            .indices
            .as_ref()
            .ok_or_else(|| named_err(name, "sparse tensor without indices"))?;
        let dtype = dtype_of(name, values.data_type)?;
        let (dims, count) = checked_dims(name, &s.dims)?;

        // The dense size is a pure declaration: cap it before loading or allocating anything.
        let dense_bytes = if dtype == DType::String {
            count.checked_mul(std::mem::size_of::<String>() as u64)
        } else {
            dtype.storage_bytes(count)
        };
        let dense_bytes = dense_bytes
            .filter(|&b| b <= MAX_SPARSE_DENSE_BYTES)
            .ok_or_else(|| {
                named_err(
                    name,
                    format!(
                        "sparse tensor of dims {dims:?} ({dtype}) would need more than \
                         {MAX_SPARSE_DENSE_BYTES} bytes when made dense"
                    ),
                )
            })?;
        let dense_len = usize::try_from(dense_bytes)
            .map_err(|_| named_err(name, "dense size does not fit this platform"))?;

        let [nnz] = values.dims[..] else {
            return Err(named_err(
                name,
                format!(
                    "sparse values must be 1-D [NNZ], got dims {:?}",
                    values.dims
                ),
            ));
        };
        let vals = self.constant(values)?;
        let idx_const = self.constant(indices)?;
        let idx = idx_const.to_i64s().ok_or_else(|| {
            named_err(
                name,
                format!(
                    "sparse indices must be an integer tensor, got {}",
                    idx_const.ty.dtype
                ),
            )
        })?;
        let nnz = usize::try_from(nnz)
            .map_err(|_| named_err(name, format!("bad values length {nnz}")))?;
        let rank = dims.len();
        let linear = match indices.dims[..] {
            [n] if n as u64 == nnz as u64 => true,
            [n, r] if n as u64 == nnz as u64 && r as u64 == rank as u64 => false,
            _ => {
                return Err(named_err(
                    name,
                    format!(
                        "sparse indices have dims {:?}; with {nnz} values and dense rank {rank} \
                         they must be [{nnz}, {rank}] or linearized [{nnz}]",
                        indices.dims
                    ),
                ));
            }
        };
        let positions = linear_positions(name, &idx, &dims, count, nnz, linear)?;

        let ty = TensorType::new(dtype, Shape::known(&dims));
        let data = match &vals.data {
            ConstData::Strings(v) => {
                let mut dense = vec![String::new(); dense_len / std::mem::size_of::<String>()];
                for (p, s) in positions.iter().zip(v) {
                    dense[*p] = s.clone();
                }
                ConstData::Strings(dense)
            }
            ConstData::Bytes(b) => {
                let mut dense = vec![0u8; dense_len];
                scatter(dtype.bits(), b.as_bytes(), &positions, &mut dense);
                ConstData::Bytes(Buffer::from_vec(dense))
            }
            ConstData::Elided { .. } => return Err(named_err(name, "sparse values have no data")),
        };
        Ok(Constant {
            ty,
            format: ConstFormat::Dense,
            data,
        })
    }
}

/// Dense element positions of COO indices, each bounds-checked (`linear`: one index per value;
/// otherwise `dims.len()` coordinates per value).
fn linear_positions(
    name: &str,
    idx: &[i64],
    dims: &[u64],
    count: u64,
    nnz: usize,
    linear: bool,
) -> Result<Vec<usize>, ImportError> {
    if dims.is_empty() && !linear {
        // Rank 0 with [NNZ, 0] indices: every value sits at the single element.
        return Ok(vec![0; nnz]);
    }
    let per = if linear { 1 } else { dims.len() };
    let mut out = Vec::with_capacity(nnz);
    for (k, coords) in idx.chunks_exact(per).enumerate() {
        let position = if linear {
            u64::try_from(coords[0]).ok().filter(|&p| p < count)
        } else {
            // Row-major position; stays below `count`, so it cannot overflow.
            coords.iter().zip(dims).try_fold(0u64, |p, (&c, &d)| {
                u64::try_from(c).ok().filter(|&c| c < d).map(|c| p * d + c)
            })
        };
        let position = position
            .and_then(|p| usize::try_from(p).ok())
            .ok_or_else(|| {
                let what = if linear {
                    format!("linear index {}", coords[0])
                } else {
                    format!("coordinates {coords:?}")
                };
                named_err(
                    name,
                    format!("sparse index {k} ({what}) is out of bounds for dims {dims:?}"),
                )
            })?;
        out.push(position);
    }
    Ok(out)
}

/// Writes value `k` of the packed `values` to dense element `positions[k]` for `bits`-wide elements.
fn scatter(bits: u32, values: &[u8], positions: &[usize], dense: &mut [u8]) {
    if bits >= 8 {
        let w = (bits / 8) as usize;
        for (src, &p) in values.chunks_exact(w).zip(positions) {
            dense[p * w..p * w + w].copy_from_slice(src);
        }
        return;
    }
    let per_byte = (8 / bits) as usize;
    let mask = ((1u16 << bits) - 1) as u8;
    for (k, &p) in positions.iter().enumerate() {
        let v = (values[k / per_byte] >> ((k % per_byte) as u32 * bits)) & mask;
        let shift = (p % per_byte) as u32 * bits;
        let byte = &mut dense[p / per_byte];
        *byte = (*byte & !(mask << shift)) | (v << shift);
    }
}

fn strings_constant(t: &TensorProto, ty: TensorType, count: u64) -> Result<Constant, ImportError> {
    if t.string_data.len() as u64 != count {
        return Err(tensor_err(
            t,
            format!("{} strings for {count} elements", t.string_data.len()),
        ));
    }
    let strings = t
        .string_data
        .iter()
        .enumerate()
        .map(|(i, s)| {
            String::from_utf8(s.clone())
                .map_err(|_| tensor_err(t, format!("string element {i} is not UTF-8")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Constant {
        ty,
        format: ConstFormat::Dense,
        data: ConstData::Strings(strings),
    })
}

/// Element bytes from the typed repeated fields, per onnx.proto: `float_data` (f32; c64 as
/// real/imaginary pairs), `double_data` (f64; c128 as pairs), `int64_data` (i64), `uint64_data`
/// (u32, u64), and `int32_data` for everything else — one element per entry for 8- and 16-bit types
/// (bit patterns for the float types), one packed byte per entry for 4-bit (two elements) and 2-bit
/// (four elements) types.
fn typed_bytes(
    t: &TensorProto,
    dtype: DType,
    count: u64,
    want: u64,
) -> Result<Vec<u8>, ImportError> {
    // Every entry becomes at least one byte, so `want` bytes are only allocated once as many entries
    // have been checked to be present in the file.
    let check = |field: &str, n: usize, entries: Option<u64>| -> Result<usize, ImportError> {
        let entries = entries.ok_or_else(|| tensor_err(t, "element count overflows"))?;
        if n as u64 != entries {
            return Err(tensor_err(
                t,
                format!(
                    "{field} has {n} entries, {dtype} with {count} elements needs {entries} \
                     (and no raw_data is given)"
                ),
            ));
        }
        usize::try_from(want).map_err(|_| tensor_err(t, "byte size does not fit this platform"))
    };
    let narrow = |v: i32, lo: i32, hi: i32| -> Result<i32, ImportError> {
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(tensor_err(
                t,
                format!("int32_data value {v} does not fit a {dtype} element"),
            ))
        }
    };
    let mut out;
    match dtype {
        DType::F32 | DType::C64 => {
            let per = if dtype == DType::C64 { 2 } else { 1 };
            out = Vec::with_capacity(check(
                "float_data",
                t.float_data.len(),
                count.checked_mul(per),
            )?);
            t.float_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes()));
        }
        DType::F64 | DType::C128 => {
            let per = if dtype == DType::C128 { 2 } else { 1 };
            out = Vec::with_capacity(check(
                "double_data",
                t.double_data.len(),
                count.checked_mul(per),
            )?);
            t.double_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes()));
        }
        DType::I64 => {
            out = Vec::with_capacity(check("int64_data", t.int64_data.len(), Some(count))?);
            t.int64_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes()));
        }
        DType::U64 => {
            out = Vec::with_capacity(check("uint64_data", t.uint64_data.len(), Some(count))?);
            t.uint64_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes()));
        }
        DType::U32 => {
            out = Vec::with_capacity(check("uint64_data", t.uint64_data.len(), Some(count))?);
            for &v in &t.uint64_data {
                let v = u32::try_from(v).map_err(|_| {
                    tensor_err(
                        t,
                        format!("uint64_data value {v} does not fit a u32 element"),
                    )
                })?;
                out.extend(v.to_le_bytes());
            }
        }
        DType::I32 => {
            out = Vec::with_capacity(check("int32_data", t.int32_data.len(), Some(count))?);
            t.int32_data
                .iter()
                .for_each(|v| out.extend(v.to_le_bytes()));
        }
        DType::I16 | DType::U16 | DType::F16 | DType::BF16 => {
            // Either the signed or the unsigned reading of the 16-bit pattern is accepted.
            out = Vec::with_capacity(check("int32_data", t.int32_data.len(), Some(count))?);
            for &v in &t.int32_data {
                out.extend(
                    (narrow(v, i32::from(i16::MIN), i32::from(u16::MAX))? as u16).to_le_bytes(),
                );
            }
        }
        DType::Bool => {
            out = Vec::with_capacity(check("int32_data", t.int32_data.len(), Some(count))?);
            out.extend(t.int32_data.iter().map(|&v| u8::from(v != 0)));
        }
        DType::I8
        | DType::U8
        | DType::F8E4M3FN
        | DType::F8E4M3FNUZ
        | DType::F8E5M2
        | DType::F8E5M2FNUZ
        | DType::F8E8M0
        | DType::I4
        | DType::U4
        | DType::F4E2M1
        | DType::I2
        | DType::U2 => {
            // 8-bit types: one element per entry. Sub-byte types: one packed byte per entry, first
            // element in the least significant bits — exactly the dense storage layout.
            out = Vec::with_capacity(check("int32_data", t.int32_data.len(), Some(want))?);
            for &v in &t.int32_data {
                out.push(narrow(v, i32::from(i8::MIN), i32::from(u8::MAX))? as u8);
            }
        }
        DType::String => return Err(tensor_err(t, "string tensors use string_data")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{TensorProto, TensorSegment};
    use bytes::Bytes;
    use prost::Message;

    fn proto(dtype: DType, dims: &[i64]) -> TensorProto {
        TensorProto {
            name: "t".into(),
            data_type: dtype.onnx_code(),
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn bytes_of(c: &Constant) -> Vec<u8> {
        match &c.data {
            ConstData::Bytes(b) => b.as_bytes().to_vec(),
            other => panic!("not bytes: {other:?}"),
        }
    }

    fn load(t: &TensorProto) -> Result<Constant, ImportError> {
        TensorLoader::default().constant(t)
    }

    fn err(t: &TensorProto) -> String {
        match load(t) {
            Err(e) => e.to_string(),
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn raw_data_is_not_copied() {
        let mut t = proto(DType::F32, &[2]);
        t.raw_data = Bytes::from_static(&[0, 0, 128, 63, 0, 0, 0, 64]);
        let encoded = Bytes::from(t.encode_to_vec());
        let decoded = TensorProto::decode(encoded.clone()).ok();
        let c = decoded.as_ref().map(load);
        let Some(Ok(c)) = c else { panic!("{c:?}") };
        let ConstData::Bytes(b) = &c.data else {
            panic!()
        };
        let range = encoded.as_ptr_range();
        assert!(
            range.contains(&b.as_bytes().as_ptr()),
            "raw_data was copied"
        );
        assert_eq!(c.to_f64s(), Some(vec![1.0, 2.0]));
    }

    #[test]
    fn every_dtype_loads_from_its_typed_field() {
        for dtype in DType::all() {
            let mut t = proto(dtype, &[3]);
            match dtype {
                DType::F32 => t.float_data = vec![1.0, 2.0, 3.0],
                DType::C64 => t.float_data = vec![1.0; 6],
                DType::F64 => t.double_data = vec![1.0, 2.0, 3.0],
                DType::C128 => t.double_data = vec![1.0; 6],
                DType::I64 => t.int64_data = vec![-1, 2, 3],
                DType::U64 | DType::U32 => t.uint64_data = vec![1, 2, 3],
                DType::String => t.string_data = vec![b"a".to_vec(), b"b".to_vec(), vec![]],
                DType::I4 | DType::U4 | DType::F4E2M1 => t.int32_data = vec![0x21, 0x03],
                DType::I2 | DType::U2 => t.int32_data = vec![0b11_10_01],
                _ => t.int32_data = vec![1, 0, 1],
            }
            let c = load(&t).unwrap_or_else(|e| panic!("{dtype}: {e}"));
            assert_eq!(c.num_elements(), 3, "{dtype}");
            assert_eq!(c.ty.dtype, dtype);
        }
    }

    #[test]
    fn typed_fields_give_little_endian_element_bytes() {
        let mut t = proto(DType::F16, &[2]);
        t.int32_data = vec![0x3c00, -17408]; // 1.0 and -1.0 (0xbc00 read as i16)
        assert_eq!(
            load(&t).ok().and_then(|c| c.to_f64s()),
            Some(vec![1.0, -1.0])
        );

        let mut t = proto(DType::I4, &[3]);
        t.int32_data = vec![0x21, 0x03];
        assert_eq!(load(&t).map(|c| bytes_of(&c)).ok(), Some(vec![0x21, 0x03]));

        let mut t = proto(DType::Bool, &[3]);
        t.int32_data = vec![0, 7, 1];
        assert_eq!(load(&t).map(|c| bytes_of(&c)).ok(), Some(vec![0, 1, 1]));

        let mut t = proto(DType::U32, &[1]);
        t.uint64_data = vec![0xdead_beef];
        assert_eq!(
            load(&t).ok().and_then(|c| c.to_i64s()),
            Some(vec![0xdead_beef])
        );

        let mut t = proto(DType::C64, &[1]);
        t.float_data = vec![1.0, -2.0];
        let want: Vec<u8> = [1.0f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(load(&t).map(|c| bytes_of(&c)).ok(), Some(want));
    }

    #[test]
    fn typed_field_mismatches_are_refused() {
        let mut t = proto(DType::F32, &[4]);
        t.float_data = vec![1.0];
        assert!(err(&t).contains("float_data has 1 entries"));

        let mut t = proto(DType::U8, &[1]);
        t.int32_data = vec![300];
        assert!(err(&t).contains("does not fit a u8"));

        let mut t = proto(DType::U32, &[1]);
        t.uint64_data = vec![1 << 40];
        assert!(err(&t).contains("does not fit a u32"));

        let mut t = proto(DType::I4, &[3]);
        t.int32_data = vec![1, 2, 3];
        assert!(err(&t).contains("needs 2"));

        let mut t = proto(DType::F32, &[1]);
        t.raw_data = Bytes::from_static(&[0; 4]);
        t.float_data = vec![1.0];
        assert!(err(&t).contains("both raw_data and float_data"));

        let mut t = proto(DType::F32, &[1 << 40]);
        t.float_data = vec![1.0];
        assert!(err(&t).contains("needs 1099511627776"));
    }

    #[test]
    fn segments_and_unknown_locations_are_refused() {
        let mut t = proto(DType::F32, &[1]);
        t.float_data = vec![1.0];
        t.segment = Some(TensorSegment { begin: 0, end: 1 });
        assert!(err(&t).contains("segment"));
        t.segment = None;
        t.data_location = 7;
        assert!(err(&t).contains("unknown data_location 7"));
    }

    fn sparse(dtype: DType, dims: &[i64], idx_dims: &[i64], idx: Vec<i64>) -> SparseTensorProto {
        let nnz = idx_dims[0];
        let mut values = proto(dtype, &[nnz]);
        values.name = "s".into();
        values.int32_data = (1..=nnz as i32).collect();
        let mut indices = proto(DType::I64, idx_dims);
        indices.int64_data = idx;
        SparseTensorProto {
            values: Some(values),
            indices: Some(indices),
            dims: dims.to_vec(),
        }
    }

    #[test]
    fn sparse_tensors_densify_from_both_index_forms() {
        let l = TensorLoader::default();
        let coo = sparse(DType::I32, &[2, 3], &[2, 2], vec![0, 1, 1, 2]);
        let lin = sparse(DType::I32, &[2, 3], &[2], vec![1, 5]);
        for s in [coo, lin] {
            let c = l.sparse_constant(&s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.to_i64s(), Some(vec![0, 1, 0, 0, 0, 2]));
        }
        // Rank 1 in [NNZ, 1] form, sub-byte values.
        let s = sparse(DType::U4, &[5], &[2, 1], vec![4, 1]);
        let mut s2 = s.clone();
        if let Some(v) = s2.values.as_mut() {
            v.int32_data = vec![0x5a];
        }
        let c = l.sparse_constant(&s2).unwrap_or_else(|e| panic!("{e}"));
        // Value 0 (0xa) goes to element 4, value 1 (0x5) to element 1.
        assert_eq!(bytes_of(&c), vec![0x50, 0x00, 0x0a]);
    }

    #[test]
    fn rank_0_sparse_tensors_densify_in_both_index_forms() {
        let l = TensorLoader::default();
        for s in [
            sparse(DType::I32, &[], &[1, 0], vec![]),
            sparse(DType::I32, &[], &[1], vec![0]),
        ] {
            let c = l.sparse_constant(&s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.to_i64s(), Some(vec![1]));
        }
    }

    #[test]
    fn sparse_indices_out_of_bounds_are_refused() {
        let l = TensorLoader::default();
        for s in [
            sparse(DType::I32, &[2, 3], &[1, 2], vec![0, 3]),
            sparse(DType::I32, &[2, 3], &[1, 2], vec![-1, 0]),
            sparse(DType::I32, &[2, 3], &[1], vec![6]),
        ] {
            let e = l.sparse_constant(&s).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|m| m.contains("out of bounds")),
                "{e:?}"
            );
        }
        let s = sparse(DType::I32, &[2, 3], &[1, 3], vec![0, 0, 0]);
        let e = l.sparse_constant(&s).err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("must be [1, 2] or linearized [1]")));
    }

    #[test]
    fn sparse_tensors_too_large_to_densify_are_refused() {
        let s = sparse(DType::I32, &[1 << 20, 1 << 20], &[1], vec![0]);
        let e = TensorLoader::default()
            .sparse_constant(&s)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("would need more than")));
    }
}
