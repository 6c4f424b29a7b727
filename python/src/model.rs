//! `carve.load` and `carve.Model`: an imported, verified ONNX model and the description of its inputs
//! and outputs (`carve.TensorInfo`: name, numpy dtype, shape with symbolic dims by name).

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use carve::ir::{Dim, Graph, Type, ValueId};

use crate::convert::numpy_name;
use crate::errors::import_error;

/// One input or output of a model as the model declares it.
#[pyclass(module = "carve", frozen, get_all)]
pub struct TensorInfo {
    /// The name.
    pub name: String,
    /// The element type as a numpy dtype name (`"float32"`, `"int64"`, `"bool"`, `"str"`, ...), or
    /// carve's name when numpy has none (`"bf16"`); `None` for a sequence or optional value.
    pub dtype: Option<String>,
    /// The dims: an `int` for a fixed dim, the symbol's name (`str`) for a symbolic one, `None` for
    /// an unknown one; the whole shape is `None` when even the rank is unknown.
    pub shape: Option<Vec<Py<PyAny>>>,
    /// The full type as carve prints it (`f32[N,64]`, `seq(f32[?])`).
    pub r#type: String,
}

#[pymethods]
impl TensorInfo {
    fn __repr__(&self) -> String {
        format!("TensorInfo(name={:?}, type={})", self.name, self.r#type)
    }
}

impl TensorInfo {
    /// The description of graph value `v`.
    pub fn new(py: Python<'_>, g: &Graph, v: ValueId) -> PyResult<TensorInfo> {
        let ty = g.ty(v);
        let (dtype, shape) = match ty {
            Type::Tensor(t) => {
                let name = numpy_name(t.dtype).unwrap_or(t.dtype.name()).to_string();
                let dims = match t.dims() {
                    Some(ds) => Some(
                        ds.iter()
                            .map(|d| -> PyResult<Py<PyAny>> {
                                Ok(match d {
                                    Dim::Known(k) => k.into_pyobject(py)?.into_any().unbind(),
                                    Dim::Sym(s) => s.into_pyobject(py)?.into_any().unbind(),
                                    _ => py.None(),
                                })
                            })
                            .collect::<PyResult<Vec<_>>>()?,
                    ),
                    None => None,
                };
                (Some(name), dims)
            }
            _ => (None, None),
        };
        Ok(TensorInfo {
            name: g.value(v).name.clone(),
            dtype,
            shape,
            r#type: ty.to_string(),
        })
    }
}

/// The descriptions of values `vs`.
pub fn infos(py: Python<'_>, g: &Graph, vs: &[ValueId]) -> PyResult<Vec<TensorInfo>> {
    vs.iter().map(|&v| TensorInfo::new(py, g, v)).collect()
}

/// An imported and verified ONNX model (from `carve.load`).
#[pyclass(module = "carve", frozen)]
pub struct Model {
    /// The imported model (shared with compiled models and background threads).
    pub model: Arc<carve::Model>,
    /// The file it came from.
    pub path: PathBuf,
}

#[pymethods]
impl Model {
    /// The file the model was loaded from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// The graph's name.
    #[getter]
    fn name(&self) -> String {
        self.model.graph.name.clone()
    }

    /// The inputs, in order (`list[TensorInfo]`).
    #[getter]
    fn inputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        let g = &self.model.graph;
        infos(py, g, &g.inputs)
    }

    /// The outputs, in order (`list[TensorInfo]`).
    #[getter]
    fn outputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        let g = &self.model.graph;
        infos(py, g, &g.outputs)
    }

    /// The number of nodes of the imported graph.
    #[getter]
    fn node_count(&self) -> usize {
        self.model.graph.nodes.len()
    }

    fn __repr__(&self) -> String {
        let g = &self.model.graph;
        let list = |vs: &[ValueId]| -> String {
            vs.iter()
                .map(|&v| format!("{}: {}", g.value(v).name, g.ty(v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "carve.Model('{}', inputs=[{}], outputs=[{}])",
            self.path.display(),
            list(&g.inputs),
            list(&g.outputs)
        )
    }
}

/// Loads an ONNX model file: decodes it, imports it into carve's IR and verifies it.
///
/// Raises ``carve.ModelError`` when the file cannot be read or is not a valid model and
/// ``carve.UnsupportedError`` when it uses operators carve cannot import (all of them are listed).
///
/// >>> import carve
/// >>> m = carve.load("../shared/models/sk_digits_mlp/model.onnx")
/// >>> [(i.name, i.dtype, i.shape) for i in m.inputs]
/// [('X', 'float32', [None, 64])]
#[pyfunction]
pub fn load(py: Python<'_>, path: PathBuf) -> PyResult<Model> {
    let p = path.clone();
    let model = py
        .detach(move || carve::load(&p))
        .map_err(|e| import_error(&e))?;
    Ok(Model {
        model: Arc::new(model),
        path,
    })
}
