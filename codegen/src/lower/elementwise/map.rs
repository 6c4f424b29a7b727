//! The loop nest shared by every elementwise kernel ([`emit_map`]).

use super::*;

// ---------------------------------------------------------------------------------------------------
// The loop nest.

/// One operand of a map kernel: where it comes from (an index for [`Kb::input`]), its element type and
/// its shape (broadcast to the output's).
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Index of the operand for [`Kb::input`].
    pub src: usize,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

/// The body of a map kernel: computes one output element (or 4 lanes) from the operand values.
pub type Body<'a> = &'a dyn Fn(&mut FunctionBuilder, Fx, &[Value]) -> Value;

/// Merged loop axes: `(dim, per-leaf strides in elements)`, outermost first; never empty.
pub(crate) fn merged_axes(out: &[usize], leaves: &[LeafSpec]) -> Vec<(usize, Vec<i64>)> {
    let r = out.len();
    let k = leaves.len();
    let mut axes: Vec<(usize, Vec<i64>)> = Vec::new();
    for (i, &d) in out.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let mut st = vec![0i64; k];
        for (j, l) in leaves.iter().enumerate() {
            if let Some(a) = (i + l.shape.len()).checked_sub(r)
                && l.shape[a] != 1
            {
                st[j] = l.shape[a + 1..].iter().product::<usize>() as i64;
            }
        }
        if let Some((pd, ps)) = axes.last_mut()
            && (0..k).all(|j| ps[j] == st[j] * d as i64)
        {
            *pd *= d;
            *ps = st;
            continue;
        }
        axes.push((d, st));
    }
    if axes.is_empty() {
        axes.push((1, vec![0; k]));
    }
    axes
}

/// Emits a map kernel: `out[i] = body(leaves broadcast at i)` over `out_shape`, output 0 of type
/// `out_dtype`. With `vectorize` (only for all-f32 operands and output) the inner loop runs 4 lanes at a
/// time where the target has vectors.
pub fn emit_map(
    e: &mut Emitter,
    out_shape: &[usize],
    out_dtype: DType,
    leaves: &[LeafSpec],
    vectorize: bool,
    body: Body,
) -> Result<(), CodegenError> {
    let out_ty = clif_type(out_dtype).ok_or_else(|| e.info.err("unsupported output type"))?;
    let mut leaf_ty = Vec::with_capacity(leaves.len());
    for l in leaves {
        leaf_ty.push(clif_type(l.dtype).ok_or_else(|| e.info.err("unsupported operand type"))?);
    }
    let lanes = if vectorize && e.target().f32_lanes() >= 4 {
        4
    } else {
        1
    };
    let fma = e.target().has_fma();
    let axes = merged_axes(out_shape, leaves);
    let (inner_len, inner_st) = axes[axes.len() - 1].clone();
    let outer = axes[..axes.len() - 1].to_vec();
    let rows: usize = outer.iter().map(|a| a.0).product();
    let n = rows * inner_len;
    let want = (n / TILE_ELEMS).clamp(1, MAX_TILES);
    // Tiles: row ranges, or chunks of the single row.
    let split_row = rows == 1;
    let (n_tiles, per_tile) = if split_row {
        let chunk = inner_len.div_ceil(want).next_multiple_of(4).max(4);
        (inner_len.div_ceil(chunk), chunk)
    } else {
        let rpt = rows.div_ceil(want.min(rows));
        (rows.div_ceil(rpt), rpt)
    };
    let out_bytes = out_ty.bytes() as i64;
    let leaves = leaves.to_vec();
    e.kernel(n_tiles as u64, |kb| {
        let mut bases = Vec::with_capacity(leaves.len());
        for l in &leaves {
            bases.push(kb.input(l.src)?);
        }
        let out_base = kb.output(0)?;
        let cx = RowCx {
            bases: &bases,
            leaf_ty: &leaf_ty,
            inner_st: &inner_st,
            out_base,
            out_bytes,
            lanes,
            fma,
            body,
        };
        kb.for_tiles(|kb, t| {
            if split_row {
                let lo = kb.b.ins().imul_imm_s(t, per_tile as i64);
                let hi0 = kb.b.ins().iadd_imm_s(lo, per_tile as i64);
                let len = kb.iconst(inner_len as i64);
                let hi = kb.b.ins().smin(hi0, len);
                let zero = kb.iconst(0);
                let offs = vec![zero; leaves.len()];
                return cx.row(kb, &offs, zero, lo, hi, None);
            }
            let r0 = kb.b.ins().imul_imm_s(t, per_tile as i64);
            let r1a = kb.b.ins().iadd_imm_s(r0, per_tile as i64);
            let nrows = kb.iconst(rows as i64);
            let r1 = kb.b.ins().smin(r1a, nrows);
            // Odometer state: index per outer axis and element offset per leaf.
            let idx: Vec<_> = outer.iter().map(|_| kb.b.declare_var(types::I64)).collect();
            let offv: Vec<_> = leaves
                .iter()
                .map(|_| kb.b.declare_var(types::I64))
                .collect();
            let mut rem = r0;
            let mut offs: Vec<Value> = vec![kb.iconst(0); leaves.len()];
            for (a, (d, st)) in outer.iter().enumerate().rev() {
                let dv = kb.iconst(*d as i64);
                let i = kb.b.ins().urem(rem, dv);
                rem = kb.b.ins().udiv(rem, dv);
                kb.b.def_var(idx[a], i);
                for (j, &s) in st.iter().enumerate() {
                    if s != 0 {
                        let p = kb.b.ins().imul_imm_s(i, s);
                        offs[j] = kb.b.ins().iadd(offs[j], p);
                    }
                }
            }
            for (j, &o) in offs.iter().enumerate() {
                kb.b.def_var(offv[j], o);
            }
            kb.for_range(r0, r1, 1, |kb, r| {
                let offs: Vec<Value> = offv.iter().map(|&v| kb.b.use_var(v)).collect();
                let out_off = kb.b.ins().imul_imm_s(r, inner_len as i64);
                let zero = kb.iconst(0);
                let len = kb.iconst(inner_len as i64);
                cx.row(kb, &offs, out_off, zero, len, Some(inner_len))?;
                // Advance the odometer.
                let cont = kb.b.create_block();
                for a in (0..outer.len()).rev() {
                    let (d, st) = &outer[a];
                    let i = kb.b.use_var(idx[a]);
                    let i1 = kb.b.ins().iadd_imm_s(i, 1);
                    let bump = |kb: &mut Kb, k: i64| {
                        for (j, &s) in st.iter().enumerate() {
                            if s != 0 {
                                let o = kb.b.use_var(offv[j]);
                                let o = kb.b.ins().iadd_imm_s(o, s * k);
                                kb.b.def_var(offv[j], o);
                            }
                        }
                    };
                    if a == 0 {
                        kb.b.def_var(idx[a], i1);
                        bump(kb, 1);
                        kb.b.ins().jump(cont, &[]);
                        break;
                    }
                    let inc = kb.b.create_block();
                    let carry = kb.b.create_block();
                    let c = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, i1, *d as i64);
                    kb.b.ins().brif(c, inc, &[], carry, &[]);
                    kb.b.switch_to_block(inc);
                    kb.b.def_var(idx[a], i1);
                    bump(kb, 1);
                    kb.b.ins().jump(cont, &[]);
                    kb.b.switch_to_block(carry);
                    let z = kb.iconst(0);
                    kb.b.def_var(idx[a], z);
                    bump(kb, -(*d as i64 - 1));
                }
                if outer.is_empty() {
                    kb.b.ins().jump(cont, &[]);
                }
                kb.b.switch_to_block(cont);
                Ok(())
            })
        })
    })
}

