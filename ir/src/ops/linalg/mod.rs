//! Matrix products and attention: `matmul`, `gemm`, `einsum`, `det`, `attention` (ONNX Attention,
//! opsets 23–25), `rotary_embedding`, `swiglu`, `linear_attention` and `flex_attention`
//! (ai.onnx.preview), with their type inference.
//!
//! `gemm` stays apart from `matmul` because its transposes, scalars and bias are what a GEMM kernel's
//! packing and epilogue consume directly. The attention ops stay whole: they are the units a fused
//! attention kernel implements, and their masking/caching rules are far larger as compositions.
//! `attention` has the newest (opset 25) semantics; opset 23 and 24 nodes are the same op without the
//! later inputs and attributes. Attributes that only tune an implementation (LinearAttention's
//! `chunk_size`) are dropped at import.
//!
//! The table of ops is here; inference lives by kind in `matmul`, `einsum`, `attention` and `layers`
//! (the interpreter's `runtime/src/interp/linalg/` file names).

mod attention;
mod einsum;
mod layers;
mod matmul;
#[cfg(test)]
mod tests;

pub use einsum::{Equation, Sub, parse_equation};

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, broadcast_shapes, compatible};
use crate::ops::{AxisRef, ChannelMap, NodeTypes, Work};
use crate::{DType, Dim, Graph, Shape, TensorType, Type};

crate::attr_enum! {
    /// What `attention`'s optional fourth output holds (ONNX `qk_matmul_output_mode` 0–3).
    pub enum QkOutput {
        /// `Q·Kᵀ·scale` (mode 0).
        Raw = "raw",
        /// After soft-capping (mode 1).
        Softcapped = "softcapped",
        /// After soft-capping and adding the mask/causal bias (mode 2).
        Biased = "biased",
        /// The softmax probabilities, fully masked rows zeroed (mode 3).
        Probs = "probs",
    }
}

crate::attr_enum! {
    /// The state recurrence of `linear_attention`.
    pub enum UpdateRule {
        /// `S = S + k⊗v`.
        Linear = "linear",
        /// `S = exp(g)·S + k⊗v`.
        Gated = "gated",
        /// `S = S + β·k⊗(v − Sᵀk)`.
        Delta = "delta",
        /// `S = exp(g)·S + β·k⊗(v − exp(g)·Sᵀk)`.
        GatedDelta = "gated_delta",
    }
}

define_ops! {
    /// Matrix products and attention.
    pub enum LinalgOp {
        /// Numpy `matmul`: batched over broadcast leading dims; a 1-D operand is a vector (its
        /// inserted dim is removed from the result).
        MatMul = "matmul" {},
        /// `alpha · op(A) · op(B) + beta · C` with `op` an optional transpose; A and B are 2-D, the
        /// optional C broadcasts to `[M, N]`.
        Gemm = "gemm" {
            /// Scale of the product.
            alpha: f32 = 1.0,
            /// Scale of C.
            beta: f32 = 1.0,
            /// Transpose A.
            trans_a: bool = false,
            /// Transpose B.
            trans_b: bool = false,
        },
        /// Einstein summation over the inputs as described by `equation` (`"ij,jk->ik"`, `"...ii->...i"`;
        /// without `->` the output is the labels used once, sorted, after any ellipsis dims).
        Einsum = "einsum" {
            /// The subscripts.
            equation: String = String::new(),
        },
        /// Determinant of each `[M, M]` matrix in the last two dims.
        Det = "det" {},
        /// Scaled dot-product attention (ONNX Attention, opset 25 semantics). Inputs
        /// `q, k, v, mask?, past_key?, past_value?, nonpad_kv_seqlen?`; outputs `y, present_key?,
        /// present_value?, qk?`. Q/K/V are all 4-D `[B, H, S, D]` or all 3-D `[B, S, H·D]` (then both
        /// head counts are set).
        Attention = "attention" {
            /// Apply a bottom-right aligned causal mask.
            is_causal: bool = false,
            /// Query heads (3-D inputs).
            q_num_heads: Option<i64> = None,
            /// Key/value heads (3-D inputs).
            kv_num_heads: Option<i64> = None,
            /// Scale of `Q·Kᵀ`; default `1/√head_size`.
            scale: Option<f32> = None,
            /// `softcap · tanh(scores / softcap)` before masking when non-zero.
            softcap: f32 = 0.0,
            /// Element type the softmax is computed in; default the input type.
            softmax_precision: Option<DType> = None,
            /// What output 3 holds.
            qk_output: QkOutput = QkOutput::Raw,
            /// Keys visible to the left of the query's position (−1 = unbounded).
            left_window: i64 = -1,
            /// Keys visible to the right of the query's position (−1 = unbounded).
            right_window: i64 = -1,
        },
        /// Rotary position embedding of `x` (`[B, H, S, D]` or `[B, S, H·D]`) with inputs
        /// `x, cos_cache, sin_cache, position_ids?`.
        RotaryEmbedding = "rotary_embedding" {
            /// Rotate interleaved pairs (`x[2i], x[2i+1]`) instead of the two halves.
            interleaved: bool = false,
            /// Heads, for 3-D input.
            num_heads: Option<i64> = None,
            /// Number of leading features rotated (0 = the whole head).
            rotary_embedding_dim: i64 = 0,
        },
        /// `a · sigmoid(alpha · a) · b` for same-shaped `a` (gate) and `b` (value).
        SwiGlu = "swiglu" {
            /// Scale inside the sigmoid.
            alpha: f32 = 1.0,
        },
        /// Recurrent linear attention (ONNX LinearAttention): inputs `q, k, v` (`[B, T, H·D]`),
        /// `past_state?` (`[B, H_kv, d_k, d_v]`), `decay?`, `beta?`; outputs `y` (`[B, T, H_q·d_v]`) and
        /// `present_state`.
        LinearAttention = "linear_attention" {
            /// Query heads (a multiple of `kv_num_heads`).
            q_num_heads: i64 = 1,
            /// Key/value heads.
            kv_num_heads: i64 = 1,
            /// Output scale; default `1/√d_k`.
            scale: Option<f32> = None,
            /// State recurrence.
            update_rule: UpdateRule = UpdateRule::GatedDelta,
        },
        /// Attention over 4-D `q, k, v` with optional modifier subgraphs (ai.onnx.preview
        /// FlexAttention): `scores = q·kᵀ·scale`, `score_mod`, softmax, `prob_mod`, `· v`.
        FlexAttention = "flex_attention" {
            /// Scale of `q·kᵀ`; default `1/√head_size`.
            scale: Option<f32> = None,
            /// Element type of scores and probabilities; default f32 (f64 for f64 inputs).
            softmax_precision: Option<DType> = None,
            /// `(scores[B, Hq, L, S]) -> scores`.
            score_mod: Option<Box<Graph>> = None,
            /// `(probs[B, Hq, L, S]) -> probs`.
            prob_mod: Option<Box<Graph>> = None,
        },
    }
}

