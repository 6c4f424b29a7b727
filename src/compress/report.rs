//! The compression report: per layer (dtype, weight bytes before/after, calibrated range, sensitivity,
//! why it stayed float) and in total (model size, the metric float vs compressed), as Markdown and
//! JSON with a fixed key order and number formatting, so that the same run writes the same bytes.
//! Latencies are measured, not deterministic, and go to a separate [`Timing`] file. One report shape
//! serves every [`Scheme`]; its label (`int8`, `int4`) names the compressed columns and keys.

use std::fmt::Write as _;

use carve_passes::quantize::Calibrator;
use serde_json::json;

use super::metric::Score;

/// How the model was compressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scheme {
    /// int8 QDQ: per-channel symmetric int8 weights, per-tensor calibrated activations.
    Int8 {
        /// Activation calibrator.
        calibrator: Calibrator,
        /// s8 symmetric activations (else u8 asymmetric).
        signed_activations: bool,
    },
    /// Weight-only block quantization of MatMul weights to `bits` bits (com.microsoft MatMulNBits);
    /// activations stay float.
    WeightsNBits {
        /// Bits per weight.
        bits: usize,
        /// Weights per block (one scale, and a zero point unless symmetric, per block).
        block_size: usize,
        /// Symmetric blocks (implicit zero point `2^(bits−1)`, no stored zero points).
        symmetric: bool,
        /// Quantized by GPTQ on calibration inputs (else round-to-nearest).
        gptq: bool,
    },
    /// Channel pruning: whole channels removed (see [`PruneSummary`]); the model stays float.
    Prune {
        /// Repaired by bias compensation on calibration data.
        repaired: bool,
    },
    /// One-shot unstructured sparsity: zeros in the dense float weights (see [`SparsitySummary`]).
    Sparse {
        /// The layers' calibration input statistics were collected (SparseGPT possible).
        calibrated: bool,
    },
}

impl Scheme {
    /// The compressed dtype's short name: `int8`, `int4`, ...
    pub fn label(&self) -> String {
        match self {
            Scheme::Int8 { .. } => "int8".into(),
            Scheme::WeightsNBits { bits, .. } => format!("int{bits}"),
            Scheme::Prune { .. } => "pruned".into(),
            Scheme::Sparse { .. } => "sparse".into(),
        }
    }

    /// One sentence on the technique (the JSON's `technique`).
    fn technique(&self) -> String {
        match self {
            Scheme::Int8 { .. } => "int8 post-training quantization (QDQ; per-channel symmetric int8 weights, per-tensor activations)".into(),
            Scheme::WeightsNBits {
                bits,
                block_size,
                symmetric,
                gptq,
            } => format!(
                "{bits}-bit weight-only block quantization of MatMul weights (com.microsoft MatMulNBits; \
                 blocks of {block_size} along K, {}, {}; float activations)",
                if *symmetric {
                    "symmetric, no zero points"
                } else {
                    "asymmetric, per-block zero points"
                },
                if *gptq {
                    "GPTQ on calibration inputs"
                } else {
                    "round-to-nearest"
                }
            ),
            Scheme::Prune { repaired } => format!(
                "channel pruning (whole channels removed across their dependency groups; a smaller \
                 dense float model){}",
                if *repaired {
                    ", repaired by bias compensation from calibration means"
                } else {
                    ", no repair"
                }
            ),
            Scheme::Sparse { calibrated } => format!(
                "one-shot unstructured sparsity (a fraction of each MatMul/Gemm/Conv layer's weights \
                 per output channel set to zero, kept in dense float weights){}",
                if *calibrated {
                    "; calibration input statistics XᵀX per layer"
                } else {
                    "; no calibration data"
                }
            ),
        }
    }
}

