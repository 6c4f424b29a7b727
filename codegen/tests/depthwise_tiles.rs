//! Depthwise convolution on each ISA variant this machine can run — AVX-512 and AVX2+FMA
//! machine-code rows ([`carve_codegen::x86::depthwise`]) and Cranelift's 128-bit kernels — forced
//! through the target's features, against the interpreter: 3×3, 5×5 and larger kernels, strides 1 and
//! 2, symmetric and asymmetric paddings, dilations, channel multipliers, widths that are not a
//! multiple of the lane count, tiny planes (7×7, 1×W, 1-D), long rows (the row loop), with and without
//! bias and with fused relu / clip epilogues; plus random shapes.

use carve_codegen::Target;
use carve_codegen::testing::{
    Operand, check_node_on, host_without, random_tensor, schedule_text, single_node_graph,
};
use carve_ir::Op;
use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::conv::Conv;
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedConv};
use proptest::prelude::*;

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;

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

/// Checks `op` over `operands` on every variant, and that the schedule chose the variant's row
/// routine iff `tiled`.
fn check_all(op: Op, operands: &[Operand], tiled: bool) -> Result<(), String> {
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
        check_node_on(&target, op.clone(), operands, 1, RTOL, ATOL)
            .map_err(|e| format!("{} ({target}): {e}", isa.unwrap_or("128-bit")))?;
    }
    Ok(())
}

/// One depthwise conv case.
#[derive(Debug, Clone)]
struct Case {
    /// Input shape (NCW or NCHW).
    x: Vec<usize>,
    /// Channel multiplier.
    mult: usize,
    /// Kernel (one or two dims).
    kernel: Vec<usize>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    bias: bool,
    /// Fused epilogue steps after the bias (plain `Conv` when empty).
    steps: Vec<EpiStep>,
}

fn case(x: &[usize], kernel: &[usize], s: i64, pad: i64) -> Case {
    let r = kernel.len();
    Case {
        x: x.to_vec(),
        mult: 1,
        kernel: kernel.to_vec(),
        strides: vec![s; r],
        dilations: Vec::new(),
        pads: vec![pad; 2 * r],
        bias: true,
        steps: Vec::new(),
    }
}

fn run(c: &Case, tiled: bool, seed: u64) -> Result<(), String> {
    let ch = c.x[1];
    let m = ch * c.mult;
    let mut ws = vec![m, 1];
    ws.extend(&c.kernel);
    let conv = Conv {
        group: ch as i64,
        strides: c.strides.clone(),
        dilations: c.dilations.clone(),
        pads: c.pads.clone(),
        ..Conv::default()
    };
    let mut ops = vec![
        Operand::Input(random_tensor(&c.x, seed, -1.0, 1.0)),
        Operand::Const(random_tensor(&ws, seed + 1, -1.0, 1.0)),
    ];
    if c.bias || !c.steps.is_empty() {
        ops.push(Operand::Const(random_tensor(&[m], seed + 2, -1.0, 1.0)));
    }
    let op: Op = if c.steps.is_empty() {
        conv.into()
    } else {
        let mut steps = vec![EpiStep::Bias];
        steps.extend(c.steps.iter().copied());
        FusedConv::new(&conv, Epilogue(steps)).into()
    };
    check_all(op, &ops, tiled).map_err(|e| format!("{c:?}: {e}"))
}

fn clip(lo: f32, hi: f32) -> EpiStep {
    EpiStep::Act(Activation {
        kind: ActKind::Clip,
        alpha: lo,
        beta: hi,
    })
}

