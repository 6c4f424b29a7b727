//! Inference and symbolic evaluation of the elementwise ops.

use super::*;
use crate::infer::sym_value_of;
use crate::ops::movement::ShapeOf;
use crate::{Constant, Dim, Graph, Op, Shape, ValueId};

fn f32t(dims: Vec<Dim>) -> Type {
    Type::Tensor(TensorType::new(DType::F32, Shape(dims)))
}

fn k(n: u64) -> Dim {
    Dim::Known(n)
}

fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}

fn node(g: &mut Graph, op: impl Into<Op>, inputs: &[ValueId]) -> Result<ValueId, InferError> {
    let ins = inputs.iter().map(|&v| Some(v)).collect();
    Ok(g.add_node("n", op.into(), ins, vec!["y".into()])?[0])
}

#[test]
fn unary_ops_keep_type_and_check_element_class() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![sym("N"), k(3)]));
    let i = g.add_input("i", Type::Tensor(TensorType::known(DType::I64, &[2])));
    let y = node(&mut g, Exp {}, &[x]).unwrap();
    assert_eq!(g.ty(y).to_string(), "f32[N,3]");
    let e = node(&mut g, Exp {}, &[i]).unwrap_err();
    assert!(e.msg.contains("floating-point"), "{e}");
    let a = node(&mut g, Abs {}, &[i]).unwrap();
    assert_eq!(g.ty(a).to_string(), "i64[2]");
    let b = node(&mut g, IsInf::default(), &[x]).unwrap();
    assert_eq!(g.ty(b).to_string(), "bool[N,3]");
    assert!(node(&mut g, Not {}, &[x]).is_err());
    assert!(node(&mut g, Exp {}, &[x, x]).is_err());
}

#[test]
fn binary_ops_broadcast_symbolically_and_compare_to_bool() {
    let mut g = Graph::new("t");
    let a = g.add_input("a", f32t(vec![sym("N"), k(1), k(4)]));
    let b = g.add_input("b", f32t(vec![k(3), k(1)]));
    let y = node(&mut g, Add {}, &[a, b]).unwrap();
    assert_eq!(g.ty(y).to_string(), "f32[N,3,4]");
    let c = node(&mut g, Less {}, &[a, b]).unwrap();
    assert_eq!(g.ty(c).to_string(), "bool[N,3,4]");
    let bad = g.add_input("bad", f32t(vec![k(5)]));
    assert!(node(&mut g, Mul {}, &[a, bad]).is_err());
    let i = g.add_input("i", Type::Tensor(TensorType::known(DType::I32, &[4])));
    assert!(
        node(&mut g, Add {}, &[a, i])
            .unwrap_err()
            .msg
            .contains("element type")
    );
    // pow's exponent may have another type; the result has the base's.
    let p = node(&mut g, Pow {}, &[a, i]).unwrap();
    assert_eq!(g.ty(p).to_string(), "f32[N,1,4]");
    assert!(
        node(&mut g, BitShift::default(), &[a, b])
            .unwrap_err()
            .msg
            .contains("integer")
    );
}

#[test]
fn variadic_where_and_cast_types() {
    let mut g = Graph::new("t");
    let a = g.add_input("a", f32t(vec![k(2), k(1)]));
    let b = g.add_input("b", f32t(vec![k(3)]));
    let c = g.add_input("c", f32t(vec![]));
    let m = node(&mut g, Max {}, &[a, b, c]).unwrap();
    assert_eq!(g.ty(m).to_string(), "f32[2,3]");
    let one = node(&mut g, Mean {}, &[a]).unwrap();
    assert_eq!(g.ty(one).to_string(), "f32[2,1]");
    let cond = g.add_input(
        "cond",
        Type::Tensor(TensorType::known(DType::Bool, &[4, 1, 1])),
    );
    let w = node(&mut g, Where {}, &[cond, a, b]).unwrap();
    assert_eq!(g.ty(w).to_string(), "f32[4,2,3]");
    assert!(node(&mut g, Where {}, &[a, a, b]).is_err());
    let cast = Cast {
        to: DType::F16,
        ..Cast::default()
    };
    let h = node(&mut g, cast, &[a]).unwrap();
    assert_eq!(g.ty(h).to_string(), "f16[2,1]");
    let bc = node(&mut g, Bitcast { to: DType::I32 }, &[a]).unwrap();
    assert_eq!(g.ty(bc).to_string(), "i32[2,1]");
    assert!(
        node(&mut g, Bitcast { to: DType::I64 }, &[a])
            .unwrap_err()
            .msg
            .contains("widths")
    );
}

#[test]
fn clip_bounds_must_be_scalars_of_the_input_type() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![k(2)]));
    let lo = g.add_const("lo", Constant::from_f32s(&[], &[0.0]));
    let bad = g.add_const("bad", Constant::from_i64s(&[], &[0]));
    let y = g
        .add_node(
            "c",
            Clip {}.into(),
            vec![Some(x), None, Some(lo)],
            vec!["y".into()],
        )
        .unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "f32[2]");
    assert!(node(&mut g, Clip {}, &[x, bad]).is_err());
}

#[test]
fn shape_arithmetic_evaluates_symbolically() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(vec![sym("N"), k(3), k(4)]));
    let s = node(&mut g, ShapeOf::default(), &[x]).unwrap();
    let two = g.add_const("two", Constant::from_i64s(&[3], &[1, 2, 0]));
    let m = node(&mut g, Mul {}, &[s, two]).unwrap();
    let v = sym_value_of(&g, m, 0).unwrap();
    assert_eq!(
        v,
        vec![SymInt::Sym("N".into()), SymInt::Int(6), SymInt::Int(0)]
    );
    let one = g.add_const("one", Constant::from_i64s(&[], &[1]));
    let d = node(&mut g, Sub {}, &[s, one]).unwrap();
    assert_eq!(
        sym_value_of(&g, d, 0).unwrap(),
        vec![SymInt::Unknown, SymInt::Int(2), SymInt::Int(3)]
    );
    let eq = node(&mut g, Equal {}, &[s, s]).unwrap();
    assert_eq!(sym_value_of(&g, eq, 0).unwrap(), vec![SymInt::Int(1); 3]);
    let mx = node(&mut g, Max {}, &[s, one]).unwrap();
    assert_eq!(
        sym_value_of(&g, mx, 0).unwrap(),
        vec![SymInt::Unknown, SymInt::Int(3), SymInt::Int(4)]
    );
    let neg = g.add_const("neg", Constant::from_i64s(&[], &[-7]));
    let md = node(&mut g, Mod::default(), &[neg, two]).unwrap();
    assert_eq!(sym_value_of(&g, md, 0).unwrap()[1], SymInt::Int(1));
}
