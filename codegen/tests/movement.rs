//! Differential tests of the movement kernels: for random shapes, permutations, axes, pads and dtypes
//! (f32, i64, u8, bool) every native kernel agrees with the interpreter bit for bit.

use carve_codegen::testing::{Operand, check_node, random_f32};
use carve_ir::Op;
use carve_ir::ops::misc::{ArrayFeatureExtractor, Dropout};
use carve_ir::ops::movement::{
    BlockMode, Concat, DepthToSpace, Expand, Gather, GatherElements, Pad, PadMode, Slice,
    SpaceToDepth, Split, Tile, Transpose,
};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

/// Random tensor of `shape` with element type number `dt` (0 f32, 1 i64, 2 u8, 3 bool).
fn tensor(shape: &[usize], dt: u8, seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let f = random_f32(n, seed, -100.0, 100.0);
    let data = match dt {
        0 => Data::F32(f),
        1 => Data::I64(f.iter().map(|&v| (v * 1000.0) as i64).collect()),
        2 => Data::U8(f.iter().map(|&v| (v + 100.0) as u8).collect()),
        _ => Data::Bool(f.iter().map(|&v| v > 0.0).collect()),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn i64s(v: &[i64]) -> Tensor {
    Tensor {
        shape: vec![v.len()],
        data: Data::I64(v.to_vec()),
    }
}

fn check(op: impl Into<Op>, operands: &[Operand], n_out: usize) -> Result<(), TestCaseError> {
    check_node(op.into(), operands, n_out, 0.0, 0.0)
        .map(|_| ())
        .map_err(TestCaseError::fail)
}

fn shape_strategy(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max_dim, 1..=max_rank)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn transpose_matches(shape in shape_strategy(5, 9), dt in 0u8..4, seed in any::<u64>(), rot in any::<u64>()) {
        let r = shape.len();
        let mut perm: Vec<i64> = (0..r as i64).collect();
        // A pseudo-random permutation.
        let mut s = rot | 1;
        for i in (1..r).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let x = tensor(&shape, dt, seed);
        check(Transpose { perm: Some(perm) }, &[Operand::Input(x)], 1)?;
    }

    #[test]
    fn last_two_swap_matches(b in 1usize..4, m in 1usize..70, n in 1usize..70, dt in 0u8..4, seed in any::<u64>()) {
        let x = tensor(&[b, m, n], dt, seed);
        check(Transpose { perm: Some(vec![0, 2, 1]) }, &[Operand::Input(x)], 1)?;
    }

    #[test]
    fn concat_matches(shape in shape_strategy(4, 6), ax in any::<usize>(), extra in prop::collection::vec(1usize..5, 1..4), dt in 0u8..4, seed in any::<u64>()) {
        let a = ax % shape.len();
        let mut ops = vec![Operand::Input(tensor(&shape, dt, seed))];
        for (k, &e) in extra.iter().enumerate() {
            let mut s = shape.clone();
            s[a] = e;
            let t = tensor(&s, dt, seed ^ (k as u64 + 7));
            ops.push(if k % 2 == 0 { Operand::Input(t) } else { Operand::Const(t) });
        }
        check(Concat { axis: a as i64 - if ax % 2 == 0 { 0 } else { shape.len() as i64 } }, &ops, 1)?;
    }

    #[test]
    fn split_matches(shape in shape_strategy(4, 9), ax in any::<usize>(), n in 1usize..4, dt in 0u8..4, seed in any::<u64>()) {
        let a = ax % shape.len();
        let x = tensor(&shape, dt, seed);
        let d = shape[a];
        if d >= n {
            check(Split { axis: a as i64 }, &[Operand::Input(x.clone())], n)?;
        }
        // Explicit sizes.
        let first = d / 2;
        check(Split { axis: a as i64 }, &[Operand::Input(x), Operand::Const(i64s(&[first as i64, (d - first) as i64]))], 2)?;
    }

    #[test]
    fn slice_matches(shape in shape_strategy(4, 10), params in prop::collection::vec((any::<i64>(), any::<i64>(), -3i64..4), 1..4), dt in 0u8..4, seed in any::<u64>()) {
        let r = shape.len();
        let x = tensor(&shape, dt, seed);
        let mut axes = vec![];
        let (mut st, mut en, mut sp) = (vec![], vec![], vec![]);
        for (k, &(a, b, s)) in params.iter().enumerate() {
            let ax = (k * 7 + a.rem_euclid(5) as usize) % r;
            if axes.contains(&(ax as i64)) {
                continue;
            }
            axes.push(ax as i64);
            let d = shape[ax] as i64 + 2;
            st.push(a.rem_euclid(2 * d + 1) - d);
            en.push(if b % 7 == 0 { i64::MAX } else if b % 7 == 1 { i64::MIN } else { b.rem_euclid(2 * d + 1) - d });
            sp.push(if s == 0 { 1 } else { s });
        }
        check(Slice {}, &[Operand::Input(x), Operand::Const(i64s(&st)), Operand::Const(i64s(&en)), Operand::Const(i64s(&axes)), Operand::Const(i64s(&sp))], 1)?;
    }

    #[test]
    fn expand_matches(shape in shape_strategy(4, 6), mask in any::<u8>(), lead in 0usize..2, dt in 0u8..4, seed in any::<u64>()) {
        let mut xs = shape.clone();
        for (i, d) in xs.iter_mut().enumerate() {
            if mask >> i & 1 == 1 { *d = 1; }
        }
        let mut target: Vec<i64> = vec![3; lead];
        target.extend(shape.iter().map(|&d| d as i64));
        check(Expand {}, &[Operand::Input(tensor(&xs, dt, seed)), Operand::Const(i64s(&target))], 1)?;
    }

    #[test]
    fn tile_matches(shape in shape_strategy(3, 5), reps in prop::collection::vec(1i64..4, 3), dt in 0u8..4, seed in any::<u64>()) {
        let reps = &reps[..shape.len()];
        check(Tile {}, &[Operand::Input(tensor(&shape, dt, seed)), Operand::Const(i64s(reps))], 1)?;
    }

    #[test]
    fn pad_matches(shape in shape_strategy(3, 6), pads in prop::collection::vec(-2i64..4, 6), mode in 0u8..4, dt in 0u8..3, seed in any::<u64>()) {
        let r = shape.len();
        let mut p: Vec<i64> = pads[..2 * r].to_vec();
        let mode = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap][mode as usize];
        for a in 0..r {
            // Keep at least one element and (reflect/wrap) pads within the data.
            let d = shape[a] as i64;
            let crop = (-p[a]).max(0) + (-p[r + a]).max(0);
            if crop >= d { p[a] = 0; p[r + a] = 0; }
            let len = d - (-p[a]).max(0) - (-p[r + a]).max(0);
            if mode == PadMode::Reflect || mode == PadMode::Wrap {
                p[a] = p[a].min(len - 1);
                p[r + a] = p[r + a].min(len - 1);
            }
        }
        let x = tensor(&shape, dt, seed);
        let mut ops = vec![Operand::Input(x), Operand::Const(i64s(&p))];
        if mode == PadMode::Constant {
            ops.push(Operand::Input(tensor(&[], dt, seed ^ 5)));
        }
        check(Pad { mode }, &ops, 1)?;
    }

    #[test]
    fn gather_matches(shape in shape_strategy(3, 8), ax in any::<usize>(), idx in prop::collection::vec(any::<i64>(), 1..40), runtime in any::<bool>(), dt in 0u8..4, seed in any::<u64>()) {
        let a = ax % shape.len();
        let d = shape[a] as i64;
        let ind: Vec<i64> = idx.iter().map(|&i| i.rem_euclid(2 * d) - d).collect();
        let it = Tensor { shape: vec![ind.len()], data: Data::I64(ind) };
        let x = tensor(&shape, dt, seed);
        let it = if runtime { Operand::Input(it) } else { Operand::Const(it) };
        check(Gather { axis: a as i64 }, &[Operand::Input(x), it], 1)?;
    }

    #[test]
    fn gather_elements_matches(shape in shape_strategy(3, 6), ax in any::<usize>(), seed in any::<u64>(), dt in 0u8..4) {
        let a = ax % shape.len();
        let d = shape[a] as i64;
        let mut ishape = shape.clone();
        ishape[a] = 1 + (seed % 5) as usize;
        let n: usize = ishape.iter().product();
        let ind: Vec<i64> = random_f32(n, seed, 0.0, 1.0).iter().map(|&v| ((v * 2.0 * d as f32) as i64).min(2 * d - 1) - d).collect();
        let it = Tensor { shape: ishape, data: Data::I32(ind.iter().map(|&v| v as i32).collect()) };
        check(GatherElements { axis: a as i64 }, &[Operand::Input(tensor(&shape, dt, seed)), Operand::Input(it)], 1)?;
    }
}

