//! The training optimizers of `ai.onnx.preview.training`: `adagrad`, `adam` and `momentum`, each updating
//! `n` parameter tensors at once. Inputs are `(R, T, group_1..., group_2..., ...)` with `n` tensors per
//! group; computed in f64 and rounded once to each output's type.

use carve_ir::ops::misc::{Adagrad, Adam, Momentum, MomentumMode};

use crate::interp::util::{from_f64, to_f64};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::Tensor;

/// `R`, `T`, and the `groups` input groups as f64 vectors (with the tensors, for shapes and types).
struct Args<'a> {
    r: f64,
    t: i64,
    n: usize,
    groups: Vec<Vec<(&'a Tensor, Vec<f64>)>>,
}

fn args<'a>(cx: &EvalCtx<'a>, groups: usize) -> Result<Args<'a>, RunError> {
    let r = match to_f64(cx.tensor(0)?).map_err(|e| cx.err(e.0))?.as_slice() {
        [r] => *r,
        _ => return Err(cx.err("the learning rate R must hold one element")),
    };
    let t = match cx.i64s(1)?.as_slice() {
        [t] => *t,
        _ => return Err(cx.err("the step count T must hold one element")),
    };
    let rest = cx.num_inputs().saturating_sub(2);
    if rest == 0 || !rest.is_multiple_of(groups) {
        return Err(cx.err(format!(
            "expected R, T and {groups} groups of n tensors, got {} inputs",
            cx.num_inputs()
        )));
    }
    let n = rest / groups;
    let mut gs = Vec::with_capacity(groups);
    for g in 0..groups {
        let mut v = Vec::with_capacity(n);
        for k in 0..n {
            let t = cx.tensor(2 + g * n + k)?;
            let first = cx.tensor(2 + k)?;
            if t.shape != first.shape {
                return Err(cx.err(format!(
                    "tensor {k} of group {g} has shape {:?} but the parameter has {:?}",
                    t.shape, first.shape
                )));
            }
            v.push((t, to_f64(t).map_err(|e| cx.err(e.0))?));
        }
        gs.push(v);
    }
    Ok(Args {
        r,
        t,
        n,
        groups: gs,
    })
}

fn like(cx: &EvalCtx, t: &Tensor, v: &[f64]) -> Result<Value, RunError> {
    from_f64(t.dtype(), t.shape.clone(), v)
        .map(Value::Tensor)
        .map_err(|e| cx.err(e.0))
}

/// `adagrad`: outputs `(X_new..., H_new...)`.
pub fn adagrad(op: &Adagrad, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = args(cx, 3)?;
    let (decay, eps, norm) = (
        f64::from(op.decay_factor),
        f64::from(op.epsilon),
        f64::from(op.norm_coefficient),
    );
    let r = a.r / (1.0 + a.t as f64 * decay);
    let mut xs = Vec::with_capacity(a.n);
    let mut hs = Vec::with_capacity(a.n);
    for k in 0..a.n {
        let (xt, x) = &a.groups[0][k];
        let (_, g) = &a.groups[1][k];
        let (ht, h) = &a.groups[2][k];
        let mut x_new = Vec::with_capacity(x.len());
        let mut h_new = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let gr = norm * x[i] + g[i];
            let hn = h[i] + gr * gr;
            x_new.push(x[i] - r * gr / (hn.sqrt() + eps));
            h_new.push(hn);
        }
        xs.push(like(cx, xt, &x_new)?);
        hs.push(like(cx, ht, &h_new)?);
    }
    xs.extend(hs);
    Ok(xs)
}

/// `adam`: outputs `(X_new..., V_new..., H_new...)`.
pub fn adam(op: &Adam, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = args(cx, 4)?;
    let (alpha, beta, eps) = (
        f64::from(op.alpha),
        f64::from(op.beta),
        f64::from(op.epsilon),
    );
    let (norm, post) = (
        f64::from(op.norm_coefficient),
        f64::from(op.norm_coefficient_post),
    );
    let r = if a.t > 0 {
        let t = a.t as f64;
        a.r * (1.0 - beta.powf(t)).sqrt() / (1.0 - alpha.powf(t))
    } else {
        a.r
    };
    let (mut xs, mut vs, mut hs) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..a.n {
        let (xt, x) = &a.groups[0][k];
        let (_, g) = &a.groups[1][k];
        let (vt, v) = &a.groups[2][k];
        let (ht, h) = &a.groups[3][k];
        let (mut xn, mut vn, mut hn) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..x.len() {
            let gr = norm * x[i] + g[i];
            let v2 = alpha * v[i] + (1.0 - alpha) * gr;
            let h2 = beta * h[i] + (1.0 - beta) * gr * gr;
            let x2 = x[i] - r * (v2 / (h2.sqrt() + eps));
            xn.push((1.0 - post) * x2);
            vn.push(v2);
            hn.push(h2);
        }
        xs.push(like(cx, xt, &xn)?);
        vs.push(like(cx, vt, &vn)?);
        hs.push(like(cx, ht, &hn)?);
    }
    xs.extend(vs);
    xs.extend(hs);
    Ok(xs)
}

/// `momentum`: outputs `(X_new..., V_new...)`.
pub fn momentum(op: &Momentum, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let a = args(cx, 3)?;
    let (alpha, norm) = (f64::from(op.alpha), f64::from(op.norm_coefficient));
    // The gradient's coefficient is 1 at the first step.
    let beta = if a.t > 0 { f64::from(op.beta) } else { 1.0 };
    let mut xs = Vec::with_capacity(a.n);
    let mut vs = Vec::with_capacity(a.n);
    for k in 0..a.n {
        let (xt, x) = &a.groups[0][k];
        let (_, g) = &a.groups[1][k];
        let (vt, v) = &a.groups[2][k];
        let mut xn = Vec::with_capacity(x.len());
        let mut vn = Vec::with_capacity(x.len());
        for i in 0..x.len() {
            let gr = norm * x[i] + g[i];
            let v2 = alpha * v[i] + beta * gr;
            xn.push(match op.mode {
                MomentumMode::Standard => x[i] - a.r * v2,
                MomentumMode::Nesterov => x[i] - a.r * (gr + alpha * v2),
            });
            vn.push(v2);
        }
        xs.push(like(cx, xt, &xn)?);
        vs.push(like(cx, vt, &vn)?);
    }
    xs.extend(vs);
    Ok(xs)
}
