//! Differential testing support: build a one-node (or small) graph, compile it natively and run it
//! with 1 and 2 threads, run the reference interpreter, and compare. Used by every kernel family's
//! tests (unit tests, proptests) and by benches; not part of the stable API.

use std::sync::Arc;

use carve_ir::{Graph, Op, Type, ValueId};
use carve_runtime::interp::{self, Value};
use carve_runtime::{Data, Tensor};

use crate::compile::Report;
use crate::jit::compile_jit;
use crate::prepare::specialize;
use crate::target::Target;

/// An operand of a test node: a runtime input or a compile-time constant.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A graph input fed at run time.
    Input(Tensor),
    /// A constant baked into the code.
    Const(Tensor),
    /// An absent optional input.
    Absent,
}

/// Builds a graph computing `op` over `operands` with `n_outputs` outputs.
pub fn single_node_graph(op: Op, operands: &[Operand], n_outputs: usize) -> Result<Graph, String> {
    let mut g = Graph::new("test");
    let mut ins: Vec<Option<ValueId>> = Vec::new();
    for (i, o) in operands.iter().enumerate() {
        ins.push(match o {
            Operand::Input(t) => Some(g.add_input(format!("x{i}"), Type::Tensor(t.ty()))),
            Operand::Const(t) => Some(g.add_const(format!("c{i}"), t.to_constant())),
            Operand::Absent => None,
        });
    }
    let names = (0..n_outputs).map(|k| format!("y{k}")).collect();
    let outs = g
        .add_node("node", op, ins, names)
        .map_err(|e| e.to_string())?;
    g.outputs = outs;
    Ok(g)
}

/// Runs `g` natively (threads = 1 and 2) and in the interpreter on `inputs`; returns
/// (native outputs, interpreter outputs, report). Errors if the two native runs differ in any bit.
pub fn run_both(
    g: &Graph,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<Tensor>, Report), String> {
    let target = Target::host().map_err(|e| e.to_string())?;
    run_both_on(&target, g, inputs)
}

