//! Importers for shape/data-movement ONNX ops (see `carve_ir::ops::movement`), upgrading older opset
//! forms: attributes that became inputs (Reshape-1 `shape`, Squeeze/Unsqueeze `axes`, Split `split`,
//! Slice-1 `starts/ends/axes`, Pad-2 `pads/value`, Upsample-7 `scales`) become constant inputs; `Scatter`
//! imports as `scatter_elements`; `Upsample` and `Resize-10` as `resize` with asymmetric coordinates and
//! floor rounding; `Constant` nodes become IR constants.

use carve_ir::ops::movement::{
    AffineGrid, AspectPolicy, BlockMode, CacheMode, CenterCropPad, Col2Im, Compress, Concat,
    ConstantOfShape, CoordMode, DepthToSpace, Expand, EyeLike, Flatten, Gather, GatherElements,
    GatherNd, GridMode, GridPadding, GridSample, Identity, NearestMode, NonZero, OneHot, Pad,
    PadMode, Range, Reshape, Resize, ResizeMode, ReverseSequence, ScatterElements, ScatterNd,
    ScatterReduction, ShapeOf, Size, Slice, SpaceToDepth, Split, Squeeze, TensorScatter, Tile,
    Transpose, Trilu, Unique, Unsqueeze,
};
use carve_ir::{Buffer, ConstData, ConstFormat, Constant, DType, TensorType, ValueId};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::{ImportFn, NodeCtx};

type Res = Result<Vec<ValueId>, ImportError>;

const fn onnx(op_type: &'static str, import: ImportFn) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    onnx("Constant", constant),
    onnx("Identity", |cx| cx.simple(Identity {})),
    onnx("Shape", |cx| {
        let start = cx.i("start", 0)?;
        let end = cx.get_i("end")?;
        cx.simple(ShapeOf { start, end })
    }),
    onnx("Size", |cx| cx.simple(Size {})),
    onnx("Reshape", reshape),
    onnx("Flatten", |cx| {
        let axis = cx.i("axis", 1)?;
        cx.simple(Flatten { axis })
    }),
    onnx("Squeeze", squeeze),
    onnx("Unsqueeze", unsqueeze),
    onnx("Transpose", transpose),
    onnx("Concat", |cx| {
        let axis = match cx.get_i("axis")? {
            Some(a) => a,
            None if cx.opset() < 4 => 1,
            None => return Err(cx.err("attribute 'axis' is required")),
        };
        cx.simple(Concat { axis })
    }),
    onnx("Split", split),
    onnx("Slice", slice),
    onnx("Pad", pad),
    onnx("Tile", tile),
    onnx("Expand", |cx| cx.simple(Expand {})),
    onnx("Gather", |cx| {
        let axis = cx.i("axis", 0)?;
        cx.simple(Gather { axis })
    }),
    onnx("GatherElements", |cx| {
        let axis = cx.i("axis", 0)?;
        cx.simple(GatherElements { axis })
    }),
    onnx("GatherND", |cx| {
        let batch_dims = cx.i("batch_dims", 0)?;
        cx.simple(GatherNd { batch_dims })
    }),
    onnx("Scatter", |cx| {
        let axis = cx.i("axis", 0)?;
        cx.simple(ScatterElements {
            axis,
            reduction: ScatterReduction::None,
        })
    }),
    onnx("ScatterElements", |cx| {
        let axis = cx.i("axis", 0)?;
        let reduction = reduction(cx)?;
        cx.simple(ScatterElements { axis, reduction })
    }),
    onnx("ScatterND", |cx| {
        let reduction = reduction(cx)?;
        cx.simple(ScatterNd { reduction })
    }),
    onnx("TensorScatter", |cx| {
        let axis = cx.i("axis", -2)?;
        let mode = keyword(
            cx,
            "mode",
            "linear",
            CacheMode::from_keyword,
            CacheMode::KEYWORDS,
        )?;
        cx.simple(TensorScatter { axis, mode })
    }),
    onnx("ConstantOfShape", |cx| {
        let value = cx
            .get_tensor("value")?
            .unwrap_or_else(|| Constant::from_f32s(&[1], &[0.0]));
        cx.simple(ConstantOfShape { value })
    }),
    onnx("Range", |cx| cx.simple(Range {})),
    onnx("DepthToSpace", |cx| {
        let (blocksize, mode) = block_attrs(cx)?;
        cx.simple(DepthToSpace { blocksize, mode })
    }),
    onnx("SpaceToDepth", |cx| {
        let (blocksize, mode) = block_attrs(cx)?;
        cx.simple(SpaceToDepth { blocksize, mode })
    }),
    onnx("Compress", |cx| {
        let axis = cx.get_i("axis")?;
        cx.simple(Compress { axis })
    }),
    onnx("NonZero", |cx| cx.simple(NonZero {})),
    onnx("OneHot", |cx| {
        let axis = cx.i("axis", -1)?;
        cx.simple(OneHot { axis })
    }),
    onnx("Trilu", |cx| {
        let upper = cx.bool("upper", true)?;
        cx.simple(Trilu { upper })
    }),
    onnx("EyeLike", |cx| {
        let dtype = cx.get_dtype("dtype")?;
        let k = cx.i("k", 0)?;
        cx.simple(EyeLike { dtype, k })
    }),
    onnx("ReverseSequence", |cx| {
        let batch_axis = cx.i("batch_axis", 1)?;
        let time_axis = cx.i("time_axis", 0)?;
        cx.simple(ReverseSequence {
            batch_axis,
            time_axis,
        })
    }),
    onnx("Unique", |cx| {
        let sorted = cx.bool("sorted", true)?;
        let axis = cx.get_i("axis")?;
        cx.simple(Unique { sorted, axis })
    }),
    onnx("Resize", resize),
    onnx("Upsample", upsample),
    onnx("GridSample", grid_sample),
    onnx("AffineGrid", |cx| {
        let align_corners = cx.bool("align_corners", false)?;
        cx.simple(AffineGrid { align_corners })
    }),
    onnx("CenterCropPad", |cx| {
        let axes = cx.ints("axes")?;
        cx.simple(CenterCropPad { axes })
    }),
    onnx("Col2Im", |cx| {
        let op = Col2Im {
            dilations: cx.ints("dilations")?,
            pads: cx.ints("pads")?,
            strides: cx.ints("strides")?,
        };
        cx.simple(op)
    }),
];

