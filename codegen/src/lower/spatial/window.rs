//! The sliding-window kernel generator shared by depthwise `conv` and `pool` (max / avg / lp).
//!
//! Geometry is static, so the output rows and columns are split at compile time into a leading border,
//! an interior (every window tap inside the input) and a trailing border. Border rows and columns get
//! code specialized to their valid taps (no runtime padding checks); the interior of each row is a loop
//! vectorized along the output width (f32x4, strides 1 and 2; other strides run scalar). Work units are
//! (output plane, row block) pairs; each output element is computed by exactly one unit in a fixed
//! order.

use carve_ir::DType;
use carve_ir::ops::conv::{Conv, Pool, PoolKind};
use cranelift_codegen::ir::Endianness;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{ConstantData, InstBuilder, MemFlagsData, Value, types};

use super::{
    Axis, Ty, attrs, fallback, fconst, fmadd, forward_axes, imm, is_f32_in, max_finish, max_step,
    tiles_for,
};
use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::gemm::Post;
use crate::lower::gemm::tile::split_post;
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights, needs_constants};
use crate::target::Target;
use crate::x86::depthwise::{self, DwSpec};
use crate::x86::{TileIsa, TileNote};

/// What a window computes.
#[derive(Debug, Clone, Copy)]
enum Red {
    /// Depthwise convolution: weights `[cout][kh·kw]` (scalars) and the same splatted to 4 lanes,
    /// optional bias `[cout]`.
    Conv {
        /// Output channels.
        cout: usize,
        /// Scalar weights.
        w: WeightRef,
        /// Weights, each repeated 4 times (vector taps).
        wv: WeightRef,
        /// Bias.
        bias: Option<WeightRef>,
        /// Pointwise epilogue steps of a fused depthwise conv, applied to each result before it is
        /// stored.
        post: Post,
        /// The x86 machine-code row routine's ISA ([`crate::x86::depthwise`]), if rows run on it.
        x86: Option<TileIsa>,
    },
    /// NaN-ignoring maximum.
    Max,
    /// Mean over valid taps (or over the padded window).
    Avg {
        /// Divide by the taps inside the padded extent.
        include_pad: bool,
    },
    /// `Σ|x|`.
    Lp1,
    /// `sqrt(Σx²)`.
    Lp2,
}

/// A fully resolved window op.
#[derive(Debug, Clone, Copy)]
struct Spec {
    /// Output planes (`N · C_out`).
    planes: usize,
    /// Output planes per input plane (depthwise channel multiplier; 1 for pooling).
    mult: usize,
    /// Vertical geometry (a unit axis for 1-D ops).
    h: Axis,
    /// Horizontal geometry.
    w: Axis,
    /// The reduction.
    red: Red,
}

