//! int8 GEMM micro-kernels (`u8/i8 × s8 → i32`, ONNX `MatMulInteger`): AVX-512 VNNI on zmm, AVX-VNNI
//! on ymm (VEX-encoded `vpdpbusd`), and an exact AVX2 path without VNNI.
//!
//! A micro-kernel computes a `rows × cols` block of the i32 result C (`rows ≤ MR`, `cols ≤ NR`) over
//! the k steps of one k block: `acc[i][j] += Σ A[i, k]·B'[k, j]` with `MR × NV` vector accumulators
//! (`L` i32 lanes, `NR = NV·L`), where `B' = B − b_zp` was formed and packed at compile time. k is
//! consumed in *groups* of `G` steps; B is packed per group as `NR` columns × 4 bytes (zero padded in
//! k and in columns, so full vector loads are in bounds and padding contributes 0):
//! - VNNI (`G = 4`): the 4 bytes of a column are `B'[k..k+4, j]` as s8 (so `B'` must fit in i8), and
//!   4 bytes of A row `i` are broadcast to every dword (`vpbroadcastd` from memory, a pure load) and
//!   multiplied by `vpdpbusd acc, a, b` (u8 × s8, four products summed into each i32 lane, wrapping —
//!   no saturation). `vpdpbusd` takes the *unsigned* operand from a register and only its signed
//!   operand may be memory (or an embedded broadcast), so A is broadcast into a register and B
//!   vectors stay in registers across the rows. A signed (i8) A is made unsigned by XOR 0x80 after
//!   the broadcast (`a + 128`); the lowering then corrects with the zero point `a_zp + 128`.
//!   AVX-512 uses an 8×48 tile (24 zmm accumulators, 3 B vectors, 2 broadcast temps, the 0x80
//!   constant: 30 of 32 zmm); AVX-VNNI a 6×16 ymm tile (12 + 2 + 1 + 1 = 16 ymm).
//! - AVX2 (`G = 2`): exact by widening, not by `vpmaddubsw`. `vpmaddubsw` sums two u8·s8 products
//!   into an i16 with saturation, and `255·(−128)·2 = −65280` does not fit, so A = 255 against B' =
//!   −128 would saturate (splitting operands to avoid that costs more instructions than widening).
//!   Instead B' is stored at compile time as i16 pairs (`B'[k, j]`, `B'[k+1, j]`), two bytes of A are
//!   broadcast and zero- or sign-extended to i16 (`vpbroadcastw` + `vpmovzxbw`/`vpmovsxbw`), and
//!   `vpmaddwd` forms `a0·b0 + a1·b1` exactly in i32 (|…| ≤ 2·255·255 < 2³¹), then `vpaddd`. i8 A
//!   needs no bias here, and `B'` only has to fit in i16. A 6×16 ymm tile (12 accumulators).
//!
//! The last group of a k block with `K mod G ≠ 0` steps left reads those A bytes one at a time (a
//! dword load could run past A's buffer) and multiplies them with B's zero padding for the rest.
//! Column tails use a k-mask (AVX-512) or `vpmaskmovd` (AVX2/AVX-VNNI) for C; row tails are kernels
//! with fewer rows. The epilogue of the last k block subtracts `zp·colsum[j]` (the run-time zero
//! point times the compile-time i32 column sums of B') in registers before the i32 store; a later k
//! block starts from C's values.
//!
//! With an f32 epilogue ([`I8Spec::epi`], an integer `fused_matmul`'s `rescale` and the steps after
//! it) the last k block then converts the corrected accumulators to f32, multiplies them by the
//! per-tensor or per-column scales and applies the bias, residual and clamps in registers — the f32
//! tile's epilogue emitter ([`super::gemm::emit_epi`]) — and stores f32 instead of i32 (the same 4
//! bytes per element, so earlier k blocks still accumulate i32 in C).
//!
//! Arguments (System V): `rdi` = A at (row 0, k0) (row-major u8/i8, row stride `a_rs`), `rsi` = B
//! panel at k0, `rdx` = C at the block (i32, row stride `c_rs`), `rcx` = full groups of this k block,
//! `r8` = the zero point (i32), `r9` = the column sums at the block's first column; with an epilogue,
//! on the stack, the scales (at the block's first column, or the one scale), the bias (at the block's
//! first column) and the residual (at the block, laid out like C). Leaf functions touching only
//! caller-saved registers, trap-free, no relocations (see [`super`]).

