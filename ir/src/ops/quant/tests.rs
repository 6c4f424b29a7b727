//! Unit tests of the quant family's type rules.

use super::integer::*;
use super::*;

use crate::infer::InferError;
use crate::ops::conv::{AutoPad, Conv};
use crate::{
    Buffer, Constant, DType, Dim, Graph, Op, Quant, QuantAxis, Shape, TensorType, Type, ValueId,
};

fn node(
    g: &mut Graph,
    op: impl Into<Op>,
    inputs: &[Option<ValueId>],
    n_out: usize,
) -> Result<Vec<ValueId>, InferError> {
    let names = (0..n_out).map(|i| format!("y{i}")).collect();
    g.add_node("n", op.into(), inputs.to_vec(), names)
}

fn u8_const(dims: &[u64], v: &[u8]) -> Constant {
    Constant::dense(
        TensorType::known(DType::U8, dims),
        Buffer::from_vec(v.to_vec()),
    )
    .unwrap()
}

#[test]
fn constant_per_tensor_params_land_in_the_output_type() {
    let mut g = Graph::new("t");
    let x = g.add_input(
        "x",
        Type::Tensor(TensorType::new(
            DType::F32,
            Shape(vec![Dim::Sym("N".into()), Dim::Known(4)]),
        )),
    );
    let s = g.add_const("s", Constant::from_f32s(&[], &[0.5]));
    let z = g.add_const("z", u8_const(&[], &[128]));
    let q = node(
        &mut g,
        QuantizeLinear::default(),
        &[Some(x), Some(s), Some(z)],
        1,
    )
    .unwrap()[0];
    assert_eq!(g.ty(q).to_string(), "u8[N,4] q(scale=[0.5], zp=[128])");
    let dq = node(
        &mut g,
        DequantizeLinear::default(),
        &[Some(q), Some(s), Some(z)],
        1,
    )
    .unwrap()[0];
    assert_eq!(g.ty(dq).to_string(), "f32[N,4]");
    // Without a zero point the output is u8 with zero point 0; output_dtype picks another type.
    let q2 = node(&mut g, QuantizeLinear::default(), &[Some(x), Some(s)], 1).unwrap()[0];
    assert_eq!(g.ty(q2).to_string(), "u8[N,4] q(scale=[0.5], zp=[0])");
    let op = QuantizeLinear {
        output_dtype: Some(DType::I16),
        ..Default::default()
    };
    let q3 = node(&mut g, op, &[Some(x), Some(s)], 1).unwrap()[0];
    assert_eq!(g.ty(q3).to_string(), "i16[N,4] q(scale=[0.5], zp=[0])");
    let clash = QuantizeLinear {
        output_dtype: Some(DType::I8),
        ..Default::default()
    };
    assert!(node(&mut g, clash, &[Some(x), Some(s), Some(z)], 1).is_err());
}

#[test]
fn per_axis_and_per_block_scales_are_recognised_and_checked() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[3, 4])));
    let s = g.add_const("s", Constant::from_f32s(&[4], &[1.0, 2.0, 3.0, 4.0]));
    let z = g.add_const("z", u8_const(&[4], &[0, 1, 2, 3]));
    let op = QuantizeLinear {
        axis: -1,
        ..Default::default()
    };
    let q = node(&mut g, op.clone(), &[Some(x), Some(s), Some(z)], 1).unwrap()[0];
    assert_eq!(
        g.ty(q).to_string(),
        "u8[3,4] q(axis=1, scale=[1.0,2.0,3.0,4.0], zp=[0,1,2,3])"
    );
    let bad_axis = QuantizeLinear {
        axis: 0,
        ..Default::default()
    };
    assert!(node(&mut g, bad_axis, &[Some(x), Some(s), Some(z)], 1).is_err());

    // Blocks of 2 along axis 1: scale [3, 2]; int4 zero points packed two per byte.
    let sb = g.add_const("sb", Constant::from_f32s(&[3, 2], &[1.0; 6]));
    let zb = g.add_const(
        "zb",
        Constant::dense(
            TensorType::known(DType::I4, &[3, 2]),
            Buffer::from_vec(vec![0xF1, 0x20, 0x07]),
        )
        .unwrap(),
    );
    let op = QuantizeLinear {
        axis: 1,
        block_size: 2,
        ..Default::default()
    };
    let q = node(&mut g, op, &[Some(x), Some(sb), Some(zb)], 1).unwrap()[0];
    assert_eq!(
        g.ty(q).to_string(),
        "i4[3,4] q(axis=1, block=2, scale=[1.0,1.0,1.0,1.0,1.0,1.0], zp=[1,-1,0,2,7,0])"
    );
    let wrong_block = QuantizeLinear {
        axis: 1,
        block_size: 1,
        ..Default::default()
    };
    assert!(node(&mut g, wrong_block, &[Some(x), Some(sb), Some(zb)], 1).is_err());
    assert!(node(&mut g, QuantizeLinear::default(), &[Some(x), Some(sb)], 1).is_err());
}

