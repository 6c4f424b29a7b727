//! `carve compress`: post-training int8 quantization of a float ONNX model, measured on real data.
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
pub mod report;
pub mod run;

use std::collections::BTreeMap;
use std::time::Instant;

use carve_frontend::Model;
use carve_frontend::proto::ModelProto;
use carve_passes::quantize::{
    Calibrator, Int8Options, LayerQuant, find_layers, keep_float_order, observed_values,
    quantize_layer,
};
use prost::Message;

use crate::compiler::Compiler;
use metric::{MetricSpec, output_error, score};
use report::{LayerReport, Report, Timing};

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
    let mut compiler = Compiler::new();
    if let Some(t) = opts.threads {
        compiler = compiler.threads(t);
    }
    let layers = find_layers(&model.graph);
    if layers.is_empty() {
        return Err(CompressError::NoLayers);
    }
    let output = opts.metric.resolve_output(&model.graph)?;
    let max_drop = opts.max_drop.unwrap_or(opts.metric.default_max_drop());

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

    // The float model's outputs and score on the evaluation data.
    let reference = outputs_of(
        &compiler,
        model,
        eval,
        &output,
        "evaluation: float model",
        progress,
    )?;
    let float_score = score(
        &opts.metric.kind,
        &reference,
        &reference,
        eval.labels.as_deref(),
    )?;

    let variant = |chosen: &[&LayerQuant]| -> Result<(Vec<u8>, Model), CompressError> {
        let owned: Vec<LayerQuant> = chosen.iter().map(|q| (*q).clone()).collect();
        let m = export::apply(proto, &owned)?;
        let bytes = m.encode_to_vec();
        let imported = import(&bytes, "the quantized model")?;
        Ok((bytes, imported))
    };

    // Sensitivity: each layer quantized alone, on a subset of the evaluation data.
    let sub = eval.take(opts.sensitivity_samples.max(1));
    let sub_ref: Vec<Vec<f32>> = reference.iter().take(sub.len()).cloned().collect();
    let mut sensitivity: Vec<(String, f64)> = Vec::new();
    progress.start("sensitivity: one layer at a time", decided.len() as u64);
    for q in &decided {
        let (_, m) = variant(&[q])?;
        let outs = outputs_of(
            &compiler,
            &m,
            &sub,
            &output,
            &format!("sensitivity of '{}'", q.layer.node),
            &mut NoProgress,
        )?;
        sensitivity.push((q.layer.node.clone(), output_error(&outs, &sub_ref)));
        progress.inc();
    }
    progress.finish();

    // The budget: return the most sensitive layers to float until the drop is within it.
    let order = keep_float_order(&sensitivity);
    let mut kept_float: Vec<String> = Vec::new();
    let (bytes, quant, qscore, qouts) = loop {
        let chosen: Vec<&LayerQuant> = decided
            .iter()
            .filter(|q| !kept_float.contains(&q.layer.node))
            .collect();
        let (bytes, m) = variant(&chosen)?;
        let outs = outputs_of(
            &compiler,
            &m,
            eval,
            &output,
            &format!("evaluation: int8 with {} float layer(s)", kept_float.len()),
            progress,
        )?;
        let s = score(&opts.metric.kind, &outs, &reference, eval.labels.as_deref())?;
        let drop = float_score.value - s.value;
        progress.note(&format!(
            "{} of {} layers int8: {} {:.4} (float {:.4}, drop {:.4}, budget {:.4})",
            chosen.len(),
            layers.len(),
            opts.metric,
            s.value,
            float_score.value,
            drop,
            max_drop
        ));
        if drop <= max_drop + 1e-12 || kept_float.len() >= order.len() {
            break (bytes, m, s, outs);
        }
        kept_float.push(order[kept_float.len()].clone());
    };
    for n in &kept_float {
        float_reason.insert(
            n.clone(),
            format!(
                "kept float to hold the {} budget of {max_drop}",
                opts.metric
            ),
        );
    }

    let report = Report::build(report::Inputs {
        model_name: model.graph.name.clone(),
        calibrator: opts.calibrator,
        signed_activations: opts.signed_activations,
        metric: opts.metric.to_string(),
        max_drop,
        calib_samples: calib.len(),
        eval_samples: eval.len(),
        float_bytes: proto.encoded_len() as u64,
        int8_bytes: bytes.len() as u64,
        float_score,
        int8_score: qscore,
        final_error: output_error(&qouts, &reference),
        layers: layers
            .iter()
            .map(|l| {
                let q = decided.iter().find(|q| q.layer.node == l.node);
                let int8 = q.is_some() && !kept_float.contains(&l.node);
                LayerReport {
                    node: l.node.clone(),
                    op: l.op.to_string(),
                    int8,
                    weight_bytes_float: 4 * l.weight_dims.iter().product::<u64>(),
                    weight_bytes_int8: q.filter(|_| int8).map(|q| q.weight.bytes()),
                    macs: l.macs,
                    data_range: q.map(|q| q.data_range),
                    sensitivity: sensitivity
                        .iter()
                        .find(|(n, _)| n == &l.node)
                        .map(|(_, s)| *s),
                    float_reason: float_reason.get(&l.node).cloned(),
                }
            })
            .collect(),
    });

    let timing = if opts.timing_runs > 0 {
        Some(time_side_by_side(
            &compiler,
            model,
            &quant,
            eval,
            opts.timing_runs,
            progress,
        )?)
    } else {
        None
    };
    Ok(Compressed {
        onnx: bytes,
        report,
        timing,
    })
}

/// Median latency of the float and the compressed model on the first evaluation sample, runs
/// interleaved so that both see the same machine load.
fn time_side_by_side(
    compiler: &Compiler,
    float: &Model,
    quant: &Model,
    data: &Dataset,
    runs: usize,
    progress: &mut dyn Progress,
) -> Result<Timing, CompressError> {
    let a = run::compile(compiler, float, "timing: float model")?;
    let b = run::compile(compiler, quant, "timing: int8 model")?;
    let sample = data.take(1);
    let mut times = [Vec::new(), Vec::new()];
    progress.start("timing: float and int8, interleaved", 2 * (runs as u64 + 3));
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
        int8_ms: median(&mut times[1]),
    })
}
