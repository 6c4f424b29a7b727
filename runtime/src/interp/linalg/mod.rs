//! Interpreter kernels for the linalg op family (`carve_ir::ops::linalg`): matrix products
//! ([`matmul`]: `matmul`, `gemm`, `det`), [`einsum`], the attention ops ([`attention`]: `attention`,
//! `flex_attention`) and the transformer-layer pieces ([`layers`]: `rotary_embedding`, `swiglu`,
//! `linear_attention`).
//!
//! Products of f32 (and f16/bf16, computed in f32) run on `util::sgemm`, f64 on `util::dgemm`, integers
//! natively with wrapping arithmetic. Where the ONNX reference rounds to the input type in the middle
//! of an op (scaled Q/K, scores, probabilities in attention), the kernels round there too, so that
//! f16/bf16 results match it to the last bit as far as possible.

mod attention;
mod einsum;
mod layers;
mod matmul;
mod num;

use carve_ir::ops::linalg::LinalgOp;
use carve_ir::{DType, Type};

use super::{EvalCtx, RunError, Value};

/// Evaluates one linalg op.
pub fn eval(op: &LinalgOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        LinalgOp::MatMul(_) if super::quant::typed::is_quantized(cx, 0) => {
            super::quant::typed::matmul(cx)
        }
        LinalgOp::MatMul(_) => matmul::matmul(cx),
        LinalgOp::Gemm(o) => matmul::gemm(o, cx),
        LinalgOp::Einsum(o) => einsum::einsum(o, cx),
        LinalgOp::Det(_) => matmul::det(cx),
        LinalgOp::Attention(o) => attention::attention(o, cx),
        LinalgOp::RotaryEmbedding(o) => layers::rotary_embedding(o, cx),
        LinalgOp::SwiGlu(o) => layers::swiglu(o, cx),
        LinalgOp::LinearAttention(o) => layers::linear_attention(o, cx),
        LinalgOp::FlexAttention(o) => attention::flex_attention(o, cx),
    }
}

/// The element type of output `k` (from the node's IR type), or `fallback`.
fn out_dtype(cx: &EvalCtx, k: usize, fallback: DType) -> DType {
    match cx.output_type(k) {
        Some(Type::Tensor(t)) => t.dtype,
        _ => fallback,
    }
}

/// Refuses a non-float input `i`.
fn want_float(cx: &EvalCtx, i: usize, d: DType) -> Result<(), RunError> {
    if matches!(d, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        Ok(())
    } else {
        Err(cx.err(format!("input {i} must be f32, f64, f16 or bf16, got {d}")))
    }
}

#[cfg(test)]
mod tests {
    //! Kernels fed shapes the node's (unknown-shape) types do not constrain: every case must end in a
    //! result or an error, never a panic.

    use carve_ir::ops::linalg::{
        Attention, Det, Einsum, FlexAttention, Gemm, LinearAttention, MatMul, QkOutput,
        RotaryEmbedding, SwiGlu, UpdateRule,
    };
    use carve_ir::{DType, Graph, Op, TensorType, Type};

