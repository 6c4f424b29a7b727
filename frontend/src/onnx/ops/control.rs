//! Importers for control flow (If, Loop, Scan), sequence and optional ONNX ops (see
//! `carve_ir::ops::control`).
//!
//! Loop and Scan bodies are imported with formal input types computed here (their protos often omit
//! them). A loop-carried value may change shape from one iteration to the next, so the body is imported
//! with the initial types, and again with the merge of initial and result types until they stop changing
//! (after a few rounds the shapes are dropped altogether). Scan-8 (the batched form with
//! `sequence_lens`) is refused: no test or model in reach uses it and it has no direct IR equivalent.
//!
//! An If whose condition is known at import time (a constant, or computed from static shapes) is
//! replaced by the taken branch's nodes; the dead branch is not imported (function expansions branch on
//! input ranks, and the branch for the other rank does not type-check).

use std::collections::HashMap;

use carve_ir::infer::{SymInt, sym_value_of};
use carve_ir::ops::control::{
    ConcatFromSequence, ControlOp, If, Loop, Optional, OptionalGetElement, OptionalHasElement,
    Scan, SequenceAt, SequenceConstruct, SequenceEmpty, SequenceErase, SequenceInsert,
    SequenceLength, SequenceMap, SplitToSequence, erase_shapes, is_empty_sequence,
    merge_maybe_optional, merge_types, scan_slice_type,
};
use carve_ir::{DType, Graph, Op, TensorType, Type, ValueId};

use super::OpImporter;
use crate::error::ImportError;
use crate::onnx::ctx::NodeCtx;
use crate::onnx::types::type_from_proto;
use crate::proto::AttributeType;

type R = Result<Vec<ValueId>, ImportError>;

