//! `conv_transpose` (f32, 1-D and 2-D, constant weights, any groups / strides / pads / output_padding
//! / dilations / output_shape).
//!
//! Two kernels, both with `(n, output channel)` planes as work units:
//! - *upsampling* (kernel = stride, dilation 1, no padding, output = input · stride, horizontal stride
//!   1 or 2, f32x4 targets): every output pixel gets exactly one tap, so each output row
//!   `iy·sh + ky` is computed directly, 4 input columns at a time with one accumulator per `kx`
//!   (loop over input channels innermost, weights pre-splatted in channel order), interleaved on store;
//! - *scatter* (everything else): the plane starts as the bias, then for each input channel, kernel row
//!   and kernel column the valid input range (compile-time) is scattered with a multiply-add, vectorized
//!   when the horizontal stride is 1.

use carve_ir::DType;
use carve_ir::ops::conv::{ConvTranspose, Window, transposed_output};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{BlockArg, InstBuilder, Value, types};

use super::window::shuffle4;
use super::{fallback, fmadd, is_f32_in, tiles_for};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights, needs_constants};

/// Transposed-conv geometry along one axis.
#[derive(Debug, Clone, Copy)]
struct TAxis {
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    /// Applied begin padding (negative when `output_shape` asks for more).
    pad_begin: i64,
}

impl TAxis {
    fn unit() -> TAxis {
        TAxis {
            input: 1,
            output: 1,
            kernel: 1,
            stride: 1,
            dilation: 1,
            pad_begin: 0,
        }
    }

    /// Output index of input `i` under tap `k`.
    fn out_of(&self, i: usize, k: usize) -> i64 {
        (i * self.stride) as i64 - self.pad_begin + (k * self.dilation) as i64
    }

    /// Inputs `lo..hi` whose tap `k` lands inside the output.
    fn input_range(&self, k: usize) -> (usize, usize) {
        let valid: Vec<usize> = (0..self.input)
            .filter(|&i| {
                let o = self.out_of(i, k);
                o >= 0 && o < self.output as i64
            })
            .collect();
        match (valid.first(), valid.last()) {
            (Some(&a), Some(&b)) => (a, b + 1),
            _ => (0, 0),
        }
    }

    /// Exactly one tap per output: `kernel = stride`, dilation 1, no padding, `output = input·stride`.
    fn is_upsampling(&self) -> bool {
        self.kernel == self.stride
            && self.dilation == 1
            && self.pad_begin == 0
            && self.output == self.input * self.stride
    }
}

/// A resolved conv_transpose.
#[derive(Debug, Clone, Copy)]
struct Spec {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    h: TAxis,
    w: TAxis,
    /// Weights in the original `[C, M/group, KH, KW]` layout.
    wt: WeightRef,
    /// Upsampling path: weights splatted, `[M][KH][C/group][KW][4]`.
    wsplat: Option<WeightRef>,
    bias: Option<WeightRef>,
}