use iced_x86::code_asm::*;

use super::gemm::{EpiRegs, TileEpi};
use super::{TileIsa, XMM, YMM, ZMM};

use crate::CodegenError;
use crate::target::Target;
use target_lexicon::Architecture;

/// The ISA of an int8 tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum I8Isa {
    /// AVX-512F + AVX512-VNNI: `vpdpbusd` on zmm, k-mask tails.
    Avx512Vnni,
    /// AVX-VNNI (VEX `vpdpbusd` on ymm) without AVX512-VNNI.
    AvxVnni,
    /// AVX2 without VNNI: widening to i16 and `vpmaddwd` (exact).
    Avx2,
}

impl I8Isa {
    /// The widest int8 tile ISA `target` has, or `None`.
    pub fn for_target(target: &Target) -> Option<I8Isa> {
        if target.triple.architecture != Architecture::X86_64 || !target.has("avx2") {
            return None;
        }
        if target.has("avx512f") && target.has("avx512vnni") {
            Some(I8Isa::Avx512Vnni)
        } else if target.has("avx_vnni") {
            Some(I8Isa::AvxVnni)
        } else {
            Some(I8Isa::Avx2)
        }
    }

    /// The name in schedule text.
    pub fn name(self) -> &'static str {
        match self {
            I8Isa::Avx512Vnni => "avx512vnni",
            I8Isa::AvxVnni => "avxvnni",
            I8Isa::Avx2 => "avx2",
        }
    }

    /// i32 lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            I8Isa::Avx512Vnni => 16,
            I8Isa::AvxVnni | I8Isa::Avx2 => 8,
        }
    }

    /// k steps per group (bytes of one A row a multiply consumes).
    pub fn group(self) -> usize {
        match self {
            I8Isa::Avx512Vnni | I8Isa::AvxVnni => 4,
            I8Isa::Avx2 => 2,
        }
    }

    /// True if B' is packed as s8 (else as i16).
    pub fn b_is_i8(self) -> bool {
        self.group() == 4
    }

    /// The f32 vector ISA of the same registers (for the shared epilogue emitter).
    pub fn vector_isa(self) -> TileIsa {
        match self {
            I8Isa::Avx512Vnni => TileIsa::Avx512,
            I8Isa::AvxVnni | I8Isa::Avx2 => TileIsa::Avx2,
        }
    }
}

/// An int8 register tile shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct I8Tile {
    /// The ISA.
    pub isa: I8Isa,
    /// Rows of the register tile.
    pub mr: usize,
    /// Vectors per row.
    pub nv: usize,
}

impl I8Tile {
    /// The tile for `isa`.
    pub fn for_isa(isa: I8Isa) -> I8Tile {
        match isa {
            I8Isa::Avx512Vnni => I8Tile { isa, mr: 8, nv: 3 },
            I8Isa::AvxVnni | I8Isa::Avx2 => I8Tile { isa, mr: 6, nv: 2 },
        }
    }

    /// Columns of the register tile.
    pub fn nr(&self) -> usize {
        self.nv * self.isa.lanes()
    }

    /// Bytes of one packed B group of a panel (`NR` columns × 4 bytes).
    pub fn group_bytes(&self) -> usize {
        self.nr() * 4
    }

