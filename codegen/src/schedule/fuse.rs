//! Fusion of elementwise chains: a pre-pass over the prepared graph that groups connected f32
//! elementwise nodes into one kernel (one pass over memory for `add → mul → relu`).
//!
//! A group has a *root* (its most downstream node, which gets the kernel) and *absorbed* nodes, whose
//! outputs are never materialized: each absorbed node's output has exactly one use (by a node of the
//! group), is not a graph output or subgraph capture, and has the root's output shape (so nothing is
//! recomputed per broadcast element). The group computes one [`Expr`] over its *leaves*, the distinct
//! external values it reads (each broadcast to the root's shape by its own strides). Nodes are visited
//! from the last to the first, so roots are maximal.
//!
//! The schedule ([`crate::schedule::Schedule::build`]) gives absorbed nodes no step and no memory, plans the root as
//! reading the leaves (so their liveness extends to the root) and lowers the root with
//! [`crate::lower::elementwise::lower_group`].

use carve_ir::{Graph, Op, ValueId};

use crate::lower::NodeInfo;
use crate::lower::elementwise::{Expr, node_expr};
use crate::prepare::concrete_shape;
use crate::target::Target;

/// Most leaves a group may read (register pressure in the inner loop).
const MAX_LEAVES: usize = 8;

/// Most operations in a group's expression.
const MAX_OPS: usize = 48;

/// A fused group.
#[derive(Debug, Clone)]
pub struct Group {
    /// The root node (index into `g.nodes`).
    pub root: usize,
    /// Absorbed nodes (indices, ascending).
    pub members: Vec<usize>,
    /// External values read, `Expr::Leaf(j)` = `leaves[j]`.
    pub leaves: Vec<ValueId>,
    /// What the root computes.
    pub expr: Expr,
}

/// A node's part in fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not fused: lowered on its own.
    Single,
    /// Root of group `k`.
    Root(usize),
    /// Computed inside another node's kernel; no step, no memory.
    Absorbed,
}

/// The fusion decision for a graph.
#[derive(Debug, Clone)]
pub struct Fusion {
    /// The groups.
    pub groups: Vec<Group>,
    /// Per node.
    pub role: Vec<Role>,
}

impl Fusion {
    /// The group rooted at node `i`, if any.
    pub fn group_at(&self, i: usize) -> Option<&Group> {
        match self.role.get(i) {
            Some(Role::Root(k)) => self.groups.get(*k),
            _ => None,
        }
    }

    /// True if node `i` is computed inside another node's kernel.
    pub fn is_absorbed(&self, i: usize) -> bool {
        self.role.get(i) == Some(&Role::Absorbed)
    }

    /// Number of absorbed nodes.
    pub fn absorbed(&self) -> usize {
        self.role.iter().filter(|r| **r == Role::Absorbed).count()
    }

    /// The graph as the memory planner must see it: each root reads its group's leaves, absorbed nodes
    /// read nothing (their outputs get no buffer; nothing else reads them).
    pub fn plan_graph(&self, g: &Graph) -> Graph {
        let mut pg = g.clone();
        for gr in &self.groups {
            pg.nodes[gr.root].inputs = gr.leaves.iter().map(|&v| Some(v)).collect();
            for &m in &gr.members {
                pg.nodes[m].inputs.clear();
            }
        }
        pg
    }
}

