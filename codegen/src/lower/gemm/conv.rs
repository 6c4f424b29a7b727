//! Non-depthwise convolution lowered to GEMM: `y[n, g·Mg + m, p] = Σ_k W[g·Mg + m, k] · X_col[k, p]`
//! with the weights as the A operand, packed at compile time into `MR`-row panels (k-major, per group).
//! The micro-kernel is the target's: an x86 machine-code tile (AVX-512 / AVX2, see
//! [`crate::x86::gemm`]) where the target has one and the epilogue has a tile form, Cranelift's
//! otherwise; B always reaches it as zero-padded `NR`-column panels.
//!
//! * Pointwise convs (every kernel dim 1, unit strides, no padding) read `X[n, g·Cg.., H·W]` as B
//!   (packed per panel at run time for a tile); tiles are `MC × NC` blocks of each `(n, g)` product.
//! * Other 1-D/2-D convs run one tile per `(n, g, chunk, M block)` ([`Plan`]): a chunk is several
//!   whole output rows where they fit the panels, else part of one row. For each k block (a range of
//!   input channels × every kernel tap) the chunk's im2col block is packed into a stack buffer in
//!   zero-padded `NR`-column panels, then multiplied by the weight panels. Padding is resolved
//!   statically per chunk shape (chunks with the same in-bounds pattern share code) and per row at
//!   run time: an input row above or below the image reads a zeroed row on the stack instead (one
//!   code path per row, not one per case). Stride-2 taps load two overlapping vectors and pick
//!   their even elements with one shuffle instead of four scalar loads.
//!
//! The bias is added in the epilogue. 3-D and larger convs and runtime weights fall back.

use carve_ir::ops::conv::{Conv, WindowAttrs, window_output};
use carve_ir::{ConstData, ConstFormat, DType};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value};

use super::micro::V;
use super::{
    ASrc, Addend, BSrc, CDst, Epi, Geo, Post, Shape, Strided, emit_tile, guarded, split,
    stack_buffer, tile,
};
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::spatial::window::shuffle4;
use crate::lower::{Lowering, NodeInfo, Weights, needs_constants};
use crate::x86::gemm::GemmTile;

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