    use crate::interp::{Value, run};
    use crate::tensor::{Data, Tensor};

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
        /// A shape of (usually) the given rank with dims 1 and 2 (rarely 0 or 4), so that inputs
        /// agree often enough to reach the kernels' inner loops.
        fn shape(&mut self, rank: usize) -> Vec<usize> {
            let rank = if self.below(10) == 0 {
                self.below(5)
            } else {
                rank
            };
            (0..rank)
                .map(|_| match self.below(12) {
                    0 => 0,
                    1 => 4,
                    x => 1 + x % 2,
                })
                .collect()
        }
    }

    fn tensor(rng: &mut Rng, dtype: DType, shape: Vec<usize>) -> Tensor {
        let n: usize = shape.iter().product();
        let data = match dtype {
            DType::I64 => Data::I64((0..n).map(|_| rng.below(9) as i64 - 4).collect()),
            DType::Bool => Data::Bool((0..n).map(|_| rng.below(2) == 1).collect()),
            _ => Data::F32((0..n).map(|_| rng.below(100) as f32 / 25.0 - 2.0).collect()),
        };
        Tensor::new(shape, data).unwrap()
    }

    /// Runs `op` once on inputs of the given dtypes and (usual) ranks, `None` = absent; true when it
    /// produced a result.
    fn poke(rng: &mut Rng, op: Op, inputs: &[Option<(DType, usize)>], n_out: usize) -> bool {
        let shaped: Vec<_> = inputs
            .iter()
            .map(|i| i.map(|(d, r)| (d, rng.shape(r))))
            .collect();
        poke_shaped(rng, op, shaped, n_out)
    }

    /// Runs `op` once on inputs of the given dtypes and shapes; true when it produced a result.
    fn poke_shaped(
        rng: &mut Rng,
        op: Op,
        mut inputs: Vec<Option<(DType, Vec<usize>)>>,
        n_out: usize,
    ) -> bool {
        // Now and then, break one dim.
        if rng.below(8) == 0 {
            let i = rng.below(inputs.len() as u64);
            if let Some((_, s)) = &mut inputs[i]
                && !s.is_empty()
            {
                let j = rng.below(s.len() as u64);
                s[j] = rng.below(5);
            }
        }
        let mut g = Graph::new("fuzz");
        let mut ids = Vec::new();
        let mut values = Vec::new();
        for (i, d) in inputs.into_iter().enumerate() {
            match d {
                Some((d, shape)) => {
                    let ty = Type::Tensor(TensorType {
                        dtype: d,
                        shape: None,
                        quant: None,
                    });
                    ids.push(Some(g.add_input(format!("x{i}"), ty)));
                    values.push(Value::Tensor(tensor(rng, d, shape)));
                }
                None => ids.push(None),
            }
        }
        let names = (0..n_out).map(|k| format!("y{k}")).collect();
        let Ok(outs) = g.add_node("n", op, ids, names) else {
            return false;
        };
        g.outputs = outs;
        run(&g, values).is_ok()
    }

    #[test]
    fn arbitrary_shapes_never_panic() {
        let f = |r| Some((DType::F32, r));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut ok = 0;
        for _ in 0..2000 {
            let mut hit = |x: bool| ok += usize::from(x);
            hit(poke(&mut rng, MatMul {}.into(), &[f(3), f(2)], 1));
            hit(poke(
                &mut rng,
                MatMul {}.into(),
                &[Some((DType::I64, 1)); 2],
                1,
            ));
            let gemm = Gemm {
                alpha: 0.5,
                beta: 2.0,
                trans_a: rng.below(2) == 1,
                trans_b: rng.below(2) == 1,
            };
            hit(poke(&mut rng, gemm.into(), &[f(2), f(2), f(1)], 1));
            hit(poke(&mut rng, Det {}.into(), &[f(3)], 1));
            for (eq, ranks) in [
                ("ij,jk->ik", &[2, 2][..]),
                ("...ii->...i", &[3]),
                ("ab,b", &[2, 1]),
                ("i,i", &[1, 1]),
                ("bij,bjk->bik", &[3, 3]),
                ("...j,j...", &[2, 2]),
                ("ab,bc,cd->ad", &[2, 2, 2]),
            ] {
                let op = Einsum {
                    equation: eq.into(),
                };
                let ins: Vec<_> = ranks.iter().map(|&r| f(r)).collect();
                hit(poke(&mut rng, op.into(), &ins, 1));
            }
            let [b, hkv, grp, sq, skv, d, dv, past] = [0; 8].map(|_| 1 + rng.below(3));
            let hq = hkv * grp;
            let l = past + skv;
            let rank3 = rng.below(2) == 0;
            let att = Attention {
                is_causal: rng.below(2) == 1,
                q_num_heads: rank3.then_some(hq as i64),
                kv_num_heads: rank3.then_some(hkv as i64),
                softcap: 1.0,
                qk_output: QkOutput::Biased,
                left_window: rng.below(3) as i64 - 1,
                right_window: rng.below(3) as i64 - 1,
                ..Attention::default()
            };
            let qkv = |h: usize, s: usize, d: usize| {
                if rank3 {
                    vec![b, s, h * d]
                } else {
                    vec![b, h, s, d]
                }
            };
            let mask_rank = 1 + rng.below(4);
            let mut mask: Vec<usize> =
                [b, hq, sq, 1 + rng.below(l as u64)][4 - mask_rank..].to_vec();
            for x in mask.iter_mut().rev().skip(1) {
                if rng.below(2) == 0 {
                    *x = 1;
                }
            }
            let mask_t = if rng.below(2) == 1 {
                DType::Bool
            } else {
                DType::F32
            };
            let fl = DType::F32;
            let ins = vec![
                Some((fl, qkv(hq, sq, d))),
                Some((fl, qkv(hkv, skv, d))),
                Some((fl, qkv(hkv, skv, dv))),
                Some((mask_t, mask)),
                Some((fl, vec![b, hkv, past, d])),
                Some((fl, vec![b, hkv, past, dv])),
            ];
            hit(poke_shaped(&mut rng, att.clone().into(), ins, 4));
            let ins = vec![
                Some((fl, qkv(hq, sq, d))),
                Some((fl, qkv(hkv, skv, d))),
                Some((fl, qkv(hkv, skv, dv))),
                None,
                None,
                None,
                Some((DType::I64, vec![b])),
            ];
            hit(poke_shaped(&mut rng, att.into(), ins, 1));
            let rot = 2 * rng.below(2);
            let rope = RotaryEmbedding {
                interleaved: rng.below(2) == 1,
                num_heads: rank3.then_some(hq as i64),
                rotary_embedding_dim: rot as i64,
            };
            let half = if rot == 0 { d } else { rot / 2 };
            let x = qkv(hq, sq, 2 * d);
            let ins = vec![
                Some((fl, x.clone())),
                Some((fl, vec![5, half])),
                Some((fl, vec![5, half])),
                Some((DType::I64, vec![b, sq])),
            ];
            hit(poke_shaped(&mut rng, rope.clone().into(), ins, 1));
            let ins = vec![
                Some((fl, x)),
                Some((fl, vec![b, sq, half])),
                Some((fl, vec![b, sq, half])),
            ];
            hit(poke_shaped(&mut rng, rope.into(), ins, 1));
            hit(poke(&mut rng, SwiGlu::default().into(), &[f(2), f(2)], 1));
            let la = LinearAttention {
                q_num_heads: hq as i64,
                kv_num_heads: hkv as i64,
                scale: None,
                update_rule: UpdateRule::GatedDelta,
            };
            let decay = if rng.below(2) == 0 { hkv } else { hkv * d };
            let beta = if rng.below(2) == 0 { hkv } else { 1 };
            let ins = vec![
                Some((fl, vec![b, sq, hq * d])),
                Some((fl, vec![b, sq, hkv * d])),
                Some((fl, vec![b, sq, hkv * dv])),
                Some((fl, vec![b, hkv, d, dv])),
                Some((fl, vec![b, sq, decay])),
                Some((fl, vec![b, sq, beta])),
            ];
            hit(poke_shaped(&mut rng, la.into(), ins, 2));
            let ins = vec![
                Some((fl, vec![b, hq, sq, d])),
                Some((fl, vec![b, hkv, skv, d])),
                Some((fl, vec![b, hkv, skv, dv])),
            ];
            hit(poke_shaped(
                &mut rng,
                FlexAttention::default().into(),
                ins,
                1,
            ));
        }
        // The generator reaches the kernels' result paths, not only their shape checks.
        assert!(ok > 3000, "only {ok} runs produced results");
    }
}
