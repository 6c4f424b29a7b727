//! Decomposition of `attention` (ONNX Attention, opsets 23–24) into ops with native kernels. It
//! computes what the reference interpreter's kernel computes, step by step:
//!
//! 1. 3-D inputs `[B, S, H·D]` are reshaped to `[B, S, H, D]` and transposed to `[B, H, S, D]`;
//! 2. `present_key` / `present_value` are `concat(past, new)` along the sequence axis (the new K / V
//!    when there is no cache);
//! 3. Q and K are each multiplied by `√scale` (the default scale is `1/√D`), K is transposed and, for
//!    grouped-query attention, both K and V are repeated per query head (`unsqueeze`, `expand`,
//!    `reshape`); `matmul` gives the scores `[B, Hq, Sq, L]` (`qk_output=raw`);
//! 4. soft-capping is `softcap · tanh(scores / softcap)` (`softcapped`);
//! 5. the bias is the attention mask (a bool mask through `where(mask, 0, −∞)`, a float mask cast to
//!    the input type, padded with −∞ up to the `L` keys) plus the structural mask: the causal mask and
//!    sliding window as a constant 0/−∞ `[Sq, L]` tensor (offset by the past length), or, with
//!    `nonpad_kv_seqlen`, computed per batch from it (`j − i` against `nonpad − Sq`, keys at or beyond
//!    `nonpad` masked) with comparisons, `or` and `where`; it is added to the scores (`biased`);
//! 6. `softmax` over the keys; rows whose bias is −∞ everywhere (a `reduce max` of the bias equal to
//!    −∞) are set to 0 by a `where` (`probs`); rows a constant bias never masks completely skip it;
//! 7. `matmul` with V, and for 3-D inputs the transpose and reshape back to `[B, Sq, Hq·Dv]`.
//!
//! The optional `qk_matmul_output` result is defined by the step its mode names (an `identity` of
//! the scores when that step does not occur, e.g. `softcapped` without soft-capping).
//!
//! The inputs are f32; a `softmax_precision` of f64 is computed in f32 (the native softmax is f32
//! only): the probabilities, which the interpreter rounds from f64 to the f32 result type, then differ
//! by a few ulp at most.
//!
//! Left as `attention` (counted with the reason): inputs other than f32 (native `matmul` and `softmax`
//! are f32 only; a decomposition in f16/bf16 would not run natively either), a `softmax_precision` of
//! f16/bf16, unknown ranks or head counts, unknown head
//! sizes where a reshape needs them (3-D inputs, GQA, the default scale), and unknown sequence
//! lengths where a mask needs them (the causal/window/`nonpad_kv_seqlen` masks, a mask shorter than
//! the keys).

use carve_ir::ops::elementwise::{
    Add, Cast, Div, Equal, Greater, GreaterOrEqual, Less, Mul, Or, Sub, Tanh, Where,
};
use carve_ir::ops::linalg::{Attention, LinalgOp, MatMul, QkOutput};
use carve_ir::ops::movement::{Concat, Expand, Identity, Pad, Reshape, Transpose, Unsqueeze};
use carve_ir::ops::reduce::{Reduce, ReduceKind, Softmax, SoftmaxKind};
use carve_ir::{DType, Dim, Graph, Op, ValueId};

use super::{Builder, DecomposeStats, dtype_of, rewrite};
use crate::PassError;

/// Replaces every `attention` of the top-level graph `g` that the module doc describes by the
/// equivalent chain of ops with native kernels, then re-infers shapes.
pub fn decompose_attention(g: &mut Graph) -> Result<DecomposeStats, PassError> {
    rewrite(
        g,
        "attention",
        |op| matches!(op, Op::Linalg(LinalgOp::Attention(_))),
        |g, i| {
            let Op::Linalg(LinalgOp::Attention(a)) = &g.nodes[i].op else {
                return Err("not an attention".into());
            };
            let a = a.clone();
            let plan = Plan::new(g, i, &a)?;
            emit(g, i, &a, &plan)
        },
    )
}

