//! Helpers rules are written with: looking at e-nodes' ops, classes' types and constants, and adding
//! new ops and constants.

use carve_ir::{Constant, DType, Op, TensorType};
use egg::Id;

use crate::egraph::analysis::EG;
use crate::egraph::lang::{ConstSummary, ENode, Head, OpEntry};

/// The interned op entry of an e-node, if it is an op.
pub fn entry<'e>(eg: &'e EG, n: &ENode) -> Option<&'e OpEntry> {
    match n.head {
        Head::Op(i) => Some(eg.analysis.ops.get(i)),
        _ => None,
    }
}

/// The op of a single-output, non-opaque e-node whose children are exactly its inputs.
pub fn op<'e>(eg: &'e EG, n: &ENode) -> Option<&'e Op> {
    let e = entry(eg, n)?;
    (e.n_outputs == 1 && !e.opaque && e.n_inputs == n.children.len()).then_some(&e.op)
}

/// The op index of an e-node.
pub fn op_index(n: &ENode) -> Option<u32> {
    match n.head {
        Head::Op(i) => Some(i),
        _ => None,
    }
}

/// The first e-node of class `id` for which `f` gives a result (by [`op`]).
pub fn find<'e, T>(
    eg: &'e EG,
    id: Id,
    mut f: impl FnMut(&'e ENode, &'e Op) -> Option<T>,
) -> Option<T> {
    for n in &eg[id].nodes {
        if let Some(o) = op(eg, n)
            && let Some(t) = f(n, o)
        {
            return Some(t);
        }
    }
    None
}

/// The constant class `id` equals, if known.
pub fn konst<'e>(eg: &'e EG, id: Id) -> Option<&'e Constant> {
    eg[id].data.konst.map(|k| eg.analysis.consts.get(k))
}

/// The summary of the constant class `id` equals.
pub fn summary<'e>(eg: &'e EG, id: Id) -> Option<&'e ConstSummary> {
    eg[id].data.konst.map(|k| eg.analysis.consts.summary(k))
}

/// The value of every element of constant class `id`, when they are all equal.
pub fn splat(eg: &EG, id: Id) -> Option<f64> {
    summary(eg, id)?.splat
}

/// The tensor type of (single-valued) class `id`.
pub fn tensor<'e>(eg: &'e EG, id: Id) -> Option<&'e TensorType> {
    let d = &eg[id].data;
    if !d.known || d.types.len() != 1 {
        return None;
    }
    d.types[0].as_tensor()
}

/// True when classes `a` and `b` have the same, fully static tensor type.
pub fn same_static_type(eg: &EG, a: Id, b: Id) -> bool {
    match (tensor(eg, a), tensor(eg, b)) {
        (Some(x), Some(y)) => {
            x.dtype == y.dtype
                && x.quant.is_none()
                && y.quant.is_none()
                && x.shape.is_some()
                && x.shape == y.shape
        }
        _ => false,
    }
}

/// True when classes `a` and `b` have the same dtype and shape (dims equal, symbolic ones by name).
pub fn same_type(eg: &EG, a: Id, b: Id) -> bool {
    match (tensor(eg, a), tensor(eg, b)) {
        (Some(x), Some(y)) => {
            x.dtype == y.dtype
                && x.quant.is_none()
                && y.quant.is_none()
                && x.shape.is_some()
                && x.shape == y.shape
                && x.shape
                    .as_ref()
                    .is_some_and(|s| s.0.iter().all(|d| !matches!(d, carve_ir::Dim::Unknown)))
        }
        _ => false,
    }
}

/// True for an absent optional input.
pub fn is_absent(eg: &EG, id: Id) -> bool {
    eg[id].nodes.iter().any(|n| n.head == Head::Absent)
}

/// The class of an absent optional input.
pub fn absent(eg: &mut EG) -> Id {
    eg.add(ENode::leaf(Head::Absent))
}

/// Adds a single-output op over `children` (all of them inputs).
pub fn add_op(eg: &mut EG, op: impl Into<Op>, children: Vec<Id>) -> Id {
    let n = children.len();
    let k = eg.analysis.ops.intern(op.into(), 1, n);
    eg.add(ENode {
        head: Head::Op(k),
        children,
    })
}

/// Adds a constant.
pub fn add_const(eg: &mut EG, c: Constant) -> Id {
    let k = eg.analysis.consts.intern(c);
    eg.add(ENode::leaf(Head::Const(k)))
}

/// The values of a dense f32 constant.
pub fn f32s(c: &Constant) -> Option<Vec<f32>> {
    if !is_f32(c) {
        return None;
    }
    let carve_ir::ConstData::Bytes(b) = &c.data else {
        return None;
    };
    // Decoded straight from the little-endian bytes (weights can be millions of elements).
    Some(
        b.as_bytes()
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect(),
    )
}

