//! `matmul` (numpy semantics: broadcast batches, 1-D operands as vectors), `gemm` (transposes, alpha,
//! beta, broadcast C) and `det` (LU with partial pivoting, in f64).

use std::borrow::Cow;

use carve_ir::DType;
use carve_ir::ops::linalg::Gemm;

use super::num::{Elem, Real, transpose};
use super::{out_dtype, want_float};
use crate::interp::util::{self, broadcast_index, broadcast_shape, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// How a (batched) matrix product walks its operands.
#[derive(Debug)]
struct MatPlan {
    m: usize,
    k: usize,
    n: usize,
    /// Result shape.
    out: Vec<usize>,
    /// Number of result matrices.
    batches: usize,
    /// True when B is one matrix and A's batches are the result's: one product with A's batches
    /// stacked as rows.
    fold: bool,
    /// Per result matrix, the index of A's and B's matrix (unless `fold`).
    a_idx: Vec<usize>,
    b_idx: Vec<usize>,
}

impl MatPlan {
    fn new(a: &[usize], b: &[usize]) -> Result<MatPlan, String> {
        if a.is_empty() || b.is_empty() {
            return Err(format!(
                "operands must have rank ≥ 1, got shapes {a:?} and {b:?}"
            ));
        }
        let a2: Vec<usize> = if a.len() == 1 {
            vec![1, a[0]]
        } else {
            a.to_vec()
        };
        let b2: Vec<usize> = if b.len() == 1 {
            vec![b[0], 1]
        } else {
            b.to_vec()
        };
        let (ra, rb) = (a2.len(), b2.len());
        let (m, k, kb, n) = (a2[ra - 2], a2[ra - 1], b2[rb - 2], b2[rb - 1]);
        if k != kb {
            return Err(format!(
                "contracted dims differ: A {a:?} has {k} columns, B {b:?} has {kb} rows"
            ));
        }
        let (ab, bb) = (&a2[..ra - 2], &b2[..rb - 2]);
        let batch = broadcast_shape(ab, bb).map_err(|e| format!("batch dims: {}", e.0))?;
        let mut out = batch.clone();
        if a.len() > 1 {
            out.push(m);
        }
        if b.len() > 1 {
            out.push(n);
        }
        checked_numel(&out).map_err(|e| e.0)?;
        let batches: usize = batch.iter().product();
        let fold = bb.iter().product::<usize>() == 1 && ab.iter().product::<usize>() == batches;
        let (a_idx, b_idx) = if fold {
            (Vec::new(), Vec::new())
        } else {
            (broadcast_index(&batch, ab), broadcast_index(&batch, bb))
        };
        Ok(MatPlan {
            m,
            k,
            n,
            out,
            batches,
            fold,
            a_idx,
            b_idx,
        })
    }

    fn run<T: Elem>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut out = vec![T::ZERO; self.batches * m * n];
        if out.is_empty() {
            return out;
        }
        if self.fold {
            T::gemm(self.batches * m, k, n, a, k, b, n, &mut out, n, false);
        } else {
            for (i, (&ai, &bi)) in self.a_idx.iter().zip(&self.b_idx).enumerate() {
                T::gemm(
                    m,
                    k,
                    n,
                    &a[ai * m * k..],
                    k,
                    &b[bi * k * n..],
                    n,
                    &mut out[i * m * n..],
                    n,
                    false,
                );
            }
        }
        out
    }
}

/// Refuses operands of different element types.
fn same_dtype(cx: &EvalCtx, a: &Tensor, b: &Tensor) -> Result<DType, RunError> {
    if a.dtype() != b.dtype() {
        return Err(cx.err(format!(
            "operands must have the same element type, got {} and {}",
            a.dtype(),
            b.dtype()
        )));
    }
    Ok(a.dtype())
}

fn unsupported(cx: &EvalCtx, d: DType) -> RunError {
    cx.err(format!(
        "element type {d} is not supported (floats f32/f64/f16/bf16 and integers are)"
    ))
}

