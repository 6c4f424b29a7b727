//! Unit tests of linalg inference: broadcasting, transposes, einsum parsing and the attention shapes.

use super::*;
use crate::ValueId;

use crate::ops::testutil::{input, k, run, sym};

#[test]
fn matmul_broadcasts_batches_and_drops_vector_dims() {
    let mut g = Graph::new("t");
    let a = input(&mut g, "a", DType::F32, &[sym("N"), k(1), k(3), k(4)]);
    let b = input(&mut g, "b", DType::F32, &[k(5), k(4), k(6)]);
    assert_eq!(
        run(&mut g, MatMul {}, &[Some(a), Some(b)], 1).unwrap(),
        ["f32[N,5,3,6]"]
    );
    let v = input(&mut g, "v", DType::F32, &[k(4)]);
    assert_eq!(
        run(&mut g, MatMul {}, &[Some(a), Some(v)], 1).unwrap(),
        ["f32[N,1,3]"]
    );
    assert_eq!(
        run(&mut g, MatMul {}, &[Some(v), Some(v)], 1).unwrap(),
        ["f32[]"]
    );
    let bad = input(&mut g, "x", DType::F32, &[k(5), k(6)]);
    assert!(run(&mut g, MatMul {}, &[Some(a), Some(bad)], 1).is_err());
}

#[test]
fn gemm_honours_transposes_and_checks_c() {
    let mut g = Graph::new("t");
    let a = input(&mut g, "a", DType::F32, &[k(4), sym("M")]);
    let b = input(&mut g, "b", DType::F32, &[k(5), k(4)]);
    let a3 = input(&mut g, "a3", DType::F32, &[k(4), k(3)]);
    let c = input(&mut g, "c", DType::F32, &[k(5)]);
    let op = Gemm {
        trans_a: true,
        trans_b: true,
        ..Gemm::default()
    };
    assert_eq!(
        run(&mut g, op.clone(), &[Some(a), Some(b), Some(c)], 1).unwrap(),
        ["f32[M,5]"]
    );
    let bad_c = input(&mut g, "d", DType::F32, &[k(3)]);
    assert!(run(&mut g, op, &[Some(a), Some(b), Some(bad_c)], 1).is_err());
    assert!(run(&mut g, Gemm::default(), &[Some(a3), Some(b)], 1).is_err());
}

fn einsum(g: &mut Graph, eq: &str, ins: &[ValueId]) -> Result<Vec<String>, InferError> {
    let ins: Vec<_> = ins.iter().map(|&v| Some(v)).collect();
    run(
        g,
        Einsum {
            equation: eq.into(),
        },
        &ins,
        1,
    )
}

#[test]
fn einsum_computes_explicit_and_implicit_outputs() {
    let mut g = Graph::new("t");
    let a = input(&mut g, "a", DType::F32, &[sym("B"), k(2), k(3)]);
    let b = input(&mut g, "b", DType::F32, &[sym("B"), k(3), k(4)]);
    assert_eq!(
        einsum(&mut g, "bij, bjk -> bik", &[a, b]).unwrap(),
        ["f32[B,2,4]"]
    );
    // Implicit output: labels used once (b is summed).
    assert_eq!(einsum(&mut g, "bij,bjk", &[a, b]).unwrap(), ["f32[2,4]"]);
    assert_eq!(
        einsum(&mut g, "...ij->...ji", &[a]).unwrap(),
        ["f32[B,3,2]"]
    );
    assert_eq!(einsum(&mut g, "bij->", &[a]).unwrap(), ["f32[]"]);
    let sq = input(&mut g, "s", DType::F32, &[k(3), k(5), k(5)]);
    assert_eq!(einsum(&mut g, "bii->bi", &[sq]).unwrap(), ["f32[3,5]"]);
}

#[test]
fn einsum_rejects_malformed_equations() {
    let mut g = Graph::new("t");
    let a = input(&mut g, "a", DType::F32, &[k(2), k(3)]);
    assert!(einsum(&mut g, "ij,jk->ik", &[a]).is_err());
    assert!(einsum(&mut g, "ijk->i", &[a]).is_err());
    assert!(einsum(&mut g, "ij->iz", &[a]).is_err());
    assert!(einsum(&mut g, "ij->ii", &[a]).is_err());
    assert!(einsum(&mut g, "i1->i", &[a]).is_err());
    assert!(einsum(&mut g, "ii->i", &[a]).is_err());
}

#[test]
fn det_drops_the_matrix_dims() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, &[sym("N"), k(3), k(3)]);
    assert_eq!(run(&mut g, Det {}, &[Some(x)], 1).unwrap(), ["f32[N]"]);
    let r = input(&mut g, "r", DType::F32, &[k(3), k(4)]);
    assert!(run(&mut g, Det {}, &[Some(r)], 1).is_err());
}

