//! Non-depthwise convolution lowered to GEMM: `y[n, g·Mg + m, p] = Σ_k W[g·Mg + m, k] · X_col[k, p]`
//! with the weights as the A operand, packed at compile time into `MR`-row panels (k-major, per group).
//!
//! * Pointwise convs (every kernel dim 1, unit strides, no padding) read `X[n, g·Cg.., H·W]` in place as
//!   B; tiles are `MC × NC` blocks of each `(n, g)` product.
//! * Other 1-D/2-D convs run one tile per `(n, g, output row, chunk of ≤ NB output columns)`: for each
//!   k block (a range of input channels × every kernel tap) the tile's im2col block is packed into a
//!   stack buffer in zero-padded `NR`-column panels, then multiplied by the weight panels. Padding is
//!   resolved statically per chunk shape (chunks with the same in-bounds pattern share code) and per
//!   row at run time.
//!
//! The bias is added in the epilogue. 3-D and larger convs and runtime weights fall back.

use carve_ir::DType;
use carve_ir::ops::conv::{Conv, WindowAttrs, window_output};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::micro::V;
use super::{
    ASrc, Addend, BSrc, CDst, Epi, Geo, Post, Shape, Strided, emit_tile, guarded, split,
    stack_buffer,
};
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Most bytes of a tile's im2col buffer on the stack.
const BLOCK_BYTES: usize = 96 * 1024;
/// Most k steps of one conv k block.
const KC_CONV: usize = 256;

/// 2-D geometry of one conv (1-D convs have `h = oh = kh = 1`).
#[derive(Debug, Clone)]
struct G2 {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    group: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    /// (stride, dilation, pad_begin) per axis.
    sy: (usize, usize, usize),
    sx: (usize, usize, usize),
}

impl G2 {
    fn cg(&self) -> usize {
        self.c / self.group
    }
    fn mg(&self) -> usize {
        self.m / self.group
    }
    fn taps(&self) -> usize {
        self.kh * self.kw
    }
    fn kdim(&self) -> usize {
        self.cg() * self.taps()
    }
    fn pointwise(&self) -> bool {
        self.taps() == 1
            && self.sy.0 == 1
            && self.sx.0 == 1
            && self.sy.2 == 0
            && self.sx.2 == 0
            && self.oh == self.h
            && self.ow == self.w
    }
}

fn geometry(op: &Conv, info: &NodeInfo) -> Result<Result<G2, String>, CodegenError> {
    let xs = info.in_shape(0)?;
    let ws = info.in_shape(1)?;
    if xs.len() != ws.len() || xs.len() < 3 {
        return Err(info.err(format!("conv shapes {xs:?} and {ws:?} do not fit")));
    }
    let nsp = xs.len() - 2;
    if nsp > 2 {
        return Ok(Err(format!("{nsp}-d conv has no native kernel")));
    }
    let group = usize::try_from(op.group)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| info.err("group must be positive"))?;
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    if c % group != 0 || m % group != 0 || ws[1] * group != c {
        return Err(info.err(format!(
            "channels {c} / weight {ws:?} do not fit group {group}"
        )));
    }
    let attrs = WindowAttrs {
        strides: &op.strides,
        dilations: &op.dilations,
        pads: &op.pads,
        auto_pad: op.auto_pad,
        ceil_mode: false,
    };
    attrs.check(nsp).map_err(|e| info.err(e))?;
    let mut axes = Vec::new();
    for i in 0..nsp {
        let k = ws[2 + i];
        if let Some(&ka) = op.kernel_shape.get(i)
            && ka as usize != k
        {
            return Err(info.err("kernel_shape disagrees with the weight"));
        }
        let win = attrs.window(i, k as u64);
        let (out, pb, _) = window_output(xs[2 + i] as u64, &win, attrs.auto_pad, false)
            .map_err(|e| info.err(e))?;
        axes.push((
            xs[2 + i],
            k,
            out as usize,
            (win.stride as usize, win.dilation as usize, pb as usize),
        ));
    }
    // A trailing axis of size 1 with a 1-wide kernel and no padding (1-D convs written as 2-D) is
    // dropped so the remaining axis is the row.
    if nsp == 2 && axes[1].0 == 1 && axes[1].1 == 1 && axes[1].2 == 1 && axes[1].3.2 == 0 {
        axes.pop();
    }
    if axes.len() == 1 {
        axes.insert(0, (1, 1, 1, (1, 1, 0)));
    }
    let (ay, ax) = (axes[0], axes[1]);
    let want: Vec<usize> = info.out_shape(0)?;
    let numel: usize = want.iter().product();
    if numel != n * m * ay.2 * ax.2 {
        return Err(info.err("output shape does not match the conv geometry"));
    }
    Ok(Ok(G2 {
        n,
        c,
        h: ay.0,
        w: ax.0,
        m,
        group,
        kh: ay.1,
        kw: ax.1,
        oh: ay.2,
        ow: ax.2,
        sy: ay.3,
        sx: ax.3,
    }))
}