/// What the rewrite of one attention node needs to know.
struct Plan {
    q: ValueId,
    k: ValueId,
    v: ValueId,
    mask: Option<ValueId>,
    past: Option<(ValueId, ValueId)>,
    nonpad: Option<ValueId>,
    /// Q, K and V are `[B, S, H·D]`.
    rank3: bool,
    hq: u64,
    hkv: u64,
    /// Q/K and V head sizes, where known.
    d: Option<u64>,
    dv: Option<u64>,
    /// Query and total key lengths, where known.
    sq: Option<u64>,
    l: Option<u64>,
    /// The cache length (0 without one), where known.
    past_len: Option<u64>,
    /// `√scale`.
    scale_sqrt: f32,
    /// `(rank, keys)`: the mask is padded with −∞ by `keys` along its last axis (of `rank`).
    mask_pad: Option<(usize, u64)>,
    /// The node's results: Y, then the optional present key, present value and scores.
    outputs: Vec<ValueId>,
}

/// The dims of a tensor value, or why there are none.
fn dims_of(g: &Graph, v: ValueId, what: &str) -> Result<Vec<Dim>, String> {
    let t = g
        .ty(v)
        .as_tensor()
        .ok_or_else(|| format!("{what} is not a tensor"))?;
    t.dims()
        .map(<[Dim]>::to_vec)
        .ok_or_else(|| format!("{what} has an unknown rank"))
}

