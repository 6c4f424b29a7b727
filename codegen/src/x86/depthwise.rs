//! f32 depthwise-convolution rows in zmm (AVX-512) and ymm (AVX2+FMA) registers.
//!
//! One routine computes one whole output row of one channel: every output column, borders included.
//! The geometry is static, so for each vector of `L` adjacent outputs (16 lanes zmm, 8 ymm) and each
//! tap the lanes that read inside the input row are known at compile time: a tap whose lanes are all
//! inside is one unmasked load (a memory operand of the FMA for stride 1), a border tap is a masked
//! load whose masked lanes read as zero (k-mask zeroing or `vmaskmovps`, which never touch masked
//! memory) and a tap with no lane inside is skipped. The last partial vector of the row is stored
//! with a mask. Stride 2 loads two vectors per tap and keeps their even elements (`vpermt2ps`, or
//! `vshufps` + `vpermpd` in ymm). The vertical taps the row uses are part of the routine (border rows
//! have fewer), so there are no runtime padding checks.
//!
//! The taps' weights live in registers when they fit (AVX-512: up to 25, AVX2: up to 9), else they
//! are broadcast from memory per use. [`UNROLL`] output vectors are computed together; the run of
//! vectors with no border tap is a loop when it is long. The bias initializes the accumulators and
//! clamps (relu, clip) are applied in registers before the store.
//!
//! Arguments (System V): `rdi` = input row `oy·sh − pad_top` of the plane (tap row `ky` is
//! `ky·row_step` bytes further; only the listed taps are read), `rsi` = the output row, `rdx` = the
//! channel's `kh·kw` weights, `rcx` = the channel's bias (read only if [`DwSpec::bias`]).

use iced_x86::code_asm::*;

use super::gemm::Clamp;
use super::{TileIsa, XMM, YMM, ZMM};
use crate::CodegenError;

/// Output vectors computed together (independent accumulators).
pub const UNROLL: usize = 4;

/// One depthwise row routine: everything its machine code depends on (also its identity: equal
/// specs share one function).
#[derive(Debug, Clone, PartialEq)]
pub struct DwSpec {
    /// The ISA.
    pub isa: TileIsa,
    /// Input row length (elements).
    pub w_in: usize,
    /// Output row length (elements).
    pub w_out: usize,
    /// Kernel width.
    pub kw: usize,
    /// Horizontal stride (1 or 2).
    pub stride: usize,
    /// Horizontal dilation.
    pub dilation: usize,
    /// Padding before the row (elements).
    pub pad: usize,
    /// Bytes between the input rows of vertical taps `ky` and `ky + 1`.
    pub row_step: i64,
    /// The vertical taps this row reads (weights row `ky` of the kernel).
    pub kys: Vec<usize>,
    /// Add the bias at `rcx`.
    pub bias: bool,
    /// Clamps applied before the store, in order.
    pub clamps: Vec<Clamp>,
}

impl DwSpec {
    /// A short symbol-safe description (for the function name).
    pub fn stem(&self) -> String {
        format!(
            "dw_{}_k{}x{}_s{}",
            self.isa.name(),
            self.kys.len(),
            self.kw,
            self.stride
        )
    }

    /// True if the routine can be built: stride 1 or 2, a kernel, and displacements within 32 bits.
    pub fn supported(&self) -> bool {
        let ky_max = self.kys.iter().copied().max().unwrap_or(0) as i64;
        let reach = ky_max * self.row_step.abs()
            + 4 * (self.w_in + self.w_out * self.stride + self.pad + self.kw * self.dilation)
                as i64
            + 256;
        (1..=2).contains(&self.stride)
            && self.kw > 0
            && self.dilation > 0
            && self.w_out > 0
            && reach < i64::from(i32::MAX)
    }
}

fn asm_err(e: IcedError) -> CodegenError {
    super::asm_error("x86 depthwise row", e)
}

type R = Result<(), IcedError>;

/// Register roles.
#[derive(Debug, Clone, Copy)]
struct Regs {
    /// First temporary (tap inputs, epilogue constants).
    t0: usize,
    /// Second temporary (the second half of a stride-2 tap, broadcast weights).
    t1: usize,
    /// The stride-2 permutation index (AVX-512).
    idx: usize,
    /// The first weight register, if the weights live in registers.
    w: Option<usize>,
    /// The AVX2 mask register.
    mask: usize,
}

