//! Data movement: transpose, concat, split, slice, pad, expand, tile, depth/space block moves,
//! `constant_of_shape` (strided byte copies, [`strided`]), and gather / gather_elements with constant
//! or runtime indices ([`gather`]). Views (reshape, ...) are aliases (see copy.rs); `resize` is
//! spatial's.
//!
//! Every kernel here is dtype-generic: it moves elements of the input's byte size (1, 2, 4, 8 or 16
//! bytes); sub-byte types and strings fall back. Runtime gather indices that are out of range produce
//! zeros (the interpreter reports an error; a kernel cannot): see [`gather`].

mod gather;
pub(crate) use gather::gather_last_axis;
pub(crate) mod strided;

use carve_ir::ops::movement::{MovementOp, Pad, PadMode};
use carve_ir::{DType, Op};
use carve_runtime::interp::movement::slice_range;

use crate::CodegenError;
use crate::lower::{Lowering, NodeInfo, Weights, needs_constants};
use strided::{Buf, Copy, emit_phases, strides};

/// Element size in bytes of `dtype`, or `None` for sub-byte types and strings.
pub(crate) fn elem_size(dtype: DType) -> Option<usize> {
    let b = dtype.bits();
    (b >= 8 && b.is_multiple_of(8)).then_some((b / 8) as usize)
}

/// A native lowering that runs `phases` of strided copies.
fn copies(phases: Vec<Vec<Copy>>) -> Lowering {
    Lowering::Native {
        in_place: None,
        emit: Box::new(move |e| emit_phases(e, &phases)),
    }
}

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Movement(m) = info.op() else {
        return Ok(Lowering::Fallback("not a movement op".into()));
    };
    use MovementOp as M;
    // Every op here moves elements of input 0's type (constant_of_shape: of its output's type).
    let dtype = match m {
        M::ConstantOfShape(_) => info.out_dtype(0)?,
        _ => info.in_dtype(0)?,
    };
    let Some(es) = elem_size(dtype) else {
        return Ok(Lowering::Fallback(format!(
            "{dtype} elements are not whole bytes"
        )));
    };
    match m {
        M::Transpose(o) => transpose(info, o.perm.as_deref(), es),
        M::Concat(o) => concat(info, o.axis, es),
        M::Split(o) => split(info, o.axis, es),
        M::Slice(_) => slice(info, es),
        M::Expand(_) => expand(info, es),
        M::Tile(_) => tile(info, es),
        M::Pad(o) => pad(info, o, es, w),
        M::DepthToSpace(o) => {
            let dcr = o.mode == carve_ir::ops::movement::BlockMode::Dcr;
            block_move(info, o.blocksize, dcr, true, es)
        }
        M::SpaceToDepth(o) => {
            let dcr = o.mode == carve_ir::ops::movement::BlockMode::Dcr;
            block_move(info, o.blocksize, dcr, false, es)
        }
        M::ConstantOfShape(o) => {
            let t = carve_runtime::Tensor::from_constant(&o.value)
                .map_err(|e| info.err(format!("value: {}", e.0)))?;
            let Some(bytes) = t.data.to_le_bytes().filter(|b| b.len() == es) else {
                return Ok(Lowering::Fallback(
                    "value is not one element of the output type".into(),
                ));
            };
            let wr = w.add_bytes(&bytes);
            let shape = info.out_shape(0)?;
            let ds = strides(&shape, es);
            Ok(copies(vec![vec![Copy {
                src: Buf::W(wr),
                src_off: 0,
                dst: Buf::Out(0),
                dst_off: 0,
                ss: vec![0; shape.len()],
                dims: shape,
                ds,
                es,
            }]]))
        }
        M::Gather(o) => gather::gather(info, o.axis, es),
        M::GatherElements(o) => gather::gather_elements(info, o.axis, es),
        _ => Ok(Lowering::Fallback(
            "no native kernel for this op yet".into(),
        )),
    }
}

/// Normalizes `axis` for rank `r`.
fn norm_axis(info: &NodeInfo, axis: i64, r: usize) -> Result<usize, CodegenError> {
    let a = if axis < 0 { axis + r as i64 } else { axis };
    usize::try_from(a)
        .ok()
        .filter(|&a| a < r)
        .ok_or_else(|| info.err(format!("axis {axis} is out of range for rank {r}")))
}

/// Checks that the shape a lowering computed is the node's inferred output shape.
fn check_shape(info: &NodeInfo, k: usize, got: &[usize]) -> Result<(), CodegenError> {
    let want = info.out_shape(k)?;
    if want != got {
        return Err(info.err(format!(
            "output {k} would have shape {got:?}, but its type says {want:?}"
        )));
    }
    Ok(())
}

