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
//! Convolution ops take their window as ONNX does: empty `kernel_shape`, `strides`, `dilations`, `pads`
//! mean the defaults. Their output size comes from the float convolution's window rule
//! ([`spatial_output_dims`], [`window_attrs`], [`AutoPad`] of [`crate::ops::conv`]): one conv geometry.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, broadcast_types, matmul_types, normalize_axis};
use crate::ops::conv::{AutoPad, spatial_output_dims, window_attrs};
use crate::{ConstData, Constant, DType, Dim, Quant, QuantAxis, Shape, TensorType, Type};

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
fn is_quantized_type(d: DType) -> bool {
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

fn is_8bit_int(d: DType) -> bool {
    matches!(d, DType::I8 | DType::U8)
}

fn check_dtype(
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
fn check_zp(cx: &InferCtx, zp: usize, of: usize, what: &str) -> Result<(), InferError> {
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
fn inputs_between(cx: &InferCtx, min: usize, max: usize) -> Result<(), InferError> {
    input_count(cx, min, max)?;
    for i in 0..min {
        cx.required(i)?;
    }
    Ok(())
}

/// Checks the input count is in `min..=max` (optional inputs may be omitted anywhere).
fn input_count(cx: &InferCtx, min: usize, max: usize) -> Result<(), InferError> {
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

/// The granularity of a scale of type `scale` for an input `x`, checking the ONNX shape rules.
/// `Ok(None)` when it cannot be resolved yet (unknown ranks).
fn granularity(
    cx: &InferCtx,
    x: &TensorType,
    scale: &TensorType,
    zp: Option<&TensorType>,
    axis: i64,
    block_size: i64,
) -> Result<Option<QuantAxis>, InferError> {
    if let Some(z) = zp
        && let (Some(a), Some(b)) = (&scale.shape, &z.shape)
    {
        // A single element may be given as `[]` or `[1]` on either side.
        let single = a.num_elements() == Some(1) && b.num_elements() == Some(1);
        let conflict =
            !single && (a.rank() != b.rank() || a.0.iter().zip(&b.0).any(|(p, q)| p.conflicts(q)));
        if conflict {
            return Err(cx.err(format!(
                "the zero point's shape {b} must equal the scale's shape {a}"
            )));
        }
    }
    if block_size < 0 {
        return Err(cx.err(format!("block_size must be >= 0, got {block_size}")));
    }
    let Some(ss) = &scale.shape else {
        return Ok(None);
    };
    if block_size == 0 {
        if ss.rank() == 0 || ss.num_elements() == Some(1) && ss.rank() == 1 {
            return Ok(Some(QuantAxis::PerTensor));
        }
        if ss.rank() > 1 {
            return Err(cx.err(format!(
                "a scale of shape {ss} needs block_size > 0 (blocked quantization); per-axis scales are 1-D"
            )));
        }
        let Some(xd) = x.dims() else {
            return Ok(None);
        };
        let a = normalize_axis(axis, xd.len()).map_err(|m| cx.err(m))?;
        if ss.0[0].conflicts(&xd[a]) {
            return Err(cx.err(format!(
                "per-axis scale of length {} does not match dim {a} of the input {x}",
                ss.0[0]
            )));
        }
        return Ok(Some(QuantAxis::PerAxis { axis: a }));
    }
    let Some(xd) = x.dims() else {
        return Ok(None);
    };
    if ss.rank() != xd.len() {
        return Err(cx.err(format!(
            "blocked quantization needs a scale of the input's rank {}, got shape {ss}",
            xd.len()
        )));
    }
    let a = normalize_axis(axis, xd.len()).map_err(|m| cx.err(m))?;
    let block = block_size as u64;
    for (i, (s, d)) in ss.0.iter().zip(xd).enumerate() {
        let want = if i == a {
            match d {
                Dim::Known(n) => Dim::Known(n.div_ceil(block)),
                _ => Dim::Unknown,
            }
        } else {
            d.clone()
        };
        if s.conflicts(&want) {
            return Err(cx.err(format!(
                "scale shape {ss} does not fit input {x} with block_size {block_size} on axis {a} (dim {i} should be {want})"
            )));
        }
    }
    Ok(Some(QuantAxis::PerBlock { axis: a, block }))
}

/// Integer values of a constant, including packed sub-byte types and all-zero float zero points.
fn const_ints(c: &Constant) -> Option<Vec<i64>> {
    if let Some(v) = c.to_i64s() {
        return Some(v);
    }
    let ConstData::Bytes(b) = &c.data else {
        return None;
    };
    let n = usize::try_from(c.num_elements()).ok()?;
    let bytes = b.as_bytes();
    let (bits, signed) = match c.ty.dtype {
        DType::I4 => (4, true),
        DType::U4 => (4, false),
        DType::I2 => (2, true),
        DType::U2 => (2, false),
        d if d.is_float() && bytes.iter().all(|&x| x == 0) => return Some(vec![0; n]),
        _ => return None,
    };
    let per_byte = 8 / bits;
    let mask = (1u8 << bits) - 1;
    (0..n)
        .map(|i| {
            let byte = *bytes.get(i / per_byte)?;
            let raw = (byte >> ((i % per_byte) * bits)) & mask;
            let v = i64::from(raw);
            Some(if signed && raw >> (bits - 1) == 1 {
                v - (1 << bits)
            } else {
                v
            })
        })
        .collect()
}

/// Quantization parameters from constant inputs `scale` and optional `zp`, if both are readable.
fn const_quant(cx: &InferCtx, axis: QuantAxis, scale: usize, zp: usize) -> Option<Box<Quant>> {
    let s: Vec<f32> = cx
        .const_value(scale)?
        .to_f64s()?
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let z = if cx.has_input(zp) {
        const_ints(cx.const_value(zp)?)?
    } else {
        vec![0; s.len()]
    };
    if s.is_empty() || z.len() != s.len() {
        return None;
    }
    Some(Box::new(Quant {
        axis,
        scale: s,
        zero_point: z,
    }))
}

/// Per-tensor output quantization from scalar constant inputs `scale`, `zp` (if present).
fn output_quant(cx: &InferCtx, scale: usize, zp: usize) -> Option<Box<Quant>> {
    let q = const_quant(cx, QuantAxis::PerTensor, scale, zp)?;
    (q.scale.len() == 1).then_some(q)
}

fn check_scalar_scale(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
    let t = cx.tensor(i)?;
    if !t.dtype.is_float() {
        return Err(cx.err(format!(
            "{what} (input {i}) has element type {}, expected a floating-point type",
            t.dtype
        )));
    }
    if let Some(n) = t.shape.as_ref().and_then(Shape::num_elements)
        && n != 1
    {
        return Err(cx.err(format!("{what} (input {i}) must be a scalar, got {t}")));
    }
    Ok(())
}

impl Infer for QuantizeLinear {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 2, 3)?;
        let x = cx.tensor(0)?;
        if !(x.dtype.is_float() || x.dtype == DType::I32) {
            return Err(cx.err(format!(
                "input 0 has element type {}, expected a floating-point type or i32",
                x.dtype
            )));
        }
        let scale = cx.tensor(1)?;
        check_dtype(
            cx,
            1,
            "scale",
            |d| d.is_float() || d == DType::I32,
            "a floating-point type or i32",
        )?;
        let zp = cx.opt_tensor(2)?;
        let out = match (zp, self.output_dtype) {
            (Some(z), Some(d)) if z.dtype != d => {
                return Err(cx.err(format!(
                    "output_dtype {d} differs from the zero point's element type {}",
                    z.dtype
                )));
            }
            (Some(z), _) => z.dtype,
            (None, Some(d)) => d,
            (None, None) => DType::U8,
        };
        if !is_quantized_type(out) {
            return Err(cx.err(format!(
                "cannot quantize to {out}: expected an 8/16-bit or sub-byte integer or a small float type"
            )));
        }
        let quant = granularity(cx, x, scale, zp, self.axis, self.block_size)?
            .and_then(|g| const_quant(cx, g, 1, 2));
        Ok(vec![Type::Tensor(TensorType {
            dtype: out,
            shape: x.shape.clone(),
            quant,
        })])
    }
}

impl Infer for DequantizeLinear {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 2, 3)?;
        let x = cx.tensor(0)?;
        if !(is_quantized_type(x.dtype) || x.dtype == DType::I32) {
            return Err(cx.err(format!(
                "input 0 has element type {}, expected a quantized integer or small float type",
                x.dtype
            )));
        }
        let scale = cx.tensor(1)?;
        check_dtype(cx, 1, "scale", DType::is_float, "a floating-point type")?;
        check_zp(cx, 2, 0, "zero point")?;
        granularity(cx, x, scale, cx.opt_tensor(2)?, self.axis, self.block_size)?;
        let out = self.output_dtype.unwrap_or(scale.dtype);
        if !out.is_float() {
            return Err(cx.err(format!("output_dtype {out} is not a floating-point type")));
        }
        Ok(vec![Type::Tensor(TensorType {
            dtype: out,
            shape: x.shape.clone(),
            quant: None,
        })])
    }
}

