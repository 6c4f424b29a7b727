//! `matmul_nbits` on the x86 machine-code f32 tiles ([`crate::x86::gemm`]), for products with enough
//! rows of `a` to amortize unpacking: the weights stay `bits`-wide in memory, and each tile unpacks
//! the B panels it needs for one k block into an f32 scratch block (zero-padded `NR`-column panels,
//! the layout the tile reads), which all of the tile's row panels then share. The unpacking is the
//! same `code · scale + offset` FMA as the register kernel in the parent module, so both give the same
//! weights; the product is the f32 GEMM's (same blocking, epilogue and thread split).
//!
//! Cost: unpacking `kc × nc` weights per tile is `1 / mc` of the tile's multiply-adds in 128-bit
//! Cranelift vectors, against the tile's 8–16-wide FMAs: below [`RUNTIME_B_MIN_ROWS`] rows the
//! register kernel (which never writes the weights out) is used instead.
//!
//! Taken when the target has a tile ISA, `a` has at least [`RUNTIME_B_MIN_ROWS`] rows, `k` is a
//! multiple of the codes per word (so every k block is whole groups) and the strides fit the tile.
//! The k blocks are multiples of `block_size`, so each group of codes lies in one quantization block.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::Plan;
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::gemm::micro::Post;
use crate::lower::gemm::{
    ASrc, BSrc, CDst, Epi, Geo, RUNTIME_B_MIN_ROWS, Strided, emit_tile, row_bias, split,
    split_tile, stack_buffer, tile as gemm_tile,
};
use crate::lower::{Lowering, NodeInfo, Weights};
use crate::x86::gemm::GemmTile;

/// Most bytes of one tile's unpacked B block (a stack buffer, like the packed A block).
const SCRATCH_BYTES: usize = 128 * 1024;

/// The tile `plan` runs on, or `None` for the register kernel.
pub(super) fn choose(info: &NodeInfo, plan: &Plan) -> Option<GemmTile> {
    let l = &plan.layout;
    if plan.rows < RUNTIME_B_MIN_ROWS || !l.k.is_multiple_of(plan.per) {
        return None;
    }
    gemm_tile::choose(info.target, true)
        .filter(|&t| gemm_tile::fits(t, (l.k as i64 * 4, 4), l.n as i64 * 4, 0))
}

/// The blocking: the tile's, with k blocks of whole quantization blocks and column tiles whose
/// unpacked block fits [`SCRATCH_BYTES`].
fn geometry(plan: &Plan, t: GemmTile) -> Geo {
    let (k, n, bs) = (plan.layout.k, plan.layout.n, plan.layout.block_size);
    let geo = Geo::tiled(plan.rows, n, k, t);
    let nr = geo.sh.nr();
    let (kc, kbs) = split(k, t.blocking().kc, bs);
    let kblocks = (0..kbs).map(|i| (i * kc, kc.min(k - i * kc))).collect();
    let nc_max = (SCRATCH_BYTES / (kc * 4) / nr).max(1) * nr;
    let (nc, nbs) = split(n, geo.nc.min(nc_max), nr);
    Geo {
        kblocks,
        nc,
        nbs,
        ..geo
    }
}

/// The lowering on tile `t`.
pub(super) fn lowering(plan: Plan, t: GemmTile, info: &NodeInfo, wts: &mut Weights) -> Lowering {
    wts.note_tile(t);
    let geo = geometry(&plan, t);
    let plan = plan.with_panel(geo.sh.nr());
    let tables = plan.tables(info, wts);
    let u = Unpack {
        k: plan.layout.k,
        bits: plan.layout.bits,
        per: plan.per,
        block_size: plan.layout.block_size,
        blocks: plan.layout.blocks(),
        groups: plan.groups,
        nr: geo.sh.nr(),
        panels: plan.panels,
    };
    let (k, n) = (plan.layout.k, plan.layout.n);
    let kc_max = geo.kblocks.iter().map(|b| b.1).max().unwrap_or(0);
    let n_tiles = geo.tiles() as u64;
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |em| {
            em.kernel(n_tiles, |kb| {
                let a_in = kb.input(0)?;
                let out = kb.output(0)?;
                let t = TableAddrs {
                    words: kb.weight(tables.words),
                    scales: kb.weight(tables.scales),
                    zps: kb.weight(tables.zps),
                };
                let bias = tables.bias.map(|b| kb.weight(b));
                let buf = stack_buffer(kb, kc_max * geo.nc * 4)?;
                kb.for_tiles(|kb, tile| {
                    let (_, mb, nb) = split_tile(kb, tile, &geo);
                    let a = ASrc::Strided(Strided {
                        base: a_in,
                        rs: k as i64 * 4,
                        cs: 4,
                        ro: false,
                    });
                    let c = CDst {
                        base: out,
                        rs: n as i64 * 4,
                        epi: Epi {
                            alpha: 1.0,
                            addend: bias.map(|base| row_bias(base, true)),
                            residual: None,
                            post: Post::NONE,
                        },
                    };
                    let jp0 = kb.b.ins().imul_imm_s(nb, (geo.nc / u.nr) as i64);
                    let jp1 = kb.b.ins().iadd_imm_s(jp0, (geo.nc / u.nr) as i64);
                    let last = kb.iconst(u.panels as i64);
                    let over = kb.b.ins().icmp(IntCC::SignedGreaterThan, jp1, last);
                    let jp1 = kb.b.ins().select(over, last, jp1);
                    let mut hook =
                        |kb: &mut Kb, k0: Value, kc: usize| u.emit(kb, &t, (jp0, jp1), k0, kc, buf);
                    emit_tile(kb, &geo, a, BSrc::Block(buf), c, mb, nb, &mut hook)
                })
            })
        }),
    }
}

