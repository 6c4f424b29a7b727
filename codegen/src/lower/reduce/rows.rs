//! Loop skeletons shared by the reduction and normalization kernels: contiguous rows walked in
//! vector chunks with several accumulators ([`row_chunks`], [`Accs`]), lane blocks of a contiguous
//! output run ([`lane_blocks`]), nested strided loops ([`nest`]) and tile ranges ([`Tiling`]).
//!
//! Every loop has a fixed shape that depends only on static sizes, so each output element is computed
//! in the same order whatever the thread count.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Type, Value, types};
use cranelift_frontend::Variable;

use super::vmath::{self, Comb};
use crate::CodegenError;
use crate::emit::Kb;
use crate::target::Target;

/// Callback for one chunk of a row: `(kb, byte offset, value type, accumulator slot)`.
pub(crate) type ChunkFn<'a> =
    dyn FnMut(&mut Kb, Value, Type, usize) -> Result<(), CodegenError> + 'a;

/// Callback for one lane block: `(kb, byte offset of the block, width in lanes: 16, 4 or 1)`.
pub(crate) type BlockFn<'a> = dyn FnMut(&mut Kb, Value, usize) -> Result<(), CodegenError> + 'a;

/// Callback for one iteration of a loop nest: `(kb, byte offset)`.
pub(crate) type NestFn<'a> = dyn FnMut(&mut Kb, Value) -> Result<(), CodegenError> + 'a;

/// Number of f32x4 accumulators [`row_chunks`] uses for a row of `n` elements (0: scalar only).
pub(crate) fn row_unroll(target: &Target, n: usize) -> usize {
    if target.f32_lanes() < 4 {
        0
    } else if n >= 16 {
        4
    } else if n >= 4 {
        1
    } else {
        0
    }
}

/// Walks a contiguous row of `n` f32 elements: f32x4 chunks (slots `0..u`, `u` from [`row_unroll`]),
/// then scalar elements (slot `u`). `f` gets each chunk's byte offset from the row start.
pub(crate) fn row_chunks(
    kb: &mut Kb,
    n: usize,
    u: usize,
    f: &mut ChunkFn,
) -> Result<(), CodegenError> {
    let mut done = 0usize;
    if u > 0 {
        let step = 4 * u;
        let main = n / step * step;
        if main == step {
            for s in 0..u {
                let off = kb.iconst((16 * s) as i64);
                f(kb, off, types::F32X4, s)?;
            }
        } else if main > 0 {
            kb.for_n(0, (main * 4) as i64, (step * 4) as i64, |kb, i| {
                for s in 0..u {
                    let off = kb.b.ins().iadd_imm_s(i, (16 * s) as i64);
                    f(kb, off, types::F32X4, s)?;
                }
                Ok(())
            })?;
        }
        done = main;
        while n - done >= 4 {
            let off = kb.iconst((done * 4) as i64);
            f(kb, off, types::F32X4, (done - main) / 4)?;
            done += 4;
        }
    }
    let rest = n - done;
    if rest > 4 {
        kb.for_n((done * 4) as i64, (n * 4) as i64, 4, |kb, i| {
            f(kb, i, types::F32, u)
        })?;
    } else {
        for k in done..n {
            let off = kb.iconst((k * 4) as i64);
            f(kb, off, types::F32, u)?;
        }
    }
    Ok(())
}

/// Accumulators for [`row_chunks`]: `u` f32x4 variables and one scalar.
pub(crate) struct Accs {
    vecs: Vec<Variable>,
    scalar: Variable,
    comb: Comb,
    /// Lanes of the vector slots that saw a NaN (max/min only, see [`vmath::comb_fast`]).
    nan: Option<Variable>,
}

