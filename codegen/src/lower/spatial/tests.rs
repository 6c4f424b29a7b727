//! Differential tests of the spatial kernels against the interpreter: random shapes and window
//! attributes, native (1 and 2 threads, bit-identical) vs reference within rtol 1e-5.

use carve_ir::Op;
use carve_ir::ops::conv::{AutoPad, Conv, ConvTranspose, GlobalPool, Pool, PoolKind};
use carve_ir::ops::movement::{CoordMode, NearestMode, Resize, ResizeMode};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

use crate::testing::{Operand, check_node, random_tensor};

const RTOL: f64 = 1e-5;
const ATOL: f64 = 1e-5;

/// Spatial window attributes of one random case along one axis.
#[derive(Debug, Clone, Copy)]
struct Ax {
    len: usize,
    k: usize,
    s: usize,
    d: usize,
    pb: usize,
    pe: usize,
}

impl Ax {
    fn extent(&self) -> usize {
        (self.k - 1) * self.d + 1
    }
    fn fits(&self) -> bool {
        self.len + self.pb + self.pe >= self.extent()
    }
}

fn ax(max_len: usize) -> impl Strategy<Value = Ax> {
    (1usize..=5, 1usize..=3, 1usize..=2, 1..=max_len).prop_flat_map(|(k, s, d, len)| {
        (0..k, 0..k).prop_map(move |(pb, pe)| Ax {
            len,
            k,
            s,
            d,
            pb,
            pe,
        })
    })
}

fn lists(axes: &[Ax]) -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) {
    let k = axes.iter().map(|a| a.k as i64).collect();
    let s = axes.iter().map(|a| a.s as i64).collect();
    let d = axes.iter().map(|a| a.d as i64).collect();
    let mut p: Vec<i64> = axes.iter().map(|a| a.pb as i64).collect();
    p.extend(axes.iter().map(|a| a.pe as i64));
    (k, s, d, p)
}

fn auto_pad(i: u8) -> AutoPad {
    match i {
        0 => AutoPad::SameUpper,
        1 => AutoPad::SameLower,
        2 => AutoPad::Valid,
        _ => AutoPad::NotSet,
    }
}

fn check(op: Op, operands: &[Operand]) -> Result<(), TestCaseError> {
    check_node(op, operands, 1, RTOL, ATOL)
        .map(|_| ())
        .map_err(TestCaseError::fail)
}

