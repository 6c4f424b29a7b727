//! Unit tests of movement-op inference: known, symbolic and unknown dims, ONNX clamping and default rules,
//! and the errors bad operands give.

use super::*;
use crate::{Graph, Op, ValueId};

fn f32t(dims: Vec<Dim>) -> Type {
    Type::Tensor(TensorType::new(DType::F32, Shape(dims)))
}

fn k(n: u64) -> Dim {
    Dim::Known(n)
}

fn s(name: &str) -> Dim {
    Dim::Sym(name.into())
}

fn node(g: &mut Graph, op: impl Into<Op>, inputs: &[ValueId]) -> Result<ValueId, InferError> {
    let n = g.nodes.len();
    Ok(g.add_node(
        format!("n{n}"),
        op.into(),
        inputs.iter().map(|&v| Some(v)).collect(),
        vec![format!("v{n}")],
    )?[0])
}

fn ints(g: &mut Graph, v: &[i64]) -> ValueId {
    let n = g.nodes.len();
    g.add_const(format!("c{n}"), Constant::from_i64s(&[v.len() as u64], v))
}

fn ty(g: &Graph, v: ValueId) -> String {
    g.ty(v).to_string()
}

#[test]
fn reshape_copies_zeros_and_infers_minus_one() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(2), k(3), k(4)]));
    let sh = ints(&mut g, &[0, -1]);
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[2,12]");
    let bad = ints(&mut g, &[5, -1]);
    assert!(node(&mut g, Reshape::default(), &[x, bad]).is_err());
    let two = ints(&mut g, &[-1, -1]);
    assert!(node(&mut g, Reshape::default(), &[x, two]).is_err());
}

#[test]
fn reshape_minus_one_cancels_symbolic_dims() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("N"), s("seq"), k(384)]));
    // [0, 0, 12, -1] → [N, seq, 12, 32]
    let sh = ints(&mut g, &[0, 0, 12, -1]);
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[N,seq,12,32]");
    // [-1, 384] → the product N·seq is not a single symbol.
    let sh = ints(&mut g, &[-1, 384]);
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[?,384]");
    // [0, -1, 384] → seq survives as the only leftover symbol.
    let sh = ints(&mut g, &[0, -1, 384]);
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[N,seq,384]");
}

#[test]
fn reshape_with_allowzero_keeps_zero() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(0), k(3)]));
    let sh = ints(&mut g, &[3, 0]);
    let y = node(&mut g, Reshape { allowzero: true }, &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[3,0]");
    let sh = ints(&mut g, &[0, -1]);
    assert!(node(&mut g, Reshape { allowzero: true }, &[x, sh]).is_err());
}

#[test]
fn reshape_of_unknown_target_keeps_its_length() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(2), k(3)]));
    let sh = g.add_input("s", Type::Tensor(TensorType::known(DType::I64, &[3])));
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[?,?,?]");
}

#[test]
fn shape_gather_unsqueeze_concat_reshape_stays_symbolic() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("batch"), s("seq"), k(384)]));
    let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
    let i0 = g.add_const("i0", Constant::from_i64s(&[], &[0]));
    let i1 = g.add_const("i1", Constant::from_i64s(&[], &[1]));
    let b = node(&mut g, Gather { axis: 0 }, &[shp, i0]).unwrap();
    let t = node(&mut g, Gather { axis: 0 }, &[shp, i1]).unwrap();
    assert_eq!(ty(&g, b), "i64[]");
    let ax = ints(&mut g, &[0]);
    let ub = node(&mut g, Unsqueeze {}, &[b, ax]).unwrap();
    let ut = node(&mut g, Unsqueeze {}, &[t, ax]).unwrap();
    let heads = ints(&mut g, &[12]);
    let hd = ints(&mut g, &[32]);
    let target = node(&mut g, Concat { axis: 0 }, &[ub, ut, heads, hd]).unwrap();
    assert_eq!(ty(&g, target), "i64[4]");
    let y = node(&mut g, Reshape::default(), &[x, target]).unwrap();
    assert_eq!(ty(&g, y), "f32[batch,seq,12,32]");
    let perm = Transpose {
        perm: Some(vec![0, 2, 1, 3]),
    };
    let z = node(&mut g, perm, &[y]).unwrap();
    assert_eq!(ty(&g, z), "f32[batch,12,seq,32]");
}