/// One quantizable layer in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// Node name.
    pub node: String,
    /// Op.
    pub op: String,
    /// Quantized (to the scheme's dtype) in the result.
    pub quantized: bool,
    /// Weight bytes as f32.
    pub weight_bytes_float: u64,
    /// Weight bytes quantized, with scales and zero points, when quantized.
    pub weight_bytes_quantized: Option<u64>,
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
    /// How it was compressed.
    pub scheme: Scheme,
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
    /// Encoded size of the compressed model.
    pub compressed_bytes: u64,
    /// The float model's score.
    pub float_score: Score,
    /// The compressed model's score.
    pub compressed_score: Score,
    /// Mean relative output error of the compressed model.
    pub final_error: f64,
    /// Every quantizable layer.
    pub layers: Vec<LayerReport>,
    /// What channel pruning did (pruning runs only).
    pub pruning: Option<PruneSummary>,
    /// What sparsification did (sparsity runs only).
    pub sparsity: Option<SparsitySummary>,
}

/// One candidate sparsity method measured with every layer sparse.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodScore {
    /// `magnitude` or `sparsegpt`.
    pub method: String,
    /// The metric with every layer sparse by this method.
    pub score: f64,
    /// Mean relative output error against the float model.
    pub output_error: f64,
}

/// One MatMul/Gemm/Conv layer in a sparsity report.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseLayerReport {
    /// Node name.
    pub node: String,
    /// Op.
    pub op: String,
    /// Sparse in the result.
    pub sparse: bool,
    /// Weights in the layer.
    pub weights: u64,
    /// Zero weights in the float model (when the layer was considered).
    pub zeros_before: Option<u64>,
    /// Zero weights in the written model (when the layer was considered).
    pub zeros: Option<u64>,
    /// Relative squared output error `‖XΔ‖² / ‖XW‖²` of the layer on the calibration inputs (sparse
    /// layers with statistics).
    pub layer_error: Option<f64>,
    /// Mean relative output error of the model with this layer alone sparse.
    pub sensitivity: Option<f64>,
    /// Why it stayed dense, or a remark on its method.
    pub note: Option<String>,
}

impl SparseLayerReport {
    /// Fraction of zero weights in the written model.
    pub fn sparsity(&self) -> f64 {
        self.zeros.unwrap_or(0) as f64 / self.weights.max(1) as f64
    }
}

/// What sparsification did, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct SparsitySummary {
    /// Fraction of each layer's weights (per output channel) asked to be zero.
    pub ratio: f64,
    /// The method used (`magnitude`, `sparsegpt`).
    pub method: String,
    /// The methods measured against each other when none was asked for (empty otherwise).
    pub candidates: Vec<MethodScore>,
    /// Every MatMul/Gemm/Conv layer with a constant weight.
    pub layers: Vec<SparseLayerReport>,
}

impl SparsitySummary {
    /// Nonzero weights of the layers in the float and in the sparse model.
    pub fn nonzero(&self) -> (u64, u64) {
        let f = self
            .layers
            .iter()
            .map(|l| l.weights - l.zeros_before.unwrap_or(0))
            .sum();
        let s = self
            .layers
            .iter()
            .map(|l| l.weights - l.zeros.unwrap_or(0))
            .sum();
        (f, s)
    }

    fn to_json(&self) -> serde_json::Value {
        let (nf, ns) = self.nonzero();
        json!({
            "ratio": self.ratio,
            "method": self.method,
            "candidates": self.candidates.iter().map(|c| json!({
                "method": c.method, "score": c.score, "output_error": c.output_error,
            })).collect::<Vec<_>>(),
            "weights": self.layers.iter().map(|l| l.weights).sum::<u64>(),
            "nonzero_weights": {"float": nf, "sparse": ns},
            "layers_sparse": self.layers.iter().filter(|l| l.sparse).count(),
            "layers": self.layers.iter().map(|l| json!({
                "node": l.node, "op": l.op, "sparse": l.sparse, "weights": l.weights,
                "zeros_float": l.zeros_before, "zeros": l.zeros, "sparsity": l.sparsity(),
                "layer_output_error": l.layer_error, "sensitivity": l.sensitivity, "note": l.note,
            })).collect::<Vec<_>>(),
        })
    }

