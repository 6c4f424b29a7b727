//! Physical removal of channels: every constant axis in a removed channel is sliced, every other
//! value shrinks by re-running shape inference, and the result is checked against the expected
//! extents (so a wrong channel map is an error, never a silently different model). Also
//! [`zero_channels`], which zeroes the consumer slices of channels instead: the same function as
//! removing them, at the original size (what the removal is tested against).
//!
//! Assumes: `groups` were computed on `g` (or on a graph with the same nodes and shapes).
//! Guarantees: the result verifies, has the same inputs and outputs with the same types, and every
//! value lost exactly the indices of the removed channels.

use std::collections::{BTreeMap, BTreeSet};

use carve_ir::{
    Buffer, ConstData, ConstFormat, Constant, Dim, Graph, Op, Shape, TensorType, Type, ValueId,
};

use super::groups::{Groups, Role, Site};

/// Channels to remove: per group index, channel indices within the group.
pub type Selection = BTreeMap<usize, BTreeSet<usize>>;

/// Why channels could not be removed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PruneError {
    /// The selection names a channel that does not exist.
    #[error("group {group} has no channel {channel}")]
    NoChannel {
        /// Group index.
        group: usize,
        /// Channel index.
        channel: usize,
    },
    /// The selection names a blocked channel.
    #[error("group {group}, channel {channel} cannot be removed: {why}")]
    Blocked {
        /// Group index.
        group: usize,
        /// Channel index.
        channel: usize,
        /// The block reason.
        why: String,
    },
    /// Every index of an axis would go.
    #[error("value '{value}' axis {axis}: the selection removes all {extent} of its channels")]
    Empty {
        /// The value's name.
        value: String,
        /// The axis.
        axis: usize,
        /// Its extent.
        extent: u64,
    },
    /// A constant could not be sliced.
    #[error("constant '{value}': {msg}")]
    Constant {
        /// The constant's name.
        value: String,
        /// The cause.
        msg: String,
    },
    /// Shape inference failed or disagreed with the expected extents.
    #[error("after removing channels: {0}")]
    Shapes(String),
}

/// The indices each site loses under `sel`.
pub fn removed_indices(
    groups: &Groups,
    sel: &Selection,
) -> Result<BTreeMap<Site, BTreeSet<u64>>, PruneError> {
    let mut rm: BTreeMap<Site, BTreeSet<u64>> = BTreeMap::new();
    for (&group, chans) in sel {
        for &channel in chans {
            let ch = groups
                .groups
                .get(group)
                .and_then(|g| g.channels.get(channel))
                .ok_or(PruneError::NoChannel { group, channel })?;
            if let Some(why) = &ch.blocked {
                return Err(PruneError::Blocked {
                    group,
                    channel,
                    why: why.clone(),
                });
            }
            for &(site, i) in &ch.members {
                rm.entry(site).or_default().insert(i);
            }
        }
    }
    Ok(rm)
}

