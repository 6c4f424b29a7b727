//! `matmul` over quantized types (`carve_ir::ops::quant::typing`: scale and zero point in the
//! operands' types, what QLinearMatMul / QGemm with constant parameters import as) and the
//! requantizing `quantize_linear` after it, natively on every ISA variant this machine runs (the int8
//! machine-code tiles and Cranelift's kernel), against the interpreter with exact equality and with
//! no interpreter fallback: u8 and i8 activations with zero and non-zero zero points, per-tensor and
//! per-column weight quantization, row/column/k tails, and output scales that saturate.

use carve_codegen::Target;
use carve_codegen::testing::{host_without, run_both_on};
use carve_ir::text;
use carve_runtime::{Data, Tensor};

/// The targets: the host, and where it has them its AVX2-only and Cranelift-only (no AVX2) forms.
fn targets() -> Vec<(&'static str, Target)> {
    let host = Target::host().expect("host target");
    let mut v = vec![("host", host.clone())];
    if cfg!(target_arch = "x86_64") && host.has("avx2") {
        let without = |drop: &[&str]| host_without(drop).expect("narrowed host target");
        v.push(("avx2", without(&["avx512", "avx_vnni"])));
        v.push(("cranelift", without(&["avx512", "avx_vnni", "avx2"])));
    }
    v
}

/// `n` pseudo-random bytes.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn list<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

fn floats(v: &[f32]) -> String {
    list(&v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>())
}

/// One typed product: `a` (`signed` i8 or u8) `[rows, k]` with scale `sa` and zero point `za`, a
/// constant i8 `b` `[k, n]` per tensor (`per_column` false) or per column, the i32 accumulator and
/// its requantization to u8 with scale `sy` and zero point 100. Both are graph outputs.
struct Case {
    rows: usize,
    k: usize,
    n: usize,
    signed: bool,
    za: i64,
    per_column: bool,
    sy: f32,
    seed: u64,
}

impl Case {
    fn graph(&self) -> String {
        let Case {
            rows, k, n, seed, ..
        } = *self;
        let adt = if self.signed { "i8" } else { "u8" };
        let sa = 0.02f32;
        let b: Vec<i8> = bytes(k * n, seed)
            .iter()
            .map(|&x| (x as i8).clamp(-120, 120))
            .collect();
        let (sb, zb): (Vec<f32>, Vec<i64>) = if self.per_column {
            (
                (0..n).map(|j| 0.004 + 0.001 * (j % 7) as f32).collect(),
                (0..n).map(|j| (j % 5) as i64 - 2).collect(),
            )
        } else {
            (vec![0.006], vec![3])
        };
        let sacc: Vec<f32> = sb.iter().map(|&s| sa * s).collect();
        let (qb, qacc) = if self.per_column {
            (
                format!("q(axis=1, scale=[{}], zp=[{}])", floats(&sb), list(&zb)),
                format!(
                    "q(axis=1, scale=[{}], zp=[{}])",
                    floats(&sacc),
                    list(&vec![0; n])
                ),
            )
        } else {
            (
                format!("q(scale=[{}], zp=[{}])", floats(&sb), list(&zb)),
                format!("q(scale=[{}], zp=[0])", floats(&sacc)),
            )
        };
        let (sy, za) = (self.sy, self.za);
        format!(
            "graph @typed(%a: {adt}[{rows},{k}] q(scale=[{sa:?}], zp=[{za}])) -> (i32[{rows},{n}] {qacc}, u8[{rows},{n}] q(scale=[{sy:?}], zp=[100])) {{
  %b = const i8[{k},{n}] {qb} [{b}]
  %sy = const f32[] [{sy:?}]
  %zy = const u8[] [100]
  %acc = matmul(%a, %b) : i32[{rows},{n}] {qacc}
  %y = quantize_linear(%acc, %sy, %zy) : u8[{rows},{n}] q(scale=[{sy:?}], zp=[100])
  return %acc, %y
}}",
            b = list(&b),
        )
    }

    fn input(&self) -> Tensor {
        let v = bytes(self.rows * self.k, self.seed + 1);
        let data = if self.signed {
            Data::I8(v.into_iter().map(|x| x as i8).collect())
        } else {
            Data::U8(v)
        };
        Tensor {
            shape: vec![self.rows, self.k],
            data,
        }
    }
}

#[test]
fn typed_matmul_and_requantize_run_natively_and_exactly_on_every_variant() {
    let mut cases = Vec::new();
    for (i, &(rows, k, n)) in [(1, 5, 3), (7, 33, 17), (19, 64, 50), (40, 130, 97)]
        .iter()
        .enumerate()
    {
        for signed in [false, true] {
            for per_column in [false, true] {
                let za = match (signed, i % 2) {
                    (false, 0) => 0,
                    (false, _) => 131,
                    (true, 0) => 0,
                    (true, _) => -7,
                };
                // A small output scale saturates most results; a large one keeps them in range.
                for sy in [0.0005f32, 0.3] {
                    cases.push(Case {
                        rows,
                        k,
                        n,
                        signed,
                        za,
                        per_column,
                        sy,
                        seed: cases.len() as u64,
                    });
                }
            }
        }
    }
    for (name, target) in targets() {
        for c in &cases {
            let src = c.graph();
            let g = text::parse(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            carve_ir::verify::verify(&g).unwrap_or_else(|e| panic!("{e}\n{src}"));
            let (got, want, report) = run_both_on(&target, &g, &[c.input()])
                .unwrap_or_else(|e| panic!("{name}: {e}\n{src}"));
            assert!(
                report.fallbacks.is_empty(),
                "{name}: fallbacks {:?}\n{src}",
                report.fallbacks
            );
            assert_eq!(got, want, "{name}:\n{src}");
        }
    }
}
