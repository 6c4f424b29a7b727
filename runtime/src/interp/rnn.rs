//! Interpreter kernels for the recurrent op family (`carve_ir::ops::rnn`): `lstm`, `gru` and `rnn` in any
//! direction, with typed activation lists, clipping, peepholes, `input_forget`, `linear_before_reset`,
//! per-batch `sequence_lens`, initial states and the batch-first layout.
//!
//! Each direction projects the whole input sequence through `W` with one GEMM (`[S·B, I] × [I, G·H]`),
//! then runs one `[B, H] × [H, G·H]` GEMM per step for the recurrence. f32/f16/bf16 inputs compute in
//! f32 (rounded once at the end), f64 inputs in f64.
//!
//! An `lstm` whose `w`/`r` are quantized 8-bit integers runs ONNX Runtime's DynamicQuantizeLSTM
//! arithmetic ([`QuantWeights`]): each of those projections quantizes its float operand to `u8`
//! (scale and zero point from the operand's range, as ORT's `GetQuantizationParameter`), multiplies
//! in `i32` and scales the sums by `operand scale × weight scale` in f32.

use carve_ir::ops::activation::ActKind;
use carve_ir::ops::rnn::{CellKind, Direction, Recurrent, RnnOp};

use super::conv::{Real, numel, out_dtype, real_tensor, reals, wide};
use super::util::to_i64;
use super::{EvalCtx, RunError, Value, tensor_err};
use crate::tensor::Tensor;

/// Quantized weights of one projection (`w` or `r`) for every direction: integer values minus their
/// zero points, transposed to `[K, N]` per direction, and one scale per output column.
struct QuantWeights {
    /// `[D, K, N]` centered integers.
    b: Vec<i32>,
    /// `[D, N]` scales.
    scale: Vec<f32>,
}

impl QuantWeights {
    /// Input `i` (`[D, N, K]`, 8-bit, quantized per tensor or along dim 1), if it is quantized.
    fn of(cx: &EvalCtx, i: usize, t: &Tensor) -> Result<Option<QuantWeights>, RunError> {
        let Some(q) = cx
            .input_type(i)
            .and_then(|ty| ty.as_tensor())
            .and_then(|ty| ty.quant.as_deref())
        else {
            return Ok(None);
        };
        let [d, n, k] = t.shape[..] else {
            return Err(cx.err(format!("input {i} must have rank 3, got {:?}", t.shape)));
        };
        let per_row = q.scale.len() != 1;
        if (per_row && q.scale.len() != n) || q.zero_point.len() != q.scale.len() {
            return Err(cx.err(format!(
                "input {i}: {} scales for {n} gate rows",
                q.scale.len()
            )));
        }
        let v = to_i64(t).map_err(|e| tensor_err(cx, e))?;
        let mut b = vec![0i32; d * k * n];
        let mut scale = vec![0f32; d * n];
        for di in 0..d {
            for row in 0..n {
                let p = if per_row { row } else { 0 };
                let zp = q.zero_point[p];
                scale[di * n + row] = q.scale[p];
                for col in 0..k {
                    b[(di * k + col) * n + row] = (v[(di * n + row) * k + col] - zp) as i32;
                }
            }
        }
        Ok(Some(QuantWeights { b, scale }))
    }

    /// `c[m, N] (+)= a[m, K] × self[dir]` with `a` quantized dynamically (module doc).
    fn gemm<T: Real>(&self, dir: usize, m: usize, k: usize, n: usize, a: &[T], c: &mut [T]) {
        let (aq, a_scale) = dynamic_u8(&a[..m * k]);
        let b = &self.b[dir * k * n..][..k * n];
        let scale = &self.scale[dir * n..][..n];
        let mut acc = vec![0i32; n];
        for i in 0..m {
            acc.fill(0);
            for (p, &x) in aq[i * k..][..k].iter().enumerate() {
                if x == 0 {
                    continue;
                }
                for (o, &w) in acc.iter_mut().zip(&b[p * n..][..n]) {
                    *o = o.wrapping_add(x.wrapping_mul(w));
                }
            }
            for ((o, &sum), &s) in c[i * n..][..n].iter_mut().zip(&acc).zip(scale) {
                *o = T::of(f64::from(sum as f32 * (a_scale * s)));
            }
        }
    }
}

