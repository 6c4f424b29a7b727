//! `carve compress --prune RATIO`: channel pruning, measured. The driver's half: it asks
//! `carve_passes::prune` for the dependency groups and the channels to remove (norm criterion per
//! group), measures the removed channels' mean activations on the calibration data for bias
//! compensation (the repair), removes the channels physically, writes the smaller dense model back
//! as standard ONNX ([`export`]) and measures accuracy against the float model before and after the
//! repair, with params, weight bytes and FLOPs before and after ([`PruneSummary`]).

pub mod export;

use std::collections::{BTreeMap, BTreeSet};

use carve_frontend::Model;
use carve_frontend::proto::ModelProto;
use carve_ir::ops::{NodeTypes, Sizes};
use carve_ir::{Graph, Op, Type};
use carve_passes::prune::{
    Criterion, Groups, Role, Selection, Site, analyze, choose, compensate, compensation_inputs,
    remove_channels,
};
use prost::Message;

use super::metric::{output_error, score};
use super::report::{self, GroupReport, PruneSummary, Report, Scheme};
use super::run::{compile, f32_output, for_each_output};
use super::{
    Baseline, CompressError, Compressed, Dataset, Options, Progress, compiler_for, import,
    outputs_of, time_side_by_side,
};

/// Options of a pruning run.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Fraction of each prunable group's channels to remove.
    pub ratio: f64,
    /// How channels are scored.
    pub criterion: Criterion,
}

/// Parameters, weight bytes (constants of rank ≥ 1) and FLOPs (2 per multiply-accumulate plus other
/// arithmetic, symbolic dims counted as 1) of `g`.
pub fn size_of(g: &Graph) -> (u64, u64, f64) {
    let (mut params, mut bytes, mut flops) = (0u64, 0u64, 0.0);
    for n in &g.nodes {
        if let Op::Constant(c) = &n.op {
            if c.ty.rank().unwrap_or(0) >= 1 {
                params += c.num_elements();
                bytes += c
                    .ty
                    .dtype
                    .storage_bytes(c.num_elements())
                    .unwrap_or_default();
            }
            continue;
        }
        let inputs: Vec<Option<&Type>> = n.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect();
        let outputs: Vec<Type> = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
        let t = NodeTypes {
            inputs: &inputs,
            outputs: &outputs,
            sizes: Sizes::guess(1.0),
        };
        if let Some(w) = n.op.work(&t) {
            flops += 2.0 * w.macs + w.flops;
        }
    }
    (params, bytes, flops)
}