/// Select phase for a depthwise `conv` (group = input channels).
pub(super) fn lower_depthwise(
    info: &NodeInfo,
    c: &Conv,
    wts: &mut Weights,
    post: Post,
) -> Result<Lowering, CodegenError> {
    if !is_f32_in(info, 0)? || !is_f32_in(info, 1)? || info.out_dtype(0)? != DType::F32 {
        return fallback("depthwise conv: only f32 is native");
    }
    if info.has_input(2) && !is_f32_in(info, 2)? {
        return fallback("depthwise conv: only f32 bias is native");
    }
    let x = info.in_shape(0)?;
    let ws = info.in_shape(1)?;
    if !(3..=4).contains(&x.len()) || ws.len() != x.len() {
        return fallback("depthwise conv: only 1-D and 2-D spatial inputs are native");
    }
    let (n, ch) = (x[0], x[1]);
    let cout = ws[0];
    if ws[1] != 1 || ch == 0 || cout % ch != 0 {
        return fallback(format!("depthwise conv: unexpected weight shape {ws:?}"));
    }
    let Some(wv) = info.const_f32s(1) else {
        return Ok(needs_constants(
            &[1, 2],
            "depthwise conv: the weight is not a compile-time constant",
        ));
    };
    let bias = if info.has_input(2) {
        match info.const_f32s(2) {
            Some(b) if b.len() == cout => Some(b),
            Some(_) => return fallback("depthwise conv: bias length differs from output channels"),
            None => {
                return Ok(needs_constants(
                    &[1, 2],
                    "depthwise conv: the bias is not a compile-time constant",
                ));
            }
        }
    } else {
        None
    };
    let kernel = ws[2..].to_vec();
    if !c.kernel_shape.is_empty()
        && c.kernel_shape
            .iter()
            .map(|&k| k as usize)
            .collect::<Vec<_>>()
            != kernel
    {
        return fallback("depthwise conv: kernel_shape disagrees with the weight");
    }
    let a = attrs(&c.strides, &c.dilations, &c.pads, c.auto_pad, false);
    let axes = match forward_axes(&x[2..], &kernel, &a) {
        Ok(a) => a,
        Err(e) => return Err(info.err(e)),
    };
    let (h, w) = split_axes(&axes);
    let spec_out = [n, cout, h.output, w.output];
    if !shape_matches(&info.out_shape(0)?, &spec_out, x.len()) {
        return Err(info.err("output shape disagrees with the window geometry"));
    }
    let kk = h.kernel * w.kernel;
    if wv.len() != cout * kk {
        return Err(info.err("weight size disagrees with its shape"));
    }
    let x86 = row_tile(info.target, &h, &w, &post);
    if let Some(isa) = x86 {
        wts.note_tile(TileNote {
            mr: 1,
            nr: isa.lanes(),
            isa: isa.name(),
        });
    }
    // The machine-code rows read the scalar weights only.
    let wsplat: Vec<f32> = if x86.is_some() {
        Vec::new()
    } else {
        wv.iter().flat_map(|&v| [v; 4]).collect()
    };
    let red = Red::Conv {
        cout,
        w: wts.add_f32(&wv),
        wv: wts.add_f32(&wsplat),
        bias: bias.map(|b| wts.add_f32(&b)),
        post,
        x86,
    };
    // Weight and bias live in the packed blob only.
    wts.baked(info, 1);
    wts.baked(info, 2);
    finish_select(
        Spec {
            planes: n * cout,
            mult: cout / ch,
            h,
            w,
            red,
        },
        &x,
    )
}

/// The ISA of the x86 row routine a depthwise conv along `w` with epilogue `post` runs on: `None`
/// unless the target has a tile ISA, the stride is 1 or 2 and every epilogue step has a register
/// form (relu, clip, clamp).
fn row_tile(target: &Target, h: &Axis, w: &Axis, post: &Post) -> Option<TileIsa> {
    let isa = TileIsa::for_target(target)?;
    let (_, rest) = split_post(post);
    // Displacements within a plane stay far inside 32 bits.
    let small = h.input.saturating_mul(w.input) < 1 << 28;
    ((1..=2).contains(&w.stride) && rest.is_empty() && post.residual().is_none() && small)
        .then_some(isa)
}

/// Select phase for `pool`.
pub(super) fn lower_pool(info: &NodeInfo, p: &Pool) -> Result<Lowering, CodegenError> {
    if !is_f32_in(info, 0)? || info.out_dtype(0)? != DType::F32 {
        return fallback("pool: only f32 is native");
    }
    if info.num_outputs() > 1 {
        return fallback("pool: max pooling with an indices output runs in the interpreter");
    }
    let x = info.in_shape(0)?;
    if !(3..=4).contains(&x.len()) {
        return fallback("pool: only 1-D and 2-D spatial inputs are native");
    }
    let red = match p.kind {
        PoolKind::Max => Red::Max,
        PoolKind::Avg => Red::Avg {
            include_pad: p.count_include_pad,
        },
        PoolKind::Lp if p.p == 1 => Red::Lp1,
        PoolKind::Lp if p.p == 2 => Red::Lp2,
        PoolKind::Lp => return fallback(format!("lp pool: p = {} is not native (only 1, 2)", p.p)),
    };
    let Ok(kernel) = p
        .kernel_shape
        .iter()
        .map(|&k| usize::try_from(k).ok().filter(|&k| k > 0).ok_or(()))
        .collect::<Result<Vec<usize>, ()>>()
    else {
        return Err(info.err("kernel_shape values must be positive"));
    };
    let a = attrs(&p.strides, &p.dilations, &p.pads, p.auto_pad, p.ceil_mode);
    let axes = match forward_axes(&x[2..], &kernel, &a) {
        Ok(a) => a,
        Err(e) => return Err(info.err(e)),
    };
    let (h, w) = split_axes(&axes);
    let (n, c) = (x[0], x[1]);
    if !shape_matches(&info.out_shape(0)?, &[n, c, h.output, w.output], x.len()) {
        return Err(info.err("output shape disagrees with the window geometry"));
    }
    finish_select(
        Spec {
            planes: n * c,
            mult: 1,
            h,
            w,
            red,
        },
        &x,
    )
}

