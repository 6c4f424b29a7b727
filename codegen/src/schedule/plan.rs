//! The static memory plan: where every tensor lives while a compiled model runs.
//!
//! Graph inputs live in caller buffers (`Io`), constants in the weights blob, everything else in one
//! arena. Aliases (reshape-like ops) share their input's bytes; an op that may run in place takes over
//! an input buffer that dies at that op. Graph outputs are computed directly into the caller's output
//! buffers where possible, else copied there at the end. Arena offsets come from liveness intervals
//! with a greedy best-fit by decreasing size; every buffer is 64-byte aligned.

use carve_ir::{ConstData, ConstFormat, Graph, Op, ValueId};
use carve_runtime::Tensor;
use carve_runtime::abi::ALIGN;
use carve_runtime::exec::Loc;

use crate::CodegenError;
use crate::lower::Weights;
use crate::prepare::concrete_shape;

/// How a node is executed, as far as memory is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepMem {
    /// A constant node (its value lives in the weights blob).
    Const,
    /// Writes its outputs (native kernel or fallback); output 0 may take over input `in_place`.
    Writes {
        /// Input whose buffer output 0 may reuse.
        in_place: Option<usize>,
    },
    /// Output 0 aliases input 0.
    Alias,
    /// Nothing runs (every output is empty).
    Skip,
}

/// The plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Location of every value's bytes (None for values nothing reads).
    pub loc: Vec<Option<Loc>>,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Graph outputs that must be copied into their caller buffer at the end: (value, io index).
    pub copies: Vec<(ValueId, usize)>,
    /// Sum of all arena buffer sizes before sharing (to report the saving).
    pub unshared_bytes: usize,
}

fn bytes_of(g: &Graph, v: ValueId) -> usize {
    let Some(t) = g.ty(v).as_tensor() else {
        return 0;
    };
    let n: usize = concrete_shape(g, v)
        .map(|s| s.iter().product())
        .unwrap_or(0);
    t.dtype.storage_bytes(n as u64).unwrap_or(0) as usize
}

