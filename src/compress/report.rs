//! The compression report: per layer (dtype, weight bytes before/after, calibrated range, sensitivity,
//! why it stayed float) and in total (model size, the metric float vs compressed), as Markdown and
//! JSON with a fixed key order and number formatting, so that the same run writes the same bytes.
//! Latencies are measured, not deterministic, and go to a separate [`Timing`] file.

use std::fmt::Write as _;

use carve_passes::quantize::Calibrator;
use serde_json::json;

use super::metric::Score;

/// One quantizable layer in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// Node name.
    pub node: String,
    /// Op.
    pub op: String,
    /// Quantized to int8 in the result.
    pub int8: bool,
    /// Weight bytes as f32.
    pub weight_bytes_float: u64,
    /// Weight bytes as int8 with scales, when quantized.
    pub weight_bytes_int8: Option<u64>,
    /// Multiply-accumulates per run.
    pub macs: Option<f64>,
    /// Calibrated clipping range of the data input.
    pub data_range: Option<(f32, f32)>,
    /// Mean relative output error with this layer alone quantized.
    pub sensitivity: Option<f64>,
    /// Why the layer stayed float.
    pub float_reason: Option<String>,
}

/// What the report is built from.
pub struct Inputs {
    /// The graph's name.
    pub model_name: String,
    /// Activation calibrator.
    pub calibrator: Calibrator,
    /// s8 symmetric activations (else u8 asymmetric).
    pub signed_activations: bool,
    /// The metric (`kind[:output]`).
    pub metric: String,
    /// The budget.
    pub max_drop: f64,
    /// Calibration samples.
    pub calib_samples: usize,
    /// Evaluation samples.
    pub eval_samples: usize,
    /// Encoded size of the float model.
    pub float_bytes: u64,
    /// Encoded size of the int8 model.
    pub int8_bytes: u64,
    /// The float model's score.
    pub float_score: Score,
    /// The int8 model's score.
    pub int8_score: Score,
    /// Mean relative output error of the int8 model.
    pub final_error: f64,
    /// Every quantizable layer.
    pub layers: Vec<LayerReport>,
}

/// A deterministic compression report.
pub struct Report {
    inputs: Inputs,
}

/// Latencies of the float and compressed model measured side by side (interleaved runs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Timed runs per model.
    pub runs: usize,
    /// Median float latency, ms.
    pub float_ms: f64,
    /// Median int8 latency, ms.
    pub int8_ms: f64,
}

fn mb(b: u64) -> String {
    format!("{:.3}", b as f64 / 1e6)
}

impl Report {
    /// Builds the report.
    pub fn build(inputs: Inputs) -> Report {
        Report { inputs }
    }

    /// The inputs (for tests and callers that print a summary).
    pub fn data(&self) -> &Inputs {
        &self.inputs
    }

    /// Layers kept in float.
    pub fn float_layers(&self) -> Vec<&LayerReport> {
        self.inputs.layers.iter().filter(|l| !l.int8).collect()
    }

