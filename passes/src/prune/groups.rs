//! Dependency groups: which channels must be removed together, built from each op's
//! [`ChannelMap`] alone (no op names).
//!
//! Every index of every axis of known extent of every tensor value is an element; each node's channel
//! map joins elements (a tied space joins index `c` of each listed axis, `concat`/`split` join an
//! input's `c` with the output's offset index, a [`carve_ir::ops::BlockMap`] joins `c` with a block).
//! The joined classes are the [`Channel`]s: removing one removes every element in it, and nothing else
//! has to change. An element is blocked when removing it cannot be expressed: it belongs to a graph
//! input or output, to an operand of an opaque op (or a grouped conv, not handled yet), to an axis its
//! node's map does not list (a conv's kernel window), to a value a subgraph captures, or it meets a dim
//! that is not concrete. A channel with a blocked element is blocked.
//!
//! A [`Group`] is a connected set of value axes (a conv's output channels, the residual stream they
//! are added to, the next convs' input channels): the unit a pruning policy ranks channels within.
//! Only groups that hold a constant weight axis are reported; the rest (batch, spatial axes) are not
//! channels anyone prunes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use carve_ir::ops::{AxisRef, ChannelMap, NodeTypes, Operand, Sizes};
use carve_ir::{Graph, NodeId, Op, Type, ValueId};

/// One axis of one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Site {
    /// The value.
    pub value: ValueId,
    /// The axis.
    pub axis: usize,
}

/// What a constant axis is to the node that reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// A weight (another axis of extent > 1) axis tied to the node's output: removing a channel removes a filter, a
    /// column. Pruning criteria score channels by these slices.
    Producer,
    /// A weight (another axis of extent > 1) axis tied only to inputs: the channel's incoming activations vanish (a
    /// conv's input channel, a matmul's row).
    Consumer,
    /// A per-channel parameter (no other axis of extent > 1: a bias, batch-norm statistics).
    Param,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
            Role::Param => "param",
        })
    }
}

/// A constant axis in a group, with the node that reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConstSite {
    /// The constant's axis.
    pub site: Site,
    /// The node reading the constant.
    pub node: NodeId,
    /// Input index of the constant at `node`.
    pub input: usize,
    /// Its role there.
    pub role: Role,
    /// For a consumer: the activation axis it contracts with (a conv's `x.1`, a matmul's `a.K`).
    pub data: Option<Site>,
}

/// A set of elements that are removed together (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Every element: a site and an index on it, sorted.
    pub members: Vec<(Site, u64)>,
    /// Why it cannot be removed, if it cannot.
    pub blocked: Option<String>,
}

impl Channel {
    /// The indices this channel holds on `site`.
    pub fn indices_on(&self, site: Site) -> impl Iterator<Item = u64> + '_ {
        self.members
            .iter()
            .filter(move |(s, _)| *s == site)
            .map(|&(_, i)| i)
    }
}

/// A connected set of value axes and the channels across them.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Every value axis in the group, sorted.
    pub sites: Vec<Site>,
    /// The channels, ordered by their first element.
    pub channels: Vec<Channel>,
    /// Constant axes read by nodes (weights, biases, parameters), sorted.
    pub consts: Vec<ConstSite>,
}

impl Group {
    /// Channels that may be removed.
    pub fn prunable(&self) -> impl Iterator<Item = (usize, &Channel)> {
        self.channels
            .iter()
            .enumerate()
            .filter(|(_, c)| c.blocked.is_none())
    }

    /// Constant axes of role `role`.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &ConstSite> {
        self.consts.iter().filter(move |c| c.role == role)
    }
}

/// The dependency groups of a graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Groups {
    /// Groups holding at least one constant weight axis, in order of their first value.
    pub groups: Vec<Group>,
}

/// Union-find over element indices.
struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.0[hi] = lo;
        }
    }
}

/// The element table being built.
struct Builder<'g> {
    g: &'g Graph,
    /// Per value, per axis: first element index and extent (`None`: extent not concrete).
    base: Vec<Vec<Option<(usize, u64)>>>,
    uf: UnionFind,
    blocked: Vec<Option<String>>,
    consts: BTreeSet<ConstSite>,
}

