//! Differential tests of the reduction and normalization kernels (`lower::reduce`, `lower::norm`):
//! random shapes, axes and attributes, native (1 and 2 threads) against the reference interpreter.
//! Each property also runs on a scalar-only x86_64 target (no SSE4.1: `f32_lanes() == 1`) so the
//! scalar code paths are exercised on the host.

use std::sync::Arc;

use carve_codegen::Target;
use carve_codegen::jit::compile_jit;
use carve_codegen::prepare::{fold_constants, prepare};
use carve_codegen::testing::{Operand, check_node, compare, random_f32, single_node_graph};
use carve_ir::Op;
use carve_ir::ops::norm::{BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RmsNorm};
use carve_ir::ops::reduce::{ArgKind, ArgReduce, Reduce, ReduceKind, Softmax, SoftmaxKind, TopK};
use carve_runtime::interp::{self, Value};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

/// `check_node` on an explicit target (must be the host triple): no fallback, 1 vs 2 threads
/// bit-identical, within tolerance of the interpreter.
fn check_on(
    target: &Target,
    op: Op,
    operands: &[Operand],
    n_outputs: usize,
    rtol: f64,
    atol: f64,
) -> Result<(), String> {
    let g = single_node_graph(op, operands, n_outputs)?;
    let inputs: Vec<Tensor> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Input(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let mut pg = g.clone();
    let folded = fold_constants(&mut pg).map_err(|e| e.to_string())?;
    let pg = prepare(&pg).map_err(|e| e.to_string())?;
    let (e1, report) =
        compile_jit(Arc::clone(&pg), target, 1, folded).map_err(|e| e.to_string())?;
    let (e2, _) = compile_jit(Arc::clone(&pg), target, 2, folded).map_err(|e| e.to_string())?;
    if let Some(f) = report.fallbacks.first() {
        return Err(format!("node fell back: {}", f.reason));
    }
    let a = e1.run(&inputs).map_err(|e| e.to_string())?;
    let b = e2.run(&inputs).map_err(|e| e.to_string())?;
    // Bitwise (NaN != NaN under PartialEq).
    let bits =
        |v: &[Tensor]| -> Vec<Option<Vec<u8>>> { v.iter().map(|t| t.data.to_le_bytes()).collect() };
    if bits(&a) != bits(&b) {
        return Err("results differ between 1 and 2 threads".into());
    }
    let r = interp::run(&g, inputs.into_iter().map(Value::Tensor).collect())
        .map_err(|e| e.to_string())?;
    for (k, (x, v)) in a.iter().zip(r).enumerate() {
        let Value::Tensor(y) = v else {
            return Err("interpreter returned a non-tensor".into());
        };
        compare(x, &y, rtol, atol).map_err(|m| format!("output {k}: {m}"))?;
    }
    Ok(())
}

/// The host target with vectors, and the host triple without SSE4.1 (scalar code only).
fn targets() -> Vec<Target> {
    let host = Target::host().unwrap();
    let mut out = vec![host.clone()];
    if cfg!(target_arch = "x86_64") {
        let t = Target::parse(&host.triple.to_string(), Some("-sse41,-sse42")).unwrap();
        assert_eq!(t.f32_lanes(), 1);
        out.push(t);
    }
    out
}

fn check_all(op: Op, operands: &[Operand], n_outputs: usize, rtol: f64, atol: f64) {
    for t in targets() {
        if let Err(e) = check_on(&t, op.clone(), operands, n_outputs, rtol, atol) {
            panic!("{op:?} on {t}: {e}");
        }
    }
}

fn f32t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), Data::F32(v)).unwrap()
}

fn i64t(shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::new(shape.to_vec(), Data::I64(v)).unwrap()
}

/// Shapes of rank 0..=4 with dims picked to hit vector bodies and tails; at most `max` elements.
fn shape_strategy(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 16, 17, 33]),
        0..=4,
    )
    .prop_filter("too large", move |s| s.iter().product::<usize>() <= max)
}