    /// The report as pretty JSON (keys sorted, numbers as computed).
    pub fn to_json(&self) -> String {
        let i = &self.inputs;
        let layers: Vec<serde_json::Value> = i
            .layers
            .iter()
            .map(|l| {
                json!({
                    "node": l.node,
                    "op": l.op,
                    "dtype": if l.int8 { "int8" } else { "float32" },
                    "weight_bytes_float": l.weight_bytes_float,
                    "weight_bytes_int8": l.weight_bytes_int8,
                    "macs": l.macs,
                    "data_range": l.data_range.map(|(a, b)| [a, b]),
                    "sensitivity": l.sensitivity,
                    "float_reason": l.float_reason,
                })
            })
            .collect();
        let (wf, wq) = self.weight_bytes();
        let v = json!({
            "model": i.model_name,
            "technique": "int8 post-training quantization (QDQ; per-channel symmetric int8 weights, per-tensor activations)",
            "calibrator": i.calibrator.to_string(),
            "activations": if i.signed_activations { "s8" } else { "u8" },
            "metric": i.metric,
            "max_drop": i.max_drop,
            "calibration_samples": i.calib_samples,
            "evaluation_samples": i.eval_samples,
            "model_bytes": {"float": i.float_bytes, "int8": i.int8_bytes},
            "weight_bytes": {"float": wf, "int8": wq},
            "score": {
                "float": i.float_score.value,
                "int8": i.int8_score.value,
                "int8_mean": i.int8_score.mean,
                "drop": i.float_score.value - i.int8_score.value,
            },
            "output_error": i.final_error,
            "layers_int8": i.layers.iter().filter(|l| l.int8).count(),
            "layers_float": i.layers.iter().filter(|l| !l.int8).count(),
            "layers": layers,
        });
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Weight bytes of the quantizable layers before and after (float layers count as float).
    pub fn weight_bytes(&self) -> (u64, u64) {
        let l = &self.inputs.layers;
        let f = l.iter().map(|l| l.weight_bytes_float).sum();
        let q = l
            .iter()
            .map(|l| l.weight_bytes_int8.unwrap_or(l.weight_bytes_float))
            .sum();
        (f, q)
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let i = &self.inputs;
        let mut s = String::new();
        let (wf, wq) = self.weight_bytes();
        let _ = writeln!(s, "# carve compress: int8 report for `{}`\n", i.model_name);
        let _ = writeln!(
            s,
            "Per-channel symmetric int8 weights, per-tensor {} activations (calibrator `{}`, {} \
             calibration samples); accuracy on {} evaluation samples, metric `{}`, budget: drop ≤ {}.\n",
            if i.signed_activations {
                "s8 symmetric"
            } else {
                "u8 asymmetric"
            },
            i.calibrator,
            i.calib_samples,
            i.eval_samples,
            i.metric,
            i.max_drop
        );
        let _ = writeln!(s, "| | float | int8 |\n|---|---|---|");
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} (drop {:.4}) |",
            i.metric,
            i.float_score.value,
            i.int8_score.value,
            i.float_score.value - i.int8_score.value
        );
        if i.metric.starts_with("cosine") {
            let _ = writeln!(s, "| mean cosine | 1.0000 | {:.4} |", i.int8_score.mean);
        }
        let _ = writeln!(
            s,
            "| model size (MB) | {} | {} ({:.2}×) |",
            mb(i.float_bytes),
            mb(i.int8_bytes),
            i.int8_bytes as f64 / i.float_bytes.max(1) as f64
        );
        let _ = writeln!(
            s,
            "| weights of quantizable layers (MB) | {} | {} ({:.2}×) |",
            mb(wf),
            mb(wq),
            wq as f64 / wf.max(1) as f64
        );
        let _ = writeln!(
            s,
            "| mean relative output error | 0 | {:.5} |\n",
            i.final_error
        );
        let _ = writeln!(
            s,
            "{} of {} layers are int8.\n",
            i.layers.iter().filter(|l| l.int8).count(),
            i.layers.len()
        );
        let _ = writeln!(
            s,
            "| layer | op | dtype | weight KB float → int8 | MMACs | input range | sensitivity | note |\n|---|---|---|---|---|---|---|---|"
        );
        for l in &i.layers {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {:.1} → {} | {} | {} | {} | {} |",
                l.node,
                l.op,
                if l.int8 { "int8" } else { "float32" },
                l.weight_bytes_float as f64 / 1e3,
                l.weight_bytes_int8
                    .map(|b| format!("{:.1}", b as f64 / 1e3))
                    .unwrap_or_else(|| "—".into()),
                l.macs
                    .map(|m| format!("{:.2}", m / 1e6))
                    .unwrap_or_else(|| "?".into()),
                l.data_range
                    .map(|(a, b)| format!("[{a:.4}, {b:.4}]"))
                    .unwrap_or_else(|| "—".into()),
                l.sensitivity
                    .map(|x| format!("{x:.5}"))
                    .unwrap_or_else(|| "—".into()),
                l.float_reason.as_deref().unwrap_or("")
            );
        }
        s
    }
}

impl Timing {
    /// The timing as Markdown.
    pub fn to_markdown(&self) -> String {
        format!(
            "# Latency, side by side (carve JIT, this machine, median of {} interleaved runs)\n\n| | float | int8 | ratio |\n|---|---|---|---|\n| carve (ms) | {:.3} | {:.3} | {:.2}× |\n",
            self.runs,
            self.float_ms,
            self.int8_ms,
            self.int8_ms / self.float_ms
        )
    }

    /// The timing as JSON.
    pub fn to_json(&self) -> String {
        let v = json!({"runs": self.runs, "float_ms": self.float_ms, "int8_ms": self.int8_ms,
            "ratio": self.int8_ms / self.float_ms});
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }
}