#[allow(clippy::too_many_arguments)]
fn depthwise_case(
    n: usize,
    c: usize,
    mult: usize,
    axes: &[Ax],
    bias: bool,
    pad_mode: u8,
    seed: u64,
) -> Result<(), TestCaseError> {
    let ap = auto_pad(pad_mode);
    prop_assume!(ap != AutoPad::NotSet || axes.iter().all(Ax::fits));
    prop_assume!(ap != AutoPad::Valid || axes.iter().all(|a| a.len >= a.extent()));
    let (k, s, d, p) = lists(axes);
    let mut xs = vec![n, c];
    xs.extend(axes.iter().map(|a| a.len));
    let mut wsh = vec![c * mult, 1];
    wsh.extend(axes.iter().map(|a| a.k));
    let op = Conv {
        group: c as i64,
        kernel_shape: if seed.is_multiple_of(2) {
            k
        } else {
            Vec::new()
        },
        strides: s,
        dilations: d,
        pads: if ap == AutoPad::NotSet { p } else { Vec::new() },
        auto_pad: ap,
    };
    let mut operands = vec![
        Operand::Input(random_tensor(&xs, seed, -1.0, 1.0)),
        Operand::Const(random_tensor(&wsh, seed + 1, -1.0, 1.0)),
    ];
    if bias {
        operands.push(Operand::Const(random_tensor(
            &[c * mult],
            seed + 2,
            -1.0,
            1.0,
        )));
    }
    check(op.into(), &operands)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn depthwise_conv_2d_matches_the_interpreter(
        n in 1usize..=2, c in 2usize..=4, mult in 1usize..=2,
        h in ax(12), w in ax(23), bias in any::<bool>(), pad_mode in 0u8..6, seed in 0u64..1000,
    ) {
        depthwise_case(n, c, mult, &[h, w], bias, pad_mode, seed)?;
    }

    #[test]
    fn depthwise_conv_1d_matches_the_interpreter(
        c in 2usize..=5, w in ax(30), bias in any::<bool>(), seed in 0u64..1000,
    ) {
        depthwise_case(1, c, 1, &[w], bias, 5, seed)?;
    }

    #[test]
    fn pool_matches_the_interpreter(
        n in 1usize..=2, c in 1usize..=3, h in ax(12), w in ax(23), kind in 0u8..4,
        ceil_mode in any::<bool>(), include_pad in any::<bool>(), pad_mode in 0u8..6, seed in 0u64..1000,
    ) {
        let ap = auto_pad(pad_mode);
        let axes = [h, w];
        prop_assume!(ap != AutoPad::NotSet || axes.iter().all(Ax::fits));
        prop_assume!(ap != AutoPad::Valid || axes.iter().all(|a| a.len >= a.extent()));
        let (k, s, d, p) = lists(&axes);
        let (kind, lp) = match kind {
            0 => (PoolKind::Max, 2),
            1 => (PoolKind::Avg, 2),
            2 => (PoolKind::Lp, 1),
            _ => (PoolKind::Lp, 2),
        };
        let op = Pool {
            kind,
            kernel_shape: k,
            strides: s,
            dilations: d,
            pads: if ap == AutoPad::NotSet { p } else { Vec::new() },
            auto_pad: ap,
            ceil_mode: ceil_mode && ap == AutoPad::NotSet,
            count_include_pad: include_pad,
            p: lp,
            ..Pool::default()
        };
        // A window entirely in the padding averages nothing (NaN), which the 1-vs-2-thread equality
        // check cannot compare; skip those geometries.
        let geo = super::forward_axes(
            &[h.len, w.len],
            &[h.k, w.k],
            &super::attrs(&op.strides, &op.dilations, &op.pads, op.auto_pad, op.ceil_mode),
        );
        prop_assume!(geo.is_ok_and(|g| g
            .iter()
            .all(|a| (0..a.output).all(|o| !a.valid_taps(o).is_empty()))));
        let x = random_tensor(&[n, c, h.len, w.len], seed, -1.0, 1.0);
        check(op.into(), &[Operand::Input(x)])?;
    }

    #[test]
    fn global_pool_matches_the_interpreter(
        n in 1usize..=2, c in 1usize..=5, h in 1usize..=9, w in 1usize..=40, kind in 0u8..4,
        seed in 0u64..1000,
    ) {
        let (kind, p) = match kind {
            0 => (PoolKind::Max, 2),
            1 => (PoolKind::Avg, 2),
            2 => (PoolKind::Lp, 1),
            _ => (PoolKind::Lp, 2),
        };
        let x = random_tensor(&[n, c, h, w], seed, -1.0, 1.0);
        check(GlobalPool { kind, p }.into(), &[Operand::Input(x)])?;
    }
}

/// Max pooling skips NaN inputs; a window of NaNs gives the lowest finite value, -inf stays -inf.
#[test]
fn max_pool_ignores_nan_like_the_interpreter() {
    let nan = f32::NAN;
    let v = vec![
        nan,
        1.0,
        nan,
        nan,
        f32::NEG_INFINITY,
        nan,
        3.0,
        nan,
        2.0,
        nan,
        nan,
        nan, //
        nan,
        nan,
        -5.0,
        nan,
        nan,
        nan,
        4.0,
        nan,
        nan,
        nan,
        nan,
        nan,
    ];
    let x = Tensor {
        shape: vec![1, 1, 2, 12],
        data: Data::F32(v),
    };
    for s in [1, 2] {
        let op = Pool {
            kind: PoolKind::Max,
            kernel_shape: vec![1, 2],
            strides: vec![1, s],
            ..Pool::default()
        };
        check_node(op.into(), &[Operand::Input(x.clone())], 1, 0.0, 0.0).unwrap();
        let g = GlobalPool {
            kind: PoolKind::Max,
            p: 2,
        };
        check_node(g.into(), &[Operand::Input(x.clone())], 1, 0.0, 0.0).unwrap();
    }
}