/// `matmul`: numpy matmul.
pub(super) fn matmul(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
    let dt = same_dtype(cx, a, b)?;
    let dtype = out_dtype(cx, 0, dt);
    let plan = MatPlan::new(&a.shape, &b.shape).map_err(|m| cx.err(m))?;
    let shape = plan.out.clone();
    let t = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) if dtype == DType::F32 => {
            Tensor::new(shape, Data::F32(plan.run(x, y))).map_err(|e| e.0)
        }
        (Data::F64(x), Data::F64(y)) if dtype == DType::F64 => {
            Tensor::new(shape, Data::F64(plan.run(x, y))).map_err(|e| e.0)
        }
        _ if matches!(dt, DType::F32 | DType::F16 | DType::BF16) => {
            let (x, y) = (f32::load(a), f32::load(b));
            let (x, y) = (x.map_err(|m| cx.err(m))?, y.map_err(|m| cx.err(m))?);
            f32::store(dtype, shape, plan.run(&x, &y))
        }
        _ if dt == DType::F64 => {
            let (x, y) = (f64::load(a), f64::load(b));
            let (x, y) = (x.map_err(|m| cx.err(m))?, y.map_err(|m| cx.err(m))?);
            f64::store(dtype, shape, plan.run(&x, &y))
        }
        _ if dt.is_int() => {
            let x = util::to_i64(a).map_err(|e| cx.err(e.0))?;
            let y = util::to_i64(b).map_err(|e| cx.err(e.0))?;
            util::from_i64(dtype, shape, &plan.run(&x, &y)).map_err(|e| e.0)
        }
        _ => return Err(unsupported(cx, dt)),
    };
    Ok(vec![t.map_err(|m| cx.err(m))?.into()])
}

/// The index into C for each element of the `[m, n]` result; C must broadcast to it.
fn c_index(cx: &EvalCtx, c: &Tensor, m: usize, n: usize) -> Result<Vec<usize>, RunError> {
    let fits = c.rank() <= 2 && broadcast_shape(&c.shape, &[m, n]).is_ok_and(|s| s == [m, n]);
    if !fits {
        return Err(cx.err(format!(
            "C {:?} does not broadcast to the result [{m}, {n}]",
            c.shape
        )));
    }
    Ok(broadcast_index(&[m, n], &c.shape))
}

/// Row-major contents of `op(x)` for a 2-D `x` of shape `[r, c]`.
fn op_matrix<'a, T: Copy>(v: Cow<'a, [T]>, shape: &[usize], trans: bool) -> Cow<'a, [T]> {
    if trans {
        Cow::Owned(transpose(&v, shape[0], shape[1]))
    } else {
        v
    }
}