/// The assembler with the mask registers' known contents.
struct Dw<'a> {
    a: &'a mut CodeAssembler,
    s: &'a DwSpec,
    l: usize,
    regs: Regs,
    /// Known contents of k1..k7 (AVX-512) by index.
    k: [Option<u32>; 8],
    /// The k register the next new mask replaces (round robin over k1..k7).
    k_next: usize,
    /// Known contents of the AVX2 mask register (lane bits).
    m: Option<u32>,
    /// Output vectors the row pointers have been advanced by.
    adv: usize,
    /// The taps `(ky, kx)` in order.
    taps: Vec<(usize, usize)>,
}

/// The mask registers by number.
const K: [AsmRegisterK; 8] = [k0, k1, k2, k3, k4, k5, k6, k7];

/// `r` under mask register `k` (1..=7).
fn masked(r: AsmRegisterZmm, k: usize) -> AsmRegisterZmm {
    match k {
        1 => r.k1(),
        2 => r.k2(),
        3 => r.k3(),
        4 => r.k4(),
        5 => r.k5(),
        6 => r.k6(),
        _ => r.k7(),
    }
}

/// Lane bits `[lo, hi)` clipped to `[0, n)`.
fn bits(lo: i64, hi: i64, n: usize) -> u32 {
    let lo = lo.max(0);
    let hi = hi.min(n as i64);
    (lo..hi).fold(0u32, |m, i| m | (1 << i))
}

/// The load masks of one tap of one output vector: first vector and (stride 2) second vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TapMask {
    a: u32,
    b: u32,
}

