//! Signal processing: `dft` (ONNX DFT, opset 20 form with `dft_length` and `axis` as inputs), `stft`,
//! `window` (Hann/Hamming/Blackman windows as one op with a [`WindowKind`]) and `mel_weight_matrix`.
//!
//! Complex values are ONNX-style: a trailing dim of 2 (real, imaginary); real signals have a trailing dim
//! of 1. Scalar operands (lengths, steps, sizes, axis) stay inputs; inference reads their values when
//! they are known and otherwise leaves the affected dims unknown.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, SymInt};
use crate::{DType, Dim, Shape, TensorType, Type};

crate::attr_enum! {
    /// The window function of a `window` op.
    pub enum WindowKind {
        /// `0.5 - 0.5·cos(2πn/N)`.
        Hann = "hann",
        /// `25/46 - 21/46·cos(2πn/N)`.
        Hamming = "hamming",
        /// `0.42 - 0.5·cos(2πn/N) + 0.08·cos(4πn/N)`.
        Blackman = "blackman",
    }
}

define_ops! {
    /// Signal-processing ops.
    pub enum SignalOp {
        /// Discrete Fourier transform `(input[.., 1|2], dft_length?, axis?) -> output[.., 1|2]` along
        /// `axis` (scalar i64 input, default -2). `onesided` forward is an RFFT (`n/2+1` bins), `onesided`
        /// inverse an IRFFT (real output, default length `2·(bins-1)`).
        Dft = "dft" {
            /// Inverse transform.
            inverse: bool = false,
            /// Use the conjugate symmetry of real signals.
            onesided: bool = false,
        },
        /// Short-time Fourier transform `(signal[B,L,1|2], frame_step, window[F]?, frame_length?) ->
        /// [B, frames, bins, 2]`.
        Stft = "stft" {
            /// Return only the `frame_length/2+1` unique bins.
            onesided: bool = true,
        },
        /// A window function of `size` (scalar input) samples: `[size]` of `dtype`.
        SignalWindow = "window" {
            /// The function.
            kind: WindowKind = WindowKind::Hann,
            /// Periodic (`N = size`) rather than symmetric (`N = size - 1`).
            periodic: bool = true,
            /// Output element type.
            dtype: DType = DType::F32,
        },
        /// Mel filterbank `(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz) ->
        /// [dft_length/2 + 1, num_mel_bins]` of `dtype`.
        MelWeightMatrix = "mel_weight_matrix" {
            /// Output element type.
            dtype: DType = DType::F32,
        },
    }
}

crate::ops::props::default_family_props!(SignalOp, "transforms mix their whole axis");

fn dim(t: &TensorType, i: usize) -> Dim {
    t.dims()
        .and_then(|d| d.get(i))
        .cloned()
        .unwrap_or(Dim::Unknown)
}

/// Checks that optional input `i` is a scalar (or one-element vector) of an integer type.
fn int_scalar(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
    let Some(t) = cx.opt_tensor(i)? else {
        return Ok(());
    };
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        return Err(cx.err(format!("{what} must be i32 or i64, got {}", t.dtype)));
    }
    scalar(cx, i, what)
}

fn scalar(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
    let t = cx.tensor(i)?;
    match t.dims() {
        Some([]) | None => Ok(()),
        Some([d]) if !d.conflicts(&Dim::Known(1)) => Ok(()),
        Some(d) => Err(cx.err(format!(
            "{what} must be a scalar, got shape {}",
            Shape(d.to_vec())
        ))),
    }
}

/// The value of scalar input `i` if known, checked to be positive.
fn positive_value(cx: &InferCtx, i: usize, what: &str) -> Result<Option<u64>, InferError> {
    match cx.known_i64s(i).as_deref() {
        Some([v]) if *v > 0 => Ok(Some(*v as u64)),
        Some([v]) => Err(cx.err(format!("{what} must be positive, got {v}"))),
        _ => Ok(None),
    }
}

/// The symbolic value of scalar input `i` as a dim.
fn value_dim(cx: &InferCtx, i: usize) -> Dim {
    match cx.sym_value(i).as_deref() {
        Some([SymInt::Int(v)]) if *v >= 0 => Dim::Known(*v as u64),
        Some([s @ SymInt::Sym(_)]) => s.to_dim(),
        _ => match cx.known_i64s(i).as_deref() {
            Some([v]) if *v >= 0 => Dim::Known(*v as u64),
            _ => Dim::Unknown,
        },
    }
}

fn output_dtype(cx: &InferCtx, dtype: DType) -> Result<(), InferError> {
    if dtype.is_float() || dtype.is_int() {
        Ok(())
    } else {
        Err(cx.err(format!("output element type must be numeric, got {dtype}")))
    }
}