/// Dims of a constant.
fn const_dims(c: &Constant) -> Vec<u64> {
    c.ty.dims()
        .map(|d| d.iter().map(|d| d.known().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// Bytes per element of a dense, unquantized, byte-aligned constant.
fn elem_bytes(c: &Constant) -> Result<usize, String> {
    if c.format != ConstFormat::Dense || c.ty.quant.is_some() {
        return Err(format!(
            "only dense unquantized constants are pruned, not {}",
            c.ty
        ));
    }
    let bits = c.ty.dtype.bits();
    if bits == 0 || !bits.is_multiple_of(8) {
        return Err(format!("element type {} is not byte-aligned", c.ty.dtype));
    }
    Ok(bits as usize / 8)
}

fn bytes_of(c: &Constant) -> Result<&[u8], String> {
    match &c.data {
        ConstData::Bytes(b) => Ok(b.as_bytes()),
        _ => Err("its content is not stored".into()),
    }
}

/// `c` without the indices `removed` on each listed axis.
pub fn slice_constant(c: &Constant, axes: &[(usize, &BTreeSet<u64>)]) -> Result<Constant, String> {
    let elem = elem_bytes(c)?;
    let mut dims = const_dims(c);
    let mut bytes = bytes_of(c)?.to_vec();
    for &(axis, removed) in axes {
        let d = *dims.get(axis).ok_or("axis out of range")?;
        let keep: Vec<u64> = (0..d).filter(|i| !removed.contains(i)).collect();
        let outer: u64 = dims[..axis].iter().product();
        let inner = dims[axis + 1..].iter().product::<u64>() as usize * elem;
        let mut out = Vec::with_capacity(outer as usize * keep.len() * inner);
        for o in 0..outer {
            for &k in &keep {
                let at = ((o * d + k) as usize) * inner;
                out.extend_from_slice(&bytes[at..at + inner]);
            }
        }
        bytes = out;
        dims[axis] = keep.len() as u64;
    }
    let ty = TensorType {
        dtype: c.ty.dtype,
        shape: Some(Shape::known(&dims)),
        quant: None,
    };
    Constant::dense(ty, Buffer::from_vec(bytes))
}

/// `c` with the indices `zeroed` on `axis` set to zero.
pub fn zero_constant(
    c: &Constant,
    axis: usize,
    zeroed: &BTreeSet<u64>,
) -> Result<Constant, String> {
    let elem = elem_bytes(c)?;
    let dims = const_dims(c);
    let mut bytes = bytes_of(c)?.to_vec();
    let d = *dims.get(axis).ok_or("axis out of range")?;
    let outer: u64 = dims[..axis].iter().product();
    let inner = dims[axis + 1..].iter().product::<u64>() as usize * elem;
    for o in 0..outer {
        for &k in zeroed.iter().filter(|&&k| k < d) {
            let at = ((o * d + k) as usize) * inner;
            bytes[at..at + inner].fill(0);
        }
    }
    Constant::dense(c.ty.clone(), Buffer::from_vec(bytes))
}

/// Replaces the constant defining `v` by `c` (and the value's type).
pub fn set_constant(g: &mut Graph, v: ValueId, c: Constant) {
    if let Some((n, _)) = g.values[v.index()].producer {
        g.values[v.index()].ty = Type::Tensor(c.ty.clone());
        g.nodes[n.index()].op = Op::Constant(c);
    }
}

/// `g` with the channels of `sel` physically removed (see the module doc).
pub fn remove_channels(g: &Graph, groups: &Groups, sel: &Selection) -> Result<Graph, PruneError> {
    let rm = removed_indices(groups, sel)?;
    let mut per_value: BTreeMap<ValueId, Vec<(usize, &BTreeSet<u64>)>> = BTreeMap::new();
    for (site, idx) in &rm {
        per_value
            .entry(site.value)
            .or_default()
            .push((site.axis, idx));
    }
    let mut out = g.clone();
    let mut expected: BTreeMap<ValueId, Vec<Dim>> = BTreeMap::new();
    for (&v, axes) in &per_value {
        let name = || g.value(v).name.clone();
        let Some(dims) = g.ty(v).as_tensor().and_then(|t| t.dims()) else {
            continue;
        };
        let mut want: Vec<Dim> = dims.to_vec();
        for &(axis, idx) in axes {
            let extent = want.get(axis).and_then(Dim::known).unwrap_or(0);
            if idx.len() as u64 >= extent {
                return Err(PruneError::Empty {
                    value: name(),
                    axis,
                    extent,
                });
            }
            want[axis] = Dim::Known(extent - idx.len() as u64);
        }
        expected.insert(v, want);
        if let Some(c) = g.constant_of(v) {
            let c = slice_constant(c, axes)
                .map_err(|msg| PruneError::Constant { value: name(), msg })?;
            set_constant(&mut out, v, c);
        }
    }
    // Operands that state an output shape (a reshape's target) get the new extents.
    for n in &g.nodes {
        let (Some(si), Some(&y)) = (n.op.shape_operand(), n.outputs.first()) else {
            continue;
        };
        let Some(want) = expected.get(&y) else {
            continue;
        };
        let bad = |msg: &str| PruneError::Shapes(format!("{} '{}': {msg}", n.op.name(), n.name));
        let Some(sv) = n.inputs.get(si).copied().flatten() else {
            continue;
        };
        let old = g
            .constant_of(sv)
            .and_then(Constant::to_i64s)
            .ok_or_else(|| bad("its target shape is not a constant"))?;
        let users = g
            .nodes
            .iter()
            .filter(|m| m.inputs.contains(&Some(sv)))
            .count();
        let od = g.ty(y).as_tensor().and_then(|t| t.dims()).unwrap_or(&[]);
        if users > 1 || old.len() != want.len() || od.len() != want.len() {
            return Err(bad(
                "its target shape is shared or does not match its output's rank",
            ));
        }
        let new: Vec<i64> = old
            .iter()
            .zip(want)
            .zip(od)
            .map(|((&o, w), d)| match w.known() {
                Some(w) if d.known() != Some(w) => w as i64,
                _ => o,
            })
            .collect();
        set_constant(&mut out, sv, Constant::from_i64s(&[new.len() as u64], &new));
    }
    // Attributes that restate an extent (a depthwise conv's group) follow the new input extents.
    let new_types: BTreeMap<ValueId, TensorType> = expected
        .iter()
        .filter_map(|(&v, dims)| {
            let t = g.ty(v).as_tensor()?;
            Some((
                v,
                TensorType {
                    shape: Some(Shape(dims.clone())),
                    ..t.clone()
                },
            ))
        })
        .collect();
    for n in &mut out.nodes {
        if !n.inputs.iter().flatten().any(|v| new_types.contains_key(v)) {
            continue;
        }
        let before: Vec<Option<&TensorType>> = n
            .inputs
            .iter()
            .map(|v| v.and_then(|v| g.ty(v).as_tensor()))
            .collect();
        let after: Vec<Option<&TensorType>> = n
            .inputs
            .iter()
            .map(|v| v.and_then(|v| new_types.get(&v).or_else(|| g.ty(v).as_tensor())))
            .collect();
        n.op.refit_channels(&before, &after);
    }
    out.reinfer()
        .map_err(|e| PruneError::Shapes(e.to_string()))?;
    for (i, (old, new)) in g.values.iter().zip(&out.values).enumerate() {
        let want: Option<&Vec<Dim>> = expected.get(&ValueId(i as u32));
        let (Some(od), Some(nd)) = (
            old.ty.as_tensor().and_then(|t| t.dims()),
            new.ty.as_tensor().and_then(|t| t.dims()),
        ) else {
            continue;
        };
        let ok = match &want {
            Some(w) => {
                nd.len() == w.len()
                    && nd
                        .iter()
                        .zip(w.iter())
                        .all(|(d, w)| w.known().is_none() || d.known() == w.known())
            }
            None => od == nd,
        };
        if !ok {
            return Err(PruneError::Shapes(format!(
                "value '{}' is {} after removal, expected {}",
                old.name,
                new.ty,
                match want {
                    Some(w) => format!("{}", Shape(w.clone())),
                    None => old.ty.to_string(),
                }
            )));
        }
    }
    carve_ir::verify::verify(&out).map_err(|e| PruneError::Shapes(e.to_string()))?;
    Ok(out)
}

/// `g` with the consumer slices of the channels of `sel` zeroed (the weights that read them), so
/// that their activations no longer reach anything: the same function as [`remove_channels`].
pub fn zero_channels(g: &Graph, groups: &Groups, sel: &Selection) -> Result<Graph, PruneError> {
    let rm = removed_indices(groups, sel)?;
    let mut out = g.clone();
    for &gi in sel.keys() {
        for cs in groups.groups[gi].with_role(Role::Consumer) {
            let Some(idx) = rm.get(&cs.site) else {
                continue;
            };
            let Some(c) = out.constant_of(cs.site.value) else {
                continue;
            };
            let z = zero_constant(c, cs.site.axis, idx).map_err(|msg| PruneError::Constant {
                value: g.value(cs.site.value).name.clone(),
                msg,
            })?;
            set_constant(&mut out, cs.site.value, z);
        }
    }
    Ok(out)
}
