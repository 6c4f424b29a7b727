//! `carve.compile` and `carve.CompiledModel`: a model JIT-compiled for this machine, run on numpy
//! arrays (`run`) and timed (`bench`). The interpreter lock is released while compiling, running and
//! timing, so other Python threads go on (and several threads may run one compiled model at once).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use carve::codegen::Target;
use carve::runtime::interp::Value;

use crate::convert::{inputs_from, outputs_dict};
use crate::errors::{InputError, UnsupportedError, chain, codegen_error, compile_error};
use crate::model::{Model, TensorInfo, infos};

/// A model compiled to native code for this machine (from `carve.compile`).
#[pyclass(module = "carve", frozen)]
pub struct CompiledModel {
    compiled: Arc<carve::CompiledModel>,
    threads: usize,
    egraph: bool,
}

/// The JIT's target: this machine, optionally with changed CPU features (`cpu`, as `carve compile
/// --cpu` takes them, e.g. `"native,-avx512f"`).
fn jit_target(target: &str, cpu: Option<&str>) -> PyResult<Target> {
    let host = Target::host().map_err(|e| codegen_error(&e))?;
    let t = target.trim();
    if t != "host" && t != host.triple.to_string() {
        return Err(UnsupportedError::new_err(format!(
            "the JIT runs code for this machine ({}) only, not '{t}'; use carve.compile_aot for other targets",
            host.triple
        )));
    }
    match cpu {
        None => Ok(host),
        Some(c) => carve::build::resolve_target(None, Some(c)).map_err(|e| {
            crate::errors::CompileError::new_err(format!("cpu features '{c}': {}", chain(&e)))
        }),
    }
}

#[pymethods]
impl CompiledModel {
    /// Runs the model on ``{input name: numpy array}`` and returns ``{output name: numpy array}`` in
    /// the model's output order. The arrays' dtypes must be the declared ones (no implicit casts);
    /// symbolic dims bind to the given sizes (native code is compiled once per new binding and
    /// cached). Output arrays own carve's buffers (no copy).
    ///
    /// Raises ``carve.InputError`` (missing, unknown or repeated name, wrong dtype, rank or dim) with
    /// the message the command line prints, ``carve.RunError`` when running fails.
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let named = inputs_from(py, self.compiled.graph(), inputs)?;
        let compiled = self.compiled.clone();
        let outs = py
            .detach(move || compiled.run(named))
            .map_err(|e| compile_error(&e))?;
        outputs_dict(py, outs)
    }

    /// Same as :meth:`run`.
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.run(py, inputs)
    }

    /// Times the model: ``warmup`` untimed runs, then ``runs`` timed ones, on ``inputs`` (a dict as
    /// for :meth:`run`; default: deterministic pseudo-random inputs, which needs static input
    /// shapes). Returns ``{"runs", "warmup", "median_ms", "p10_ms", "p90_ms"}``.
    #[pyo3(signature = (inputs=None, runs=20, warmup=3))]
    fn bench<'py>(
        &self,
        py: Python<'py>,
        inputs: Option<&Bound<'py, PyAny>>,
        runs: usize,
        warmup: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        if runs == 0 {
            return Err(PyValueError::new_err("runs must be at least 1"));
        }
        let g = self.compiled.graph();
        let ordered: Vec<Value> = match inputs {
            Some(i) => {
                let named = inputs_from(py, g, i)?;
                carve::inputs::order_and_check(g, named)
                    .map_err(|e| InputError::new_err(e.to_string()))?
            }
            None => carve::bench::synthetic_inputs(g).map_err(InputError::new_err)?,
        };
        let compiled = self.compiled.clone();
        let stats = py
            .detach(move || carve::bench::measure(&compiled, &ordered, warmup, runs))
            .map_err(|e| compile_error(&e))?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        let d = PyDict::new(py);
        d.set_item("runs", stats.runs)?;
        d.set_item("warmup", warmup)?;
        d.set_item("median_ms", ms(stats.median))?;
        d.set_item("p10_ms", ms(stats.p10))?;
        d.set_item("p90_ms", ms(stats.p90))?;
        Ok(d)
    }

    /// The inputs, in order (`list[TensorInfo]`).
    #[getter]
    fn inputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        let g = self.compiled.graph();
        infos(py, g, &g.inputs)
    }

    /// The outputs, in order (`list[TensorInfo]`).
    #[getter]
    fn outputs(&self, py: Python<'_>) -> PyResult<Vec<TensorInfo>> {
        let g = self.compiled.graph();
        infos(py, g, &g.outputs)
    }

    /// Threads kernels are split over.
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// Whether the e-graph optimizer ran.
    #[getter]
    fn egraph(&self) -> bool {
        self.egraph
    }

    /// The target triple code is generated for.
    #[getter]
    fn target(&self) -> String {
        self.compiled.target().triple.to_string()
    }

    /// The CPU features code is generated for (``"avx2"``, ``"fma"``, ...), sorted.
    #[getter]
    fn features(&self) -> Vec<String> {
        let mut f: Vec<String> = self
            .compiled
            .target()
            .features
            .iter()
            .map(|s| s.to_string())
            .collect();
        f.sort();
        f
    }

    fn __repr__(&self) -> String {
        format!(
            "carve.CompiledModel(target={}, threads={}, egraph={})",
            self.compiled.target().triple,
            self.threads,
            self.egraph
        )
    }
}

/// Compiles a model for this machine (JIT). When every input shape is static, native code is
/// generated now; otherwise on the first run of each binding of the symbolic dims.
///
/// ``threads``: threads kernels are split over (default: one per core; results are identical for
/// any count). ``target``: ``"host"`` (or this machine's triple); other targets need
/// :func:`compile_aot`. ``egraph``: run the e-graph optimizer (``False``: only constant folding and
/// dead-code removal, as ``--no-egraph``). ``cpu``: CPU features as ``carve compile --cpu`` takes
/// them, e.g. ``"native,-avx512f"`` (default: all of this machine's).
///
/// >>> import carve, numpy as np
/// >>> m = carve.compile(carve.load("model.onnx"), threads=2)
/// >>> out = m.run({"X": np.zeros((1, 64), np.float32)})
#[pyfunction]
#[pyo3(signature = (model, threads=None, target="host", egraph=true, cpu=None))]
pub fn compile(
    py: Python<'_>,
    model: &Model,
    threads: Option<usize>,
    target: &str,
    egraph: bool,
    cpu: Option<&str>,
) -> PyResult<CompiledModel> {
    if threads == Some(0) {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    let t = jit_target(target, cpu)?;
    let mut compiler = carve::Compiler::new().egraph(egraph).target(t);
    let n = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    compiler = compiler.threads(n);
    let m = model.model.clone();
    let compiled = py
        .detach(move || compiler.compile(&m))
        .map_err(|e| compile_error(&e))?;
    Ok(CompiledModel {
        compiled: Arc::new(compiled),
        threads: n,
        egraph,
    })
}
