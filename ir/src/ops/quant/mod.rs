//! Quantization ops: `quantize_linear` / `dequantize_linear` (per-tensor, per-axis and per-block),
//! `dynamic_quantize_linear`, and integer arithmetic on quantized operands (`matmul_integer`,
//! `conv_integer`, `qlinear_matmul`, `qlinear_conv`, `qlinear_add`, `qlinear_mul`, `matmul_nbits`).
//!
//! **Quantization parameters live in the type.** Scales and zero points stay ordinary inputs of these
//! ops (ONNX passes them as inputs, and they may be computed), but when an op's *output* scale and zero
//! point are constants, the output's [`TensorType::quant`] carries them as a [`Quant`]:
//! - `quantize_linear(x, scale, zp)`: granularity from the scale's shape — a scalar (or a single element)
//!   is [`QuantAxis::PerTensor`], a 1-D scale with `block_size = 0` is [`QuantAxis::PerAxis`] along
//!   `axis`, a scale of the input's rank with `block_size > 0` is [`QuantAxis::PerBlock`]. An omitted
//!   zero point is 0.
//! - `qlinear_matmul`, `qlinear_conv`, `qlinear_add`, `qlinear_mul`: per-tensor from `y_scale`/`y_zero_point`.
//!
//! So `%q = quantize_linear(%x, %s, %zp) : u8[N,64] q(scale=[0.02], zp=[128])` states what the integers
//! mean without looking at side tables; QDQ folding and integer lowering read it from the type. The
//! quantization is left off (`quant: None`) when the parameters are not constants, or cannot be read as
//! numbers (e.g. an `f8e8m0` scale), or the axis cannot be resolved because the input's rank is unknown.
//! Inference of `dequantize_linear` checks the same granularity rules; its float output has no `quant`.
//!
//! The packed weight format of `matmul_nbits` — its geometry, the reader of its codes, and the
//! writer the compressor uses (block-wise round-to-nearest quantization and its inverse) — is
//! [`blockwise`].
//!
//! Convolution ops take their window as ONNX does: empty `kernel_shape`, `strides`, `dilations`, `pads`
//! mean the defaults. Their output size comes from the float convolution's window rule
//! ([`spatial_output_dims`], [`window_attrs`], [`AutoPad`] of [`crate::ops::conv`]): one conv geometry.

pub mod blockwise;
mod integer;
mod linear;
mod nbits;
#[cfg(test)]
mod tests;
pub mod typing;

use crate::DType;
use crate::define_ops;
use crate::infer::{InferCtx, InferError};
use crate::ops::conv::AutoPad;

