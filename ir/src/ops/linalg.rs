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

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, broadcast_shapes, compatible};
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

impl Infer for MatMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = numeric(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
        let (Some(ad), Some(bd)) = (a.dims(), b.dims()) else {
            return Ok(vec![out(dtype, None)]);
        };
        if ad.is_empty() || bd.is_empty() {
            return Err(cx.err(format!("operands must have rank ≥ 1, got {a} and {b}")));
        }
        let a2: Vec<Dim> = if ad.len() == 1 {
            vec![Dim::Known(1), ad[0].clone()]
        } else {
            ad.to_vec()
        };
        let b2: Vec<Dim> = if bd.len() == 1 {
            vec![bd[0].clone(), Dim::Known(1)]
        } else {
            bd.to_vec()
        };
        let (ra, rb) = (a2.len(), b2.len());
        unify(cx, &a2[ra - 1], &b2[rb - 2], "contracted dims (K)")?;
        let batch =
            broadcast_shapes(&[&Shape(a2[..ra - 2].to_vec()), &Shape(b2[..rb - 2].to_vec())])
                .map_err(|m| cx.err(format!("batch dims: {m}")))?;
        let mut dims = batch.0;
        if ad.len() > 1 {
            dims.push(a2[ra - 2].clone());
        }
        if bd.len() > 1 {
            dims.push(b2[rb - 1].clone());
        }
        Ok(vec![out(dtype, Some(Shape(dims)))])
    }
}

impl Infer for Gemm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = numeric(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
        for (i, t) in [(0, a), (1, b)] {
            if t.rank().is_some_and(|r| r != 2) {
                return Err(cx.err(format!("input {i} must be 2-D, got {t}")));
            }
        }
        let pick = |t: &TensorType, trans: bool, outer: bool| -> Dim {
            t.dims()
                .map_or(Dim::Unknown, |d| d[usize::from(trans == outer)].clone())
        };
        let m = pick(a, self.trans_a, true);
        let n = pick(b, self.trans_b, false);
        // K: A's inner dim and B's outer dim.
        let ka = pick(a, self.trans_a, false);
        let kb = pick(b, self.trans_b, true);
        unify(cx, &ka, &kb, "contracted dims (K)")?;
        let y = [m, n];
        if let Some(c) = cx.opt_tensor(2)? {
            same_dtype(cx, 0, 2)?;
            if let Some(cd) = c.dims() {
                let fits = cd.len() <= 2
                    && cd
                        .iter()
                        .rev()
                        .zip(y.iter().rev())
                        .all(|(c, y)| *c == Dim::Known(1) || !c.conflicts(y));
                if !fits {
                    return Err(cx.err(format!(
                        "C ({c}) does not broadcast to the result [{}, {}]",
                        y[0], y[1]
                    )));
                }
            }
        }
        Ok(vec![out(dtype, Some(Shape(y.to_vec())))])
    }
}

/// One subscript of an einsum term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// A letter naming an axis.
    Label(u8),
    /// `...`: the broadcast batch axes.
    Ellipsis,
}

/// A parsed einsum equation: one term per input and the explicit output term, if any.
pub struct Equation {
    /// One term per input.
    pub inputs: Vec<Vec<Sub>>,
    /// The output term after `->`, when given.
    pub output: Option<Vec<Sub>>,
}

fn parse_term(t: &str) -> Result<Vec<Sub>, String> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() {
            out.push(Sub::Label(b[i]));
            i += 1;
        } else if b[i..].starts_with(b"...") {
            if out.contains(&Sub::Ellipsis) {
                return Err(format!("term '{t}' has more than one ellipsis"));
            }
            out.push(Sub::Ellipsis);
            i += 3;
        } else {
            return Err(format!(
                "term '{t}' has an invalid character '{}' (labels are letters)",
                char::from(b[i])
            ));
        }
    }
    Ok(out)
}