fn out(dtype: DType, shape: Option<Shape>) -> Type {
    Type::Tensor(TensorType {
        dtype,
        shape,
        quant: None,
    })
}

fn float(cx: &InferCtx, i: usize) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if !d.is_float() {
        return Err(cx.err(format!(
            "input {i} must be a floating-point tensor, got element type {d}"
        )));
    }
    Ok(d)
}

fn numeric(cx: &InferCtx, i: usize) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if d == DType::String || d == DType::Bool {
        return Err(cx.err(format!(
            "input {i} must be a numeric tensor, got element type {d}"
        )));
    }
    Ok(d)
}

fn same_dtype(cx: &InferCtx, i: usize, j: usize) -> Result<DType, InferError> {
    let (a, b) = (cx.dtype(i)?, cx.dtype(j)?);
    if a != b {
        return Err(cx.err(format!(
            "inputs {i} and {j} must have the same element type, got {a} and {b}"
        )));
    }
    Ok(a)
}

/// Two dims that must be equal: the more precise one, or an error naming `what`.
fn unify(cx: &InferCtx, a: &Dim, b: &Dim, what: &str) -> Result<Dim, InferError> {
    if a.conflicts(b) {
        return Err(cx.err(format!("{what} disagree: {a} and {b}")));
    }
    Ok(a.refine(b))
}

/// `d / n` for a size that must divide exactly.
fn div_dim(cx: &InferCtx, d: &Dim, n: u64, what: &str) -> Result<Dim, InferError> {
    match d {
        Dim::Known(x) if n > 0 && x % n == 0 => Ok(Dim::Known(x / n)),
        Dim::Known(x) => Err(cx.err(format!("{what}: {x} is not divisible by {n}"))),
        _ if n == 1 => Ok(d.clone()),
        _ => Ok(Dim::Unknown),
    }
}

/// `a + b` for dims.
fn add_dim(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x.checked_add(*y).map_or(Dim::Unknown, Dim::Known),
        (Dim::Known(0), d) | (d, Dim::Known(0)) => d.clone(),
        _ => Dim::Unknown,
    }
}

/// A positive head count.
fn heads(cx: &InferCtx, v: Option<i64>, name: &str) -> Result<u64, InferError> {
    let n = v.ok_or_else(|| cx.err(format!("{name} is required for 3-D inputs")))?;
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| cx.err(format!("{name} must be positive, got {n}")))
}

