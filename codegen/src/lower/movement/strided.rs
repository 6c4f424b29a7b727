//! Strided byte copies: the one primitive most movement ops lower to. A [`Copy`] moves a box of
//! elements between two operand buffers with arbitrary (also zero or negative) byte strides per dim;
//! the emitter normalizes it (drops unit dims, merges dims that are contiguous in both operands) and
//! picks the inner loop: a contiguous run copy, a broadcast fill, a blocked (4×4-vector for 4-byte
//! elements) transpose when the destination's innermost dim is strided in the source, or a plain
//! element loop. Big copies are split into tiles over their outermost dim.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{ConstantData, InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::WeightRef;

/// Target bytes of work per tile (memory-bound copies: ~25–50 µs).
pub const TILE_BYTES: usize = 256 * 1024;
/// Most tiles one copy is split into.
const MAX_TILES: usize = 64;

/// A buffer a copy reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// Node input `i`.
    In(usize),
    /// Node output `k`.
    Out(usize),
    /// Bytes packed in the weights blob.
    W(WeightRef),
}

/// `dst[dst_off + Σ i_d·ds_d] = src[src_off + Σ i_d·ss_d]` for every index in the box `dims`; all
/// offsets and strides in bytes, elements of `es` bytes.
#[derive(Debug, Clone)]
pub struct Copy {
    /// Source buffer.
    pub src: Buf,
    /// Source byte offset.
    pub src_off: i64,
    /// Destination buffer.
    pub dst: Buf,
    /// Destination byte offset.
    pub dst_off: i64,
    /// Box extents, outermost first.
    pub dims: Vec<usize>,
    /// Source byte strides.
    pub ss: Vec<i64>,
    /// Destination byte strides.
    pub ds: Vec<i64>,
    /// Element size in bytes.
    pub es: usize,
}

/// Row-major byte strides of `shape` with `es`-byte elements.
pub fn strides(shape: &[usize], es: usize) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = es as i64;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i] as i64;
    }
    s
}

impl Copy {
    /// A copy of a whole box from a contiguous layout into a contiguous layout (both row-major).
    pub fn contiguous(src: Buf, dst: Buf, dims: &[usize], es: usize) -> Copy {
        let s = strides(dims, es);
        Copy {
            src,
            src_off: 0,
            dst,
            dst_off: 0,
            dims: dims.to_vec(),
            ss: s.clone(),
            ds: s,
            es,
        }
    }

    /// Number of elements moved.
    pub fn elems(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes written.
    pub fn bytes(&self) -> usize {
        self.elems() * self.es
    }

    /// Drops unit dims and merges neighbours that are contiguous in both operands.
    fn normalize(&mut self) {
        let mut dims = Vec::new();
        let mut ss: Vec<i64> = Vec::new();
        let mut ds: Vec<i64> = Vec::new();
        for i in 0..self.dims.len() {
            let (d, s, t) = (self.dims[i], self.ss[i], self.ds[i]);
            if d == 1 {
                continue;
            }
            if let (Some(&ld), Some(&ls), Some(&lt)) = (dims.last(), ss.last(), ds.last())
                && ls == s * d as i64
                && lt == t * d as i64
            {
                let n = dims.len() - 1;
                dims[n] = ld * d;
                ss[n] = s;
                ds[n] = t;
                continue;
            }
            dims.push(d);
            ss.push(s);
            ds.push(t);
        }
        self.dims = dims;
        self.ss = ss;
        self.ds = ds;
    }

    /// Splits dim `i` into `(q, dims[i] / q)` (`q` divides it).
    fn split_dim(&mut self, i: usize, q: usize) {
        let inner = self.dims[i] / q;
        self.dims[i] = inner;
        self.dims.insert(i, q);
        self.ss.insert(i, self.ss[i + 1] * inner as i64);
        self.ds.insert(i, self.ds[i + 1] * inner as i64);
    }
}

/// How the innermost loop of a normalized copy moves elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inner {
    /// The last dim is contiguous in both operands: one run of bytes.
    Run,
    /// The last dim reads one element (source stride 0) into a contiguous run.
    Fill,
    /// The last two dims `(j, l)`: source stride of `j` is `es`, destination stride of `l` is `es`.
    Transpose,
    /// One element at a time along the last dim.
    Elems,
}

/// A copy prepared for emission: normalized, loop order fixed, inner kind and tiling chosen.
#[derive(Debug, Clone)]
struct Prepared {
    c: Copy,
    inner: Inner,
    /// Number of trailing dims the inner kernel handles (1 or 2).
    inner_dims: usize,
    /// Tiles over dim 0 (1 = untiled) and the dim-0 chunk per tile.
    tiles: usize,
    chunk: usize,
}

