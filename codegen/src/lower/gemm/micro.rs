//! The register-blocked micro-kernel: an `mr × nw` block of C (`mr ≤ MR` rows, `nw ≤ NR` columns)
//! accumulated over `kc` steps of `acc[i][j] += broadcast(A[i, k]) · B[k, j..j+L]` in vector registers,
//! plus the block-level helpers the drivers share (runtime packing of a B panel into a stack slot).
//!
//! Operands are addressed with compile-time byte strides from a base pointer, so the same kernel reads
//! row-major A (`rs = lda·4, cs = 4`), transposed A (`rs = 4, cs = lda·4`) or A packed in `MR`-row
//! panels (`rs = 4, cs = mr·4`), and B packed in `NR`-column panels (`rs = NR·4`, zero padded, so full
//! vector loads are always in bounds) or B read in place (`rs = ldb·4`, partial loads at the N edge).

use carve_ir::ops::fused::EpiStep;
use cranelift_codegen::ir::{BlockArg, InstBuilder, MemFlagsData, Value, types};

use crate::CodegenError;
use crate::emit::{Kb, data_flags};

/// Steps of the k loop emitted per iteration.
const UNROLL: usize = 4;

/// Register tile shape for a target: rows `mr`, vector lanes `lanes`, vectors per row `nv`
/// (`NR = lanes · nv` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Rows of the register tile.
    pub mr: usize,
    /// f32 lanes per vector (4, or 1 for scalar targets).
    pub lanes: usize,
    /// Vectors per row.
    pub nv: usize,
}

impl Shape {
    /// The tile for `target`: 6×8 (12 f32x4 accumulators) where 128-bit vectors lower, 4×4 scalar
    /// otherwise.
    pub fn for_target(target: &crate::Target) -> Shape {
        if target.f32_lanes() >= 4 {
            Shape {
                mr: 6,
                lanes: 4,
                nv: 2,
            }
        } else {
            Shape {
                mr: 4,
                lanes: 1,
                nv: 4,
            }
        }
    }

    /// Columns of the register tile.
    pub fn nr(&self) -> usize {
        self.lanes * self.nv
    }
}

/// A strided operand: `base + row·rs + col·cs` (bytes).
#[derive(Debug, Clone, Copy)]
pub struct Strided {
    /// Address of element (0, 0).
    pub base: Value,
    /// Byte stride between rows.
    pub rs: i64,
    /// Byte stride between columns.
    pub cs: i64,
    /// The memory is read-only (weights).
    pub ro: bool,
}

/// Something added to the product in the epilogue: `scale · X[i, j]` with `X` addressed like
/// [`Strided`] (`cs = 0` broadcasts along the row, `rs = 0` along the column).
#[derive(Debug, Clone, Copy)]
pub struct Addend {
    /// Address of the element added at the block's (0, 0).
    pub base: Value,
    /// Byte stride between rows (0: the same for every row).
    pub rs: i64,
    /// Byte stride between columns: 0 (one value per row) or 4 (contiguous).
    pub cs: i64,
    /// Scale (gemm's beta).
    pub scale: f32,
    /// Read-only memory (weights).
    pub ro: bool,
}

/// The epilogue applied after the last k block, in registers before the store:
/// `post(alpha · acc + addend + residual)`.
#[derive(Debug, Clone, Copy)]
pub struct Epi {
    /// Scale of the product.
    pub alpha: f32,
    /// Bias or C term.
    pub addend: Option<Addend>,
    /// A residual tensor laid out exactly like C: the byte offset from C's address to it
    /// ([`residual_delta`]).
    pub residual: Option<Value>,
    /// Pointwise steps of a fused op's epilogue (activations, clamps), applied last.
    pub post: Post,
}

/// What a tile applies after its addend: a residual input (a fused op's `residual` step right after
/// its bias), then up to [`Post::MAX`] pointwise epilogue steps ([`EpiStep::Act`], [`EpiStep::Clamp`]),
/// to its accumulators before it stores them (a fixed array so that [`Epi`] stays `Copy`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Post {
    /// The kernel's input holding the residual (same shape and layout as the output), if any.
    residual: Option<usize>,
    steps: [Option<EpiStep>; Post::MAX],
}