impl Accs {
    /// Accumulators for `u` vector slots, all starting at `init`.
    pub(crate) fn new(kb: &mut Kb, u: usize, comb: Comb, init: f32) -> Accs {
        let mut vecs = Vec::with_capacity(u);
        for _ in 0..u {
            let v = kb.b.declare_var(types::F32X4);
            let i = vmath::splat(kb, types::F32X4, init);
            kb.b.def_var(v, i);
            vecs.push(v);
        }
        let scalar = kb.b.declare_var(types::F32);
        let i = kb.f32const(init);
        kb.b.def_var(scalar, i);
        let nan = (u > 0 && vmath::needs_nan_track(comb, types::F32X4)).then(|| {
            let v = kb.b.declare_var(types::I32X4);
            let z = vmath::nan_mask_init(kb);
            kb.b.def_var(v, z);
            v
        });
        Accs {
            vecs,
            scalar,
            comb,
            nan,
        }
    }

    fn var(&self, slot: usize) -> Variable {
        self.vecs.get(slot).copied().unwrap_or(self.scalar)
    }

    /// The current value of `slot`.
    pub(crate) fn get(&self, kb: &mut Kb, slot: usize) -> Value {
        kb.b.use_var(self.var(slot))
    }

    /// Sets `slot` to `v`.
    pub(crate) fn set(&self, kb: &mut Kb, slot: usize, v: Value) {
        kb.b.def_var(self.var(slot), v);
    }

    /// `slot = comb(slot, v)`.
    pub(crate) fn add(&self, kb: &mut Kb, slot: usize, v: Value) {
        let a = self.get(kb, slot);
        let ty = if slot < self.vecs.len() {
            types::F32X4
        } else {
            types::F32
        };
        let r = vmath::comb_fast(kb, self.comb, ty, a, v);
        self.set(kb, slot, r);
        if let (Some(nv), true) = (self.nan, ty.is_vector()) {
            let m = kb.b.use_var(nv);
            let m = vmath::nan_track(kb, m, v);
            kb.b.def_var(nv, m);
        }
    }

    /// `slot = f(slot)`.
    pub(crate) fn step(
        &self,
        kb: &mut Kb,
        slot: usize,
        f: impl FnOnce(&mut Kb, Value) -> Result<Value, CodegenError>,
    ) -> Result<(), CodegenError> {
        let a = self.get(kb, slot);
        let r = f(kb, a)?;
        self.set(kb, slot, r);
        Ok(())
    }

    /// The combination of every slot: vectors as a tree, then their lanes, then the scalar.
    pub(crate) fn finish(&self, kb: &mut Kb) -> Value {
        let s = kb.b.use_var(self.scalar);
        let vs: Vec<Value> = self.vecs.iter().map(|&v| kb.b.use_var(v)).collect();
        match vmath::tree(kb, self.comb, vs) {
            None => s,
            Some(v) => {
                let v = match self.nan {
                    Some(nv) => {
                        let m = kb.b.use_var(nv);
                        vmath::nan_apply(kb, m, v)
                    }
                    None => v,
                };
                let h = vmath::hcomb(kb, self.comb, v);
                vmath::comb(kb, self.comb, h, s)
            }
        }
    }
}

/// Value type and register count of a lane block of `width` lanes.
pub(crate) fn block_regs(width: usize) -> (Type, usize) {
    if width >= 4 {
        (types::F32X4, width / 4)
    } else {
        (types::F32, 1)
    }
}

/// Covers `lanes` contiguous f32 lanes with blocks of 16 and 4 lanes (vector targets) and single
/// lanes; `f` gets each block's byte offset (from the first lane) and width.
pub(crate) fn lane_blocks(kb: &mut Kb, lanes: usize, f: &mut BlockFn) -> Result<(), CodegenError> {
    let mut done = 0usize;
    if kb.target.f32_lanes() >= 4 {
        for w in [16usize, 4] {
            let cnt = (lanes - done) / w;
            if cnt == 1 {
                let off = kb.iconst((done * 4) as i64);
                f(kb, off, w)?;
            } else if cnt > 1 {
                let hi = done + cnt * w;
                kb.for_n(
                    (done * 4) as i64,
                    (hi * 4) as i64,
                    (w * 4) as i64,
                    |kb, i| f(kb, i, w),
                )?;
            }
            done += cnt * w;
        }
    }
    if lanes - done == 1 {
        let off = kb.iconst((done * 4) as i64);
        f(kb, off, 1)?;
    } else if lanes > done {
        kb.for_n((done * 4) as i64, (lanes * 4) as i64, 4, |kb, i| {
            f(kb, i, 1)
        })?;
    }
    Ok(())
}

