//! `gather` and `gather_elements` with i64 or i32 indices, constant or read at run time, negative
//! indices counted from the end.
//!
//! Out-of-range indices: constant ones are checked at compile time (the node falls back, so the
//! interpreter reports the error). A kernel cannot return an error, so a runtime index outside
//! `[-d, d)` makes the kernel write zeros for that slice / element instead of reading out of bounds
//! (the interpreter would fail the run).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, Value, types};

use super::strided::{Buf, Copy, TILE_BYTES, copy_run, norm_index, strides, zero_run};
use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::{Lowering, NodeInfo};
use carve_ir::DType;

/// Constant-index gathers with at most this many indices become static copies.
const MAX_STATIC_INDICES: usize = 16;

/// The index element type, or `None` if indices are neither i64 nor i32.
fn index_ty(dtype: DType) -> Option<(types::Type, i64)> {
    match dtype {
        DType::I64 => Some((types::I64, 8)),
        DType::I32 => Some((types::I32, 4)),
        _ => None,
    }
}

/// Loads index `k` (byte offset `k·ies` from `base`) as i64.
fn load_index(kb: &mut Kb, base: Value, k: Value, ity: types::Type, ies: i64) -> Value {
    let a = kb.offset(base, k, ies);
    let v = kb.load(ity, a, 0);
    if ity == types::I64 {
        v
    } else {
        kb.b.ins().sextend(types::I64, v)
    }
}

/// Normalized constant indices, or `None` if one is out of range.
fn const_indices(info: &NodeInfo, i: usize, d: usize) -> Option<Option<Vec<usize>>> {
    let v = info.const_i64s(i)?;
    Some(
        v.iter()
            .map(|&x| {
                let j = if x < 0 { x + d as i64 } else { x };
                usize::try_from(j).ok().filter(|&j| j < d)
            })
            .collect(),
    )
}

/// `gather` along `axis`: `out[o, k, i] = data[o, idx[k], i]`.
pub fn gather(info: &NodeInfo, axis: i64, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let ishape = info.in_shape(1)?;
    let Some((ity, ies)) = index_ty(info.in_dtype(1)?) else {
        return Ok(Lowering::Fallback("indices are not i64 or i32".into()));
    };
    let a = super::norm_axis(info, axis, x.len())?;
    let d = x[a];
    let outer: usize = x[..a].iter().product();
    let row = x[a + 1..].iter().product::<usize>() * es;
    let nidx: usize = ishape.iter().product();
    let mut shape = x[..a].to_vec();
    shape.extend_from_slice(&ishape);
    shape.extend_from_slice(&x[a + 1..]);
    super::check_shape(info, 0, &shape)?;
    gather_rows(
        info,
        Rows {
            outer,
            d,
            row,
            nidx,
            es,
            negative: true,
        },
        (ity, ies),
    )
}

/// The shape facts of a row gather: `out[o, k, :] = data[o, idx[k], :]` with rows of `row` bytes.
struct Rows {
    outer: usize,
    d: usize,
    row: usize,
    nidx: usize,
    es: usize,
    /// Negative indices count from the end (else they are out of range).
    negative: bool,
}

/// `array_feature_extractor`: a gather along the last axis (indices flattened, non-negative).
pub fn gather_last_axis(info: &NodeInfo, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let Some((ity, ies)) = index_ty(info.in_dtype(1)?) else {
        return Ok(Lowering::Fallback("indices are not i64 or i32".into()));
    };
    let Some((&d, lead)) = x.split_last() else {
        return Err(info.err("input 0 must have rank >= 1"));
    };
    let nidx: usize = info.in_shape(1)?.iter().product();
    let mut shape = if lead.is_empty() {
        vec![1]
    } else {
        lead.to_vec()
    };
    shape.push(nidx);
    super::check_shape(info, 0, &shape)?;
    let outer = lead.iter().product();
    gather_rows(
        info,
        Rows {
            outer,
            d,
            row: es,
            nidx,
            es,
            negative: false,
        },
        (ity, ies),
    )
}