/// Packs the weights `[M, Cg·taps]` (`v`: their little-endian f32 bytes) into MR-row panels per
/// group (k-major), straight into the weights blob (a multi-megabyte intermediate vector would be
/// fresh memory to fault in and copy).
fn pack_weights(
    w: &mut Weights,
    v: &[u8],
    g: &G2,
    mr: usize,
) -> Result<crate::lower::WeightRef, String> {
    let (mg, k) = (g.mg(), g.kdim());
    let len = g.m * k * 4;
    if v.len() != len {
        return Err(format!("conv weights have {} bytes, not {len}", v.len()));
    }
    let offset = w.blob.append_aligned(len, |d| {
        let mut out = d.chunks_exact_mut(4);
        for gi in 0..g.group {
            for p in (0..mg).step_by(mr) {
                let rows = mr.min(mg - p);
                for kk in 0..k {
                    for r in 0..rows {
                        let i = ((gi * mg + p + r) * k + kk) * 4;
                        if let Some(o) = out.next() {
                            o.copy_from_slice(&v[i..i + 4]);
                        }
                    }
                }
            }
        }
    });
    Ok(crate::lower::WeightRef { offset, len })
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
    // The weights' little-endian f32 bytes, read in place (no decoded copy of a large tensor).
    let wc = info.constant(1).filter(|c| c.format == ConstFormat::Dense);
    let Some(ConstData::Bytes(wbuf)) = wc.map(|c| &c.data) else {
        return Ok(needs_constants(&[1, 2], "conv with runtime weights"));
    };
    let wv = wbuf.as_bytes();
    if g.n * g.m * g.oh * g.ow == 0 || g.kdim() == 0 {
        return Ok(Lowering::Fallback("empty conv".into()));
    }
    // The weights are A (MR-row panels: rs = 4, cs = mr·4); B reaches the micro-kernel as
    // zero-padded panels (the im2col block, or X packed per panel); C's rows are output channels.
    let ohw = (g.oh * g.ow * 4) as i64;
    let x86 =
        tile::choose(info.target, true).filter(|&t| tile::fits(t, (4, (t.mr * 4) as i64), ohw, 4));
    if let Some(t) = x86 {
        w.note_tile(t);
    }
    let sh = match x86 {
        Some(t) => Shape {
            mr: t.mr,
            lanes: t.lanes(),
            nv: t.nv,
        },
        None => Shape::for_target(info.target),
    };
    let wref = pack_weights(w, wv, &g, sh.mr).map_err(|e| info.err(e))?;
    w.baked(info, 1);
    let has_bias = info.has_input(2);
    if g.pointwise() {
        let geo = match x86 {
            Some(t) => Geo::tiled(g.mg(), g.h * g.w, g.cg(), t),
            None => Geo::new(g.mg(), g.h * g.w, g.cg(), sh),
        };
        return Ok(pointwise(g, geo, wref, has_bias, post));
    }
    let plan = Plan::new(&g, sh, x86);
    Ok(general(g, plan, wref, has_bias, post))
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
    geo: Geo,
    wref: crate::lower::WeightRef,
    has_bias: bool,
    post: Post,
) -> Lowering {
    let hw = g.h * g.w;
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

/// Per kernel column `kx`, which of the `width` output columns from `ow0` read inside the input row.
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

/// Chunks that share code: those of the column chunks `c0..c1` in row groups of kind `last_rg`
/// (`Some(true)`: the last row group, `Some(false)`: the others, `None`: any), all `rows` output rows
/// of `width` columns with the same in-bounds pattern `sig` (per kernel column).
#[derive(Debug, Clone)]
struct Run {
    last_rg: Option<bool>,
    c0: usize,
    c1: usize,
    rows: usize,
    width: usize,
    sig: Vec<Vec<bool>>,
}

/// Most output rows of one chunk (bounds the unrolled im2col code).
const MAX_CHUNK_ROWS: usize = 16;
/// Most 4-column groups (per kernel tap) of the im2col code of a chunk of several rows: chunks of
/// one row are unrolled whatever their size, as before; more rows are taken only within this (ResNet's
/// 7×7 stem at 2 rows of 112 doubled its kernel's Cranelift time to 195 ms).
const IM2COL_GROUPS: usize = 1024;

/// How a non-pointwise conv is cut into tiles. A tile is one `(image, group, row group, column
/// chunk, M block)`: a chunk is `rows` whole output rows where two or more fit a tile's columns
/// (narrow outputs: the rows are contiguous in NCHW, so they fill the register tile's panels
/// instead of padding one short row), otherwise one row's columns `[ci·width, ci·width + width)`.
/// Large output-channel counts are split into M blocks (each repeats the chunk's im2col, which is
/// small beside its products), so late, spatially small layers still have tiles for every thread.
#[derive(Debug, Clone)]
struct Plan {
    /// Register tile shape (the weights' panel rows and the im2col panel width come from it).
    sh: Shape,
    /// Cranelift vector shape the im2col packing uses.
    pack: Shape,
    /// The machine-code tile, if any.
    x86: Option<GemmTile>,
    /// `(k0, kc)` blocks: whole input channels × every tap.
    kbl: Vec<(usize, usize)>,
    /// Output rows per row group; the last has `rows_last`.
    rows: usize,
    rows_last: usize,
    /// Row groups.
    nrg: usize,
    /// Columns per chunk and chunks per row group.
    width: usize,
    ncol: usize,
    /// Rows of an M block (a multiple of MR) and M blocks per group.
    mc: usize,
    mbs: usize,
    runs: Vec<Run>,
}

impl Plan {
    fn new(g: &G2, sh: Shape, x86: Option<GemmTile>) -> Plan {
        let nr = sh.nr();
        let taps = g.taps();
        // Cranelift's 6×8 tile wastes little on a short row and its schedule predates chunks of
        // several rows and M blocks: it keeps one row per chunk and every output channel per tile.
        let (kc_lim, mc_lim, rows_lim) = match x86 {
            Some(t) => (t.blocking().kc, t.blocking().mc, MAX_CHUNK_ROWS),
            None => (KC_CONV, usize::MAX, 1),
        };
        let cb_max = (kc_lim / taps).max(1);
        let (cb, nkb) = split(g.cg(), cb_max, 1);
        let kbl: Vec<(usize, usize)> = (0..nkb)
            .map(|i| (i * cb * taps, (cb.min(g.cg() - i * cb)) * taps))
            .collect();
        let kc_max = cb.min(g.cg()) * taps;
        // Most columns of a chunk: its im2col block (kc × columns) within BLOCK_BYTES.
        let nb_max = (BLOCK_BYTES / (kc_max * 4) / nr * nr).clamp(nr, 256.max(nr));
        let (mc, mbs) = split(g.mg(), mc_lim, sh.mr);
        // The im2col code is unrolled per output row of the chunk: bound it (compile time).
        let groups_per_row = g.taps() * g.ow.div_ceil(4);
        let rows_code = (IM2COL_GROUPS / groups_per_row).max(1);
        let rows_max = (nb_max / g.ow).min(rows_lim).min(g.oh).min(rows_code);
        let mut plan = Plan {
            sh,
            pack: match x86 {
                Some(t) => tile::pack_shape(t),
                None => sh,
            },
            x86,
            kbl,
            rows: 1,
            rows_last: 1,
            nrg: g.oh,
            width: g.ow,
            ncol: 1,
            mc,
            mbs,
            runs: Vec::new(),
        };
        if rows_max >= 2 {
            // Whole rows: the row count with the fewest panels (padding is wasted work), a small
            // charge per chunk breaking ties toward larger chunks.
            let cost = |r: usize| {
                let full = g.oh / r;
                let rest = g.oh % r;
                let panels = full * (r * g.ow).div_ceil(nr) + (rest * g.ow).div_ceil(nr);
                4 * panels + g.oh.div_ceil(r)
            };
            let r = (2..=rows_max).min_by_key(|&r| (cost(r), r)).unwrap_or(1);
            plan.rows = r;
            plan.nrg = g.oh.div_ceil(r);
            plan.rows_last = g.oh - (plan.nrg - 1) * r;
            let sig = chunk_signature(g, 0, g.ow);
            let kinds: Vec<(Option<bool>, usize)> = if plan.rows_last == r {
                vec![(None, r)]
            } else {
                vec![(Some(false), r), (Some(true), plan.rows_last)]
            };
            plan.runs = kinds
                .into_iter()
                .map(|(last_rg, rows)| Run {
                    last_rg,
                    c0: 0,
                    c1: 1,
                    rows,
                    width: g.ow,
                    sig: sig.clone(),
                })
                .collect();
        } else {
            let (nbw, nchunks) = split(g.ow, nb_max, nr);
            plan.width = nbw;
            plan.ncol = nchunks;
            for ci in 0..nchunks {
                let ow0 = ci * nbw;
                let width = nbw.min(g.ow - ow0);
                let sig = chunk_signature(g, ow0, width);
                match plan.runs.last_mut() {
                    Some(r) if r.width == width && r.sig == sig => r.c1 = ci + 1,
                    _ => plan.runs.push(Run {
                        last_rg: None,
                        c0: ci,
                        c1: ci + 1,
                        rows: 1,
                        width,
                        sig,
                    }),
                }
            }
        }
        plan
    }

    /// Bytes of the im2col buffer: the deepest k block × the widest chunk's panels.
    fn buf_bytes(&self) -> usize {
        let kc_max = self.kbl.iter().map(|b| b.1).max().unwrap_or(0);
        let cols = self
            .runs
            .iter()
            .map(|r| r.rows * r.width)
            .max()
            .unwrap_or(0);
        kc_max * cols.next_multiple_of(self.sh.nr()) * 4
    }

    fn tiles(&self, g: &G2) -> usize {
        g.n * g.group * self.nrg * self.ncol * self.mbs
    }
}

fn general(
    g: G2,
    plan: Plan,
    wref: crate::lower::WeightRef,
    has_bias: bool,
    post: Post,
) -> Lowering {
    let n_tiles = plan.tiles(&g) as u64;
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let x = kb.input(0)?;
                let y = kb.output(0)?;
                let wp = kb.weight(wref);
                let buf = stack_buffer(kb, plan.buf_bytes())?;
                let zrow = zero_row(kb, &plan, g.w)?;
                kb.for_tiles(|kb, t| {
                    // t = (((image·group)·row groups + rg)·column chunks + ci)·M blocks + mb.
                    let mut rest = t;
                    let mut digit = |kb: &mut Kb, base: usize| {
                        let b = kb.iconst(base as i64);
                        let d = kb.b.ins().urem(rest, b);
                        rest = kb.b.ins().udiv(rest, b);
                        d
                    };
                    let mb = digit(kb, plan.mbs);
                    let ci = digit(kb, plan.ncol);
                    let rg = digit(kb, plan.nrg);
                    let bt = rest;
                    let gs = kb.iconst(g.group as i64);
                    let gi = kb.b.ins().urem(bt, gs);
                    let xo = kb.b.ins().imul_imm_s(bt, (g.cg() * g.h * g.w * 4) as i64);
                    let xb = kb.b.ins().iadd(x, xo);
                    let yo = kb.b.ins().imul_imm_s(bt, (g.mg() * g.oh * g.ow * 4) as i64);
                    let yb = kb.b.ins().iadd(y, yo);
                    let wo = kb.b.ins().imul_imm_s(gi, (g.mg() * g.kdim() * 4) as i64);
                    let wb = kb.b.ins().iadd(wp, wo);
                    let epi = tile_epi(kb, has_bias, post, gi, g.mg())?;
                    let at = At {
                        ci,
                        rg,
                        mb,
                        xb,
                        yb,
                        wb,
                        epi,
                        buf,
                        zrow,
                    };
                    for run in &plan.runs {
                        let cond = if plan.runs.len() == 1 {
                            None
                        } else {
                            run_cond(kb, &plan, run, ci, rg)
                        };
                        guarded(kb, cond, |kb| chunk_tile(kb, &g, &plan, run, at))?;
                    }
                    Ok(())
                })
            })
        }),
    }
}