/// The (H, W) axes of a 1-D or 2-D window.
fn split_axes(axes: &[Axis]) -> (Axis, Axis) {
    match axes {
        [w] => (Axis::unit(), *w),
        [h, w, ..] => (*h, *w),
        [] => (Axis::unit(), Axis::unit()),
    }
}

/// Whether a node's output shape is `[n, c, oh, ow]` (or `[n, c, ow]` for rank 3).
fn shape_matches(out: &[usize], want4: &[usize; 4], rank: usize) -> bool {
    if rank == 3 {
        out == [want4[0], want4[1], want4[3]]
    } else {
        out == want4
    }
}

/// Final checks and the emit closure.
fn finish_select(spec: Spec, x: &[usize]) -> Result<Lowering, CodegenError> {
    let in_bytes: usize = x.iter().product::<usize>() * 4;
    let out_bytes = spec.planes * spec.h.output * spec.w.output * 4;
    if in_bytes >= 1 << 31 || out_bytes >= 1 << 31 {
        return fallback("window op: tensors of 2 GiB or more are not native");
    }
    if spec.planes == 0 || spec.h.output == 0 || spec.w.output == 0 {
        return fallback("window op: empty output");
    }
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e: &mut Emitter| emit(e, &spec)),
    })
}

/// Row blocks per plane: enough work units for two threads when there are few planes.
fn row_blocks(spec: &Spec) -> usize {
    const MIN_UNITS: usize = 8;
    if spec.planes >= MIN_UNITS {
        1
    } else {
        MIN_UNITS.div_ceil(spec.planes).min(spec.h.output)
    }
}

/// Per-unit values every row uses.
struct Cx {
    /// Input plane address.
    xin: Value,
    /// Output plane address.
    yout: Value,
    /// Scalar weights of this plane's channel.
    wbase: Option<Value>,
    /// Splatted weights of this plane's channel.
    wvbase: Option<Value>,
    /// Initial accumulator (scalar, vector).
    init: (Value, Option<Value>),
    /// Address of this plane's channel bias (depthwise conv with a bias).
    bias: Option<Value>,
}