// ---- helpers ----

/// A keyword attribute parsed into an IR enum; the error lists the accepted values.
fn keyword<T>(
    cx: &NodeCtx,
    attr: &str,
    default: &str,
    parse: fn(&str) -> Option<T>,
    allowed: &[&str],
) -> Result<T, ImportError> {
    let s = cx.s(attr, default)?;
    parse(&s).ok_or_else(|| {
        cx.err(format!(
            "attribute '{attr}': unsupported value '{s}', expected one of {allowed:?}"
        ))
    })
}

fn reduction(cx: &NodeCtx) -> Result<ScatterReduction, ImportError> {
    keyword(
        cx,
        "reduction",
        "none",
        ScatterReduction::from_keyword,
        ScatterReduction::KEYWORDS,
    )
}

fn block_attrs(cx: &NodeCtx) -> Result<(i64, BlockMode), ImportError> {
    let blocksize = cx
        .get_i("blocksize")?
        .ok_or_else(|| cx.err("attribute 'blocksize' is required"))?;
    let mode = cx.s("mode", "DCR")?;
    let mode = BlockMode::from_keyword(&mode.to_ascii_lowercase())
        .ok_or_else(|| cx.err(format!("attribute 'mode': unsupported value '{mode}'")))?;
    Ok((blocksize, mode))
}

/// The node's inputs with `extra` constant operands appended after the first `keep` slots.
fn with_inputs(cx: &NodeCtx, keep: usize, extra: Vec<Option<ValueId>>) -> Vec<Option<ValueId>> {
    let mut v: Vec<Option<ValueId>> = cx.inputs().into_iter().take(keep).collect();
    v.resize(keep, None);
    v.extend(extra);
    while v.last() == Some(&None) {
        v.pop();
    }
    v
}