/// The run-time test that tile `(ci, rg)` belongs to `run` (`None`: every tile does).
fn run_cond(kb: &mut Kb, plan: &Plan, run: &Run, ci: Value, rg: Value) -> Option<Value> {
    let mut cond: Option<Value> = None;
    let mut and = |kb: &mut Kb, c: Value| {
        cond = Some(match cond {
            Some(p) => kb.b.ins().band(p, c),
            None => c,
        });
    };
    if run.c0 > 0 {
        let c =
            kb.b.ins()
                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, ci, run.c0 as i64);
        and(kb, c);
    }
    if run.c1 < plan.ncol {
        let c =
            kb.b.ins()
                .icmp_imm_s(IntCC::SignedLessThan, ci, run.c1 as i64);
        and(kb, c);
    }
    if let Some(last) = run.last_rg {
        let cc = if last { IntCC::Equal } else { IntCC::NotEqual };
        let c = kb.b.ins().icmp_imm_s(cc, rg, (plan.nrg - 1) as i64);
        and(kb, c);
    }
    cond
}

/// One tile's run-time coordinates and operand bases.
#[derive(Debug, Clone, Copy)]
struct At {
    /// Column chunk, row group and M block.
    ci: Value,
    rg: Value,
    mb: Value,
    /// x, y and the weight panels of the tile's (image, group).
    xb: Value,
    yb: Value,
    wb: Value,
    epi: Epi,
    /// The im2col buffer.
    buf: Value,
    /// A zeroed input row (what rows outside the image read).
    zrow: Value,
}

