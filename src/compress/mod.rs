//! `carve compress`: post-training int8 quantization (or weight-only low-bit quantization,
//! [`nbits`]; channel pruning, [`prune`]; unstructured sparsity, [`sparsify`]) of a float ONNX model,
//! measured on real data.
//!
//! The driver's half of DESIGN.md "Compression": it calibrates (runs the float model with observers,
//! [`calibrate`]), asks the policy in `carve_passes::quantize` for per-layer decisions, measures
//! accuracy against the float model ([`metric`]) and each layer's sensitivity (the layer quantized
//! alone), keeps the most sensitive layers in float until the accuracy budget holds, writes the result as
//! standard ONNX in QDQ form ([`export`]) and reports size, accuracy and speed per layer and in total
//! ([`report`]). Everything but the measured latencies is deterministic: the same model, data and
//! options give a byte-identical model and report.

pub mod calibrate;
#[cfg(feature = "npy")]
pub mod data;
mod dataset;
pub mod export;
pub mod metric;
pub mod nbits;
pub mod prune;
pub mod report;
pub mod run;
pub mod sparsify;

use std::collections::BTreeMap;
use std::time::Instant;

use carve_frontend::Model;
use carve_frontend::proto::ModelProto;
use carve_passes::quantize::{
    Calibrator, Int8Options, Layer, LayerQuant, find_layers, keep_float_order, observed_values,
    quantize_layer,
};
use prost::Message;

use crate::compiler::Compiler;
use metric::{MetricKind, MetricSpec, Score, output_error, score};
use report::{LayerReport, Report, Scheme, Timing};

pub use nbits::{NBitsLayer, NBitsOptions};
pub use prune::{PruneOptions, compress_prune};
pub use sparsify::{SparsityOptions, compress_sparsity};

pub use dataset::Dataset;

/// Why compression failed.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// Compiling or running a model variant failed.
    #[error("{what}: {msg}")]
    Run {
        /// What was being run.
        what: String,
        /// The cause.
        msg: String,
    },
    /// The metric could not be computed.
    #[error("metric: {0}")]
    Metric(String),
    /// The decisions could not be written as ONNX.
    #[error("export: {0}")]
    Export(String),
    /// The model has nothing to quantize.
    #[error(
        "the model has no layer carve can quantize (MatMul, Gemm or Conv with an f32 constant weight)"
    )]
    NoLayers,
    /// The data is unusable.
    #[error("data: {0}")]
    Data(String),
}

/// Progress of long steps (the CLI draws bars; the library default reports nothing).
pub trait Progress {
    /// A step of `total` units begins.
    fn start(&mut self, what: &str, total: u64);
    /// One unit is done.
    fn inc(&mut self);
    /// The step is done.
    fn finish(&mut self);
    /// A one-line message between steps.
    fn note(&mut self, _msg: &str) {}
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _what: &str, _total: u64) {}
    fn inc(&mut self) {}
    fn finish(&mut self) {}
}

/// Options of an int8 compression run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Activation calibrator.
    pub calibrator: Calibrator,
    /// s8 symmetric activations instead of u8 asymmetric.
    pub signed_activations: bool,
    /// The metric the budget holds.
    pub metric: MetricSpec,
    /// The largest allowed drop of the metric (default: the metric's [`MetricSpec::default_max_drop`]).
    pub max_drop: Option<f64>,
    /// Evaluation samples used to measure each layer's sensitivity.
    pub sensitivity_samples: usize,
    /// Timed runs per variant for the latency comparison (0: no timing).
    pub timing_runs: usize,
    /// Threads for the JIT (default: all cores).
    pub threads: Option<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            calibrator: Int8Options::default().calibrator,
            signed_activations: false,
            metric: MetricSpec {
                kind: metric::MetricKind::Top1,
                output: None,
            },
            max_drop: None,
            sensitivity_samples: 64,
            timing_runs: 20,
            threads: None,
        }
    }
}

