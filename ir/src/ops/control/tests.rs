//! Unit tests of control-flow inference: branch and loop-carried type merging, scan slicing, sequences
//! and optionals.

use super::*;
use crate::ops::elementwise::{Add, Relu};
use crate::ops::movement::Identity;
use crate::{Capture, Constant};

fn f32t(dims: &[Dim]) -> Type {
    Type::Tensor(TensorType::new(DType::F32, Shape(dims.to_vec())))
}
fn k(n: u64) -> Dim {
    Dim::Known(n)
}
fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}
fn scalar(d: DType) -> Type {
    Type::Tensor(TensorType::scalar(d))
}
fn node(g: &mut Graph, op: impl Into<Op>, inputs: &[ValueId]) -> ValueId {
    g.add_node(
        "n",
        op.into(),
        inputs.iter().map(|&v| Some(v)).collect(),
        vec!["o".into()],
    )
    .unwrap()[0]
}
/// Makes `outer` visible inside `g` as a capture.
fn capture(g: &mut Graph, outer_graph: &Graph, outer: ValueId) -> ValueId {
    let inner = g.add_value("cap", outer_graph.ty(outer).clone());
    g.captures.push(Capture { inner, outer });
    inner
}
fn types(g: &Graph, vs: &[ValueId]) -> Vec<String> {
    vs.iter().map(|&v| g.ty(v).to_string()).collect()
}

#[test]
fn if_merges_branch_types_and_reads_captures() {
    let mut g = Graph::new("main");
    let c = g.add_input("c", scalar(DType::Bool));
    let a = g.add_input("a", f32t(&[sym("N"), k(3)]));
    let b = g.add_input("b", f32t(&[sym("N"), k(4)]));
    let mut then_branch = Graph::new("then");
    let ca = capture(&mut then_branch, &g, a);
    let t = node(&mut then_branch, Relu {}, &[ca]);
    then_branch.outputs = vec![t];
    let mut else_branch = Graph::new("else");
    let cb = capture(&mut else_branch, &g, b);
    let e = node(&mut else_branch, Relu {}, &[cb]);
    else_branch.outputs = vec![e];
    let op = If {
        then_branch: then_branch.clone(),
        else_branch,
    };
    let r = g
        .add_node("if", op.into(), vec![Some(c)], vec!["r".into()])
        .unwrap();
    assert_eq!(types(&g, &r), ["f32[N,?]"]);

    // A constant condition selects one branch exactly.
    let yes = g.add_const("yes", bool_const(true));
    let mut else2 = Graph::new("else");
    let cb = capture(&mut else2, &g, b);
    let e = node(&mut else2, Relu {}, &[cb]);
    else2.outputs = vec![e];
    let op = If {
        then_branch,
        else_branch: else2,
    };
    let r = g
        .add_node("if2", op.into(), vec![Some(yes)], vec!["r".into()])
        .unwrap();
    assert_eq!(types(&g, &r), ["f32[N,3]"]);
}

fn bool_const(v: bool) -> Constant {
    Constant::dense(
        TensorType::scalar(DType::Bool),
        crate::Buffer::from_vec(vec![u8::from(v)]),
    )
    .unwrap()
}

#[test]
fn if_rejects_branches_of_different_element_types() {
    let mut g = Graph::new("main");
    let c = g.add_input("c", scalar(DType::Bool));
    let mut t = Graph::new("then");
    let x = t.add_const("x", Constant::from_f32s(&[1], &[1.0]));
    t.outputs = vec![x];
    let mut e = Graph::new("else");
    let y = e.add_const("y", Constant::from_i64s(&[1], &[1]));
    e.outputs = vec![y];
    let op = If {
        then_branch: t,
        else_branch: e,
    };
    let err = g
        .add_node("if", op.into(), vec![Some(c)], vec!["r".into()])
        .unwrap_err();
    assert!(err.msg.contains("then_branch gives f32[1]"), "{err}");
}

