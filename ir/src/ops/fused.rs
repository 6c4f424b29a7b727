//! Fused ops: `fused_conv` and `fused_matmul`, the kernels the e-graph optimizer fuses bias and
//! activation epilogues into (no ONNX importer produces them), and the [`Activation`] epilogue they share.
//!
//! Contract (what codegen lowers and the interpreter defines):
//! - `fused_conv(x, w, b?)` is exactly `conv(x, w, b?)` with the same attributes, followed by the
//!   activation applied to every output element.
//! - `fused_matmul(a, b, bias?)` is ONNX MatMul (batched, broadcasting, 1-D operands promoted as usual),
//!   then `+ bias` where `bias` is a 1-D `[N]` vector added along the last output dim, then the activation.
//!   `Gemm` with `alpha = beta = 1`, no transposition of A and a 1-D bias maps here (a transposed constant
//!   B is folded into a pre-transposed constant).
//! - The activation is one keyword `act` with up to two float parameters `act_alpha`, `act_beta`
//!   (`leaky_relu`: alpha = slope; `clip`: alpha = min, beta = max; `hard_sigmoid`: alpha, beta as in ONNX).
//!   [`Activation::apply_f32`] is the reference scalar definition.
//!
//! Both ops require a float element type; the interpreter evaluates the epilogue in f32.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, matmul_types};
use crate::ops::conv::{AutoPad, Conv};
use crate::{TensorType, Type};

crate::attr_enum! {
    /// The activation of a fused op's epilogue (parameters in `act_alpha` / `act_beta`).
    pub enum ActKind {
        /// No activation.
        None = "none",
        /// `max(x, 0)`.
        Relu = "relu",
        /// `x < 0 ? alpha·x : x`.
        LeakyRelu = "leaky_relu",
        /// `min(max(x, alpha), beta)`.
        Clip = "clip",
        /// `max(0, min(1, alpha·x + beta))`.
        HardSigmoid = "hard_sigmoid",
        /// `x · max(0, min(1, x/6 + 1/2))`.
        HardSwish = "hard_swish",
        /// `1/(1+e⁻ˣ)`.
        Sigmoid = "sigmoid",
        /// `tanh(x)`.
        Tanh = "tanh",
        /// `0.5·x·(1 + erf(x/√2))`.
        GeluErf = "gelu_erf",
        /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
        GeluTanh = "gelu_tanh",
    }
}

/// A fused activation with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activation {
    /// Which function.
    pub kind: ActKind,
    /// First parameter (see [`ActKind`]); 0 when unused.
    pub alpha: f32,
    /// Second parameter; 0 when unused.
    pub beta: f32,
}

impl Activation {
    /// The identity epilogue.
    pub const NONE: Activation = Activation {
        kind: ActKind::None,
        alpha: 0.0,
        beta: 0.0,
    };

    /// An activation without parameters.
    pub fn plain(kind: ActKind) -> Activation {
        Activation {
            kind,
            alpha: 0.0,
            beta: 0.0,
        }
    }

    /// The reference definition of the activation on one element.
    pub fn apply_f32(&self, x: f32) -> f32 {
        match self.kind {
            ActKind::None => x,
            ActKind::Relu => x.max(0.0),
            ActKind::LeakyRelu => {
                if x < 0.0 {
                    self.alpha * x
                } else {
                    x
                }
            }
            ActKind::Clip => x.max(self.alpha).min(self.beta),
            ActKind::HardSigmoid => (self.alpha * x + self.beta).clamp(0.0, 1.0),
            ActKind::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            ActKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActKind::Tanh => x.tanh(),
            ActKind::GeluErf => {
                let xf = f64::from(x);
                (0.5 * xf * (1.0 + erf(xf / std::f64::consts::SQRT_2))) as f32
            }
            ActKind::GeluTanh => {
                let xf = f64::from(x);
                let k = (2.0 / std::f64::consts::PI).sqrt();
                (0.5 * xf * (1.0 + (k * (xf + 0.044715 * xf * xf * xf)).tanh())) as f32
            }
        }
    }
}

/// The error function in f64 (Maclaurin series for |x| < 2, continued fraction of erfc beyond; about
/// 1e-15 absolute error), so the fused GELU matches the decomposed `erf` form to f32 rounding.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.0 {
        // Maclaurin series: erf(x) = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1)); converges fast for |x| < 2.
        let mut sum = 0.0;
        let mut term = x;
        let x2 = x * x;
        let mut n = 0.0f64;
        loop {
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 * sum.abs().max(1e-300) || n > 80.0 {
                break;
            }
            n += 1.0;
            term *= -x2 / n;
        }
        return 2.0 / std::f64::consts::PI.sqrt() * sum;
    }
    // Continued fraction for erfc, |x| >= 2.
    let z = x.abs();
    let mut f = 0.0;
    for k in (1..60).rev() {
        f = (k as f64 / 2.0) / (z + f);
    }
    let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / (z + f);
    if x > 0.0 { 1.0 - erfc } else { erfc - 1.0 }
}

