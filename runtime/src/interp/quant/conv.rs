//! Integer and quantized convolutions (`conv_integer`, `qlinear_conv`) over any number of spatial dims:
//! the zero-point-centered operands go through the float convolution's own geometry and im2col + GEMM
//! (`interp::conv`, in f64, exact for these integer values); padding contributes the zero point, i.e.
//! 0 after centering.

use carve_ir::ops::conv::Conv;
use carve_ir::ops::quant::{ConvInteger, QLinearConv};

use super::super::conv::{attrs, conv_core, forward_geometry, kernel_of};
use super::super::util::{checked_numel, from_i64, to_f64, to_i64};
use super::super::{EvalCtx, RunError, Value, tensor_err};
use super::{int_range, out_dtype, requantize, round_to, scalar_params};
use crate::tensor::{Data, Tensor};

/// The exact convolution of `x − x_zp` with `w − w_zp` (per output channel allowed) as f64, shaped
/// `[N, M, out..]`; returns the values, that shape and the output plane size.
pub(super) fn integer_conv(
    cx: &EvalCtx,
    x: &Tensor,
    w: &Tensor,
    x_zp: Option<&Tensor>,
    w_zp: Option<&Tensor>,
    win: &Conv,
) -> Result<(Vec<f64>, Vec<usize>, usize), RunError> {
    if x.shape.len() < 3 || w.shape.len() != x.shape.len() {
        return Err(cx.err(format!(
            "x must have rank >= 3 and w the same rank, got shapes {:?} and {:?}",
            x.shape, w.shape
        )));
    }
    let group = usize::try_from(win.group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| cx.err(format!("group must be positive, got {}", win.group)))?;
    let (n, c, m) = (x.shape[0], x.shape[1], w.shape[0]);
    if w.shape[1].checked_mul(group) != Some(c) || m % group != 0 {
        return Err(cx.err(format!(
            "x has {c} channels and w shape {:?}: with group {group}, w's dim 1 must be channels/group and its dim 0 a multiple of group",
            w.shape
        )));
    }
    let kernel = kernel_of(cx, &win.kernel_shape, &w.shape)?;
    let a = attrs(&win.strides, &win.dilations, &win.pads, win.auto_pad, false);
    let g = forward_geometry(cx, &x.shape[2..], &kernel, &a)?;
    let mut shape = vec![n, m];
    shape.extend(&g.output);
    checked_numel(&shape).map_err(|e| tensor_err(cx, e))?;
    let xv = centered(cx, x, x_zp, false)?;
    let wv = centered(cx, w, w_zp, true)?;
    let y = conv_core::<f64>(&xv, &wv, None, n, c, m, group, &g);
    let plane = g.output.iter().product();
    Ok((y, shape, plane))
}

/// `x − zp` as f64 with a scalar zero point, or (`per_channel`) one per dim-0 slice.
fn centered(
    cx: &EvalCtx,
    t: &Tensor,
    zp: Option<&Tensor>,
    per_channel: bool,
) -> Result<Vec<f64>, RunError> {
    let v = to_i64(t).map_err(|e| tensor_err(cx, e))?;
    let zs = match zp {
        Some(z) => to_i64(z).map_err(|e| tensor_err(cx, e))?,
        None => vec![0],
    };
    let slice: usize = t.shape.iter().skip(1).product();
    let channels = t.shape.first().copied().unwrap_or(1);
    if !(zs.len() == 1 || per_channel && zs.len() == channels) {
        return Err(cx.err(format!(
            "a zero point must have 1{} elements, got {}",
            if per_channel {
                format!(" or {channels}")
            } else {
                String::new()
            },
            zs.len()
        )));
    }
    Ok(v.iter()
        .enumerate()
        .map(|(i, &x)| {
            let z = if zs.len() == 1 {
                zs[0]
            } else {
                zs[i / slice.max(1)]
            };
            (x - z) as f64
        })
        .collect())
}

