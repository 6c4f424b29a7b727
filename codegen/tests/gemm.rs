//! Differential tests of the native matmul / gemm / conv kernels against the reference interpreter.

use carve_codegen::testing::{Operand, check_node, random_tensor};
use carve_ir::ops::conv::{AutoPad, Conv};
use carve_ir::ops::linalg::{Gemm, MatMul};
use proptest::prelude::*;

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

fn t(shape: &[usize], seed: u64) -> carve_runtime::Tensor {
    random_tensor(shape, seed, -1.0, 1.0)
}

fn operand(x: carve_runtime::Tensor, constant: bool) -> Operand {
    if constant {
        Operand::Const(x)
    } else {
        Operand::Input(x)
    }
}

fn matmul(a: &[usize], b: &[usize], b_const: bool, seed: u64) -> Result<(), String> {
    check_node(
        MatMul::default().into(),
        &[Operand::Input(t(a, seed)), operand(t(b, seed + 1), b_const)],
        1,
        RTOL,
        ATOL,
    )
    .map(|_| ())
}

#[test]
fn matmul_basic() {
    for bc in [true, false] {
        matmul(&[7, 13], &[13, 9], bc, 1).unwrap();
        matmul(&[1, 1], &[1, 1], bc, 2).unwrap();
        matmul(&[64, 300], &[300, 70], bc, 3).unwrap();
        matmul(&[130, 40], &[40, 260], bc, 4).unwrap();
        matmul(&[5], &[5, 3], bc, 5).unwrap();
        matmul(&[4, 5], &[5], bc, 6).unwrap();
        matmul(&[5], &[5], bc, 7).unwrap();
        matmul(&[2, 3, 6, 5], &[5, 11], bc, 8).unwrap();
        matmul(&[2, 1, 6, 5], &[3, 5, 11], bc, 9).unwrap();
        matmul(&[6, 5], &[2, 5, 11], bc, 10).unwrap();
    }
}