impl Dw<'_> {
    fn full(&self) -> u32 {
        ((1u64 << self.l) - 1) as u32
    }

    /// Valid output lanes of vector `v`.
    fn out_lanes(&self, v: usize) -> usize {
        (self.s.w_out - v * self.l).min(self.l)
    }

    /// First input column (may be negative) of tap `kx` of vector `v`.
    fn col0(&self, v: usize, kx: usize) -> i64 {
        (v * self.l * self.s.stride) as i64 - self.s.pad as i64 + (kx * self.s.dilation) as i64
    }

    /// Elements of tap `kx` of vector `v` that are loaded (inside the row and needed).
    fn tap_mask(&self, v: usize, kx: usize) -> TapMask {
        let c0 = self.col0(v, kx);
        let nl = self.out_lanes(v) as i64;
        let w = self.s.w_in as i64;
        let l = self.l as i64;
        if self.s.stride == 1 {
            TapMask {
                a: bits(-c0, (w - c0).min(nl), self.l),
                b: 0,
            }
        } else {
            // Elements 0, 2, …, 2(nl−1) are needed; the odd one after the last is read if inside.
            let (lo, hi) = (-c0, (w - c0).min(2 * nl));
            TapMask {
                a: bits(lo, hi, self.l),
                b: bits(lo - l, hi - l, self.l),
            }
        }
    }

    /// True if vector `v` has no border tap and a full store.
    fn clean(&self, v: usize) -> bool {
        let full = self.full();
        self.out_lanes(v) == self.l
            && (0..self.s.kw).all(|kx| {
                let m = self.tap_mask(v, kx);
                m.a == full && (self.s.stride == 1 || m.b == full)
            })
    }

    /// Byte displacement of input column `col` of tap row `ky` from the advanced input pointer.
    fn in_disp(&self, ky: usize, col: i64) -> i64 {
        ky as i64 * self.s.row_step + 4 * (col - (self.adv * self.l * self.s.stride) as i64)
    }

    /// The k register holding mask `m`, set up unless one already holds it.
    fn kreg(&mut self, m: u32) -> Result<usize, IcedError> {
        if let Some(k) = (1..8).find(|&k| self.k[k] == Some(m)) {
            return Ok(k);
        }
        let k = self.k_next;
        self.k_next = k % 7 + 1;
        self.a.mov(eax, m as i32)?;
        self.a.kmovw(K[k], eax)?;
        self.k[k] = Some(m);
        Ok(k)
    }

    fn set_ymask(&mut self, m: u32) -> R {
        if self.m != Some(m) {
            let bytes = (0..8).fold(0u64, |b, i| {
                if m & (1 << i) != 0 {
                    b | (0xffu64 << (8 * i))
                } else {
                    b
                }
            });
            let r = self.regs.mask;
            self.a.mov(rax, bytes)?;
            self.a.vmovq(XMM[r], rax)?;
            self.a.vpmovsxbd(YMM[r], XMM[r])?;
            self.m = Some(m);
        }
        Ok(())
    }

    fn zero(&mut self, r: usize) -> R {
        match self.s.isa {
            TileIsa::Avx512 => self.a.vpxord(ZMM[r], ZMM[r], ZMM[r]),
            TileIsa::Avx2 => self.a.vxorps(YMM[r], YMM[r], YMM[r]),
        }
    }

    /// Loads the lanes `m` of the vector at `mem` into `r` (others zero).
    fn load(&mut self, r: usize, mem: AsmMemoryOperand, m: u32) -> R {
        if m == 0 {
            return self.zero(r);
        }
        let full = m == self.full();
        match self.s.isa {
            TileIsa::Avx512 if full => self.a.vmovups(ZMM[r], zmmword_ptr(mem)),
            TileIsa::Avx512 => {
                let k = self.kreg(m)?;
                self.a.vmovups(masked(ZMM[r], k).z(), zmmword_ptr(mem))
            }
            TileIsa::Avx2 if full => self.a.vmovups(YMM[r], ymmword_ptr(mem)),
            TileIsa::Avx2 => {
                self.set_ymask(m)?;
                let mr = self.regs.mask;
                self.a.vmaskmovps(YMM[r], YMM[mr], ymmword_ptr(mem))
            }
        }
    }

    /// `acc += x · y` over registers.
    fn fma(&mut self, acc: usize, x: usize, y: usize) -> R {
        match self.s.isa {
            TileIsa::Avx512 => self.a.vfmadd231ps(ZMM[acc], ZMM[x], ZMM[y]),
            TileIsa::Avx2 => self.a.vfmadd231ps(YMM[acc], YMM[x], YMM[y]),
        }
    }

    /// `acc += input(in register x) · weight of tap t`.
    fn fma_w(&mut self, acc: usize, x: usize, t: usize) -> R {
        let (ky, kx) = self.taps[t];
        match (self.regs.w, self.s.isa) {
            (Some(w), _) => self.fma(acc, w + t, x),
            (None, TileIsa::Avx512) => {
                let off = ((ky * self.s.kw + kx) * 4) as i64;
                self.a.vfmadd231ps(ZMM[acc], ZMM[x], dword_bcst(rdx + off))
            }
            (None, TileIsa::Avx2) => {
                // t1 is free once a stride-2 tap is assembled in t0.
                let off = ((ky * self.s.kw + kx) * 4) as i64;
                let t1 = self.regs.t1;
                self.a.vbroadcastss(YMM[t1], dword_ptr(rdx + off))?;
                self.fma(acc, x, t1)
            }
        }
    }

    /// `r = v` in every lane.
    fn constant(&mut self, r: usize, v: f32) -> R {
        self.a.mov(eax, v.to_bits() as i32)?;
        match self.s.isa {
            TileIsa::Avx512 => self.a.vpbroadcastd(ZMM[r], eax),
            TileIsa::Avx2 => {
                self.a.vmovd(XMM[r], eax)?;
                self.a.vbroadcastss(YMM[r], XMM[r])
            }
        }
    }

    /// Computes and stores output vectors `vs` (accumulators `0..vs.len()`).
    fn group(&mut self, vs: &[usize]) -> R {
        let Regs { t0, t1, idx, .. } = self.regs;
        let isa = self.s.isa;
        for u in 0..vs.len() {
            if self.s.bias {
                match isa {
                    TileIsa::Avx512 => self.a.vbroadcastss(ZMM[u], dword_ptr(rcx))?,
                    TileIsa::Avx2 => self.a.vbroadcastss(YMM[u], dword_ptr(rcx))?,
                }
            } else {
                self.zero(u)?;
            }
        }
        let vb = (self.l * 4) as i64;
        for t in 0..self.taps.len() {
            let (ky, kx) = self.taps[t];
            for (u, &v) in vs.iter().enumerate() {
                let m = self.tap_mask(v, kx);
                if m.a == 0 && m.b == 0 {
                    continue;
                }
                let d = self.in_disp(ky, self.col0(v, kx));
                let full = self.full();
                if self.s.stride == 1 {
                    if m.a == full && self.regs.w.is_some() {
                        let w = self.regs.w.unwrap_or(0) + t;
                        match isa {
                            TileIsa::Avx512 => {
                                self.a.vfmadd231ps(ZMM[u], ZMM[w], zmmword_ptr(rdi + d))?
                            }
                            TileIsa::Avx2 => {
                                self.a.vfmadd231ps(YMM[u], YMM[w], ymmword_ptr(rdi + d))?
                            }
                        }
                        continue;
                    }
                    self.load(t0, rdi + d, m.a)?;
                } else {
                    self.load(t0, rdi + d, m.a)?;
                    self.load(t1, rdi + (d + vb), m.b)?;
                    match isa {
                        TileIsa::Avx512 => self.a.vpermt2ps(ZMM[t0], ZMM[idx], ZMM[t1])?,
                        TileIsa::Avx2 => {
                            self.a.vshufps(YMM[t0], YMM[t0], YMM[t1], 0x88)?;
                            self.a.vpermpd(YMM[t0], YMM[t0], 0xd8)?;
                        }
                    }
                }
                self.fma_w(u, t0, t)?;
            }
        }
        for c in self.s.clamps.clone() {
            let (v, lo) = match c {
                Clamp::Lo(v) => (v, true),
                Clamp::Hi(v) => (v, false),
            };
            self.constant(t0, v)?;
            for u in 0..vs.len() {
                // `vmaxps d, c, d` returns d if either is NaN: NaN stays NaN.
                match (isa, lo) {
                    (TileIsa::Avx512, true) => self.a.vmaxps(ZMM[u], ZMM[t0], ZMM[u])?,
                    (TileIsa::Avx512, false) => self.a.vminps(ZMM[u], ZMM[t0], ZMM[u])?,
                    (TileIsa::Avx2, true) => self.a.vmaxps(YMM[u], YMM[t0], YMM[u])?,
                    (TileIsa::Avx2, false) => self.a.vminps(YMM[u], YMM[t0], YMM[u])?,
                }
            }
        }
        for (u, &v) in vs.iter().enumerate() {
            let d = ((v - self.adv) * self.l * 4) as i64;
            let n = self.out_lanes(v);
            match isa {
                TileIsa::Avx512 if n == self.l => self.a.vmovups(zmmword_ptr(rsi + d), ZMM[u])?,
                TileIsa::Avx512 => {
                    let k = self.kreg(bits(0, n as i64, self.l))?;
                    let m = zmmword_ptr(rsi + d);
                    let m = match k {
                        1 => m.k1(),
                        2 => m.k2(),
                        3 => m.k3(),
                        4 => m.k4(),
                        5 => m.k5(),
                        6 => m.k6(),
                        _ => m.k7(),
                    };
                    self.a.vmovups(m, ZMM[u])?;
                }
                TileIsa::Avx2 if n == self.l => self.a.vmovups(ymmword_ptr(rsi + d), YMM[u])?,
                TileIsa::Avx2 => {
                    self.set_ymask(bits(0, n as i64, self.l))?;
                    let mr = self.regs.mask;
                    self.a.vmaskmovps(ymmword_ptr(rsi + d), YMM[mr], YMM[u])?;
                }
            }
        }
        Ok(())
    }

    /// Emits vectors `lo..hi` in groups of [`UNROLL`], unrolled.
    fn unrolled(&mut self, lo: usize, hi: usize) -> R {
        let mut v = lo;
        while v < hi {
            let n = (hi - v).min(UNROLL);
            let vs: Vec<usize> = (v..v + n).collect();
            self.group(&vs)?;
            v += n;
        }
        Ok(())
    }

    /// Advances the row pointers to vector `v`.
    fn advance_to(&mut self, v: usize) -> R {
        if v != self.adv {
            let dv = v as i64 - self.adv as i64;
            self.a
                .add(rdi, (dv * (self.l * self.s.stride * 4) as i64) as i32)?;
            self.a.add(rsi, (dv * (self.l * 4) as i64) as i32)?;
            self.adv = v;
        }
        Ok(())
    }
}