#[test]
fn dynamic_quantize_has_three_outputs() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[2, 3])));
    let o = node(&mut g, DynamicQuantizeLinear {}, &[Some(x)], 3).unwrap();
    let tys: Vec<String> = o.iter().map(|&v| g.ty(v).to_string()).collect();
    assert_eq!(tys, ["u8[2,3]", "f32[]", "u8[]"]);
    assert_eq!(
        node(&mut g, DynamicQuantizeLinear {}, &[Some(x)], 1)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn integer_matmul_and_conv_shapes() {
    let mut g = Graph::new("t");
    let a = g.add_input("a", Type::Tensor(TensorType::known(DType::U8, &[2, 5, 4])));
    let b = g.add_input("b", Type::Tensor(TensorType::known(DType::I8, &[4, 3])));
    let y = node(&mut g, MatMulInteger {}, &[Some(a), Some(b)], 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "i32[2,5,3]");
    let s = g.add_const("s", Constant::from_f32s(&[], &[0.1]));
    let za = g.add_const("za", u8_const(&[], &[3]));
    let zb = g.add_const(
        "zb",
        Constant::dense(TensorType::known(DType::I8, &[]), Buffer::from_vec(vec![0])).unwrap(),
    );
    let ins = [
        Some(a),
        Some(s),
        Some(za),
        Some(b),
        Some(s),
        Some(zb),
        Some(s),
        Some(za),
    ];
    let y = node(&mut g, QLinearMatMul {}, &ins, 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "u8[2,5,3] q(scale=[0.1], zp=[3])");
    // a zero point must have a's type.
    let bad = [
        Some(a),
        Some(s),
        Some(zb),
        Some(b),
        Some(s),
        Some(zb),
        Some(s),
        Some(za),
    ];
    assert!(node(&mut g, QLinearMatMul {}, &bad, 1).is_err());

    let x = g.add_input(
        "x",
        Type::Tensor(TensorType::known(DType::U8, &[1, 2, 5, 5])),
    );
    let w = g.add_input(
        "w",
        Type::Tensor(TensorType::known(DType::U8, &[4, 2, 3, 3])),
    );
    let op = ConvInteger {
        pads: vec![1, 1, 1, 1],
        ..Default::default()
    };
    let y = node(&mut g, op, &[Some(x), Some(w)], 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "i32[1,4,5,5]");
    let op = QLinearConv {
        strides: vec![2, 2],
        ..Default::default()
    };
    let ins = [
        Some(x),
        Some(s),
        Some(za),
        Some(w),
        Some(s),
        Some(za),
        Some(s),
        Some(za),
    ];
    let y = node(&mut g, op, &ins, 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "u8[1,4,2,2] q(scale=[0.1], zp=[3])");
}

#[test]
fn conv_output_dims_follow_the_float_conv_window_rule() {
    let x = TensorType::new(
        DType::U8,
        Shape(vec![
            Dim::Sym("N".into()),
            Dim::Known(4),
            Dim::Known(7),
            Dim::Known(7),
        ]),
    );
    let w = TensorType::known(DType::U8, &[8, 2, 3, 3]);
    let win = |auto_pad, strides: &[i64], dilations: &[i64], group| Conv {
        auto_pad,
        dilations: dilations.to_vec(),
        group,
        kernel_shape: Vec::new(),
        pads: vec![1, 1, 1, 1],
        strides: strides.to_vec(),
    };
    let s = conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[], 2))
        .unwrap()
        .unwrap();
    assert_eq!(s.to_string(), "[N,8,4,4]");
    let same = win(AutoPad::SameUpper, &[2, 2], &[], 2);
    assert_eq!(
        conv_output_shape(&x, &w, &same)
            .unwrap()
            .unwrap()
            .to_string(),
        "[N,8,4,4]"
    );
    assert!(conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[], 1)).is_err());
    assert!(conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[0, 1], &[], 2)).is_err());
    assert!(conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[i64::MAX, 1], 2)).is_err());
}

