//! Unit tests of the elementwise kernels' tricky semantics, cross-checked against scalar computations
//! and values from ONNX's reference (numpy / Python's `math`).

use carve_ir::DType;
use carve_ir::ops::elementwise::{self as ops, ElementwiseOp as E};
use half::f16;

use super::binary::{self, Cmp};
use super::unary::{self, erf};
use crate::tensor::{Data, Tensor};

fn t(shape: &[usize], data: Data) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
    t(shape, Data::F32(v.to_vec()))
}

fn i32s(shape: &[usize], v: &[i32]) -> Tensor {
    t(shape, Data::I32(v.to_vec()))
}

#[test]
fn erf_matches_libm_values() {
    let cases = [
        (1e-10, 1.1283791670955126e-10),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (2.4999, 0.9995928300996666),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
        (4.0, 0.9999999845827421),
        (5.5, 0.9999999999999927),
        (-1.5, -0.9661051464753108),
    ];
    for (x, want) in cases {
        let got = erf(x);
        assert!(
            ((got - want) / want).abs() < 4e-16,
            "erf({x}) = {got}, want {want}"
        );
    }
    assert!(erf(f64::NAN).is_nan());
    assert_eq!(erf(f64::INFINITY), 1.0);
    assert_eq!(erf(-0.0).to_bits(), (-0.0f64).to_bits());
}

#[test]
fn integer_division_and_remainder_follow_onnx() {
    let a = i32s(&[6], &[7, -7, 7, -7, 5, i32::MIN]);
    let b = i32s(&[6], &[2, 2, -2, -2, 0, -1]);
    let d = binary::arith(&a, &b, &binary::Div).unwrap();
    assert_eq!(d.data, Data::I32(vec![3, -3, -3, 3, 0, i32::MIN]));
    let m = binary::arith(&a, &b, &binary::Mod { fmod: false }).unwrap();
    assert_eq!(m.data, Data::I32(vec![1, 1, -1, -1, 0, 0]));
    let f = binary::arith(&a, &b, &binary::Mod { fmod: true }).unwrap();
    assert_eq!(f.data, Data::I32(vec![1, -1, 1, -1, 0, 0]));
    // Float mod: numpy's sign-of-divisor and C fmod.
    let x = f32s(&[3], &[-4.3, 4.3, 5.0]);
    let y = f32s(&[3], &[2.1, -2.1, 0.0]);
    let m = binary::arith(&x, &y, &binary::Mod { fmod: false }).unwrap();
    let Data::F32(v) = m.data else { panic!() };
    assert!((v[0] - 2.0).abs() < 1e-5 && (v[1] + 2.0).abs() < 1e-5 && v[2].is_nan());
}

#[test]
fn shifts_out_of_range_give_zero_or_sign() {
    let a = t(&[4], Data::I8(vec![-16, 16, -1, 3]));
    let b = t(&[4], Data::I8(vec![2, 8, 9, -1]));
    let r = binary::arith(&a, &b, &binary::Shift { left: false }).unwrap();
    assert_eq!(r.data, Data::I8(vec![-4, 0, -1, 0]));
    let l = binary::arith(&a, &b, &binary::Shift { left: true }).unwrap();
    assert_eq!(l.data, Data::I8(vec![-64, 0, 0, 0]));
    let u = t(&[2], Data::U8(vec![0x81, 1]));
    let s = t(&[1], Data::U8(vec![1]));
    let l = binary::arith(&u, &s, &binary::Shift { left: true }).unwrap();
    assert_eq!(l.data, Data::U8(vec![2, 2]));
}

#[test]
fn pow_keeps_the_base_type() {
    let base = i32s(&[4], &[2, -3, 2, -1]);
    let e = t(&[4], Data::I64(vec![10, 3, -1, -3]));
    assert_eq!(
        binary::pow(&base, &e).unwrap().data,
        Data::I32(vec![1024, -27, 0, -1])
    );
    let ef = f32s(&[4], &[0.5, 2.0, 1.0, 2.0]);
    assert_eq!(
        binary::pow(&base, &ef).unwrap().data,
        Data::I32(vec![1, 9, 2, 1])
    );
    let x = f32s(&[2], &[2.0, -8.0]);
    let p = binary::pow(&x, &t(&[], Data::I64(vec![3]))).unwrap();
    assert_eq!(p.data, Data::F32(vec![8.0, -512.0]));
}

#[test]
fn broadcasting_where_max_and_compare() {
    let c = t(&[2, 1], Data::Bool(vec![true, false]));
    let x = f32s(&[3], &[1.0, 2.0, 3.0]);
    let y = f32s(&[], &[-1.0]);
    let w = binary::where_(&c, &x, &y).unwrap();
    assert_eq!(w.shape, vec![2, 3]);
    assert_eq!(w.data, Data::F32(vec![1.0, 2.0, 3.0, -1.0, -1.0, -1.0]));
    let a = f32s(&[2, 1], &[f32::NAN, 2.5]);
    let m = binary::variadic(&E::Max(ops::Max {}), &[&a, &x]).unwrap();
    let Data::F32(v) = &m.data else { panic!() };
    assert!(v[..3].iter().all(|z| z.is_nan()));
    assert_eq!(&v[3..], &[2.5, 2.5, 3.0]);
    let lt = binary::compare(&a, &x, Cmp::Lt).unwrap();
    assert_eq!(
        lt.data,
        Data::Bool(vec![false, false, false, false, false, true])
    );
    let mean = binary::variadic(&E::Mean(ops::Mean {}), &[&x, &y]).unwrap();
    assert_eq!(mean.data, Data::F32(vec![0.0, 0.5, 1.0]));
    let bad = f32s(&[2], &[1.0, 2.0]);
    assert!(binary::arith(&x, &bad, &binary::Add).is_err());
}

