//! f32 GEMM micro-kernels in zmm (AVX-512) and ymm (AVX2+FMA) registers.
//!
//! A micro-kernel computes a `rows × cols` block of C (`rows ≤ MR`, `cols ≤ NR`) over `kc` steps of k:
//! `acc[i][j] += A[i, k] · B[k, j·L .. j·L + L]` with `MR × NV` vector accumulators (`L` lanes, `NR =
//! NV·L`). B comes from a panel packed at compile time (`NR` columns per k, zero padded, so full vector
//! loads are in bounds); A elements are broadcast from memory with compile-time strides (row-major,
//! transposed, or packed in `MR`-row panels). The shapes follow tract's x86_64 kernels, transposed to
//! carve's row-major C: AVX-512 8×48 (24 zmm accumulators, 3 B vectors, broadcast temps; 11 loads per
//! 24 FMAs; measured 1024³ single thread on a Xeon with AVX-512: 8×48 was 5–10% faster than 12×32)
//! and AVX2 6×16 (12 ymm accumulators, 2 B vectors, 1 broadcast).
//!
//! Column tails use a k-mask (AVX-512) or a `vmaskmovps` mask (AVX2) for the last partial vector;
//! row tails are kernels with fewer rows. The epilogue of the last k block — alpha, an addend (bias row,
//! per-row value or C with beta), a residual, then clamps (relu, clip) — is applied in registers before
//! the store ([`emit_epi`], which the int8 tiles of [`super::gemm_i8`] share, with a leading rescale
//! of their i32 accumulators). Arguments (System V): `rdi` = A at (row 0, k0), `rsi` = B panel at k0,
//! `rdx` = C at the block, `rcx` = kc, `r8` = addend at the block, `r9` = residual at the block.

use iced_x86::code_asm::*;

use super::{XMM, YMM, ZMM};

use super::TileIsa;
use crate::CodegenError;

/// A register tile shape for one ISA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GemmTile {
    /// The ISA.
    pub isa: TileIsa,
    /// Rows of the register tile.
    pub mr: usize,
    /// Vectors per row.
    pub nv: usize,
}

/// Cache sizes the blocking is derived from: sane lower bounds for current x86_64 cores (AOT code
/// must not depend on the build machine).
const L1D_BYTES: usize = 32 << 10;
/// See [`L1D_BYTES`].
const L2_BYTES: usize = 1 << 20;

/// Cache blocking of a tiled product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    /// Most k steps per block: a `kc × NR` B panel takes ~3/4 of L1.
    pub kc: usize,
    /// Most rows of a tile (multiple of MR): the `mc × kc` A block stays in L2.
    pub mc: usize,
    /// Most columns of a tile (multiple of NR): the `kc × nc` B block stays in L2.
    pub nc: usize,
}

impl GemmTile {
    /// The tile for `isa`.
    pub fn for_isa(isa: TileIsa) -> GemmTile {
        match isa {
            TileIsa::Avx512 => GemmTile { isa, mr: 8, nv: 3 },
            TileIsa::Avx2 => GemmTile { isa, mr: 6, nv: 2 },
        }
    }

    /// f32 lanes per vector.
    pub fn lanes(&self) -> usize {
        self.isa.lanes()
    }

    /// Columns of the register tile.
    pub fn nr(&self) -> usize {
        self.nv * self.lanes()
    }

    /// Cache blocking from [`L1D_BYTES`] and [`L2_BYTES`].
    pub fn blocking(&self) -> Blocking {
        let nr = self.nr();
        let kc = (L1D_BYTES * 3 / 4 / (nr * 4)).max(16) / 16 * 16;
        // Tiles are also the unit of thread parallelism and the packed A block lives on the stack:
        // keep them moderate.
        let mc = (L2_BYTES / 8 / (kc * 4)).clamp(self.mr, 128) / self.mr * self.mr;
        let nc = (L2_BYTES / 4 / (kc * 4)).clamp(nr, 512) / nr * nr;
        Blocking { kc, mc, nc }
    }
}

impl std::fmt::Display for GemmTile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} x86={}", self.mr, self.nr(), self.isa)
    }
}

