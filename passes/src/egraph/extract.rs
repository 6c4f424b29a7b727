//! DAG-aware extraction: picks one e-node per reachable e-class so that the total cost of the resulting
//! DAG — every class paid for once, however many users it has — is small, and the result is acyclic.
//!
//! Method (greedy DAG extraction, as in extraction-gym's `faster-greedy-dag`): each class keeps its best
//! e-node together with the *set* of classes that choice depends on, each with its own cost. An e-node's
//! cost is its own cost plus the sum over the **union** of its children's sets, so a value shared by two
//! operands is counted once (egg's tree extractor would count it twice and favour recomputation). An
//! e-node whose union contains its own class would close a cycle and is never chosen. Classes are
//! processed from a worklist seeded with the leaves and re-queued when a child improves, until a fixed
//! point. All iteration is over ordered maps and sorted class ids, so the choice is deterministic.
//! A local-search improvement step follows (see [`improve`]): it re-evaluates the exact DAG cost when
//! swapping single choices, which fixes the greedy pass's blindness to sharing across different roots.
//! The builder ([`super::convert::to_graph`]) re-checks acyclicity of the final choice; the caller falls
//! back to the unoptimized graph if a (theoretically possible, stale-set) cycle were found.

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use carve_ir::Type;
use egg::Id;

use super::analysis::EG;
use super::lang::{ENode, Head};
use crate::cost::{TargetParams, cycles};

/// The cost of one e-node alone (not counting its operands).
pub fn node_cost(eg: &EG, class: Id, n: &ENode, t: &TargetParams) -> f64 {
    let Head::Op(i) = n.head else {
        return 0.0;
    };
    let e = eg.analysis.ops.get(i);
    let ins: Vec<Option<&Type>> = n
        .children
        .iter()
        .take(e.n_inputs)
        .map(|&c| eg[c].data.types.first())
        .collect();
    cycles(t, &e.op, &ins, &eg[class].data.types)
}

struct Best {
    total: f64,
    node: usize,
    /// The classes the choice depends on (itself included) with their own costs, sorted by class id.
    set: Rc<Vec<(Id, f64)>>,
}

/// The chosen e-node per reachable class and the DAG's total cost.
pub struct Extraction {
    /// One e-node per class reachable from the roots.
    pub choice: BTreeMap<Id, ENode>,
    /// Total estimated cycles of the chosen DAG.
    pub cost: f64,
}

/// Merges `b` into the sorted set `a`; for a class in both, `a`'s cost is kept.
fn merge_into(a: &[(Id, f64)], b: &[(Id, f64)]) -> Vec<(Id, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Extracts a low-cost acyclic DAG computing `roots`.
pub fn extract(eg: &EG, roots: &[Id], t: &TargetParams) -> Extraction {
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    // Node costs and parent lists (dense: class ids index them).
    let n_ids = eg.nodes().len();
    let mut costs: BTreeMap<Id, Vec<f64>> = BTreeMap::new();
    let mut parents: Vec<Vec<(Id, usize)>> = vec![Vec::new(); n_ids];
    let mut children: Vec<Vec<Vec<Id>>> = vec![Vec::new(); n_ids];
    let mut queue: VecDeque<(Id, usize)> = VecDeque::new();
    let mut queued: Vec<Vec<bool>> = vec![Vec::new(); n_ids];
    for &id in &ids {
        let c = &eg[id];
        costs.insert(
            id,
            c.nodes.iter().map(|n| node_cost(eg, id, n, t)).collect(),
        );
        queued[usize::from(id)] = vec![false; c.nodes.len()];
        for (k, n) in c.nodes.iter().enumerate() {
            if n.children.is_empty() {
                queue.push_back((id, k));
                queued[usize::from(id)][k] = true;
            }
            for &ch in &n.children {
                parents[usize::from(eg.find(ch))].push((id, k));
            }
        }
        children[usize::from(id)] = c
            .nodes
            .iter()
            .map(|n| n.children.iter().map(|&ch| eg.find(ch)).collect())
            .collect();
    }
    let own_costs: Vec<&[f64]> = {
        let mut v: Vec<&[f64]> = vec![&[]; n_ids];
        for (&id, c) in &costs {
            v[usize::from(id)] = c;
        }
        v
    };
    let mut best: Vec<Option<Best>> = (0..n_ids).map(|_| None).collect();
    while let Some((id, k)) = queue.pop_front() {
        let i = usize::from(id);
        queued[i][k] = false;
        let own = own_costs[i].get(k).copied().unwrap_or(0.0);
        // Union of the children's dependency sets, starting from the largest (whose costs win).
        let mut kids: Vec<&Best> = Vec::with_capacity(children[i][k].len());
        let mut ready = true;
        for &ch in &children[i][k] {
            match &best[usize::from(ch)] {
                Some(b) => kids.push(b),
                None => {
                    ready = false;
                    break;
                }
            }
        }
        if !ready {
            continue;
        }
        let set: Rc<Vec<(Id, f64)>> = {
            let mut largest: Option<&Best> = None;
            for b in &kids {
                if largest.is_none_or(|l| b.set.len() > l.set.len()) {
                    largest = Some(b);
                }
            }
            let mut m: Vec<(Id, f64)> = largest.map(|b| (*b.set).clone()).unwrap_or_default();
            for b in &kids {
                // Merging the largest set (or another class's identical set) into itself is a no-op.
                if !largest.is_some_and(|l| Rc::ptr_eq(&l.set, &b.set)) {
                    m = merge_into(&m, &b.set);
                }
            }
            match m.binary_search_by(|e| e.0.cmp(&id)) {
                Ok(_) => continue, // choosing this node would make the class depend on itself
                Err(p) => m.insert(p, (id, own)),
            }
            Rc::new(m)
        };
        let total: f64 = set.iter().map(|e| e.1).sum();
        let better = match &best[i] {
            None => true,
            Some(b) => total < b.total * (1.0 - 1e-12) - 1e-9,
        };
        if better {
            best[i] = Some(Best {
                total,
                node: k,
                set,
            });
            for &(p, pk) in &parents[i] {
                let q = &mut queued[usize::from(p)][pk];
                if !*q {
                    *q = true;
                    queue.push_back((p, pk));
                }
            }
        }
    }
    let mut pick: BTreeMap<Id, usize> = best
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.as_ref().map(|b| (Id::from(i), b.node)))
        .collect();
    improve(eg, roots, &mut pick, &costs);
    // Walk the choice from the roots.
    let mut choice = BTreeMap::new();
    let mut stack: Vec<Id> = roots.iter().map(|&r| eg.find(r)).collect();
    while let Some(id) = stack.pop() {
        if choice.contains_key(&id) {
            continue;
        }
        let Some(&k) = pick.get(&id) else { continue };
        let n = eg[id].nodes[k].clone();
        for &ch in &n.children {
            stack.push(eg.find(ch));
        }
        choice.insert(id, n);
    }
    let cost = choice.iter().map(|(&id, n)| node_cost(eg, id, n, t)).sum();
    Extraction { choice, cost }
}

