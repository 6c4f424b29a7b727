//! Segments: native code around data-dependent shapes instead of a whole-graph fallback.
//!
//! When a graph's shapes are not all static after binding the inputs (a `Loop` or `Scan` output, an
//! `If` whose branches differ, NonZero, ...), [`split`] cuts it at the first node whose result (or
//! operand) is not a static tensor — the *boundary*:
//! - the **head** (every node before the boundary: all static) is compiled natively now;
//! - the **boundary** node runs in the reference interpreter, which computes the data-dependent shape;
//! - the **tail** (every node after it) is compiled when its input shapes are first seen — it is
//!   split again if it has another boundary — and cached per shape binding (at most
//!   [`crate::compiler::SHAPE_CACHE`] of them), each with its compile time.
//!
//! The three parts are ordinary graphs over the split graph's value table: values travel between them
//! by [`ValueId`] in a per-run environment. Constants stay constants in every part that uses them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carve_codegen::{Report, Target};
use carve_ir::{Graph, Op, Shape, Type, ValueId};
use carve_runtime::Tensor;
use carve_runtime::exec::Executable;
use carve_runtime::interp::{self, Value};

use crate::compiler::{CompileError, SHAPE_CACHE};

/// Native code for a graph whose shapes are all static.
pub struct NativePart {
    /// The executable.
    pub exe: Executable,
    /// What compilation did.
    pub report: Report,
}

/// How one part of a segmented graph runs.
pub enum Part {
    /// Native code (possibly with fallback nodes, listed in its report).
    Native(Box<NativePart>),
    /// Split again at a further boundary.
    Segmented(Box<Segments>),
}

/// A graph split at its first data-dependent shape.
pub struct Segments {
    /// The split graph's inputs (the environment's first values).
    inputs: Vec<ValueId>,
    /// Native code for the nodes before the boundary, with the values it reads and hands on (by
    /// position).
    head: Option<(NativePart, Vec<ValueId>, Vec<ValueId>)>,
    /// The boundary node (with the constants it reads), run by the interpreter.
    boundary: Graph,
    /// The boundary node's name and op.
    pub node: String,
    /// The boundary node's op name.
    pub op: String,
    /// Why the boundary exists.
    pub reason: String,
    /// The nodes after the boundary.
    tail: Option<Tail>,
    /// The split graph's outputs.
    outputs: Vec<ValueId>,
    /// Constant values that are graph outputs.
    constants: Vec<(ValueId, Value)>,
    /// Value names of the split graph (for messages).
    names: Vec<String>,
    /// Nodes in the head (non-constant) and in the tail.
    pub head_nodes: usize,
    /// Non-constant nodes after the boundary.
    pub tail_nodes: usize,
}

/// The nodes after a boundary, compiled per binding of their input shapes.
struct Tail {
    graph: Graph,
    target: Target,
    threads: usize,
    cache: Mutex<Vec<Compiled>>,
}

/// One compiled binding of a tail's input shapes.
struct Compiled {
    shapes: Vec<Vec<usize>>,
    part: Arc<Part>,
    time: Duration,
}

/// Whether `v` is a tensor with a fixed-width element type and a concrete shape.
fn is_static(g: &Graph, v: ValueId) -> bool {
    match g.ty(v) {
        Type::Tensor(t) => {
            t.dtype.storage_bytes(1).is_some()
                && carve_codegen::prepare::concrete_shape(g, v).is_some()
        }
        _ => false,
    }
}

/// Values of the enclosing graph a node reads: its inputs and its subgraphs' captures.
fn reads(n: &carve_ir::Node) -> Vec<ValueId> {
    let mut out: Vec<ValueId> = n.inputs.iter().flatten().copied().collect();
    for sg in n.op.subgraphs() {
        out.extend(sg.captures.iter().map(|c| c.outer));
    }
    out
}

/// `g` restricted to `nodes` (indices, in order), with the given inputs and outputs.
fn part(g: &Graph, nodes: &[usize], inputs: Vec<ValueId>, outputs: Vec<ValueId>) -> Graph {
    let mut p = Graph {
        name: g.name.clone(),
        inputs,
        outputs,
        captures: Vec::new(),
        values: g.values.clone(),
        nodes: nodes.iter().map(|&i| g.nodes[i].clone()).collect(),
    };
    p.rebuild_producers();
    p
}