impl Infer for DynamicQuantizeLinear {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 1, 1)?;
        let x = cx.tensor(0)?;
        check_dtype(cx, 0, "x", DType::is_float, "a floating-point type")?;
        let mut out = vec![
            Type::Tensor(TensorType {
                dtype: DType::U8,
                shape: x.shape.clone(),
                quant: None,
            }),
            Type::Tensor(TensorType::scalar(DType::F32)),
            Type::Tensor(TensorType::scalar(DType::U8)),
        ];
        if cx.num_outputs() > out.len() {
            return Err(cx.err(format!(
                "has 3 outputs, the node lists {}",
                cx.num_outputs()
            )));
        }
        out.truncate(cx.num_outputs());
        Ok(out)
    }
}

/// Checks a zero point of a matmul-like operand: scalar or 1-D.
fn check_operand_zp(cx: &InferCtx, zp: usize, of: usize) -> Result<(), InferError> {
    check_zp(cx, zp, of, "zero point")?;
    if let Some(z) = cx.opt_tensor(zp)?
        && z.rank().is_some_and(|r| r > 1)
        && z.shape.as_ref().and_then(Shape::num_elements) != Some(1)
    {
        return Err(cx.err(format!(
            "zero point (input {zp}) must be a scalar or 1-D, got {z}"
        )));
    }
    Ok(())
}

