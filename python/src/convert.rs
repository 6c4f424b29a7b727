//! numpy arrays ↔ carve values. Inputs are copied once into carve tensors (in C order, whatever the
//! array's strides); outputs hand their buffer to numpy without a copy (`PyArray::from_vec`, then a
//! reshape view). Element types map one to one (f32 ↔ float32, i64 ↔ int64, bool ↔ bool, f16 ↔ float16,
//! c64 ↔ complex64, strings ↔ str); bf16, 8-/4-bit floats and sub-byte integers have no numpy
//! counterpart and are [`UnsupportedError`]s.

use numpy::{Element, PyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray};
use numpy::{PyUntypedArrayMethods, dtype};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use carve::ir::{Graph, Type};
use carve::runtime::interp::Value;
use carve::{DType, Data, Tensor};
use num_complex::{Complex32, Complex64};

use crate::errors::{InputError, UnsupportedError};

/// The numpy name of a carve element type, or `None` when numpy has no such type.
pub fn numpy_name(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::F16 => "float16",
        DType::I64 => "int64",
        DType::I32 => "int32",
        DType::I16 => "int16",
        DType::I8 => "int8",
        DType::U64 => "uint64",
        DType::U32 => "uint32",
        DType::U16 => "uint16",
        DType::U8 => "uint8",
        DType::Bool => "bool",
        DType::String => "str",
        DType::C64 => "complex64",
        DType::C128 => "complex128",
        _ => return None,
    })
}

/// The array's elements in C order (one copy; a contiguous array is copied as one block).
fn elements<T: Element + Clone>(a: &Bound<'_, PyUntypedArray>) -> PyResult<Vec<T>> {
    let typed = a.cast::<PyArrayDyn<T>>()?;
    let ro = typed.try_readonly()?;
    // `as_slice` also accepts Fortran-contiguous arrays (memory order ≠ C order): only C order is
    // copied as a block, everything else element by element in logical order.
    if a.is_c_contiguous()
        && let Ok(s) = ro.as_slice()
    {
        return Ok(s.to_vec());
    }
    Ok(ro.as_array().iter().cloned().collect())
}

/// Strings of a numpy `str`, `bytes` or `object` array, in C order.
fn strings(a: &Bound<'_, PyUntypedArray>, what: &str) -> PyResult<Vec<String>> {
    let flat = a.call_method0("ravel")?.call_method0("tolist")?;
    let items = flat.cast_into::<PyList>()?;
    items
        .iter()
        .map(|x| {
            if let Ok(s) = x.extract::<String>() {
                Ok(s)
            } else if let Ok(b) = x.extract::<Vec<u8>>() {
                String::from_utf8(b).map_err(|_| {
                    InputError::new_err(format!("{what}: a bytes element is not UTF-8"))
                })
            } else {
                Err(InputError::new_err(format!(
                    "{what}: an element of an object array is a {}, not a str",
                    x.get_type().name()?
                )))
            }
        })
        .collect()
}

/// `obj` (a numpy array, or anything `numpy.asarray` takes) as a carve tensor; `name` is the input's.
pub fn to_tensor(py: Python<'_>, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let what = format!("input '{name}'");
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => py
            .import("numpy")?
            .call_method1("asarray", (obj,))?
            .cast_into::<PyUntypedArray>()?,
    };
    let shape = arr.shape().to_vec();
    let dt = arr.dtype();
    let is = |d: Bound<'_, numpy::PyArrayDescr>| dt.is_equiv_to(&d);
    let data = if is(dtype::<f32>(py)) {
        Data::F32(elements(&arr)?)
    } else if is(dtype::<f64>(py)) {
        Data::F64(elements(&arr)?)
    } else if is(dtype::<i64>(py)) {
        Data::I64(elements(&arr)?)
    } else if is(dtype::<i32>(py)) {
        Data::I32(elements(&arr)?)
    } else if is(dtype::<bool>(py)) {
        Data::Bool(elements(&arr)?)
    } else if is(dtype::<u8>(py)) {
        Data::U8(elements(&arr)?)
    } else if is(dtype::<i8>(py)) {
        Data::I8(elements(&arr)?)
    } else if is(dtype::<i16>(py)) {
        Data::I16(elements(&arr)?)
    } else if is(dtype::<u16>(py)) {
        Data::U16(elements(&arr)?)
    } else if is(dtype::<u32>(py)) {
        Data::U32(elements(&arr)?)
    } else if is(dtype::<u64>(py)) {
        Data::U64(elements(&arr)?)
    } else if is(dtype::<half::f16>(py)) {
        Data::F16(elements(&arr)?)
    } else if is(dtype::<Complex32>(py)) {
        Data::C64(
            elements::<Complex32>(&arr)?
                .into_iter()
                .map(|c| [c.re, c.im])
                .collect(),
        )
    } else if is(dtype::<Complex64>(py)) {
        Data::C128(
            elements::<Complex64>(&arr)?
                .into_iter()
                .map(|c| [c.re, c.im])
                .collect(),
        )
    } else if matches!(dt.kind(), b'U' | b'S' | b'O') {
        Data::Str(strings(&arr, &what)?)
    } else {
        return Err(InputError::new_err(format!(
            "{what}: numpy dtype {} has no carve element type",
            dt.str()?
        )));
    };
    Tensor::new(shape, data).map_err(|e| InputError::new_err(format!("{what}: {}", e.0)))
}