/// The constant nodes among `nodes[..end]` whose values `users` read.
fn constants_read(g: &Graph, end: usize, users: &[usize]) -> Vec<usize> {
    let read: std::collections::BTreeSet<ValueId> =
        users.iter().flat_map(|&i| reads(&g.nodes[i])).collect();
    (0..end)
        .filter(|&i| {
            matches!(g.nodes[i].op, Op::Constant(_))
                && g.nodes[i].outputs.iter().any(|o| read.contains(o))
        })
        .collect()
}

/// Values read by `users` (or listed in `also`) that are produced outside them and are not constants,
/// in first-use order.
fn live_in(g: &Graph, users: &[usize], also: &[ValueId]) -> Vec<ValueId> {
    let inside: std::collections::BTreeSet<ValueId> = users
        .iter()
        .flat_map(|&i| g.nodes[i].outputs.iter().copied())
        .collect();
    let mut out = Vec::new();
    for v in users
        .iter()
        .flat_map(|&i| reads(&g.nodes[i]))
        .chain(also.iter().copied())
    {
        if !inside.contains(&v) && g.constant_of(v).is_none() && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Compiles `g` (input shapes bound, optimized) for `target`: natively when every shape is static,
/// else split at its first boundary (a node none of whose predecessors reads a non-static value).
/// `Ok(None)` when there is nothing to split at (a non-static graph input that no node reads).
pub fn compile(g: &Graph, target: &Target, threads: usize) -> Result<Option<Part>, CompileError> {
    let mut g = g.clone();
    carve_codegen::prepare::fold_constants(&mut g)?;
    let boundary = g.nodes.iter().position(|n| {
        !matches!(n.op, Op::Constant(_))
            && (n.outputs.iter().any(|&o| !is_static(&g, o))
                || reads(n).iter().any(|&v| !is_static(&g, v)))
    });
    let Some(d) = boundary else {
        if !g.inputs.iter().all(|&v| is_static(&g, v)) {
            return Ok(None);
        }
        let (pg, folded) = carve_codegen::prepare::specialize(&g)?;
        let (exe, report) = carve_codegen::jit::compile_jit(pg, target, threads, folded)?;
        return Ok(Some(Part::Native(Box::new(NativePart { exe, report }))));
    };
    Ok(Some(Part::Segmented(Box::new(split(
        &g, d, target, threads,
    )?))))
}

fn split(g: &Graph, d: usize, target: &Target, threads: usize) -> Result<Segments, CompileError> {
    let n = &g.nodes[d];
    let reason = n
        .outputs
        .iter()
        .chain(reads(n).iter())
        .find(|&&v| !is_static(g, v))
        .map(|&v| {
            let val = g.value(v);
            let what = if n.outputs.contains(&v) {
                "its result"
            } else {
                "its operand"
            };
            // As the IR text names it: `%N` for unnamed (or numbered) values.
            let name = if val.name.is_empty() {
                format!("%{}", v.0)
            } else if val.name.chars().all(|c| c.is_ascii_digit()) {
                format!("%{}", val.name)
            } else {
                format!("'{}'", val.name)
            };
            format!(
                "{what} {name} is {} (not a static tensor after binding the inputs)",
                val.ty
            )
        })
        .unwrap_or_default();
    let later: Vec<usize> = (d + 1..g.nodes.len())
        .filter(|&i| !matches!(g.nodes[i].op, Op::Constant(_)))
        .collect();
    let is_output = |v: &ValueId| g.outputs.contains(v);
    // Head: values its nodes produce that the boundary, the tail or the outputs need.
    let head_idx: Vec<usize> = (0..d)
        .filter(|&i| !matches!(g.nodes[i].op, Op::Constant(_)))
        .collect();
    let mut after: Vec<usize> = vec![d];
    after.extend(&later);
    let needed: std::collections::BTreeSet<ValueId> = after
        .iter()
        .flat_map(|&i| reads(&g.nodes[i]))
        .chain(g.outputs.iter().copied())
        .collect();
    let head_out: Vec<ValueId> = head_idx
        .iter()
        .flat_map(|&i| g.nodes[i].outputs.iter().copied())
        .filter(|v| needed.contains(v))
        .collect();
    let head = if head_out.is_empty() {
        None
    } else {
        // Its inputs: the static graph inputs (no node before the boundary reads another one).
        let ins: Vec<ValueId> = g
            .inputs
            .iter()
            .copied()
            .filter(|&v| is_static(g, v))
            .collect();
        let mut hg = part(
            g,
            &(0..d).collect::<Vec<_>>(),
            ins.clone(),
            head_out.clone(),
        );
        carve_ir::fold::remove_dead(&mut hg);
        let (pg, folded) = carve_codegen::prepare::specialize(&hg)?;
        let (exe, report) = carve_codegen::jit::compile_jit(pg, target, threads, folded)?;
        Some((NativePart { exe, report }, ins, head_out))
    };
    // The boundary node with the constants it reads.
    let mut bnodes = constants_read(g, d, &[d]);
    bnodes.push(d);
    let b_in = live_in(g, &[d], &[]);
    let boundary = part(g, &bnodes, b_in, n.outputs.clone());
    // The tail: everything after the boundary, with the constants it reads.
    let tail = if later.is_empty() {
        None
    } else {
        let mut tnodes = constants_read(g, g.nodes.len(), &later);
        tnodes.retain(|&i| i != d);
        tnodes.extend(&later);
        let outs: Vec<ValueId> = later
            .iter()
            .flat_map(|&i| g.nodes[i].outputs.iter().copied())
            .filter(is_output)
            .collect();
        let t_in = live_in(g, &later, &[]);
        Some(Tail {
            graph: part(g, &tnodes, t_in, outs),
            target: target.clone(),
            threads,
            cache: Mutex::new(Vec::new()),
        })
    };
    let mut constants = Vec::new();
    for &o in &g.outputs {
        if let Some(c) = g.constant_of(o) {
            let t = Tensor::from_constant(c)
                .map_err(|e| CompileError::Segments(format!("output constant: {}", e.0)))?;
            constants.push((o, Value::Tensor(t)));
        }
    }
    Ok(Segments {
        inputs: g.inputs.clone(),
        head,
        boundary,
        node: n.name.clone(),
        op: n.op.name().to_string(),
        reason,
        tail,
        outputs: g.outputs.clone(),
        constants,
        names: g.values.iter().map(|v| v.name.clone()).collect(),
        head_nodes: head_idx.len(),
        tail_nodes: later.len(),
    })
}

fn tensors(vs: Vec<Value>) -> Result<Vec<Tensor>, CompileError> {
    vs.into_iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(t),
            other => Err(CompileError::Segments(format!(
                "native code takes tensors, got a {}",
                other.kind()
            ))),
        })
        .collect()
}

