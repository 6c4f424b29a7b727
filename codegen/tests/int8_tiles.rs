//! `MatMulInteger` on the int8 x86 machine-code tiles of each ISA variant this machine runs — AVX-512
//! VNNI, AVX-VNNI (AVX-512 features removed) and AVX2 without VNNI (those and `avx_vnni` removed) —
//! forced through the target's features, against the interpreter with exact equality: u8 and i8 A,
//! u8/i8 constant B, absent, scalar and per-column zero points, random shapes covering every row,
//! column and k tail, and the extreme values that would saturate `vpmaddubsw`.
//!
//! The integer `fused_matmul` (the same product with a `rescale` epilogue, then bias, activations,
//! residual) on every variant and on Cranelift's kernel (AVX2 removed too), against the interpreter
//! within float rounding: per-tensor and per-column scales, the steps the tile applies in registers
//! (bias, relu, clamp, residual), those it applies over the stored block (gelu, tanh) and those left
//! for the pass (a per-channel scale, a residual after an activation).

use carve_codegen::Target;
use carve_codegen::testing::{
    Operand, check_node_on, host_without, random_tensor, schedule_text, single_node_graph,
};
use carve_ir::DType;
use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedMatMul};
use carve_ir::ops::quant::MatMulInteger;
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

/// The ISA variants: (name in schedule text, target), for those this machine runs.
fn variants() -> Vec<(&'static str, Target)> {
    let host = Target::host().expect("host target");
    let without = |drop: &[&str]| -> Target { host_without(drop).expect("narrowed host target") };
    let mut v = Vec::new();
    if !cfg!(target_arch = "x86_64") {
        return v;
    }
    if host.has("avx512f") && host.has("avx512vnni") {
        v.push(("avx512vnni", host.clone()));
    } else {
        eprintln!("this machine has no AVX-512 VNNI: its tile variant is not run");
    }
    if host.has("avx_vnni") {
        v.push(("avxvnni", without(&["avx512"])));
    } else {
        eprintln!("this machine has no AVX-VNNI: its tile variant is not run");
    }
    if host.has("avx2") {
        v.push(("avx2", without(&["avx512", "avx_vnni"])));
    }
    v
}

