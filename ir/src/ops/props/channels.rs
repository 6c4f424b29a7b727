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
//! - `transpose`: output axis `p` is input axis `perm[p]`.
//! - `flatten`, `squeeze`, `unsqueeze` (views whose target shape is not an operand): axes that keep
//!   their extent are tied, and a run of axes merged into one maps its leading axis to blocks
//!   ([`ChannelMap::Blocks`]: channel `c` of `x[N,C,H,W]` is columns `[c·HW, (c+1)·HW)` of the
//!   flattened `y[N,CHW]`). A `reshape` that only adds or drops unit axes ties the rest (its target
//!   shape is an operand that removing channels rewrites, [`crate::Op::shape_operand`]); other
//!   reshapes are [`ChannelMap::Opaque`].
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

/// Index `c` of axis `outer` is indices `[c·inner, (c+1)·inner)` of axis `flat` (a merge of `outer`
/// with minor axes of total extent `inner`, as `flatten` does, or the split of `flat` into `outer`
/// and minor axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMap {
    /// The most significant axis of the merged run.
    pub outer: AxisRef,
    /// Product of the minor axes' extents.
    pub inner: u64,
    /// The single axis on the other side.
    pub flat: AxisRef,
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
    /// A reshaping view of input 0 into output 0 (the same elements in the same order): the `tied`
    /// spaces as in [`ChannelMap::Tied`], plus `blocks` where one axis's index is a contiguous block
    /// of another's. Axes in neither belong to no space.
    Blocks {
        /// Index spaces, as in [`ChannelMap::Tied`].
        tied: Vec<Vec<AxisRef>>,
        /// Axes whose index `c` is a block of another axis's indices.
        blocks: Vec<BlockMap>,
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

    /// A view of input 0 (dims `from`) as output 0 (dims `to`, the same number of elements): axes of
    /// extent 1 belong to no space, a leading run of equal symbolic dims is tied, the others are cut into the shortest runs with equal products,
    /// and a run of one axis on each side is tied, a run of several axes on one side and one on the
    /// other is a [`BlockMap`] from its leading axis; other runs belong to no space. Opaque when a
    /// dim is not concrete or the element counts differ.
    pub fn view(from: &[crate::Dim], to: &[crate::Dim]) -> ChannelMap {
        // A leading run of equal symbolic dims (a batch `N`) is tied axis to axis.
        let lead = from
            .iter()
            .zip(to)
            .take_while(|(x, y)| x.known().is_none() && x == y)
            .count();
        let known = |d: &[crate::Dim]| -> Option<Vec<(usize, u64)>> {
            d.iter()
                .enumerate()
                .skip(lead)
                .map(|(a, d)| d.known().map(|n| (a, n)))
                .filter(|x| x.is_none_or(|(_, n)| n != 1))
                .collect()
        };
        let (Some(a), Some(b)) = (known(from), known(to)) else {
            return ChannelMap::Opaque;
        };
        let prod = |v: &[(usize, u64)]| v.iter().try_fold(1u64, |p, &(_, n)| p.checked_mul(n));
        if prod(&a).is_none() || prod(&a) != prod(&b) {
            return ChannelMap::Opaque;
        }
        let mut tied: Vec<Vec<AxisRef>> = (0..lead)
            .map(|x| vec![AxisRef::input(0, x), AxisRef::output(0, x)])
            .collect();
        let mut blocks = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (i0, j0) = (i, j);
            let (mut pa, mut pb) = (a[i].1, b[j].1);
            i += 1;
            j += 1;
            while pa != pb {
                if pa < pb {
                    let Some(n) = a.get(i) else { break };
                    pa *= n.1;
                    i += 1;
                } else {
                    let Some(n) = b.get(j) else { break };
                    pb *= n.1;
                    j += 1;
                }
            }
            let (ra, rb) = (&a[i0..i], &b[j0..j]);
            match (ra.len(), rb.len()) {
                (1, 1) => tied.push(vec![
                    AxisRef::input(0, ra[0].0),
                    AxisRef::output(0, rb[0].0),
                ]),
                (n, 1) if n > 1 => blocks.push(BlockMap {
                    outer: AxisRef::input(0, ra[0].0),
                    inner: pa / ra[0].1,
                    flat: AxisRef::output(0, rb[0].0),
                }),
                (1, n) if n > 1 => blocks.push(BlockMap {
                    outer: AxisRef::output(0, rb[0].0),
                    inner: pb / rb[0].1,
                    flat: AxisRef::input(0, ra[0].0),
                }),
                _ => {}
            }
        }
        ChannelMap::Blocks { tied, blocks }
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

impl crate::Op {
    /// Restates attributes that repeat an operand's extent after pruning removed channels (a
    /// depthwise conv's `group`); `before`/`after` are the input types. Ops without such attributes
    /// are unchanged.
    pub fn refit_channels(
        &mut self,
        before: &[Option<&TensorType>],
        after: &[Option<&TensorType>],
    ) {
        if let crate::Op::Conv(c) = self {
            c.refit_channels(before, after);
        }
    }

    /// The input that states output 0's shape (`reshape`'s target shape), which removing channels
    /// must rewrite to the new extents.
    pub fn shape_operand(&self) -> Option<usize> {
        match self {
            crate::Op::Movement(crate::ops::movement::MovementOp::Reshape(_)) => Some(1),
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