fn prepare(mut c: Copy) -> Option<Prepared> {
    if c.dims.contains(&0) {
        return None;
    }
    let bytes = c.bytes();
    c.normalize();
    if c.dims.is_empty() {
        // A single element.
        c.dims = vec![1];
        c.ss = vec![c.es as i64];
        c.ds = vec![c.es as i64];
    }
    let es = c.es as i64;
    let n = c.dims.len();
    let (inner, inner_dims) = if c.ss[n - 1] == es && c.ds[n - 1] == es {
        (Inner::Run, 1)
    } else if c.ss[n - 1] == 0 && c.ds[n - 1] == es {
        (Inner::Fill, 1)
    } else if let Some(j) = (0..n - 1)
        .rev()
        .find(|&j| c.ss[j] == es && c.ds[n - 1] == es)
        && c.dims[j] >= 4
        && c.dims[n - 1] >= 4
    {
        // Move dim j next to the innermost dim (any loop order writes each element once).
        let (d, s, t) = (c.dims.remove(j), c.ss.remove(j), c.ds.remove(j));
        c.dims.insert(n - 2, d);
        c.ss.insert(n - 2, s);
        c.ds.insert(n - 2, t);
        (Inner::Transpose, 2)
    } else {
        (Inner::Elems, 1)
    };
    // Tiling over dim 0; split dim 0 when it is too short to give the tiles the work wants.
    let want = (bytes / TILE_BYTES).clamp(1, MAX_TILES);
    if want >= 2 && c.dims[0] < want {
        let d0 = c.dims[0];
        // Keep the inner kernel's dims intact unless dim 0 is one of them (then it stays ≥ 4).
        let min_inner = if c.dims.len() <= inner_dims { 4 } else { 1 };
        if let Some(q) =
            (want..=(4 * want).min(d0)).find(|&q| d0.is_multiple_of(q) && d0 / q >= min_inner)
        {
            c.split_dim(0, q);
        }
    }
    let (tiles, chunk) = if c.dims.len() > inner_dims && want >= 2 {
        let d0 = c.dims[0];
        let t = want.min(d0);
        let chunk = d0.div_ceil(t);
        (d0.div_ceil(chunk), chunk)
    } else {
        (1, c.dims[0])
    };
    Some(Prepared {
        c,
        inner,
        inner_dims,
        tiles,
        chunk,
    })
}

/// Emits `phases` of copies: every phase starts after the previous one finished (a phase may read
/// what an earlier one wrote). Within a phase, copies must write disjoint bytes and not read bytes
/// the phase writes. Small copies of a phase share one single-tile kernel; big ones get their own
/// tiled kernel.
pub fn emit_phases(e: &mut Emitter, phases: &[Vec<Copy>]) -> Result<(), CodegenError> {
    for phase in phases {
        let preps: Vec<Prepared> = phase.iter().cloned().filter_map(prepare).collect();
        let (small, big): (Vec<&Prepared>, Vec<&Prepared>) =
            preps.iter().partition(|p| p.tiles == 1);
        if !small.is_empty() {
            e.kernel(1, |kb| {
                for p in &small {
                    emit_copy(kb, p, None)?;
                }
                Ok(())
            })?;
        }
        for p in big {
            e.kernel(p.tiles as u64, |kb| {
                kb.for_tiles(|kb, t| emit_copy(kb, p, Some(t)))
            })?;
        }
    }
    Ok(())
}

/// Base address of a buffer.
pub fn buf_addr(kb: &mut Kb, b: Buf) -> Result<Value, CodegenError> {
    match b {
        Buf::In(i) => kb.input(i),
        Buf::Out(k) => kb.output(k),
        Buf::W(w) => Ok(kb.weight(w)),
    }
}

fn emit_copy(kb: &mut Kb, p: &Prepared, tile: Option<Value>) -> Result<(), CodegenError> {
    let c = &p.c;
    let src = buf_addr(kb, c.src)?;
    let dst = buf_addr(kb, c.dst)?;
    let src = if c.src_off != 0 {
        kb.b.ins().iadd_imm_s(src, c.src_off)
    } else {
        src
    };
    let dst = if c.dst_off != 0 {
        kb.b.ins().iadd_imm_s(dst, c.dst_off)
    } else {
        dst
    };
    nest(kb, p, 0, src, dst, tile)
}

