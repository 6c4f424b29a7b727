//! Dtype-generic tensor plumbing shared by the control and misc kernels: copying runs of elements between
//! tensors of one element type, and slicing, concatenating and stacking along an axis built on it.

use carve_ir::DType;

use crate::interp::util::checked_numel;
use crate::tensor::{Data, Tensor};

/// A run of `len` consecutive elements starting at flat index `start` of source `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Index into the source list.
    pub src: usize,
    /// First element.
    pub start: usize,
    /// Number of elements.
    pub len: usize,
}

macro_rules! gather_variants {
    ($first:expr, $srcs:expr, $runs:expr, $total:expr; $($V:ident),*) => {
        match $first {
            $(Data::$V(_) => {
                let mut out = Vec::with_capacity($total);
                for r in $runs {
                    let Some(Data::$V(v)) = $srcs.get(r.src) else {
                        return Err(format!("run source {} is missing or of another type", r.src));
                    };
                    out.extend_from_slice(slice_of(v, r)?);
                }
                Data::$V(out)
            })*
            Data::Small(d, _) => {
                let mut out = Vec::with_capacity($total);
                for r in $runs {
                    let Some(Data::Small(e, v)) = $srcs.get(r.src) else {
                        return Err(format!("run source {} is missing or of another type", r.src));
                    };
                    if e != d {
                        return Err(format!("cannot mix {d} and {e} elements"));
                    }
                    out.extend_from_slice(slice_of(v, r)?);
                }
                Data::Small(*d, out)
            }
        }
    };
}

fn slice_of<'a, T>(v: &'a [T], r: &Run) -> Result<&'a [T], String> {
    r.start
        .checked_add(r.len)
        .and_then(|end| v.get(r.start..end))
        .ok_or_else(|| {
            format!(
                "elements {}..{}+{} are out of range (source has {})",
                r.start,
                r.start,
                r.len,
                v.len()
            )
        })
}

/// Copies `runs` out of `srcs` (all of element type `dtype`) into one new buffer, in order.
pub fn gather_runs(dtype: DType, srcs: &[&Data], runs: &[Run]) -> Result<Data, String> {
    if let Some(bad) = srcs.iter().find(|d| d.dtype() != dtype) {
        return Err(format!("expected {dtype} elements, got {}", bad.dtype()));
    }
    let total = runs
        .iter()
        .try_fold(0usize, |a, r| a.checked_add(r.len))
        .ok_or("too many elements")?;
    let Some(first) = srcs.first() else {
        return if total == 0 {
            Ok(Data::zeros(dtype, 0))
        } else {
            Err("no source to copy from".into())
        };
    };
    Ok(gather_variants!(first, srcs, runs, total;
        F32, F64, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, Bool, Str, C64, C128))
}