/// `shape` filled with bytes of `dtype`: pseudo-random, or all `fill`.
fn bytes(dtype: DType, shape: &[usize], seed: u64, fill: Option<i32>) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let vals: Vec<i32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            fill.unwrap_or((s >> 24) as i32 & 0xff)
        })
        .collect();
    let data = match dtype {
        DType::U8 => Data::U8(vals.iter().map(|&x| x as u8).collect()),
        _ => Data::I8(vals.iter().map(|&x| x as u8 as i8).collect()),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// B with a zero point: u8 values in [3, 252] (b_zp within 128 ± 3), i8 values in [−121, 121] (b_zp
/// within ±6), so that b − b_zp fits in i8.
fn narrow(t: Tensor, zb: u8) -> Tensor {
    match t.data {
        Data::U8(v) if zb != 0 => Tensor {
            shape: t.shape,
            data: Data::U8(v.into_iter().map(|x| x.clamp(3, 252)).collect()),
        },
        Data::I8(v) if zb != 0 => Tensor {
            shape: t.shape,
            data: Data::I8(v.into_iter().map(|x| x.clamp(-121, 121)).collect()),
        },
        data => Tensor {
            shape: t.shape,
            data,
        },
    }
}

/// One case: A `[m, k]` (or batched) of `at`, constant B `[k, n]` of `bt`, a zero point for A
/// (`za`), for B (`zb`: 0 absent, 1 scalar, 2 per column); `fill`: every A and B value.
#[derive(Debug, Clone)]
struct Case {
    a_shape: Vec<usize>,
    n: usize,
    at: DType,
    bt: DType,
    za: bool,
    zb: u8,
    fill: Option<(i32, i32)>,
    seed: u64,
}

impl Case {
    fn operands(&self) -> Vec<Operand> {
        let k = *self.a_shape.last().expect("rank >= 1");
        let (fa, fb) = match self.fill {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let s = self.seed;
        let mut ops = vec![
            Operand::Input(bytes(self.at, &self.a_shape, s, fa)),
            Operand::Const(narrow(bytes(self.bt, &[k, self.n], s + 1, fb), self.zb)),
        ];
        ops.push(if self.za {
            Operand::Input(bytes(self.at, &[], s + 2, None))
        } else {
            Operand::Absent
        });
        // Zero points of B near its values' middle keep b − b_zp within i8 for u8 B.
        let mid = if self.bt == DType::U8 { 128 } else { 0 };
        match self.zb {
            1 => ops.push(Operand::Const(bytes(self.bt, &[], 0, Some(mid + 3)))),
            2 => {
                let z = bytes(self.bt, &[self.n], s + 3, None);
                let v: Vec<i32> = match &z.data {
                    Data::U8(v) => v.iter().map(|&x| mid + (x as i32 % 7) - 3).collect(),
                    Data::I8(v) => v.iter().map(|&x| x as i32 % 7).collect(),
                    _ => unreachable!(),
                };
                let data = match self.bt {
                    DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
                    _ => Data::I8(v.iter().map(|&x| x as i8).collect()),
                };
                ops.push(Operand::Const(Tensor {
                    shape: vec![self.n],
                    data,
                }));
            }
            _ => {}
        }
        while matches!(ops.last(), Some(Operand::Absent)) {
            ops.pop();
        }
        ops
    }
}

/// The tile name `text` reports (`x86=…`), if any.
fn tile_of(text: &str) -> Option<String> {
    let i = text.find("x86=")?;
    Some(
        text[i + 4..]
            .split(|c: char| c.is_whitespace())
            .next()?
            .to_string(),
    )
}

/// Checks `case` on every variant; `tiled`: whether it should run on the tile (else the Cranelift
/// kernel, e.g. b − b_zp outside i8 on a VNNI variant).
fn check(case: &Case, tiled: impl Fn(&str) -> bool) -> Result<(), String> {
    let ops = case.operands();
    for (isa, target) in variants() {
        let g = single_node_graph(MatMulInteger {}.into(), &ops, 1)?;
        let text = schedule_text(&target, &g)?;
        let want = tiled(isa).then(|| isa.to_string());
        if tile_of(&text) != want {
            return Err(format!(
                "{case:?} on {isa}: expected tile {want:?}:\n{text}"
            ));
        }
        check_node_on(&target, MatMulInteger {}.into(), &ops, 1, 0.0, 0.0)
            .map_err(|e| format!("{case:?} on {isa}: {e}"))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn case(m: usize, k: usize, n: usize, at: DType, bt: DType, za: bool, zb: u8, seed: u64) -> Case {
    Case {
        a_shape: vec![m, k],
        n,
        at,
        bt,
        za,
        zb,
        fill: None,
        seed,
    }
}

/// u8 B without a zero point has b − b_zp up to 255: Cranelift's kernel on the VNNI variants.
fn tiled_for(c: &Case) -> impl Fn(&str) -> bool + use<> {
    let wide = c.bt == DType::U8 && c.zb == 0;
    move |isa: &str| !(wide && isa != "avx2")
}

#[test]
fn every_variant_runs_the_tails() {
    use DType::{I8, U8};
    for (i, &(m, k, n)) in [
        (1, 1, 1),
        (9, 1, 48),
        (8, 3, 49),
        (13, 5, 33),
        (7, 17, 15),
        (25, 192, 97),
        (6, 515, 16),
        (70, 1030, 130),
    ]
    .iter()
    .enumerate()
    {
        for (at, bt, za, zb) in [
            (U8, I8, true, 0),
            (I8, I8, false, 2),
            (U8, U8, true, 1),
            (I8, U8, true, 2),
        ] {
            let c = case(m, k, n, at, bt, za, zb, i as u64);
            check(&c, tiled_for(&c)).unwrap();
        }
    }
}

#[test]
fn several_tiles_and_k_blocks() {
    // 3 × 3 tiles (thread units) with row and column tails in the last ones; 3 k blocks of which
    // the middle one runs in the run-time loop.
    let c = case(397, 1500, 1001, DType::U8, DType::I8, true, 2, 9);
    check(&c, tiled_for(&c)).unwrap();
    let c = case(200, 70, 1000, DType::I8, DType::I8, true, 1, 10);
    check(&c, tiled_for(&c)).unwrap();
}

#[test]
fn batched_a_and_wide_b_values() {
    let mut c = case(1, 37, 21, DType::U8, DType::U8, true, 0, 5);
    c.a_shape = vec![2, 3, 37];
    check(&c, tiled_for(&c)).unwrap();
}

#[test]
fn extreme_values_do_not_saturate() {
    use DType::{I8, U8};
    // (a type, b type, a value, b value): A all 255 against B all −128 / 127 is where `vpmaddubsw`
    // would saturate; i8 A at −128 / 127 too.
    for (at, bt, fa, fb) in [
        (U8, I8, 255, -128),
        (U8, I8, 255, 127),
        (I8, I8, -128, -128),
        (I8, I8, 127, -128),
        (I8, I8, -128, 127),
    ] {
        for (m, k, n) in [(9, 1031, 50), (3, 4096, 17)] {
            let c = Case {
                a_shape: vec![m, k],
                n,
                at,
                bt,
                za: false,
                zb: 0,
                fill: Some((fa, fb)),
                seed: 1,
            };
            check(&c, |_| true).unwrap();
        }
    }
}

/// The operands of an integer `fused_matmul` over `c`'s product with epilogue `[rescale] + steps`:
/// a, b, the scales (one per column if `per_col`), the zero points (absent when `c` has none), then
/// a `[N]` vector per bias or scale step and a residual of the output's shape.
fn fused_operands(c: &Case, steps: &[EpiStep], per_col: bool) -> Vec<Operand> {
    let mut base = c.operands();
    base.resize_with(4, || Operand::Absent);
    let k = *c.a_shape.last().expect("rank >= 1");
    let mut out_shape = c.a_shape.clone();
    *out_shape.last_mut().expect("rank >= 1") = c.n;
    // Products of random bytes are ~128·64·√k: scales that bring them to O(1).
    let unit = 1.0 / (128.0 * 64.0 * (k as f32).sqrt());
    let scales: Vec<f32> = if per_col {
        (0..c.n)
            .map(|j| unit * (0.5 + (j % 7) as f32 * 0.25))
            .collect()
    } else {
        vec![unit]
    };
    let scale = Tensor {
        shape: if per_col { vec![c.n] } else { vec![] },
        data: Data::F32(scales),
    };
    // a, b, the scales, then the zero points.
    let mut ops: Vec<Operand> = base.drain(..2).collect();
    ops.push(Operand::Const(scale));
    ops.extend(base);
    for (i, st) in steps.iter().enumerate() {
        let seed = c.seed + 10 + i as u64;
        match st {
            EpiStep::Residual => {
                ops.push(Operand::Input(random_tensor(&out_shape, seed, -2.0, 2.0)))
            }
            EpiStep::Bias | EpiStep::Scale => {
                ops.push(Operand::Const(random_tensor(&[c.n], seed, -1.0, 1.0)));
            }
            _ => {}
        }
    }
    ops
}

/// Checks the integer `fused_matmul` of `case` with `[rescale] + steps` on every variant (on the
/// variant's tile where `tiled` says so) and on Cranelift's kernel.
fn check_fused(case: &Case, steps: &[EpiStep], per_col: bool, tiled: impl Fn(&str) -> bool) {
    let ops = fused_operands(case, steps, per_col);
    let mut epi = vec![EpiStep::Rescale];
    epi.extend_from_slice(steps);
    let op = FusedMatMul::new(Epilogue(epi));
    let mut all = variants();
    if cfg!(target_arch = "x86_64") {
        let plain = host_without(&["avx512", "avx_vnni", "avx2"]).expect("narrowed host target");
        all.push(("cranelift", plain));
    }
    for (isa, target) in all {
        let what = format!("{case:?} [{}] per_col={per_col} on {isa}", op.epilogue);
        let g = single_node_graph(op.clone().into(), &ops, 1).expect("graph");
        let text = schedule_text(&target, &g).expect("schedule");
        let want = (isa != "cranelift" && tiled(isa)).then(|| isa.to_string());
        assert_eq!(tile_of(&text), want, "{what}:\n{text}");
        // The rescale and the steps right after it run in the product's kernel.
        assert!(text.contains("tile [rescale(input 2)"), "{what}:\n{text}");
        check_node_on(&target, op.clone().into(), &ops, 1, 1e-5, 1e-5)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

#[test]
fn fused_epilogues_match_the_interpreter_on_every_variant() {
    use DType::{I8, U8};
    let act = |k| EpiStep::Act(Activation::plain(k));
    let (relu, gelu, tanh) = (
        act(ActKind::Relu),
        act(ActKind::GeluErf),
        act(ActKind::Tanh),
    );
    let clamp = EpiStep::Clamp { lo: -0.5, hi: 0.75 };
    let lists: Vec<Vec<EpiStep>> = vec![
        vec![],
        vec![EpiStep::Bias, gelu],
        vec![EpiStep::Bias, relu],
        vec![EpiStep::Residual],
        vec![EpiStep::Bias, EpiStep::Residual, relu],
        vec![EpiStep::Bias, EpiStep::Residual, clamp, tanh],
        vec![EpiStep::Bias, gelu, EpiStep::Residual],
        vec![EpiStep::Scale, EpiStep::Bias, relu],
    ];
    // Row, column and k tails; several tiles and k blocks in the last.
    let shapes = [
        (1, 1, 1),
        (9, 5, 48),
        (13, 70, 33),
        (25, 192, 97),
        (70, 1030, 130),
    ];
    for (li, steps) in lists.iter().enumerate() {
        for (si, &(m, k, n)) in shapes.iter().enumerate() {
            let (at, bt, za, zb) =
                [(U8, I8, true, 0), (I8, I8, false, 2), (I8, U8, true, 1)][(li + si) % 3];
            let c = case(m, k, n, at, bt, za, zb, (li * 7 + si) as u64);
            for per_col in [false, true] {
                check_fused(&c, steps, per_col, tiled_for(&c));
            }
        }
    }
}

#[test]
fn fused_epilogue_on_batched_a_and_wide_b() {
    // u8 B without a zero point: Cranelift's kernel on the VNNI variants, the tile on AVX2.
    let mut c = case(1, 37, 21, DType::U8, DType::U8, true, 0, 5);
    c.a_shape = vec![2, 3, 37];
    let gelu = EpiStep::Act(Activation::plain(ActKind::GeluErf));
    check_fused(
        &c,
        &[EpiStep::Bias, gelu, EpiStep::Residual],
        true,
        tiled_for(&c),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn random_shapes(m in 1usize..40, k in 1usize..70, n in 1usize..70, big in 0usize..3,
                     at_signed in any::<bool>(), bt_signed in any::<bool>(), za in any::<bool>(),
                     zb in 0u8..3, seed in 0u64..1000) {
        let (m, n) = if big == 2 { (m * 5, n * 7) } else { (m, n) };
        let k = if big == 1 { k * 13 } else { k };
        let dt = |s: bool| if s { DType::I8 } else { DType::U8 };
        let c = case(m, k, n, dt(at_signed), dt(bt_signed), za, zb, seed);
        check(&c, tiled_for(&c)).map_err(TestCaseError::fail)?;
    }
}
