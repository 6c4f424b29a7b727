//! Decomposition of the losses `nll_loss` and `softmax_cross_entropy_loss` into ops with native
//! kernels, computing what the reference interpreter computes:
//!
//! - `softmax_cross_entropy_loss` is `nll_loss` of `log_softmax(x, axis=1)`; that `softmax` node
//!   defines the optional log-probability result;
//! - with an `ignore_index`, `ignored = equal(target, ignore_index)` and the targets read are
//!   `where(ignored, 0, target)` (an ignored target may lie outside the classes);
//! - the picked log-probabilities are `squeeze(gather_elements(x, unsqueeze(target, 1), axis=1), 1)`,
//!   negated;
//! - the per-element weight is `gather(weight, target)` (with class weights), 0 where the target is
//!   ignored (`where`), else 1; the loss is the negated pick times the weight;
//! - reduction `none` returns that, `sum` its `reduce sum` over everything, `mean` the sum divided by
//!   the sum of the weights (a plain `reduce mean` without weights and ignored targets).
//!
//! Left as they are (counted with the reason): inputs other than f32 (native reductions and softmax
//! are f32 only) and targets other than i32/i64.

use carve_ir::ops::elementwise::{Div, Equal, Mul, Neg, Where};
use carve_ir::ops::misc::{MiscOp, Reduction};
use carve_ir::ops::movement::{Gather, GatherElements, Squeeze, Unsqueeze};
use carve_ir::ops::reduce::{Reduce, ReduceKind, Softmax, SoftmaxKind};
use carve_ir::{DType, Graph, Op, ValueId};

use super::{Builder, DecomposeStats, dtype_of, rewrite};
use crate::PassError;

/// Replaces every `nll_loss` and `softmax_cross_entropy_loss` of the top-level graph `g` that the
/// module doc describes by the equivalent chain of ops with native kernels, then re-infers shapes.
pub fn decompose_losses(g: &mut Graph) -> Result<DecomposeStats, PassError> {
    rewrite(
        g,
        "losses",
        |op| {
            matches!(
                op,
                Op::Misc(MiscOp::NllLoss(_) | MiscOp::SoftmaxCrossEntropyLoss(_))
            )
        },
        |g, i| {
            let loss = match &g.nodes[i].op {
                Op::Misc(MiscOp::NllLoss(l)) => Loss {
                    softmax: false,
                    reduction: l.reduction,
                    ignore_index: l.ignore_index,
                },
                Op::Misc(MiscOp::SoftmaxCrossEntropyLoss(l)) => Loss {
                    softmax: true,
                    reduction: l.reduction,
                    ignore_index: l.ignore_index,
                },
                _ => return Err("not a loss".into()),
            };
            emit(g, i, &loss)
        },
    )
}

/// The attributes of one loss node.
struct Loss {
    /// `softmax_cross_entropy_loss` (the input holds scores, not log-probabilities).
    softmax: bool,
    reduction: Reduction,
    ignore_index: Option<i64>,
}

