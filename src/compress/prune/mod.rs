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

use super::metric::output_error;
use super::report::{self, GroupReport, PruneSummary, Report, Scheme};
use super::run::{compile, f32_output, for_each_output};
use super::{
    Baseline, CompressError, Compressed, Dataset, Options, Progress, compiler_for, import,
    timing_if_asked,
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
                bytes +=
                    c.ty.dtype
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
        kept_for_budget: false,
        sensitivity: None,
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

/// One group's pruning decision: the unit the accuracy budget keeps or drops.
#[derive(Debug, Clone)]
struct GroupCut {
    /// `group N (producer nodes)`, for sensitivity and messages.
    name: String,
    /// Group index.
    group: usize,
    /// Channels to remove.
    channels: BTreeSet<usize>,
}

fn selection_of(cuts: &[&GroupCut]) -> Selection {
    cuts.iter().map(|c| (c.group, c.channels.clone())).collect()
}

/// `g` with its input shapes bound to the first sample of `data` and shapes re-inferred (so that
/// FLOPs count spatial dims the model leaves symbolic); `g` itself when that fails.
fn bound(g: &Graph, data: &Dataset) -> Graph {
    let mut b = g.clone();
    let Some(sample) = data.samples.first() else {
        return b;
    };
    for &v in &g.inputs {
        let name = &g.value(v).name;
        if let (Some((_, t)), Some(tt)) =
            (sample.iter().find(|(n, _)| n == name), g.ty(v).as_tensor())
        {
            let dims: Vec<u64> = t.shape.iter().map(|&d| d as u64).collect();
            b.values[v.index()].ty = Type::Tensor(carve_ir::TensorType {
                shape: Some(carve_ir::Shape::known(&dims)),
                ..tt.clone()
            });
        }
    }
    match b.reinfer() {
        Ok(()) => b,
        Err(_) => g.clone(),
    }
}

/// Prunes `proto` (imported as `model`): removes the lowest-scoring `prune.ratio` of every prunable
/// channel group, repairs by bias compensation when `calib` is given, keeps the most sensitive groups
/// unpruned until the metric's drop on `eval` is within the budget (as quantization keeps layers
/// float), and reports size, FLOPs and accuracy before and after the repair.
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
    let cuts: Vec<GroupCut> = sel
        .iter()
        .map(|(&gi, ch)| GroupCut {
            name: format!(
                "group {gi} ({})",
                group_report(g, &groups, &sel, gi).producers
            ),
            group: gi,
            channels: ch.clone(),
        })
        .collect();
    let base = Baseline::measure(&compiler, model, eval, opts, progress)?;
    let calib = calib.filter(|c| !c.is_empty());
    let means = match calib {
        Some(c) => Some(channel_means(
            &compiler,
            model,
            &compensation_inputs(&groups, &sel),
            c,
            progress,
        )?),
        None => None,
    };
    let prune_with = |chosen: &Selection, repair: bool| {
        let pruned = remove_channels(g, &groups, chosen).map_err(prune_err)?;
        let (pruned, comp) = match (&means, repair) {
            (Some(m), true) => {
                let (c, r) = compensate(g, &pruned, &groups, chosen, m).map_err(prune_err)?;
                (c, Some(r))
            }
            _ => (pruned, None),
        };
        let (bytes, m) = build(proto, model, &pruned)?;
        Ok::<_, CompressError>((bytes, m, comp))
    };
    let chosen = super::hold_budget(
        &compiler,
        &cuts,
        |c| c.name.as_str(),
        |chosen: &[&GroupCut]| {
            let (bytes, m, _) = prune_with(&selection_of(chosen), true)?;
            Ok((bytes, m))
        },
        eval,
        &base,
        opts,
        "pruned",
        progress,
    )?;
    let kept: Vec<&GroupCut> = cuts
        .iter()
        .filter(|c| !chosen.kept_float.contains(&c.name))
        .collect();
    let final_sel = selection_of(&kept);

    // The same cut without the repair, for the report.
    let (_, raw_model, repair) = prune_with(&final_sel, false)?;
    let (raw_score, raw_outs) = base.evaluate(
        &compiler,
        &raw_model,
        eval,
        &opts.metric.kind,
        "evaluation: pruned model before repair",
        progress,
    )?;
    let repair = match &means {
        Some(m) if !final_sel.is_empty() => {
            let pruned = remove_channels(g, &groups, &final_sel).map_err(prune_err)?;
            Some(
                compensate(g, &pruned, &groups, &final_sel, m)
                    .map_err(prune_err)?
                    .1,
            )
        }
        Some(_) => Some(Default::default()),
        None => repair,
    };

    let (params_before, bytes_before, flops_before) = size_of(&bound(g, eval));
    let (params_after, bytes_after, flops_after) = size_of(&bound(&chosen.model.graph, eval));
    let summary = PruneSummary {
        ratio: prune.ratio,
        criterion: prune.criterion.to_string(),
        groups: (0..groups.groups.len())
            .map(|gi| {
                let mut r = group_report(g, &groups, &final_sel, gi);
                r.kept_for_budget = cuts
                    .iter()
                    .any(|c| c.group == gi && chosen.kept_float.contains(&c.name));
                r.sensitivity = chosen
                    .sensitivity
                    .iter()
                    .find(|(n, _)| cuts.iter().any(|c| c.group == gi && &c.name == n))
                    .map(|(_, s)| *s);
                r
            })
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
        compressed_bytes: chosen.bytes.len() as u64,
        float_score: base.score,
        compressed_score: chosen.score,
        final_error: output_error(&chosen.outs, &base.reference),
        layers: Vec::new(),
        pruning: Some(summary),
        sparsity: None,
    });
    let timing = timing_if_asked(
        &compiler,
        [model, &chosen.model],
        "pruned",
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
