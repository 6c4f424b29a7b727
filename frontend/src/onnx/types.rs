//! ONNX TypeProto → IR type.

use carve_ir::{DType, Dim, Shape, TensorType, Type};

use crate::proto::{
    TensorShapeProto, TypeProto, tensor_shape_proto::dimension::Value as DimValue, type_proto,
};

/// Converts a shape proto. A dim with neither value nor param, a negative value (exporters write -1 for
/// "dynamic") or a param that is only `?` marks is unknown; other params become symbols (kept verbatim;
/// the text format quotes names that are not plain words).
pub fn shape_from_proto(s: &TensorShapeProto) -> Result<Shape, String> {
    Ok(Shape(
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(DimValue::DimValue(v)) => u64::try_from(*v).map_or(Dim::Unknown, Dim::Known),
                Some(DimValue::DimParam(p)) if !p.trim_matches('?').is_empty() => {
                    Dim::Sym(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect(),
    ))
}

/// Converts a type proto; `Err` names what is malformed or unsupported.
pub fn type_from_proto(t: &TypeProto) -> Result<Type, String> {
    match &t.value {
        Some(type_proto::Value::TensorType(tt)) => {
            let dtype = DType::from_onnx_code(tt.elem_type)
                .ok_or_else(|| format!("unknown tensor element type {}", tt.elem_type))?;
            let shape = tt.shape.as_ref().map(shape_from_proto).transpose()?;
            Ok(Type::Tensor(TensorType {
                dtype,
                shape,
                quant: None,
            }))
        }
        Some(type_proto::Value::SparseTensorType(tt)) => {
            let dtype = DType::from_onnx_code(tt.elem_type)
                .ok_or_else(|| format!("unknown tensor element type {}", tt.elem_type))?;
            let shape = tt.shape.as_ref().map(shape_from_proto).transpose()?;
            Ok(Type::Tensor(TensorType {
                dtype,
                shape,
                quant: None,
            }))
        }
        Some(type_proto::Value::SequenceType(s)) => {
            let elem = s
                .elem_type
                .as_deref()
                .ok_or("sequence type without element type")?;
            Ok(Type::Sequence(Box::new(type_from_proto(elem)?)))
        }
        Some(type_proto::Value::OptionalType(s)) => {
            let elem = s
                .elem_type
                .as_deref()
                .ok_or("optional type without element type")?;
            Ok(Type::Optional(Box::new(type_from_proto(elem)?)))
        }
        Some(type_proto::Value::MapType(m)) => {
            let key = DType::from_onnx_code(m.key_type)
                .ok_or_else(|| format!("unknown map key type {}", m.key_type))?;
            let v = m
                .value_type
                .as_deref()
                .ok_or("map type without value type")?;
            Ok(Type::Map(key, Box::new(type_from_proto(v)?)))
        }
        None => Err("type is missing".into()),
    }
}