impl Post {
    /// Most steps a tile applies.
    pub const MAX: usize = 4;
    /// No steps.
    pub const NONE: Post = Post {
        residual: None,
        steps: [None; Post::MAX],
    };

    /// The post-steps for `steps`, if they are all pointwise and at most [`Post::MAX`].
    pub fn new(steps: &[EpiStep]) -> Option<Post> {
        if steps.len() > Post::MAX
            || !steps
                .iter()
                .all(|s| matches!(s, EpiStep::Act(_) | EpiStep::Clamp { .. }))
        {
            return None;
        }
        let mut p = Post::NONE;
        for (slot, s) in p.steps.iter_mut().zip(steps) {
            *slot = Some(*s);
        }
        Some(p)
    }

    /// These steps after adding the residual in input `k` (applied before the steps).
    pub fn with_residual(self, k: usize) -> Post {
        Post {
            residual: Some(k),
            ..self
        }
    }

    /// The input holding the residual, if any.
    pub fn residual(&self) -> Option<usize> {
        self.residual
    }

    /// The steps in order.
    pub fn steps(&self) -> impl Iterator<Item = &EpiStep> {
        self.steps.iter().flatten()
    }
}

/// One micro-kernel invocation.
#[derive(Debug, Clone, Copy)]
pub struct Micro {
    /// Rows (≤ MR).
    pub mr: usize,
    /// Valid columns (≤ NR).
    pub nw: usize,
    /// Steps of k.
    pub kc: usize,
    /// A: rows `i`, k columns.
    pub a: Strided,
    /// B: k rows; `cs` must be 4 (contiguous columns).
    pub b: Strided,
    /// True if B has NR readable columns (a zero-padded panel): full vector loads at the edge.
    pub b_padded: bool,
    /// C: the output block (`cs` = 4).
    pub c: Value,
    /// C's row stride in bytes.
    pub c_rs: i64,
    /// Start from the values in C (a later k block) instead of zero.
    pub accumulate: bool,
    /// Applied when this is the last k block.
    pub epi: Option<Epi>,
}

fn imm(v: i64) -> Result<i32, CodegenError> {
    i32::try_from(v).map_err(|_| CodegenError::Graph {
        msg: format!("matrix offset {v} exceeds the 32-bit displacement range"),
    })
}

fn flags(ro: bool) -> MemFlagsData {
    if ro {
        data_flags().with_readonly()
    } else {
        data_flags()
    }
}

/// Vector helpers bound to a lane count.
#[derive(Clone, Copy)]
pub(super) struct V {
    pub lanes: usize,
}

impl V {
    pub fn ty(&self) -> types::Type {
        if self.lanes == 4 {
            types::F32X4
        } else {
            types::F32
        }
    }

    pub fn zero(&self, kb: &mut Kb) -> Value {
        let z = kb.b.ins().f32const(0.0);
        if self.lanes == 4 {
            kb.b.ins().splat(types::F32X4, z)
        } else {
            z
        }
    }

    pub fn splat(&self, kb: &mut Kb, s: Value) -> Value {
        if self.lanes == 4 {
            kb.b.ins().splat(types::F32X4, s)
        } else {
            s
        }
    }

    /// Loads `n` (≤ lanes) contiguous floats at `addr + off`, the other lanes zero.
    pub fn load(
        &self,
        kb: &mut Kb,
        addr: Value,
        off: i64,
        n: usize,
        ro: bool,
    ) -> Result<Value, CodegenError> {
        if n == self.lanes {
            return Ok(kb.b.ins().load(self.ty(), flags(ro), addr, imm(off)?));
        }
        let mut v = self.zero(kb);
        for l in 0..n {
            let s =
                kb.b.ins()
                    .load(types::F32, flags(ro), addr, imm(off + 4 * l as i64)?);
            v = kb.b.ins().insertlane(v, s, l as u8);
        }
        Ok(v)
    }

