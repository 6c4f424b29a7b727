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

/// The `auto_pad` keyword (ONNX spells it in upper case); also read by the quantized convolutions.
pub(super) fn auto_pad(cx: &NodeCtx) -> Result<AutoPad, ImportError> {
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

/// The window attributes of a Conv-like node (Conv, ConvInteger, QLinearConv) as float `conv`.
pub(super) fn conv_attrs(cx: &NodeCtx) -> Result<Conv, ImportError> {
    Ok(Conv {
        group: cx.i("group", 1)?,
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        dilations: cx.ints("dilations")?,
        pads: cx.ints("pads")?,
        auto_pad: auto_pad(cx)?,
    })
}

fn conv(cx: &mut NodeCtx) -> Res {
    let op = conv_attrs(cx)?;
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
    let op = pool_attrs(cx, kind)?;
    // Only MaxPool has the optional Indices output; emit it only when the node lists it.
    let n = if kind == PoolKind::Max && cx.output_used(1) {
        2
    } else {
        1
    };
    let inputs = cx.inputs();
    cx.emit(op, inputs, n)
}

/// A pooling op of `kind` from the node's window attributes (also read by ORT's QLinearAveragePool).
pub(crate) fn pool_attrs(cx: &NodeCtx, kind: PoolKind) -> Result<Pool, ImportError> {
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
    Ok(op)
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

/// A one-node ONNX model builder shared by this directory's importer tests.
#[cfg(test)]
pub(crate) mod testutil {
    use carve_ir::{Graph, Op};
    use prost::Message;

    use crate::proto::tensor_shape_proto::{Dimension, dimension};
    use crate::proto::type_proto::{self, Tensor};
    use crate::proto::{
        AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };

    /// An integer attribute.
    pub fn int(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        }
    }

    /// A float attribute.
    pub fn float(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Float as i32,
            f,
            ..Default::default()
        }
    }

    /// A string attribute.
    pub fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// An integer list attribute.
    pub fn ints(name: &str, ints: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: ints.to_vec(),
            ..Default::default()
        }
    }

    /// A float list attribute.
    pub fn floats(name: &str, floats: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: floats.to_vec(),
            ..Default::default()
        }
    }

    /// A string list attribute.
    pub fn strings(name: &str, s: &[&str]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Strings as i32,
            strings: s.iter().map(|s| s.as_bytes().to_vec()).collect(),
            ..Default::default()
        }
    }

    /// A graph input: name, ONNX element type code, dims (negative = symbolic `d<i>`).
    pub type Input<'a> = (&'a str, i32, &'a [i64]);

    /// Imports a model of one `op_type` node at `opset` over `inputs` (`""` = omitted optional input),
    /// producing `outputs`; returns the graph or the import error text.
    pub fn import(
        opset: i64,
        op_type: &str,
        attrs: Vec<AttributeProto>,
        inputs: &[Input],
        node_inputs: &[&str],
        outputs: &[&str],
    ) -> Result<Graph, String> {
        let input = inputs
            .iter()
            .map(|(name, elem, dims)| ValueInfoProto {
                name: (*name).into(),
                r#type: Some(TypeProto {
                    value: Some(type_proto::Value::TensorType(Tensor {
                        elem_type: *elem,
                        shape: Some(TensorShapeProto {
                            dim: dims
                                .iter()
                                .enumerate()
                                .map(|(i, &d)| Dimension {
                                    value: Some(if d < 0 {
                                        dimension::Value::DimParam(format!("d{i}"))
                                    } else {
                                        dimension::Value::DimValue(d)
                                    }),
                                    ..Default::default()
                                })
                                .collect(),
                        }),
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect();
        let node = NodeProto {
            input: node_inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: "n".into(),
            op_type: op_type.into(),
            attribute: attrs,
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(GraphProto {
                node: vec![node],
                name: "g".into(),
                input,
                output: outputs
                    .iter()
                    .filter(|o| !o.is_empty())
                    .map(|o| ValueInfoProto {
                        name: (*o).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        crate::load_bytes(&model.encode_to_vec())
            .map(|m| m.graph)
            .map_err(|e| e.to_string())
    }

    /// The first non-constant op of `g`.
    pub fn first_op(g: &Graph) -> &Op {
        g.nodes
            .iter()
            .map(|n| &n.op)
            .find(|op| !matches!(op, Op::Constant(_)))
            .expect("the graph has an op")
    }

    /// The types of the graph outputs, printed.
    pub fn output_types(g: &Graph) -> Vec<String> {
        g.outputs.iter().map(|&o| g.ty(o).to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use carve_ir::Op;
    use carve_ir::ops::conv::{AutoPad, ConvOp, PoolKind};

    use super::testutil::*;

    const F32: i32 = 1;

    #[test]
    fn auto_pad_keywords_map_to_the_ir_enum() {
        let x: Input = ("x", F32, &[-1, 2, 9, 9]);
        let w: Input = ("w", F32, &[4, 2, 3, 3]);
        let g = import(
            22,
            "Conv",
            vec![string("auto_pad", "SAME_LOWER"), ints("strides", &[2, 2])],
            &[x, w],
            &["x", "w"],
            &["y"],
        )
        .unwrap();
        assert!(
            matches!(first_op(&g), Op::Conv(ConvOp::Conv(c)) if c.auto_pad == AutoPad::SameLower)
        );
        assert_eq!(output_types(&g), ["f32[d0,4,5,5]"]);
        let e = import(
            22,
            "Conv",
            vec![string("auto_pad", "SAME")],
            &[x, w],
            &["x", "w"],
            &["y"],
        )
        .unwrap_err();
        assert!(e.contains("auto_pad"), "{e}");
    }

    #[test]
    fn max_pool_emits_indices_only_when_listed() {
        let x: Input = ("x", F32, &[1, 3, 8, 8]);
        let attrs = || vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])];
        let g = import(12, "MaxPool", attrs(), &[x], &["x"], &["y", "i"]).unwrap();
        assert_eq!(output_types(&g), ["f32[1,3,4,4]", "i64[1,3,4,4]"]);
        let g = import(12, "MaxPool", attrs(), &[x], &["x"], &["y"]).unwrap();
        assert_eq!(g.nodes.last().map(|n| n.outputs.len()), Some(1));
        let e = import(12, "MaxPool", vec![], &[x], &["x"], &["y"]).unwrap_err();
        assert!(e.contains("kernel_shape"), "{e}");
    }

    #[test]
    fn lp_pool_opset_1_reads_a_float_p() {
        let x: Input = ("x", F32, &[1, 3, 8]);
        let g = import(
            1,
            "LpPool",
            vec![ints("kernel_shape", &[2]), float("p", 3.0)],
            &[x],
            &["x"],
            &["y"],
        )
        .unwrap();
        assert!(
            matches!(first_op(&g), Op::Conv(ConvOp::Pool(p)) if p.kind == PoolKind::Lp && p.p == 3)
        );
        let g = import(1, "GlobalLpPool", vec![], &[x], &["x"], &["y"]).unwrap();
        assert!(matches!(first_op(&g), Op::Conv(ConvOp::GlobalPool(p)) if p.p == 2));
        assert!(
            import(
                1,
                "LpPool",
                vec![ints("kernel_shape", &[2]), float("p", 2.5)],
                &[x],
                &["x"],
                &["y"]
            )
            .is_err()
        );
    }

    #[test]
    fn roi_align_opset_10_uses_output_half_pixel() {
        use carve_ir::ops::conv::RoiCoordMode;
        let ins: [Input; 3] = [
            ("x", F32, &[1, 2, 8, 8]),
            ("r", F32, &[3, 4]),
            ("b", 7, &[3]),
        ];
        let g = import(10, "RoiAlign", vec![], &ins, &["x", "r", "b"], &["y"]).unwrap();
        assert!(matches!(first_op(&g), Op::Conv(ConvOp::RoiAlign(r))
            if r.coordinate_transformation_mode == RoiCoordMode::OutputHalfPixel));
        assert_eq!(output_types(&g), ["f32[3,2,1,1]"]);
    }
}