define_ops! {
    /// Quantization ops.
    pub enum QuantOp {
        /// `y = saturate(round_half_even(x / scale) + zero_point)`; inputs `x`, `scale`, optional
        /// `zero_point`. The output type is `output_dtype`, else the zero point's, else `u8`.
        QuantizeLinear = "quantize_linear" {
            /// Quantized dim for per-axis and per-block scales (negative counts from the end).
            axis: i64 = 1,
            /// Block length along `axis` for per-block scales (0: not blocked).
            block_size: i64 = 0,
            /// Out-of-range values saturate (float 8 targets only).
            saturate: bool = true,
            /// Output element type (when absent, the zero point's, else `u8`).
            output_dtype: Option<DType> = None,
            /// Precision of `x / scale` (when absent, the scale's type).
            precision: Option<DType> = None,
        },
        /// `y = (x − zero_point) · scale`; inputs `x`, `scale`, optional `zero_point`. The output type is
        /// `output_dtype`, else the scale's.
        DequantizeLinear = "dequantize_linear" {
            /// Quantized dim for per-axis and per-block scales (negative counts from the end).
            axis: i64 = 1,
            /// Block length along `axis` for per-block scales (0: not blocked).
            block_size: i64 = 0,
            /// Output element type (when absent, the scale's).
            output_dtype: Option<DType> = None,
        },
        /// Quantizes a float tensor to `u8` with a scale and zero point computed from its range: outputs
        /// `y: u8`, `y_scale: f32[]`, `y_zero_point: u8[]`.
        DynamicQuantizeLinear = "dynamic_quantize_linear" {},
        /// `(a − a_zero_point) @ (b − b_zero_point)` in `i32`; inputs `a`, `b` (8-bit integers), optional
        /// zero points (scalar, or per row of `a` / per column of `b`).
        MatMulInteger = "matmul_integer" {},
        /// Convolution of 8-bit integers with zero points, accumulated in `i32`; inputs `x`, `w`, optional
        /// `x_zero_point`, `w_zero_point`.
        ConvInteger = "conv_integer" {
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
            /// Dilations per spatial dim (empty: 1).
            dilations: Vec<i64> = Vec::new(),
            /// Channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Begin then end pads per spatial dim (empty: 0).
            pads: Vec<i64> = Vec::new(),
            /// Strides per spatial dim (empty: 1).
            strides: Vec<i64> = Vec::new(),
        },
        /// Quantized matrix product; inputs `a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
        /// y_zero_point`; the output has the type of `y_zero_point`.
        QLinearMatMul = "qlinear_matmul" {},
        /// Quantized convolution; inputs `x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
        /// y_zero_point`, optional `i32` bias; the output has the type of `y_zero_point`.
        QLinearConv = "qlinear_conv" {
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
            /// Dilations per spatial dim (empty: 1).
            dilations: Vec<i64> = Vec::new(),
            /// Channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Begin then end pads per spatial dim (empty: 0).
            pads: Vec<i64> = Vec::new(),
            /// Strides per spatial dim (empty: 1).
            strides: Vec<i64> = Vec::new(),
        },
        /// Quantized broadcasting `a + b`; inputs `a, a_scale, a_zero_point?, b, b_scale, b_zero_point?,
        /// c_scale, c_zero_point?` (com.microsoft QLinearAdd); the output has `a`'s type.
        QLinearAdd = "qlinear_add" {},
        /// Quantized broadcasting `a · b`, inputs as `qlinear_add` (com.microsoft QLinearMul).
        QLinearMul = "qlinear_mul" {},
        /// `a @ dequant(b)ᵀ (+ bias)` with `b` holding `n × k` weights of `bits` bits packed in blocks of
        /// `block_size` along `k` (com.microsoft MatMulNBits); inputs `a: [..., k]`, `b: u8[n, blocks,
        /// blob]`, `scales`, optional `zero_points`, `g_idx`, `bias`. The output is `[..., n]` of `a`'s type.
        MatMulNBits = "matmul_nbits" {
            /// Inner (reduction) size.
            k: i64 = 0,
            /// Output columns.
            n: i64 = 0,
            /// Bits per weight.
            bits: i64 = 4,
            /// Weights per scale block along `k`.
            block_size: i64 = 0,
            /// Minimum accuracy of the activations in the inner product (0: unset; 1: f32, 2: f16,
            /// 3: bf16, 4: i8).
            accuracy_level: i64 = 0,
        },
    }
}

/// Element types a quantized value may have (ONNX `QuantizeLinear` T3, plus `i32` for dequantization).
pub(super) fn is_quantized_type(d: DType) -> bool {
    matches!(
        d,
        DType::I8
            | DType::U8
            | DType::I16
            | DType::U16
            | DType::I4
            | DType::U4
            | DType::I2
            | DType::U2
            | DType::F8E4M3FN
            | DType::F8E4M3FNUZ
            | DType::F8E5M2
            | DType::F8E5M2FNUZ
            | DType::F4E2M1
    )
}

pub(super) fn is_8bit_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8)
}

pub(super) fn check_dtype(
    cx: &InferCtx,
    i: usize,
    what: &str,
    ok: impl Fn(DType) -> bool,
    expected: &str,
) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if ok(d) {
        Ok(d)
    } else {
        Err(cx.err(format!(
            "{what} (input {i}) has element type {d}, expected {expected}"
        )))
    }
}

/// Checks that optional zero point input `zp` has the element type of input `of`.
pub(super) fn check_zp(cx: &InferCtx, zp: usize, of: usize, what: &str) -> Result<(), InferError> {
    if let Some(z) = cx.opt_tensor(zp)? {
        let d = cx.dtype(of)?;
        if z.dtype != d {
            return Err(cx.err(format!(
                "{what} (input {zp}) has element type {}, expected {d} like input {of}",
                z.dtype
            )));
        }
    }
    Ok(())
}

/// Checks the input count is in `min..=max` and that the first `min` inputs are present.
pub(super) fn inputs_between(cx: &InferCtx, min: usize, max: usize) -> Result<(), InferError> {
    input_count(cx, min, max)?;
    for i in 0..min {
        cx.required(i)?;
    }
    Ok(())
}

/// Checks the input count is in `min..=max` (optional inputs may be omitted anywhere).
pub(super) fn input_count(cx: &InferCtx, min: usize, max: usize) -> Result<(), InferError> {
    let n = cx.num_inputs();
    if n < min || n > max {
        return Err(cx.err(if min == max {
            format!("takes {min} inputs, got {n}")
        } else {
            format!("takes {min} to {max} inputs, got {n}")
        }));
    }
    Ok(())
}