/// Parses an einsum equation (whitespace ignored), checking that output labels are unique and appear in
/// some input. Shared by type inference and the interpreter's kernel.
pub fn parse_equation(eq: &str) -> Result<Equation, String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs = lhs
        .split(',')
        .map(parse_term)
        .collect::<Result<Vec<_>, _>>()?;
    let output = rhs.map(parse_term).transpose()?;
    if let Some(o) = &output {
        for (i, s) in o.iter().enumerate() {
            if let Sub::Label(l) = s {
                if o[..i].contains(s) {
                    return Err(format!("output label '{}' appears twice", char::from(*l)));
                }
                if !inputs.iter().any(|t| t.contains(s)) {
                    return Err(format!(
                        "output label '{}' does not appear in any input",
                        char::from(*l)
                    ));
                }
            }
        }
    }
    Ok(Equation { inputs, output })
}

impl Infer for Einsum {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let eq = parse_equation(&self.equation)
            .map_err(|m| cx.err(format!("equation '{}': {m}", self.equation)))?;
        if eq.inputs.len() != cx.num_inputs() {
            return Err(cx.err(format!(
                "equation '{}' has {} input terms, the node has {} inputs",
                self.equation,
                eq.inputs.len(),
                cx.num_inputs()
            )));
        }
        let dtype = numeric(cx, 0)?;
        for i in 1..cx.num_inputs() {
            same_dtype(cx, 0, i)?;
        }
        // Label sizes, and the broadcast shape of the ellipsis dims (None = some rank unknown).
        let mut sizes: Vec<(u8, Dim)> = Vec::new();
        let mut ell: Option<Shape> = Some(Shape::scalar());
        for (i, term) in eq.inputs.iter().enumerate() {
            let n_labels = term.iter().filter(|s| **s != Sub::Ellipsis).count();
            let has_ell = term.contains(&Sub::Ellipsis);
            let t = cx.tensor(i)?;
            let Some(dims) = t.dims() else {
                if has_ell {
                    ell = None;
                }
                for s in term {
                    if let Sub::Label(l) = s
                        && !sizes.iter().any(|(x, _)| x == l)
                    {
                        sizes.push((*l, Dim::Unknown));
                    }
                }
                continue;
            };
            let n_ell = if has_ell {
                dims.len().checked_sub(n_labels)
            } else {
                (dims.len() == n_labels).then_some(0)
            }
            .ok_or_else(|| {
                cx.err(format!(
                    "input {i} has rank {}, its term in '{}' has {n_labels} labels",
                    dims.len(),
                    self.equation
                ))
            })?;
            let mut k = 0;
            for s in term {
                match s {
                    Sub::Ellipsis => {
                        let e = Shape(dims[k..k + n_ell].to_vec());
                        if let Some(cur) = &ell {
                            ell = Some(broadcast_shapes(&[cur, &e]).map_err(|m| {
                                cx.err(format!("ellipsis dims do not broadcast: {m}"))
                            })?);
                        }
                        k += n_ell;
                    }
                    Sub::Label(l) => {
                        let d = &dims[k];
                        match sizes.iter_mut().find(|(x, _)| x == l) {
                            Some((_, cur)) => {
                                *cur = match (&*cur, d) {
                                    (Dim::Known(1), x) | (x, Dim::Known(1)) => x.clone(),
                                    (a, b) if a.conflicts(b) => {
                                        return Err(cx.err(format!(
                                            "label '{}' has sizes {a} and {b}",
                                            char::from(*l)
                                        )));
                                    }
                                    (a, b) => a.refine(b),
                                };
                            }
                            None => sizes.push((*l, d.clone())),
                        }
                        k += 1;
                    }
                }
            }
        }
        let output = match eq.output {
            Some(o) => o,
            None => {
                let mut once: Vec<u8> = sizes
                    .iter()
                    .map(|(l, _)| *l)
                    .filter(|l| {
                        eq.inputs
                            .iter()
                            .flatten()
                            .filter(|s| **s == Sub::Label(*l))
                            .count()
                            == 1
                    })
                    .collect();
                once.sort_unstable();
                let mut o = Vec::new();
                if eq.inputs.iter().any(|t| t.contains(&Sub::Ellipsis)) {
                    o.push(Sub::Ellipsis);
                }
                o.extend(once.into_iter().map(Sub::Label));
                o
            }
        };
        let mut dims = Vec::new();
        for s in &output {
            match s {
                Sub::Ellipsis => match &ell {
                    Some(e) => dims.extend(e.0.iter().cloned()),
                    None => return Ok(vec![out(dtype, None)]),
                },
                Sub::Label(l) => dims.push(
                    sizes
                        .iter()
                        .find(|(x, _)| x == l)
                        .map_or(Dim::Unknown, |(_, d)| d.clone()),
                ),
            }
        }
        Ok(vec![out(dtype, Some(Shape(dims)))])
    }
}