fn gather_rows(
    info: &NodeInfo,
    g: Rows,
    (ity, ies): (types::Type, i64),
) -> Result<Lowering, CodegenError> {
    let Rows {
        outer,
        d,
        row,
        nidx,
        es,
        negative,
    } = g;
    if outer * nidx * row == 0 {
        return Ok(super::copies(vec![]));
    }
    if let Some(v) = info.const_i64s(1) {
        let ci: Option<Vec<usize>> = v
            .iter()
            .map(|&x| {
                let j = if x < 0 && negative { x + d as i64 } else { x };
                usize::try_from(j).ok().filter(|&j| j < d)
            })
            .collect();
        let Some(ci) = ci else {
            return Ok(Lowering::Fallback("constant indices out of range".into()));
        };
        if nidx <= MAX_STATIC_INDICES {
            let cs = ci
                .iter()
                .enumerate()
                .map(|(k, &j)| Copy {
                    src: Buf::In(0),
                    src_off: (j * row) as i64,
                    dst: Buf::Out(0),
                    dst_off: (k * row) as i64,
                    dims: vec![outer, row / es],
                    ss: vec![(d * row) as i64, es as i64],
                    ds: vec![(nidx * row) as i64, es as i64],
                    es,
                })
                .collect();
            return Ok(super::copies(vec![cs]));
        }
    }
    let bytes = outer * nidx * row;
    let want = (bytes / TILE_BYTES).clamp(1, 64);
    // Tile over the outer dim when it is long enough, else over the indices.
    let (tiles, chunk, over_outer) = if want < 2 {
        (1, outer, true)
    } else if outer >= want {
        let c = outer.div_ceil(want);
        (outer.div_ceil(c), c, true)
    } else {
        let c = nidx.div_ceil(want);
        (nidx.div_ceil(c), c, false)
    };
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel(tiles as u64, |kb| {
                let src = kb.input(0)?;
                let ind = kb.input(1)?;
                let dst = kb.output(0)?;
                kb.for_tiles(|kb, t| {
                    let bounds = |kb: &mut Kb, n: usize, tiled: bool| {
                        if tiled && tiles > 1 {
                            let lo = kb.b.ins().imul_imm_s(t, chunk as i64);
                            let hi = kb.b.ins().iadd_imm_s(lo, chunk as i64);
                            let nn = kb.iconst(n as i64);
                            (lo, kb.b.ins().smin(hi, nn))
                        } else {
                            (kb.iconst(0), kb.iconst(n as i64))
                        }
                    };
                    let (olo, ohi) = bounds(kb, outer, over_outer);
                    let (klo, khi) = bounds(kb, nidx, !over_outer);
                    kb.for_range(olo, ohi, 1, |kb, o| {
                        let so = kb.offset(src, o, (d * row) as i64);
                        let dob = kb.offset(dst, o, (nidx * row) as i64);
                        kb.for_range(klo, khi, 1, |kb, k| {
                            let iv = load_index(kb, ind, k, ity, ies);
                            let (j, ok) = if negative {
                                norm_index(kb, iv, d)
                            } else {
                                let ok =
                                    kb.b.ins().icmp_imm_s(IntCC::UnsignedLessThan, iv, d as i64);
                                (iv, ok)
                            };
                            let dk = kb.offset(dob, k, row as i64);
                            let yes = kb.b.create_block();
                            let no = kb.b.create_block();
                            let join = kb.b.create_block();
                            kb.b.ins().brif(ok, yes, &[], no, &[]);
                            kb.b.switch_to_block(yes);
                            let s = kb.offset(so, j, row as i64);
                            copy_run(kb, dk, s, row as i64)?;
                            kb.b.ins().jump(join, &[]);
                            kb.b.switch_to_block(no);
                            zero_run(kb, dk, row as i64)?;
                            kb.b.ins().jump(join, &[]);
                            kb.b.switch_to_block(join);
                            Ok(())
                        })
                    })
                })
            })
        }),
    })
}