fn transpose(info: &NodeInfo, perm: Option<&[i64]>, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let r = x.len();
    let perm: Vec<usize> = match perm {
        None => (0..r).rev().collect(),
        Some(p) => {
            let mut seen = vec![false; r];
            let mut out = Vec::with_capacity(r);
            for &v in p {
                let k = usize::try_from(v)
                    .ok()
                    .filter(|&k| k < r && !seen[k])
                    .ok_or_else(|| info.err(format!("perm {p:?} is not a permutation")))?;
                seen[k] = true;
                out.push(k);
            }
            if out.len() != r {
                return Err(info.err(format!("perm {p:?} does not match rank {r}")));
            }
            out
        }
    };
    let st = strides(&x, es);
    let dims: Vec<usize> = perm.iter().map(|&p| x[p]).collect();
    check_shape(info, 0, &dims)?;
    let c = Copy {
        src: Buf::In(0),
        src_off: 0,
        dst: Buf::Out(0),
        dst_off: 0,
        ss: perm.iter().map(|&p| st[p]).collect(),
        ds: strides(&dims, es),
        dims,
        es,
    };
    Ok(copies(vec![vec![c]]))
}

fn concat(info: &NodeInfo, axis: i64, es: usize) -> Result<Lowering, CodegenError> {
    let out = info.out_shape(0)?;
    let a = norm_axis(info, axis, out.len())?;
    let ds = strides(&out, es);
    let mut at = 0usize;
    let mut cs = Vec::new();
    for i in 0..info.num_inputs() {
        let s = info.in_shape(i)?;
        if s.len() != out.len() {
            return Err(info.err(format!("input {i} has rank {}", s.len())));
        }
        cs.push(Copy {
            src: Buf::In(i),
            src_off: 0,
            dst: Buf::Out(0),
            dst_off: at as i64 * ds[a],
            ss: strides(&s, es),
            ds: ds.clone(),
            dims: s.clone(),
            es,
        });
        at += s[a];
    }
    if at != out[a] {
        return Err(info.err(format!(
            "inputs add up to {at} along axis {a}, output has {}",
            out[a]
        )));
    }
    Ok(copies(vec![cs]))
}

fn split(info: &NodeInfo, axis: i64, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let a = norm_axis(info, axis, x.len())?;
    let ss = strides(&x, es);
    let mut at = 0usize;
    let mut cs = Vec::new();
    for k in 0..info.num_outputs() {
        let s = info.out_shape(k)?;
        if s.len() != x.len() {
            return Err(info.err(format!("output {k} has rank {}", s.len())));
        }
        cs.push(Copy {
            src: Buf::In(0),
            src_off: at as i64 * ss[a],
            dst: Buf::Out(k),
            dst_off: 0,
            ss: ss.clone(),
            ds: strides(&s, es),
            dims: s.clone(),
            es,
        });
        at += s[a];
    }
    if at > x[a] {
        return Err(info.err(format!(
            "outputs take {at} along axis {a}, input has {}",
            x[a]
        )));
    }
    Ok(copies(vec![cs]))
}

fn slice(info: &NodeInfo, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let r = x.len();
    let (Some(starts), Some(ends)) = (info.const_i64s(1), info.const_i64s(2)) else {
        return Ok(needs_constants(
            &[1, 2, 3, 4],
            "starts/ends are not constants",
        ));
    };
    let n = starts.len();
    let axes: Vec<i64> = if info.has_input(3) {
        match info.const_i64s(3) {
            Some(a) => a,
            None => return Ok(needs_constants(&[1, 2, 3, 4], "axes are not constants")),
        }
    } else {
        (0..n as i64).collect()
    };
    let steps: Vec<i64> = if info.has_input(4) {
        match info.const_i64s(4) {
            Some(s) => s,
            None => return Ok(needs_constants(&[1, 2, 3, 4], "steps are not constants")),
        }
    } else {
        vec![1; n]
    };
    if ends.len() != n || axes.len() != n || steps.len() != n || steps.contains(&0) {
        return Err(info.err("starts/ends/axes/steps disagree"));
    }
    let st = strides(&x, es);
    let mut dims = x.clone();
    let mut ss = st.clone();
    let mut off = 0i64;
    for i in 0..n {
        let a = norm_axis(info, axes[i], r)?;
        let (s, len) = slice_range(x[a], starts[i], ends[i], steps[i]);
        dims[a] = len;
        if len > 0 {
            off += s as i64 * st[a];
        }
        ss[a] = steps[i] * st[a];
    }
    check_shape(info, 0, &dims)?;
    let c = Copy {
        src: Buf::In(0),
        src_off: off,
        dst: Buf::Out(0),
        dst_off: 0,
        ds: strides(&dims, es),
        dims,
        ss,
        es,
    };
    Ok(copies(vec![vec![c]]))
}