impl Infer for Det {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        let x = cx.tensor(0)?;
        let shape = match x.dims() {
            Some(d) if d.len() < 2 => {
                return Err(cx.err(format!("input must have rank ≥ 2, got {x}")));
            }
            Some(d) => {
                let r = d.len();
                unify(cx, &d[r - 2], &d[r - 1], "matrix dims (must be square)")?;
                Some(Shape(d[..r - 2].to_vec()))
            }
            None => None,
        };
        Ok(vec![out(dtype, shape)])
    }
}

/// The dims attention works with, as far as they are known.
struct AttnDims {
    batch: Dim,
    q_heads: Dim,
    kv_heads: Dim,
    q_seq: Dim,
    kv_seq: Dim,
    head: Dim,
    v_head: Dim,
}

impl Infer for Attention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let qt = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let vt = float(cx, 2)?;
        let n_out = cx.num_outputs();
        if !(1..=4).contains(&n_out) {
            return Err(cx.err(format!("has 1 to 4 outputs, got {n_out}")));
        }
        if self.left_window < -1 || self.right_window < -1 {
            return Err(cx.err("window sizes must be ≥ -1"));
        }
        let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
        let ranks: Vec<usize> = [q, k, v].iter().filter_map(|t| t.rank()).collect();
        if ranks.windows(2).any(|w| w[0] != w[1]) {
            return Err(cx.err(format!(
                "Q, K and V must all be 3-D or all 4-D, got {q}, {k} and {v}"
            )));
        }
        let rank = ranks.first().copied();
        if let Some(r) = rank.filter(|r| !matches!(r, 3 | 4)) {
            return Err(cx.err(format!("Q, K and V must be 3-D or 4-D, got rank {r}")));
        }
        let dims = |t: &TensorType, r: usize| -> Vec<Dim> {
            t.dims().map_or(vec![Dim::Unknown; r], <[Dim]>::to_vec)
        };
        let d = match rank {
            Some(3) => {
                let hq = heads(cx, self.q_num_heads, "q_num_heads")?;
                let hkv = heads(cx, self.kv_num_heads, "kv_num_heads")?;
                let (qd, kd, vd) = (dims(q, 3), dims(k, 3), dims(v, 3));
                let head = div_dim(cx, &qd[2], hq, "Q hidden size / q_num_heads")?;
                let k_head = div_dim(cx, &kd[2], hkv, "K hidden size / kv_num_heads")?;
                Some(AttnDims {
                    batch: qd[0].clone(),
                    q_heads: Dim::Known(hq),
                    kv_heads: Dim::Known(hkv),
                    q_seq: qd[1].clone(),
                    kv_seq: unify(cx, &kd[1], &vd[1], "K and V sequence lengths")?,
                    head: unify(cx, &head, &k_head, "Q and K head sizes")?,
                    v_head: div_dim(cx, &vd[2], hkv, "V hidden size / kv_num_heads")?,
                })
            }
            Some(_) => {
                let (qd, kd, vd) = (dims(q, 4), dims(k, 4), dims(v, 4));
                Some(AttnDims {
                    batch: qd[0].clone(),
                    q_heads: qd[1].clone(),
                    kv_heads: unify(cx, &kd[1], &vd[1], "K and V head counts")?,
                    q_seq: qd[2].clone(),
                    kv_seq: unify(cx, &kd[2], &vd[2], "K and V sequence lengths")?,
                    head: unify(cx, &qd[3], &kd[3], "Q and K head sizes")?,
                    v_head: vd[3].clone(),
                })
            }
            None => None,
        };
        if let Some(d) = &d
            && let (Dim::Known(a), Dim::Known(b)) = (&d.q_heads, &d.kv_heads)
            && (*b == 0 || a % b != 0)
        {
            return Err(cx.err(format!(
                "q heads ({a}) must be a multiple of kv heads ({b})"
            )));
        }
        // Mask and cache inputs.
        if let Some(m) = cx.opt_tensor(3)?
            && (m.dtype == DType::String || m.rank().is_some_and(|r| r > 4))
        {
            return Err(cx.err(format!(
                "attn_mask must be a bool or numeric tensor of rank ≤ 4, got {m}"
            )));
        }
        if cx.has_input(4) != cx.has_input(5) {
            return Err(cx.err("past_key and past_value must be given together"));
        }
        let mut past = Dim::Known(0);
        if let (Some(pk), Some(pv)) = (cx.opt_tensor(4)?, cx.opt_tensor(5)?) {
            same_dtype(cx, 0, 4)?;
            same_dtype(cx, 2, 5)?;
            for t in [pk, pv] {
                if t.rank().is_some_and(|r| r != 4) {
                    return Err(cx.err(format!("past key/value must be 4-D, got {t}")));
                }
            }
            let (pkd, pvd) = (dims(pk, 4), dims(pv, 4));
            past = unify(cx, &pkd[2], &pvd[2], "past key and value lengths")?;
        }
        if let Some(s) = cx.opt_tensor(6)?
            && (!s.dtype.is_int() || s.rank().is_some_and(|r| r != 1))
        {
            return Err(cx.err(format!(
                "nonpad_kv_seqlen must be a 1-D i64 tensor, got {s}"
            )));
        }
        let Some(d) = d else {
            let mut types = vec![out(qt, None)];
            types.extend([
                out(qt, Some(Shape(vec![Dim::Unknown; 4]))),
                out(vt, Some(Shape(vec![Dim::Unknown; 4]))),
                out(qt, Some(Shape(vec![Dim::Unknown; 4]))),
            ]);
            types.truncate(n_out);
            return Ok(types);
        };
        let total = add_dim(&past, &d.kv_seq);
        let y = if rank == Some(3) {
            let hidden = match (&d.q_heads, &d.v_head) {
                (Dim::Known(h), v) => Dim::Known(*h).mul(v),
                _ => Dim::Unknown,
            };
            vec![d.batch.clone(), d.q_seq.clone(), hidden]
        } else {
            vec![
                d.batch.clone(),
                d.q_heads.clone(),
                d.q_seq.clone(),
                d.v_head.clone(),
            ]
        };
        let kv = |last: &Dim| {
            vec![
                d.batch.clone(),
                d.kv_heads.clone(),
                total.clone(),
                last.clone(),
            ]
        };
        let mut types = vec![
            out(qt, Some(Shape(y))),
            out(qt, Some(Shape(kv(&d.head)))),
            out(vt, Some(Shape(kv(&d.v_head)))),
            out(
                qt,
                Some(Shape(vec![
                    d.batch.clone(),
                    d.q_heads.clone(),
                    d.q_seq.clone(),
                    total.clone(),
                ])),
            ),
        ];
        types.truncate(n_out);
        Ok(types)
    }
}