impl Plan {
    fn new(g: &Graph, at: usize, a: &Attention) -> Result<Plan, String> {
        let n = &g.nodes[at];
        let input = |k: usize| n.inputs.get(k).copied().flatten();
        let (Some(q), Some(k), Some(v)) = (input(0), input(1), input(2)) else {
            return Err("Q, K or V is missing".into());
        };
        let past = match (input(4), input(5)) {
            (Some(pk), Some(pv)) => Some((pk, pv)),
            _ => None,
        };
        let mut typed = vec![q, k, v];
        typed.extend(past.iter().flat_map(|&(pk, pv)| [pk, pv]));
        for &x in &typed {
            match dtype_of(g, x) {
                Some(DType::F32) => {}
                Some(dt) => {
                    return Err(format!(
                        "{dt} inputs (native matmul and softmax are f32 only)"
                    ));
                }
                None => return Err("an input is not a tensor".into()),
            }
        }
        // An f64 softmax precision is computed in f32: its probabilities, rounded to the f32 result
        // type as the interpreter does, differ by a few ulp at most.
        if let Some(p) = a.softmax_precision
            && !matches!(p, DType::F32 | DType::F64)
        {
            return Err(format!(
                "softmax_precision {p} (narrower than the f32 inputs)"
            ));
        }
        let (qd, kd, vd) = (
            dims_of(g, q, "Q")?,
            dims_of(g, k, "K")?,
            dims_of(g, v, "V")?,
        );
        let rank3 = qd.len() == 3;
        let (hq, hkv, d, dv, sq, skv) = if rank3 {
            let heads = |h: Option<i64>| h.and_then(|h| u64::try_from(h).ok()).filter(|&h| h > 0);
            let (Some(hq), Some(hkv)) = (heads(a.q_num_heads), heads(a.kv_num_heads)) else {
                return Err("3-D inputs without head counts".into());
            };
            let (Some(qh), Some(vh)) = (qd[2].known(), vd[2].known()) else {
                return Err("3-D inputs with unknown hidden sizes".into());
            };
            (
                hq,
                hkv,
                Some(qh / hq),
                Some(vh / hkv),
                qd[1].clone(),
                kd[1].clone(),
            )
        } else if qd.len() == 4 {
            let (Some(hq), Some(hkv)) = (qd[1].known(), kd[1].known()) else {
                return Err("unknown head counts".into());
            };
            (
                hq,
                hkv,
                qd[3].known(),
                vd[3].known(),
                qd[2].clone(),
                kd[2].clone(),
            )
        } else {
            return Err("Q is neither 3-D nor 4-D".into());
        };
        if hkv == 0 || hq % hkv != 0 {
            return Err("q heads are not a multiple of kv heads".into());
        }
        if hq != hkv && (d.is_none() || dv.is_none()) {
            return Err("grouped-query attention with unknown head sizes".into());
        }
        let (past_len, l_dim) = match past {
            Some((pk, _)) => {
                let p = dims_of(g, pk, "past_key")?;
                let p = p.get(2).and_then(Dim::known);
                let l = match (p, skv.known()) {
                    (Some(p), Some(s)) => Dim::Known(p + s),
                    _ => Dim::Unknown,
                };
                (p, l)
            }
            None => (Some(0), skv.clone()),
        };
        let (sq, l) = (sq.known(), l_dim.known());
        let mask = input(3);
        let mut mask_pad = None;
        if let Some(m) = mask {
            let md = dims_of(g, m, "attn_mask")?;
            let Some(cols) = md.last() else {
                return Err("a rank-0 attn_mask".into());
            };
            if *cols != l_dim || matches!(cols, Dim::Unknown) {
                match (cols.known(), l) {
                    (Some(c), Some(l)) if c < l => mask_pad = Some((md.len(), l - c)),
                    (Some(c), Some(l)) if c == l => {}
                    _ => return Err("attn_mask with an unknown key length".into()),
                }
            }
            if dtype_of(g, m).is_none_or(|t| t == DType::String) {
                return Err("attn_mask is not numeric".into());
            }
        }
        let nonpad = input(6);
        let structural =
            a.is_causal || a.left_window >= 0 || a.right_window >= 0 || nonpad.is_some();
        if structural && (sq.is_none() || l.is_none() || past_len.is_none()) {
            return Err("causal, window or padding mask with unknown sequence lengths".into());
        }
        let scale_sqrt = match (a.scale, d) {
            (Some(s), _) => s.sqrt(),
            (None, Some(d)) => (1.0 / (d as f64).sqrt()).sqrt() as f32,
            (None, None) => return Err("default scale with an unknown head size".into()),
        };
        Ok(Plan {
            q,
            k,
            v,
            mask,
            past,
            nonpad,
            rank3,
            hq,
            hkv,
            d,
            dv,
            sq,
            l,
            past_len,
            scale_sqrt,
            mask_pad,
            outputs: n.outputs.clone(),
        })
    }
}

/// A node that defines `out` when given (one of the attention's results), else a new value.
fn make(
    b: &mut Builder,
    suffix: &str,
    op: impl Into<Op>,
    inputs: &[ValueId],
    out: Option<ValueId>,
) -> Result<ValueId, String> {
    match out {
        Some(out) => b.define(suffix, op, inputs, out),
        None => b.node(suffix, op, inputs),
    }
}

