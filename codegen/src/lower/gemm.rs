//! Matrix products: `matmul` (batched, broadcast batch dims, 1-D operands), `gemm` (alpha, beta,
//! transposes, broadcast C) and non-depthwise `conv` lowered to GEMM (1×1 directly on NCHW, general
//! kernels through a per-tile im2col into a stack slot, grouped per group).
//!
//! Design: one register-blocked micro-kernel ([`micro`], 6×8 with twelve f32x4 accumulators where
//! 128-bit vectors lower, 4×4 scalar otherwise) inside a static loop nest ([`emit_tile`]): for each
//! k block (≤ [`KC`] steps), for each `NR`-column panel of the tile, for each `MR`-row block. Constant
//! B operands (weights) are packed at compile time into zero-padded `NR`-column panels (k-major);
//! dynamic B is read in place (contiguous rows) or packed per panel into a stack slot (transposed B).
//! Convolution weights are the A operand, packed into `MR`-row panels (k-major). The epilogue of the
//! last k block applies alpha and adds bias / C. Tiles are `MC × NC` output blocks per batch matrix;
//! each tile sums k in a fixed order, so results do not depend on the thread count.

mod conv;
pub(crate) mod micro;
pub(crate) mod tile;

use carve_ir::DType;
use carve_ir::Op;
use carve_ir::ops::conv::ConvOp;
use carve_ir::ops::linalg::{Gemm, LinalgOp};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, StackSlotData, StackSlotKind, Value, types};

use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::{Lowering, NodeInfo, Weights};
use crate::x86::gemm::GemmTile;

pub use micro::{Addend, Epi, Post, Shape, Strided};

/// Most k steps per block (the B panel `KC × NR` stays in L1, the A block `MC × KC` in L2).
pub const KC: usize = 256;
/// Fewest rows of a matmul with a run-time B that runs on a machine-code tile.
const RUNTIME_B_MIN_ROWS: usize = 16;
/// Most rows of a tile.
const MC_MAX: usize = 96;
/// Most columns of a tile.
const NC_MAX: usize = 256;
/// Fewest tiles of a product on a machine-code tile that is too large for one ([`parallel_blocks`]).
const MIN_TILES: usize = 8;
/// Below this many flops per batch matrix a tile covers the whole matrix.
const SMALL_FLOPS: usize = 1 << 21;

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    lower_with(info, w, Post::NONE)
}

/// Select phase with pointwise epilogue steps `post` applied in every tile's registers before the
/// store (the product of a fused op: for `matmul`, a present input 2 is then a `[N]` bias added along
/// the last dim in the tile, as a fused op's leading `bias` step).
pub(crate) fn lower_with(
    info: &NodeInfo,
    w: &mut Weights,
    post: Post,
) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Linalg(LinalgOp::MatMul(_)) => lower_matmul(info, w, post),
        Op::Linalg(LinalgOp::Gemm(g)) if post == Post::NONE => lower_gemm(g, info, w),
        Op::Conv(ConvOp::Conv(c)) => conv::lower(c, info, w, post),
        _ => Ok(Lowering::Fallback(
            "no native kernel for this op yet".into(),
        )),
    }
}

/// Static blocking of one (batch of) `m × k × n` product.
#[derive(Debug, Clone)]
pub(crate) struct Geo {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub sh: Shape,
    /// Tile rows (multiple of MR).
    pub mc: usize,
    /// Tile columns (multiple of NR).
    pub nc: usize,
    /// Tiles along M and N.
    pub mbs: usize,
    pub nbs: usize,
    /// `(k0, kc)` blocks.
    pub kblocks: Vec<(usize, usize)>,
    /// The x86 machine-code tile every micro-kernel block calls (`sh` is its shape), or `None` for
    /// the inline Cranelift micro-kernel.
    pub x86: Option<GemmTile>,
    /// The shape Cranelift code packs run-time B panels with: `sh` itself, or for a machine-code
    /// tile the same panel width `NR` in Cranelift's vectors (128-bit on x86_64).
    pub pack: Shape,
}

/// Splits `total` into near-equal blocks of at most `max`, each a multiple of `unit` (except the
/// last): `(block, count)`.
pub(crate) fn split(total: usize, max: usize, unit: usize) -> (usize, usize) {
    let max = max.max(unit);
    let blocks = total.div_ceil(max).max(1);
    let size = total.div_ceil(blocks).next_multiple_of(unit).max(unit);
    (size, total.div_ceil(size).max(1))
}

