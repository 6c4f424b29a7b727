//! The GEMM family's use of x86 machine-code tiles ([`crate::x86::gemm`]): whether a product runs on
//! one ([`choose`]) and the call that replaces the inline Cranelift micro-kernel ([`call`]).
//!
//! A tile is chosen where B reaches it as zero-padded panels (packed at compile time, or per panel at
//! run time by the driver). The tile applies the epilogue's alpha, bias/C addend, residual and
//! leading relu/clip/clamp steps in registers; later steps (sigmoid, gelu, hard-swish, …) run in
//! Cranelift code over the block it just stored.

use carve_ir::ops::fused::{ActKind, EpiStep};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::micro::{Epi, Post, Shape, Strided, V};
use crate::CodegenError;
use crate::emit::Kb;
use crate::target::Target;
use crate::x86::TileIsa;
use crate::x86::gemm::{self, Clamp, GemmTile, MicroSpec, TileEpi};

/// `post`'s steps split into the clamps the tile applies in registers (the longest prefix of steps
/// with a tile form: relu, clip, clamp) and the steps after them, which Cranelift code applies to the
/// stored block right after the tile call (sigmoid, gelu, …: the block is still in L1).
pub(crate) fn split_post(post: &Post) -> (Vec<Clamp>, Vec<EpiStep>) {
    let mut clamps = Vec::new();
    let steps: Vec<EpiStep> = post.steps().copied().collect();
    for (i, s) in steps.iter().enumerate() {
        match s {
            EpiStep::Act(a) => match a.kind {
                ActKind::None => {}
                ActKind::Relu => clamps.push(Clamp::Lo(0.0)),
                ActKind::Clip => {
                    clamps.push(Clamp::Lo(a.alpha));
                    clamps.push(Clamp::Hi(a.beta));
                }
                _ => return (clamps, steps[i..].to_vec()),
            },
            EpiStep::Clamp { lo, hi } => {
                clamps.push(Clamp::Lo(*lo));
                clamps.push(Clamp::Hi(*hi));
            }
            _ => return (clamps, steps[i..].to_vec()),
        }
    }
    (clamps, Vec::new())
}

/// The tile a product on `target` runs on: `None` unless the target has a tile ISA and B reaches
/// the tile as zero-padded panels (`b_packed`: packed at compile time, or at run time by the
/// driver). Every epilogue runs with it ([`split_post`]).
pub(crate) fn choose(target: &Target, b_packed: bool) -> Option<GemmTile> {
    let isa = TileIsa::for_target(target)?;
    b_packed.then(|| GemmTile::for_isa(isa))
}

/// The shape Cranelift code packs `t`'s B panels with: `t`'s panel width `NR` in 128-bit vectors (the
/// widest Cranelift lowers on x86_64).
pub(crate) fn pack_shape(t: GemmTile) -> Shape {
    Shape {
        mr: t.mr,
        lanes: 4,
        nv: t.nr() / 4,
    }
}

/// True if A with byte strides `(rs, cs)`, C with row stride `c_rs` and an addend with row stride
/// `ad_rs` are addressable by `tile`'s displacements.
pub(crate) fn fits(tile: GemmTile, a: (i64, i64), c_rs: i64, ad_rs: i64) -> bool {
    MicroSpec {
        tile,
        rows: tile.mr,
        cols: tile.nr(),
        a_rs: a.0,
        a_cs: a.1,
        c_rs,
        accumulate: false,
        epi: Some(TileEpi {
            rescale: None,
            alpha: 1.0,
            addend: Some((ad_rs, 4, 1.0)),
            residual: false,
            clamps: Vec::new(),
        }),
    }
    .fits()
}

/// One micro-kernel block as a call of the tile: `rows × nw` of C at `c` over `kc` steps from A at
/// `a` and the zero-padded B panel at `b`, with the epilogue `epi` on the last k block.
#[allow(clippy::too_many_arguments)]
pub(crate) fn call(
    kb: &mut Kb,
    tile: GemmTile,
    rows: usize,
    nw: usize,
    kc: usize,
    a: Strided,
    b: Strided,
    c: Value,
    c_rs: i64,
    accumulate: bool,
    epi: Option<Epi>,
) -> Result<(), CodegenError> {
    let (tepi, rest) = match &epi {
        Some(e) => {
            let (clamps, rest) = split_post(&e.post);
            let tepi = TileEpi {
                rescale: None,
                alpha: e.alpha,
                addend: e.addend.map(|ad| (ad.rs, ad.cs, ad.scale)),
                residual: e.residual.is_some(),
                clamps,
            };
            (Some(tepi), rest)
        }
        None => (None, Vec::new()),
    };
    let spec = MicroSpec {
        tile,
        rows,
        cols: nw,
        a_rs: a.rs,
        a_cs: a.cs,
        c_rs,
        accumulate,
        epi: tepi,
    };
    let addend = epi.and_then(|e| e.addend).map_or(c, |ad| ad.base);
    let residual = match epi.and_then(|e| e.residual) {
        Some(d) => kb.b.ins().iadd(c, d),
        None => c,
    };
    let kcv = kb.iconst(kc as i64);
    let key = format!("{spec:?}");
    kb.call_raw(
        &key,
        &spec.stem(),
        &[a.base, b.base, c, kcv, addend, residual],
        || gemm::assemble(&spec),
    )?;
    finish_steps(kb, &rest, rows, nw, c, c_rs)
}

/// Applies `steps` in place to the `rows × nw` block of C at `c` (row stride `c_rs` bytes) in
/// Cranelift's 128-bit vectors.
pub(crate) fn finish_steps(
    kb: &mut Kb,
    steps: &[EpiStep],
    rows: usize,
    nw: usize,
    c: Value,
    c_rs: i64,
) -> Result<(), CodegenError> {
    if steps.is_empty() {
        return Ok(());
    }
    let v = V { lanes: 4 };
    for i in 0..rows {
        for j in (0..nw).step_by(4) {
            let n = (nw - j).min(4);
            let off = i as i64 * c_rs + 4 * j as i64;
            let mut x = v.load(kb, c, off, n, false)?;
            for s in steps {
                x = crate::lower::fused::emit_step(kb, x, s);
            }
            v.store(kb, x, c, off, n)?;
        }
    }
    Ok(())
}
