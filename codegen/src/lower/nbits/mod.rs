//! Native `matmul_nbits` (com.microsoft MatMulNBits): `y = a @ dequant(b)ᵀ (+ bias)` over constant
//! weights of 1, 2, 4 or 8 bits, unpacked in registers inside the product loop — the weights stay
//! `bits`-wide in memory (8× smaller than f32 at 4 bits) and no dequantized copy exists at run time.
//!
//! At compile time the codes are regrouped (no dequantization) into 32-bit words: one word per output
//! column holds the `32 / bits` consecutive `k` codes of a *group*, LSB first, and the words of the `P`
//! columns of a panel (`P` = two vectors) are adjacent, so one vector load gives a group of codes
//! for `lanes` columns. Scales and zero points become f32 per (panel, block, column); the bias is
//! padded to whole panels. The kernel computes an `mr × P` block of outputs (`mr ≤ MR` rows of `a`)
//! with accumulators in registers: per block it loads the columns' scales and zero points, per group
//! one word vector per column vector, and per `k` step it extracts the codes (`ushr`, `band`),
//! converts them to f32, forms the weight `code · scale + offset` in one FMA (`offset = −zero_point ·
//! scale` per block, computed at compile time; within an ulp of the interpreter's `(code −
//! zero_point) · scale`) and adds `a[i, k] · w` by FMA into each row's accumulators. Blocks are a multiple of
//! the group (the lowering falls back otherwise), so only the last block may be partial (`k` not a
//! multiple of `block_size`), its last group shorter; both are unrolled at compile time. A partial
//! last panel (`n` not a multiple of `P`) reads zero-padded words and stores only its real columns.
//! Batch dims of `a` are rows (`a` is contiguous `[rows, k]`). Work items are (panel, row block)
//! pairs, each computing its outputs completely, so results do not depend on the thread count.
//!
//! Falls back (with the reason) for: non-f32 activations or scales, 3/5/6/7-bit codes, a block size
//! that is not a multiple of `32 / bits`, weights, scales, zero points, bias or `g_idx` that are not
//! constants, and a `g_idx` other than the trivial `k / block_size` (act-order).

use carve_ir::ops::quant::blockwise::NBitsLayout;
use carve_ir::ops::quant::{MatMulNBits, QuantOp};
use carve_ir::{DType, Op};
use carve_runtime::Data;
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::reduce::rows::{MIN_TILE_WORK, Tiling};
use crate::lower::{Lowering, NodeInfo, WeightRef, Weights};

mod tile;

/// Rows of `a` per register block.
const MR: usize = 4;
/// Column vectors per panel.
const NV: usize = 2;

/// Select phase (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, wts: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Quant(QuantOp::MatMulNBits(op)) = info.op() else {
        return fallback("not a matmul_nbits node");
    };
    match Plan::new(info, op)? {
        Ok(plan) => match tile::choose(info, &plan) {
            Some(t) => Ok(tile::lowering(plan, t, info, wts)),
            None => Ok(plan.lowering(info, wts)),
        },
        Err(reason) => fallback(reason),
    }
}

fn fallback(reason: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(reason.into()))
}

/// The node's geometry and its constant operands, decoded.
struct Plan {
    layout: NBitsLayout,
    /// Rows of `a` (product of its leading dims).
    rows: usize,
    /// Codes per 32-bit word.
    per: usize,
    /// f32 lanes per vector (4, or 1 on scalar targets).
    lanes: usize,
    /// Words (columns) per panel.
    p: usize,
    /// Panels.
    panels: usize,
    /// Code groups along `k`.
    groups: usize,
    b: Vec<u8>,
    scales: Vec<f32>,
    /// Zero point per (column, block).
    zps: Vec<f32>,
    bias: Option<Vec<f32>>,
}