    /// Cache blocking `(kc, mc, nc)`: a `kc × NR` B panel fills ~3/4 of a 32 KiB L1 (kc a multiple of
    /// the group), the `mc × kc` A block and the `kc × nc` B block stay in a 1 MiB L2.
    pub fn blocking(&self) -> (usize, usize, usize) {
        let g = self.isa.group();
        // Bytes of packed B per k step and column.
        let per_k = 4 / g;
        let kc = ((24 << 10) / (self.nr() * per_k)).max(64) / 64 * 64;
        let mc = ((128 << 10) / kc).clamp(self.mr, 192) / self.mr * self.mr;
        let nc = ((256 << 10) / (kc * per_k)).clamp(self.nr(), 768) / self.nr() * self.nr();
        (kc, mc, nc)
    }
}

impl std::fmt::Display for I8Tile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} x86={}", self.mr, self.nr(), self.isa.name())
    }
}

/// One int8 micro-kernel: everything its machine code depends on (equal specs share one function).
#[derive(Debug, Clone, PartialEq)]
pub struct I8Spec {
    /// The register tile.
    pub tile: I8Tile,
    /// Rows computed (≤ MR).
    pub rows: usize,
    /// Columns computed (≤ NR).
    pub cols: usize,
    /// k steps after the full groups (`< G`; only the last k block has them).
    pub ktail: usize,
    /// A is i8 (else u8).
    pub a_signed: bool,
    /// A's byte stride between rows.
    pub a_rs: i64,
    /// C's byte stride between rows.
    pub c_rs: i64,
    /// Start from C's values (a later k block) instead of zero.
    pub accumulate: bool,
    /// Subtract `zp·colsum` before the store (the last k block, when the zero point may be nonzero).
    pub correct: bool,
    /// The f32 epilogue of the last k block (its `rescale` set): the block is stored as f32.
    pub epi: Option<TileEpi>,
}

impl I8Spec {
    /// A short symbol-safe description (for the function name).
    pub fn stem(&self) -> String {
        format!(
            "gemm_i8_{}_{}x{}{}",
            self.tile.isa.name(),
            self.rows,
            self.cols,
            if self.epi.is_some() { "_epi" } else { "" }
        )
    }

    /// True if every displacement the kernel uses fits in 32 bits.
    pub fn fits(&self) -> bool {
        let a = self.rows as i64 * self.a_rs.abs() + 8 * self.tile.group_bytes() as i64;
        let c = self.rows as i64 * self.c_rs.abs() + self.tile.group_bytes() as i64;
        a.max(c) < i64::from(i32::MAX) / 2
    }
}

fn asm_err(e: IcedError) -> CodegenError {
    super::asm_error("x86 int8 tile", e)
}

type R = Result<(), IcedError>;

/// The assembler with ISA-generic helpers over register indices.
struct Gen {
    a: CodeAssembler,
    isa: I8Isa,
}

impl Gen {
    fn zmm(&self) -> bool {
        self.isa == I8Isa::Avx512Vnni
    }

    fn zero(&mut self, r: usize) -> R {
        if self.zmm() {
            self.a.vpxord(ZMM[r], ZMM[r], ZMM[r])
        } else {
            self.a.vpxor(YMM[r], YMM[r], YMM[r])
        }
    }