/// An i64 vector constant.
fn ints_const(cx: &mut NodeCtx, v: &[i64]) -> ValueId {
    cx.const_i64(&[v.len() as u64], v)
}

/// A scalar constant of `dtype` holding `v` (Pad-2's `value`, which follows the data's type).
fn scalar_of(cx: &NodeCtx, dtype: DType, v: f64) -> Result<Constant, ImportError> {
    let bytes: Vec<u8> = match dtype {
        DType::F32 => (v as f32).to_le_bytes().to_vec(),
        DType::F64 => v.to_le_bytes().to_vec(),
        DType::F16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
        DType::BF16 => half::bf16::from_f64(v).to_le_bytes().to_vec(),
        DType::I64 => (v as i64).to_le_bytes().to_vec(),
        DType::I32 => (v as i32).to_le_bytes().to_vec(),
        DType::I16 => (v as i16).to_le_bytes().to_vec(),
        DType::I8 => (v as i8).to_le_bytes().to_vec(),
        DType::U64 => (v as u64).to_le_bytes().to_vec(),
        DType::U32 => (v as u32).to_le_bytes().to_vec(),
        DType::U16 => (v as u16).to_le_bytes().to_vec(),
        DType::U8 => (v as u8).to_le_bytes().to_vec(),
        DType::Bool => vec![u8::from(v != 0.0)],
        other => return Err(cx.err(format!("cannot make a {other} pad value"))),
    };
    Constant::dense(TensorType::scalar(dtype), Buffer::from_vec(bytes)).map_err(|m| cx.err(m))
}

fn strings_const(dims: &[u64], v: Vec<String>) -> Constant {
    Constant {
        ty: TensorType::known(DType::String, dims),
        format: ConstFormat::Dense,
        data: ConstData::Strings(v),
    }
}

/// True when input `i` is a constant with no elements (ONNX's "not given" for roi/scales/sizes).
fn empty_const(cx: &NodeCtx, i: usize) -> bool {
    cx.input(i)
        .and_then(|v| cx.const_of(v))
        .is_some_and(|c| c.num_elements() == 0)
}

// ---- importers ----

fn constant(cx: &mut NodeCtx) -> Res {
    const ATTRS: [&str; 8] = [
        "value",
        "sparse_value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
        "value_string",
        "value_strings",
    ];
    let n = ATTRS.iter().filter(|a| cx.has_attr(a)).count();
    if n != 1 {
        return Err(cx.err(format!(
            "needs exactly one of the attributes {ATTRS:?}, got {n}"
        )));
    }
    let c = if let Some(t) = cx.get_tensor("value")? {
        t
    } else if let Some(t) = cx.get_sparse_tensor("sparse_value")? {
        t
    } else if let Some(f) = cx.get_f("value_float")? {
        Constant::from_f32s(&[], &[f])
    } else if let Some(v) = cx.get_floats("value_floats")? {
        Constant::from_f32s(&[v.len() as u64], &v)
    } else if let Some(i) = cx.get_i("value_int")? {
        Constant::from_i64s(&[], &[i])
    } else if let Some(v) = cx.get_ints("value_ints")? {
        Constant::from_i64s(&[v.len() as u64], &v)
    } else if let Some(s) = cx.get_s("value_string")? {
        strings_const(&[], vec![s])
    } else if let Some(v) = cx.get_strings("value_strings")? {
        strings_const(&[v.len() as u64], v)
    } else {
        return Err(cx.err("the value attribute has no content"));
    };
    Ok(vec![cx.constant(c)])
}