fn emit(e: &mut Emitter, spec: &Spec) -> Result<(), CodegenError> {
    let nrb = row_blocks(spec);
    let rows_per = spec.h.output.div_ceil(nrb);
    let nrb = spec.h.output.div_ceil(rows_per);
    let units = spec.planes * nrb;
    let work = spec.h.output * spec.w.output * spec.h.kernel * spec.w.kernel / nrb;
    let n_tiles = tiles_for(units, work);
    let vec = e.target().f32_lanes() >= 4;
    let spec = *spec;
    e.kernel(n_tiles, move |kb| {
        let x = kb.input(0)?;
        let y = kb.output(0)?;
        let (lo, hi) = if n_tiles == 1 {
            (kb.iconst(0), kb.iconst(units as i64))
        } else {
            (kb.begin, kb.end)
        };
        kb.for_range(lo, hi, 1, |kb, t| {
            let (p, rb) = if nrb == 1 {
                (t, None)
            } else {
                let nr = kb.iconst(nrb as i64);
                (kb.b.ins().udiv(t, nr), Some(kb.b.ins().urem(t, nr)))
            };
            let in_plane = (spec.h.input * spec.w.input * 4) as i64;
            let out_plane = (spec.h.output * spec.w.output * 4) as i64;
            let ip = if spec.mult == 1 {
                p
            } else {
                let m = kb.iconst(spec.mult as i64);
                kb.b.ins().udiv(p, m)
            };
            let xin = kb.offset(x, ip, in_plane);
            let yout = kb.offset(y, p, out_plane);
            let cx = unit_cx(kb, &spec, p, xin, yout, vec);
            let (row_lo, row_hi) = match rb {
                None => (kb.iconst(0), kb.iconst(spec.h.output as i64)),
                Some(rb) => {
                    let lo = kb.b.ins().imul_imm_s(rb, rows_per as i64);
                    let hi = kb.b.ins().iadd_imm_s(lo, rows_per as i64);
                    let oh = kb.iconst(spec.h.output as i64);
                    (lo, kb.b.ins().smin(hi, oh))
                }
            };
            let (oy_lo, oy_hi) = spec.h.interior();
            // Leading border rows.
            for oy in 0..oy_lo {
                guarded_row(kb, &spec, &cx, rb.is_some(), row_lo, row_hi, oy, vec)?;
            }
            // Interior rows.
            if oy_hi > oy_lo {
                let (a, b) = if rb.is_some() {
                    let l = kb.iconst(oy_lo as i64);
                    let h = kb.iconst(oy_hi as i64);
                    (kb.b.ins().smax(row_lo, l), kb.b.ins().smin(row_hi, h))
                } else {
                    (kb.iconst(oy_lo as i64), kb.iconst(oy_hi as i64))
                };
                kb.for_range(a, b, 1, |kb, oy| {
                    let start = kb.b.ins().imul_imm_s(oy, spec.h.stride as i64);
                    let start = kb.b.ins().iadd_imm_s(start, -(spec.h.pad_begin as i64));
                    let rowbase = kb.offset(cx.xin, start, (spec.w.input * 4) as i64);
                    let orow = kb.offset(cx.yout, oy, (spec.w.output * 4) as i64);
                    let kys: Vec<usize> = (0..spec.h.kernel).collect();
                    emit_row(kb, &spec, &cx, rowbase, orow, &kys, spec.h.kernel, vec)
                })?;
            }
            // Trailing border rows.
            for oy in oy_hi..spec.h.output {
                guarded_row(kb, &spec, &cx, rb.is_some(), row_lo, row_hi, oy, vec)?;
            }
            Ok(())
        })
    })
}

/// Per-unit context: plane addresses, this channel's weights and the initial accumulator.
fn unit_cx(kb: &mut Kb, spec: &Spec, p: Value, xin: Value, yout: Value, vec: bool) -> Cx {
    match spec.red {
        Red::Conv {
            cout, w, wv, bias, ..
        } => {
            let ch = if spec.planes == cout {
                p
            } else {
                let c = kb.iconst(cout as i64);
                kb.b.ins().urem(p, c)
            };
            let kk = (spec.h.kernel * spec.w.kernel) as i64;
            let wb = kb.weight(w);
            let wbase = kb.offset(wb, ch, kk * 4);
            let wvb = kb.weight(wv);
            let wvbase = kb.offset(wvb, ch, kk * 16);
            let (s, bias) = match bias {
                Some(b) => {
                    let bb = kb.weight(b);
                    let a = kb.offset(bb, ch, 4);
                    (kb.load_ro(types::F32, a, 0), Some(a))
                }
                None => (kb.f32const(0.0), None),
            };
            let v = vec.then(|| kb.b.ins().splat(types::F32X4, s));
            Cx {
                xin,
                yout,
                wbase: Some(wbase),
                wvbase: Some(wvbase),
                init: (s, v),
                bias,
            }
        }
        red => {
            let c = if matches!(red, Red::Max) {
                f32::NAN
            } else {
                0.0
            };
            let s = kb.f32const(c);
            let v = vec.then(|| kb.b.ins().splat(types::F32X4, s));
            Cx {
                xin,
                yout,
                wbase: None,
                wvbase: None,
                init: (s, v),
                bias: None,
            }
        }
    }
}