/// Emits nested loops `for i0 in 0..n0 { for i1 in 0..n1 { … body(base + Σ i_k·stride_k) } }` over
/// `loops = [(n_k, stride_k in bytes)]`, outermost first.
pub(crate) fn nest(
    kb: &mut Kb,
    base: Value,
    loops: &[(usize, i64)],
    body: &mut NestFn,
) -> Result<(), CodegenError> {
    match loops.split_first() {
        None => body(kb, base),
        Some((&(n, stride), rest)) => {
            if n == 1 {
                return nest(kb, base, rest, body);
            }
            kb.for_n(0, n as i64, 1, |kb, i| {
                let off = kb.offset(base, i, stride);
                nest(kb, off, rest, body)
            })
        }
    }
}

/// A split of `items` independent work items into tiles of `chunk` consecutive items.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    /// Number of tiles.
    pub tiles: u64,
    /// Items per tile (the last may have fewer).
    pub chunk: usize,
    /// Total items.
    pub items: usize,
}

/// Minimum work (element visits) per tile worth handing to another thread.
pub(crate) const MIN_TILE_WORK: usize = 1 << 16;

impl Tiling {
    /// Tiles for `items` items costing `work` element visits each, at least `min_work` per tile.
    pub(crate) fn new(items: usize, work: usize, min_work: usize) -> Tiling {
        let total = items.saturating_mul(work.max(1));
        let want = (total / min_work.max(1)).clamp(1, 256).min(items.max(1));
        let chunk = items.div_ceil(want).max(1);
        Tiling {
            tiles: items.div_ceil(chunk).max(1) as u64,
            chunk,
            items,
        }
    }

    /// Emits `for item in tile items { body(item) }` over this kernel's tiles.
    pub(crate) fn for_items(
        self,
        kb: &mut Kb,
        mut body: impl FnMut(&mut Kb, Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        if self.tiles == 1 {
            return kb.for_n(0, self.items as i64, 1, body);
        }
        kb.for_tiles(|kb, t| {
            let lo = kb.b.ins().imul_imm_s(t, self.chunk as i64);
            let hi = kb.b.ins().iadd_imm_s(lo, self.chunk as i64);
            let n = kb.iconst(self.items as i64);
            let hi = kb.b.ins().smin(hi, n);
            kb.for_range(lo, hi, 1, &mut body)
        })
    }
}

/// Splits a flat index `o` over dims `sizes` (row-major) and returns `Σ index_k · strides_k` (bytes).
pub(crate) fn unflatten(kb: &mut Kb, o: Value, dims: &[(usize, i64)]) -> Value {
    match dims {
        [] => kb.iconst(0),
        [(_, s)] => kb.b.ins().imul_imm_s(o, *s),
        _ => {
            let mut rem = o;
            let mut acc: Option<Value> = None;
            for (k, &(size, stride)) in dims.iter().enumerate().rev() {
                let idx = if k == 0 {
                    rem
                } else {
                    let sz = kb.iconst(size as i64);
                    let q = kb.b.ins().udiv(rem, sz);
                    let i = kb.b.ins().urem(rem, sz);
                    rem = q;
                    i
                };
                let term = kb.b.ins().imul_imm_s(idx, stride);
                acc = Some(match acc {
                    Some(a) => kb.b.ins().iadd(a, term),
                    None => term,
                });
            }
            acc.unwrap_or_else(|| kb.iconst(0))
        }
    }
}

/// `a == b` for i64 values, as a branch condition.
pub(crate) fn ieq(kb: &mut Kb, a: Value, b: i64) -> Value {
    kb.b.ins().icmp_imm_s(IntCC::Equal, a, b)
}