fn expand(info: &NodeInfo, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let out = info.out_shape(0)?;
    if x.len() > out.len() {
        return Err(info.err("input rank exceeds output rank"));
    }
    let lead = out.len() - x.len();
    let st = strides(&x, es);
    let mut ss = vec![0i64; out.len()];
    for (i, &d) in x.iter().enumerate() {
        let o = out[lead + i];
        if d == o {
            ss[lead + i] = st[i];
        } else if d != 1 {
            return Err(info.err(format!("cannot broadcast {x:?} to {out:?}")));
        }
    }
    let c = Copy {
        src: Buf::In(0),
        src_off: 0,
        dst: Buf::Out(0),
        dst_off: 0,
        ds: strides(&out, es),
        dims: out,
        ss,
        es,
    };
    Ok(copies(vec![vec![c]]))
}

fn tile(info: &NodeInfo, es: usize) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let out = info.out_shape(0)?;
    if x.len() != out.len() {
        return Err(info.err("tile changes the rank"));
    }
    if out.contains(&0) {
        return Ok(copies(vec![]));
    }
    let st = strides(&x, es);
    let ost = strides(&out, es);
    let (mut dims, mut ss, mut ds) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..x.len() {
        if x[i] == 0 || !out[i].is_multiple_of(x[i]) {
            return Err(info.err(format!("output {out:?} is not a tiling of {x:?}")));
        }
        let reps = out[i] / x[i];
        dims.extend([reps, x[i]]);
        ss.extend([0, st[i]]);
        ds.extend([ost[i] * x[i] as i64, ost[i]]);
    }
    let c = Copy {
        src: Buf::In(0),
        src_off: 0,
        dst: Buf::Out(0),
        dst_off: 0,
        dims,
        ss,
        ds,
        es,
    };
    Ok(copies(vec![vec![c]]))
}

/// depth_to_space (`d2s`) / space_to_depth as a transpose of a virtual 6-D view (as the interpreter).
fn block_move(
    info: &NodeInfo,
    blocksize: i64,
    dcr: bool,
    d2s: bool,
    es: usize,
) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let [n, c, h, w] = x[..] else {
        return Ok(Lowering::Fallback("input is not 4-D".into()));
    };
    let Some(b) = usize::try_from(blocksize).ok().filter(|&b| b > 0) else {
        return Err(info.err("blocksize must be positive"));
    };
    let (virt, perm, out) = if d2s {
        let bb = b * b;
        if !c.is_multiple_of(bb) {
            return Err(info.err("channels not divisible by blocksize²"));
        }
        if dcr {
            (
                vec![n, b, b, c / bb, h, w],
                [0, 3, 4, 1, 5, 2],
                vec![n, c / bb, h * b, w * b],
            )
        } else {
            (
                vec![n, c / bb, b, b, h, w],
                [0, 1, 4, 2, 5, 3],
                vec![n, c / bb, h * b, w * b],
            )
        }
    } else {
        if !h.is_multiple_of(b) || !w.is_multiple_of(b) {
            return Err(info.err("spatial dims not divisible by blocksize"));
        }
        let p = if dcr {
            [0, 3, 5, 1, 2, 4]
        } else {
            [0, 1, 3, 5, 2, 4]
        };
        (
            vec![n, c, h / b, b, w / b, b],
            p,
            vec![n, c * b * b, h / b, w / b],
        )
    };
    check_shape(info, 0, &out)?;
    let st = strides(&virt, es);
    let dims: Vec<usize> = perm.iter().map(|&p| virt[p]).collect();
    let c = Copy {
        src: Buf::In(0),
        src_off: 0,
        dst: Buf::Out(0),
        dst_off: 0,
        ss: perm.iter().map(|&p| st[p]).collect(),
        ds: strides(&dims, es),
        dims,
        es,
    };
    Ok(copies(vec![vec![c]]))
}

/// Source coordinate in `[0, n)` of padded coordinate `j` (relative to the data start) for the
/// non-constant modes (as the interpreter's `pad_source`).
fn pad_source(mode: PadMode, j: i64, n: i64) -> i64 {
    match mode {
        PadMode::Constant | PadMode::Edge => j.clamp(0, n - 1),
        PadMode::Wrap => j.rem_euclid(n),
        PadMode::Reflect => {
            if n == 1 {
                return 0;
            }
            let p = 2 * (n - 1);
            let m = j.rem_euclid(p);
            if m >= n { p - m } else { m }
        }
    }
}

/// Most border positions a non-constant pad is unrolled into (one slab copy each).
const MAX_PAD_SLABS: i64 = 512;

