//! Interpreter kernels for the control op family (`carve_ir::ops::control`): `if`, `loop`, `scan` and
//! `sequence_map` (which run subgraphs through [`EvalCtx::run_subgraph`]), the sequence ops and the
//! optional ops.
//!
//! Values crossing a subgraph boundary are made to fit the declared type by one level of optional: a plain
//! value entering or leaving where an `Optional(T)` is declared is wrapped, and an `Optional` holding a
//! value where a plain `T` is declared is unwrapped (ONNX lets a loop-carried value start as an optional
//! and continue as a plain value, and lets `if` branches disagree that way).

pub(crate) mod data;
mod sequence;

use carve_ir::ops::control::{ControlOp, If, Loop, Scan};
use carve_ir::{Dim, Graph, Type};

use self::data::{index_axis, norm_axis, stack};
use super::util::checked_numel;
use super::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// Evaluates one control op.
pub fn eval(op: &ControlOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    match op {
        ControlOp::If(o) => eval_if(o, cx),
        ControlOp::Loop(o) => eval_loop(o, cx),
        ControlOp::Scan(o) => eval_scan(o, cx),
        ControlOp::SequenceEmpty(_) => Ok(vec![Value::Sequence(Vec::new())]),
        ControlOp::SequenceConstruct(_) => sequence::construct(cx),
        ControlOp::SequenceInsert(_) => sequence::insert(cx),
        ControlOp::SequenceAt(_) => sequence::at(cx),
        ControlOp::SequenceErase(_) => sequence::erase(cx),
        ControlOp::SequenceLength(_) => sequence::length(cx),
        ControlOp::SplitToSequence(o) => sequence::split_to_sequence(o, cx),
        ControlOp::ConcatFromSequence(o) => sequence::concat_from_sequence(o, cx),
        ControlOp::SequenceMap(o) => sequence::map(o, cx),
        ControlOp::Optional(_) => Ok(vec![Value::Optional(
            cx.value(0).map(|v| Box::new(v.clone())),
        )]),
        ControlOp::OptionalHasElement(_) => {
            let has = match cx.value(0) {
                None | Some(Value::Optional(None)) => false,
                Some(_) => true,
            };
            Ok(vec![bool_scalar(has)])
        }
        ControlOp::OptionalGetElement(_) => match cx.value(0) {
            Some(Value::Optional(Some(v))) => Ok(vec![(**v).clone()]),
            Some(Value::Optional(None)) => Err(cx.err("the optional input holds no value")),
            Some(v) => Ok(vec![v.clone()]),
            None => Err(cx.err("input 0 is required")),
        },
    }
}

fn bool_scalar(b: bool) -> Value {
    Value::Tensor(Tensor {
        shape: Vec::new(),
        data: Data::Bool(vec![b]),
    })
}

/// Makes `v` fit type `ty` by wrapping it into, or unwrapping it from, one level of optional.
fn conform(v: Value, ty: Option<&Type>) -> Value {
    match (ty, v) {
        (Some(Type::Optional(_)), v @ (Value::Tensor(_) | Value::Sequence(_))) => {
            Value::Optional(Some(Box::new(v)))
        }
        (Some(Type::Tensor(_) | Type::Sequence(_)), Value::Optional(Some(inner))) => *inner,
        (_, v) => v,
    }
}

fn graph_value_type(g: &Graph, i: usize, inputs: bool) -> Option<&Type> {
    let ids = if inputs { &g.inputs } else { &g.outputs };
    ids.get(i)
        .and_then(|v| g.values.get(v.index()))
        .map(|v| &v.ty)
}

/// Runs `g` on `inputs` (each made to fit the formal input type) and checks it yields at least `min`
/// results.
fn run_body(
    cx: &EvalCtx,
    g: &Graph,
    inputs: Vec<Value>,
    min: usize,
    what: &str,
) -> Result<Vec<Value>, RunError> {
    let inputs = inputs
        .into_iter()
        .enumerate()
        .map(|(i, v)| conform(v, graph_value_type(g, i, true)))
        .collect();
    let outs = cx.run_subgraph(g, inputs)?;
    if outs.len() < min {
        return Err(cx.err(format!(
            "{what} produced {} results, expected {min}",
            outs.len()
        )));
    }
    Ok(outs)
}

