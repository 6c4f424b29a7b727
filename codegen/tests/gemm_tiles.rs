//! The GEMM family on each ISA variant this machine can run — AVX-512 machine-code tiles, AVX2+FMA
//! tiles and Cranelift's 128-bit kernels — forced through the target's features, against the
//! interpreter: MatMul (with packed weights, batched, 1-D), Gemm (alpha, beta, transposes, C shapes)
//! fused matmul epilogues (bias, residual, relu, clip) and convolutions (multi-row and partial-row
//! chunks, M blocks, strides, dilations, padding, groups, pointwise, fused epilogues), with random
//! shapes covering every row, column and k tail (K = 1, tiny and large, not multiples of the tile).

use carve_codegen::Target;
use carve_codegen::testing::{
    Operand, check_node_on, host_without, random_tensor, schedule_text, single_node_graph,
};
use carve_ir::Op;
use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::conv::Conv;
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedConv, FusedMatMul};
use carve_ir::ops::linalg::{Gemm, MatMul};
use proptest::prelude::*;

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-4;

/// The ISA variants: (name in schedule text or `None` for Cranelift kernels, target), for those this
/// machine runs.
fn variants() -> Vec<(Option<&'static str>, Target)> {
    let host = Target::host().expect("host target");
    let without = |drop: &[&str]| -> Target { host_without(drop).expect("narrowed host target") };
    let mut v = Vec::new();
    if !cfg!(target_arch = "x86_64") {
        v.push((None, host));
        return v;
    }
    if host.has("avx512f") {
        v.push((Some("avx512"), host.clone()));
    } else {
        eprintln!("this machine has no AVX-512: its tile variant is not run");
    }
    if host.has("avx2") && host.has("fma") {
        v.push((Some("avx2"), without(&["avx512"])));
    } else {
        eprintln!("this machine has no AVX2+FMA: its tile variant is not run");
    }
    v.push((None, without(&["avx512", "avx2"])));
    v
}

fn t(shape: &[usize], seed: u64) -> carve_runtime::Tensor {
    random_tensor(shape, seed, -1.0, 1.0)
}

/// Checks `op` over `operands` on every variant, and that the schedule chose the variant's tile
/// (`tiled`: whether this instance should run on a tile where the target has one).
fn check_all(op: Op, operands: &[Operand], tiled: bool, atol: f64) -> Result<(), String> {
    for (isa, target) in variants() {
        let g = single_node_graph(op.clone(), operands, 1)?;
        let text = schedule_text(&target, &g)?;
        let want = if tiled { isa } else { None };
        let got = ["avx512", "avx2"]
            .into_iter()
            .find(|n| text.contains(&format!("x86={n}")));
        if got != want {
            return Err(format!(
                "target {target}: expected tile {want:?}, schedule chose {got:?}:\n{text}"
            ));
        }
        check_node_on(&target, op.clone(), operands, 1, RTOL, atol)
            .map_err(|e| format!("{} ({target}): {e}", isa.unwrap_or("128-bit")))?;
    }
    Ok(())
}

fn matmul(a: &[usize], b: &[usize], b_const: bool, seed: u64) -> Result<(), String> {
    matmul_tiled(a, b, b_const, b_const, seed)
}

/// [`matmul`] where the schedule is expected to choose a tile iff `tiled`.
fn matmul_tiled(
    a: &[usize],
    b: &[usize],
    b_const: bool,
    tiled: bool,
    seed: u64,
) -> Result<(), String> {
    let k = a.last().copied().unwrap_or(1);
    let bop = if b_const {
        Operand::Const(t(b, seed + 1))
    } else {
        Operand::Input(t(b, seed + 1))
    };
    let atol = ATOL * (k as f64).sqrt().max(1.0);
    check_all(
        MatMul::default().into(),
        &[Operand::Input(t(a, seed)), bop],
        tiled,
        atol,
    )
}

#[test]
fn every_variant_runs_matmul_tails() {
    for (m, k, n) in [
        (1, 1, 1),
        (12, 1, 32),
        (13, 5, 33),
        (11, 17, 15),
        (25, 192, 49),
        (7, 193, 17),
        (36, 385, 64),
        (100, 64, 200),
    ] {
        matmul(&[m, k], &[k, n], true, (m * k + n) as u64).unwrap();
    }
    matmul(&[2, 3, 6, 5], &[5, 11], true, 8).unwrap();
    matmul(&[2, 1, 6, 5], &[3, 5, 11], true, 9).unwrap();
    matmul(&[5], &[5, 3], true, 5).unwrap();
    matmul(&[4, 5], &[5], true, 6).unwrap();
    // A short product with a dynamic B keeps the Cranelift kernels (it reads B in place); from 16
    // rows on, B is packed per panel at run time for the tile.
    matmul(&[13, 7], &[7, 9], false, 10).unwrap();
    matmul_tiled(&[16, 7], &[7, 9], false, true, 11).unwrap();
    matmul_tiled(&[2, 3, 40, 33], &[2, 3, 33, 50], false, true, 12).unwrap();
    matmul_tiled(&[70, 300], &[300, 130], false, true, 13).unwrap();
}