/// Decides the fused groups of `g`.
pub fn fuse(g: &Graph, target: &Target) -> Fusion {
    let n = g.nodes.len();
    let nv = g.values.len();
    let mut role = vec![Role::Single; n];
    let mut groups = Vec::new();
    // Uses of every value (node inputs, subgraph captures); graph outputs are pinned.
    let mut uses = vec![0usize; nv];
    let mut pinned = vec![false; nv];
    for node in &g.nodes {
        for v in node.inputs.iter().flatten() {
            uses[v.index()] += 1;
        }
        for sg in node.op.subgraphs() {
            for c in &sg.captures {
                if let Some(u) = uses.get_mut(c.outer.index()) {
                    *u += 1;
                }
                if let Some(p) = pinned.get_mut(c.outer.index()) {
                    *p = true;
                }
            }
        }
    }
    for &o in &g.outputs {
        pinned[o.index()] = true;
    }
    // Node index producing each value.
    let mut producer = vec![usize::MAX; nv];
    for (i, node) in g.nodes.iter().enumerate() {
        for &o in &node.outputs {
            producer[o.index()] = i;
        }
    }
    // Expressions of fusable nodes.
    let exprs: Vec<Option<Expr>> = g
        .nodes
        .iter()
        .map(|node| {
            if !matches!(node.op, Op::Elementwise(_)) || node.outputs.len() != 1 {
                return None;
            }
            let shape = concrete_shape(g, node.outputs[0])?;
            if shape.iter().product::<usize>() == 0 {
                return None;
            }
            let info = NodeInfo {
                graph: g,
                node,
                target,
            };
            node_expr(&info).ok()
        })
        .collect();
    for root in (0..n).rev() {
        if role[root] != Role::Single {
            continue;
        }
        let Some(root_expr) = &exprs[root] else {
            continue;
        };
        let out_shape = concrete_shape(g, g.nodes[root].outputs[0]);
        let mut b = Builder {
            g,
            exprs: &exprs,
            uses: &uses,
            pinned: &pinned,
            producer: &producer,
            out_shape,
            leaves: Vec::new(),
            members: Vec::new(),
            role: &mut role,
            ops: root_expr.size(),
        };
        let expr = b.build(root, root_expr);
        let (leaves, mut members) = (b.leaves, b.members);
        if members.is_empty() {
            continue;
        }
        members.sort_unstable();
        for &m in &members {
            role[m] = Role::Absorbed;
        }
        role[root] = Role::Root(groups.len());
        groups.push(Group {
            root,
            members,
            leaves,
            expr,
        });
    }
    Fusion { groups, role }
}

struct Builder<'a> {
    g: &'a Graph,
    exprs: &'a [Option<Expr>],
    uses: &'a [usize],
    pinned: &'a [bool],
    producer: &'a [usize],
    out_shape: Option<Vec<usize>>,
    leaves: Vec<ValueId>,
    members: Vec<usize>,
    role: &'a mut [Role],
    ops: usize,
}

impl Builder<'_> {
    /// The expression of node `i` (whose own expression is `e`) with producers absorbed where allowed.
    fn build(&mut self, i: usize, e: &Expr) -> Expr {
        let g = self.g;
        let exprs = self.exprs;
        let node = &g.nodes[i];
        e.substitute(&mut |k| {
            let Some(Some(v)) = node.inputs.get(k).copied() else {
                return Expr::Imm(f32::NAN);
            };
            if let Some(p) = self.absorbable(v) {
                // Claim it before recursing so a diamond cannot absorb it twice.
                self.members.push(p);
                self.role[p] = Role::Absorbed;
                if let Some(pe) = &exprs[p] {
                    self.ops += pe.size();
                    return self.build(p, pe);
                }
            }
            let j = match self.leaves.iter().position(|&l| l == v) {
                Some(j) => j,
                None => {
                    self.leaves.push(v);
                    self.leaves.len() - 1
                }
            };
            Expr::Leaf(j)
        })
    }

    /// The producer of `v` if it can be computed inside this group.
    fn absorbable(&self, v: ValueId) -> Option<usize> {
        let p = *self.producer.get(v.index())?;
        if p == usize::MAX || self.role[p] != Role::Single {
            return None;
        }
        let pe = self.exprs[p].as_ref()?;
        if self.uses[v.index()] != 1 || self.pinned[v.index()] {
            return None;
        }
        if concrete_shape(self.g, v) != self.out_shape {
            return None;
        }
        if self.ops + pe.size() > MAX_OPS {
            return None;
        }
        // Leaves after absorbing: at most all of p's inputs are new.
        let fresh = self.g.nodes[p]
            .inputs
            .iter()
            .flatten()
            .filter(|x| !self.leaves.contains(x))
            .count();
        if self.leaves.len() + fresh > MAX_LEAVES {
            return None;
        }
        Some(p)
    }
}
