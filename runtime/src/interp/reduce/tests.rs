//! Tests of the reduce-family kernels against scalar formulas and the ONNX edge cases.

use super::testing::{as_f32, close, f32s, i64s, run_op};
use super::*;

fn red(kind: ReduceKind, keepdims: bool) -> Reduce {
    Reduce {
        kind,
        keepdims,
        noop_with_empty_axes: false,
    }
}

/// A scalar reference for one reduction kind.
type Formula = fn(&[f32]) -> f32;

#[test]
fn every_float_kind_matches_scalar_formulas() {
    let x = [1.0f32, -2.0, 3.0, 0.5, 0.25, 4.0];
    let rows = [&x[..3], &x[3..]];
    let cases: [(ReduceKind, Formula); 10] = [
        (ReduceKind::Sum, |r| r.iter().sum()),
        (ReduceKind::Mean, |r| r.iter().sum::<f32>() / r.len() as f32),
        (ReduceKind::Max, |r| {
            r.iter().copied().fold(f32::MIN, f32::max)
        }),
        (ReduceKind::Min, |r| {
            r.iter().copied().fold(f32::MAX, f32::min)
        }),
        (ReduceKind::Prod, |r| r.iter().product()),
        (ReduceKind::L1, |r| r.iter().map(|x| x.abs()).sum()),
        (ReduceKind::L2, |r| {
            r.iter().map(|x| x * x).sum::<f32>().sqrt()
        }),
        (ReduceKind::LogSum, |r| {
            r.iter().map(|x| x.abs()).sum::<f32>().ln()
        }),
        (ReduceKind::LogSumExp, |r| {
            r.iter().map(|x| x.exp()).sum::<f32>().ln()
        }),
        (ReduceKind::SumSquare, |r| r.iter().map(|x| x * x).sum()),
    ];
    for (kind, f) in cases {
        let input: Vec<f32> = if kind == ReduceKind::LogSum {
            x.iter().map(|v| v.abs()).collect()
        } else {
            x.to_vec()
        };
        let out = run_op(
            red(kind, false),
            vec![Some(f32s(&[2, 3], &input)), Some(i64s(&[1], &[-1]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape, vec![2], "{kind:?}");
        close(&as_f32(&out[0]), &[f(rows[0]), f(rows[1])]);
    }
}

#[test]
fn empty_reductions_give_the_identity() {
    let x = f32s(&[2, 0], &[]);
    let axes = || Some(i64s(&[1], &[1]));
    let want = [
        (ReduceKind::Sum, 0.0),
        (ReduceKind::Prod, 1.0),
        (ReduceKind::Max, f32::NEG_INFINITY),
        (ReduceKind::Min, f32::INFINITY),
        (ReduceKind::LogSum, f32::NEG_INFINITY),
        (ReduceKind::LogSumExp, f32::NEG_INFINITY),
        (ReduceKind::Mean, f32::NAN),
    ];
    for (kind, w) in want {
        let out = run_op(red(kind, true), vec![Some(x.clone()), axes()], 1).unwrap();
        assert_eq!(out[0].shape, vec![2, 1]);
        close(&as_f32(&out[0]), &[w, w]);
    }
    let xi = Tensor::new(vec![2, 0], Data::I32(vec![])).unwrap();
    let out = run_op(red(ReduceKind::Max, false), vec![Some(xi), axes()], 1).unwrap();
    assert_eq!(out[0].data, Data::I32(vec![i32::MIN; 2]));
    let xb = Tensor::new(vec![0], Data::Bool(vec![])).unwrap();
    let out = run_op(red(ReduceKind::Min, false), vec![Some(xb)], 1).unwrap();
    assert_eq!(out[0].data, Data::Bool(vec![true]));
}

#[test]
fn noop_with_empty_axes_still_applies_elementwise_functions() {
    let x = f32s(&[3], &[-1.0, 2.0, -3.0]);
    let noop = |kind| Reduce {
        kind,
        keepdims: false,
        noop_with_empty_axes: true,
    };
    let empty = || Some(i64s(&[0], &[]));
    let out = run_op(noop(ReduceKind::Sum), vec![Some(x.clone()), empty()], 1).unwrap();
    assert_eq!(out[0], x);
    let out = run_op(noop(ReduceKind::SumSquare), vec![Some(x.clone()), None], 1).unwrap();
    close(&as_f32(&out[0]), &[1.0, 4.0, 9.0]);
    let out = run_op(noop(ReduceKind::L1), vec![Some(x), empty()], 1).unwrap();
    close(&as_f32(&out[0]), &[1.0, 2.0, 3.0]);
}

#[test]
fn integer_reductions_are_exact_and_wrap_like_the_element_type() {
    let x = Tensor::new(vec![2], Data::I32(vec![i32::MAX, 1])).unwrap();
    let out = run_op(red(ReduceKind::Sum, false), vec![Some(x)], 1).unwrap();
    assert_eq!(out[0].data, Data::I32(vec![i32::MIN]));
    let x = Tensor::new(vec![3], Data::U64(vec![u64::MAX, 1, 1 << 63])).unwrap();
    let out = run_op(red(ReduceKind::Max, false), vec![Some(x.clone())], 1).unwrap();
    assert_eq!(out[0].data, Data::U64(vec![u64::MAX]));
    let out = run_op(red(ReduceKind::Min, false), vec![Some(x)], 1).unwrap();
    assert_eq!(out[0].data, Data::U64(vec![1]));
    let big = i64s(&[3], &[(1 << 62) + 1, -(1 << 62), (1 << 53) + 1]);
    let out = run_op(red(ReduceKind::Sum, false), vec![Some(big)], 1).unwrap();
    assert_eq!(out[0].data, Data::I64(vec![(1 << 53) + 2]));
    let x = i64s(&[4], &[-7, 2, 2, 0]);
    let out = run_op(red(ReduceKind::Mean, false), vec![Some(x)], 1).unwrap();
    assert_eq!(out[0].data, Data::I64(vec![-0])); // -3/4 truncates toward zero
}

#[test]
fn max_propagates_nan_and_log_sum_exp_is_stable() {
    let x = f32s(&[3], &[1.0, f32::NAN, 2.0]);
    let out = run_op(red(ReduceKind::Max, false), vec![Some(x)], 1).unwrap();
    assert!(as_f32(&out[0])[0].is_nan());
    let x = f32s(
        &[2, 2],
        &[1000.0, 1000.0, f32::NEG_INFINITY, f32::NEG_INFINITY],
    );
    let out = run_op(
        red(ReduceKind::LogSumExp, false),
        vec![Some(x), Some(i64s(&[1], &[1]))],
        1,
    )
    .unwrap();
    close(
        &as_f32(&out[0]),
        &[1000.0 + std::f32::consts::LN_2, f32::NEG_INFINITY],
    );
}

#[test]
fn arg_reduce_breaks_ties_by_first_or_last_index() {
    let x = f32s(&[2, 4], &[1.0, 5.0, 5.0, 2.0, 3.0, f32::NAN, 1.0, f32::NAN]);
    let arg = |kind, last| ArgReduce {
        kind,
        axis: 1,
        keepdims: false,
        select_last_index: last,
    };
    let got = |op| {
        run_op(op, vec![Some(x.clone())], 1).unwrap()[0]
            .data
            .clone()
    };
    assert_eq!(got(arg(ArgKind::Max, false)), Data::I64(vec![1, 1]));
    assert_eq!(got(arg(ArgKind::Max, true)), Data::I64(vec![2, 3]));
    assert_eq!(got(arg(ArgKind::Min, false)), Data::I64(vec![0, 1]));
    let keep = ArgReduce {
        axis: 0,
        ..ArgReduce::default()
    };
    let out = run_op(keep, vec![Some(x.clone())], 1).unwrap();
    assert_eq!(out[0].shape, vec![1, 4]);
    assert_eq!(out[0].data, Data::I64(vec![1, 1, 0, 1])); // NaN wins
}

#[test]
fn softmax_is_stable_and_coerce_2d_normalizes_trailing_axes_jointly() {
    let sm = |kind, axis, coerce_2d| Softmax {
        kind,
        axis,
        coerce_2d,
    };
    let x = f32s(&[2], &[1000.0, 0.0]);
    let out = run_op(
        sm(SoftmaxKind::Softmax, -1, false),
        vec![Some(x.clone())],
        1,
    )
    .unwrap();
    close(&as_f32(&out[0]), &[1.0, 0.0]);
    let out = run_op(sm(SoftmaxKind::LogSoftmax, -1, false), vec![Some(x)], 1).unwrap();
    close(&as_f32(&out[0]), &[0.0, -1000.0]);
    let x = f32s(&[1, 2, 2], &[0.0, 0.0, 0.0, 0.0]);
    let out = run_op(sm(SoftmaxKind::Softmax, 1, true), vec![Some(x.clone())], 1).unwrap();
    close(&as_f32(&out[0]), &[0.25; 4]);
    let out = run_op(sm(SoftmaxKind::Softmax, 1, false), vec![Some(x)], 1).unwrap();
    close(&as_f32(&out[0]), &[0.5; 4]);
    let x = f32s(&[2, 3], &[1.0, 3.0, 3.0, f32::NAN, 0.0, f32::NAN]);
    let out = run_op(sm(SoftmaxKind::Hardmax, 1, false), vec![Some(x)], 1).unwrap();
    close(&as_f32(&out[0]), &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn cumulative_exclusive_reverse_and_integers() {
    let x = i64s(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let cum = |kind, exclusive, reverse| Cumulative {
        kind,
        exclusive,
        reverse,
    };
    let axis = || Some(i64s(&[], &[1]));
    let got = |op| {
        run_op(op, vec![Some(x.clone()), axis()], 1).unwrap()[0]
            .data
            .clone()
    };
    assert_eq!(
        got(cum(CumKind::Sum, false, false)),
        Data::I64(vec![1, 3, 6, 4, 9, 15])
    );
    assert_eq!(
        got(cum(CumKind::Sum, true, true)),
        Data::I64(vec![5, 3, 0, 11, 6, 0])
    );
    assert_eq!(
        got(cum(CumKind::Prod, true, false)),
        Data::I64(vec![1, 1, 2, 1, 4, 20])
    );
    let f = f32s(&[3], &[1.0, 2.0, 3.0]);
    let out = run_op(
        cum(CumKind::Prod, false, true),
        vec![Some(f), Some(i64s(&[1], &[0]))],
        1,
    )
    .unwrap();
    close(&as_f32(&out[0]), &[6.0, 6.0, 3.0]);
}

#[test]
fn top_k_orders_ties_by_lower_index_and_nan_as_largest() {
    let x = f32s(&[7], &[3.0, 1.0, 3.0, 2.0, f32::NAN, 1.0, 3.0]);
    let tk = |largest| TopK {
        axis: -1,
        largest,
        sorted: true,
    };
    let out = run_op(tk(true), vec![Some(x.clone()), Some(i64s(&[1], &[3]))], 2).unwrap();
    assert_eq!(out[1].data, Data::I64(vec![4, 0, 2]));
    let v = as_f32(&out[0]);
    assert!(v[0].is_nan() && v[1] == 3.0 && v[2] == 3.0);
    let out = run_op(tk(false), vec![Some(x), Some(i64s(&[1], &[4]))], 2).unwrap();
    assert_eq!(out[1].data, Data::I64(vec![1, 5, 3, 0]));
    close(&as_f32(&out[0]), &[1.0, 1.0, 2.0, 3.0]);
    let x = i64s(&[3, 2], &[5, 1, 5, 9, 7, 9]);
    let op = TopK {
        axis: 0,
        ..TopK::default()
    };
    let out = run_op(op, vec![Some(x), Some(i64s(&[1], &[2]))], 2).unwrap();
    assert_eq!(out[0].data, Data::I64(vec![7, 9, 5, 9]));
    assert_eq!(out[1].data, Data::I64(vec![2, 1, 0, 2]));
}

#[test]
fn lp_norm_divides_by_the_norm_and_maps_zero_rows_to_zero() {
    let x = f32s(&[2, 2], &[3.0, -4.0, 0.0, 0.0]);
    let out = run_op(LpNorm { axis: 1, p: 2 }, vec![Some(x.clone())], 1).unwrap();
    close(&as_f32(&out[0]), &[0.6, -0.8, 0.0, 0.0]);
    let out = run_op(LpNorm { axis: 1, p: 1 }, vec![Some(x)], 1).unwrap();
    close(&as_f32(&out[0]), &[3.0 / 7.0, -4.0 / 7.0, 0.0, 0.0]);
}

#[test]
fn reduced_index_maps_elements_to_their_slot() {
    let idx: Vec<usize> = ReducedIndex::new(&[2, 3, 2], &[false, true, false]).collect();
    assert_eq!(idx, vec![0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3]);
    let idx: Vec<usize> = ReducedIndex::new(&[2, 2], &[true, false]).collect();
    assert_eq!(idx, vec![0, 1, 0, 1]);
}