impl<'g> Builder<'g> {
    fn new(g: &'g Graph) -> Builder<'g> {
        let mut total = 0usize;
        let base = g
            .values
            .iter()
            .map(|v| match v.ty.as_tensor().and_then(|t| t.dims()) {
                Some(dims) => dims
                    .iter()
                    .map(|d| {
                        d.known().map(|n| {
                            let b = total;
                            total += n as usize;
                            (b, n)
                        })
                    })
                    .collect(),
                None => Vec::new(),
            })
            .collect();
        Builder {
            g,
            base,
            uf: UnionFind((0..total).collect()),
            blocked: vec![None; total],
            consts: BTreeSet::new(),
        }
    }

    fn site(&self, s: Site) -> Option<(usize, u64)> {
        self.base
            .get(s.value.index())?
            .get(s.axis)
            .copied()
            .flatten()
    }

    fn block_site(&mut self, s: Site, why: &dyn Fn() -> String) {
        if let Some((b, n)) = self.site(s) {
            for e in b..b + n as usize {
                if self.blocked[e].is_none() {
                    self.blocked[e] = Some(why());
                }
            }
        }
    }

    fn block_value(&mut self, v: ValueId, why: &dyn Fn() -> String) {
        for axis in 0..self.base[v.index()].len() {
            self.block_site(Site { value: v, axis }, why);
        }
    }

    /// Joins index `c` of every site; blocks them all when an extent is unknown or they differ.
    fn tie(&mut self, sites: &[Site], why: &dyn Fn() -> String) {
        if sites.is_empty() {
            return;
        }
        let dims: Vec<Option<(usize, u64)>> = sites.iter().map(|&s| self.site(s)).collect();
        let n0 = dims.first().copied().flatten().map(|d| d.1);
        if dims.iter().any(|d| d.map(|d| d.1) != n0 || d.is_none()) {
            let reason = || format!("{} (extent not concrete or unequal)", why());
            for &s in sites {
                self.block_site(s, &reason);
            }
            return;
        }
        let Some((b0, n)) = dims[0] else { return };
        for (b, _) in dims.iter().skip(1).flatten() {
            for c in 0..n as usize {
                self.uf.union(b0 + c, b + c);
            }
        }
    }

    fn node(&mut self, id: NodeId) {
        let g = self.g;
        let n = &g.nodes[id.index()];
        if matches!(n.op, Op::Constant(_)) {
            return;
        }
        let inputs: Vec<Option<&Type>> = n.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect();
        let outputs: Vec<Type> = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
        let t = NodeTypes {
            inputs: &inputs,
            outputs: &outputs,
            sizes: Sizes::EXACT,
        };
        let map = n.op.channels(&t);
        let what = format!("{} '{}'", n.op.name(), n.name);
        let value_of = |o: Operand| match o {
            Operand::Input(i) => n.inputs.get(i).copied().flatten(),
            Operand::Output(i) => n.outputs.get(i).copied(),
        };
        let site_of = |a: &AxisRef| {
            value_of(a.operand).map(|value| Site {
                value,
                axis: a.axis,
            })
        };
        let operands: Vec<Operand> = (0..n.inputs.len())
            .map(Operand::Input)
            .chain((0..n.outputs.len()).map(Operand::Output))
            .collect();
        let mut listed: BTreeSet<AxisRef> = BTreeSet::new();
        let tie_refs = |b: &mut Self, refs: &[AxisRef], listed: &mut BTreeSet<AxisRef>| {
            listed.extend(refs.iter().copied());
            let sites: Vec<Site> = refs.iter().filter_map(site_of).collect();
            b.tie(&sites, &|| format!("tied by {what}"));
        };
        let rank_of = |o: Operand| {
            value_of(o)
                .and_then(|v| g.ty(v).as_tensor())
                .and_then(|t| t.rank())
        };
        match &map {
            ChannelMap::Opaque => {}
            ChannelMap::Grouped { .. } => {}
            ChannelMap::Tied(spaces) => {
                for s in spaces {
                    tie_refs(self, s, &mut listed);
                    self.roles(id, s);
                }
            }
            ChannelMap::Blocks { tied, blocks } => {
                for s in tied {
                    tie_refs(self, s, &mut listed);
                }
                for bm in blocks {
                    let (Some(o), Some(f)) = (site_of(&bm.outer), site_of(&bm.flat)) else {
                        continue;
                    };
                    match (self.site(o), self.site(f)) {
                        (Some((bo, no)), Some((bf, nf))) if no * bm.inner == nf => {
                            listed.extend([bm.outer, bm.flat]);
                            for c in 0..no as usize {
                                for k in 0..bm.inner as usize {
                                    self.uf.union(bo + c, bf + c * bm.inner as usize + k);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            // A split whose sizes are an operand would need that operand rewritten: not yet.
            ChannelMap::Split { .. } if n.inputs.get(1).copied().flatten().is_some() => {}
            ChannelMap::Concat { axis } | ChannelMap::Split { axis } => {
                let split = matches!(map, ChannelMap::Split { .. });
                // The parts and the whole.
                let (parts, whole): (Vec<Operand>, Operand) = if split {
                    (
                        (0..n.outputs.len()).map(Operand::Output).collect(),
                        Operand::Input(0),
                    )
                } else {
                    (
                        (0..n.inputs.len()).map(Operand::Input).collect(),
                        Operand::Output(0),
                    )
                };
                let rank = rank_of(whole).unwrap_or(0);
                for a in (0..rank).filter(|a| a != axis) {
                    let refs: Vec<AxisRef> = parts
                        .iter()
                        .chain([&whole])
                        .filter(|&&o| value_of(o).is_some())
                        .map(|&operand| AxisRef { operand, axis: a })
                        .collect();
                    tie_refs(self, &refs, &mut listed);
                }
                let whole_ref = AxisRef {
                    operand: whole,
                    axis: *axis,
                };
                if let Some((bw, nw)) = site_of(&whole_ref).and_then(|s| self.site(s)) {
                    let mut off = 0usize;
                    let mut ok = true;
                    for &p in &parts {
                        let r = AxisRef {
                            operand: p,
                            axis: *axis,
                        };
                        match site_of(&r).and_then(|s| self.site(s)) {
                            Some((bp, np)) if off + np as usize <= nw as usize => {
                                listed.insert(r);
                                for c in 0..np as usize {
                                    self.uf.union(bp + c, bw + off + c);
                                }
                                off += np as usize;
                            }
                            _ => ok = false,
                        }
                    }
                    if ok && off == nw as usize {
                        listed.insert(whole_ref);
                    }
                }
            }
        }
        let reason = match &map {
            ChannelMap::Opaque => format!("opaque: {what}"),
            ChannelMap::Split { .. } if n.inputs.get(1).copied().flatten().is_some() => {
                format!("split sizes operand (not rewritten yet): {what}")
            }
            ChannelMap::Grouped { groups, .. } => {
                format!("grouped conv ({groups} groups, not pruned yet): {what}")
            }
            _ => format!("axis not channel-mapped by {what}"),
        };
        for o in operands {
            let Some(v) = value_of(o) else { continue };
            for axis in 0..self.base[v.index()].len() {
                if !listed.contains(&AxisRef { operand: o, axis }) {
                    self.block_site(Site { value: v, axis }, &|| reason.clone());
                }
            }
        }
        for sg in n.op.subgraphs() {
            for c in &sg.captures {
                self.block_value(c.outer, &|| format!("captured by a subgraph of {what}"));
            }
        }
    }

    /// Records the roles of the constant axes in one tied space of node `id`.
    fn roles(&mut self, id: NodeId, space: &[AxisRef]) {
        let n = &self.g.nodes[id.index()];
        let has_out = space
            .iter()
            .any(|a| matches!(a.operand, Operand::Output(_)));
        let data = space.iter().find_map(|a| match a.operand {
            Operand::Input(i) => {
                let v = n.inputs.get(i).copied().flatten()?;
                self.g.constant_of(v).is_none().then_some(Site {
                    value: v,
                    axis: a.axis,
                })
            }
            Operand::Output(_) => None,
        });
        for a in space {
            let Operand::Input(i) = a.operand else {
                continue;
            };
            let Some(v) = n.inputs.get(i).copied().flatten() else {
                continue;
            };
            let Some(c) = self.g.constant_of(v) else {
                continue;
            };
            // A weight has another axis of extent > 1; the rest ([1, C] biases, [C] statistics)
            // are per-channel parameters.
            let weight =
                c.ty.dims()
                    .is_some_and(|d| d.iter().filter(|d| d.known() != Some(1)).count() >= 2);
            let role = match (weight, has_out) {
                (false, _) => Role::Param,
                (true, true) => Role::Producer,
                (true, false) => Role::Consumer,
            };
            self.consts.insert(ConstSite {
                site: Site {
                    value: v,
                    axis: a.axis,
                },
                node: id,
                input: i,
                role,
                data: data.filter(|_| role == Role::Consumer),
            });
        }
    }
}

/// The dependency groups of `g` (see the module doc).
pub fn analyze(g: &Graph) -> Groups {
    let mut b = Builder::new(g);
    for &v in &g.inputs {
        let name = &g.value(v).name;
        b.block_value(v, &|| format!("graph input '{name}'"));
    }
    for &v in &g.outputs {
        let name = &g.value(v).name;
        b.block_value(v, &|| format!("graph output '{name}'"));
    }
    for i in 0..g.nodes.len() {
        b.node(NodeId(i as u32));
    }

    // Sites, numbered in value order; the class root of every element.
    let mut sites: Vec<(Site, usize, u64)> = Vec::new();
    for (v, axes) in b.base.iter().enumerate() {
        for (axis, d) in axes.iter().enumerate() {
            if let Some((base, n)) = d {
                let value = ValueId(v as u32);
                sites.push((Site { value, axis }, *base, *n));
            }
        }
    }
    let total = b.blocked.len();
    let roots: Vec<usize> = (0..total).map(|e| b.uf.find(e)).collect();
    // Sites sharing a class form one group.
    let mut site_uf = UnionFind((0..sites.len()).collect());
    let mut first_site: BTreeMap<usize, usize> = BTreeMap::new();
    for (si, &(_, base, n)) in sites.iter().enumerate() {
        for &root in &roots[base..base + n as usize] {
            let s0 = *first_site.entry(root).or_insert(si);
            site_uf.union(s0, si);
        }
    }
    let site_index: BTreeMap<Site, usize> =
        sites.iter().enumerate().map(|(i, s)| (s.0, i)).collect();
    let mut by_group: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for si in 0..sites.len() {
        by_group.entry(site_uf.find(si)).or_default().push(si);
    }
    let mut consts_by_group: BTreeMap<usize, Vec<ConstSite>> = BTreeMap::new();
    for c in &b.consts {
        if let Some(&si) = site_index.get(&c.site) {
            consts_by_group
                .entry(site_uf.find(si))
                .or_default()
                .push(c.clone());
        }
    }
    let mut groups = Vec::new();
    for (root, members) in by_group {
        let consts = consts_by_group.remove(&root).unwrap_or_default();
        if !consts.iter().any(|c| c.role != Role::Param) {
            continue;
        }
        let mut channels: BTreeMap<usize, Channel> = BTreeMap::new();
        for &si in &members {
            let (site, base, n) = sites[si];
            for c in 0..n {
                let e = base + c as usize;
                let ch = channels.entry(roots[e]).or_insert_with(|| Channel {
                    members: Vec::new(),
                    blocked: None,
                });
                ch.members.push((site, c));
                if ch.blocked.is_none() {
                    ch.blocked.clone_from(&b.blocked[e]);
                }
            }
        }
        let mut channels: Vec<Channel> = channels.into_values().collect();
        for c in &mut channels {
            c.members.sort();
        }
        channels.sort_by(|a, b| a.members.first().cmp(&b.members.first()));
        groups.push(Group {
            sites: members.iter().map(|&si| sites[si].0).collect(),
            channels,
            consts,
        });
    }
    Groups { groups }
}

impl Groups {
    /// The deterministic text form: per group its channel counts, its constant axes by role and
    /// why channels are blocked.
    pub fn to_text(&self, g: &Graph) -> String {
        let mut out = String::new();
        let name = |v: ValueId| g.value(v).name.clone();
        for (i, grp) in self.groups.iter().enumerate() {
            let prunable = grp.prunable().count();
            let _ = writeln!(
                out,
                "group {i}: {} channels, {prunable} prunable, {} value axes",
                grp.channels.len(),
                grp.sites.len()
            );
            for role in [Role::Producer, Role::Consumer, Role::Param] {
                let list: Vec<String> = grp
                    .with_role(role)
                    .map(|c| {
                        let node = &g.nodes[c.node.index()];
                        format!(
                            "{}.{} ({} '{}')",
                            name(c.site.value),
                            c.site.axis,
                            node.op.name(),
                            node.name
                        )
                    })
                    .collect();
                if !list.is_empty() {
                    let _ = writeln!(out, "  {role}s: {}", list.join(", "));
                }
            }
            let mut why: BTreeMap<&str, usize> = BTreeMap::new();
            for c in &grp.channels {
                if let Some(r) = &c.blocked {
                    *why.entry(r.as_str()).or_default() += 1;
                }
            }
            for (r, n) in why {
                let _ = writeln!(out, "  blocked {n}: {r}");
            }
        }
        out
    }
}