    fn to_markdown(&self, s: &mut String, i: &Inputs) {
        let (nf, ns) = self.nonzero();
        let total: u64 = self.layers.iter().map(|l| l.weights).sum();
        let _ = writeln!(
            s,
            "| nonzero weights of the layers | {nf} | {ns} ({:.3}×; sparsity {:.4}) |\n",
            ns as f64 / nf.max(1) as f64,
            1.0 - ns as f64 / total.max(1) as f64
        );
        if !self.candidates.is_empty() {
            let _ = writeln!(
                s,
                "Every layer sparse, by method (the better is kept):\n\n| method | {} | mean relative output error |\n|---|---|---|",
                i.metric
            );
            for c in &self.candidates {
                let _ = writeln!(
                    s,
                    "| {}{} | {:.4} | {:.5} |",
                    c.method,
                    if c.method == self.method {
                        " (kept)"
                    } else {
                        ""
                    },
                    c.score,
                    c.output_error
                );
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "{} of {} layers are sparse.\n\n| layer | op | weights | zeros float → sparse | sparsity | layer output error | sensitivity | note |\n|---|---|---|---|---|---|---|---|",
            self.layers.iter().filter(|l| l.sparse).count(),
            self.layers.len()
        );
        let opt = |x: Option<f64>| x.map(|x| format!("{x:.5}")).unwrap_or_else(|| "—".into());
        for l in &self.layers {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} → {} | {:.4} | {} | {} | {} |",
                l.node,
                l.op,
                l.weights,
                l.zeros_before.map_or("—".into(), |z| z.to_string()),
                l.zeros.map_or("—".into(), |z| z.to_string()),
                l.sparsity(),
                opt(l.layer_error),
                opt(l.sensitivity),
                l.note.as_deref().unwrap_or("")
            );
        }
    }
}

/// One channel group in a pruning report.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    /// Group index (as in the dependency groups' text form).
    pub group: usize,
    /// The nodes whose filters produce the group's channels.
    pub producers: String,
    /// Channels in the group.
    pub channels: usize,
    /// Channels that may be removed.
    pub prunable: usize,
    /// Channels removed.
    pub removed: usize,
    /// Left unpruned to hold the accuracy budget.
    pub kept_for_budget: bool,
    /// Mean relative output error with this group alone pruned (when it had channels to remove).
    pub sensitivity: Option<f64>,
}

/// What channel pruning did, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneSummary {
    /// Fraction of each prunable group's channels asked to go.
    pub ratio: f64,
    /// Scoring criterion (`l1`, `l2`).
    pub criterion: String,
    /// Every channel group.
    pub groups: Vec<GroupReport>,
    /// Parameters before and after.
    pub params: (u64, u64),
    /// Weight bytes before and after.
    pub weight_bytes: (u64, u64),
    /// FLOPs per run before and after.
    pub flops: (f64, f64),
    /// The metric of the pruned model before the repair.
    pub score_before_repair: Score,
    /// Mean relative output error before the repair.
    pub error_before_repair: f64,
    /// Consumer layers whose bias absorbed the removed channels' means (`None`: no repair ran).
    pub compensated: Option<Vec<String>>,
    /// Consumer layers that could not be compensated, with the reason.
    pub not_compensated: Vec<(String, String)>,
}