/// Larger planes exercise the unrolled vector loops and row-block tiling.
#[test]
fn depthwise_3x3_and_5x5_on_wide_planes() {
    for (k, s) in [(3usize, 1usize), (3, 2), (5, 1), (5, 2)] {
        let x = random_tensor(&[1, 3, 21, 67], 7, -1.0, 1.0);
        let w = random_tensor(&[3, 1, k, k], 8, -1.0, 1.0);
        let b = random_tensor(&[3], 9, -1.0, 1.0);
        let p = (k / 2) as i64;
        let op = Conv {
            group: 3,
            strides: vec![s as i64; 2],
            pads: vec![p; 4],
            ..Conv::default()
        };
        check_node(
            op.into(),
            &[Operand::Input(x), Operand::Const(w), Operand::Const(b)],
            1,
            RTOL,
            ATOL,
        )
        .unwrap();
    }
}

fn resize_case(
    mode: ResizeMode,
    coord: CoordMode,
    nearest: NearestMode,
    x: &[usize],
    how: Result<[f32; 2], [usize; 2]>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let op = Resize {
        mode,
        coordinate_transformation_mode: coord,
        nearest_mode: nearest,
        ..Resize::default()
    };
    let xt = random_tensor(x, seed, -1.0, 1.0);
    let operands = match how {
        Ok([sh, sw]) => vec![
            Operand::Input(xt),
            Operand::Absent,
            Operand::Const(Tensor {
                shape: vec![4],
                data: Data::F32(vec![1.0, 1.0, sh, sw]),
            }),
        ],
        Err([oh, ow]) => vec![
            Operand::Input(xt),
            Operand::Absent,
            Operand::Absent,
            Operand::Const(Tensor {
                shape: vec![4],
                data: Data::I64(vec![x[0] as i64, x[1] as i64, oh as i64, ow as i64]),
            }),
        ],
    };
    check(op.into(), &operands)
}