    /// Loads `n` floats at `addr + off + l·stride` into lanes `l`, the other lanes zero.
    pub fn gather(
        &self,
        kb: &mut Kb,
        addr: Value,
        off: i64,
        stride: i64,
        n: usize,
        ro: bool,
    ) -> Result<Value, CodegenError> {
        if stride == 4 {
            return self.load(kb, addr, off, n, ro);
        }
        if self.lanes == 1 {
            return Ok(kb.b.ins().load(types::F32, flags(ro), addr, imm(off)?));
        }
        let mut v = self.zero(kb);
        for l in 0..n {
            let s =
                kb.b.ins()
                    .load(types::F32, flags(ro), addr, imm(off + stride * l as i64)?);
            v = kb.b.ins().insertlane(v, s, l as u8);
        }
        Ok(v)
    }

    /// Stores the first `n` lanes of `v` at `addr + off`.
    pub fn store(
        &self,
        kb: &mut Kb,
        v: Value,
        addr: Value,
        off: i64,
        n: usize,
    ) -> Result<(), CodegenError> {
        if n == self.lanes {
            kb.b.ins().store(data_flags(), v, addr, imm(off)?);
            return Ok(());
        }
        for l in 0..n {
            let s = kb.b.ins().extractlane(v, l as u8);
            kb.b.ins()
                .store(data_flags(), s, addr, imm(off + 4 * l as i64)?);
        }
        Ok(())
    }

    /// `a · b + c`.
    pub fn fma(&self, kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
        if kb.target.has_fma() {
            kb.b.ins().fma(a, b, c)
        } else {
            let p = kb.b.ins().fmul(a, b);
            kb.b.ins().fadd(p, c)
        }
    }
}