/// Tiles are the unit of thread parallelism: the largest `(mc, nc)` within `max` that cut an `m × n`
/// product into at least [`MIN_TILES`] tiles of `unit = (mr, nr)` multiples, narrowing columns, then
/// rows, down to two register tiles each way (a transformer's 128 × 384 × 1536 product is one cache
/// block, so one thread; re-packing A per column tile costs 1/nc of the work).
pub(crate) fn parallel_blocks(
    m: usize,
    n: usize,
    max: (usize, usize),
    unit: (usize, usize),
) -> (usize, usize) {
    let (mut mc, mut nc) = max;
    let count = |mc: usize, nc: usize| split(m, mc, unit.0).1 * split(n, nc, unit.1).1;
    while count(mc, nc) < MIN_TILES && nc >= 4 * unit.1 {
        nc /= 2;
    }
    while count(mc, nc) < MIN_TILES && mc >= 4 * unit.0 {
        mc /= 2;
    }
    (mc, nc)
}

/// Near-equal k blocks of at most `max` (multiples of 4).
fn kblocks(k: usize, max: usize) -> Vec<(usize, usize)> {
    let (kc, nb) = split(k, max, 4);
    (0..nb).map(|i| (i * kc, kc.min(k - i * kc))).collect()
}

impl Geo {
    /// Blocking for an `m × k × n` product.
    pub fn new(m: usize, n: usize, k: usize, sh: Shape) -> Geo {
        Geo::blocked(m, n, k, sh, (KC, MC_MAX, NC_MAX))
    }

    /// Blocking for an `m × k × n` product on machine-code tile `t` (its cache blocking).
    pub fn tiled(m: usize, n: usize, k: usize, t: GemmTile) -> Geo {
        let sh = Shape {
            mr: t.mr,
            lanes: t.lanes(),
            nv: t.nv,
        };
        let bl = t.blocking();
        let mut max = (bl.kc, bl.mc, bl.nc);
        if 2 * m * n * k >= SMALL_FLOPS {
            (max.1, max.2) = parallel_blocks(m, n, (max.1, max.2), (sh.mr, sh.nr()));
        }
        Geo {
            x86: Some(t),
            pack: tile::pack_shape(t),
            ..Geo::blocked(m, n, k, sh, max)
        }
    }

    /// Blocking with at most `(kc, mc, nc)` per k block and tile.
    fn blocked(m: usize, n: usize, k: usize, sh: Shape, max: (usize, usize, usize)) -> Geo {
        let small = 2 * m * n * k < SMALL_FLOPS;
        let (mc, mbs) = if small {
            (m.next_multiple_of(sh.mr), 1)
        } else {
            split(m, max.1, sh.mr)
        };
        let (nc, nbs) = if small {
            (n.next_multiple_of(sh.nr()), 1)
        } else {
            split(n, max.2, sh.nr())
        };
        Geo {
            m,
            n,
            k,
            sh,
            mc,
            nc,
            mbs,
            nbs,
            kblocks: kblocks(k, max.0),
            x86: None,
            pack: sh,
        }
    }

    /// Tiles per batch matrix.
    pub fn tiles(&self) -> usize {
        self.mbs * self.nbs
    }
}

/// Where A comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ASrc {
    /// Strided (row-major, transposed or a vector).
    Strided(Strided),
    /// Packed in MR-row panels, k-major (panel `p` at `p·MR·K` floats, `mr` floats per k).
    Panels(Value),
    /// Strided, packed per tile and k block into MR-row panels at the buffer (panel `p - first panel
    /// of the tile` at `p·MR·kc`).
    Pack(Strided, Value),
}

/// Where B comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BSrc {
    /// Packed at compile time in zero-padded NR-column panels, k-major (panel `p` at `p·K·NR`).
    Panels(Value),
    /// Read in place (`cs` = 4).
    Direct(Strided),
    /// Packed per panel at run time into the stack buffer at the second value.
    Pack(Strided, Value),
    /// Packed by the k-block hook into panels of the current k block (panel `p - first panel of the
    /// tile` at `p·kc·NR`).
    Block(Value),
}

/// The output block of a tile and its epilogue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CDst {
    /// Element (0, 0) of the batch matrix.
    pub base: Value,
    /// Row stride in bytes.
    pub rs: i64,
    /// Epilogue (addend based at element (0, 0)).
    pub epi: Epi,
}

/// A k-block hook: called before each k block with `(k0, kc)` (e.g. to pack an im2col block); `k0` is
/// a run-time value (blocks of equal depth between the first and the last share one loop).
pub(crate) type Hook<'h> = &'h mut dyn FnMut(&mut Kb, Value, usize) -> Result<(), CodegenError>;