fn coord_mode(i: u8) -> CoordMode {
    match i {
        0 => CoordMode::HalfPixel,
        1 => CoordMode::HalfPixelSymmetric,
        2 => CoordMode::PytorchHalfPixel,
        3 => CoordMode::AlignCorners,
        4 => CoordMode::TfHalfPixelForNn,
        _ => CoordMode::Asymmetric,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn resize_matches_the_interpreter(
        n in 1usize..=2, c in 1usize..=3, h in 1usize..=9, w in 1usize..=13,
        mode in 0u8..3, coord in 0u8..6, nearest in 0u8..4,
        by_scale in any::<bool>(), sh in 1usize..=12, sw in 1usize..=12, oh in 1usize..=20, ow in 1usize..=20,
        seed in 0u64..1000,
    ) {
        let mode = [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic][mode as usize];
        let nearest = [
            NearestMode::RoundPreferFloor,
            NearestMode::RoundPreferCeil,
            NearestMode::Floor,
            NearestMode::Ceil,
        ][nearest as usize];
        let how = if by_scale {
            Ok([sh as f32 / 4.0, sw as f32 / 4.0])
        } else {
            Err([oh, ow])
        };
        let coord = coord_mode(coord);
        if by_scale {
            // Output dims are trunc(scale · in); skip empty results.
            prop_assume!((sh * h) / 4 > 0 && (sw * w) / 4 > 0);
        }
        resize_case(mode, coord, nearest, &[n, c, h, w], how, seed)?;
    }

    #[test]
    fn nearest_integer_upsampling_matches_the_interpreter(
        c in 1usize..=4, h in 1usize..=7, w in 1usize..=19, fh in 1usize..=4, fw in 1usize..=9,
        seed in 0u64..1000,
    ) {
        resize_case(
            ResizeMode::Nearest,
            CoordMode::Asymmetric,
            NearestMode::Floor,
            &[1, c, h, w],
            Ok([fh as f32, fw as f32]),
            seed,
        )?;
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_transpose_case(
    n: usize,
    cg: usize,
    mg: usize,
    group: usize,
    x: &[usize],
    k: &[usize],
    s: &[usize],
    d: &[usize],
    pads: Vec<i64>,
    opad: Vec<i64>,
    bias: bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let c = cg * group;
    let mut xs = vec![n, c];
    xs.extend(x);
    let mut ws = vec![c, mg];
    ws.extend(k);
    let op = ConvTranspose {
        group: group as i64,
        strides: s.iter().map(|&v| v as i64).collect(),
        dilations: d.iter().map(|&v| v as i64).collect(),
        pads,
        output_padding: opad,
        ..ConvTranspose::default()
    };
    let mut operands = vec![
        Operand::Input(random_tensor(&xs, seed, -1.0, 1.0)),
        Operand::Const(random_tensor(&ws, seed + 1, -1.0, 1.0)),
    ];
    if bias {
        operands.push(Operand::Const(random_tensor(
            &[mg * group],
            seed + 2,
            -1.0,
            1.0,
        )));
    }
    check(op.into(), &operands)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv_transpose_matches_the_interpreter(
        n in 1usize..=2, cg in 1usize..=3, mg in 1usize..=3, group in 1usize..=2,
        h in 1usize..=6, w in 1usize..=11, kh in 1usize..=4, kw in 1usize..=4,
        sh in 1usize..=3, sw in 1usize..=3, dh in 1usize..=2, dw in 1usize..=2,
        pads in proptest::collection::vec(0i64..3, 4), op_h in 0i64..3, op_w in 0i64..3,
        bias in any::<bool>(), seed in 0u64..1000,
    ) {
        // ONNX: output_padding < max(stride, dilation); pads within the kernel extent.
        let opad = vec![op_h % sh.max(dh) as i64, op_w % sw.max(dw) as i64];
        let pads: Vec<i64> = vec![
            pads[0].min(((kh - 1) * dh) as i64),
            pads[1].min(((kw - 1) * dw) as i64),
            pads[2].min(((kh - 1) * dh) as i64),
            pads[3].min(((kw - 1) * dw) as i64),
        ];
        let oh = (sh * (h - 1) + ((kh - 1) * dh + 1)) as i64 + opad[0] - pads[0] - pads[2];
        let ow = (sw * (w - 1) + ((kw - 1) * dw + 1)) as i64 + opad[1] - pads[1] - pads[3];
        prop_assume!(oh > 0 && ow > 0);
        conv_transpose_case(
            n, cg, mg, group, &[h, w], &[kh, kw], &[sh, sw], &[dh, dw], pads, opad, bias, seed,
        )?;
    }

    #[test]
    fn conv_transpose_upsampling_matches_the_interpreter(
        cg in 1usize..=5, mg in 1usize..=4, group in 1usize..=2, h in 1usize..=6, w in 1usize..=21,
        kh in 1usize..=3, kw in 1usize..=2, bias in any::<bool>(), seed in 0u64..1000,
    ) {
        conv_transpose_case(
            1, cg, mg, group, &[h, w], &[kh, kw], &[kh, kw], &[1, 1], vec![0; 4], vec![0, 0], bias,
            seed,
        )?;
    }

    #[test]
    fn conv_transpose_1d_matches_the_interpreter(
        cg in 1usize..=3, mg in 1usize..=3, w in 1usize..=17, k in 1usize..=4, s in 1usize..=3,
        bias in any::<bool>(), seed in 0u64..1000,
    ) {
        conv_transpose_case(1, cg, mg, 1, &[w], &[k], &[s], &[1], vec![0, 0], vec![0], bias, seed)?;
    }
}

/// Per-op timings on ppocrv4_det-like shapes (native 1 thread vs the interpreter). Run with
/// `cargo test --release -p carve-codegen spatial_timings -- --ignored --nocapture`.
#[test]
#[ignore]
fn spatial_timings() {
    use std::sync::Arc;
    use std::time::Instant;

    use crate::jit::compile_jit;
    use crate::prepare::{fold_constants, prepare};
    use crate::target::Target;
    use crate::testing::single_node_graph;

    // Mean run time of `op` natively (1 thread), and the interpreter's time for one run.
    let run = |op: Op, operands: &[Operand]| {
        let g = single_node_graph(op, operands, 1).unwrap();
        let inputs: Vec<Tensor> = operands
            .iter()
            .filter_map(|o| match o {
                Operand::Input(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        let mut pg = g.clone();
        let folded = fold_constants(&mut pg).unwrap();
        let pg = prepare(&pg).unwrap();
        let target = Target::host().unwrap();
        let (exe, report) = compile_jit(Arc::clone(&pg), &target, 1, folded).unwrap();
        assert!(report.fallbacks.is_empty(), "{report}");
        let out = exe.run(&inputs).unwrap();
        let reps = 20;
        let t0 = Instant::now();
        for _ in 0..reps {
            exe.run(&inputs).unwrap();
        }
        let native = t0.elapsed().as_secs_f64() * 1e3 / f64::from(reps);
        (native, g, inputs, out[0].shape.clone())
    };
    // `Executable::run` converts inputs and outputs to and from bytes; estimate that cost with a
    // 1×1 average pool (a copy) over the input and output shapes.
    let io_cost = |shape: &[usize]| {
        let op = Pool {
            kind: PoolKind::Avg,
            kernel_shape: vec![1, 1],
            ..Pool::default()
        };
        run(
            op.into(),
            &[Operand::Input(random_tensor(shape, 3, -1.0, 1.0))],
        )
        .0 / 2.0
    };
    let time = |name: &str, op: Op, operands: Vec<Operand>| {
        let (native, g, inputs, out_shape) = run(op, &operands);
        let io = io_cost(&inputs[0].shape) + io_cost(&out_shape);
        let vals: Vec<_> = inputs
            .iter()
            .cloned()
            .map(carve_runtime::interp::Value::Tensor)
            .collect();
        let t0 = Instant::now();
        carve_runtime::interp::run(&g, vals).unwrap();
        let interp = t0.elapsed().as_secs_f64() * 1e3;
        println!(
            "{name:48} native {native:7.3} ms (io ≈ {io:6.3}, kernel ≈ {:7.3})  interpreter {interp:7.3} ms",
            (native - io).max(0.0)
        );
    };
    let x = |s: &[usize]| Operand::Input(random_tensor(s, 1, -1.0, 1.0));
    let k = |s: &[usize]| Operand::Const(random_tensor(s, 2, -1.0, 1.0));
    for (c, hw, kk, s) in [
        (16, 160, 3, 1),
        (32, 160, 3, 2),
        (96, 40, 5, 1),
        (192, 20, 5, 1),
    ] {
        let p = (kk / 2) as i64;
        let op = Conv {
            group: c as i64,
            strides: vec![s; 2],
            pads: vec![p; 4],
            ..Conv::default()
        };
        time(
            &format!("depthwise {kk}x{kk} s{s} [1,{c},{hw},{hw}]"),
            op.into(),
            vec![x(&[1, c, hw, hw]), k(&[c, 1, kk, kk]), k(&[c])],
        );
    }
    let mp = Pool {
        kind: PoolKind::Max,
        kernel_shape: vec![3, 3],
        strides: vec![2, 2],
        pads: vec![1; 4],
        ..Pool::default()
    };
    time(
        "max_pool 3x3 s2 [1,16,160,160]",
        mp.into(),
        vec![x(&[1, 16, 160, 160])],
    );
    let gp = GlobalPool {
        kind: PoolKind::Avg,
        p: 2,
    };
    time(
        "global avg [1,96,160,160]",
        gp.into(),
        vec![x(&[1, 96, 160, 160])],
    );
    for (c, hw, f) in [(96, 40, 2.0f32), (24, 20, 8.0)] {
        let op = Resize {
            coordinate_transformation_mode: CoordMode::Asymmetric,
            nearest_mode: NearestMode::Floor,
            ..Resize::default()
        };
        let sc = Operand::Const(Tensor {
            shape: vec![4],
            data: Data::F32(vec![1.0, 1.0, f, f]),
        });
        time(
            &format!("resize nearest x{f} [1,{c},{hw},{hw}]"),
            op.into(),
            vec![x(&[1, c, hw, hw]), Operand::Absent, sc],
        );
    }
    let lin = Resize {
        mode: ResizeMode::Linear,
        ..Resize::default()
    };
    let sc = Operand::Const(Tensor {
        shape: vec![4],
        data: Data::F32(vec![1.0, 1.0, 2.0, 2.0]),
    });
    time(
        "resize linear x2 [1,24,80,80]",
        lin.into(),
        vec![x(&[1, 24, 80, 80]), Operand::Absent, sc],
    );
    for (m, hw) in [(24, 160), (1, 320)] {
        let op = ConvTranspose {
            strides: vec![2, 2],
            ..ConvTranspose::default()
        };
        time(
            &format!("conv_transpose 2x2 s2 [1,24,{hw},{hw}] -> M={m}"),
            op.into(),
            vec![x(&[1, 24, hw, hw]), k(&[24, m, 2, 2]), k(&[m])],
        );
    }
    let op = ConvTranspose {
        strides: vec![2, 2],
        pads: vec![1; 4],
        ..ConvTranspose::default()
    };
    time(
        "conv_transpose 3x3 s2 p1 (scatter) [1,24,80,80]",
        op.into(),
        vec![x(&[1, 24, 80, 80]), k(&[24, 24, 3, 3]), k(&[24])],
    );
}