/// Emits border row `oy` (compile-time), inside `row_lo <= oy < row_hi` when the plane is split.
#[allow(clippy::too_many_arguments)]
fn guarded_row(
    kb: &mut Kb,
    spec: &Spec,
    cx: &Cx,
    split: bool,
    row_lo: Value,
    row_hi: Value,
    oy: usize,
    vec: bool,
) -> Result<(), CodegenError> {
    let kys = spec.h.valid_taps(oy);
    let padded = spec.h.padded_count(oy);
    let body = |kb: &mut Kb| -> Result<(), CodegenError> {
        let start = spec.h.start(oy) * (spec.w.input * 4) as i64;
        let rowbase = kb.b.ins().iadd_imm_s(cx.xin, start);
        let orow =
            kb.b.ins()
                .iadd_imm_s(cx.yout, (oy * spec.w.output * 4) as i64);
        emit_row(kb, spec, cx, rowbase, orow, &kys, padded, vec)
    };
    if !split {
        return body(kb);
    }
    let o = kb.iconst(oy as i64);
    let ge = kb.b.ins().icmp(IntCC::SignedLessThanOrEqual, row_lo, o);
    let lt = kb.b.ins().icmp(IntCC::SignedLessThan, o, row_hi);
    let c = kb.b.ins().band(ge, lt);
    let then = kb.b.create_block();
    let merge = kb.b.create_block();
    kb.b.ins().brif(c, then, &[], merge, &[]);
    kb.b.switch_to_block(then);
    body(kb)?;
    kb.b.ins().jump(merge, &[]);
    kb.b.switch_to_block(merge);
    Ok(())
}

/// Emits one output row: `rowbase` is the address of input row `oy·sh - pbh` (tap row `ky` is
/// `ky·dh` rows below), `kys` the valid vertical taps, `padded_h` the vertical padded-window count.
#[allow(clippy::too_many_arguments)]
fn emit_row(
    kb: &mut Kb,
    spec: &Spec,
    cx: &Cx,
    rowbase: Value,
    orow: Value,
    kys: &[usize],
    padded_h: usize,
    vec: bool,
) -> Result<(), CodegenError> {
    if let Red::Conv {
        x86: Some(isa),
        post,
        ..
    } = spec.red
    {
        return tile_row(kb, spec, cx, isa, &post, (rowbase, orow), kys);
    }
    let w = spec.w;
    let (lo, hi) = w.interior();
    let all_kx: Vec<usize> = (0..w.kernel).collect();
    let border = |kb: &mut Kb, ox: usize| -> Result<(), CodegenError> {
        let kxs = w.valid_taps(ox);
        let counts = (kys.len() * kxs.len(), padded_h * w.padded_count(ox));
        let acc = point(
            kb,
            spec,
            cx,
            Ty::S,
            rowbase,
            w.start(ox) * 4,
            kys,
            &kxs,
            counts,
        )?;
        kb.store(acc, orow, imm((ox * 4) as i64)?);
        Ok(())
    };
    for ox in 0..lo {
        border(kb, ox)?;
    }
    let counts = (kys.len() * w.kernel, padded_h * w.kernel);
    let mut ox0 = lo;
    if vec && (w.stride == 1 || w.stride == 2) && hi > lo {
        let unroll = match spec.red {
            Red::Max => 2,
            _ => 4,
        };
        let nv = (hi - lo) / 4;
        let nu = nv / unroll;
        let step = 4 * unroll;
        if nu > 0 {
            let end = lo + nu * step;
            kb.for_n(lo as i64, end as i64, step as i64, |kb, ox| {
                let col = kb.b.ins().imul_imm_s(ox, (w.stride * 4) as i64);
                let base = kb.b.ins().iadd(rowbase, col);
                let oaddr = kb.offset(orow, ox, 4);
                let mut accs = Vec::with_capacity(unroll);
                for j in 0..unroll {
                    let off = -(w.pad_begin as i64) * 4 + (16 * j * w.stride) as i64;
                    accs.push(point_partial(kb, spec, cx, Ty::V, base, off, kys, &all_kx)?);
                }
                for (j, acc) in accs.into_iter().enumerate() {
                    let r = finish(kb, spec, Ty::V, acc, counts);
                    kb.store(r, oaddr, (16 * j) as i32);
                }
                Ok(())
            })?;
            ox0 = end;
        }
        // Remaining whole vectors at known positions.
        while ox0 + 4 <= hi {
            let acc = point(
                kb,
                spec,
                cx,
                Ty::V,
                rowbase,
                w.start(ox0) * 4,
                kys,
                &all_kx,
                counts,
            )?;
            kb.store(acc, orow, imm((ox0 * 4) as i64)?);
            ox0 += 4;
        }
    }
    if hi > ox0 {
        if hi - ox0 <= 4 {
            for ox in ox0..hi {
                let acc = point(
                    kb,
                    spec,
                    cx,
                    Ty::S,
                    rowbase,
                    w.start(ox) * 4,
                    kys,
                    &all_kx,
                    counts,
                )?;
                kb.store(acc, orow, imm((ox * 4) as i64)?);
            }
        } else {
            kb.for_n(ox0 as i64, hi as i64, 1, |kb, ox| {
                let col = kb.b.ins().imul_imm_s(ox, (w.stride * 4) as i64);
                let base = kb.b.ins().iadd(rowbase, col);
                let acc = point(
                    kb,
                    spec,
                    cx,
                    Ty::S,
                    base,
                    -(w.pad_begin as i64) * 4,
                    kys,
                    &all_kx,
                    counts,
                )?;
                let oaddr = kb.offset(orow, ox, 4);
                kb.store(acc, oaddr, 0);
                Ok(())
            })?;
        }
    }
    for ox in hi.max(lo)..w.output {
        border(kb, ox)?;
    }
    Ok(())
}