/// Select phase for `conv_transpose`.
pub(super) fn lower(
    info: &NodeInfo,
    op: &ConvTranspose,
    wts: &mut Weights,
) -> Result<Lowering, CodegenError> {
    if !is_f32_in(info, 0)? || !is_f32_in(info, 1)? || info.out_dtype(0)? != DType::F32 {
        return fallback("conv_transpose: only f32 is native");
    }
    if info.has_input(2) && !is_f32_in(info, 2)? {
        return fallback("conv_transpose: only f32 bias is native");
    }
    let x = info.in_shape(0)?;
    let ws = info.in_shape(1)?;
    let y = info.out_shape(0)?;
    if !(3..=4).contains(&x.len()) || ws.len() != x.len() || y.len() != x.len() {
        return fallback("conv_transpose: only 1-D and 2-D spatial inputs are native");
    }
    let Some(wv) = info.const_f32s(1) else {
        return Ok(needs_constants(
            &[1, 2],
            "conv_transpose: the weight is not a compile-time constant",
        ));
    };
    let group = usize::try_from(op.group).unwrap_or(0);
    let (n, c) = (x[0], x[1]);
    if group == 0 || ws[0] != c || c % group != 0 {
        return Err(info.err("input channels and weight do not fit the group"));
    }
    let mg = ws[1];
    let m = mg * group;
    let bias = if info.has_input(2) {
        match info.const_f32s(2) {
            Some(b) if b.len() == m => Some(b),
            Some(_) => return Err(info.err("bias length differs from the output channels")),
            None => {
                return Ok(needs_constants(
                    &[1, 2],
                    "conv_transpose: the bias is not a compile-time constant",
                ));
            }
        }
    } else {
        None
    };
    let kernel = &ws[2..];
    let nd = kernel.len();
    if !op.kernel_shape.is_empty()
        && op
            .kernel_shape
            .iter()
            .map(|&k| k as usize)
            .ne(kernel.iter().copied())
    {
        return fallback("conv_transpose: kernel_shape disagrees with the weight");
    }
    let out_shape: &[i64] = if op.output_shape.len() == nd + 2 {
        &op.output_shape[2..]
    } else {
        &op.output_shape
    };
    let a = super::attrs(&op.strides, &op.dilations, &op.pads, op.auto_pad, false);
    a.check(nd).map_err(|e| info.err(e))?;
    let mut axes = Vec::new();
    for (i, &k) in kernel.iter().enumerate() {
        let w: Window = a.window(i, k as u64);
        let opad = op.output_padding.get(i).copied().unwrap_or(0);
        let opad = u64::try_from(opad).map_err(|_| info.err("negative output_padding"))?;
        let size = match out_shape.get(i) {
            Some(&s) => Some(u64::try_from(s).map_err(|_| info.err("negative output_shape"))?),
            None => None,
        };
        let (out, pb, _) = transposed_output(x[2 + i] as u64, &w, opad, op.auto_pad, size)
            .map_err(|e| info.err(e))?;
        axes.push(TAxis {
            input: x[2 + i],
            output: out as usize,
            kernel: k,
            stride: w.stride as usize,
            dilation: w.dilation as usize,
            pad_begin: pb,
        });
    }
    let (h, w) = match axes.as_slice() {
        [w] => (TAxis::unit(), *w),
        [h, w] => (*h, *w),
        _ => return fallback("conv_transpose: only 1-D and 2-D are native"),
    };
    let mut want = vec![n, m];
    if nd == 2 {
        want.push(h.output);
    }
    want.push(w.output);
    if y != want {
        return Err(info.err("output shape disagrees with the transposed-conv geometry"));
    }
    let bytes = |s: &[usize]| s.iter().product::<usize>() * 4;
    if bytes(&x) >= 1 << 31 || bytes(&y) >= 1 << 31 {
        return fallback("conv_transpose: tensors of 2 GiB or more are not native");
    }
    if y.contains(&0) || x.contains(&0) {
        return fallback("conv_transpose: empty tensors are not native");
    }
    let kk = h.kernel * w.kernel;
    if wv.len() != c * mg * kk {
        return Err(info.err("weight size disagrees with its shape"));
    }
    let vec = info.target.f32_lanes() >= 4;
    let up = vec && h.is_upsampling() && w.is_upsampling() && (w.stride == 1 || w.stride == 2);
    let wsplat = up.then(|| {
        let cg = c / group;
        let mut p = Vec::with_capacity(m * kk * cg * 4);
        for mo in 0..m {
            let (g, mi) = (mo / mg, mo % mg);
            for ky in 0..h.kernel {
                for ci in 0..cg {
                    for kx in 0..w.kernel {
                        let v = wv[((g * cg + ci) * mg + mi) * kk + ky * w.kernel + kx];
                        p.extend([v; 4]);
                    }
                }
            }
        }
        wts.add_f32(&p)
    });
    let spec = Spec {
        n,
        c,
        m,
        group,
        h,
        w,
        wt: wts.add_f32(&wv),
        wsplat,
        bias: bias.map(|b| wts.add_f32(&b)),
    };
    // Weight and bias live in the packed blob only.
    wts.baked(info, 1);
    wts.baked(info, 2);
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| emit(e, &spec)),
    })
}