/// A dense f32 constant `c` (of shape `[n, ...]`) with slice `i` along its first axis scaled by `k[i]`
/// (in f64, rounded once). One pass from bytes to bytes: batch-norm folding rewrites whole conv weights.
pub fn scale_rows_f32(c: &Constant, k: &[f64]) -> Option<Constant> {
    let n = usize::try_from(c.num_elements()).ok()?;
    scale_f32(c, k, n / k.len().max(1))
}

/// A dense 2-D f32 constant `c` (`[r, n]`) with column `j` scaled by `k[j]` (in f64, rounded once).
pub fn scale_cols_f32(c: &Constant, k: &[f64]) -> Option<Constant> {
    scale_f32(c, k, 1)
}

/// `c` with each run of `per` consecutive elements scaled by the next factor of `k` (cycling), so
/// `per = len/k` scales rows and `per = 1` scales the columns of a `[r, k.len()]` matrix.
fn scale_f32(c: &Constant, k: &[f64], per: usize) -> Option<Constant> {
    if !is_f32(c) || k.is_empty() || per == 0 {
        return None;
    }
    let carve_ir::ConstData::Bytes(b) = &c.data else {
        return None;
    };
    let src = b.as_bytes();
    if src.len() % (4 * per * k.len()) != 0 {
        return None;
    }
    // One pre-sized buffer written in place: ResNet-18's folding rescales 47 MB.
    let mut out = vec![0u8; src.len()];
    let runs = out.chunks_exact_mut(4 * per).zip(src.chunks_exact(4 * per));
    for ((dst, run), &ki) in runs.zip(k.iter().cycle()) {
        for (d, x) in dst.chunks_exact_mut(4).zip(run.chunks_exact(4)) {
            let v = f64::from(f32::from_le_bytes([x[0], x[1], x[2], x[3]])) * ki;
            d.copy_from_slice(&(v as f32).to_le_bytes());
        }
    }
    Constant::from_f32_bytes(&dims(c)?, out)
}

/// True if `c` is a dense f32 constant with its bytes present (what [`f32s`] decodes), without decoding.
pub fn is_f32(c: &Constant) -> bool {
    c.ty.dtype == DType::F32
        && c.format == carve_ir::ConstFormat::Dense
        && matches!(&c.data, carve_ir::ConstData::Bytes(b) if b.len() as u64 == 4 * c.num_elements())
}

/// The concrete dims of a constant.
pub fn dims(c: &Constant) -> Option<Vec<u64>> {
    c.ty.shape.as_ref()?.as_known()
}

/// The concrete dims of class `id`.
pub fn static_dims(eg: &EG, id: Id) -> Option<Vec<u64>> {
    tensor(eg, id)?.shape.as_ref()?.as_known()
}

/// For a constant that broadcasts as a per-channel vector against a value of rank `rank` with channel
/// axis `axis` (shapes `[C]` at the end, or `[1, C, 1, 1]`-like), its `C` values.
pub fn per_channel_f32(c: &Constant, rank: usize, axis: usize) -> Option<Vec<f32>> {
    // The shape is checked before the values are decoded: rules ask this of every constant operand
    // of an add, including large non-per-channel ones (embeddings, masks).
    let d = dims(c)?;
    if d.len() > rank {
        return None;
    }
    // Align trailing; every dim other than `axis` must be 1.
    let off = rank - d.len();
    for (i, &x) in d.iter().enumerate() {
        if i + off != axis && x != 1 {
            return None;
        }
    }
    let v = f32s(c)?;
    if axis < off && v.len() != 1 {
        return None;
    }
    Some(v)
}

/// True when a constant of dims `c` broadcast against `x` leaves `x`'s shape unchanged (every dim of
/// `c`, aligned at the end, is 1 or equal to a concrete dim of `x`), so `x ∘ c` has `x`'s shape.
pub fn fits_within(c: &[u64], x: &TensorType) -> bool {
    let Some(xd) = x.dims() else { return false };
    if c.len() > xd.len() {
        return false;
    }
    c.iter()
        .rev()
        .zip(xd.iter().rev())
        .all(|(&a, b)| a == 1 || b.known() == Some(a))
}

/// True when constant class `c` broadcast against class `x` leaves `x`'s type unchanged.
pub fn const_fits(eg: &EG, c: Id, x: Id) -> bool {
    let (Some(k), Some(t), Some(ct)) = (konst(eg, c), tensor(eg, x), tensor(eg, c)) else {
        return false;
    };
    ct.dtype == t.dtype && t.quant.is_none() && dims(k).is_some_and(|d| fits_within(&d, t))
}
