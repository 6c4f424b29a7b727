//! Round-trip tests of the text format; the error-position and robustness tests are in [`errors`].

use std::collections::HashMap;

use super::parse::{Parser, Scope};
use super::print::{Names, Outer, Printer, type_text};
use super::{Name, parse, print};
use crate::ops::AttrValue;
use crate::ops::elementwise::{Add, Cast, LeakyRelu, Relu};
use crate::ops::movement::{Identity, ShapeOf};
use crate::{
    Buffer, Capture, ConstData, ConstFormat, Constant, DType, Dim, Graph, Node, Op, Quant,
    QuantAxis, Shape, TensorType, Type, ValueId,
};

mod errors;

fn tensor(d: DType, dims: &[Dim]) -> Type {
    Type::Tensor(TensorType::new(d, Shape(dims.to_vec())))
}

fn f32s(dims: &[u64]) -> Type {
    Type::Tensor(TensorType::known(DType::F32, dims))
}

fn k(n: u64) -> Dim {
    Dim::Known(n)
}

fn sym(s: &str) -> Dim {
    Dim::Sym(s.to_string())
}

/// Appends a node whose outputs have exactly `types` (no inference).
fn node(g: &mut Graph, op: Op, inputs: Vec<Option<ValueId>>, types: Vec<Type>) -> Vec<ValueId> {
    let outputs: Vec<ValueId> = types.into_iter().map(|t| g.add_value("", t)).collect();
    g.push_node(Node {
        name: String::new(),
        op,
        inputs,
        outputs: outputs.clone(),
    });
    outputs
}

/// Prints `g`, parses it back, prints again and checks both texts are identical.
#[track_caller]
fn round_trip(g: &Graph) -> (String, Graph) {
    let text = print(g);
    let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(print(&parsed), text);
    (text, parsed)
}

fn bytes_const(dtype: DType, dims: &[u64], bytes: Vec<u8>) -> Constant {
    Constant {
        ty: TensorType::known(dtype, dims),
        format: ConstFormat::Dense,
        data: ConstData::Bytes(Buffer::from_vec(bytes)),
    }
}

#[test]
fn a_small_graph_prints_in_the_documented_shape() {
    let mut g = Graph::new("block");
    let x = g.add_input("x", tensor(DType::F32, &[sym("N"), k(64)]));
    let w = g.add_const("w", Constant::from_i64s(&[2], &[1, -1]));
    let y = g
        .add_node("", Relu::default().into(), vec![Some(x)], vec!["y".into()])
        .unwrap();
    let s = g
        .add_node(
            "",
            ShapeOf {
                start: -1,
                end: None,
            }
            .into(),
            vec![Some(y[0])],
            vec!["s".into()],
        )
        .unwrap();
    g.outputs = vec![y[0], s[0], w];
    let (text, _) = round_trip(&g);
    assert_eq!(
        text,
        "graph @block(%x: f32[N,64]) -> (f32[N,64], i64[1], i64[2]) {
  %0 = const i64[2] [1, -1]
  %1 = relu(%x) : f32[N,64]
  %2 = shape(%1) {start=-1} : i64[1]
  return %1, %2, %0
}
"
    );
}

