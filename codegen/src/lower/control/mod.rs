//! Control flow compiled like any graph: `loop`, `scan` and `if` nodes whose iteration counts (or
//! condition) are known at compile time are expanded in place into straight-line nodes of the outer
//! graph, which are then scheduled, fused, planned in the arena and emitted like every other node.
//!
//! - **`loop`** with a constant trip count `M` (and a constant or absent initial condition): the body is
//!   copied once per iteration with the iteration number as a constant; loop-carried values flow from one
//!   copy into the next (so they live in the arena as ordinary values); each scan output is stacked with
//!   `unsqueeze` + `concat`. The body's condition result must fold to a constant after expansion: `true`
//!   continues, `false` ends the loop there (the expansion is redone with that many iterations); a
//!   condition that depends on data keeps the node.
//! - **`scan`** over tensors whose scanned axis is static: each iteration reads its slice with a constant
//!   `gather`, in the input's direction; scan outputs are stacked along their axis, in their direction.
//! - **`if`** with a constant condition becomes the taken branch; with a data condition, both branches
//!   are expanded and each result is a `where` on the condition — only when both branches give the same
//!   static shape for every result and neither branch has an op whose result on the untaken side could
//!   fault (integer division, gathers/scatters, nested control flow).
//!
//! Each expansion is tried on a copy of the graph and kept only if, after re-inference and constant
//! folding, its checks hold; otherwise the node stays as it is (and runs in the interpreter, through a
//! fallback or a segment boundary). Expansion is bounded ([`MAX_TRIPS`], [`MAX_EXPANDED_NODES`]) so that
//! compile time stays small. Semantics (the interpreter's `runtime/src/interp/control/`) are unchanged:
//! the expanded nodes compute exactly what the interpreter computes iteration by iteration.

use std::collections::BTreeSet;

use carve_ir::ops::control::{ControlOp, If, Loop, Scan};
use carve_ir::ops::elementwise::Where;
use carve_ir::ops::movement::{Concat, Gather, Identity, Reshape, Unsqueeze};
use carve_ir::{Buffer, Constant, DType, Dim, Graph, Node, Op, Shape, TensorType, Type, ValueId};

use crate::CodegenError;
use crate::prepare::{concrete_shape, fold_constants, remove_dead};

/// Most iterations a `loop` or `scan` is expanded to.
pub const MAX_TRIPS: u64 = 1024;

/// Most nodes one control node may expand to (iterations × body nodes): every expanded node is
/// scheduled and emitted, so this bounds the compile time a loop can add.
pub const MAX_EXPANDED_NODES: usize = 4096;

/// Most expansions tried in one graph (successful or not).
const MAX_ATTEMPTS: usize = 256;

/// One control-flow node compiled inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// Node name.
    pub node: String,
    /// Op name (`loop`, `scan`, `if`).
    pub op: String,
    /// Iterations expanded (1 for an `if` with a constant condition, 2 for one with both branches).
    pub iterations: usize,
    /// Nodes of the body (both branches for an `if`).
    pub body_nodes: usize,
}

impl std::fmt::Display for Expanded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} '{}' compiled inline: {} × {} body nodes",
            self.op, self.node, self.iterations, self.body_nodes
        )
    }
}

/// Expands every control node of `g` (a graph whose constants are folded) that can be expanded, nested
/// ones included, and folds constants again. Returns what was expanded and the nodes folded.
pub fn expand_all(g: &mut Graph) -> Result<(Vec<Expanded>, usize), CodegenError> {
    let mut done = Vec::new();
    let mut folded = 0;
    let mut refused: BTreeSet<(String, usize)> = BTreeSet::new();
    let mut attempts = 0;
    'outer: while attempts < MAX_ATTEMPTS {
        for i in 0..g.nodes.len() {
            let n = &g.nodes[i];
            if !matches!(
                n.op,
                Op::Control(ControlOp::Loop(_) | ControlOp::Scan(_) | ControlOp::If(_))
            ) || refused.contains(&(n.name.clone(), i))
            {
                continue;
            }
            attempts += 1;
            match try_expand(g, i, None)? {
                Some((t, f, e)) => {
                    *g = t;
                    folded += f;
                    done.push(e);
                    refused.clear();
                }
                None => {
                    refused.insert((g.nodes[i].name.clone(), i));
                }
            }
            continue 'outer;
        }
        break;
    }
    Ok((done, folded))
}

