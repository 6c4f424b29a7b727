//! The packed weights blob every kernel reads its compile-time data from: constants used at run time
//! and weights a lowering packed into the layout its kernel wants, each entry 64-byte aligned.

use std::collections::BTreeSet;

use carve_ir::{Graph, Node, Op, ValueId};
use carve_runtime::exec::AlignedBytes;

use crate::node::NodeInfo;
use crate::x86::TileNote;

/// Packed weights: one blob, every entry aligned to 64 bytes.
#[derive(Debug, Default)]
pub struct Weights {
    /// The blob (64-byte aligned itself, so the JIT uses it in place).
    pub blob: AlignedBytes,
    /// Constant inputs that kernels never read at run time because the lowering baked them into
    /// packed weights or code: (node's first output, input index, input value). The plan leaves such
    /// a constant out of the blob unless another reader needs it.
    baked: BTreeSet<(ValueId, usize, ValueId)>,
    /// The x86 machine-code tile the last lowering chose (the schedule records and clears it).
    tile: Option<TileNote>,
}

/// A reference to bytes in the weights blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightRef {
    /// Byte offset in the blob.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Weights {
    /// Records that the node being lowered runs on machine-code tile `t` (see [`crate::x86`]).
    pub fn note_tile(&mut self, t: impl Into<TileNote>) {
        self.tile = Some(t.into());
    }

    /// The tile recorded since the last call, if any.
    pub fn take_tile(&mut self) -> Option<TileNote> {
        self.tile.take()
    }

    /// An empty blob with room for every constant of `g` (weights are packed roughly at their own
    /// size): growing a multi-megabyte aligned buffer by doubling would copy it several times.
    pub fn for_graph(g: &Graph) -> Weights {
        let bytes: usize = g
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::Constant(c) => Some(
                    match &c.data {
                        carve_ir::ConstData::Bytes(b) => b.as_bytes().len(),
                        _ => 0,
                    } + carve_runtime::abi::ALIGN,
                ),
                _ => None,
            })
            .sum();
        Weights {
            blob: AlignedBytes::with_capacity(bytes + bytes / 16),
            baked: BTreeSet::new(),
            tile: None,
        }
    }

    /// Records that the kernels of `info`'s node never read input `i` at run time (the lowering
    /// packed or folded it at compile time), so the raw constant need not be stored for this node.
    pub fn baked(&mut self, info: &NodeInfo, i: usize) {
        if let (Some(&o), Some(Some(v))) = (info.node.outputs.first(), info.node.inputs.get(i)) {
            self.baked.insert((o, i, *v));
        }
    }

    /// Whether `node` reads its input `i` (value `v`) at run time.
    pub fn reads(&self, node: &Node, i: usize, v: ValueId) -> bool {
        node.outputs
            .first()
            .is_none_or(|&o| !self.baked.contains(&(o, i, v)))
    }

    /// Appends `bytes` (64-byte aligned) and returns where they are.
    pub fn add_bytes(&mut self, bytes: &[u8]) -> WeightRef {
        let offset = self
            .blob
            .append_aligned(bytes.len(), |d| d.copy_from_slice(bytes));
        WeightRef {
            offset,
            len: bytes.len(),
        }
    }

    /// Appends f32 values (little-endian).
    pub fn add_f32(&mut self, v: &[f32]) -> WeightRef {
        let offset = self.blob.append_aligned(v.len() * 4, |d| {
            for (d, x) in d.chunks_exact_mut(4).zip(v) {
                d.copy_from_slice(&x.to_le_bytes());
            }
        });
        WeightRef {
            offset,
            len: v.len() * 4,
        }
    }
}