impl Infer for MatMulInteger {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 2, 4)?;
        check_dtype(cx, 0, "a", is_8bit_int, "i8 or u8")?;
        check_dtype(cx, 1, "b", is_8bit_int, "i8 or u8")?;
        check_operand_zp(cx, 2, 0)?;
        check_operand_zp(cx, 3, 1)?;
        let shape = matmul_types(cx.tensor(0)?, cx.tensor(1)?).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: DType::I32,
            shape,
            quant: None,
        })])
    }
}

/// The window attributes of `conv_integer` / `qlinear_conv`.
struct ConvWindow<'a> {
    auto_pad: AutoPad,
    dilations: &'a [i64],
    group: i64,
    kernel_shape: &'a [i64],
    pads: &'a [i64],
    strides: &'a [i64],
}

fn window<'a>(
    auto_pad: AutoPad,
    dilations: &'a [i64],
    group: i64,
    kernel_shape: &'a [i64],
    pads: &'a [i64],
    strides: &'a [i64],
) -> ConvWindow<'a> {
    ConvWindow {
        auto_pad,
        dilations,
        group,
        kernel_shape,
        pads,
        strides,
    }
}

/// Output shape `[N, M, spatial..]` of a convolution of `x` `[N, C, D..]` with `w` `[M, C/group, K..]`,
/// checking ranks and channel counts; the spatial dims follow float `conv`'s window rule
/// ([`spatial_output_dims`]). `Ok(None)` when no rank is known.
fn conv_output_shape(
    x: &TensorType,
    w: &TensorType,
    win: &ConvWindow,
) -> Result<Option<Shape>, String> {
    let rank = match (x.rank(), w.rank()) {
        (Some(a), Some(b)) if a != b => {
            return Err(format!("input {x} and weight {w} must have the same rank"));
        }
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) if !win.kernel_shape.is_empty() => win.kernel_shape.len() + 2,
        (None, None) => return Ok(None),
    };
    if rank < 3 {
        return Err(format!(
            "input must have rank >= 3 ([N, C, spatial...]), got rank {rank}"
        ));
    }
    let n = rank - 2;
    if win.group < 1 {
        return Err(format!("group must be >= 1, got {}", win.group));
    }
    let group = win.group as u64;
    let unknown = vec![Dim::Unknown; rank];
    let xd = x.dims().unwrap_or(&unknown);
    let wd = w.dims().unwrap_or(&unknown);
    let kernel: Vec<Option<u64>> = if win.kernel_shape.is_empty() {
        wd[2..].iter().map(Dim::known).collect()
    } else {
        if win.kernel_shape.len() != n {
            return Err(format!(
                "kernel_shape has {} values, expected {n} (one per spatial dim)",
                win.kernel_shape.len()
            ));
        }
        let mut k = Vec::with_capacity(n);
        for (i, (&a, b)) in win.kernel_shape.iter().zip(&wd[2..]).enumerate() {
            let a = u64::try_from(a)
                .ok()
                .filter(|&a| a >= 1)
                .ok_or_else(|| format!("kernel_shape must be positive, got {a}"))?;
            if Dim::Known(a).conflicts(b) {
                return Err(format!(
                    "kernel_shape[{i}] is {a} but the weight's spatial dim is {b}"
                ));
            }
            k.push(Some(a));
        }
        k
    };
    if let (Dim::Known(c), Dim::Known(cg)) = (&xd[1], &wd[1])
        && cg.checked_mul(group) != Some(*c)
    {
        return Err(format!(
            "input has {c} channels but the weight expects {cg} per group x {group} groups"
        ));
    }
    if let Dim::Known(m) = &wd[0]
        && m % group != 0
    {
        return Err(format!(
            "{m} output channels do not divide into {group} groups"
        ));
    }
    let attrs = window_attrs(win.strides, win.dilations, win.pads, win.auto_pad, false);
    let mut out = vec![xd[0].clone(), wd[0].clone()];
    out.extend(spatial_output_dims(&xd[2..], &kernel, &attrs)?);
    Ok(Some(Shape(out)))
}

