//! Importers for matrix products and attention (see `carve_ir::ops::linalg`).
//!
//! Opset notes: Gemm's `broadcast` attribute (before opset 7) needs no translation (the IR always
//! broadcasts C); Attention opsets 23–25 are one IR op (later opsets only add inputs and attributes);
//! LinearAttention's `chunk_size` is an implementation hint and is dropped; its `scale = 0` and
//! Attention's absent `scale` both mean the `1/√head_size` default (`None` in the IR).

use carve_ir::ValueId;
use carve_ir::ops::linalg::{
    Attention, Det, Einsum, FlexAttention, Gemm, LinearAttention, MatMul, QkOutput,
    RotaryEmbedding, SwiGlu, UpdateRule,
};
use carve_ir::{DType, Type};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: crate::onnx::ctx::ImportFn) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("MatMul", |cx| {
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
        cx.emit(MatMul {}, inputs, 1)
    }),
    row("Gemm", |cx| {
        let op = Gemm {
            alpha: cx.f("alpha", 1.0)?,
            beta: cx.f("beta", 1.0)?,
            trans_a: cx.bool("transA", false)?,
            trans_b: cx.bool("transB", false)?,
        };
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), cx.input(2)];
        cx.emit(op, inputs, 1)
    }),
    row("Einsum", |cx| {
        let equation = cx
            .get_s("equation")?
            .ok_or_else(|| cx.err("attribute 'equation' is required"))?;
        cx.simple(Einsum { equation })
    }),
    row("Det", |cx| cx.emit(Det {}, vec![Some(cx.req(0)?)], 1)),
    row("Attention", attention),
    row("RotaryEmbedding", |cx| {
        let op = RotaryEmbedding {
            interleaved: cx.bool("interleaved", false)?,
            num_heads: cx.get_i("num_heads")?,
            rotary_embedding_dim: cx.i("rotary_embedding_dim", 0)?,
        };
        let inputs = vec![
            Some(cx.req(0)?),
            Some(cx.req(1)?),
            Some(cx.req(2)?),
            cx.input(3),
        ];
        cx.emit(op, inputs, 1)
    }),
    row("SwiGLU", |cx| {
        let op = SwiGlu {
            alpha: cx.f("alpha", 1.0)?,
        };
        let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
        cx.emit(op, inputs, 1)
    }),
    row("LinearAttention", linear_attention),
    OpImporter {
        domain: "ai.onnx.preview",
        op_type: "FlexAttention",
        import: flex_attention,
    },
];

/// The `softmax_precision` attribute as an element type.
fn precision(cx: &NodeCtx) -> Result<Option<DType>, ImportError> {
    let p = cx.get_dtype("softmax_precision")?;
    if let Some(d) = p.filter(|d| !d.is_float()) {
        return Err(cx.err(format!(
            "softmax_precision must be a floating-point type, got {d}"
        )));
    }
    Ok(p)
}

fn attention(cx: &mut NodeCtx) -> Res {
    let qk_output = match cx.i("qk_matmul_output_mode", 0)? {
        0 => QkOutput::Raw,
        1 => QkOutput::Softcapped,
        2 => QkOutput::Biased,
        3 => QkOutput::Probs,
        m => return Err(cx.err(format!("qk_matmul_output_mode must be 0 to 3, got {m}"))),
    };
    let op = Attention {
        is_causal: cx.bool("is_causal", false)?,
        q_num_heads: cx.get_i("q_num_heads")?,
        kv_num_heads: cx.get_i("kv_num_heads")?,
        scale: cx.get_f("scale")?,
        softcap: cx.f("softcap", 0.0)?,
        softmax_precision: precision(cx)?,
        qk_output,
        left_window: cx.i("left_window_size", -1)?,
        right_window: cx.i("right_window_size", -1)?,
    };
    if cx.num_inputs() > 7 {
        return Err(cx.err(format!("has at most 7 inputs, got {}", cx.num_inputs())));
    }
    cx.simple(op)
}

fn linear_attention(cx: &mut NodeCtx) -> Res {
    let required = |cx: &NodeCtx, name: &str| -> Result<i64, ImportError> {
        cx.get_i(name)?
            .ok_or_else(|| cx.err(format!("attribute '{name}' is required")))
    };
    let rule = cx.s("update_rule", "gated_delta")?;
    let update_rule = UpdateRule::from_keyword(&rule).ok_or_else(|| {
        cx.err(format!(
            "unknown update_rule '{rule}', expected one of {:?}",
            UpdateRule::KEYWORDS
        ))
    })?;
    let scale = cx.f("scale", 0.0)?;
    let op = LinearAttention {
        q_num_heads: required(cx, "q_num_heads")?,
        kv_num_heads: required(cx, "kv_num_heads")?,
        scale: (scale != 0.0).then_some(scale),
        update_rule,
    };
    if cx.num_inputs() > 6 {
        return Err(cx.err(format!("has at most 6 inputs, got {}", cx.num_inputs())));
    }
    cx.simple(op)
}

fn flex_attention(cx: &mut NodeCtx) -> Res {
    let mut op = FlexAttention {
        scale: cx.get_f("scale")?,
        softmax_precision: precision(cx)?,
        score_mod: None,
        prob_mod: None,
    };
    let scores = {
        let q = cx.tensor_ty(0)?;
        let k = cx.tensor_ty(1)?;
        op.scores_type(q, k)
    };
    let input = [Some(Type::Tensor(scores))];
    if cx.has_attr("score_mod") {
        op.score_mod = Some(Box::new(cx.subgraph("score_mod", &input)?));
    }
    if cx.has_attr("prob_mod") {
        op.prob_mod = Some(Box::new(cx.subgraph("prob_mod", &input)?));
    }
    let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?), Some(cx.req(2)?)];
    cx.emit(op, inputs, 1)
}