/// What must hold after an expansion for it to be kept.
enum Check {
    /// Nothing.
    None,
    /// A `loop`'s condition results must be constant: `true` continues, the first `false` ends the loop
    /// there. `conds` covers every expanded iteration but the last when `trips` is the trip count `m`,
    /// and every one otherwise (the expansion is redone with twice the iterations while they all say
    /// `true`).
    LoopConds {
        conds: Vec<ValueId>,
        trips: u64,
        m: u64,
    },
    /// Each pair (`if` branch results) has one static shape.
    SameShapes(Vec<(ValueId, ValueId)>),
}

/// The nodes that replace one control node.
struct Expansion {
    nodes: Vec<Node>,
    check: Check,
    iterations: usize,
    body_nodes: usize,
}

/// Tries to expand node `i` on a copy of `g`; returns the new graph, the nodes folded and a note.
fn try_expand(
    g: &Graph,
    i: usize,
    trips: Option<u64>,
) -> Result<Option<(Graph, usize, Expanded)>, CodegenError> {
    let mut t = g.clone();
    let node = t.nodes[i].clone();
    let exp = match &node.op {
        Op::Control(ControlOp::Loop(op)) => expand_loop(&mut t, &node, op, trips),
        Op::Control(ControlOp::Scan(op)) => expand_scan(&mut t, &node, op),
        Op::Control(ControlOp::If(op)) => expand_if(&mut t, &node, op),
        _ => None,
    };
    let Some(exp) = exp else { return Ok(None) };
    let outputs = t.outputs.len();
    match &exp.check {
        Check::None => {}
        Check::LoopConds { conds, .. } => t.outputs.extend(conds.iter().copied()),
        Check::SameShapes(p) => t.outputs.extend(p.iter().flat_map(|&(a, b)| [a, b])),
    }
    let mut nodes = Vec::with_capacity(t.nodes.len() + exp.nodes.len());
    let mut old = std::mem::take(&mut t.nodes).into_iter();
    nodes.extend(old.by_ref().take(i));
    old.next();
    nodes.extend(exp.nodes);
    nodes.extend(old);
    t.nodes = nodes;
    t.rebuild_producers();
    if t.reinfer().is_err() {
        return Ok(None);
    }
    let Ok(folded) = fold_constants(&mut t) else {
        return Ok(None);
    };
    match &exp.check {
        Check::None => {}
        &Check::LoopConds {
            ref conds,
            trips,
            m,
        } => {
            let mut ended = false;
            for (k, &c) in conds.iter().enumerate() {
                match t.constant_of(c).and_then(Constant::to_i64s).as_deref() {
                    Some([1]) => {}
                    Some([0]) if k as u64 + 1 == trips => ended = true,
                    Some([0]) => return try_expand(g, i, Some(k as u64 + 1)),
                    _ => return Ok(None),
                }
            }
            if !ended && trips < m && conds.len() as u64 == trips {
                // Every iteration so far continues: expand further.
                let more = trips.saturating_mul(2).min(m);
                if more > MAX_TRIPS {
                    return Ok(None);
                }
                return try_expand(g, i, Some(more));
            }
        }
        Check::SameShapes(p) => {
            for &(a, b) in p {
                let (sa, sb) = (concrete_shape(&t, a), concrete_shape(&t, b));
                if sa.is_none() || sa != sb {
                    return Ok(None);
                }
            }
        }
    }
    t.outputs.truncate(outputs);
    remove_dead(&mut t);
    let note = Expanded {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        iterations: exp.iterations,
        body_nodes: exp.body_nodes,
    };
    Ok(Some((t, folded, note)))
}

/// Builds the nodes of one expansion into `g`'s value table.
struct Builder<'a> {
    g: &'a mut Graph,
    nodes: Vec<Node>,
    prefix: String,
    count: usize,
}

impl<'a> Builder<'a> {
    fn new(g: &'a mut Graph, prefix: &str) -> Builder<'a> {
        Builder {
            g,
            nodes: Vec::new(),
            prefix: prefix.to_string(),
            count: 0,
        }
    }

    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{}/{what}_{}", self.prefix, self.count)
    }

