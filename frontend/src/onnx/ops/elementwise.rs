//! Importers for elementwise ONNX ops (unary math, activations, binary and variadic arithmetic, logic,
//! comparisons, `Where`, casts); see `carve_ir::ops::elementwise`.
//!
//! Opset upgrades: Clip's `min`/`max` attributes (opset < 11) become constant inputs of the input's type;
//! Cast's string `to` (opset < 6) is mapped to an element type; the legacy `broadcast`/`axis` attributes of
//! binary ops (opset < 7) are accepted when they mean numpy broadcasting and refused otherwise;
//! `consumed_inputs` (opset < 6) is ignored. `CastLike` imports as `cast` to the target's type.

use carve_ir::ops::elementwise::*;
use carve_ir::{Buffer, Constant, DType, Op, TensorType, ValueId};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

/// A row mapping an ONNX op 1:1 to an attribute-free IR op over the node's inputs.
macro_rules! simple {
    ($name:literal, $op:expr) => {
        OpImporter {
            domain: "ai.onnx",
            op_type: $name,
            import: |cx| cx.simple($op),
        }
    };
}

/// A row for a binary op, checking the legacy `broadcast`/`axis` attributes first.
macro_rules! binary {
    ($name:literal, $op:expr) => {
        OpImporter {
            domain: "ai.onnx",
            op_type: $name,
            import: |cx| {
                legacy_broadcast(cx)?;
                cx.simple($op)
            },
        }
    };
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    simple!("Abs", Abs {}),
    simple!("Acos", Acos {}),
    simple!("Acosh", Acosh {}),
    simple!("Asin", Asin {}),
    simple!("Asinh", Asinh {}),
    simple!("Atan", Atan {}),
    simple!("Atanh", Atanh {}),
    simple!("Ceil", Ceil {}),
    simple!("Cos", Cos {}),
    simple!("Cosh", Cosh {}),
    simple!("Erf", Erf {}),
    simple!("Exp", Exp {}),
    simple!("Floor", Floor {}),
    simple!("Log", Log {}),
    simple!("Neg", Neg {}),
    simple!("Not", Not {}),
    simple!("Reciprocal", Reciprocal {}),
    simple!("Round", Round {}),
    simple!("Sigmoid", Sigmoid {}),
    simple!("Sign", Sign {}),
    simple!("Sin", Sin {}),
    simple!("Sinh", Sinh {}),
    simple!("Sqrt", Sqrt {}),
    simple!("Tan", Tan {}),
    simple!("Tanh", Tanh {}),
    simple!("IsNaN", IsNan {}),
    simple!("BitwiseNot", BitwiseNot {}),
    simple!("Relu", Relu {}),
    simple!("HardSwish", HardSwish {}),
    simple!("Mish", Mish {}),
    simple!("Softsign", Softsign {}),
    simple!("Softplus", Softplus {}),
    simple!("PRelu", PRelu {}),
    simple!("BitwiseAnd", BitwiseAnd {}),
    simple!("BitwiseOr", BitwiseOr {}),
    simple!("BitwiseXor", BitwiseXor {}),
    simple!("GreaterOrEqual", GreaterOrEqual {}),
    simple!("LessOrEqual", LessOrEqual {}),
    simple!("Max", Max {}),
    simple!("Min", Min {}),
    simple!("Sum", Sum {}),
    simple!("Mean", Mean {}),
    simple!("Where", Where {}),
    binary!("Add", Add {}),
    binary!("Sub", Sub {}),
    binary!("Mul", Mul {}),
    binary!("Div", Div {}),
    binary!("Pow", Pow {}),
    binary!("And", And {}),
    binary!("Or", Or {}),
    binary!("Xor", Xor {}),
    binary!("Equal", Equal {}),
    binary!("Greater", Greater {}),
    binary!("Less", Less {}),
    OpImporter {
        domain: "ai.onnx",
        op_type: "LeakyRelu",
        import: |cx| {
            let alpha = cx.f("alpha", 0.01)?;
            cx.simple(LeakyRelu { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Elu",
        import: |cx| {
            let alpha = cx.f("alpha", 1.0)?;
            cx.simple(Elu { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Selu",
        import: |cx| {
            let d = Selu::default();
            let alpha = cx.f("alpha", d.alpha)?;
            let gamma = cx.f("gamma", d.gamma)?;
            cx.simple(Selu { alpha, gamma })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Celu",
        import: |cx| {
            let alpha = cx.f("alpha", 1.0)?;
            cx.simple(Celu { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "ThresholdedRelu",
        import: |cx| {
            let alpha = cx.f("alpha", 1.0)?;
            cx.simple(ThresholdedRelu { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "HardSigmoid",
        import: |cx| {
            let alpha = cx.f("alpha", 0.2)?;
            let beta = cx.f("beta", 0.5)?;
            cx.simple(HardSigmoid { alpha, beta })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Gelu",
        import: gelu,
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "Gelu",
        import: |cx| cx.simple(Gelu::default()),
    },
    OpImporter {
        domain: "com.microsoft",
        op_type: "QuickGelu",
        import: |cx| {
            let alpha = cx.f("alpha", 1.702)?;
            cx.simple(Swish { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Swish",
        import: |cx| {
            let alpha = cx.f("alpha", 1.0)?;
            cx.simple(Swish { alpha })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Shrink",
        import: |cx| {
            let bias = cx.f("bias", 0.0)?;
            let lambd = cx.f("lambd", 0.5)?;
            cx.simple(Shrink { bias, lambd })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "IsInf",
        import: |cx| {
            let detect_negative = cx.bool("detect_negative", true)?;
            let detect_positive = cx.bool("detect_positive", true)?;
            cx.simple(IsInf {
                detect_negative,
                detect_positive,
            })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Clip",
        import: clip,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Mod",
        import: |cx| {
            let fmod = cx.bool("fmod", false)?;
            cx.simple(Mod { fmod })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "BitShift",
        import: bit_shift,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Cast",
        import: cast,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "CastLike",
        import: cast_like,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "BitCast",
        import: |cx| {
            let to = cx
                .get_dtype("to")?
                .ok_or_else(|| cx.err("attribute 'to' is required"))?;
            cx.simple(Bitcast { to })
        },
    },
];

/// Opset < 7 binary ops broadcast only when `broadcast=1`, aligning the second operand at `axis`
/// (default: its trailing dims). That equals numpy broadcasting when the operand sits at the end;
/// other alignments would need a reshape and are refused.
fn legacy_broadcast(cx: &NodeCtx) -> Result<(), ImportError> {
    if cx.opset() >= 7 || !cx.bool("broadcast", false)? {
        return Ok(());
    }
    let Some(axis) = cx.get_i("axis")? else {
        return Ok(());
    };
    let ra = cx.tensor_ty(0)?.rank();
    let rb = cx.tensor_ty(1)?.rank();
    match (ra, rb) {
        (Some(ra), Some(rb)) => {
            let axis = if axis < 0 { axis + ra as i64 } else { axis };
            if axis == ra as i64 - rb as i64 {
                Ok(())
            } else {
                Err(cx.unsupported(format!(
                    "legacy broadcasting (opset {}) of a rank-{rb} operand at axis {axis} of a rank-{ra} \
                     operand is not supported; convert the model to opset >= 7",
                    cx.opset()
                )))
            }
        }
        _ => Err(cx.err(format!(
            "legacy broadcasting (opset {}) with an axis needs known ranks; convert the model to opset >= 7",
            cx.opset()
        ))),
    }
}

fn gelu(cx: &mut NodeCtx) -> Res {
    let approximate = match cx.s("approximate", "none")?.as_str() {
        "none" => GeluApprox::Erf,
        "tanh" => GeluApprox::Tanh,
        other => {
            return Err(cx.err(format!(
                "attribute 'approximate' must be \"none\" or \"tanh\", got \"{other}\""
            )));
        }
    };
    cx.simple(Gelu { approximate })
}

fn bit_shift(cx: &mut NodeCtx) -> Res {
    let direction = match cx.get_s("direction")?.as_deref() {
        Some("LEFT") => ShiftDirection::Left,
        Some("RIGHT") => ShiftDirection::Right,
        Some(o) => {
            return Err(cx.err(format!(
                "attribute 'direction' must be \"LEFT\" or \"RIGHT\", got \"{o}\""
            )));
        }
        None => return Err(cx.err("attribute 'direction' is required")),
    };
    cx.simple(BitShift { direction })
}

/// A scalar constant of float type `dtype` holding `v`.
fn float_scalar(cx: &mut NodeCtx, dtype: DType, v: f32) -> Result<ValueId, ImportError> {
    let bytes = match dtype {
        DType::F32 => v.to_le_bytes().to_vec(),
        DType::F64 => f64::from(v).to_le_bytes().to_vec(),
        DType::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
        DType::BF16 => half::bf16::from_f32(v).to_le_bytes().to_vec(),
        d => {
            return Err(cx.err(format!(
                "Clip with min/max attributes (opset {}) needs a float input, got {d}",
                cx.opset()
            )));
        }
    };
    let c = Constant::dense(TensorType::scalar(dtype), Buffer::from_vec(bytes))
        .map_err(|m| cx.err(m))?;
    Ok(cx.constant(c))
}

fn clip(cx: &mut NodeCtx) -> Res {
    if cx.opset() >= 11 {
        return cx.simple(Clip {});
    }
    let x = cx.req(0)?;
    let dtype = cx.tensor_ty(0)?.dtype;
    let mut inputs = vec![Some(x), None, None];
    for (slot, name) in [(1, "min"), (2, "max")] {
        if let Some(v) = cx.get_f(name)? {
            inputs[slot] = Some(float_scalar(cx, dtype, v)?);
        }
    }
    while inputs.len() > 1 && inputs.last() == Some(&None) {
        inputs.pop();
    }
    Ok(vec![cx.emit1(Clip {}, inputs)?])
}

/// Cast's `to` before opset 6: a data type name such as `"FLOAT"`.
fn dtype_from_name(name: &str) -> Option<DType> {
    Some(match name.to_ascii_uppercase().as_str() {
        "FLOAT" => DType::F32,
        "UINT8" => DType::U8,
        "INT8" => DType::I8,
        "UINT16" => DType::U16,
        "INT16" => DType::I16,
        "INT32" => DType::I32,
        "INT64" => DType::I64,
        "STRING" => DType::String,
        "BOOL" => DType::Bool,
        "FLOAT16" => DType::F16,
        "DOUBLE" => DType::F64,
        "UINT32" => DType::U32,
        "UINT64" => DType::U64,
        _ => return None,
    })
}

fn round_mode(cx: &NodeCtx) -> Result<RoundMode, ImportError> {
    let s = cx.s("round_mode", "up")?;
    RoundMode::from_keyword(&s).ok_or_else(|| {
        cx.err(format!(
            "attribute 'round_mode' must be \"up\", \"down\" or \"nearest\", got \"{s}\""
        ))
    })
}

fn cast(cx: &mut NodeCtx) -> Res {
    let to = if cx.opset() < 6 {
        let name = cx
            .get_s("to")?
            .ok_or_else(|| cx.err("attribute 'to' is required"))?;
        dtype_from_name(&name)
            .ok_or_else(|| cx.err(format!("attribute 'to': unknown data type \"{name}\"")))?
    } else {
        cx.get_dtype("to")?
            .ok_or_else(|| cx.err("attribute 'to' is required"))?
    };
    let saturate = cx.bool("saturate", true)?;
    let round_mode = round_mode(cx)?;
    cx.simple(Cast {
        to,
        saturate,
        round_mode,
    })
}

fn cast_like(cx: &mut NodeCtx) -> Res {
    let to = cx.tensor_ty(1)?.dtype;
    let saturate = cx.bool("saturate", true)?;
    let round_mode = round_mode(cx)?;
    let x = cx.req(0)?;
    let op: Op = Cast {
        to,
        saturate,
        round_mode,
    }
    .into();
    Ok(vec![cx.emit1(op, vec![Some(x)])?])
}

#[cfg(test)]
pub(crate) mod tests {
    use prost::Message;

    use crate::proto::tensor_shape_proto::{Dimension, dimension};
    use crate::proto::type_proto::{self, Tensor};
    use crate::proto::{
        AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto,
    };
    use crate::{ImportError, Model};

    /// A graph input of ONNX element type `elem` with dims (negative: symbolic `d<i>`).
    pub(crate) fn input(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
        let dim = dims
            .iter()
            .enumerate()
            .map(|(i, &d)| Dimension {
                denotation: String::new(),
                value: Some(if d < 0 {
                    dimension::Value::DimParam(format!("d{i}"))
                } else {
                    dimension::Value::DimValue(d)
                }),
            })
            .collect();
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                denotation: String::new(),
                value: Some(type_proto::Value::TensorType(Tensor {
                    elem_type: elem,
                    shape: Some(TensorShapeProto { dim }),
                })),
            }),
            ..Default::default()
        }
    }

    pub(crate) fn node(op: &str, ins: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec!["y".into()],
            op_type: op.into(),
            attribute: attrs,
            ..Default::default()
        }
    }

    pub(crate) fn float_attr(name: &str, f: f32) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Float as i32,
            f,
            ..Default::default()
        }
    }

    pub(crate) fn int_attr(name: &str, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Int as i32,
            i,
            ..Default::default()
        }
    }

    pub(crate) fn str_attr(name: &str, s: &str) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::String as i32,
            s: s.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    /// Imports a one-graph model whose output is `y`.
    pub(crate) fn import(
        nodes: Vec<NodeProto>,
        inputs: Vec<ValueInfoProto>,
        opsets: &[(&str, i64)],
        init: Vec<crate::proto::TensorProto>,
    ) -> Result<Model, ImportError> {
        let m = ModelProto {
            ir_version: 8,
            opset_import: opsets
                .iter()
                .map(|&(d, v)| OperatorSetIdProto {
                    domain: d.into(),
                    version: v,
                })
                .collect(),
            graph: Some(GraphProto {
                node: nodes,
                name: "g".into(),
                initializer: init,
                input: inputs,
                output: vec![ValueInfoProto {
                    name: "y".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        crate::load_bytes(&m.encode_to_vec())
    }

    /// The printed types of the inputs and output of the model's last node.
    fn last_node(m: &Model) -> (String, Vec<String>, String) {
        let g = &m.graph;
        let n = g.nodes.last().expect("a node");
        let ins = n
            .inputs
            .iter()
            .map(|i| i.map_or("_".into(), |v| g.ty(v).to_string()))
            .collect();
        (n.op.name().into(), ins, g.ty(n.outputs[0]).to_string())
    }

    const FLOAT: i32 = 1;
    const INT64: i32 = 7;
    const FLOAT16: i32 = 10;

    #[test]
    fn clip_min_max_attributes_of_old_opsets_become_inputs_of_the_input_type() {
        let n = node("Clip", &["x"], vec![float_attr("max", 6.0)]);
        let m = import(
            vec![n],
            vec![input("x", FLOAT16, &[-1, 3])],
            &[("", 6)],
            vec![],
        )
        .unwrap();
        let (op, ins, out) = last_node(&m);
        assert_eq!(op, "clip");
        assert_eq!(ins, ["f16[d0,3]", "_", "f16[]"]);
        assert_eq!(out, "f16[d0,3]");
    }

    #[test]
    fn legacy_broadcast_is_kept_when_numpy_compatible_and_refused_otherwise() {
        let ins = || vec![input("a", FLOAT, &[2, 3, 4]), input("b", FLOAT, &[4])];
        let ok = node(
            "Add",
            &["a", "b"],
            vec![int_attr("broadcast", 1), int_attr("axis", 2)],
        );
        let m = import(vec![ok], ins(), &[("", 6)], vec![]).unwrap();
        assert_eq!(last_node(&m).2, "f32[2,3,4]");
        let bad = node(
            "Add",
            &["a", "b"],
            vec![int_attr("broadcast", 1), int_attr("axis", 0)],
        );
        let e = import(vec![bad], ins(), &[("", 6)], vec![]).unwrap_err();
        assert!(e.to_string().contains("opset >= 7"), "{e}");
    }

    #[test]
    fn cast_like_imports_as_cast_and_old_cast_takes_a_type_name() {
        let n = node("CastLike", &["a", "b"], vec![]);
        let ins = vec![input("a", FLOAT, &[3]), input("b", INT64, &[])];
        let m = import(vec![n], ins, &[("", 21)], vec![]).unwrap();
        let (op, ins, out) = last_node(&m);
        assert_eq!(
            (op.as_str(), ins.len(), out.as_str()),
            ("cast", 1, "i64[3]")
        );

        let n = node("Cast", &["a"], vec![str_attr("to", "INT64")]);
        let m = import(vec![n], vec![input("a", FLOAT, &[3])], &[("", 1)], vec![]).unwrap();
        assert_eq!(last_node(&m).2, "i64[3]");
    }

    #[test]
    fn required_and_keyword_attributes_are_checked() {
        let ins = || vec![input("a", 2, &[3]), input("b", 2, &[3])];
        let n = node("BitShift", &["a", "b"], vec![]);
        let e = import(vec![n], ins(), &[("", 11)], vec![]).unwrap_err();
        assert!(e.to_string().contains("direction"), "{e}");
        let n = node("Gelu", &["a"], vec![str_attr("approximate", "fast")]);
        let e = import(vec![n], vec![input("a", FLOAT, &[3])], &[("", 20)], vec![]).unwrap_err();
        assert!(e.to_string().contains("tanh"), "{e}");
    }
}