/// Appends the chain replacing node `at`.
fn emit(g: &mut Graph, at: usize, loss: &Loss) -> Result<(), String> {
    let n = &g.nodes[at];
    let input = |k: usize| n.inputs.get(k).copied().flatten();
    let (Some(x), Some(t)) = (input(0), input(1)) else {
        return Err("the input or the target is missing".into());
    };
    let weight = input(2);
    let outputs = n.outputs.clone();
    let f = DType::F32;
    for v in [Some(x), weight].into_iter().flatten() {
        match dtype_of(g, v) {
            Some(DType::F32) => {}
            Some(dt) => {
                return Err(format!(
                    "{dt} input (native reductions and softmax are f32 only)"
                ));
            }
            None => return Err("an input is not a tensor".into()),
        }
    }
    let tdt = match dtype_of(g, t) {
        Some(dt @ (DType::I32 | DType::I64)) => dt,
        _ => return Err("the target is not i32 or i64".into()),
    };
    let y = *outputs
        .first()
        .ok_or_else(|| "the node has no result".to_string())?;
    let kind = if loss.softmax {
        "softmax_cross_entropy_loss"
    } else {
        "nll_loss"
    };
    let mut b = Builder::new(g, at, kind);
    let b = &mut b;
    let logp = if loss.softmax {
        let op = Softmax {
            kind: SoftmaxKind::LogSoftmax,
            axis: 1,
            coerce_2d: false,
        };
        match outputs.get(1) {
            Some(&o) => b.define("log_prob", op, &[x], o)?,
            None => b.node("log_prob", op, &[x])?,
        }
    } else {
        x
    };
    let (ignored, target) = match loss.ignore_index {
        Some(ii) => {
            let iv = b.scalar("ignore_index", tdt, ii as f64)?;
            let ignored = b.node("ignored", Equal {}, &[t, iv])?;
            let zero = b.scalar("target_zero", tdt, 0.0)?;
            let t = b.node("target_read", Where {}, &[ignored, zero, t])?;
            (Some(ignored), t)
        }
        None => (None, t),
    };
    let ax1 = b.axes("class_axis", &[1]);
    let idx = b.node("target_index", Unsqueeze {}, &[target, ax1])?;
    let picked = b.node("picked", GatherElements { axis: 1 }, &[logp, idx])?;
    let picked = b.node("picked_squeezed", Squeeze {}, &[picked, ax1])?;
    let w = match (weight, ignored) {
        (Some(w), ignored) => {
            let wt = b.node("weight", Gather { axis: 0 }, &[w, target])?;
            match ignored {
                Some(ig) => {
                    let zero = b.scalar("zero", f, 0.0)?;
                    Some(b.node("weight_kept", Where {}, &[ig, zero, wt])?)
                }
                None => Some(wt),
            }
        }
        (None, Some(ig)) => {
            let zero = b.scalar("zero", f, 0.0)?;
            let one = b.scalar("one", f, 1.0)?;
            Some(b.node("weight_kept", Where {}, &[ig, zero, one])?)
        }
        (None, None) => None,
    };
    let elementwise = |b: &mut Builder, out: Option<ValueId>| -> Result<ValueId, String> {
        let define = |b: &mut Builder, suffix: &str, op: Op, inputs: &[ValueId]| match out {
            Some(o) => b.define(suffix, op, inputs, o),
            None => b.node(suffix, op, inputs),
        };
        match w {
            Some(w) => {
                let neg = b.node("neg", Neg {}, &[picked])?;
                define(b, "loss", Mul {}.into(), &[neg, w])
            }
            None => define(b, "loss", Neg {}.into(), &[picked]),
        }
    };
    let reduce = |kind| Reduce {
        kind,
        keepdims: false,
        noop_with_empty_axes: false,
    };
    match loss.reduction {
        Reduction::None => {
            elementwise(b, Some(y))?;
        }
        Reduction::Sum => {
            let l = elementwise(b, None)?;
            let op = reduce(ReduceKind::Sum);
            let inputs = [l];
            b.define("sum", op, &inputs, y)?;
        }
        Reduction::Mean => {
            let l = elementwise(b, None)?;
            match w {
                Some(w) => {
                    let s = b.node("sum", reduce(ReduceKind::Sum), &[l])?;
                    let ws = b.node("weight_sum", reduce(ReduceKind::Sum), &[w])?;
                    b.define("mean", Div {}, &[s, ws], y)?;
                }
                None => {
                    b.define("mean", reduce(ReduceKind::Mean), &[l], y)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::text;

    fn decompose(src: &str) -> (Graph, DecomposeStats) {
        let mut g = text::parse(src).expect("test graph parses");
        let stats = decompose_losses(&mut g).expect("decomposes");
        carve_ir::verify::verify(&g).expect("verifies");
        (g, stats)
    }

    fn ops(g: &Graph) -> Vec<&'static str> {
        g.nodes
            .iter()
            .map(|n| n.op.name())
            .filter(|&n| n != "const")
            .collect()
    }

    #[test]
    fn weighted_mean_with_ignored_targets() {
        let (g, stats) = decompose(
            "graph @g(%x: f32[3,5,2], %t: i64[3,2], %w: f32[5]) -> (f32[]) {
  %0 = nll_loss(%x, %t, %w) {ignore_index=1} : f32[]
  return %0
}
",
        );
        assert_eq!((stats.decomposed, stats.kept), (1, 0));
        assert_eq!(g.producer(g.outputs[0]).map(|n| n.op.name()), Some("div"));
        insta::assert_snapshot!(text::print(&g));
    }

    #[test]
    fn cross_entropy_defines_the_log_probabilities() {
        let (g, _) = decompose(
            "graph @g(%x: f32[3,5], %t: i32[3]) -> (f32[3], f32[3,5]) {
  %0, %1 = softmax_cross_entropy_loss(%x, %t) {reduction=none} : f32[3], f32[3,5]
  return %0, %1
}
",
        );
        assert_eq!(
            ops(&g),
            ["softmax", "unsqueeze", "gather_elements", "squeeze", "neg"]
        );
        let lp = g.producer(g.outputs[1]).expect("log_prob is defined");
        assert_eq!(text::print(&g).matches("kind=log_softmax").count(), 1);
        assert_eq!(lp.op.name(), "softmax");
        insta::assert_snapshot!(text::print(&g));
    }

    #[test]
    fn reductions_without_weights() {
        for (reduction, last) in [("sum", "reduce"), ("mean", "reduce")] {
            let (g, _) = decompose(&format!(
                "graph @g(%x: f32[2,4,3], %t: i64[2,3]) -> (f32[]) {{
  %0 = nll_loss(%x, %t) {{reduction={reduction}}} : f32[]
  return %0
}}
"
            ));
            assert_eq!(
                ops(&g),
                ["unsqueeze", "gather_elements", "squeeze", "neg", last],
                "{reduction}"
            );
            assert!(
                text::print(&g).contains(&format!("kind={reduction}")),
                "{reduction}"
            );
        }
        // Ignored targets without class weights: weights 0/1, the mean divides by their sum.
        let (g, _) = decompose(
            "graph @g(%x: f32[2,4], %t: i64[2]) -> (f32[]) {
  %0 = nll_loss(%x, %t) {ignore_index=-1} : f32[]
  return %0
}
",
        );
        assert_eq!(
            ops(&g),
            [
                "equal",
                "where",
                "unsqueeze",
                "gather_elements",
                "squeeze",
                "where",
                "neg",
                "mul",
                "reduce",
                "reduce",
                "div"
            ]
        );
    }

    #[test]
    fn other_types_are_kept() {
        let (g, stats) = decompose(
            "graph @g(%x: f64[2,4], %t: i64[2]) -> (f64[]) {
  %0 = nll_loss(%x, %t) : f64[]
  return %0
}
",
        );
        assert_eq!(ops(&g), ["nll_loss"]);
        assert_eq!(stats.kept, 1);
        assert!(stats.reasons.keys().any(|r| r.starts_with("f64 input")));
    }
}