/// Loops over the outer dims from `level`, then the inner kernel.
fn nest(
    kb: &mut Kb,
    p: &Prepared,
    level: usize,
    src: Value,
    dst: Value,
    tile: Option<Value>,
) -> Result<(), CodegenError> {
    let c = &p.c;
    if level + p.inner_dims == c.dims.len() {
        return inner(kb, p, src, dst);
    }
    let (ss, ds) = (c.ss[level], c.ds[level]);
    let body = |kb: &mut Kb, i: Value| {
        let s = kb.offset(src, i, ss);
        let d = kb.offset(dst, i, ds);
        nest(kb, p, level + 1, s, d, None)
    };
    match tile {
        Some(t) if level == 0 => {
            let lo = kb.b.ins().imul_imm_s(t, p.chunk as i64);
            let hi = kb.b.ins().iadd_imm_s(lo, p.chunk as i64);
            let n = kb.iconst(c.dims[0] as i64);
            let hi = kb.b.ins().smin(hi, n);
            kb.for_range(lo, hi, 1, body)
        }
        _ => kb.for_n(0, c.dims[level] as i64, 1, body),
    }
}

fn inner(kb: &mut Kb, p: &Prepared, src: Value, dst: Value) -> Result<(), CodegenError> {
    let c = &p.c;
    let n = c.dims.len();
    let es = c.es;
    match p.inner {
        Inner::Run => copy_run(kb, dst, src, (c.dims[n - 1] * es) as i64),
        Inner::Fill => fill_run(kb, dst, src, c.dims[n - 1], es),
        Inner::Elems => {
            let (ss, ds) = (c.ss[n - 1], c.ds[n - 1]);
            kb.for_n(0, c.dims[n - 1] as i64, 1, |kb, i| {
                let s = kb.offset(src, i, ss);
                let d = kb.offset(dst, i, ds);
                copy_elem(kb, d, s, es)
            })
        }
        Inner::Transpose => transpose(
            kb,
            dst,
            src,
            c.dims[n - 2],
            c.dims[n - 1],
            c.ss[n - 1],
            c.ds[n - 2],
            es,
        ),
    }
}

/// Integer type of an element of `es` bytes (≤ 8).
fn int_ty(es: usize) -> Option<types::Type> {
    match es {
        1 => Some(types::I8),
        2 => Some(types::I16),
        4 => Some(types::I32),
        8 => Some(types::I64),
        _ => None,
    }
}

/// Copies one element of `es` bytes.
pub fn copy_elem(kb: &mut Kb, dst: Value, src: Value, es: usize) -> Result<(), CodegenError> {
    match int_ty(es) {
        Some(ty) => {
            let v = kb.load(ty, src, 0);
            kb.store(v, dst, 0);
            Ok(())
        }
        None => kb.copy_bytes(dst, src, es as i64),
    }
}

/// Copies `bytes` contiguous bytes (static length): 64 bytes per iteration, then 16, then the tail.
pub fn copy_run(kb: &mut Kb, dst: Value, src: Value, bytes: i64) -> Result<(), CodegenError> {
    let vec = kb.target.f32_lanes() >= 4;
    let (wide, w) = if vec {
        (types::I8X16, 16i64)
    } else {
        (types::I64, 8i64)
    };
    let big = 4 * w;
    let nbig = bytes / big * big;
    if nbig > big {
        kb.for_n(0, nbig, big, |kb, i| {
            let s = kb.b.ins().iadd(src, i);
            let d = kb.b.ins().iadd(dst, i);
            let vs: Vec<Value> = (0..4).map(|k| kb.load(wide, s, (k * w) as i32)).collect();
            for (k, v) in vs.into_iter().enumerate() {
                kb.store(v, d, (k as i64 * w) as i32);
            }
            Ok(())
        })?;
    } else if nbig == big {
        let vs: Vec<Value> = (0..4).map(|k| kb.load(wide, src, (k * w) as i32)).collect();
        for (k, v) in vs.into_iter().enumerate() {
            kb.store(v, dst, (k as i64 * w) as i32);
        }
    }
    let mut o = nbig;
    while bytes - o >= w {
        let v = kb.load(wide, src, o as i32);
        kb.store(v, dst, o as i32);
        o += w;
    }
    while o < bytes {
        let (ty, n) = match bytes - o {
            r if r >= 8 => (types::I64, 8),
            r if r >= 4 => (types::I32, 4),
            r if r >= 2 => (types::I16, 2),
            _ => (types::I8, 1),
        };
        let v = kb.load(ty, src, o as i32);
        kb.store(v, dst, o as i32);
        o += n;
    }
    Ok(())
}

