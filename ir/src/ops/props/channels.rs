//! How a node's channels map from its inputs to its outputs ([`ChannelMap`]): the per-op fact that
//! pruning's dependency groups are built from.
//!
//! The vocabulary is index spaces shared by axes of a node's operands. Removing index `c` from one
//! axis of an index space (a channel of a conv's output, a column of a matmul's weight, ...) must
//! remove index `c` from every axis of that space, and doing so keeps the node well-formed (values that
//! depend on the whole space, such as `layer_norm`'s statistics over its last axis, change as pruning
//! expects). A pruning pass joins the spaces of neighbouring nodes through the values they share and
//! so finds the groups of channels that must be removed together.
//!
//! Examples (from the ops' own `channels` methods):
//! - `conv(x[N,C,H,W], w[M,C,kh,kw], b[M])` (group 1): input channels `{x.1, w.1}` and output channels
//!   `{w.0, b.0, y.1}` are two independent spaces.
//! - depthwise `conv` (group = C = M): one space `{x.1, w.0, b.0, y.1}`, channel `c → c`.
//! - `relu`, `add`, `batch_norm`: the channel axis of every operand of full extent is one space.
//! - `matmul(a[..,M,K], b[..,K,N])`: the contracted `{a.-1, b.-2}` (input channels) and `{b.-1, y.-1}`
//!   (output channels) spaces, plus rows `{a.-2, y.-2}`.
//! - `concat`/`split` along an axis: ranges ([`ChannelMap::Concat`], [`ChannelMap::Split`]).
//! - `transpose`: output axis `p` is input axis `perm[p]`; `reshape`: [`ChannelMap::Opaque`].
//!
//! Ops whose relation is not described (or whose ranks are not known) are [`ChannelMap::Opaque`]: a
//! barrier, through which channels may not be removed.

use crate::TensorType;

/// An operand of a node: input or output `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operand {
    /// Input `i`.
    Input(usize),
    /// Output `i`.
    Output(usize),
}

/// One axis (non-negative, below the operand's rank) of one operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AxisRef {
    /// The operand.
    pub operand: Operand,
    /// The axis.
    pub axis: usize,
}

impl AxisRef {
    /// Axis `axis` of input `i`.
    pub fn input(i: usize, axis: usize) -> AxisRef {
        AxisRef {
            operand: Operand::Input(i),
            axis,
        }
    }

    /// Axis `axis` of output `i`.
    pub fn output(i: usize, axis: usize) -> AxisRef {
        AxisRef {
            operand: Operand::Output(i),
            axis,
        }
    }
}

/// How channels map through one node (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelMap {
    /// Not known: channels may not be removed through this node.
    Opaque,
    /// Each inner list is one index space (index `c` of each listed axis is the same channel). Axes
    /// not listed belong to no space: they may not be pruned through this node.
    Tied(Vec<Vec<AxisRef>>),
    /// A grouped contraction (conv with `1 < group`, not depthwise): the `input` axes hold `groups`
    /// equal blocks of input channels, the `output` axes `groups` equal blocks of output channels,
    /// and output block `k` reads only input block `k`. Channels may be removed from either side as
    /// for two [`ChannelMap::Tied`] spaces, keeping the blocks of each side equal in size.
    Grouped {
        /// Number of groups.
        groups: u64,
        /// The axes holding all input channels (the data's channel axis; the weight's axis 1 indexes a
        /// channel within its block).
        input: Vec<AxisRef>,
        /// The axes holding all output channels (weight axis 0, bias, result).
        output: Vec<AxisRef>,
    },
    /// Concatenation along `axis` of every input into output 0: input `i`'s index `c` is output index
    /// `o_i + c`, `o_i` the sum of the earlier inputs' sizes. Every other axis is one space across all
    /// operands.
    Concat {
        /// The concatenated axis.
        axis: usize,
    },
    /// The inverse of [`ChannelMap::Concat`]: output `i` is input 0's range `[o_i, o_i + n_i)` on `axis`;
    /// every other axis is one space across input 0 and the outputs.
    Split {
        /// The split axis.
        axis: usize,
    },
}

impl ChannelMap {
    /// Pointwise over broadcast inputs: output 0's axis `a` and the right-aligned axis of every tensor
    /// input whose dim there is not 1 are one space, for every axis. Opaque when a rank is unknown.
    pub fn pointwise(inputs: &[Option<&TensorType>], out: Option<&TensorType>) -> ChannelMap {
        let Some(out_rank) = out.and_then(TensorType::rank) else {
            return ChannelMap::Opaque;
        };
        let mut spaces: Vec<Vec<AxisRef>> =
            (0..out_rank).map(|a| vec![AxisRef::output(0, a)]).collect();
        for (i, t) in inputs.iter().enumerate() {
            let Some(t) = t else { continue };
            let Some(dims) = t.dims() else {
                return ChannelMap::Opaque;
            };
            let Some(offset) = out_rank.checked_sub(dims.len()) else {
                return ChannelMap::Opaque;
            };
            for (a, d) in dims.iter().enumerate() {
                if d.known() != Some(1) {
                    spaces[offset + a].push(AxisRef::input(i, a));
                }
            }
        }
        ChannelMap::Tied(spaces)
    }

    /// Output 0's axis `p` is input 0's axis `from[p]` (`None`: a new axis, in no space).
    pub fn axes(from: &[Option<usize>]) -> ChannelMap {
        ChannelMap::Tied(
            from.iter()
                .enumerate()
                .filter_map(|(p, a)| Some(vec![AxisRef::input(0, (*a)?), AxisRef::output(0, p)]))
                .collect(),
        )
    }

    /// The space that holds `axis`, if any (for [`ChannelMap::Tied`]).
    pub fn space_of(&self, axis: AxisRef) -> Option<&[AxisRef]> {
        match self {
            ChannelMap::Tied(spaces) => {
                spaces.iter().find(|s| s.contains(&axis)).map(Vec::as_slice)
            }
            _ => None,
        }
    }
}

/// Axis `axis` (negative: from the end) of a tensor of rank `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        usize::try_from(a).ok()
    } else {
        None
    }
}