fn complex_dim(cx: &InferCtx, d: &Dim, what: &str) -> Result<(), InferError> {
    match d {
        Dim::Known(1 | 2) | Dim::Sym(_) | Dim::Unknown => Ok(()),
        Dim::Known(n) => Err(cx.err(format!(
            "the last dim of {what} must be 1 (real) or 2 (complex), got {n}"
        ))),
    }
}

impl Infer for Dft {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        if !x.dtype.is_float() {
            return Err(cx.err(format!("expects a floating-point input, got {}", x.dtype)));
        }
        int_scalar(cx, 1, "dft_length")?;
        if let Some(a) = cx.opt_tensor(2)? {
            if a.dtype != DType::I64 {
                return Err(cx.err(format!("axis must be i64, got {}", a.dtype)));
            }
            scalar(cx, 2, "axis")?;
        }
        let irfft = self.onesided && self.inverse;
        let last = Dim::Known(if irfft { 1 } else { 2 });
        let Some(dims) = x.dims() else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let r = dims.len();
        if r < 2 {
            return Err(cx.err(format!(
                "input must have rank ≥ 2 (signal dims and a real/imaginary dim), got {r}"
            )));
        }
        complex_dim(cx, &dims[r - 1], "the input")?;
        let n = positive_value(cx, 1, "dft_length")?;
        let axis = if cx.has_input(2) {
            cx.known_i64s(2).and_then(|v| v.first().copied())
        } else {
            Some(-2)
        };
        let mut out: Vec<Dim> = dims.to_vec();
        out[r - 1] = last;
        let Some(axis) = axis else {
            // The transformed axis is not known: only a plain DFT keeps every dim.
            if self.onesided || cx.has_input(1) {
                for d in &mut out[..r - 1] {
                    *d = Dim::Unknown;
                }
            }
            return Ok(vec![TensorType::new(x.dtype, Shape(out)).into()]);
        };
        let ri = r as i64;
        let a = if axis < 0 { axis + ri } else { axis };
        if a < 0 || a > ri - 2 {
            return Err(cx.err(format!(
                "axis {axis} is out of range for rank {r} (the last dim holds real/imaginary parts)"
            )));
        }
        let a = a as usize;
        out[a] = match (self.onesided, self.inverse, n, &dims[a]) {
            (false, _, Some(n), _) | (true, true, Some(n), _) => Dim::Known(n),
            (false, _, None, d) => d.clone(),
            (true, false, Some(n), _) => Dim::Known(n / 2 + 1),
            (true, false, None, Dim::Known(len)) => Dim::Known(len / 2 + 1),
            (true, true, None, Dim::Known(bins)) => bins
                .saturating_sub(1)
                .checked_mul(2)
                .map_or(Dim::Unknown, Dim::Known),
            _ => Dim::Unknown,
        };
        if cx.has_input(1) && n.is_none() {
            // A dft_length that is not known sets the transformed length.
            out[a] = Dim::Unknown;
        }
        Ok(vec![TensorType::new(x.dtype, Shape(out)).into()])
    }
}

impl Infer for Stft {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        if !x.dtype.is_float() {
            return Err(cx.err(format!("expects a floating-point signal, got {}", x.dtype)));
        }
        if cx.num_inputs() < 2 || !cx.has_input(1) {
            return Err(cx.err("frame_step (input 1) is required"));
        }
        int_scalar(cx, 1, "frame_step")?;
        int_scalar(cx, 3, "frame_length")?;
        if let (Some(fs), Some(fl)) = (cx.opt_tensor(1)?, cx.opt_tensor(3)?)
            && fs.dtype != fl.dtype
        {
            return Err(cx.err(format!(
                "frame_step and frame_length must share one integer type, got {} and {}",
                fs.dtype, fl.dtype
            )));
        }
        let window = cx.opt_tensor(2)?;
        if let Some(w) = window {
            if w.dtype != x.dtype {
                return Err(cx.err(format!(
                    "window has element type {}, the signal has {}",
                    w.dtype, x.dtype
                )));
            }
            if let Some(r) = w.rank()
                && r != 1
            {
                return Err(cx.err(format!("window must have rank 1, got {r}")));
            }
        }
        if let Some(r) = x.rank() {
            if r != 3 {
                return Err(cx.err(format!(
                    "signal must have rank 3 ([batch, length, 1|2]), got {r}"
                )));
            }
            complex_dim(cx, &dim(x, 2), "the signal")?;
        }
        let step = positive_value(cx, 1, "frame_step")?;
        let mut fl = match positive_value(cx, 3, "frame_length")? {
            Some(v) => Dim::Known(v),
            None if cx.has_input(3) => Dim::Unknown,
            None => window.map_or_else(|| dim(x, 1), |w| dim(w, 0)),
        };
        if let Some(w) = window {
            let wl = dim(w, 0);
            if wl.conflicts(&fl) {
                return Err(cx.err(format!(
                    "the window length {wl} differs from frame_length {fl}"
                )));
            }
            fl = fl.refine(&wl);
        }
        let frames = match (dim(x, 1), &fl, step) {
            (Dim::Known(len), Dim::Known(f), Some(s)) => {
                let span = len.checked_sub(*f).ok_or_else(|| {
                    cx.err(format!("frame_length {f} exceeds the signal length {len}"))
                })?;
                Dim::Known(span / s + 1)
            }
            _ => Dim::Unknown,
        };
        let bins = match (&fl, self.onesided) {
            (Dim::Known(f), true) => Dim::Known(f / 2 + 1),
            (d, false) => d.clone(),
            _ => Dim::Unknown,
        };
        Ok(vec![
            TensorType::new(x.dtype, Shape(vec![dim(x, 0), frames, bins, Dim::Known(2)])).into(),
        ])
    }
}