/// Base addresses of the constant tables.
struct TableAddrs {
    words: Value,
    scales: Value,
    zps: Value,
}

/// Compile-time sizes of the unpacking code.
#[derive(Clone, Copy)]
struct Unpack {
    k: usize,
    bits: usize,
    per: usize,
    block_size: usize,
    blocks: usize,
    groups: usize,
    /// Panel width (the tile's `NR`, a multiple of 4).
    nr: usize,
    panels: usize,
}

impl Unpack {
    /// Unpacks rows `k0..k0 + kc` of panels `jp0..jp1` into `buf` (panel `jp − jp0` at
    /// `(jp − jp0)·kc·NR` floats, row `k − k0` at `(k − k0)·NR` within it).
    fn emit(
        &self,
        kb: &mut Kb,
        t: &TableAddrs,
        (jp0, jp1): (Value, Value),
        k0: Value,
        kc: usize,
        buf: Value,
    ) -> Result<(), CodegenError> {
        debug_assert!(kc.is_multiple_of(self.per) || kc == self.k);
        let nr = self.nr as i64;
        let pbytes = nr * 4;
        let g0 = kb.b.ins().udiv_imm_u(k0, self.per as i64);
        kb.for_range(jp0, jp1, 1, |kb, jp| {
            let rel = kb.b.ins().isub(jp, jp0);
            let dst = kb.offset(buf, rel, kc as i64 * pbytes);
            let words = kb.offset(t.words, jp, self.groups as i64 * pbytes);
            let words = kb.offset(words, g0, pbytes);
            let scales = kb.offset(t.scales, jp, self.blocks as i64 * pbytes);
            let zps = kb.offset(t.zps, jp, self.blocks as i64 * pbytes);
            let lo = kb.iconst(0);
            let hi = kb.iconst((kc / self.per) as i64);
            kb.for_range(lo, hi, 1, |kb, gi| {
                // The group's quantization block: (k0 + gi·per) / block_size.
                let kk = kb.b.ins().imul_imm_s(gi, self.per as i64);
                let kk = kb.b.ins().iadd(kk, k0);
                let q = kb.b.ins().udiv_imm_u(kk, self.block_size as i64);
                let s = kb.offset(scales, q, pbytes);
                let z = kb.offset(zps, q, pbytes);
                let w = kb.offset(words, gi, pbytes);
                let d = kb.offset(dst, gi, self.per as i64 * pbytes);
                self.group(kb, (w, s, z), d);
                Ok(())
            })
        })
    }

    /// One group of `per` rows of one panel: words, scales and offsets at `(w, s, z)`, rows stored
    /// from `d`.
    fn group(&self, kb: &mut Kb, (w, s, z): (Value, Value, Value), d: Value) {
        let mask =
            kb.b.ins()
                .iconst(types::I32, ((1u64 << self.bits) - 1) as i64);
        let mask = kb.b.ins().splat(types::I32X4, mask);
        for v in 0..self.nr / 4 {
            let off = (v * 16) as i32;
            let words = kb.load_ro(types::I32X4, w, off);
            let sv = kb.load_ro(types::F32X4, s, off);
            let zv = kb.load_ro(types::F32X4, z, off);
            for step in 0..self.per {
                let shift = step * self.bits;
                let mut c = words;
                if shift > 0 {
                    c = kb.b.ins().ushr_imm_u(c, shift as i64);
                }
                if shift + self.bits < 32 {
                    c = kb.b.ins().band(c, mask);
                }
                let f = kb.b.ins().fcvt_from_sint(types::F32X4, c);
                let x = super::fma(kb, f, sv, zv);
                kb.store(x, d, ((step * self.nr) * 4) as i32 + off);
            }
        }
    }
}