/// `a` quantized to `u8` with ONNX Runtime's dynamic parameters (the range of `a` and 0, scale
/// `(max − min) / 255`, zero point rounded half to even), returned centered (`q − zero point`) with
/// the scale.
fn dynamic_u8<T: Real>(a: &[T]) -> (Vec<i32>, f32) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &x in a {
        let x = x.f64() as f32;
        lo = lo.min(x);
        hi = hi.max(x);
    }
    let scale = if hi == lo { 1.0 } else { (hi - lo) / 255.0 };
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even();
    let q = a
        .iter()
        .map(|&x| {
            (((x.f64() as f32) / scale).round_ties_even() + zp).clamp(0.0, 255.0) as i32 - zp as i32
        })
        .collect();
    (q, scale)
}

/// Evaluates one recurrent op.
pub fn eval(op: &RnnOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let spec = op.recurrent();
    let x = cx.tensor(0)?;
    if wide(x.dtype()) {
        run::<f64>(&spec, cx)
    } else {
        run::<f32>(&spec, cx)
    }
}

/// One activation function with its parameters.
#[derive(Debug, Clone, Copy)]
struct Act<T> {
    f: ActKind,
    alpha: T,
    beta: T,
}

impl<T: Real> Act<T> {
    /// The function as [`super::activation::apply`] defines it (computed in f64, rounded once).
    #[inline]
    fn apply(&self, x: T) -> T {
        let act = carve_ir::ops::activation::Activation {
            kind: self.f,
            alpha: self.alpha.f64() as f32,
            beta: self.beta.f64() as f32,
        };
        T::of(super::activation::apply(&act, x.f64()))
    }
}

/// Clips to `[-c, c]` when a clip is set.
#[inline]
fn clip<T: Real>(c: Option<T>, x: T) -> T {
    match c {
        Some(c) if x > c => c,
        Some(c) if x < -c => -c,
        _ => x,
    }
}

/// A required-shape check.
fn expect_shape(cx: &EvalCtx, what: &str, t: &Tensor, want: &[usize]) -> Result<(), RunError> {
    if t.shape != want {
        return Err(cx.err(format!(
            "{what} must have shape {want:?}, got {:?}",
            t.shape
        )));
    }
    Ok(())
}

/// `src[rows, cols]` transposed into `[cols, rows]`.
fn transpose<T: Real>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