impl Infer for ConvInteger {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 2, 4)?;
        check_dtype(cx, 0, "x", is_8bit_int, "i8 or u8")?;
        check_dtype(cx, 1, "w", is_8bit_int, "i8 or u8")?;
        check_zp(cx, 2, 0, "x zero point")?;
        check_zp(cx, 3, 1, "w zero point")?;
        let win = window(
            self.auto_pad,
            &self.dilations,
            self.group,
            &self.kernel_shape,
            &self.pads,
            &self.strides,
        );
        let shape = conv_output_shape(cx.tensor(0)?, cx.tensor(1)?, &win).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: DType::I32,
            shape,
            quant: None,
        })])
    }
}

/// Checks the `(scale, zero_point)` pair of quantized operand input `x` at `s`, `s + 1`.
fn check_qparams(cx: &InferCtx, x: usize, s: usize, what: &str) -> Result<(), InferError> {
    check_dtype(
        cx,
        s,
        &format!("{what} scale"),
        DType::is_float,
        "a floating-point type",
    )?;
    check_zp(cx, s + 1, x, &format!("{what} zero point"))
}

impl Infer for QLinearMatMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 8, 8)?;
        check_dtype(cx, 0, "a", is_8bit_int, "i8 or u8")?;
        check_dtype(cx, 3, "b", is_8bit_int, "i8 or u8")?;
        check_qparams(cx, 0, 1, "a")?;
        check_qparams(cx, 3, 4, "b")?;
        check_scalar_scale(cx, 6, "y scale")?;
        let out = check_dtype(cx, 7, "y zero point", is_8bit_int, "i8 or u8")?;
        let shape = matmul_types(cx.tensor(0)?, cx.tensor(3)?).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: out,
            shape,
            quant: output_quant(cx, 6, 7),
        })])
    }
}