/// The truth of a single-element tensor.
fn truth(cx: &EvalCtx, v: &Value, what: &str) -> Result<bool, RunError> {
    let t = match v {
        Value::Tensor(t) => t,
        v => return Err(cx.err(format!("{what} must be a tensor, got a {}", v.kind()))),
    };
    if t.len() != 1 {
        return Err(cx.err(format!(
            "{what} must hold one element, got shape {:?}",
            t.shape
        )));
    }
    Ok(match &t.data {
        Data::Bool(b) => b[0],
        _ => super::util::to_f64(t).map_err(|e| cx.err(format!("{what}: {e}")))?[0] != 0.0,
    })
}

fn eval_if(op: &If, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let cond = truth(
        cx,
        cx.value(0)
            .ok_or_else(|| cx.err("the condition is required"))?,
        "the condition",
    )?;
    let branch = if cond {
        &op.then_branch
    } else {
        &op.else_branch
    };
    let n = cx.num_outputs();
    let outs = run_body(cx, branch, Vec::new(), n, "the branch")?;
    Ok(outs
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(k, v)| conform(v, cx.output_type(k)))
        .collect())
}

/// The per-iteration shape of a scan output whose node output type is `ty` with the iteration axis at
/// `axis`, for a scan that ran zero times: known dims kept, unknown ones 0.
fn empty_scan_output(cx: &EvalCtx, k: usize, axis: Option<usize>) -> Result<Value, RunError> {
    let Some(Type::Tensor(t)) = cx.output_type(k) else {
        return Err(cx.err(format!("output {k} must be a tensor")));
    };
    let shape: Vec<usize> = match t.dims() {
        Some(d) => d
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(n) if Some(i) != axis => usize::try_from(*n).unwrap_or(0),
                _ => 0,
            })
            .collect(),
        // Unknown rank: a 1-D empty tensor is the best guess.
        None => vec![0],
    };
    Ok(Value::Tensor(Tensor::zeros(t.dtype, shape)))
}

/// Stacks the per-iteration values of one scan output along `axis` (new).
fn stack_outputs(cx: &EvalCtx, vals: &[Value], axis: i64, what: &str) -> Result<Tensor, RunError> {
    let ts: Vec<&Tensor> = vals
        .iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(t),
            v => Err(cx.err(format!("{what} must be a tensor, got a {}", v.kind()))),
        })
        .collect::<Result<_, _>>()?;
    let rank = ts.first().map_or(0, |t| t.rank());
    let a = norm_axis(axis, rank + 1).map_err(|e| cx.err(format!("{what}: {e}")))?;
    stack(&ts, a).map_err(|e| cx.err(format!("{what}: {e}")))
}

fn eval_loop(op: &Loop, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let max_trip = match cx.opt_tensor(0)? {
        Some(_) => {
            let v = cx.i64s(0)?;
            match v.as_slice() {
                [m] => Some(*m),
                _ => return Err(cx.err("the trip count M must hold one element")),
            }
        }
        None => None,
    };
    let mut cond = match cx.value(1) {
        Some(v) => truth(cx, v, "the condition (input 1)")?,
        None => true,
    };
    let n = cx.num_inputs().saturating_sub(2);
    let mut carried: Vec<Value> = (0..n)
        .map(|i| {
            cx.value(2 + i)
                .cloned()
                .ok_or_else(|| cx.err(format!("loop-carried input {} is missing", 2 + i)))
        })
        .collect::<Result<_, _>>()?;
    let k = op.body.outputs.len().checked_sub(1 + n).ok_or_else(|| {
        cx.err("the body has fewer results than the condition and carried values")
    })?;
    let mut scans: Vec<Vec<Value>> = vec![Vec::new(); k];
    let mut scanned_elements = 0usize;
    let mut it: i64 = 0;
    while cond && max_trip.is_none_or(|m| it < m) {
        let mut ins = Vec::with_capacity(n + 2);
        ins.push(Value::Tensor(Tensor::scalar_i64(it)));
        ins.push(bool_scalar(cond));
        ins.append(&mut carried);
        let outs = run_body(cx, &op.body, ins, 1 + n + k, "the body")?;
        let mut outs = outs.into_iter();
        cond = match outs.next() {
            Some(v) => truth(cx, &v, "the body's condition result")?,
            None => false,
        };
        carried = outs.by_ref().take(n).collect();
        for (j, v) in outs.take(k).enumerate() {
            if let Value::Tensor(t) = &v {
                scanned_elements = scanned_elements.saturating_add(t.len());
                checked_numel(&[scanned_elements]).map_err(|e| cx.err(e.0))?;
            }
            scans[j].push(v);
        }
        it = it
            .checked_add(1)
            .ok_or_else(|| cx.err("iteration count overflows"))?;
    }
    let mut results: Vec<Value> = carried
        .into_iter()
        .enumerate()
        .map(|(i, v)| conform(v, cx.output_type(i)))
        .collect();
    for (j, vals) in scans.iter().enumerate() {
        if n + j >= cx.num_outputs() {
            break;
        }
        if vals.is_empty() {
            results.push(empty_scan_output(cx, n + j, Some(0))?);
        } else {
            let what = format!("scan output {j}");
            results.push(Value::Tensor(stack_outputs(cx, vals, 0, &what)?));
        }
    }
    results.truncate(cx.num_outputs());
    Ok(results)
}