/// Emits one micro-kernel call (inline code).
pub fn emit(kb: &mut Kb, sh: Shape, m: &Micro) -> Result<(), CodegenError> {
    let v = V { lanes: sh.lanes };
    let nv = m.nw.div_ceil(sh.lanes);
    let lanes_of = |j: usize| (m.nw - j * sh.lanes).min(sh.lanes);
    let ls = sh.lanes as i64 * 4;
    // Accumulators.
    let mut acc = Vec::with_capacity(m.mr * nv);
    for i in 0..m.mr {
        for j in 0..nv {
            acc.push(if m.accumulate {
                v.load(
                    kb,
                    m.c,
                    i as i64 * m.c_rs + j as i64 * ls,
                    lanes_of(j),
                    false,
                )?
            } else {
                v.zero(kb)
            });
        }
    }
    let b_lanes = |j: usize| if m.b_padded { sh.lanes } else { lanes_of(j) };
    let step = |kb: &mut Kb,
                a: Value,
                b: Value,
                s: usize,
                acc: &mut [Value]|
     -> Result<(), CodegenError> {
        let s = s as i64;
        let mut bv = Vec::with_capacity(nv);
        for j in 0..nv {
            bv.push(v.load(kb, b, s * m.b.rs + j as i64 * ls, b_lanes(j), m.b.ro)?);
        }
        for i in 0..m.mr {
            let x = kb.b.ins().load(
                types::F32,
                flags(m.a.ro),
                a,
                imm(i as i64 * m.a.rs + s * m.a.cs)?,
            );
            let x = v.splat(kb, x);
            for j in 0..nv {
                acc[i * nv + j] = v.fma(kb, x, bv[j], acc[i * nv + j]);
            }
        }
        Ok(())
    };
    let iters = m.kc / UNROLL;
    let (mut a, mut b) = (m.a.base, m.b.base);
    if iters > 0 {
        let body = kb.b.create_block();
        let exit = kb.b.create_block();
        let vt = v.ty();
        for blk in [body, exit] {
            kb.b.append_block_param(blk, types::I64);
            kb.b.append_block_param(blk, types::I64);
            for _ in 0..acc.len() {
                kb.b.append_block_param(blk, vt);
            }
        }
        let b_end = kb.b.ins().iadd_imm_s(b, (iters * UNROLL) as i64 * m.b.rs);
        let args: Vec<BlockArg> = [a, b]
            .iter()
            .chain(&acc)
            .map(|&x| BlockArg::Value(x))
            .collect();
        kb.b.ins().jump(body, &args);
        kb.b.switch_to_block(body);
        let p = kb.b.block_params(body).to_vec();
        let (pa, pb) = (p[0], p[1]);
        let mut lacc = p[2..].to_vec();
        for s in 0..UNROLL {
            step(kb, pa, pb, s, &mut lacc)?;
        }
        let na = kb.b.ins().iadd_imm_s(pa, UNROLL as i64 * m.a.cs);
        let nb = kb.b.ins().iadd_imm_s(pb, UNROLL as i64 * m.b.rs);
        let more =
            kb.b.ins()
                .icmp(cranelift_codegen::ir::condcodes::IntCC::NotEqual, nb, b_end);
        let args: Vec<BlockArg> = [na, nb]
            .iter()
            .chain(&lacc)
            .map(|&x| BlockArg::Value(x))
            .collect();
        kb.b.ins().brif(more, body, &args, exit, &args);
        kb.b.switch_to_block(exit);
        let p = kb.b.block_params(exit).to_vec();
        a = p[0];
        b = p[1];
        acc = p[2..].to_vec();
    }
    for s in 0..m.kc % UNROLL {
        step(kb, a, b, s, &mut acc)?;
    }
    // Epilogue.
    if let Some(e) = m.epi {
        if e.alpha != 1.0 {
            let al = kb.b.ins().f32const(e.alpha);
            let al = v.splat(kb, al);
            for x in acc.iter_mut() {
                *x = kb.b.ins().fmul(*x, al);
            }
        }
        if let Some(ad) = e.addend {
            let sc = if ad.scale != 1.0 {
                let s = kb.b.ins().f32const(ad.scale);
                Some(v.splat(kb, s))
            } else {
                None
            };
            for i in 0..m.mr {
                let row = i as i64 * ad.rs;
                let mut bcast = None;
                for j in 0..nv {
                    let mut t = if ad.cs == 0 {
                        match bcast {
                            Some(t) => t,
                            None => {
                                let s =
                                    kb.b.ins()
                                        .load(types::F32, flags(ad.ro), ad.base, imm(row)?);
                                let t = v.splat(kb, s);
                                bcast = Some(t);
                                t
                            }
                        }
                    } else {
                        v.load(kb, ad.base, row + j as i64 * ls, lanes_of(j), ad.ro)?
                    };
                    if let Some(sc) = sc {
                        t = kb.b.ins().fmul(t, sc);
                    }
                    acc[i * nv + j] = kb.b.ins().fadd(acc[i * nv + j], t);
                }
            }
        }
        if let Some(d) = e.residual {
            let rb = kb.b.ins().iadd(m.c, d);
            for i in 0..m.mr {
                for j in 0..nv {
                    let off = i as i64 * m.c_rs + j as i64 * ls;
                    let r = v.load(kb, rb, off, lanes_of(j), false)?;
                    acc[i * nv + j] = kb.b.ins().fadd(acc[i * nv + j], r);
                }
            }
        }
        for step in e.post.steps() {
            for x in acc.iter_mut() {
                *x = crate::lower::fused::emit_step(kb, *x, step);
            }
        }
    }
    for i in 0..m.mr {
        for j in 0..nv {
            v.store(
                kb,
                acc[i * nv + j],
                m.c,
                i as i64 * m.c_rs + j as i64 * ls,
                lanes_of(j),
            )?;
        }
    }
    Ok(())
}

/// The byte offset from the kernel's output to `post`'s residual input ([`Epi::residual`]); the
/// residual has the output's shape and layout, so C's address plus this offset addresses it.
pub fn residual_delta(kb: &mut Kb, post: Post) -> Result<Option<Value>, CodegenError> {
    let Some(k) = post.residual() else {
        return Ok(None);
    };
    let r = kb.input(k)?;
    let y = kb.output(0)?;
    Ok(Some(kb.b.ins().isub(r, y)))
}

