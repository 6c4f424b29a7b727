//! Micro-benchmarks of the native GEMM and convolution kernels (single thread), reporting GFLOP/s.
//!
//! `cargo bench -p carve-codegen --bench kernels` (add a filter such as `gemm` to run a subset;
//! `isa` runs the f32 GEMM 1024³ on each ISA variant of this machine side by side: AVX-512 tiles,
//! AVX2 tiles, Cranelift's 128-bit kernels, then the int8 `MatMulInteger` 1024³ on each int8 tile
//! variant: AVX-512 VNNI, AVX-VNNI, AVX2).

use std::sync::Arc;
use std::time::Duration;

use carve_codegen::Target;
use carve_codegen::jit::compile_jit;
use carve_codegen::prepare::{fold_constants, prepare};
use carve_codegen::testing::{Operand, random_tensor, single_node_graph};
use carve_ir::Op;
use carve_ir::ops::conv::Conv;
use carve_ir::ops::linalg::MatMul;
use carve_ir::ops::quant::MatMulInteger;
use carve_runtime::exec::Executable;
use carve_runtime::{Data, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Compiles a one-node graph for `target` (a subset of the host) with one thread.
fn build(target: &Target, op: Op, operands: &[Operand]) -> (Executable, Vec<Tensor>) {
    let mut g = single_node_graph(op, operands, 1).expect("graph");
    let folded = fold_constants(&mut g).expect("fold");
    let g = prepare(&g).expect("prepare");
    let (exe, report) = compile_jit(Arc::clone(&g), target, 1, folded).expect("compile");
    assert!(report.fallbacks.is_empty(), "benchmarked node fell back");
    let inputs = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Input(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    (exe, inputs)
}

fn bench_one(c: &mut Criterion, name: &str, flops: f64, op: Op, operands: &[Operand]) {
    let target = Target::host().expect("host target");
    bench_on(c, &target, name, flops, op, operands);
}

fn bench_on(
    c: &mut Criterion,
    target: &Target,
    name: &str,
    flops: f64,
    op: Op,
    operands: &[Operand],
) {
    let (exe, inputs) = build(target, op, operands);
    let mut group = c.benchmark_group("kernels");
    group.throughput(Throughput::Elements(flops as u64));
    group.bench_function(name, |b| b.iter(|| exe.run(&inputs).expect("run")));
    group.finish();
    // A direct GFLOP/s figure next to criterion's own report: the best of a few timed runs (the
    // machine is shared, so the minimum is the least disturbed), and the median.
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let t = std::time::Instant::now();
            exe.run(&inputs).expect("run");
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "{name}: best {:.3} ms = {:.1} GFLOP/s, median {:.3} ms = {:.1} GFLOP/s = {:.1} GMAC/s",
        times[0] * 1e3,
        flops / times[0] / 1e9,
        times[7] * 1e3,
        flops / times[7] / 1e9,
        flops / 2.0 / times[7] / 1e9
    );
}

fn gemm(c: &mut Criterion) {
    for (m, k, n, b_const) in [
        (256, 256, 256, true),
        (1024, 1024, 1024, true),
        (128, 384, 1536, true),
        (128, 32, 128, false),
        (256, 256, 256, false),
    ] {
        let a = random_tensor(&[m, k], 1, -1.0, 1.0);
        let b = random_tensor(&[k, n], 2, -1.0, 1.0);
        let b = if b_const {
            Operand::Const(b)
        } else {
            Operand::Input(b)
        };
        let name = format!(
            "matmul_{m}x{k}x{n}_{}",
            if b_const { "constB" } else { "dynB" }
        );
        bench_one(
            c,
            &name,
            2.0 * (m * k * n) as f64,
            MatMul::default().into(),
            &[Operand::Input(a), b],
        );
    }
}

/// The host's features less those starting with any of `drop`.
fn host_without(drop: &[&str]) -> Target {
    carve_codegen::testing::host_without(drop).expect("narrowed host target")
}

/// f32 GEMM 1024×1024×1024 (constant B) on every ISA variant this machine has, in one run.
fn isa(c: &mut Criterion) {
    let (m, k, n) = (1024, 1024, 1024);
    let host = Target::host().expect("host target");
    let mut variants = Vec::new();
    if host.has("avx512f") {
        variants.push(("avx512_tiles", host.clone()));
    }
    if host.has("avx2") && host.has("fma") {
        variants.push(("avx2_tiles", host_without(&["avx512"])));
    }
    variants.push(("cranelift_128bit", host_without(&["avx512", "avx2"])));
    for (name, target) in variants {
        let a = random_tensor(&[m, k], 1, -1.0, 1.0);
        let b = random_tensor(&[k, n], 2, -1.0, 1.0);
        bench_on(
            c,
            &target,
            &format!("isa_matmul_{m}x{k}x{n}_{name}"),
            2.0 * (m * k * n) as f64,
            MatMul::default().into(),
            &[Operand::Input(a), Operand::Const(b)],
        );
    }
}

/// `shape` of pseudo-random bytes (u8, or i8 when `signed`).
fn bytes(shape: &[usize], seed: u64, signed: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let f = carve_codegen::testing::random_f32(n, seed, 0.0, 255.99);
    let data = if signed {
        Data::I8(f.iter().map(|&x| (x - 128.0) as i8).collect())
    } else {
        Data::U8(f.iter().map(|&x| x as u8).collect())
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

/// int8 `MatMulInteger` 1024×1024×1024 (u8 A with a zero point, constant i8 B) on every int8 tile
/// ISA variant this machine has (throughput in integer ops, 2 per multiply-add, like the f32 ones).
fn isa_int8(c: &mut Criterion) {
    let (m, k, n) = (1024, 1024, 1024);
    let host = Target::host().expect("host target");
    let mut variants = Vec::new();
    if host.has("avx512f") && host.has("avx512vnni") {
        variants.push(("avx512vnni_tiles", host.clone()));
    }
    if host.has("avx_vnni") {
        variants.push(("avxvnni_tiles", host_without(&["avx512"])));
    }
    if host.has("avx2") {
        variants.push(("avx2_tiles", host_without(&["avx512", "avx_vnni"])));
    }
    // i8 A as well on the widest variant (the VNNI tiles bias it by 128 after each broadcast).
    let widest = variants
        .first()
        .map(|(name, t)| (format!("i8a_{name}"), t.clone(), true));
    let all = variants
        .into_iter()
        .map(|(name, t)| (name.to_string(), t, false))
        .chain(widest);
    for (name, target, a_signed) in all {
        bench_on(
            c,
            &target,
            &format!("isa_matmul_integer_{m}x{k}x{n}_{name}"),
            2.0 * (m * k * n) as f64,
            MatMulInteger {}.into(),
            &[
                Operand::Input(bytes(&[m, k], 1, a_signed)),
                Operand::Const(bytes(&[k, n], 2, true)),
                Operand::Input(bytes(&[], 3, a_signed)),
            ],
        );
    }
}

fn conv(c: &mut Criterion) {
    // (name, C, H, W, M, kernel, stride, pad, group)
    for (name, ch, h, w, m, k, s, p, grp) in [
        ("resnet_3x3_64_56", 64, 56, 56, 64, 3, 1, 1, 1),
        ("pointwise_96_160", 96, 160, 160, 24, 1, 1, 0, 1),
        ("pointwise_192_40", 192, 40, 40, 192, 1, 1, 0, 1),
        ("ppocr_3x3_96_24_160", 96, 160, 160, 24, 3, 1, 1, 1),
        ("ppocr_stem_3x3s2_640", 3, 640, 640, 16, 3, 2, 1, 1),
    ] {
        let x = random_tensor(&[1, ch, h, w], 1, -1.0, 1.0);
        let wt = random_tensor(&[m, ch / grp, k, k], 2, -1.0, 1.0);
        let op = Conv {
            group: grp as i64,
            strides: vec![s, s],
            pads: vec![p, p, p, p],
            ..Conv::default()
        };
        let oh = (h + 2 * p as usize - k) / s as usize + 1;
        let ow = (w + 2 * p as usize - k) / s as usize + 1;
        let flops = 2.0 * (m * oh * ow * (ch / grp) * k * k) as f64;
        bench_one(
            c,
            &format!("conv_{name}"),
            flops,
            op.into(),
            &[Operand::Input(x), Operand::Const(wt)],
        );
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = isa, isa_int8, gemm, conv
}
criterion_main!(benches);