/// A clamp applied to every accumulator in the epilogue (NaN stays NaN, as Cranelift's kernels do).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clamp {
    /// `x < lo ? lo : x` (relu is `Lo(0)`).
    Lo(f32),
    /// `hi < x ? hi : x`.
    Hi(f32),
}

/// How an int8 tile's i32 accumulators become f32 (the `rescale` epilogue step): converted, then
/// multiplied by one scale or one per column, read from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rescale {
    /// One f32 scale.
    PerTensor,
    /// One f32 scale per column (at the block's first column).
    PerColumn,
}

/// The epilogue of a micro-kernel (the last k block): `clamps(alpha·rescale(acc) + scale·addend +
/// residual)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TileEpi {
    /// i32 accumulators to convert and rescale first (int8 tiles only).
    pub rescale: Option<Rescale>,
    /// Scale of the product.
    pub alpha: f32,
    /// An addend at `r8`: `(row stride, column stride ∈ {0, 4}, scale)` in bytes.
    pub addend: Option<(i64, i64, f32)>,
    /// A residual at `r9` laid out like C.
    pub residual: bool,
    /// Clamps, in order.
    pub clamps: Vec<Clamp>,
}

/// One micro-kernel: everything its machine code depends on (also its identity: equal specs share
/// one function).
#[derive(Debug, Clone, PartialEq)]
pub struct MicroSpec {
    /// The register tile.
    pub tile: GemmTile,
    /// Rows computed (≤ MR).
    pub rows: usize,
    /// Columns computed (≤ NR).
    pub cols: usize,
    /// A's byte stride between rows.
    pub a_rs: i64,
    /// A's byte stride between k steps.
    pub a_cs: i64,
    /// C's byte stride between rows.
    pub c_rs: i64,
    /// Start from C's values (a later k block) instead of zero.
    pub accumulate: bool,
    /// Applied when this is the last k block.
    pub epi: Option<TileEpi>,
}

impl MicroSpec {
    /// A short symbol-safe description (for the function name).
    pub fn stem(&self) -> String {
        format!("gemm_{}_{}x{}", self.tile.isa.name(), self.rows, self.cols)
    }

    /// True if every displacement the kernel uses fits in 32 bits.
    pub fn fits(&self) -> bool {
        let a = (self.rows as i64) * self.a_rs.abs() + 4 * self.a_cs.abs();
        let c = (self.rows as i64) * self.c_rs.abs();
        let ad = self
            .epi
            .as_ref()
            .and_then(|e| e.addend)
            .map_or(0, |(rs, _, _)| rs.abs() * self.rows as i64);
        a.max(c).max(ad) + 64 * self.tile.nv as i64 * 4 < i64::from(i32::MAX)
    }
}

fn asm_err(e: IcedError) -> CodegenError {
    super::asm_error("x86 tile", e)
}

/// The assembler with ISA-generic vector helpers over register indices.
pub(crate) struct Gen<'a> {
    a: &'a mut CodeAssembler,
    isa: TileIsa,
    /// The AVX2 column mask register (built by [`Gen::mask`]); AVX-512 uses k1.
    mreg: usize,
}

type R = Result<(), IcedError>;

impl<'a> Gen<'a> {
    /// Helpers over `a` for `isa`, with the AVX2 column mask in ymm register `mreg`.
    pub(crate) fn new(a: &'a mut CodeAssembler, isa: TileIsa, mreg: usize) -> Gen<'a> {
        Gen { a, isa, mreg }
    }

    fn zero(&mut self, r: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vpxord(ZMM[r], ZMM[r], ZMM[r]),
            TileIsa::Avx2 => self.a.vxorps(YMM[r], YMM[r], YMM[r]),
        }
    }