impl Infer for RotaryEmbedding {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let x = cx.tensor(0)?;
        let head = match x.dims() {
            Some([_, _, hidden]) => {
                let h = heads(cx, self.num_heads, "num_heads")?;
                div_dim(cx, hidden, h, "hidden size / num_heads")?
            }
            Some([_, _, _, head]) => head.clone(),
            Some(_) => return Err(cx.err(format!("input must be 3-D or 4-D, got {x}"))),
            None => Dim::Unknown,
        };
        let rot = self.rotary_embedding_dim;
        if rot < 0 || rot % 2 != 0 {
            return Err(cx.err(format!(
                "rotary_embedding_dim must be even and ≥ 0, got {rot}"
            )));
        }
        if let Dim::Known(h) = head
            && (h % 2 != 0 || rot as u64 > h)
        {
            return Err(cx.err(format!(
                "head size {h} must be even and ≥ rotary_embedding_dim {rot}"
            )));
        }
        let want = if cx.has_input(3) { 2 } else { 3 };
        for i in 1..3 {
            let t = cx.tensor(i)?;
            if t.rank().is_some_and(|r| r != want) {
                return Err(cx.err(format!(
                    "input {i} must be {want}-D {}, got {t}",
                    if want == 2 {
                        "with position_ids"
                    } else {
                        "without position_ids"
                    }
                )));
            }
        }
        if let Some(p) = cx.opt_tensor(3)?
            && (!p.dtype.is_int() || p.rank().is_some_and(|r| r != 2))
        {
            return Err(cx.err(format!("position_ids must be a 2-D i64 tensor, got {p}")));
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

impl Infer for SwiGlu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        let (a, b) = (
            Type::Tensor(cx.tensor(0)?.clone()),
            Type::Tensor(cx.tensor(1)?.clone()),
        );
        if !compatible(&a, &b) {
            return Err(cx.err(format!("A and B must have the same shape, got {a} and {b}")));
        }
        let Type::Tensor(t) = crate::infer::refine(&a, &b) else {
            return Err(cx.err("inputs must be tensors"));
        };
        Ok(vec![out(dtype, t.shape)])
    }
}