impl Part {
    /// Runs on inputs in graph order.
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, CompileError> {
        match self {
            Part::Native(p) => Ok(p
                .exe
                .run(&tensors(inputs)?)?
                .into_iter()
                .map(Value::Tensor)
                .collect()),
            Part::Segmented(s) => s.run(inputs),
        }
    }
}

impl Segments {
    /// The head's compile report (`None` when the boundary is the first node).
    pub fn head_report(&self) -> Option<&Report> {
        self.head.as_ref().map(|(p, _, _)| &p.report)
    }

    /// Runs on inputs in graph order.
    pub fn run(&self, inputs: Vec<Value>) -> Result<Vec<Value>, CompileError> {
        let mut env: BTreeMap<ValueId, Value> = self.constants.iter().cloned().collect();
        env.extend(self.inputs.iter().copied().zip(inputs));
        let take =
            |env: &BTreeMap<ValueId, Value>, vs: &[ValueId]| -> Result<Vec<Value>, CompileError> {
                vs.iter()
                    .map(|v| {
                        env.get(v).cloned().ok_or_else(|| {
                            let name = self.names.get(v.index()).map_or("", String::as_str);
                            CompileError::Segments(format!(
                                "value '{name}' (#{}) was not computed before it was needed",
                                v.0
                            ))
                        })
                    })
                    .collect()
            };
        if let Some((p, ins, outs)) = &self.head {
            let ins = take(&env, ins)?;
            let vals = p.exe.run(&tensors(ins)?)?;
            env.extend(
                outs.iter()
                    .copied()
                    .zip(vals.into_iter().map(Value::Tensor)),
            );
        }
        let ins = take(&env, &self.boundary.inputs)?;
        let vals = interp::run(&self.boundary, ins)?;
        env.extend(self.boundary.outputs.iter().copied().zip(vals));
        if let Some(t) = &self.tail {
            let ins = take(&env, &t.graph.inputs)?;
            let part = t.instance(&ins)?;
            let vals = part.run(ins)?;
            env.extend(t.graph.outputs.iter().copied().zip(vals));
        }
        take(&env, &self.outputs)
    }