#[test]
fn a_large_product_runs_on_every_variant() {
    matmul(&[200, 600], &[600, 300], true, 77).unwrap();
}

fn gemm(
    (m, k, n): (usize, usize, usize),
    ta: bool,
    tb: bool,
    cshape: usize,
    seed: u64,
) -> Result<(), String> {
    let op = Gemm {
        alpha: 1.5,
        beta: -0.5,
        trans_a: ta,
        trans_b: tb,
    };
    let a = if ta { [k, m] } else { [m, k] };
    let b = if tb { [n, k] } else { [k, n] };
    let mut ops = vec![Operand::Input(t(&a, seed)), Operand::Const(t(&b, seed + 1))];
    match cshape {
        1 => ops.push(Operand::Input(t(&[n], seed + 2))),
        2 => ops.push(Operand::Input(t(&[m, n], seed + 2))),
        3 => ops.push(Operand::Const(t(&[m, 1], seed + 2))),
        4 => ops.push(Operand::Input(t(&[1], seed + 2))),
        _ => {}
    }
    let atol = ATOL * (k as f64).sqrt().max(1.0);
    check_all(op.into(), &ops, true, atol)
}

fn fused(m: usize, k: usize, n: usize, steps: Vec<EpiStep>, seed: u64) -> Result<(), String> {
    let residual = steps.contains(&EpiStep::Residual);
    let mut ops = vec![
        Operand::Input(t(&[m, k], seed)),
        Operand::Const(t(&[k, n], seed + 1)),
    ];
    if steps.first() == Some(&EpiStep::Bias) {
        ops.push(Operand::Const(t(&[n], seed + 2)));
    }
    if residual {
        ops.push(Operand::Input(t(&[m, n], seed + 3)));
    }
    let atol = ATOL * (k as f64).sqrt().max(1.0);
    check_all(FusedMatMul::new(Epilogue(steps)).into(), &ops, true, atol)
}

#[test]
fn fused_epilogues_on_every_variant() {
    let relu = EpiStep::Act(Activation::plain(ActKind::Relu));
    let clip = EpiStep::Act(Activation {
        kind: ActKind::Clip,
        alpha: -0.25,
        beta: 0.5,
    });
    fused(29, 300, 37, vec![EpiStep::Bias, relu], 1).unwrap();
    fused(13, 7, 40, vec![EpiStep::Bias, EpiStep::Residual, clip], 2).unwrap();
    fused(
        30,
        1000,
        70,
        vec![EpiStep::Bias, EpiStep::Residual, relu],
        3,
    )
    .unwrap();
    fused(5, 9, 3, vec![EpiStep::Clamp { lo: -0.1, hi: 0.1 }], 4).unwrap();
}