#[test]
fn depth_space_round_trip_matches() {
    for mode in [BlockMode::Dcr, BlockMode::Crd] {
        let x = tensor(&[2, 8, 3, 5], 0, 1);
        check(DepthToSpace { blocksize: 2, mode }, &[Operand::Input(x)], 1).unwrap();
        let x = tensor(&[2, 3, 6, 4], 1, 2);
        check(SpaceToDepth { blocksize: 2, mode }, &[Operand::Input(x)], 1).unwrap();
    }
}

#[test]
fn big_copies_are_tiled_and_match() {
    // Large enough for several tiles: transpose, concat and a single long run (slice on axis 0).
    let x = tensor(&[3, 300, 257], 0, 3);
    check(
        Transpose {
            perm: Some(vec![0, 2, 1]),
        },
        &[Operand::Input(x.clone())],
        1,
    )
    .unwrap();
    check(
        Transpose {
            perm: Some(vec![2, 0, 1]),
        },
        &[Operand::Input(x.clone())],
        1,
    )
    .unwrap();
    check(
        Concat { axis: 1 },
        &[Operand::Input(x.clone()), Operand::Input(x.clone())],
        1,
    )
    .unwrap();
    let flat = tensor(&[600_000], 1, 4);
    check(
        Slice {},
        &[
            Operand::Input(flat),
            Operand::Const(i64s(&[1])),
            Operand::Const(i64s(&[599_999])),
        ],
        1,
    )
    .unwrap();
    let emb = tensor(&[1000, 384], 0, 5);
    let ids = Tensor {
        shape: vec![1, 512],
        data: Data::I64((0..512).map(|i| (i * 37) % 1000 - 500).collect()),
    };
    check(
        Gather { axis: 0 },
        &[Operand::Const(emb), Operand::Input(ids)],
        1,
    )
    .unwrap();
}