#[test]
fn symbolic_unknown_and_unranked_dims_round_trip() {
    let mut g = Graph::new("dims");
    let a = g.add_input("a", tensor(DType::F32, &[sym("N"), k(3), Dim::Unknown]));
    let b = g.add_input("b", Type::Tensor(TensorType::unranked(DType::F32)));
    let c = g.add_input("c", tensor(DType::I64, &[]));
    let d = g.add_input(
        "d",
        tensor(
            DType::F16,
            &[sym("batch size"), sym("3"), sym("?"), sym("")],
        ),
    );
    let sum = node(
        &mut g,
        Add::default().into(),
        vec![Some(a), Some(b)],
        vec![Type::Tensor(TensorType::unranked(DType::F32))],
    );
    g.outputs = vec![sum[0], c, d];
    let (text, parsed) = round_trip(&g);
    assert!(text.contains("%b: f32[*]"), "{text}");
    assert!(text.contains(r#"f16["batch size","3","?",""]"#), "{text}");
    assert!(text.contains("%c: i64[]"), "{text}");
    assert_eq!(parsed.ty(parsed.inputs[3]), g.ty(d));
    assert_eq!(parsed.ty(parsed.inputs[0]), g.ty(a));
}

#[test]
fn type_text_is_display_for_plain_types() {
    let q = Quant {
        axis: QuantAxis::PerBlock { axis: 1, block: 32 },
        scale: vec![0.5, f32::NAN, f32::INFINITY, -1e-9],
        zero_point: vec![0, -3],
    };
    let types = [
        tensor(DType::F32, &[sym("N"), k(64), Dim::Unknown]),
        Type::Tensor(TensorType::unranked(DType::BF16)),
        Type::Tensor(TensorType {
            dtype: DType::I4,
            shape: Some(Shape::known(&[4, 64])),
            quant: Some(Box::new(q)),
        }),
        Type::Map(
            DType::String,
            Box::new(Type::Sequence(Box::new(Type::Optional(Box::new(
                f32s(&[]),
            ))))),
        ),
    ];
    for t in &types {
        assert_eq!(type_text(t), t.to_string());
    }
}

#[test]
fn quantized_and_container_types_round_trip() {
    let mut g = Graph::new("quant");
    let per_tensor = Type::Tensor(TensorType {
        dtype: DType::U8,
        shape: Some(Shape(vec![sym("N"), k(16)])),
        quant: Some(Box::new(Quant {
            axis: QuantAxis::PerTensor,
            scale: vec![0.0078125],
            zero_point: vec![128],
        })),
    });
    let per_axis = Type::Tensor(TensorType {
        dtype: DType::I8,
        shape: Some(Shape::known(&[2, 3])),
        quant: Some(Box::new(Quant {
            axis: QuantAxis::PerAxis { axis: 0 },
            scale: vec![0.1, 3e-7],
            zero_point: vec![0, -1],
        })),
    });
    let per_block = Type::Tensor(TensorType {
        dtype: DType::I4,
        shape: Some(Shape::known(&[2, 64])),
        quant: Some(Box::new(Quant {
            axis: QuantAxis::PerBlock { axis: 1, block: 32 },
            scale: vec![1.0, f32::NAN, f32::INFINITY, -0.0],
            zero_point: vec![0, 0, 1, 2],
        })),
    });
    let inputs = [
        per_tensor.clone(),
        per_axis.clone(),
        per_block.clone(),
        Type::Sequence(Box::new(per_axis.clone())),
        Type::Optional(Box::new(Type::Sequence(Box::new(f32s(&[3]))))),
        Type::Map(DType::I64, Box::new(per_tensor.clone())),
    ];
    for (i, t) in inputs.iter().enumerate() {
        let v = g.add_input(format!("in{i}"), t.clone());
        g.outputs.push(v);
    }
    let in0 = g.inputs[0];
    let cast = node(
        &mut g,
        Cast {
            to: DType::I8,
            saturate: false,
            ..Cast::default()
        }
        .into(),
        vec![Some(in0)],
        vec![per_axis.clone()],
    );
    g.outputs.push(cast[0]);
    let qc = g.add_const(
        "qc",
        Constant {
            ty: match &per_axis {
                Type::Tensor(t) => t.clone(),
                _ => unreachable!(),
            },
            format: ConstFormat::Dense,
            data: ConstData::Bytes(Buffer::from_vec(vec![1, 2, 3, 0xff, 0x80, 0x7f])),
        },
    );
    g.outputs.push(qc);
    let (text, parsed) = round_trip(&g);
    assert!(
        text.contains("%0 = cast(%in0) {saturate=false, to=i8} : i8[2,3] q(axis=0, scale=[0.1,3e-7], zp=[0,-1])"),
        "{text}"
    );
    assert!(
        text.contains("i8[2,3] q(axis=0, scale=[0.1,3e-7], zp=[0,-1]) [1, 2, 3, -1, -128, 127]"),
        "{text}"
    );
    for (a, b) in g.outputs.iter().zip(&parsed.outputs) {
        assert_eq!(type_text(g.ty(*a)), type_text(parsed.ty(*b)));
    }
}

#[test]
fn multi_output_nodes_omitted_inputs_and_result_less_nodes_round_trip() {
    let mut g = Graph::new("multi");
    let x = g.add_input("x", f32s(&[2]));
    let y = g.add_input("y", f32s(&[2]));
    let outs = node(
        &mut g,
        Identity::default().into(),
        vec![Some(x), None, Some(y), None],
        vec![f32s(&[2]), tensor(DType::I64, &[sym("K")])],
    );
    node(&mut g, Relu::default().into(), vec![Some(outs[1])], vec![]);
    node(&mut g, Add::default().into(), vec![], vec![f32s(&[])]);
    g.outputs = vec![outs[1], outs[0], outs[0]];
    let (text, parsed) = round_trip(&g);
    assert!(
        text.contains("  %0, %1 = identity(%x, _, %y, _) : f32[2], i64[K]\n  _ = relu(%1)\n  %2 = add() : f32[]\n  return %1, %0, %0\n"),
        "{text}"
    );
    assert_eq!(
        parsed.nodes[0].inputs,
        vec![Some(ValueId(0)), None, Some(ValueId(1)), None]
    );
    assert_eq!(parsed.nodes[0].outputs.len(), 2);
    assert_eq!(
        parsed.value(parsed.outputs[0]).producer.map(|p| p.1),
        Some(1)
    );
}

#[test]
fn attributes_print_sorted_without_defaults_and_parse_back_typed() {
    let mut g = Graph::new("attrs");
    let x = g.add_input("x", f32s(&[4]));
    let a = node(
        &mut g,
        LeakyRelu { alpha: 0.1 }.into(),
        vec![Some(x)],
        vec![f32s(&[4])],
    );
    let b = node(
        &mut g,
        LeakyRelu { alpha: 0.01 }.into(),
        vec![Some(a[0])],
        vec![f32s(&[4])],
    );
    let c = node(
        &mut g,
        LeakyRelu {
            alpha: f32::from_bits(0x7fc0_0001),
        }
        .into(),
        vec![Some(b[0])],
        vec![f32s(&[4])],
    );
    let d = node(
        &mut g,
        LeakyRelu {
            alpha: f32::NEG_INFINITY,
        }
        .into(),
        vec![Some(c[0])],
        vec![f32s(&[4])],
    );
    let e = node(
        &mut g,
        ShapeOf {
            start: 1,
            end: Some(-1),
        }
        .into(),
        vec![Some(d[0])],
        vec![tensor(DType::I64, &[k(0)])],
    );
    g.outputs = vec![e[0]];
    let (text, parsed) = round_trip(&g);
    assert!(text.contains("leaky_relu(%x) {alpha=0.1}"), "{text}");
    assert!(text.contains("%1 = leaky_relu(%0) : f32[4]"), "{text}");
    assert!(text.contains("{alpha=nan(0x7fc00001)}"), "{text}");
    assert!(text.contains("{alpha=-inf}"), "{text}");
    assert!(text.contains("shape(%3) {end=-1, start=1}"), "{text}");
    match &parsed.nodes[2].op {
        Op::Elementwise(crate::ops::elementwise::ElementwiseOp::LeakyRelu(l)) => {
            assert_eq!(l.alpha.to_bits(), 0x7fc0_0001)
        }
        o => panic!("{o:?}"),
    }
}

/// A graph holding one constant of each given kind, each also a result.
fn const_graph(consts: Vec<Constant>) -> Graph {
    let mut g = Graph::new("consts");
    for c in consts {
        let v = g.add_const("", c);
        g.outputs.push(v);
    }
    g
}

fn parsed_consts(g: &Graph) -> Vec<Constant> {
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Constant(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn small_constants_of_every_dtype_round_trip_exactly() {
    let mut consts = Vec::new();
    for d in DType::all() {
        let c = if d == DType::String {
            Constant {
                ty: TensorType::known(d, &[3]),
                format: ConstFormat::Dense,
                data: ConstData::Strings(vec!["a".into(), "\"quoted\"\n\u{1}".into(), "é".into()]),
            }
        } else {
            let n = d.storage_bytes(3).unwrap() as usize;
            let mut bytes: Vec<u8> = (0..n)
                .map(|i| (i as u8).wrapping_mul(37).wrapping_add(5))
                .collect();
            match d {
                DType::Bool => bytes = vec![1, 0, 1],
                // Keep the padding bits of the last byte clear so the values print as elements.
                DType::I4 | DType::U4 => bytes[1] &= 0x0f,
                DType::I2 | DType::U2 => bytes[0] &= 0x3f,
                _ => {}
            }
            bytes_const(d, &[3], bytes)
        };
        consts.push(c);
    }
    let g = const_graph(consts.clone());
    let (text, parsed) = round_trip(&g);
    assert_eq!(parsed_consts(&parsed), consts);
    for line in [
        "const i64[3] [",
        "const bool[3] [true, false, true]",
        "const u2[3] [1, 1, 0]",
        "const i4[3] [5, 0, -6]",
        "const f8e4m3fn[3] x\"052a4f\"",
        "const c128[3] x\"",
        "const string[3] [\"a\", \"\\\"quoted\\\"\\n\\u{1}\", \"é\"]",
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[test]
fn float_constants_keep_every_bit() {
    let f32v = [
        0.1f32,
        -0.0,
        1e-45,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0xffc0_0000),
        f32::from_bits(0x7f80_0001),
    ];
    let f64v = [
        0.1f64,
        -0.0,
        5e-324,
        f64::NAN,
        f64::from_bits(0xfff8_0000_0000_0001),
    ];
    let f16v: Vec<u16> = vec![0x0001, 0x3555, 0x7c00, 0xfc00, 0x7e00, 0x7e01, 0x8000];
    let bf16v: Vec<u16> = vec![0x0001, 0x3dcd, 0x7f80, 0x7fc0, 0xffc1];
    let consts = vec![
        bytes_const(
            DType::F32,
            &[f32v.len() as u64],
            f32v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        bytes_const(
            DType::F64,
            &[f64v.len() as u64],
            f64v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        bytes_const(
            DType::F16,
            &[f16v.len() as u64],
            f16v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        bytes_const(
            DType::BF16,
            &[bf16v.len() as u64],
            bf16v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    ];
    let g = const_graph(consts.clone());
    let (text, parsed) = round_trip(&g);
    assert_eq!(parsed_consts(&parsed), consts);
    assert!(
        text.contains(
            "[0.1, -0.0, 1e-45, 3.4028235e38, inf, -inf, nan, nan(0xffc00000), nan(0x7f800001)]"
        ),
        "{text}"
    );
    assert!(text.contains("nan(0x7e01)"), "{text}");
}

#[test]
fn odd_byte_contents_fall_back_to_raw_bytes() {
    let consts = vec![
        // Padding bits set: printing elements would lose them.
        bytes_const(DType::I4, &[3], vec![0x21, 0xf3]),
        // A bool byte that is neither 0 nor 1.
        bytes_const(DType::Bool, &[2], vec![1, 2]),
        // Wrong length for the type.
        bytes_const(DType::F32, &[2], vec![0, 0, 0]),
        // Raw bytes of a string tensor.
        bytes_const(DType::String, &[0], vec![]),
        // Empty tensors.
        bytes_const(DType::F32, &[0, 4], vec![]),
        Constant {
            ty: TensorType::known(DType::String, &[0]),
            format: ConstFormat::Dense,
            data: ConstData::Strings(vec![]),
        },
    ];
    let g = const_graph(consts.clone());
    let (text, parsed) = round_trip(&g);
    assert_eq!(parsed_consts(&parsed), consts);
    assert!(text.contains("const i4[3] x\"21f3\""), "{text}");
    assert!(text.contains("const f32[0,4] []"), "{text}");
}

#[test]
fn a_million_element_constant_is_shown_by_hash() {
    let values: Vec<f32> = (0..1_000_000).map(|i| i as f32 * 0.5).collect();
    let c = Constant::from_f32s(&[1000, 1000], &values);
    let hash = c.content_hash();
    let mut g = Graph::new("big");
    let x = g.add_input("x", f32s(&[1000, 1000]));
    let w = g.add_const("w", c);
    let y = node(
        &mut g,
        Add::default().into(),
        vec![Some(x), Some(w)],
        vec![f32s(&[1000, 1000])],
    );
    g.outputs = y;
    let (text, parsed) = round_trip(&g);
    assert!(
        text.contains(&format!("%0 = const f32[1000,1000] #{hash:016x}\n")),
        "{text}"
    );
    assert!(text.len() < 300);
    assert_eq!(parsed_consts(&parsed)[0].data, ConstData::Elided { hash });
}

#[test]
fn sparse_formats_and_retyped_constants_round_trip() {
    let fmt = |format: ConstFormat, n: u64, bytes: Vec<u8>| Constant {
        ty: TensorType::known(DType::F32, &[n, 4]),
        format,
        data: ConstData::Bytes(Buffer::from_vec(bytes)),
    };
    let consts = vec![
        fmt(ConstFormat::Csr, 2, vec![1, 2, 3]),
        fmt(ConstFormat::BlockCsr { rows: 4, cols: 1 }, 4, vec![]),
        fmt(ConstFormat::Bitmap, 3, vec![0xff]),
        fmt(ConstFormat::NofM { n: 2, m: 4 }, 4, vec![9]),
        fmt(ConstFormat::NofM { n: 2, m: 4 }, 64, vec![9; 16]),
        fmt(ConstFormat::Csr, 100, vec![0; 10]),
    ];
    let mut g = const_graph(consts);
    // A constant node whose value type was refined past the constant's own type.
    let v = g.add_const("", Constant::from_i64s(&[2], &[3, 4]));
    g.values[v.index()].ty = tensor(DType::I64, &[sym("two")]);
    g.outputs.push(v);
    let (text, parsed) = round_trip(&g);
    assert!(text.contains("const f32[2,4] csr x\"010203\""), "{text}");
    assert!(text.contains("const f32[4,4] bcsr4x1 x\"\""), "{text}");
    assert!(text.contains("const f32[3,4] bitmap x\"ff\""), "{text}");
    assert!(text.contains("const f32[4,4] 2:4 x\"09\""), "{text}");
    assert!(text.contains("const f32[64,4] 2:4 #"), "{text}");
    assert!(text.contains("const i64[2] [3, 4] : i64[two]"), "{text}");
    assert_eq!(parsed.ty(*parsed.outputs.last().unwrap()), g.ty(v));
}

#[test]
fn input_names_are_quoted_and_made_unique() {
    let mut g = Graph::new("my graph");
    for n in ["input.1", "x", "x", "x.1", "3", "", "a\"b\\c", "_"] {
        let v = g.add_input(n, f32s(&[1]));
        g.outputs.push(v);
    }
    let (text, parsed) = round_trip(&g);
    assert!(
        text.starts_with(
            r#"graph @"my graph"(%"input.1": f32[1], %x: f32[1], %"x.1": f32[1], %"x.1.1": f32[1], %"3": f32[1], %"": f32[1], %"a\"b\\c": f32[1], %_: f32[1])"#
        ),
        "{text}"
    );
    assert_eq!(parsed.value(parsed.inputs[0]).name, "input.1");
    assert_eq!(parsed.name, "my graph");
}

#[test]
fn comments_and_free_layout_parse() {
    let g = parse(
        "// a comment\ngraph @g(%x: f32[2]) -> (f32[2]) { // trailing\n %a = relu(%x)\n : f32[2] return %a }",
    )
    .unwrap();
    assert_eq!(
        print(&g),
        "graph @g(%x: f32[2]) -> (f32[2]) {\n  %0 = relu(%x) : f32[2]\n  return %0\n}\n"
    );
}

/// An outer graph `%x, %"input.1", %0 = relu(%x)`, for attribute-level tests.
fn outer_graph() -> Graph {
    let mut g = Graph::new("outer");
    let x = g.add_input("x", f32s(&[2]));
    g.add_input("input.1", tensor(DType::I64, &[]));
    node(
        &mut g,
        Relu::default().into(),
        vec![Some(x)],
        vec![f32s(&[2])],
    );
    g
}

/// Prints `v` as an attribute of a node at the end of `outer`, parses it back in that scope and checks the
/// reprint is identical.
#[track_caller]
fn attr_round_trip(outer: &Graph, v: &AttrValue) -> (String, AttrValue) {
    let names = Names::of(outer, None, 0);
    let base = names.after.last().copied().unwrap_or(0);
    let here = Outer {
        graph: outer,
        names: &names,
    };
    let mut p = Printer { out: String::new() };
    p.attr_value(v, here, 2, base);
    let text = p.out;
    let map: HashMap<Name, ValueId> = (0..outer.values.len() as u32)
        .filter_map(|i| names.get(ValueId(i)).map(|n| (n.clone(), ValueId(i))))
        .collect();
    let mut parser = Parser::new(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let parsed = parser
        .attr_value(Scope {
            graph: outer,
            names: &map,
        })
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut p = Printer { out: String::new() };
    p.attr_value(&parsed, here, 2, base);
    assert_eq!(p.out, text);
    (text, parsed)
}

#[test]
fn every_attribute_value_kind_round_trips() {
    let outer = outer_graph();
    let small = Constant::from_f32s(&[2], &[0.5, -1.0]);
    let big = Constant::from_i64s(&[17], &[7; 17]);
    let cases: Vec<(AttrValue, &str)> = vec![
        (AttrValue::Int(-5), "-5"),
        (AttrValue::Int(i64::MIN), "-9223372036854775808"),
        (AttrValue::Float(0.25), "0.25"),
        (AttrValue::Float(3.0), "3.0"),
        (AttrValue::Float(1e30), "1e30"),
        (AttrValue::Float(f32::INFINITY), "inf"),
        (AttrValue::Float(f32::NAN), "nan"),
        (AttrValue::Bool(true), "true"),
        (AttrValue::Bool(false), "false"),
        (
            AttrValue::Str("a \"q\"\n\\ é\t".into()),
            r#""a \"q\"\n\\ é\t""#,
        ),
        (AttrValue::Ident("half_pixel".into()), "half_pixel"),
        (AttrValue::Ints(vec![]), "[]"),
        (AttrValue::Ints(vec![1, -2, 3]), "[1, -2, 3]"),
        (AttrValue::Floats(vec![1.5, -0.0, 2.0]), "[1.5, -0.0, 2.0]"),
        (AttrValue::Strs(vec!["a".into(), "".into()]), r#"["a", ""]"#),
        (
            AttrValue::Tensor(Box::new(small)),
            "const f32[2] [0.5, -1.0]",
        ),
        (
            AttrValue::Tensor(Box::new(big.clone())),
            &*format!("const i64[17] #{:016x}", big.content_hash()).leak(),
        ),
        (AttrValue::None, "_"),
    ];
    for (v, want) in &cases {
        let (text, parsed) = attr_round_trip(&outer, v);
        assert_eq!(&text, want);
        let want = match v {
            AttrValue::Tensor(c) if c.num_elements() > crate::INLINE_ELEMENTS => {
                AttrValue::Tensor(Box::new(Constant {
                    data: ConstData::Elided {
                        hash: c.content_hash(),
                    },
                    ..(**c).clone()
                }))
            }
            v => v.clone(),
        };
        match (&parsed, &want) {
            (AttrValue::Float(a), AttrValue::Float(b)) => assert_eq!(a.to_bits(), b.to_bits()),
            _ => assert_eq!(parsed, want),
        }
    }
}

/// A loop-body-like subgraph of `outer_graph()`: an input named like an outer value, captures of `%x`
/// (clashing with that input), `%0` and `%"input.1"` (with a refined type), and a few nodes.
fn body_graph() -> Graph {
    let mut b = Graph::new("body");
    let i = b.add_input("x", tensor(DType::I64, &[]));
    let cx = b.add_value("x", f32s(&[2]));
    let c0 = b.add_value("", f32s(&[2]));
    let c1 = b.add_value("input.1", tensor(DType::I64, &[]));
    b.captures = vec![
        Capture {
            inner: cx,
            outer: ValueId(0),
        },
        Capture {
            inner: c0,
            outer: ValueId(2),
        },
        Capture {
            inner: c1,
            outer: ValueId(1),
        },
    ];
    b.values[c1.index()].ty = tensor(DType::I64, &[k(1)]);
    let s = node(
        &mut b,
        Add::default().into(),
        vec![Some(cx), Some(c0)],
        vec![f32s(&[2])],
    );
    let t = node(
        &mut b,
        Add::default().into(),
        vec![Some(i), Some(c1)],
        vec![tensor(DType::I64, &[k(1)])],
    );
    b.outputs = vec![s[0], t[0]];
    b
}

#[test]
fn subgraphs_print_nested_with_explicit_captures() {
    let outer = outer_graph();
    let body = body_graph();
    let (text, parsed) = attr_round_trip(&outer, &AttrValue::Graph(Box::new(body.clone())));
    assert_eq!(
        text,
        r#"graph @body(%x: i64[]) captures(%x as %1, %0, %"input.1": i64[1]) -> (f32[2], i64[1]) {
    %2 = add(%1, %0) : f32[2]
    %3 = add(%x, %"input.1") : i64[1]
  }"#
        .replace("  }", "    return %2, %3\n  }")
    );
    let AttrValue::Graph(pg) = parsed else {
        panic!("not a graph")
    };
    let outers: Vec<ValueId> = pg.captures.iter().map(|c| c.outer).collect();
    assert_eq!(outers, vec![ValueId(0), ValueId(2), ValueId(1)]);
    for (c, d) in pg.captures.iter().zip(&body.captures) {
        assert_eq!(pg.ty(c.inner), body.ty(d.inner));
    }
}

#[test]
fn a_top_level_graph_with_captures_names_parent_values_by_index() {
    let body = body_graph();
    let (text, parsed) = round_trip(&body);
    assert!(
        text.starts_with(
            "graph @body(%x: i64[]) captures(%0: f32[2], %2 as %1: f32[2], %1 as %2: i64[1]) -> (f32[2], i64[1]) {"
        ),
        "{text}"
    );
    assert_eq!(parsed.captures.len(), 3);
    assert_eq!(parsed.captures[1].outer, ValueId(2));
}
