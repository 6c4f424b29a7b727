//! `carve compress --sparsity RATIO`: one-shot unstructured sparsity, measured. The driver's half of
//! DESIGN.md "Compression": it collects the calibration Gram matrix `XᵀX` of every layer's input
//! columns (MatMul/Gemm: the data's last axis, through [`super::calibrate::grams`], the statistics
//! GPTQ uses; Conv: the im2col patches of each channel group, [`conv_grams`]), asks
//! `carve_passes::sparsify` which weights of each MatMul/Gemm/Conv layer become zero (magnitude or
//! SparseGPT), and — when no method is given and calibration data is — measures both methods on the
//! evaluation data and keeps the better one. The accuracy budget (the loop quantization uses) keeps
//! the most sensitive layers dense. The zeros are written into the dense float weights of the
//! original ONNX model ([`apply`]: any runtime loads it; sparse formats and kernels are not part of
//! this step), and the report gives per layer the sparsity achieved, the layer's relative output error
//! on the calibration inputs and its sensitivity, and in total the metric float vs sparse and the
//! nonzero weights before and after.

use std::collections::{BTreeMap, BTreeSet};

use carve_frontend::Model;
use carve_frontend::proto::{GraphProto, ModelProto};
use carve_ir::ops::conv::{ConvOp, window_attrs, window_output};
use carve_ir::{DType, Op};
use carve_passes::quantize::gptq::Gram;
use carve_passes::quantize::{Layer, find_layers};
use carve_passes::sparsify::{Method, SparseLayer, sparsify_layer};
use prost::Message;

use super::export::{constant_to_initializer, tensor};
use super::metric::{Score, output_error};
use super::report::{self, MethodScore, Report, Scheme, SparseLayerReport, SparsitySummary};
use super::run::{compile, for_each_output};
use super::{
    Baseline, CompressError, Compressed, Dataset, Options, Progress, compiler_for, import,
    timing_if_asked,
};
use crate::compiler::Compiler;

/// Options of a sparsity run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparsityOptions {
    /// Fraction of each layer's weights (per output channel) to zero, in `[0, 1)`.
    pub ratio: f64,
    /// How to choose them (`None`: SparseGPT and magnitude both measured, the better kept; magnitude
    /// without calibration data).
    pub method: Option<Method>,
}

/// Gram matrices of each layer's input columns (one per channel group), by node name.
type LayerGrams = BTreeMap<String, Vec<Gram>>;

/// True when `name` is an initializer or a `Constant` node's output of `g` (what [`apply`] can
/// rewrite).
fn rewritable(g: &GraphProto, name: &str) -> bool {
    g.initializer.iter().any(|t| t.name == name)
        || g.node.iter().any(|n| {
            n.op_type == "Constant"
                && n.domain.is_empty()
                && n.output.first().map(String::as_str) == Some(name)
                && n.attribute.len() == 1
                && n.attribute[0].name == "value"
                && n.attribute[0].t.is_some()
        })
}

/// Writes each layer's sparse weight over its float weight in `model` (same name, dims, f32).
pub fn apply(model: &ModelProto, layers: &[SparseLayer]) -> Result<ModelProto, CompressError> {
    let mut m = model.clone();
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| CompressError::Export("the model has no graph".into()))?;
    for sl in layers {
        let l = &sl.layer;
        constant_to_initializer(g, &l.weight);
        let t = g
            .initializer
            .iter_mut()
            .find(|t| t.name == l.weight)
            .ok_or_else(|| {
                CompressError::Export(format!(
                    "layer '{}': weight '{}' is not an initializer",
                    l.node, l.weight
                ))
            })?;
        let raw: Vec<u8> = sl.weight.iter().flat_map(|x| x.to_le_bytes()).collect();
        *t = tensor(&l.weight, DType::F32, &t.dims.clone(), raw);
    }
    Ok(m)
}

/// The conv geometry a layer's im2col patches need.
struct ConvGeom {
    group: usize,
    kernel: Vec<usize>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    auto_pad: carve_ir::ops::conv::AutoPad,
}

