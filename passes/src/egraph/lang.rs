//! The e-graph language over carve's IR: an e-node is a [`Head`] (an interned op with all its attributes,
//! an interned constant, a graph input, an output projection or an absent optional input) plus children.
//!
//! Attributes are part of the discriminant: two `transpose` nodes with different `perm` are different
//! heads, so hash-consing shares only truly identical computations (common-subexpression elimination is
//! free). Ops are interned in an [`OpTable`] by their name, printed attributes and output count; ops that
//! must never be shared (random number generators, ops holding subgraphs) get a fresh entry each.
//!
//! Multi-output ops: an op with `n_outputs != 1` makes a *tuple* e-class; each result is a separate
//! e-class `Proj(k)` over it. Single-output ops are their value directly.

use std::collections::HashMap;

use carve_ir::{Constant, Op, ValueId};
use egg::{Id, Language};

/// What an e-node computes, without its children.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Head {
    /// An op from the [`OpTable`] (attributes included).
    Op(u32),
    /// A constant from the [`ConstTable`].
    Const(u32),
    /// Graph input number `k`.
    Input(u32),
    /// Result `k` of the multi-output op in the only child.
    Proj(u32),
    /// An omitted optional input.
    Absent,
}

/// An e-node: a head and its operand e-classes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ENode {
    /// What it computes.
    pub head: Head,
    /// Operands (for ops: inputs in order, `Absent` for omitted ones, then captured outer values).
    pub children: Vec<Id>,
}

impl ENode {
    /// A leaf.
    pub fn leaf(head: Head) -> ENode {
        ENode {
            head,
            children: Vec::new(),
        }
    }
}

impl Language for ENode {
    type Discriminant = Head;

    fn discriminant(&self) -> Head {
        self.head.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.head == other.head && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

/// One interned op.
#[derive(Debug, Clone)]
pub struct OpEntry {
    /// The op with its attributes.
    pub op: Op,
    /// Number of results of the node.
    pub n_outputs: usize,
    /// Number of regular inputs; children after these are captured outer values of subgraphs.
    pub n_inputs: usize,
    /// For ops with subgraphs: the original outer values their captures refer to, one per extra child.
    pub captures: Vec<ValueId>,
    /// True for ops that are never shared or folded (random ops, ops with subgraphs).
    pub opaque: bool,
}

/// Interned ops; a [`Head::Op`] indexes into it.
#[derive(Debug, Default)]
pub struct OpTable {
    entries: Vec<OpEntry>,
    index: HashMap<String, u32>,
}

/// True for ops whose results are not a function of their inputs' values (or that hold subgraphs, which
/// the e-graph does not look into).
pub fn is_opaque(op: &Op) -> bool {
    !op.subgraphs().is_empty() || op.is_random()
}

impl OpTable {
    /// Interns `op` with `n_outputs` results and no captures.
    pub fn intern(&mut self, op: Op, n_outputs: usize, n_inputs: usize) -> u32 {
        if is_opaque(&op) {
            return self.push(OpEntry {
                op,
                n_outputs,
                n_inputs,
                captures: Vec::new(),
                opaque: true,
            });
        }
        let key = format!("{}|{:?}|{}|{}", op.name(), op.attrs(), n_outputs, n_inputs);
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.push(OpEntry {
            op,
            n_outputs,
            n_inputs,
            captures: Vec::new(),
            opaque: false,
        });
        self.index.insert(key, i);
        i
    }

    /// Adds an entry that is never shared.
    pub fn push(&mut self, e: OpEntry) -> u32 {
        self.entries.push(e);
        (self.entries.len() - 1) as u32
    }

    /// The entry `i`.
    pub fn get(&self, i: u32) -> &OpEntry {
        &self.entries[i as usize]
    }
}

/// Cheap facts about a constant that rules condition on.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstSummary {
    /// Number of elements.
    pub elements: u64,
    /// Number of zero elements (numeric dense constants; 0 otherwise).
    pub zeros: u64,
    /// The value every element has, when all are equal (numeric dense constants).
    pub splat: Option<f64>,
    /// Number of all-zero slices along axis 0 (output channels of a weight).
    pub zero_channels: u64,
}

impl ConstSummary {
    /// Fraction of non-zero elements.
    pub fn density(&self) -> f64 {
        if self.elements == 0 {
            1.0
        } else {
            1.0 - self.zeros as f64 / self.elements as f64
        }
    }