/// What the row emitter needs.
pub(crate) struct RowCx<'a> {
    bases: &'a [Value],
    leaf_ty: &'a [types::Type],
    inner_st: &'a [i64],
    out_base: Value,
    out_bytes: i64,
    lanes: usize,
    fma: bool,
    body: Body<'a>,
}

impl RowCx<'_> {
    /// One row: elements `lo..hi` of the inner axis, leaves at element offsets `offs`, output at
    /// element offset `out_off`. `static_len` is the row length when known (rows mode).
    fn row(
        &self,
        kb: &mut Kb,
        offs: &[Value],
        out_off: Value,
        lo: Value,
        hi: Value,
        static_len: Option<usize>,
    ) -> Result<(), CodegenError> {
        let k = self.bases.len();
        let mut addr = Vec::with_capacity(k);
        for (j, &off) in offs.iter().enumerate() {
            addr.push(kb.offset(self.bases[j], off, self.leaf_ty[j].bytes() as i64));
        }
        let out_addr = kb.offset(self.out_base, out_off, self.out_bytes);
        // Broadcast leaves: one load per row.
        let mut hoisted: Vec<Option<Value>> = vec![None; k];
        for j in 0..k {
            if self.inner_st[j] == 0 {
                hoisted[j] = Some(kb.load(self.leaf_ty[j], addr[j], 0));
            }
        }
        let scalar = Fx {
            ty: types::F32,
            fma: self.fma,
        };
        let vec_ok = self.lanes == 4 && static_len.is_none_or(|l| l >= 4);
        let tail_lo = if vec_ok {
            let vx = Fx {
                ty: types::F32X4,
                fma: self.fma,
            };
            let splat: Vec<Option<Value>> = hoisted
                .iter()
                .map(|h| h.map(|v| kb.b.ins().splat(types::F32X4, v)))
                .collect();
            let span = kb.b.ins().isub(hi, lo);
            let vspan = kb.b.ins().band_imm_s(span, -4);
            let vend = kb.b.ins().iadd(lo, vspan);
            kb.for_range(lo, vend, 4, |kb, i| {
                let mut vals = Vec::with_capacity(k);
                for j in 0..k {
                    vals.push(match splat[j] {
                        Some(v) => v,
                        None => {
                            let a = kb.offset(addr[j], i, 4);
                            kb.load(types::F32X4, a, 0)
                        }
                    });
                }
                let r = (self.body)(kb.b, vx, &vals);
                let a = kb.offset(out_addr, i, 4);
                kb.store(r, a, 0);
                Ok(())
            })?;
            vend
        } else {
            lo
        };
        kb.for_range(tail_lo, hi, 1, |kb, i| {
            let mut vals = Vec::with_capacity(k);
            for j in 0..k {
                vals.push(match hoisted[j] {
                    Some(v) => v,
                    None => {
                        let a = kb.offset(addr[j], i, self.leaf_ty[j].bytes() as i64);
                        kb.load(self.leaf_ty[j], a, 0)
                    }
                });
            }
            let r = (self.body)(kb.b, scalar, &vals);
            let a = kb.offset(out_addr, i, self.out_bytes);
            kb.store(r, a, 0);
            Ok(())
        })
    }
}
