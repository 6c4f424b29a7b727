//! Differential tests of the native elementwise kernels against the reference interpreter (unary math,
//! broadcasting binary/variadic ops, comparisons, logic, where, cast), fused chains, and the accuracy
//! of the vector math (max ulp error against f64 references).

use std::sync::Arc;

use carve_codegen::jit::compile_jit;
use carve_codegen::prepare::{fold_constants, prepare};
use carve_codegen::target::Target;
use carve_codegen::testing::{Operand, compare, random_f32, single_node_graph};
use carve_ir::ops::elementwise as ew;
use carve_ir::{DType, Graph, Op, Type};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: Data::F32(v),
    }
}

/// Random values in [lo, hi) with edge values (NaN, ±∞, ±0, subnormals, overflow) mixed in at fixed
/// positions.
fn values(n: usize, seed: u64, lo: f32, hi: f32, edges: bool) -> Vec<f32> {
    let mut v = random_f32(n, seed, lo, hi);
    if edges {
        let e = [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-40,
            -1e-40,
            88.8,
            -88.8,
            -104.0,
            1e30,
            -1e30,
            1.0,
            -1.0,
            0.5,
            f32::MIN_POSITIVE,
        ];
        for (i, x) in v.iter_mut().enumerate() {
            if i % 7 == 3 {
                *x = e[(i / 7) % e.len()];
            }
        }
    }
    v
}