/// Appends the chain replacing node `at`.
fn emit(g: &mut Graph, at: usize, a: &Attention, p: &Plan) -> Result<(), String> {
    let f = DType::F32;
    let mut b = Builder::new(g, at, "attention");
    let b = &mut b;
    let out = |k: usize| p.outputs.get(k).copied();
    let hq = p.hq as i64;
    let hkv = p.hkv as i64;
    // 1. Heads first.
    let (mut q, mut k, mut v) = (p.q, p.k, p.v);
    if p.rank3 {
        let (Some(d), Some(dv)) = (p.d, p.dv) else {
            return Err("3-D inputs with unknown head sizes".into());
        };
        for (x, name, h, hd) in [
            (&mut q, "q", hq, d),
            (&mut k, "k", hkv, d),
            (&mut v, "v", hkv, dv),
        ] {
            let shape = b.axes(&format!("{name}_heads_shape"), &[0, 0, h, hd as i64]);
            let r = b.node(&format!("{name}_heads"), Reshape::default(), &[*x, shape])?;
            *x = b.node(
                &format!("{name}_heads_first"),
                Transpose {
                    perm: Some(vec![0, 2, 1, 3]),
                },
                &[r],
            )?;
        }
    }
    // 2. The caches.
    let present = |b: &mut Builder, name: &str, new: ValueId, past: Option<ValueId>, o| match past {
        Some(past) => make(
            b,
            &format!("present_{name}"),
            Concat { axis: 2 },
            &[past, new],
            o,
        ),
        None => match o {
            Some(o) => b.define(&format!("present_{name}"), Identity {}, &[new], o),
            None => Ok(new),
        },
    };
    let k = present(b, "key", k, p.past.map(|x| x.0), out(1))?;
    let v = present(b, "value", v, p.past.map(|x| x.1), out(2))?;
    // 3. Scaled scores.
    let s = b.scalar("scale_sqrt", f, f64::from(p.scale_sqrt))?;
    let q = b.node("q_scaled", Mul {}, &[q, s])?;
    let k = b.node("k_scaled", Mul {}, &[k, s])?;
    let mut kt = b.node(
        "k_transposed",
        Transpose {
            perm: Some(vec![0, 1, 3, 2]),
        },
        &[k],
    )?;
    let mut v = v;
    if p.hq != p.hkv {
        let (Some(d), Some(dv)) = (p.d, p.dv) else {
            return Err("grouped-query attention with unknown head sizes".into());
        };
        let group = hq / hkv;
        let rep = b.axes("kv_repeat", &[1, 1, group, 1, 1]);
        let ax = b.axes("kv_group_axis", &[2]);
        for (x, name, shape) in [
            (&mut kt, "k", [0, hq, d as i64, -1]),
            (&mut v, "v", [0, hq, -1, dv as i64]),
        ] {
            let u = b.node(&format!("{name}_grouped"), Unsqueeze {}, &[*x, ax])?;
            let e = b.node(&format!("{name}_repeated"), Expand {}, &[u, rep])?;
            let shape = b.axes(&format!("{name}_heads_shape_q"), &shape);
            *x = b.node(
                &format!("{name}_per_q_head"),
                Reshape::default(),
                &[e, shape],
            )?;
        }
    }
    let want = |mode: QkOutput| out(3).filter(|_| a.qk_output == mode);
    let mut scores = make(b, "scores", MatMul {}, &[q, kt], want(QkOutput::Raw))?;
    // 4. Soft-capping.
    if a.softcap > 0.0 {
        let c = b.scalar("softcap", f, f64::from(a.softcap))?;
        let x = b.node("softcap_div", Div {}, &[scores, c])?;
        let x = b.node("softcap_tanh", Tanh {}, &[x])?;
        scores = make(b, "softcapped", Mul {}, &[x, c], want(QkOutput::Softcapped))?;
    } else if let Some(o) = want(QkOutput::Softcapped) {
        scores = b.define("softcapped", Identity {}, &[scores], o)?;
    }
    // 5. The bias.
    let bias = bias(b, a, p)?;
    if let Some(bias) = &bias {
        scores = make(
            b,
            "biased",
            Add {},
            &[scores, bias.value],
            want(QkOutput::Biased),
        )?;
    } else if let Some(o) = want(QkOutput::Biased) {
        scores = b.define("biased", Identity {}, &[scores], o)?;
    }
    // 6. Softmax; rows masked everywhere become 0.
    let softmax = Softmax {
        kind: SoftmaxKind::Softmax,
        axis: -1,
        coerce_2d: false,
    };
    let probs = match bias.filter(|x| x.may_vanish) {
        Some(bias) => {
            let sm = b.node("softmax", softmax, &[scores])?;
            let ax = b.axes("row_max_axes", &[-1]);
            let max = Reduce {
                kind: ReduceKind::Max,
                keepdims: true,
                noop_with_empty_axes: false,
            };
            let m = b.node("bias_row_max", max, &[bias.value, ax])?;
            let mut consts = bias.consts;
            let (zero, ninf) = zero_and_neg_inf(b, &mut consts)?;
            let masked = b.node("row_masked", Equal {}, &[m, ninf])?;
            let inputs = [masked, zero, sm];
            make(b, "probs", Where {}, &inputs, want(QkOutput::Probs))?
        }
        None => make(b, "probs", softmax, &[scores], want(QkOutput::Probs))?,
    };
    // 7. The weighted values.
    let y = out(0).ok_or_else(|| "the node has no result".to_string())?;
    if p.rank3 {
        let dv =
            p.dv.ok_or_else(|| "3-D inputs with unknown head sizes".to_string())?;
        let y4 = b.node("y_heads", MatMul {}, &[probs, v])?;
        let t = b.node(
            "y_seq_first",
            Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            },
            &[y4],
        )?;
        let shape = b.axes("y_shape", &[0, 0, hq * dv as i64]);
        b.define("y", Reshape::default(), &[t, shape], y)?;
    } else {
        b.define("y", MatMul {}, &[probs, v], y)?;
    }
    Ok(())
}