/// One output row as a call of the x86 row routine ([`crate::x86::depthwise`]) for vertical taps
/// `kys`, with `post`'s clamps in registers.
fn tile_row(
    kb: &mut Kb,
    spec: &Spec,
    cx: &Cx,
    isa: TileIsa,
    post: &Post,
    (rowbase, orow): (Value, Value),
    kys: &[usize],
) -> Result<(), CodegenError> {
    let (clamps, _) = split_post(post);
    let ds = DwSpec {
        isa,
        w_in: spec.w.input,
        w_out: spec.w.output,
        kw: spec.w.kernel,
        stride: spec.w.stride,
        dilation: spec.w.dilation,
        pad: spec.w.pad_begin,
        row_step: (spec.h.dilation * spec.w.input * 4) as i64,
        kys: kys.to_vec(),
        bias: cx.bias.is_some(),
        clamps,
    };
    let wbase = cx.wbase.ok_or_else(missing)?;
    let bias = cx.bias.unwrap_or(wbase);
    let key = format!("{ds:?}");
    kb.call_raw(&key, &ds.stem(), &[rowbase, orow, wbase, bias], || {
        depthwise::assemble(&ds)
    })
}

/// One output value (or 4 adjacent ones): taps `kys × kxs` read at `base + off + (ky·dh·W + kx·dw)·4`,
/// reduced and finished.
#[allow(clippy::too_many_arguments)]
fn point(
    kb: &mut Kb,
    spec: &Spec,
    cx: &Cx,
    ty: Ty,
    base: Value,
    off: i64,
    kys: &[usize],
    kxs: &[usize],
    counts: (usize, usize),
) -> Result<Value, CodegenError> {
    let acc = point_partial(kb, spec, cx, ty, base, off, kys, kxs)?;
    Ok(finish(kb, spec, ty, acc, counts))
}