/// ONNX ConvInteger: convolution of `x − x_zero_point` with `w − w_zero_point` (per output channel
/// allowed) accumulated in i32.
pub(super) fn conv_integer(op: &ConvInteger, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(1)?;
    let win = op.conv();
    let (y, shape, _) = integer_conv(cx, x, w, cx.opt_tensor(2)?, cx.opt_tensor(3)?, &win)?;
    let v: Vec<i32> = y.iter().map(|&v| v as i64 as i32).collect();
    let t = Tensor::new(shape, Data::I32(v)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// ONNX QLinearConv: `y = saturate(round((conv(x − zx, w − zw) + bias) · sx·sw/sy) + zy)`, `w`'s scale
/// and zero point per tensor or per output channel.
pub(super) fn qlinear_conv(op: &QLinearConv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(3)?;
    let win = op.conv();
    let (mut y, shape, osize) = integer_conv(cx, x, w, cx.opt_tensor(2)?, cx.opt_tensor(5)?, &win)?;
    let out_channels = shape[1];
    let (sx, _) = scalar_params(cx, 1, 2)?;
    let (sy, zy) = scalar_params(cx, 6, 7)?;
    let sdt = cx.tensor(1)?.dtype();
    let swt = cx.tensor(4)?;
    let sw = to_f64(swt).map_err(|e| tensor_err(cx, e))?;
    if sw.len() != 1 && sw.len() != out_channels {
        return Err(cx.err(format!(
            "w scale must have 1 or {} elements, got shape {:?}",
            out_channels, swt.shape
        )));
    }
    if let Some(b) = cx.opt_tensor(8)? {
        let bv = to_i64(b).map_err(|e| tensor_err(cx, e))?;
        if bv.len() != out_channels {
            return Err(cx.err(format!(
                "bias must have {} elements, got shape {:?}",
                out_channels, b.shape
            )));
        }
        for (i, v) in y.iter_mut().enumerate() {
            *v += bv[(i / osize.max(1)) % out_channels] as f64;
        }
    }
    let out = out_dtype(cx, 0)?;
    let range = int_range(out);
    let mult: Vec<f64> = (0..out_channels)
        .map(|m| {
            let s = sx * sw[if sw.len() == 1 { 0 } else { m }];
            round_to(sdt, round_to(sdt, s) / sy)
        })
        .collect();
    let v: Vec<i64> = y
        .iter()
        .enumerate()
        .map(|(i, &acc)| {
            // (the reference accumulates in int32)
            let acc = acc as i64 as i32;
            requantize(
                f64::from(acc) * mult[(i / osize.max(1)) % out_channels],
                zy,
                range,
            )
        })
        .collect();
    let t = from_i64(out, shape, &v).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

#[cfg(test)]
mod tests {
    use super::super::tests::run_node;
    use super::*;

    fn u8s(shape: &[usize], v: &[u8]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::U8(v.to_vec())).unwrap()
    }

    #[test]
    fn conv_integer_pads_with_the_zero_point_and_respects_groups() {
        // x [1, 2, 3], w [2, 1, 2] (group 2), pads 1/0; x zero point 1, w zero point 0.
        let x = u8s(&[1, 2, 3], &[2, 3, 4, 5, 6, 7]);
        let w = u8s(&[2, 1, 2], &[1, 10, 0, 2]);
        let op = ConvInteger {
            group: 2,
            pads: vec![1, 0],
            ..Default::default()
        };
        let zx = Tensor::new(Vec::new(), Data::U8(vec![1])).unwrap();
        let y = run_node(op, vec![Some(x), Some(w), Some(zx)], 1).unwrap();
        // Centered channel 0: [0,1,2,3] * [1,10] → 10, 21, 32; channel 1: [0,4,5,6] * [0,2] → 8, 10, 12.
        assert_eq!(y[0].data, Data::I32(vec![10, 21, 32, 8, 10, 12]));
    }

    #[test]
    fn conv_integer_same_lower_puts_the_odd_pad_first() {
        // x [1, 1, 6] of ones, w [1, 1, 3] of ones, stride 2: out 3, total pad 1 before.
        let x = u8s(&[1, 1, 6], &[1; 6]);
        let w = u8s(&[1, 1, 3], &[1; 3]);
        let op = ConvInteger {
            auto_pad: carve_ir::ops::conv::AutoPad::SameLower,
            strides: vec![2],
            ..Default::default()
        };
        let y = run_node(op, vec![Some(x), Some(w)], 1).unwrap();
        assert_eq!(y[0].shape, vec![1, 1, 3]);
        assert_eq!(y[0].data, Data::I32(vec![2, 3, 3]));
    }
}