#[test]
fn slice_clamps_negative_and_out_of_range_bounds() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(10), k(5), s("T")]));
    let starts = ints(&mut g, &[-3, 1, 0]);
    let ends = ints(&mut g, &[100, -1, i64::MAX]);
    let y = node(&mut g, Slice {}, &[x, starts, ends]).unwrap();
    assert_eq!(ty(&g, y), "f32[3,3,T]");
    // Negative steps: x[8:1:-2] on 10 → 8,6,4,2; reversed whole dim keeps the symbol.
    let starts = ints(&mut g, &[8, -1]);
    let ends = ints(&mut g, &[1, i64::MIN]);
    let axes = ints(&mut g, &[0, 2]);
    let steps = ints(&mut g, &[-2, -1]);
    let y = node(&mut g, Slice {}, &[x, starts, ends, axes, steps]).unwrap();
    assert_eq!(ty(&g, y), "f32[4,5,T]");
    // Start past the end gives an empty dim; a partial slice of a symbol is unknown.
    let starts = ints(&mut g, &[20, 2]);
    let ends = ints(&mut g, &[30, 4]);
    let axes = ints(&mut g, &[0, -1]);
    let y = node(&mut g, Slice {}, &[x, starts, ends, axes]).unwrap();
    assert_eq!(ty(&g, y), "f32[0,5,?]");
    let zero = ints(&mut g, &[0]);
    let one = ints(&mut g, &[1]);
    assert!(node(&mut g, Slice {}, &[x, zero, one, zero, zero]).is_err());
}

#[test]
fn slice_of_a_shape_vector_is_evaluated() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("N"), k(3), k(7), k(9)]));
    let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
    let st = ints(&mut g, &[-2]);
    let en = ints(&mut g, &[i64::MAX]);
    let hw = node(&mut g, Slice {}, &[shp, st, en]).unwrap();
    assert_eq!(ty(&g, hw), "i64[2]");
    let c = ints(&mut g, &[-1]);
    let target = node(&mut g, Concat { axis: 0 }, &[c, hw]).unwrap();
    let y = node(&mut g, Reshape::default(), &[x, target]).unwrap();
    assert_eq!(ty(&g, y), "f32[?,7,9]");
}

#[test]
fn resize_uses_scales_or_sizes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("N"), k(3), k(5), k(7)]));
    let scales = g.add_const("sc", Constant::from_f32s(&[4], &[1.0, 1.0, 0.6, 2.5]));
    let y = g
        .add_node(
            "r",
            Resize::default().into(),
            vec![Some(x), None, Some(scales)],
            vec!["y".into()],
        )
        .unwrap()[0];
    assert_eq!(ty(&g, y), "f32[N,3,3,17]");
    let sizes = ints(&mut g, &[10, 10]);
    let op = Resize {
        axes: vec![2, 3],
        keep_aspect_ratio_policy: AspectPolicy::NotLarger,
        ..Resize::default()
    };
    let y = g
        .add_node(
            "r2",
            op.into(),
            vec![Some(x), None, None, Some(sizes)],
            vec!["y2".into()],
        )
        .unwrap()[0];
    assert_eq!(ty(&g, y), "f32[N,3,7,10]");
    let y = g.add_node(
        "r3",
        Resize::default().into(),
        vec![Some(x), None, Some(scales), Some(sizes)],
        vec!["y3".into()],
    );
    assert!(y.is_err());
}

#[test]
fn split_makes_uneven_last_chunk() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(7), k(2)]));
    let outs = g
        .add_node(
            "s",
            Split { axis: 0 }.into(),
            vec![Some(x)],
            vec!["a".into(), "b".into(), "c".into()],
        )
        .unwrap();
    let tys: Vec<String> = outs.iter().map(|&v| ty(&g, v)).collect();
    assert_eq!(tys, ["f32[3,2]", "f32[3,2]", "f32[1,2]"]);
}