/// The reduction of [`point`] without the finishing step.
#[allow(clippy::too_many_arguments)]
fn point_partial(
    kb: &mut Kb,
    spec: &Spec,
    cx: &Cx,
    ty: Ty,
    base: Value,
    off: i64,
    kys: &[usize],
    kxs: &[usize],
) -> Result<Value, CodegenError> {
    let mut acc = match ty {
        Ty::S => cx.init.0,
        Ty::V => cx.init.1.ok_or_else(|| CodegenError::Graph {
            msg: "vector accumulator on a scalar target".into(),
        })?,
    };
    let (h, w) = (spec.h, spec.w);
    for &ky in kys {
        for &kx in kxs {
            let o = off + ((ky * h.dilation * w.input + kx * w.dilation) * 4) as i64;
            let v = load_taps(kb, ty, base, o, w.stride)?;
            acc = match spec.red {
                Red::Conv { .. } => {
                    let tap = (ky * w.kernel + kx) as i64;
                    let wt = match ty {
                        Ty::S => {
                            let wb = cx.wbase.ok_or_else(missing)?;
                            kb.load_ro(types::F32, wb, imm(tap * 4)?)
                        }
                        Ty::V => {
                            let wb = cx.wvbase.ok_or_else(missing)?;
                            kb.load_ro(types::F32X4, wb, imm(tap * 16)?)
                        }
                    };
                    fmadd(kb, v, wt, acc)
                }
                Red::Max => max_step(kb, ty, acc, v),
                Red::Avg { .. } => kb.b.ins().fadd(acc, v),
                Red::Lp1 => {
                    let a = kb.b.ins().fabs(v);
                    kb.b.ins().fadd(acc, a)
                }
                Red::Lp2 => fmadd(kb, v, v, acc),
            };
        }
    }
    Ok(acc)
}

fn missing() -> CodegenError {
    CodegenError::Graph {
        msg: "depthwise weights missing in the unit context".into(),
    }
}

/// Finishes a reduction over `(valid, padded)` taps.
fn finish(kb: &mut Kb, spec: &Spec, ty: Ty, acc: Value, counts: (usize, usize)) -> Value {
    match spec.red {
        Red::Conv { post, .. } => post
            .steps()
            .fold(acc, |x, step| crate::lower::fused::emit_step(kb, x, step)),
        Red::Lp1 => acc,
        Red::Max => max_finish(kb, ty, acc),
        Red::Avg { include_pad } => {
            let n = if include_pad { counts.1 } else { counts.0 };
            if n == 1 {
                return acc;
            }
            let r = fconst(kb, ty, 1.0 / n as f32);
            kb.b.ins().fmul(acc, r)
        }
        Red::Lp2 => kb.b.ins().sqrt(acc),
    }
}

/// Loads one tap: a scalar at `base + off`, or for vectors the 4 inputs of 4 adjacent outputs, which
/// are `stride` elements apart (stride 1: one load; stride 2: two loads and a shuffle, never reading
/// past the last input the taps use).
fn load_taps(
    kb: &mut Kb,
    ty: Ty,
    base: Value,
    off: i64,
    stride: usize,
) -> Result<Value, CodegenError> {
    match (ty, stride) {
        (Ty::S, _) => Ok(kb.load(types::F32, base, imm(off)?)),
        (Ty::V, 1) => Ok(kb.load(types::F32X4, base, imm(off)?)),
        (Ty::V, 2) => {
            // a = x[0..4], b = x[3..7] → x0, x2, x4, x6 = a0, a2, b1, b3.
            let a = kb.load(types::F32X4, base, imm(off)?);
            let b = kb.load(types::F32X4, base, imm(off + 12)?);
            Ok(shuffle4(kb, a, b, [0, 2, 5, 7]))
        }
        _ => Err(CodegenError::Graph {
            msg: format!("no vector tap load for stride {stride}"),
        }),
    }
}

/// Lane shuffle of two f32x4 (`lanes` index the concatenation `a ‖ b`).
pub(crate) fn shuffle4(kb: &mut Kb, a: Value, b: Value, lanes: [u8; 4]) -> Value {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let ai = kb.b.ins().bitcast(types::I8X16, le, a);
    let bi = kb.b.ins().bitcast(types::I8X16, le, b);
    let bytes: Vec<u8> = lanes
        .iter()
        .flat_map(|&l| (0..4).map(move |k| l * 4 + k))
        .collect();
    let mask = kb.b.func.dfg.immediates.push(ConstantData::from(bytes));
    let s = kb.b.ins().shuffle(ai, bi, mask);
    kb.b.ins().bitcast(types::F32X4, le, s)
}