/// Loop body `(i, cond, y) -> (cond, y + x, y + x)` where `x` is captured from `outer`.
fn accumulate_body(outer: &Graph, x: ValueId, carried: Type) -> Graph {
    let mut body = Graph::new("body");
    body.add_input("i", scalar(DType::I64));
    let c = body.add_input("cond", scalar(DType::Bool));
    let y = body.add_input("y", carried);
    let cx = capture(&mut body, outer, x);
    let s = node(&mut body, Add {}, &[y, cx]);
    let c_out = node(&mut body, Identity {}, &[c]);
    let scan = node(&mut body, Identity {}, &[s]);
    body.outputs = vec![c_out, s, scan];
    body
}

#[test]
fn loop_with_constant_trip_count_stacks_scan_outputs() {
    let mut g = Graph::new("main");
    let x = g.add_input("x", f32t(&[sym("N"), k(2)]));
    let y0 = g.add_input("y0", f32t(&[sym("N"), k(2)]));
    let m = g.add_const("m", Constant::from_i64s(&[], &[5]));
    let body = accumulate_body(&g, x, f32t(&[sym("N"), k(2)]));
    let r = g
        .add_node(
            "loop",
            Loop { body }.into(),
            vec![Some(m), None, Some(y0)],
            vec!["y".into(), "s".into()],
        )
        .unwrap();
    assert_eq!(types(&g, &r), ["f32[N,2]", "f32[5,N,2]"]);
}

#[test]
fn loop_trip_count_follows_condition() {
    let mut g = Graph::new("main");
    let x = g.add_input("x", f32t(&[k(2)]));
    let y0 = g.add_input("y0", f32t(&[k(2)]));
    let m = g.add_const("m", Constant::from_i64s(&[], &[7]));
    let yes = g.add_const("yes", bool_const(true));
    let no = g.add_const("no", bool_const(false));
    let runtime = g.add_input("c", scalar(DType::Bool));
    let n_in = g.add_input("n", scalar(DType::I64));
    let run = |g: &mut Graph, m: Option<ValueId>, c: Option<ValueId>| {
        let body = accumulate_body(g, x, f32t(&[k(2)]));
        let r = g
            .add_node(
                "loop",
                Loop { body }.into(),
                vec![m, c, Some(y0)],
                vec!["y".into(), "s".into()],
            )
            .unwrap();
        g.ty(r[1]).to_string()
    };
    // The body passes its condition through, so a constant-true start runs all M iterations.
    assert_eq!(run(&mut g, Some(m), Some(yes)), "f32[7,2]");
    assert_eq!(run(&mut g, Some(m), Some(no)), "f32[0,2]");
    assert_eq!(run(&mut g, Some(m), Some(runtime)), "f32[?,2]");
    assert_eq!(run(&mut g, None, Some(yes)), "f32[?,2]");
    assert_eq!(run(&mut g, Some(n_in), None), "f32[?,2]");
}

#[test]
fn loop_carried_value_that_changes_shape_is_merged() {
    let mut g = Graph::new("main");
    let y0 = g.add_input("y0", f32t(&[k(2), k(3)]));
    let m = g.add_input("m", scalar(DType::I64));
    // Body: y -> concat([y, y], axis 0) (shape changes every iteration).
    let mut body = Graph::new("body");
    body.add_input("i", scalar(DType::I64));
    let c = body.add_input("cond", scalar(DType::Bool));
    let y = body.add_input("y", f32t(&[Dim::Unknown, k(3)]));
    let sq = node(&mut body, SequenceConstruct {}, &[y, y]);
    let cat = node(
        &mut body,
        ConcatFromSequence {
            axis: 0,
            new_axis: false,
        },
        &[sq],
    );
    body.outputs = vec![c, cat];
    let r = g
        .add_node(
            "loop",
            Loop { body }.into(),
            vec![Some(m), None, Some(y0)],
            vec!["y".into()],
        )
        .unwrap();
    assert_eq!(types(&g, &r), ["f32[?,3]"]);
}