/// Emits `then` guarded by `cond` (unconditionally when `None`).
pub(crate) fn guarded(
    kb: &mut Kb,
    cond: Option<Value>,
    then: impl FnOnce(&mut Kb) -> Result<(), CodegenError>,
) -> Result<(), CodegenError> {
    let Some(c) = cond else {
        return then(kb);
    };
    let t = kb.b.create_block();
    let done = kb.b.create_block();
    kb.b.ins().brif(c, t, &[], done, &[]);
    kb.b.switch_to_block(t);
    then(kb)?;
    kb.b.ins().jump(done, &[]);
    kb.b.switch_to_block(done);
    Ok(())
}

struct TileCx<'g> {
    g: &'g Geo,
    a: ASrc,
    b: BSrc,
    c: CDst,
    ip0: Value,
    ip1: Value,
    jp0: Value,
    jp1: Value,
    last_mb: Option<Value>,
    last_nb: Option<Value>,
}

impl TileCx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn micro(
        &self,
        kb: &mut Kb,
        kblk: KBlock,
        ip: Value,
        mr: usize,
        jp: Value,
        nw: usize,
        bsrc: (Strided, bool),
    ) -> Result<(), CodegenError> {
        let g = self.g;
        let KBlock { k0, kc, .. } = kblk;
        let (mrf, nr) = (g.sh.mr as i64, g.sh.nr() as i64);
        let i0 = kb.b.ins().imul_imm_s(ip, mrf);
        let j0 = kb.b.ins().imul_imm_s(jp, nr);
        let a = match self.a {
            ASrc::Strided(s) => {
                let o = kb.b.ins().imul_imm_s(i0, s.rs);
                let base = kb.b.ins().iadd(s.base, o);
                let base = kb.offset(base, k0, s.cs);
                Strided { base, ..s }
            }
            ASrc::Panels(p) => {
                let o = kb.b.ins().imul_imm_s(ip, mrf * g.k as i64 * 4);
                let base = kb.b.ins().iadd(p, o);
                let base = kb.offset(base, k0, (mr * 4) as i64);
                Strided {
                    base,
                    rs: 4,
                    cs: mr as i64 * 4,
                    ro: true,
                }
            }
            ASrc::Pack(_, buf) => {
                let rel = kb.b.ins().isub(ip, self.ip0);
                let o = kb.b.ins().imul_imm_s(rel, mrf * kc as i64 * 4);
                Strided {
                    base: kb.b.ins().iadd(buf, o),
                    rs: 4,
                    cs: mr as i64 * 4,
                    ro: false,
                }
            }
        };
        let co = kb.b.ins().imul_imm_s(i0, self.c.rs);
        let c = kb.b.ins().iadd(self.c.base, co);
        let jo = kb.b.ins().imul_imm_s(j0, 4);
        let c = kb.b.ins().iadd(c, jo);
        let epi = if kblk.last {
            let addend = match self.c.epi.addend {
                Some(ad) => {
                    let r = kb.b.ins().imul_imm_s(i0, ad.rs);
                    let s = kb.b.ins().imul_imm_s(j0, ad.cs);
                    let base = kb.b.ins().iadd(ad.base, r);
                    let base = kb.b.ins().iadd(base, s);
                    Some(Addend { base, ..ad })
                }
                None => None,
            };
            Some(Epi {
                alpha: self.c.epi.alpha,
                addend,
                residual: self.c.epi.residual,
                post: self.c.epi.post,
            })
        } else {
            None
        };
        if let Some(t) = g.x86 {
            return tile::call(kb, t, mr, nw, kc, a, bsrc.0, c, self.c.rs, !kblk.first, epi);
        }
        micro::emit(
            kb,
            g.sh,
            &micro::Micro {
                mr,
                nw,
                kc,
                a,
                b: bsrc.0,
                b_padded: bsrc.1,
                c,
                c_rs: self.c.rs,
                accumulate: !kblk.first,
                epi,
            },
        )
    }

    /// Packs the tile's rows of A for k block `(k0, kc)` into MR-row panels at `buf`.
    fn pack_a(
        &self,
        kb: &mut Kb,
        src: Strided,
        buf: Value,
        k0: Value,
        kc: usize,
    ) -> Result<(), CodegenError> {
        let g = self.g;
        let mr = g.sh.mr;
        let one = |kb: &mut Kb, ip: Value, rows: usize| -> Result<(), CodegenError> {
            let i0 = kb.b.ins().imul_imm_s(ip, mr as i64);
            let o = kb.b.ins().imul_imm_s(i0, src.rs);
            let base = kb.b.ins().iadd(src.base, o);
            let base = kb.offset(base, k0, src.cs);
            let rel = kb.b.ins().isub(ip, self.ip0);
            let d = kb.b.ins().imul_imm_s(rel, (mr * kc * 4) as i64);
            let dst = kb.b.ins().iadd(buf, d);
            micro::pack_a_panel(kb, Strided { base, ..src }, rows, kc, dst)
        };
        let (ip0, ip1) = (self.ip0, self.ip1);
        kb.for_range(ip0, ip1, 1, |kb, ip| one(kb, ip, mr))?;
        let mr_e = g.m % mr;
        if mr_e > 0 {
            guarded(kb, self.last_mb, |kb| {
                let ip = kb.iconst((g.m / mr) as i64);
                one(kb, ip, mr_e)
            })?;
        }
        Ok(())
    }

    /// One NR-column panel (index `jp`, `nw` valid columns) of the tile for k block `(k0, kc)`.
    fn cols(&self, kb: &mut Kb, kblk: KBlock, jp: Value, nw: usize) -> Result<(), CodegenError> {
        let g = self.g;
        let KBlock { k0, kc, .. } = kblk;
        let nr = g.sh.nr() as i64;
        let bsrc = match self.b {
            BSrc::Panels(p) => {
                let o = kb.b.ins().imul_imm_s(jp, g.k as i64 * nr * 4);
                let base = kb.b.ins().iadd(p, o);
                let base = kb.offset(base, k0, nr * 4);
                (
                    Strided {
                        base,
                        rs: nr * 4,
                        cs: 4,
                        ro: true,
                    },
                    true,
                )
            }
            BSrc::Direct(s) => {
                let o = kb.b.ins().imul_imm_s(jp, nr * s.cs);
                let base = kb.b.ins().iadd(s.base, o);
                let base = kb.offset(base, k0, s.rs);
                (Strided { base, ..s }, false)
            }
            BSrc::Pack(s, dst) => {
                let o = kb.b.ins().imul_imm_s(jp, nr * s.cs);
                let base = kb.b.ins().iadd(s.base, o);
                let base = kb.offset(base, k0, s.rs);
                micro::pack_b_panel(kb, g.pack, Strided { base, ..s }, kc, nw, dst)?;
                (
                    Strided {
                        base: dst,
                        rs: nr * 4,
                        cs: 4,
                        ro: false,
                    },
                    true,
                )
            }
            BSrc::Block(p) => {
                let rel = kb.b.ins().isub(jp, self.jp0);
                let o = kb.b.ins().imul_imm_s(rel, kc as i64 * nr * 4);
                let base = kb.b.ins().iadd(p, o);
                (
                    Strided {
                        base,
                        rs: nr * 4,
                        cs: 4,
                        ro: false,
                    },
                    true,
                )
            }
        };
        let (ip0, ip1) = (self.ip0, self.ip1);
        kb.for_range(ip0, ip1, 1, |kb, ip| {
            self.micro(kb, kblk, ip, g.sh.mr, jp, nw, bsrc)
        })?;
        let mr_e = g.m % g.sh.mr;
        if mr_e > 0 {
            guarded(kb, self.last_mb, |kb| {
                let ip = kb.iconst((g.m / g.sh.mr) as i64);
                self.micro(kb, kblk, ip, mr_e, jp, nw, bsrc)
            })?;
        }
        Ok(())
    }

    /// All of the tile's work for one k block: the hook, A packing, every column panel.
    fn block(&self, kb: &mut Kb, hook: Hook, kblk: KBlock) -> Result<(), CodegenError> {
        let g = self.g;
        let nr = g.sh.nr();
        hook(kb, kblk.k0, kblk.kc)?;
        if let ASrc::Pack(src, buf) = self.a {
            self.pack_a(kb, src, buf, kblk.k0, kblk.kc)?;
        }
        kb.for_range(self.jp0, self.jp1, 1, |kb, jp| self.cols(kb, kblk, jp, nr))?;
        let nr_e = g.n % nr;
        if nr_e > 0 {
            guarded(kb, self.last_nb, |kb| {
                let jp = kb.iconst((g.n / nr) as i64);
                self.cols(kb, kblk, jp, nr_e)
            })?;
        }
        Ok(())
    }
}