/// A counted loop whose body updates `vals` (loop-carried values of type `ty`).
fn carried_loop(
    kb: &mut Kb,
    lo: i64,
    hi: i64,
    vals: Vec<Value>,
    ty: types::Type,
    mut body: impl FnMut(&mut Kb, Value, &[Value]) -> Result<Vec<Value>, CodegenError>,
) -> Result<Vec<Value>, CodegenError> {
    let header = kb.b.create_block();
    let blk = kb.b.create_block();
    let exit = kb.b.create_block();
    kb.b.append_block_param(header, types::I64);
    for _ in &vals {
        kb.b.append_block_param(header, ty);
        kb.b.append_block_param(exit, ty);
    }
    let lo = kb.iconst(lo);
    let args: Vec<BlockArg> = std::iter::once(lo)
        .chain(vals.iter().copied())
        .map(BlockArg::Value)
        .collect();
    kb.b.ins().jump(header, &args);
    kb.b.switch_to_block(header);
    let ps = kb.b.block_params(header).to_vec();
    let cond = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, ps[0], hi);
    let exit_args: Vec<BlockArg> = ps[1..].iter().copied().map(BlockArg::Value).collect();
    kb.b.ins().brif(cond, blk, &[], exit, &exit_args);
    kb.b.switch_to_block(blk);
    let next = body(kb, ps[0], &ps[1..])?;
    let i1 = kb.b.ins().iadd_imm_s(ps[0], 1);
    let args: Vec<BlockArg> = std::iter::once(i1)
        .chain(next)
        .map(BlockArg::Value)
        .collect();
    kb.b.ins().jump(header, &args);
    kb.b.switch_to_block(exit);
    Ok(kb.b.block_params(exit).to_vec())
}

fn emit(e: &mut Emitter, s: &Spec) -> Result<(), CodegenError> {
    let s = *s;
    let units = s.n * s.m;
    let cg = s.c / s.group;
    let work = cg * s.h.input * s.w.input * s.h.kernel * s.w.kernel;
    let n_tiles = tiles_for(units, work);
    let vec = e.target().f32_lanes() >= 4;
    e.kernel(n_tiles, move |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let (lo, hi) = if n_tiles == 1 {
            (kb.iconst(0), kb.iconst(units as i64))
        } else {
            (kb.begin, kb.end)
        };
        kb.for_range(lo, hi, 1, |kb, u| {
            let mm = kb.iconst(s.m as i64);
            let ni = kb.b.ins().udiv(u, mm);
            let mo = kb.b.ins().urem(u, mm);
            let mg = s.m / s.group;
            let mgv = kb.iconst(mg as i64);
            let g = kb.b.ins().udiv(mo, mgv);
            let mi = kb.b.ins().urem(mo, mgv);
            // First input channel of the group: n·C + g·cg.
            let c0 = kb.b.ins().imul_imm_s(ni, s.c as i64);
            let gc = kb.b.ins().imul_imm_s(g, cg as i64);
            let c0 = kb.b.ins().iadd(c0, gc);
            let in_plane = (s.h.input * s.w.input * 4) as i64;
            let xg = kb.offset(x, c0, in_plane);
            let yp = kb.offset(y, u, (s.h.output * s.w.output * 4) as i64);
            let b = match s.bias {
                Some(bw) => {
                    let bb = kb.weight(bw);
                    let a = kb.offset(bb, mo, 4);
                    kb.load_ro(types::F32, a, 0)
                }
                None => kb.f32const(0.0),
            };
            match s.wsplat {
                Some(ws) => upsample_plane(kb, &s, xg, yp, mo, ws, b),
                None => scatter_plane(kb, &s, xg, yp, g, mi, b, vec),
            }
        })
    })
}

