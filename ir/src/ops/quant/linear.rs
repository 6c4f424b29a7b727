//! Type rules of `quantize_linear`, `dequantize_linear` and `dynamic_quantize_linear`, and the reading
//! of constant scales and zero points into a [`Quant`].

use super::{
    DequantizeLinear, DynamicQuantizeLinear, QuantizeLinear, check_dtype, check_zp, inputs_between,
    is_quantized_type,
};
use crate::infer::{Infer, InferCtx, InferError, normalize_axis};
use crate::{ConstData, Constant, DType, Dim, Quant, QuantAxis, Shape, TensorType, Type};

/// The granularity of a scale of type `scale` for an input `x`, checking the ONNX shape rules.
/// `Ok(None)` when it cannot be resolved yet (unknown ranks).
pub(super) fn granularity(
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
pub(super) fn const_ints(c: &Constant) -> Option<Vec<i64>> {
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
pub(super) fn const_quant(
    cx: &InferCtx,
    axis: QuantAxis,
    scale: usize,
    zp: usize,
) -> Option<Box<Quant>> {
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
pub(super) fn output_quant(cx: &InferCtx, scale: usize, zp: usize) -> Option<Box<Quant>> {
    let q = const_quant(cx, QuantAxis::PerTensor, scale, zp)?;
    (q.scale.len() == 1).then_some(q)
}

pub(super) fn check_scalar_scale(cx: &InferCtx, i: usize, what: &str) -> Result<(), InferError> {
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
        let requant = super::typing::requantizes(cx)?;
        if !(requant || x.dtype.is_float() || x.dtype == DType::I32) {
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