/// `gather_elements` along `axis`: the output has the indices' shape; `out[c] = data[c with
/// c[axis] = idx[c]]`.
pub fn gather_elements(info: &NodeInfo, axis: i64, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let ishape = info.in_shape(1)?;
    let r = x.len();
    let Some((ity, ies)) = index_ty(info.in_dtype(1)?) else {
        return Ok(Lowering::Fallback("indices are not i64 or i32".into()));
    };
    let vty = match es {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        8 => types::I64,
        _ => return Ok(Lowering::Fallback(format!("{es}-byte elements"))),
    };
    if ishape.len() != r {
        return Err(info.err("indices rank differs from the data rank"));
    }
    let a = super::norm_axis(info, axis, r)?;
    if (0..r).any(|b| b != a && ishape[b] > x[b]) {
        return Err(info.err("indices exceed the data shape"));
    }
    super::check_shape(info, 0, &ishape)?;
    if ishape.contains(&0) {
        return Ok(super::copies(vec![]));
    }
    let d = x[a];
    if let Some(None) = const_indices(info, 1, d) {
        return Ok(Lowering::Fallback("constant indices out of range".into()));
    }
    let xs = strides(&x, es);
    let os = strides(&ishape, es);
    let is = strides(&ishape, ies as usize);
    let n: usize = ishape.iter().product();
    let want = (n * es * 4 / TILE_BYTES).clamp(1, 64);
    let (tiles, chunk) = if want >= 2 && r >= 2 && ishape[0] >= 2 {
        let t = want.min(ishape[0]);
        let c = ishape[0].div_ceil(t);
        (ishape[0].div_ceil(c), c)
    } else {
        (1, ishape[0])
    };
    let g = Ge {
        a,
        d,
        xs,
        os,
        is,
        shape: ishape,
        ity,
        vty,
    };
    Ok(Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| {
            e.kernel(tiles as u64, |kb| {
                let src = kb.input(0)?;
                let ind = kb.input(1)?;
                let dst = kb.output(0)?;
                kb.for_tiles(|kb, t| {
                    let range = if tiles > 1 {
                        let lo = kb.b.ins().imul_imm_s(t, chunk as i64);
                        let hi = kb.b.ins().iadd_imm_s(lo, chunk as i64);
                        let nn = kb.iconst(g.shape[0] as i64);
                        Some((lo, kb.b.ins().smin(hi, nn)))
                    } else {
                        None
                    };
                    ge_nest(kb, 0, (src, dst, ind), range, &g)
                })
            })
        }),
    })
}

/// Static facts of a gather_elements kernel.
struct Ge {
    a: usize,
    d: usize,
    xs: Vec<i64>,
    os: Vec<i64>,
    is: Vec<i64>,
    shape: Vec<usize>,
    ity: types::Type,
    vty: types::Type,
}

/// Loops over the indices' dims from `lvl` (pointers: data without the axis term, output, indices);
/// `range` bounds dim `lvl` (a tile) instead of its full extent.
fn ge_nest(
    kb: &mut Kb,
    lvl: usize,
    (s, dd, ii): (Value, Value, Value),
    range: Option<(Value, Value)>,
    g: &Ge,
) -> Result<(), CodegenError> {
    let body = |kb: &mut Kb, c: Value| {
        let s2 = if lvl == g.a {
            s
        } else {
            kb.offset(s, c, g.xs[lvl])
        };
        let d2 = kb.offset(dd, c, g.os[lvl]);
        let i2 = kb.offset(ii, c, g.is[lvl]);
        if lvl + 1 < g.shape.len() {
            return ge_nest(kb, lvl + 1, (s2, d2, i2), None, g);
        }
        let iv = kb.load(g.ity, i2, 0);
        let iv = if g.ity == types::I64 {
            iv
        } else {
            kb.b.ins().sextend(types::I64, iv)
        };
        // Branch-free: an out-of-range index reads element 0 of its row and stores zero.
        let (j, ok) = norm_index(kb, iv, g.d);
        let zero = kb.iconst(0);
        let j = kb.b.ins().select(ok, j, zero);
        let sa = kb.offset(s2, j, g.xs[g.a]);
        let v = kb.load(g.vty, sa, 0);
        let z = kb.b.ins().iconst(g.vty, 0);
        let v = kb.b.ins().select(ok, v, z);
        kb.store(v, d2, 0);
        Ok(())
    };
    match range {
        Some((lo, hi)) => kb.for_range(lo, hi, 1, body),
        None => kb.for_n(0, g.shape[lvl] as i64, 1, body),
    }
}
