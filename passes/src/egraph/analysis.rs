//! The e-class analysis: every e-class carries its IR type(s) (inferred with the IR's own shape
//! inference; merging two classes asserts their types agree and keeps the more precise one) and, when
//! its value is known, the interned constant (whose [`ConstSummary`] rules condition on). Constant
//! folding happens here: a class gets a constant as soon as one of its e-nodes has all-constant inputs
//! (evaluated through the driver's [`ConstEval`], size-bounded), or is `shape`/`size` of a statically
//! shaped value.

use carve_ir::infer::{InferCtx, compatible, refine};
use carve_ir::{Constant, Graph, Op, Type};
use egg::{Analysis, DidMerge, EGraph, Id};

use super::lang::{ConstSummary, ConstTable, ENode, Head, OpTable};
use crate::fold::ConstEval;

/// The e-graph type carve rewrites.
pub type EG<'a> = EGraph<ENode, CarveAnalysis<'a>>;

/// Per-class facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// One type per result: one for a value, `n` for a multi-output tuple, none for `Absent`.
    pub types: Vec<Type>,
    /// False when inference failed for the e-node that made this class (types are then meaningless).
    pub known: bool,
    /// The constant this class equals, if known.
    pub konst: Option<u32>,
}

/// The analysis state: interning tables, graph input types and the constant evaluator.
pub struct CarveAnalysis<'a> {
    /// Interned ops.
    pub ops: OpTable,
    /// Interned constants.
    pub consts: ConstTable,
    /// Types of the graph inputs.
    pub input_types: Vec<Type>,
    /// Evaluates ops on constants; `None` disables folding through the interpreter.
    pub eval: Option<&'a dyn ConstEval>,
    /// Folded results larger than this many elements are not materialized unless they shrink the inputs.
    pub fold_limit: u64,
    /// Type disagreements seen when merging classes (a rule bug; the optimizer then refuses its result).
    pub conflicts: Vec<String>,
    /// Number of folds performed.
    pub folds: usize,
}

impl<'a> CarveAnalysis<'a> {
    /// A fresh analysis for a graph with these input types.
    pub fn new(input_types: Vec<Type>, eval: Option<&'a dyn ConstEval>, fold_limit: u64) -> Self {
        CarveAnalysis {
            ops: OpTable::default(),
            consts: ConstTable::default(),
            input_types,
            eval,
            fold_limit,
            conflicts: Vec::new(),
            folds: 0,
        }
    }

    /// The summary of a constant.
    pub fn summary(&self, k: u32) -> &ConstSummary {
        self.consts.summary(k)
    }
}

/// Infers the output types of `op` over operand classes `children` (the first `n_inputs` of them).
fn infer_op(
    eg: &EG,
    op: &Op,
    children: &[Id],
    n_inputs: usize,
    n_outputs: usize,
) -> Option<Vec<Type>> {
    let mut g = Graph::new("scratch");
    let mut inputs = Vec::with_capacity(n_inputs);
    for &c in children.iter().take(n_inputs) {
        let d = &eg[c].data;
        if !d.known {
            return None;
        }
        if d.types.is_empty() {
            inputs.push(None);
            continue;
        }
        let v = match d.konst {
            Some(k) => g.add_const("", eg.analysis.consts.get(k).clone()),
            None => g.add_value("", d.types.first()?.clone()),
        };
        inputs.push(Some(v));
    }
    let cx = InferCtx::new(&g, "", op, &inputs, n_outputs);
    let t = op.infer(&cx).ok()?;
    (t.len() == n_outputs).then_some(t)
}

impl<'a> Analysis<ENode> for CarveAnalysis<'a> {
    type Data = Data;