#[test]
fn qlinear_add_zero_points_are_optional_and_output_keeps_a_type() {
    let mut g = Graph::new("t");
    let a = g.add_input(
        "a",
        Type::Tensor(TensorType::new(
            DType::I8,
            Shape(vec![Dim::Sym("N".into()), Dim::Known(3)]),
        )),
    );
    let b = g.add_input("b", Type::Tensor(TensorType::known(DType::I8, &[3])));
    let s = g.add_const("s", Constant::from_f32s(&[], &[0.25]));
    let ins = [Some(a), Some(s), None, Some(b), Some(s), None, Some(s)];
    let y = node(&mut g, QLinearAdd {}, &ins, 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "i8[N,3] q(scale=[0.25], zp=[0])");
    let u = g.add_input("u", Type::Tensor(TensorType::known(DType::U8, &[3])));
    let mixed = [Some(a), Some(s), None, Some(u), Some(s), None, Some(s)];
    assert!(node(&mut g, QLinearMul {}, &mixed, 1).is_err());
}

#[test]
fn matmul_nbits_checks_packing() {
    let mut g = Graph::new("t");
    let a = g.add_input(
        "a",
        Type::Tensor(TensorType::new(
            DType::F32,
            Shape(vec![Dim::Sym("S".into()), Dim::Known(64)]),
        )),
    );
    let b = g.add_input("b", Type::Tensor(TensorType::known(DType::U8, &[8, 2, 16])));
    let s = g.add_input("s", Type::Tensor(TensorType::known(DType::F32, &[16])));
    let op = MatMulNBits {
        k: 64,
        n: 8,
        bits: 4,
        block_size: 32,
        accuracy_level: 0,
    };
    let y = node(&mut g, op.clone(), &[Some(a), Some(b), Some(s)], 1).unwrap()[0];
    assert_eq!(g.ty(y).to_string(), "f32[S,8]");
    // Work: k multiply-accumulates per output element (S guessed as 10), one dequantization per
    // weight.
    let inputs = [Some(g.ty(a)), Some(g.ty(b)), Some(g.ty(s))];
    let outputs = [g.ty(y).clone()];
    let t = crate::ops::NodeTypes {
        inputs: &inputs,
        outputs: &outputs,
        sizes: crate::ops::Sizes::guess(10.0),
    };
    let w = crate::Op::from(op.clone()).work(&t).unwrap();
    assert_eq!(
        (w.macs, w.flops),
        (10.0 * 8.0 * 64.0, 80.0 + 2.0 * 64.0 * 8.0)
    );
    // Operands the layout does not fit are named.
    let s15 = g.add_input("s15", Type::Tensor(TensorType::known(DType::F32, &[15])));
    let e = node(&mut g, op.clone(), &[Some(a), Some(b), Some(s15)], 1).unwrap_err();
    assert!(e.to_string().contains("scales (input 2)"), "{e}");
    let z = g.add_input("z", Type::Tensor(TensorType::known(DType::U8, &[9])));
    let e = node(&mut g, op.clone(), &[Some(a), Some(b), Some(s), Some(z)], 1).unwrap_err();
    assert!(
        e.to_string().contains("zero_points (input 3) must have 8"),
        "{e}"
    );
    let wrong = MatMulNBits {
        block_size: 16,
        ..op
    };
    assert!(node(&mut g, wrong, &[Some(a), Some(b), Some(s)], 1).is_err());
}

/// A tensor type with quantization `q`.
fn qt(dtype: DType, dims: &[u64], axis: QuantAxis, scale: &[f32], zp: &[i64]) -> Type {
    let mut t = TensorType::known(dtype, dims);
    t.quant = Some(Box::new(Quant {
        axis,
        scale: scale.to_vec(),
        zero_point: zp.to_vec(),
    }));
    Type::Tensor(t)
}

