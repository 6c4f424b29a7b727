//! Random-input property tests (proptest) of the reference interpreter, each cross-checked against a
//! straightforward scalar implementation written here: broadcasting, reductions, convolution and pooling
//! shape arithmetic and values, and quantize/dequantize rounding.

use carve::ir::ops::conv::{Conv, Pool, PoolKind};
use carve::ir::ops::elementwise::Add;
use carve::ir::ops::quant::{DequantizeLinear, QuantizeLinear};
use carve::ir::ops::reduce::{Reduce, ReduceKind};
use carve::ir::{Constant, DType, Graph, Op, TensorType};
use carve_runtime::interp::{Value, run};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

fn f32_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed | 1;
    let v = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s % 2001) as f32 - 1000.0) / 250.0
        })
        .collect();
    Tensor::new(shape.to_vec(), Data::F32(v)).unwrap()
}

fn f32s(v: &Value) -> &[f32] {
    match v {
        Value::Tensor(Tensor {
            data: Data::F32(x), ..
        }) => x,
        other => panic!("expected an f32 tensor, got {other:?}"),
    }
}

fn dims_u64(s: &[usize]) -> Vec<u64> {
    s.iter().map(|&d| d as u64).collect()
}

/// Runs a one-node graph over tensor inputs (constants given as `Some(const)` are embedded).
fn run_node(op: Op, inputs: Vec<Tensor>, consts: Vec<Constant>, n_out: usize) -> Vec<Value> {
    let mut g = Graph::new("p");
    let mut ids = Vec::new();
    for (i, t) in inputs.iter().enumerate() {
        ids.push(Some(g.add_input(
            format!("x{i}"),
            TensorType::known(t.dtype(), &dims_u64(&t.shape)).into(),
        )));
    }
    for (i, c) in consts.into_iter().enumerate() {
        ids.push(Some(g.add_const(format!("c{i}"), c)));
    }
    let names = (0..n_out).map(|i| format!("y{i}")).collect();
    g.outputs = g.add_node("n", op, ids, names).expect("inference");
    carve::ir::verify::verify(&g).expect("verifies");
    run(&g, inputs.into_iter().map(Value::Tensor).collect()).expect("runs")
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        idx[a] = i % shape[a];
        i /= shape[a];
    }
    idx
}