/// `pad`: the (cropped) data is copied into the interior; constant borders are filled (same phase);
/// other modes copy border slabs from the output's own interior, one phase per padded axis from the
/// innermost out, so every slab reads bytes that are already final.
fn pad(info: &NodeInfo, op: &Pad, es: usize, w: &mut Weights) -> Result<Lowering, CodegenError> {
    let x = info.in_shape(0)?;
    let r = x.len();
    let Some(pads) = info.const_i64s(1) else {
        return Ok(needs_constants(&[1, 2, 3], "pads are not constants"));
    };
    let axes: Vec<usize> = if info.has_input(3) {
        let Some(a) = info.const_i64s(3) else {
            return Ok(needs_constants(&[1, 2, 3], "axes are not constants"));
        };
        a.iter()
            .map(|&v| norm_axis(info, v, r))
            .collect::<Result<_, _>>()?
    } else {
        (0..r).collect()
    };
    let k = axes.len();
    if pads.len() != 2 * k {
        return Err(info.err("pads do not match the axes"));
    }
    // Per dim: begin pad, data start (crop) and data length in the input, output size.
    let mut pb = vec![0i64; r];
    let mut lo = vec![0i64; r];
    let mut len: Vec<i64> = x.iter().map(|&d| d as i64).collect();
    let mut out: Vec<usize> = x.clone();
    for (i, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[i], pads[k + i]);
        let d = x[a] as i64;
        lo[a] = (-b).max(0);
        len[a] = d - lo[a] - (-e).max(0);
        pb[a] = b.max(0);
        let o = len[a] + pb[a] + e.max(0);
        if len[a] < 0 || o < 0 {
            return Ok(Lowering::Fallback("pads crop a dim below zero".into()));
        }
        if len[a] == 0 && o > 0 && op.mode != PadMode::Constant {
            return Ok(Lowering::Fallback("padding an empty dim".into()));
        }
        out[a] = o as usize;
    }
    check_shape(info, 0, &out)?;
    if out.contains(&0) {
        return Ok(copies(vec![]));
    }
    let st = strides(&x, es);
    let ost = strides(&out, es);
    let mut phase0 = vec![];
    let interior: Vec<usize> = len.iter().map(|&l| l as usize).collect();
    phase0.push(Copy {
        src: Buf::In(0),
        src_off: (0..r).map(|a| lo[a] * st[a]).sum(),
        dst: Buf::Out(0),
        dst_off: (0..r).map(|a| pb[a] * ost[a]).sum(),
        dims: interior.clone(),
        ss: st.clone(),
        ds: ost.clone(),
        es,
    });
    // A slab: axes < a over the interior, axis a at positions [p0, p0 + n), axes > a in full.
    let slab = |a: usize, p0: i64, n: usize| -> (Vec<usize>, i64) {
        let mut dims = out.clone();
        let mut off = 0i64;
        for b in 0..a {
            dims[b] = interior[b];
            off += pb[b] * ost[b];
        }
        dims[a] = n;
        off += p0 * ost[a];
        (dims, off)
    };
    let mut phases = vec![];
    if op.mode == PadMode::Constant {
        let fill = if info.has_input(2) && info.in_shape(2)?.iter().product::<usize>() > 0 {
            if info.in_dtype(2)? != info.in_dtype(0)? {
                return Err(info.err("constant value type differs from the data type"));
            }
            Buf::In(2)
        } else {
            Buf::W(w.add_bytes(&vec![0u8; es]))
        };
        for a in 0..r {
            let after = pb[a] + len[a];
            for (p0, n) in [(0, pb[a]), (after, out[a] as i64 - after)] {
                if n > 0 {
                    let (dims, off) = slab(a, p0, n as usize);
                    phase0.push(Copy {
                        src: fill,
                        src_off: 0,
                        dst: Buf::Out(0),
                        dst_off: off,
                        ss: vec![0; r],
                        dims,
                        ds: ost.clone(),
                        es,
                    });
                }
            }
        }
        phases.push(phase0);
    } else {
        phases.push(phase0);
        let total: i64 = (0..r).map(|a| out[a] as i64 - len[a]).sum();
        if total > MAX_PAD_SLABS {
            return Ok(Lowering::Fallback(format!(
                "{total} border positions (more than {MAX_PAD_SLABS})"
            )));
        }
        for a in (0..r).rev() {
            let mut ph = vec![];
            for p in 0..out[a] as i64 {
                if (pb[a]..pb[a] + len[a]).contains(&p) {
                    continue;
                }
                let q = pb[a] + pad_source(op.mode, p - pb[a], len[a]);
                let (dims, off) = slab(a, p, 1);
                let (_, soff) = slab(a, q, 1);
                ph.push(Copy {
                    src: Buf::Out(0),
                    src_off: soff,
                    dst: Buf::Out(0),
                    dst_off: off,
                    dims,
                    ss: ost.clone(),
                    ds: ost.clone(),
                    es,
                });
            }
            if !ph.is_empty() {
                phases.push(ph);
            }
        }
    }
    Ok(copies(phases))
}
