//! x86_64 machine-code tiles: hot leaf kernels that Cranelift cannot generate (it lowers no 256/512-bit
//! vectors and uses xmm0–15 only), assembled with `iced-x86` and placed in the same Cranelift module as
//! raw-byte functions (see [`crate::cranelift::kernel::Kb::call_raw`]).
//!
//! Every tile is a leaf function with the System V calling convention that touches only
//! caller-saved registers, never traps (tails use masked loads and stores) and has no relocations, so
//! it needs no unwind information and the JIT and AOT paths define it the same way.
//!
//! [`TileIsa::for_target`] is the ISA choice: AVX-512 (zmm tiles) where the target has `avx512f`,
//! AVX2+FMA (ymm tiles) where it has those, and none (Cranelift's 128-bit kernels) otherwise.

pub mod depthwise;
pub mod gemm;
pub mod gemm_i8;

use iced_x86::IcedError;
use iced_x86::code_asm::*;
use target_lexicon::Architecture;

use crate::CodegenError;
use crate::target::Target;

/// The zmm registers by number (the tiles pick accumulators and temporaries by index).
pub(crate) const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14,
    zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27,
    zmm28, zmm29, zmm30, zmm31,
];
/// The ymm registers by number.
pub(crate) const YMM: [AsmRegisterYmm; 16] = [
    ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14,
    ymm15,
];
/// The xmm registers by number.
pub(crate) const XMM: [AsmRegisterXmm; 16] = [
    xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14,
    xmm15,
];

/// k steps of a tile's main loop emitted per iteration (the loop counts in `rcx / UNROLL`, then
/// `rcx % UNROLL` single steps).
pub(crate) const UNROLL: i64 = 4;

/// The k loop every tile runs: `rcx` steps of `step(g, k)` (k = the step's index within the unrolled
/// body, for its displacements), advancing A (`rdi`) by `a_step` and B (`rsi`) by `b_step` bytes per
/// step; [`UNROLL`] steps per iteration, then the remainder one at a time. Clobbers `rax` and `rcx`.
pub(crate) fn k_loop<G>(
    g: &mut G,
    asm: fn(&mut G) -> &mut CodeAssembler,
    a_step: i64,
    b_step: i64,
    mut step: impl FnMut(&mut G, i64) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let mut rem = asm(g).create_label();
    let mut main = asm(g).create_label();
    let mut one = asm(g).create_label();
    let mut done = asm(g).create_label();
    asm(g).mov(rax, rcx)?;
    asm(g).shr(rax, 2)?;
    asm(g).jz(rem)?;
    asm(g).set_label(&mut main)?;
    for k in 0..UNROLL {
        step(g, k)?;
    }
    asm(g).add(rdi, (UNROLL * a_step) as i32)?;
    asm(g).add(rsi, (UNROLL * b_step) as i32)?;
    asm(g).dec(rax)?;
    asm(g).jnz(main)?;
    asm(g).set_label(&mut rem)?;
    asm(g).and(rcx, (UNROLL - 1) as i32)?;
    asm(g).jz(done)?;
    asm(g).set_label(&mut one)?;
    step(g, 0)?;
    asm(g).add(rdi, a_step as i32)?;
    asm(g).add(rsi, b_step as i32)?;
    asm(g).dec(rcx)?;
    asm(g).jnz(one)?;
    asm(g).set_label(&mut done)
}

/// An assembler error while building `what` as a codegen error.
pub(crate) fn asm_error(what: &str, e: IcedError) -> CodegenError {
    CodegenError::Graph {
        msg: format!("assembling an {what}: {e}"),
    }
}

/// The vector ISA a machine-code tile is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TileIsa {
    /// AVX-512F: 32 zmm registers of 16 f32, k-mask tails.
    Avx512,
    /// AVX2 + FMA: 16 ymm registers of 8 f32, `vmaskmovps` tails.
    Avx2,
}

impl TileIsa {
    /// The widest tile ISA `target` has, or `None` (non-x86 targets, or x86 without AVX2+FMA).
    pub fn for_target(target: &Target) -> Option<TileIsa> {
        if target.triple.architecture != Architecture::X86_64 {
            return None;
        }
        if target.has("avx512f") {
            Some(TileIsa::Avx512)
        } else if target.has("avx2") && target.has("fma") {
            Some(TileIsa::Avx2)
        } else {
            None
        }
    }

    /// f32 lanes of one vector register.
    pub fn lanes(self) -> usize {
        match self {
            TileIsa::Avx512 => 16,
            TileIsa::Avx2 => 8,
        }
    }

    /// The name in schedule text.
    pub fn name(self) -> &'static str {
        match self {
            TileIsa::Avx512 => "avx512",
            TileIsa::Avx2 => "avx2",
        }
    }
}

/// The machine-code tile a kernel calls, as the schedule records it: its register tile and the ISA
/// name written as `x86=…` in schedule text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TileNote {
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// The ISA's name in schedule text.
    pub isa: &'static str,
}

impl From<gemm::GemmTile> for TileNote {
    fn from(t: gemm::GemmTile) -> TileNote {
        TileNote {
            mr: t.mr,
            nr: t.nr(),
            isa: t.isa.name(),
        }
    }
}

impl From<gemm_i8::I8Tile> for TileNote {
    fn from(t: gemm_i8::I8Tile) -> TileNote {
        TileNote {
            mr: t.mr,
            nr: t.nr(),
            isa: t.isa.name(),
        }
    }
}

impl std::fmt::Display for TileIsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_follows_the_target_features() {
        let t = |cpu: &str| Target::parse("x86_64-unknown-linux-gnu", Some(cpu)).unwrap();
        assert_eq!(TileIsa::for_target(&t("")), None);
        assert_eq!(TileIsa::for_target(&t("+avx,+fma")), None);
        assert_eq!(
            TileIsa::for_target(&t("+avx,+avx2,+fma")),
            Some(TileIsa::Avx2)
        );
        assert_eq!(
            TileIsa::for_target(&t("+avx,+avx2,+fma,+avx512f")),
            Some(TileIsa::Avx512)
        );
        let arm = Target::parse("aarch64-unknown-linux-gnu", None).unwrap();
        assert_eq!(TileIsa::for_target(&arm), None);
    }
}