#[test]
fn loop_growing_an_empty_sequence_takes_the_body_type() {
    let mut g = Graph::new("main");
    let x = g.add_input("x", f32t(&[k(3)]));
    let m = g.add_input("m", scalar(DType::I64));
    let e = node(&mut g, SequenceEmpty { dtype: DType::F32 }, &[]);
    let mut body = Graph::new("body");
    body.add_input("i", scalar(DType::I64));
    let c = body.add_input("cond", scalar(DType::Bool));
    let q = body.add_input("q", Type::Sequence(Box::new(f32t(&[k(3)]))));
    let cx = capture(&mut body, &g, x);
    let q2 = body
        .add_node(
            "ins",
            SequenceInsert {}.into(),
            vec![Some(q), Some(cx)],
            vec!["q2".into()],
        )
        .unwrap()[0];
    body.outputs = vec![c, q2];
    let r = g
        .add_node(
            "loop",
            Loop { body }.into(),
            vec![Some(m), None, Some(e)],
            vec!["q".into()],
        )
        .unwrap();
    assert_eq!(types(&g, &r), ["seq<f32[3]>"]);
}

#[test]
fn loop_body_arity_is_checked() {
    let mut g = Graph::new("main");
    let x = g.add_input("x", f32t(&[k(2)]));
    let y0 = g.add_input("y0", f32t(&[k(2)]));
    let body = accumulate_body(&g, x, f32t(&[k(2)]));
    let err = g
        .add_node(
            "loop",
            Loop { body }.into(),
            vec![None, None, Some(y0), Some(y0)],
            vec!["a".into(), "b".into()],
        )
        .unwrap_err();
    assert!(err.msg.contains("the body takes 3 inputs"), "{err}");
}

#[test]
fn scan_slices_inputs_and_stacks_outputs_along_the_given_axes() {
    let mut g = Graph::new("main");
    let s0 = g.add_input("s0", f32t(&[sym("B"), k(4)]));
    let xs = g.add_input("xs", f32t(&[sym("B"), sym("T"), k(4)]));
    let w = g.add_input("w", f32t(&[k(4)]));
    let mut body = Graph::new("body");
    let s = body.add_input("s", f32t(&[sym("B"), k(4)]));
    let x = body.add_input("x", f32t(&[sym("B"), k(4)]));
    let cw = capture(&mut body, &g, w);
    let s2 = node(&mut body, Add {}, &[s, x]);
    let o = node(&mut body, Add {}, &[x, cw]);
    body.outputs = vec![s2, o];
    let op = Scan {
        body,
        num_scan_inputs: 1,
        scan_input_axes: vec![1],
        scan_output_axes: vec![-1],
        ..Scan::default()
    };
    let r = g
        .add_node(
            "scan",
            op.into(),
            vec![Some(s0), Some(xs)],
            vec!["s".into(), "y".into()],
        )
        .unwrap();
    assert_eq!(types(&g, &r), ["f32[B,4]", "f32[B,4,T]"]);
}

#[test]
fn scan_inputs_must_agree_on_length() {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32t(&[k(3), k(2)]));
    let b = g.add_input("b", f32t(&[k(4), k(2)]));
    let mut body = Graph::new("body");
    let x = body.add_input("x", f32t(&[k(2)]));
    body.add_input("y", f32t(&[k(2)]));
    body.outputs = vec![x];
    let op = Scan {
        body,
        num_scan_inputs: 2,
        ..Scan::default()
    };
    let err = g
        .add_node("scan", op.into(), vec![Some(a), Some(b)], vec!["o".into()])
        .unwrap_err();
    assert!(err.msg.contains("disagree"), "{err}");
}

#[test]
fn sequences_track_element_types() {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32t(&[k(2), k(3)]));
    let b = g.add_input("b", f32t(&[k(4), k(3)]));
    let s = node(&mut g, SequenceConstruct {}, &[a, b]);
    assert_eq!(g.ty(s).to_string(), "seq<f32[?,3]>");
    let e = node(&mut g, SequenceEmpty { dtype: DType::F32 }, &[]);
    let e1 = node(&mut g, SequenceInsert {}, &[e, a]);
    assert_eq!(g.ty(e1).to_string(), "seq<f32[2,3]>");
    let len = node(&mut g, SequenceLength {}, &[s]);
    assert_eq!(g.ty(len).to_string(), "i64[]");
    let split = node(
        &mut g,
        SplitToSequence {
            axis: 1,
            keepdims: false,
        },
        &[a],
    );
    assert_eq!(g.ty(split).to_string(), "seq<f32[2]>");
    let cat = node(
        &mut g,
        ConcatFromSequence {
            axis: 0,
            new_axis: true,
        },
        &[split],
    );
    assert_eq!(g.ty(cat).to_string(), "f32[?,2]");
    let i = g.add_input("i", scalar(DType::I32));
    let x = node(&mut g, SequenceAt {}, &[s, i]);
    assert_eq!(g.ty(x).to_string(), "f32[?,3]");
}