#[test]
fn attention_4d_with_cache_gives_all_outputs() {
    let mut g = Graph::new("t");
    let q = input(&mut g, "q", DType::F32, &[k(2), k(8), k(3), k(16)]);
    let kk = input(&mut g, "k", DType::F32, &[k(2), k(2), k(6), k(16)]);
    let v = input(&mut g, "v", DType::F32, &[k(2), k(2), k(6), k(20)]);
    let pk = input(&mut g, "pk", DType::F32, &[k(2), k(2), k(5), k(16)]);
    let pv = input(&mut g, "pv", DType::F32, &[k(2), k(2), k(5), k(20)]);
    let ins = [Some(q), Some(kk), Some(v), None, Some(pk), Some(pv)];
    assert_eq!(
        run(&mut g, Attention::default(), &ins, 4).unwrap(),
        [
            "f32[2,8,3,20]",
            "f32[2,2,11,16]",
            "f32[2,2,11,20]",
            "f32[2,8,3,11]"
        ]
    );
    let odd = input(&mut g, "o", DType::F32, &[k(2), k(3), k(6), k(16)]);
    assert!(
        run(
            &mut g,
            Attention::default(),
            &[Some(q), Some(odd), Some(odd)],
            1
        )
        .is_err()
    );
}

#[test]
fn attention_3d_needs_head_counts() {
    let mut g = Graph::new("t");
    let q = input(&mut g, "q", DType::F16, &[sym("B"), sym("S"), k(64)]);
    let kv = input(&mut g, "kv", DType::F16, &[sym("B"), k(6), k(32)]);
    let ins = [Some(q), Some(kv), Some(kv)];
    assert!(run(&mut g, Attention::default(), &ins, 1).is_err());
    let op = Attention {
        q_num_heads: Some(4),
        kv_num_heads: Some(2),
        ..Attention::default()
    };
    assert_eq!(
        run(&mut g, op, &ins, 2).unwrap(),
        ["f16[B,S,64]", "f16[B,2,6,16]"]
    );
}

#[test]
fn rotary_swiglu_keep_the_input_type() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", DType::F32, &[k(2), k(3), k(32)]);
    let c = input(&mut g, "c", DType::F32, &[k(50), k(4)]);
    let p = input(&mut g, "p", DType::I64, &[k(2), k(3)]);
    let op = RotaryEmbedding {
        num_heads: Some(4),
        ..RotaryEmbedding::default()
    };
    assert_eq!(
        run(&mut g, op, &[Some(x), Some(c), Some(c), Some(p)], 1).unwrap(),
        ["f32[2,3,32]"]
    );
    assert!(
        run(
            &mut g,
            RotaryEmbedding::default(),
            &[Some(x), Some(c), Some(c), Some(p)],
            1
        )
        .is_err()
    );
    assert_eq!(
        run(&mut g, SwiGlu::default(), &[Some(x), Some(x)], 1).unwrap(),
        ["f32[2,3,32]"]
    );
    assert!(run(&mut g, SwiGlu::default(), &[Some(x), Some(c)], 1).is_err());
}

#[test]
fn linear_attention_state_shape() {
    let mut g = Graph::new("t");
    let q = input(&mut g, "q", DType::F32, &[k(2), k(4), k(64)]);
    let kv = input(&mut g, "kv", DType::F32, &[k(2), k(4), k(32)]);
    let decay = input(&mut g, "d", DType::F32, &[k(2), k(4), k(4)]);
    let op = LinearAttention {
        q_num_heads: 8,
        kv_num_heads: 4,
        ..LinearAttention::default()
    };
    let ins = [Some(q), Some(kv), Some(kv), None, Some(decay), Some(decay)];
    assert_eq!(
        run(&mut g, op.clone(), &ins, 2).unwrap(),
        ["f32[2,4,64]", "f32[2,4,8,8]"]
    );
    assert!(run(&mut g, op, &[Some(q), Some(kv), Some(kv)], 2).is_err());
}

#[test]
fn flex_attention_checks_its_modifier() {
    let mut g = Graph::new("t");
    let q = input(&mut g, "q", DType::F16, &[k(2), k(4), k(8), k(16)]);
    let kv = input(&mut g, "kv", DType::F16, &[k(2), k(2), k(6), k(16)]);
    let mut sub = Graph::new("score_mod");
    let s = sub.add_input(
        "s",
        Type::Tensor(TensorType::known(DType::F32, &[2, 4, 8, 6])),
    );
    sub.outputs = vec![s];
    let op = FlexAttention {
        score_mod: Some(Box::new(sub)),
        ..FlexAttention::default()
    };
    assert_eq!(
        run(&mut g, op, &[Some(q), Some(kv), Some(kv)], 1).unwrap(),
        ["f16[2,4,8,16]"]
    );
    let mut wrong = Graph::new("score_mod");
    let s = wrong.add_input(
        "s",
        Type::Tensor(TensorType::known(DType::F16, &[2, 4, 8, 6])),
    );
    wrong.outputs = vec![s];
    let op = FlexAttention {
        score_mod: Some(Box::new(wrong)),
        ..FlexAttention::default()
    };
    assert!(run(&mut g, op, &[Some(q), Some(kv), Some(kv)], 1).is_err());
}