#[test]
fn mobilenet_like_layers_run_on_every_variant() {
    // Stride 1 and 2 with 3×3 and pad 1 at MobileNetV2's widths (rows of several vectors with a
    // partial last one, one vector, less than one), fused relu6.
    for (i, (hw, s)) in [
        (56, 1),
        (56, 2),
        (28, 1),
        (14, 2),
        (14, 1),
        (7, 1),
        (112, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = case(&[1, 3, hw, hw], &[3, 3], s, 1);
        c.steps = vec![clip(0.0, 6.0)];
        run(&c, true, i as u64).unwrap();
    }
    // relu, and a clamp with a negative bound.
    let mut c = case(&[1, 5, 9, 23], &[3, 3], 1, 1);
    c.steps = vec![EpiStep::Act(Activation::plain(ActKind::Relu))];
    run(&c, true, 20).unwrap();
    c.steps = vec![EpiStep::Clamp { lo: -0.3, hi: 0.2 }];
    run(&c, true, 21).unwrap();
}

#[test]
fn kernels_strides_pads_and_dilations_on_every_variant() {
    let mut cases = vec![
        case(&[1, 4, 9, 35], &[3, 3], 2, 1),
        case(&[2, 3, 20, 33], &[5, 5], 1, 2),
        case(&[2, 3, 20, 33], &[5, 5], 2, 2),
        // No padding, odd widths.
        case(&[1, 2, 11, 19], &[3, 3], 1, 0),
        case(&[1, 2, 11, 19], &[3, 3], 2, 0),
        // 7×7: the weights do not fit in registers.
        case(&[1, 2, 15, 40], &[7, 7], 1, 3),
        case(&[1, 2, 15, 41], &[7, 7], 2, 3),
        // Non-square kernels, 1×W planes, 1-D inputs.
        case(&[1, 3, 6, 50], &[1, 5], 1, 0),
        case(&[1, 3, 1, 37], &[3, 3], 1, 1),
        case(&[1, 3, 1, 37], &[3, 3], 2, 1),
        case(&[2, 3, 50], &[3], 1, 1),
        case(&[2, 3, 51], &[5], 2, 2),
        // Long rows: the loop over vectors without a border tap.
        case(&[1, 2, 3, 300], &[3, 3], 1, 1),
        case(&[1, 2, 3, 301], &[3, 3], 2, 1),
        case(&[1, 2, 4, 257], &[5, 5], 1, 2),
        // Kernels wider than the row (every tap a border tap), padding larger than a vector.
        case(&[1, 2, 5, 3], &[3, 5], 1, 2),
        case(&[1, 2, 4, 4], &[3, 3], 1, 20),
    ];
    let mut d = case(&[1, 3, 15, 40], &[3, 3], 1, 2);
    d.dilations = vec![2, 2];
    cases.push(d.clone());
    d.strides = vec![2, 2];
    d.dilations = vec![1, 3];
    d.pads = vec![1, 3, 1, 3];
    cases.push(d);
    let mut a = case(&[1, 3, 12, 29], &[3, 3], 1, 0);
    a.pads = vec![0, 2, 1, 0];
    cases.push(a.clone());
    a.strides = vec![2, 2];
    a.pads = vec![2, 0, 0, 1];
    cases.push(a);
    // Channel multipliers, no bias.
    let mut m = case(&[1, 3, 10, 21], &[3, 3], 1, 1);
    m.mult = 3;
    cases.push(m.clone());
    m.bias = false;
    m.strides = vec![2, 2];
    cases.push(m);
    let mut nb = case(&[2, 4, 7, 7], &[3, 3], 1, 1);
    nb.bias = false;
    cases.push(nb);
    for (i, c) in cases.iter().enumerate() {
        run(c, true, 100 + i as u64).unwrap();
    }
}

/// Steps without a register form (sigmoid) and stride 3 keep the Cranelift kernel.
#[test]
fn other_epilogues_and_strides_stay_on_cranelift() {
    let mut c = case(&[1, 3, 9, 20], &[3, 3], 1, 1);
    c.steps = vec![EpiStep::Act(Activation::plain(ActKind::Sigmoid))];
    run(&c, false, 1).unwrap();
    let c = case(&[1, 3, 9, 20], &[3, 3], 3, 1);
    run(&c, false, 2).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn depthwise_random_shapes(c in 1usize..5, mult in 1usize..3, h in 1usize..12, w in 1usize..70,
                               k in prop::sample::select(vec![1usize, 3, 5]), kw2 in 0usize..2,
                               s in 1i64..3, d in 1i64..3, pb in 0i64..3, pe in 0i64..3,
                               act in 0usize..3, bias in any::<bool>(), seed in 0u64..1000) {
        let kw = if kw2 == 1 { (k + 2).min(7) } else { k };
        let ext_h = (k as i64 - 1) * d + 1;
        let ext_w = (kw as i64 - 1) * d + 1;
        prop_assume!(h as i64 + pb + pe >= ext_h && w as i64 + pb + pe >= ext_w);
        let steps = match act {
            1 => vec![EpiStep::Act(Activation::plain(ActKind::Relu))],
            2 => vec![clip(0.0, 6.0)],
            _ => Vec::new(),
        };
        let c = Case {
            x: vec![1, c, h, w],
            mult,
            kernel: vec![k, kw],
            strides: vec![s, s],
            dilations: vec![d, d],
            pads: vec![pb, pe, pe, pb],
            bias,
            steps,
        };
        run(&c, true, seed).map_err(TestCaseError::fail)?;
    }
}