/// A stack buffer of `w` zero floats (rounded up to whole vectors), zeroed now.
fn zero_row(kb: &mut Kb, plan: &Plan, w: usize) -> Result<Value, CodegenError> {
    let v = V {
        lanes: plan.pack.lanes,
    };
    let n = w.div_ceil(v.lanes);
    let row = stack_buffer(kb, n * v.lanes * 4)?;
    let end = kb.b.ins().iadd_imm_s(row, (n * v.lanes * 4) as i64);
    let z = v.zero(kb);
    kb.for_range(row, end, (v.lanes * 4) as i64, |kb, p| {
        v.store(kb, z, p, 0, v.lanes)
    })?;
    Ok(row)
}

fn chunk_tile(kb: &mut Kb, g: &G2, plan: &Plan, run: &Run, at: At) -> Result<(), CodegenError> {
    let sh = plan.sh;
    let cols = run.rows * run.width;
    let geo = Geo {
        m: g.mg(),
        n: cols,
        k: g.kdim(),
        sh,
        mc: plan.mc,
        nc: cols.next_multiple_of(sh.nr()),
        mbs: plan.mbs,
        nbs: 1,
        kblocks: plan.kbl.clone(),
        x86: plan.x86,
        pack: plan.pack,
    };
    let ohw = (g.oh * g.ow) as i64;
    // Output block origin: y[bt, 0, oy0, ox0] with oy0 = rg·rows, ox0 = ci·width.
    let oy0 = kb.b.ins().imul_imm_s(at.rg, plan.rows as i64);
    let ox0 = kb.b.ins().imul_imm_s(at.ci, plan.width as i64);
    let orow = kb.b.ins().imul_imm_s(oy0, g.ow as i64);
    let pos = kb.b.ins().iadd(orow, ox0);
    let po = kb.b.ins().imul_imm_s(pos, 4);
    let cbase = kb.b.ins().iadd(at.yb, po);
    // Input column origin of the chunk: x[.., .., .., ox0·sx].
    let xo = kb.b.ins().imul_imm_s(ox0, (g.sx.0 * 4) as i64);
    let xcol = kb.b.ins().iadd(at.xb, xo);
    // The zero row at the same column origin: in-bounds offsets from it stay inside it.
    let zcol = kb.b.ins().iadd(at.zrow, xo);
    let c = CDst {
        base: cbase,
        rs: ohw * 4,
        epi: at.epi,
    };
    let zero_i = kb.iconst(0);
    let buf = at.buf;
    let taps = g.taps() as i64;
    let panel_bytes = |kc: usize| (kc * sh.nr() * 4) as i64;
    let mut hook = |kb: &mut Kb, k0: Value, kc: usize| -> Result<(), CodegenError> {
        // One im2col function per packing geometry, whatever the k block (its channels and
        // panel stride are arguments) and shared by every conv of that geometry.
        let taps_v = kb.iconst(taps);
        let c0 = kb.b.ins().udiv(k0, taps_v);
        let nch = kb.iconst(kc as i64 / taps);
        let pb = kb.iconst(panel_bytes(kc));
        kb.call_helper("im2col", &[c0, nch, pb, oy0, xcol, zcol, buf], |kb, p| {
            im2col(kb, g, plan, run, p)
        })
    };
    emit_tile(
        kb,
        &geo,
        ASrc::Panels(at.wb),
        BSrc::Block(buf),
        c,
        at.mb,
        zero_i,
        &mut hook,
    )
}

