//! The printer: graphs, nodes, types, constants and attribute values to text, deterministically (names
//! come from positions in the graph, never from hash-map order).

use std::collections::HashSet;
use std::fmt::Write;

use super::literal::{Scalar, decode, f32_scalar};
use super::{Name, quoted, word_or_quoted};
use crate::ops::AttrValue;
use crate::{
    ConstData, ConstFormat, Constant, Dim, Graph, INLINE_ELEMENTS, Node, Op, TensorType, Type,
    ValueId,
};

/// Prints `g` in the text format.
///
/// ```
/// use carve_ir::{DType, Graph, TensorType, Type, ops::elementwise::Relu};
///
/// let mut g = Graph::new("tiny");
/// let x = g.add_input("x", Type::Tensor(TensorType::known(DType::F32, &[2])));
/// g.outputs = g.add_node("", Relu::default().into(), vec![Some(x)], vec!["y".into()]).unwrap();
/// assert_eq!(
///     carve_ir::text::print(&g),
///     "graph @tiny(%x: f32[2]) -> (f32[2]) {\n  %0 = relu(%x) : f32[2]\n  return %0\n}\n"
/// );
/// ```
pub fn print(g: &Graph) -> String {
    let mut p = Printer { out: String::new() };
    p.graph(g, None, 0, 0);
    p.out.push('\n');
    p.out
}

/// The printed names of one graph's values.
pub(super) struct Names {
    names: Vec<Option<Name>>,
    /// Per node: the first number free after its results (where its subgraphs' numbering starts).
    pub(super) after: Vec<u64>,
}

impl Names {
    /// Names `g`'s values: inputs by source name (made unique), captures by their outer name where that is
    /// free, everything else numbered from `base` in definition order.
    pub(super) fn of(g: &Graph, outer: Option<Outer<'_>>, base: u64) -> Names {
        let mut names: Vec<Option<Name>> = vec![None; g.values.len()];
        let mut strs: HashSet<String> = HashSet::new();
        let mut nums: HashSet<u64> = HashSet::new();
        let mut next = base;
        for &v in &g.inputs {
            let src = g.values.get(v.index()).map_or("", |x| x.name.as_str());
            let mut cand = src.to_string();
            let mut k = 0u64;
            while strs.contains(&cand) {
                k += 1;
                cand = format!("{src}.{k}");
            }
            strs.insert(cand.clone());
            set_name(&mut names, v, Name::Str(cand));
        }
        for c in &g.captures {
            let preferred = outer.and_then(|o| o.names.get(c.outer).cloned());
            let n = match preferred {
                Some(Name::Str(s)) if !strs.contains(&s) => {
                    strs.insert(s.clone());
                    Name::Str(s)
                }
                Some(Name::Num(k)) if !nums.contains(&k) => {
                    nums.insert(k);
                    Name::Num(k)
                }
                _ => fresh(&mut next, &mut nums),
            };
            set_name(&mut names, c.inner, n);
        }
        let mut after = Vec::with_capacity(g.nodes.len());
        for node in &g.nodes {
            for &o in &node.outputs {
                let n = fresh(&mut next, &mut nums);
                set_name(&mut names, o, n);
            }
            after.push(next);
        }
        Names { names, after }
    }

    /// The name of `v`, if it has one.
    pub(super) fn get(&self, v: ValueId) -> Option<&Name> {
        self.names.get(v.index())?.as_ref()
    }

    /// The printed reference to `v`: its name, or `%?<id>` for a value that has none (an invalid graph).
    fn text(&self, v: ValueId) -> String {
        match self.get(v) {
            Some(n) => n.to_string(),
            None => format!("%?{}", v.0),
        }
    }
}

/// The enclosing graph of a subgraph being printed, with its names.
#[derive(Clone, Copy)]
pub(super) struct Outer<'a> {
    pub graph: &'a Graph,
    pub names: &'a Names,
}

pub(super) struct Printer {
    pub out: String,
}

