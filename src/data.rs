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