/// Makes the plan for `g` given each node's [`StepMem`]; constants used at run time are appended to
/// `weights`.
pub fn plan(g: &Graph, steps: &[StepMem], weights: &mut Weights) -> Result<Plan, CodegenError> {
    let nv = g.values.len();
    let n_in = g.inputs.len();
    const NEVER: usize = usize::MAX;
    // Last use (node index) of every value; graph outputs live forever.
    let mut last = vec![0usize; nv];
    let mut used = vec![false; nv];
    for (i, n) in g.nodes.iter().enumerate() {
        for (k, v) in n.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            last[v.index()] = last[v.index()].max(i);
            // A constant baked into this node's packed weights needs no run-time copy for it.
            used[v.index()] |= weights.reads(n, k, v);
        }
        for sg in n.op.subgraphs() {
            for c in &sg.captures {
                if c.outer.index() < nv {
                    last[c.outer.index()] = last[c.outer.index()].max(i);
                    used[c.outer.index()] = true;
                }
            }
        }
    }
    for &o in &g.outputs {
        last[o.index()] = NEVER;
        used[o.index()] = true;
    }
    let mut def = vec![0usize; nv];
    let mut root: Vec<usize> = (0..nv).collect();
    let mut end = last.clone();
    let mut loc: Vec<Option<Loc>> = vec![None; nv];
    for (k, &v) in g.inputs.iter().enumerate() {
        loc[v.index()] = Some(Loc::Io(k, 0));
    }
    let mut is_arena = vec![false; nv];
    for (i, (n, step)) in g.nodes.iter().zip(steps).enumerate() {
        for &o in &n.outputs {
            def[o.index()] = i;
        }
        match step {
            StepMem::Const => {
                let Op::Constant(c) = &n.op else {
                    return Err(CodegenError::Graph {
                        msg: format!(
                            "node '{}' planned as a constant but is {}",
                            n.name,
                            n.op.name()
                        ),
                    });
                };
                let o = n.outputs[0];
                if used[o.index()] {
                    let w = match (&c.format, &c.data) {
                        // Dense constants are already little-endian element bytes: no conversion.
                        (ConstFormat::Dense, ConstData::Bytes(b)) => {
                            weights.add_bytes(b.as_bytes())
                        }
                        _ => {
                            let t = Tensor::from_constant(c).map_err(|e| CodegenError::Graph {
                                msg: format!("constant '{}': {}", n.name, e.0),
                            })?;
                            let bytes =
                                t.data
                                    .to_le_bytes()
                                    .ok_or_else(|| CodegenError::Unsupported {
                                        msg: format!(
                                            "constant '{}' ({}) has no byte encoding",
                                            n.name,
                                            t.dtype()
                                        ),
                                    })?;
                            weights.add_bytes(&bytes)
                        }
                    };
                    loc[o.index()] = Some(Loc::Weights(w.offset));
                }
            }
            StepMem::Alias => {
                let x = n
                    .inputs
                    .first()
                    .copied()
                    .flatten()
                    .ok_or_else(|| CodegenError::Graph {
                        msg: format!("alias node '{}' has no input", n.name),
                    })?;
                let r = root[x.index()];
                let o = n.outputs[0].index();
                root[o] = r;
                end[r] = end[r].max(last[o]);
            }
            StepMem::Writes { in_place } => {
                for (k, &o) in n.outputs.iter().enumerate() {
                    is_arena[o.index()] = true;
                    if k == 0
                        && let Some(x) = in_place.and_then(|j| n.inputs.get(j).copied().flatten())
                    {
                        let r = root[x.index()];
                        if is_arena[r]
                            && end[r] == i
                            && bytes_of(g, ValueId(r as u32)) == bytes_of(g, o)
                            && bytes_of(g, o) > 0
                        {
                            root[o.index()] = r;
                            end[r] = end[r].max(last[o.index()]);
                        }
                    }
                }
            }
            StepMem::Skip => {}
        }
    }
    // Graph outputs: computed straight into the caller's buffer when they own an arena buffer alone.
    let mut copies = Vec::new();
    let mut claimed = vec![false; nv];
    for (k, &o) in g.outputs.iter().enumerate() {
        let r = root[o.index()];
        if is_arena[r] && !claimed[r] {
            claimed[r] = true;
            loc[r] = Some(Loc::Io(n_in + k, 0));
        } else {
            copies.push((o, n_in + k));
        }
    }
    // Arena assignment for unclaimed arena roots.
    let mut bufs: Vec<(usize, usize, usize, usize)> = Vec::new(); // (size, start, end, root)
    let mut unshared = 0usize;
    for v in 0..nv {
        // Every arena root gets a buffer, used or not: its node writes it.
        if root[v] == v && is_arena[v] && !claimed[v] {
            let size = bytes_of(g, ValueId(v as u32)).next_multiple_of(ALIGN);
            unshared += size;
            bufs.push((size, def[v], end[v].max(def[v]), v));
        }
    }
    bufs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.3.cmp(&b.3)));
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new(); // (offset, size, start, end)
    let mut arena_bytes = 0usize;
    for &(size, start, stop, v) in &bufs {
        let mut conflicts: Vec<(usize, usize)> = placed
            .iter()
            .filter(|p| p.2 <= stop && start <= p.3)
            .map(|p| (p.0, p.1))
            .collect();
        conflicts.sort();
        let mut off = 0usize;
        for (o, s) in conflicts {
            if off + size <= o {
                break;
            }
            off = off.max(o + s);
        }
        placed.push((off, size, start, stop));
        arena_bytes = arena_bytes.max(off + size);
        loc[v] = Some(Loc::Arena(off));
    }
    for v in 0..nv {
        if loc[v].is_none() {
            loc[v] = loc[root[v]];
        }
        if loc[v].is_none() && bytes_of(g, ValueId(v as u32)) == 0 {
            // Empty tensors need an address but no bytes.
            loc[v] = Some(Loc::Arena(0));
        }
    }
    Ok(Plan {
        loc,
        arena_bytes,
        copies,
        unshared_bytes: unshared,
    })
}