impl Plan {
    /// Decodes the node, or says why it has no native kernel.
    fn new(info: &NodeInfo, op: &MatMulNBits) -> Result<Result<Plan, String>, CodegenError> {
        let layout = NBitsLayout::of(op).map_err(|e| info.err(e.to_string()))?;
        let NBitsLayout {
            k,
            n,
            bits,
            block_size,
        } = layout;
        if info.in_dtype(0)? != DType::F32 || info.out_dtype(0)? != DType::F32 {
            return Ok(Err("only f32 activations are native".into()));
        }
        if 32 % bits != 0 {
            return Ok(Err(format!(
                "{bits}-bit codes have no native kernel (1, 2, 4 and 8 bits do)"
            )));
        }
        let per = 32 / bits;
        if block_size % per != 0 {
            return Ok(Err(format!(
                "block_size {block_size} is not a multiple of {per} (codes per 32-bit word)"
            )));
        }
        let a_shape = info.in_shape(0)?;
        if a_shape.last() != Some(&k) {
            return Err(info.err(format!("a's last dim must be k={k}, got {a_shape:?}")));
        }
        let rows: usize = a_shape[..a_shape.len() - 1].iter().product();
        let b = match info.const_tensor(1).map(|t| t.data) {
            Some(Data::U8(v)) if v.len() == layout.b_len() => v,
            Some(_) => return Err(info.err(format!("b must be {} u8 bytes", layout.b_len()))),
            None => return Ok(Err("b is not a constant".into())),
        };
        let Some(scales) = info.const_f32s(2) else {
            return Ok(Err("scales are not f32 constants".into()));
        };
        if scales.len() != layout.scales_len() {
            return Err(info.err(format!(
                "scales must have {} elements, got {}",
                layout.scales_len(),
                scales.len()
            )));
        }
        let zps = match zero_points(info, &layout)? {
            Ok(z) => z,
            Err(why) => return Ok(Err(why)),
        };
        if info.has_input(4) {
            let Some(g) = info.const_i64s(4) else {
                return Ok(Err("g_idx is not a constant".into()));
            };
            let trivial = g.len() == k
                && g.iter()
                    .enumerate()
                    .all(|(kk, &q)| q == (kk / block_size) as i64);
            if !trivial {
                return Ok(Err(
                    "g_idx is not k / block_size (act-order): no native kernel".into(),
                ));
            }
        }
        let bias = if info.has_input(5) {
            match info.const_f32s(5) {
                Some(v) if v.len() == n => Some(v),
                Some(v) => {
                    return Err(info.err(format!("bias must have n={n} elements, got {}", v.len())));
                }
                None => return Ok(Err("bias is not an f32 constant".into())),
            }
        } else {
            None
        };
        let lanes = if info.target.f32_lanes() >= 4 { 4 } else { 1 };
        let p = lanes * NV;
        Ok(Ok(Plan {
            layout,
            rows,
            per,
            lanes,
            p,
            panels: n.div_ceil(p),
            groups: k.div_ceil(per),
            b,
            scales,
            zps,
            bias,
        }))
    }

