//! Micro-benchmark of single depthwise convolution layers (MobileNetV2's shapes, 3×3 with a fused
//! relu6, one thread) on each ISA variant of this machine side by side: AVX-512 rows, AVX2 rows and
//! Cranelift's 128-bit kernel (forced through the target's features).
//!
//! `cargo bench -p carve-codegen --bench depthwise` (add a filter such as `s2` to run a subset).

use std::sync::Arc;
use std::time::Duration;

use carve_codegen::Target;
use carve_codegen::jit::compile_jit;
use carve_codegen::prepare::{fold_constants, prepare};
use carve_codegen::testing::{Operand, host_without, random_tensor, single_node_graph};
use carve_ir::Op;
use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::conv::Conv;
use carve_ir::ops::fused::{EpiStep, Epilogue, FusedConv};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The ISA variants this machine runs: (name, target).
fn variants() -> Vec<(&'static str, Target)> {
    let host = Target::host().expect("host target");
    let without = |d: &[&str]| host_without(d).expect("narrowed host target");
    let mut v = Vec::new();
    if host.has("avx512f") {
        v.push(("avx512", host.clone()));
    }
    if host.has("avx2") && host.has("fma") {
        v.push(("avx2", without(&["avx512"])));
    }
    v.push(("cranelift_128bit", without(&["avx512", "avx2"])));
    v
}

fn depthwise(c: &mut Criterion) {
    // (name, C, H=W, stride): MobileNetV2's depthwise layers at 224×224 input.
    for (name, ch, hw, s) in [
        ("c32_112_s1", 32, 112, 1),
        ("c96_112_s2", 96, 112, 2),
        ("c144_56_s1", 144, 56, 1),
        ("c192_28_s1", 192, 28, 1),
        ("c576_14_s1", 576, 14, 1),
        ("c960_7_s1", 960, 7, 1),
    ] {
        let x = random_tensor(&[1, ch, hw, hw], 1, -1.0, 1.0);
        let w = random_tensor(&[ch, 1, 3, 3], 2, -1.0, 1.0);
        let b = random_tensor(&[ch], 3, -1.0, 1.0);
        let conv = Conv {
            group: ch as i64,
            strides: vec![s, s],
            pads: vec![1; 4],
            ..Conv::default()
        };
        let relu6 = EpiStep::Act(Activation {
            kind: ActKind::Clip,
            alpha: 0.0,
            beta: 6.0,
        });
        let op: Op = FusedConv::new(&conv, Epilogue(vec![EpiStep::Bias, relu6])).into();
        let operands = [
            Operand::Input(x.clone()),
            Operand::Const(w),
            Operand::Const(b),
        ];
        let o = (hw + 2 - 3) / s as usize + 1;
        let flops = 2.0 * (ch * o * o * 9) as f64;
        let mut line = format!("dw_{name}:");
        for (isa, target) in variants() {
            let mut g = single_node_graph(op.clone(), &operands, 1).expect("graph");
            let folded = fold_constants(&mut g).expect("fold");
            let g = prepare(&g).expect("prepare");
            let (exe, report) = compile_jit(Arc::clone(&g), &target, 1, folded).expect("compile");
            assert!(report.fallbacks.is_empty(), "benchmarked node fell back");
            let inputs = vec![x.clone()];
            let mut group = c.benchmark_group("depthwise");
            group.throughput(Throughput::Elements(flops as u64));
            group.bench_function(format!("{name}_{isa}"), |b| {
                b.iter(|| exe.run(&inputs).expect("run"))
            });
            group.finish();
            let mut times: Vec<f64> = (0..41)
                .map(|_| {
                    let t = std::time::Instant::now();
                    exe.run(&inputs).expect("run");
                    t.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            line += &format!(
                "  {isa} median {:.1} µs ({:.1} GFLOP/s)",
                times[20] * 1e6,
                flops / times[20] / 1e9
            );
        }
        println!("{line}");
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(700))
}

criterion_group! {
    name = benches;
    config = config();
    targets = depthwise
}
criterion_main!(benches);