/// `v[i]`, or `default` when `v` is empty (attribute lists may be omitted).
fn attr_at(v: &[i64], i: usize, default: i64) -> i64 {
    v.get(i).copied().unwrap_or(default)
}

fn eval_scan(op: &Scan, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let total = cx.num_inputs();
    let m = usize::try_from(op.num_scan_inputs)
        .ok()
        .filter(|&m| m >= 1 && m <= total)
        .ok_or_else(|| {
            cx.err(format!(
                "num_scan_inputs is {} but the node has {total} inputs",
                op.num_scan_inputs
            ))
        })?;
    let n = total - m;
    let k = op
        .body
        .outputs
        .len()
        .checked_sub(n)
        .ok_or_else(|| cx.err("the body has fewer results than states"))?;
    let mut states: Vec<Value> = (0..n)
        .map(|i| {
            cx.value(i)
                .cloned()
                .ok_or_else(|| cx.err(format!("state input {i} is missing")))
        })
        .collect::<Result<_, _>>()?;
    // The scanned inputs, their axes and directions, and the common sequence length.
    let mut scanned = Vec::with_capacity(m);
    let mut len: Option<usize> = None;
    for j in 0..m {
        let t = cx.tensor(n + j)?;
        let axis = norm_axis(attr_at(&op.scan_input_axes, j, 0), t.rank())
            .map_err(|e| cx.err(format!("scan input {j}: {e}")))?;
        let reverse = attr_at(&op.scan_input_directions, j, 0) == 1;
        let l = t.shape[axis];
        if len.is_some_and(|x| x != l) {
            return Err(cx.err(format!(
                "scan inputs disagree on the sequence length: {} and {l}",
                len.unwrap_or(0)
            )));
        }
        len = Some(l);
        scanned.push((t, axis, reverse));
    }
    let len = len.unwrap_or(0);
    let mut outs_per_iter: Vec<Vec<Value>> = vec![Vec::with_capacity(len); k];
    let mut scanned_elements = 0usize;
    for it in 0..len {
        let mut ins = Vec::with_capacity(total);
        ins.append(&mut states);
        for (j, &(t, axis, reverse)) in scanned.iter().enumerate() {
            let pos = if reverse { len - 1 - it } else { it };
            let s = index_axis(t, axis, pos).map_err(|e| cx.err(format!("scan input {j}: {e}")))?;
            ins.push(Value::Tensor(s));
        }
        let outs = run_body(cx, &op.body, ins, n + k, "the body")?;
        let mut outs = outs.into_iter();
        states = outs.by_ref().take(n).collect();
        for (j, v) in outs.take(k).enumerate() {
            if let Value::Tensor(t) = &v {
                scanned_elements = scanned_elements.saturating_add(t.len());
                checked_numel(&[scanned_elements]).map_err(|e| cx.err(e.0))?;
            }
            outs_per_iter[j].push(v);
        }
    }
    let mut results: Vec<Value> = states
        .into_iter()
        .enumerate()
        .map(|(i, v)| conform(v, cx.output_type(i)))
        .collect();
    for (j, mut vals) in outs_per_iter.into_iter().enumerate() {
        if n + j >= cx.num_outputs() {
            break;
        }
        let axis = attr_at(&op.scan_output_axes, j, 0);
        if vals.is_empty() {
            let rank = match cx.output_type(n + j) {
                Some(Type::Tensor(t)) => t.rank(),
                _ => None,
            };
            let a = rank.and_then(|r| norm_axis(axis, r).ok());
            results.push(empty_scan_output(cx, n + j, a)?);
            continue;
        }
        if attr_at(&op.scan_output_directions, j, 0) == 1 {
            vals.reverse();
        }
        let what = format!("scan output {j}");
        results.push(Value::Tensor(stack_outputs(cx, &vals, axis, &what)?));
    }
    results.truncate(cx.num_outputs());
    Ok(results)
}

