//! Integer and quantized convolutions (`conv_integer`, `qlinear_conv`) over any number of spatial dims:
//! a small im2col of the zero-point-centered input followed by an exact f64 GEMM per batch and group
//! (padding contributes the zero point, i.e. 0 after centering).

use carve_ir::infer::AutoPad;
use carve_ir::ops::quant::{ConvInteger, QLinearConv};

use super::super::util::{checked_numel, dgemm, from_i64, to_f64, to_i64};
use super::super::{EvalCtx, RunError, Value, tensor_err};
use super::{int_range, out_dtype, requantize, round_to, scalar_params};
use crate::tensor::{Data, Tensor};

/// The window attributes shared by both ops.
struct Window<'a> {
    auto_pad: AutoPad,
    dilations: &'a [i64],
    group: i64,
    kernel_shape: &'a [i64],
    pads: &'a [i64],
    strides: &'a [i64],
}

/// Resolved convolution geometry.
#[derive(Debug, PartialEq)]
struct Geometry {
    batch: usize,
    channels: usize,
    input: Vec<usize>,
    out_channels: usize,
    group: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    /// Padding before each spatial dim.
    pad_begin: Vec<usize>,
    output: Vec<usize>,
}

fn positive(v: &[i64], nd: usize, what: &str) -> Result<Vec<usize>, String> {
    if v.is_empty() {
        return Ok(vec![1; nd]);
    }
    if v.len() != nd || v.iter().any(|&x| x < 1) {
        return Err(format!("{what} must be {nd} positive values, got {v:?}"));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

fn geometry(x: &[usize], w: &[usize], win: &Window) -> Result<Geometry, String> {
    if x.len() < 3 || w.len() != x.len() {
        return Err(format!(
            "x must have rank >= 3 and w the same rank, got shapes {x:?} and {w:?}"
        ));
    }
    let nd = x.len() - 2;
    let group = usize::try_from(win.group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| format!("group must be positive, got {}", win.group))?;
    let (channels, out_channels) = (x[1], w[0]);
    if w[1].checked_mul(group) != Some(channels) || out_channels % group != 0 {
        return Err(format!(
            "x has {channels} channels and w shape {w:?}: with group {group}, w's dim 1 must be channels/group and its dim 0 a multiple of group"
        ));
    }
    let kernel = w[2..].to_vec();
    if !win.kernel_shape.is_empty()
        && (win.kernel_shape.len() != nd
            || win
                .kernel_shape
                .iter()
                .zip(&kernel)
                .any(|(&a, &b)| a != b as i64))
    {
        return Err(format!(
            "kernel_shape {:?} differs from w's spatial dims {kernel:?}",
            win.kernel_shape
        ));
    }
    let strides = positive(win.strides, nd, "strides")?;
    let dilations = positive(win.dilations, nd, "dilations")?;
    let input = x[2..].to_vec();
    let mut pad_begin = vec![0; nd];
    let mut output = vec![0; nd];
    for d in 0..nd {
        let too_big = || format!("spatial dim {d}: the window attributes are too large");
        let span = (kernel[d].max(1) - 1)
            .checked_mul(dilations[d])
            .and_then(|s| s.checked_add(1))
            .ok_or_else(too_big)?;
        let (pb, pe) = match win.auto_pad {
            AutoPad::NotSet => {
                if win.pads.is_empty() {
                    (0, 0)
                } else if win.pads.len() != 2 * nd || win.pads.iter().any(|&p| p < 0) {
                    return Err(format!(
                        "pads must be {} non-negative values, got {:?}",
                        2 * nd,
                        win.pads
                    ));
                } else {
                    (win.pads[d] as usize, win.pads[d + nd] as usize)
                }
            }
            AutoPad::Valid => (0, 0),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = input[d].div_ceil(strides[d]);
                let total = ((out.max(1) - 1) * strides[d])
                    .checked_add(span)
                    .ok_or_else(too_big)?
                    .saturating_sub(input[d]);
                let small = total / 2;
                if win.auto_pad == AutoPad::SameUpper {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            }
        };
        let padded = input[d]
            .checked_add(pb)
            .and_then(|p| p.checked_add(pe))
            .ok_or_else(too_big)?;
        if padded < span {
            return Err(format!(
                "spatial dim {d}: the padded input ({padded}) is smaller than the dilated kernel ({span})"
            ));
        }
        pad_begin[d] = pb;
        output[d] = (padded - span) / strides[d] + 1;
    }
    Ok(Geometry {
        batch: x[0],
        channels,
        input,
        out_channels,
        group,
        kernel,
        strides,
        dilations,
        pad_begin,
        output,
    })
}

impl Geometry {
    fn out_shape(&self) -> Vec<usize> {
        let mut s = vec![self.batch, self.out_channels];
        s.extend(&self.output);
        s
    }
}

/// Row-major multi-indices of `shape`, in order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The exact convolution of centered `x` ([N, C, ...]) with centered `w` ([M, C/group, ...]) as f64,
/// shaped [N, M, out...].
fn convolve(g: &Geometry, x: &[f64], w: &[f64]) -> Result<Vec<f64>, String> {
    let nd = g.input.len();
    let cg = g.channels / g.group;
    let mg = g.out_channels / g.group;
    let ksize: usize = g.kernel.iter().product();
    let osize: usize = g.output.iter().product();
    let isize: usize = g.input.iter().product();
    let rows = cg * ksize;
    let total = checked_numel(&g.out_shape()).map_err(|e| e.0)?;
    checked_numel(&[rows, osize]).map_err(|e| e.0)?;
    checked_numel(&[ksize, osize]).map_err(|e| e.0)?;
    let in_strides = crate::tensor::strides(&g.input);
    // For each kernel position, the input offset per output position (None: padding).
    let mut taps: Vec<Vec<Option<usize>>> = Vec::with_capacity(ksize);
    for_each_index(&g.kernel, |kk| {
        let mut offs = Vec::with_capacity(osize);
        for_each_index(&g.output, |o| {
            let mut off = 0usize;
            let mut inside = true;
            for d in 0..nd {
                let pos = (o[d] * g.strides[d] + kk[d] * g.dilations[d]) as isize
                    - g.pad_begin[d] as isize;
                if pos < 0 || pos as usize >= g.input[d] {
                    inside = false;
                    break;
                }
                off += pos as usize * in_strides[d];
            }
            offs.push(inside.then_some(off));
        });
        taps.push(offs);
    });
    let mut y = vec![0.0f64; total];
    let mut cols = vec![0.0f64; rows * osize];
    for n in 0..g.batch {
        for grp in 0..g.group {
            for c in 0..cg {
                let plane = &x[(n * g.channels + grp * cg + c) * isize..][..isize];
                for (t, offs) in taps.iter().enumerate() {
                    let row = &mut cols[(c * ksize + t) * osize..][..osize];
                    for (dst, off) in row.iter_mut().zip(offs) {
                        *dst = off.map_or(0.0, |o| plane[o]);
                    }
                }
            }
            let wg = &w[grp * mg * rows..][..mg * rows];
            let yg = &mut y[(n * g.out_channels + grp * mg) * osize..][..mg * osize];
            dgemm(mg, rows, osize, wg, rows, &cols, osize, yg, osize, false);
        }
    }
    Ok(y)
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
    let win = Window {
        auto_pad: op.auto_pad,
        dilations: &op.dilations,
        group: op.group,
        kernel_shape: &op.kernel_shape,
        pads: &op.pads,
        strides: &op.strides,
    };
    let g = geometry(&x.shape, &w.shape, &win).map_err(|m| cx.err(m))?;
    let xv = centered(cx, x, cx.opt_tensor(2)?, false)?;
    let wv = centered(cx, w, cx.opt_tensor(3)?, true)?;
    let y = convolve(&g, &xv, &wv).map_err(|m| cx.err(m))?;
    let v: Vec<i32> = y.iter().map(|&v| v as i64 as i32).collect();
    let t = Tensor::new(g.out_shape(), Data::I32(v)).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

/// ONNX QLinearConv: `y = saturate(round((conv(x − zx, w − zw) + bias) · sx·sw/sy) + zy)`, `w`'s scale
/// and zero point per tensor or per output channel.
pub(super) fn qlinear_conv(op: &QLinearConv, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let w = cx.tensor(3)?;
    let win = Window {
        auto_pad: op.auto_pad,
        dilations: &op.dilations,
        group: op.group,
        kernel_shape: &op.kernel_shape,
        pads: &op.pads,
        strides: &op.strides,
    };
    let g = geometry(&x.shape, &w.shape, &win).map_err(|m| cx.err(m))?;
    let (sx, _) = scalar_params(cx, 1, 2)?;
    let (sy, zy) = scalar_params(cx, 6, 7)?;
    let sdt = cx.tensor(1)?.dtype();
    let swt = cx.tensor(4)?;
    let sw = to_f64(swt).map_err(|e| tensor_err(cx, e))?;
    if sw.len() != 1 && sw.len() != g.out_channels {
        return Err(cx.err(format!(
            "w scale must have 1 or {} elements, got shape {:?}",
            g.out_channels, swt.shape
        )));
    }
    let xv = centered(cx, x, cx.opt_tensor(2)?, false)?;
    let wv = centered(cx, w, cx.opt_tensor(5)?, true)?;
    let mut y = convolve(&g, &xv, &wv).map_err(|m| cx.err(m))?;
    let osize: usize = g.output.iter().product();
    if let Some(b) = cx.opt_tensor(8)? {
        let bv = to_i64(b).map_err(|e| tensor_err(cx, e))?;
        if bv.len() != g.out_channels {
            return Err(cx.err(format!(
                "bias must have {} elements, got shape {:?}",
                g.out_channels, b.shape
            )));
        }
        for (i, v) in y.iter_mut().enumerate() {
            *v += bv[(i / osize.max(1)) % g.out_channels] as f64;
        }
    }
    let out = out_dtype(cx, 0)?;
    let range = int_range(out);
    let mult: Vec<f64> = (0..g.out_channels)
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
                f64::from(acc) * mult[(i / osize.max(1)) % g.out_channels],
                zy,
                range,
            )
        })
        .collect();
    let t = from_i64(out, g.out_shape(), &v).map_err(|e| tensor_err(cx, e))?;
    Ok(vec![t.into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn win<'a>(auto_pad: AutoPad, pads: &'a [i64], strides: &'a [i64]) -> Window<'a> {
        Window {
            auto_pad,
            dilations: &[],
            group: 1,
            kernel_shape: &[],
            pads,
            strides,
        }
    }

    #[test]
    fn output_sizes_follow_pads_and_auto_pad() {
        let g = geometry(
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            &win(AutoPad::NotSet, &[1, 1, 1, 1], &[]),
        )
        .unwrap();
        assert_eq!(g.output, vec![5, 5]);
        let g = geometry(
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            &win(AutoPad::SameUpper, &[], &[2, 2]),
        )
        .unwrap();
        assert_eq!(
            (g.output.clone(), g.pad_begin.clone()),
            (vec![3, 3], vec![1, 1])
        );
        let g = geometry(&[1, 1, 6], &[1, 1, 3], &win(AutoPad::SameLower, &[], &[2])).unwrap();
        // out 3, total pad (3-1)*2+3-6 = 1: SAME_LOWER puts it first.
        assert_eq!((g.output.clone(), g.pad_begin.clone()), (vec![3], vec![1]));
        let g = geometry(&[1, 1, 5, 5], &[1, 1, 3, 3], &win(AutoPad::Valid, &[], &[])).unwrap();
        assert_eq!(g.output, vec![3, 3]);
        assert!(
            geometry(
                &[1, 2, 5, 5],
                &[1, 1, 3, 3],
                &win(AutoPad::NotSet, &[], &[])
            )
            .is_err()
        );
    }

    #[test]
    fn convolution_matches_a_direct_sum_with_padding_and_groups() {
        // x [1, 2, 3], w [2, 1, 2] (group 2), pads 1/0, stride 1.
        let w2 = Window {
            auto_pad: AutoPad::NotSet,
            dilations: &[],
            group: 2,
            kernel_shape: &[],
            pads: &[1, 0],
            strides: &[],
        };
        let g = geometry(&[1, 2, 3], &[2, 1, 2], &w2).unwrap();
        assert_eq!(g.output, vec![3]);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 10.0, -1.0, 2.0];
        let y = convolve(&g, &x, &w).unwrap();
        // Channel 0: [0,1,2,3] * [1,10] → 10, 21, 32; channel 1: [0,4,5,6] * [-1,2] → 8, 6, 7.
        assert_eq!(y, vec![10.0, 21.0, 32.0, 8.0, 6.0, 7.0]);
    }
}