impl Infer for QLinearConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 8, 9)?;
        check_dtype(cx, 0, "x", is_8bit_int, "i8 or u8")?;
        check_dtype(cx, 3, "w", is_8bit_int, "i8 or u8")?;
        check_qparams(cx, 0, 1, "x")?;
        check_qparams(cx, 3, 4, "w")?;
        check_scalar_scale(cx, 6, "y scale")?;
        let out = check_dtype(cx, 7, "y zero point", is_8bit_int, "i8 or u8")?;
        if let Some(b) = cx.opt_tensor(8)?
            && (b.dtype != DType::I32 || b.rank().is_some_and(|r| r != 1))
        {
            return Err(cx.err(format!("bias (input 8) must be a 1-D i32 tensor, got {b}")));
        }
        let win = window(
            self.auto_pad,
            &self.dilations,
            self.group,
            &self.kernel_shape,
            &self.pads,
            &self.strides,
        );
        let shape = conv_output_shape(cx.tensor(0)?, cx.tensor(3)?, &win).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: out,
            shape,
            quant: output_quant(cx, 6, 7),
        })])
    }
}

/// Shared rule of `qlinear_add` / `qlinear_mul`.
fn qlinear_binary(cx: &InferCtx) -> Result<Vec<Type>, InferError> {
    input_count(cx, 7, 8)?;
    let d = check_dtype(cx, 0, "a", is_8bit_int, "i8 or u8")?;
    check_dtype(cx, 3, "b", |x| x == d, &format!("{d} like a"))?;
    check_qparams(cx, 0, 1, "a")?;
    check_qparams(cx, 3, 4, "b")?;
    check_scalar_scale(cx, 6, "c scale")?;
    check_zp(cx, 7, 0, "c zero point")?;
    let shape = broadcast_types(&[cx.tensor(0)?, cx.tensor(3)?]).map_err(|m| cx.err(m))?;
    Ok(vec![Type::Tensor(TensorType {
        dtype: d,
        shape,
        quant: output_quant(cx, 6, 7),
    })])
}

impl Infer for QLinearAdd {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        qlinear_binary(cx)
    }
}

impl Infer for QLinearMul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        qlinear_binary(cx)
    }
}

