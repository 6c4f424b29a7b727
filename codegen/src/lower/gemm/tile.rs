//! The GEMM family's use of x86 machine-code tiles ([`crate::x86::gemm`]): whether a product runs on
//! one ([`choose`]) and the call that replaces the inline Cranelift micro-kernel ([`call`]).
//!
//! A tile is chosen only where it computes exactly what the Cranelift micro-kernel would: B packed at
//! compile time (weights), and an epilogue the tile applies in registers (alpha, bias/C addend,
//! residual, relu/clip/clamp). Anything else keeps the Cranelift kernel for that instance.

use carve_ir::ops::fused::{ActKind, EpiStep};
use cranelift_codegen::ir::{InstBuilder, Value};

use super::micro::{Epi, Post, Shape, Strided};
use crate::CodegenError;
use crate::emit::Kb;
use crate::target::Target;
use crate::x86::TileIsa;
use crate::x86::gemm::{self, Clamp, GemmTile, MicroSpec, TileEpi};

/// The clamps a tile applies for `post`'s steps, or `None` if a step has no tile form.
pub(crate) fn clamps(post: &Post) -> Option<Vec<Clamp>> {
    let mut out = Vec::new();
    for s in post.steps() {
        match s {
            EpiStep::Act(a) => match a.kind {
                ActKind::None => {}
                ActKind::Relu => out.push(Clamp::Lo(0.0)),
                ActKind::Clip => {
                    out.push(Clamp::Lo(a.alpha));
                    out.push(Clamp::Hi(a.beta));
                }
                _ => return None,
            },
            EpiStep::Clamp { lo, hi } => {
                out.push(Clamp::Lo(*lo));
                out.push(Clamp::Hi(*hi));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The tile a product on `target` with epilogue steps `post` runs on: `None` unless the target has a
/// tile ISA, B reaches the tile as zero-padded panels (`b_packed`: packed at compile time, or at run
/// time by the driver) and the epilogue has a tile form.
pub(crate) fn choose(target: &Target, post: &Post, b_packed: bool) -> Option<GemmTile> {
    let isa = TileIsa::for_target(target)?;
    (b_packed && clamps(post).is_some()).then(|| GemmTile::for_isa(isa))
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
    let tepi = match &epi {
        Some(e) => {
            let clamps = clamps(&e.post).ok_or_else(|| CodegenError::Graph {
                msg: "an x86 tile was chosen for an epilogue it cannot apply".into(),
            })?;
            Some(TileEpi {
                alpha: e.alpha,
                addend: e.addend.map(|ad| (ad.rs, ad.cs, ad.scale)),
                residual: e.residual.is_some(),
                clamps,
            })
        }
        None => None,
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
    )
}