#[cfg(test)]
mod tests {
    use carve_ir::ops::control::{
        ConcatFromSequence, Optional, SequenceErase, SequenceInsert, SplitToSequence,
    };
    use carve_ir::{Capture, Constant, DType, Op, Shape, TensorType, ValueId};

    use super::*;
    use crate::interp::run;

    fn ty(dtype: DType, dims: &[u64]) -> Type {
        Type::Tensor(TensorType::new(dtype, Shape::known(dims)))
    }
    fn f32s(shape: &[usize], v: &[f32]) -> Value {
        Value::Tensor(Tensor::new(shape.to_vec(), Data::F32(v.to_vec())).unwrap())
    }
    fn i64s(shape: &[usize], v: &[i64]) -> Value {
        Value::Tensor(Tensor::new(shape.to_vec(), Data::I64(v.to_vec())).unwrap())
    }
    fn node(g: &mut Graph, op: impl Into<Op>, ins: &[Option<ValueId>], n: usize) -> Vec<ValueId> {
        let names = (0..n).map(|i| format!("o{i}")).collect();
        g.add_node("n", op.into(), ins.to_vec(), names).unwrap()
    }

    /// Scan body `(s, x) -> (x, s)`: the new state is the slice, the scan output the previous state.
    fn swap_body() -> Graph {
        let mut b = Graph::new("body");
        let s = b.add_input("s", ty(DType::F32, &[2]));
        let x = b.add_input("x", ty(DType::F32, &[2]));
        b.outputs = vec![x, s];
        b
    }