fn reshape(cx: &mut NodeCtx) -> Res {
    if cx.opset() < 5 {
        let shape = cx
            .get_ints("shape")?
            .ok_or_else(|| cx.err("attribute 'shape' is required before opset 5"))?;
        let s = ints_const(cx, &shape);
        let inputs = with_inputs(cx, 1, vec![Some(s)]);
        return Ok(vec![cx.emit1(Reshape::default(), inputs)?]);
    }
    let allowzero = cx.bool("allowzero", false)?;
    cx.simple(Reshape { allowzero })
}

fn squeeze(cx: &mut NodeCtx) -> Res {
    if cx.opset() < 13 {
        if let Some(axes) = cx.get_ints("axes")? {
            let a = ints_const(cx, &axes);
            let inputs = with_inputs(cx, 1, vec![Some(a)]);
            return Ok(vec![cx.emit1(Squeeze {}, inputs)?]);
        }
        let inputs = with_inputs(cx, 1, Vec::new());
        return Ok(vec![cx.emit1(Squeeze {}, inputs)?]);
    }
    cx.simple(Squeeze {})
}

fn unsqueeze(cx: &mut NodeCtx) -> Res {
    if cx.opset() < 13 {
        let axes = cx
            .get_ints("axes")?
            .ok_or_else(|| cx.err("attribute 'axes' is required before opset 13"))?;
        let a = ints_const(cx, &axes);
        let inputs = with_inputs(cx, 1, vec![Some(a)]);
        return Ok(vec![cx.emit1(Unsqueeze {}, inputs)?]);
    }
    cx.simple(Unsqueeze {})
}

fn transpose(cx: &mut NodeCtx) -> Res {
    let perm = match cx.get_ints("perm")? {
        Some(p) => Some(p),
        // Make the default (reversed dims) explicit when the rank is known.
        None => cx
            .tensor_ty(0)?
            .rank()
            .map(|r| (0..r as i64).rev().collect()),
    };
    cx.simple(Transpose { perm })
}

fn split(cx: &mut NodeCtx) -> Res {
    let axis = cx.i("axis", 0)?;
    let n = cx.num_outputs();
    if let Some(k) = cx.get_i("num_outputs")? {
        if usize::try_from(k).ok() != Some(n) {
            return Err(cx.err(format!("num_outputs is {k} but the node lists {n} outputs")));
        }
        if cx.input(1).is_some() {
            return Err(cx.err("num_outputs and the split input cannot both be given"));
        }
    }
    let mut inputs = with_inputs(cx, 2, Vec::new());
    if cx.opset() < 13
        && cx.input(1).is_none()
        && let Some(s) = cx.get_ints("split")?
    {
        let c = ints_const(cx, &s);
        inputs = with_inputs(cx, 1, vec![Some(c)]);
    }
    cx.emit(Split { axis }, inputs, n.max(1))
}

fn slice(cx: &mut NodeCtx) -> Res {
    if cx.opset() >= 10 {
        return cx.simple(Slice {});
    }
    let starts = cx
        .get_ints("starts")?
        .ok_or_else(|| cx.err("attribute 'starts' is required before opset 10"))?;
    let ends = cx
        .get_ints("ends")?
        .ok_or_else(|| cx.err("attribute 'ends' is required before opset 10"))?;
    let s = ints_const(cx, &starts);
    let e = ints_const(cx, &ends);
    let mut extra = vec![Some(s), Some(e)];
    if let Some(axes) = cx.get_ints("axes")? {
        extra.push(Some(ints_const(cx, &axes)));
    }
    let inputs = with_inputs(cx, 1, extra);
    Ok(vec![cx.emit1(Slice {}, inputs)?])
}

fn pad(cx: &mut NodeCtx) -> Res {
    let mode = keyword(
        cx,
        "mode",
        "constant",
        PadMode::from_keyword,
        PadMode::KEYWORDS,
    )?;
    if cx.opset() >= 11 {
        return cx.simple(Pad { mode });
    }
    // Pad-1/2: `paddings`/`pads` and `value` attributes.
    let pads = match cx.get_ints("pads")? {
        Some(p) => p,
        None => cx
            .get_ints("paddings")?
            .ok_or_else(|| cx.err("attribute 'pads' is required before opset 11"))?,
    };
    let value = cx.f("value", 0.0)?;
    let dtype = cx.tensor_ty(0)?.dtype;
    let p = ints_const(cx, &pads);
    let mut extra = vec![Some(p)];
    if mode == PadMode::Constant {
        let c = scalar_of(cx, dtype, f64::from(value))?;
        extra.push(Some(cx.constant(c)));
    }
    let inputs = with_inputs(cx, 1, extra);
    Ok(vec![cx.emit1(Pad { mode }, inputs)?])
}