/// Packs the weights `[M, Cg·taps]` into MR-row panels per group (k-major).
fn pack_weights(v: &[f32], g: &G2, mr: usize) -> Vec<f32> {
    let (mg, k) = (g.mg(), g.kdim());
    let mut out = Vec::with_capacity(v.len());
    for gi in 0..g.group {
        for p in (0..mg).step_by(mr) {
            let rows = mr.min(mg - p);
            for kk in 0..k {
                for r in 0..rows {
                    out.push(v[(gi * mg + p + r) * k + kk]);
                }
            }
        }
    }
    out
}

/// Select phase for `conv` whose tiles apply the pointwise steps `post` before they store.
pub fn lower(
    op: &Conv,
    info: &NodeInfo,
    w: &mut Weights,
    post: Post,
) -> Result<Lowering, CodegenError> {
    for i in 0..3 {
        if info.has_input(i) && info.in_dtype(i)? != DType::F32 {
            return Ok(Lowering::Fallback(format!(
                "native conv is f32 only; input {i} is {}",
                info.in_dtype(i)?
            )));
        }
    }
    let g = match geometry(op, info)? {
        Ok(g) => g,
        Err(r) => return Ok(Lowering::Fallback(r)),
    };
    let Some(wv) = info.const_f32s(1) else {
        return Ok(Lowering::Fallback("conv with runtime weights".into()));
    };
    if g.n * g.m * g.oh * g.ow == 0 || g.kdim() == 0 {
        return Ok(Lowering::Fallback("empty conv".into()));
    }
    let sh = Shape::for_target(info.target);
    let wref = w.add_f32(&pack_weights(&wv, &g, sh.mr));
    w.baked(info, 1);
    let has_bias = info.has_input(2);
    if g.pointwise() {
        return Ok(pointwise(g, sh, wref, has_bias, post));
    }
    Ok(general(g, sh, wref, has_bias, post))
}

/// The tile epilogue of group `gi`: the bias (one value per output row) if any, then `post` (its
/// residual, then its pointwise steps).
fn tile_epi(
    kb: &mut Kb,
    has_bias: bool,
    post: Post,
    gi: Value,
    mg: usize,
) -> Result<Epi, CodegenError> {
    let addend = if has_bias {
        let b = kb.input(2)?;
        let o = kb.b.ins().imul_imm_s(gi, mg as i64 * 4);
        Some(Addend {
            base: kb.b.ins().iadd(b, o),
            rs: 4,
            cs: 0,
            scale: 1.0,
            ro: false,
        })
    } else {
        None
    };
    Ok(Epi {
        alpha: 1.0,
        addend,
        residual: super::micro::residual_delta(kb, post)?,
        post,
    })
}