    fn constant(&mut self, c: Constant) -> ValueId {
        let name = self.name("const");
        let v = self.g.add_value(name.clone(), Type::Tensor(c.ty.clone()));
        self.nodes.push(Node {
            name,
            op: Op::Constant(c),
            inputs: Vec::new(),
            outputs: vec![v],
        });
        v
    }

    /// A node with fresh outputs of unknown type (inference fills them in).
    fn node(&mut self, op: Op, inputs: Vec<Option<ValueId>>, dtype: DType) -> ValueId {
        let name = self.name(op.name());
        let v = self
            .g
            .add_value(name.clone(), Type::Tensor(TensorType::unranked(dtype)));
        self.put(name, op, inputs, v);
        v
    }

    /// A node writing the existing value `out`.
    fn put(&mut self, name: String, op: Op, inputs: Vec<Option<ValueId>>, out: ValueId) {
        self.nodes.push(Node {
            name,
            op,
            inputs,
            outputs: vec![out],
        });
    }

    fn identity(&mut self, from: ValueId, to: ValueId) {
        let name = self.name("result");
        self.put(name, Identity {}.into(), vec![Some(from)], to);
    }

    /// Copies `body` once, with its inputs bound to `inputs`; returns the outer values of its results.
    /// `consts` maps body constants to the outer copy made by the first iteration (shared by all).
    fn inline(
        &mut self,
        body: &Graph,
        inputs: &[ValueId],
        tag: &str,
        consts: &mut [Option<ValueId>],
    ) -> Option<Vec<ValueId>> {
        if inputs.len() != body.inputs.len() {
            return None;
        }
        let mut map: Vec<Option<ValueId>> = vec![None; body.values.len()];
        for (&b, &o) in body.inputs.iter().zip(inputs) {
            *map.get_mut(b.index())? = Some(o);
        }
        for c in &body.captures {
            *map.get_mut(c.inner.index())? = Some(c.outer);
        }
        for n in &body.nodes {
            if let (Op::Constant(_), [o]) = (&n.op, n.outputs.as_slice())
                && let Some(v) = consts.get(o.index()).copied().flatten()
            {
                map[o.index()] = Some(v);
                continue;
            }
            let mut ins = Vec::with_capacity(n.inputs.len());
            for v in &n.inputs {
                ins.push(match v {
                    Some(v) => Some((*map.get(v.index())?)?),
                    None => None,
                });
            }
            let mut op = n.op.clone();
            for sg in op.subgraphs_mut() {
                for c in &mut sg.captures {
                    c.outer = (*map.get(c.outer.index())?)?;
                }
            }
            let mut outs = Vec::with_capacity(n.outputs.len());
            for &o in &n.outputs {
                let val = body.values.get(o.index())?;
                // A fully static body type holds for every iteration; anything else is re-inferred.
                let ty = match &val.ty {
                    Type::Tensor(t) if t.shape.as_ref().is_some_and(|s| s.as_known().is_some()) => {
                        val.ty.clone()
                    }
                    other => carve_ir::ops::control::erase_shapes(other),
                };
                let v = self.g.add_value(format!("{}{tag}", val.name), ty);
                map[o.index()] = Some(v);
                outs.push(v);
            }
            if matches!(n.op, Op::Constant(_)) {
                for (&o, &v) in n.outputs.iter().zip(&outs) {
                    if let Some(slot) = consts.get_mut(o.index()) {
                        *slot = Some(v);
                    }
                }
            }
            self.nodes.push(Node {
                name: format!("{}/{}{tag}", self.prefix, n.name),
                op,
                inputs: ins,
                outputs: outs,
            });
        }
        body.outputs
            .iter()
            .map(|o| map.get(o.index()).copied().flatten())
            .collect()
    }

