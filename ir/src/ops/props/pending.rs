//! Properties of the quantized and fused families, kept here until `quant.rs` and `fused.rs` (edited
//! in parallel by other work) carry their own `props`/`work`/`channels` methods; then this file moves
//! into them.
//!
//! Quantized ops get the conservative default: pure, not elementwise (their scales may be per axis),
//! the default work estimate and an opaque channel map. Fused ops are their base op (conv, matmul) plus
//! the epilogue activation's FLOPs per output element.

use super::{ChannelMap, NodeTypes, Props, Work};
use crate::ops::conv::{conv_channels, conv_work};
use crate::ops::fused::FusedOp;
use crate::ops::linalg::{matmul_channels, matmul_work};
use crate::ops::quant::QuantOp;

super::default_family_props!(
    QuantOp,
    "conservative until the quantized types carry their axes"
);

impl FusedOp {
    /// Properties (see [`Props`]): pure kernels.
    pub fn props(&self) -> Props {
        Props::NONE
    }

    /// Arithmetic (see [`Work`]): the base op's, plus the activation on every output element.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        let (base, act) = match self {
            FusedOp::FusedConv(f) => (conv_work(t)?, f.activation().kind),
            FusedOp::FusedMatMul(f) => (matmul_work(t, false)?, f.activation().kind),
        };
        Some(base.with_activation(t.out_elems()?, act))
    }

    /// Channel map (see [`ChannelMap`]): the base op's (the bias joins the output channels).
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        match self {
            FusedOp::FusedConv(f) => conv_channels(f.group, t),
            FusedOp::FusedMatMul(_) => matmul_channels(t, false, false),
        }
    }
}
