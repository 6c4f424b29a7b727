//! Transformer-layer pieces: `rotary_embedding`, `swiglu` and `linear_attention`.
//!
//! `rotary_embedding` and `swiglu` are elementwise: they compute in f64 and round to the input type after
//! every arithmetic step, which reproduces the reference's arithmetic in the input type exactly (f64 has
//! more than twice the precision of f32/f16/bf16 plus two bits, so each rounded step is the correctly
//! rounded narrow operation). `linear_attention` computes in f32 like the ONNX reference (which casts
//! every input to float32) and casts the results back.

use carve_ir::DType;
use carve_ir::ops::linalg::{LinearAttention, RotaryEmbedding, SwiGlu, UpdateRule};

use super::num::{Real, round_f64};
use super::{out_dtype, want_float};
use crate::interp::util;
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// `rotary_embedding`.
pub(super) fn rotary_embedding(op: &RotaryEmbedding, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let (cos, sin) = (cx.tensor(1)?, cx.tensor(2)?);
    let dt = x.dtype();
    want_float(cx, 0, dt)?;
    // Layout: element (b, s, h, d) of x is at b·sb + s·ss + h·sh + d.
    let (b, s, h, hd, sb, ss, sh) = match x.shape[..] {
        [b, h, s, hd] => (b, s, h, hd, h * s * hd, hd, s * hd),
        [b, s, hidden] => {
            let h = op
                .num_heads
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0 && hidden % n == 0)
                .ok_or_else(|| {
                    cx.err(format!(
                        "3-D input needs num_heads dividing its hidden size {hidden}, got {:?}",
                        op.num_heads
                    ))
                })?;
            let hd = hidden / h;
            (b, s, h, hd, s * hidden, hidden, hd)
        }
        _ => {
            return Err(cx.err(format!("input must be 3-D or 4-D, got shape {:?}", x.shape)));
        }
    };
    let rot = match usize::try_from(op.rotary_embedding_dim) {
        Ok(0) => hd,
        Ok(r) if r <= hd && r % 2 == 0 => r,
        _ => {
            return Err(cx.err(format!(
                "rotary_embedding_dim {} must be even, ≥ 0 and ≤ the head size {hd}",
                op.rotary_embedding_dim
            )));
        }
    };
    let half = rot / 2;
    for c in [cos, sin] {
        if c.shape.last() != Some(&half) || c.dtype() != dt {
            return Err(cx.err(format!(
                "cos/sin caches must be {dt} with last dim rotary_embedding_dim/2 = {half}, got {} {:?}",
                c.dtype(),
                c.shape
            )));
        }
    }
    if cos.shape != sin.shape {
        return Err(cx.err(format!(
            "cos cache {:?} and sin cache {:?} differ in shape",
            cos.shape, sin.shape
        )));
    }
    // The cache row for each (b, s).
    let rows: Vec<usize> = match cx.opt_tensor(3)? {
        Some(p) => {
            if p.shape != [b, s] || cos.rank() != 2 {
                return Err(cx.err(format!(
                    "position_ids must be [{b}, {s}] with 2-D caches, got {:?} and {:?}",
                    p.shape, cos.shape
                )));
            }
            let n = cos.shape[0] as i64;
            cx.i64s(3)?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + n } else { i };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| j < cos.shape[0])
                        .ok_or_else(|| {
                            cx.err(format!("position id {i} is outside the cache of {n} rows"))
                        })
                })
                .collect::<Result<_, _>>()?
        }
        None => {
            if cos.shape != [b, s, half] {
                return Err(cx.err(format!(
                    "without position_ids the caches must be [{b}, {s}, {half}], got {:?}",
                    cos.shape
                )));
            }
            (0..b * s).collect()
        }
    };
    let xv = util::to_f64(x).map_err(|e| cx.err(e.0))?;
    let cv = util::to_f64(cos).map_err(|e| cx.err(e.0))?;
    let sv = util::to_f64(sin).map_err(|e| cx.err(e.0))?;
    let r = |v: f64| round_f64(v, dt);
    let mut out = xv.clone();
    for bi in 0..b {
        for si in 0..s {
            let row = rows[bi * s + si] * half;
            let (c, sn) = (&cv[row..row + half], &sv[row..row + half]);
            for hi in 0..h {
                let at = bi * sb + si * ss + hi * sh;
                for i in 0..half {
                    let (p1, p2) = if op.interleaved {
                        (at + 2 * i, at + 2 * i + 1)
                    } else {
                        (at + i, at + i + half)
                    };
                    let (x1, x2) = (xv[p1], xv[p2]);
                    out[p1] = r(r(c[i] * x1) - r(sn[i] * x2));
                    out[p2] = r(r(sn[i] * x1) + r(c[i] * x2));
                }
            }
        }
    }
    let t = util::from_f64(out_dtype(cx, 0, dt), x.shape.clone(), &out);
    Ok(vec![t.map_err(|e| cx.err(e.0))?.into()])
}