impl Printer {
    /// Prints `g` starting at the current position; its statements are indented by `indent + 2` and its
    /// closing brace by `indent` (no trailing newline).
    pub(super) fn graph(&mut self, g: &Graph, outer: Option<Outer<'_>>, indent: usize, base: u64) {
        let names = Names::of(g, outer, base);
        let _ = write!(self.out, "graph @{}(", word_or_quoted(&g.name));
        for (i, &v) in g.inputs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            let _ = write!(self.out, "{}: {}", names.text(v), value_type_text(g, v));
        }
        self.out.push(')');
        if !g.captures.is_empty() {
            self.out.push_str(" captures(");
            for (i, c) in g.captures.iter().enumerate() {
                if i > 0 {
                    self.out.push_str(", ");
                }
                let outer_ty = match outer {
                    Some(o) => {
                        self.out.push_str(&o.names.text(c.outer));
                        o.graph.values.get(c.outer.index()).map(|v| &v.ty)
                    }
                    None => {
                        let _ = write!(self.out, "%{}", c.outer.0);
                        None
                    }
                };
                let outer_name = match outer {
                    Some(o) => o.names.get(c.outer).cloned(),
                    None => Some(Name::Num(u64::from(c.outer.0))),
                };
                if names.get(c.inner) != outer_name.as_ref() || outer_name.is_none() {
                    let _ = write!(self.out, " as {}", names.text(c.inner));
                }
                let inner_ty = g.values.get(c.inner.index()).map(|v| type_text(&v.ty));
                if inner_ty.is_none() || inner_ty != outer_ty.map(type_text) {
                    let _ = write!(self.out, ": {}", value_type_text(g, c.inner));
                }
            }
            self.out.push(')');
        }
        self.out.push_str(" -> (");
        for (i, &v) in g.outputs.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(&value_type_text(g, v));
        }
        self.out.push_str(") {\n");
        let inner = indent + 2;
        for (i, node) in g.nodes.iter().enumerate() {
            self.node(g, &names, i, node, inner);
        }
        pad(&mut self.out, inner);
        self.out.push_str("return");
        for (i, &v) in g.outputs.iter().enumerate() {
            self.out.push_str(if i > 0 { ", " } else { " " });
            self.out.push_str(&names.text(v));
        }
        self.out.push('\n');
        pad(&mut self.out, indent);
        self.out.push('}');
    }

    /// One node line, indented by `indent`; `i` is its index in `g`.
    fn node(&mut self, g: &Graph, names: &Names, i: usize, node: &Node, indent: usize) {
        pad(&mut self.out, indent);
        if node.outputs.is_empty() {
            self.out.push('_');
        }
        for (k, &o) in node.outputs.iter().enumerate() {
            if k > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(&names.text(o));
        }
        self.out.push_str(" = ");
        if let Op::Constant(c) = &node.op {
            self.out.push_str("const ");
            self.constant(c);
            if let [o] = node.outputs[..] {
                let own = tensor_type_text(&c.ty);
                if g.values.get(o.index()).map(|v| type_text(&v.ty)) != Some(own) {
                    let _ = write!(self.out, " : {}", value_type_text(g, o));
                }
            }
        } else {
            self.out.push_str(node.op.name());
            self.out.push('(');
            for (k, inp) in node.inputs.iter().enumerate() {
                if k > 0 {
                    self.out.push_str(", ");
                }
                match inp {
                    Some(v) => self.out.push_str(&names.text(*v)),
                    None => self.out.push('_'),
                }
            }
            self.out.push(')');
            let attrs = node.op.attrs();
            if !attrs.is_empty() {
                let here = Outer { graph: g, names };
                let sub_base = names.after.get(i).copied().unwrap_or_default();
                self.out.push_str(" {");
                for (k, (name, value)) in attrs.iter().enumerate() {
                    if k > 0 {
                        self.out.push_str(", ");
                    }
                    let _ = write!(self.out, "{name}=");
                    self.attr_value(value, here, indent, sub_base);
                }
                self.out.push('}');
            }
            if !node.outputs.is_empty() {
                self.out.push_str(" : ");
                for (k, &o) in node.outputs.iter().enumerate() {
                    if k > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(&value_type_text(g, o));
                }
            }
        }
        self.out.push('\n');
    }

    /// An attribute value of a node of `here`, printed on a line indented by `indent`; subgraphs number
    /// their values from `base`.
    pub(super) fn attr_value(&mut self, v: &AttrValue, here: Outer<'_>, indent: usize, base: u64) {
        match v {
            AttrValue::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            AttrValue::Float(f) => self.out.push_str(&f32_scalar(*f).text()),
            AttrValue::Bool(b) => {
                let _ = write!(self.out, "{b}");
            }
            AttrValue::Str(s) => self.out.push_str(&quoted(s)),
            AttrValue::Ident(s) => self.out.push_str(s),
            AttrValue::Ints(v) => self.list(v.iter().map(|&i| Scalar::Int(i128::from(i)))),
            AttrValue::Floats(v) => self.list(v.iter().map(|&f| f32_scalar(f))),
            AttrValue::Strs(v) => self.list(v.iter().map(|s| Scalar::Str(s.clone()))),
            AttrValue::Tensor(c) => {
                self.out.push_str("const ");
                self.constant(c);
            }
            AttrValue::Graph(g) => self.graph(g, Some(here), indent, base),
            AttrValue::None => self.out.push('_'),
        }
    }

    fn list(&mut self, items: impl Iterator<Item = Scalar>) {
        self.out.push('[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(&s.text());
        }
        self.out.push(']');
    }

    /// `type [format] data` of a constant.
    fn constant(&mut self, c: &Constant) {
        self.out.push_str(&tensor_type_text(&c.ty));
        if c.format != ConstFormat::Dense {
            let _ = write!(self.out, " {}", c.format);
        }
        self.out.push(' ');
        let small =
            c.ty.shape
                .as_ref()
                .and_then(|s| s.num_elements())
                .filter(|&n| n <= INLINE_ELEMENTS)
                .map(|n| n as usize);
        match (&c.data, small) {
            (ConstData::Bytes(b), Some(n)) => {
                let elems = (c.format == ConstFormat::Dense)
                    .then(|| decode(c.ty.dtype, b.as_bytes(), n))
                    .flatten();
                match elems {
                    Some(e) => self.list(e.into_iter()),
                    None => {
                        self.out.push_str("x\"");
                        for byte in b.as_bytes() {
                            let _ = write!(self.out, "{byte:02x}");
                        }
                        self.out.push('"');
                    }
                }
            }
            (ConstData::Strings(s), Some(n)) if s.len() == n => {
                self.list(s.iter().map(|x| Scalar::Str(x.clone())));
            }
            _ => {
                let _ = write!(self.out, "#{:016x}", c.content_hash());
            }
        }
    }
}

