//! The pruning policy: score each channel of a group by the norm of its producer weights (L1 or L2,
//! each producer normalized by its mean channel norm so that producers of different scale weigh
//! alike), remove the lowest-scoring `ratio` of every prunable group (keeping the kept count a
//! multiple of 8 or 4 when the group's size is, see [`kept_count`]), and repair by bias
//! compensation ([`compensate`]) from the removed channels' mean activations.
//!
//! Statistics in, decisions out: the policy never runs a model; the driver measures the means.

use std::collections::{BTreeMap, BTreeSet};

use carve_ir::ops::elementwise::ElementwiseOp;
use carve_ir::{Graph, Op};

use super::groups::{Group, Groups, Role, Site};
use super::remove::{PruneError, Selection, set_constant};

/// How channels are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Criterion {
    /// Sum of absolute weights.
    #[default]
    L1,
    /// Euclidean norm of the weights.
    L2,
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "l1" | "L1" => Ok(Criterion::L1),
            "l2" | "L2" => Ok(Criterion::L2),
            _ => Err(format!(
                "unknown pruning criterion '{s}' (expected l1 or l2)"
            )),
        }
    }
}

impl std::fmt::Display for Criterion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Criterion::L1 => "l1",
            Criterion::L2 => "l2",
        })
    }
}

/// Per index of `axis` of a constant of `dims`: Σ|x| (L1) or Σx² (L2) over the rest.
fn axis_sums(values: &[f64], dims: &[u64], axis: usize, crit: Criterion) -> Vec<f64> {
    let d = dims[axis] as usize;
    let inner: usize = dims[axis + 1..].iter().product::<u64>() as usize;
    let mut s = vec![0.0; d];
    for (i, x) in values.iter().enumerate() {
        let k = (i / inner.max(1)) % d.max(1);
        s[k] += match crit {
            Criterion::L1 => x.abs(),
            Criterion::L2 => x * x,
        };
    }
    s
}

/// Each channel's score in `group` (higher: more important); blocked channels score infinity.
/// Producers score the channel; a group without producers is scored by its consumers.
pub fn scores(g: &Graph, group: &Group, crit: Criterion) -> Vec<f64> {
    let mut total = vec![0.0; group.channels.len()];
    let role = if group.with_role(Role::Producer).next().is_some() {
        Role::Producer
    } else {
        Role::Consumer
    };
    let mut seen = BTreeSet::new();
    for cs in group.with_role(role) {
        if !seen.insert(cs.site) {
            continue;
        }
        let Some(c) = g.constant_of(cs.site.value) else {
            continue;
        };
        let (Some(values), Some(dims)) = (c.to_f64s(), c.ty.dims()) else {
            continue;
        };
        let dims: Vec<u64> = dims.iter().map(|d| d.known().unwrap_or(0)).collect();
        let sums = axis_sums(&values, &dims, cs.site.axis, crit);
        let per: Vec<f64> = group
            .channels
            .iter()
            .map(|ch| {
                let s: f64 = ch.indices_on(cs.site).map(|i| sums[i as usize]).sum();
                match crit {
                    Criterion::L1 => s,
                    Criterion::L2 => s.sqrt(),
                }
            })
            .collect();
        let mean = per.iter().sum::<f64>() / per.len().max(1) as f64;
        if mean > 0.0 {
            for (t, p) in total.iter_mut().zip(&per) {
                *t += p / mean;
            }
        }
    }
    for (t, ch) in total.iter_mut().zip(&group.channels) {
        if ch.blocked.is_some() {
            *t = f64::INFINITY;
        }
    }
    total
}

/// How many of `n` prunable channels to keep at `ratio` removed: `n − ⌊ratio·n⌋`, rounded up to a
/// multiple of 8 when `n` is a multiple of 8 (at least 32), else of 4 when `n` is (at least 16), and
/// at least 1 (small groups are not rounded: rounding would forbid any removal). Carve's f32 kernels vectorize over output channels 4 (SSE/NEON) or 8 (AVX2) lanes
/// wide; a count that stays a multiple of the lane count leaves no scalar tail.
pub fn kept_count(n: usize, ratio: f64) -> usize {
    let remove = ((ratio.clamp(0.0, 1.0) * n as f64).floor() as usize).min(n);
    let keep = n - remove;
    let m = if n.is_multiple_of(8) && n >= 32 {
        8
    } else if n.is_multiple_of(4) && n >= 16 {
        4
    } else {
        1
    };
    keep.div_ceil(m).saturating_mul(m).clamp(1, n.max(1))
}