#[test]
fn range_and_constant_of_shape_follow_values() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("seq"), k(4)]));
    let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
    let i0 = g.add_const("i0", Constant::from_i64s(&[], &[0]));
    let seq = node(&mut g, Gather { axis: 0 }, &[shp, i0]).unwrap();
    let zero = g.add_const("z", Constant::from_i64s(&[], &[0]));
    let one = g.add_const("o", Constant::from_i64s(&[], &[1]));
    let r = node(&mut g, Range {}, &[zero, seq, one]).unwrap();
    assert_eq!(ty(&g, r), "i64[seq]");
    let five = g.add_const("f", Constant::from_i64s(&[], &[5]));
    let neg = g.add_const("m", Constant::from_i64s(&[], &[-2]));
    let r = node(&mut g, Range {}, &[five, zero, neg]).unwrap();
    assert_eq!(ty(&g, r), "i64[3]");
    let c = node(&mut g, ConstantOfShape::default(), &[shp]).unwrap();
    assert_eq!(ty(&g, c), "f32[seq,4]");
}

#[test]
fn size_of_a_single_symbol_is_that_symbol() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("N"), k(1)]));
    let n = node(&mut g, Size {}, &[x]).unwrap();
    let ax = ints(&mut g, &[0]);
    let v = node(&mut g, Unsqueeze {}, &[n, ax]).unwrap();
    let z = node(&mut g, ConstantOfShape::default(), &[v]).unwrap();
    assert_eq!(ty(&g, z), "f32[N]");
}

#[test]
fn squeeze_unsqueeze_and_transpose_check_axes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(1), s("N"), k(1)]));
    let y = node(&mut g, Squeeze {}, &[x]).unwrap();
    assert_eq!(g.ty(y).to_string(), "f32[*]");
    let ax = ints(&mut g, &[0, -1]);
    let y = node(&mut g, Squeeze {}, &[x, ax]).unwrap();
    assert_eq!(ty(&g, y), "f32[N]");
    let ax = ints(&mut g, &[1]);
    assert!(node(&mut g, Squeeze {}, &[y, ax]).is_err());
    let ax = ints(&mut g, &[0, 3]);
    let y = node(&mut g, Unsqueeze {}, &[x, ax]).unwrap();
    assert_eq!(ty(&g, y), "f32[1,1,N,1,1]");
    let bad = Transpose {
        perm: Some(vec![0, 0, 1]),
    };
    assert!(node(&mut g, bad, &[x]).is_err());
    let y = node(&mut g, Transpose::default(), &[x]).unwrap();
    assert_eq!(ty(&g, y), "f32[1,N,1]");
}

#[test]
fn pad_and_tile_and_expand_keep_symbols() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![s("N"), k(3), k(1)]));
    let pads = ints(&mut g, &[0, 1, 2, 0, -1, 3]);
    let y = node(&mut g, Pad::default(), &[x, pads]).unwrap();
    assert_eq!(ty(&g, y), "f32[N,3,6]");
    let reps = ints(&mut g, &[1, 2, 4]);
    let y = node(&mut g, Tile {}, &[x, reps]).unwrap();
    assert_eq!(ty(&g, y), "f32[N,6,4]");
    let shape = ints(&mut g, &[2, 1, 1, 5]);
    let y = node(&mut g, Expand {}, &[x, shape]).unwrap();
    assert_eq!(ty(&g, y), "f32[2,N,3,5]");
    let shape = ints(&mut g, &[4, 1]);
    assert!(node(&mut g, Expand {}, &[x, shape]).is_err());
}