    #[test]
    fn scan_follows_axes_and_directions() {
        let run_scan = |out_dir: i64| {
            let mut g = Graph::new("main");
            let s0 = g.add_input("s0", ty(DType::F32, &[2]));
            let xs = g.add_input("xs", ty(DType::F32, &[2, 3]));
            let op = Scan {
                body: swap_body(),
                num_scan_inputs: 1,
                scan_input_axes: vec![1],
                scan_input_directions: vec![1],
                scan_output_axes: vec![-1],
                scan_output_directions: vec![out_dir],
            };
            let outs = node(&mut g, op, &[Some(s0), Some(xs)], 2);
            g.outputs = outs;
            run(
                &g,
                vec![
                    f32s(&[2], &[9.0, 9.0]),
                    f32s(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
                ],
            )
            .unwrap()
        };
        // Reverse input direction visits columns 2, 1, 0.
        let r = run_scan(0);
        assert_eq!(r[0], f32s(&[2], &[0.0, 3.0]));
        assert_eq!(r[1], f32s(&[2, 3], &[9.0, 2.0, 1.0, 9.0, 5.0, 4.0]));
        let r = run_scan(1);
        assert_eq!(r[1], f32s(&[2, 3], &[1.0, 2.0, 9.0, 4.0, 5.0, 9.0]));
    }

    /// Loop body `(i, cond, v) -> (cond, v, i)`.
    fn counting_body() -> Graph {
        let mut b = Graph::new("body");
        let i = b.add_input("i", ty(DType::I64, &[]));
        let c = b.add_input("cond", ty(DType::Bool, &[]));
        let v = b.add_input("v", ty(DType::F32, &[2]));
        b.outputs = vec![c, v, i];
        b
    }

    #[test]
    fn loop_stacks_scan_outputs_and_handles_zero_trips() {
        for (m, want) in [(3i64, vec![0i64, 1, 2]), (0, vec![]), (-2, vec![])] {
            let mut g = Graph::new("main");
            let mv = g.add_const("m", Constant::from_i64s(&[], &[m]));
            let v0 = g.add_input("v0", ty(DType::F32, &[2]));
            let outs = node(
                &mut g,
                Loop {
                    body: counting_body(),
                },
                &[Some(mv), None, Some(v0)],
                2,
            );
            g.outputs = outs;
            let r = run(&g, vec![f32s(&[2], &[1.0, 2.0])]).unwrap();
            assert_eq!(r[0], f32s(&[2], &[1.0, 2.0]));
            assert_eq!(r[1], i64s(&[want.len()], &want), "M = {m}");
        }
    }

    #[test]
    fn if_wraps_a_plain_branch_result_into_the_declared_optional() {
        let mut g = Graph::new("main");
        let c = g.add_input("c", ty(DType::Bool, &[]));
        let mut then_branch = Graph::new("then");
        let e = node(
            &mut then_branch,
            Optional {
                dtype: Some(DType::F32),
                sequence: false,
            },
            &[],
            1,
        );
        then_branch.outputs = e;
        let mut else_branch = Graph::new("else");
        let k = else_branch.add_const("k", Constant::from_f32s(&[1], &[7.0]));
        else_branch.outputs = vec![k];
        let outs = node(
            &mut g,
            If {
                then_branch,
                else_branch,
            },
            &[Some(c)],
            1,
        );
        g.outputs = outs;
        let cond = |b: bool| vec![bool_scalar(b)];
        assert_eq!(run(&g, cond(true)).unwrap(), [Value::Optional(None)]);
        assert_eq!(
            run(&g, cond(false)).unwrap(),
            [Value::Optional(Some(Box::new(f32s(&[1], &[7.0]))))]
        );
    }

    #[test]
    fn loop_bodies_read_captured_values() {
        // Body `(i, cond, q) -> (cond, insert(q, x at position 0))` with `x` captured from outside.
        let mut g = Graph::new("main");
        let x = g.add_input("x", ty(DType::F32, &[1]));
        let m = g.add_const("m", Constant::from_i64s(&[], &[2]));
        let q0 = node(
            &mut g,
            carve_ir::ops::control::SequenceEmpty { dtype: DType::F32 },
            &[],
            1,
        )[0];
        let mut b = Graph::new("body");
        b.add_input("i", ty(DType::I64, &[]));
        let c = b.add_input("cond", ty(DType::Bool, &[]));
        let q = b.add_input("q", Type::Sequence(Box::new(ty(DType::F32, &[1]))));
        let inner = b.add_value("x", ty(DType::F32, &[1]));
        b.captures.push(Capture { inner, outer: x });
        let zero = b.add_const("zero", Constant::from_i64s(&[], &[0]));
        let q2 = node(
            &mut b,
            SequenceInsert {},
            &[Some(q), Some(inner), Some(zero)],
            1,
        )[0];
        b.outputs = vec![c, q2];
        let outs = node(&mut g, Loop { body: b }, &[Some(m), None, Some(q0)], 1);
        g.outputs = outs;
        let r = run(&g, vec![f32s(&[1], &[5.0])]).unwrap();
        assert_eq!(
            r,
            [Value::Sequence(vec![
                f32s(&[1], &[5.0]),
                f32s(&[1], &[5.0])
            ])]
        );
    }

    #[test]
    fn sequence_positions_splits_and_concatenation() {
        let mut g = Graph::new("main");
        let a = g.add_input("a", ty(DType::F32, &[2, 5]));
        let three = g.add_const("three", Constant::from_i64s(&[], &[3]));
        let parts = node(
            &mut g,
            SplitToSequence {
                axis: 1,
                keepdims: true,
            },
            &[Some(a), Some(three)],
            1,
        )[0];
        let minus_one = g.add_const("m1", Constant::from_i64s(&[], &[-1]));
        let erased = node(&mut g, SequenceErase {}, &[Some(parts), Some(minus_one)], 1)[0];
        let back = node(
            &mut g,
            SequenceInsert {},
            &[Some(erased), Some(a), Some(minus_one)],
            1,
        )[0];
        let cat = node(
            &mut g,
            ConcatFromSequence {
                axis: -1,
                new_axis: false,
            },
            &[Some(back)],
            1,
        )[0];
        g.outputs = vec![parts, cat];
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let r = run(&g, vec![f32s(&[2, 5], &x)]).unwrap();
        assert_eq!(
            r[0],
            Value::Sequence(vec![
                f32s(&[2, 3], &[0.0, 1.0, 2.0, 5.0, 6.0, 7.0]),
                f32s(&[2, 2], &[3.0, 4.0, 8.0, 9.0]),
            ])
        );
        // Erasing the last chunk and inserting `a` before the (new) last element: [a, chunk0].
        let want: Vec<f32> = [0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0]
            .into_iter()
            .chain([5.0, 6.0, 7.0, 8.0, 9.0, 5.0, 6.0, 7.0])
            .collect();
        assert_eq!(r[1], f32s(&[2, 8], &want));
    }
}