fn pointwise(
    g: G2,
    sh: Shape,
    wref: crate::lower::WeightRef,
    has_bias: bool,
    post: Post,
) -> Lowering {
    let hw = g.h * g.w;
    let geo = Geo::new(g.mg(), hw, g.cg(), sh);
    let n_tiles = (g.n * g.group * geo.tiles()) as u64;
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let wp = kb.weight(wref);
                kb.for_tiles(|kb, t| {
                    let (bt, mb, nb) = super::split_tile(kb, t, &geo);
                    let gs = kb.iconst(g.group as i64);
                    let gi = kb.b.ins().urem(bt, gs);
                    // (n, g) plane offsets: x at bt·Cg·HW, y at bt·Mg·HW, weights at g·Mg·K.
                    let xo = kb.b.ins().imul_imm_s(bt, (g.cg() * hw * 4) as i64);
                    let yo = kb.b.ins().imul_imm_s(bt, (g.mg() * hw * 4) as i64);
                    let wo = kb.b.ins().imul_imm_s(gi, (g.mg() * g.cg() * 4) as i64);
                    let xb = kb.b.ins().iadd(x, xo);
                    let yb = kb.b.ins().iadd(y, yo);
                    let wb = kb.b.ins().iadd(wp, wo);
                    let epi = tile_epi(kb, has_bias, post, gi, g.mg())?;
                    let b = BSrc::Direct(Strided {
                        base: xb,
                        rs: hw as i64 * 4,
                        cs: 4,
                        ro: false,
                    });
                    let c = CDst {
                        base: yb,
                        rs: hw as i64 * 4,
                        epi,
                    };
                    emit_tile(kb, &geo, ASrc::Panels(wb), b, c, mb, nb, &mut |_, _, _| {
                        Ok(())
                    })
                })
            })
        }),
    }
}

/// Per kernel column `kx`, which of the chunk's columns read inside the input row.
fn chunk_signature(g: &G2, ow0: usize, width: usize) -> Vec<Vec<bool>> {
    let (sx, dx, px) = g.sx;
    (0..g.kw)
        .map(|kx| {
            (0..width)
                .map(|c| {
                    let iw = ((ow0 + c) * sx + kx * dx) as i64 - px as i64;
                    iw >= 0 && iw < g.w as i64
                })
                .collect()
        })
        .collect()
}

/// Runs of chunks that share code: `(first chunk, end chunk, width, signature)`.
type Run = (usize, usize, usize, Vec<Vec<bool>>);

fn general(
    g: G2,
    sh: Shape,
    wref: crate::lower::WeightRef,
    has_bias: bool,
    post: Post,
) -> Lowering {
    let nr = sh.nr();
    let taps = g.taps();
    // k blocks: ranges of input channels with every tap.
    let cb_max = (KC_CONV / taps).max(1);
    let (cb, nkb) = split(g.cg(), cb_max, 1);
    let kbl: Vec<(usize, usize)> = (0..nkb)
        .map(|i| (i * cb * taps, (cb.min(g.cg() - i * cb)) * taps))
        .collect();
    let kc_max = cb.min(g.cg()) * taps;
    // Chunk width: the im2col block (kc × NB) within BLOCK_BYTES.
    let nb_max = (BLOCK_BYTES / (kc_max * 4) / nr * nr).clamp(nr, 256);
    let (nbw, nchunks) = split(g.ow, nb_max, nr);
    let mut runs: Vec<Run> = Vec::new();
    for ci in 0..nchunks {
        let ow0 = ci * nbw;
        let width = nbw.min(g.ow - ow0);
        let sig = chunk_signature(&g, ow0, width);
        match runs.last_mut() {
            Some(r) if r.2 == width && r.3 == sig => r.1 = ci + 1,
            _ => runs.push((ci, ci + 1, width, sig)),
        }
    }
    let n_tiles = (g.n * g.group * g.oh * nchunks) as u64;
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let wp = kb.weight(wref);
                let buf = stack_buffer(kb, kc_max * nbw.next_multiple_of(nr) * 4)?;
                kb.for_tiles(|kb, t| {
                    let nch = kb.iconst(nchunks as i64);
                    let ohs = kb.iconst(g.oh as i64);
                    let ci = kb.b.ins().urem(t, nch);
                    let r = kb.b.ins().udiv(t, nch);
                    let oy = kb.b.ins().urem(r, ohs);
                    let bt = kb.b.ins().udiv(r, ohs);
                    let gs = kb.iconst(g.group as i64);
                    let gi = kb.b.ins().urem(bt, gs);
                    let xo = kb.b.ins().imul_imm_s(bt, (g.cg() * g.h * g.w * 4) as i64);
                    let xb = kb.b.ins().iadd(x, xo);
                    let yo = kb.b.ins().imul_imm_s(bt, (g.mg() * g.oh * g.ow * 4) as i64);
                    let yb = kb.b.ins().iadd(y, yo);
                    let wo = kb.b.ins().imul_imm_s(gi, (g.mg() * g.kdim() * 4) as i64);
                    let wb = kb.b.ins().iadd(wp, wo);
                    let epi = tile_epi(kb, has_bias, post, gi, g.mg())?;
                    for run in &runs {
                        let (c0, c1) = (run.0, run.1);
                        let lo =
                            kb.b.ins()
                                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, ci, c0 as i64);
                        let hi = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, ci, c1 as i64);
                        let inr = kb.b.ins().band(lo, hi);
                        let cond = if runs.len() == 1 { None } else { Some(inr) };
                        guarded(kb, cond, |kb| {
                            chunk_tile(kb, &g, sh, run, &kbl, ci, oy, xb, yb, wb, epi, buf, nbw)
                        })?;
                    }
                    Ok(())
                })
            })
        }),
    }
}

