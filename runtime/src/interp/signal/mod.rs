//! Interpreter kernels for the signal op family (`carve_ir::ops::signal`): `dft` (forward / inverse,
//! one-sided, any axis, padded or truncated to `dft_length`), `stft`, the Hann / Hamming / Blackman
//! `window` and `mel_weight_matrix`, all computed in f64 and rounded once to the output type. The FFT
//! itself is in [`fft`].

pub mod fft;

use std::f64::consts::PI;

use carve_ir::ops::signal::{Dft, SignalOp, SignalWindow, Stft, WindowKind};

use super::quant::{float_tensor, out_dtype};
use super::util::{self, checked_numel, to_f64};
use super::{EvalCtx, RunError, Value, tensor_err};
use fft::{C, Fft};

/// Evaluates one signal op.
pub fn eval(op: &SignalOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        SignalOp::Dft(o) => dft(o, cx),
        SignalOp::Stft(o) => stft(o, cx),
        SignalOp::SignalWindow(o) => window(o, cx),
        SignalOp::MelWeightMatrix(_) => mel_weight_matrix(cx),
    }
}

/// The single integer of scalar input `i`, if present.
fn opt_scalar(cx: &EvalCtx, i: usize, what: &str) -> Result<Option<i64>, RunError> {
    if !cx.has(i) {
        return Ok(None);
    }
    match cx.i64s(i)?[..] {
        [v] => Ok(Some(v)),
        _ => Err(cx.err(format!("{what} (input {i}) must be a scalar"))),
    }
}

/// A positive length from scalar input `i`.
fn opt_length(cx: &EvalCtx, i: usize, what: &str) -> Result<Option<usize>, RunError> {
    match opt_scalar(cx, i, what)? {
        None => Ok(None),
        Some(v) if v > 0 => usize::try_from(v)
            .map(Some)
            .map_err(|_| cx.err(format!("{what} {v} is too large"))),
        Some(v) => Err(cx.err(format!("{what} must be positive, got {v}"))),
    }
}

/// The trailing real/imaginary dim of a signal: 1 or 2.
fn parts(cx: &EvalCtx, shape: &[usize], what: &str) -> Result<usize, RunError> {
    match shape.last() {
        Some(&c @ (1 | 2)) if shape.len() >= 2 => Ok(c),
        _ => Err(cx.err(format!(
            "{what} must have rank >= 2 and a last dim of 1 (real) or 2 (complex), got shape {shape:?}"
        ))),
    }
}

/// ONNX DFT (opset 20 form): transforms along `axis` with length `dft_length` (input truncated or
/// zero-padded); `onesided` forward keeps `n/2+1` bins, `onesided` inverse is an IRFFT (Hermitian
/// spectrum from the first `n/2+1` bins, real output). Inverses are scaled by `1/n`.
fn dft(op: &Dft, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let c = parts(cx, &x.shape, "the input")?;
    let r = x.shape.len();
    let axis = opt_scalar(cx, 2, "axis")?.unwrap_or(-2);
    let a = util::axis(axis, r).map_err(|e| tensor_err(cx, e))?;
    if a == r - 1 {
        return Err(cx.err(format!(
            "axis {axis} is the real/imaginary dim; the signal axes are 0..{}",
            r - 2
        )));
    }
    let len = x.shape[a];
    let irfft = op.inverse && op.onesided;
    let n = match opt_length(cx, 1, "dft_length")? {
        Some(n) => n,
        None if irfft => 2 * len.saturating_sub(1),
        None => len,
    };
    if n == 0 {
        return Err(cx.err("the transform length is 0"));
    }
    checked_numel(&[n, 4]).map_err(|e| tensor_err(cx, e))?;
    let (out_len, out_c) = match (op.inverse, op.onesided) {
        (false, true) => (n / 2 + 1, 2),
        (true, true) => (n, 1),
        _ => (n, 2),
    };
    let mut shape = x.shape.clone();
    shape[a] = out_len;
    shape[r - 1] = out_c;
    let total = checked_numel(&shape).map_err(|e| tensor_err(cx, e))?;
    let xs = to_f64(x).map_err(|e| tensor_err(cx, e))?;
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..r - 1].iter().product();
    let plan = Fft::new(n);
    let mut y = vec![0.0f64; total];
    let mut buf = vec![C::default(); n];
    // Input bins read: an IRFFT uses only the first n/2+1.
    let take = if irfft {
        len.min(n / 2 + 1)
    } else {
        len.min(n)
    };
    for o in 0..outer {
        for i in 0..inner {
            buf.fill(C::default());
            for (t, slot) in buf.iter_mut().enumerate().take(take) {
                let at = ((o * len + t) * inner + i) * c;
                *slot = C::new(xs[at], if c == 2 { xs[at + 1] } else { 0.0 });
            }
            if irfft {
                for k in 1..n.div_ceil(2) {
                    buf[n - k] = buf[k].conj();
                }
            }
            plan.run(&mut buf, op.inverse);
            let scale = if op.inverse { 1.0 / n as f64 } else { 1.0 };
            for (t, v) in buf.iter().enumerate().take(out_len) {
                let at = ((o * out_len + t) * inner + i) * out_c;
                y[at] = v.re * scale;
                if out_c == 2 {
                    y[at + 1] = v.im * scale;
                }
            }
        }
    }
    let t = float_tensor(out_dtype(cx, 0)?, shape, &y).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