/// `swiglu`: `a · sigmoid(alpha · a) · b`, rounded like the reference: the sigmoid
/// `1 / (1 + exp(-alpha * a))` in f32 (f64 for f64 inputs; alpha is a float32 scalar there), cast to the
/// input type, then the two products in the input type.
pub(super) fn swiglu(op: &SwiGlu, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
    let dt = a.dtype();
    want_float(cx, 0, dt)?;
    if a.shape != b.shape || b.dtype() != dt {
        return Err(cx.err(format!(
            "A and B must have the same shape and type, got {dt} {:?} and {} {:?}",
            a.shape,
            b.dtype(),
            b.shape
        )));
    }
    let r = |v: f64| round_f64(v, dt);
    let wide = if dt == DType::F64 { dt } else { DType::F32 };
    let rw = |v: f64| round_f64(v, wide);
    let alpha = f64::from(op.alpha);
    let av = util::to_f64(a).map_err(|e| cx.err(e.0))?;
    let bv = util::to_f64(b).map_err(|e| cx.err(e.0))?;
    let y: Vec<f64> = av
        .iter()
        .zip(&bv)
        .map(|(&x, &g)| {
            let sig = r(rw(1.0 / rw(1.0 + rw(rw(-alpha * x).exp()))));
            r(r(x * sig) * g)
        })
        .collect();
    let t = util::from_f64(out_dtype(cx, 0, dt), a.shape.clone(), &y);
    Ok(vec![t.map_err(|e| cx.err(e.0))?.into()])
}

/// A `[B, T, n]` per-step input of `linear_attention` (decay or beta) and its per-head width.
struct StepInput {
    v: Vec<f32>,
    /// Last dim.
    n: usize,
}

impl StepInput {
    /// The values for batch `b`, step `t`, kv head `hk`: `width` of them (width 1 broadcasts).
    fn at(&self, b: usize, t: usize, steps: usize, hk: usize, width: usize) -> &[f32] {
        let base = (b * steps + t) * self.n;
        if self.n == 1 {
            &self.v[base..base + 1]
        } else {
            &self.v[base + hk * width..base + (hk + 1) * width]
        }
    }
}

