//! `carve.compress`: int8 post-training quantization with calibration, or weight-only int4/int2
//! MatMul weights, channel pruning or unstructured sparsity (what `carve compress` does), returning the compressed ONNX bytes and the report as
//! a dict (the same content as `report.json`).

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyMapping};

use carve::compress::data::{DataSpec, load as load_data};
use carve::compress::metric::MetricSpec;
use carve::compress::{
    Compressed, NBitsOptions, NoProgress, Options, PruneOptions, SparsityOptions, compress_int8,
    compress_nbits, compress_prune, compress_sparsity,
};
use carve::passes::quantize::Calibrator;

use crate::aot::model_path;
use crate::errors::{CompressError, Error, InputError, chain, import_error};

/// The result of `carve.compress`.
#[pyclass(module = "carve", frozen, get_all)]
pub struct CompressResult {
    /// The compressed model as encoded ONNX (`bytes`).
    pub model: Py<PyBytes>,
    /// Where the model was written (`output`), or `None`.
    pub path: Option<PathBuf>,
    /// The report (`dict`, the content of `report.json`: scheme, metric, float and compressed
    /// scores, bytes, per-layer decisions).
    pub report: Py<PyDict>,
    /// The report as Markdown (`report.md`).
    pub markdown: String,
    /// Latencies measured side by side (`{"runs", "float_ms", "compressed_ms", ...}`), or `None`
    /// with `timing_runs=0`.
    pub timing: Option<Py<PyDict>>,
}

#[pymethods]
impl CompressResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "carve.CompressResult({} bytes, path={:?})",
            self.model.bind(py).as_bytes().len(),
            self.path
        )
    }
}

/// A DATA spec from a path, `"PATH:INPUT=ARRAY,..."`, or a dict of arrays (saved as `<what>.npz` in
/// `tmp` with `numpy.savez`, so that it is read exactly as the command line reads an archive).
fn data_spec(
    py: Python<'_>,
    what: &str,
    v: &Bound<'_, PyAny>,
    tmp: &std::path::Path,
) -> PyResult<DataSpec> {
    if let Ok(arrays) = v.cast::<PyMapping>() {
        let path = tmp.join(format!("{what}.npz"));
        let kwargs = PyDict::new(py);
        for item in arrays.items()?.iter() {
            let (k, a): (String, Bound<'_, PyAny>) = item.extract().map_err(|_| {
                PyValueError::new_err(format!("{what}: a dict of arrays needs str keys"))
            })?;
            kwargs.set_item(k, a)?;
        }
        py.import("numpy")?
            .getattr("savez")?
            .call((path.display().to_string(),), Some(&kwargs))?;
        return Ok(DataSpec {
            path,
            rename: Vec::new(),
        });
    }
    let s = match v.extract::<String>() {
        Ok(s) => s,
        Err(_) => v
            .extract::<PathBuf>()
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "{what} must be a dict of arrays, a path (.npz or a folder of test_data_set_*) or 'PATH:INPUT=ARRAY,...'"
                ))
            })?
            .display()
            .to_string(),
    };
    s.parse()
        .map_err(|e: String| PyValueError::new_err(format!("{what}: {e}")))
}

fn json_dict<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyDict>> {
    Ok(py
        .import("json")?
        .call_method1("loads", (json,))?
        .cast_into::<PyDict>()?)
}

/// Every setting of a compression run (the arguments of `carve compress`).
struct Job {
    model: PathBuf,
    calib: Option<DataSpec>,
    calib_indices: Option<String>,
    calib_samples: Option<usize>,
    eval: Option<DataSpec>,
    labels: Option<String>,
    bits: Option<usize>,
    nbits: NBitsOptions,
    prune: Option<PruneOptions>,
    sparsity: Option<SparsityOptions>,
    opts: Options,
}