/// Per-channel means of the activation axes `sites` over `data` (mean over every other axis and
/// every sample).
fn channel_means(
    compiler: &crate::compiler::Compiler,
    model: &Model,
    sites: &BTreeSet<Site>,
    data: &Dataset,
    progress: &mut dyn Progress,
) -> Result<BTreeMap<Site, Vec<f64>>, CompressError> {
    let g = &model.graph;
    let names: Vec<String> = sites
        .iter()
        .map(|s| g.value(s.value).name.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let observed = super::calibrate::observing(model, &names)?;
    let compiled = compile(compiler, &observed, "the model with pruning observers")?;
    let mut sums: BTreeMap<Site, (Vec<f64>, u64)> = sites
        .iter()
        .map(|s| {
            let n = g
                .ty(s.value)
                .as_tensor()
                .and_then(|t| t.dims())
                .and_then(|d| d.get(s.axis))
                .and_then(|d| d.known())
                .unwrap_or(0);
            (*s, (vec![0.0; n as usize], 0))
        })
        .collect();
    for_each_output(
        &compiled,
        data,
        "calibration: channel means for bias compensation",
        progress,
        |_, outs| {
            for (s, (acc, count)) in sums.iter_mut() {
                let name = &g.value(s.value).name;
                let x = f32_output(outs, name)?;
                let dims: Vec<u64> = g
                    .ty(s.value)
                    .as_tensor()
                    .and_then(|t| t.dims())
                    .map(|d| d.iter().map(|d| d.known().unwrap_or(1)).collect())
                    .unwrap_or_default();
                let c = acc.len();
                let inner: usize = dims
                    .get(s.axis + 1..)
                    .map_or(1, |d| d.iter().product::<u64>() as usize);
                if c == 0 || x.len() % (c * inner.max(1)) != 0 {
                    return Err(CompressError::Run {
                        what: "channel means".into(),
                        msg: format!("'{name}' has {} elements, not a multiple of {c}", x.len()),
                    });
                }
                for (i, v) in x.iter().enumerate() {
                    acc[(i / inner.max(1)) % c] += f64::from(*v);
                }
                *count += (x.len() / c) as u64;
            }
            Ok(())
        },
    )?;
    Ok(sums
        .into_iter()
        .map(|(s, (acc, n))| (s, acc.into_iter().map(|a| a / n.max(1) as f64).collect()))
        .collect())
}

/// One group's line in the report.
fn group_report(g: &Graph, groups: &Groups, sel: &Selection, gi: usize) -> GroupReport {
    let grp = &groups.groups[gi];
    let producers: Vec<String> = grp
        .with_role(Role::Producer)
        .map(|c| {
            let n = &g.nodes[c.node.index()];
            if n.name.is_empty() {
                g.value(c.site.value).name.clone()
            } else {
                n.name.clone()
            }
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let removed = sel.get(&gi).map_or(0, BTreeSet::len);
    GroupReport {
        group: gi,
        producers: producers.join(", "),
        channels: grp.channels.len(),
        prunable: grp.prunable().count(),
        removed,
    }
}

/// Encodes `pruned` as ONNX on top of `proto` and imports it back (what is evaluated is what is
/// written).
fn build(
    proto: &ModelProto,
    model: &Model,
    pruned: &Graph,
) -> Result<(Vec<u8>, Model), CompressError> {
    let bytes = export::apply(proto, &model.graph, pruned)?.encode_to_vec();
    let m = import(&bytes, "the pruned model")?;
    Ok((bytes, m))
}

/// Prunes `proto` (imported as `model`): removes the lowest-scoring `prune.ratio` of every prunable
/// channel group, repairs by bias compensation when `calib` is given, and reports size, FLOPs and
/// accuracy on `eval` before and after the repair.
pub fn compress_prune(
    proto: &ModelProto,
    model: &Model,
    calib: Option<&Dataset>,
    eval: &Dataset,
    prune: PruneOptions,
    opts: &Options,
    progress: &mut dyn Progress,
) -> Result<Compressed, CompressError> {
    if eval.is_empty() {
        return Err(CompressError::Data(
            "evaluation data needs at least one sample".into(),
        ));
    }
    let compiler = compiler_for(opts);
    let g = &model.graph;
    let groups = analyze(g);
    let sel = choose(g, &groups, prune.ratio, prune.criterion);
    if sel.is_empty() {
        return Err(CompressError::Export(format!(
            "nothing to prune at ratio {}: the model has {} channel groups, none with removable \
             channels at that ratio",
            prune.ratio,
            groups.groups.len()
        )));
    }
    let prune_err = |e: carve_passes::prune::PruneError| CompressError::Run {
        what: "channel removal".into(),
        msg: e.to_string(),
    };
    let base = Baseline::measure(&compiler, model, eval, opts, progress)?;

    let raw = remove_channels(g, &groups, &sel).map_err(prune_err)?;
    let (raw_bytes, raw_model) = build(proto, model, &raw)?;
    let raw_outs = outputs_of(
        &compiler,
        &raw_model,
        eval,
        &base.output,
        "evaluation: pruned model",
        progress,
    )?;
    let raw_score = score(
        &opts.metric.kind,
        &raw_outs,
        &base.reference,
        eval.labels.as_deref(),
    )?;

    let calib = calib.filter(|c| !c.is_empty());
    let (bytes, pruned_model, outs, s, repair) = match calib {
        Some(c) => {
            let sites = compensation_inputs(&groups, &sel);
            let means = channel_means(&compiler, model, &sites, c, progress)?;
            let (compensated, comp) = compensate(g, &groups, &sel, &means).map_err(prune_err)?;
            let repaired = remove_channels(&compensated, &groups, &sel).map_err(prune_err)?;
            let (bytes, m) = build(proto, model, &repaired)?;
            let outs = outputs_of(
                &compiler,
                &m,
                eval,
                &base.output,
                "evaluation: pruned and repaired model",
                progress,
            )?;
            let s = score(
                &opts.metric.kind,
                &outs,
                &base.reference,
                eval.labels.as_deref(),
            )?;
            (bytes, m, outs, s, Some(comp))
        }
        None => (raw_bytes, raw_model, raw_outs.clone(), raw_score, None),
    };

    let (params_before, bytes_before, flops_before) = size_of(g);
    let (params_after, bytes_after, flops_after) = size_of(&pruned_model.graph);
    let summary = PruneSummary {
        ratio: prune.ratio,
        criterion: prune.criterion.to_string(),
        groups: (0..groups.groups.len())
            .map(|gi| group_report(g, &groups, &sel, gi))
            .collect(),
        params: (params_before, params_after),
        weight_bytes: (bytes_before, bytes_after),
        flops: (flops_before, flops_after),
        score_before_repair: raw_score,
        error_before_repair: output_error(&raw_outs, &base.reference),
        compensated: repair.as_ref().map(|r| r.compensated.clone()),
        not_compensated: repair.map(|r| r.skipped).unwrap_or_default(),
    };
    let report = Report::build(report::Inputs {
        model_name: g.name.clone(),
        scheme: Scheme::Prune {
            repaired: calib.is_some(),
        },
        metric: opts.metric.to_string(),
        max_drop: base.max_drop,
        calib_samples: calib.map_or(0, Dataset::len),
        eval_samples: eval.len(),
        float_bytes: proto.encoded_len() as u64,
        compressed_bytes: bytes.len() as u64,
        float_score: base.score,
        compressed_score: s,
        final_error: output_error(&outs, &base.reference),
        layers: Vec::new(),
        pruning: Some(summary),
    });
    let timing = if opts.timing_runs > 0 {
        Some(time_side_by_side(
            &compiler,
            [model, &pruned_model],
            "pruned",
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