/// `linear_attention`.
pub(super) fn linear_attention(op: &LinearAttention, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (q, k, v) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
    for (i, t) in [(0, q), (1, k), (2, v)] {
        want_float(cx, i, t.dtype())?;
        if t.rank() != 3 {
            return Err(cx.err(format!(
                "input {i} must be [B, T, H·D], got shape {:?}",
                t.shape
            )));
        }
    }
    let count = |n: i64, what: &str| {
        usize::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| cx.err(format!("{what} must be positive, got {n}")))
    };
    let hq = count(op.q_num_heads, "q_num_heads")?;
    let hkv = count(op.kv_num_heads, "kv_num_heads")?;
    let (b, steps) = (q.shape[0], q.shape[1]);
    let divides = q.shape[2] % hq == 0 && k.shape[2] % hkv == 0 && v.shape[2] % hkv == 0;
    let (dk, dv) = (q.shape[2] / hq, v.shape[2] / hkv);
    if hq % hkv != 0
        || !divides
        || k.shape[..2] != [b, steps]
        || v.shape[..2] != [b, steps]
        || k.shape[2] / hkv != dk
    {
        return Err(cx.err(format!(
            "inconsistent shapes Q {:?}, K {:?}, V {:?} for {hq} query and {hkv} kv heads",
            q.shape, k.shape, v.shape
        )));
    }
    let gating = matches!(op.update_rule, UpdateRule::Gated | UpdateRule::GatedDelta);
    let delta = matches!(op.update_rule, UpdateRule::Delta | UpdateRule::GatedDelta);
    let load = |t: &Tensor| f32::load(t).map(|c| c.into_owned()).map_err(|m| cx.err(m));
    let step_input = |i: usize, name: &str, widths: &[usize]| -> Result<StepInput, RunError> {
        let t = cx.tensor(i)?;
        if t.rank() != 3 || t.shape[..2] != [b, steps] || !widths.contains(&t.shape[2]) {
            return Err(cx.err(format!(
                "{name} must be [{b}, {steps}, n] with n one of {widths:?}, got {:?}",
                t.shape
            )));
        }
        Ok(StepInput {
            v: load(t)?,
            n: t.shape[2],
        })
    };
    if cx.has(4) != gating || cx.has(5) != delta {
        return Err(cx.err(format!(
            "update_rule {} takes {} decay and {} beta input",
            op.update_rule.keyword(),
            if gating { "a" } else { "no" },
            if delta { "a" } else { "no" }
        )));
    }
    let decay = if gating {
        Some(step_input(4, "decay", &[hkv, hkv * dk])?)
    } else {
        None
    };
    let beta = if delta {
        Some(step_input(5, "beta", &[hkv, 1])?)
    } else {
        None
    };
    let state_len = b * hkv * dk * dv;
    let (mut state, state_dt) = match cx.opt_tensor(3)? {
        Some(p) => {
            if p.shape != [b, hkv, dk, dv] {
                return Err(cx.err(format!(
                    "past_state must be [{b}, {hkv}, {dk}, {dv}], got {:?}",
                    p.shape
                )));
            }
            want_float(cx, 3, p.dtype())?;
            (load(p)?, p.dtype())
        }
        None => (vec![0.0f32; state_len], q.dtype()),
    };
    let (qv, kv, vv) = (load(q)?, load(k)?, load(v)?);
    let scale = op.scale.unwrap_or((1.0 / (dk as f64).sqrt()) as f32);
    let group = hq / hkv;
    let mut y = vec![0.0f32; b * steps * hq * dv];
    let mut vt = vec![0.0f32; dv];
    for bi in 0..b {
        for hk in 0..hkv {
            let st = &mut state[(bi * hkv + hk) * dk * dv..(bi * hkv + hk + 1) * dk * dv];
            for t in 0..steps {
                let row = bi * steps + t;
                let kt = &kv[row * hkv * dk + hk * dk..row * hkv * dk + (hk + 1) * dk];
                vt.copy_from_slice(&vv[row * hkv * dv + hk * dv..row * hkv * dv + (hk + 1) * dv]);
                if let Some(dc) = &decay {
                    let g = dc.at(bi, t, steps, hk, if dc.n == hkv { 1 } else { dk });
                    for d in 0..dk {
                        let f = g[if g.len() == 1 { 0 } else { d }].exp();
                        for x in &mut st[d * dv..(d + 1) * dv] {
                            *x *= f;
                        }
                    }
                }
                if let Some(bt) = &beta {
                    let be = bt.at(bi, t, steps, hk, 1)[0];
                    for (m, x) in vt.iter_mut().enumerate() {
                        let retrieved: f32 = (0..dk).map(|d| st[d * dv + m] * kt[d]).sum();
                        *x = be * (*x - retrieved);
                    }
                }
                for d in 0..dk {
                    for (s, &x) in st[d * dv..(d + 1) * dv].iter_mut().zip(&vt) {
                        *s += kt[d] * x;
                    }
                }
                for h in hk * group..(hk + 1) * group {
                    let qt = &qv[row * hq * dk + h * dk..row * hq * dk + (h + 1) * dk];
                    let out = &mut y[row * hq * dv + h * dv..row * hq * dv + (h + 1) * dv];
                    for (m, o) in out.iter_mut().enumerate() {
                        let acc: f32 = (0..dk).map(|d| qt[d] * st[d * dv + m]).sum();
                        *o = scale * acc;
                    }
                }
            }
        }
    }
    let fail = |m: String| cx.err(m);
    let mut outs: Vec<Value> = vec![
        f32::store(out_dtype(cx, 0, q.dtype()), vec![b, steps, hq * dv], y)
            .map_err(fail)?
            .into(),
    ];
    if cx.num_outputs() > 1 {
        let dt = out_dtype(cx, 1, state_dt);
        outs.push(
            f32::store(dt, vec![b, hkv, dk, dv], state)
                .map_err(fail)?
                .into(),
        );
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_step_rounding_matches_narrow_arithmetic() {
        // 1 + 2^-11 is not an f16 value: the rounded sum is 1.
        assert_eq!(round_f64(1.0 + 2f64.powi(-11), carve_ir::DType::F16), 1.0);
        assert_eq!(round_f64(0.1, carve_ir::DType::F64), 0.1);
    }

    #[test]
    fn step_inputs_broadcast_width_one() {
        let s = StepInput {
            v: vec![1.0, 2.0, 3.0, 4.0],
            n: 1,
        };
        assert_eq!(s.at(1, 1, 2, 3, 1), &[4.0]);
        let s = StepInput {
            v: (0..8).map(|i| i as f32).collect(),
            n: 4,
        };
        assert_eq!(s.at(0, 1, 2, 1, 2), &[6.0, 7.0]);
    }
}