/// The upsampling kernel for one output plane.
fn upsample_plane(
    kb: &mut Kb,
    s: &Spec,
    xg: Value,
    yp: Value,
    mo: Value,
    ws: WeightRef,
    bias: Value,
) -> Result<(), CodegenError> {
    let cg = s.c / s.group;
    let (kh, kw) = (s.h.kernel, s.w.kernel);
    let (iw, ow) = (s.w.input, s.w.output);
    let in_plane = (s.h.input * iw * 4) as i64;
    let wsb = kb.weight(ws);
    let wm = kb.offset(wsb, mo, (kh * cg * kw * 16) as i64);
    let bv = kb.b.ins().splat(types::F32X4, bias);
    kb.for_n(0, s.h.input as i64, 1, |kb, iy| {
        let xr = kb.offset(xg, iy, (iw * 4) as i64);
        for ky in 0..kh {
            let oy = kb.b.ins().imul_imm_s(iy, kh as i64);
            let oy = kb.b.ins().iadd_imm_s(oy, ky as i64);
            let yr = kb.offset(yp, oy, (ow * 4) as i64);
            let wk = kb.b.ins().iadd_imm_s(wm, (ky * cg * kw * 16) as i64);
            // Blocks of 8 input columns (two vectors), then one vector, then scalars.
            let n8 = iw / 8;
            let block = |kb: &mut Kb, ix: Value, nv: usize| -> Result<(), CodegenError> {
                let xa = kb.offset(xr, ix, 4);
                let init = vec![bv; nv * kw];
                let accs = carried_loop(kb, 0, cg as i64, init, types::F32X4, |kb, ci, acc| {
                    let xc = kb.offset(xa, ci, in_plane);
                    let wc = kb.offset(wk, ci, (kw * 16) as i64);
                    let mut next = acc.to_vec();
                    let wvs: Vec<Value> = (0..kw)
                        .map(|kx| kb.load_ro(types::F32X4, wc, (16 * kx) as i32))
                        .collect();
                    for v in 0..nv {
                        let xv = kb.load(types::F32X4, xc, (16 * v) as i32);
                        for (kx, &wv) in wvs.iter().enumerate() {
                            next[v * kw + kx] = fmadd(kb, xv, wv, next[v * kw + kx]);
                        }
                    }
                    Ok(next)
                })?;
                let ya = kb.offset(yr, ix, (4 * kw) as i64);
                for v in 0..nv {
                    if kw == 1 {
                        kb.store(accs[v], ya, (16 * v) as i32);
                    } else {
                        let (a0, a1) = (accs[v * 2], accs[v * 2 + 1]);
                        let lo = shuffle4(kb, a0, a1, [0, 4, 1, 5]);
                        let hi = shuffle4(kb, a0, a1, [2, 6, 3, 7]);
                        kb.store(lo, ya, (32 * v) as i32);
                        kb.store(hi, ya, (32 * v + 16) as i32);
                    }
                }
                Ok(())
            };
            if n8 > 0 {
                kb.for_n(0, (n8 * 8) as i64, 8, |kb, ix| block(kb, ix, 2))?;
            }
            let mut done = n8 * 8;
            if iw - done >= 4 {
                let ix = kb.iconst(done as i64);
                block(kb, ix, 1)?;
                done += 4;
            }
            // Remaining columns, scalar.
            for ix in done..iw {
                let init = vec![bias; kw];
                let accs = carried_loop(kb, 0, cg as i64, init, types::F32, |kb, ci, acc| {
                    let xc = kb.offset(xr, ci, in_plane);
                    let xv = kb.load(types::F32, xc, (ix * 4) as i32);
                    let wc = kb.offset(wk, ci, (kw * 16) as i64);
                    let mut next = acc.to_vec();
                    for (kx, a) in next.iter_mut().enumerate() {
                        let wv = kb.load_ro(types::F32, wc, (16 * kx) as i32);
                        *a = fmadd(kb, xv, wv, *a);
                    }
                    Ok(next)
                })?;
                for (kx, a) in accs.into_iter().enumerate() {
                    kb.store(a, yr, ((ix * kw + kx) * 4) as i32);
                }
            }
        }
        Ok(())
    })
}