#[allow(clippy::too_many_arguments)]
fn chunk_tile(
    kb: &mut Kb,
    g: &G2,
    sh: Shape,
    run: &Run,
    kbl: &[(usize, usize)],
    ci: Value,
    oy: Value,
    xb: Value,
    yb: Value,
    wb: Value,
    epi: Epi,
    buf: Value,
    nbw: usize,
) -> Result<(), CodegenError> {
    let width = run.2;
    let sig = &run.3;
    let nr = sh.nr();
    let geo = Geo {
        m: g.mg(),
        n: width,
        k: g.kdim(),
        sh,
        mc: g.mg().next_multiple_of(sh.mr),
        nc: width.next_multiple_of(nr),
        mbs: 1,
        nbs: 1,
        kblocks: kbl.to_vec(),
        x86: None,
    };
    let ohw = (g.oh * g.ow) as i64;
    // Output block origin: y[bt, 0, oy, ci·nbw].
    let ow0 = kb.b.ins().imul_imm_s(ci, nbw as i64);
    let orow = kb.b.ins().imul_imm_s(oy, g.ow as i64);
    let pos = kb.b.ins().iadd(orow, ow0);
    let po = kb.b.ins().imul_imm_s(pos, 4);
    let cbase = kb.b.ins().iadd(yb, po);
    // Input column origin of the chunk: x[.., .., .., ow0·sx].
    let xo = kb.b.ins().imul_imm_s(ow0, (g.sx.0 * 4) as i64);
    let xcol = kb.b.ins().iadd(xb, xo);
    let c = CDst {
        base: cbase,
        rs: ohw * 4,
        epi,
    };
    let zero_i = kb.iconst(0);
    let mut hook = |kb: &mut Kb, k0: Value, kc: usize| -> Result<(), CodegenError> {
        im2col(kb, g, sh, sig, width, k0, kc, oy, xcol, buf)
    };
    emit_tile(
        kb,
        &geo,
        ASrc::Panels(wb),
        BSrc::Block(buf),
        c,
        zero_i,
        zero_i,
        &mut hook,
    )
}

