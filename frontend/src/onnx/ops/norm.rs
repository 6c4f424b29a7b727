//! Importers for normalization ops (see `carve_ir::ops::norm`).
//!
//! Opset upgrades done here: BatchNormalization before opset 14 is in training mode exactly when it lists
//! its running-statistics outputs (`is_test`/`spatial` need no translation: per-activation parameters
//! carry their own shape); GroupNormalization before opset 21 has per-group scale and bias, expanded here
//! to per-channel constants.

use carve_ir::ops::norm::{
    BatchNorm, GroupNorm, InstanceNorm, LayerNorm, Lrn, MeanVarNorm, RmsNorm,
};
use carve_ir::{Buffer, ConstData, ConstFormat, Constant, DType, Dim, TensorType, ValueId};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: crate::onnx::ctx::ImportFn) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("BatchNormalization", batch_norm),
    row("LayerNormalization", |cx| {
        let op = LayerNorm {
            axis: cx.i("axis", -1)?,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: stash_type(cx)?,
        };
        let n = cx.num_outputs().max(1);
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), cx.input(2)];
        cx.emit(op, inputs, n)
    }),
    row("RMSNormalization", |cx| {
        let op = RmsNorm {
            axis: cx.i("axis", -1)?,
            epsilon: cx.f("epsilon", 1e-5)?,
            stash_type: stash_type(cx)?,
        };
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
        cx.emit(op, inputs, 1)
    }),
    row("GroupNormalization", group_norm),
    row("InstanceNormalization", |cx| {
        let op = InstanceNorm {
            epsilon: cx.f("epsilon", 1e-5)?,
        };
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), Some(cx.req(2)?)];
        cx.emit(op, inputs, 1)
    }),
    row("LRN", |cx| {
        let op = Lrn {
            size: cx
                .get_i("size")?
                .ok_or_else(|| cx.err("attribute 'size' is required"))?,
            alpha: cx.f("alpha", 1e-4)?,
            beta: cx.f("beta", 0.75)?,
            bias: cx.f("bias", 1.0)?,
        };
        cx.emit(op, vec![Some(cx.req(0)?)], 1)
    }),
    row("MeanVarianceNormalization", |cx| {
        let op = MeanVarNorm {
            axes: cx.get_ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]),
        };
        cx.emit(op, vec![Some(cx.req(0)?)], 1)
    }),
];

/// The `stash_type` attribute (a float element-type code, default f32).
fn stash_type(cx: &NodeCtx) -> Result<DType, ImportError> {
    Ok(cx.get_dtype("stash_type")?.unwrap_or(DType::F32))
}

fn batch_norm(cx: &mut NodeCtx) -> Res {
    let training_mode = if cx.opset() >= 14 {
        cx.bool("training_mode", false)?
    } else {
        // Opsets 1–13: the running mean/variance outputs exist only in training mode.
        (1..cx.num_outputs()).any(|i| cx.output_used(i))
    };
    for i in 3..cx.num_outputs() {
        if cx.output_used(i) {
            return Err(cx.unsupported(
                "the saved_mean/saved_var outputs of training-mode BatchNormalization (before \
                 opset 14) are not supported",
            ));
        }
    }
    let op = BatchNorm {
        epsilon: cx.f("epsilon", 1e-5)?,
        momentum: cx.f("momentum", 0.9)?,
        training_mode,
    };
    let n = if training_mode {
        cx.num_outputs().clamp(1, 3)
    } else {
        1
    };
    let inputs = (0..5)
        .map(|i| cx.req(i).map(Some))
        .collect::<Result<_, _>>()?;
    cx.emit(op, inputs, n)
}

fn group_norm(cx: &mut NodeCtx) -> Res {
    let num_groups = cx
        .get_i("num_groups")?
        .ok_or_else(|| cx.err("attribute 'num_groups' is required"))?;
    let op = GroupNorm {
        num_groups,
        epsilon: cx.f("epsilon", 1e-5)?,
        stash_type: stash_type(cx)?,
    };
    let x = cx.req(0)?;
    let (mut scale, mut bias) = (cx.req(1)?, cx.req(2)?);
    if cx.opset() < 21 {
        // Opset 18: scale and bias have one value per group; opset 21 has one per channel.
        let channels = cx.tensor_ty(0)?.dims().map(|d| d[1].clone());
        if num_groups > 0 && channels != Some(Dim::Known(num_groups as u64)) {
            scale = per_channel(cx, scale, 1, num_groups, channels.as_ref())?;
            bias = per_channel(cx, bias, 2, num_groups, channels.as_ref())?;
        }
    }
    cx.emit(op, vec![Some(x), Some(scale), Some(bias)], 1)
}

/// Expands a constant per-group parameter (input `i`, `[groups]`) to one value per channel.
fn per_channel(
    cx: &mut NodeCtx,
    v: ValueId,
    i: usize,
    groups: i64,
    channels: Option<&Dim>,
) -> Result<ValueId, ImportError> {
    let (Some(Dim::Known(c)), Ok(g)) = (channels, u64::try_from(groups)) else {
        return Err(cx.err(
            "opset-18 GroupNormalization needs a known channel count to expand its per-group \
             scale and bias",
        ));
    };
    if g == 0 || c % g != 0 {
        return Err(cx.err(format!("{c} channels cannot be split into {groups} groups")));
    }
    let expanded = cx.const_of(v).and_then(|k| repeat_each(k, g, c / g));
    match expanded {
        Some(k) => Ok(cx.constant(k)),
        None => Err(cx.err(format!(
            "opset-18 GroupNormalization: input {i} must be a dense constant of {groups} \
             byte-aligned values to be expanded per channel"
        ))),
    }
}

/// A 1-D constant of `n` elements with every element repeated `times` times.
fn repeat_each(k: &Constant, n: u64, times: u64) -> Option<Constant> {
    let ConstData::Bytes(b) = &k.data else {
        return None;
    };
    if k.format != ConstFormat::Dense {
        return None;
    }
    let bits = k.ty.dtype.bits();
    if bits == 0 || !bits.is_multiple_of(8) || k.ty.dims()?.len() != 1 || k.num_elements() != n {
        return None;
    }
    // Parameters are per channel: anything beyond this is a hostile channel count, not a model.
    const MAX_ELEMENTS: u64 = 1 << 24;
    if n.checked_mul(times)? > MAX_ELEMENTS {
        return None;
    }
    let w = (bits / 8) as usize;
    let mut out = Vec::with_capacity(b.len().checked_mul(usize::try_from(times).ok()?)?);
    for e in b.as_bytes().chunks_exact(w) {
        for _ in 0..times {
            out.extend_from_slice(e);
        }
    }
    Constant::dense(
        TensorType::known(k.ty.dtype, &[n.checked_mul(times)?]),
        Buffer::from_vec(out),
    )
    .ok()
}