/// Packs `kc` rows × `nw` columns of a strided B (`b.base` at (k0, j0)) into a zero-padded panel of
/// `NR` columns at `dst` (row stride `NR·4`).
pub fn pack_b_panel(
    kb: &mut Kb,
    sh: Shape,
    b: Strided,
    kc: usize,
    nw: usize,
    dst: Value,
) -> Result<(), CodegenError> {
    let v = V { lanes: sh.lanes };
    let ls = sh.lanes as i64 * 4;
    let nr4 = sh.nr() as i64 * 4;
    let lo = kb.iconst(0);
    let hi = kb.iconst(kc as i64);
    // Walk source and destination pointers together.
    let header = kb.b.create_block();
    let body = kb.b.create_block();
    let exit = kb.b.create_block();
    for _ in 0..3 {
        kb.b.append_block_param(header, types::I64);
    }
    kb.b.ins().jump(
        header,
        &[
            BlockArg::Value(lo),
            BlockArg::Value(b.base),
            BlockArg::Value(dst),
        ],
    );
    kb.b.switch_to_block(header);
    let p = kb.b.block_params(header).to_vec();
    let c = kb.b.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
        p[0],
        hi,
    );
    kb.b.ins().brif(c, body, &[], exit, &[]);
    kb.b.switch_to_block(body);
    for j in 0..sh.nv {
        let n = nw.saturating_sub(j * sh.lanes).min(sh.lanes);
        let x = if n == 0 {
            v.zero(kb)
        } else {
            v.gather(kb, p[1], j as i64 * sh.lanes as i64 * b.cs, b.cs, n, b.ro)?
        };
        v.store(kb, x, p[2], j as i64 * ls, sh.lanes)?;
    }
    let k1 = kb.b.ins().iadd_imm_s(p[0], 1);
    let s1 = kb.b.ins().iadd_imm_s(p[1], b.rs);
    let d1 = kb.b.ins().iadd_imm_s(p[2], nr4);
    kb.b.ins().jump(
        header,
        &[
            BlockArg::Value(k1),
            BlockArg::Value(s1),
            BlockArg::Value(d1),
        ],
    );
    kb.b.switch_to_block(exit);
    Ok(())
}

/// Packs `rows` rows × `kc` columns of a strided A (`a.base` at (i0, k0)) into a k-major panel at
/// `dst` (`rows` floats per k).
pub fn pack_a_panel(
    kb: &mut Kb,
    a: Strided,
    rows: usize,
    kc: usize,
    dst: Value,
) -> Result<(), CodegenError> {
    let lo = kb.iconst(0);
    let hi = kb.iconst(kc as i64);
    let header = kb.b.create_block();
    let body = kb.b.create_block();
    let exit = kb.b.create_block();
    for _ in 0..3 {
        kb.b.append_block_param(header, types::I64);
    }
    kb.b.ins().jump(
        header,
        &[
            BlockArg::Value(lo),
            BlockArg::Value(a.base),
            BlockArg::Value(dst),
        ],
    );
    kb.b.switch_to_block(header);
    let p = kb.b.block_params(header).to_vec();
    let c = kb.b.ins().icmp(
        cranelift_codegen::ir::condcodes::IntCC::SignedLessThan,
        p[0],
        hi,
    );
    kb.b.ins().brif(c, body, &[], exit, &[]);
    kb.b.switch_to_block(body);
    for r in 0..rows {
        let x =
            kb.b.ins()
                .load(types::F32, flags(a.ro), p[1], imm(r as i64 * a.rs)?);
        kb.b.ins().store(data_flags(), x, p[2], imm(r as i64 * 4)?);
    }
    let k1 = kb.b.ins().iadd_imm_s(p[0], 1);
    let s1 = kb.b.ins().iadd_imm_s(p[1], a.cs);
    let d1 = kb.b.ins().iadd_imm_s(p[2], rows as i64 * 4);
    kb.b.ins().jump(
        header,
        &[
            BlockArg::Value(k1),
            BlockArg::Value(s1),
            BlockArg::Value(d1),
        ],
    );
    kb.b.switch_to_block(exit);
    Ok(())
}