/// The geometry of conv layer `l` (1-D or 2-D convs), or why its statistics cannot be taken.
fn conv_geom(model: &Model, l: &Layer) -> Result<ConvGeom, String> {
    let g = &model.graph;
    let node = g
        .nodes
        .iter()
        .find(|n| n.name == l.node)
        .ok_or_else(|| format!("no node named '{}'", l.node))?;
    let Op::Conv(ConvOp::Conv(c)) = &node.op else {
        return Err("not a conv".into());
    };
    let kernel: Vec<usize> = l.weight_dims[2..].iter().map(|&d| d as usize).collect();
    if kernel.is_empty() || kernel.len() > 2 {
        return Err(format!(
            "a {}-D conv (statistics are taken for 1-D and 2-D convs)",
            kernel.len()
        ));
    }
    Ok(ConvGeom {
        group: usize::try_from(c.group).unwrap_or(0).max(1),
        kernel,
        strides: c.strides.clone(),
        dilations: c.dilations.clone(),
        pads: c.pads.clone(),
        auto_pad: c.auto_pad,
    })
}

/// Adds one sample's conv input `x` (`[N, C, spatial..]`) to the per-group Gram matrices `grams` of
/// the im2col patches of `geom` (rows: every output position of every batch item).
fn add_conv_sample(
    x: &carve_runtime::Tensor,
    geom: &ConvGeom,
    grams: &mut [Gram],
    scratch: &mut (Vec<f32>, Vec<f32>, Vec<f32>),
) -> Result<(), String> {
    let carve_runtime::Data::F32(data) = &x.data else {
        return Err("the conv input is not f32".into());
    };
    let s = &x.shape;
    let nsp = geom.kernel.len();
    if s.len() != 2 + nsp {
        return Err(format!("input of rank {} for a {nsp}-D conv", s.len()));
    }
    let (n, c) = (s[0], s[1]);
    // Spatial dims as (H, W), a 1-D conv as H = 1.
    let (ih, iw, kh, kw) = if nsp == 1 {
        (1, s[2], 1, geom.kernel[0])
    } else {
        (s[2], s[3], geom.kernel[0], geom.kernel[1])
    };
    let attrs = window_attrs(
        &geom.strides,
        &geom.dilations,
        &geom.pads,
        geom.auto_pad,
        false,
    );
    attrs.check(nsp)?;
    let axis = |i: usize, input: usize, k: usize| {
        let w = attrs.window(i, k as u64);
        window_output(input as u64, &w, geom.auto_pad, false).map(|(o, pb, _)| {
            (
                o as usize,
                pb as usize,
                w.stride as usize,
                w.dilation as usize,
            )
        })
    };
    let (oh, ph, sh, dh) = if nsp == 1 {
        (1, 0, 1, 1)
    } else {
        axis(0, ih, kh)?
    };
    let (ow, pw, sw, dw) = axis(nsp - 1, iw, kw)?;
    let cg = c / geom.group;
    let k = cg * kh * kw;
    if c % geom.group != 0 || grams.len() != geom.group || grams.iter().any(|g| g.k != k) {
        return Err(format!(
            "{c} input channels do not fit {} groups of {k} columns",
            geom.group
        ));
    }
    let rows = n * oh * ow;
    let (p, pt, xtx) = scratch;
    for (gi, gram) in grams.iter_mut().enumerate() {
        p.clear();
        p.resize(rows * k, 0.0);
        for b in 0..n {
            for y in 0..oh {
                for xo in 0..ow {
                    let r = (b * oh + y) * ow + xo;
                    let prow = &mut p[r * k..(r + 1) * k];
                    for ci in 0..cg {
                        let plane = (b * c + gi * cg + ci) * ih * iw;
                        for ky in 0..kh {
                            let yy = (y * sh + ky * dh) as isize - ph as isize;
                            if yy < 0 || yy as usize >= ih {
                                continue;
                            }
                            for kx in 0..kw {
                                let xx = (xo * sw + kx * dw) as isize - pw as isize;
                                if xx < 0 || xx as usize >= iw {
                                    continue;
                                }
                                prow[(ci * kh + ky) * kw + kx] =
                                    data[plane + yy as usize * iw + xx as usize];
                            }
                        }
                    }
                }
            }
        }
        pt.clear();
        pt.resize(k * rows, 0.0);
        for (r, row) in p.chunks_exact(k).enumerate() {
            for (col, &v) in row.iter().enumerate() {
                pt[col * rows + r] = v;
            }
        }
        xtx.clear();
        xtx.resize(k * k, 0.0);
        carve_runtime::interp::util::sgemm(k, rows, k, pt, rows, p, k, xtx, k, false);
        gram.add_gram(xtx, rows as u64);
    }
    Ok(())
}

