//! carve's Python exceptions and the mapping from carve's Rust errors to them. Every exception derives
//! from `carve.Error`; the message is the one the `carve` command line prints after `error: ` (the
//! error and its chain of causes joined by `: `).

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use carve::CompileError as RustCompileError;
use carve::ImportError;
use carve::codegen::CodegenError;

create_exception!(
    carve,
    Error,
    PyException,
    "Base class of every error carve raises."
);
create_exception!(
    carve,
    ModelError,
    Error,
    "The model file could not be read, decoded, imported or verified."
);
create_exception!(
    carve,
    UnsupportedError,
    Error,
    "The model (or a value) uses something carve does not support yet: an operator, an element type, a target."
);
create_exception!(
    carve,
    InputError,
    Error,
    "The inputs given to a run do not fit the model: a missing, unknown or repeated name, a wrong dtype, rank or dim."
);
create_exception!(
    carve,
    CompileError,
    Error,
    "Compiling failed: the target, an option, shape binding, an optimizer stage or the code generator."
);
create_exception!(
    carve,
    RunError,
    Error,
    "Running compiled code (or the interpreter) failed."
);
create_exception!(
    carve,
    CompressError,
    Error,
    "Compression failed: its data, metric, a model variant or the export."
);

pub use carve::error_chain as chain;

/// A model that could not be loaded: unsupported operators are [`UnsupportedError`], the rest
/// [`ModelError`].
pub fn import_error(e: &ImportError) -> PyErr {
    match e {
        ImportError::Unsupported(_) => UnsupportedError::new_err(chain(e)),
        _ => ModelError::new_err(chain(e)),
    }
}

/// A code-generator error: "cannot compile natively" is [`UnsupportedError`], the rest
/// [`CompileError`].
pub fn codegen_error(e: &CodegenError) -> PyErr {
    match e {
        CodegenError::Unsupported { .. } => UnsupportedError::new_err(chain(e)),
        _ => CompileError::new_err(chain(e)),
    }
}

/// An error of compiling or running through [`carve::CompiledModel`].
pub fn compile_error(e: &RustCompileError) -> PyErr {
    match e {
        RustCompileError::Input(i) => InputError::new_err(i.to_string()),
        RustCompileError::Codegen(c) => codegen_error(c),
        RustCompileError::Bind(_) | RustCompileError::Pipeline(_) => {
            CompileError::new_err(chain(e))
        }
        RustCompileError::Exec(_) | RustCompileError::Interp(_) | RustCompileError::Segments(_) => {
            RunError::new_err(chain(e))
        }
    }
}

/// Registers the exception classes on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("CompileError", py.get_type::<CompileError>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add("CompressError", py.get_type::<CompressError>())?;
    Ok(())
}