/// One k block as the tile code sees it: its start (a run-time value), depth, and whether it is the
/// first (C starts from zero) or the last (the epilogue runs).
#[derive(Debug, Clone, Copy)]
struct KBlock {
    k0: Value,
    kc: usize,
    first: bool,
    last: bool,
}

/// Emits the code of tile `(mb, nb)` of one batch matrix.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_tile(
    kb: &mut Kb,
    g: &Geo,
    a: ASrc,
    b: BSrc,
    c: CDst,
    mb: Value,
    nb: Value,
    hook: Hook,
) -> Result<(), CodegenError> {
    let (mr, nr) = (g.sh.mr, g.sh.nr());
    let rows_of = |kb: &mut Kb, idx: Value, count: usize, per: usize, total: usize, unit: usize| {
        let std = (per / unit) as i64;
        let last = ((total - (count - 1) * per) / unit) as i64;
        if count == 1 {
            (kb.iconst(last), None)
        } else {
            let is_last = kb.b.ins().icmp_imm_s(IntCC::Equal, idx, (count - 1) as i64);
            let s = kb.iconst(std);
            let l = kb.iconst(last);
            (kb.b.ins().select(is_last, l, s), Some(is_last))
        }
    };
    let (ipn, last_mb) = rows_of(kb, mb, g.mbs, g.mc, g.m, mr);
    let (jpn, last_nb) = rows_of(kb, nb, g.nbs, g.nc, g.n, nr);
    let ip0 = kb.b.ins().imul_imm_s(mb, (g.mc / mr) as i64);
    let ip1 = kb.b.ins().iadd(ip0, ipn);
    let jp0 = kb.b.ins().imul_imm_s(nb, (g.nc / nr) as i64);
    let jp1 = kb.b.ins().iadd(jp0, jpn);
    // Dynamic operands reused across the tile are packed: B panels when several row blocks use
    // them, A blocks when several column panels do (this also avoids cache-set aliasing of
    // large power-of-two row strides).
    let kc_max = g.kblocks.iter().map(|b| b.1).max().unwrap_or(0);
    // A machine-code tile always reads zero-padded panels (its loads are full vectors).
    let b = match b {
        BSrc::Direct(s) if g.mc >= 2 * mr || g.x86.is_some() => {
            BSrc::Pack(s, stack_buffer(kb, kc_max * nr * 4)?)
        }
        other => other,
    };
    // Machine-code tiles too: reading A in place was up to 10% faster at 1024³ in some processes and
    // 25% slower in others (the same binary, differing only in where its buffers landed), packed
    // A measured 143–155 GFLOP/s in both.
    let a = match a {
        ASrc::Strided(s) if g.nc >= 2 * nr => ASrc::Pack(s, stack_buffer(kb, g.mc * kc_max * 4)?),
        other => other,
    };
    let cx = TileCx {
        g,
        a,
        b,
        c,
        ip0,
        ip1,
        jp0,
        jp1,
        last_mb,
        last_nb,
    };
    // The first and last k blocks are emitted on their own (C starts at zero / the epilogue runs);
    // the blocks between them, all of one depth, share one run-time loop, so a deep product is three
    // copies of the tile code rather than one per block.
    let kbl = &g.kblocks;
    let nb = kbl.len();
    let kc0 = kbl.first().map_or(0, |b| b.1);
    let uniform = nb >= 3 && (1..nb - 1).all(|i| kbl[i] == (i * kc0, kc0));
    for (i, &(k0, kc)) in kbl.iter().enumerate() {
        let (first, last) = (i == 0, i + 1 == nb);
        if uniform && !first && !last {
            if i == 1 {
                let lo = kb.iconst(1);
                let hi = kb.iconst((nb - 1) as i64);
                kb.for_range(lo, hi, 1, |kb, bi| {
                    let k0 = kb.b.ins().imul_imm_s(bi, kc0 as i64);
                    let kblk = KBlock {
                        k0,
                        kc: kc0,
                        first: false,
                        last: false,
                    };
                    cx.block(kb, &mut *hook, kblk)
                })?;
            }
            continue;
        }
        let k0 = kb.iconst(k0 as i64);
        cx.block(
            kb,
            &mut *hook,
            KBlock {
                k0,
                kc,
                first,
                last,
            },
        )?;
    }
    Ok(())
}