/// A compression result: the ONNX model to write and its report.
pub struct Compressed {
    /// The encoded `.onnx` bytes (QDQ).
    pub onnx: Vec<u8>,
    /// The deterministic report.
    pub report: Report,
    /// Latencies measured side by side (not deterministic; written apart from the report).
    pub timing: Option<Timing>,
}

/// Imports encoded ONNX bytes and verifies the graph.
fn import(bytes: &[u8], what: &str) -> Result<Model, CompressError> {
    let m = carve_frontend::load_bytes(bytes).map_err(|e| CompressError::Run {
        what: what.into(),
        msg: e.to_string(),
    })?;
    carve_ir::verify::verify(&m.graph).map_err(|e| CompressError::Run {
        what: what.into(),
        msg: e.to_string(),
    })?;
    Ok(m)
}

/// The metric output of every sample of `data` under `model`.
fn outputs_of(
    compiler: &Compiler,
    model: &Model,
    data: &Dataset,
    output: &str,
    what: &str,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<f32>>, CompressError> {
    let compiled = run::compile(compiler, model, what)?;
    let mut outs = Vec::with_capacity(data.len());
    run::for_each_output(&compiled, data, what, progress, |_, o| {
        outs.push(run::f32_output(o, output)?);
        Ok(())
    })?;
    Ok(outs)
}

/// The float model's side of every comparison: its outputs and score on the evaluation data.
struct Baseline {
    /// The metric's output name.
    output: String,
    /// The float model's metric output per evaluation sample.
    reference: Vec<Vec<f32>>,
    /// The float model's score.
    score: Score,
    /// The largest allowed drop of the metric.
    max_drop: f64,
}

impl Baseline {
    fn measure(
        compiler: &Compiler,
        model: &Model,
        eval: &Dataset,
        opts: &Options,
        progress: &mut dyn Progress,
    ) -> Result<Baseline, CompressError> {
        let output = opts.metric.resolve_output(&model.graph)?;
        let reference = outputs_of(
            compiler,
            model,
            eval,
            &output,
            "evaluation: float model",
            progress,
        )?;
        let score = score(
            &opts.metric.kind,
            &reference,
            &reference,
            eval.labels.as_deref(),
        )?;
        Ok(Baseline {
            output,
            reference,
            score,
            max_drop: opts.max_drop.unwrap_or(opts.metric.default_max_drop()),
        })
    }

    /// Runs `model` over `eval` (`what` names the step in progress and errors) and scores its
    /// metric output against the float model's: the score and the outputs.
    fn evaluate(
        &self,
        compiler: &Compiler,
        model: &Model,
        eval: &Dataset,
        metric: &MetricKind,
        what: &str,
        progress: &mut dyn Progress,
    ) -> Result<(Score, Vec<Vec<f32>>), CompressError> {
        let outs = outputs_of(compiler, model, eval, &self.output, what, progress)?;
        let s = score(metric, &outs, &self.reference, eval.labels.as_deref())?;
        Ok((s, outs))
    }
}

/// The side-by-side timing of the float and the compressed model when `opts` asks for it.
fn timing_if_asked(
    compiler: &Compiler,
    models: [&Model; 2],
    label: &str,
    eval: &Dataset,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Option<Timing>, CompressError> {
    if opts.timing_runs == 0 {
        return Ok(None);
    }
    time_side_by_side(compiler, models, label, eval, opts.timing_runs, progress).map(Some)
}

/// What the accuracy budget chose: the compressed model and its measurements.
struct Chosen {
    /// The encoded model.
    bytes: Vec<u8>,
    /// The same, imported.
    model: Model,
    /// Its score.
    score: Score,
    /// Its metric outputs on the evaluation data.
    outs: Vec<Vec<f32>>,
    /// Layers returned to float for the budget, most sensitive first.
    kept_float: Vec<String>,
    /// Each layer's output error when compressed alone.
    sensitivity: Vec<(String, f64)>,
}

/// Measures each decided layer's sensitivity (compressed alone, on a subset of `eval`), then returns
/// the most sensitive layers to float until the metric's drop is within the budget. `node` names a
/// decision's layer; `build` encodes and imports the model with the given decisions applied; `label`
/// names the compressed dtype in progress messages.
#[allow(clippy::too_many_arguments)]
fn hold_budget<D>(
    compiler: &Compiler,
    decided: &[D],
    node: impl Fn(&D) -> &str,
    build: impl Fn(&[&D]) -> Result<(Vec<u8>, Model), CompressError>,
    eval: &Dataset,
    base: &Baseline,
    opts: &Options,
    label: &str,
    progress: &mut dyn Progress,
) -> Result<Chosen, CompressError> {
    let sub = eval.take(opts.sensitivity_samples.max(1));
    let sub_ref: Vec<Vec<f32>> = base.reference.iter().take(sub.len()).cloned().collect();
    let mut sensitivity: Vec<(String, f64)> = Vec::new();
    progress.start("sensitivity: one layer at a time", decided.len() as u64);
    for d in decided {
        let (_, m) = build(&[d])?;
        let outs = outputs_of(
            compiler,
            &m,
            &sub,
            &base.output,
            &format!("sensitivity of '{}'", node(d)),
            &mut NoProgress,
        )?;
        sensitivity.push((node(d).to_string(), output_error(&outs, &sub_ref)));
        progress.inc();
    }
    progress.finish();

    let order = keep_float_order(&sensitivity);
    let mut kept_float: Vec<String> = Vec::new();
    loop {
        let chosen: Vec<&D> = decided
            .iter()
            .filter(|d| !kept_float.iter().any(|k| k == node(d)))
            .collect();
        let (bytes, m) = build(&chosen)?;
        let what = format!(
            "evaluation: {label} with {} float layer(s)",
            kept_float.len()
        );
        let (s, outs) = base.evaluate(compiler, &m, eval, &opts.metric.kind, &what, progress)?;
        let drop = base.score.value - s.value;
        progress.note(&format!(
            "{} of {} candidate layers {label}: {} {:.4} (float {:.4}, drop {:.4}, budget {:.4})",
            chosen.len(),
            decided.len(),
            opts.metric,
            s.value,
            base.score.value,
            drop,
            base.max_drop
        ));
        if drop <= base.max_drop + 1e-12 || kept_float.len() >= order.len() {
            return Ok(Chosen {
                bytes,
                model: m,
                score: s,
                outs,
                kept_float,
                sensitivity,
            });
        }
        kept_float.push(order[kept_float.len()].clone());
    }
}

/// The compiler `opts` ask for.
fn compiler_for(opts: &Options) -> Compiler {
    let compiler = Compiler::new();
    match opts.threads {
        Some(t) => compiler.threads(t),
        None => compiler,
    }
}

/// Quantizes `proto` (imported as `model`) to int8: calibrates on `calib`, holds the accuracy budget on
/// `eval`, and returns the QDQ model with its report.
pub fn compress_int8(
    proto: &ModelProto,
    model: &Model,
    calib: &Dataset,
    eval: &Dataset,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Compressed, CompressError> {
    if calib.is_empty() || eval.is_empty() {
        return Err(CompressError::Data(
            "calibration and evaluation data need at least one sample each".into(),
        ));
    }
    let compiler = compiler_for(opts);
    let layers = find_layers(&model.graph);
    if layers.is_empty() {
        return Err(CompressError::NoLayers);
    }

    // Calibration and the per-layer decisions.
    let values = observed_values(&layers);
    let stats = calibrate::calibrate(&compiler, model, &values, calib, opts.calibrator, progress)?;
    let policy = Int8Options {
        calibrator: opts.calibrator,
        signed_activations: opts.signed_activations,
    };
    let mut decided: Vec<LayerQuant> = Vec::new();
    let mut float_reason: BTreeMap<String, String> = BTreeMap::new();
    for l in &layers {
        match quantize_layer(&model.graph, l, &stats, &policy) {
            Ok(q) => decided.push(q),
            Err(e) => {
                float_reason.insert(l.node.clone(), e.to_string());
            }
        }
    }

    let base = Baseline::measure(&compiler, model, eval, opts, progress)?;
    let chosen = hold_budget(
        &compiler,
        &decided,
        |q| q.layer.node.as_str(),
        |chosen: &[&LayerQuant]| {
            let owned: Vec<LayerQuant> = chosen.iter().map(|q| (*q).clone()).collect();
            let bytes = export::apply(proto, &owned)?.encode_to_vec();
            let imported = import(&bytes, "the quantized model")?;
            Ok((bytes, imported))
        },
        eval,
        &base,
        opts,
        "int8",
        progress,
    )?;
    let scheme = Scheme::Int8 {
        calibrator: opts.calibrator,
        signed_activations: opts.signed_activations,
    };
    let layer_reports = layers
        .iter()
        .map(|l| {
            let q = decided.iter().find(|q| q.layer.node == l.node);
            LayerDecision {
                bytes: q.map(|q| q.weight.bytes()),
                data_range: q.map(|q| q.data_range),
            }
            .report(l, &chosen, &base, opts, &mut float_reason)
        })
        .collect();
    finish(
        FinishInputs {
            proto,
            model,
            eval,
            calib_samples: calib.len(),
            scheme,
            layers: layer_reports,
            base,
            chosen,
        },
        &compiler,
        opts,
        progress,
    )
}

/// Quantizes the MatMul weights of `proto` (imported as `model`) block-wise to `nbits.bits` bits as
/// com.microsoft MatMulNBits (activations stay float), holds the accuracy budget on `eval`, and
/// returns the model with its report. With `calib` data the weights are quantized by GPTQ on the
/// layers' calibration inputs, without it by round-to-nearest.
pub fn compress_nbits(
    proto: &ModelProto,
    model: &Model,
    calib: Option<&Dataset>,
    eval: &Dataset,
    nbits: NBitsOptions,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Compressed, CompressError> {
    if eval.is_empty() {
        return Err(CompressError::Data(
            "evaluation data needs at least one sample".into(),
        ));
    }
    let compiler = compiler_for(opts);
    let layers = find_layers(&model.graph);
    let grams = match calib.filter(|c| !c.is_empty()) {
        Some(c) => calibrate::grams(&compiler, model, &nbits::gptq_inputs(&layers), c, progress)?,
        None => BTreeMap::new(),
    };
    let (decided, mut float_reason) = nbits::nbits_layers(&model.graph, &layers, nbits, &grams);
    if decided.is_empty() {
        return Err(CompressError::NoLayers);
    }
    let label = format!("int{}", nbits.bits);
    let base = Baseline::measure(&compiler, model, eval, opts, progress)?;
    let chosen = hold_budget(
        &compiler,
        &decided,
        |d| d.layer.node.as_str(),
        |chosen: &[&NBitsLayer]| {
            let owned: Vec<NBitsLayer> = chosen.iter().map(|d| (*d).clone()).collect();
            let bytes = nbits::apply(proto, &owned)?.encode_to_vec();
            let imported = import(&bytes, "the block-quantized model")?;
            Ok((bytes, imported))
        },
        eval,
        &base,
        opts,
        &label,
        progress,
    )?;
    let layer_reports = layers
        .iter()
        .map(|l| {
            let d = decided.iter().find(|d| d.layer.node == l.node);
            LayerDecision {
                bytes: d.map(NBitsLayer::bytes),
                data_range: None,
            }
            .report(l, &chosen, &base, opts, &mut float_reason)
        })
        .collect();
    finish(
        FinishInputs {
            proto,
            model,
            eval,
            calib_samples: calib.filter(|_| !grams.is_empty()).map_or(0, Dataset::len),
            scheme: Scheme::WeightsNBits {
                bits: nbits.bits,
                block_size: nbits.block_size,
                symmetric: nbits.symmetric,
                gptq: !grams.is_empty(),
            },
            layers: layer_reports,
            base,
            chosen,
        },
        &compiler,
        opts,
        progress,
    )
}

/// What a scheme decided for one layer (`bytes: None`: it could not compress the layer).
struct LayerDecision {
    /// Compressed weight bytes.
    bytes: Option<u64>,
    /// The calibrated range of the data input (int8 only).
    data_range: Option<(f32, f32)>,
}

impl LayerDecision {
    fn report(
        self,
        l: &Layer,
        chosen: &Chosen,
        base: &Baseline,
        opts: &Options,
        float_reason: &mut BTreeMap<String, String>,
    ) -> LayerReport {
        let kept = chosen.kept_float.contains(&l.node);
        if kept {
            float_reason.insert(
                l.node.clone(),
                format!(
                    "kept float to hold the {} budget of {}",
                    opts.metric, base.max_drop
                ),
            );
        }
        let quantized = self.bytes.is_some() && !kept;
        LayerReport {
            node: l.node.clone(),
            op: l.op.to_string(),
            quantized,
            weight_bytes_float: 4 * l.weight_dims.iter().product::<u64>(),
            weight_bytes_quantized: self.bytes.filter(|_| quantized),
            macs: l.macs,
            data_range: self.data_range,
            sensitivity: chosen
                .sensitivity
                .iter()
                .find(|(n, _)| n == &l.node)
                .map(|(_, s)| *s),
            float_reason: float_reason.get(&l.node).cloned(),
        }
    }
}

/// Everything the report and the timing are made of.
struct FinishInputs<'a> {
    proto: &'a ModelProto,
    model: &'a Model,
    eval: &'a Dataset,
    calib_samples: usize,
    scheme: Scheme,
    layers: Vec<LayerReport>,
    base: Baseline,
    chosen: Chosen,
}

/// Builds the report and times the float and compressed models side by side.
fn finish(
    f: FinishInputs<'_>,
    compiler: &Compiler,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Compressed, CompressError> {
    let label = f.scheme.label();
    let report = Report::build(report::Inputs {
        model_name: f.model.graph.name.clone(),
        scheme: f.scheme,
        metric: opts.metric.to_string(),
        max_drop: f.base.max_drop,
        calib_samples: f.calib_samples,
        eval_samples: f.eval.len(),
        float_bytes: f.proto.encoded_len() as u64,
        compressed_bytes: f.chosen.bytes.len() as u64,
        float_score: f.base.score,
        compressed_score: f.chosen.score,
        final_error: output_error(&f.chosen.outs, &f.base.reference),
        layers: f.layers,
        pruning: None,
        sparsity: None,
    });
    let timing = timing_if_asked(
        compiler,
        [f.model, &f.chosen.model],
        &label,
        f.eval,
        opts,
        progress,
    )?;
    Ok(Compressed {
        onnx: f.chosen.bytes,
        report,
        timing,
    })
}

/// Median latency of the float and the compressed model on the first evaluation sample, runs
/// interleaved so that both see the same machine load.
fn time_side_by_side(
    compiler: &Compiler,
    [float, compressed]: [&Model; 2],
    label: &str,
    data: &Dataset,
    runs: usize,
    progress: &mut dyn Progress,
) -> Result<Timing, CompressError> {
    let a = run::compile(compiler, float, "timing: float model")?;
    let b = run::compile(compiler, compressed, &format!("timing: {label} model"))?;
    let sample = data.take(1);
    let mut times = [Vec::new(), Vec::new()];
    progress.start(
        &format!("timing: float and {label}, interleaved"),
        2 * (runs as u64 + 3),
    );
    for r in 0..runs + 3 {
        for (k, c) in [&a, &b].into_iter().enumerate() {
            let t = Instant::now();
            run::for_each_output(c, &sample, "timing", &mut NoProgress, |_, _| Ok(()))?;
            if r >= 3 {
                times[k].push(t.elapsed().as_secs_f64() * 1e3);
            }
            progress.inc();
        }
    }
    progress.finish();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok(Timing {
        runs,
        float_ms: median(&mut times[0]),
        compressed_ms: median(&mut times[1]),
        label: label.to_string(),
    })
}