/// Absolute tolerance for a mean-subtracting normalization of `x` in blocks of `block` elements with
/// values up to `max_abs` and scales up to 2. The kernel's f32 mean carries ~ulp(max|x|) of rounding,
/// which the output sees multiplied by `1/√(var+ε)·|scale|`; tiny blocks of close values (or a tiny
/// ε) make that factor large, so the tolerance follows the worst block (computed in f64).
fn norm_atol(x: &[f32], block: usize, eps: f64, max_abs: f64) -> f64 {
    let max_inv = x
        .chunks(block.max(1))
        .map(|ch| {
            let m = ch.iter().map(|&v| f64::from(v)).sum::<f64>() / ch.len() as f64;
            let var = ch.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / ch.len() as f64;
            1.0 / (var + eps).sqrt()
        })
        .fold(0.0, f64::max);
    (4.0 * f64::from(f32::EPSILON) * max_abs * max_inv * 2.0).max(1e-5)
}

const KINDS: [ReduceKind; 10] = [
    ReduceKind::Sum,
    ReduceKind::Mean,
    ReduceKind::Max,
    ReduceKind::Min,
    ReduceKind::Prod,
    ReduceKind::L1,
    ReduceKind::L2,
    ReduceKind::LogSum,
    ReduceKind::LogSumExp,
    ReduceKind::SumSquare,
];