/// The body of an im2col helper: packs the chunk's im2col rows of input channels `c0..c0 + nch`
/// (each × every tap) into NR-column panels at `buf` (panel `p` at `p·panel_bytes`, row `k` at
/// `k·NR·4` within it). Chunk column `r·width + j` is output position `(oy0 + r, ox0 + j)`;
/// out-of-bounds taps and the padding columns of the last panel are zero. `xcol`: the chunk's input
/// column origin; `zrow`: a zeroed input row at the same origin, which rows outside the image read.
/// `p` holds the helper's parameters `[c0, nch, panel_bytes, oy0, xcol, zrow, buf]`.
fn im2col(kb: &mut Kb, g: &G2, plan: &Plan, run: &Run, p: &[Value]) -> Result<(), CodegenError> {
    let &[c0v, nch, panel_bytes, oy0, xcol, zrow, buf] = p else {
        return Err(CodegenError::Graph {
            msg: format!("im2col helper has {} parameters, not 7", p.len()),
        });
    };
    let v = V {
        lanes: plan.pack.lanes,
    };
    let lanes = v.lanes;
    let nr = plan.sh.nr();
    let taps = g.taps();
    let (width, sig) = (run.width, &run.sig);
    let (sy, dy, py) = g.sy;
    let (sx, dx, px) = g.sx;
    let cols = run.rows * width;
    let padded = cols.next_multiple_of(nr);
    // Byte offsets of the panels (`p·panel_bytes`), computed once.
    let mut poff = vec![None];
    for p in 1..padded / nr {
        poff.push(Some(kb.b.ins().imul_imm_s(panel_bytes, p as i64)));
    }
    // Address and offset of chunk column `col` in k row `krow` of the panels at `base`.
    let at = |kb: &mut Kb, base: Value, col: usize, krow: i64| -> (Value, i64) {
        let addr = match poff[col / nr] {
            Some(o) => kb.b.ins().iadd(base, o),
            None => base,
        };
        (addr, krow + ((col % nr) * 4) as i64)
    };
    // Consecutive columns from `col` (at most `max`) that one vector store covers.
    let group = |col: usize, max: usize| lanes.min(max).min(nr - col % nr);
    let plane = (g.h * g.w * 4) as i64;
    let c1v = kb.b.ins().iadd(c0v, nch);
    kb.for_range(c0v, c1v, 1, |kb, c| {
        let xo = kb.b.ins().imul_imm_s(c, plane);
        let xc = kb.b.ins().iadd(xcol, xo);
        let rel = kb.b.ins().isub(c, c0v);
        let dofs = kb.b.ins().imul_imm_s(rel, (taps * nr * 4) as i64);
        let dst = kb.b.ins().iadd(buf, dofs);
        for r in 0..run.rows {
            let oy = kb.b.ins().iadd_imm_s(oy0, r as i64);
            for ky in 0..g.kh {
                // Input row iy = oy·sy + ky·dy − py; out of range → zero rows.
                let base_iy = kb.b.ins().imul_imm_s(oy, sy as i64);
                let iy = kb.b.ins().iadd_imm_s(base_iy, (ky * dy) as i64 - py as i64);
                let ok =
                    kb.b.ins()
                        .icmp_imm_s(IntCC::UnsignedLessThan, iy, g.h as i64);
                let ro = kb.b.ins().imul_imm_s(iy, (g.w * 4) as i64);
                let real = kb.b.ins().iadd(xc, ro);
                let row = kb.b.ins().select(ok, real, zrow);
                let krow0 = (ky * g.kw * nr * 4) as i64;
                let (jl, jr) = interior(sig, r * width, width, lanes);
                if g.kw > 1 && jr >= jl + 2 * lanes {
                    // Columns jl..jr read inside the row for every kernel column: one copy of
                    // their code, looped over kx at run time (source and destination move by dx
                    // and by one panel row per kx); the edges are written per kx below.
                    let zero = kb.iconst(0);
                    let end = kb.iconst(g.kw as i64);
                    kb.for_range(zero, end, 1, |kb, kx| {
                        let so = kb.b.ins().imul_imm_s(kx, (dx * 4) as i64);
                        let rowk = kb.b.ins().iadd(row, so);
                        let doff = kb.b.ins().imul_imm_s(kx, (nr * 4) as i64);
                        let dstk = kb.b.ins().iadd(dst, doff);
                        let cols = Cols {
                            nr,
                            r,
                            width,
                            span: (jl, jr),
                            krow: krow0,
                            x0: -(px as i64),
                        };
                        copy_columns(kb, &v, &cols, (rowk, dstk), &sig[0], &at, sx)
                    })?;
                }
                let spans: &[(usize, usize)] = if g.kw > 1 && jr >= jl + 2 * lanes {
                    &[(0, jl), (jr, width)]
                } else {
                    &[(0, width)]
                };
                for (kx, sig_x) in sig.iter().enumerate() {
                    for &span in spans {
                        let cols = Cols {
                            nr,
                            r,
                            width,
                            span,
                            krow: krow0 + (kx * nr * 4) as i64,
                            x0: (kx * dx) as i64 - px as i64,
                        };
                        copy_columns(kb, &v, &cols, (row, dst), sig_x, &at, sx)?;
                    }
                }
            }
        }
        // The last panel's columns past the chunk are zero.
        if cols < padded {
            let z = v.zero(kb);
            for t in 0..taps {
                let krow = (t * nr * 4) as i64;
                let mut col = cols;
                while col < padded {
                    let len = group(col, padded - col);
                    let (d, off) = at(kb, dst, col, krow);
                    v.store(kb, z, d, off, len)?;
                    col += len;
                }
            }
        }
        Ok(())
    })
}