    /// Sets up the mask of the first `lanes` lanes: k1, or ymm register `m`.
    fn mask(&mut self, lanes: usize, m: usize) -> R {
        if self.zmm() {
            self.a.mov(eax, ((1u32 << lanes) - 1) as i32)?;
            self.a.kmovw(k1, eax)
        } else {
            let bytes: u64 = if lanes >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * lanes)) - 1
            };
            self.a.mov(rax, bytes)?;
            self.a.vmovq(XMM[m], rax)?;
            self.a.vpmovsxbd(YMM[m], XMM[m])
        }
    }

    /// Loads a vector of i32 (`mask`: the masked lanes only through mask register `m`, others zero).
    fn load(&mut self, r: usize, mem: AsmMemoryOperand, mask: Option<usize>) -> R {
        match (self.zmm(), mask) {
            (true, None) => self.a.vmovdqu32(ZMM[r], zmmword_ptr(mem)),
            (true, Some(_)) => self.a.vmovdqu32(ZMM[r].k1().z(), zmmword_ptr(mem)),
            (false, None) => self.a.vmovdqu(YMM[r], ymmword_ptr(mem)),
            (false, Some(m)) => self.a.vpmaskmovd(YMM[r], YMM[m], ymmword_ptr(mem)),
        }
    }

    fn store(&mut self, mem: AsmMemoryOperand, r: usize, mask: Option<usize>) -> R {
        match (self.zmm(), mask) {
            (true, None) => self.a.vmovdqu32(zmmword_ptr(mem), ZMM[r]),
            (true, Some(_)) => self.a.vmovdqu32(zmmword_ptr(mem).k1(), ZMM[r]),
            (false, None) => self.a.vmovdqu(ymmword_ptr(mem), YMM[r]),
            (false, Some(m)) => self.a.vpmaskmovd(ymmword_ptr(mem), YMM[m], YMM[r]),
        }
    }

    /// `r = eax` in every dword lane.
    fn bcast_eax(&mut self, r: usize) -> R {
        if self.zmm() {
            self.a.vpbroadcastd(ZMM[r], eax)
        } else {
            self.a.vmovd(XMM[r], eax)?;
            self.a.vpbroadcastd(YMM[r], XMM[r])
        }
    }

    fn xor(&mut self, d: usize, x: usize, y: usize) -> R {
        if self.zmm() {
            self.a.vpxord(ZMM[d], ZMM[x], ZMM[y])
        } else {
            self.a.vpxor(YMM[d], YMM[x], YMM[y])
        }
    }

    fn sub(&mut self, d: usize, x: usize, y: usize) -> R {
        if self.zmm() {
            self.a.vpsubd(ZMM[d], ZMM[x], ZMM[y])
        } else {
            self.a.vpsubd(YMM[d], YMM[x], YMM[y])
        }
    }

    /// `d = x · mem` (i32 lanes, low 32 bits).
    fn mul_mem(&mut self, d: usize, x: usize, mem: AsmMemoryOperand) -> R {
        if self.zmm() {
            self.a.vpmulld(ZMM[d], ZMM[x], zmmword_ptr(mem))
        } else {
            self.a.vpmulld(YMM[d], YMM[x], ymmword_ptr(mem))
        }
    }
}

/// Assembles the machine code of int8 micro-kernel `s` (position independent, no relocations).
pub fn assemble(s: &I8Spec) -> Result<Vec<u8>, CodegenError> {
    let t = s.tile;
    if s.rows == 0
        || s.rows > t.mr
        || s.cols == 0
        || s.cols > t.nr()
        || s.ktail >= t.isa.group()
        || !s.fits()
        || s.epi.as_ref().is_some_and(|e| e.rescale.is_none())
    {
        return Err(CodegenError::Graph {
            msg: format!("x86 int8 tile {s:?} is out of range"),
        });
    }
    let mut g = Gen {
        a: CodeAssembler::new(64).map_err(asm_err)?,
        isa: t.isa,
    };
    emit(&mut g, s).map_err(asm_err)?;
    g.a.assemble(0).map_err(asm_err)
}

