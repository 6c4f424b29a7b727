//! IR ↔ e-graph: [`to_egraph`] adds every node of a top-level graph (types from the IR refine the
//! inferred class types); [`to_graph`] rebuilds a graph from one e-node chosen per reachable class,
//! emitting nodes in a deterministic depth-first post-order from the outputs (which is also where dead
//! code disappears). Source names of values and nodes are kept where a class came from the input graph.

use std::collections::BTreeMap;

use carve_ir::{Graph, Node, Op, Type, ValueId};
use egg::Id;

use super::analysis::EG;
use super::lang::{ENode, Head, OpEntry};
use crate::PassError;

/// The e-graph of a graph and where its outputs are.
pub struct Imported {
    /// E-class of each graph output, in order.
    pub roots: Vec<Id>,
    /// Source value and node names by class (first seen).
    pub names: BTreeMap<Id, (String, String)>,
}

/// Adds the top-level graph `g` to `eg`.
pub fn to_egraph(g: &Graph, eg: &mut EG) -> Result<Imported, PassError> {
    let mut map: Vec<Option<Id>> = vec![None; g.values.len()];
    let mut names = BTreeMap::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        let id = eg.add(ENode::leaf(Head::Input(i as u32)));
        map[v.index()] = Some(id);
    }
    let absent = eg.add(ENode::leaf(Head::Absent));
    let get = |map: &[Option<Id>], v: ValueId| -> Result<Id, PassError> {
        map.get(v.index()).copied().flatten().ok_or_else(|| {
            PassError::Convert(format!("value #{} is used before it is defined", v.0))
        })
    };
    for n in &g.nodes {
        let id = match &n.op {
            Op::Constant(c) => {
                let k = eg.analysis.consts.intern(c.clone());
                eg.add(ENode::leaf(Head::Const(k)))
            }
            op => {
                let mut children = Vec::with_capacity(n.inputs.len());
                for v in &n.inputs {
                    children.push(match v {
                        Some(v) => get(&map, *v)?,
                        None => absent,
                    });
                }
                let mut captures: Vec<ValueId> = Vec::new();
                for sg in op.subgraphs() {
                    for c in &sg.captures {
                        if !captures.contains(&c.outer) {
                            captures.push(c.outer);
                        }
                    }
                }
                let k = if captures.is_empty() {
                    eg.analysis
                        .ops
                        .intern(op.clone(), n.outputs.len(), n.inputs.len())
                } else {
                    for &c in &captures {
                        children.push(get(&map, c)?);
                    }
                    eg.analysis.ops.push(OpEntry {
                        op: op.clone(),
                        n_outputs: n.outputs.len(),
                        n_inputs: n.inputs.len(),
                        captures,
                        opaque: true,
                    })
                };
                eg.add(ENode {
                    head: Head::Op(k),
                    children,
                })
            }
        };
        if n.outputs.len() == 1 {
            refine_class(eg, id, &[g.ty(n.outputs[0]).clone()]);
            map[n.outputs[0].index()] = Some(id);
            names
                .entry(id)
                .or_insert_with(|| (g.value(n.outputs[0]).name.clone(), n.name.clone()));
        } else {
            let tys: Vec<Type> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
            refine_class(eg, id, &tys);
            for (k, &o) in n.outputs.iter().enumerate() {
                let p = eg.add(ENode {
                    head: Head::Proj(k as u32),
                    children: vec![id],
                });
                refine_class(eg, p, &[g.ty(o).clone()]);
                map[o.index()] = Some(p);
                names
                    .entry(p)
                    .or_insert_with(|| (g.value(o).name.clone(), n.name.clone()));
            }
            names
                .entry(id)
                .or_insert_with(|| (String::new(), n.name.clone()));
        }
    }
    let roots = g
        .outputs
        .iter()
        .map(|&o| get(&map, o))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Imported { roots, names })
}

/// Makes the class types at least as precise as the IR's stored types.
fn refine_class(eg: &mut EG, id: Id, tys: &[Type]) {
    let d = &mut eg[id].data;
    if !d.known || d.types.len() != tys.len() {
        d.types = tys.to_vec();
        d.known = true;
        return;
    }
    for (a, b) in d.types.iter_mut().zip(tys) {
        if carve_ir::infer::compatible(a, b) {
            *a = carve_ir::infer::refine(a, b);
        } else {
            *a = b.clone();
        }
    }
}