define_ops! {
    /// Fused ops produced by the e-graph optimizer.
    pub enum FusedOp {
        /// `act(conv(x, w, b?))` with conv's attributes.
        FusedConv = "fused_conv" {
            /// Number of channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv`.
            pads: Vec<i64> = Vec::new(),
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
            /// The epilogue activation.
            act: ActKind = ActKind::None,
            /// Its first parameter.
            act_alpha: f32 = 0.0,
            /// Its second parameter.
            act_beta: f32 = 0.0,
        },
        /// `act(matmul(a, b) + bias?)` with a 1-D `[N]` bias along the last dim.
        FusedMatMul = "fused_matmul" {
            /// The epilogue activation.
            act: ActKind = ActKind::None,
            /// Its first parameter.
            act_alpha: f32 = 0.0,
            /// Its second parameter.
            act_beta: f32 = 0.0,
        },
    }
}

impl FusedConv {
    /// The fused op for `conv` with the activation `act`.
    pub fn new(conv: &Conv, act: Activation) -> FusedConv {
        FusedConv {
            group: conv.group,
            kernel_shape: conv.kernel_shape.clone(),
            strides: conv.strides.clone(),
            dilations: conv.dilations.clone(),
            pads: conv.pads.clone(),
            auto_pad: conv.auto_pad,
            act: act.kind,
            act_alpha: act.alpha,
            act_beta: act.beta,
        }
    }

    /// The convolution part.
    pub fn conv(&self) -> Conv {
        Conv {
            group: self.group,
            kernel_shape: self.kernel_shape.clone(),
            strides: self.strides.clone(),
            dilations: self.dilations.clone(),
            pads: self.pads.clone(),
            auto_pad: self.auto_pad,
        }
    }

    /// The epilogue activation.
    pub fn activation(&self) -> Activation {
        Activation {
            kind: self.act,
            alpha: self.act_alpha,
            beta: self.act_beta,
        }
    }

    /// The same op with another activation.
    pub fn with_activation(&self, act: Activation) -> FusedConv {
        FusedConv::new(&self.conv(), act)
    }
}

impl FusedMatMul {
    /// The fused op with activation `act`.
    pub fn new(act: Activation) -> FusedMatMul {
        FusedMatMul {
            act: act.kind,
            act_alpha: act.alpha,
            act_beta: act.beta,
        }
    }

    /// The epilogue activation.
    pub fn activation(&self) -> Activation {
        Activation {
            kind: self.act,
            alpha: self.act_alpha,
            beta: self.act_beta,
        }
    }
}

impl Infer for FusedConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        self.conv().infer(cx)
    }
}

impl Infer for FusedMatMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let a = cx.tensor(0)?;
        let b = cx.tensor(1)?;
        if !a.dtype.is_float() || a.dtype != b.dtype {
            return Err(cx.err(format!(
                "inputs 0 and 1 must be float tensors of one element type, got {} and {}",
                a.dtype, b.dtype
            )));
        }
        let shape = matmul_types(a, b).map_err(|e| cx.err(e))?;
        if let Some(bias) = cx.opt_tensor(2)? {
            if bias.dtype != a.dtype {
                return Err(cx.err(format!(
                    "bias must have element type {}, got {}",
                    a.dtype, bias.dtype
                )));
            }
            match (bias.dims(), shape.as_ref().and_then(|s| s.0.last())) {
                (Some([d]), Some(n)) if d.conflicts(n) => {
                    return Err(cx.err(format!(
                        "bias has {d} elements, the product's last dim is {n}"
                    )));
                }
                (Some([_]), _) | (None, _) => {}
                (Some(_), _) => {
                    return Err(cx.err(format!("bias must be a 1-D [N] vector, got {bias}")));
                }
            }
        }
        Ok(vec![Type::Tensor(TensorType {
            dtype: a.dtype,
            shape,
            quant: None,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_their_definitions() {
        let clip = Activation {
            kind: ActKind::Clip,
            alpha: 0.0,
            beta: 6.0,
        };
        assert_eq!(clip.apply_f32(7.0), 6.0);
        assert_eq!(clip.apply_f32(-1.0), 0.0);
        assert_eq!(Activation::plain(ActKind::Relu).apply_f32(-2.0), 0.0);
        let g = Activation::plain(ActKind::GeluErf).apply_f32(1.0);
        assert!((g - 0.841_344_7).abs() < 1e-6, "{g}");
        let g = Activation::plain(ActKind::GeluErf).apply_f32(-3.0);
        assert!((g + 0.004_049_8).abs() < 1e-6, "{g}");
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-14);
        assert!((erf(2.5) - 0.999_593_047_982_555).abs() < 1e-14);
        assert!((erf(-2.5) + 0.999_593_047_982_555).abs() < 1e-14);
    }
}