fn run<T: Real>(spec: &Recurrent, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let r = cx.tensor(2)?;
    let cell = spec.cell;
    let (wq, rq) = (QuantWeights::of(cx, 1, w)?, QuantWeights::of(cx, 2, r)?);
    if (wq.is_some() || rq.is_some()) && !matches!(cell, CellKind::Lstm { .. }) {
        return Err(cx.err("quantized weights are supported for lstm only"));
    }
    let g = cell.gates();
    let nd = spec.direction.count() as usize;
    let [xa, xb, input] = x.shape[..] else {
        return Err(cx.err(format!("x must have rank 3, got {:?}", x.shape)));
    };
    let (s, b) = if spec.batch_first { (xb, xa) } else { (xa, xb) };
    let [_, _, h] = r.shape[..] else {
        return Err(cx.err(format!("r must have rank 3, got {:?}", r.shape)));
    };
    if let Some(hs) = spec.hidden_size
        && usize::try_from(hs) != Ok(h)
    {
        return Err(cx.err(format!(
            "hidden_size {hs} disagrees with r's hidden dim {h}"
        )));
    }
    let gh = g * h;
    expect_shape(cx, "w", w, &[nd, gh, input])?;
    expect_shape(cx, "r", r, &[nd, gh, h])?;
    let bias = cx.opt_tensor(3)?;
    if let Some(t) = bias {
        expect_shape(cx, "b", t, &[nd, 2 * gh])?;
    }
    let state_shape = if spec.batch_first {
        [b, nd, h]
    } else {
        [nd, b, h]
    };
    let init_h = cx.opt_tensor(5)?;
    if let Some(t) = init_h {
        expect_shape(cx, "initial_h", t, &state_shape)?;
    }
    let is_lstm = matches!(cell, CellKind::Lstm { .. });
    let init_c = if is_lstm { cx.opt_tensor(6)? } else { None };
    if let Some(t) = init_c {
        expect_shape(cx, "initial_c", t, &state_shape)?;
    }
    let peep = if is_lstm { cx.opt_tensor(7)? } else { None };
    if let Some(t) = peep {
        expect_shape(cx, "p", t, &[nd, 3 * h])?;
    }
    let lens: Vec<usize> = match cx.opt_tensor(4)? {
        Some(_) => {
            let v = cx.i64s(4)?;
            if v.len() != b {
                return Err(cx.err(format!(
                    "sequence_lens has {} values, the batch is {b}",
                    v.len()
                )));
            }
            v.iter()
                .map(|&l| {
                    usize::try_from(l).ok().filter(|&l| l <= s).ok_or_else(|| {
                        cx.err(format!("sequence_lens values must be in [0, {s}], got {l}"))
                    })
                })
                .collect::<Result<_, _>>()?
        }
        None => vec![s; b],
    };
    let funcs = cell.default_activations().len();
    if !spec.activations.is_empty()
        && (spec.activations.len() != funcs * nd
            || spec.alpha.len() != spec.activations.len()
            || spec.beta.len() != spec.activations.len())
    {
        return Err(cx.err(format!(
            "activations must list {} functions ({funcs} per direction) with one alpha and beta each",
            funcs * nd
        )));
    }
    let y_shape = if spec.batch_first {
        vec![b, s, nd, h]
    } else {
        vec![s, nd, b, h]
    };
    numel(cx, &y_shape)?;
    numel(cx, &[s, b, gh])?;
    numel(cx, &[nd, b, gh.max(1)])?;

    let xs = reals::<T>(cx, x)?;
    let float_weights = |q: &Option<QuantWeights>, t| match q {
        Some(_) => Ok(std::borrow::Cow::Owned(Vec::new())),
        None => reals::<T>(cx, t),
    };
    let ws = float_weights(&wq, w)?;
    let rs = float_weights(&rq, r)?;
    let bs = bias.map(|t| reals::<T>(cx, t)).transpose()?;
    let h0 = init_h.map(|t| reals::<T>(cx, t)).transpose()?;
    let c0 = init_c.map(|t| reals::<T>(cx, t)).transpose()?;
    let ps = peep.map(|t| reals::<T>(cx, t)).transpose()?;
    let clip_t = spec.clip.map(|c| T::of(f64::from(c)));

    // The input in sequence-major order [S, B, I].
    let xseq: Vec<T> = if spec.batch_first {
        let mut v = vec![T::ZERO; s * b * input];
        for bi in 0..b {
            for t in 0..s {
                let src = &xs[(bi * s + t) * input..][..input];
                v[(t * b + bi) * input..][..input].copy_from_slice(src);
            }
        }
        v
    } else {
        xs.to_vec()
    };

    let mut y = vec![T::ZERO; s * nd * b * h]; // [S, D, B, H]
    let mut yh = vec![T::ZERO; nd * b * h]; // [D, B, H]
    let mut yc = vec![T::ZERO; nd * b * h];
    let state_at = |d: usize, bi: usize| -> usize {
        if spec.batch_first {
            (bi * nd + d) * h
        } else {
            (d * b + bi) * h
        }
    };
    let mut xproj = vec![T::ZERO; s * b * gh];
    let mut rec = vec![T::ZERO; b * gh];
    let mut hprev = vec![T::ZERO; b * h];
    let mut cprev = vec![T::ZERO; b * h];
    let mut rh = vec![T::ZERO; b * h]; // GRU: r ⊙ H (then its projection)
    let mut rproj = vec![T::ZERO; b * h];
    let mut gates = vec![T::ZERO; gh];
    for d in 0..nd {
        let reverse = spec.direction == Direction::Reverse || d == 1;
        let acts: Vec<Act<T>> = (0..funcs)
            .map(|k| {
                if spec.activations.is_empty() {
                    let f = cell.default_activations()[k];
                    let (a, bb) = f.default_params();
                    Act {
                        f,
                        alpha: T::of(f64::from(a)),
                        beta: T::of(f64::from(bb)),
                    }
                } else {
                    let i = d * funcs + k;
                    Act {
                        f: spec.activations[i],
                        alpha: T::of(f64::from(spec.alpha[i])),
                        beta: T::of(f64::from(spec.beta[i])),
                    }
                }
            })
            .collect();
        let wt = match wq {
            Some(_) => Vec::new(),
            None => transpose(&ws[d * gh * input..(d + 1) * gh * input], gh, input),
        };
        let rt = match rq {
            Some(_) => Vec::new(),
            None => transpose(&rs[d * gh * h..(d + 1) * gh * h], gh, h),
        };
        // Input projection for the whole sequence, plus the biases that can be folded into it.
        match &wq {
            Some(q) => q.gemm(d, s * b, input, gh, &xseq, &mut xproj),
            None => T::gemm(
                s * b,
                input,
                gh,
                &xseq,
                input,
                &wt,
                gh,
                &mut xproj,
                gh,
                false,
            ),
        }
        let lbr = matches!(
            cell,
            CellKind::Gru {
                linear_before_reset: true
            }
        );
        let mut rb_h = vec![T::ZERO; h]; // GRU linear_before_reset: Rbh stays inside r ⊙ (·)
        if let Some(bs) = &bs {
            let wb = &bs[d * 2 * gh..d * 2 * gh + gh];
            let rb = &bs[d * 2 * gh + gh..(d + 1) * 2 * gh];
            let mut fold: Vec<T> = (0..gh).map(|i| wb[i] + rb[i]).collect();
            if lbr {
                for i in 0..h {
                    fold[2 * h + i] = wb[2 * h + i];
                    rb_h[i] = rb[2 * h + i];
                }
            }
            for row in xproj.chunks_mut(gh) {
                for (v, &f) in row.iter_mut().zip(&fold) {
                    *v += f;
                }
            }
        }
        for bi in 0..b {
            let at = state_at(d, bi);
            let dst = bi * h..(bi + 1) * h;
            match &h0 {
                Some(v) => hprev[dst.clone()].copy_from_slice(&v[at..at + h]),
                None => hprev[dst.clone()].fill(T::ZERO),
            }
            match &c0 {
                Some(v) => cprev[dst].copy_from_slice(&v[at..at + h]),
                None => cprev[dst].fill(T::ZERO),
            }
        }
        let (pi, po, pf) = match &ps {
            Some(p) => {
                let p = &p[d * 3 * h..(d + 1) * 3 * h];
                (p[..h].to_vec(), p[h..2 * h].to_vec(), p[2 * h..].to_vec())
            }
            None => (vec![T::ZERO; h], vec![T::ZERO; h], vec![T::ZERO; h]),
        };
        for step in 0..s {
            let gru_split = matches!(
                cell,
                CellKind::Gru {
                    linear_before_reset: false
                }
            );
            // Recurrent projection (for GRU without linear_before_reset, of the z and r gates only).
            let n_rec = if gru_split { 2 * h } else { gh };
            match &rq {
                Some(q) => q.gemm(d, b, h, gh, &hprev, &mut rec),
                None => T::gemm(b, h, n_rec, &hprev, h, &rt, gh, &mut rec, gh, false),
            }
            if gru_split {
                for bi in 0..b {
                    if step >= lens[bi] {
                        continue;
                    }
                    let t = if reverse { lens[bi] - 1 - step } else { step };
                    let xp = &xproj[(t * b + bi) * gh..][..gh];
                    for i in 0..h {
                        let r = acts[0].apply(clip(clip_t, xp[h + i] + rec[bi * gh + h + i]));
                        rh[bi * h + i] = r * hprev[bi * h + i];
                    }
                }
                T::gemm(b, h, h, &rh, h, &rt[2 * h..], gh, &mut rproj, h, false);
            }
            for bi in 0..b {
                if step >= lens[bi] {
                    continue;
                }
                let t = if reverse { lens[bi] - 1 - step } else { step };
                let xp = &xproj[(t * b + bi) * gh..][..gh];
                let rc = &rec[bi * gh..][..gh];
                for (gv, (&a, &c)) in gates.iter_mut().zip(xp.iter().zip(rc)) {
                    *gv = a + c;
                }
                let hp = &mut hprev[bi * h..(bi + 1) * h];
                let cp = &mut cprev[bi * h..(bi + 1) * h];
                match cell {
                    CellKind::Lstm { input_forget } => {
                        for k in 0..h {
                            let c_old = cp[k];
                            let i_g = acts[0].apply(clip(clip_t, gates[k] + pi[k] * c_old));
                            let f_g = if input_forget {
                                T::ONE - i_g
                            } else {
                                acts[0].apply(clip(clip_t, gates[2 * h + k] + pf[k] * c_old))
                            };
                            let c_t = acts[1].apply(clip(clip_t, gates[3 * h + k]));
                            let c_new = f_g * c_old + i_g * c_t;
                            let o_g = acts[0].apply(clip(clip_t, gates[h + k] + po[k] * c_new));
                            cp[k] = c_new;
                            hp[k] = o_g * acts[2].apply(c_new);
                        }
                    }
                    CellKind::Gru {
                        linear_before_reset,
                    } => {
                        for k in 0..h {
                            let z = acts[0].apply(clip(clip_t, gates[k]));
                            let hh = if linear_before_reset {
                                let r = acts[0].apply(clip(clip_t, gates[h + k]));
                                acts[1].apply(clip(
                                    clip_t,
                                    xp[2 * h + k] + r * (rc[2 * h + k] + rb_h[k]),
                                ))
                            } else {
                                acts[1].apply(clip(clip_t, xp[2 * h + k] + rproj[bi * h + k]))
                            };
                            hp[k] = (T::ONE - z) * hh + z * hp[k];
                        }
                    }
                    CellKind::Rnn => {
                        for k in 0..h {
                            hp[k] = acts[0].apply(clip(clip_t, gates[k]));
                        }
                    }
                }
                y[((t * nd + d) * b + bi) * h..][..h].copy_from_slice(hp);
            }
        }
        yh[d * b * h..(d + 1) * b * h].copy_from_slice(&hprev);
        yc[d * b * h..(d + 1) * b * h].copy_from_slice(&cprev);
    }

    let dtype = out_dtype(cx, 0, x.dtype());
    let mut outs = Vec::with_capacity(cx.num_outputs());
    for k in 0..cx.num_outputs() {
        let dt = out_dtype(cx, k, dtype);
        let t = match k {
            0 => {
                let v = if spec.batch_first {
                    // [S, D, B, H] -> [B, S, D, H]
                    let mut v = vec![T::ZERO; y.len()];
                    for t in 0..s {
                        for d in 0..nd {
                            for bi in 0..b {
                                let src = &y[((t * nd + d) * b + bi) * h..][..h];
                                v[((bi * s + t) * nd + d) * h..][..h].copy_from_slice(src);
                            }
                        }
                    }
                    v
                } else {
                    std::mem::take(&mut y)
                };
                real_tensor(cx, dt, y_shape.clone(), v)?
            }
            1 | 2 => {
                let src = if k == 1 { &yh } else { &yc };
                let v = if spec.batch_first {
                    // [D, B, H] -> [B, D, H]
                    let mut v = vec![T::ZERO; src.len()];
                    for d in 0..nd {
                        for bi in 0..b {
                            v[(bi * nd + d) * h..][..h]
                                .copy_from_slice(&src[(d * b + bi) * h..][..h]);
                        }
                    }
                    v
                } else {
                    src.clone()
                };
                real_tensor(cx, dt, state_shape.to_vec(), v)?
            }
            _ => return Err(cx.err(format!("has no output {k}"))),
        };
        outs.push(Value::Tensor(t));
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(f: ActKind, alpha: f64, beta: f64) -> Act<f64> {
        Act { f, alpha, beta }
    }

    #[test]
    fn activations_follow_their_onnx_definitions() {
        assert_eq!(act(ActKind::Relu, 0.0, 0.0).apply(-2.0), 0.0);
        assert!((act(ActKind::Sigmoid, 0.0, 0.0).apply(0.0) - 0.5).abs() < 1e-12);
        assert_eq!(act(ActKind::Affine, 2.0, 1.0).apply(3.0), 7.0);
        // Parameters are f32 in the IR: the slope is 0.1f32.
        assert_eq!(
            act(ActKind::LeakyRelu, 0.1, 0.0).apply(-2.0),
            -2.0 * f64::from(0.1f32)
        );
        assert_eq!(act(ActKind::ThresholdedRelu, 1.0, 0.0).apply(0.5), 0.0);
        assert_eq!(act(ActKind::ThresholdedRelu, 1.0, 0.0).apply(1.5), 1.5);
        assert!(
            (act(ActKind::ScaledTanh, 2.0, 0.5).apply(1.0) - 2.0 * 0.5f64.tanh()).abs() < 1e-12
        );
        assert_eq!(act(ActKind::HardSigmoid, 0.2, 0.5).apply(10.0), 1.0);
        let hs = act(ActKind::HardSigmoid, 0.2, 0.5).apply(1.0);
        assert!((hs - (f64::from(0.2f32) + 0.5)).abs() < 1e-12);
        assert!((act(ActKind::Elu, 1.0, 0.0).apply(-1.0) - ((-1.0f64).exp() - 1.0)).abs() < 1e-12);
        assert_eq!(act(ActKind::Softsign, 0.0, 0.0).apply(1.0), 0.5);
        assert!((act(ActKind::Softplus, 0.0, 0.0).apply(0.0) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(act(ActKind::Softplus, 0.0, 0.0).apply(1000.0), 1000.0);
        assert_eq!(clip(Some(1.0), 3.0), 1.0);
        assert_eq!(clip(Some(1.0), -3.0), -1.0);
        assert_eq!(clip(None, -3.0), -3.0);
    }
}

#[cfg(test)]
mod cell_tests {
    use carve_ir::ops::rnn::{Direction, Gru, Lstm};

    use crate::interp::conv::testutil::{f32s, run_op, values};
    use crate::tensor::{Data, Tensor};

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn lstm_with_peepholes_and_bias_matches_the_cell_equations() {
        // H = I = B = 1, two steps; gates i, o, f, c.
        let (wi, wo, wf, wc) = (0.5, -0.3, 0.8, 0.2);
        let (ri, ro, rf, rc) = (0.1, 0.4, -0.2, 0.6);
        let bias = [0.05, -0.1, 0.2, 0.0, 0.01, 0.02, 0.03, 0.04]; // Wb then Rb
        let (pi, po, pf) = (0.3, -0.2, 0.1);
        let xs = [1.0, -2.0];
        let (mut h, mut c) = (0.0f64, 0.0f64);
        let mut ys = Vec::new();
        for &x in &xs {
            let g = |w: f64, r: f64, k: usize| w * x + r * h + bias[k] + bias[4 + k];
            let i = sig(g(wi, ri, 0) + pi * c);
            let f = sig(g(wf, rf, 2) + pf * c);
            let ct = g(wc, rc, 3).tanh();
            c = f * c + i * ct;
            let o = sig(g(wo, ro, 1) + po * c);
            h = o * c.tanh();
            ys.push(h);
        }
        let w = f32s(&[1, 4, 1], &[wi as f32, wo as f32, wf as f32, wc as f32]);
        let r = f32s(&[1, 4, 1], &[ri as f32, ro as f32, rf as f32, rc as f32]);
        let b = f32s(&[1, 8], &bias.map(|v| v as f32));
        let p = f32s(&[1, 3], &[pi as f32, po as f32, pf as f32]);
        let x = f32s(&[2, 1, 1], &[1.0, -2.0]);
        let out = run_op(
            Lstm::default(),
            vec![
                Some(x),
                Some(w),
                Some(r),
                Some(b),
                None,
                None,
                None,
                Some(p),
            ],
            3,
        )
        .unwrap();
        let y = values(&out[0]);
        assert!((f64::from(y[0]) - ys[0]).abs() < 1e-6 && (f64::from(y[1]) - ys[1]).abs() < 1e-6);
        assert!((f64::from(values(&out[1])[0]) - h).abs() < 1e-6);
        assert!((f64::from(values(&out[2])[0]) - c).abs() < 1e-6);
    }

    #[test]
    fn gru_reset_gate_placement_and_reverse_sequence_lens() {
        // H = I = 1, batch 2 with lengths 3 and 1, reverse direction.
        let (wz, wr, wh) = (0.4, -0.6, 0.9);
        let (rz, rr, rh) = (0.3, 0.5, -0.7);
        let rbh = 0.25;
        let xs = [[0.5, -1.0], [1.5, 2.0], [-0.5, 0.0]]; // [S=3][B=2]
        let lens = [3usize, 1];
        for lbr in [false, true] {
            let mut want_y = [[0.0f64; 2]; 3];
            let mut want_h = [0.0f64; 2];
            for bi in 0..2 {
                let mut h = 0.0f64;
                for t in (0..lens[bi]).rev() {
                    let x = xs[t][bi];
                    let z = sig(wz * x + rz * h);
                    let r = sig(wr * x + rr * h);
                    let hh = if lbr {
                        (wh * x + r * (rh * h + rbh)).tanh()
                    } else {
                        (wh * x + rh * (r * h) + rbh).tanh()
                    };
                    h = (1.0 - z) * hh + z * h;
                    want_y[t][bi] = h;
                }
                want_h[bi] = h;
            }
            let op = Gru {
                direction: Direction::Reverse,
                linear_before_reset: lbr,
                ..Gru::default()
            };
            let w = f32s(&[1, 3, 1], &[wz as f32, wr as f32, wh as f32]);
            let r = f32s(&[1, 3, 1], &[rz as f32, rr as f32, rh as f32]);
            let mut b = [0.0f32; 6];
            b[5] = rbh as f32;
            let b = f32s(&[1, 6], &b);
            let x: Vec<f32> = xs.iter().flatten().map(|&v| v as f32).collect();
            let sl = Tensor::new(vec![2], Data::I32(vec![3, 1])).unwrap();
            let out = run_op(
                op,
                vec![
                    Some(f32s(&[3, 2, 1], &x)),
                    Some(w),
                    Some(r),
                    Some(b),
                    Some(sl),
                ],
                2,
            )
            .unwrap();
            let y = values(&out[0]);
            for t in 0..3 {
                for bi in 0..2 {
                    let got = f64::from(y[t * 2 + bi]);
                    assert!((got - want_y[t][bi]).abs() < 1e-6, "lbr={lbr} t={t} b={bi}");
                }
            }
            let yh = values(&out[1]);
            assert!((f64::from(yh[0]) - want_h[0]).abs() < 1e-6);
            assert!((f64::from(yh[1]) - want_h[1]).abs() < 1e-6);
        }
    }
}

#[cfg(test)]
mod quantized_tests {
    use carve_ir::ops::rnn::Lstm;
    use carve_ir::{Buffer, Constant, DType, Graph, Quant, QuantAxis, TensorType, Type};

    use super::dynamic_u8;
    use crate::interp::conv::testutil::{f32s, run_op, values};
    use crate::interp::{Value, run};

    #[test]
    fn dynamic_u8_takes_the_range_with_zero_and_rounds_half_to_even() {
        // Range [-1, 3] (0 inside): scale 4/255, zero point round(255/4) = 64.
        let (q, scale) = dynamic_u8(&[-1.0f32, 0.0, 3.0, 1.0]);
        assert_eq!(scale, 4.0 / 255.0);
        assert_eq!(q, vec![-64, 0, 191, 64]);
        // All positive: the range starts at 0 (zero point 0); 1 / (2/255) is 127.49999 in f32, as in
        // ONNX Runtime's f32 arithmetic. All zero: scale 1.
        assert_eq!(dynamic_u8(&[2.0f32, 1.0]), (vec![255, 127], 2.0 / 255.0));
        assert_eq!(dynamic_u8(&[0.0f32; 3]), (vec![0, 0, 0], 1.0));
    }

    /// A quantized weight constant `[1, n, k]` of `i8` values with one scale.
    fn qweight(n: u64, k: u64, v: &[i8], scale: f32) -> Constant {
        let mut ty = TensorType::known(DType::I8, &[1, n, k]);
        ty.quant = Some(Box::new(Quant {
            axis: QuantAxis::PerTensor,
            scale: vec![scale],
            zero_point: vec![0],
        }));
        Constant::dense(ty, Buffer::from_vec(v.iter().map(|&x| x as u8).collect())).unwrap()
    }

    /// One step from a zero state with integer inputs whose maximum is 255 quantizes exactly (scale
    /// 1, zero point 0; the state is all zeros), so the quantized LSTM equals the float LSTM over the
    /// dequantized weights.
    #[test]
    fn an_exactly_quantized_step_equals_the_float_lstm() {
        let (h, i) = (2u64, 3u64);
        let wv: Vec<i8> = (0..4 * h * i).map(|k| (k * 7 % 23) as i8 - 11).collect();
        let rv: Vec<i8> = (0..4 * h * h).map(|k| (k * 5 % 19) as i8 - 9).collect();
        let (ws, rs) = (0.002f32, 0.01f32);
        let x = [255.0f32, 0.0, 17.0];

        let mut g = Graph::new("q");
        let xi = g.add_input("x", Type::from(TensorType::known(DType::F32, &[1, 1, i])));
        let w = g.add_const("w", qweight(4 * h, i, &wv, ws));
        let r = g.add_const("r", qweight(4 * h, h, &rv, rs));
        let outs = g
            .add_node(
                "lstm",
                Lstm::default().into(),
                vec![Some(xi), Some(w), Some(r)],
                vec!["y".into()],
            )
            .unwrap();
        g.outputs = outs;
        let got = run(&g, vec![Value::Tensor(f32s(&[1, 1, i as usize], &x))]).unwrap();
        let Value::Tensor(got) = &got[0] else {
            panic!("not a tensor")
        };

        let deq = |v: &[i8], s: f32| v.iter().map(|&q| f32::from(q) * s).collect::<Vec<_>>();
        let want = run_op(
            Lstm::default(),
            vec![
                Some(f32s(&[1, 1, i as usize], &x)),
                Some(f32s(&[1, 4 * h as usize, i as usize], &deq(&wv, ws))),
                Some(f32s(&[1, 4 * h as usize, h as usize], &deq(&rv, rs))),
            ],
            1,
        )
        .unwrap();
        let (got, want) = (values(got), values(&want[0]));
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
