//! carve's Python extension module, `carve._carve` (re-exported by the `carve` package in
//! `python/carve/`): [`model::load`] an ONNX model, [`compiled::compile`] it for this machine and run
//! it on numpy arrays, [`aot::compile_aot`] it to an object file for any target, or
//! [`compress::compress`] it. Errors are `carve.Error` subclasses ([`errors`]) carrying the command
//! line's messages; the interpreter lock is released while carve works.

pub mod aot;
pub mod compiled;
pub mod compress;
pub mod convert;
pub mod errors;
pub mod model;

use pyo3::prelude::*;

/// The module: functions, classes and exceptions.
#[pymodule]
fn _carve(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(compiled::compile, m)?)?;
    m.add_function(wrap_pyfunction!(aot::compile_aot, m)?)?;
    m.add_function(wrap_pyfunction!(compress::compress, m)?)?;
    m.add_class::<model::Model>()?;
    m.add_class::<model::TensorInfo>()?;
    m.add_class::<compiled::CompiledModel>()?;
    m.add_class::<compress::CompressResult>()?;
    errors::register(m)?;
    Ok(())
}
