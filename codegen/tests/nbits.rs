//! Differential tests of the native `matmul_nbits` kernel against the reference interpreter: random
//! shapes (batch dims, row and column tails), block sizes (16 to 128, `k` not a multiple of the
//! block), 2/4/8 bits, packed / float / default zero points, with and without bias. Weights are
//! packed by `carve_ir::ops::quant::blockwise::quantize`.

use carve_codegen::testing::{Operand, check_node, random_f32, random_tensor};
use carve_ir::ops::quant::MatMulNBits;
use carve_ir::ops::quant::blockwise::{NBitsLayout, quantize};
use carve_runtime::{Data, Tensor};
use proptest::prelude::*;

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// How the zero points are given.
#[derive(Debug, Clone, Copy)]
enum Zp {
    /// Absent: the default `2^(bits − 1)` (symmetric packing).
    Default,
    /// Packed u8 codes.
    Packed,
    /// One f32 per block (ORT's "same type as the scales" form).
    Float,
}

struct Case {
    a: Vec<usize>,
    n: usize,
    bits: usize,
    block_size: usize,
    zp: Zp,
    bias: bool,
    seed: u64,
}

fn u8_tensor(shape: &[usize], v: Vec<u8>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: Data::U8(v),
    }
}

fn f32_tensor(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor {
        shape: shape.to_vec(),
        data: Data::F32(v),
    }
}

fn check(c: &Case) -> Result<(), String> {
    let k = *c.a.last().unwrap();
    let l = NBitsLayout::new(k, c.n, c.bits, c.block_size).map_err(|e| e.to_string())?;
    let w = random_f32(k * c.n, c.seed + 1, -1.0, 1.0);
    let p = quantize(&w, l, matches!(c.zp, Zp::Default)).map_err(|e| e.to_string())?;
    let mut ops = vec![
        Operand::Input(random_tensor(&c.a, c.seed, -1.0, 1.0)),
        Operand::Const(u8_tensor(&[c.n, l.blocks(), l.blob()], p.b.clone())),
        Operand::Const(f32_tensor(&[c.n * l.blocks()], p.scales.clone())),
    ];
    ops.push(match c.zp {
        Zp::Default => Operand::Absent,
        Zp::Packed => {
            let z = p.zero_points.clone().unwrap_or_default();
            Operand::Const(u8_tensor(&[z.len()], z))
        }
        Zp::Float => {
            let z = (0..c.n * l.blocks())
                .map(|i| p.zero_point(i / l.blocks(), i % l.blocks()) as f32 + 0.25)
                .collect();
            Operand::Const(f32_tensor(&[c.n, l.blocks()], z))
        }
    });
    if c.bias {
        ops.push(Operand::Absent);
        ops.push(Operand::Const(random_tensor(&[c.n], c.seed + 2, -1.0, 1.0)));
    }
    let op = MatMulNBits {
        k: k as i64,
        n: c.n as i64,
        bits: c.bits as i64,
        block_size: c.block_size as i64,
        accuracy_level: 0,
    };
    check_node(op.into(), &ops, 1, RTOL, ATOL).map(|_| ())
}

#[test]
fn matmul_nbits_basic() {
    let cases = [
        // (a shape, n, bits, block size, zero points, bias)
        (vec![1, 64], 8, 4, 32, Zp::Packed, false),
        (vec![7, 40], 13, 4, 16, Zp::Default, true),
        (vec![2, 3, 200], 9, 4, 128, Zp::Packed, true),
        (vec![5, 48], 6, 4, 16, Zp::Float, false),
        (vec![3, 72], 5, 8, 32, Zp::Packed, true),
        (vec![3, 80], 6, 2, 16, Zp::Packed, false),
        (vec![4, 33], 1, 4, 16, Zp::Default, false),
        (vec![9, 384], 384, 4, 32, Zp::Packed, true),
    ];
    for (i, (a, n, bits, block_size, zp, bias)) in cases.into_iter().enumerate() {
        let c = Case {
            a: a.clone(),
            n,
            bits,
            block_size,
            zp,
            bias,
            seed: i as u64 * 10,
        };
        check(&c).unwrap_or_else(|e| panic!("{a:?} n={n} bits={bits} bs={block_size}: {e}"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn matmul_nbits_random(m in 1usize..11, k in 1usize..300, n in 1usize..40, batch in 0usize..3,
                           bs_log in 4u32..8, bits in 0usize..3, zp in 0usize..3,
                           bias in any::<bool>(), seed in 0u64..1000) {
        let mut a: Vec<usize> = [vec![], vec![2], vec![2, 1]][batch].clone();
        a.extend([m, k]);
        let c = Case {
            a,
            n,
            bits: [4, 2, 8][bits],
            block_size: 1 << bs_log,
            zp: [Zp::Default, Zp::Packed, Zp::Float][zp],
            bias,
            seed,
        };
        check(&c).map_err(TestCaseError::fail)?;
    }
}