/// A numpy array owning `v` (no copy), shaped `shape`.
fn array<'py, T: Element>(
    py: Python<'py>,
    v: Vec<T>,
    shape: &[usize],
) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray::from_vec(py, v).reshape(shape.to_vec())?.into_any())
}

/// A carve tensor as a numpy array; `name` is the output's.
pub fn from_tensor<'py>(py: Python<'py>, name: &str, t: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let shape = t.shape;
    match t.data {
        Data::F32(v) => array(py, v, &shape),
        Data::F64(v) => array(py, v, &shape),
        Data::F16(v) => array(py, v, &shape),
        Data::I64(v) => array(py, v, &shape),
        Data::I32(v) => array(py, v, &shape),
        Data::I16(v) => array(py, v, &shape),
        Data::I8(v) => array(py, v, &shape),
        Data::U64(v) => array(py, v, &shape),
        Data::U32(v) => array(py, v, &shape),
        Data::U16(v) => array(py, v, &shape),
        Data::U8(v) => array(py, v, &shape),
        Data::Bool(v) => array(py, v, &shape),
        Data::C64(v) => array(
            py,
            v.into_iter()
                .map(|[re, im]| Complex32::new(re, im))
                .collect(),
            &shape,
        ),
        Data::C128(v) => array(
            py,
            v.into_iter()
                .map(|[re, im]| Complex64::new(re, im))
                .collect(),
            &shape,
        ),
        Data::Str(v) => py
            .import("numpy")?
            .call_method1("array", (v,))?
            .call_method1("reshape", (shape,)),
        Data::BF16(_) | Data::Small(..) => Err(UnsupportedError::new_err(format!(
            "output '{name}': its element type has no numpy counterpart (bf16, 8-/4-bit float or sub-byte integer)"
        ))),
    }
}

/// A carve value (tensor, sequence or optional) as Python: an array, a list, or `None`.
pub fn from_value<'py>(py: Python<'py>, name: &str, v: Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::Tensor(t) => from_tensor(py, name, t),
        Value::Sequence(items) => {
            let list = PyList::empty(py);
            for x in items {
                list.append(from_value(py, name, x)?)?;
            }
            Ok(list.into_any())
        }
        Value::Optional(None) => Ok(py.None().into_bound(py)),
        Value::Optional(Some(x)) => from_value(py, name, *x),
    }
}

/// Named outputs as a dict, in graph order.
pub fn outputs_dict<'py>(
    py: Python<'py>,
    outs: Vec<(String, Value)>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (name, v) in outs {
        let a = from_value(py, &name, v)?;
        d.set_item(name, a)?;
    }
    Ok(d)
}

/// `{name: array}` as named carve values. For an input the model declares as a sequence a list
/// becomes a sequence; for an optional one `None` is the empty optional; anything else goes through
/// `numpy.asarray`.
pub fn inputs_from(
    py: Python<'_>,
    g: &Graph,
    inputs: &Bound<'_, PyAny>,
) -> PyResult<Vec<(String, Value)>> {
    let mapping = inputs.cast::<pyo3::types::PyMapping>().map_err(|_| {
        InputError::new_err(format!(
            "inputs must be a dict {{name: numpy.ndarray}}, got a {}",
            inputs
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let mut out = Vec::new();
    for item in mapping.items()?.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract()?;
        let name: String = k.extract().map_err(|_| {
            InputError::new_err(format!(
                "input names must be str, got {}",
                k.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        let declared = g
            .inputs
            .iter()
            .find(|&&i| g.value(i).name == name)
            .map(|&i| g.ty(i));
        let value = if v.is_none() && matches!(declared, Some(Type::Optional(_))) {
            Value::Optional(None)
        } else if let (Some(Type::Sequence(_)), Ok(list)) = (declared, v.cast::<PyList>()) {
            Value::Sequence(
                list.iter()
                    .map(|x| to_tensor(py, &name, &x).map(Value::Tensor))
                    .collect::<PyResult<_>>()?,
            )
        } else {
            Value::Tensor(to_tensor(py, &name, &v)?)
        };
        out.push((name, value));
    }
    Ok(out)
}