/// A stack buffer of `bytes` bytes (16-byte aligned); returns its address.
pub(crate) fn stack_buffer(kb: &mut Kb, bytes: usize) -> Result<Value, CodegenError> {
    let size = u32::try_from(bytes).map_err(|_| CodegenError::Graph {
        msg: format!("stack buffer of {bytes} bytes is too large"),
    })?;
    let slot =
        kb.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 4));
    Ok(kb.b.ins().stack_addr(types::I64, slot, 0))
}

/// Packs a `k × n` matrix (element `(r, c)` at `v[r·rs + c·cs]`) into zero-padded NR-column panels.
pub(crate) fn pack_b(v: &[f32], k: usize, n: usize, rs: usize, cs: usize, nr: usize) -> Vec<f32> {
    let panels = n.div_ceil(nr);
    let mut out = vec![0.0f32; panels * k * nr];
    for p in 0..panels {
        for r in 0..k {
            for jj in 0..nr {
                let c = p * nr + jj;
                if c < n {
                    out[(p * k + r) * nr + jj] = v[r * rs + c * cs];
                }
            }
        }
    }
    out
}

/// Splits tile index `t` into `(batch, mb, nb)`.
pub(crate) fn split_tile(kb: &mut Kb, t: Value, g: &Geo) -> (Value, Value, Value) {
    let nbs = kb.iconst(g.nbs as i64);
    let mbs = kb.iconst(g.mbs as i64);
    let nb = kb.b.ins().urem(t, nbs);
    let r = kb.b.ins().udiv(t, nbs);
    let mb = kb.b.ins().urem(r, mbs);
    let bt = kb.b.ins().udiv(r, mbs);
    (bt, mb, nb)
}