fn tile(cx: &mut NodeCtx) -> Res {
    if cx.opset() >= 6 {
        return cx.simple(Tile {});
    }
    // Tile-1: scalar `tiles` repeats along scalar `axis`.
    let tiles = cx
        .const_i64s(1)
        .and_then(|v| v.first().copied())
        .ok_or_else(|| cx.err("Tile-1 needs a constant 'tiles' input"))?;
    let axis = cx
        .const_i64s(2)
        .and_then(|v| v.first().copied())
        .ok_or_else(|| cx.err("Tile-1 needs a constant 'axis' input"))?;
    let rank = cx
        .tensor_ty(0)?
        .rank()
        .ok_or_else(|| cx.err("Tile-1 needs an input of known rank"))?;
    let a = carve_ir::infer::normalize_axis(axis, rank).map_err(|m| cx.err(m))?;
    let mut reps = vec![1i64; rank];
    reps[a] = tiles;
    let r = ints_const(cx, &reps);
    let inputs = with_inputs(cx, 1, vec![Some(r)]);
    Ok(vec![cx.emit1(Tile {}, inputs)?])
}

fn resize_mode(cx: &NodeCtx) -> Result<ResizeMode, ImportError> {
    let m = cx.s("mode", "nearest")?;
    match m.as_str() {
        "bilinear" | "trilinear" => Ok(ResizeMode::Linear),
        "bicubic" => Ok(ResizeMode::Cubic),
        s => ResizeMode::from_keyword(s).ok_or_else(|| {
            cx.err(format!(
                "attribute 'mode': unsupported value '{m}', expected one of {:?}",
                ResizeMode::KEYWORDS
            ))
        }),
    }
}

/// Resize-10 and Upsample: asymmetric coordinates, floor for nearest.
fn legacy_resize(cx: &mut NodeCtx, scales: ValueId) -> Res {
    let op = Resize {
        mode: resize_mode(cx)?,
        coordinate_transformation_mode: CoordMode::Asymmetric,
        nearest_mode: NearestMode::Floor,
        ..Resize::default()
    };
    let x = cx.req(0)?;
    Ok(vec![cx.emit1(op, vec![Some(x), None, Some(scales)])?])
}

fn resize(cx: &mut NodeCtx) -> Res {
    if cx.opset() < 11 {
        let scales = cx.req(1)?;
        return legacy_resize(cx, scales);
    }
    let coord = keyword(
        cx,
        "coordinate_transformation_mode",
        "half_pixel",
        CoordMode::from_keyword,
        CoordMode::KEYWORDS,
    )?;
    if coord == CoordMode::TfHalfPixelForNn && cx.opset() >= 13 {
        return Err(
            cx.err("coordinate_transformation_mode 'tf_half_pixel_for_nn' was removed in opset 13")
        );
    }
    let op = Resize {
        mode: resize_mode(cx)?,
        coordinate_transformation_mode: coord,
        nearest_mode: keyword(
            cx,
            "nearest_mode",
            "round_prefer_floor",
            NearestMode::from_keyword,
            NearestMode::KEYWORDS,
        )?,
        cubic_coeff_a: cx.f("cubic_coeff_a", -0.75)?,
        exclude_outside: cx.bool("exclude_outside", false)?,
        extrapolation_value: cx.f("extrapolation_value", 0.0)?,
        antialias: cx.bool("antialias", false)?,
        axes: cx.ints("axes")?,
        keep_aspect_ratio_policy: keyword(
            cx,
            "keep_aspect_ratio_policy",
            "stretch",
            AspectPolicy::from_keyword,
            AspectPolicy::KEYWORDS,
        )?,
    };
    // Empty constants stand for "not given"; roi only matters for tf_crop_and_resize.
    let keep = |i: usize| cx.input(i).filter(|_| !empty_const(cx, i));
    let roi = keep(1).filter(|_| coord == CoordMode::TfCropAndResize);
    let scales = keep(2);
    let sizes = keep(3);
    let x = cx.req(0)?;
    let mut inputs = vec![Some(x), roi, scales, sizes];
    while inputs.last() == Some(&None) {
        inputs.pop();
    }
    Ok(vec![cx.emit1(op, inputs)?])
}