impl PruneSummary {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "ratio": self.ratio,
            "criterion": self.criterion,
            "params": {"float": self.params.0, "pruned": self.params.1},
            "weight_bytes": {"float": self.weight_bytes.0, "pruned": self.weight_bytes.1},
            "flops": {"float": self.flops.0, "pruned": self.flops.1},
            "score_before_repair": self.score_before_repair.value,
            "output_error_before_repair": self.error_before_repair,
            "compensated": self.compensated,
            "not_compensated": self.not_compensated.iter().map(|(n, w)| json!({"node": n, "reason": w})).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| json!({
                "group": g.group, "producers": g.producers, "channels": g.channels,
                "prunable": g.prunable, "removed": g.removed,
                "kept_for_budget": g.kept_for_budget, "sensitivity": g.sensitivity,
            })).collect::<Vec<_>>(),
        })
    }

    fn to_markdown(&self, s: &mut String, i: &Inputs) {
        let _ = writeln!(
            s,
            "| | float | pruned |\n|---|---|---|\n| parameters | {} | {} ({:.3}×) |\n| weight bytes (MB) | {} | {} |\n| MFLOPs per run | {:.3} | {:.3} ({:.3}×) |",
            self.params.0,
            self.params.1,
            self.params.1 as f64 / self.params.0.max(1) as f64,
            mb(self.weight_bytes.0),
            mb(self.weight_bytes.1),
            self.flops.0 / 1e6,
            self.flops.1 / 1e6,
            self.flops.1 / self.flops.0.max(1.0)
        );
        let _ = writeln!(
            s,
            "| {} before repair | {:.4} | {:.4} (drop {:.4}) |\n| {} after repair | {:.4} | {} |\n| mean relative output error before repair | 0 | {:.5} |\n",
            i.metric,
            i.float_score.value,
            self.score_before_repair.value,
            i.float_score.value - self.score_before_repair.value,
            i.metric,
            i.float_score.value,
            if self.compensated.is_some() {
                format!(
                    "{:.4} (drop {:.4})",
                    i.compressed_score.value,
                    i.float_score.value - i.compressed_score.value
                )
            } else {
                "— (no calibration data, no repair)".into()
            },
            self.error_before_repair
        );
        if let Some(c) = &self.compensated {
            let _ = writeln!(
                s,
                "Bias compensation: {} consumer layer(s) absorbed the removed channels' means.",
                c.len()
            );
            for (n, why) in &self.not_compensated {
                let _ = writeln!(s, "- `{n}` not compensated: {why}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "| group | producers | channels | prunable | removed | sensitivity | note |\n|---|---|---|---|---|---|---|"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                g.group,
                g.producers,
                g.channels,
                g.prunable,
                g.removed,
                g.sensitivity
                    .map(|x| format!("{x:.5}"))
                    .unwrap_or_else(|| "—".into()),
                if g.kept_for_budget {
                    format!(
                        "kept unpruned to hold the {} budget of {}",
                        i.metric, i.max_drop
                    )
                } else {
                    String::new()
                }
            );
        }
    }
}

/// A deterministic compression report.
pub struct Report {
    inputs: Inputs,
}