    /// Sets up the mask of the first `lanes` lanes (k1, or the AVX2 mask register).
    fn mask(&mut self, lanes: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => {
                self.a.mov(eax, ((1u32 << lanes) - 1) as i32)?;
                self.a.kmovw(k1, eax)
            }
            TileIsa::Avx2 => {
                let bytes: u64 = if lanes >= 8 {
                    u64::MAX
                } else {
                    (1u64 << (8 * lanes)) - 1
                };
                self.a.mov(rax, bytes)?;
                self.a.vmovq(XMM[self.mreg], rax)?;
                self.a.vpmovsxbd(YMM[self.mreg], XMM[self.mreg])
            }
        }
    }

    /// Loads a vector (`masked`: the masked lanes only, others zero, masked memory never touched).
    fn load(&mut self, r: usize, m: AsmMemoryOperand, masked: bool) -> R {
        match (self.isa, masked) {
            (TileIsa::Avx512, false) => self.a.vmovups(ZMM[r], zmmword_ptr(m)),
            (TileIsa::Avx512, true) => self.a.vmovups(ZMM[r].k1().z(), zmmword_ptr(m)),
            (TileIsa::Avx2, false) => self.a.vmovups(YMM[r], ymmword_ptr(m)),
            (TileIsa::Avx2, true) => self.a.vmaskmovps(YMM[r], YMM[self.mreg], ymmword_ptr(m)),
        }
    }

    fn store(&mut self, m: AsmMemoryOperand, r: usize, masked: bool) -> R {
        match (self.isa, masked) {
            (TileIsa::Avx512, false) => self.a.vmovups(zmmword_ptr(m), ZMM[r]),
            (TileIsa::Avx512, true) => self.a.vmovups(zmmword_ptr(m).k1(), ZMM[r]),
            (TileIsa::Avx2, false) => self.a.vmovups(ymmword_ptr(m), YMM[r]),
            (TileIsa::Avx2, true) => self.a.vmaskmovps(ymmword_ptr(m), YMM[self.mreg], YMM[r]),
        }
    }

    fn bcast(&mut self, r: usize, m: AsmMemoryOperand) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vbroadcastss(ZMM[r], dword_ptr(m)),
            TileIsa::Avx2 => self.a.vbroadcastss(YMM[r], dword_ptr(m)),
        }
    }

    /// `r = v` in every lane.
    fn constant(&mut self, r: usize, v: f32) -> R {
        self.a.mov(eax, v.to_bits() as i32)?;
        match self.isa {
            TileIsa::Avx512 => self.a.vpbroadcastd(ZMM[r], eax),
            TileIsa::Avx2 => {
                self.a.vmovd(XMM[r], eax)?;
                self.a.vbroadcastss(YMM[r], XMM[r])
            }
        }
    }

    /// `r = f32(r)` for i32 lanes (`vcvtdq2ps`, round to nearest).
    fn cvt_i32(&mut self, r: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vcvtdq2ps(ZMM[r], ZMM[r]),
            TileIsa::Avx2 => self.a.vcvtdq2ps(YMM[r], YMM[r]),
        }
    }

    /// `acc += x · y`.
    fn fma(&mut self, acc: usize, x: usize, y: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vfmadd231ps(ZMM[acc], ZMM[x], ZMM[y]),
            TileIsa::Avx2 => self.a.vfmadd231ps(YMM[acc], YMM[x], YMM[y]),
        }
    }

    fn add(&mut self, d: usize, x: usize, y: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vaddps(ZMM[d], ZMM[x], ZMM[y]),
            TileIsa::Avx2 => self.a.vaddps(YMM[d], YMM[x], YMM[y]),
        }
    }

    fn mul(&mut self, d: usize, x: usize, y: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vmulps(ZMM[d], ZMM[x], ZMM[y]),
            TileIsa::Avx2 => self.a.vmulps(YMM[d], YMM[x], YMM[y]),
        }
    }

    /// `d = max(c, d)`: `d` if either is NaN (`vmaxps` returns its second source then).
    fn max_keep_nan(&mut self, d: usize, c: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vmaxps(ZMM[d], ZMM[c], ZMM[d]),
            TileIsa::Avx2 => self.a.vmaxps(YMM[d], YMM[c], YMM[d]),
        }
    }

    /// `d = min(c, d)`, `d` if either is NaN.
    fn min_keep_nan(&mut self, d: usize, c: usize) -> R {
        match self.isa {
            TileIsa::Avx512 => self.a.vminps(ZMM[d], ZMM[c], ZMM[d]),
            TileIsa::Avx2 => self.a.vminps(YMM[d], YMM[c], YMM[d]),
        }
    }
}