    /// Stacks `vals` along a new `axis` into the existing value `out`; with no values, `out` becomes an
    /// empty constant of type `empty` (its stacked dim 0).
    fn stack(
        &mut self,
        vals: &[ValueId],
        axis: usize,
        out: ValueId,
        dtype: DType,
        empty: Option<Vec<u64>>,
    ) -> Option<()> {
        let name = self.name("stack");
        if vals.is_empty() {
            let dims = empty?;
            let ty = TensorType::known(dtype, &dims);
            let c = Constant::dense(ty, Buffer::from_vec(Vec::new())).ok()?;
            self.put(name, Op::Constant(c), Vec::new(), out);
            return Some(());
        }
        let axes = self.constant(Constant::from_i64s(&[1], &[axis as i64]));
        if let [v] = vals {
            self.put(name, Unsqueeze {}.into(), vec![Some(*v), Some(axes)], out);
            return Some(());
        }
        let mut parts = Vec::with_capacity(vals.len());
        for &v in vals {
            parts.push(Some(self.node(
                Unsqueeze {}.into(),
                vec![Some(v), Some(axes)],
                dtype,
            )));
        }
        self.put(name, Concat { axis: axis as i64 }.into(), parts, out);
        Some(())
    }
}

fn tensor(g: &Graph, v: ValueId) -> Option<&TensorType> {
    g.values.get(v.index())?.ty.as_tensor()
}

/// True if every input and result of `body` is a tensor.
fn tensor_io(body: &Graph) -> bool {
    body.inputs
        .iter()
        .chain(&body.outputs)
        .all(|&v| tensor(body, v).is_some())
}

/// A one-element constant for a body input declared as `ty` (scalar unless it declares another
/// one-element shape), holding `value`.
fn scalar_for(ty: Option<&TensorType>, dtype: DType, value: i64) -> Option<Constant> {
    let dims: Vec<u64> = match ty.and_then(|t| t.shape.as_ref()).and_then(Shape::as_known) {
        Some(d) if d.iter().product::<u64>() == 1 => d,
        _ => Vec::new(),
    };
    let c = match dtype {
        DType::I64 => Constant::from_i64s(&dims, &[value]),
        DType::Bool => Constant::dense(
            TensorType::known(DType::Bool, &dims),
            Buffer::from_vec(vec![u8::from(value != 0)]),
        )
        .ok()?,
        _ => return None,
    };
    Some(c)
}

