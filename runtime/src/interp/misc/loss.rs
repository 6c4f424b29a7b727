//! The losses: `nll_loss` and `softmax_cross_entropy_loss` (the latter is `nll_loss` of the log-softmax
//! over axis 1, and can also return that log-softmax). Computed in f64 and rounded once to the input's
//! type. The mean is the weighted mean `sum(w_i * l_i) / sum(w_i)`, where an ignored target has weight 0
//! and, without class weights, every other target weight 1.

use carve_ir::ops::misc::{NllLoss, Reduction, SoftmaxCrossEntropyLoss};

use crate::interp::util::{from_f64, to_f64};
use crate::interp::{EvalCtx, RunError, Value};

/// Shared part: `logp` holds log-probabilities `[N, C, D]` (flattened spatial dims).
fn nll(
    cx: &EvalCtx,
    logp: &[f64],
    reduction: Reduction,
    ignore_index: Option<i64>,
) -> Result<Value, RunError> {
    let x = cx.tensor(0)?;
    let target = cx.tensor(1)?;
    if x.rank() < 2 {
        return Err(cx.err(format!(
            "input must be [N, C, d...], got shape {:?}",
            x.shape
        )));
    }
    let (n, c) = (x.shape[0], x.shape[1]);
    let mut expect = vec![n];
    expect.extend_from_slice(&x.shape[2..]);
    if target.shape != expect {
        return Err(cx.err(format!(
            "target shape {:?} does not match input shape {:?}",
            target.shape, x.shape
        )));
    }
    let d: usize = x.shape[2..].iter().product();
    let t = cx.i64s(1)?;
    let weight = match cx.opt_tensor(2)? {
        Some(w) => {
            if w.shape != [c] {
                return Err(cx.err(format!("weight must be [{c}], got shape {:?}", w.shape)));
            }
            Some(to_f64(w).map_err(|e| cx.err(e.0))?)
        }
        None => None,
    };
    let mut loss = Vec::with_capacity(n * d);
    let mut wsum = 0.0;
    for i in 0..n {
        for k in 0..d {
            let class = t[i * d + k];
            if ignore_index == Some(class) {
                loss.push(0.0);
                continue;
            }
            let cl = usize::try_from(class)
                .ok()
                .filter(|&cl| cl < c)
                .ok_or_else(|| cx.err(format!("target {class} is out of range for {c} classes")))?;
            let w = weight.as_ref().map_or(1.0, |w| w[cl]);
            wsum += w;
            loss.push(-logp[(i * c + cl) * d + k] * w);
        }
    }
    let (shape, v) = match reduction {
        Reduction::None => (target.shape.clone(), loss),
        Reduction::Sum => (Vec::new(), vec![loss.iter().sum()]),
        Reduction::Mean => (Vec::new(), vec![loss.iter().sum::<f64>() / wsum]),
    };
    from_f64(x.dtype(), shape, &v)
        .map(Value::Tensor)
        .map_err(|e| cx.err(e.0))
}

/// `nll_loss`.
pub fn nll_loss(op: &NllLoss, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let logp = to_f64(x).map_err(|e| cx.err(e.0))?;
    Ok(vec![nll(cx, &logp, op.reduction, op.ignore_index)?])
}

/// `softmax_cross_entropy_loss`.
pub fn softmax_cross_entropy(
    op: &SoftmaxCrossEntropyLoss,
    cx: &EvalCtx,
) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    if x.rank() < 2 {
        return Err(cx.err(format!(
            "input must be [N, C, d...], got shape {:?}",
            x.shape
        )));
    }
    let mut v = to_f64(x).map_err(|e| cx.err(e.0))?;
    let (n, c) = (x.shape[0], x.shape[1]);
    let d: usize = x.shape[2..].iter().product();
    for i in 0..n {
        for k in 0..d {
            let at = |j: usize| (i * c + j) * d + k;
            let max = (0..c).map(|j| v[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let lse = max + (0..c).map(|j| (v[at(j)] - max).exp()).sum::<f64>().ln();
            for j in 0..c {
                v[at(j)] -= lse;
            }
        }
    }
    let mut out = vec![nll(cx, &v, op.reduction, op.ignore_index)?];
    if cx.num_outputs() >= 2 {
        let t = from_f64(x.dtype(), x.shape.clone(), &v).map_err(|e| cx.err(e.0))?;
        out.push(Value::Tensor(t));
    }
    Ok(out)
}