/// The columns `[jl, jr)` of a chunk row whose every kernel column reads inside the input row
/// (`sig[kx][j]` for all kx), trimmed to whole vector groups (chunk row starting at column `c0`):
/// the longest such run. `(0, 0)` when there is none.
fn interior(sig: &[Vec<bool>], c0: usize, width: usize, lanes: usize) -> (usize, usize) {
    let all = |j: usize| sig.iter().all(|s| s.get(j).copied().unwrap_or(false));
    let (mut best, mut j) = ((0, 0), 0);
    while j < width {
        if !all(j) {
            j += 1;
            continue;
        }
        let start = j;
        while j < width && all(j) {
            j += 1;
        }
        if j - start > best.1 - best.0 {
            best = (start, j);
        }
    }
    let (mut jl, mut jr) = best;
    jl += (lanes - (c0 + jl) % lanes) % lanes;
    if jr < width {
        jr = jr.saturating_sub((c0 + jr) % lanes);
    }
    if jr <= jl { (0, 0) } else { (jl, jr) }
}

/// One kernel column's share of an im2col row: chunk row `r`'s columns in `span`, from input
/// columns `x0 + j·sx` of `row` to k row `krow` of the panels at `dst`.
struct Cols {
    /// Panel width.
    nr: usize,
    /// Chunk row.
    r: usize,
    /// Columns of the chunk row.
    width: usize,
    /// The columns `[j0, j1)` to copy.
    span: (usize, usize),
    /// Byte offset of the k row within a panel.
    krow: i64,
    /// Input column (relative to the chunk's origin) of chunk column 0.
    x0: i64,
}