/// Byte offset of batch `bt` (row-major over `shape`) in an operand with per-dim byte `strides`
/// (0 for broadcast dims).
pub(crate) fn batch_offset(kb: &mut Kb, bt: Value, shape: &[usize], strides: &[i64]) -> Value {
    let mut off = kb.iconst(0);
    let mut rem = bt;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d == 1 {
            continue;
        }
        let dv = kb.iconst(d as i64);
        let idx = kb.b.ins().urem(rem, dv);
        rem = kb.b.ins().udiv(rem, dv);
        if s != 0 {
            let o = kb.b.ins().imul_imm_s(idx, s);
            off = kb.b.ins().iadd(off, o);
        }
    }
    off
}

fn f32_only(info: &NodeInfo, inputs: &[usize]) -> Result<Option<Lowering>, CodegenError> {
    for &i in inputs {
        if info.has_input(i) && info.in_dtype(i)? != DType::F32 {
            return Ok(Some(Lowering::Fallback(format!(
                "native kernel is f32 only; input {i} is {}",
                info.in_dtype(i)?
            ))));
        }
    }
    if info.out_dtype(0)? != DType::F32 {
        return Ok(Some(Lowering::Fallback("native kernel is f32 only".into())));
    }
    Ok(None)
}

/// Row-major element strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Byte strides of `dims` broadcast to `out` (right-aligned, 0 where broadcast).
fn bcast_strides(dims: &[usize], out: &[usize], matrix: usize) -> Vec<i64> {
    let st = strides(dims);
    let off = out.len() - dims.len();
    (0..out.len())
        .map(|i| {
            if i < off || dims[i - off] == 1 {
                0
            } else {
                (st[i - off] * matrix * 4) as i64
            }
        })
        .collect()
}