    fn make(eg: &mut EG<'a>, enode: &ENode, _id: Id) -> Data {
        let unknown = Data {
            types: Vec::new(),
            known: false,
            konst: None,
        };
        match &enode.head {
            Head::Absent => Data {
                types: Vec::new(),
                known: true,
                konst: None,
            },
            Head::Const(k) => Data {
                types: vec![Type::Tensor(eg.analysis.consts.get(*k).ty.clone())],
                known: true,
                konst: Some(*k),
            },
            Head::Input(i) => match eg.analysis.input_types.get(*i as usize) {
                Some(t) => Data {
                    types: vec![t.clone()],
                    known: true,
                    konst: None,
                },
                None => unknown,
            },
            Head::Proj(k) => {
                let Some(&t) = enode.children.first() else {
                    return unknown;
                };
                let d = &eg[t].data;
                match d.types.get(*k as usize) {
                    Some(ty) if d.known => Data {
                        types: vec![ty.clone()],
                        known: true,
                        konst: None,
                    },
                    _ => unknown,
                }
            }
            Head::Op(i) => {
                let e = eg.analysis.ops.get(*i);
                match infer_op(eg, &e.op, &enode.children, e.n_inputs, e.n_outputs) {
                    Some(types) => Data {
                        types,
                        known: true,
                        konst: None,
                    },
                    None => unknown,
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        let mut da = false;
        let mut db = false;
        match (a.konst, b.konst) {
            (None, Some(_)) => {
                a.konst = b.konst;
                da = true;
            }
            (Some(_), None) => db = true,
            _ => {}
        }
        match (a.known, b.known) {
            (_, false) => db |= a.known,
            (false, true) => {
                a.types = b.types;
                a.known = true;
                da = true;
            }
            (true, true) => {
                if a.types.len() != b.types.len()
                    || a.types.iter().zip(&b.types).any(|(x, y)| !compatible(x, y))
                {
                    let msg = format!(
                        "merged classes disagree on types: {:?} vs {:?}",
                        a.types, b.types
                    );
                    self.conflicts.push(msg);
                } else {
                    let merged: Vec<Type> = a
                        .types
                        .iter()
                        .zip(&b.types)
                        .map(|(x, y)| refine(x, y))
                        .collect();
                    da |= merged != a.types;
                    db |= merged != b.types;
                    a.types = merged;
                }
            }
        }
        DidMerge(da, db)
    }

    fn modify(eg: &mut EG<'a>, id: Id) {
        if eg[id].data.konst.is_some() || !eg[id].data.known {
            return;
        }
        let nodes: Vec<ENode> = eg[id].nodes.clone();
        for n in nodes {
            if let Some(outs) = fold_node(eg, &n, id) {
                eg.analysis.folds += 1;
                if eg.analysis.ops_n_outputs(&n) == Some(1) {
                    for o in outs {
                        let k = eg.analysis.consts.intern(o);
                        let c = eg.add(ENode::leaf(Head::Const(k)));
                        eg.union(id, c);
                    }
                } else {
                    for (j, o) in outs.into_iter().enumerate() {
                        let k = eg.analysis.consts.intern(o);
                        let c = eg.add(ENode::leaf(Head::Const(k)));
                        let p = eg.add(ENode {
                            head: Head::Proj(j as u32),
                            children: vec![id],
                        });
                        eg.union(p, c);
                    }
                }
                return;
            }
        }
    }
}

impl CarveAnalysis<'_> {
    fn ops_n_outputs(&self, n: &ENode) -> Option<usize> {
        match n.head {
            Head::Op(i) => Some(self.ops.get(i).n_outputs),
            _ => None,
        }
    }
}

/// The constant results of `n` if it can be folded.
fn fold_node(eg: &EG, n: &ENode, id: Id) -> Option<Vec<Constant>> {
    let Head::Op(i) = n.head else {
        return None;
    };
    let e = eg.analysis.ops.get(i);
    if e.opaque || e.n_inputs != n.children.len() {
        return None;
    }
    // `shape` / `size` of a statically shaped value need no evaluation.
    let first = n.children.first().and_then(|&c| eg[c].data.types.first());
    if let Some(c) = crate::fold::fold_shape_op(&e.op, first) {
        return Some(vec![c]);
    }
    let eval = eg.analysis.eval?;
    let mut ins: Vec<Option<&Constant>> = Vec::with_capacity(n.children.len());
    let mut in_elems = 0u64;
    for &c in &n.children {
        let d = &eg[c].data;
        if d.types.is_empty() {
            ins.push(None);
            continue;
        }
        let k = d.konst?;
        let c = eg.analysis.consts.get(k);
        if !matches!(
            c.data,
            carve_ir::ConstData::Bytes(_) | carve_ir::ConstData::Strings(_)
        ) {
            return None;
        }
        in_elems += c.num_elements();
        ins.push(Some(c));
    }
    // Size bound from the class's (already inferred) result types.
    let mut out_elems = 0u64;
    for t in &eg[id].data.types {
        let t = t.as_tensor()?;
        out_elems += t.shape.as_ref()?.num_elements()?;
    }
    if out_elems > eg.analysis.fold_limit && out_elems > in_elems {
        return None;
    }
    let outs = eval.eval(&e.op, &ins, e.n_outputs)?;
    (outs.len() == e.n_outputs).then_some(outs)
}