/// Picks single elements (flat indices) of `t` into a tensor of shape `shape`.
pub fn take(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> Result<Tensor, String> {
    let runs: Vec<Run> = idx
        .iter()
        .map(|&start| Run {
            src: 0,
            start,
            len: 1,
        })
        .collect();
    let data = gather_runs(t.dtype(), &[&t.data], &runs)?;
    Tensor::new(shape, data).map_err(|e| e.0)
}

/// `(outer, n, inner)`: the element counts before, along and after `axis` of `shape`.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Elements `start..start+len` along `axis` of `t` (the axis kept, with size `len`).
pub fn slice_axis(t: &Tensor, axis: usize, start: usize, len: usize) -> Result<Tensor, String> {
    if axis >= t.rank() {
        return Err(format!("axis {axis} is out of range for rank {}", t.rank()));
    }
    let (outer, n, inner) = split_at_axis(&t.shape, axis);
    if start.checked_add(len).is_none_or(|e| e > n) {
        return Err(format!(
            "slice {start}..{start}+{len} is out of range for a dim of {n}"
        ));
    }
    let runs: Vec<Run> = (0..outer)
        .map(|o| Run {
            src: 0,
            start: (o * n + start) * inner,
            len: len * inner,
        })
        .collect();
    let data = gather_runs(t.dtype(), &[&t.data], &runs)?;
    let mut shape = t.shape.clone();
    shape[axis] = len;
    Tensor::new(shape, data).map_err(|e| e.0)
}

/// Element `i` along `axis` of `t`, with that axis removed.
pub fn index_axis(t: &Tensor, axis: usize, i: usize) -> Result<Tensor, String> {
    let mut s = slice_axis(t, axis, i, 1)?;
    s.shape.remove(axis);
    Ok(s)
}

/// Concatenates tensors of one element type and rank along `axis` (all other dims equal); an empty list
/// is an error.
pub fn concat(ts: &[&Tensor], axis: usize) -> Result<Tensor, String> {
    let Some(first) = ts.first() else {
        return Err("nothing to concatenate".into());
    };
    let rank = first.rank();
    if axis >= rank {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    let mut along = 0usize;
    for (k, t) in ts.iter().enumerate() {
        if t.dtype() != first.dtype() {
            return Err(format!(
                "element {k} is {} but element 0 is {}",
                t.dtype(),
                first.dtype()
            ));
        }
        let same = t.rank() == rank
            && t.shape
                .iter()
                .zip(&first.shape)
                .enumerate()
                .all(|(a, (x, y))| a == axis || x == y);
        if !same {
            return Err(format!(
                "element {k} has shape {:?}, incompatible with {:?} along axis {axis}",
                t.shape, first.shape
            ));
        }
        along = along
            .checked_add(t.shape[axis])
            .ok_or("concatenated dim overflows")?;
    }
    let mut shape = first.shape.clone();
    shape[axis] = along;
    checked_numel(&shape).map_err(|e| e.0)?;
    let (outer, _, inner) = split_at_axis(&first.shape, axis);
    let mut runs = Vec::with_capacity(outer * ts.len());
    for o in 0..outer {
        for (k, t) in ts.iter().enumerate() {
            let n = t.shape[axis];
            runs.push(Run {
                src: k,
                start: o * n * inner,
                len: n * inner,
            });
        }
    }
    let srcs: Vec<&Data> = ts.iter().map(|t| &t.data).collect();
    let data = gather_runs(first.dtype(), &srcs, &runs)?;
    Tensor::new(shape, data).map_err(|e| e.0)
}

/// Stacks equally shaped tensors along a new axis `axis` (`0..=rank`).
pub fn stack(ts: &[&Tensor], axis: usize) -> Result<Tensor, String> {
    let Some(first) = ts.first() else {
        return Err("nothing to stack".into());
    };
    if axis > first.rank() {
        return Err(format!(
            "axis {axis} is out of range for stacking rank {} tensors",
            first.rank()
        ));
    }
    if let Some((k, t)) = ts.iter().enumerate().find(|(_, t)| t.shape != first.shape) {
        return Err(format!(
            "element {k} has shape {:?} but element 0 has {:?}",
            t.shape, first.shape
        ));
    }
    let expanded: Vec<Tensor> = ts
        .iter()
        .map(|t| {
            let mut shape = t.shape.clone();
            shape.insert(axis, 1);
            Tensor {
                shape,
                data: t.data.clone(),
            }
        })
        .collect();
    let refs: Vec<&Tensor> = expanded.iter().collect();
    concat(&refs, axis)
}

/// Normalizes a possibly negative `axis` against `rank` (`-rank..rank`).
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = i64::try_from(rank).map_err(|_| "rank too large")?;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::new(shape.to_vec(), Data::I64(v.to_vec())).unwrap()
    }

    #[test]
    fn slicing_and_concatenation_follow_row_major_layout() {
        let x = t(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(slice_axis(&x, 1, 1, 2).unwrap(), t(&[2, 2], &[1, 2, 4, 5]));
        assert_eq!(index_axis(&x, 0, 1).unwrap(), t(&[3], &[3, 4, 5]));
        let y = t(&[2, 1], &[9, 8]);
        assert_eq!(
            concat(&[&x, &y], 1).unwrap(),
            t(&[2, 4], &[0, 1, 2, 9, 3, 4, 5, 8])
        );
        assert!(concat(&[&x, &y], 0).is_err());
        let a = t(&[2], &[1, 2]);
        let b = t(&[2], &[3, 4]);
        assert_eq!(stack(&[&a, &b], 0).unwrap(), t(&[2, 2], &[1, 2, 3, 4]));
        assert_eq!(stack(&[&a, &b], 1).unwrap(), t(&[2, 2], &[1, 3, 2, 4]));
        assert!(slice_axis(&x, 1, 2, 2).is_err());
        assert!(stack(&[&a, &y], 0).is_err());
    }

    #[test]
    fn strings_and_small_types_are_gathered_too() {
        let s = Tensor::new(vec![3], Data::Str(vec!["a".into(), "b".into(), "c".into()])).unwrap();
        assert_eq!(
            take(&s, &[2, 0], vec![2]).unwrap().data,
            Data::Str(vec!["c".into(), "a".into()])
        );
        let q = Tensor::new(vec![2], Data::Small(DType::I4, vec![1, 0xFF])).unwrap();
        assert_eq!(
            take(&q, &[1], vec![1]).unwrap().data,
            Data::Small(DType::I4, vec![0xFF])
        );
        assert!(take(&q, &[2], vec![1]).is_err());
    }
}