/// ONNX STFT: frames of `frame_length` samples every `frame_step` of `signal[B, L, 1|2]`, each
/// multiplied by `window` (default all ones) and transformed; output `[B, frames, bins, 2]`.
fn stft(op: &Stft, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let c = parts(cx, &x.shape, "the signal")?;
    if x.shape.len() != 3 {
        return Err(cx.err(format!(
            "the signal must have shape [batch, length, 1|2], got {:?}",
            x.shape
        )));
    }
    let (batch, len) = (x.shape[0], x.shape[1]);
    let step = opt_length(cx, 1, "frame_step")?
        .ok_or_else(|| cx.err("frame_step (input 1) is required"))?;
    let win = match cx.opt_tensor(2)? {
        Some(w) => {
            if w.shape.len() != 1 {
                return Err(cx.err(format!("window must be 1-D, got shape {:?}", w.shape)));
            }
            Some(to_f64(w).map_err(|e| tensor_err(cx, e))?)
        }
        None => None,
    };
    let fl = match (opt_length(cx, 3, "frame_length")?, &win) {
        (Some(f), _) => f,
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if let Some(w) = &win
        && w.len() != fl
    {
        return Err(cx.err(format!(
            "the window has {} samples, frame_length is {fl}",
            w.len()
        )));
    }
    if fl == 0 || fl > len {
        return Err(cx.err(format!(
            "frame_length {fl} must be between 1 and the signal length {len}"
        )));
    }
    let frames = (len - fl) / step + 1;
    let bins = if op.onesided { fl / 2 + 1 } else { fl };
    let shape = vec![batch, frames, bins, 2];
    let total = checked_numel(&shape).map_err(|e| tensor_err(cx, e))?;
    let xs = to_f64(x).map_err(|e| tensor_err(cx, e))?;
    let plan = Fft::new(fl);
    let mut buf = vec![C::default(); fl];
    let mut y = vec![0.0f64; total];
    for b in 0..batch {
        for f in 0..frames {
            for (t, slot) in buf.iter_mut().enumerate() {
                let at = (b * len + f * step + t) * c;
                let w = win.as_ref().map_or(1.0, |w| w[t]);
                *slot = C::new(xs[at] * w, if c == 2 { xs[at + 1] * w } else { 0.0 });
            }
            plan.run(&mut buf, false);
            for (k, v) in buf.iter().enumerate().take(bins) {
                let at = ((b * frames + f) * bins + k) * 2;
                y[at] = v.re;
                y[at + 1] = v.im;
            }
        }
    }
    let t = float_tensor(out_dtype(cx, 0)?, shape, &y).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

/// Window coefficient `k` with denominator `N` (`size` periodic, `size − 1` symmetric), with the
/// reference's operation order so that integer output types truncate identically (a symmetric window
/// of one sample divides 0 by 0 and is NaN, as in ONNX Runtime and the reference).
fn window_value(kind: WindowKind, k: usize, denom: f64) -> f64 {
    let n = k as f64;
    match kind {
        WindowKind::Hann => (n * PI / denom).sin().powi(2),
        WindowKind::Hamming => {
            let alpha = 25.0 / 46.0;
            alpha - (n * PI * 2.0 / denom).cos() * (1.0 - alpha)
        }
        WindowKind::Blackman => {
            (n * (PI * 2.0) / denom).cos() * -0.5 + (n * (PI * 4.0) / denom).cos() * 0.08 + 0.42
        }
    }
}

fn window(op: &SignalWindow, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let size = opt_scalar(cx, 0, "size")?.ok_or_else(|| cx.err("size (input 0) is required"))?;
    let size = usize::try_from(size)
        .map_err(|_| cx.err(format!("size must not be negative, got {size}")))?;
    checked_numel(&[size]).map_err(|e| tensor_err(cx, e))?;
    let denom = if op.periodic {
        size
    } else {
        size.saturating_sub(1)
    } as f64;
    let v: Vec<f64> = (0..size).map(|k| window_value(op.kind, k, denom)).collect();
    let t = float_tensor(out_dtype(cx, 0)?, vec![size], &v).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

/// A float scalar input.
fn float_scalar(cx: &EvalCtx, i: usize, what: &str) -> Result<f64, RunError> {
    match to_f64(cx.tensor(i)?).map_err(|e| tensor_err(cx, e))?[..] {
        [v] => Ok(v),
        _ => Err(cx.err(format!("{what} (input {i}) must be a scalar"))),
    }
}

/// ONNX MelWeightMatrix, following the reference's arithmetic (HTK mel scale
/// `2595·log10(1 + f/700)`, `num_mel_bins + 2` equally spaced mel points mapped to FFT bins by
/// `floor((dft_length + 1)·f / sample_rate)`, triangular filters between neighbours).
fn mel_weight_matrix(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let req = |i: usize, what: &str| {
        opt_scalar(cx, i, what)?.ok_or_else(|| cx.err(format!("{what} (input {i}) is required")))
    };
    let mel_bins = req(0, "num_mel_bins")?;
    let dft_length = req(1, "dft_length")?;
    let sample_rate = req(2, "sample_rate")?;
    let lower = float_scalar(cx, 3, "lower_edge_hertz")?;
    let upper = float_scalar(cx, 4, "upper_edge_hertz")?;
    if mel_bins < 1 || dft_length < 1 || sample_rate < 1 {
        return Err(cx.err(format!(
            "num_mel_bins, dft_length and sample_rate must be positive, got {mel_bins}, {dft_length}, {sample_rate}"
        )));
    }
    let (mel_bins, dft_length) = (mel_bins as usize, dft_length as usize);
    let rows = dft_length / 2 + 1;
    let shape = vec![rows, mel_bins];
    let total = checked_numel(&shape).map_err(|e| tensor_err(cx, e))?;
    // The reference takes log1p of the f32 edges in f32, then continues in f64.
    let mel = |hz: f64| f64::from(2595f32 * (hz as f32 / 700f32).ln_1p()) / 10f64.ln();
    let (lo, hi) = (mel(lower), mel(upper));
    let points = mel_bins + 2;
    let step = (hi - lo) / points as f64;
    let bins: Vec<i64> = (0..points)
        .map(|i| {
            let m = i as f64 * step + lo;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            ((dft_length + 1) as f64 * hz / sample_rate as f64).floor() as i64
        })
        .collect();
    let mut y = vec![0.0f64; total];
    let mut set = |row: i64, col: usize, v: f64| -> Result<(), RunError> {
        match usize::try_from(row).ok().filter(|&r| r < rows) {
            Some(r) => {
                y[r * mel_bins + col] = v;
                Ok(())
            }
            None => Err(cx.err(format!(
                "mel bin {col} falls on FFT bin {row}, outside 0..{rows}: check the edge frequencies against sample_rate"
            ))),
        }
    };
    for i in 0..mel_bins {
        let (l, c, h) = (bins[i], bins[i + 1], bins[i + 2]);
        if c == l {
            set(c, i, 1.0)?;
        } else {
            for j in l..=c {
                set(j, i, (j - l) as f64 / (c - l) as f64)?;
            }
        }
        if h > c {
            for j in c..h {
                set(j, i, (h - j) as f64 / (h - c) as f64)?;
            }
        }
    }
    let t = float_tensor(out_dtype(cx, 0)?, shape, &y).map_err(|m| cx.err(m))?;
    Ok(vec![t.into()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Data, Tensor};
    use carve_ir::{Graph, Op, Type};

    fn run_node(op: impl Into<Op>, inputs: Vec<Option<Tensor>>) -> Tensor {
        let mut g = Graph::new("t");
        let mut ids = Vec::new();
        let mut vals = Vec::new();
        for (i, t) in inputs.into_iter().enumerate() {
            ids.push(t.map(|t| {
                let id = g.add_input(format!("x{i}"), Type::Tensor(t.ty()));
                vals.push(Value::Tensor(t));
                id
            }));
        }
        g.outputs = g.add_node("n", op.into(), ids, vec!["y".into()]).unwrap();
        let out = crate::interp::run(&g, vals).unwrap();
        out[0].as_tensor().unwrap().clone()
    }

    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::F32(v.to_vec())).unwrap()
    }

    fn i64s(v: i64) -> Tensor {
        Tensor::scalar_i64(v)
    }

    fn close(t: &Tensor, want: &[f64]) {
        let got = to_f64(t).unwrap();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn dft_length_truncates_and_pads() {
        let x = f32s(&[1, 4, 1], &[1.0, 2.0, 3.0, 4.0]);
        // n = 2: DFT of [1, 2] = [3, -1].
        let y = run_node(
            Dft::default(),
            vec![Some(x.clone()), Some(i64s(2)), Some(i64s(1))],
        );
        assert_eq!(y.shape, vec![1, 2, 2]);
        close(&y, &[3.0, 0.0, -1.0, 0.0]);
        // n = 6, one-sided: 4 bins of [1, 2, 3, 4, 0, 0]; bin 3 = 1 - 2 + 3 - 4 = -2.
        let rfft = Dft {
            onesided: true,
            inverse: false,
        };
        let y = run_node(rfft, vec![Some(x), Some(i64s(6)), Some(i64s(1))]);
        assert_eq!(y.shape, vec![1, 4, 2]);
        let v = to_f64(&y).unwrap();
        assert!((v[0] - 10.0).abs() < 1e-5 && (v[6] + 2.0).abs() < 1e-5 && v[7].abs() < 1e-5);
    }

    #[test]
    fn irfft_inverts_rfft_for_odd_and_even_lengths() {
        for n in [5usize, 6] {
            let sig: Vec<f32> = (0..n).map(|i| (i as f32 * 0.9).sin() + 0.3).collect();
            let x = f32s(&[1, n, 1], &sig);
            let rfft = Dft {
                onesided: true,
                inverse: false,
            };
            let spec = run_node(rfft, vec![Some(x), None, Some(i64s(1))]);
            let irfft = Dft {
                onesided: true,
                inverse: true,
            };
            let len = i64s(n as i64);
            let back = run_node(irfft, vec![Some(spec), Some(len), Some(i64s(1))]);
            assert_eq!(back.shape, vec![1, n, 1]);
            close(
                &back,
                &sig.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            );
        }
    }

    #[test]
    fn stft_of_a_constant_has_only_a_dc_bin() {
        let x = f32s(&[1, 8, 1], &[1.0; 8]);
        let y = run_node(
            Stft { onesided: true },
            vec![Some(x), Some(i64s(2)), None, Some(i64s(4))],
        );
        // frames = (8 - 4) / 2 + 1 = 3, bins = 3.
        assert_eq!(y.shape, vec![1, 3, 3, 2]);
        let mut want = vec![0.0; 18];
        for f in 0..3 {
            want[f * 6] = 4.0;
        }
        close(&y, &want);
    }

    #[test]
    fn windows_match_their_closed_forms() {
        // Periodic Hann of 4: 0, 0.5, 1, 0.5; symmetric Hamming of 3: 0.0869.., 1, 0.0869...
        let hann: Vec<f64> = (0..4)
            .map(|k| window_value(WindowKind::Hann, k, 4.0))
            .collect();
        for (a, b) in hann.iter().zip([0.0, 0.5, 1.0, 0.5]) {
            assert!((a - b).abs() < 1e-12);
        }
        let h = window_value(WindowKind::Hamming, 0, 2.0);
        assert!((h - 4.0 / 46.0).abs() < 1e-12);
        let b = window_value(WindowKind::Blackman, 1, 2.0);
        assert!((b - 1.0).abs() < 1e-12);
        assert!(window_value(WindowKind::Hann, 0, 0.0).is_nan());
    }
}
