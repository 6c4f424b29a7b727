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
//! Left as `attention` (counted with the reason): inputs other than f32 (native `matmul` and `softmax`
//! are f32 only), a `softmax_precision` other than f32, unknown ranks or head counts, unknown head
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

use super::{Builder, DecomposeStats, rewrite};
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

fn dtype_of(g: &Graph, v: ValueId) -> Option<DType> {
    g.ty(v).as_tensor().map(|t| t.dtype)
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
        if let Some(p) = a.softmax_precision
            && p != DType::F32
        {
            return Err(format!(
                "softmax_precision {p} (native softmax is f32 only)"
            ));
        }
        let (qd, kd, vd) = (dims_of(g, q, "Q")?, dims_of(g, k, "K")?, dims_of(g, v, "V")?);
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
        let structural = a.is_causal || a.left_window >= 0 || a.right_window >= 0 || nonpad.is_some();
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
    let present = |b: &mut Builder, name: &str, new: ValueId, past: Option<ValueId>, o| {
        match past {
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
        }
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
            *x = b.node(&format!("{name}_per_q_head"), Reshape::default(), &[e, shape])?;
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
    let (bias, rows_may_vanish) = bias(b, a, p)?;
    if let Some(bias) = bias {
        scores = make(b, "biased", Add {}, &[scores, bias], want(QkOutput::Biased))?;
    } else if let Some(o) = want(QkOutput::Biased) {
        scores = b.define("biased", Identity {}, &[scores], o)?;
    }
    // 6. Softmax; rows masked everywhere become 0.
    let softmax = Softmax {
        kind: SoftmaxKind::Softmax,
        axis: -1,
        coerce_2d: false,
    };
    let probs = match bias.filter(|_| rows_may_vanish) {
        Some(bias) => {
            let sm = b.node("softmax", softmax, &[scores])?;
            let ax = b.axes("row_max_axes", &[-1]);
            let max = Reduce {
                kind: ReduceKind::Max,
                keepdims: true,
                noop_with_empty_axes: false,
            };
            let m = b.node("bias_row_max", max, &[bias, ax])?;
            let ninf = b.scalar("neg_inf", f, f64::NEG_INFINITY)?;
            let masked = b.node("row_masked", Equal {}, &[m, ninf])?;
            let zero = b.scalar("zero", f, 0.0)?;
            make(b, "probs", Where {}, &[masked, zero, sm], want(QkOutput::Probs))?
        }
        None => make(b, "probs", softmax, &[scores], want(QkOutput::Probs))?,
    };
    // 7. The weighted values.
    let y = out(0).ok_or_else(|| "the node has no result".to_string())?;
    if p.rank3 {
        let dv = p.dv.ok_or_else(|| "3-D inputs with unknown head sizes".to_string())?;
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

/// The additive bias (`None`: no mask of any kind) and whether some row of it may be −∞ everywhere.
fn bias(b: &mut Builder, a: &Attention, p: &Plan) -> Result<(Option<ValueId>, bool), String> {
    let f = DType::F32;
    let mut parts = Vec::new();
    let mut may_vanish = false;
    let windowed = a.is_causal || a.left_window >= 0 || a.right_window >= 0;
    if p.mask.is_none() && p.nonpad.is_none() && !windowed {
        return Ok((None, false));
    }
    let (zero, ninf) = (
        b.scalar("bias_zero", f, 0.0)?,
        b.scalar("bias_neg_inf", f, f64::NEG_INFINITY)?,
    );
    if let Some(m) = p.mask {
        let mut m = m;
        match dtype_of(b.g, m) {
            Some(DType::Bool) => m = b.node("mask_bias", Where {}, &[m, zero, ninf])?,
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
    let bias = match parts.as_slice() {
        [] => None,
        [x] => Some(*x),
        [x, y, ..] => Some(b.node("bias", Add {}, &[*x, *y])?),
    };
    Ok((bias, may_vanish))
}