#[test]
fn gather_out_of_range_runtime_index_writes_zeros() {
    use carve_codegen::jit::compile_jit;
    use carve_codegen::prepare::{fold_constants, prepare};
    use carve_codegen::testing::single_node_graph;
    use std::sync::Arc;
    let x = tensor(&[4, 3], 0, 9);
    let ids = Tensor {
        shape: vec![3],
        data: Data::I64(vec![1, 7, -5]),
    };
    let mut g = single_node_graph(
        Gather { axis: 0 }.into(),
        &[Operand::Input(x.clone()), Operand::Input(ids.clone())],
        1,
    )
    .unwrap();
    let folded = fold_constants(&mut g).unwrap();
    let g = prepare(&g).unwrap();
    let target = carve_codegen::Target::host().unwrap();
    let (exe, report) = compile_jit(Arc::clone(&g), &target, 1, folded).unwrap();
    assert!(report.fallbacks.is_empty());
    let y = exe.run(&[x.clone(), ids]).unwrap();
    let Data::F32(xv) = &x.data else {
        unreachable!()
    };
    let mut want = xv[3..6].to_vec();
    want.extend([0.0; 6]);
    assert_eq!(y[0].data, Data::F32(want));
}

#[test]
fn dropout_and_array_feature_extractor_match() {
    let x = tensor(&[3, 7], 0, 11);
    check(Dropout { seed: None }, &[Operand::Input(x.clone())], 2).unwrap();
    check(Dropout { seed: None }, &[Operand::Input(x.clone())], 1).unwrap();
    for runtime in [false, true] {
        let idx = i64s(&[6, 0, 2, 2]);
        let idx = if runtime {
            Operand::Input(idx)
        } else {
            Operand::Const(idx)
        };
        check(
            ArrayFeatureExtractor {},
            &[Operand::Input(x.clone()), idx],
            1,
        )
        .unwrap();
    }
}