#[test]
fn gemm_basic() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for bc in [true, false] {
            for c in [
                None,
                Some(vec![9usize]),
                Some(vec![7, 9]),
                Some(vec![7, 1]),
                Some(vec![1]),
            ] {
                let op = Gemm {
                    alpha: 0.5,
                    beta: 2.0,
                    trans_a: ta,
                    trans_b: tb,
                };
                let a = if ta { [13, 7] } else { [7, 13] };
                let b = if tb { [9, 13] } else { [13, 9] };
                let mut ops = vec![Operand::Input(t(&a, 1)), operand(t(&b, 2), bc)];
                if let Some(c) = c {
                    ops.push(Operand::Input(t(&c, 3)));
                }
                check_node(op.into(), &ops, 1, RTOL, ATOL).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn matmul_random(m in 1usize..18, k in 1usize..40, n in 1usize..18, big in 0usize..3,
                     ba in 0usize..3, bb in 0usize..3, bc in any::<bool>(), seed in 0u64..1000) {
        let (m, n) = if big == 2 { (m * 11, n * 13) } else { (m, n) };
        let k = if big == 1 { k * 23 } else { k };
        let batch_a: Vec<usize> = [vec![], vec![3], vec![2, 1]][ba].clone();
        let batch_b: Vec<usize> = [vec![], vec![1], vec![1, 3]][bb].clone();
        let mut a = batch_a; a.extend([m, k]);
        let mut b = batch_b; b.extend([k, n]);
        matmul(&a, &b, bc, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn gemm_random(m in 1usize..18, k in 1usize..300, n in 1usize..18, ta in any::<bool>(),
                   tb in any::<bool>(), bc in any::<bool>(), cshape in 0usize..5, seed in 0u64..1000) {
        let op = Gemm { alpha: 1.5, beta: -0.5, trans_a: ta, trans_b: tb };
        let a = if ta { [k, m] } else { [m, k] };
        let b = if tb { [n, k] } else { [k, n] };
        let mut ops = vec![Operand::Input(t(&a, seed)), operand(t(&b, seed + 1), bc)];
        match cshape {
            1 => ops.push(Operand::Input(t(&[n], seed + 2))),
            2 => ops.push(Operand::Input(t(&[m, n], seed + 2))),
            3 => ops.push(Operand::Const(t(&[m, 1], seed + 2))),
            4 => ops.push(Operand::Input(t(&[1], seed + 2))),
            _ => {}
        }
        check_node(op.into(), &ops, 1, RTOL, ATOL).map_err(TestCaseError::fail)?;
    }
}

#[allow(clippy::too_many_arguments)]
fn conv(
    x: &[usize],
    m: usize,
    kernel: &[usize],
    group: usize,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    auto_pad: AutoPad,
    bias: bool,
    seed: u64,
) -> Result<(), String> {
    let mut ws = vec![m, x[1] / group];
    ws.extend(kernel);
    let op = Conv {
        group: group as i64,
        strides,
        dilations,
        pads,
        auto_pad,
        ..Conv::default()
    };
    let mut ops = vec![Operand::Input(t(x, seed)), Operand::Const(t(&ws, seed + 1))];
    if bias {
        ops.push(Operand::Const(t(&[m], seed + 2)));
    }
    check_node(op.into(), &ops, 1, RTOL, ATOL).map(|_| ())
}

#[test]
fn conv_basic() {
    let n = AutoPad::NotSet;
    // Pointwise.
    conv(
        &[1, 16, 9, 11],
        24,
        &[1, 1],
        1,
        vec![],
        vec![],
        vec![],
        n,
        true,
        1,
    )
    .unwrap();
    conv(
        &[2, 6, 5, 5],
        4,
        &[1, 1],
        2,
        vec![],
        vec![],
        vec![],
        n,
        false,
        2,
    )
    .unwrap();
    // 3×3 with padding, strides, dilations.
    conv(
        &[1, 8, 12, 13],
        10,
        &[3, 3],
        1,
        vec![],
        vec![],
        vec![1, 1, 1, 1],
        n,
        true,
        3,
    )
    .unwrap();
    conv(
        &[1, 3, 17, 19],
        16,
        &[3, 3],
        1,
        vec![2, 2],
        vec![],
        vec![1, 1, 1, 1],
        n,
        true,
        4,
    )
    .unwrap();
    conv(
        &[1, 4, 15, 15],
        5,
        &[3, 3],
        1,
        vec![],
        vec![2, 2],
        vec![2, 1, 0, 2],
        n,
        false,
        5,
    )
    .unwrap();
    conv(
        &[2, 8, 9, 9],
        8,
        &[3, 3],
        2,
        vec![1, 2],
        vec![],
        vec![],
        AutoPad::SameUpper,
        true,
        6,
    )
    .unwrap();
    // 1-D, and 1-D written as 2-D (magika-like).
    conv(
        &[1, 12, 40],
        7,
        &[3],
        1,
        vec![2],
        vec![],
        vec![1, 1],
        n,
        true,
        7,
    )
    .unwrap();
    conv(
        &[1, 12, 30, 1],
        9,
        &[5, 1],
        1,
        vec![],
        vec![],
        vec![],
        n,
        false,
        8,
    )
    .unwrap();
    // Wide rows (several chunks), large K (several k blocks).
    conv(
        &[1, 40, 6, 300],
        13,
        &[3, 3],
        1,
        vec![],
        vec![],
        vec![1, 1, 1, 1],
        n,
        true,
        9,
    )
    .unwrap();
    // Width-1 axis with begin padding: the padded column must not be dropped as a 1-D conv.
    conv(
        &[1, 2, 4, 1],
        1,
        &[1, 1],
        1,
        vec![1, 3],
        vec![],
        vec![0, 1, 0, 0],
        n,
        false,
        11,
    )
    .unwrap();
    // 1×1 with stride (not pointwise).
    conv(
        &[1, 5, 9, 9],
        6,
        &[1, 1],
        1,
        vec![2, 2],
        vec![],
        vec![],
        n,
        true,
        10,
    )
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn conv_random(c in 1usize..6, m in 1usize..14, h in 1usize..12, w in 1usize..20,
                   kh in 1usize..6, kw in 1usize..6, sy in 1i64..4, sx in 1i64..4,
                   dy in 1i64..3, dx in 1i64..3, p in proptest::collection::vec(0i64..3, 4),
                   group in 1usize..4, bias in any::<bool>(), ap in 0usize..4, seed in 0u64..1000) {
        let auto_pad = [AutoPad::NotSet, AutoPad::SameUpper, AutoPad::SameLower, AutoPad::Valid][ap];
        // Depthwise convs (group = C > 1) belong to another kernel family.
        prop_assume!(group == 1 || c > 1);
        let (c, m) = (c * group, m * group);
        // Skip geometries whose kernel does not fit.
        let ext = |k: usize, d: i64| (k as i64 - 1) * d + 1;
        let (py, px) = if auto_pad == AutoPad::NotSet { (p[0] + p[2], p[1] + p[3]) } else { (0, 0) };
        prop_assume!(ext(kh, dy) <= h as i64 + py && ext(kw, dx) <= w as i64 + px);
        let pads = if auto_pad == AutoPad::NotSet { p } else { vec![] };
        conv(&[1, c, h, w], m, &[kh, kw], group, vec![sy, sx], vec![dy, dx], pads, auto_pad, bias, seed)
            .map_err(TestCaseError::fail)?;
    }
}

/// Weights a kernel packs at compile time are stored once, packed: the raw constant is not also put
/// in the blob when no kernel reads it at run time.
#[test]
fn packed_weights_are_not_stored_twice() {
    use carve_codegen::testing::single_node_graph;
    let (k, n) = (64, 96);
    let raw = k * n * 4;
    let cases: Vec<(carve_ir::Op, Vec<usize>)> = vec![
        (MatMul::default().into(), vec![k, n]),
        (
            Gemm {
                trans_b: true,
                ..Gemm::default()
            }
            .into(),
            vec![n, k],
        ),
    ];
    for (op, wshape) in cases {
        let g = single_node_graph(
            op.clone(),
            &[Operand::Input(t(&[4, k], 1)), Operand::Const(t(&wshape, 2))],
            1,
        )
        .unwrap();
        let g = carve_codegen::prepare::prepare(&g).unwrap();
        let target = carve_codegen::Target::host().unwrap();
        let (_, report) = carve_codegen::jit::compile_jit(g, &target, 1, 0).unwrap();
        assert!(
            report.weights_bytes >= raw && report.weights_bytes < raw + raw / 4,
            "{op:?}: {} weight bytes for a {raw}-byte matrix",
            report.weights_bytes
        );
    }
}

/// Deep products: the k blocks between the first and the last share one run-time loop. Uniform
/// blocks (K = 1000: 4 × 250) and a shorter last block (K = 777: 3 × 196 + 189), for constant and
/// run-time B, with packed A (wide N), and convs with 4 channel blocks (100 and 90 channels, 3×3).
#[test]
fn deep_products_loop_over_k_blocks() {
    // Sums of K products of values in [-1, 1] that cancel keep an absolute f32 error of about
    // K · E|ab| · ε ≈ 1000 · 0.25 · 1.2e-7 = 3e-5 (the kernel adds in another order than the
    // interpreter), so these cases use atol 1e-4.
    let deep_atol = 1e-4;
    for k in [1000, 777] {
        for bc in [true, false] {
            for (m, n, seed) in [(5, 20, 21), (30, 70, 22)] {
                check_node(
                    MatMul::default().into(),
                    &[
                        Operand::Input(t(&[m, k], seed)),
                        operand(t(&[k, n], seed + 1), bc),
                    ],
                    1,
                    RTOL,
                    deep_atol,
                )
                .unwrap();
            }
        }
        let op = Gemm {
            alpha: 0.5,
            beta: 2.0,
            trans_a: true,
            trans_b: true,
        };
        check_node(
            op.into(),
            &[
                Operand::Input(t(&[k, 13], 23)),
                Operand::Const(t(&[11, k], 24)),
                Operand::Const(t(&[11], 25)),
            ],
            1,
            RTOL,
            deep_atol,
        )
        .unwrap();
    }
    let n = AutoPad::NotSet;
    for c in [100, 90] {
        conv(
            &[1, c, 7, 9],
            10,
            &[3, 3],
            1,
            vec![],
            vec![],
            vec![1, 1, 1, 1],
            n,
            true,
            26,
        )
        .unwrap();
        conv(
            &[1, c, 6, 6],
            14,
            &[3, 3],
            2,
            vec![2, 1],
            vec![],
            vec![],
            n,
            false,
            27,
        )
        .unwrap();
    }
    // A residual added in the tile after the last of several k blocks (earlier blocks leave partial
    // sums in the output, which must not alias the residual).
    use carve_ir::ops::activation::{ActKind, Activation};
    use carve_ir::ops::fused::{EpiStep, Epilogue, FusedConv, FusedMatMul};
    let epi = Epilogue(vec![
        EpiStep::Bias,
        EpiStep::Residual,
        EpiStep::Act(Activation::plain(ActKind::Relu)),
    ]);
    let (m, k, nn) = (30, 1000, 70);
    check_node(
        FusedMatMul::new(epi.clone()).into(),
        &[
            Operand::Input(t(&[m, k], 31)),
            Operand::Const(t(&[k, nn], 32)),
            Operand::Const(t(&[nn], 33)),
            Operand::Input(t(&[m, nn], 34)),
        ],
        1,
        RTOL,
        deep_atol,
    )
    .unwrap();
    let conv = Conv {
        pads: vec![1, 1, 1, 1],
        ..Conv::default()
    };
    check_node(
        FusedConv::new(&conv, epi).into(),
        &[
            Operand::Input(t(&[1, 100, 7, 9], 35)),
            Operand::Const(t(&[10, 100, 3, 3], 36)),
            Operand::Const(t(&[10], 37)),
            Operand::Input(t(&[1, 10, 7, 9], 38)),
        ],
        1,
        RTOL,
        deep_atol,
    )
    .unwrap();
}

/// Every epilogue activation of `fused_matmul` and `fused_conv` (with a bias) against the
/// interpreter: the epilogue code is shared by both and by no other kernel.
#[test]
fn fused_epilogues_match_the_interpreter() {
    use carve_ir::ops::fused::{ActKind, Activation, EpiStep, Epilogue, FusedConv, FusedMatMul};
    for kw in ActKind::KEYWORDS {
        let Some(kind) = ActKind::from_keyword(kw) else {
            panic!("keyword {kw} does not parse");
        };
        let (alpha, beta) = match kind {
            ActKind::LeakyRelu => (0.1, 0.0),
            ActKind::Clip => (-0.5, 0.75),
            ActKind::HardSigmoid => (0.2, 0.5),
            ActKind::Celu => (0.7, 0.0),
            ActKind::Affine => (0.5, -0.25),
            ActKind::ScaledTanh => (1.5, 0.5),
            _ => kind.default_params(),
        };
        let act = Activation { kind, alpha, beta };
        let epi = Epilogue(vec![EpiStep::Bias, EpiStep::Act(act)]);
        // Inputs scaled so the activations see values on both sides of their bends.
        let x = random_tensor(&[5, 24], 31, -2.0, 2.0);
        check_node(
            FusedMatMul::new(epi.clone()).into(),
            &[
                Operand::Input(x),
                Operand::Const(t(&[24, 13], 32)),
                Operand::Const(t(&[13], 33)),
            ],
            1,
            RTOL,
            ATOL,
        )
        .unwrap_or_else(|e| panic!("fused_matmul {kw}: {e}"));
        let conv = Conv {
            pads: vec![1, 1, 1, 1],
            ..Conv::default()
        };
        check_node(
            FusedConv::new(&conv, epi).into(),
            &[
                Operand::Input(random_tensor(&[1, 3, 6, 7], 34, -2.0, 2.0)),
                Operand::Const(t(&[4, 3, 3, 3], 35)),
                Operand::Const(t(&[4], 36)),
            ],
            1,
            RTOL,
            ATOL,
        )
        .unwrap_or_else(|e| panic!("fused_conv {kw}: {e}"));
    }
}

/// Epilogue lists of every kind of step (per-channel scale, residual, clamp, a bias after another
/// step, more pointwise steps than a tile holds) on matmul (batched, with folded and per-batch B),
/// 1×1, general and depthwise conv, against the interpreter; no node falls back.
#[test]
fn epilogue_lists_match_the_interpreter() {
    use carve_ir::ops::activation::{ActKind, Activation};
    use carve_ir::ops::fused::{EpiStep, Epilogue, FusedConv, FusedMatMul};
    let relu = EpiStep::Act(Activation::plain(ActKind::Relu));
    let tanh = EpiStep::Act(Activation::plain(ActKind::Tanh));
    let clamp = EpiStep::Clamp { lo: -0.5, hi: 0.75 };
    let lists: Vec<Vec<EpiStep>> = vec![
        vec![],
        vec![relu],
        vec![EpiStep::Bias],
        vec![EpiStep::Bias, clamp, tanh],
        vec![EpiStep::Bias, EpiStep::Residual, relu],
        vec![EpiStep::Scale, EpiStep::Bias, clamp],
        vec![EpiStep::Bias, relu, EpiStep::Scale, EpiStep::Residual, tanh],
        vec![EpiStep::Residual],
        vec![clamp, tanh, relu, clamp, tanh, EpiStep::Bias],
    ];
    let x = |shape: &[usize], seed| random_tensor(shape, seed, -2.0, 2.0);
    for (li, steps) in lists.iter().enumerate() {
        let epi = Epilogue(steps.clone());
        let seed = 100 + 10 * li as u64;
        // matmul shapes: (A, B, out): plain, batched A with shared B (folded), batched B.
        for (sa, sb, so) in [
            (vec![5, 24], vec![24, 13], vec![5, 13]),
            (vec![2, 3, 24], vec![24, 9], vec![2, 3, 9]),
            (vec![2, 3, 8], vec![2, 8, 6], vec![2, 3, 6]),
        ] {
            let n = *so.last().unwrap();
            let mut ops = vec![
                Operand::Input(x(&sa, seed)),
                Operand::Const(t(&sb, seed + 1)),
            ];
            for (i, st) in steps.iter().enumerate() {
                match st {
                    EpiStep::Residual => ops.push(Operand::Input(x(&so, seed + 2 + i as u64))),
                    s if s.reads_operand() => {
                        ops.push(Operand::Const(t(&[n], seed + 2 + i as u64)));
                    }
                    _ => {}
                }
            }
            check_node(FusedMatMul::new(epi.clone()).into(), &ops, 1, RTOL, ATOL)
                .unwrap_or_else(|e| panic!("fused_matmul {sa:?}x{sb:?} [{epi}]: {e}"));
        }
        // conv: 1×1, 3×3 padded, depthwise 3×3.
        for (group, ws, pads) in [
            (1, vec![4, 3, 1, 1], vec![0, 0, 0, 0]),
            (1, vec![4, 3, 3, 3], vec![1, 1, 1, 1]),
            (3, vec![3, 1, 3, 3], vec![1, 1, 1, 1]),
        ] {
            let m = ws[0];
            let conv = Conv {
                group,
                pads,
                ..Conv::default()
            };
            let out = [1, m, 6, 7];
            let mut ops = vec![
                Operand::Input(x(&[1, 3, 6, 7], seed)),
                Operand::Const(t(&ws, seed + 1)),
            ];
            for (i, st) in steps.iter().enumerate() {
                match st {
                    EpiStep::Residual => ops.push(Operand::Input(x(&out, seed + 2 + i as u64))),
                    s if s.reads_operand() => {
                        ops.push(Operand::Const(t(&[m], seed + 2 + i as u64)));
                    }
                    _ => {}
                }
            }
            check_node(
                FusedConv::new(&conv, epi.clone()).into(),
                &ops,
                1,
                RTOL,
                ATOL,
            )
            .unwrap_or_else(|e| panic!("fused_conv group={group} {ws:?} [{epi}]: {e}"));
        }
    }
}

/// A requantize step has no native lowering yet: the node is reported as a fallback with the reason.
#[test]
fn a_requantize_epilogue_is_a_reported_fallback() {
    use carve_ir::DType;
    use carve_ir::ops::fused::{EpiStep, Epilogue, FusedMatMul};
    let epi = Epilogue(vec![
        EpiStep::Bias,
        EpiStep::Requant {
            dtype: DType::U8,
            scale: 0.05,
            zero_point: 128,
        },
    ]);
    let ops = [
        Operand::Input(t(&[5, 24], 1)),
        Operand::Const(t(&[24, 13], 2)),
        Operand::Const(t(&[13], 3)),
    ];
    let err = check_node(FusedMatMul::new(epi).into(), &ops, 1, RTOL, ATOL).unwrap_err();
    assert!(err.contains("fell back"), "{err}");
}

/// Nodes of one geometry share one compiled kernel: kernels read every operand address from the
/// call's operand table, so three 3×3 convs with different weights and biases (and two matmuls) compile
/// to one function each, and every call still reads its own weights.
#[test]
fn kernels_of_one_geometry_share_a_function() {
    use carve_codegen::testing::{compare, run_both};
    use carve_ir::{Graph, Type};
    let mut g = Graph::new("shared");
    let xt = t(&[1, 8, 6, 6], 30);
    let x = g.add_input("x", Type::Tensor(xt.ty()));
    let mut y = x;
    for i in 0..3u64 {
        let w = g.add_const(format!("w{i}"), t(&[8, 8, 3, 3], 31 + i).to_constant());
        let b = g.add_const(format!("b{i}"), t(&[8], 41 + i).to_constant());
        let op = Conv {
            pads: vec![1, 1, 1, 1],
            ..Conv::default()
        };
        y = g
            .add_node(
                format!("conv{i}"),
                op.into(),
                vec![Some(y), Some(w), Some(b)],
                vec![format!("c{i}")],
            )
            .unwrap()[0];
    }
    let flat = g.add_const("shape", carve_ir::Constant::from_i64s(&[2], &[8, 36]));
    y = g
        .add_node(
            "reshape",
            carve_ir::ops::movement::Reshape::default().into(),
            vec![Some(y), Some(flat)],
            vec!["r".into()],
        )
        .unwrap()[0];
    for i in 0..2u64 {
        let w = g.add_const(format!("m{i}"), t(&[36, 36], 51 + i).to_constant());
        y = g
            .add_node(
                format!("matmul{i}"),
                MatMul::default().into(),
                vec![Some(y), Some(w)],
                vec![format!("mm{i}")],
            )
            .unwrap()[0];
    }
    g.outputs = vec![y];
    let (nat, int, rep) = run_both(&g, &[xt]).unwrap();
    assert!(
        rep.kernels >= 5 && rep.functions + 3 <= rep.kernels,
        "convs and matmuls of one geometry should share functions: {rep}"
    );
    compare(&nat[0], &int[0], RTOL, 1e-3).unwrap();
}
