//! `attention` (ONNX Attention, opsets 23–25) and `flex_attention` (ai.onnx.preview FlexAttention).
//!
//! Both follow the ONNX reference step by step: Q and K are each scaled by `√scale` and rounded to the
//! input type, `Q·Kᵀ` is rounded to the input type, the softmax runs in its precision type with a
//! rounding after each elementwise step, and the probabilities are rounded back to the input type before
//! the product with V. Computation is in f32 (f64 when an f64 type is involved); per (batch, head) the
//! two products run on `sgemm`/`dgemm`.
//!
//! Attention's bias is the sum of the attention mask (bool → 0/−∞, padded with −∞ up to the total key
//! length, broadcast right-aligned against `[B, Hq, Sq, L]`), the causal mask, the sliding window and the
//! `nonpad_kv_seqlen` padding mask. The causal and window masks are offset per batch: by the past length
//! with a `past_key` cache, by `nonpad_kv_seqlen[b] − Sq` with an external cache, else 0. A query row
//! whose bias is −∞ everywhere has all-zero probabilities (so its output is 0).

use std::borrow::Cow;

use carve_ir::DType;
use carve_ir::ops::linalg::{Attention, FlexAttention, QkOutput};

use super::num::{Real, nan_max, transpose};
use super::{out_dtype, want_float};
use crate::interp::util::checked_numel;
use crate::interp::{EvalCtx, NO_KERNEL, RunError, Value};
use crate::tensor::{Data, Tensor, strides};

/// `[B, S, H·D]` → `[B, H, S, D]` (a copy either way, so that the result is owned).
fn heads_first<R: Real>(v: &[R], b: usize, s: usize, h: usize, d: usize) -> Vec<R> {
    let mut out = Vec::with_capacity(v.len());
    for bi in 0..b {
        for hi in 0..h {
            for si in 0..s {
                let at = (bi * s + si) * h * d + hi * d;
                out.extend_from_slice(&v[at..at + d]);
            }
        }
    }
    out
}