impl Infer for LinearAttention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let hq = heads(cx, Some(self.q_num_heads), "q_num_heads")?;
        let hkv = heads(cx, Some(self.kv_num_heads), "kv_num_heads")?;
        if hq % hkv != 0 {
            return Err(cx.err(format!(
                "q_num_heads ({hq}) must be a multiple of kv_num_heads ({hkv})"
            )));
        }
        let n_out = cx.num_outputs();
        if !(1..=2).contains(&n_out) {
            return Err(cx.err(format!("has 1 or 2 outputs, got {n_out}")));
        }
        let needs_decay = matches!(self.update_rule, UpdateRule::Gated | UpdateRule::GatedDelta);
        let needs_beta = matches!(self.update_rule, UpdateRule::Delta | UpdateRule::GatedDelta);
        if needs_decay && !cx.has_input(4) {
            return Err(cx.err(format!(
                "update_rule {} needs the decay input (4)",
                self.update_rule.keyword()
            )));
        }
        if needs_beta && !cx.has_input(5) {
            return Err(cx.err(format!(
                "update_rule {} needs the beta input (5)",
                self.update_rule.keyword()
            )));
        }
        let mut d3 = Vec::new();
        for i in [0, 1, 2, 4, 5] {
            let Some(t) = cx.opt_tensor(i)? else {
                d3.push(vec![Dim::Unknown; 3]);
                continue;
            };
            if i >= 4 {
                same_dtype(cx, 0, i)?;
            }
            match t.dims() {
                Some(d) if d.len() == 3 => d3.push(d.to_vec()),
                Some(_) => return Err(cx.err(format!("input {i} must be 3-D, got {t}"))),
                None => d3.push(vec![Dim::Unknown; 3]),
            }
        }
        let (q, k, v) = (&d3[0], &d3[1], &d3[2]);
        let batch = unify(cx, &q[0], &k[0], "Q and K batch sizes")?;
        let batch = unify(cx, &batch, &v[0], "Q and V batch sizes")?;
        let seq = unify(cx, &q[1], &k[1], "Q and K lengths")?;
        let seq = unify(cx, &seq, &v[1], "Q and V lengths")?;
        let dk = div_dim(cx, &q[2], hq, "query hidden size / q_num_heads")?;
        let dk2 = div_dim(cx, &k[2], hkv, "key hidden size / kv_num_heads")?;
        let dk = unify(cx, &dk, &dk2, "query and key head sizes")?;
        let dv = div_dim(cx, &v[2], hkv, "value hidden size / kv_num_heads")?;
        let mut state_dtype = dtype;
        let mut state = vec![batch.clone(), Dim::Known(hkv), dk, dv.clone()];
        if let Some(p) = cx.opt_tensor(3)? {
            state_dtype = float(cx, 3)?;
            match p.dims() {
                Some(pd) if pd.len() == 4 => {
                    for (s, p) in state.iter_mut().zip(pd) {
                        *s = unify(cx, s, p, "past_state dims")?;
                    }
                }
                Some(_) => return Err(cx.err(format!("past_state must be 4-D, got {p}"))),
                None => {}
            }
        }
        let mut types = vec![
            out(
                dtype,
                Some(Shape(vec![batch, seq, Dim::Known(hq).mul(&dv)])),
            ),
            out(state_dtype, Some(Shape(state))),
        ];
        types.truncate(n_out);
        Ok(types)
    }
}