/// Latencies of the float and compressed model measured side by side (interleaved runs).
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Timed runs per model.
    pub runs: usize,
    /// Median float latency, ms.
    pub float_ms: f64,
    /// Median latency of the compressed model, ms.
    pub compressed_ms: f64,
    /// The compressed dtype's label (column name).
    pub label: String,
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
        self.inputs.layers.iter().filter(|l| !l.quantized).collect()
    }

    /// The report as pretty JSON (keys sorted, numbers as computed). The compressed model's keys are
    /// named by the scheme's label (`int8`, `int4`).
    pub fn to_json(&self) -> String {
        let i = &self.inputs;
        let q = i.scheme.label();
        let layers: Vec<serde_json::Value> = i
            .layers
            .iter()
            .map(|l| {
                let mut o = serde_json::Map::new();
                o.insert("node".into(), json!(l.node));
                o.insert("op".into(), json!(l.op));
                o.insert(
                    "dtype".into(),
                    json!(if l.quantized { q.as_str() } else { "float32" }),
                );
                o.insert("weight_bytes_float".into(), json!(l.weight_bytes_float));
                o.insert(format!("weight_bytes_{q}"), json!(l.weight_bytes_quantized));
                o.insert("macs".into(), json!(l.macs));
                o.insert(
                    "data_range".into(),
                    json!(l.data_range.map(|(a, b)| [a, b])),
                );
                o.insert("sensitivity".into(), json!(l.sensitivity));
                o.insert("float_reason".into(), json!(l.float_reason));
                serde_json::Value::Object(o)
            })
            .collect();
        let (wf, wq) = self.weight_bytes();
        let quantized = i.layers.iter().filter(|l| l.quantized).count();
        let mut v = json!({
            "model": i.model_name,
            "technique": i.scheme.technique(),
            "metric": i.metric,
            "max_drop": i.max_drop,
            "calibration_samples": i.calib_samples,
            "evaluation_samples": i.eval_samples,
            "model_bytes": {"float": i.float_bytes, q.clone(): i.compressed_bytes},
            "weight_bytes": {"float": wf, q.clone(): wq},
            "score": {
                "float": i.float_score.value,
                q.clone(): i.compressed_score.value,
                format!("{q}_mean"): i.compressed_score.mean,
                "drop": i.float_score.value - i.compressed_score.value,
            },
            "output_error": i.final_error,
            format!("layers_{q}"): quantized,
            "layers_float": i.layers.len() - quantized,
            "layers": layers,
        });
        if let (Some(p), Some(o)) = (&i.pruning, v.as_object_mut()) {
            o.insert("pruning".into(), p.to_json());
        }
        if let (Some(p), Some(o)) = (&i.sparsity, v.as_object_mut()) {
            o.insert("sparsity".into(), p.to_json());
        }
        if let (
            Scheme::Int8 {
                calibrator,
                signed_activations,
            },
            Some(o),
        ) = (&i.scheme, v.as_object_mut())
        {
            o.insert("calibrator".into(), json!(calibrator.to_string()));
            o.insert(
                "activations".into(),
                json!(if *signed_activations { "s8" } else { "u8" }),
            );
        }
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
            .map(|l| l.weight_bytes_quantized.unwrap_or(l.weight_bytes_float))
            .sum();
        (f, q)
    }

    /// The first paragraph: what was done, on how much data, under which budget.
    fn method(&self) -> String {
        let i = &self.inputs;
        match i.scheme {
            Scheme::Int8 {
                calibrator,
                signed_activations,
            } => format!(
                "Per-channel symmetric int8 weights, per-tensor {} activations (calibrator `{}`, {} \
                 calibration samples); accuracy on {} evaluation samples, metric `{}`, budget: drop ≤ {}.\n",
                if signed_activations {
                    "s8 symmetric"
                } else {
                    "u8 asymmetric"
                },
                calibrator,
                i.calib_samples,
                i.eval_samples,
                i.metric,
                i.max_drop
            ),
            Scheme::WeightsNBits {
                bits,
                block_size,
                symmetric,
                gptq,
            } => format!(
                "{bits}-bit MatMul weights in blocks of {block_size} along K ({}; com.microsoft \
                 MatMulNBits; {}), activations float; accuracy on {} evaluation samples, metric `{}`, \
                 budget: drop ≤ {}.\n",
                if symmetric {
                    "symmetric, no zero points"
                } else {
                    "asymmetric, per-block zero points"
                },
                if gptq {
                    format!("GPTQ on {} calibration samples", i.calib_samples)
                } else {
                    "round-to-nearest".to_string()
                },
                i.eval_samples,
                i.metric,
                i.max_drop
            ),
            Scheme::Sparse { calibrated } => format!(
                "Unstructured sparsity: {:.0}% of every MatMul/Gemm/Conv layer's weights per output \
                 channel set to zero by `{}`{}; the zeros stay in dense float weights. Accuracy on {} \
                 evaluation samples, metric `{}`, budget: drop ≤ {} (the most sensitive layers stay \
                 dense until it holds).\n",
                i.sparsity.as_ref().map_or(0.0, |p| p.ratio * 100.0),
                i.sparsity.as_ref().map_or("", |p| p.method.as_str()),
                if calibrated {
                    format!(
                        " (input statistics XᵀX from {} calibration samples)",
                        i.calib_samples
                    )
                } else {
                    String::new()
                },
                i.eval_samples,
                i.metric,
                i.max_drop
            ),
            Scheme::Prune { repaired } => format!(
                "Channel pruning: in every prunable channel group the lowest-scoring {:.0}% of the \
                 channels (criterion `{}`) are removed{}; accuracy on {} evaluation samples, metric \
                 `{}`, budget: drop ≤ {} (the most sensitive groups stay unpruned until it holds).\n",
                i.pruning.as_ref().map_or(0.0, |p| p.ratio * 100.0),
                i.pruning.as_ref().map_or("", |p| p.criterion.as_str()),
                if repaired {
                    format!(
                        ", then repaired by bias compensation from {} calibration samples",
                        i.calib_samples
                    )
                } else {
                    String::new()
                },
                i.eval_samples,
                i.metric,
                i.max_drop
            ),
        }
    }

    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let i = &self.inputs;
        let q = i.scheme.label();
        let mut s = String::new();
        let (wf, wq) = self.weight_bytes();
        let _ = writeln!(s, "# carve compress: {q} report for `{}`\n", i.model_name);
        let _ = writeln!(s, "{}", self.method());
        let _ = writeln!(s, "| | float | {q} |\n|---|---|---|");
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.4} (drop {:.4}) |",
            i.metric,
            i.float_score.value,
            i.compressed_score.value,
            i.float_score.value - i.compressed_score.value
        );
        if i.metric.starts_with("cosine") {
            let _ = writeln!(
                s,
                "| mean cosine | 1.0000 | {:.4} |",
                i.compressed_score.mean
            );
        }
        let _ = writeln!(
            s,
            "| model size (MB) | {} | {} ({:.2}×) |",
            mb(i.float_bytes),
            mb(i.compressed_bytes),
            i.compressed_bytes as f64 / i.float_bytes.max(1) as f64
        );
        if let Some(p) = &i.pruning {
            let _ = writeln!(
                s,
                "| mean relative output error | 0 | {:.5} |\n",
                i.final_error
            );
            p.to_markdown(&mut s, i);
            return s;
        }
        if let Some(p) = &i.sparsity {
            let _ = writeln!(
                s,
                "| mean relative output error | 0 | {:.5} |",
                i.final_error
            );
            p.to_markdown(&mut s, i);
            return s;
        }
        let _ = writeln!(
            s,
            "| weights of quantizable layers (MB) | {} | {} ({:.3}×) |",
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
            "{} of {} layers are {q}.\n",
            i.layers.iter().filter(|l| l.quantized).count(),
            i.layers.len()
        );
        let _ = writeln!(
            s,
            "| layer | op | dtype | weight KB float → {q} | MMACs | input range | sensitivity | note |\n|---|---|---|---|---|---|---|---|"
        );
        for l in &i.layers {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {:.1} → {} | {} | {} | {} | {} |",
                l.node,
                l.op,
                if l.quantized { q.as_str() } else { "float32" },
                l.weight_bytes_float as f64 / 1e3,
                l.weight_bytes_quantized
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
            "# Latency, side by side (carve JIT, this machine, median of {} interleaved runs)\n\n| | float | {} | ratio |\n|---|---|---|---|\n| carve (ms) | {:.3} | {:.3} | {:.2}× |\n",
            self.runs,
            self.label,
            self.float_ms,
            self.compressed_ms,
            self.compressed_ms / self.float_ms
        )
    }

    /// The timing as JSON (`<label>_ms` for the compressed model).
    pub fn to_json(&self) -> String {
        let v = json!({"runs": self.runs, "float_ms": self.float_ms,
            format!("{}_ms", self.label): self.compressed_ms,
            "ratio": self.compressed_ms / self.float_ms});
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    }
}
