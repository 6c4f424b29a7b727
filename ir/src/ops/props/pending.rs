//! Properties of the quantized and fused families, kept here until `quant.rs` and `fused.rs` (edited
//! in parallel by other work) carry their own `props`/`work`/`channels` methods; then this file moves
//! into them.
//!
//! Quantized ops get the conservative default: pure, not elementwise (their scales may be per axis),
//! the default work estimate and an opaque channel map. Fused ops are their base op (conv, matmul) plus
//! their epilogue's arithmetic on every output element.

use super::{ChannelMap, NodeTypes, Props, Work};
use crate::ops::conv::{conv_channels, conv_work};
use crate::ops::fused::{EpiStep, Epilogue, FusedOp};
use crate::ops::linalg::{matmul_channels, matmul_work};
use crate::ops::quant::QuantOp;

impl QuantOp {
    /// Properties (see [`Props`]): pure, not elementwise.
    pub fn props(&self) -> Props {
        Props::NONE
    }

    /// Arithmetic (see [`Work`]): `matmul_nbits` counts its multiply-accumulates (`k` per output
    /// element, plus one dequantization per weight), `matmul_integer` a matmul's; the others get the
    /// default estimate.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        match self {
            QuantOp::MatMulNBits(m) => {
                let out = t.out_elems()?;
                let weights = (m.k as f64) * (m.n as f64);
                Some(Work::mac(out * m.k as f64, out).with_flops(2.0 * weights))
            }
            QuantOp::MatMulInteger(_) => matmul_work(t, false),
            _ => Work::default_for(t),
        }
    }

    /// Channel map (see [`ChannelMap`]): opaque (conservative until the quantized types carry their
    /// axes).
    pub fn channels(&self, _t: &NodeTypes) -> ChannelMap {
        ChannelMap::Opaque
    }
}

impl FusedOp {
    /// Properties (see [`Props`]): pure kernels.
    pub fn props(&self) -> Props {
        Props::NONE
    }

    /// Arithmetic (see [`Work`]): the base op's, plus the epilogue on every output element.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        let (base, epilogue) = match self {
            FusedOp::FusedConv(f) => (conv_work(t)?, &f.epilogue),
            FusedOp::FusedMatMul(f) => (matmul_work(t, false)?, &f.epilogue),
        };
        Some(epilogue_work(base, t.out_elems()?, epilogue))
    }

    /// Channel map (see [`ChannelMap`]): the base op's when the epilogue reads at most a bias (which
    /// joins the output channels); opaque when it reads other operands (a per-channel scale or a
    /// residual tensor), which the base maps do not describe yet.
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        let epilogue = match self {
            FusedOp::FusedConv(f) => &f.epilogue,
            FusedOp::FusedMatMul(f) => &f.epilogue,
        };
        let operands: Vec<EpiStep> = epilogue
            .steps()
            .iter()
            .copied()
            .filter(EpiStep::reads_operand)
            .collect();
        if !matches!(operands.as_slice(), [] | [EpiStep::Bias]) {
            return ChannelMap::Opaque;
        }
        match self {
            FusedOp::FusedConv(f) => conv_channels(f.group, t),
            FusedOp::FusedMatMul(_) => matmul_channels(t, false, false),
        }
    }
}

/// `base` plus the epilogue's arithmetic on `n` output elements: an activation's own FLOPs (its
/// transcendental share counted as such), one FLOP per rescale, scale, residual or clamp step, three per
/// requantize; the bias add is already in the product's count ([`Work::mac`]).
fn epilogue_work(base: Work, n: f64, epilogue: &Epilogue) -> Work {
    epilogue.steps().iter().fold(base, |w, step| match step {
        EpiStep::Act(a) => w.with_activation(n, a.kind),
        EpiStep::Bias => w,
        EpiStep::Rescale | EpiStep::Scale | EpiStep::Residual | EpiStep::Clamp { .. } => {
            w.with_flops(n)
        }
        EpiStep::Requant { .. } => w.with_flops(3.0 * n),
    })
}