fn upsample(cx: &mut NodeCtx) -> Res {
    let scales = if cx.opset() < 9 {
        let s = cx
            .get_floats("scales")?
            .ok_or_else(|| cx.err("attribute 'scales' is required before opset 9"))?;
        cx.const_f32(&[s.len() as u64], &s)
    } else {
        cx.req(1)?
    };
    legacy_resize(cx, scales)
}

fn grid_sample(cx: &mut NodeCtx) -> Res {
    let default = if cx.opset() < 20 {
        "bilinear"
    } else {
        "linear"
    };
    let m = cx.s("mode", default)?;
    let mode = match m.as_str() {
        "bilinear" | "linear" => GridMode::Linear,
        "bicubic" | "cubic" => GridMode::Cubic,
        "nearest" => GridMode::Nearest,
        _ => return Err(cx.err(format!("attribute 'mode': unsupported value '{m}'"))),
    };
    let padding_mode = keyword(
        cx,
        "padding_mode",
        "zeros",
        GridPadding::from_keyword,
        GridPadding::KEYWORDS,
    )?;
    let align_corners = cx.bool("align_corners", false)?;
    cx.simple(GridSample {
        align_corners,
        mode,
        padding_mode,
    })
}

#[cfg(test)]
mod tests {
    use carve_ir::Op;
    use carve_ir::ops::movement::MovementOp;

    use crate::proto::tensor_shape_proto::{Dimension, dimension};
    use crate::proto::{
        AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
    };
    use crate::tensor::TensorLoader;