// Properties (FLOPs and bytes, channel map)
// ---------------------------------------------------------------------------------------------------

impl LinalgOp {
    /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
    pub fn props(&self) -> crate::ops::Props {
        crate::ops::Props::NONE
    }

    /// Arithmetic (see [`crate::ops::Work`]): matrix products count multiply-accumulates.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        match self {
            Self::MatMul(_) => matmul_work(t, false),
            Self::Gemm(g) => matmul_work(t, g.trans_a),
            _ => Work::default_for(t),
        }
    }

    /// Channel map (see [`crate::ops::ChannelMap`]): the contracted axis (input channels) and the
    /// columns of B (output channels) of `matmul` and `gemm`.
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        match self {
            Self::MatMul(_) => matmul_channels(t, false, false),
            Self::Gemm(g) => matmul_channels(t, g.trans_a, g.trans_b),
            _ => ChannelMap::Opaque,
        }
    }

    /// Quantizable operands (see [`crate::ops::QuantSite`]): `matmul(a, b[K, N])` per column of `b`;
    /// `gemm(a, b, c?)` per column of `op(b)` with `c` its bias.
    pub fn quant_site(&self) -> Option<crate::ops::QuantSite> {
        let site = |weight_axis, bias| crate::ops::QuantSite {
            data: 0,
            weight: 1,
            weight_axis,
            bias,
            weight_rank: crate::ops::WeightRank::Exactly(2),
        };
        match self {
            Self::MatMul(_) => Some(site(1, None)),
            Self::Gemm(g) if !g.trans_a => Some(site(if g.trans_b { 0 } else { 1 }, Some(2))),
            _ => None,
        }
    }
}

/// Work of a matrix product `a · b` (`a` transposed when `trans_a`, as in `gemm`): every output
/// element sums K products, plus one addition (bias or accumulator start).
pub(crate) fn matmul_work(t: &NodeTypes, trans_a: bool) -> Option<Work> {
    let k = if trans_a {
        t.in_dim(0, 0)?
    } else {
        t.in_dim(0, -1)?
    };
    let out = t.out_elems()?;
    Some(Work::mac(out * k, out))
}

/// Channel map of `matmul(a[.., M, K], b[.., K, N], c?)` (a 2-D `gemm` when transposed): the
/// contracted `{a.K, b.K}` (input channels), `{b.N, y.-1}` (output channels) and `{a.M, y.-2}` spaces;
/// an optional bias input 2 joins the N (last axis) and M (second last) spaces where its dim is not 1.
/// 1-D operands have no M or N. Opaque when a rank is unknown.
pub(crate) fn matmul_channels(t: &NodeTypes, trans_a: bool, trans_b: bool) -> ChannelMap {
    let rank = |t: Option<&TensorType>| t.and_then(TensorType::rank).filter(|&r| r >= 1);
    let (Some(ra), Some(rb), Some(ry)) = (
        rank(t.input(0)),
        rank(t.input(1)),
        t.output(0).and_then(TensorType::rank),
    ) else {
        return ChannelMap::Opaque;
    };
    // (K axis, M axis) of a and (K axis, N axis) of b.
    let (a_k, a_m) = match (ra, trans_a) {
        (1, _) => (0, None),
        (_, false) => (ra - 1, Some(ra - 2)),
        (_, true) => (ra - 2, Some(ra - 1)),
    };
    let (b_k, b_n) = match (rb, trans_b) {
        (1, _) => (0, None),
        (_, false) => (rb - 2, Some(rb - 1)),
        (_, true) => (rb - 1, Some(rb - 2)),
    };
    let mut spaces = vec![vec![AxisRef::input(0, a_k), AxisRef::input(1, b_k)]];
    let bias = t.input(2).and_then(|c| c.dims());
    // Bias axis for the output axis `from_end` positions from the end (0: last), if it is not 1.
    let bias_axis = |from_end: usize| {
        let d = bias?;
        let a = d.len().checked_sub(from_end + 1)?;
        (d[a].known() != Some(1)).then(|| AxisRef::input(2, a))
    };
    let mut y_axes = (0..ry).rev();
    if let Some(n) = b_n {
        let y = y_axes.next();
        let mut s = vec![AxisRef::input(1, n)];
        s.extend(y.map(|y| AxisRef::output(0, y)));
        s.extend(bias_axis(0));
        spaces.push(s);
    }
    if let Some(m) = a_m {
        let y = y_axes.next();
        let mut s = vec![AxisRef::input(0, m)];
        s.extend(y.map(|y| AxisRef::output(0, y)));
        s.extend(bias_axis(usize::from(b_n.is_some())));
        spaces.push(s);
    }
    ChannelMap::Tied(spaces)
}