#[test]
fn gather_nd_and_one_hot_shapes() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(2), k(3), k(4)]));
    let idx = g.add_input("i", Type::Tensor(TensorType::known(DType::I64, &[2, 5, 1])));
    let y = node(&mut g, GatherNd { batch_dims: 1 }, &[x, idx]).unwrap();
    assert_eq!(ty(&g, y), "f32[2,5,4]");
    let depth = g.add_const("d", Constant::from_f32s(&[], &[10.0]));
    let vals = g.add_const("v", Constant::from_f32s(&[2], &[0.0, 1.0]));
    let ind = g.add_input("j", Type::Tensor(TensorType::known(DType::I64, &[2, 3])));
    let y = node(&mut g, OneHot { axis: 1 }, &[ind, depth, vals]).unwrap();
    assert_eq!(ty(&g, y), "f32[2,10,3]");
}

#[test]
fn resize_with_runtime_scales_and_sizes_is_not_rejected() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(1), k(3), k(8), k(8)]));
    let unk = Type::Tensor(TensorType::new(DType::F32, Shape(vec![Dim::Unknown])));
    let scales = g.add_input("s", unk);
    let sizes = g.add_input("z", Type::Tensor(TensorType::of_rank(DType::I64, 1)));
    let y = g
        .add_node(
            "r",
            Resize::default().into(),
            vec![Some(x), None, Some(scales), Some(sizes)],
            vec!["y".into()],
        )
        .unwrap()[0];
    assert_eq!(ty(&g, y), "f32[?,?,?,?]");
    // An empty constant scales input means "not given".
    let empty = g.add_const("e", Constant::from_f32s(&[0], &[]));
    let sz = ints(&mut g, &[1, 3, 4, 16]);
    let y = g
        .add_node(
            "r2",
            Resize::default().into(),
            vec![Some(x), None, Some(empty), Some(sz)],
            vec!["y2".into()],
        )
        .unwrap()[0];
    assert_eq!(ty(&g, y), "f32[1,3,4,16]");
}

#[test]
fn impossible_equal_split_gives_unknown_sizes_not_an_error() {
    // As in an If branch that is never taken: 5 elements into 4 chunks of 2.
    let mut g = Graph::new("t");
    let x = g.add_input("x", Type::Tensor(TensorType::known(DType::I64, &[5])));
    let names = (0..4).map(|i| format!("o{i}")).collect();
    let outs = g
        .add_node("s", Split::default().into(), vec![Some(x)], names)
        .unwrap();
    assert_eq!(ty(&g, outs[3]), "i64[?]");
}

#[test]
fn range_accepts_one_element_vectors_of_unknown_length() {
    let mut g = Graph::new("t");
    let zero = g.add_const("z", Constant::from_i64s(&[], &[0]));
    let one = g.add_const("o", Constant::from_i64s(&[], &[1]));
    let lim = g.add_input("l", Type::Tensor(TensorType::of_rank(DType::I64, 1)));
    let r = node(&mut g, Range {}, &[zero, lim, one]).unwrap();
    assert_eq!(ty(&g, r), "i64[?]");
    let bad = g.add_const("b", Constant::from_i64s(&[2], &[1, 2]));
    assert!(node(&mut g, Range {}, &[zero, bad, one]).is_err());
}

#[test]
fn reversed_slice_of_an_empty_dim_is_empty() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(0), k(4)]));
    let st = ints(&mut g, &[-1, -1]);
    let en = ints(&mut g, &[i64::MIN, i64::MIN]);
    let ax = ints(&mut g, &[0, 1]);
    let sp = ints(&mut g, &[-1, -1]);
    let y = node(&mut g, Slice {}, &[x, st, en, ax, sp]).unwrap();
    assert_eq!(ty(&g, y), "f32[0,4]");
}

#[test]
fn absurdly_long_shape_operands_are_not_expanded() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(2)]));
    let huge = Type::Tensor(TensorType::known(DType::I64, &[1 << 40]));
    let sh = g.add_input("s", huge);
    let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
    assert_eq!(ty(&g, y), "f32[*]");
    let c = node(&mut g, ConstantOfShape::default(), &[sh]).unwrap();
    assert_eq!(ty(&g, c), "f32[*]");
}