#[test]
fn sequence_length_of_a_constructed_sequence_is_known() {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32t(&[k(2)]));
    let s = node(&mut g, SequenceConstruct {}, &[a, a, a]);
    let len = node(&mut g, SequenceLength {}, &[s]);
    assert_eq!(
        crate::infer::sym_value_of(&g, len, 0),
        Some(vec![SymInt::Int(3)])
    );
}

#[test]
fn split_to_sequence_with_sizes() {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32t(&[k(3), k(6)]));
    let even = g.add_const("even", Constant::from_i64s(&[], &[2]));
    let uneven = g.add_const("uneven", Constant::from_i64s(&[2], &[2, 4]));
    let bad = g.add_const("bad", Constant::from_i64s(&[2], &[2, 5]));
    let op = || SplitToSequence {
        axis: 1,
        keepdims: true,
    };
    let s = node(&mut g, op(), &[a, even]);
    assert_eq!(g.ty(s).to_string(), "seq<f32[3,2]>");
    let s = node(&mut g, op(), &[a, uneven]);
    assert_eq!(g.ty(s).to_string(), "seq<f32[3,?]>");
    let err = g
        .add_node("s", op().into(), vec![Some(a), Some(bad)], vec!["o".into()])
        .unwrap_err();
    assert!(err.msg.contains("sum to 7"), "{err}");
}

#[test]
fn sequence_map_runs_the_body_on_elements() {
    let mut g = Graph::new("main");
    let q = g.add_input("q", Type::Sequence(Box::new(f32t(&[sym("N")]))));
    let t = g.add_input("t", f32t(&[k(1)]));
    let mut body = Graph::new("body");
    let x = body.add_input("x", f32t(&[sym("N")]));
    let y = body.add_input("y", f32t(&[k(1)]));
    let s = node(&mut body, Add {}, &[x, y]);
    body.outputs = vec![s];
    let r = g
        .add_node(
            "map",
            SequenceMap { body }.into(),
            vec![Some(q), Some(t)],
            vec!["r".into()],
        )
        .unwrap();
    assert_eq!(types(&g, &r), ["seq<f32[N]>"]);
}

#[test]
fn optionals_wrap_and_unwrap() {
    let mut g = Graph::new("main");
    let a = g.add_input("a", f32t(&[k(4)]));
    let o = node(&mut g, Optional::default(), &[a]);
    assert_eq!(g.ty(o).to_string(), "opt<f32[4]>");
    let v = node(&mut g, OptionalGetElement {}, &[o]);
    assert_eq!(g.ty(v).to_string(), "f32[4]");
    let h = node(&mut g, OptionalHasElement {}, &[o]);
    assert_eq!(g.ty(h).to_string(), "bool[]");
    let empty = node(
        &mut g,
        Optional {
            dtype: Some(DType::I32),
            sequence: true,
        },
        &[],
    );
    assert_eq!(g.ty(empty).to_string(), "opt<seq<i32[*]>>");
    let err = g
        .add_node(
            "o",
            Optional::default().into(),
            vec![None],
            vec!["o".into()],
        )
        .unwrap_err();
    assert!(err.msg.contains("element type"), "{err}");
}

#[test]
fn merging_types() {
    let a = f32t(&[k(2), sym("N")]);
    let b = f32t(&[k(3), sym("N")]);
    assert_eq!(merge_types(&a, &b).unwrap().to_string(), "f32[?,N]");
    assert_eq!(
        merge_types(&a, &f32t(&[k(2)])).unwrap().to_string(),
        "f32[*]"
    );
    assert!(merge_types(&a, &scalar(DType::I64)).is_none());
    let opt = Type::Optional(Box::new(a.clone()));
    assert_eq!(
        merge_maybe_optional(&opt, &b).unwrap().to_string(),
        "opt<f32[?,N]>"
    );
    assert_eq!(merge_carried(&opt, &b).unwrap().to_string(), "f32[?,N]");
}
