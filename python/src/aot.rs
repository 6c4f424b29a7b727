//! `carve.compile_aot`: ahead-of-time compilation to an object file and C header (what `carve
//! compile` does), for any supported target triple.

use std::path::{Path, PathBuf};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use carve::build::{BuildError, Options, compile_file_reported};
use carve::shapes::InputShape;

use carve::codegen::CodegenError;

use crate::errors::{CompileError, Error, InputError, UnsupportedError, chain};
use crate::model::Model;

/// The model file behind `model`: a `carve.Model`'s path, or a path itself.
pub fn model_path(model: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    if let Ok(m) = model.cast::<Model>() {
        return Ok(m.get().path.clone());
    }
    model.extract::<PathBuf>().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(
            "model must be a carve.Model or a path to an .onnx file",
        )
    })
}

/// `{name: dims}` as input shapes, in the mapping's order.
fn parse_shapes(shapes: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<InputShape>> {
    let Some(s) = shapes else {
        return Ok(Vec::new());
    };
    let m = s
        .cast::<PyMapping>()
        .map_err(|_| PyValueError::new_err("input_shapes must be a dict {name: [d1, d2, ...]}"))?;
    let mut out = Vec::new();
    for item in m.items()?.iter() {
        let (name, dims): (String, Vec<u64>) = item.extract().map_err(|_| {
            PyValueError::new_err(format!(
                "input_shapes: {} is not name: [non-negative ints]",
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        out.push(InputShape { name, dims });
    }
    Ok(out)
}

/// A build error as the Python exception of its kind.
fn build_error(e: &BuildError, model: &Path) -> PyErr {
    let msg = format!("compiling '{}': {}", model.display(), chain(e));
    match e {
        BuildError::Codegen(CodegenError::Unsupported { .. }) => UnsupportedError::new_err(msg),
        BuildError::Bind(_) | BuildError::Unbound { .. } => InputError::new_err(msg),
        BuildError::Io { .. } => Error::new_err(msg),
        _ => CompileError::new_err(msg),
    }
}

fn write(path: &Path, bytes: &[u8]) -> PyResult<()> {
    carve::output::write_atomic(path, bytes)
        .map_err(|e| Error::new_err(format!("cannot write '{}': {e}", path.display())))
}

/// Compiles a model ahead of time (as ``carve compile``): writes an object file (``output``) and its C
/// header (``header``, default: ``output`` with extension ``.h``); with ``weights_file`` the weights
/// go to that file instead of into the object.
///
/// ``target``: a triple such as ``"x86_64-unknown-linux-gnu"``, ``"aarch64-unknown-linux-gnu"`` or
/// ``"riscv64gc-unknown-linux-gnu"`` (default: this machine's). ``cpu``: ISA features (``"+avx,+fma"``,
/// ``"+v"``, ``"native"``). ``input_shapes``: ``{name: [dims]}`` binding symbolic dims (every input
/// shape must be static after binding). ``name``: the symbol prefix (default: the model file's stem).
///
/// Returns ``{"object", "header", "weights" (path or None), "target", "features", "name",
/// "isa_flags", "weights_bytes", "scratch_bytes", "nodes", "native"}`` (``nodes``: nodes after
/// optimization, ``native``: how many of them have native kernels).
///
/// >>> carve.compile_aot(m, target="aarch64-unknown-linux-gnu", output="digits.o",
/// ...                   input_shapes={"X": [1, 64]})["header"]
/// 'digits.h'
#[pyfunction]
#[pyo3(signature = (model, output, target=None, input_shapes=None, cpu=None, header=None, name=None, weights_file=None, egraph=true))]
#[allow(clippy::too_many_arguments)]
pub fn compile_aot<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    output: PathBuf,
    target: Option<String>,
    input_shapes: Option<&Bound<'py, PyAny>>,
    cpu: Option<String>,
    header: Option<PathBuf>,
    name: Option<String>,
    weights_file: Option<PathBuf>,
    egraph: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let path = model_path(model)?;
    let target = target.filter(|t| t.trim() != "host");
    let opts = Options {
        target,
        cpu,
        input_shapes: parse_shapes(input_shapes)?,
        name,
        weights_file: weights_file.is_some(),
        no_egraph: !egraph,
    };
    let p = path.clone();
    let (out, t, _report) = py
        .detach(move || compile_file_reported(&p, &opts))
        .map_err(|e| build_error(&e, &path))?;
    write(&output, &out.object)?;
    let header = header.unwrap_or_else(|| output.with_extension("h"));
    write(&header, out.header.as_bytes())?;
    if let Some(w) = &weights_file {
        write(w, &out.weights)?;
    }
    let itf = &out.interface;
    let d = PyDict::new(py);
    d.set_item("object", &output)?;
    d.set_item("header", &header)?;
    d.set_item("weights", weights_file)?;
    d.set_item("target", t.triple.to_string())?;
    let mut features: Vec<String> = t.features.iter().map(|f| f.to_string()).collect();
    features.sort();
    d.set_item("features", features)?;
    d.set_item("name", &itf.prefix)?;
    d.set_item("isa_flags", &itf.isa_flags)?;
    d.set_item("weights_bytes", itf.weights_bytes)?;
    d.set_item("scratch_bytes", itf.scratch_bytes)?;
    d.set_item("nodes", out.report.nodes)?;
    d.set_item("native", out.report.native)?;
    Ok(d)
}