/// Per conv layer of `convs` (with its geometry), the Gram matrices of its input patches per channel
/// group over `data`.
fn conv_grams(
    compiler: &Compiler,
    model: &Model,
    convs: &[(&Layer, ConvGeom)],
    data: &Dataset,
    progress: &mut dyn Progress,
) -> Result<LayerGrams, CompressError> {
    let names: Vec<String> = convs
        .iter()
        .map(|(l, _)| l.data.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let observed = super::calibrate::observing(model, &names)?;
    let compiled = compile(
        compiler,
        &observed,
        "the model with SparseGPT conv observers",
    )?;
    let mut grams: LayerGrams = convs
        .iter()
        .map(|(l, geom)| {
            let k = (l.weight_dims[1..].iter().product::<u64>()) as usize;
            (l.node.clone(), vec![Gram::new(k); geom.group])
        })
        .collect();
    let mut scratch = (Vec::new(), Vec::new(), Vec::new());
    for_each_output(
        &compiled,
        data,
        "calibration: conv input statistics for SparseGPT",
        progress,
        |_, outs| {
            for (l, geom) in convs {
                let x = outs
                    .iter()
                    .find(|(n, _)| n == &l.data)
                    .and_then(|(_, v)| v.as_tensor())
                    .ok_or_else(|| CompressError::Metric(format!("no tensor '{}'", l.data)))?;
                if let Some(gs) = grams.get_mut(&l.node) {
                    add_conv_sample(x, geom, gs, &mut scratch).map_err(|msg| {
                        CompressError::Run {
                            what: format!("SparseGPT statistics of '{}'", l.node),
                            msg,
                        }
                    })?;
                }
            }
            Ok(())
        },
    )?;
    Ok(grams)
}

/// The Gram matrices SparseGPT needs for `layers`, over `calib`; layers without them (and why) in
/// the second map.
fn layer_grams(
    compiler: &Compiler,
    model: &Model,
    layers: &[Layer],
    calib: &Dataset,
    progress: &mut dyn Progress,
) -> Result<(LayerGrams, BTreeMap<String, String>), CompressError> {
    let mut dense: Vec<(String, usize)> = Vec::new();
    let mut convs: Vec<(&Layer, ConvGeom)> = Vec::new();
    let mut missing = BTreeMap::new();
    for l in layers {
        match l.op {
            "conv" => match conv_geom(model, l) {
                Ok(geom) => convs.push((l, geom)),
                Err(why) => {
                    missing.insert(l.node.clone(), why);
                }
            },
            _ => {
                // MatMul/Gemm: the columns are the weight's non-output axis, the data's last axis.
                let cols = l.weight_dims[1 - l.weight_axis.min(1)] as usize;
                dense.push((l.data.clone(), cols));
            }
        }
    }
    dense.sort();
    dense.dedup();
    let mut out = LayerGrams::new();
    if !dense.is_empty() {
        let by_value = super::calibrate::grams(compiler, model, &dense, calib, progress)?;
        for l in layers.iter().filter(|l| l.op != "conv") {
            if let Some(g) = by_value.get(&l.data) {
                out.insert(l.node.clone(), vec![g.clone()]);
            }
        }
    }
    if !convs.is_empty() {
        out.extend(conv_grams(compiler, model, &convs, calib, progress)?);
    }
    Ok((out, missing))
}

/// Every layer of `layers` sparsified with `method` (SparseGPT falls back to magnitude for a layer
/// without statistics), and the layers left dense with the reason.
fn decide(
    model: &Model,
    layers: &[Layer],
    ratio: f64,
    method: Method,
    grams: &LayerGrams,
) -> (Vec<SparseLayer>, BTreeMap<String, String>) {
    let mut out = Vec::new();
    let mut reasons = BTreeMap::new();
    for l in layers {
        let gr = grams.get(&l.node).map(Vec::as_slice);
        let m = if gr.is_some() {
            method
        } else {
            Method::Magnitude
        };
        match sparsify_layer(&model.graph, l, ratio, m, gr) {
            Ok(s) => out.push(s),
            Err(e) => {
                reasons.insert(l.node.clone(), e.to_string());
            }
        }
    }
    (out, reasons)
}

/// One method's decisions, measured with every layer sparse.
struct Candidate {
    method: Method,
    decided: Vec<SparseLayer>,
    /// Layers it could not sparsify, with the reason.
    reasons: BTreeMap<String, String>,
    score: Score,
    /// Mean relative output error against the float model.
    error: f64,
}

/// Encodes `layers` into `proto` and imports the result.
fn build(proto: &ModelProto, layers: &[&SparseLayer]) -> Result<(Vec<u8>, Model), CompressError> {
    let owned: Vec<SparseLayer> = layers.iter().map(|s| (*s).clone()).collect();
    let bytes = apply(proto, &owned)?.encode_to_vec();
    let m = import(&bytes, "the sparse model")?;
    Ok((bytes, m))
}

/// Makes `proto` (imported as `model`) sparse: zeros `sp.ratio` of every MatMul/Gemm/Conv layer's
/// weights per output channel (magnitude, or SparseGPT on `calib`), keeps the most sensitive layers
/// dense until the metric's drop on `eval` is within the budget, and reports per layer and in total.
pub fn compress_sparsity(
    proto: &ModelProto,
    model: &Model,
    calib: Option<&Dataset>,
    eval: &Dataset,
    sp: SparsityOptions,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Compressed, CompressError> {
    if !(0.0..1.0).contains(&sp.ratio) {
        return Err(CompressError::Data(format!(
            "the sparsity ratio must be in [0, 1), got {}",
            sp.ratio
        )));
    }
    if eval.is_empty() {
        return Err(CompressError::Data(
            "evaluation data needs at least one sample".into(),
        ));
    }
    let calib = calib.filter(|c| !c.is_empty());
    if sp.method == Some(Method::SparseGpt) && calib.is_none() {
        return Err(CompressError::Data(
            "--sparsity-method sparsegpt needs calibration data (--calib) for the layers' input \
             statistics"
                .into(),
        ));
    }
    let compiler = compiler_for(opts);
    let pg = proto
        .graph
        .as_ref()
        .ok_or_else(|| CompressError::Export("the model has no graph".into()))?;
    let mut dense_reason: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_weights: BTreeMap<String, String> = BTreeMap::new();
    let all_layers = find_layers(&model.graph);
    let mut layers = Vec::new();
    for l in &all_layers {
        if !rewritable(pg, &l.weight) {
            dense_reason.insert(
                l.node.clone(),
                format!("weight '{}' is not an ONNX initializer", l.weight),
            );
        } else if let Some(first) = seen_weights.get(&l.weight) {
            dense_reason.insert(
                l.node.clone(),
                format!("shares its weight with '{first}' (sparsified there)"),
            );
        } else {
            seen_weights.insert(l.weight.clone(), l.node.clone());
            layers.push(l.clone());
        }
    }
    if layers.is_empty() {
        return Err(CompressError::NoLayers);
    }
    let (grams, no_stats) = match (calib, sp.method) {
        (Some(c), None | Some(Method::SparseGpt)) => {
            layer_grams(&compiler, model, &layers, c, progress)?
        }
        _ => (LayerGrams::new(), BTreeMap::new()),
    };
    let base = Baseline::measure(&compiler, model, eval, opts, progress)?;

    // The candidate methods, each measured with every layer sparse.
    let methods: Vec<Method> = match sp.method {
        Some(m) => vec![m],
        None if grams.is_empty() => vec![Method::Magnitude],
        None => vec![Method::Magnitude, Method::SparseGpt],
    };
    let mut candidates: Vec<Candidate> = Vec::new();
    for &m in &methods {
        let (decided, reasons) = decide(model, &layers, sp.ratio, m, &grams);
        let (score, err) = if methods.len() > 1 {
            let refs: Vec<&SparseLayer> = decided.iter().collect();
            let (_, built) = build(proto, &refs)?;
            let what = format!("evaluation: every layer sparse by {m}");
            let (s, outs) =
                base.evaluate(&compiler, &built, eval, &opts.metric.kind, &what, progress)?;
            let e = output_error(&outs, &base.reference);
            progress.note(&format!(
                "{m}: every layer at {}: {} {:.4} (float {:.4}), output error {e:.5}",
                sp.ratio, opts.metric, s.value, base.score.value
            ));
            (s, e)
        } else {
            (base.score, 0.0)
        };
        candidates.push(Candidate {
            method: m,
            decided,
            reasons,
            score,
            error: err,
        });
    }
    // Higher score first, then lower output error, then SparseGPT.
    let best = (0..candidates.len())
        .max_by(|&a, &b| {
            let (ca, cb) = (&candidates[a], &candidates[b]);
            ca.score
                .value
                .total_cmp(&cb.score.value)
                .then(cb.error.total_cmp(&ca.error))
                .then(ca.method.cmp(&cb.method))
        })
        .unwrap_or(0);
    let method_scores: Vec<MethodScore> = if candidates.len() > 1 {
        candidates
            .iter()
            .map(|c| MethodScore {
                method: c.method.to_string(),
                score: c.score.value,
                output_error: c.error,
            })
            .collect()
    } else {
        Vec::new()
    };
    let Candidate {
        method,
        decided,
        reasons,
        ..
    } = candidates.swap_remove(best);
    dense_reason.extend(reasons);
    if decided.is_empty() {
        return Err(CompressError::NoLayers);
    }

    let chosen = super::hold_budget(
        &compiler,
        &decided,
        |d| d.layer.node.as_str(),
        |chosen: &[&SparseLayer]| build(proto, chosen),
        eval,
        &base,
        opts,
        "sparse",
        progress,
    )?;
    let layer_reports: Vec<SparseLayerReport> = all_layers
        .iter()
        .map(|l| {
            let d = decided.iter().find(|d| d.layer.node == l.node);
            let kept = chosen.kept_float.contains(&l.node);
            let weights = l.weight_dims.iter().product::<u64>();
            let zeros_before = d.map(|d| d.zeros_before);
            let note = if kept {
                Some(format!(
                    "kept dense to hold the {} budget of {}",
                    opts.metric, base.max_drop
                ))
            } else if let Some(d) = d.filter(|d| d.method != method) {
                Some(format!(
                    "{} (no input statistics: {})",
                    d.method,
                    no_stats.get(&l.node).map_or("not observed", String::as_str)
                ))
            } else {
                dense_reason.get(&l.node).cloned()
            };
            SparseLayerReport {
                node: l.node.clone(),
                op: l.op.to_string(),
                sparse: d.is_some() && !kept,
                weights,
                zeros_before,
                zeros: d.filter(|_| !kept).map(|d| d.zeros).or(zeros_before),
                layer_error: d.and_then(|d| d.layer_error).filter(|_| !kept),
                sensitivity: chosen
                    .sensitivity
                    .iter()
                    .find(|(n, _)| n == &l.node)
                    .map(|(_, s)| *s),
                note,
            }
        })
        .collect();
    let summary = SparsitySummary {
        ratio: sp.ratio,
        method: method.to_string(),
        candidates: method_scores,
        layers: layer_reports,
    };
    let report = Report::build(report::Inputs {
        model_name: model.graph.name.clone(),
        scheme: Scheme::Sparse {
            calibrated: !grams.is_empty(),
        },
        metric: opts.metric.to_string(),
        max_drop: base.max_drop,
        calib_samples: if grams.is_empty() {
            0
        } else {
            calib.map_or(0, Dataset::len)
        },
        eval_samples: eval.len(),
        float_bytes: proto.encoded_len() as u64,
        compressed_bytes: chosen.bytes.len() as u64,
        float_score: base.score,
        compressed_score: chosen.score,
        final_error: output_error(&chosen.outs, &base.reference),
        layers: Vec::new(),
        pruning: None,
        sparsity: Some(summary),
    });
    let timing = timing_if_asked(
        &compiler,
        [model, &chosen.model],
        "sparse",
        eval,
        opts,
        progress,
    )?;
    Ok(Compressed {
        onnx: chosen.bytes,
        report,
        timing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Σ y²` of a direct (naive) grouped 2-D conv of `x: [n, c, h, w]` with `wt: [m, c/g, kh, kw]`,
    /// strides `s`, dilations `d` and padding `p` on every side, without bias.
    fn conv_energy(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        wt: &[f32],
        [m, kh, kw]: [usize; 3],
        g: usize,
        (s, d, p): ([usize; 2], [usize; 2], usize),
    ) -> f64 {
        let (cg, mg) = (c / g, m / g);
        let oh = (h + 2 * p - (kh - 1) * d[0] - 1) / s[0] + 1;
        let ow = (w + 2 * p - (kw - 1) * d[1] - 1) / s[1] + 1;
        let mut e = 0f64;
        for b in 0..n {
            for o in 0..m {
                let gi = o / mg;
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = 0f64;
                        for ci in 0..cg {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let yy = (y * s[0] + ky * d[0]) as isize - p as isize;
                                    let xx = (xo * s[1] + kx * d[1]) as isize - p as isize;
                                    if yy < 0 || xx < 0 || yy as usize >= h || xx as usize >= w {
                                        continue;
                                    }
                                    let xi = ((b * c + gi * cg + ci) * h + yy as usize) * w
                                        + xx as usize;
                                    let wi = ((o * cg + ci) * kh + ky) * kw + kx;
                                    acc += f64::from(x[xi]) * f64::from(wt[wi]);
                                }
                            }
                        }
                        e += acc * acc;
                    }
                }
            }
        }
        e
    }

    #[test]
    fn conv_patch_statistics_give_the_conv_output_energy() {
        let (n, c, h, w, m, kh, kw, g) = (2, 4, 7, 6, 6, 3, 2, 2);
        let seq = |seed: u32, len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
                .collect()
        };
        let x = seq(17, n * c * h * w);
        let wt = seq(5, m * (c / g) * kh * kw);
        let xt = carve_runtime::Tensor::new(vec![n, c, h, w], carve_runtime::Data::F32(x.clone()))
            .unwrap();
        let geom = ConvGeom {
            group: g,
            kernel: vec![kh, kw],
            strides: vec![2, 1],
            dilations: vec![1, 2],
            pads: vec![1, 1, 1, 1],
            auto_pad: carve_ir::ops::conv::AutoPad::NotSet,
        };
        let k = (c / g) * kh * kw;
        let mut grams = vec![Gram::new(k); g];
        let mut scratch = (Vec::new(), Vec::new(), Vec::new());
        add_conv_sample(&xt, &geom, &mut grams, &mut scratch).unwrap();
        // Σ over output channels of wᵀHw, each with its group's H, is the conv output's energy.
        let mut from_gram = 0f64;
        for o in 0..m {
            let hs = grams[o / (m / g)].symmetric();
            let row = &wt[o * k..(o + 1) * k];
            for i in 0..k {
                for j in 0..k {
                    from_gram += f64::from(row[i]) * hs[i * k + j] * f64::from(row[j]);
                }
            }
        }
        let direct = conv_energy(&x, [n, c, h, w], &wt, [m, kh, kw], g, ([2, 1], [1, 2], 1));
        assert!(
            (from_gram - direct).abs() <= 1e-4 * direct,
            "{from_gram} vs {direct}"
        );
    }
}