/// Builds the graph computing `roots` with `choice[class]` as the e-node of each reachable class.
/// `template` supplies the graph name, inputs and output names. Fails on a cycle in the choice.
pub fn to_graph(
    eg: &EG,
    choice: &BTreeMap<Id, ENode>,
    roots: &[Id],
    template: &Graph,
    names: &BTreeMap<Id, (String, String)>,
) -> Result<Graph, PassError> {
    let mut g = Graph::new(template.name.clone());
    let mut inputs = Vec::new();
    for &v in &template.inputs {
        let val = template.value(v);
        inputs.push(g.add_input(val.name.clone(), val.ty.clone()));
    }
    let mut b = Builder {
        eg,
        choice,
        names,
        inputs,
        done: BTreeMap::new(),
        state: BTreeMap::new(),
    };
    let mut outs = Vec::new();
    for (i, &r) in roots.iter().enumerate() {
        let v = b.value(&mut g, r)?;
        let v = v.ok_or_else(|| PassError::Convert(format!("output {i} is an absent value")))?;
        outs.push(v);
    }
    // Every output value gets its own node carrying the output's source name.
    let mut used: Vec<ValueId> = Vec::new();
    for (i, v) in outs.iter_mut().enumerate() {
        let want = template.value(template.outputs[i]).name.clone();
        let is_input = g.inputs.contains(v);
        if is_input || used.contains(v) {
            let ty = g.ty(*v).clone();
            let o = g.add_value(want.clone(), ty);
            g.push_node(Node {
                name: want,
                op: carve_ir::ops::movement::Identity {}.into(),
                inputs: vec![Some(*v)],
                outputs: vec![o],
            });
            *v = o;
        } else {
            g.values[v.index()].name = want;
        }
        used.push(*v);
    }
    g.outputs = outs;
    Ok(g)
}

struct Builder<'e, 'a> {
    eg: &'e EG<'a>,
    choice: &'e BTreeMap<Id, ENode>,
    names: &'e BTreeMap<Id, (String, String)>,
    inputs: Vec<ValueId>,
    /// Emitted classes: their values (one per result; empty for `Absent`).
    done: BTreeMap<Id, Vec<Option<ValueId>>>,
    /// Classes on the DFS stack.
    state: BTreeMap<Id, ()>,
}

impl Builder<'_, '_> {
    fn value(&mut self, g: &mut Graph, id: Id) -> Result<Option<ValueId>, PassError> {
        let vals = self.emit(g, id)?;
        Ok(vals.first().copied().flatten())
    }

    fn emit(&mut self, g: &mut Graph, id: Id) -> Result<Vec<Option<ValueId>>, PassError> {
        let id = self.eg.find(id);
        if let Some(v) = self.done.get(&id) {
            return Ok(v.clone());
        }
        if self.state.insert(id, ()).is_some() {
            return Err(PassError::Convert(format!(
                "the extracted graph has a cycle through class {id}"
            )));
        }
        let node = self
            .choice
            .get(&id)
            .ok_or_else(|| PassError::Convert(format!("no e-node chosen for class {id}")))?
            .clone();
        let (vname, nname) = self.names.get(&id).cloned().unwrap_or_default();
        let types = &self.eg[id].data.types;
        let vals: Vec<Option<ValueId>> = match &node.head {
            Head::Absent => vec![None],
            Head::Input(i) => vec![Some(*self.inputs.get(*i as usize).ok_or_else(|| {
                PassError::Convert(format!("graph input {i} does not exist"))
            })?)],
            Head::Const(k) => {
                let c = self.eg.analysis.consts.get(*k).clone();
                vec![Some(g.add_const(vname, c))]
            }
            Head::Proj(k) => {
                let t =
                    node.children.first().copied().ok_or_else(|| {
                        PassError::Convert("projection without operand".to_string())
                    })?;
                let tuple = self.emit(g, t)?;
                vec![tuple.get(*k as usize).copied().flatten()]
            }
            Head::Op(i) => {
                let e = self.eg.analysis.ops.get(*i);
                let mut ins = Vec::with_capacity(node.children.len());
                for &c in &node.children {
                    ins.push(self.value(g, c)?);
                }
                let mut op = e.op.clone();
                if !e.captures.is_empty() {
                    // Captured outer values: remap to the values emitted for the extra children.
                    let outer: Vec<Option<ValueId>> = ins.split_off(e.n_inputs);
                    for sg in op.subgraphs_mut() {
                        for c in &mut sg.captures {
                            let pos = e.captures.iter().position(|&o| o == c.outer);
                            let new = pos.and_then(|p| outer.get(p).copied().flatten());
                            c.outer = new.ok_or_else(|| {
                                PassError::Convert("a subgraph capture was lost".to_string())
                            })?;
                        }
                    }
                }
                let n_out = e.n_outputs;
                let mut outputs = Vec::with_capacity(n_out);
                for k in 0..n_out {
                    let ty = types.get(k).cloned().ok_or_else(|| {
                        PassError::Convert(format!("class {id} has no type for result {k}"))
                    })?;
                    let name = if n_out == 1 {
                        vname.clone()
                    } else {
                        String::new()
                    };
                    outputs.push(g.add_value(name, ty));
                }
                g.push_node(Node {
                    name: nname,
                    op,
                    inputs: ins,
                    outputs: outputs.clone(),
                });
                outputs.into_iter().map(Some).collect()
            }
        };
        self.state.remove(&id);
        self.done.insert(id, vals.clone());
        Ok(vals)
    }
}