/// A shape of rank ≤ 4 and a second shape broadcast-compatible with it (dims replaced by 1 or dropped).
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..5, 0..5)
        .prop_flat_map(|a| {
            let r = a.len();
            (Just(a), prop::collection::vec(any::<bool>(), r), 0..=r)
        })
        .prop_map(|(a, ones, drop)| {
            let b: Vec<usize> = a
                .iter()
                .zip(&ones)
                .map(|(&d, &one)| if one { 1 } else { d })
                .skip(drop)
                .collect();
            (a, b)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_global_rejects: 1_000_000, ..ProptestConfig::default() })]

    #[test]
    fn add_broadcasts_like_numpy((a, b) in broadcast_pair(), swap in any::<bool>(), seed in any::<u64>()) {
        let (a, b) = if swap { (b, a) } else { (a, b) };
        let (x, y) = (f32_tensor(&a, seed), f32_tensor(&b, seed ^ 0x9e37));
        let out = run_node(Add {}.into(), vec![x.clone(), y.clone()], vec![], 1);
        let r = a.len().max(b.len());
        let pad = |s: &[usize]| [vec![1; r - s.len()], s.to_vec()].concat();
        let (pa, pb) = (pad(&a), pad(&b));
        let shape: Vec<usize> = pa.iter().zip(&pb).map(|(&p, &q)| p.max(q)).collect();
        let (sa, sb) = (strides(&pa), strides(&pb));
        let (xa, yb) = (f32s(&Value::Tensor(x)).to_vec(), f32s(&Value::Tensor(y)).to_vec());
        let want: Vec<f32> = (0..shape.iter().product())
            .map(|i| {
                let idx = unravel(i, &shape);
                let ia: usize = (0..r).map(|d| if pa[d] == 1 { 0 } else { idx[d] * sa[d] }).sum();
                let ib: usize = (0..r).map(|d| if pb[d] == 1 { 0 } else { idx[d] * sb[d] }).sum();
                xa[ia] + yb[ib]
            })
            .collect();
        let Value::Tensor(t) = &out[0] else { panic!() };
        prop_assert_eq!(&t.shape, &shape);
        prop_assert_eq!(f32s(&out[0]), want.as_slice());
    }

    #[test]
    fn sum_and_max_reductions_match_scalar_loops(
        shape in prop::collection::vec(1usize..5, 1..5),
        axis_bits in any::<u8>(),
        keepdims in any::<bool>(),
        max in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let r = shape.len();
        let axes: Vec<i64> = (0..r).filter(|&d| axis_bits & (1 << d) != 0).map(|d| d as i64).collect();
        let x = f32_tensor(&shape, seed);
        let kind = if max { ReduceKind::Max } else { ReduceKind::Sum };
        let op = Reduce { kind, keepdims, ..Reduce::default() };
        let out = run_node(op.into(), vec![x.clone()], vec![Constant::from_i64s(&[axes.len() as u64], &axes)], 1);
        // Empty axes reduce everything (noop_with_empty_axes is false).
        let reduced: Vec<bool> = (0..r).map(|d| axes.is_empty() || axes.contains(&(d as i64))).collect();
        let out_full: Vec<usize> = (0..r).map(|d| if reduced[d] { 1 } else { shape[d] }).collect();
        let mut want = vec![if max { f32::NEG_INFINITY } else { 0.0 }; out_full.iter().product()];
        let os = strides(&out_full);
        for (i, &v) in f32s(&Value::Tensor(x)).iter().enumerate() {
            let idx = unravel(i, &shape);
            let o: usize = (0..r).map(|d| if reduced[d] { 0 } else { idx[d] * os[d] }).sum();
            want[o] = if max { want[o].max(v) } else { want[o] + v };
        }
        let Value::Tensor(t) = &out[0] else { panic!() };
        let expect_shape: Vec<usize> =
            if keepdims { out_full } else { (0..r).filter(|&d| !reduced[d]).map(|d| shape[d]).collect() };
        prop_assert_eq!(&t.shape, &expect_shape);
        for (g, w) in f32s(&out[0]).iter().zip(&want) {
            prop_assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{} vs {}", g, w);
        }
    }

    #[test]
    fn conv2d_shape_arithmetic_and_values_match_a_direct_loop(
        (h, w) in (1usize..9, 1usize..9),
        (c, m) in (1usize..4, 1usize..4),
        (kh, kw) in (1usize..4, 1usize..4),
        (sh, sw) in (1usize..4, 1usize..4),
        (dh, dw) in (1usize..3, 1usize..3),
        pads in prop::array::uniform4(0usize..3),
        seed in any::<u64>(),
    ) {
        let (eh, ew) = (dh * (kh - 1) + 1, dw * (kw - 1) + 1);
        prop_assume!(h + pads[0] + pads[2] >= eh && w + pads[1] + pads[3] >= ew);
        let x = f32_tensor(&[1, c, h, w], seed);
        let wt = f32_tensor(&[m, c, kh, kw], seed ^ 77);
        let wc = wt.to_constant();
        let op = Conv {
            strides: vec![sh as i64, sw as i64],
            dilations: vec![dh as i64, dw as i64],
            pads: pads.iter().map(|&p| p as i64).collect(),
            ..Conv::default()
        };
        let out = run_node(op.into(), vec![x.clone()], vec![wc], 1);
        let oh = (h + pads[0] + pads[2] - eh) / sh + 1;
        let ow = (w + pads[1] + pads[3] - ew) / sw + 1;
        let Value::Tensor(t) = &out[0] else { panic!() };
        prop_assert_eq!(&t.shape, &vec![1, m, oh, ow]);
        let (xv, wv) = (f32s(&Value::Tensor(x)).to_vec(), f32s(&Value::Tensor(wt)).to_vec());
        let got = f32s(&out[0]);
        for mo in 0..m {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = 0.0f32;
                    for ci in 0..c {
                        for a in 0..kh {
                            for b in 0..kw {
                                let y = (i * sh + a * dh) as isize - pads[0] as isize;
                                let xx = (j * sw + b * dw) as isize - pads[1] as isize;
                                if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                                    acc += xv[(ci * h + y as usize) * w + xx as usize] * wv[((mo * c + ci) * kh + a) * kw + b];
                                }
                            }
                        }
                    }
                    let g = got[(mo * oh + i) * ow + j];
                    prop_assert!((g - acc).abs() <= 1e-4 * acc.abs().max(1.0), "{} vs {}", g, acc);
                }
            }
        }
    }

    #[test]
    fn max_pool_ceil_mode_shape_and_values_match_a_direct_loop(
        (h, w) in (1usize..10, 1usize..10),
        (kh, kw) in (1usize..4, 1usize..4),
        (sh, sw) in (1usize..4, 1usize..4),
        pads in prop::array::uniform4(0usize..2),
        ceil in any::<bool>(),
        seed in any::<u64>(),
    ) {
        prop_assume!(pads[0] < kh && pads[2] < kh && pads[1] < kw && pads[3] < kw);
        prop_assume!(h + pads[0] + pads[2] >= kh && w + pads[1] + pads[3] >= kw);
        let x = f32_tensor(&[1, 1, h, w], seed);
        let op = Pool {
            kind: PoolKind::Max,
            kernel_shape: vec![kh as i64, kw as i64],
            strides: vec![sh as i64, sw as i64],
            pads: pads.iter().map(|&p| p as i64).collect(),
            ceil_mode: ceil,
            ..Pool::default()
        };
        let out = run_node(op.into(), vec![x.clone()], vec![], 1);
        // ONNX: floor or ceil of (in + pads - k) / s + 1; with ceil, a last window starting in the end
        // padding is dropped.
        let size = |n: usize, p0: usize, p1: usize, k: usize, s: usize| {
            let span = n + p0 + p1 - k;
            let mut o = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
            if ceil && (o - 1) * s >= n + p0 {
                o -= 1;
            }
            o
        };
        let (oh, ow) = (size(h, pads[0], pads[2], kh, sh), size(w, pads[1], pads[3], kw, sw));
        let Value::Tensor(t) = &out[0] else { panic!() };
        prop_assert_eq!(&t.shape, &vec![1, 1, oh, ow]);
        let xv = f32s(&Value::Tensor(x)).to_vec();
        let got = f32s(&out[0]);
        for i in 0..oh {
            for j in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for a in 0..kh {
                    for b in 0..kw {
                        let y = (i * sh + a) as isize - pads[0] as isize;
                        let xx = (j * sw + b) as isize - pads[1] as isize;
                        if y >= 0 && xx >= 0 && (y as usize) < h && (xx as usize) < w {
                            m = m.max(xv[y as usize * w + xx as usize]);
                        }
                    }
                }
                prop_assert_eq!(got[i * ow + j], m);
            }
        }
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates_and_dequantize_inverts(
        xs in prop::collection::vec(-300.0f32..300.0, 1..40),
        scale in 0.05f32..4.0,
        zp in 0u8..=255,
        halves in prop::collection::vec(-260i32..260, 0..8),
    ) {
        // Include exact .5 cases, where round-half-to-even matters.
        let mut v = xs;
        v.extend(halves.iter().map(|&h| (h as f32 + 0.5) * scale));
        let x = Tensor::new(vec![v.len()], Data::F32(v.clone())).unwrap();
        let consts = vec![
            Constant::from_f32s(&[], &[scale]),
            Tensor::new(vec![], Data::U8(vec![zp])).unwrap().to_constant(),
        ];
        let q = run_node(QuantizeLinear::default().into(), vec![x], consts.clone(), 1);
        let Value::Tensor(Tensor { data: Data::U8(qv), .. }) = &q[0] else { panic!("{:?}", q[0]) };
        for (&xi, &qi) in v.iter().zip(qv) {
            let r = (xi / scale).round_ties_even() + f32::from(zp);
            let want = r.clamp(0.0, 255.0) as u8;
            prop_assert_eq!(qi, want, "x={} scale={} zp={}", xi, scale, zp);
        }
        let back = run_node(DequantizeLinear::default().into(), vec![Tensor::new(vec![qv.len()], Data::U8(qv.clone())).unwrap()], consts, 1);
        for (&qi, &d) in qv.iter().zip(f32s(&back[0])) {
            let want = (f32::from(qi) - f32::from(zp)) * scale;
            prop_assert!((d - want).abs() <= 1e-6 * want.abs().max(1.0));
        }
    }
}

#[test]
fn dtype_of_property_inputs_is_f32() {
    assert_eq!(f32_tensor(&[2], 1).dtype(), DType::F32);
}