/// [`run_both`] with code generated for `target` (the host's triple with any subset of its features,
/// e.g. to force a narrower ISA variant on this machine).
pub fn run_both_on(
    target: &Target,
    g: &Graph,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<Tensor>, Report), String> {
    let (pg, folded) = specialize(g).map_err(|e| e.to_string())?;
    let target = target.clone();
    let (exe1, report) =
        compile_jit(Arc::clone(&pg), &target, 1, folded).map_err(|e| e.to_string())?;
    let (exe2, _) = compile_jit(Arc::clone(&pg), &target, 2, folded).map_err(|e| e.to_string())?;
    let a = exe1.run(inputs).map_err(|e| e.to_string())?;
    let b = exe2.run(inputs).map_err(|e| e.to_string())?;
    // Bit patterns, not `==`: NaN outputs must match too.
    let bits = |ts: &[Tensor]| -> Vec<(Vec<usize>, Option<Vec<u8>>)> {
        ts.iter()
            .map(|t| (t.shape.clone(), t.data.to_le_bytes()))
            .collect()
    };
    if bits(&a) != bits(&b) {
        return Err("results differ between 1 and 2 threads".into());
    }
    let r = interp::run(g, inputs.iter().cloned().map(Value::Tensor).collect())
        .map_err(|e| e.to_string())?;
    let r = r
        .into_iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(t),
            other => Err(format!("interpreter returned a {}", other.kind())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((a, r, report))
}

/// Compares two tensors: same dtype and shape; floats within `atol + rtol·|expected|` (NaN matches
/// NaN, infinities must be equal), everything else bit-exact.
pub fn compare(actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if actual.dtype() != expected.dtype() || actual.shape != expected.shape {
        return Err(format!(
            "got {}{:?}, expected {}{:?}",
            actual.dtype(),
            actual.shape,
            expected.dtype(),
            expected.shape
        ));
    }
    let close = |a: f64, e: f64| {
        (a.is_nan() && e.is_nan()) || a == e || (a - e).abs() <= atol + rtol * e.abs()
    };
    match (&actual.data, &expected.data) {
        (Data::F32(a), Data::F32(e)) => {
            for (i, (&x, &y)) in a.iter().zip(e).enumerate() {
                if !close(x as f64, y as f64) {
                    return Err(format!("element {i}: got {x}, expected {y}"));
                }
            }
            Ok(())
        }
        (Data::F64(a), Data::F64(e)) => {
            for (i, (&x, &y)) in a.iter().zip(e).enumerate() {
                if !close(x, y) {
                    return Err(format!("element {i}: got {x}, expected {y}"));
                }
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        _ => Err("values differ".into()),
    }
}

/// The whole check for one node: builds the graph, runs natively and in the interpreter, requires no
/// fallback and every output within tolerance. Returns the report.
pub fn check_node(
    op: Op,
    operands: &[Operand],
    n_outputs: usize,
    rtol: f64,
    atol: f64,
) -> Result<Report, String> {
    let target = Target::host().map_err(|e| e.to_string())?;
    check_node_on(&target, op, operands, n_outputs, rtol, atol)
}

/// [`check_node`] with code generated for `target` (see [`run_both_on`]).
pub fn check_node_on(
    target: &Target,
    op: Op,
    operands: &[Operand],
    n_outputs: usize,
    rtol: f64,
    atol: f64,
) -> Result<Report, String> {
    let g = single_node_graph(op, operands, n_outputs)?;
    let inputs: Vec<Tensor> = operands
        .iter()
        .filter_map(|o| match o {
            Operand::Input(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let (a, e, report) = run_both_on(target, &g, inputs.as_slice())?;
    if !report.fallbacks.is_empty() {
        return Err(format!("node fell back: {}", report.fallbacks[0].reason));
    }
    for (k, (x, y)) in a.iter().zip(&e).enumerate() {
        compare(x, y, rtol, atol).map_err(|m| format!("output {k}: {m}"))?;
    }
    Ok(report)
}

/// Deterministic pseudo-random f32 values in `[lo, hi)` (xorshift; for tests).
pub fn random_f32(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// An f32 tensor of `shape` with random values in `[lo, hi)`.
pub fn random_tensor(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor {
        shape: shape.to_vec(),
        data: Data::F32(random_f32(n, seed, lo, hi)),
    }
}

/// The schedule text of `g` (specialized first) for `target`: what kernels, tiles and ISA variants it
/// chose.
pub fn schedule_text(target: &Target, g: &Graph) -> Result<String, String> {
    let (pg, folded) = specialize(g).map_err(|e| e.to_string())?;
    let opts = crate::ScheduleOptions {
        allow_fallback: true,
        folded,
    };
    let s = crate::Schedule::build(&pg, target, &opts).map_err(|e| e.to_string())?;
    Ok(s.to_text())
}

/// The host target without every feature whose name starts with one of `drop` (e.g. `["avx512"]`: the
/// host as an AVX2 machine), to force each ISA variant on one machine.
pub fn host_without(drop: &[&str]) -> Result<Target, String> {
    let host = Target::host().map_err(|e| e.to_string())?;
    let keep: Vec<String> = host
        .features
        .iter()
        .filter(|f| !drop.iter().any(|d| f.starts_with(d)))
        .cloned()
        .collect();
    Target::new(host.triple.clone(), &keep).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::ops::movement::Reshape;

    #[test]
    fn reshape_is_a_view_and_matches() {
        let x = random_tensor(&[2, 3, 4], 1, -1.0, 1.0);
        let shape = Tensor {
            shape: vec![2],
            data: Data::I64(vec![6, 4]),
        };
        let r = check_node(
            Reshape::default().into(),
            &[Operand::Input(x), Operand::Const(shape)],
            1,
            0.0,
            0.0,
        )
        .unwrap();
        assert_eq!(r.aliases, 1);
        assert_eq!(r.kernels, 1, "the output is copied from the input buffer");
    }
}