/// Assembles the machine code of micro-kernel `s` (position independent, no relocations).
pub fn assemble(s: &MicroSpec) -> Result<Vec<u8>, CodegenError> {
    let t = s.tile;
    if s.rows == 0 || s.rows > t.mr || s.cols == 0 || s.cols > t.nr() || !s.fits() {
        return Err(CodegenError::Graph {
            msg: format!("x86 tile {s:?} is out of range"),
        });
    }
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    let mreg = match t.isa {
        TileIsa::Avx512 => 31,
        TileIsa::Avx2 => 15,
    };
    let mut g = Gen::new(&mut a, t.isa, mreg);
    emit(&mut g, s).map_err(asm_err)?;
    a.assemble(0).map_err(asm_err)
}

fn emit(g: &mut Gen, s: &MicroSpec) -> R {
    let t = s.tile;
    let l = t.lanes();
    let vb = (l * 4) as i64;
    let nvv = s.cols.div_ceil(l);
    let tail = s.cols % l;
    let masked = |j: usize| tail != 0 && j + 1 == nvv;
    let acc = |i: usize, j: usize| i * nvv + j;
    let n_acc = s.rows * nvv;
    // Registers after the accumulators: B vectors, then broadcast temps.
    let breg = n_acc;
    let (t0, t1) = (breg + nvv, breg + nvv + 1);
    let b_rs = (t.nr() * 4) as i64;
    if tail != 0 {
        g.mask(tail)?;
    }
    // Accumulators.
    for i in 0..s.rows {
        for j in 0..nvv {
            if s.accumulate {
                let m = rdx + (i as i64 * s.c_rs + j as i64 * vb);
                g.load(acc(i, j), m, masked(j))?;
            } else {
                g.zero(acc(i, j))?;
            }
        }
    }
    // One k step at displacement `k` steps from the pointers.
    let step = |g: &mut Gen, k: i64| -> R {
        for j in 0..nvv {
            g.load(breg + j, rsi + (k * b_rs + j as i64 * vb), false)?;
        }
        for i in 0..s.rows {
            let m = rdi + (i as i64 * s.a_rs + k * s.a_cs);
            if t.isa == TileIsa::Avx512 && nvv == 1 {
                g.a.vfmadd231ps(ZMM[acc(i, 0)], ZMM[breg], dword_bcst(m))?;
                continue;
            }
            // AVX-512 alternates two broadcast registers; AVX2 has one to spare (the mask needs the last).
            let x = if t.isa == TileIsa::Avx512 && i % 2 == 1 {
                t1
            } else {
                t0
            };
            g.bcast(x, m)?;
            for j in 0..nvv {
                g.fma(acc(i, j), breg + j, x)?;
            }
        }
        Ok(())
    };
    super::k_loop(g, |g| &mut *g.a, s.a_cs, b_rs, step)?;
    // Epilogue temps: the B and broadcast registers are free now.
    if let Some(e) = &s.epi {
        let regs = EpiRegs {
            scale: r8,
            addend: r8,
            residual: r9,
        };
        emit_epi(g, e, (s.rows, s.cols, s.c_rs), (breg, breg + 1), regs)?;
    }
    for i in 0..s.rows {
        for j in 0..nvv {
            let m = rdx + (i as i64 * s.c_rs + j as i64 * vb);
            g.store(m, acc(i, j), masked(j))?;
        }
    }
    g.a.vzeroupper()?;
    g.a.ret()
}

/// The memory operands of an epilogue: base registers of the rescale's scales, the addend and the
/// residual (each at the block's first element).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EpiRegs {
    /// Scales of a [`Rescale`].
    pub scale: AsmRegister64,
    /// The addend.
    pub addend: AsmRegister64,
    /// The residual (laid out like C).
    pub residual: AsmRegister64,
}