    /// Computes the summary of `c`.
    pub fn of(c: &Constant) -> ConstSummary {
        let elements = c.num_elements();
        let Some(v) = c.to_f64s() else {
            return ConstSummary {
                elements,
                zeros: 0,
                splat: None,
                zero_channels: 0,
            };
        };
        let zeros = v.iter().filter(|x| **x == 0.0).count() as u64;
        let splat = match v.first() {
            Some(&f) if v.iter().all(|x| x.to_bits() == f.to_bits()) => Some(f),
            _ => None,
        };
        let channels =
            c.ty.dims()
                .and_then(|d| d.first())
                .and_then(|d| d.known())
                .unwrap_or(0) as usize;
        let zero_channels = if channels > 0 && v.len() % channels == 0 && c.ty.rank() != Some(0) {
            let per = v.len() / channels;
            if per == 0 {
                0
            } else {
                v.chunks_exact(per)
                    .filter(|ch| ch.iter().all(|x| *x == 0.0))
                    .count() as u64
            }
        } else {
            0
        };
        ConstSummary {
            elements,
            zeros,
            splat,
            zero_channels,
        }
    }
}

/// The hash [`ConstTable`] indexes a constant by: its content hash when small; for a large byte buffer
/// a hash of its length and a fixed sample (head, tail and 256 evenly spaced 64-byte windows). Interning
/// compares candidates in full, so a sample is enough, and hashing every byte of every folded weight
/// tensor was a third of ResNet-18's e-graph time.
fn index_hash(c: &Constant) -> u64 {
    use std::hash::{Hash, Hasher};
    const SMALL: usize = 1 << 16;
    const EDGE: usize = 4096;
    const WINDOWS: usize = 256;
    match &c.data {
        carve_ir::ConstData::Bytes(b) if b.as_bytes().len() > SMALL => {
            let b = b.as_bytes();
            let mut h = std::hash::DefaultHasher::new();
            b.len().hash(&mut h);
            b[..EDGE].hash(&mut h);
            b[b.len() - EDGE..].hash(&mut h);
            let step = b.len() / WINDOWS;
            for i in 0..WINDOWS {
                let s = i * step;
                b[s..(s + 64).min(b.len())].hash(&mut h);
            }
            h.finish()
        }
        _ => c.content_hash(),
    }
}

/// Interned constants (by type, format and content); a [`Head::Const`] indexes into it.
#[derive(Debug, Default)]
pub struct ConstTable {
    entries: Vec<(Constant, std::cell::OnceCell<ConstSummary>)>,
    index: HashMap<(String, u64), Vec<u32>>,
}

impl ConstTable {
    /// Interns `c`: equal constants get one index.
    pub fn intern(&mut self, c: Constant) -> u32 {
        let key = (format!("{}|{}", c.ty, c.format), index_hash(&c));
        if let Some(cands) = self.index.get(&key) {
            for &i in cands {
                if self.entries[i as usize].0 == c {
                    return i;
                }
            }
        }
        self.entries.push((c, std::cell::OnceCell::new()));
        let i = (self.entries.len() - 1) as u32;
        self.index.entry(key).or_default().push(i);
        i
    }

    /// The constant `i`.
    pub fn get(&self, i: u32) -> &Constant {
        &self.entries[i as usize].0
    }

    /// The summary of constant `i` (computed on first use).
    pub fn summary(&self, i: u32) -> &ConstSummary {
        let (c, s) = &self.entries[i as usize];
        s.get_or_init(|| ConstSummary::of(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(n: usize, poke: Option<(usize, f32)>) -> Constant {
        let mut v: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.5).collect();
        if let Some((i, x)) = poke {
            v[i] = x;
        }
        Constant::from_f32s(&[n as u64], &v)
    }

    #[test]
    fn large_constants_intern_by_content_not_by_sample() {
        let n = 100_000; // 400 KB: indexed by a sampled hash
        let mut t = ConstTable::default();
        let a = t.intern(big(n, None));
        assert_eq!(t.intern(big(n, None)), a, "equal constants share an index");
        // Differs at an element no sample window covers: same index key, but not equal.
        let b = t.intern(big(n, Some((n / 2 + 1000, -1.0))));
        assert_ne!(a, b);
        assert_eq!(t.intern(big(n, Some((n / 2 + 1000, -1.0)))), b);
        let small = t.intern(Constant::from_f32s(&[2], &[1.0, 2.0]));
        assert_eq!(t.intern(Constant::from_f32s(&[2], &[1.0, 2.0])), small);
        assert_ne!(t.intern(Constant::from_f32s(&[2], &[1.0, 3.0])), small);
    }
}
