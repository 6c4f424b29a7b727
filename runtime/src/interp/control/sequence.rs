//! Sequence kernels: construction, insertion, lookup, erasure, length, splitting a tensor into a sequence,
//! concatenating a sequence into a tensor, and mapping a subgraph over sequences.

use carve_ir::ops::control::{ConcatFromSequence, SequenceMap, SplitToSequence};

use super::data::{concat, index_axis, norm_axis, slice_axis, stack};
use super::run_body;
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// The most elements `split_to_sequence` makes from an empty tensor.
const MAX_SEQUENCE: usize = 1 << 24;

fn seq<'a>(cx: &EvalCtx<'a>, i: usize) -> Result<&'a [Value], RunError> {
    match cx.value(i) {
        Some(Value::Sequence(s)) => Ok(s),
        Some(v) => Err(cx.err(format!("input {i} must be a sequence, got a {}", v.kind()))),
        None => Err(cx.err(format!("input {i} is required"))),
    }
}

/// The position scalar of input `i`, if present.
fn position(cx: &EvalCtx, i: usize) -> Result<Option<i64>, RunError> {
    if !cx.has(i) {
        return Ok(None);
    }
    match cx.i64s(i)?.as_slice() {
        [p] => Ok(Some(*p)),
        _ => Err(cx.err(format!("the position (input {i}) must hold one element"))),
    }
}

/// Resolves a possibly negative position against a sequence of `len` elements; `end_ok` allows `len`.
fn resolve(cx: &EvalCtx, pos: i64, len: usize, end_ok: bool) -> Result<usize, RunError> {
    let n = i64::try_from(len).map_err(|_| cx.err("sequence too long"))?;
    let p = if pos < 0 { pos + n } else { pos };
    let hi = if end_ok { n } else { n - 1 };
    if p < 0 || p > hi {
        return Err(cx.err(format!(
            "position {pos} is out of range for a sequence of {len} elements"
        )));
    }
    Ok(p as usize)
}