impl FlexAttention {
    /// The element type scores and probabilities are computed in.
    pub fn precision(&self, input: DType) -> DType {
        self.softmax_precision.unwrap_or(if input == DType::F64 {
            DType::F64
        } else {
            DType::F32
        })
    }

    /// The type of the scores and probabilities (`[B, Hq, L, S]`) for query `q` and key `k`: what the
    /// modifier subgraphs take and return.
    pub fn scores_type(&self, q: &TensorType, k: &TensorType) -> TensorType {
        let at = |t: &TensorType, i: usize| {
            t.dims()
                .and_then(|d| d.get(i).cloned())
                .unwrap_or(Dim::Unknown)
        };
        TensorType::new(
            self.precision(q.dtype),
            Shape(vec![at(q, 0), at(q, 1), at(q, 2), at(k, 2)]),
        )
    }
}

impl Infer for FlexAttention {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        same_dtype(cx, 0, 1)?;
        same_dtype(cx, 0, 2)?;
        let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
        for (i, t) in [q, k, v].into_iter().enumerate() {
            if t.rank().is_some_and(|r| r != 4) {
                return Err(cx.err(format!("input {i} must be 4-D, got {t}")));
            }
        }
        let d = |t: &TensorType| t.dims().map_or(vec![Dim::Unknown; 4], <[Dim]>::to_vec);
        let (qd, kd, vd) = (d(q), d(k), d(v));
        unify(cx, &qd[3], &kd[3], "Q and K head sizes")?;
        unify(cx, &kd[2], &vd[2], "K and V sequence lengths")?;
        let kv_heads = unify(cx, &kd[1], &vd[1], "K and V head counts")?;
        if let (Dim::Known(a), Dim::Known(b)) = (&qd[1], &kv_heads)
            && (*b == 0 || a % b != 0)
        {
            return Err(cx.err(format!(
                "q heads ({a}) must be a multiple of kv heads ({b})"
            )));
        }
        let scores = Type::Tensor(self.scores_type(q, k));
        for (name, g) in [("score_mod", &self.score_mod), ("prob_mod", &self.prob_mod)] {
            let Some(g) = g else { continue };
            if g.inputs.len() != 1 || g.outputs.len() != 1 {
                return Err(cx.err(format!(
                    "{name} must take one input and return one output, it has {} and {}",
                    g.inputs.len(),
                    g.outputs.len()
                )));
            }
            let o = g.ty(g.outputs[0]);
            if !compatible(o, &scores) {
                return Err(cx.err(format!("{name} returns {o}, scores are {scores}")));
            }
        }
        Ok(vec![out(
            dtype,
            Some(Shape(vec![
                qd[0].clone(),
                qd[1].clone(),
                qd[2].clone(),
                vd[3].clone(),
            ])),
        )])
    }
}

#[cfg(test)]
mod tests {
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
}