/// The first number at or after `next` not in `nums`, taken.
fn fresh(next: &mut u64, nums: &mut HashSet<u64>) -> Name {
    while nums.contains(next) {
        *next += 1;
    }
    nums.insert(*next);
    *next += 1;
    Name::Num(*next - 1)
}

/// Names `v` unless it already has a name (a value listed twice in an invalid graph keeps its first).
fn set_name(names: &mut [Option<Name>], v: ValueId, n: Name) {
    if let Some(slot @ None) = names.get_mut(v.index()) {
        *slot = Some(n);
    }
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn value_type_text(g: &Graph, v: ValueId) -> String {
    match g.values.get(v.index()) {
        Some(x) => type_text(&x.ty),
        None => format!("<no value {}>", v.0),
    }
}

/// A type as text: the `Display` form, except that symbolic dims which are not plain words are quoted.
pub(super) fn type_text(t: &Type) -> String {
    match t {
        Type::Tensor(t) => tensor_type_text(t),
        Type::Sequence(t) => format!("seq<{}>", type_text(t)),
        Type::Optional(t) => format!("opt<{}>", type_text(t)),
        Type::Map(k, v) => format!("map<{k},{}>", type_text(v)),
    }
}

fn tensor_type_text(t: &TensorType) -> String {
    let mut s = t.dtype.name().to_string();
    match &t.shape {
        None => s.push_str("[*]"),
        Some(shape) => {
            s.push('[');
            for (i, d) in shape.dims().iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                match d {
                    Dim::Sym(name) => s.push_str(&word_or_quoted(name)),
                    d => {
                        let _ = write!(s, "{d}");
                    }
                }
            }
            s.push(']');
        }
    }
    if let Some(q) = &t.quant {
        let _ = write!(s, " {q}");
    }
    s
}