/// Where chunk column `col` of k row `krow` of the panels at a base lies: `(address, offset)`.
type PanelAt<'a> = dyn Fn(&mut Kb, Value, usize, i64) -> (Value, i64) + 'a;

/// Copies [`Cols`] `c` (`live[j]`: column j reads inside the input row; the others are zero) in
/// vector groups: a full live group is one load (stride 1), two overlapping loads and a shuffle
/// (stride 2) or a gather; a partly live group goes element by element. `at(kb, dst, col, krow)`:
/// the address and offset of chunk column `col` in k row `krow` of the panels at `dst`.
fn copy_columns(
    kb: &mut Kb,
    v: &V,
    c: &Cols,
    (row, dst): (Value, Value),
    live: &[bool],
    at: &PanelAt,
    sx: usize,
) -> Result<(), CodegenError> {
    let lanes = v.lanes;
    let xi = |j: usize| c.x0 + (j * sx) as i64;
    let (mut j, j1) = c.span;
    while j < j1 {
        let col = c.r * c.width + j;
        let len = lanes.min(j1 - j).min(c.nr - col % c.nr);
        let (dst, off) = at(kb, dst, col, c.krow);
        let live = &live[j..j + len];
        if len == lanes && live.iter().all(|&b| b) {
            // Stride 2 (lanes 4): x[0..4] and x[3..7], lanes 0, 2, 5, 7 — two loads and one
            // shuffle, reading nothing past x6.
            let val = if sx == 2 && lanes == 4 {
                let o = xi(j) * 4;
                let a = v.load(kb, row, o, lanes, false)?;
                let b = v.load(kb, row, o + 12, lanes, false)?;
                shuffle4(kb, a, b, [0, 2, 5, 7])
            } else {
                v.gather(kb, row, xi(j) * 4, (sx * 4) as i64, lanes, false)?
            };
            v.store(kb, val, dst, off, lanes)?;
        } else if live.iter().any(|&b| b) {
            let z = kb.b.ins().f32const(0.0);
            for (l, &ok) in live.iter().enumerate() {
                let s = if ok {
                    kb.b.ins().load(
                        cranelift_codegen::ir::types::F32,
                        crate::emit::data_flags(),
                        row,
                        (xi(j + l) * 4) as i32,
                    )
                } else {
                    z
                };
                kb.b.ins().store(
                    crate::emit::data_flags(),
                    s,
                    dst,
                    (off + 4 * l as i64) as i32,
                );
            }
        } else {
            let z = v.zero(kb);
            v.store(kb, z, dst, off, len)?;
        }
        j += len;
    }
    Ok(())
}