    fn f32_input(name: &str, dims: &[i64]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .map(|&d| Dimension {
                denotation: String::new(),
                value: Some(if d < 0 {
                    dimension::Value::DimParam("N".into())
                } else {
                    dimension::Value::DimValue(d)
                }),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                denotation: String::new(),
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: 1,
                    shape: Some(TensorShapeProto { dim }),
                })),
            }),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Ints as i32,
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn floats(name: &str, v: &[f32]) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Floats as i32,
            floats: v.to_vec(),
            ..Default::default()
        }
    }

    fn string(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    /// Imports a one-input graph at `opset` and returns the printed types of `outputs`.
    fn import(
        opset: i64,
        x: &[i64],
        nodes: Vec<NodeProto>,
        outputs: &[&str],
    ) -> Result<(carve_ir::Graph, Vec<String>), crate::ImportError> {
        let model = ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(GraphProto {
                name: "g".into(),
                node: nodes,
                input: vec![f32_input("x", x)],
                output: outputs
                    .iter()
                    .map(|o| ValueInfoProto {
                        name: o.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = crate::import_model(&model, &TensorLoader::default())?;
        let tys = m
            .graph
            .outputs
            .iter()
            .map(|&v| m.graph.ty(v).to_string())
            .collect();
        Ok((m.graph, tys))
    }

    #[test]
    fn slice_1_attributes_become_constant_inputs() {
        let n = node(
            "Slice",
            &["x"],
            &["y"],
            vec![
                ints("starts", &[1, -3]),
                ints("ends", &[i64::MAX, -1]),
                ints("axes", &[0, 2]),
            ],
        );
        let (_, tys) = import(9, &[4, 5, 6], vec![n], &["y"]).unwrap();
        assert_eq!(tys, ["f32[3,5,2]"]);
    }

    #[test]
    fn squeeze_and_unsqueeze_11_axes_attributes_are_upgraded() {
        let u = node("Unsqueeze", &["x"], &["u"], vec![ints("axes", &[0, -1])]);
        let s = node("Squeeze", &["u"], &["s"], vec![ints("axes", &[0])]);
        let (_, tys) = import(11, &[-1, 3], vec![u, s], &["u", "s"]).unwrap();
        assert_eq!(tys, ["f32[1,N,3,1]", "f32[N,3,1]"]);
    }

    #[test]
    fn split_11_attribute_and_18_num_outputs() {
        let s = node("Split", &["x"], &["a", "b"], vec![ints("split", &[2, 4])]);
        let (_, tys) = import(11, &[6, 2], vec![s], &["a", "b"]).unwrap();
        assert_eq!(tys, ["f32[2,2]", "f32[4,2]"]);
        let mut n = node("Split", &["x"], &["a", "b", "c"], vec![]);
        n.attribute.push(AttributeProto {
            name: "num_outputs".into(),
            r#type: AttributeType::Int as i32,
            i: 3,
            ..Default::default()
        });
        let (_, tys) = import(18, &[7, 2], vec![n], &["a", "b", "c"]).unwrap();
        assert_eq!(tys, ["f32[3,2]", "f32[3,2]", "f32[1,2]"]);
    }

    #[test]
    fn pad_2_attributes_become_inputs_with_typed_value() {
        let p = node(
            "Pad",
            &["x"],
            &["y"],
            vec![ints("pads", &[0, 1, 0, 2]), string("mode", "constant")],
        );
        let (g, tys) = import(2, &[3, 4], vec![p], &["y"]).unwrap();
        assert_eq!(tys, ["f32[3,7]"]);
        let pad = g.nodes.iter().find(|n| n.op.name() == "pad").unwrap();
        assert_eq!(pad.inputs.len(), 3);
    }

    #[test]
    fn upsample_7_becomes_asymmetric_floor_resize() {
        let u = node(
            "Upsample",
            &["x"],
            &["y"],
            vec![floats("scales", &[1.0, 1.0, 2.0, 3.0])],
        );
        let (g, tys) = import(7, &[-1, 1, 2, 2], vec![u], &["y"]).unwrap();
        assert_eq!(tys, ["f32[N,1,4,6]"]);
        let r = g.nodes.iter().find(|n| n.op.name() == "resize").unwrap();
        let Op::Movement(MovementOp::Resize(op)) = &r.op else {
            panic!("not a resize");
        };
        assert_eq!(
            op.coordinate_transformation_mode,
            carve_ir::ops::movement::CoordMode::Asymmetric
        );
        assert_eq!(op.nearest_mode, carve_ir::ops::movement::NearestMode::Floor);
    }

    #[test]
    fn constant_forms_become_ir_constants() {
        let c1 = node("Constant", &[], &["a"], vec![ints("value_ints", &[2, -1])]);
        let r = node("Reshape", &["x", "a"], &["y"], vec![]);
        let (_, tys) = import(13, &[4, 3], vec![c1, r], &["y"]).unwrap();
        assert_eq!(tys, ["f32[2,6]"]);
        let two = node(
            "Constant",
            &[],
            &["a"],
            vec![ints("value_ints", &[1]), floats("value_floats", &[1.0])],
        );
        assert!(import(13, &[4, 3], vec![two], &["a"]).is_err());
    }

    #[test]
    fn transpose_default_perm_is_made_explicit() {
        let t = node("Transpose", &["x"], &["y"], vec![]);
        let (g, tys) = import(13, &[2, 3, -1], vec![t], &["y"]).unwrap();
        assert_eq!(tys, ["f32[N,3,2]"]);
        let Op::Movement(MovementOp::Transpose(op)) = &g.nodes[0].op else {
            panic!("not a transpose");
        };
        assert_eq!(op.perm, Some(vec![2, 1, 0]));
    }
}