/// Stores `bytes` zero bytes at `dst`.
pub fn zero_run(kb: &mut Kb, dst: Value, bytes: i64) -> Result<(), CodegenError> {
    let (z, w) = if kb.target.f32_lanes() >= 4 {
        let z = kb.b.ins().iconst(types::I8, 0);
        (kb.b.ins().splat(types::I8X16, z), 16i64)
    } else {
        (kb.b.ins().iconst(types::I64, 0), 8i64)
    };
    let main = bytes / w * w;
    if main > 4 * w {
        kb.for_n(0, main, w, |kb, i| {
            let d = kb.b.ins().iadd(dst, i);
            kb.store(z, d, 0);
            Ok(())
        })?;
    } else {
        for o in (0..main).step_by(w as usize) {
            kb.store(z, dst, o as i32);
        }
    }
    let mut o = main;
    let z64 = kb.b.ins().iconst(types::I64, 0);
    while o < bytes {
        let (ty, n) = match bytes - o {
            r if r >= 8 => (types::I64, 8),
            r if r >= 4 => (types::I32, 4),
            r if r >= 2 => (types::I16, 2),
            _ => (types::I8, 1),
        };
        let v = if ty == types::I64 {
            z64
        } else {
            kb.b.ins().ireduce(ty, z64)
        };
        kb.store(v, dst, o as i32);
        o += n;
    }
    Ok(())
}

/// Writes the element at `src` `n` times contiguously at `dst`.
pub fn fill_run(
    kb: &mut Kb,
    dst: Value,
    src: Value,
    n: usize,
    es: usize,
) -> Result<(), CodegenError> {
    let Some(ty) = int_ty(es) else {
        return kb.for_n(0, n as i64, 1, |kb, i| {
            let d = kb.offset(dst, i, es as i64);
            kb.copy_bytes(d, src, es as i64)
        });
    };
    let v = kb.load(ty, src, 0);
    let bytes = (n * es) as i64;
    let mut o = 0i64;
    if kb.target.f32_lanes() >= 4 && bytes >= 16 {
        let vty = match es {
            1 => types::I8X16,
            2 => types::I16X8,
            4 => types::I32X4,
            _ => types::I64X2,
        };
        let sv = kb.b.ins().splat(vty, v);
        let nv = bytes / 16 * 16;
        if nv > 64 {
            let n64 = nv / 64 * 64;
            kb.for_n(0, n64, 64, |kb, i| {
                let d = kb.b.ins().iadd(dst, i);
                for k in 0..4 {
                    kb.store(sv, d, k * 16);
                }
                Ok(())
            })?;
            o = n64;
        }
        while o < nv {
            kb.store(sv, dst, o as i32);
            o += 16;
        }
    } else if bytes > 64 {
        let step = es as i64;
        let n_main = bytes / step * step;
        kb.for_n(0, n_main, step, |kb, i| {
            let d = kb.b.ins().iadd(dst, i);
            kb.store(v, d, 0);
            Ok(())
        })?;
        o = n_main;
    }
    while o < bytes {
        kb.store(v, dst, o as i32);
        o += es as i64;
    }
    Ok(())
}

/// A `shuffle` of two 16-byte vectors picking 4-byte lanes `lanes` (0–3 from `a`, 4–7 from `b`).
fn shuffle32(kb: &mut Kb, a: Value, b: Value, lanes: [u8; 4]) -> Value {
    let bytes: Vec<u8> = lanes
        .iter()
        .flat_map(|&l| (0..4).map(move |k| l * 4 + k))
        .collect();
    let imm = kb.b.func.dfg.immediates.push(ConstantData::from(bytes));
    kb.b.ins().shuffle(a, b, imm)
}

/// 4×4 block of 4-byte elements: rows `l..l+4` of the source (each 4 consecutive `j`s) become rows
/// `j..j+4` of the destination (each 4 consecutive `l`s).
fn micro4x4_vec(kb: &mut Kb, dst: Value, src: Value, sl: i64, dj: i64) {
    let r: Vec<Value> = (0..4)
        .map(|k| kb.load(types::I8X16, src, (k * sl) as i32))
        .collect();
    let t0 = shuffle32(kb, r[0], r[1], [0, 4, 1, 5]);
    let t1 = shuffle32(kb, r[0], r[1], [2, 6, 3, 7]);
    let t2 = shuffle32(kb, r[2], r[3], [0, 4, 1, 5]);
    let t3 = shuffle32(kb, r[2], r[3], [2, 6, 3, 7]);
    let c0 = shuffle32(kb, t0, t2, [0, 1, 4, 5]);
    let c1 = shuffle32(kb, t0, t2, [2, 3, 6, 7]);
    let c2 = shuffle32(kb, t1, t3, [0, 1, 4, 5]);
    let c3 = shuffle32(kb, t1, t3, [2, 3, 6, 7]);
    for (k, c) in [c0, c1, c2, c3].into_iter().enumerate() {
        kb.store(c, dst, (k as i64 * dj) as i32);
    }
}

