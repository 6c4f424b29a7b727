//! Symbolic evaluation of small integer tensors (rank <= 1) for the elementwise ops' [`Infer::sym_value`]:
//! shape arithmetic such as `Shape → Mul → Reshape` keeps its dims.
//!
//! [`Infer::sym_value`]: crate::infer::Infer::sym_value

use crate::DType;
use crate::infer::{InferCtx, SymInt};

pub(super) fn int(v: Option<i64>) -> SymInt {
    v.map_or(SymInt::Unknown, SymInt::Int)
}

/// `x` if it fits in `dtype`, else unknown (the real op would wrap).
pub(super) fn fit(x: i64, dtype: DType) -> SymInt {
    let ok = match dtype {
        DType::I64 => true,
        DType::I32 => i32::try_from(x).is_ok(),
        DType::I16 => i16::try_from(x).is_ok(),
        DType::I8 => i8::try_from(x).is_ok(),
        DType::U64 => x >= 0,
        DType::U32 => u32::try_from(x).is_ok(),
        DType::U16 => u16::try_from(x).is_ok(),
        DType::U8 => u8::try_from(x).is_ok(),
        _ => false,
    };
    if ok { SymInt::Int(x) } else { SymInt::Unknown }
}

pub(super) fn sym_add(a: &SymInt, b: &SymInt) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => int(x.checked_add(*y)),
        (s @ SymInt::Sym(_), SymInt::Int(0)) | (SymInt::Int(0), s @ SymInt::Sym(_)) => s.clone(),
        _ => SymInt::Unknown,
    }
}

/// Length of the broadcast of rank <= 1 value lists (`None` if they do not broadcast).
pub(super) fn broadcast_len(vals: &[Vec<SymInt>]) -> Option<usize> {
    let n = if vals.iter().any(|v| v.is_empty()) {
        0
    } else {
        vals.iter().map(Vec::len).max()?
    };
    vals.iter()
        .all(|v| v.len() == n || v.len() == 1)
        .then_some(n)
}

pub(super) fn at(v: &[SymInt], i: usize) -> &SymInt {
    if v.len() == 1 { &v[0] } else { &v[i] }
}

/// Range-checks results against the output element type (input 0's for arithmetic, bool otherwise).
pub(super) fn fit_all(cx: &InferCtx, v: Vec<SymInt>) -> Vec<SymInt> {
    match cx.dtype(0) {
        Ok(d) if d.is_int() => v
            .into_iter()
            .map(|s| match s {
                SymInt::Int(x) => fit(x, d),
                s => s,
            })
            .collect(),
        _ => v,
    }
}

pub(super) fn sym_map(cx: &InferCtx, f: impl Fn(&SymInt) -> SymInt) -> Option<Vec<SymInt>> {
    let v = cx.sym_value(0)?;
    Some(fit_all(cx, v.iter().map(f).collect()))
}

pub(super) fn sym_zip(
    cx: &InferCtx,
    f: impl Fn(&SymInt, &SymInt) -> SymInt,
) -> Option<Vec<SymInt>> {
    let vals = [cx.sym_value(0)?, cx.sym_value(1)?];
    let n = broadcast_len(&vals)?;
    let out = (0..n)
        .map(|i| f(at(&vals[0], i), at(&vals[1], i)))
        .collect();
    Some(fit_all(cx, out))
}

pub(super) fn sym_fold(
    cx: &InferCtx,
    f: impl Fn(&SymInt, &SymInt) -> SymInt,
) -> Option<Vec<SymInt>> {
    let vals: Vec<Vec<SymInt>> = (0..cx.num_inputs())
        .map(|i| cx.sym_value(i))
        .collect::<Option<_>>()?;
    let n = broadcast_len(&vals)?;
    let out = (0..n)
        .map(|i| {
            let mut acc = at(vals.first()?, i).clone();
            for v in &vals[1..] {
                acc = f(&acc, at(v, i));
            }
            Some(acc)
        })
        .collect::<Option<Vec<_>>>()?;
    Some(fit_all(cx, out))
}