/// Assembles the machine code of row routine `s` (position independent, no relocations).
pub fn assemble(s: &DwSpec) -> Result<Vec<u8>, CodegenError> {
    if !s.supported() {
        return Err(CodegenError::Graph {
            msg: format!("x86 depthwise row {s:?} is out of range"),
        });
    }
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    emit(&mut a, s).map_err(asm_err)?;
    a.assemble(0).map_err(asm_err)
}

fn emit(a: &mut CodeAssembler, s: &DwSpec) -> R {
    let taps: Vec<(usize, usize)> = s
        .kys
        .iter()
        .flat_map(|&ky| (0..s.kw).map(move |kx| (ky, kx)))
        .collect();
    let u = UNROLL;
    let regs = match s.isa {
        // zmm: accumulators, two temporaries, the permutation index, then up to 25 weights.
        TileIsa::Avx512 => Regs {
            t0: u,
            t1: u + 1,
            idx: u + 2,
            w: (taps.len() <= 32 - (u + 3)).then_some(u + 3),
            mask: 0,
        },
        // ymm: accumulators, two temporaries, up to 9 weights, the mask in ymm15.
        TileIsa::Avx2 => Regs {
            t0: u,
            t1: u + 1,
            idx: 0,
            w: (taps.len() <= 15 - (u + 2)).then_some(u + 2),
            mask: 15,
        },
    };
    let mut g = Dw {
        a,
        s,
        l: s.isa.lanes(),
        regs,
        k: [None; 8],
        k_next: 1,
        m: None,
        adv: 0,
        taps,
    };
    if let Some(w) = regs.w {
        for (t, &(ky, kx)) in g.taps.clone().iter().enumerate() {
            let off = ((ky * s.kw + kx) * 4) as i64;
            match s.isa {
                TileIsa::Avx512 => g.a.vbroadcastss(ZMM[w + t], dword_ptr(rdx + off))?,
                TileIsa::Avx2 => g.a.vbroadcastss(YMM[w + t], dword_ptr(rdx + off))?,
            }
        }
    }
    if s.stride == 2 && s.isa == TileIsa::Avx512 {
        // Even elements of two concatenated vectors: 0, 2, …, 30 as bytes, zero-extended.
        let i = regs.idx;
        g.a.mov(rax, 0x0e0c_0a08_0604_0200u64)?;
        g.a.vmovq(XMM[i], rax)?;
        g.a.mov(rax, 0x1e1c_1a18_1614_1210u64)?;
        g.a.vpinsrq(XMM[i], XMM[i], rax, 1)?;
        g.a.vpmovzxbd(ZMM[i], XMM[i])?;
    }
    let nvec = s.w_out.div_ceil(g.l);
    // The run of clean vectors (no border tap, full store).
    let first = (0..nvec).find(|&v| g.clean(v));
    let (lo, hi) = match first {
        Some(f) => {
            let end = (f..nvec).find(|&v| !g.clean(v)).unwrap_or(nvec);
            (f, end)
        }
        None => (nvec, nvec),
    };
    g.unrolled(0, lo)?;
    let groups = (hi - lo) / u;
    if groups >= 2 {
        g.advance_to(lo)?;
        let mut top = g.a.create_label();
        g.a.mov(r10d, groups as i32)?;
        g.a.set_label(&mut top)?;
        let vs: Vec<usize> = (lo..lo + u).collect();
        g.group(&vs)?;
        g.advance_to(lo + u)?;
        g.adv = lo;
        g.a.dec(r10d)?;
        g.a.jnz(top)?;
        g.adv = lo + groups * u;
        g.unrolled(lo + groups * u, hi)?;
    } else {
        g.unrolled(lo, hi)?;
    }
    g.unrolled(hi, nvec)?;
    g.a.vzeroupper()?;
    g.a.ret()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(isa: TileIsa, w_in: usize, kw: usize, stride: usize, pad: usize) -> DwSpec {
        let w_out = (w_in + 2 * pad - kw) / stride + 1;
        DwSpec {
            isa,
            w_in,
            w_out,
            kw,
            stride,
            dilation: 1,
            pad,
            row_step: 4 * w_in as i64,
            kys: (0..kw).collect(),
            bias: true,
            clamps: vec![Clamp::Lo(0.0), Clamp::Hi(6.0)],
        }
    }

    #[test]
    fn every_shape_assembles_deterministically() {
        for isa in [TileIsa::Avx512, TileIsa::Avx2] {
            for (w, k, s, p) in [(7, 3, 1, 1), (112, 3, 1, 1), (112, 3, 2, 1), (300, 5, 2, 2)] {
                let x = assemble(&spec(isa, w, k, s, p)).unwrap();
                assert_eq!(x, assemble(&spec(isa, w, k, s, p)).unwrap());
                assert!(x.ends_with(&[0xc3]));
            }
        }
        assert!(assemble(&spec(TileIsa::Avx2, 20, 3, 3, 1)).is_err());
    }

    #[test]
    fn masks_cover_exactly_the_inside_lanes() {
        let s = spec(TileIsa::Avx512, 20, 3, 1, 1);
        let mut a = CodeAssembler::new(64).unwrap();
        let g = Dw {
            a: &mut a,
            s: &s,
            l: 16,
            regs: Regs {
                t0: 0,
                t1: 0,
                idx: 0,
                w: None,
                mask: 0,
            },
            k: [None; 8],
            k_next: 1,
            m: None,
            adv: 0,
            taps: Vec::new(),
        };
        // Vector 0, tap 0 reads column −1 in lane 0.
        assert_eq!(g.tap_mask(0, 0).a, 0xfffe);
        assert_eq!(g.tap_mask(0, 1).a, 0xffff);
        // Vector 1 has 4 outputs (16..20); tap 2 reads columns 17..21, of which 17..20 exist.
        assert_eq!(g.tap_mask(1, 2).a, 0b0111);
        assert_eq!(g.tap_mask(1, 0).a, 0b1111);
        assert!(!g.clean(0) && !g.clean(1));
    }
}