/// `check_node` with a NaN-aware comparison of the 1- and 2-thread runs (bit patterns) — `run_both`
/// compares them with `==`, which fails on any NaN output.
fn check_node(
    op: Op,
    operands: &[Operand],
    n_outputs: usize,
    rtol: f64,
    atol: f64,
) -> Result<carve_codegen::Report, String> {
    let g = single_node_graph(op, operands, n_outputs)?;
    let inputs: Vec<Tensor> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Input(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let (a, e, report) = run_both_nan(&g, &inputs)?;
    if !report.fallbacks.is_empty() {
        return Err(format!("node fell back: {}", report.fallbacks[0].reason));
    }
    for (k, (x, y)) in a.iter().zip(&e).enumerate() {
        compare(x, y, rtol, atol).map_err(|m| format!("output {k}: {m}"))?;
    }
    Ok(report)
}

fn bits(t: &Tensor) -> Vec<u8> {
    t.data.to_le_bytes().unwrap_or_default()
}

/// `run_both` with a bitwise comparison of the thread counts.
fn run_both_nan(
    g: &Graph,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<Tensor>, carve_codegen::Report), String> {
    let mut pg = g.clone();
    let folded = fold_constants(&mut pg).map_err(|e| e.to_string())?;
    let pg = prepare(&pg).map_err(|e| e.to_string())?;
    let target = Target::host().map_err(|e| e.to_string())?;
    let (exe1, report) =
        compile_jit(Arc::clone(&pg), &target, 1, folded).map_err(|e| e.to_string())?;
    let (exe2, _) = compile_jit(Arc::clone(&pg), &target, 2, folded).map_err(|e| e.to_string())?;
    let a = exe1.run(inputs).map_err(|e| e.to_string())?;
    let b = exe2.run(inputs).map_err(|e| e.to_string())?;
    if a.iter().map(bits).ne(b.iter().map(bits)) {
        return Err("results differ between 1 and 2 threads".into());
    }
    let r = carve_runtime::interp::run(
        g,
        inputs
            .iter()
            .cloned()
            .map(carve_runtime::interp::Value::Tensor)
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let r = r
        .into_iter()
        .map(|v| match v {
            carve_runtime::interp::Value::Tensor(t) => Ok(t),
            other => Err(format!("interpreter returned a {}", other.kind())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((a, r, report))
}

fn unary_ops() -> Vec<(Op, f32, f32)> {
    vec![
        (ew::Exp {}.into(), -20.0, 20.0),
        (ew::Log {}.into(), 0.0, 100.0),
        (ew::Sqrt {}.into(), 0.0, 100.0),
        (ew::Reciprocal {}.into(), -4.0, 4.0),
        (ew::Neg {}.into(), -4.0, 4.0),
        (ew::Abs {}.into(), -4.0, 4.0),
        (ew::Erf {}.into(), -4.0, 4.0),
        (ew::Tanh {}.into(), -6.0, 6.0),
        (ew::Sigmoid {}.into(), -20.0, 20.0),
        (ew::Relu {}.into(), -4.0, 4.0),
        (ew::LeakyRelu { alpha: 0.1 }.into(), -4.0, 4.0),
        (
            ew::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }
            .into(),
            -5.0,
            5.0,
        ),
        (ew::HardSwish {}.into(), -5.0, 5.0),
        (
            ew::Gelu {
                approximate: ew::GeluApprox::Erf,
            }
            .into(),
            -6.0,
            6.0,
        ),
        (
            ew::Gelu {
                approximate: ew::GeluApprox::Tanh,
            }
            .into(),
            -6.0,
            6.0,
        ),
        (ew::Swish { alpha: 1.0 }.into(), -10.0, 10.0),
        (ew::Softplus {}.into(), -30.0, 30.0),
        (ew::Softsign {}.into(), -5.0, 5.0),
        (ew::Mish {}.into(), -10.0, 10.0),
        (ew::Elu { alpha: 1.0 }.into(), -5.0, 5.0),
        (
            ew::Selu {
                alpha: 1.673_263_2,
                gamma: 1.050_701,
            }
            .into(),
            -5.0,
            5.0,
        ),
        (ew::Celu { alpha: 1.5 }.into(), -5.0, 5.0),
        (ew::ThresholdedRelu { alpha: 1.0 }.into(), -3.0, 3.0),
        (
            ew::Shrink {
                bias: 0.1,
                lambd: 0.5,
            }
            .into(),
            -2.0,
            2.0,
        ),
        (ew::Sign {}.into(), -2.0, 2.0),
        (ew::Floor {}.into(), -10.0, 10.0),
        (ew::Ceil {}.into(), -10.0, 10.0),
        (ew::Round {}.into(), -10.0, 10.0),
    ]
}

#[test]
fn unary_ops_match_the_interpreter() {
    for (k, (op, lo, hi)) in unary_ops().into_iter().enumerate() {
        for (shape, edges) in [(vec![3, 37], true), (vec![2], false), (vec![40000], true)] {
            let n = shape.iter().product();
            let x = t(&shape, values(n, k as u64 + 1, lo, hi, edges));
            check_node(op.clone(), &[Operand::Input(x)], 1, 1e-5, 1e-6)
                .unwrap_or_else(|e| panic!("{} {shape:?}: {e}", op.name()));
        }
    }
}

fn binary_ops() -> Vec<Op> {
    vec![
        ew::Add {}.into(),
        ew::Sub {}.into(),
        ew::Mul {}.into(),
        ew::Div {}.into(),
        ew::PRelu {}.into(),
        ew::Max {}.into(),
        ew::Min {}.into(),
        ew::Sum {}.into(),
        ew::Mean {}.into(),
    ]
}

#[test]
fn binary_ops_broadcast() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[2, 3, 5, 7], &[2, 3, 5, 7]),
        (&[2, 3, 5, 7], &[3, 1, 1]),
        (&[2, 3, 5, 7], &[7]),
        (&[1, 5, 1], &[3, 1, 6]),
        (&[4, 1], &[]),
        (&[], &[9]),
        (&[1, 64, 96], &[1, 1, 96]),
    ];
    for op in binary_ops() {
        for (i, (sa, sb)) in shapes.iter().enumerate() {
            if op.name() == "prelu" && sb.len() > sa.len() {
                continue; // the slope must broadcast to x
            }
            let na: usize = sa.iter().product();
            let nb: usize = sb.iter().product();
            let a = t(sa, values(na, i as u64 * 2 + 1, -3.0, 3.0, true));
            let b = t(sb, values(nb, i as u64 * 2 + 2, -3.0, 3.0, false));
            check_node(
                op.clone(),
                &[Operand::Input(a), Operand::Input(b)],
                1,
                1e-6,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{} {sa:?} {sb:?}: {e}", op.name()));
        }
    }
}

#[test]
fn pow_variants() {
    let x = t(&[5, 11], values(55, 3, -3.0, 3.0, true));
    for p in [2.0f32, 3.0, 0.5, -1.0, -2.0, 1.0, 0.0, 1.7, -0.3] {
        let e = t(&[], vec![p]);
        check_node(
            ew::Pow {}.into(),
            &[Operand::Input(x.clone()), Operand::Const(e)],
            1,
            1e-5,
            1e-6,
        )
        .unwrap_or_else(|e| panic!("pow {p}: {e}"));
    }
    // Runtime exponents, negative bases with integer and non-integer exponents.
    let ys: Vec<f32> = (0..55)
        .map(|i| [2.0, 3.0, -1.0, 0.5, 1.5, 0.0, -2.5][i % 7])
        .collect();
    let y = t(&[5, 11], ys);
    check_node(
        ew::Pow {}.into(),
        &[Operand::Input(x), Operand::Input(y)],
        1,
        1e-5,
        1e-6,
    )
    .unwrap();
}

#[test]
fn clip_with_constant_and_runtime_bounds() {
    let x = t(&[4, 9], values(36, 5, -3.0, 3.0, true));
    let lo = t(&[], vec![-1.0]);
    let hi = t(&[], vec![1.5]);
    check_node(
        ew::Clip {}.into(),
        &[
            Operand::Input(x.clone()),
            Operand::Const(lo.clone()),
            Operand::Const(hi.clone()),
        ],
        1,
        0.0,
        0.0,
    )
    .unwrap();
    check_node(
        ew::Clip {}.into(),
        &[
            Operand::Input(x.clone()),
            Operand::Absent,
            Operand::Input(hi),
        ],
        1,
        0.0,
        0.0,
    )
    .unwrap();
    check_node(
        ew::Clip {}.into(),
        &[Operand::Input(x), Operand::Input(lo)],
        1,
        0.0,
        0.0,
    )
    .unwrap();
}

fn typed(dtype: DType, shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let f = values(n, seed, -5.0, 5.0, dtype == DType::F32);
    let data = match dtype {
        DType::F32 => Data::F32(f),
        DType::F64 => Data::F64(f.iter().map(|&x| f64::from(x) * 1.1).collect()),
        DType::I64 => Data::I64(f.iter().map(|&x| (x * 1e3) as i64).collect()),
        DType::I32 => Data::I32(f.iter().map(|&x| (x * 1e3) as i32).collect()),
        DType::I8 => Data::I8(f.iter().map(|&x| (x * 20.0) as i8).collect()),
        DType::U8 => Data::U8(f.iter().map(|&x| (x * 40.0) as i32 as u8).collect()),
        DType::Bool => Data::Bool(f.iter().map(|&x| x > 0.0).collect()),
        _ => unreachable!(),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

#[test]
fn comparisons_logic_where() {
    let cmps: Vec<Op> = vec![
        ew::Equal {}.into(),
        ew::Greater {}.into(),
        ew::GreaterOrEqual {}.into(),
        ew::Less {}.into(),
        ew::LessOrEqual {}.into(),
    ];
    for d in [DType::F32, DType::F64, DType::I64, DType::I32, DType::U8] {
        for op in &cmps {
            let a = typed(d, &[3, 8], 1);
            let mut b = typed(d, &[8], 2);
            if d == DType::F32 {
                // Some equal elements.
                if let (Data::F32(bv), Data::F32(av)) = (&mut b.data, &a.data) {
                    bv[0] = av[0];
                }
            }
            check_node(
                op.clone(),
                &[Operand::Input(a), Operand::Input(b)],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{} {d}: {e}", op.name()));
        }
    }
    for op in [
        Op::from(ew::And {}),
        ew::Or {}.into(),
        ew::Xor {}.into(),
        ew::Equal {}.into(),
    ] {
        let a = typed(DType::Bool, &[2, 5], 3);
        let b = typed(DType::Bool, &[1, 5], 4);
        check_node(op, &[Operand::Input(a), Operand::Input(b)], 1, 0.0, 0.0).unwrap();
    }
    check_node(
        ew::Not {}.into(),
        &[Operand::Input(typed(DType::Bool, &[7], 5))],
        1,
        0.0,
        0.0,
    )
    .unwrap();
    for d in [DType::F32, DType::I64, DType::Bool, DType::U8] {
        check_node(
            ew::Where {}.into(),
            &[
                Operand::Input(typed(DType::Bool, &[4, 1], 6)),
                Operand::Input(typed(d, &[4, 6], 7)),
                Operand::Input(typed(d, &[6], 8)),
            ],
            1,
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("where {d}: {e}"));
    }
}

#[test]
fn integer_arithmetic() {
    for d in [DType::I64, DType::I32, DType::I8, DType::U8] {
        for op in [
            Op::from(ew::Add {}),
            ew::Sub {}.into(),
            ew::Mul {}.into(),
            ew::Max {}.into(),
            ew::Min {}.into(),
            ew::Div {}.into(),
            ew::Mod { fmod: false }.into(),
            ew::Mod { fmod: true }.into(),
            ew::BitShift {
                direction: ew::ShiftDirection::Left,
            }
            .into(),
            ew::BitShift {
                direction: ew::ShiftDirection::Right,
            }
            .into(),
        ] {
            check_node(
                op.clone(),
                &[
                    Operand::Input(typed(d, &[3, 4], 1)),
                    Operand::Input(typed(d, &[4], 2)),
                ],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("{} {d}: {e}", op.name()));
        }
    }
    // Division and remainder edge cases: by zero gives 0, MIN / −1 wraps (MIN mod −1 is 0),
    // truncation toward zero; Python-style mod takes the divisor's sign, fmod the dividend's.
    let a = Tensor {
        shape: vec![8],
        data: Data::I8(vec![i8::MIN, 5, -7, 0, 7, -7, 7, -6]),
    };
    let b = Tensor {
        shape: vec![8],
        data: Data::I8(vec![-1, 0, 2, 3, -2, -2, 3, 3]),
    };
    for op in [
        Op::from(ew::Div {}),
        ew::Mod { fmod: false }.into(),
        ew::Mod { fmod: true }.into(),
    ] {
        check_node(
            op.clone(),
            &[Operand::Input(a.clone()), Operand::Input(b.clone())],
            1,
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
    let a = Tensor {
        shape: vec![4],
        data: Data::U8(vec![255, 5, 7, 0]),
    };
    let b = Tensor {
        shape: vec![4],
        data: Data::U8(vec![2, 0, 2, 3]),
    };
    check_node(
        ew::Div {}.into(),
        &[Operand::Input(a), Operand::Input(b)],
        1,
        0.0,
        0.0,
    )
    .unwrap();
    for op in [Op::from(ew::Neg {}), ew::Abs {}.into(), ew::Relu {}.into()] {
        check_node(
            op,
            &[Operand::Input(typed(DType::I64, &[9], 3))],
            1,
            0.0,
            0.0,
        )
        .unwrap();
    }
}

#[test]
fn casts() {
    let types = [
        DType::F32,
        DType::F64,
        DType::I64,
        DType::I32,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];
    for &from in &types {
        for &to in &types {
            let mut x = typed(from, &[2, 9], 9);
            if from == DType::F32
                && let Data::F32(v) = &mut x.data
            {
                // Out-of-range and special values.
                v[0] = 3e9;
                v[1] = -3e9;
                v[2] = 1e20;
                v[4] = 300.7;
                v[5] = -129.5;
            }
            check_node(
                ew::Cast {
                    to,
                    saturate: true,
                    round_mode: ew::RoundMode::Up,
                }
                .into(),
                &[Operand::Input(x)],
                1,
                0.0,
                0.0,
            )
            .unwrap_or_else(|e| panic!("cast {from} → {to}: {e}"));
        }
    }
    // Bitcasts between types of one width (NaN and infinity bit patterns included for f32).
    for (from, to) in [
        (DType::F32, DType::I32),
        (DType::I32, DType::F32),
        (DType::I64, DType::F64),
        (DType::F64, DType::I64),
        (DType::U8, DType::I8),
    ] {
        let op = ew::Bitcast { to };
        check_node(
            op.into(),
            &[Operand::Input(typed(from, &[3, 7], 4))],
            1,
            0.0,
            0.0,
        )
        .unwrap_or_else(|e| panic!("bitcast {from} → {to}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------------
// Property tests.

fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec((1usize..6, 0u8..4), 0..=4).prop_map(|dims| {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (d, mode) in dims {
            match mode {
                0 => {
                    a.push(d);
                    b.push(d);
                }
                1 => {
                    a.push(d);
                    b.push(1);
                }
                2 => {
                    a.push(1);
                    b.push(d);
                }
                _ => {
                    a.push(d * 5);
                    b.push(d * 5);
                }
            }
        }
        // Sometimes drop leading dims of b (rank broadcast).
        let drop = a.len() / 2;
        if a.len() % 2 == 1 {
            b.drain(..drop);
        }
        (a, b)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_broadcast_binary((sa, sb) in broadcast_pair(), op in 0usize..9, seed in 0u64..1000) {
        let op = binary_ops()[op].clone();
        let (sa, sb) = if op.name() == "prelu" && sb.len() > sa.len() { (sb, sa) } else { (sa, sb) };
        let a = t(&sa, values(sa.iter().product(), seed, -4.0, 4.0, true));
        let b = t(&sb, values(sb.iter().product(), seed + 1, -4.0, 4.0, true));
        let r = check_node(op.clone(), &[Operand::Input(a), Operand::Input(b)], 1, 1e-6, 0.0);
        prop_assert!(r.is_ok(), "{} {:?} {:?}: {:?}", op.name(), sa, sb, r.err());
    }

    #[test]
    fn random_unary(shape in prop::collection::vec(1usize..9, 0..=4), op in 0usize..28, seed in 0u64..1000) {
        let (op, lo, hi) = unary_ops()[op].clone();
        let x = t(&shape, values(shape.iter().product(), seed, lo, hi, true));
        let r = check_node(op.clone(), &[Operand::Input(x)], 1, 1e-5, 1e-6);
        prop_assert!(r.is_ok(), "{} {:?}: {:?}", op.name(), shape, r.err());
    }

    #[test]
    fn random_fused_chain((sa, sb) in broadcast_pair(), ops in prop::collection::vec(0usize..6, 1..5), seed in 0u64..1000) {
        // x (shape sa) → op(·, y) / unary → … ; y has shape sb (broadcast into sa-compatible output).
        let mut g = Graph::new("chain");
        let x = input(&mut g, "x", &sa);
        let y = input(&mut g, "y", &sb);
        let mut cur = x;
        for (i, &o) in ops.iter().enumerate() {
            let (op, ins): (Op, Vec<_>) = match o {
                0 => (ew::Add {}.into(), vec![Some(cur), Some(y)]),
                1 => (ew::Mul {}.into(), vec![Some(y), Some(cur)]),
                2 => (ew::Relu {}.into(), vec![Some(cur)]),
                3 => (ew::Tanh {}.into(), vec![Some(cur)]),
                4 => (ew::Sub {}.into(), vec![Some(cur), Some(x)]),
                _ => (ew::Sigmoid {}.into(), vec![Some(cur)]),
            };
            cur = g.add_node(format!("n{i}"), op, ins, vec![format!("v{i}")]).unwrap()[0];
        }
        g.outputs = vec![cur];
        let a = t(&sa, values(sa.iter().product(), seed, -2.0, 2.0, false));
        let b = t(&sb, values(sb.iter().product(), seed + 7, -2.0, 2.0, false));
        let (nat, int, rep) = run_both_nan(&g, &[a, b]).map_err(TestCaseError::fail)?;
        prop_assert!(rep.fallbacks.is_empty());
        let r = compare(&nat[0], &int[0], 1e-5, 1e-6);
        prop_assert!(r.is_ok(), "{:?} {:?} {:?}: {:?}", ops, sa, sb, r.err());
    }
}

// ---------------------------------------------------------------------------------------------------
// Fusion.

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> carve_ir::ValueId {
    let n: usize = shape.iter().product();
    g.add_input(name, Type::Tensor(t(shape, vec![0.0; n]).ty()))
}

fn node(
    g: &mut Graph,
    name: &str,
    op: impl Into<Op>,
    ins: &[carve_ir::ValueId],
) -> carve_ir::ValueId {
    g.add_node(
        name,
        op.into(),
        ins.iter().map(|&v| Some(v)).collect(),
        vec![format!("{name}_out")],
    )
    .unwrap()[0]
}

#[test]
fn add_mul_relu_fuses_into_one_kernel() {
    let mut g = Graph::new("f");
    let x = input(&mut g, "x", &[2, 8, 33]);
    let b = input(&mut g, "b", &[33]);
    let s = input(&mut g, "s", &[8, 1]);
    let a = node(&mut g, "add", ew::Add {}, &[x, b]);
    let m = node(&mut g, "mul", ew::Mul {}, &[a, s]);
    let r = node(&mut g, "relu", ew::Relu {}, &[m]);
    g.outputs = vec![r];
    let xs = t(&[2, 8, 33], values(528, 1, -2.0, 2.0, true));
    let bs = t(&[33], values(33, 2, -2.0, 2.0, false));
    let ss = t(&[8, 1], values(8, 3, -2.0, 2.0, false));
    let (nat, int, rep) = run_both_nan(&g, &[xs, bs, ss]).unwrap();
    assert_eq!(rep.fused, 2, "{rep}");
    assert_eq!(rep.kernels, 1, "{rep}");
    compare(&nat[0], &int[0], 1e-6, 0.0).unwrap();
}

#[test]
fn shared_and_output_values_are_not_absorbed() {
    // d = x − m is used twice (pow and div): it stays materialized; the pow → … chain and the div → mul
    // → add chain fuse separately (layer-norm tail).
    let mut g = Graph::new("ln");
    let x = input(&mut g, "x", &[4, 16]);
    let m = input(&mut g, "m", &[4, 1]);
    let gamma = input(&mut g, "gamma", &[16]);
    let d = node(&mut g, "sub", ew::Sub {}, &[x, m]);
    let two = g.add_const("two", Tensor::scalar_f32(2.0).to_constant());
    let p = node(&mut g, "pow", ew::Pow {}, &[d, two]);
    let e = node(&mut g, "exp", ew::Exp {}, &[p]); // an intermediate that is also a graph output
    let q = node(&mut g, "div", ew::Div {}, &[d, e]);
    let y = node(&mut g, "mul", ew::Mul {}, &[q, gamma]);
    g.outputs = vec![y, e];
    let inputs = [
        t(&[4, 16], values(64, 1, -1.0, 1.0, false)),
        t(&[4, 1], values(4, 2, -1.0, 1.0, false)),
        t(&[16], values(16, 3, -1.0, 1.0, false)),
    ];
    let (nat, int, rep) = run_both_nan(&g, &inputs).unwrap();
    // pow → exp (exp is an output: root), div → mul.
    assert_eq!(rep.fused, 2, "{rep}");
    for (a, b) in nat.iter().zip(&int) {
        compare(a, b, 1e-6, 1e-7).unwrap();
    }
}

#[test]
fn gelu_decomposition_fuses() {
    // minilm's gelu: x / √2 → erf → + 1 → · x → · 0.5.
    let mut g = Graph::new("gelu");
    let x = input(&mut g, "x", &[3, 1536]);
    let c = |g: &mut Graph, n: &str, v: f32| g.add_const(n, Tensor::scalar_f32(v).to_constant());
    let s2 = c(&mut g, "s2", std::f32::consts::SQRT_2);
    let one = c(&mut g, "one", 1.0);
    let half = c(&mut g, "half", 0.5);
    let a = node(&mut g, "div", ew::Div {}, &[x, s2]);
    let b = node(&mut g, "erf", ew::Erf {}, &[a]);
    let d = node(&mut g, "add", ew::Add {}, &[b, one]);
    let e = node(&mut g, "mul", ew::Mul {}, &[x, d]);
    let f = node(&mut g, "mul2", ew::Mul {}, &[e, half]);
    g.outputs = vec![f];
    let xs = t(&[3, 1536], values(3 * 1536, 4, -5.0, 5.0, false));
    let (nat, int, rep) = run_both_nan(&g, &[xs]).unwrap();
    assert_eq!(rep.fused, 4, "{rep}");
    compare(&nat[0], &int[0], 1e-5, 1e-6).unwrap();
}

#[test]
fn large_tensors_are_tiled() {
    let mut g = Graph::new("big");
    let x = input(&mut g, "x", &[3, 50000]);
    let y = input(&mut g, "y", &[50000]);
    let a = node(&mut g, "add", ew::Add {}, &[x, y]);
    let s = node(&mut g, "sig", ew::Sigmoid {}, &[a]);
    g.outputs = vec![s];
    let xs = t(&[3, 50000], values(150000, 1, -5.0, 5.0, true));
    let ys = t(&[50000], values(50000, 2, -5.0, 5.0, false));
    let (nat, int, rep) = run_both_nan(&g, &[xs, ys]).unwrap();
    assert_eq!(rep.fused, 1);
    compare(&nat[0], &int[0], 1e-5, 1e-7).unwrap();
    // Rank-4 broadcast with three outer axes: tiles start mid-odometer.
    let mut g = Graph::new("r4");
    let x = input(&mut g, "x", &[4, 8, 64, 130]);
    let y = input(&mut g, "y", &[8, 1, 130]);
    let a = node(&mut g, "mul", ew::Mul {}, &[x, y]);
    let s = node(&mut g, "tanh", ew::Tanh {}, &[a]);
    g.outputs = vec![s];
    let xs = t(
        &[4, 8, 64, 130],
        values(4 * 8 * 64 * 130, 5, -3.0, 3.0, true),
    );
    let ys = t(&[8, 1, 130], values(8 * 130, 6, -3.0, 3.0, true));
    let (nat, int, rep) = run_both_nan(&g, &[xs, ys]).unwrap();
    assert_eq!(rep.fused, 1);
    compare(&nat[0], &int[0], 1e-5, 1e-7).unwrap();
    // One long row split into chunks.
    let mut g = Graph::new("flat");
    let x = input(&mut g, "x", &[100003]);
    let e = node(&mut g, "exp", ew::Exp {}, &[x]);
    g.outputs = vec![e];
    let xs = t(&[100003], values(100003, 3, -5.0, 5.0, true));
    let (nat, int, _) = run_both_nan(&g, &[xs]).unwrap();
    compare(&nat[0], &int[0], 1e-6, 0.0).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Accuracy against f64 references.

/// Runs a one-input f32 op natively on `xs`.
fn run_native(op: Op, xs: &[f32]) -> Vec<f32> {
    let mut g = Graph::new("acc");
    let x = input(&mut g, "x", &[xs.len()]);
    let y = node(&mut g, "op", op, &[x]);
    g.outputs = vec![y];
    let pg = prepare(&g).unwrap();
    let target = Target::host().unwrap();
    let (exe, rep) = compile_jit(Arc::clone(&pg), &target, 1, 0).unwrap();
    assert!(rep.fallbacks.is_empty());
    let out = exe.run(&[t(&[xs.len()], xs.to_vec())]).unwrap();
    match &out[0].data {
        Data::F32(v) => v.clone(),
        _ => unreachable!(),
    }
}

/// Distance in ulps between `a` and the correctly rounded `r`.
fn ulps(a: f32, r: f64) -> f64 {
    let rf = r as f32;
    if a == rf || (a.is_nan() && rf.is_nan()) {
        return 0.0;
    }
    if a.is_nan() || rf.is_nan() || a.is_infinite() || rf.is_infinite() {
        return f64::INFINITY;
    }
    // One ulp at the reference's magnitude (subnormal spacing at the bottom).
    let ulp = if rf == 0.0 {
        f64::from(f32::from_bits(1))
    } else {
        let b = rf.abs().to_bits();
        f64::from(f32::from_bits(b + 1)) - f64::from(rf.abs())
    };
    (f64::from(a) - r).abs() / ulp
}

fn max_ulp(op: Op, lo: f32, hi: f32, n: usize, f: fn(f64) -> f64) -> (f64, f32) {
    let xs: Vec<f32> = (0..n)
        .map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32))
        .collect();
    let ys = run_native(op, &xs);
    let mut worst = (0.0, 0.0);
    for (&x, &y) in xs.iter().zip(&ys) {
        let u = ulps(y, f(f64::from(x)));
        if u > worst.0 {
            worst = (u, x);
        }
    }
    worst
}

fn sigmoid64(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// (name, op, range low, range high, f64 reference, max ulp allowed).
type AccuracyCase = (&'static str, Op, f32, f32, fn(f64) -> f64, f64);

#[test]
fn math_accuracy_in_ulps() {
    let erf = carve_runtime::interp::elementwise::unary::erf;
    let cases: Vec<AccuracyCase> = vec![
        ("exp", ew::Exp {}.into(), -87.0, 88.0, f64::exp, 2.0),
        (
            "exp subnormal",
            ew::Exp {}.into(),
            -103.0,
            -87.0,
            f64::exp,
            2.0,
        ),
        ("log", ew::Log {}.into(), 1e-30, 1e30, f64::ln, 2.0),
        ("log near 1", ew::Log {}.into(), 0.5, 2.0, f64::ln, 2.0),
        ("tanh", ew::Tanh {}.into(), -10.0, 10.0, f64::tanh, 3.0),
        ("tanh small", ew::Tanh {}.into(), -0.7, 0.7, f64::tanh, 3.0),
        (
            "sigmoid",
            ew::Sigmoid {}.into(),
            -80.0,
            30.0,
            sigmoid64,
            4.0,
        ),
        ("erf", ew::Erf {}.into(), -4.5, 4.5, erf, 3.0),
        ("erf small", ew::Erf {}.into(), -0.01, 0.01, erf, 3.0),
    ];
    let mut report = String::new();
    for (name, op, lo, hi, f, limit) in cases {
        let (u, at) = max_ulp(op, lo, hi, 200_001, f);
        report += &format!("{name}: max {u:.2} ulp at {at}\n");
        assert!(
            u <= limit,
            "{name}: {u} ulp at {at} (limit {limit})\n{report}"
        );
    }
    println!("{report}");
}

#[test]
fn math_special_values() {
    let xs = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        100.0,
        -200.0,
        1e-45,
    ];
    let exp = run_native(ew::Exp {}.into(), &xs);
    assert_eq!(&exp[..4], &[1.0, 1.0, f32::INFINITY, 0.0]);
    assert!(exp[4].is_nan());
    assert_eq!(exp[5], f32::INFINITY);
    assert_eq!(exp[6], 0.0);
    let log = run_native(ew::Log {}.into(), &xs);
    assert_eq!(
        &log[..3],
        &[f32::NEG_INFINITY, f32::NEG_INFINITY, f32::INFINITY]
    );
    assert!(log[3].is_nan() && log[4].is_nan() && log[6].is_nan());
    assert!(
        (log[7] - f64::from(1e-45f32).ln() as f32).abs() < 1e-3,
        "{log:?}"
    );
    let tanh = run_native(ew::Tanh {}.into(), &xs);
    assert_eq!(&tanh[..4], &[0.0, -0.0, 1.0, -1.0]);
    assert!(tanh[4].is_nan());
    let sig = run_native(ew::Sigmoid {}.into(), &xs);
    assert_eq!(&sig[..4], &[0.5, 0.5, 1.0, 0.0]);
    let erf = run_native(ew::Erf {}.into(), &xs);
    assert_eq!(&erf[..4], &[0.0, -0.0, 1.0, -1.0]);
    assert!(erf[4].is_nan());
}

// ---------------------------------------------------------------------------------------------------
// Throughput (run with `cargo test --release -p carve-codegen --test elementwise -- --ignored`).

fn time_graph(name: &str, g: &Graph, inputs: &[Tensor]) {
    let pg = prepare(g).unwrap();
    let target = Target::host().unwrap();
    let (exe, rep) = compile_jit(Arc::clone(&pg), &target, 1, 0).unwrap();
    assert!(rep.fallbacks.is_empty());
    let n: usize = pg
        .outputs
        .iter()
        .map(|&o| {
            carve_codegen::prepare::concrete_shape(&pg, o)
                .unwrap()
                .iter()
                .product::<usize>()
        })
        .sum();
    exe.run(inputs).unwrap();
    let reps = 20;
    let t0 = std::time::Instant::now();
    for _ in 0..reps {
        exe.run(inputs).unwrap();
    }
    let dt = t0.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{name}: {:.3} ms, {:.3} ns/element ({} kernels, {} fused)",
        dt * 1e3,
        dt * 1e9 / n as f64,
        rep.kernels,
        rep.fused
    );
}

#[test]
#[ignore]
fn bench_elementwise() {
    let shape = [1, 384, 1536];
    let n = 384 * 1536;
    let xs = t(&shape, values(n, 1, -4.0, 4.0, false));
    let bs = t(&[1536], values(1536, 2, -1.0, 1.0, false));
    let unary: Vec<(&str, Op)> = vec![
        ("relu", ew::Relu {}.into()),
        ("exp", ew::Exp {}.into()),
        ("sigmoid", ew::Sigmoid {}.into()),
        ("tanh", ew::Tanh {}.into()),
        ("erf", ew::Erf {}.into()),
        ("log", ew::Log {}.into()),
        (
            "gelu",
            ew::Gelu {
                approximate: ew::GeluApprox::Erf,
            }
            .into(),
        ),
    ];
    for (name, op) in unary {
        let mut g = Graph::new("b");
        let x = input(&mut g, "x", &shape);
        let y = node(&mut g, "op", op, &[x]);
        g.outputs = vec![y];
        time_graph(name, &g, std::slice::from_ref(&xs));
    }
    let mut g = Graph::new("b");
    let x = input(&mut g, "x", &shape);
    let b = input(&mut g, "b", &[1536]);
    let y = node(&mut g, "add", ew::Add {}, &[x, b]);
    g.outputs = vec![y];
    time_graph("add bias", &g, &[xs.clone(), bs.clone()]);
    let mut g = Graph::new("b");
    let x = input(&mut g, "x", &shape);
    let b = input(&mut g, "b", &[1536]);
    let a = node(&mut g, "add", ew::Add {}, &[x, b]);
    let m = node(&mut g, "mul", ew::Mul {}, &[a, x]);
    let r = node(&mut g, "relu", ew::Relu {}, &[m]);
    g.outputs = vec![r];
    time_graph("add→mul→relu fused", &g, &[xs, bs]);
}