/// Emits epilogue `e` on the accumulators of a `rows × cols` block (registers `i·nvv + j`, C's row
/// stride `c_rs` bytes, column tails masked as the tile set up), with vector registers `e0` and `e1`
/// free as temporaries: the rescale (i32 → f32 times the scales), alpha, the addend, the residual,
/// then the clamps.
pub(crate) fn emit_epi(
    g: &mut Gen,
    e: &TileEpi,
    (rows, cols, c_rs): (usize, usize, i64),
    (e0, e1): (usize, usize),
    regs: EpiRegs,
) -> R {
    let l = g.isa.lanes();
    let vb = (l * 4) as i64;
    let nvv = cols.div_ceil(l);
    let tail = cols % l;
    let masked = |j: usize| tail != 0 && j + 1 == nvv;
    let acc = |i: usize, j: usize| i * nvv + j;
    let n_acc = rows * nvv;
    if let Some(r) = e.rescale {
        for q in 0..n_acc {
            g.cvt_i32(q)?;
        }
        match r {
            Rescale::PerTensor => {
                g.bcast(e0, regs.scale + 0i64)?;
                for q in 0..n_acc {
                    g.mul(q, q, e0)?;
                }
            }
            Rescale::PerColumn => {
                for j in 0..nvv {
                    g.load(e0, regs.scale + j as i64 * vb, masked(j))?;
                    for i in 0..rows {
                        g.mul(acc(i, j), acc(i, j), e0)?;
                    }
                }
            }
        }
    }
    if e.alpha != 1.0 {
        g.constant(e0, e.alpha)?;
        for r in 0..n_acc {
            g.mul(r, r, e0)?;
        }
    }
    if let Some((ad_rs, ad_cs, scale)) = e.addend {
        if scale != 1.0 {
            g.constant(e0, scale)?;
        }
        for i in 0..rows {
            if ad_cs == 0 {
                g.bcast(e1, regs.addend + i as i64 * ad_rs)?;
                if scale != 1.0 {
                    g.mul(e1, e1, e0)?;
                }
                for j in 0..nvv {
                    g.add(acc(i, j), acc(i, j), e1)?;
                }
            } else {
                for j in 0..nvv {
                    g.load(
                        e1,
                        regs.addend + (i as i64 * ad_rs + j as i64 * vb),
                        masked(j),
                    )?;
                    if scale != 1.0 {
                        g.mul(e1, e1, e0)?;
                    }
                    g.add(acc(i, j), acc(i, j), e1)?;
                }
            }
        }
    }
    if e.residual {
        for i in 0..rows {
            for j in 0..nvv {
                g.load(
                    e1,
                    regs.residual + (i as i64 * c_rs + j as i64 * vb),
                    masked(j),
                )?;
                g.add(acc(i, j), acc(i, j), e1)?;
            }
        }
    }
    for c in &e.clamps {
        match *c {
            Clamp::Lo(v) => {
                g.constant(e0, v)?;
                for r in 0..n_acc {
                    g.max_keep_nan(r, e0)?;
                }
            }
            Clamp::Hi(v) => {
                g.constant(e0, v)?;
                for r in 0..n_acc {
                    g.min_keep_nan(r, e0)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(isa: TileIsa, rows: usize, cols: usize) -> MicroSpec {
        MicroSpec {
            tile: GemmTile::for_isa(isa),
            rows,
            cols,
            a_rs: 4 * 40,
            a_cs: 4,
            c_rs: 4 * 100,
            accumulate: true,
            epi: Some(TileEpi {
                rescale: None,
                alpha: 0.5,
                addend: Some((0, 4, 2.0)),
                residual: true,
                clamps: vec![Clamp::Lo(0.0), Clamp::Hi(6.0)],
            }),
        }
    }

    #[test]
    fn every_shape_assembles_deterministically() {
        for isa in [TileIsa::Avx512, TileIsa::Avx2] {
            let t = GemmTile::for_isa(isa);
            for rows in 1..=t.mr {
                for cols in [1, t.lanes() - 1, t.lanes(), t.lanes() + 3, t.nr()] {
                    let a = assemble(&spec(isa, rows, cols)).unwrap();
                    assert_eq!(a, assemble(&spec(isa, rows, cols)).unwrap());
                    assert!(a.ends_with(&[0xc3]));
                }
            }
        }
        assert!(assemble(&spec(TileIsa::Avx2, 7, 8)).is_err());
    }

    #[test]
    fn blocking_is_sane() {
        for isa in [TileIsa::Avx512, TileIsa::Avx2] {
            let t = GemmTile::for_isa(isa);
            let b = t.blocking();
            assert!(b.kc >= 64 && b.kc.is_multiple_of(16), "{b:?}");
            assert!(b.mc.is_multiple_of(t.mr) && b.mc >= t.mr, "{b:?}");
            assert!(b.nc.is_multiple_of(t.nr()) && b.nc >= t.nr(), "{b:?}");
        }
    }
}