    /// A description of the segments, one line each (the tail's compiled bindings included).
    pub fn describe(&self) -> String {
        let mut s = String::new();
        match &self.head {
            Some((p, _, _)) => {
                let _ = writeln!(
                    s,
                    "segment 1: {} nodes native now ({} fallback)",
                    self.head_nodes,
                    p.report.fallbacks.len()
                );
            }
            None => {
                let _ = writeln!(s, "segment 1: empty (the boundary is the first node)");
            }
        }
        let _ = writeln!(
            s,
            "boundary: node '{}' ({}) runs in the interpreter: {}",
            self.node, self.op, self.reason
        );
        match &self.tail {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "segment 2: {} nodes, compiled when their input shapes are first seen (cached per shape binding, at most {SHAPE_CACHE})",
                    self.tail_nodes
                );
                if let Ok(c) = t.cache.lock() {
                    for Compiled { shapes, part, time } in c.iter() {
                        let how = match part.as_ref() {
                            Part::Native(p) => {
                                format!("native, {} fallback", p.report.fallbacks.len())
                            }
                            Part::Segmented(inner) => {
                                format!("split again at node '{}' ({})", inner.node, inner.op)
                            }
                        };
                        let _ = writeln!(
                            s,
                            "  shapes {shapes:?}: {how}, compiled in {:.1} ms",
                            time.as_secs_f64() * 1e3
                        );
                        if let Part::Segmented(inner) = part.as_ref() {
                            for l in inner.describe().lines() {
                                let _ = writeln!(s, "    {l}");
                            }
                        }
                    }
                }
            }
            None => {
                let _ = writeln!(s, "segment 2: empty (the boundary is the last node)");
            }
        }
        s
    }
}

impl Tail {
    /// The compiled tail for the shapes of `inputs`, compiled now if not cached.
    fn instance(&self, inputs: &[Value]) -> Result<Arc<Part>, CompileError> {
        let shapes: Vec<Vec<usize>> = inputs
            .iter()
            .map(|v| v.as_tensor().map(|t| t.shape.clone()).unwrap_or_default())
            .collect();
        if let Ok(c) = self.cache.lock()
            && let Some(hit) = c.iter().find(|e| e.shapes == shapes)
        {
            return Ok(hit.part.clone());
        }
        let t0 = Instant::now();
        let mut g = self.graph.clone();
        for (&v, x) in g.inputs.clone().iter().zip(inputs) {
            if let (Type::Tensor(t), Value::Tensor(x)) = (&mut g.values[v.index()].ty, x) {
                t.shape = Some(Shape::known(
                    &x.shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
                ));
            }
        }
        g.reinfer().map_err(|e| CompileError::Bind(e.to_string()))?;
        let part = match compile(&g, &self.target, self.threads)? {
            Some(p) => Arc::new(p),
            None => {
                return Err(CompileError::Segments(
                    "a segment has an input that is not a static tensor and that no node reads"
                        .into(),
                ));
            }
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() >= SHAPE_CACHE {
                c.remove(0);
            }
            c.push(Compiled {
                shapes,
                part: part.clone(),
                time: t0.elapsed(),
            });
        }
        Ok(part)
    }
}
