//! Fused ops: `fused_conv` and `fused_matmul`, the kernels the e-graph optimizer fuses bias and
//! activation epilogues into (no ONNX importer produces them), and their activation epilogue
//! (an [`Activation`] of the one vocabulary in [`crate::ops::activation`]).
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
//!   The activation vocabulary is [`crate::ops::activation`]; its semantics are the interpreter's.
//!
//! Both ops require a float element type; the interpreter evaluates the epilogue in f32.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, matmul_types};
pub use crate::ops::activation::{ActKind, Activation};
use crate::ops::conv::{AutoPad, Conv};
use crate::{TensorType, Type};

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