impl Infer for SignalWindow {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        cx.tensor(0)?;
        int_scalar(cx, 0, "size")?;
        output_dtype(cx, self.dtype)?;
        if let Some([v]) = cx.known_i64s(0).as_deref()
            && *v < 0
        {
            return Err(cx.err(format!("size must not be negative, got {v}")));
        }
        Ok(vec![
            TensorType::new(self.dtype, Shape(vec![value_dim(cx, 0)])).into(),
        ])
    }
}

impl Infer for MelWeightMatrix {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        output_dtype(cx, self.dtype)?;
        let names = [
            "num_mel_bins",
            "dft_length",
            "sample_rate",
            "lower_edge_hertz",
            "upper_edge_hertz",
        ];
        for (i, name) in names.iter().enumerate() {
            if !cx.has_input(i) {
                return Err(cx.err(format!("{name} (input {i}) is required")));
            }
            if i < 3 {
                int_scalar(cx, i, name)?;
            } else {
                let t = cx.tensor(i)?;
                if !t.dtype.is_float() {
                    return Err(cx.err(format!("{name} must be a float, got {}", t.dtype)));
                }
                scalar(cx, i, name)?;
            }
        }
        let ints = [cx.dtype(0)?, cx.dtype(1)?, cx.dtype(2)?];
        if ints.iter().any(|&d| d != ints[0]) {
            return Err(
                cx.err("num_mel_bins, dft_length and sample_rate must share one integer type")
            );
        }
        if cx.dtype(3)? != cx.dtype(4)? {
            return Err(cx.err("lower_edge_hertz and upper_edge_hertz must share one float type"));
        }
        let mel = positive_value(cx, 0, "num_mel_bins")?.map_or(Dim::Unknown, Dim::Known);
        let bins =
            positive_value(cx, 1, "dft_length")?.map_or(Dim::Unknown, |n| Dim::Known(n / 2 + 1));
        positive_value(cx, 2, "sample_rate")?;
        Ok(vec![
            TensorType::new(self.dtype, Shape(vec![bins, mel])).into(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constant, Graph, Op, ValueId};

    fn k(v: u64) -> Dim {
        Dim::Known(v)
    }

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) -> ValueId {
        g.add_input(name, Type::Tensor(TensorType::new(dtype, Shape(dims))))
    }

    fn scalar_i64(g: &mut Graph, name: &str, v: i64) -> ValueId {
        g.add_const(name, Constant::from_i64s(&[], &[v]))
    }

    fn run(
        g: &mut Graph,
        op: impl Into<Op>,
        inputs: Vec<Option<ValueId>>,
    ) -> Result<String, InferError> {
        let outs = g.add_node("n", op.into(), inputs, vec!["o".into()])?;
        Ok(g.ty(outs[0]).to_string())
    }

    #[test]
    fn dft_default_axis_and_lengths() {
        let mut g = Graph::new("t");
        let x = input(
            &mut g,
            "x",
            DType::F32,
            vec![sym("N"), k(10), sym("T"), k(1)],
        );
        // Default axis -2 (the last signal axis): symbolic T survives a plain DFT.
        assert_eq!(
            run(&mut g, Dft::default(), vec![Some(x)]).unwrap(),
            "f32[N,10,T,2]"
        );
        let axis = scalar_i64(&mut g, "axis", 1);
        let rfft = Dft {
            onesided: true,
            ..Dft::default()
        };
        assert_eq!(
            run(&mut g, rfft, vec![Some(x), None, Some(axis)]).unwrap(),
            "f32[N,6,T,2]"
        );
        let len = scalar_i64(&mut g, "len", 16);
        assert_eq!(
            run(&mut g, Dft::default(), vec![Some(x), Some(len), Some(axis)]).unwrap(),
            "f32[N,16,T,2]"
        );
        let xc = input(&mut g, "xc", DType::F32, vec![k(1), k(6), k(10), k(2)]);
        let irfft = Dft {
            onesided: true,
            inverse: true,
        };
        assert_eq!(
            run(&mut g, irfft, vec![Some(xc), None, Some(axis)]).unwrap(),
            "f32[1,10,10,1]"
        );
    }

    #[test]
    fn dft_with_unknown_axis_keeps_rank() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(1), k(10), k(10), k(1)]);
        let axis = input(&mut g, "axis", DType::I64, vec![]);
        assert_eq!(
            run(&mut g, Dft::default(), vec![Some(x), None, Some(axis)]).unwrap(),
            "f32[1,10,10,2]"
        );
        let rfft = Dft {
            onesided: true,
            ..Dft::default()
        };
        assert_eq!(
            run(&mut g, rfft, vec![Some(x), None, Some(axis)]).unwrap(),
            "f32[?,?,?,2]"
        );
    }

    #[test]
    fn dft_rejects_bad_axis_and_shapes() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(4), k(1)]);
        let bad = scalar_i64(&mut g, "a", 1);
        assert!(run(&mut g, Dft::default(), vec![Some(x), None, Some(bad)]).is_err());
        let x3 = input(&mut g, "x3", DType::F32, vec![k(4), k(3)]);
        assert!(run(&mut g, Dft::default(), vec![Some(x3)]).is_err());
        let zero = scalar_i64(&mut g, "z", 0);
        assert!(run(&mut g, Dft::default(), vec![Some(x), Some(zero)]).is_err());
        let xi = input(&mut g, "xi", DType::I32, vec![k(4), k(1)]);
        assert!(run(&mut g, Dft::default(), vec![Some(xi)]).is_err());
    }

    #[test]
    fn stft_frames_and_bins() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![sym("B"), k(128), k(1)]);
        let step = scalar_i64(&mut g, "step", 8);
        let len = scalar_i64(&mut g, "len", 16);
        assert_eq!(
            run(
                &mut g,
                Stft::default(),
                vec![Some(x), Some(step), None, Some(len)]
            )
            .unwrap(),
            "f32[B,15,9,2]"
        );
        let w = input(&mut g, "w", DType::F32, vec![k(16)]);
        let two_sided = Stft { onesided: false };
        assert_eq!(
            run(&mut g, two_sided, vec![Some(x), Some(step), Some(w)]).unwrap(),
            "f32[B,15,16,2]"
        );
        let w8 = input(&mut g, "w8", DType::F32, vec![k(8)]);
        assert!(
            run(
                &mut g,
                Stft::default(),
                vec![Some(x), Some(step), Some(w8), Some(len)]
            )
            .is_err()
        );
        let dynamic = input(&mut g, "s", DType::I64, vec![]);
        assert_eq!(
            run(
                &mut g,
                Stft::default(),
                vec![Some(x), Some(dynamic), Some(w)]
            )
            .unwrap(),
            "f32[B,?,9,2]"
        );
    }

    #[test]
    fn window_size_from_constant_or_shape() {
        let mut g = Graph::new("t");
        let n = scalar_i64(&mut g, "n", 10);
        let op = SignalWindow {
            kind: WindowKind::Blackman,
            periodic: false,
            dtype: DType::F64,
        };
        assert_eq!(run(&mut g, op, vec![Some(n)]).unwrap(), "f64[10]");
        let dynamic = input(&mut g, "d", DType::I32, vec![]);
        assert_eq!(
            run(&mut g, SignalWindow::default(), vec![Some(dynamic)]).unwrap(),
            "f32[?]"
        );
        let neg = scalar_i64(&mut g, "neg", -1);
        assert!(run(&mut g, SignalWindow::default(), vec![Some(neg)]).is_err());
        let bad = SignalWindow {
            dtype: DType::Bool,
            ..SignalWindow::default()
        };
        assert!(run(&mut g, bad, vec![Some(n)]).is_err());
    }

    #[test]
    fn mel_weight_matrix_shape() {
        let mut g = Graph::new("t");
        let mel = scalar_i64(&mut g, "mel", 8);
        let len = scalar_i64(&mut g, "len", 16);
        let rate = scalar_i64(&mut g, "rate", 8192);
        let lo = g.add_const("lo", Constant::from_f32s(&[], &[0.0]));
        let hi = g.add_const("hi", Constant::from_f32s(&[], &[4096.0]));
        let ins = vec![Some(mel), Some(len), Some(rate), Some(lo), Some(hi)];
        assert_eq!(
            run(&mut g, MelWeightMatrix::default(), ins).unwrap(),
            "f32[9,8]"
        );
        assert!(
            run(
                &mut g,
                MelWeightMatrix::default(),
                vec![Some(mel), Some(len), Some(rate), Some(lo)]
            )
            .is_err()
        );
    }
}