/// The additive bias of the scores.
struct Bias {
    value: ValueId,
    /// The constants 0 and −∞, when the bias needed them.
    consts: Option<(ValueId, ValueId)>,
    /// Some row may be −∞ everywhere.
    may_vanish: bool,
}

/// The f32 constants 0 and −∞, created on first use.
fn zero_and_neg_inf(
    b: &mut Builder,
    consts: &mut Option<(ValueId, ValueId)>,
) -> Result<(ValueId, ValueId), String> {
    if let Some(c) = *consts {
        return Ok(c);
    }
    let f = DType::F32;
    let c = (
        b.scalar("zero", f, 0.0)?,
        b.scalar("neg_inf", f, f64::NEG_INFINITY)?,
    );
    *consts = Some(c);
    Ok(c)
}

/// The additive bias, if there is a mask of any kind.
fn bias(b: &mut Builder, a: &Attention, p: &Plan) -> Result<Option<Bias>, String> {
    let f = DType::F32;
    let mut parts = Vec::new();
    let mut may_vanish = false;
    let windowed = a.is_causal || a.left_window >= 0 || a.right_window >= 0;
    if p.mask.is_none() && p.nonpad.is_none() && !windowed {
        return Ok(None);
    }
    let mut consts = None;
    if let Some(m) = p.mask {
        let mut m = m;
        match dtype_of(b.g, m) {
            Some(DType::Bool) => {
                let (zero, ninf) = zero_and_neg_inf(b, &mut consts)?;
                m = b.node("mask_bias", Where {}, &[m, zero, ninf])?;
            }
            Some(DType::F32) => {}
            _ => {
                let cast = Cast {
                    to: f,
                    ..Cast::default()
                };
                m = b.node("mask_cast", cast, &[m])?;
            }
        }
        if let Some((rank, keys)) = p.mask_pad {
            let mut pads = vec![0i64; 2 * rank];
            pads[2 * rank - 1] = keys as i64;
            let pads = b.axes("mask_pads", &pads);
            let (_, ninf) = zero_and_neg_inf(b, &mut consts)?;
            m = b.node_opt(
                "mask_padded",
                Pad::default(),
                vec![Some(m), Some(pads), Some(ninf)],
            )?;
        }
        parts.push(m);
        may_vanish = true;
    }
    if let Some(np) = p.nonpad {
        let (Some(sq), Some(l)) = (p.sq, p.l) else {
            return Err("padding mask with unknown sequence lengths".into());
        };
        let mut np = np;
        if dtype_of(b.g, np) != Some(DType::I64) {
            let cast = Cast {
                to: DType::I64,
                ..Cast::default()
            };
            np = b.node("nonpad_i64", cast, &[np])?;
        }
        let shape = b.axes("nonpad_shape", &[-1, 1, 1, 1]);
        let np = b.node("nonpad_per_batch", Reshape::default(), &[np, shape])?;
        let keys: Vec<f64> = (0..l).map(|j| j as f64).collect();
        let keys = b.values("key_index", DType::I64, &[l], &keys)?;
        let mut cond = b.node("key_padded", GreaterOrEqual {}, &[keys, np])?;
        if windowed {
            // D[i, j] = j − i against the per-batch offset nonpad − Sq.
            let dist: Vec<f64> = (0..sq)
                .flat_map(|i| (0..l).map(move |j| j as f64 - i as f64))
                .collect();
            let dist = b.values("key_minus_query", DType::I64, &[sq, l], &dist)?;
            let sqc = b.scalar("query_len", DType::I64, sq as f64)?;
            let off = b.node("offset", Sub {}, &[np, sqc])?;
            let mut conds = Vec::new();
            if a.is_causal {
                conds.push(b.node("causal_masked", Greater {}, &[dist, off])?);
            }
            if a.left_window >= 0 {
                let w = b.scalar("left_window", DType::I64, a.left_window as f64)?;
                let lim = b.node("left_limit", Sub {}, &[off, w])?;
                conds.push(b.node("left_masked", Less {}, &[dist, lim])?);
            }
            if a.right_window >= 0 {
                let w = b.scalar("right_window", DType::I64, a.right_window as f64)?;
                let lim = b.node("right_limit", Add {}, &[off, w])?;
                conds.push(b.node("right_masked", Greater {}, &[dist, lim])?);
            }
            for (i, c) in conds.into_iter().enumerate() {
                cond = b.node(&format!("masked_{i}"), Or {}, &[cond, c])?;
            }
        }
        let (zero, ninf) = zero_and_neg_inf(b, &mut consts)?;
        parts.push(b.node("structural_bias", Where {}, &[cond, ninf, zero])?);
        may_vanish = true;
    } else if windowed {
        let (Some(sq), Some(l), Some(past)) = (p.sq, p.l, p.past_len) else {
            return Err("causal or window mask with unknown sequence lengths".into());
        };
        let off = past as i64;
        let mut vals = Vec::with_capacity((sq * l) as usize);
        let mut vanishing_row = false;
        for i in 0..sq as i64 {
            let mut all = true;
            for j in 0..l as i64 {
                let diff = i + off - j;
                let masked = (a.is_causal && j > i + off)
                    || (a.left_window >= 0 && diff > a.left_window)
                    || (a.right_window >= 0 && -diff > a.right_window);
                all &= masked;
                vals.push(if masked { f64::NEG_INFINITY } else { 0.0 });
            }
            vanishing_row |= all;
        }
        parts.push(b.values("structural_bias", f, &[sq, l], &vals)?);
        may_vanish |= vanishing_row;
    }
    let value = match parts.as_slice() {
        [] => return Ok(None),
        [x] => *x,
        [x, y, ..] => b.node("bias", Add {}, &[*x, *y])?,
    };
    Ok(Some(Bias {
        value,
        consts,
        may_vanish,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::text;

    fn decompose(src: &str) -> (Graph, DecomposeStats) {
        let mut g = text::parse(src).expect("test graph parses");
        let stats = decompose_attention(&mut g).expect("decomposes");
        carve_ir::verify::verify(&g).expect("verifies");
        (g, stats)
    }

    fn ops(g: &Graph) -> Vec<&'static str> {
        g.nodes
            .iter()
            .map(|n| n.op.name())
            .filter(|&n| n != "const")
            .collect()
    }

    /// The node (not a constant) that defines `v`.
    fn producer_op(g: &Graph, v: ValueId) -> &'static str {
        g.producer(v).map_or("none", |n| n.op.name())
    }

    #[test]
    fn gqa_with_cache_causal_and_raw_scores() {
        let (g, stats) = decompose(
            "graph @g(%q: f32[1,4,2,8], %k: f32[1,2,3,8], %v: f32[1,2,3,8], %pk: f32[1,2,1,8], %pv: f32[1,2,1,8]) -> (f32[1,4,2,8], f32[1,2,4,8], f32[1,2,4,8], f32[1,4,2,4]) {
  %0, %1, %2, %3 = attention(%q, %k, %v, _, %pk, %pv) {is_causal=true} : f32[1,4,2,8], f32[1,2,4,8], f32[1,2,4,8], f32[1,4,2,4]
  return %0, %1, %2, %3
}
",
        );
        assert_eq!((stats.decomposed, stats.kept), (1, 0));
        // The caches are concatenations, the raw scores the first matmul, Y the last one; the causal
        // mask (offset by the past length 1) never masks a whole row, so there is no row check.
        assert_eq!(producer_op(&g, g.outputs[1]), "concat");
        assert_eq!(producer_op(&g, g.outputs[2]), "concat");
        assert_eq!(producer_op(&g, g.outputs[3]), "matmul");
        assert_eq!(producer_op(&g, g.outputs[0]), "matmul");
        assert!(!ops(&g).contains(&"where"), "{}", text::print(&g));
        insta::assert_snapshot!(text::print(&g));
    }

    #[test]
    fn three_d_with_short_bool_mask_and_softcap() {
        let (g, stats) = decompose(
            "graph @g(%q: f32[2,3,8], %k: f32[2,5,8], %v: f32[2,5,4], %m: bool[3,4]) -> (f32[2,3,4], f32[2,2,3,5]) {
  %0, %1, %2, %3 = attention(%q, %k, %v, %m) {kv_num_heads=2, q_num_heads=2, qk_output=softcapped, scale=0.5, softcap=3.0} : f32[2,3,4], f32[2,2,5,4], f32[2,2,5,2], f32[2,2,3,5]
  return %0, %3
}
",
        );
        assert_eq!(stats.decomposed, 1);
        // The present outputs (unused here, there is no cache) are identities of the heads-first K/V;
        // the scores output is the soft-capping's last step.
        let n = g.nodes.iter().find(|n| n.op.name() == "attention");
        assert!(n.is_none());
        assert_eq!(producer_op(&g, g.outputs[1]), "mul");
        assert_eq!(producer_op(&g, g.outputs[0]), "reshape");
        let printed = text::print(&g);
        // The bool mask covers 4 of the 5 keys: padded with −∞ on the last axis.
        assert!(printed.contains("pad("), "{printed}");
        assert!(printed.contains("where("), "{printed}");
        insta::assert_snapshot!(printed);
    }

    #[test]
    fn nonpad_lengths_with_a_left_window_compute_the_mask() {
        let (g, _) = decompose(
            "graph @g(%q: f32[2,1,2,4], %k: f32[2,1,4,4], %v: f32[2,1,4,4], %n: i64[2]) -> (f32[2,1,2,4]) {
  %0 = attention(%q, %k, %v, _, _, _, %n) {is_causal=true, left_window=1} : f32[2,1,2,4]
  return %0
}
",
        );
        let o = ops(&g);
        for op in [
            "greater_or_equal",
            "greater",
            "less",
            "or",
            "softmax",
            "where",
        ] {
            assert!(o.contains(&op), "{op} missing from {o:?}");
        }
        insta::assert_snapshot!(text::print(&g));
    }

    #[test]
    fn the_row_check_is_there_only_where_a_row_can_be_masked_everywhere() {
        // A window of 0 on both sides: query i sees key i only. With 2 queries and 3 keys every row
        // keeps a key (no row check); with 3 queries and 2 keys row 2 sees none (row check).
        let window = |sq: u64, skv: u64| {
            format!(
                "graph @g(%q: f32[1,1,{sq},4], %k: f32[1,1,{skv},4], %v: f32[1,1,{skv},4]) -> (f32[1,1,{sq},4]) {{
  %0 = attention(%q, %k, %v) {{left_window=0, right_window=0}} : f32[1,1,{sq},4]
  return %0
}}
"
            )
        };
        let (g, _) = decompose(&window(2, 3));
        assert!(!ops(&g).contains(&"where"), "{:?}", ops(&g));
        let (g, _) = decompose(&window(3, 2));
        assert!(ops(&g).contains(&"where"), "{:?}", ops(&g));
        // A float mask may hold −∞ rows.
        let (g, _) = decompose(
            "graph @g(%q: f32[1,1,2,4], %k: f32[1,1,3,4], %v: f32[1,1,3,4], %m: f32[2,3]) -> (f32[1,1,2,4]) {
  %0 = attention(%q, %k, %v, %m) : f32[1,1,2,4]
  return %0
}
",
        );
        assert_eq!(
            ops(&g),
            [
                "mul",
                "mul",
                "transpose",
                "matmul",
                "add",
                "softmax",
                "reduce",
                "equal",
                "where",
                "matmul"
            ]
        );
    }

    #[test]
    fn a_missing_scores_step_is_an_identity() {
        let (g, _) = decompose(
            "graph @g(%q: f32[1,1,2,4], %k: f32[1,1,3,4], %v: f32[1,1,3,4]) -> (f32[1,1,2,4], f32[1,1,2,3]) {
  %0, %1, %2, %3 = attention(%q, %k, %v) {qk_output=biased} : f32[1,1,2,4], f32[1,1,3,4], f32[1,1,3,4], f32[1,1,2,3]
  return %0, %3
}
",
        );
        assert_eq!(producer_op(&g, g.outputs[1]), "identity");
    }

    #[test]
    fn unsupported_forms_stay_attention_with_reasons() {
        for (src, reason) in [
            (
                "graph @g(%q: f16[1,1,2,4], %k: f16[1,1,3,4], %v: f16[1,1,3,4]) -> (f16[1,1,2,4]) {
  %0 = attention(%q, %k, %v) : f16[1,1,2,4]
  return %0
}
",
                "f16 inputs",
            ),
            (
                "graph @g(%q: f32[1,1,S,4], %k: f32[1,1,T,4], %v: f32[1,1,T,4]) -> (f32[1,1,S,4]) {
  %0 = attention(%q, %k, %v) {is_causal=true} : f32[1,1,S,4]
  return %0
}
",
                "unknown sequence lengths",
            ),
            (
                "graph @g(%q: f32[1,4,2,?], %k: f32[1,2,3,?], %v: f32[1,2,3,?]) -> (f32[1,4,2,?]) {
  %0 = attention(%q, %k, %v) {scale=0.5} : f32[1,4,2,?]
  return %0
}
",
                "grouped-query attention with unknown head sizes",
            ),
        ] {
            let (g, stats) = decompose(src);
            assert_eq!(ops(&g), ["attention"], "{src}");
            assert_eq!(stats.kept, 1);
            let (r, n) = stats.reasons.iter().next().expect("a reason");
            assert!(r.contains(reason) && *n == 1, "{r}");
        }
    }

    #[test]
    fn symbolic_lengths_without_masks_decompose() {
        let (g, stats) = decompose(
            "graph @g(%q: f32[B,2,S,4], %k: f32[B,2,T,4], %v: f32[B,2,T,4]) -> (f32[B,2,S,4]) {
  %0 = attention(%q, %k, %v) : f32[B,2,S,4]
  return %0
}
",
        );
        assert_eq!(stats.decomposed, 1);
        assert_eq!(
            ops(&g),
            ["mul", "mul", "transpose", "matmul", "softmax", "matmul"]
        );
    }
}