/// `gemm`: `alpha · op(A) · op(B) + beta · C`.
pub(super) fn gemm(op: &Gemm, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (a, b) = (cx.tensor(0)?, cx.tensor(1)?);
    let c = cx.opt_tensor(2)?;
    let dt = same_dtype(cx, a, b)?;
    if let Some(c) = c {
        same_dtype(cx, a, c)?;
    }
    for (i, t) in [(0, a), (1, b)] {
        if t.rank() != 2 {
            return Err(cx.err(format!("input {i} must be 2-D, got shape {:?}", t.shape)));
        }
    }
    let (m, ka) = if op.trans_a {
        (a.shape[1], a.shape[0])
    } else {
        (a.shape[0], a.shape[1])
    };
    let (kb, n) = if op.trans_b {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    if ka != kb {
        return Err(cx.err(format!(
            "contracted dims differ: op(A) has {ka} columns, op(B) has {kb} rows"
        )));
    }
    checked_numel(&[m, n]).map_err(|e| cx.err(e.0))?;
    // beta = 0 ignores C entirely (so infinities or NaN in C do not leak as NaN).
    let c = c.filter(|_| op.beta != 0.0);
    let cidx = c.map(|c| c_index(cx, c, m, n)).transpose()?;
    let dtype = out_dtype(cx, 0, dt);
    let t = if matches!(dt, DType::F32 | DType::F16 | DType::BF16) {
        gemm_real::<f32>(op, a, b, c.zip(cidx.as_deref()), (m, ka, n), dtype)
    } else if dt == DType::F64 {
        gemm_real::<f64>(op, a, b, c.zip(cidx.as_deref()), (m, ka, n), dtype)
    } else if dt.is_int() {
        gemm_int(op, a, b, c.zip(cidx.as_deref()), (m, ka, n), dtype)
    } else {
        return Err(unsupported(cx, dt));
    };
    Ok(vec![t.map_err(|m| cx.err(m))?.into()])
}

fn gemm_real<R: Real>(
    op: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: Option<(&Tensor, &[usize])>,
    (m, k, n): (usize, usize, usize),
    dtype: DType,
) -> Result<Tensor, String> {
    let av = op_matrix(R::load(a)?, &a.shape, op.trans_a);
    let bv = op_matrix(R::load(b)?, &b.shape, op.trans_b);
    let mut y = vec![R::ZERO; m * n];
    R::gemm(m, k, n, &av, k, &bv, n, &mut y, n, false);
    // The reference rounds the product to the input type, then (its alpha and beta being float32
    // scalars) computes `dot · alpha + C · beta` in f32 for f16/bf16/f32 and in f64 for f64.
    let r = R::rounder(a.dtype());
    let (alpha, beta) = (R::of(f64::from(op.alpha)), R::of(f64::from(op.beta)));
    for x in &mut y {
        *x = r(*x) * alpha;
    }
    if let Some((c, idx)) = c {
        let cv = R::load(c)?;
        for (x, &i) in y.iter_mut().zip(idx) {
            *x = *x + cv[i] * beta;
        }
    }
    R::store(dtype, vec![m, n], y)
}

fn gemm_int(
    op: &Gemm,
    a: &Tensor,
    b: &Tensor,
    c: Option<(&Tensor, &[usize])>,
    (m, k, n): (usize, usize, usize),
    dtype: DType,
) -> Result<Tensor, String> {
    let av = op_matrix(
        Cow::Owned(util::to_i64(a).map_err(|e| e.0)?),
        &a.shape,
        op.trans_a,
    );
    let bv = op_matrix(
        Cow::Owned(util::to_i64(b).map_err(|e| e.0)?),
        &b.shape,
        op.trans_b,
    );
    let mut y = vec![0i64; m * n];
    i64::gemm(m, k, n, &av, k, &bv, n, &mut y, n, false);
    let cv = c
        .map(|(c, idx)| {
            util::to_i64(c)
                .map(|v| idx.iter().map(|&i| v[i]).collect::<Vec<_>>())
                .map_err(|e| e.0)
        })
        .transpose()?;
    if op.alpha == 1.0 && (cv.is_none() || op.beta == 1.0) {
        // Exact integer arithmetic.
        if let Some(cv) = cv {
            for (x, c) in y.iter_mut().zip(cv) {
                *x = x.wrapping_add(c);
            }
        }
        return util::from_i64(dtype, vec![m, n], &y).map_err(|e| e.0);
    }
    // Fractional scales: like numpy, the scaled result is real and truncated back.
    let (alpha, beta) = (f64::from(op.alpha), f64::from(op.beta));
    let v: Vec<f64> = match cv {
        Some(cv) => y
            .iter()
            .zip(cv)
            .map(|(&x, c)| x as f64 * alpha + c as f64 * beta)
            .collect(),
        None => y.iter().map(|&x| x as f64 * alpha).collect(),
    };
    util::from_f64(dtype, vec![m, n], &v).map_err(|e| e.0)
}

/// Determinant of the row-major `n×n` matrix `a` (destroyed): LU with partial pivoting.
fn det_lu(a: &mut [f64], n: usize) -> f64 {
    if a.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let mut det = 1.0;
    for col in 0..n {
        let mut p = col;
        for r in col + 1..n {
            if a[r * n + col].abs() > a[p * n + col].abs() {
                p = r;
            }
        }
        let pivot = a[p * n + col];
        if pivot == 0.0 {
            return 0.0;
        }
        if p != col {
            for j in 0..n {
                a.swap(p * n + j, col * n + j);
            }
            det = -det;
        }
        det *= pivot;
        for r in col + 1..n {
            let f = a[r * n + col] / pivot;
            if f != 0.0 {
                for j in col + 1..n {
                    a[r * n + j] -= f * a[col * n + j];
                }
            }
        }
    }
    det
}

/// `det`: determinants of the `[M, M]` matrices in the last two dims.
pub(super) fn det(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    want_float(cx, 0, x.dtype())?;
    let r = x.rank();
    if r < 2 || x.shape[r - 1] != x.shape[r - 2] {
        return Err(cx.err(format!(
            "input must be a batch of square matrices, got shape {:?}",
            x.shape
        )));
    }
    let n = x.shape[r - 1];
    let v = f64::load(x).map_err(|m| cx.err(m))?;
    let out_shape = x.shape[..r - 2].to_vec();
    let count: usize = out_shape.iter().product();
    let mut dets = Vec::with_capacity(count);
    for i in 0..count {
        let mut mat = v[i * n * n..(i + 1) * n * n].to_vec();
        dets.push(det_lu(&mut mat, n));
    }
    let dtype = out_dtype(cx, 0, x.dtype());
    Ok(vec![
        f64::store(dtype, out_shape, dets)
            .map_err(|m| cx.err(m))?
            .into(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn batched_broadcast_matches_per_matrix_products() {
        // A [3,1,2,4] · B [1,2,4,5] → [3,2,2,5].
        let plan = MatPlan::new(&[3, 1, 2, 4], &[1, 2, 4, 5]).unwrap();
        assert_eq!(plan.out, vec![3, 2, 2, 5]);
        let a: Vec<f64> = (0..24).map(|i| f64::from(i) * 0.5 - 3.0).collect();
        let b: Vec<f64> = (0..40).map(|i| f64::from(i).sin()).collect();
        let got = plan.run(&a, &b);
        for x in 0..3 {
            for y in 0..2 {
                let want = naive(&a[x * 8..x * 8 + 8], &b[y * 20..y * 20 + 20], 2, 4, 5);
                let at = (x * 2 + y) * 10;
                for (g, w) in got[at..at + 10].iter().zip(&want) {
                    assert!((g - w).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn vectors_drop_their_inserted_dims() {
        assert_eq!(MatPlan::new(&[3], &[3]).unwrap().out, Vec::<usize>::new());
        assert_eq!(MatPlan::new(&[4], &[2, 4, 1]).unwrap().out, vec![2, 1]);
        assert_eq!(
            MatPlan::new(&[1, 2, 4, 3], &[3]).unwrap().out,
            vec![1, 2, 4]
        );
        let p = MatPlan::new(&[2, 3], &[3]).unwrap();
        assert!(p.fold);
        assert_eq!(p.run(&[1i64, 2, 3, 4, 5, 6], &[1, 0, -1]), vec![-2, -2]);
        assert!(MatPlan::new(&[2, 3], &[2]).is_err());
        assert!(MatPlan::new(&[], &[2]).is_err());
        // Empty contraction: zeros.
        let p = MatPlan::new(&[2, 0], &[0, 3]).unwrap();
        assert_eq!(p.run::<f32>(&[], &[]), vec![0.0; 6]);
    }

    #[test]
    fn det_uses_pivoting() {
        let mut a = vec![0.0, 1.0, 1.0, 0.0];
        assert_eq!(det_lu(&mut a, 2), -1.0);
        let mut b = vec![2.0, 0.0, 1.0, 1.0, 3.0, 2.0, 1.0, 1.0, 1.0];
        // 2(3-2) - 0 + 1(1-3) = 0
        assert!(det_lu(&mut b, 3).abs() < 1e-12);
        let mut c = vec![4.0, 3.0, 6.0, 3.0];
        assert!((det_lu(&mut c, 2) - -6.0).abs() < 1e-12);
        assert_eq!(det_lu(&mut [], 0), 1.0);
    }
}