/// Steps the tile has no register form for (sigmoid, gelu, hard-swish, …) run in Cranelift code over
/// the block the tile stored, after the steps it does apply (relu, clip, clamp): the product stays on
/// the tile. Row, column and k tails, a residual, and a conv.
#[test]
fn epilogue_steps_without_a_tile_form_follow_the_tile() {
    let act = |kind| EpiStep::Act(Activation::plain(kind));
    let relu = act(ActKind::Relu);
    for (i, steps) in [
        vec![EpiStep::Bias, act(ActKind::Sigmoid)],
        vec![EpiStep::Bias, relu, act(ActKind::GeluErf)],
        vec![EpiStep::Bias, EpiStep::Residual, act(ActKind::HardSwish)],
        vec![act(ActKind::Tanh), relu],
    ]
    .into_iter()
    .enumerate()
    {
        fused(13, 20, 33, steps.clone(), 40 + i as u64).unwrap();
        fused(30, 300, 101, steps, 50 + i as u64).unwrap();
    }
    let steps = vec![EpiStep::Bias, EpiStep::Residual, act(ActKind::Sigmoid)];
    conv(
        &[1, 9, 10, 10],
        21,
        &[3, 3],
        1,
        vec![],
        vec![],
        vec![1; 4],
        steps,
        60,
    )
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn matmul_random_shapes(m in 1usize..40, k in 1usize..70, n in 1usize..70, big in 0usize..3,
                            seed in 0u64..1000) {
        let (m, n) = if big == 2 { (m * 7, n * 9) } else { (m, n) };
        let k = if big == 1 { k * 13 } else { k };
        matmul(&[m, k], &[k, n], true, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn gemm_random_shapes(m in 1usize..30, k in 1usize..300, n in 1usize..50, ta in any::<bool>(),
                          tb in any::<bool>(), cshape in 0usize..5, seed in 0u64..1000) {
        gemm((m, k, n), ta, tb, cshape, seed).map_err(TestCaseError::fail)?;
    }
}

/// One conv: `x` NCHW, `m` output channels, `kernel`, `group`, strides, dilations, pads, with a bias
/// and the fused epilogue `steps` (plain `Conv` when empty).
#[allow(clippy::too_many_arguments)]
fn conv(
    x: &[usize],
    m: usize,
    kernel: &[usize],
    group: usize,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    steps: Vec<EpiStep>,
    seed: u64,
) -> Result<(), String> {
    let mut ws = vec![m, x[1] / group];
    ws.extend(kernel);
    let conv = Conv {
        group: group as i64,
        strides,
        dilations,
        pads,
        ..Conv::default()
    };
    let mut ops = vec![
        Operand::Input(t(x, seed)),
        Operand::Const(t(&ws, seed + 1)),
        Operand::Const(t(&[m], seed + 2)),
    ];
    let op: Op = if steps.is_empty() {
        conv.into()
    } else {
        if steps.contains(&EpiStep::Residual) {
            let mut shape = vec![x[0], m];
            for i in 0..2 {
                let s = conv.strides.get(i).map_or(1, |&v| v as usize);
                let d = conv.dilations.get(i).map_or(1, |&v| v as usize);
                let p = conv.pads.get(i).map_or(0, |&v| v as usize)
                    + conv.pads.get(i + 2).map_or(0, |&v| v as usize);
                shape.push((x[2 + i] + p - (kernel[i] - 1) * d - 1) / s + 1);
            }
            ops.push(Operand::Input(t(&shape, seed + 3)));
        }
        FusedConv::new(&conv, Epilogue(steps)).into()
    };
    let k: usize = ws[1..].iter().product();
    check_all(op, &ops, true, ATOL * (k as f64).sqrt().max(1.0))
}

/// One conv case: input shape, output channels, kernel, group, strides, dilations, pads.
type ConvCase = (
    &'static [usize],
    usize,
    &'static [usize],
    usize,
    &'static [i64],
    &'static [i64],
    &'static [i64],
);

#[test]
fn convs_run_on_every_variant() {
    const P1: &[i64] = &[1, 1, 1, 1];
    let cases: [ConvCase; 10] = [
        // Narrow outputs: several whole rows per chunk (7×7, 14×14 with a shorter last row group).
        (&[1, 40, 7, 7], 24, &[3, 3], 1, &[], &[], P1),
        (&[1, 16, 14, 14], 20, &[3, 3], 1, &[], &[], P1),
        // Wide outputs: chunks of one row (with a partial last chunk), stride 2, dilation 2.
        (&[1, 5, 9, 150], 10, &[3, 3], 1, &[], &[], P1),
        (
            &[2, 6, 20, 61],
            9,
            &[3, 5],
            1,
            &[2, 2],
            &[1, 2],
            &[0, 2, 1, 0],
        ),
        // Many output channels: M blocks (each repeats the chunk's im2col).
        (&[1, 30, 5, 5], 300, &[3, 3], 1, &[], &[], P1),
        // Deep k (several channel blocks), groups, 1-D, strided 1×1, pointwise.
        (&[1, 150, 6, 6], 17, &[3, 3], 1, &[], &[], P1),
        (&[1, 12, 8, 8], 18, &[3, 3], 3, &[], &[], P1),
        (&[2, 7, 1, 90], 11, &[1, 5], 1, &[], &[], &[0, 2, 0, 2]),
        (&[1, 32, 9, 9], 64, &[1, 1], 1, &[2, 2], &[], &[]),
        (&[1, 64, 10, 13], 100, &[1, 1], 1, &[], &[], &[]),
    ];
    for (i, (x, m, k, group, s, d, p)) in cases.into_iter().enumerate() {
        conv(
            x,
            m,
            k,
            group,
            s.to_vec(),
            d.to_vec(),
            p.to_vec(),
            vec![],
            i as u64,
        )
        .unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
    // Fused epilogues: bias + residual + relu in the tile's registers.
    let relu = EpiStep::Act(Activation::plain(ActKind::Relu));
    let steps = vec![EpiStep::Bias, EpiStep::Residual, relu];
    let p1 = P1.to_vec();
    conv(
        &[1, 20, 11, 11],
        33,
        &[3, 3],
        1,
        vec![],
        vec![],
        p1,
        steps.clone(),
        11,
    )
    .unwrap();
    conv(
        &[1, 64, 6, 6],
        70,
        &[1, 1],
        1,
        vec![],
        vec![],
        vec![],
        steps,
        12,
    )
    .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn conv_random_shapes(c in 1usize..20, m in 1usize..40, h in 1usize..20, w in 1usize..40,
                          kh in 1usize..4, kw in 1usize..4, s in 1i64..3, pad in 0i64..2,
                          seed in 0u64..1000) {
        prop_assume!(kh as i64 <= h as i64 + 2 * pad && kw as i64 <= w as i64 + 2 * pad);
        conv(&[1, c, h, w], m, &[kh, kw], 1, vec![s, s], vec![], vec![pad; 4], vec![], seed)
            .map_err(TestCaseError::fail)?;
    }
}
