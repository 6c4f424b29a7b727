//! Reading runtime values from ONNX protobuf files (`TensorProto`, `SequenceProto`, `OptionalProto`, as in
//! the ONNX test-data layout), guided by the value's expected IR type.

use std::path::Path;

use carve_frontend::proto::{OptionalProto, SequenceProto, TensorProto};
use carve_frontend::tensor::TensorLoader;
use carve_ir::Type;
use carve_runtime::Tensor;
use carve_runtime::interp::Value;
use prost::Message;

/// Why a data file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("'{path}': {msg}")]
pub struct DataError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

fn data_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

/// Converts a runtime tensor to a tensor proto (`raw_data` little-endian, sub-byte types packed; strings in
/// `string_data`), named `name`.
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut p = TensorProto {
        name: name.to_string(),
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        ..TensorProto::default()
    };
    match &t.data {
        carve_runtime::Data::Str(v) => {
            p.string_data = v.iter().map(|s| s.as_bytes().to_vec()).collect()
        }
        d => p.raw_data = d.to_le_bytes().unwrap_or_default().into(),
    }
    p
}

/// Writes a tensor as an ONNX `TensorProto` `.pb` file (atomically).
pub fn write_pb(path: &Path, name: &str, t: &Tensor) -> Result<(), DataError> {
    crate::output::write_atomic(path, &tensor_to_proto(name, t).encode_to_vec())
        .map_err(|e| data_err(path, e.to_string()))
}

/// Converts a tensor proto to a runtime tensor.
pub fn tensor_from_proto(t: &TensorProto) -> Result<Tensor, String> {
    let c = TensorLoader::default()
        .constant(t)
        .map_err(|e| e.to_string())?;
    Tensor::from_constant(&c).map_err(|e| e.0)
}

fn sequence_from_proto(s: &SequenceProto, elem: &Type) -> Result<Value, String> {
    let items = match s.elem_type {
        1 | 0 => s
            .tensor_values
            .iter()
            .map(|t| tensor_from_proto(t).map(Value::Tensor))
            .collect::<Result<Vec<_>, _>>()?,
        3 => s
            .sequence_values
            .iter()
            .map(|x| sequence_from_proto(x, elem))
            .collect::<Result<Vec<_>, _>>()?,
        5 => s
            .optional_values
            .iter()
            .map(|x| optional_from_proto(x, elem))
            .collect::<Result<Vec<_>, _>>()?,
        k => return Err(format!("sequences of element kind {k} are not supported")),
    };
    Ok(Value::Sequence(items))
}

fn optional_from_proto(o: &OptionalProto, elem: &Type) -> Result<Value, String> {
    let inner = match o.elem_type {
        0 => None,
        1 => o
            .tensor_value
            .as_ref()
            .map(|t| tensor_from_proto(t).map(Value::Tensor))
            .transpose()?,
        3 => o
            .sequence_value
            .as_deref()
            .map(|s| sequence_from_proto(s, elem))
            .transpose()?,
        5 => o
            .optional_value
            .as_deref()
            .map(|x| optional_from_proto(x, elem))
            .transpose()?,
        k => return Err(format!("optionals of element kind {k} are not supported")),
    };
    Ok(Value::Optional(inner.map(Box::new)))
}

/// Reads a `.pb` value file whose content has IR type `ty` (tensor, sequence or optional).
pub fn read_pb(path: &Path, ty: &Type) -> Result<Value, DataError> {
    let bytes = std::fs::read(path).map_err(|e| data_err(path, e.to_string()))?;
    let decoded = match ty {
        Type::Tensor(_) => TensorProto::decode(bytes.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|t| tensor_from_proto(&t).map(Value::Tensor)),
        Type::Sequence(elem) => SequenceProto::decode(bytes.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|s| sequence_from_proto(&s, elem)),
        Type::Optional(elem) => OptionalProto::decode(bytes.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|o| optional_from_proto(&o, elem)),
        Type::Map(..) => Err("map values are not supported".into()),
    };
    decoded.map_err(|m| data_err(path, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::DType;
    use carve_runtime::Data;

    #[test]
    fn tensors_round_trip_through_tensor_protos() {
        let cases = [
            Tensor::new(vec![2, 2], Data::F32(vec![1.0, -2.5, 3.0, f32::NAN])).unwrap(),
            Tensor::new(vec![3], Data::Small(DType::I4, vec![7, 0xF8, 0xFF])).unwrap(),
            Tensor::new(vec![2], Data::Str(vec!["a".into(), "bé".into()])).unwrap(),
            Tensor::new(vec![], Data::Bool(vec![true])).unwrap(),
        ];
        let d = tempfile::tempdir().unwrap();
        for (i, t) in cases.iter().enumerate() {
            let p = d.path().join(format!("t{i}.pb"));
            write_pb(&p, "t", t).unwrap();
            let back = read_pb(&p, &Type::Tensor(t.ty())).unwrap();
            let Value::Tensor(b) = back else { panic!() };
            assert_eq!(b.shape, t.shape);
            assert_eq!(b.data.to_le_bytes(), t.data.to_le_bytes(), "{}", t.dtype());
        }
    }
}