/// `sequence_construct`: the inputs, in order.
pub fn construct(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let items = (0..cx.num_inputs())
        .map(|i| cx.tensor(i).map(|t| Value::Tensor(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(Value::Tensor(first)) = items.first()
        && let Some(bad) = items.iter().find_map(|v| match v {
            Value::Tensor(t) if t.dtype() != first.dtype() => Some(t.dtype()),
            _ => None,
        })
    {
        return Err(cx.err(format!(
            "all elements must share one element type, got {} and {bad}",
            first.dtype()
        )));
    }
    Ok(vec![Value::Sequence(items)])
}

/// `sequence_insert`: input 1 inserted at position input 2 (default: the end).
pub fn insert(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let s = seq(cx, 0)?;
    let t = cx.tensor(1)?;
    if let Some(Value::Tensor(first)) = s.first()
        && first.dtype() != t.dtype()
    {
        return Err(cx.err(format!(
            "cannot insert a {} tensor into a sequence of {}",
            t.dtype(),
            first.dtype()
        )));
    }
    let at = match position(cx, 2)? {
        Some(p) => resolve(cx, p, s.len(), true)?,
        None => s.len(),
    };
    let mut out = Vec::with_capacity(s.len() + 1);
    out.extend_from_slice(&s[..at]);
    out.push(Value::Tensor(t.clone()));
    out.extend_from_slice(&s[at..]);
    Ok(vec![Value::Sequence(out)])
}

/// `sequence_at`: element input 1.
pub fn at(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let s = seq(cx, 0)?;
    let p = position(cx, 1)?.ok_or_else(|| cx.err("the position (input 1) is required"))?;
    Ok(vec![s[resolve(cx, p, s.len(), false)?].clone()])
}

/// `sequence_erase`: input 0 without element input 1 (default: the last).
pub fn erase(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let s = seq(cx, 0)?;
    let at = resolve(cx, position(cx, 1)?.unwrap_or(-1), s.len(), false)?;
    let mut out = s.to_vec();
    out.remove(at);
    Ok(vec![Value::Sequence(out)])
}

/// `sequence_length`: the element count as an i64 scalar.
pub fn length(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let n = i64::try_from(seq(cx, 0)?.len()).map_err(|_| cx.err("sequence too long"))?;
    Ok(vec![Value::Tensor(Tensor::scalar_i64(n))])
}

/// `split_to_sequence`.
pub fn split_to_sequence(op: &SplitToSequence, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if x.rank() == 0 {
        return Err(cx.err("input 0 must have rank >= 1"));
    }
    let axis = norm_axis(op.axis, x.rank()).map_err(|e| cx.err(e))?;
    let dim = x.shape[axis];
    // Chunks of an empty tensor cost nothing each but a value apiece: bound their number.
    if dim > MAX_SEQUENCE && x.is_empty() {
        return Err(cx.err(format!(
            "splitting an axis of {dim} would make more than {MAX_SEQUENCE} sequence elements"
        )));
    }
    let items: Vec<Tensor> = match cx.opt_tensor(1)? {
        None => (0..dim)
            .map(|i| {
                if op.keepdims {
                    slice_axis(x, axis, i, 1)
                } else {
                    index_axis(x, axis, i)
                }
            })
            .collect::<Result<_, _>>()
            .map_err(|e| cx.err(e))?,
        Some(s) => {
            let v = cx.i64s(1)?;
            let sizes: Vec<usize> = if s.rank() == 0 {
                let c = usize::try_from(v[0])
                    .ok()
                    .filter(|&c| c > 0)
                    .ok_or_else(|| cx.err(format!("split must be positive, got {}", v[0])))?;
                let mut sizes = vec![c; dim / c];
                if dim % c != 0 {
                    sizes.push(dim % c);
                }
                sizes
            } else if s.rank() == 1 {
                let sizes = v
                    .iter()
                    .map(|&x| usize::try_from(x))
                    .collect::<Result<Vec<usize>, _>>()
                    .map_err(|_| cx.err(format!("split sizes must be >= 0, got {v:?}")))?;
                let sum = sizes
                    .iter()
                    .try_fold(0usize, |a, &b| a.checked_add(b))
                    .ok_or_else(|| cx.err("split sizes overflow"))?;
                if sum != dim {
                    return Err(cx.err(format!(
                        "split sizes {v:?} sum to {sum} but axis {axis} has size {dim}"
                    )));
                }
                sizes
            } else {
                return Err(cx.err("split (input 1) must be a scalar or 1-D"));
            };
            let mut start = 0;
            let mut out = Vec::with_capacity(sizes.len());
            for len in sizes {
                out.push(slice_axis(x, axis, start, len).map_err(|e| cx.err(e))?);
                start += len;
            }
            out
        }
    };
    Ok(vec![Value::Sequence(
        items.into_iter().map(Value::Tensor).collect(),
    )])
}

/// `concat_from_sequence`.
pub fn concat_from_sequence(op: &ConcatFromSequence, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let s = seq(cx, 0)?;
    let ts: Vec<&Tensor> = s
        .iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(t),
            v => Err(cx.err(format!(
                "sequence elements must be tensors, got a {}",
                v.kind()
            ))),
        })
        .collect::<Result<_, _>>()?;
    let Some(first) = ts.first() else {
        return Err(cx.err("cannot concatenate an empty sequence"));
    };
    let out = if op.new_axis {
        let a = norm_axis(op.axis, first.rank() + 1).map_err(|e| cx.err(e))?;
        stack(&ts, a)
    } else {
        let a = norm_axis(op.axis, first.rank()).map_err(|e| cx.err(e))?;
        concat(&ts, a)
    };
    Ok(vec![Value::Tensor(out.map_err(|e| cx.err(e))?)])
}

/// `sequence_map`: the body applied to the i-th element of every sequence input (tensor inputs whole).
pub fn map(op: &SequenceMap, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let first = seq(cx, 0)?;
    let n = first.len();
    for i in 1..cx.num_inputs() {
        match cx.value(i) {
            Some(Value::Sequence(s)) if s.len() != n => {
                return Err(cx.err(format!(
                    "sequence input {i} has {} elements but input 0 has {n}",
                    s.len()
                )));
            }
            Some(Value::Sequence(_) | Value::Tensor(_)) => {}
            Some(v) => {
                return Err(cx.err(format!(
                    "input {i} must be a sequence or a tensor, got a {}",
                    v.kind()
                )));
            }
            None => return Err(cx.err(format!("input {i} is required"))),
        }
    }
    let k = cx.num_outputs();
    let mut results: Vec<Vec<Value>> = vec![Vec::with_capacity(n); k];
    for (e, item) in first.iter().enumerate() {
        let mut ins = Vec::with_capacity(cx.num_inputs());
        ins.push(item.clone());
        for i in 1..cx.num_inputs() {
            ins.push(match cx.value(i) {
                Some(Value::Sequence(s)) => s[e].clone(),
                Some(v) => v.clone(),
                None => return Err(cx.err(format!("input {i} is required"))),
            });
        }
        let outs = run_body(cx, &op.body, ins, k, "the body")?;
        for (r, v) in results.iter_mut().zip(outs) {
            r.push(v);
        }
    }
    Ok(results.into_iter().map(Value::Sequence).collect())
}