/// A `w`×`h` block of elements copied one by one (`w` consecutive `j`, `h` consecutive `l`).
fn micro_scalar(
    kb: &mut Kb,
    dst: Value,
    src: Value,
    (w, h): (usize, usize),
    sl: i64,
    dj: i64,
    es: usize,
) -> Result<(), CodegenError> {
    for l in 0..h as i64 {
        for j in 0..w as i64 {
            let s = kb.b.ins().iadd_imm_s(src, l * sl + j * es as i64);
            let d = kb.b.ins().iadd_imm_s(dst, j * dj + l * es as i64);
            copy_elem(kb, d, s, es)?;
        }
    }
    Ok(())
}

/// Fits in a 32-bit memory offset.
fn fits32(v: i64) -> bool {
    i32::try_from(v).is_ok()
}

/// The transposing inner kernel over `(j, l)`: source `j` stride `es`, `l` stride `sl`; destination
/// `j` stride `dj`, `l` stride `es`. Panels of `JB` consecutive `j`s, swept along `l` in 4×4 blocks.
#[allow(clippy::too_many_arguments)]
fn transpose(
    kb: &mut Kb,
    dst: Value,
    src: Value,
    nj: usize,
    nl: usize,
    sl: i64,
    dj: i64,
    es: usize,
) -> Result<(), CodegenError> {
    let use_vec = es == 4 && kb.target.f32_lanes() >= 4 && fits32(3 * sl) && fits32(3 * dj);
    let jb = (64 / es).clamp(4, 16);
    let full = nj / jb * jb;
    let esi = es as i64;
    let panel = |kb: &mut Kb, j0: Value, w: usize| -> Result<(), CodegenError> {
        let s0 = kb.offset(src, j0, esi);
        let d0 = kb.offset(dst, j0, dj);
        let w4 = w / 4 * 4;
        let nl4 = nl / 4 * 4;
        if nl4 > 0 {
            kb.for_n(0, nl4 as i64, 4, |kb, l| {
                let s = kb.offset(s0, l, sl);
                let d = kb.offset(d0, l, esi);
                for jj in (0..w4).step_by(4) {
                    let sj = kb.b.ins().iadd_imm_s(s, jj as i64 * esi);
                    let dd = kb.b.ins().iadd_imm_s(d, jj as i64 * dj);
                    if use_vec {
                        micro4x4_vec(kb, dd, sj, sl, dj);
                    } else {
                        micro_scalar(kb, dd, sj, (4, 4), sl, dj, es)?;
                    }
                }
                if w4 < w {
                    let sj = kb.b.ins().iadd_imm_s(s, w4 as i64 * esi);
                    let dd = kb.b.ins().iadd_imm_s(d, w4 as i64 * dj);
                    micro_scalar(kb, dd, sj, (w - w4, 4), sl, dj, es)?;
                }
                Ok(())
            })?;
        }
        if nl4 < nl {
            let s = kb.b.ins().iadd_imm_s(s0, nl4 as i64 * sl);
            let d = kb.b.ins().iadd_imm_s(d0, nl4 as i64 * esi);
            micro_scalar(kb, d, s, (w, nl - nl4), sl, dj, es)?;
        }
        Ok(())
    };
    if full > 0 {
        kb.for_n(0, full as i64, jb as i64, |kb, j0| panel(kb, j0, jb))?;
    }
    if full < nj {
        let j0 = kb.iconst(full as i64);
        panel(kb, j0, nj - full)?;
    }
    Ok(())
}

/// `v < 0 ? v + n : v` and whether the result is in `[0, n)`, for an i64 index `v`.
pub fn norm_index(kb: &mut Kb, v: Value, n: usize) -> (Value, Value) {
    let neg = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, v, 0);
    let plus = kb.b.ins().iadd_imm_s(v, n as i64);
    let j = kb.b.ins().select(neg, plus, v);
    let ok = kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, j, n as i64);
    (j, ok)
}