/// Values suited to a reduction kind (positive for log_sum, near 1 for prod).
fn values_for(kind: ReduceKind, n: usize, seed: u64) -> Vec<f32> {
    match kind {
        ReduceKind::LogSum => random_f32(n, seed, 0.1, 2.0),
        ReduceKind::Prod => random_f32(n, seed, 0.8, 1.25),
        ReduceKind::LogSumExp => random_f32(n, seed, -30.0, 30.0),
        _ => random_f32(n, seed, -2.0, 2.0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reduce_f32_matches_interpreter(
        shape in shape_strategy(40_000),
        kind in prop::sample::select(KINDS.to_vec()),
        axis_bits in 0u32..16,
        keepdims: bool,
        noop: bool,
        absent_axes: bool,
        seed: u64,
    ) {
        let rank = shape.len();
        let n: usize = shape.iter().product();
        let x = f32t(&shape, values_for(kind, n, seed));
        // Random subset of the axes, each randomly written negative.
        let axes: Vec<i64> = (0..rank)
            .filter(|&a| axis_bits >> a & 1 == 1)
            .map(|a| if (seed >> a) & 1 == 1 { a as i64 - rank as i64 } else { a as i64 })
            .collect();
        let op = Reduce { kind, keepdims, noop_with_empty_axes: noop };
        let axes_op = if absent_axes && axes.is_empty() {
            Operand::Absent
        } else {
            Operand::Const(i64t(&[axes.len()], axes.clone()))
        };
        // A sum that cancels (±2 values) keeps the absolute error of its f32 partial sums: up to
        // ~ε·Σ|x| ≤ ε·r·max|x| over the r reduced elements (the kernel and the interpreter add in
        // different orders).
        let r: usize = if axes.is_empty() {
            if noop { 1 } else { n }
        } else {
            (0..rank).filter(|&a| axis_bits >> a & 1 == 1).map(|a| shape[a]).product()
        };
        let atol = if kind == ReduceKind::Sum {
            (f64::from(f32::EPSILON) * r as f64 * 2.0).max(1e-5)
        } else {
            1e-5
        };
        check_all(op.into(), &[Operand::Input(x), axes_op], 1, 2e-5, atol);
    }

    #[test]
    fn softmax_matches_interpreter(
        shape in shape_strategy(40_000).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        kind in prop::sample::select(vec![SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax, SoftmaxKind::Hardmax]),
        axis_pick: u8,
        coerce_2d: bool,
        scale in prop::sample::select(vec![1.0f32, 10.0, 1000.0]),
        seed: u64,
    ) {
        let rank = shape.len() as i64;
        let axis = i64::from(axis_pick) % (2 * rank) - rank;
        let n: usize = shape.iter().product();
        let mut v = random_f32(n, seed, -scale, scale);
        if kind == SoftmaxKind::Hardmax {
            // Ties: round to a few distinct values.
            v.iter_mut().for_each(|x| *x = (*x / scale * 3.0).round());
        }
        let op = Softmax { kind, axis, coerce_2d };
        // log_softmax near 0 is ln(s) of an f32 sum s ≈ 1 of `len` exp terms, each within ~1 ulp:
        // the absolute error grows like len · ulp(1) / 2 (kernel and interpreter sum in different
        // orders), never below 2e-7.
        let a = usize::try_from(axis.rem_euclid(rank)).unwrap_or(0);
        let len: usize = if coerce_2d { shape[a..].iter().product() } else { shape[a] };
        let atol = (len as f64 * 6e-8).max(2e-7);
        check_all(op.into(), &[Operand::Input(f32t(&shape, v))], 1, 1e-5, atol);
    }

    #[test]
    fn arg_reduce_matches_interpreter(
        shape in shape_strategy(20_000).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        max: bool,
        last: bool,
        keepdims: bool,
        axis_pick: u8,
        int: bool,
        nan: bool,
        seed: u64,
    ) {
        let rank = shape.len() as i64;
        let axis = i64::from(axis_pick) % (2 * rank) - rank;
        let n: usize = shape.iter().product();
        // Few distinct values: many ties.
        let v: Vec<f32> = random_f32(n, seed, -3.0, 3.0).iter().map(|x| x.round()).collect();
        let x = if int {
            Tensor::new(shape.clone(), Data::I64(v.iter().map(|&x| x as i64 * 1_000_000_007).collect())).unwrap()
        } else {
            let mut v = v;
            if nan {
                for (i, x) in v.iter_mut().enumerate() {
                    if (seed >> (i % 61)) & 7 == 0 {
                        *x = f32::NAN;
                    }
                }
            }
            f32t(&shape, v)
        };
        let op = ArgReduce {
            kind: if max { ArgKind::Max } else { ArgKind::Min },
            axis,
            keepdims,
            select_last_index: last,
        };
        check_all(op.into(), &[Operand::Input(x)], 1, 0.0, 0.0);
    }

    #[test]
    fn top_k_matches_interpreter(
        shape in shape_strategy(20_000).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        largest: bool,
        axis_pick: u8,
        k_pick: u16,
        nan: bool,
        seed: u64,
    ) {
        let rank = shape.len() as i64;
        let axis = i64::from(axis_pick) % (2 * rank) - rank;
        let a = usize::try_from(axis.rem_euclid(rank)).unwrap_or(0);
        let k = usize::from(k_pick) % (shape[a] + 1);
        let n: usize = shape.iter().product();
        // Few distinct values: many ties (broken by lower index), and NaNs above every number.
        let mut v: Vec<f32> = random_f32(n, seed, -3.0, 3.0).iter().map(|x| x.round()).collect();
        if nan {
            for (i, x) in v.iter_mut().enumerate() {
                if (seed >> (i % 61)) & 7 == 0 {
                    *x = f32::NAN;
                }
            }
        }
        let op = TopK { axis, largest, sorted: true };
        let operands = [Operand::Input(f32t(&shape, v)), Operand::Const(i64t(&[1], vec![k as i64]))];
        check_all(op.into(), &operands, 2, 0.0, 0.0);
    }

    #[test]
    fn reduce_int_matches_interpreter(
        shape in shape_strategy(20_000),
        kind in prop::sample::select(vec![ReduceKind::Sum, ReduceKind::Mean, ReduceKind::Max, ReduceKind::Min, ReduceKind::Prod]),
        axis_bits in 0u32..16,
        keepdims: bool,
        i32_: bool,
        seed: u64,
    ) {
        let rank = shape.len();
        let n: usize = shape.iter().product();
        let v: Vec<i64> = random_f32(n, seed, -1000.0, 1000.0).iter().map(|&x| x as i64).collect();
        let x = if i32_ {
            Tensor::new(shape.clone(), Data::I32(v.iter().map(|&x| x as i32).collect())).unwrap()
        } else {
            Tensor::new(shape.clone(), Data::I64(v.iter().map(|&x| x * 3_000_000_001).collect())).unwrap()
        };
        let axes: Vec<i64> = (0..rank).filter(|&a| axis_bits >> a & 1 == 1).map(|a| a as i64).collect();
        let op = Reduce { kind, keepdims, noop_with_empty_axes: false };
        check_all(op.into(), &[Operand::Input(x), Operand::Const(i64t(&[axes.len()], axes))], 1, 0.0, 0.0);
    }
}

#[test]
fn large_reductions_split_into_tiles() {
    // Rows (last axis), columns (first axis) with lane chunks, and a middle axis; all multi-tile.
    for (shape, axes) in [
        (vec![96usize, 4099], vec![1i64]),
        (vec![4099, 96], vec![0]),
        (vec![3, 2000, 70], vec![1]),
        (vec![5, 300, 7, 40], vec![1, 3]),
        (vec![1, 256, 1100], vec![1]),
    ] {
        let n: usize = shape.iter().product();
        for kind in [ReduceKind::Sum, ReduceKind::Max, ReduceKind::LogSumExp] {
            let x = f32t(&shape, random_f32(n, 7, -2.0, 2.0));
            let op = Reduce {
                kind,
                keepdims: false,
                noop_with_empty_axes: false,
            };
            let r = check_node(
                op.into(),
                &[
                    Operand::Input(x),
                    Operand::Const(i64t(&[axes.len()], axes.clone())),
                ],
                1,
                2e-5,
                1e-4,
            )
            .unwrap_or_else(|e| panic!("{shape:?} {axes:?} {kind:?}: {e}"));
            assert!(r.kernels >= 1);
        }
    }
}

/// A detector's top-300 of 8400 scores (isbnx_yolo26n), and a lane per column (inner > 1).
#[test]
fn model_sized_top_k() {
    for (shape, axis, k) in [(vec![2, 8400], -1i64, 300i64), (vec![500, 3], 0, 64)] {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = random_f32(n, 9, 0.0, 1.0)
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect();
        let op = TopK {
            axis,
            largest: true,
            sorted: true,
        };
        let operands = [
            Operand::Input(f32t(&shape, v)),
            Operand::Const(i64t(&[1], vec![k])),
        ];
        check_all(op.into(), &operands, 2, 0.0, 0.0);
    }
}

#[test]
fn large_softmax_rows_and_columns() {
    for (shape, axis) in [
        (vec![1usize, 12, 128, 128], -1i64),
        (vec![2, 300, 500], 1),
        (vec![1, 3000, 200], 1),
    ] {
        let n: usize = shape.iter().product();
        for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax] {
            let x = f32t(&shape, random_f32(n, 3, -50.0, 50.0));
            let op = Softmax {
                kind,
                axis,
                coerce_2d: false,
            };
            check_node(op.into(), &[Operand::Input(x)], 1, 1e-5, 1e-7)
                .unwrap_or_else(|e| panic!("{shape:?} {axis} {kind:?}: {e}"));
        }
    }
}

#[test]
fn softmax_special_values() {
    let inf = f32::INFINITY;
    let rows = [
        vec![0.0f32, 0.0, 0.0, 0.0, 0.0],
        vec![-inf, 0.0, 1.0, -inf, 2.0],
        vec![-inf, -inf, -inf, -inf, -inf],
        vec![inf, 1.0, 2.0, 3.0, 4.0],
        vec![f32::NAN, 1.0, 2.0, 3.0, 4.0],
        vec![88.0, -88.0, 100.0, -100.0, 0.0],
        vec![-1e30, 1e30, 3.4e38, -3.4e38, 0.0],
    ];
    let v: Vec<f32> = rows.concat();
    for kind in [SoftmaxKind::Softmax, SoftmaxKind::LogSoftmax] {
        for t in targets() {
            let op = Softmax {
                kind,
                axis: -1,
                coerce_2d: false,
            };
            // log_softmax near 0 is ln(1 + small) of an f32 sum: absolute error ~ulp(1).
            check_on(
                &t,
                op.into(),
                &[Operand::Input(f32t(&[7, 5], v.clone()))],
                1,
                1e-5,
                2e-7,
            )
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    }
}

#[test]
fn reductions_of_special_and_empty_inputs() {
    let inf = f32::INFINITY;
    let v = vec![
        1.0f32,
        f32::NAN,
        2.0,
        -inf,
        -inf,
        -inf,
        inf,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
        1e-40,
        3e-39,
        0.0,
    ];
    for kind in KINDS {
        let op = Reduce {
            kind,
            keepdims: true,
            noop_with_empty_axes: false,
        };
        check_all(
            op.into(),
            &[
                Operand::Input(f32t(&[5, 3], v.clone())),
                Operand::Const(i64t(&[1], vec![1])),
            ],
            1,
            2e-5,
            // Squares of subnormals underflow in f32 (the interpreter computes in f64).
            1e-37,
        );
        // Reducing an empty axis gives the identity.
        let op = Reduce {
            kind,
            keepdims: false,
            noop_with_empty_axes: false,
        };
        check_all(
            op.into(),
            &[
                Operand::Input(f32t(&[3, 0], vec![])),
                Operand::Const(i64t(&[1], vec![1])),
            ],
            1,
            0.0,
            0.0,
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn layer_norm_matches_interpreter(
        shape in shape_strategy(40_000).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        axis_pick: u8,
        bias: bool,
        const_params: bool,
        broadcast_scale: bool,
        n_outputs in 1usize..=3,
        eps in prop::sample::select(vec![1e-5f32, 1e-12, 0.1]),
        seed: u64,
    ) {
        let rank = shape.len() as i64;
        let axis = i64::from(axis_pick) % (2 * rank) - rank;
        let a = (axis + rank) as usize % shape.len();
        let target = shape[a..].to_vec();
        let n: usize = shape.iter().product();
        let cols: usize = target.iter().product();
        let x = f32t(&shape, random_f32(n, seed, -3.0, 5.0));
        let Data::F32(xv) = &x.data else { unreachable!() };
        let atol = norm_atol(xv, cols, f64::from(eps), 5.0);
        // A constant scale may broadcast (only its last dim given); run-time ones have the full shape.
        let pshape = if const_params && broadcast_scale { vec![*target.last().unwrap()] } else { target.clone() };
        let pn: usize = pshape.iter().product();
        let scale = f32t(&pshape, random_f32(pn, seed ^ 1, 0.5, 2.0));
        let b = f32t(&target, random_f32(cols, seed ^ 2, -1.0, 1.0));
        let wrap = |t: Tensor| if const_params { Operand::Const(t) } else { Operand::Input(t) };
        let mut ops = vec![Operand::Input(x), wrap(scale)];
        if bias {
            ops.push(wrap(b));
        }
        let op = LayerNorm { axis, epsilon: eps, stash_type: carve_ir::DType::F32 };
        check_all(op.into(), &ops, n_outputs, 1e-4, atol);
    }

    #[test]
    fn rms_norm_matches_interpreter(
        shape in shape_strategy(40_000).prop_filter("rank ≥ 1", |s| !s.is_empty()),
        axis_pick: u8,
        const_params: bool,
        seed: u64,
    ) {
        let rank = shape.len() as i64;
        let axis = i64::from(axis_pick) % (2 * rank) - rank;
        let a = (axis + rank) as usize % shape.len();
        let target = shape[a..].to_vec();
        let n: usize = shape.iter().product();
        let cols: usize = target.iter().product();
        let x = f32t(&shape, random_f32(n, seed, -3.0, 5.0));
        let scale = f32t(&target, random_f32(cols, seed ^ 1, 0.5, 2.0));
        let s = if const_params { Operand::Const(scale) } else { Operand::Input(scale) };
        let op = RmsNorm { axis, epsilon: 1e-6, stash_type: carve_ir::DType::F32 };
        check_all(op.into(), &[Operand::Input(x), s], 1, 1e-4, 1e-5);
    }

    /// Each parameter is per channel or per activation (`per_activation` bit i for input i + 1);
    /// `repeat` makes per-activation parameters constant within each channel (the per-channel kernel
    /// then applies).
    #[test]
    fn batch_norm_matches_interpreter(
        shape in shape_strategy(40_000).prop_filter("rank ≥ 2", |s| s.len() >= 2),
        per_activation in 0u8..16,
        repeat: bool,
        eps in prop::sample::select(vec![1e-5f32, 1e-3]),
        seed: u64,
    ) {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let spatial: usize = shape[2..].iter().product();
        let x = f32t(&shape, random_f32(n, seed, -3.0, 3.0));
        let p = |k: u64, lo: f32, hi: f32| {
            if per_activation & (1 << (k - 1)) == 0 {
                return Operand::Const(f32t(&[c], random_f32(c, seed ^ k, lo, hi)));
            }
            let v = if repeat {
                let per_c = random_f32(c, seed ^ k, lo, hi);
                (0..c * spatial).map(|e| per_c[e / spatial]).collect()
            } else {
                random_f32(c * spatial, seed ^ k, lo, hi)
            };
            Operand::Const(f32t(&shape[1..], v))
        };
        let op = BatchNorm { epsilon: eps, momentum: 0.9, training_mode: false };
        check_all(
            op.into(),
            &[Operand::Input(x), p(1, 0.5, 2.0), p(2, -1.0, 1.0), p(3, -1.0, 1.0), p(4, 0.1, 2.0)],
            1,
            1e-4,
            1e-5,
        );
    }

    #[test]
    fn group_and_instance_norm_match_interpreter(
        shape in shape_strategy(40_000).prop_filter("rank ≥ 2", |s| s.len() >= 2),
        instance: bool,
        group_pick: usize,
        const_params: bool,
        seed: u64,
    ) {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let divisors: Vec<usize> = (1..=c).filter(|d| c % d == 0).collect();
        let g = divisors[group_pick % divisors.len()];
        let x = f32t(&shape, random_f32(n, seed, -3.0, 5.0));
        let wrap = |t: Tensor| if const_params { Operand::Const(t) } else { Operand::Input(t) };
        let s = wrap(f32t(&[c], random_f32(c, seed ^ 1, 0.5, 2.0)));
        let b = wrap(f32t(&[c], random_f32(c, seed ^ 2, -1.0, 1.0)));
        let op: Op = if instance {
            InstanceNorm { epsilon: 1e-5 }.into()
        } else {
            GroupNorm { num_groups: g as i64, epsilon: 1e-5, stash_type: carve_ir::DType::F32 }.into()
        };
        let groups = if instance { c } else { g };
        let Data::F32(xv) = &x.data else { unreachable!() };
        let atol = norm_atol(xv, n / (shape[0] * groups).max(1), 1e-5, 5.0);
        check_all(op, &[Operand::Input(x), s, b], 1, 1e-4, atol);
    }
}

#[test]
fn large_norms_split_into_tiles() {
    let x = f32t(&[1, 128, 384], random_f32(128 * 384, 5, -2.0, 2.0));
    let s = f32t(&[384], random_f32(384, 6, 0.5, 2.0));
    let b = f32t(&[384], random_f32(384, 7, -1.0, 1.0));
    let op = LayerNorm {
        axis: -1,
        epsilon: 1e-12,
        stash_type: carve_ir::DType::F32,
    };
    check_node(
        op.into(),
        &[Operand::Input(x), Operand::Const(s), Operand::Const(b)],
        1,
        1e-4,
        1e-5,
    )
    .unwrap();
    let shape = [2usize, 24, 80, 80];
    let n: usize = shape.iter().product();
    let x = f32t(&shape, random_f32(n, 8, -2.0, 2.0));
    let p = |k: u64, lo: f32, hi: f32| Operand::Const(f32t(&[24], random_f32(24, k, lo, hi)));
    let op = BatchNorm {
        epsilon: 1e-5,
        momentum: 0.9,
        training_mode: false,
    };
    let r = check_node(
        op.into(),
        &[
            Operand::Input(x.clone()),
            p(1, 0.5, 2.0),
            p(2, -1.0, 1.0),
            p(3, -1.0, 1.0),
            p(4, 0.1, 2.0),
        ],
        1,
        1e-4,
        1e-5,
    )
    .unwrap();
    assert_eq!(r.kernels, 1);
    let op = GroupNorm {
        num_groups: 4,
        epsilon: 1e-5,
        stash_type: carve_ir::DType::F32,
    };
    check_node(
        op.into(),
        &[Operand::Input(x), p(5, 0.5, 2.0), p(6, -1.0, 1.0)],
        1,
        1e-4,
        1e-5,
    )
    .unwrap();
}

/// Timing of the model-shaped kernels (run with `--release -- --ignored --nocapture`): a chain of
/// `k` identical shape-preserving nodes, per-node time from the difference of k = 21 and k = 1.
#[test]
#[ignore]
fn bench_model_shapes() {
    use carve_ir::{Graph, Type};
    use std::time::Instant;
    let chain = |op: Op, shape: &[usize], params: &[Tensor], k: usize| -> f64 {
        let mut g = Graph::new("bench");
        let x = Tensor::new(
            shape.to_vec(),
            Data::F32(random_f32(shape.iter().product(), 1, -2.0, 2.0)),
        )
        .unwrap();
        let mut v = g.add_input("x", Type::Tensor(x.ty()));
        let ps: Vec<_> = params
            .iter()
            .enumerate()
            .map(|(i, p)| g.add_const(format!("p{i}"), p.to_constant()))
            .collect();
        for i in 0..k {
            let mut ins = vec![Some(v)];
            ins.extend(ps.iter().map(|&p| Some(p)));
            v = g
                .add_node(format!("n{i}"), op.clone(), ins, vec![format!("y{i}")])
                .unwrap()[0];
        }
        g.outputs = vec![v];
        let mut pg = g.clone();
        let folded = fold_constants(&mut pg).unwrap();
        let pg = prepare(&pg).unwrap();
        let (exe, rep) = compile_jit(pg, &Target::host().unwrap(), 1, folded).unwrap();
        assert!(rep.fallbacks.is_empty());
        let inputs = [x];
        for _ in 0..3 {
            exe.run(&inputs).unwrap();
        }
        let n = 30;
        let t = Instant::now();
        for _ in 0..n {
            exe.run(&inputs).unwrap();
        }
        t.elapsed().as_secs_f64() / n as f64
    };
    let per_node = |name: &str, op: Op, shape: &[usize], params: &[Tensor]| {
        let t1 = chain(op.clone(), shape, params, 1);
        let t21 = chain(op, shape, params, 21);
        println!("{name}: {:.1} µs per node", (t21 - t1) / 20.0 * 1e6);
    };
    per_node(
        "softmax [1,12,128,128] axis -1",
        Softmax {
            kind: SoftmaxKind::Softmax,
            axis: -1,
            coerce_2d: false,
        }
        .into(),
        &[1, 12, 128, 128],
        &[],
    );
    let s = f32t(&[384], random_f32(384, 2, 0.5, 2.0));
    let b = f32t(&[384], random_f32(384, 3, -1.0, 1.0));
    per_node(
        "layer_norm [1,128,384]",
        LayerNorm {
            axis: -1,
            epsilon: 1e-12,
            stash_type: carve_ir::DType::F32,
        }
        .into(),
        &[1, 128, 384],
        &[s, b],
    );
    let p = |k: u64, lo: f32, hi: f32| f32t(&[24], random_f32(24, k, lo, hi));
    per_node(
        "batch_norm [1,24,160,160]",
        BatchNorm {
            epsilon: 1e-5,
            momentum: 0.9,
            training_mode: false,
        }
        .into(),
        &[1, 24, 160, 160],
        &[
            p(1, 0.5, 2.0),
            p(2, -1.0, 1.0),
            p(3, -1.0, 1.0),
            p(4, 0.1, 2.0),
        ],
    );
    // Reductions keep the shape with keepdims when the reduced axis has size 1 — use a
    // single node and report the whole run (including input/output copies).
    for (name, shape, axes, kind) in [
        (
            "reduce mean [1,128,384] axis -1",
            vec![1usize, 128, 384],
            vec![-1i64],
            ReduceKind::Mean,
        ),
        (
            "reduce sum [1,512,256] axis 1",
            vec![1, 512, 256],
            vec![1],
            ReduceKind::Sum,
        ),
        (
            "reduce max [1,512,256] axis 1",
            vec![1, 512, 256],
            vec![1],
            ReduceKind::Max,
        ),
    ] {
        let op: Op = Reduce {
            kind,
            keepdims: true,
            noop_with_empty_axes: false,
        }
        .into();
        let g = single_node_graph(
            op,
            &[
                Operand::Input(f32t(
                    &shape,
                    random_f32(shape.iter().product(), 1, -2.0, 2.0),
                )),
                Operand::Const(i64t(&[axes.len()], axes)),
            ],
            1,
        )
        .unwrap();
        let x = f32t(&shape, random_f32(shape.iter().product(), 1, -2.0, 2.0));
        let mut pg = g.clone();
        let folded = fold_constants(&mut pg).unwrap();
        let pg = prepare(&pg).unwrap();
        let (exe, _) = compile_jit(pg, &Target::host().unwrap(), 1, folded).unwrap();
        let inputs = [x];
        for _ in 0..3 {
            exe.run(&inputs).unwrap();
        }
        let t = Instant::now();
        for _ in 0..100 {
            exe.run(&inputs).unwrap();
        }
        println!(
            "{name}: {:.1} µs per run (incl. I/O copies)",
            t.elapsed().as_secs_f64() / 100.0 * 1e6
        );
    }
}