fn lower_matmul(info: &NodeInfo, w: &mut Weights, post: Post) -> Result<Lowering, CodegenError> {
    if let Some(f) = f32_only(info, &[0, 1])? {
        return Ok(f);
    }
    let has_bias = info.has_input(2);
    if has_bias {
        if let Some(f) = f32_only(info, &[2])? {
            return Ok(f);
        }
        let n = info.out_shape(0)?.last().copied().unwrap_or(1);
        let bs = info.in_shape(2)?;
        if bs.iter().product::<usize>() != n {
            return Ok(Lowering::Fallback(format!(
                "matmul bias of shape {bs:?} is not a vector along the last dim ({n})"
            )));
        }
    }
    let (sa, sb) = (info.in_shape(0)?, info.in_shape(1)?);
    if sa.is_empty() || sb.is_empty() {
        return Err(info.err("matmul operands must have rank ≥ 1"));
    }
    let a2 = if sa.len() == 1 {
        vec![1, sa[0]]
    } else {
        sa.clone()
    };
    let b2 = if sb.len() == 1 {
        vec![sb[0], 1]
    } else {
        sb.clone()
    };
    let (ra, rb) = (a2.len(), b2.len());
    let (m, k, kb_, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 2], b2[rb - 1]);
    if k != kb_ {
        return Err(info.err(format!("contracted dims differ: {sa:?} × {sb:?}")));
    }
    let (ab, bb) = (&a2[..ra - 2], &b2[..rb - 2]);
    let rank = ab.len().max(bb.len());
    let mut batch = vec![1usize; rank];
    for (i, slot) in batch.iter_mut().enumerate() {
        let da = (i + ab.len()).checked_sub(rank).map_or(1, |j| ab[j]);
        let db = (i + bb.len()).checked_sub(rank).map_or(1, |j| bb[j]);
        *slot = if da == 1 { db } else { da };
        if da != db && da != 1 && db != 1 {
            return Err(info.err(format!("batch dims do not broadcast: {sa:?} × {sb:?}")));
        }
    }
    let batches: usize = batch.iter().product();
    let out_numel: usize = info.out_shape(0)?.iter().product();
    if out_numel != batches * m * n {
        return Err(info.err("output shape does not match the operands"));
    }
    if out_numel == 0 {
        return Ok(Lowering::Fallback("empty matmul".into()));
    }
    let b_const = info.const_f32s(1);
    let b_batches: usize = bb.iter().product();
    let a_batches: usize = ab.iter().product();
    // B shared by all batches and A's batches are the output's: one product with A's rows stacked.
    let fold = b_batches == 1 && a_batches == batches;
    let (gm, gb) = if fold { (batches * m, 1) } else { (m, batches) };
    // A run-time B reaches a tile packed per k block and column panel; that copy pays off once
    // a few row blocks share it (below that the Cranelift kernel reads B in place).
    let b_panels = b_const.is_some() || gm >= RUNTIME_B_MIN_ROWS;
    let x86 = tile::choose(info.target, b_panels)
        .filter(|&t| tile::fits(t, (k as i64 * 4, 4), n as i64 * 4, 0));
    let geo = match x86 {
        Some(t) => {
            w.note_tile(t);
            Geo::tiled(gm, n, k, t)
        }
        None => Geo::new(gm, n, k, Shape::for_target(info.target)),
    };
    let sh = geo.sh;
    let a_strides = bcast_strides(ab, &batch, m * k);
    let b_strides = bcast_strides(bb, &batch, k * n);
    let packed = match b_const {
        Some(v) => {
            w.baked(info, 1);
            let mut all = Vec::new();
            for i in 0..b_batches {
                all.extend(pack_b(&v[i * k * n..(i + 1) * k * n], k, n, n, 1, sh.nr()));
            }
            Some((
                w.add_f32(&all),
                (n.div_ceil(sh.nr()) * k * sh.nr() * 4) as i64,
            ))
        }
        None => None,
    };
    let n_tiles = (gb * geo.tiles()) as u64;
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let a_in = kb.input(0)?;
                let b_in = match packed {
                    Some((wr, _)) => kb.weight(wr),
                    None => kb.input(1)?,
                };
                let out = kb.output(0)?;
                let bias = if has_bias { Some(kb.input(2)?) } else { None };
                let residual = micro::residual_delta(kb, post)?;
                kb.for_tiles(|kb, t| {
                    let (bt, mb, nb) = split_tile(kb, t, &geo);
                    let (a_off, b_off) = if fold {
                        (kb.iconst(0), kb.iconst(0))
                    } else {
                        let ao = batch_offset(kb, bt, &batch, &a_strides);
                        let bo = match packed {
                            // Packed B: one panel set per B batch matrix.
                            Some((_, per)) => {
                                let s: Vec<i64> = b_strides
                                    .iter()
                                    .map(|&x| x / (k * n * 4) as i64 * per)
                                    .collect();
                                batch_offset(kb, bt, &batch, &s)
                            }
                            None => batch_offset(kb, bt, &batch, &b_strides),
                        };
                        (ao, bo)
                    };
                    let a_base = kb.b.ins().iadd(a_in, a_off);
                    let b_base = kb.b.ins().iadd(b_in, b_off);
                    let c_off = kb.b.ins().imul_imm_s(bt, (m * n * 4) as i64);
                    let c_base = kb.b.ins().iadd(out, c_off);
                    let a = ASrc::Strided(Strided {
                        base: a_base,
                        rs: k as i64 * 4,
                        cs: 4,
                        ro: false,
                    });
                    let b = match packed {
                        Some(_) => BSrc::Panels(b_base),
                        None => BSrc::Direct(Strided {
                            base: b_base,
                            rs: n as i64 * 4,
                            cs: 4,
                            ro: false,
                        }),
                    };
                    let c = CDst {
                        base: c_base,
                        rs: n as i64 * 4,
                        epi: Epi {
                            alpha: 1.0,
                            // The bias: one row broadcast over every row of every batch matrix.
                            addend: bias.map(|base| Addend {
                                base,
                                rs: 0,
                                cs: 4,
                                scale: 1.0,
                                ro: false,
                            }),
                            residual,
                            post,
                        },
                    };
                    emit_tile(kb, &geo, a, b, c, mb, nb, &mut |_, _, _| Ok(()))
                })
            })
        }),
    })
}