/// Rounds of re-importing a body with generalized carried types before dropping all shapes.
const MAX_WIDEN_ROUNDS: usize = 3;

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    OpImporter {
        domain: "ai.onnx",
        op_type: "If",
        import: import_if,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Loop",
        import: import_loop,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Scan",
        import: import_scan,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceEmpty",
        import: |cx| {
            let dtype = cx.get_dtype("dtype")?.unwrap_or(DType::F32);
            cx.simple(SequenceEmpty { dtype })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceConstruct",
        import: |cx| cx.simple(SequenceConstruct {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceInsert",
        import: |cx| cx.simple(SequenceInsert {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceAt",
        import: |cx| cx.simple(SequenceAt {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceErase",
        import: |cx| cx.simple(SequenceErase {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceLength",
        import: |cx| cx.simple(SequenceLength {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SplitToSequence",
        import: |cx| {
            let axis = cx.i("axis", 0)?;
            let keepdims = cx.bool("keepdims", true)?;
            cx.simple(SplitToSequence { axis, keepdims })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "ConcatFromSequence",
        import: |cx| {
            let axis = cx
                .get_i("axis")?
                .ok_or_else(|| cx.err("attribute 'axis' is required"))?;
            let new_axis = cx.bool("new_axis", false)?;
            cx.simple(ConcatFromSequence { axis, new_axis })
        },
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "SequenceMap",
        import: import_sequence_map,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "Optional",
        import: import_optional,
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "OptionalHasElement",
        import: |cx| cx.simple(OptionalHasElement {}),
    },
    OpImporter {
        domain: "ai.onnx",
        op_type: "OptionalGetElement",
        import: |cx| cx.simple(OptionalGetElement {}),
    },
];

fn import_if(cx: &mut NodeCtx) -> R {
    let cond = cx.req(0)?;
    if let Some(taken) = known_condition(cx, cond) {
        // The other branch is dead, and is often ill-typed for the shapes at hand (function expansions
        // branch on the input rank): import only the taken one, in line.
        let branch = cx.subgraph(if taken { "then_branch" } else { "else_branch" }, &[])?;
        return inline_graph(cx, &branch);
    }
    let then_branch = cx.subgraph("then_branch", &[])?;
    let else_branch = cx.subgraph("else_branch", &[])?;
    let n = then_branch.outputs.len();
    cx.emit(
        If {
            then_branch,
            else_branch,
        },
        vec![Some(cond)],
        n,
    )
}

/// The value of a condition known at import time (a constant, or computed from static shapes).
fn known_condition(cx: &NodeCtx, v: ValueId) -> Option<bool> {
    let values = match cx.const_of(v) {
        Some(c) => c.to_i64s()?.into_iter().map(SymInt::Int).collect(),
        None => sym_value_of(cx.graph(), v, 0)?,
    };
    match values.as_slice() {
        [SymInt::Int(x)] => Some(*x != 0),
        _ => None,
    }
}

/// Emits the nodes of subgraph `g` into the current graph (its captures resolved to the values they
/// capture) and returns the values of its results.
fn inline_graph(cx: &mut NodeCtx, g: &Graph) -> R {
    let mut map: HashMap<ValueId, ValueId> =
        g.captures.iter().map(|c| (c.inner, c.outer)).collect();
    let lookup = |cx: &NodeCtx, map: &HashMap<ValueId, ValueId>, v: ValueId| {
        map.get(&v).copied().ok_or_else(|| {
            cx.err(format!(
                "branch value '{}' is used before it is defined",
                g.values.get(v.index()).map_or("?", |x| x.name.as_str())
            ))
        })
    };
    for node in &g.nodes {
        let outs = match &node.op {
            Op::Constant(c) => vec![cx.constant(c.clone())],
            op => {
                let mut op = op.clone();
                // Nested bodies captured values of the branch; they now capture ours.
                for sg in op.subgraphs_mut() {
                    for c in &mut sg.captures {
                        c.outer = lookup(cx, &map, c.outer)?;
                    }
                }
                let inputs = node
                    .inputs
                    .iter()
                    .map(|i| i.map(|v| lookup(cx, &map, v)).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                cx.emit(op, inputs, node.outputs.len())?
            }
        };
        map.extend(node.outputs.iter().copied().zip(outs));
    }
    g.outputs.iter().map(|&v| lookup(cx, &map, v)).collect()
}

fn output_type(g: &Graph, i: usize) -> Option<&Type> {
    g.outputs
        .get(i)
        .and_then(|&v| g.values.get(v.index()))
        .map(|v| &v.ty)
}

/// Imports body attribute `attr` whose formal inputs are `fixed_before`, the carried values (node inputs
/// `carried_inputs`), then `fixed_after`; the body's results `out_offset..` are the updated carried
/// values. Re-imports with widened carried types until the body's results fit its inputs. An initially
/// empty sequence takes the type of what the body makes of it.
fn import_body_fixpoint(
    cx: &mut NodeCtx,
    attr: &str,
    fixed_before: &[Type],
    carried_inputs: std::ops::Range<usize>,
    fixed_after: &[Type],
    out_offset: usize,
) -> Result<Graph, ImportError> {
    let mut carried = input_types(cx, carried_inputs.clone())?;
    let mut empty = Vec::with_capacity(carried.len());
    for i in carried_inputs {
        empty.push(is_empty_sequence(cx.graph(), cx.req(i)?));
    }
    let mut round = 0;
    loop {
        let formal: Vec<Option<Type>> = fixed_before
            .iter()
            .chain(&carried)
            .chain(fixed_after)
            .cloned()
            .map(Some)
            .collect();
        let body = cx.subgraph(attr, &formal)?;
        if round > MAX_WIDEN_ROUNDS {
            return Ok(body);
        }
        // The formal types the body actually got (the proto's declared types may refine ours).
        let mut changed = false;
        for (i, c) in carried.iter_mut().enumerate() {
            let got = body
                .inputs
                .get(fixed_before.len() + i)
                .map(|&v| body.ty(v).clone())
                .unwrap_or_else(|| c.clone());
            let Some(out) = output_type(&body, out_offset + i) else {
                return Ok(body); // arity errors are reported by the op's inference
            };
            let fits = if round == 0 && empty[i] {
                merge_types(&got, out).map(|_| inserted_type(&body, out_offset + i, out))
            } else {
                merge_maybe_optional(&got, out)
            };
            let widened = fits.ok_or_else(|| {
                cx.err(format!(
                    "carried value {i}: the body yields {out} but takes {got}"
                ))
            })?;
            if widened != got {
                changed = true;
                *c = if round == MAX_WIDEN_ROUNDS {
                    erase_shapes(&widened)
                } else {
                    widened
                };
            }
        }
        if !changed {
            return Ok(body);
        }
        round += 1;
    }
}

/// For a carried sequence that starts empty: the sequence type of the tensor the body inserts to make
/// result `k` (a guess the next round verifies), else the result's type `out`.
fn inserted_type(body: &Graph, k: usize, out: &Type) -> Type {
    let inserted = body
        .outputs
        .get(k)
        .and_then(|&v| body.producer(v))
        .and_then(|n| match &n.op {
            Op::Control(ControlOp::SequenceInsert(_)) => n.inputs.get(1).copied().flatten(),
            _ => None,
        });
    match inserted {
        Some(t) => Type::Sequence(Box::new(body.ty(t).clone())),
        None => out.clone(),
    }
}

fn input_types(cx: &NodeCtx, range: std::ops::Range<usize>) -> Result<Vec<Type>, ImportError> {
    range.map(|i| Ok(cx.ty(cx.req(i)?).clone())).collect()
}

fn import_loop(cx: &mut NodeCtx) -> R {
    let carried = 2..cx.num_inputs().max(2);
    let fixed = [
        Type::Tensor(TensorType::scalar(DType::I64)),
        Type::Tensor(TensorType::scalar(DType::Bool)),
    ];
    let n = carried.len();
    let body = import_body_fixpoint(cx, "body", &fixed, carried, &[], 1)?;
    let n_out = body.outputs.len().saturating_sub(1).max(n);
    let inputs = cx.inputs();
    cx.emit(Loop { body }, inputs, n_out)
}

fn import_scan(cx: &mut NodeCtx) -> R {
    if cx.opset() < 9 {
        return Err(cx.unsupported(
            "Scan-8 (the batched form with sequence_lens) is not supported; \
             re-export the model with opset >= 9",
        ));
    }
    let m = cx
        .get_i("num_scan_inputs")?
        .ok_or_else(|| cx.err("attribute 'num_scan_inputs' is required"))?;
    let total = cx.num_inputs();
    let m_us = usize::try_from(m)
        .ok()
        .filter(|&x| x >= 1 && x <= total)
        .ok_or_else(|| {
            cx.err(format!(
                "num_scan_inputs is {m} but the node has {total} inputs"
            ))
        })?;
    let n = total - m_us;
    let scan_input_axes = cx.ints("scan_input_axes")?;
    let scan_input_directions = cx.ints("scan_input_directions")?;
    let scan_output_axes = cx.ints("scan_output_axes")?;
    let scan_output_directions = cx.ints("scan_output_directions")?;
    if !scan_input_axes.is_empty() && scan_input_axes.len() != m_us {
        return Err(cx.err(format!(
            "scan_input_axes has {} entries for {m} scan inputs",
            scan_input_axes.len()
        )));
    }
    let mut slices = Vec::with_capacity(m_us);
    for j in 0..m_us {
        let t = cx.tensor_ty(n + j)?;
        let axis = scan_input_axes.get(j).copied().unwrap_or(0);
        let s = scan_slice_type(t, axis).map_err(|e| cx.err(format!("scan input {j}: {e}")))?;
        slices.push(Type::Tensor(s));
    }
    let body = import_body_fixpoint(cx, "body", &[], 0..n, &slices, 0)?;
    let n_out = body.outputs.len().max(n);
    let inputs = cx.inputs();
    cx.emit(
        Scan {
            body,
            num_scan_inputs: m,
            scan_input_axes,
            scan_input_directions,
            scan_output_axes,
            scan_output_directions,
        },
        inputs,
        n_out,
    )
}

fn import_sequence_map(cx: &mut NodeCtx) -> R {
    let mut formal = Vec::with_capacity(cx.num_inputs());
    for i in 0..cx.num_inputs() {
        let t = match cx.ty(cx.req(i)?) {
            Type::Sequence(e) => (**e).clone(),
            t => t.clone(),
        };
        formal.push(Some(t));
    }
    let body = cx.subgraph("body", &formal)?;
    let n = body.outputs.len();
    let inputs = cx.inputs();
    cx.emit(SequenceMap { body }, inputs, n)
}

fn import_optional(cx: &mut NodeCtx) -> R {
    if cx.input(0).is_some() {
        return cx.simple(Optional::default());
    }
    let attr = cx
        .attr("type")
        .ok_or_else(|| cx.err("an Optional without input needs the 'type' attribute"))?;
    let kind = AttributeType::try_from(attr.r#type).unwrap_or(AttributeType::Undefined);
    if !matches!(kind, AttributeType::TypeProto | AttributeType::Undefined) {
        return Err(cx.err(format!(
            "attribute 'type' must be a type proto, got {kind:?}"
        )));
    }
    let tp = attr
        .tp
        .as_ref()
        .ok_or_else(|| cx.err("attribute 'type' holds no type"))?;
    let ty = type_from_proto(tp).map_err(|m| cx.err(format!("attribute 'type': {m}")))?;
    let op = match &ty {
        Type::Tensor(t) => Optional {
            dtype: Some(t.dtype),
            sequence: false,
        },
        Type::Sequence(e) => match &**e {
            Type::Tensor(t) => Optional {
                dtype: Some(t.dtype),
                sequence: true,
            },
            _ => return Err(cx.err(format!("unsupported optional element type {ty}"))),
        },
        _ => return Err(cx.err(format!("unsupported optional element type {ty}"))),
    };
    cx.emit(op, vec![], 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::ImportError;
    use crate::proto::{
        AttributeProto, AttributeType, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
        TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
    };
    use crate::tensor::TensorLoader;
    use carve_ir::Graph;

    /// A tensor value info; `dims` entries `< 0` are unknown, `None` leaves the shape out.
    pub(crate) fn tensor_vi(name: &str, elem: i32, dims: Option<&[i64]>) -> ValueInfoProto {
        let shape = dims.map(|d| TensorShapeProto {
            dim: d
                .iter()
                .map(|&x| tensor_shape_proto::Dimension {
                    denotation: String::new(),
                    value: (x >= 0).then_some(tensor_shape_proto::dimension::Value::DimValue(x)),
                })
                .collect(),
        });
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                denotation: String::new(),
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: elem,
                    shape,
                })),
            }),
            ..Default::default()
        }
    }

    /// A value info without a type (for graph outputs inference should type).
    pub(crate) fn untyped(name: &str) -> ValueInfoProto {
        ValueInfoProto {
            name: name.into(),
            ..Default::default()
        }
    }

    pub(crate) fn node(
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        }
    }

    pub(crate) fn graph_attr(name: &str, g: GraphProto) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            r#type: AttributeType::Graph as i32,
            g: Some(g),
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

    pub(crate) fn graph(
        nodes: Vec<NodeProto>,
        inputs: Vec<ValueInfoProto>,
        outputs: Vec<ValueInfoProto>,
    ) -> GraphProto {
        GraphProto {
            node: nodes,
            input: inputs,
            output: outputs,
            ..Default::default()
        }
    }

    pub(crate) fn import(g: GraphProto, opsets: &[(&str, i64)]) -> Result<Graph, ImportError> {
        let m = ModelProto {
            ir_version: 8,
            opset_import: opsets
                .iter()
                .map(|&(d, v)| OperatorSetIdProto {
                    domain: d.into(),
                    version: v,
                })
                .collect(),
            graph: Some(g),
            ..Default::default()
        };
        crate::import_model(&m, &TensorLoader::default()).map(|m| m.graph)
    }

    pub(crate) fn output_types(g: &Graph) -> Vec<String> {
        g.outputs.iter().map(|&v| g.ty(v).to_string()).collect()
    }

    const F32: i32 = 1;
    const BOOL: i32 = 9;
    const I64: i32 = 7;

    #[test]
    fn loop_body_gets_formal_types_and_a_growing_sequence_is_typed() {
        // The body declares no input types; it appends the captured outer `x` to the carried sequence.
        let body = graph(
            vec![
                node("Identity", &["c"], &["c_out"], vec![]),
                node("SequenceInsert", &["q", "x"], &["q_out"], vec![]),
                node("Identity", &["x"], &["scan"], vec![]),
            ],
            vec![untyped("i"), untyped("c"), untyped("q")],
            vec![untyped("c_out"), untyped("q_out"), untyped("scan")],
        );
        let g = graph(
            vec![
                node("SequenceEmpty", &[], &["e"], vec![]),
                node(
                    "Loop",
                    &["m", "", "e"],
                    &["q_final", "stacked"],
                    vec![graph_attr("body", body)],
                ),
            ],
            vec![
                tensor_vi("x", F32, Some(&[3])),
                tensor_vi("m", I64, Some(&[])),
            ],
            vec![untyped("q_final"), untyped("stacked")],
        );
        let g = import(g, &[("", 17)]).unwrap();
        assert_eq!(output_types(&g), ["seq<f32[3]>", "f32[?,3]"]);
        let carve_ir::Op::Control(carve_ir::ops::control::ControlOp::Loop(l)) = &g.nodes[1].op
        else {
            panic!("expected a loop, got {:?}", g.nodes[1].op.name());
        };
        assert_eq!(l.body.captures.len(), 1);
        assert_eq!(
            l.body
                .inputs
                .iter()
                .map(|&v| l.body.ty(v).to_string())
                .collect::<Vec<_>>(),
            ["i64[]", "bool[]", "seq<f32[3]>"]
        );
    }

    #[test]
    fn scan_body_gets_slice_types() {
        let body = graph(
            vec![
                node("Add", &["s", "x"], &["s_out"], vec![]),
                node("Relu", &["x"], &["y"], vec![]),
            ],
            vec![untyped("s"), untyped("x")],
            vec![untyped("s_out"), untyped("y")],
        );
        let axes = AttributeProto {
            name: "scan_input_axes".into(),
            r#type: AttributeType::Ints as i32,
            ints: vec![1],
            ..Default::default()
        };
        let g = graph(
            vec![node(
                "Scan",
                &["s0", "xs"],
                &["s", "ys"],
                vec![
                    graph_attr("body", body),
                    int_attr("num_scan_inputs", 1),
                    axes,
                ],
            )],
            vec![
                tensor_vi("s0", F32, Some(&[2, 4])),
                tensor_vi("xs", F32, Some(&[2, 7, 4])),
            ],
            vec![untyped("s"), untyped("ys")],
        );
        let g = import(g, &[("", 16)]).unwrap();
        assert_eq!(output_types(&g), ["f32[2,4]", "f32[7,2,4]"]);
    }

    #[test]
    fn scan_8_is_refused_with_a_hint() {
        let body = graph(vec![], vec![untyped("s")], vec![untyped("s")]);
        let g = graph(
            vec![node(
                "Scan",
                &["", "s0"],
                &["s"],
                vec![graph_attr("body", body), int_attr("num_scan_inputs", 0)],
            )],
            vec![tensor_vi("s0", F32, Some(&[1, 2]))],
            vec![untyped("s")],
        );
        let err = import(g, &[("", 8)]).unwrap_err().to_string();
        assert!(err.contains("opset >= 9"), "{err}");
    }

    #[test]
    fn if_branches_capture_and_merge() {
        let then_g = graph(
            vec![node("Relu", &["a"], &["t"], vec![])],
            vec![],
            vec![untyped("t")],
        );
        let else_g = graph(
            vec![node("Relu", &["b"], &["e"], vec![])],
            vec![],
            vec![untyped("e")],
        );
        let g = graph(
            vec![node(
                "If",
                &["c"],
                &["r"],
                vec![
                    graph_attr("then_branch", then_g),
                    graph_attr("else_branch", else_g),
                ],
            )],
            vec![
                tensor_vi("c", BOOL, Some(&[])),
                tensor_vi("a", F32, Some(&[2, 3])),
                tensor_vi("b", F32, Some(&[2, 5])),
            ],
            vec![untyped("r")],
        );
        let g = import(g, &[("", 13)]).unwrap();
        assert_eq!(output_types(&g), ["f32[2,?]"]);
    }

    #[test]
    fn if_with_a_known_condition_inlines_the_taken_branch() {
        // The else branch is ill-typed (bool + f32): it must not be imported. The then branch holds an
        // If of its own capturing a value of the branch, which must be rewired to the inlined value.
        let inner_then = graph(
            vec![node("Relu", &["r"], &["it"], vec![])],
            vec![],
            vec![untyped("it")],
        );
        let inner_else = graph(
            vec![node("Identity", &["r"], &["ie"], vec![])],
            vec![],
            vec![untyped("ie")],
        );
        let then_g = graph(
            vec![
                node("Relu", &["a"], &["r"], vec![]),
                node(
                    "If",
                    &["d"],
                    &["t"],
                    vec![
                        graph_attr("then_branch", inner_then),
                        graph_attr("else_branch", inner_else),
                    ],
                ),
            ],
            vec![],
            vec![untyped("t")],
        );
        let else_g = graph(
            vec![node("Add", &["c", "a"], &["e"], vec![])],
            vec![],
            vec![untyped("e")],
        );
        let mut g = graph(
            vec![node(
                "If",
                &["c"],
                &["out"],
                vec![
                    graph_attr("then_branch", then_g),
                    graph_attr("else_branch", else_g),
                ],
            )],
            vec![
                tensor_vi("a", F32, Some(&[2, 3])),
                tensor_vi("d", BOOL, Some(&[])),
            ],
            vec![untyped("out")],
        );
        g.initializer.push(crate::proto::TensorProto {
            name: "c".into(),
            data_type: BOOL,
            raw_data: vec![1u8].into(),
            ..Default::default()
        });
        let g = import(g, &[("", 13)]).unwrap();
        assert_eq!(output_types(&g), ["f32[2,3]"]);
        let names: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(names, ["const", "relu", "if"]);
        let inner = g.nodes[2].op.subgraphs()[0];
        assert_eq!(inner.captures[0].outer, g.nodes[1].outputs[0]);
    }

    #[test]
    fn empty_optional_reads_its_type_attribute() {
        let tp = TypeProto {
            denotation: String::new(),
            value: Some(type_proto::Value::SequenceType(Box::new(
                type_proto::Sequence {
                    elem_type: Some(Box::new(
                        tensor_vi("_", F32, None).r#type.unwrap_or_default(),
                    )),
                },
            ))),
        };
        let attr = AttributeProto {
            name: "type".into(),
            r#type: AttributeType::TypeProto as i32,
            tp: Some(tp),
            ..Default::default()
        };
        let g = graph(
            vec![
                node("Optional", &[], &["o"], vec![attr]),
                node("OptionalHasElement", &["o"], &["h"], vec![]),
            ],
            vec![],
            vec![untyped("o"), untyped("h")],
        );
        let g = import(g, &[("", 18)]).unwrap();
        assert_eq!(output_types(&g), ["opt<seq<f32[*]>>", "bool[]"]);
    }
}