    /// Code words `[panel][group][column of panel]`, zero for padding.
    fn words(&self) -> Vec<u8> {
        let l = &self.layout;
        let mut out = vec![0u32; self.panels * self.groups * self.p];
        for j in 0..l.n {
            let (pn, c) = (j / self.p, j % self.p);
            for g in 0..self.groups {
                let mut w = 0u32;
                for i in 0..self.per {
                    let kk = g * self.per + i;
                    if kk < l.k {
                        w |= l.code(&self.b, j, kk).unwrap_or(0) << (i * l.bits);
                    }
                }
                out[(pn * self.groups + g) * self.p + c] = w;
            }
        }
        out.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A per-(column, block) table as `[panel][block][column of panel]`, zero for padding.
    fn per_block(&self, v: &[f32]) -> Vec<f32> {
        let blocks = self.layout.blocks();
        let mut out = vec![0f32; self.panels * blocks * self.p];
        for j in 0..self.layout.n {
            for q in 0..blocks {
                out[((j / self.p) * blocks + q) * self.p + j % self.p] = v[j * blocks + q];
            }
        }
        out
    }

    /// Sets the panel width to `p` columns (the layout of every table follows it).
    fn with_panel(self, p: usize) -> Plan {
        Plan {
            p,
            panels: self.layout.n.div_ceil(p),
            ..self
        }
    }

    /// The kernel's constant tables, added to the weights blob (and the node's constant inputs
    /// marked as baked in).
    fn tables(&self, info: &NodeInfo, wts: &mut Weights) -> Tables {
        let words = wts.add_bytes(&self.words());
        let scales = wts.add_f32(&self.per_block(&self.scales));
        // `−zero_point · scale` per block: the weight is one FMA, `code · scale + offset`.
        let offsets: Vec<f32> = self
            .zps
            .iter()
            .zip(&self.scales)
            .map(|(z, s)| -(z * s))
            .collect();
        let zps = wts.add_f32(&self.per_block(&offsets));
        let bias = self.bias.as_ref().map(|b| {
            let mut v = b.clone();
            v.resize(self.panels * self.p, 0.0);
            wts.add_f32(&v)
        });
        for i in 1..=5 {
            wts.baked(info, i);
        }
        Tables {
            words,
            scales,
            zps,
            bias,
        }
    }

    fn lowering(self, info: &NodeInfo, wts: &mut Weights) -> Lowering {
        let Tables {
            words,
            scales,
            zps,
            bias,
        } = self.tables(info, wts);
        let g = Geometry {
            k: self.layout.k,
            n: self.layout.n,
            bits: self.layout.bits,
            block_size: self.layout.block_size,
            blocks: self.layout.blocks(),
            rows: self.rows,
            per: self.per,
            lanes: self.lanes,
            p: self.p,
            panels: self.panels,
            groups: self.groups,
        };
        let row_blocks = g.rows.div_ceil(MR);
        let tiling = Tiling::new(
            g.panels * row_blocks,
            MR.min(g.rows) * g.k * g.p,
            MIN_TILE_WORK,
        );
        Lowering::Native {
            in_place: None,
            emit: Box::new(move |e| {
                e.kernel(tiling.tiles, |kb| {
                    let a = kb.input(0)?;
                    let out = kb.output(0)?;
                    let ops = Operands {
                        a,
                        out,
                        words: kb.weight(words),
                        scales: kb.weight(scales),
                        zps: kb.weight(zps),
                        bias: bias.map(|b| kb.weight(b)),
                    };
                    tiling.for_items(kb, |kb, item| item_body(kb, &g, &ops, item, row_blocks))
                })
            }),
        }
    }
}

/// The constant tables of a plan in the weights blob, all `[panel][…][column of panel]` with the
/// plan's panel width.
#[derive(Clone, Copy)]
struct Tables {
    /// Code words per (panel, group, column).
    words: WeightRef,
    /// Scales per (panel, block, column).
    scales: WeightRef,
    /// `−zero_point · scale` per (panel, block, column).
    zps: WeightRef,
    /// The bias padded to whole panels.
    bias: Option<WeightRef>,
}

/// Zero point per (column, block) as f32: unpacked from packed u8 codes, read from a float tensor
/// (same type as the scales), or the default `2^(bits − 1)`; `Err(reason)` when not a constant.
fn zero_points(info: &NodeInfo, l: &NBitsLayout) -> Result<Result<Vec<f32>, String>, CodegenError> {
    let blocks = l.blocks();
    if !info.has_input(3) {
        return Ok(Ok(vec![l.default_zero_point() as f32; l.scales_len()]));
    }
    match info.const_tensor(3).map(|t| t.data) {
        Some(Data::U8(z)) => {
            let mut v = Vec::with_capacity(l.scales_len());
            for j in 0..l.n {
                for q in 0..blocks {
                    let zp = l.packed_zero_point(&z, j, q).ok_or_else(|| {
                        info.err(format!("packed zero points must have {} bytes", l.zp_len()))
                    })?;
                    v.push(zp as f32);
                }
            }
            Ok(Ok(v))
        }
        Some(Data::F32(z)) if z.len() == l.scales_len() => Ok(Ok(z)),
        Some(Data::F32(z)) => Err(info.err(format!(
            "zero points must have {} elements, got {}",
            l.scales_len(),
            z.len()
        ))),
        Some(_) => Ok(Err("zero points are neither packed u8 nor f32".into())),
        None => Ok(Err("zero points are not a constant".into())),
    }
}

/// Compile-time sizes the kernel is specialized to.
#[derive(Clone, Copy)]
struct Geometry {
    k: usize,
    n: usize,
    bits: usize,
    block_size: usize,
    blocks: usize,
    rows: usize,
    per: usize,
    lanes: usize,
    p: usize,
    panels: usize,
    groups: usize,
}

impl Geometry {
    fn fty(&self) -> types::Type {
        if self.lanes == 4 {
            types::F32X4
        } else {
            types::F32
        }
    }