impl Infer for MatMulNBits {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        inputs_between(cx, 3, 6)?;
        if !(1..=8).contains(&self.bits) {
            return Err(cx.err(format!("bits must be 1 to 8, got {}", self.bits)));
        }
        if self.k < 1 || self.n < 1 {
            return Err(cx.err(format!(
                "k and n must be positive, got k={} n={}",
                self.k, self.n
            )));
        }
        if self.block_size < 1
            || self
                .block_size
                .checked_mul(self.bits)
                .is_none_or(|b| b % 8 != 0)
        {
            return Err(cx.err(format!(
                "block_size must be positive with block_size·bits a whole number of bytes, got {}",
                self.block_size
            )));
        }
        let a = cx.tensor(0)?;
        check_dtype(cx, 0, "a", DType::is_float, "a floating-point type")?;
        check_dtype(cx, 1, "b", |d| d == DType::U8, "u8")?;
        check_dtype(
            cx,
            2,
            "scales",
            |d| d == a.dtype,
            &format!("{} like a", a.dtype),
        )?;
        let (k, n) = (self.k as u64, self.n as u64);
        let blocks = k.div_ceil(self.block_size as u64);
        let blob = (self.block_size * self.bits / 8) as u64;
        if let Some(bd) = cx.tensor(1)?.dims() {
            let want = [Dim::Known(n), Dim::Known(blocks), Dim::Known(blob)];
            if bd.len() != 3 || bd.iter().zip(&want).any(|(p, q)| p.conflicts(q)) {
                return Err(cx.err(format!(
                    "b must have shape [{n},{blocks},{blob}] for k={k}, n={n}, bits={}, block_size={}, got {}",
                    self.bits,
                    self.block_size,
                    cx.tensor(1)?
                )));
            }
        }
        let shape = match a.dims() {
            Some([]) => return Err(cx.err("a must have rank >= 1, got a scalar")),
            Some(ad) => {
                let last = &ad[ad.len() - 1];
                if last.conflicts(&Dim::Known(k)) {
                    return Err(cx.err(format!("a's last dim is {last}, expected k={k}")));
                }
                let mut d = ad.to_vec();
                let l = d.len() - 1;
                d[l] = Dim::Known(n);
                Some(Shape(d))
            }
            None => None,
        };
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
    use crate::{Buffer, Graph, Op, ValueId};

    fn node(
        g: &mut Graph,
        op: impl Into<Op>,
        inputs: &[Option<ValueId>],
        n_out: usize,
    ) -> Result<Vec<ValueId>, InferError> {
        let names = (0..n_out).map(|i| format!("y{i}")).collect();
        g.add_node("n", op.into(), inputs.to_vec(), names)
    }

    fn u8_const(dims: &[u64], v: &[u8]) -> Constant {
        Constant::dense(
            TensorType::known(DType::U8, dims),
            Buffer::from_vec(v.to_vec()),
        )
        .unwrap()
    }

    #[test]
    fn constant_per_tensor_params_land_in_the_output_type() {
        let mut g = Graph::new("t");
        let x = g.add_input(
            "x",
            Type::Tensor(TensorType::new(
                DType::F32,
                Shape(vec![Dim::Sym("N".into()), Dim::Known(4)]),
            )),
        );
        let s = g.add_const("s", Constant::from_f32s(&[], &[0.5]));
        let z = g.add_const("z", u8_const(&[], &[128]));
        let q = node(
            &mut g,
            QuantizeLinear::default(),
            &[Some(x), Some(s), Some(z)],
            1,
        )
        .unwrap()[0];
        assert_eq!(g.ty(q).to_string(), "u8[N,4] q(scale=[0.5], zp=[128])");
        let dq = node(
            &mut g,
            DequantizeLinear::default(),
            &[Some(q), Some(s), Some(z)],
            1,
        )
        .unwrap()[0];
        assert_eq!(g.ty(dq).to_string(), "f32[N,4]");
        // Without a zero point the output is u8 with zero point 0; output_dtype picks another type.
        let q2 = node(&mut g, QuantizeLinear::default(), &[Some(x), Some(s)], 1).unwrap()[0];
        assert_eq!(g.ty(q2).to_string(), "u8[N,4] q(scale=[0.5], zp=[0])");
        let op = QuantizeLinear {
            output_dtype: Some(DType::I16),
            ..Default::default()
        };
        let q3 = node(&mut g, op, &[Some(x), Some(s)], 1).unwrap()[0];
        assert_eq!(g.ty(q3).to_string(), "i16[N,4] q(scale=[0.5], zp=[0])");
        let clash = QuantizeLinear {
            output_dtype: Some(DType::I8),
            ..Default::default()
        };
        assert!(node(&mut g, clash, &[Some(x), Some(s), Some(z)], 1).is_err());
    }

