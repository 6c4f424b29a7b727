//! Type rules of the ONNX integer and QLinear forms kept as ops (`matmul_integer`, `conv_integer`,
//! `qlinear_matmul`, `qlinear_conv`, `qlinear_add`, `qlinear_mul`): used when their scales or zero points
//! are run-time tensors, which cannot live in a type (see [`super::typing`] for the ordinary-op form).

use super::linear::{check_scalar_scale, output_quant};
use super::{
    ConvInteger, MatMulInteger, QLinearAdd, QLinearConv, QLinearMatMul, QLinearMul, check_dtype,
    check_zp, input_count, inputs_between, is_8bit_int,
};
use crate::infer::{Infer, InferCtx, InferError, broadcast_types, matmul_types};
use crate::ops::conv::{Conv, spatial_output_dims, window_attrs};
use crate::{DType, Dim, Shape, TensorType, Type};

/// Checks a zero point of a matmul-like operand: scalar or 1-D.
pub(super) fn check_operand_zp(cx: &InferCtx, zp: usize, of: usize) -> Result<(), InferError> {
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

/// The window of `conv_integer` / `qlinear_conv` is float `conv`'s: each converts to and from the
/// [`Conv`] with the same attributes, so geometry is written once.
macro_rules! conv_window {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// The float convolution with this op's window (group, kernel, strides, dilations, pads).
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

            /// This op with the window of float convolution `c`.
            pub fn from_conv(c: &Conv) -> $ty {
                $ty {
                    auto_pad: c.auto_pad,
                    dilations: c.dilations.clone(),
                    group: c.group,
                    kernel_shape: c.kernel_shape.clone(),
                    pads: c.pads.clone(),
                    strides: c.strides.clone(),
                }
            }
        }
    )*};
}

conv_window!(ConvInteger, QLinearConv);

/// Output shape `[N, M, spatial..]` of a convolution of `x` `[N, C, D..]` with `w` `[M, C/group, K..]`,
/// checking ranks and channel counts; the spatial dims follow float `conv`'s window rule
/// ([`spatial_output_dims`]). `Ok(None)` when no rank is known.
pub(super) fn conv_output_shape(
    x: &TensorType,
    w: &TensorType,
    win: &Conv,
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
    let attrs = window_attrs(&win.strides, &win.dilations, &win.pads, win.auto_pad, false);
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
        let win = self.conv();
        let shape = conv_output_shape(cx.tensor(0)?, cx.tensor(1)?, &win).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: DType::I32,
            shape,
            quant: None,
        })])
    }
}

/// Checks the `(scale, zero_point)` pair of quantized operand input `x` at `s`, `s + 1`.
pub(super) fn check_qparams(
    cx: &InferCtx,
    x: usize,
    s: usize,
    what: &str,
) -> Result<(), InferError> {
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
        let win = self.conv();
        let shape = conv_output_shape(cx.tensor(0)?, cx.tensor(3)?, &win).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: out,
            shape,
            quant: output_quant(cx, 6, 7),
        })])
    }
}

/// Shared rule of `qlinear_add` / `qlinear_mul`.
pub(super) fn qlinear_binary(cx: &InferCtx) -> Result<Vec<Type>, InferError> {
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