/// A `[B, S, H·D]` tensor's elements as `[B, H, S, D]` when `rank3`, else unchanged.
fn as_heads_first<R: Real>(v: Cow<'_, [R]>, rank3: bool, [b, s, h, d]: [usize; 4]) -> Cow<'_, [R]> {
    if rank3 {
        Cow::Owned(heads_first(&v, b, s, h, d))
    } else {
        v
    }
}

/// `[B, H, S, D]` → `[B, S, H·D]`.
fn seq_first<R: Real>(v: &[R], b: usize, h: usize, s: usize, d: usize) -> Vec<R> {
    let mut out = Vec::with_capacity(v.len());
    for bi in 0..b {
        for si in 0..s {
            for hi in 0..h {
                let at = ((bi * h + hi) * s + si) * d;
                out.extend_from_slice(&v[at..at + d]);
            }
        }
    }
    out
}

/// Concatenates `[B, H, P, D]` and `[B, H, S, D]` along the sequence axis.
fn concat_seq<R: Real>(past: &[R], new: &[R], bh: usize, p: usize, s: usize, d: usize) -> Vec<R> {
    let mut out = Vec::with_capacity(past.len() + new.len());
    for i in 0..bh {
        out.extend_from_slice(&past[i * p * d..(i + 1) * p * d]);
        out.extend_from_slice(&new[i * s * d..(i + 1) * s * d]);
    }
    out
}

/// The attention mask as an additive bias, addressed by `(b, h, i, j)` in `[B, Hq, Sq, L]`.
struct Mask<R> {
    /// Bias values (bool masks already mapped to 0/−∞).
    vals: Vec<R>,
    /// Strides for b, h, i (0 where broadcast).
    st: [usize; 3],
    /// Key positions the mask covers; beyond them the bias is −∞ (the reference's padding).
    cols: usize,
}

impl<R: Real> Mask<R> {
    fn new(m: &Tensor, target: [usize; 4]) -> Result<Mask<R>, String> {
        let r = m.rank();
        if r == 0 || r > 4 {
            return Err(format!(
                "attn_mask must have rank 1 to 4, got shape {:?}",
                m.shape
            ));
        }
        let cols = m.shape[r - 1];
        if cols > target[3] {
            return Err(format!(
                "attn_mask {:?} covers {cols} keys, there are only {}",
                m.shape, target[3]
            ));
        }
        let ms = strides(&m.shape);
        let mut st = [0usize; 3];
        for (t, s) in st.iter_mut().enumerate() {
            // Right-aligned: target axis t ↔ mask axis t + r − 4.
            let Some(ax) = (t + r).checked_sub(4) else {
                continue;
            };
            let d = m.shape[ax];
            if d != 1 && d != target[t] {
                return Err(format!(
                    "attn_mask {:?} does not broadcast to the scores {target:?}",
                    m.shape
                ));
            }
            *s = if d == 1 { 0 } else { ms[ax] };
        }
        let vals = match &m.data {
            Data::Bool(v) => v
                .iter()
                .map(|&x| if x { R::ZERO } else { R::NEG_INF })
                .collect(),
            _ => R::load(m)?.into_owned(),
        };
        Ok(Mask { vals, st, cols })
    }

    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> R {
        if j < self.cols {
            self.vals[b * self.st[0] + h * self.st[1] + i * self.st[2] + j]
        } else {
            R::NEG_INF
        }
    }
}

/// The shapes attention works with.
struct Dims {
    b: usize,
    hq: usize,
    hkv: usize,
    sq: usize,
    skv: usize,
    d: usize,
    dv: usize,
}

fn attention_dims(op: &Attention, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Dims, String> {
    let rank = q.rank();
    if k.rank() != rank || v.rank() != rank || !matches!(rank, 3 | 4) {
        return Err(format!(
            "Q, K and V must all be 3-D or all 4-D, got shapes {:?}, {:?} and {:?}",
            q.shape, k.shape, v.shape
        ));
    }
    let dims = if rank == 4 {
        Dims {
            b: q.shape[0],
            hq: q.shape[1],
            hkv: k.shape[1],
            sq: q.shape[2],
            skv: k.shape[2],
            d: q.shape[3],
            dv: v.shape[3],
        }
    } else {
        let heads = |n: Option<i64>, name: &str| -> Result<usize, String> {
            n.and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name} must be a positive count for 3-D inputs"))
        };
        let hq = heads(op.q_num_heads, "q_num_heads")?;
        let hkv = heads(op.kv_num_heads, "kv_num_heads")?;
        for (t, h, name) in [(q, hq, "Q"), (k, hkv, "K"), (v, hkv, "V")] {
            if t.shape[2] % h != 0 {
                return Err(format!(
                    "{name} hidden size {} is not a multiple of its head count {h}",
                    t.shape[2]
                ));
            }
        }
        Dims {
            b: q.shape[0],
            hq,
            hkv,
            sq: q.shape[1],
            skv: k.shape[1],
            d: q.shape[2] / hq,
            dv: v.shape[2] / hkv,
        }
    };
    let (kd, vd) = (k.shape.clone(), v.shape.clone());
    let consistent = if rank == 4 {
        kd[0] == dims.b
            && vd[0] == dims.b
            && vd[1] == dims.hkv
            && vd[2] == dims.skv
            && kd[3] == dims.d
    } else {
        kd[0] == dims.b && vd[0] == dims.b && vd[1] == dims.skv && kd[2] / dims.hkv == dims.d
    };
    if !consistent {
        return Err(format!(
            "inconsistent shapes Q {:?}, K {:?}, V {:?}",
            q.shape, k.shape, v.shape
        ));
    }
    if dims.hkv == 0 || dims.hq % dims.hkv != 0 {
        return Err(format!(
            "q heads ({}) must be a multiple of kv heads ({})",
            dims.hq, dims.hkv
        ));
    }
    Ok(dims)
}

/// `attention`.
pub(super) fn attention(op: &Attention, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
    for (i, t) in [(0, q), (1, k), (2, v)] {
        want_float(cx, i, t.dtype())?;
    }
    if k.dtype() != q.dtype() {
        return Err(cx.err(format!(
            "Q and K must have the same element type, got {} and {}",
            q.dtype(),
            k.dtype()
        )));
    }
    let wide = q.dtype() == DType::F64
        || v.dtype() == DType::F64
        || op.softmax_precision == Some(DType::F64);
    let res = if wide {
        attention_impl::<f64>(op, cx)
    } else {
        attention_impl::<f32>(op, cx)
    };
    res.map_err(|m| cx.err(m))
}

fn attention_impl<R: Real>(op: &Attention, cx: &EvalCtx) -> Result<Vec<Value>, String> {
    let tensor = |i| cx.tensor(i).map_err(|e| e.msg);
    let opt = |i| cx.opt_tensor(i).map_err(|e| e.msg);
    let (q, k, v) = (tensor(0)?, tensor(1)?, tensor(2)?);
    let Dims {
        b,
        hq,
        hkv,
        sq,
        skv,
        d,
        dv,
    } = attention_dims(op, q, k, v)?;
    let rank3 = q.rank() == 3;
    let qt = q.dtype();
    let (qv, kv, vv) = (R::load(q)?, R::load(k)?, R::load(v)?);
    let q4 = as_heads_first(qv, rank3, [b, sq, hq, d]);
    let k4 = as_heads_first(kv, rank3, [b, skv, hkv, d]);
    let v4 = as_heads_first(vv, rank3, [b, skv, hkv, dv]);
    // Caches.
    let (pk, pv) = (opt(4)?, opt(5)?);
    let nonpad = if cx.has(6) {
        Some(cx.i64s(6).map_err(|e| e.msg)?)
    } else {
        None
    };
    let mut past = 0usize;
    let (present_k, present_v): (Cow<[R]>, Cow<[R]>) = match (pk, pv) {
        (None, None) => (k4, v4),
        (Some(pk), Some(pv)) => {
            if nonpad.is_some() {
                return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
            }
            past = pk.shape.get(2).copied().unwrap_or(0);
            let want_k = [b, hkv, past, d];
            let want_v = [b, hkv, past, dv];
            if pk.shape != want_k || pv.shape != want_v {
                return Err(format!(
                    "past_key {:?} / past_value {:?} must be {want_k:?} / {want_v:?}",
                    pk.shape, pv.shape
                ));
            }
            let (pkv, pvv) = (R::load(pk)?, R::load(pv)?);
            (
                Cow::Owned(concat_seq(&pkv, &k4, b * hkv, past, skv, d)),
                Cow::Owned(concat_seq(&pvv, &v4, b * hkv, past, skv, dv)),
            )
        }
        _ => return Err("past_key and past_value must be given together".into()),
    };
    let l = past + skv;
    checked_numel(&[b, hq, sq, l]).map_err(|e| e.0)?;
    checked_numel(&[b, hq, sq, dv]).map_err(|e| e.0)?;
    if let Some(np) = &nonpad
        && np.len() != b
    {
        return Err(format!(
            "nonpad_kv_seqlen has {} entries, the batch is {b}",
            np.len()
        ));
    }
    let mask = opt(3)?
        .map(|m| Mask::<R>::new(m, [b, hq, sq, l]))
        .transpose()?;

    // Scaled Q and Kᵀ, rounded to the input type like the reference's `Q * √scale`.
    let rt = R::rounder(qt);
    // The reference takes √scale in f32 for the (float32) attribute, in f64 for the default.
    let s = match op.scale {
        Some(sc) => R::cast(f64::from(sc.sqrt()), qt),
        None => R::cast((1.0 / (d as f64).sqrt()).sqrt(), qt),
    };
    let qs: Vec<R> = q4.iter().map(|&x| rt(x * s)).collect();
    let mut kst: Vec<R> = Vec::with_capacity(present_k.len());
    for i in 0..b * hkv {
        let ks: Vec<R> = present_k[i * l * d..(i + 1) * l * d]
            .iter()
            .map(|&x| rt(x * s))
            .collect();
        kst.extend(transpose(&ks, l, d));
    }
    // The reference's float attributes are float32 scalars, so soft-capping promotes f16/bf16 scores to
    // f32, and a float mask of another type promotes the biased scores: `work` is the type the biased
    // scores are in, the softmax's default precision.
    let mut work = qt;
    if op.softcap > 0.0 {
        work = wider(work, DType::F32);
    }
    if let Some(m) = opt(3)?
        && m.dtype().is_float()
    {
        work = wider(work, m.dtype());
    }
    let (rs, rw) = (R::rounder(wider(qt, DType::F32)), R::rounder(work));
    let prec = op.softmax_precision.unwrap_or(work);
    let softcap = (op.softcap > 0.0).then(|| R::of(f64::from(op.softcap)));
    let want_qk = cx.num_outputs() > 3;
    let group = hq / hkv;
    let mut y = vec![R::ZERO; b * hq * sq * dv];
    let mut qk_out = if want_qk {
        vec![R::ZERO; b * hq * sq * l]
    } else {
        Vec::new()
    };
    let mut scores = vec![R::ZERO; sq * l];
    let mut bias = vec![R::ZERO; sq * l];
    for bi in 0..b {
        // Causal/window offset and valid key count for this batch.
        let (offset, valid) = match &nonpad {
            Some(np) => (np[bi] - sq as i64, Some(np[bi])),
            None => (past as i64, None),
        };
        for h in 0..hq {
            let kvh = bi * hkv + h / group;
            let qa = (bi * hq + h) * sq * d;
            R::gemm(
                sq,
                d,
                l,
                &qs[qa..qa + sq * d],
                d,
                &kst[kvh * d * l..(kvh + 1) * d * l],
                l,
                &mut scores,
                l,
                false,
            );
            let qk_at = (bi * hq + h) * sq * l;
            for x in scores.iter_mut() {
                *x = rt(*x);
            }
            if want_qk && op.qk_output == QkOutput::Raw {
                qk_out[qk_at..qk_at + sq * l].copy_from_slice(&scores);
            }
            if let Some(c) = softcap {
                for x in scores.iter_mut() {
                    *x = rs(rs(rs(*x / c).tanh()) * c);
                }
            }
            if want_qk && op.qk_output == QkOutput::Softcapped {
                qk_out[qk_at..qk_at + sq * l].copy_from_slice(&scores);
            }
            for i in 0..sq {
                for j in 0..l {
                    let mut x = mask.as_ref().map_or(R::ZERO, |m| m.at(bi, h, i, j));
                    let (ii, jj) = (i as i64, j as i64);
                    if op.is_causal && jj > ii + offset {
                        x = x + R::NEG_INF;
                    }
                    let diff = ii + offset - jj;
                    let outside = (op.left_window >= 0 && diff > op.left_window)
                        || (op.right_window >= 0 && -diff > op.right_window);
                    if outside {
                        x = x + R::NEG_INF;
                    }
                    if valid.is_some_and(|n| jj >= n) {
                        x = x + R::NEG_INF;
                    }
                    bias[i * l + j] = x;
                }
            }
            for (x, &bb) in scores.iter_mut().zip(&bias) {
                *x = rw(*x + bb);
            }
            if want_qk && op.qk_output == QkOutput::Biased {
                qk_out[qk_at..qk_at + sq * l].copy_from_slice(&scores);
            }
            // Softmax in the precision type; rows masked everywhere become 0.
            for i in 0..sq {
                let row = &mut scores[i * l..(i + 1) * l];
                let masked = bias[i * l..(i + 1) * l].iter().all(|&x| x == R::NEG_INF);
                if masked {
                    row.fill(R::ZERO);
                    continue;
                }
                softmax_row(row, prec);
                for x in row.iter_mut() {
                    *x = rt(*x);
                }
            }
            if want_qk && op.qk_output == QkOutput::Probs {
                qk_out[qk_at..qk_at + sq * l].copy_from_slice(&scores);
            }
            let ya = (bi * hq + h) * sq * dv;
            R::gemm(
                sq,
                l,
                dv,
                &scores,
                l,
                &present_v[kvh * l * dv..(kvh + 1) * l * dv],
                dv,
                &mut y[ya..ya + sq * dv],
                dv,
                false,
            );
        }
    }
    let (y, y_shape) = if rank3 {
        (seq_first(&y, b, hq, sq, dv), vec![b, sq, hq * dv])
    } else {
        (y, vec![b, hq, sq, dv])
    };
    let mut outs: Vec<Value> = vec![R::store(out_dtype(cx, 0, qt), y_shape, y)?.into()];
    if cx.num_outputs() > 1 {
        let pk = present_k.into_owned();
        outs.push(R::store(out_dtype(cx, 1, qt), vec![b, hkv, l, d], pk)?.into());
    }
    if cx.num_outputs() > 2 {
        let pv = present_v.into_owned();
        let dt = out_dtype(cx, 2, v.dtype());
        outs.push(R::store(dt, vec![b, hkv, l, dv], pv)?.into());
    }
    if want_qk {
        outs.push(R::store(out_dtype(cx, 3, qt), vec![b, hq, sq, l], qk_out)?.into());
    }
    Ok(outs)
}

/// The wider of two float types (numpy promotion; f16 with bf16 gives f32).
fn wider(a: DType, b: DType) -> DType {
    if a == DType::F64 || b == DType::F64 {
        DType::F64
    } else if a == b {
        a
    } else {
        DType::F32
    }
}

/// Softmax of one row in place, rounding each step with `r` like the reference's computation in the
/// precision type `prec`: `t = exp(x − max)`, `t / Σt` (a row that is −∞ everywhere gives 0s). A bf16
/// sum is rounded after every addition: numpy reduces the ml_dtypes bfloat16 type sequentially in
/// bfloat16 (its own float types sum pairwise in a wider accumulator).
fn softmax_row<R: Real>(row: &mut [R], prec: DType) {
    let r = R::rounder(prec);
    let sequential = prec == DType::BF16;
    for x in row.iter_mut() {
        *x = r(*x);
    }
    let Some(mut m) = nan_max(row) else {
        return;
    };
    if m == R::NEG_INF {
        m = R::ZERO;
    }
    let mut sum = R::ZERO;
    for x in row.iter_mut() {
        *x = r(r(*x - m).exp());
        sum = if sequential { r(sum + *x) } else { sum + *x };
    }
    let mut sum = r(sum);
    if sum == R::ZERO {
        sum = R::ONE;
    }
    for x in row.iter_mut() {
        *x = r(*x / sum);
    }
}

/// `flex_attention`.
pub(super) fn flex_attention(op: &FlexAttention, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
    for (i, t) in [(0, q), (1, k), (2, v)] {
        want_float(cx, i, t.dtype())?;
        if t.dtype() != q.dtype() {
            return Err(cx.err(format!(
                "Q, K and V must have one element type, got {} and {}",
                q.dtype(),
                t.dtype()
            )));
        }
    }
    let prec = op.precision(q.dtype());
    want_float(cx, 0, prec)?;
    if q.dtype() == DType::F64 || prec == DType::F64 {
        flex_impl::<f64>(op, cx, prec)
    } else {
        flex_impl::<f32>(op, cx, prec)
    }
}

/// Runs a modifier subgraph on `[B, H, L, S]` values of type `dt`; its result must have that shape.
/// A subgraph node without a kernel is reported as such (not wrapped).
fn run_mod<R: Real>(
    cx: &EvalCtx,
    g: &carve_ir::Graph,
    name: &str,
    vals: Vec<R>,
    shape: &[usize],
    dt: DType,
) -> Result<Vec<R>, RunError> {
    let input = R::store(dt, shape.to_vec(), vals).map_err(|m| cx.err(m))?;
    let out = cx.run_subgraph(g, vec![input.into()]).map_err(|e| {
        if e.msg == NO_KERNEL {
            e
        } else {
            cx.err(format!("{name}: {e}"))
        }
    })?;
    let t = match out.first() {
        Some(Value::Tensor(t)) if out.len() == 1 => t,
        _ => return Err(cx.err(format!("{name} must return one tensor"))),
    };
    if t.shape != shape {
        return Err(cx.err(format!(
            "{name} returned shape {:?}, the scores are {shape:?}",
            t.shape
        )));
    }
    let r = R::rounder(dt);
    Ok(R::load(t)
        .map_err(|m| cx.err(m))?
        .iter()
        .map(|&x| r(x))
        .collect())
}

fn flex_impl<R: Real>(
    op: &FlexAttention,
    cx: &EvalCtx,
    prec: DType,
) -> Result<Vec<Value>, RunError> {
    let fe = |m: String| cx.err(m);
    let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        return Err(cx.err(format!(
            "Q, K and V must be 4-D, got shapes {:?}, {:?} and {:?}",
            q.shape, k.shape, v.shape
        )));
    }
    let (b, hq, lq, e) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3]);
    let (hkv, s, dv) = (k.shape[1], k.shape[2], v.shape[3]);
    if k.shape[0] != b || v.shape[0] != b || v.shape[1] != hkv || v.shape[2] != s || k.shape[3] != e
    {
        return Err(cx.err(format!(
            "inconsistent shapes Q {:?}, K {:?}, V {:?}",
            q.shape, k.shape, v.shape
        )));
    }
    if hkv == 0 || hq % hkv != 0 {
        return Err(cx.err(format!(
            "q heads ({hq}) must be a multiple of kv heads ({hkv})"
        )));
    }
    let shape = [b, hq, lq, s];
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    checked_numel(&[b, hq, lq, dv]).map_err(|e| cx.err(e.0))?;
    let qt = q.dtype();
    let (rt, rc) = (R::rounder(qt), R::rounder(prec));
    // √scale computed in f32, then cast to the input type.
    let scale = op.scale.unwrap_or((1.0 / (e as f64).sqrt()) as f32);
    let sc = R::cast(f64::from(scale.sqrt()), qt);
    let qs: Vec<R> = R::load(q)
        .map_err(fe)?
        .iter()
        .map(|&x| rt(x * sc))
        .collect();
    let kv = R::load(k).map_err(fe)?;
    let mut kst = Vec::with_capacity(kv.len());
    for i in 0..b * hkv {
        let ks: Vec<R> = kv[i * s * e..(i + 1) * s * e]
            .iter()
            .map(|&x| rt(x * sc))
            .collect();
        kst.extend(transpose(&ks, s, e));
    }
    let group = hq / hkv;
    let mut scores = vec![R::ZERO; b * hq * lq * s];
    for bi in 0..b {
        for h in 0..hq {
            let kvh = bi * hkv + h / group;
            let at = (bi * hq + h) * lq;
            R::gemm(
                lq,
                e,
                s,
                &qs[at * e..(at + lq) * e],
                e,
                &kst[kvh * e * s..(kvh + 1) * e * s],
                s,
                &mut scores[at * s..(at + lq) * s],
                s,
                false,
            );
        }
    }
    for x in scores.iter_mut() {
        *x = rc(rt(*x));
    }
    if let Some(g) = &op.score_mod {
        scores = run_mod(cx, g, "score_mod", scores, &shape, prec)?;
    }
    if s > 0 {
        for row in scores.chunks_mut(s) {
            let m = nan_max(row).unwrap_or(R::ZERO);
            let mut sum = R::ZERO;
            for x in row.iter_mut() {
                *x = rc(rc(*x - m).exp());
                sum = if prec == DType::BF16 {
                    rc(sum + *x)
                } else {
                    sum + *x
                };
            }
            let sum = rc(sum);
            for x in row.iter_mut() {
                *x = rc(*x / sum);
            }
        }
    }
    if let Some(g) = &op.prob_mod {
        scores = run_mod(cx, g, "prob_mod", scores, &shape, prec)?;
    }
    let vv: Vec<R> = R::load(v).map_err(fe)?.iter().map(|&x| rc(x)).collect();
    let mut y = vec![R::ZERO; b * hq * lq * dv];
    for bi in 0..b {
        for h in 0..hq {
            let kvh = bi * hkv + h / group;
            let at = (bi * hq + h) * lq;
            R::gemm(
                lq,
                s,
                dv,
                &scores[at * s..(at + lq) * s],
                s,
                &vv[kvh * s * dv..(kvh + 1) * s * dv],
                dv,
                &mut y[at * dv..(at + lq) * dv],
                dv,
                false,
            );
        }
    }
    let dt = out_dtype(cx, 0, qt);
    Ok(vec![
        R::store(dt, vec![b, hq, lq, dv], y).map_err(fe)?.into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_masked_rows_vanish() {
        let mut row = vec![1.0f32, 2.0, 3.0];
        softmax_row(&mut row, DType::F32);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
        let mut masked = vec![f32::NEG_INFINITY; 3];
        softmax_row(&mut masked, DType::F32);
        assert_eq!(masked, vec![0.0; 3]);
        let mut half = vec![0.0f32, f32::NEG_INFINITY];
        softmax_row(&mut half, DType::F32);
        assert_eq!(half, vec![1.0, 0.0]);
    }

    #[test]
    fn layouts_round_trip() {
        let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
        // [B=1, S=2, H=3, D=4] ↔ [1, 3, 2, 4].
        let h = heads_first(&v, 1, 2, 3, 4);
        assert_eq!(&h[..8], &[0.0, 1.0, 2.0, 3.0, 12.0, 13.0, 14.0, 15.0]);
        assert_eq!(seq_first(&h, 1, 3, 2, 4), v);
        let c = concat_seq(&[1.0f32, 2.0], &[3.0, 4.0, 5.0, 6.0], 1, 1, 2, 2);
        assert_eq!(c, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn masks_pad_and_broadcast() {
        let m = Tensor::new(vec![2, 2], Data::Bool(vec![true, false, false, true])).unwrap();
        let mk = Mask::<f32>::new(&m, [1, 3, 2, 3]).unwrap();
        assert_eq!(mk.at(0, 2, 0, 0), 0.0);
        assert_eq!(mk.at(0, 0, 0, 1), f32::NEG_INFINITY);
        assert_eq!(mk.at(0, 1, 1, 1), 0.0);
        // Beyond the mask's columns: padded with −∞.
        assert_eq!(mk.at(0, 0, 1, 2), f32::NEG_INFINITY);
        let bad = Tensor::new(vec![3, 2], Data::F32(vec![0.0; 6])).unwrap();
        assert!(Mask::<f32>::new(&bad, [1, 1, 2, 2]).is_err());
    }
}