/// The dims of a stacked output with no iterations: the node output's type with the stacked dim 0.
fn empty_dims(g: &Graph, out: ValueId, axis: usize) -> Option<Vec<u64>> {
    let dims = tensor(g, out)?.dims()?;
    dims.iter()
        .enumerate()
        .map(|(i, d)| match d {
            _ if i == axis => Some(0),
            Dim::Known(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn within_bounds(trips: u64, body: &Graph) -> bool {
    trips <= MAX_TRIPS
        && usize::try_from(trips)
            .ok()
            .and_then(|t| t.checked_mul(body.nodes.len().max(1)))
            .is_some_and(|n| n <= MAX_EXPANDED_NODES)
}

fn expand_loop(g: &mut Graph, n: &Node, op: &Loop, trips: Option<u64>) -> Option<Expansion> {
    let body = &op.body;
    // No trip count: bounded only by the condition.
    let m = match n.inputs.first().copied().flatten() {
        None => u64::MAX,
        Some(m) => match g.constant_of(m)?.to_i64s()?.as_slice() {
            [m] => u64::try_from(*m).unwrap_or(0),
            _ => return None,
        },
    };
    let go = match n.inputs.get(1).copied().flatten() {
        None => true,
        Some(c) => match g.constant_of(c)?.to_i64s()?.as_slice() {
            [c] => *c != 0,
            _ => return None,
        },
    };
    // A trip count beyond the bound may still end early by its condition: start with one iteration.
    let first = if m <= MAX_TRIPS { m } else { 1 };
    let trips = if go { trips.unwrap_or(first).min(m) } else { 0 };
    if !within_bounds(trips, body) || !tensor_io(body) {
        return None;
    }
    let carried: Vec<ValueId> = n.inputs.get(2..)?.iter().copied().collect::<Option<_>>()?;
    let nc = carried.len();
    let k = body.outputs.len().checked_sub(1 + nc)?;
    if body.inputs.len() != 2 + nc || n.outputs.len() > nc + k {
        return None;
    }
    if carried
        .iter()
        .chain(&n.outputs)
        .any(|&v| tensor(g, v).is_none())
    {
        return None;
    }
    let iter_ty = tensor(body, body.inputs[0]).cloned();
    let cond_ty = tensor(body, body.inputs[1]).cloned();
    if iter_ty.as_ref().is_some_and(|t| t.dtype != DType::I64) {
        return None;
    }
    let mut b = Builder::new(g, &n.name);
    let mut consts = vec![None; body.values.len()];
    let mut state = carried;
    let mut conds = Vec::new();
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); k];
    let truth = b.constant(scalar_for(cond_ty.as_ref(), DType::Bool, 1)?);
    for it in 0..trips {
        let i = b.constant(scalar_for(iter_ty.as_ref(), DType::I64, it as i64)?);
        let mut ins = vec![i, truth];
        ins.extend(&state);
        let outs = b.inline(body, &ins, &format!("#{it}"), &mut consts)?;
        if it + 1 < trips || trips < m {
            conds.push(outs[0]);
        }
        state = outs[1..1 + nc].to_vec();
        for (j, s) in scans.iter_mut().enumerate() {
            s.push(outs[1 + nc + j]);
        }
    }
    for (idx, &o) in n.outputs.iter().enumerate() {
        if idx < nc {
            b.identity(state[idx], o);
        } else {
            let dtype = tensor(b.g, o)?.dtype;
            let empty = empty_dims(b.g, o, 0);
            b.stack(&scans[idx - nc], 0, o, dtype, empty)?;
        }
    }
    Some(Expansion {
        nodes: b.nodes,
        check: Check::LoopConds { conds, trips, m },
        iterations: trips as usize,
        body_nodes: body.nodes.len(),
    })
}

/// `list[i]`, or `default` when the attribute list is shorter (omitted).
fn attr_at(list: &[i64], i: usize, default: i64) -> i64 {
    list.get(i).copied().unwrap_or(default)
}

fn norm(axis: i64, rank: usize) -> Option<usize> {
    let r = i64::try_from(rank).ok()?;
    let a = if axis < 0 { axis + r } else { axis };
    (0..r).contains(&a).then_some(a as usize)
}

fn expand_scan(g: &mut Graph, n: &Node, op: &Scan) -> Option<Expansion> {
    let body = &op.body;
    let total = n.inputs.len();
    let m = usize::try_from(op.num_scan_inputs)
        .ok()
        .filter(|&m| m >= 1 && m <= total)?;
    let ns = total - m;
    let k = body.outputs.len().checked_sub(ns)?;
    if !tensor_io(body) || body.inputs.len() != total || n.outputs.len() > ns + k {
        return None;
    }
    let inputs: Vec<ValueId> = n.inputs.iter().copied().collect::<Option<_>>()?;
    if inputs
        .iter()
        .chain(&n.outputs)
        .any(|&v| tensor(g, v).is_none())
    {
        return None;
    }
    let mut scanned = Vec::with_capacity(m);
    let mut len = None;
    for (j, &x) in inputs[ns..].iter().enumerate() {
        let shape = concrete_shape(g, x)?;
        let axis = norm(attr_at(&op.scan_input_axes, j, 0), shape.len())?;
        let l = shape[axis];
        if len.is_some_and(|y| y != l) {
            return None;
        }
        len = Some(l);
        scanned.push((x, axis, attr_at(&op.scan_input_directions, j, 0) == 1));
    }
    let len = len?;
    if !within_bounds(len as u64, body) {
        return None;
    }
    let mut b = Builder::new(g, &n.name);
    let mut consts = vec![None; body.values.len()];
    let mut state = inputs[..ns].to_vec();
    let mut scans: Vec<Vec<ValueId>> = vec![Vec::new(); k];
    for it in 0..len {
        let mut ins = state.clone();
        for &(x, axis, reverse) in &scanned {
            let pos = if reverse { len - 1 - it } else { it };
            let idx = b.constant(Constant::from_i64s(&[], &[pos as i64]));
            let dtype = tensor(b.g, x)?.dtype;
            ins.push(b.node(
                Gather { axis: axis as i64 }.into(),
                vec![Some(x), Some(idx)],
                dtype,
            ));
        }
        let outs = b.inline(body, &ins, &format!("#{it}"), &mut consts)?;
        state = outs[..ns].to_vec();
        for (j, s) in scans.iter_mut().enumerate() {
            s.push(outs[ns + j]);
        }
    }
    for (idx, &o) in n.outputs.iter().enumerate() {
        if idx < ns {
            b.identity(state[idx], o);
            continue;
        }
        let j = idx - ns;
        let rank = tensor(body, body.outputs[idx])?.rank()?;
        let axis = norm(attr_at(&op.scan_output_axes, j, 0), rank + 1)?;
        let mut vals = std::mem::take(&mut scans[j]);
        if attr_at(&op.scan_output_directions, j, 0) == 1 {
            vals.reverse();
        }
        let dtype = tensor(b.g, o)?.dtype;
        let empty = empty_dims(b.g, o, axis);
        b.stack(&vals, axis, o, dtype, empty)?;
    }
    Some(Expansion {
        nodes: b.nodes,
        check: Check::None,
        iterations: len,
        body_nodes: body.nodes.len(),
    })
}

/// True if running `branch` when its result is not wanted is harmless: no op that can fault on values
/// the taken side would never have produced (integer division, index-driven reads and writes, nested
/// control flow).
fn safe_to_run_untaken(branch: &Graph) -> bool {
    branch.nodes.iter().all(|n| {
        let name = n.op.name();
        let int_input = n
            .inputs
            .iter()
            .flatten()
            .any(|&v| tensor(branch, v).is_some_and(|t| !t.dtype.is_float()));
        let risky = !n.op.subgraphs().is_empty()
            || name.contains("gather")
            || name.contains("scatter")
            || (int_input && matches!(name, "div" | "mod"));
        !risky
    })
}

fn expand_if(g: &mut Graph, n: &Node, op: &If) -> Option<Expansion> {
    let cond = n.inputs.first().copied().flatten()?;
    let known = match g.constant_of(cond).and_then(Constant::to_i64s).as_deref() {
        Some([c]) => Some(*c != 0),
        Some(_) => return None,
        None => None,
    };
    let (then_b, else_b) = (&op.then_branch, &op.else_branch);
    if n.outputs.iter().any(|&v| tensor(g, v).is_none()) {
        return None;
    }
    let mut b = Builder::new(g, &n.name);
    match known {
        Some(c) => {
            let branch = if c { then_b } else { else_b };
            if !tensor_io(branch) {
                return None;
            }
            let mut consts = vec![None; branch.values.len()];
            let outs = b.inline(branch, &[], "", &mut consts)?;
            if outs.len() < n.outputs.len() {
                return None;
            }
            for (&o, &v) in n.outputs.iter().zip(&outs) {
                b.identity(v, o);
            }
            Some(Expansion {
                nodes: b.nodes,
                check: Check::None,
                iterations: 1,
                body_nodes: branch.nodes.len(),
            })
        }
        None => {
            if !tensor_io(then_b)
                || !tensor_io(else_b)
                || !safe_to_run_untaken(then_b)
                || !safe_to_run_untaken(else_b)
            {
                return None;
            }
            let mut consts = vec![None; then_b.values.len()];
            let a = b.inline(then_b, &[], "#then", &mut consts)?;
            let mut consts = vec![None; else_b.values.len()];
            let e = b.inline(else_b, &[], "#else", &mut consts)?;
            if a.len() < n.outputs.len() || e.len() < n.outputs.len() {
                return None;
            }
            let scalar = b.constant(Constant::from_i64s(&[0], &[]));
            let c = b.node(
                Reshape { allowzero: false }.into(),
                vec![Some(cond), Some(scalar)],
                DType::Bool,
            );
            let mut pairs = Vec::new();
            for (k, &o) in n.outputs.iter().enumerate() {
                let name = b.name("select");
                b.put(
                    name,
                    Where {}.into(),
                    vec![Some(c), Some(a[k]), Some(e[k])],
                    o,
                );
                pairs.push((a[k], e[k]));
            }
            Some(Expansion {
                nodes: b.nodes,
                check: Check::SameShapes(pairs),
                iterations: 2,
                body_nodes: then_b.nodes.len() + else_b.nodes.len(),
            })
        }
    }
}