impl Job {
    /// Loads the model and data and compresses (no Python objects: runs without the GIL).
    fn run(self) -> Result<Compressed, PyErr> {
        let proto = carve::frontend::decode_file(&self.model).map_err(|e| import_error(&e))?;
        let model = carve::load(&self.model).map_err(|e| import_error(&e))?;
        let data_err = |what: &str, e: &dyn std::error::Error| {
            CompressError::new_err(format!("{what}: {}", chain(e)))
        };
        let calib = match &self.calib {
            Some(spec) => {
                let mut c = load_data(spec, &model.graph, None, self.calib_indices.as_deref())
                    .map_err(|e| data_err("calibration data", &e))?;
                if let Some(n) = self.calib_samples {
                    c = c.take(n);
                }
                Some(c)
            }
            None => None,
        };
        let eval = match (&self.eval, &calib) {
            (Some(spec), _) => load_data(spec, &model.graph, self.labels.as_deref(), None)
                .map_err(|e| data_err("evaluation data", &e))?,
            (None, Some(c)) => {
                if self.labels.is_some() {
                    return Err(InputError::new_err(
                        "labels needs eval (labels are read from the evaluation archive)",
                    ));
                }
                c.clone()
            }
            (None, None) => {
                return Err(InputError::new_err(
                    "give eval or calib data to measure accuracy on",
                ));
            }
        };
        if let Some(sp) = self.sparsity {
            return compress_sparsity(
                &proto,
                &model,
                calib.as_ref(),
                &eval,
                sp,
                &self.opts,
                &mut NoProgress,
            )
            .map_err(|e| CompressError::new_err(chain(&e)));
        }
        if let Some(prune) = self.prune {
            return compress_prune(
                &proto,
                &model,
                calib.as_ref(),
                &eval,
                prune,
                &self.opts,
                &mut NoProgress,
            )
            .map_err(|e| CompressError::new_err(chain(&e)));
        }
        let out = match self.bits {
            None => {
                let calib = calib.ok_or_else(|| {
                    InputError::new_err(
                        "int8 needs calib data to calibrate activation ranges (or use weights='int4')",
                    )
                })?;
                compress_int8(&proto, &model, &calib, &eval, &self.opts, &mut NoProgress)
            }
            Some(bits) => compress_nbits(
                &proto,
                &model,
                calib.as_ref(),
                &eval,
                NBitsOptions { bits, ..self.nbits },
                &self.opts,
                &mut NoProgress,
            ),
        };
        out.map_err(|e| CompressError::new_err(chain(&e)))
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) -> PyResult<()> {
    carve::output::write_atomic(path, bytes)
        .map_err(|e| Error::new_err(format!("cannot write '{}': {e}", path.display())))
}

/// Compresses a float ONNX model (as ``carve compress``) and returns a :class:`CompressResult`: the
/// compressed model's bytes, its report as a dict, and (with ``output``/``report_dir``) the files
/// written.
///
/// ``weights``: ``"int8"`` (default; weights and activations, QDQ; needs ``calib``) or ``"int4"`` /
/// ``"int2"`` (weight-only MatMul weights as com.microsoft MatMulNBits; with ``calib``: GPTQ).
/// ``prune``: instead of quantizing, remove this fraction (0 to 1) of the channels of every prunable
/// channel group (``carve compress --prune``; ``prune_criterion`` ``"l1"`` or ``"l2"``; repaired by
/// bias compensation when ``calib`` is given); not combined with ``weights``.
/// ``sparsity``: instead of quantizing, set this fraction (0 to 1) of every MatMul/Gemm/Conv layer's
/// weights per output channel to zero (``carve compress --sparsity``; ``sparsity_method``
/// ``"magnitude"`` or ``"sparsegpt"``, default: both measured with ``calib``, the better kept); not
/// combined with ``weights`` or ``prune``.
/// ``calib`` / ``eval``: a dict ``{input name: array}`` (first axis = samples; ``labels`` and
/// ``calib_indices`` name further arrays in it), a ``.npz`` whose arrays are named like the model's
/// inputs (``"data.npz:X=Xtr"`` renames), or a folder of ``test_data_set_*`` folders.
/// ``metric``: ``"top1"``, ``"accuracy"`` (with ``labels``, an array in ``eval``) or ``"cosine"``,
/// optionally ``":OUTPUT"``; ``max_drop``: the largest allowed drop of the metric (the most sensitive
/// layers stay float until it holds). The other arguments are ``carve compress``'s options.
///
/// >>> r = carve.compress("digits.onnx", calib="digits.npz:X=Xtr", eval="digits.npz",
/// ...                    labels="y", metric="accuracy", output="digits.int8.onnx")
/// >>> r.report["scheme"], r.report["compressed_score"]
#[pyfunction]
#[pyo3(signature = (
    model, calib=None, *, output=None, report_dir=None, weights=None, prune=None,
    prune_criterion="l1", sparsity=None, sparsity_method=None, eval=None, labels=None,
    calib_indices=None, calib_samples=None, metric="top1", max_drop=None, block_size=32,
    asymmetric_blocks=false, calibrator="percentile:99.99", signed_activations=false,
    sensitivity_samples=64, timing_runs=20, threads=None
))]
#[allow(clippy::too_many_arguments)]
pub fn compress(
    py: Python<'_>,
    model: &Bound<'_, PyAny>,
    calib: Option<&Bound<'_, PyAny>>,
    output: Option<PathBuf>,
    report_dir: Option<PathBuf>,
    weights: Option<&str>,
    prune: Option<f64>,
    prune_criterion: &str,
    sparsity: Option<f64>,
    sparsity_method: Option<&str>,
    eval: Option<&Bound<'_, PyAny>>,
    labels: Option<String>,
    calib_indices: Option<String>,
    calib_samples: Option<usize>,
    metric: &str,
    max_drop: Option<f64>,
    block_size: usize,
    asymmetric_blocks: bool,
    calibrator: &str,
    signed_activations: bool,
    sensitivity_samples: usize,
    timing_runs: usize,
    threads: Option<usize>,
) -> PyResult<CompressResult> {
    let prune = match prune {
        Some(_) if weights.is_some() => {
            return Err(PyValueError::new_err(
                "prune and weights are not combined in one run yet: prune first, then quantize the \
                 pruned model",
            ));
        }
        Some(ratio) if !(0.0..1.0).contains(&ratio) => {
            return Err(PyValueError::new_err(format!(
                "prune takes a fraction in [0, 1), got {ratio}"
            )));
        }
        Some(ratio) => Some(PruneOptions {
            ratio,
            criterion: prune_criterion
                .parse()
                .map_err(|e: String| PyValueError::new_err(format!("prune_criterion: {e}")))?,
        }),
        None => None,
    };
    let sparsity = match sparsity {
        Some(_) if weights.is_some() || prune.is_some() => {
            return Err(PyValueError::new_err(
                "sparsity is not combined with weights or prune in one run yet: sparsify first, \
                 then quantize the sparse model",
            ));
        }
        Some(ratio) if !(0.0..1.0).contains(&ratio) => {
            return Err(PyValueError::new_err(format!(
                "sparsity takes a fraction in [0, 1), got {ratio}"
            )));
        }
        Some(ratio) => Some(SparsityOptions {
            ratio,
            method: sparsity_method
                .map(str::parse)
                .transpose()
                .map_err(|e: String| PyValueError::new_err(format!("sparsity_method: {e}")))?,
        }),
        None if sparsity_method.is_some() => {
            return Err(PyValueError::new_err("sparsity_method needs sparsity"));
        }
        None => None,
    };
    let bits = match weights.unwrap_or("int8") {
        "int8" => None,
        "int4" => Some(4),
        "int2" => Some(2),
        other => {
            return Err(PyValueError::new_err(format!(
                "weights: '{other}' is not one of 'int8', 'int4', 'int2'"
            )));
        }
    };
    if threads == Some(0) {
        return Err(PyValueError::new_err("threads must be at least 1"));
    }
    let metric: MetricSpec = metric
        .parse()
        .map_err(|e: String| PyValueError::new_err(format!("metric: {e}")))?;
    let calibrator: Calibrator = calibrator
        .parse()
        .map_err(|e: String| PyValueError::new_err(format!("calibrator: {e}")))?;
    let tmp = tempfile::tempdir()
        .map_err(|e| Error::new_err(format!("cannot create a temporary folder: {e}")))?;
    let job = Job {
        model: model_path(model)?,
        calib: calib
            .map(|c| data_spec(py, "calib", c, tmp.path()))
            .transpose()?,
        calib_indices,
        calib_samples,
        eval: eval
            .map(|e| data_spec(py, "eval", e, tmp.path()))
            .transpose()?,
        labels,
        bits,
        prune,
        sparsity,
        nbits: NBitsOptions {
            bits: bits.unwrap_or(4),
            block_size,
            symmetric: !asymmetric_blocks,
        },
        opts: Options {
            calibrator,
            signed_activations,
            metric,
            max_drop,
            sensitivity_samples,
            timing_runs,
            threads,
        },
    };
    let out = py.detach(move || job.run())?;
    drop(tmp);
    if let Some(p) = &output {
        write(p, &out.onnx)?;
    }
    let markdown = out.report.to_markdown();
    let json = out.report.to_json();
    if let Some(dir) = &report_dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::new_err(format!("cannot create '{}': {e}", dir.display())))?;
        write(&dir.join("report.md"), markdown.as_bytes())?;
        write(&dir.join("report.json"), json.as_bytes())?;
        if let Some(t) = &out.timing {
            write(&dir.join("timing.md"), t.to_markdown().as_bytes())?;
            write(&dir.join("timing.json"), t.to_json().as_bytes())?;
        }
    }
    let timing = match &out.timing {
        Some(t) => Some(json_dict(py, &t.to_json())?.unbind()),
        None => None,
    };
    Ok(CompressResult {
        model: PyBytes::new(py, &out.onnx).unbind(),
        path: output,
        report: json_dict(py, &json)?.unbind(),
        markdown,
        timing,
    })
}