    fn ity(&self) -> types::Type {
        if self.lanes == 4 {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// Bytes of one vector of columns.
    fn vbytes(&self) -> i32 {
        (self.lanes * 4) as i32
    }
}

/// The kernel's base addresses.
struct Operands {
    a: Value,
    out: Value,
    words: Value,
    scales: Value,
    zps: Value,
    bias: Option<Value>,
}

/// One work item: panel `item / row_blocks`, row block `item % row_blocks` (the last row block may
/// hold fewer than [`MR`] rows).
fn item_body(
    kb: &mut Kb,
    g: &Geometry,
    ops: &Operands,
    item: Value,
    row_blocks: usize,
) -> Result<(), CodegenError> {
    let (panel, rb) = if row_blocks == 1 {
        (item, kb.iconst(0))
    } else {
        let rbs = kb.iconst(row_blocks as i64);
        (kb.b.ins().udiv(item, rbs), kb.b.ins().urem(item, rbs))
    };
    let tail = g.rows % MR;
    if tail == 0 || row_blocks == 1 {
        return block(kb, g, ops, (panel, rb), MR.min(g.rows));
    }
    let full =
        kb.b.ins()
            .icmp_imm_s(IntCC::SignedLessThan, rb, (row_blocks - 1) as i64);
    if_else(
        kb,
        full,
        |kb| block(kb, g, ops, (panel, rb), MR),
        |kb| block(kb, g, ops, (panel, rb), tail),
    )
}

/// `if cond { yes } else { no }`.
fn if_else(
    kb: &mut Kb,
    cond: Value,
    yes: impl FnOnce(&mut Kb) -> Result<(), CodegenError>,
    no: impl FnOnce(&mut Kb) -> Result<(), CodegenError>,
) -> Result<(), CodegenError> {
    let (y, n, join) = (
        kb.b.create_block(),
        kb.b.create_block(),
        kb.b.create_block(),
    );
    kb.b.ins().brif(cond, y, &[], n, &[]);
    kb.b.switch_to_block(y);
    yes(kb)?;
    kb.b.ins().jump(join, &[]);
    kb.b.switch_to_block(n);
    no(kb)?;
    kb.b.ins().jump(join, &[]);
    kb.b.switch_to_block(join);
    Ok(())
}

/// Addresses of one (panel, row block): `a`'s first row, the panel's words, scales and zero points.
struct Bases {
    a: Value,
    words: Value,
    scales: Value,
    zps: Value,
}

/// The `mr × P` outputs of one panel and row block.
fn block(
    kb: &mut Kb,
    g: &Geometry,
    ops: &Operands,
    (panel, rb): (Value, Value),
    mr: usize,
) -> Result<(), CodegenError> {
    let pbytes = (g.p * 4) as i64;
    let row0 = kb.b.ins().imul_imm_s(rb, MR as i64);
    let bases = Bases {
        a: kb.offset(ops.a, row0, g.k as i64 * 4),
        words: kb.offset(ops.words, panel, g.groups as i64 * pbytes),
        scales: kb.offset(ops.scales, panel, g.blocks as i64 * pbytes),
        zps: kb.offset(ops.zps, panel, g.blocks as i64 * pbytes),
    };
    let zero = kb.f32const(0.0);
    let zero = if g.lanes == 4 {
        kb.b.ins().splat(types::F32X4, zero)
    } else {
        zero
    };
    let mut accs = vec![zero; mr * NV];
    let gpb = g.block_size / g.per;
    let full_blocks = g.k / g.block_size;
    if full_blocks > 0 {
        accs = kb.for_carried(full_blocks as i64, &accs, |kb, q, accs| {
            let qb = kb.offset(bases.words, q, gpb as i64 * pbytes);
            let qa = kb.offset(bases.a, q, g.block_size as i64 * 4);
            let sz = scale_zp(kb, g, &bases, q);
            kb.for_carried(gpb as i64, accs, |kb, gi, accs| {
                let wg = kb.offset(qb, gi, pbytes);
                let ag = kb.offset(qa, gi, g.per as i64 * 4);
                Ok(group(kb, g, (wg, ag), g.per, sz, accs, mr))
            })
        })?;
    }
    let last = g.k - full_blocks * g.block_size;
    if last > 0 {
        // The partial last block: whole groups in a loop, then the short group unrolled.
        let q = kb.iconst(full_blocks as i64);
        let sz = scale_zp(kb, g, &bases, q);
        let qb =
            kb.b.ins()
                .iadd_imm_s(bases.words, (full_blocks * gpb) as i64 * pbytes);
        let qa =
            kb.b.ins()
                .iadd_imm_s(bases.a, (full_blocks * g.block_size * 4) as i64);
        let whole = last / g.per;
        if whole > 0 {
            accs = kb.for_carried(whole as i64, &accs, |kb, gi, accs| {
                let wg = kb.offset(qb, gi, pbytes);
                let ag = kb.offset(qa, gi, g.per as i64 * 4);
                Ok(group(kb, g, (wg, ag), g.per, sz, accs, mr))
            })?;
        }
        let rest = last % g.per;
        if rest > 0 {
            let wg = kb.b.ins().iadd_imm_s(qb, whole as i64 * pbytes);
            let ag = kb.b.ins().iadd_imm_s(qa, (whole * g.per * 4) as i64);
            accs = group(kb, g, (wg, ag), rest, sz, &accs, mr);
        }
    }
    store(kb, g, ops, (panel, row0), &accs, mr)
}

/// The scale and offset (`−zero_point · scale`) vectors of block `q`, per column vector of the
/// panel.
fn scale_zp(kb: &mut Kb, g: &Geometry, bases: &Bases, q: Value) -> [[Value; NV]; 2] {
    let pbytes = (g.p * 4) as i64;
    let s = kb.offset(bases.scales, q, pbytes);
    let z = kb.offset(bases.zps, q, pbytes);
    let ty = g.fty();
    let vb = g.vbytes();
    [
        std::array::from_fn(|v| kb.load_ro(ty, s, v as i32 * vb)),
        std::array::from_fn(|v| kb.load_ro(ty, z, v as i32 * vb)),
    ]
}

/// `steps` consecutive `k` steps of one code group: words at `wg`, `a` at `ag` (row 0's first `k`).
fn group(
    kb: &mut Kb,
    g: &Geometry,
    (wg, ag): (Value, Value),
    steps: usize,
    [sv, zv]: [[Value; NV]; 2],
    accs: &[Value],
    mr: usize,
) -> Vec<Value> {
    let (ity, fty) = (g.ity(), g.fty());
    let words: [Value; NV] = std::array::from_fn(|v| kb.load_ro(ity, wg, v as i32 * g.vbytes()));
    let mask = kb.b.ins().iconst(types::I32, ((1u64 << g.bits) - 1) as i64);
    let mask = if g.lanes == 4 {
        kb.b.ins().splat(types::I32X4, mask)
    } else {
        mask
    };
    let mut accs = accs.to_vec();
    for t in 0..steps {
        let shift = t * g.bits;
        let w: [Value; NV] = std::array::from_fn(|v| {
            let mut c = words[v];
            if shift > 0 {
                c = kb.b.ins().ushr_imm_u(c, shift as i64);
            }
            if shift + g.bits < 32 {
                c = kb.b.ins().band(c, mask);
            }
            let f = kb.b.ins().fcvt_from_sint(fty, c);
            fma(kb, f, sv[v], zv[v])
        });
        for i in 0..mr {
            let x = kb.load(types::F32, ag, ((i * g.k + t) * 4) as i32);
            let x = if g.lanes == 4 {
                kb.b.ins().splat(types::F32X4, x)
            } else {
                x
            };
            for v in 0..NV {
                let acc = accs[i * NV + v];
                accs[i * NV + v] = fma(kb, x, w[v], acc);
            }
        }
    }
    accs
}

/// `a · b + c` (fused where the target has FMA).
fn fma(kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
    if kb.target.has_fma() {
        kb.b.ins().fma(a, b, c)
    } else {
        let p = kb.b.ins().fmul(a, b);
        kb.b.ins().fadd(p, c)
    }
}

/// Adds the bias and stores the accumulators to output rows `row0..row0 + mr`, columns of `panel`
/// (only the real columns of a partial last panel).
fn store(
    kb: &mut Kb,
    g: &Geometry,
    ops: &Operands,
    (panel, row0): (Value, Value),
    accs: &[Value],
    mr: usize,
) -> Result<(), CodegenError> {
    let col0 = kb.b.ins().imul_imm_s(panel, g.p as i64);
    let mut vals = accs.to_vec();
    if let Some(bias) = ops.bias {
        let ba = kb.offset(bias, col0, 4);
        for v in 0..NV {
            let bv = kb.load_ro(g.fty(), ba, v as i32 * g.vbytes());
            for i in 0..mr {
                vals[i * NV + v] = kb.b.ins().fadd(vals[i * NV + v], bv);
            }
        }
    }
    let rowa = kb.offset(ops.out, row0, g.n as i64 * 4);
    let dst = kb.offset(rowa, col0, 4);
    let write = |kb: &mut Kb, cols: usize| {
        for i in 0..mr {
            for v in 0..NV {
                let base = v * g.lanes;
                let off = ((i * g.n + base) * 4) as i32;
                let val = vals[i * NV + v];
                if base + g.lanes <= cols {
                    kb.store(val, dst, off);
                    continue;
                }
                for l in base..cols.max(base) {
                    let s = if g.lanes == 4 {
                        kb.b.ins().extractlane(val, (l - base) as u8)
                    } else {
                        val
                    };
                    kb.store(s, dst, off + ((l - base) * 4) as i32);
                }
            }
        }
        Ok::<(), CodegenError>(())
    };
    let edge = g.n % g.p;
    if edge == 0 {
        return write(kb, g.p);
    }
    if g.panels == 1 {
        return write(kb, edge);
    }
    let inner =
        kb.b.ins()
            .icmp_imm_s(IntCC::SignedLessThan, panel, (g.panels - 1) as i64);
    if_else(kb, inner, |kb| write(kb, g.p), |kb| write(kb, edge))
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::quant::blockwise::{NBitsLayout, quantize};
    use carve_runtime::{Data, Tensor};

    use super::*;
    use crate::testing::{Operand, check_node, random_f32, random_tensor};

    fn f32s(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            data: Data::F32(v),
        }
    }

    #[test]
    fn matches_the_interpreter_with_packed_zero_points_and_bias() {
        let (k, n, bs) = (70, 13, 16);
        let l = NBitsLayout::new(k, n, 4, bs).unwrap();
        let p = quantize(&random_f32(k * n, 3, -1.0, 1.0), l, false).unwrap();
        let zp = p.zero_points.clone().unwrap();
        let ops = [
            Operand::Input(random_tensor(&[2, 3, k], 1, -1.0, 1.0)),
            Operand::Const(Tensor {
                shape: vec![n, l.blocks(), l.blob()],
                data: Data::U8(p.b.clone()),
            }),
            Operand::Const(f32s(&[n * l.blocks()], p.scales.clone())),
            Operand::Const(Tensor {
                shape: vec![zp.len()],
                data: Data::U8(zp),
            }),
            Operand::Absent,
            Operand::Const(random_tensor(&[n], 4, -1.0, 1.0)),
        ];
        let op = MatMulNBits {
            k: k as i64,
            n: n as i64,
            bits: 4,
            block_size: bs as i64,
            accuracy_level: 0,
        };
        check_node(op.into(), &ops, 1, 1e-4, 1e-5).unwrap();
    }

    /// A `rows × k` product with `bits`-bit weights in blocks of `bs`, optional packed zero points and
    /// bias, on `target`; returns the schedule text.
    fn check_on(
        target: &crate::Target,
        (rows, k, n): (usize, usize, usize),
        (bits, bs): (usize, usize),
        (zp, bias): (bool, bool),
    ) -> String {
        let l = NBitsLayout::new(k, n, bits, bs).unwrap();
        let p = quantize(&random_f32(k * n, 7, -1.0, 1.0), l, !zp).unwrap();
        let zero_points = match (&p.zero_points, zp) {
            (Some(z), true) => Operand::Const(Tensor {
                shape: vec![z.len()],
                data: Data::U8(z.clone()),
            }),
            _ => Operand::Absent,
        };
        let mut ops = vec![
            Operand::Input(random_tensor(&[rows, k], 5, -1.0, 1.0)),
            Operand::Const(Tensor {
                shape: vec![n, l.blocks(), l.blob()],
                data: Data::U8(p.b.clone()),
            }),
            Operand::Const(f32s(&[n * l.blocks()], p.scales.clone())),
            zero_points,
        ];
        if bias {
            ops.push(Operand::Absent);
            ops.push(Operand::Const(random_tensor(&[n], 9, -1.0, 1.0)));
        }
        let op = MatMulNBits {
            k: k as i64,
            n: n as i64,
            bits: bits as i64,
            block_size: bs as i64,
            accuracy_level: 0,
        };
        let what = format!("{rows}x{k}x{n} {bits}-bit block {bs} zp={zp} bias={bias}");
        crate::testing::check_node_on(target, op.clone().into(), &ops, 1, 1e-4, 1e-5)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let g = crate::testing::single_node_graph(op.into(), &ops, 1).unwrap();
        crate::testing::schedule_text(target, &g).unwrap()
    }

    #[test]
    fn products_with_many_rows_unpack_into_the_f32_tiles_on_every_isa() {
        let host = crate::Target::host().unwrap();
        let mut targets = vec![(
            None,
            crate::testing::host_without(&["avx512", "avx2"]).unwrap(),
        )];
        if cfg!(target_arch = "x86_64") && host.has("avx512f") {
            targets.push((Some("avx512"), host.clone()));
        }
        if cfg!(target_arch = "x86_64") && host.has("avx2") && host.has("fma") {
            targets.push((
                Some("avx2"),
                crate::testing::host_without(&["avx512"]).unwrap(),
            ));
        }
        let cases = [
            ((16, 64, 48), (4, 32), (false, false)),
            ((33, 96, 50), (4, 16), (true, true)),
            ((128, 384, 100), (4, 32), (true, false)),
            ((40, 320, 97), (2, 64), (false, true)),
            ((20, 600, 130), (8, 128), (true, true)),
            ((17, 1000, 30), (4, 32), (false, true)),
        ];
        for (isa, target) in &targets {
            for &(dims, q, extra) in &cases {
                let text = check_on(target, dims, q, extra);
                if let Some(isa) = isa {
                    assert!(
                        text.contains(&format!("x86={isa}")),
                        "{dims:?} {q:?} on {isa}: no tile in\n{text}"
                    );
                }
            }
        }
        // Too few rows: the register kernel.
        if let Some((Some(isa), t)) = targets.get(1) {
            let text = check_on(t, (15, 64, 48), (4, 32), (false, false));
            assert!(!text.contains(&format!("x86={isa}")), "{text}");
        }
    }
}