/// Timing of a few model-shaped movement nodes (run with `--ignored --nocapture`, release).
#[test]
#[ignore]
fn bench_movement() {
    use carve_codegen::jit::compile_jit;
    use carve_codegen::prepare::{fold_constants, prepare};
    use carve_codegen::testing::single_node_graph;
    use std::sync::Arc;
    use std::time::Instant;
    let cases: Vec<(&str, Op, Vec<Operand>)> = vec![
        (
            "baseline: copy [1,128,12,32]",
            Concat { axis: 1 }.into(),
            vec![Operand::Input(tensor(&[1, 128, 12, 32], 0, 1))],
        ),
        (
            "minilm transpose [1,128,12,32] 0213",
            Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            }
            .into(),
            vec![Operand::Input(tensor(&[1, 128, 12, 32], 0, 1))],
        ),
        (
            "minilm transpose [1,128,12,32] 0231",
            Transpose {
                perm: Some(vec![0, 2, 3, 1]),
            }
            .into(),
            vec![Operand::Input(tensor(&[1, 128, 12, 32], 0, 1))],
        ),
        (
            "magika transpose [1,256,512,1] 0213",
            Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            }
            .into(),
            vec![Operand::Input(tensor(&[1, 256, 512, 1], 0, 1))],
        ),
        (
            "transpose [1024,1024] 10",
            Transpose {
                perm: Some(vec![1, 0]),
            }
            .into(),
            vec![Operand::Input(tensor(&[1024, 1024], 0, 1))],
        ),
        (
            "concat 4x[1,24,160,160] axis 1",
            Concat { axis: 1 }.into(),
            (0..4)
                .map(|k| Operand::Input(tensor(&[1, 24, 160, 160], 0, k)))
                .collect(),
        ),
        (
            "gather emb [30522,384] x 128",
            Gather { axis: 0 }.into(),
            vec![
                Operand::Const(tensor(&[30522, 384], 0, 1)),
                Operand::Input(Tensor {
                    shape: vec![1, 128],
                    data: Data::I64((0..128).map(|i| i * 211 % 30522).collect()),
                }),
            ],
        ),
    ];
    for (name, op, ops) in cases {
        let mut g = single_node_graph(op, &ops, 1).unwrap();
        let inputs: Vec<Tensor> = ops
            .iter()
            .filter_map(|o| match o {
                Operand::Input(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let folded = fold_constants(&mut g).unwrap();
        let g = prepare(&g).unwrap();
        let target = carve_codegen::Target::host().unwrap();
        let (exe, _) = compile_jit(Arc::clone(&g), &target, 1, folded).unwrap();
        let bytes: usize = inputs.iter().map(|t| t.len() * 4).sum();
        for _ in 0..3 {
            exe.run(&inputs).unwrap();
        }
        // Best of 5 batches (the machine is shared).
        let n = 20;
        let mut dt = f64::MAX;
        for _ in 0..5 {
            let t0 = Instant::now();
            for _ in 0..n {
                exe.run(&inputs).unwrap();
            }
            dt = dt.min(t0.elapsed().as_secs_f64() / n as f64);
        }
        println!(
            "{name}: {:.1} µs ({:.2} GB/s of input)",
            dt * 1e6,
            bytes as f64 / dt / 1e9
        );
    }
}

/// Kernel-only timing: a chain of `k` identical transposes minus a chain of 1.
#[test]
#[ignore]
fn bench_transpose_chain() {
    use carve_codegen::jit::compile_jit;
    use carve_codegen::prepare::{fold_constants, prepare};
    use carve_ir::{Graph, Type};
    use std::sync::Arc;
    use std::time::Instant;
    for (shape, perm) in [
        (vec![1024usize, 1024], vec![1i64, 0]),
        (vec![1, 128, 12, 32], vec![0, 2, 1, 3]),
        (vec![1, 128, 12, 32], vec![0, 2, 3, 1]),
        (vec![96, 160, 160], vec![0, 1, 2]),
    ] {
        let x = tensor(&shape, 0, 1);
        let mut times = vec![];
        for k in [1usize, 9] {
            let mut g = Graph::new("chain");
            let mut v = g.add_input("x", Type::Tensor(x.ty()));
            for i in 0..k {
                // Alternate perm and its inverse so shapes chain.
                let p: Vec<i64> = if i % 2 == 0 {
                    perm.clone()
                } else {
                    let mut inv = vec![0i64; perm.len()];
                    for (a, &b) in perm.iter().enumerate() {
                        inv[b as usize] = a as i64;
                    }
                    inv
                };
                v = g
                    .add_node(
                        format!("t{i}"),
                        Transpose { perm: Some(p) }.into(),
                        vec![Some(v)],
                        vec![format!("y{i}")],
                    )
                    .unwrap()[0];
            }
            g.outputs = vec![v];
            let folded = fold_constants(&mut g).unwrap();
            let g = prepare(&g).unwrap();
            let target = carve_codegen::Target::host().unwrap();
            let (exe, _) = compile_jit(Arc::clone(&g), &target, 1, folded).unwrap();
            let inputs = [x.clone()];
            exe.run(&inputs).unwrap();
            let mut dt = f64::MAX;
            for _ in 0..5 {
                let t0 = Instant::now();
                for _ in 0..10 {
                    exe.run(&inputs).unwrap();
                }
                dt = dt.min(t0.elapsed().as_secs_f64() / 10.0);
            }
            times.push(dt);
        }
        let per = (times[1] - times[0]) / 8.0;
        println!(
            "transpose {shape:?} {perm:?}: {:.1} µs per kernel ({:.2} GB/s read+write)",
            per * 1e6,
            2.0 * x.len() as f64 * 4.0 / per / 1e9
        );
    }
}