/// The scatter kernel for one output plane.
#[allow(clippy::too_many_arguments)]
fn scatter_plane(
    kb: &mut Kb,
    s: &Spec,
    xg: Value,
    yp: Value,
    g: Value,
    mi: Value,
    bias: Value,
    vec: bool,
) -> Result<(), CodegenError> {
    let cg = s.c / s.group;
    let mg = s.m / s.group;
    let (h, w) = (s.h, s.w);
    let kk = h.kernel * w.kernel;
    let plane = h.output * w.output;
    // Fill the plane with the bias.
    let nv = if vec { plane / 4 } else { 0 };
    if nv > 0 {
        let bv = kb.b.ins().splat(types::F32X4, bias);
        kb.for_n(0, nv as i64, 1, |kb, i| {
            let a = kb.offset(yp, i, 16);
            kb.store(bv, a, 0);
            Ok(())
        })?;
    }
    if plane - nv * 4 > 0 {
        kb.for_n((nv * 4) as i64, plane as i64, 1, |kb, i| {
            let a = kb.offset(yp, i, 4);
            kb.store(bias, a, 0);
            Ok(())
        })?;
    }
    // Weights of (c = g·cg + ci, mi): wt + ((c·mg + mi)·kk)·4.
    let wt = kb.weight(s.wt);
    let gc = kb.b.ins().imul_imm_s(g, (cg * mg * kk * 4) as i64);
    let wg = kb.b.ins().iadd(wt, gc);
    let wg = kb.offset(wg, mi, (kk * 4) as i64);
    let in_plane = (h.input * w.input * 4) as i64;
    kb.for_n(0, cg as i64, 1, |kb, ci| {
        let xc = kb.offset(xg, ci, in_plane);
        let wc = kb.offset(wg, ci, (mg * kk * 4) as i64);
        for ky in 0..h.kernel {
            let (iy_lo, iy_hi) = h.input_range(ky);
            if iy_lo >= iy_hi {
                continue;
            }
            let wks: Vec<Value> = (0..w.kernel)
                .map(|kx| kb.load_ro(types::F32, wc, ((ky * w.kernel + kx) * 4) as i32))
                .collect();
            kb.for_n(iy_lo as i64, iy_hi as i64, 1, |kb, iy| {
                let xr = kb.offset(xc, iy, (w.input * 4) as i64);
                // Output row iy·sh - pbh + ky·dh.
                let oy = kb.b.ins().imul_imm_s(iy, h.stride as i64);
                let oy =
                    kb.b.ins()
                        .iadd_imm_s(oy, (ky * h.dilation) as i64 - h.pad_begin);
                let yr = kb.offset(yp, oy, (w.output * 4) as i64);
                for (kx, &wk) in wks.iter().enumerate() {
                    let (lo, hi) = w.input_range(kx);
                    if lo >= hi {
                        continue;
                    }
                    // y[ix·sw + o0] += wk · x[ix].
                    let o0 = (kx * w.dilation) as i64 - w.pad_begin;
                    let mut ix = lo;
                    if vec && w.stride == 1 && hi - lo >= 4 {
                        let n4 = (hi - lo) / 4 * 4;
                        let wv = kb.b.ins().splat(types::F32X4, wk);
                        kb.for_n(lo as i64, (lo + n4) as i64, 4, |kb, i| {
                            let xa = kb.offset(xr, i, 4);
                            let ya = kb.offset(yr, i, 4);
                            let xv = kb.load(types::F32X4, xa, 0);
                            let yo = (o0 * 4) as i32;
                            let yv = kb.load(types::F32X4, ya, yo);
                            let r = fmadd(kb, xv, wv, yv);
                            kb.store(r, ya, yo);
                            Ok(())
                        })?;
                        ix = lo + n4;
                    }
                    if hi > ix {
                        kb.for_n(ix as i64, hi as i64, 1, |kb, i| {
                            let xa = kb.offset(xr, i, 4);
                            let ya = kb.offset(yr, i, (w.stride * 4) as i64);
                            let xv = kb.load(types::F32, xa, 0);
                            let yo = (o0 * 4) as i32;
                            let yv = kb.load(types::F32, ya, yo);
                            let r = fmadd(kb, xv, wk, yv);
                            kb.store(r, ya, yo);
                            Ok(())
                        })?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    })
}