fn emit(g: &mut Gen, s: &I8Spec) -> R {
    let t = s.tile;
    let l = t.isa.lanes();
    let vb = (l * 4) as i64;
    let nvv = s.cols.div_ceil(l);
    let tail = s.cols % l;
    let acc = |i: usize, j: usize| i * nvv + j;
    let n_acc = s.rows * nvv;
    // Registers after the accumulators: B vectors, broadcast temps, the 0x80 constant.
    let breg = n_acc;
    let t0 = breg + nvv;
    let (t1, c80) = if g.zmm() {
        (t0 + 1, t0 + 2)
    } else {
        (t0, t0 + 1)
    };
    let gb = t.group_bytes() as i64;
    let ga = t.isa.group() as i64;
    // The column mask (ymm: in the first B register, free outside the k loop).
    let mreg = breg;
    let masked = |j: usize| (tail != 0 && j + 1 == nvv).then_some(mreg);
    if tail != 0 {
        g.mask(tail, mreg)?;
    }
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
    if s.a_signed && t.isa != I8Isa::Avx2 {
        g.a.mov(eax, 0x8080_8080u32 as i32)?;
        g.bcast_eax(c80)?;
    }
    // The products of one group whose A dword/word of row `i` is in register `x`.
    let multiply = |g: &mut Gen, i: usize, x: usize| -> R {
        for j in 0..nvv {
            let (d, b) = (acc(i, j), breg + j);
            match t.isa {
                I8Isa::Avx512Vnni => g.a.vpdpbusd(ZMM[d], ZMM[x], ZMM[b])?,
                I8Isa::AvxVnni => g.a.vpdpbusd(YMM[d], YMM[x], YMM[b])?,
                I8Isa::Avx2 => {
                    // The B register is needed by the next row: the product goes to the spare.
                    let p = c80;
                    g.a.vpmaddwd(YMM[p], YMM[x], YMM[b])?;
                    g.a.vpaddd(YMM[d], YMM[d], YMM[p])?;
                }
            }
        }
        Ok(())
    };
    let load_b = |g: &mut Gen, k: i64| -> R {
        for j in 0..nvv {
            g.load(breg + j, rsi + (k * gb + j as i64 * vb), None)?;
        }
        Ok(())
    };
    // One full group at displacement `k` groups from the pointers.
    let step = |g: &mut Gen, k: i64| -> R {
        load_b(g, k)?;
        for i in 0..s.rows {
            let m = rdi + (i as i64 * s.a_rs + k * ga);
            let x = if i % 2 == 1 { t1 } else { t0 };
            match t.isa {
                I8Isa::Avx512Vnni => g.a.vpbroadcastd(ZMM[x], dword_ptr(m))?,
                I8Isa::AvxVnni => g.a.vpbroadcastd(YMM[x], dword_ptr(m))?,
                I8Isa::Avx2 => {
                    g.a.vpbroadcastw(XMM[x], word_ptr(m))?;
                    if s.a_signed {
                        g.a.vpmovsxbw(YMM[x], XMM[x])?;
                    } else {
                        g.a.vpmovzxbw(YMM[x], XMM[x])?;
                    }
                }
            }
            if s.a_signed && t.isa != I8Isa::Avx2 {
                g.xor(x, x, c80)?;
            }
            multiply(g, i, x)?;
        }
        Ok(())
    };
    super::k_loop(g, |g| &mut g.a, ga, gb, step)?;
    if s.ktail > 0 {
        // The partial last group: A's remaining bytes one at a time (B's padding is zero).
        load_b(g, 0)?;
        for i in 0..s.rows {
            let m = rdi + i as i64 * s.a_rs;
            let x = if i % 2 == 1 { t1 } else { t0 };
            if t.isa == I8Isa::Avx2 {
                // One k step: a0 as an i16 in the low word (the high word meets B's zero padding).
                if s.a_signed {
                    g.a.movsx(eax, byte_ptr(m))?;
                } else {
                    g.a.movzx(eax, byte_ptr(m))?;
                }
            } else {
                g.a.movzx(eax, byte_ptr(m))?;
                for b in 1..s.ktail {
                    g.a.movzx(r10d, byte_ptr(m + b as i64))?;
                    g.a.shl(r10d, (8 * b) as u32)?;
                    g.a.or(eax, r10d)?;
                }
            }
            g.bcast_eax(x)?;
            if s.a_signed && t.isa != I8Isa::Avx2 {
                g.xor(x, x, c80)?;
            }
            multiply(g, i, x)?;
        }
    }
    if tail != 0 && !g.zmm() {
        g.mask(tail, mreg)?;
    }
    if s.correct {
        // acc −= zp · colsum (per column).
        let (zr, pr) = (breg + 1, breg + 2);
        g.a.mov(eax, r8d)?;
        g.bcast_eax(zr)?;
        for j in 0..nvv {
            g.mul_mem(pr, zr, r9 + j as i64 * vb)?;
            for i in 0..s.rows {
                g.sub(acc(i, j), acc(i, j), pr)?;
            }
        }
    }
    if let Some(e) = &s.epi {
        // The operands on the stack (above the return address); r8–r10 are free after the
        // correction and the k tail.
        g.a.mov(r10, qword_ptr(rsp + 8))?;
        g.a.mov(r8, qword_ptr(rsp + 16))?;
        g.a.mov(r9, qword_ptr(rsp + 24))?;
        let regs = EpiRegs {
            scale: r10,
            addend: r8,
            residual: r9,
        };
        // The mask (ymm) stays in `mreg` = `breg`: the temps are the two registers after it.
        let mut fg = super::gemm::Gen::new(&mut g.a, t.isa.vector_isa(), mreg);
        super::gemm::emit_epi(
            &mut fg,
            e,
            (s.rows, s.cols, s.c_rs),
            (breg + 1, breg + 2),
            regs,
        )?;
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

/// B' (`k × n`, row-major i32 values already reduced by the zero point) packed for `tile`: panels of
/// NR columns, each `ceil(k / G)` groups of NR columns × 4 bytes (s8 ×4 for VNNI, i16 ×2 for AVX2),
/// zero padded. `None` if a value does not fit the packed type.
pub fn pack_b(tile: I8Tile, vals: &[i32], k: usize, n: usize) -> Option<Vec<u8>> {
    let (nr, g) = (tile.nr(), tile.isa.group());
    let groups = k.div_ceil(g);
    let panels = n.div_ceil(nr);
    let mut out = vec![0u8; panels * groups * nr * 4];
    for kk in 0..k {
        for j in 0..n {
            let v = vals[kk * n + j];
            let (p, jj, gi, r) = (j / nr, j % nr, kk / g, kk % g);
            let at = ((p * groups + gi) * nr + jj) * 4;
            if tile.isa.b_is_i8() {
                out[at + r] = i8::try_from(v).ok()? as u8;
            } else {
                let h = i16::try_from(v).ok()?.to_le_bytes();
                out[at + 2 * r..at + 2 * r + 2].copy_from_slice(&h);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(isa: I8Isa, rows: usize, cols: usize, ktail: usize, a_signed: bool) -> I8Spec {
        I8Spec {
            tile: I8Tile::for_isa(isa),
            rows,
            cols,
            ktail,
            a_signed,
            a_rs: 100,
            c_rs: 4 * 100,
            accumulate: true,
            correct: true,
            epi: None,
        }
    }

    #[test]
    fn every_shape_assembles_deterministically() {
        for isa in [I8Isa::Avx512Vnni, I8Isa::AvxVnni, I8Isa::Avx2] {
            let t = I8Tile::for_isa(isa);
            let l = isa.lanes();
            for rows in 1..=t.mr {
                for cols in [1, l - 1, l, l + 3, t.nr()] {
                    for ktail in 0..isa.group() {
                        for signed in [false, true] {
                            let s = spec(isa, rows, cols, ktail, signed);
                            let a = assemble(&s).unwrap();
                            assert_eq!(a, assemble(&s).unwrap());
                            assert!(a.ends_with(&[0xc3]));
                        }
                    }
                }
            }
        }
        assert!(assemble(&spec(I8Isa::Avx2, 7, 8, 0, false)).is_err());
        assert!(assemble(&spec(I8Isa::Avx2, 1, 8, 2, false)).is_err());
    }

    #[test]
    fn every_shape_assembles_with_an_f32_epilogue() {
        use crate::x86::gemm::{Clamp, Rescale};
        for isa in [I8Isa::Avx512Vnni, I8Isa::AvxVnni, I8Isa::Avx2] {
            let t = I8Tile::for_isa(isa);
            let l = isa.lanes();
            for rows in 1..=t.mr {
                for cols in [1, l - 1, l, l + 3, t.nr()] {
                    for rescale in [Rescale::PerTensor, Rescale::PerColumn] {
                        let mut s = spec(isa, rows, cols, 1, true);
                        s.epi = Some(TileEpi {
                            rescale: Some(rescale),
                            alpha: 1.0,
                            addend: Some((0, 4, 1.0)),
                            residual: true,
                            clamps: vec![Clamp::Lo(0.0), Clamp::Hi(6.0)],
                        });
                        let a = assemble(&s).unwrap();
                        assert_eq!(a, assemble(&s).unwrap());
                        assert!(a.ends_with(&[0xc3]));
                    }
                }
            }
        }
        // An f32 epilogue without a rescale would store i32 accumulators as f32: refused.
        let mut s = spec(I8Isa::Avx2, 1, 8, 0, false);
        s.epi = Some(TileEpi {
            rescale: None,
            alpha: 1.0,
            addend: None,
            residual: false,
            clamps: Vec::new(),
        });
        assert!(assemble(&s).is_err());
    }

    #[test]
    fn avx_vnni_is_vex_encoded() {
        // VEX vpdpbusd ymm is `c4 e2 .. 50`; EVEX would start with 62.
        let a = assemble(&spec(I8Isa::AvxVnni, 6, 16, 0, false)).unwrap();
        // VEX3 (c4), map 0F38, opcode 50 (vpdpbusd), and no EVEX (62 …) vpdpbusd.
        let vex = a
            .windows(4)
            .any(|w| w[0] == 0xc4 && w[1] & 0x1f == 2 && w[3] == 0x50);
        let evex = a
            .windows(5)
            .any(|w| w[0] == 0x62 && w[1] & 0x07 == 2 && w[4] == 0x50);
        let seen = vex && !evex;
        assert!(seen);
    }

    #[test]
    fn packing_checks_ranges() {
        let t = I8Tile::for_isa(I8Isa::Avx512Vnni);
        assert!(pack_b(t, &[200], 1, 1).is_none());
        let p = pack_b(t, &[1, -2, 3, 4, 5, 6], 3, 2).unwrap();
        assert_eq!(p.len(), 48 * 4);
        assert_eq!(&p[0..4], &[1, 3, 5, 0]);
        assert_eq!(&p[4..8], &[(-2i8) as u8, 4, 6, 0]);
        let t2 = I8Tile::for_isa(I8Isa::Avx2);
        let p = pack_b(t2, &[300, -2, 3, 4, 5, 6], 3, 2).unwrap();
        assert_eq!(p.len(), 2 * 16 * 4);
        assert_eq!(&p[0..4], &[44, 1, 3, 0]);
    }

    #[test]
    fn isa_follows_the_target_features() {
        let t = |cpu: &str| Target::parse("x86_64-unknown-linux-gnu", Some(cpu)).unwrap();
        assert_eq!(I8Isa::for_target(&t("+avx,+fma")), None);
        assert_eq!(I8Isa::for_target(&t("+avx,+avx2")), Some(I8Isa::Avx2));
        assert_eq!(
            I8Isa::for_target(&t("+avx,+avx2,+avx_vnni")),
            Some(I8Isa::AvxVnni)
        );
        assert_eq!(
            I8Isa::for_target(&t("+avx,+avx2,+avx_vnni,+avx512f")),
            Some(I8Isa::AvxVnni)
        );
        assert_eq!(
            I8Isa::for_target(&t("+avx,+avx2,+avx512f,+avx512vnni")),
            Some(I8Isa::Avx512Vnni)
        );
        let arm = Target::parse("aarch64-unknown-linux-gnu", None).unwrap();
        assert_eq!(I8Isa::for_target(&arm), None);
    }

    #[test]
    fn blocking_is_sane() {
        for isa in [I8Isa::Avx512Vnni, I8Isa::AvxVnni, I8Isa::Avx2] {
            let t = I8Tile::for_isa(isa);
            let (kc, mc, nc) = t.blocking();
            assert!(kc >= 64 && kc.is_multiple_of(4), "{kc}");
            assert!(mc.is_multiple_of(t.mr) && mc >= t.mr);
            assert!(nc.is_multiple_of(t.nr()) && nc >= t.nr());
        }
    }
}