/// The improvement step's view of the e-graph: dense tables indexed by class id (egg's class lookup
/// is a hash map; `improve` evaluates the whole DAG once per alternative tried).
struct Dense {
    /// The chosen e-node per class (`None`: no choice).
    pick: Vec<Option<usize>>,
    /// Own cost of every e-node, per class.
    costs: Vec<Vec<f64>>,
    /// Canonical children of every e-node, per class.
    children: Vec<Vec<Vec<Id>>>,
    /// Canonical roots.
    roots: Vec<Id>,
    /// DFS state of the last [`Dense::cost`]: 0 = unvisited, 1 = on the stack, 2 = done (reachable).
    state: Vec<u8>,
}

impl Dense {
    fn new(
        eg: &EG,
        roots: &[Id],
        pick: &BTreeMap<Id, usize>,
        costs: &BTreeMap<Id, Vec<f64>>,
    ) -> Self {
        let n = eg.nodes().len();
        let mut d = Dense {
            pick: vec![None; n],
            costs: vec![Vec::new(); n],
            children: vec![Vec::new(); n],
            roots: roots.iter().map(|&r| eg.find(r)).collect(),
            state: vec![0; n],
        };
        for (&id, &k) in pick {
            d.pick[usize::from(id)] = Some(k);
        }
        for (&id, c) in costs {
            d.costs[usize::from(id)] = c.clone();
        }
        for c in eg.classes() {
            d.children[usize::from(c.id)] = c
                .nodes
                .iter()
                .map(|n| n.children.iter().map(|&ch| eg.find(ch)).collect())
                .collect();
        }
        d
    }

    /// Exact cost of the DAG reachable from the roots under the current picks, or `None` if it has a
    /// cycle or a class without a choice. On success, `state[id] == 2` exactly for reachable classes.
    fn cost(&mut self) -> Option<f64> {
        self.state.fill(0);
        let mut total = 0.0;
        let mut stack: Vec<(Id, bool)> = self.roots.iter().map(|&r| (r, false)).collect();
        while let Some((id, exit)) = stack.pop() {
            let i = usize::from(id);
            if exit {
                self.state[i] = 2;
                continue;
            }
            match self.state.get(i)? {
                2 => continue,
                1 => return None,
                _ => {}
            }
            self.state[i] = 1;
            let k = (*self.pick.get(i)?)?;
            total += self.costs.get(i)?.get(k)?;
            stack.push((id, true));
            for &ch in self.children.get(i)?.get(k)? {
                match self.state.get(usize::from(ch))? {
                    1 => return None,
                    0 => stack.push((ch, false)),
                    _ => {}
                }
            }
        }
        Some(total)
    }
}

/// Improvement step after the greedy pass: for every reachable class with alternatives, try each other
/// e-node and keep it when the exact DAG cost (shared classes once, across all roots) goes down and the
/// DAG stays acyclic. This catches what per-class greedy choices miss, e.g. fusing an activation into a
/// convolution whose plain result is also needed elsewhere (which would compute the convolution twice).
/// A class the current DAG does not reach is skipped: changing its choice leaves the cost unchanged, so
/// it would never be kept.
fn improve(eg: &EG, roots: &[Id], pick: &mut BTreeMap<Id, usize>, costs: &BTreeMap<Id, Vec<f64>>) {
    let mut d = Dense::new(eg, roots, pick, costs);
    let Some(mut current) = d.cost() else {
        return;
    };
    let mut reach: Vec<bool> = d.state.iter().map(|&s| s == 2).collect();
    for _ in 0..3 {
        let mut improved = false;
        let candidates: Vec<Id> = pick
            .keys()
            .copied()
            .filter(|&id| eg[id].nodes.len() > 1)
            .collect();
        for id in candidates {
            let i = usize::from(id);
            let Some(orig) = d.pick[i] else { continue };
            for k in 0..d.children[i].len() {
                if k == orig || !reach[i] {
                    continue;
                }
                let was = d.pick[i].replace(k);
                match d.cost() {
                    Some(c) if c < current * (1.0 - 1e-12) - 1e-9 => {
                        current = c;
                        improved = true;
                        pick.insert(id, k);
                        for (r, &s) in reach.iter_mut().zip(&d.state) {
                            *r = s == 2;
                        }
                    }
                    _ => d.pick[i] = was,
                }
            }
        }
        if !improved {
            break;
        }
    }
}