/// The lowest-scoring channels of every group with at least two prunable channels: within each
/// group, all but [`kept_count`] of its prunable channels, ties broken by channel index.
pub fn choose(g: &Graph, groups: &Groups, ratio: f64, crit: Criterion) -> Selection {
    let mut sel = Selection::new();
    for (gi, group) in groups.groups.iter().enumerate() {
        let prunable: Vec<usize> = group.prunable().map(|(i, _)| i).collect();
        let n = prunable.len();
        if n < 2 {
            continue;
        }
        let keep = kept_count(n, ratio);
        if keep >= n {
            continue;
        }
        let s = scores(g, group, crit);
        let mut order = prunable;
        order.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
        sel.insert(gi, order[..n - keep].iter().copied().collect());
    }
    sel
}

/// The activation axes whose per-channel means [`compensate`] needs for `sel`.
pub fn compensation_inputs(groups: &Groups, sel: &Selection) -> BTreeSet<Site> {
    sel.keys()
        .flat_map(|&gi| groups.groups[gi].with_role(Role::Consumer))
        .filter_map(|cs| cs.data)
        .collect()
}

/// What bias compensation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Compensation {
    /// Consumer nodes whose bias absorbed removed channels.
    pub compensated: Vec<String>,
    /// Consumer nodes that could not (with the reason).
    pub skipped: Vec<(String, String)>,
}

/// Where the bias of node `n` lives (node index, input index): its own constant bias operand
/// (`bias`, from its [`carve_ir::ops::QuantSite`]), or else the constant other operand of an `add`
/// that is the only reader of its output (`matmul` followed by a bias `add`).
fn bias_of(g: &Graph, n: usize, bias: Option<usize>) -> Option<(usize, usize)> {
    let node = &g.nodes[n];
    if let Some(b) = bias {
        return match node.inputs.get(b).copied().flatten() {
            Some(v) if g.constant_of(v).is_some() => Some((n, b)),
            _ => None,
        };
    }
    let y = *node.outputs.first()?;
    let mut readers = g
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.inputs.contains(&Some(y)));
    let (ai, add) = readers.next()?;
    if readers.next().is_some() || g.outputs.contains(&y) {
        return None;
    }
    let Op::Elementwise(ElementwiseOp::Add(_)) = add.op else {
        return None;
    };
    let other = add.inputs.iter().position(|v| *v != Some(y))?;
    let v = add.inputs[other]?;
    g.constant_of(v).is_some().then_some((ai, other))
}

/// Where a consumer's bias goes in the pruned graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum BiasAt {
    /// An existing constant: (node index, input index).
    Existing(usize, usize),
    /// The op's empty bias slot: (node index, input index); a zero bias is created.
    Create(usize, usize),
}