#[test]
fn unary_integer_and_nan_semantics() {
    let i = t(&[3], Data::I8(vec![-128, -5, 7]));
    let abs = unary::eval(&E::Abs(ops::Abs {}), &i).unwrap();
    assert_eq!(abs.data, Data::I8(vec![-128, 5, 7]));
    let sign = unary::eval(&E::Sign(ops::Sign {}), &i).unwrap();
    assert_eq!(sign.data, Data::I8(vec![-1, -1, 1]));
    let r = f32s(&[6], &[0.5, 1.5, 2.5, -0.5, -1.5, 2.4]);
    let rounded = unary::eval(&E::Round(ops::Round {}), &r).unwrap();
    assert_eq!(
        rounded.data,
        Data::F32(vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0])
    );
    let n = f32s(&[2], &[f32::NAN, -1.0]);
    let relu = unary::eval(&E::Relu(ops::Relu {}), &n).unwrap();
    let Data::F32(v) = relu.data else { panic!() };
    assert!(v[0].is_nan() && v[1] == 0.0);
    let inf = f32s(&[3], &[f32::INFINITY, f32::NEG_INFINITY, 1.0]);
    let neg_only = ops::IsInf {
        detect_negative: true,
        detect_positive: false,
    };
    assert_eq!(
        unary::eval(&E::IsInf(neg_only), &inf).unwrap().data,
        Data::Bool(vec![false, true, false])
    );
    // f16 results are rounded once from f64.
    let h = t(&[1], Data::F16(vec![f16::from_f32(2.0)]));
    let s = unary::eval(&E::Sqrt(ops::Sqrt {}), &h).unwrap();
    assert_eq!(
        s.data,
        Data::F16(vec![f16::from_f64(std::f64::consts::SQRT_2)])
    );
}

#[test]
fn clip_handles_missing_and_crossed_bounds() {
    let x = f32s(&[4], &[-2.0, 0.5, 3.0, f32::NAN]);
    let lo = f32s(&[], &[0.0]);
    let hi = f32s(&[], &[1.0]);
    let c = unary::clip(&x, Some(&lo), None).unwrap();
    let Data::F32(v) = c.data else { panic!() };
    assert_eq!(&v[..3], &[0.0, 0.5, 3.0]);
    assert!(v[3].is_nan());
    let crossed = unary::clip(&x, Some(&hi), Some(&lo)).unwrap();
    let Data::F32(v) = crossed.data else { panic!() };
    assert_eq!(&v[..3], &[0.0, 0.0, 0.0]);
    let u = t(&[3], Data::U64(vec![0, 5, u64::MAX]));
    let hi = t(&[], Data::U64(vec![u64::MAX - 1]));
    let c = unary::clip(&u, Some(&t(&[], Data::U64(vec![1]))), Some(&hi)).unwrap();
    assert_eq!(c.data, Data::U64(vec![1, 5, u64::MAX - 1]));
    assert!(unary::clip(&x, Some(&i32s(&[], &[0])), None).is_err());
}

#[test]
fn sub_byte_integers_wrap() {
    let a = t(&[3], Data::Small(DType::I4, vec![7, 0xF8, 3]));
    let b = t(&[3], Data::Small(DType::I4, vec![1, 0xFF, 3]));
    let s = binary::arith(&a, &b, &binary::Add).unwrap();
    // 7 + 1 = 8 → −8; −8 + −1 = −9 → 7; 3 + 3 = 6.
    assert_eq!(s.data, Data::Small(DType::I4, vec![0xF8, 7, 6]));
}

#[test]
fn broadcast_runs_match_the_index_map() {
    use crate::interp::util::{broadcast_index, broadcast_shape};
    let cases: [(&[usize], &[usize]); 8] = [
        (&[2, 3, 4], &[3, 1]),
        (&[2, 1, 4], &[3, 1]),
        (&[4, 1, 3, 1, 5], &[2, 3, 2, 5]),
        (&[1], &[3, 2]),
        (&[3, 2], &[3, 2]),
        (&[], &[2, 2]),
        (&[2, 0, 3], &[3]),
        (&[6, 1, 1], &[1, 7, 8]),
    ];
    for (sa, sb) in cases {
        let out = broadcast_shape(sa, sb).unwrap();
        let (ia, ib) = (broadcast_index(&out, sa), broadcast_index(&out, sb));
        let mut got = Vec::new();
        super::runs(&out, [sa, sb], |o, s, len| {
            for j in 0..len {
                got.push((o[0] + j * s[0], o[1] + j * s[1]));
            }
        });
        let want: Vec<(usize, usize)> = ia.into_iter().zip(ib).collect();
        assert_eq!(got, want, "{sa:?} with {sb:?}");
    }
}