fn lower_gemm(op: &Gemm, info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    if let Some(f) = f32_only(info, &[0, 1, 2])? {
        return Ok(f);
    }
    let (sa, sb) = (info.in_shape(0)?, info.in_shape(1)?);
    if sa.len() != 2 || sb.len() != 2 {
        return Err(info.err("gemm operands must be 2-D"));
    }
    let (m, k) = if op.trans_a {
        (sa[1], sa[0])
    } else {
        (sa[0], sa[1])
    };
    let (k2, n) = if op.trans_b {
        (sb[1], sb[0])
    } else {
        (sb[0], sb[1])
    };
    if k != k2 {
        return Err(info.err(format!("contracted dims differ: {sa:?} × {sb:?}")));
    }
    if m * n == 0 {
        return Ok(Lowering::Fallback("empty gemm".into()));
    }
    // C, broadcast to [m, n] (ignored when beta = 0, as the reference does).
    let c_shape = if info.has_input(2) && op.beta != 0.0 {
        let s = info.in_shape(2)?;
        if s.len() > 2 {
            return Err(info.err("C must have rank ≤ 2"));
        }
        let mut s2 = vec![1usize; 2 - s.len()];
        s2.extend(&s);
        if (s2[0] != 1 && s2[0] != m) || (s2[1] != 1 && s2[1] != n) {
            return Err(info.err(format!("C {s:?} does not broadcast to [{m}, {n}]")));
        }
        Some(s2)
    } else {
        None
    };
    let a_st = if op.trans_a {
        (4, m as i64 * 4)
    } else {
        (k as i64 * 4, 4)
    };
    let b_const = info.const_f32s(1);
    let c_rs = c_shape.as_ref().map_or(0, |cs| cs[1] as i64 * 4);
    let x86 = tile::choose(info.target, b_const.is_some())
        .filter(|&t| tile::fits(t, a_st, n as i64 * 4, c_rs));
    let geo = match x86 {
        Some(t) => {
            w.note_tile(t);
            Geo::tiled(m, n, k, t)
        }
        None => Geo::new(m, n, k, Shape::for_target(info.target)),
    };
    let sh = geo.sh;
    let (b_rs, b_cs) = if op.trans_b { (1, k) } else { (n, 1) };
    let packed = b_const.map(|v| {
        w.baked(info, 1);
        w.add_f32(&pack_b(&v, k, n, b_rs, b_cs, sh.nr()))
    });
    let (alpha, beta) = (op.alpha, op.beta);
    let n_tiles = geo.tiles() as u64;
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let a_in = kb.input(0)?;
                let b = match packed {
                    Some(wr) => BSrc::Panels(kb.weight(wr)),
                    None => {
                        let base = kb.input(1)?;
                        let s = Strided {
                            base,
                            rs: b_rs as i64 * 4,
                            cs: b_cs as i64 * 4,
                            ro: false,
                        };
                        if b_cs == 1 {
                            BSrc::Direct(s)
                        } else {
                            let buf = stack_buffer(kb, KC * sh.nr() * 4)?;
                            BSrc::Pack(s, buf)
                        }
                    }
                };
                let addend = match &c_shape {
                    Some(cs) => Some(Addend {
                        base: kb.input(2)?,
                        rs: if cs[0] == 1 { 0 } else { cs[1] as i64 * 4 },
                        cs: if cs[1] == 1 { 0 } else { 4 },
                        scale: beta,
                        ro: false,
                    }),
                    None => None,
                };
                let out = kb.output(0)?;
                let a = ASrc::Strided(Strided {
                    base: a_in,
                    rs: a_st.0,
                    cs: a_st.1,
                    ro: false,
                });
                let c = CDst {
                    base: out,
                    rs: n as i64 * 4,
                    epi: Epi {
                        alpha,
                        addend,
                        residual: None,
                        post: Post::NONE,
                    },
                };
                kb.for_tiles(|kb, t| {
                    let (_, mb, nb) = split_tile(kb, t, &geo);
                    emit_tile(kb, &geo, a, b, c, mb, nb, &mut |_, _, _| Ok(()))
                })
            })
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x86::TileIsa;

    #[test]
    fn large_products_get_tiles_for_every_thread() {
        let t = GemmTile::for_isa(TileIsa::Avx512);
        // A transformer layer's product: one cache block, cut into MIN_TILES tiles.
        let g = Geo::tiled(128, 1536, 384, t);
        assert!(g.tiles() >= MIN_TILES, "{g:?}");
        assert!(g.nc >= 2 * t.nr() && g.mc >= 2 * t.mr, "{g:?}");
        // Small products stay one tile; large ones keep their cache blocks.
        assert_eq!(Geo::tiled(8, 48, 16, t).tiles(), 1);
        let big = Geo::tiled(1024, 1024, 1024, t);
        let bl = t.blocking();
        assert!(
            big.mc <= bl.mc && big.nc <= bl.nc && big.mc > bl.mc / 2,
            "{big:?}"
        );
    }
}