/// Packs rows `k0..k0+kc` (whole input channels × taps) of the tile's im2col block into NR-column
/// panels at `buf` (panel `p` at `p·kc·NR`, row `k` at `k·NR` within it).
#[allow(clippy::too_many_arguments)]
fn im2col(
    kb: &mut Kb,
    g: &G2,
    sh: Shape,
    sig: &[Vec<bool>],
    width: usize,
    k0: Value,
    kc: usize,
    oy: Value,
    xcol: Value,
    buf: Value,
) -> Result<(), CodegenError> {
    let v = V { lanes: sh.lanes };
    let nr = sh.nr();
    let taps = g.taps();
    // k blocks hold whole input channels: channels c0..c0 + kc/taps.
    let taps_v = kb.iconst(taps as i64);
    let c0v = kb.b.ins().udiv(k0, taps_v);
    let (sy, dy, py) = g.sy;
    let (sx, dx, px) = g.sx;
    let panel_bytes = (kc * nr * 4) as i64;
    let lanes = sh.lanes;
    let groups = width.next_multiple_of(nr) / lanes;
    let plane = (g.h * g.w * 4) as i64;
    let c1v = kb.b.ins().iadd_imm_s(c0v, (kc / taps) as i64);
    kb.for_range(c0v, c1v, 1, |kb, c| {
        let xo = kb.b.ins().imul_imm_s(c, plane);
        let xc = kb.b.ins().iadd(xcol, xo);
        let rel = kb.b.ins().isub(c, c0v);
        let dofs = kb.b.ins().imul_imm_s(rel, (taps * nr * 4) as i64);
        let dst = kb.b.ins().iadd(buf, dofs);
        for ky in 0..g.kh {
            // Input row iy = oy·sy + ky·dy − py; out of range → zero rows.
            let base_iy = kb.b.ins().imul_imm_s(oy, sy as i64);
            let iy = kb.b.ins().iadd_imm_s(base_iy, (ky * dy) as i64 - py as i64);
            let ok =
                kb.b.ins()
                    .icmp_imm_s(IntCC::UnsignedLessThan, iy, g.h as i64);
            let yes = kb.b.create_block();
            let no = kb.b.create_block();
            let done = kb.b.create_block();
            kb.b.ins().brif(ok, yes, &[], no, &[]);
            for (blk, valid) in [(yes, true), (no, false)] {
                kb.b.switch_to_block(blk);
                let row = if valid {
                    let ro = kb.b.ins().imul_imm_s(iy, (g.w * 4) as i64);
                    Some(kb.b.ins().iadd(xc, ro))
                } else {
                    None
                };
                for (kx, sig_x) in sig.iter().enumerate() {
                    let krow = ((ky * g.kw + kx) * nr * 4) as i64;
                    for q in 0..groups {
                        let col0 = q * lanes;
                        let valid_lanes: Vec<bool> = (0..lanes)
                            .map(|l| col0 + l < width && sig_x[col0 + l])
                            .collect();
                        let off =
                            (col0 / nr) as i64 * panel_bytes + krow + ((col0 % nr) * 4) as i64;
                        let val = match row {
                            Some(row) if valid_lanes.iter().any(|&b| b) => {
                                // Source of column col: row + (col·sx + kx·dx − px)·4.
                                let src =
                                    |col: usize| ((col * sx + kx * dx) as i64 - px as i64) * 4;
                                if valid_lanes.iter().all(|&b| b) {
                                    v.gather(kb, row, src(col0), (sx * 4) as i64, lanes, false)?
                                } else {
                                    let mut acc = v.zero(kb);
                                    for (l, &ok) in valid_lanes.iter().enumerate() {
                                        if ok {
                                            let s = kb.b.ins().load(
                                                cranelift_codegen::ir::types::F32,
                                                crate::emit::data_flags(),
                                                row,
                                                src(col0 + l) as i32,
                                            );
                                            acc = if lanes == 1 {
                                                s
                                            } else {
                                                kb.b.ins().insertlane(acc, s, l as u8)
                                            };
                                        }
                                    }
                                    acc
                                }
                            }
                            _ => v.zero(kb),
                        };
                        v.store(kb, val, dst, off, lanes)?;
                    }
                }
                kb.b.ins().jump(done, &[]);
            }
            kb.b.switch_to_block(done);
        }
        Ok(())
    })
}