/// Bias compensation, on `pruned` (= [`super::remove_channels`] of `g` with `sel`): for every
/// consumer of a removed channel, adds the channel's mean activation (`means`, per activation axis and
/// index, from calibration) times the consumer's weights that read it (in `g`) to the consumer's bias
/// ([`bias_of`]; an op with an empty bias slot, a conv without bias, gets a new zero bias constant
/// first), so the consumer's output keeps its mean. Output channels the selection also removed are
/// skipped. Returns the updated pruned graph and what was done.
pub fn compensate(
    g: &Graph,
    pruned: &Graph,
    groups: &Groups,
    sel: &Selection,
    means: &BTreeMap<Site, Vec<f64>>,
) -> Result<(Graph, Compensation), PruneError> {
    let rm = super::remove::removed_indices(groups, sel)?;
    let mut out = pruned.clone();
    let mut report = Compensation::default();
    // Per bias: the delta over the consumer's original output channels, and which are removed.
    let mut deltas: BTreeMap<BiasAt, (Vec<f64>, BTreeSet<u64>, String)> = BTreeMap::new();
    let mut done: BTreeSet<(carve_ir::ValueId, usize)> = BTreeSet::new();
    for &gi in sel.keys() {
        for cs in groups.groups[gi].with_role(Role::Consumer) {
            let node = &g.nodes[cs.node.index()];
            let Some(idx) = rm.get(&cs.site) else {
                continue;
            };
            if !done.insert((cs.site.value, cs.node.0 as usize)) {
                continue;
            }
            let skip = |why: &str| (node.name.clone(), why.to_string());
            let Some(qs) = node.op.quant_site().filter(|q| q.weight == cs.input) else {
                report
                    .skipped
                    .push(skip("not a weight with a known output axis"));
                continue;
            };
            let at = match (bias_of(pruned, cs.node.index(), qs.bias), qs.bias) {
                (Some((n, i)), _) => BiasAt::Existing(n, i),
                (None, Some(b)) if node.inputs.get(b).copied().flatten().is_none() => {
                    BiasAt::Create(cs.node.index(), b)
                }
                _ => {
                    report
                        .skipped
                        .push(skip("no constant bias operand or bias add"));
                    continue;
                }
            };
            let (Some(data), Some(w)) = (cs.data, g.constant_of(cs.site.value)) else {
                report.skipped.push(skip("no activation statistics"));
                continue;
            };
            let Some(mean) = means.get(&data) else {
                report.skipped.push(skip("no activation statistics"));
                continue;
            };
            let (Some(values), Some(dims)) = (w.to_f64s(), w.ty.dims()) else {
                report.skipped.push(skip("weight not readable"));
                continue;
            };
            let dims: Vec<u64> = dims.iter().map(|d| d.known().unwrap_or(0)).collect();
            let (oa, ia) = (qs.weight_axis, cs.site.axis);
            if oa == ia || oa >= dims.len() {
                report.skipped.push(skip("weight axes do not fit"));
                continue;
            }
            let out_removed = rm
                .get(&Site {
                    value: cs.site.value,
                    axis: oa,
                })
                .cloned()
                .unwrap_or_default();
            let name = g.value(cs.site.value).name.clone();
            let (delta, _, _) = deltas
                .entry(at)
                .or_insert_with(|| (vec![0.0; dims[oa] as usize], out_removed, name));
            let stride = |a: usize| dims[a + 1..].iter().product::<u64>() as usize;
            let (so, si) = (stride(oa), stride(ia));
            for (e, x) in values.iter().enumerate() {
                let i = (e / si) % dims[ia] as usize;
                if idx.contains(&(i as u64)) {
                    let o = (e / so) % dims[oa] as usize;
                    delta[o] += x * mean.get(i).copied().unwrap_or(0.0);
                }
            }
            report.compensated.push(node.name.clone());
        }
    }
    let mut created: Vec<carve_ir::Node> = Vec::new();
    for (at, (delta, removed, wname)) in deltas {
        let kept: Vec<f64> = delta
            .iter()
            .enumerate()
            .filter(|(o, _)| !removed.contains(&(*o as u64)))
            .map(|(_, d)| *d)
            .collect();
        match at {
            BiasAt::Existing(n, bi) => {
                let Some(b) = out.nodes[n].inputs.get(bi).copied().flatten() else {
                    continue;
                };
                let Some(c) = out.constant_of(b) else {
                    continue;
                };
                let Some(mut vals) = c
                    .to_f64s()
                    .filter(|v| v.len() == kept.len() && c.ty.dtype == carve_ir::DType::F32)
                else {
                    report.skipped.push((
                        out.nodes[n].name.clone(),
                        "bias length or type differs".into(),
                    ));
                    continue;
                };
                for (v, d) in vals.iter_mut().zip(&kept) {
                    *v += d;
                }
                let f: Vec<f32> = vals.iter().map(|&v| v as f32).collect();
                let dims: Vec<u64> =
                    c.ty.dims()
                        .map(|d| d.iter().map(|d| d.known().unwrap_or(0)).collect())
                        .unwrap_or_default();
                set_constant(&mut out, b, carve_ir::Constant::from_f32s(&dims, &f));
            }
            BiasAt::Create(n, bi) => {
                let f: Vec<f32> = kept.iter().map(|&v| v as f32).collect();
                let c = carve_ir::Constant::from_f32s(&[f.len() as u64], &f);
                let name = format!("{wname}_pruning_bias");
                let v = out.add_value(name.clone(), carve_ir::Type::Tensor(c.ty.clone()));
                let inputs = &mut out.nodes[n].inputs;
                if inputs.len() <= bi {
                    inputs.resize(bi + 1, None);
                }
                inputs[bi] = Some(v);
                created.push(carve_ir::Node {
                    name,
                    op: Op::Constant(c),
                    inputs: Vec::new(),
                    outputs: vec![v],
                });
            }
        }
    }
    if !created.is_empty() {
        // New constants go first, so the schedule order stays valid.
        created.append(&mut out.nodes);
        out.nodes = created;
        out.rebuild_producers();
    }
    report.compensated.dedup();
    carve_ir::verify::verify(&out).map_err(|e| PruneError::Shapes(e.to_string()))?;
    Ok((out, report))
}