#[test]
fn conv_of_quantized_operands_is_an_i32_accumulator_per_output_channel() {
    let mut g = Graph::new("t");
    let x = g.add_input(
        "x",
        qt(DType::U8, &[1, 2, 5, 5], QuantAxis::PerTensor, &[0.5], &[3]),
    );
    let w = g.add_input(
        "w",
        qt(
            DType::I8,
            &[2, 2, 3, 3],
            QuantAxis::PerAxis { axis: 0 },
            &[0.25, 2.0],
            &[0, 1],
        ),
    );
    let b = g.add_input("b", Type::Tensor(TensorType::known(DType::I32, &[2])));
    let y = node(&mut g, Conv::default(), &[Some(x), Some(w), Some(b)], 1).unwrap()[0];
    assert_eq!(
        g.ty(y).to_string(),
        "i32[1,2,3,3] q(axis=1, scale=[0.125,1.0], zp=[0,0])"
    );
    // A plain weight with a quantized input (or a float bias) is refused, not read as raw integers.
    let plain = g.add_input(
        "p",
        Type::Tensor(TensorType::known(DType::I8, &[2, 2, 3, 3])),
    );
    assert!(node(&mut g, Conv::default(), &[Some(x), Some(plain)], 1).is_err());
    let fb = g.add_input("fb", Type::Tensor(TensorType::known(DType::F32, &[2])));
    assert!(node(&mut g, Conv::default(), &[Some(x), Some(w), Some(fb)], 1).is_err());
    // The requantizing quantize_linear gives the output type from its constant parameters.
    let s = g.add_const("s", Constant::from_f32s(&[], &[0.1]));
    let z = g.add_const("z", u8_const(&[], &[128]));
    let q = node(
        &mut g,
        QuantizeLinear::default(),
        &[Some(y), Some(s), Some(z)],
        1,
    )
    .unwrap()[0];
    assert_eq!(g.ty(q).to_string(), "u8[1,2,3,3] q(scale=[0.1], zp=[128])");
}

#[test]
fn matmul_of_quantized_operands_takes_one_per_axis_side() {
    use crate::ops::linalg::MatMul;
    let mut g = Graph::new("t");
    let a = g.add_input(
        "a",
        qt(DType::U8, &[2, 4, 3], QuantAxis::PerTensor, &[0.5], &[7]),
    );
    let b = g.add_input(
        "b",
        qt(
            DType::I8,
            &[3, 2],
            QuantAxis::PerAxis { axis: 1 },
            &[1.0, 4.0],
            &[0, 0],
        ),
    );
    let y = node(&mut g, MatMul {}, &[Some(a), Some(b)], 1).unwrap()[0];
    assert_eq!(
        g.ty(y).to_string(),
        "i32[2,4,2] q(axis=2, scale=[0.5,2.0], zp=[0,0])"
    );
    let rows = g.add_input(
        "r",
        qt(
            DType::U8,
            &[4, 3],
            QuantAxis::PerAxis { axis: 0 },
            &[1.0; 4],
            &[0; 4],
        ),
    );
    // Per row and per column at once would need a scale per output element.
    assert!(node(&mut g, MatMul {}, &[Some(rows), Some(b)], 1).is_err());
    let plain = g.add_input("p", Type::Tensor(TensorType::known(DType::I8, &[3, 2])));
    assert!(node(&mut g, MatMul {}, &[Some(a), Some(plain)], 1).is_err());
}

#[test]
fn rearranging_movement_ops_pass_the_quantization_through() {
    use crate::ops::movement::{Pad, Reshape, Transpose};
    let mut g = Graph::new("t");
    let x = g.add_input(
        "x",
        qt(DType::U8, &[2, 3], QuantAxis::PerTensor, &[0.5], &[3]),
    );
    let shape = g.add_const("shape", Constant::from_i64s(&[1], &[6]));
    let r = node(&mut g, Reshape::default(), &[Some(x), Some(shape)], 1).unwrap()[0];
    assert_eq!(g.ty(r).to_string(), "u8[6] q(scale=[0.5], zp=[3])");
    // Per axis: the axis follows transpose's permutation.
    let w = g.add_input(
        "w",
        qt(
            DType::I8,
            &[4, 2, 3],
            QuantAxis::PerAxis { axis: 0 },
            &[1.0; 4],
            &[0; 4],
        ),
    );
    let t = node(
        &mut g,
        Transpose {
            perm: Some(vec![1, 2, 0]),
        },
        &[Some(w)],
        1,
    )
    .unwrap()[0];
    assert_eq!(
        g.ty(t).to_string(),
        "i8[2,3,4] q(axis=2, scale=[1.0,1.0,1.0,1.0], zp=[0,0,0,0])"
    );
    // ... but not through reshape, which may merge the axis away.
    let shape = g.add_const("shape2", Constant::from_i64s(&[1], &[24]));
    let r = node(&mut g, Reshape::default(), &[Some(w), Some(shape)], 1).unwrap()[0];
    assert_eq!(g.ty(r).to_string(), "i8[24]");
    // Padding fills in raw zeros, which need not be the zero point: no quantization.
    let pads = g.add_const("pads", Constant::from_i64s(&[4], &[0, 1, 0, 1]));
    let p = node(&mut g, Pad::default(), &[Some(x), Some(pads)], 1).unwrap()[0];
    assert_eq!(g.ty(p).to_string(), "u8[2,5]");
}