    #[test]
    fn per_axis_and_per_block_scales_are_recognised_and_checked() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[3, 4])));
        let s = g.add_const("s", Constant::from_f32s(&[4], &[1.0, 2.0, 3.0, 4.0]));
        let z = g.add_const("z", u8_const(&[4], &[0, 1, 2, 3]));
        let op = QuantizeLinear {
            axis: -1,
            ..Default::default()
        };
        let q = node(&mut g, op.clone(), &[Some(x), Some(s), Some(z)], 1).unwrap()[0];
        assert_eq!(
            g.ty(q).to_string(),
            "u8[3,4] q(axis=1, scale=[1.0,2.0,3.0,4.0], zp=[0,1,2,3])"
        );
        let bad_axis = QuantizeLinear {
            axis: 0,
            ..Default::default()
        };
        assert!(node(&mut g, bad_axis, &[Some(x), Some(s), Some(z)], 1).is_err());

        // Blocks of 2 along axis 1: scale [3, 2]; int4 zero points packed two per byte.
        let sb = g.add_const("sb", Constant::from_f32s(&[3, 2], &[1.0; 6]));
        let zb = g.add_const(
            "zb",
            Constant::dense(
                TensorType::known(DType::I4, &[3, 2]),
                Buffer::from_vec(vec![0xF1, 0x20, 0x07]),
            )
            .unwrap(),
        );
        let op = QuantizeLinear {
            axis: 1,
            block_size: 2,
            ..Default::default()
        };
        let q = node(&mut g, op, &[Some(x), Some(sb), Some(zb)], 1).unwrap()[0];
        assert_eq!(
            g.ty(q).to_string(),
            "i4[3,4] q(axis=1, block=2, scale=[1.0,1.0,1.0,1.0,1.0,1.0], zp=[1,-1,0,2,7,0])"
        );
        let wrong_block = QuantizeLinear {
            axis: 1,
            block_size: 1,
            ..Default::default()
        };
        assert!(node(&mut g, wrong_block, &[Some(x), Some(sb), Some(zb)], 1).is_err());
        assert!(node(&mut g, QuantizeLinear::default(), &[Some(x), Some(sb)], 1).is_err());
    }

    #[test]
    fn dynamic_quantize_has_three_outputs() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[2, 3])));
        let o = node(&mut g, DynamicQuantizeLinear {}, &[Some(x)], 3).unwrap();
        let tys: Vec<String> = o.iter().map(|&v| g.ty(v).to_string()).collect();
        assert_eq!(tys, ["u8[2,3]", "f32[]", "u8[]"]);
        assert_eq!(
            node(&mut g, DynamicQuantizeLinear {}, &[Some(x)], 1)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn integer_matmul_and_conv_shapes() {
        let mut g = Graph::new("t");
        let a = g.add_input("a", Type::Tensor(TensorType::known(DType::U8, &[2, 5, 4])));
        let b = g.add_input("b", Type::Tensor(TensorType::known(DType::I8, &[4, 3])));
        let y = node(&mut g, MatMulInteger {}, &[Some(a), Some(b)], 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "i32[2,5,3]");
        let s = g.add_const("s", Constant::from_f32s(&[], &[0.1]));
        let za = g.add_const("za", u8_const(&[], &[3]));
        let zb = g.add_const(
            "zb",
            Constant::dense(TensorType::known(DType::I8, &[]), Buffer::from_vec(vec![0])).unwrap(),
        );
        let ins = [
            Some(a),
            Some(s),
            Some(za),
            Some(b),
            Some(s),
            Some(zb),
            Some(s),
            Some(za),
        ];
        let y = node(&mut g, QLinearMatMul {}, &ins, 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "u8[2,5,3] q(scale=[0.1], zp=[3])");
        // a zero point must have a's type.
        let bad = [
            Some(a),
            Some(s),
            Some(zb),
            Some(b),
            Some(s),
            Some(zb),
            Some(s),
            Some(za),
        ];
        assert!(node(&mut g, QLinearMatMul {}, &bad, 1).is_err());

        let x = g.add_input(
            "x",
            Type::Tensor(TensorType::known(DType::U8, &[1, 2, 5, 5])),
        );
        let w = g.add_input(
            "w",
            Type::Tensor(TensorType::known(DType::U8, &[4, 2, 3, 3])),
        );
        let op = ConvInteger {
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        let y = node(&mut g, op, &[Some(x), Some(w)], 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "i32[1,4,5,5]");
        let op = QLinearConv {
            strides: vec![2, 2],
            ..Default::default()
        };
        let ins = [
            Some(x),
            Some(s),
            Some(za),
            Some(w),
            Some(s),
            Some(za),
            Some(s),
            Some(za),
        ];
        let y = node(&mut g, op, &ins, 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "u8[1,4,2,2] q(scale=[0.1], zp=[3])");
    }

    #[test]
    fn conv_output_dims_follow_the_float_conv_window_rule() {
        let x = TensorType::new(
            DType::U8,
            Shape(vec![
                Dim::Sym("N".into()),
                Dim::Known(4),
                Dim::Known(7),
                Dim::Known(7),
            ]),
        );
        let w = TensorType::known(DType::U8, &[8, 2, 3, 3]);
        let win =
            |auto_pad, strides: &'static [i64], dilations: &'static [i64], group| ConvWindow {
                auto_pad,
                dilations,
                group,
                kernel_shape: &[],
                pads: &[1, 1, 1, 1],
                strides,
            };
        let s = conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[], 2))
            .unwrap()
            .unwrap();
        assert_eq!(s.to_string(), "[N,8,4,4]");
        let same = win(AutoPad::SameUpper, &[2, 2], &[], 2);
        assert_eq!(
            conv_output_shape(&x, &w, &same)
                .unwrap()
                .unwrap()
                .to_string(),
            "[N,8,4,4]"
        );
        assert!(conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[], 1)).is_err());
        assert!(conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[0, 1], &[], 2)).is_err());
        assert!(
            conv_output_shape(&x, &w, &win(AutoPad::NotSet, &[2, 2], &[i64::MAX, 1], 2)).is_err()
        );
    }

    #[test]
    fn qlinear_add_zero_points_are_optional_and_output_keeps_a_type() {
        let mut g = Graph::new("t");
        let a = g.add_input(
            "a",
            Type::Tensor(TensorType::new(
                DType::I8,
                Shape(vec![Dim::Sym("N".into()), Dim::Known(3)]),
            )),
        );
        let b = g.add_input("b", Type::Tensor(TensorType::known(DType::I8, &[3])));
        let s = g.add_const("s", Constant::from_f32s(&[], &[0.25]));
        let ins = [Some(a), Some(s), None, Some(b), Some(s), None, Some(s)];
        let y = node(&mut g, QLinearAdd {}, &ins, 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "i8[N,3] q(scale=[0.25], zp=[0])");
        let u = g.add_input("u", Type::Tensor(TensorType::known(DType::U8, &[3])));
        let mixed = [Some(a), Some(s), None, Some(u), Some(s), None, Some(s)];
        assert!(node(&mut g, QLinearMul {}, &mixed, 1).is_err());
    }

    #[test]
    fn matmul_nbits_checks_packing() {
        let mut g = Graph::new("t");
        let a = g.add_input(
            "a",
            Type::Tensor(TensorType::new(
                DType::F32,
                Shape(vec![Dim::Sym("S".into()), Dim::Known(64)]),
            )),
        );
        let b = g.add_input("b", Type::Tensor(TensorType::known(DType::U8, &[8, 2, 16])));
        let s = g.add_input("s", Type::Tensor(TensorType::known(DType::F32, &[16])));
        let op = MatMulNBits {
            k: 64,
            n: 8,
            bits: 4,
            block_size: 32,
            accuracy_level: 0,
        };
        let y = node(&mut g, op.clone(), &[Some(a), Some(b), Some(s)], 1).unwrap()[0];
        assert_eq!(g.ty(y).to_string(), "f32[S,8]");
        let wrong = MatMulNBits {
            block_size: 16,
            ..op
        };
        assert!(node(&mut g, wrong, &[Some(a), Some(b), Some(s)], 1).is_err());
    }
}
