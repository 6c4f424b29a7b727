//! Importers for convolution and pooling ONNX ops (see `carve_ir::ops::conv`): Conv, ConvTranspose,
//! DeformConv, CausalConvWithState, Max/Average/LpPool (one `pool`), the Global*Pool ops (one
//! `global_pool`), MaxUnpool, MaxRoiPool and RoiAlign.

use carve_ir::ValueId;
use carve_ir::ops::conv::{
    AutoPad, CausalActivation, CausalConv, Conv, ConvTranspose, DeformConv, GlobalPool, MaxRoiPool,
    MaxUnpool, Pool, PoolKind, RoiAlign, RoiAlignMode, RoiCoordMode, StorageOrder,
};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: fn(&mut NodeCtx) -> Res) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("Conv", conv),
    row("ConvTranspose", conv_transpose),
    row("DeformConv", deform_conv),
    row("CausalConvWithState", causal_conv),
    row("MaxPool", |cx| pool(cx, PoolKind::Max)),
    row("AveragePool", |cx| pool(cx, PoolKind::Avg)),
    row("LpPool", |cx| pool(cx, PoolKind::Lp)),
    row("GlobalMaxPool", |cx| global_pool(cx, PoolKind::Max)),
    row("GlobalAveragePool", |cx| global_pool(cx, PoolKind::Avg)),
    row("GlobalLpPool", |cx| global_pool(cx, PoolKind::Lp)),
    row("MaxUnpool", max_unpool),
    row("MaxRoiPool", max_roi_pool),
    row("RoiAlign", roi_align),
];

/// The `auto_pad` keyword (ONNX spells it in upper case).
fn auto_pad(cx: &NodeCtx) -> Result<AutoPad, ImportError> {
    match cx.s("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => Ok(AutoPad::NotSet),
        "SAME_UPPER" => Ok(AutoPad::SameUpper),
        "SAME_LOWER" => Ok(AutoPad::SameLower),
        "VALID" => Ok(AutoPad::Valid),
        other => Err(cx.err(format!(
            "unknown auto_pad '{other}' (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)"
        ))),
    }
}

fn conv(cx: &mut NodeCtx) -> Res {
    let op = Conv {
        group: cx.i("group", 1)?,
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        dilations: cx.ints("dilations")?,
        pads: cx.ints("pads")?,
        auto_pad: auto_pad(cx)?,
    };
    cx.simple(op)
}

fn conv_transpose(cx: &mut NodeCtx) -> Res {
    let op = ConvTranspose {
        group: cx.i("group", 1)?,
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        dilations: cx.ints("dilations")?,
        pads: cx.ints("pads")?,
        output_padding: cx.ints("output_padding")?,
        output_shape: cx.ints("output_shape")?,
        auto_pad: auto_pad(cx)?,
    };
    cx.simple(op)
}

fn deform_conv(cx: &mut NodeCtx) -> Res {
    let op = DeformConv {
        group: cx.i("group", 1)?,
        offset_group: cx.i("offset_group", 1)?,
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        dilations: cx.ints("dilations")?,
        pads: cx.ints("pads")?,
    };
    cx.simple(op)
}

fn causal_conv(cx: &mut NodeCtx) -> Res {
    let activation = match cx.s("activation", "none")?.as_str() {
        "none" => CausalActivation::None,
        "silu" | "swish" => CausalActivation::Silu,
        other => {
            return Err(cx.err(format!(
                "unknown activation '{other}' (expected none, silu or swish)"
            )));
        }
    };
    // present_state is a required output: always produce both.
    let inputs = cx.inputs();
    cx.emit(CausalConv { activation }, inputs, 2)
}

/// LpPool/GlobalLpPool `p`: a float attribute in opset 1, an integer since opset 2.
fn lp_p(cx: &NodeCtx) -> Result<i64, ImportError> {
    if cx.opset() >= 2 {
        return cx.i("p", 2);
    }
    let p = cx.f("p", 2.0)?;
    if p.fract() != 0.0 || !(1.0..=1024.0).contains(&p) {
        return Err(cx.err(format!("p must be a positive integer, got {p}")));
    }
    Ok(p as i64)
}

