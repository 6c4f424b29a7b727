//! Importers for reductions, arg-reductions, the softmax family, CumSum/CumProd, TopK and LpNormalization
//! (see `carve_ir::ops::reduce`).
//!
//! Opset upgrades done here: Reduce* `axes` attributes (before opset 13 for ReduceSum, 18 for the others)
//! and TopK's `k` attribute (opset 1) become constant inputs; Softmax/LogSoftmax/Hardmax before opset 13
//! default to `axis=1` and keep their flatten-to-2-D semantics as `coerce_2d` unless `axis` is the last
//! axis (where both semantics agree).

use carve_ir::ValueId;
use carve_ir::infer::normalize_axis;
use carve_ir::ops::reduce::{
    ArgKind, ArgReduce, CumKind, Cumulative, LpNorm, Reduce, ReduceKind, Softmax, SoftmaxKind, TopK,
};

use super::OpImporter;
use crate::ImportError;
use crate::onnx::ctx::NodeCtx;

type Res = Result<Vec<ValueId>, ImportError>;

const fn row(op_type: &'static str, import: crate::onnx::ctx::ImportFn) -> OpImporter {
    OpImporter {
        domain: "ai.onnx",
        op_type,
        import,
    }
}

/// This family's registry rows.
pub const IMPORTERS: &[OpImporter] = &[
    row("ReduceSum", |cx| reduce(cx, ReduceKind::Sum, 13)),
    row("ReduceMean", |cx| reduce(cx, ReduceKind::Mean, 18)),
    row("ReduceMax", |cx| reduce(cx, ReduceKind::Max, 18)),
    row("ReduceMin", |cx| reduce(cx, ReduceKind::Min, 18)),
    row("ReduceProd", |cx| reduce(cx, ReduceKind::Prod, 18)),
    row("ReduceL1", |cx| reduce(cx, ReduceKind::L1, 18)),
    row("ReduceL2", |cx| reduce(cx, ReduceKind::L2, 18)),
    row("ReduceLogSum", |cx| reduce(cx, ReduceKind::LogSum, 18)),
    row("ReduceLogSumExp", |cx| {
        reduce(cx, ReduceKind::LogSumExp, 18)
    }),
    row("ReduceSumSquare", |cx| {
        reduce(cx, ReduceKind::SumSquare, 18)
    }),
    row("ArgMax", |cx| arg(cx, ArgKind::Max)),
    row("ArgMin", |cx| arg(cx, ArgKind::Min)),
    row("Softmax", |cx| softmax(cx, SoftmaxKind::Softmax)),
    row("LogSoftmax", |cx| softmax(cx, SoftmaxKind::LogSoftmax)),
    row("Hardmax", |cx| softmax(cx, SoftmaxKind::Hardmax)),
    row("CumSum", |cx| cumulative(cx, CumKind::Sum)),
    row("CumProd", |cx| cumulative(cx, CumKind::Prod)),
    row("TopK", top_k),
    row("LpNormalization", |cx| {
        let axis = cx.i("axis", -1)?;
        let p = cx.i("p", 2)?;
        cx.emit(LpNorm { axis, p }, vec![Some(cx.req(0)?)], 1)
    }),
];

/// A Reduce* node; `axes_input_since` is the opset from which `axes` is an input rather than an attribute.
fn reduce(cx: &mut NodeCtx, kind: ReduceKind, axes_input_since: i64) -> Res {
    let op = Reduce {
        kind,
        keepdims: cx.bool("keepdims", true)?,
        noop_with_empty_axes: cx.bool("noop_with_empty_axes", false)?,
    };
    let x = cx.req(0)?;
    let axes = if cx.opset() >= axes_input_since {
        cx.input(1)
    } else {
        match cx.get_ints("axes")? {
            Some(a) if !a.is_empty() => Some(cx.const_i64(&[a.len() as u64], &a)),
            _ => None,
        }
    };
    cx.emit(op, vec![Some(x), axes], 1)
}

fn arg(cx: &mut NodeCtx, kind: ArgKind) -> Res {
    let op = ArgReduce {
        kind,
        axis: cx.i("axis", 0)?,
        keepdims: cx.bool("keepdims", true)?,
        select_last_index: cx.bool("select_last_index", false)?,
    };
    cx.emit(op, vec![Some(cx.req(0)?)], 1)
}

fn softmax(cx: &mut NodeCtx, kind: SoftmaxKind) -> Res {
    let old = cx.opset() < 13;
    let axis = cx.i("axis", if old { 1 } else { -1 })?;
    // Before opset 13 the input is flattened to 2-D at `axis`; that is the plain per-axis form exactly
    // when `axis` is the last axis.
    let coerce_2d = old
        && !cx
            .tensor_ty(0)?
            .rank()
            .is_some_and(|r| normalize_axis(axis, r).is_ok_and(|a| a + 1 == r));
    let op = Softmax {
        kind,
        axis,
        coerce_2d,
    };
    cx.emit(op, vec![Some(cx.req(0)?)], 1)
}

fn cumulative(cx: &mut NodeCtx, kind: CumKind) -> Res {
    let op = Cumulative {
        kind,
        exclusive: cx.bool("exclusive", false)?,
        reverse: cx.bool("reverse", false)?,
    };
    let inputs = vec![Some(cx.req(0)?), Some(cx.req(1)?)];
    cx.emit(op, inputs, 1)
}

fn top_k(cx: &mut NodeCtx) -> Res {
    let op = TopK {
        axis: cx.i("axis", -1)?,
        largest: cx.bool("largest", true)?,
        sorted: cx.bool("sorted", true)?,
    };
    let x = cx.req(0)?;
    let k = if cx.opset() < 10 {
        let k = cx
            .get_i("k")?
            .ok_or_else(|| cx.err("attribute 'k' is required before opset 10"))?;
        cx.const_i64(&[1], &[k])
    } else {
        cx.req(1)?
    };
    cx.emit(op, vec![Some(x), Some(k)], 2)
}
