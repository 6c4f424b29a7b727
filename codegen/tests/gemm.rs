//! Differential tests of the native matmul / gemm / conv kernels against the reference interpreter.

use carve_codegen::testing::{Operand, check_node, random_tensor};
use carve_ir::ops::conv::{AutoPad, Conv};
use carve_ir::ops::linalg::{Gemm, MatMul};
use proptest::prelude::*;

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

fn t(shape: &[usize], seed: u64) -> carve_runtime::Tensor {
    random_tensor(shape, seed, -1.0, 1.0)
}

fn operand(x: carve_runtime::Tensor, constant: bool) -> Operand {
    if constant { Operand::Const(x) } else { Operand::Input(x) }
}

fn matmul(a: &[usize], b: &[usize], b_const: bool, seed: u64) -> Result<(), String> {
    check_node(
        MatMul::default().into(),
        &[Operand::Input(t(a, seed)), operand(t(b, seed + 1), b_const)],
        1,
        RTOL,
        ATOL,
    )
    .map(|_| ())
}

#[test]
fn matmul_basic() {
    for bc in [true, false] {
        matmul(&[7, 13], &[13, 9], bc, 1).unwrap();
        matmul(&[1, 1], &[1, 1], bc, 2).unwrap();
        matmul(&[64, 300], &[300, 70], bc, 3).unwrap();
        matmul(&[130, 40], &[40, 260], bc, 4).unwrap();
        matmul(&[5], &[5, 3], bc, 5).unwrap();
        matmul(&[4, 5], &[5], bc, 6).unwrap();
        matmul(&[5], &[5], bc, 7).unwrap();
        matmul(&[2, 3, 6, 5], &[5, 11], bc, 8).unwrap();
        matmul(&[2, 1, 6, 5], &[3, 5, 11], bc, 9).unwrap();
        matmul(&[6, 5], &[2, 5, 11], bc, 10).unwrap();
    }
}

#[test]
fn gemm_basic() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for bc in [true, false] {
            for c in [None, Some(vec![9usize]), Some(vec![7, 9]), Some(vec![7, 1]), Some(vec![1])] {
                let op = Gemm {
                    alpha: 0.5,
                    beta: 2.0,
                    trans_a: ta,
                    trans_b: tb,
                };
                let a = if ta { [13, 7] } else { [7, 13] };
                let b = if tb { [9, 13] } else { [13, 9] };
                let mut ops = vec![Operand::Input(t(&a, 1)), operand(t(&b, 2), bc)];
                if let Some(c) = c {
                    ops.push(Operand::Input(t(&c, 3)));
                }
                check_node(op.into(), &ops, 1, RTOL, ATOL).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn matmul_random(m in 1usize..18, k in 1usize..40, n in 1usize..18, big in 0usize..3,
                     ba in 0usize..3, bb in 0usize..3, bc in any::<bool>(), seed in 0u64..1000) {
        let (m, n) = if big == 2 { (m * 11, n * 13) } else { (m, n) };
        let k = if big == 1 { k * 23 } else { k };
        let batch_a: Vec<usize> = [vec![], vec![3], vec![2, 1]][ba].clone();
        let batch_b: Vec<usize> = [vec![], vec![1], vec![1, 3]][bb].clone();
        let mut a = batch_a; a.extend([m, k]);
        let mut b = batch_b; b.extend([k, n]);
        matmul(&a, &b, bc, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn gemm_random(m in 1usize..18, k in 1usize..300, n in 1usize..18, ta in any::<bool>(),
                   tb in any::<bool>(), bc in any::<bool>(), cshape in 0usize..5, seed in 0u64..1000) {
        let op = Gemm { alpha: 1.5, beta: -0.5, trans_a: ta, trans_b: tb };
        let a = if ta { [k, m] } else { [m, k] };
        let b = if tb { [n, k] } else { [k, n] };
        let mut ops = vec![Operand::Input(t(&a, seed)), operand(t(&b, seed + 1), bc)];
        match cshape {
            1 => ops.push(Operand::Input(t(&[n], seed + 2))),
            2 => ops.push(Operand::Input(t(&[m, n], seed + 2))),
            3 => ops.push(Operand::Const(t(&[m, 1], seed + 2))),
            4 => ops.push(Operand::Input(t(&[1], seed + 2))),
            _ => {}
        }
        check_node(op.into(), &ops, 1, RTOL, ATOL).map_err(TestCaseError::fail)?;
    }
}