fn pool(cx: &mut NodeCtx, kind: PoolKind) -> Res {
    let kernel_shape = cx
        .get_ints("kernel_shape")?
        .ok_or_else(|| cx.err("attribute 'kernel_shape' is required"))?;
    let storage_order = match cx.i("storage_order", 0)? {
        0 => StorageOrder::RowMajor,
        1 => StorageOrder::ColMajor,
        v => return Err(cx.err(format!("storage_order must be 0 or 1, got {v}"))),
    };
    let op = Pool {
        kind,
        kernel_shape,
        strides: cx.ints("strides")?,
        dilations: cx.ints("dilations")?,
        pads: cx.ints("pads")?,
        auto_pad: auto_pad(cx)?,
        ceil_mode: cx.bool("ceil_mode", false)?,
        count_include_pad: kind == PoolKind::Avg && cx.bool("count_include_pad", false)?,
        p: if kind == PoolKind::Lp { lp_p(cx)? } else { 2 },
        storage_order: if kind == PoolKind::Max {
            storage_order
        } else {
            StorageOrder::RowMajor
        },
    };
    // Only MaxPool has the optional Indices output; emit it only when the node lists it.
    let n = if kind == PoolKind::Max && cx.output_used(1) {
        2
    } else {
        1
    };
    let inputs = cx.inputs();
    cx.emit(op, inputs, n)
}

fn global_pool(cx: &mut NodeCtx, kind: PoolKind) -> Res {
    let p = if kind == PoolKind::Lp { lp_p(cx)? } else { 2 };
    let inputs = cx.inputs();
    cx.emit(GlobalPool { kind, p }, inputs, 1)
}

fn max_unpool(cx: &mut NodeCtx) -> Res {
    let kernel_shape = cx
        .get_ints("kernel_shape")?
        .ok_or_else(|| cx.err("attribute 'kernel_shape' is required"))?;
    let op = MaxUnpool {
        kernel_shape,
        strides: cx.ints("strides")?,
        pads: cx.ints("pads")?,
    };
    cx.simple(op)
}

fn max_roi_pool(cx: &mut NodeCtx) -> Res {
    let pooled_shape = cx
        .get_ints("pooled_shape")?
        .ok_or_else(|| cx.err("attribute 'pooled_shape' is required"))?;
    let op = MaxRoiPool {
        pooled_shape,
        spatial_scale: cx.f("spatial_scale", 1.0)?,
    };
    cx.simple(op)
}

fn roi_align(cx: &mut NodeCtx) -> Res {
    let mode = match cx.s("mode", "avg")?.as_str() {
        "avg" => RoiAlignMode::Avg,
        "max" => RoiAlignMode::Max,
        other => return Err(cx.err(format!("unknown mode '{other}' (expected avg or max)"))),
    };
    // Opset 10 had no attribute and behaved as `output_half_pixel`; opset 16 made `half_pixel` default.
    let legacy = if cx.opset() < 16 {
        "output_half_pixel"
    } else {
        "half_pixel"
    };
    let coordinate_transformation_mode =
        match cx.s("coordinate_transformation_mode", legacy)?.as_str() {
            "half_pixel" => RoiCoordMode::HalfPixel,
            "output_half_pixel" => RoiCoordMode::OutputHalfPixel,
            other => {
                return Err(cx.err(format!(
                    "unknown coordinate_transformation_mode '{other}' \
                     (expected half_pixel or output_half_pixel)"
                )));
            }
        };
    let op = RoiAlign {
        mode,
        coordinate_transformation_mode,
        output_height: cx.i("output_height", 1)?,
        output_width: cx.i("output_width", 1)?,
        sampling_ratio: cx.i("sampling_ratio", 0)?,
        spatial_scale: cx.f("spatial_scale", 1.0)?,
    };
    cx.simple(op)
}
