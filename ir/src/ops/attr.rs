//! Typed attribute plumbing: the generic [`AttrValue`] the text format reads and writes, the [`AttrType`]
//! conversion trait every attribute field type implements, and the `attr_enum!` macro for keyword enums.

use std::collections::BTreeMap;

use crate::{Constant, DType, Graph};

/// An attribute value in generic form, as printed and parsed by the text format.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f32),
    /// A boolean.
    Bool(bool),
    /// A quoted string.
    Str(String),
    /// A bare keyword (enum variants, dtypes).
    Ident(String),
    /// A list of integers (also what an empty list `[]` parses to).
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A list of strings.
    Strs(Vec<String>),
    /// A tensor.
    Tensor(Box<Constant>),
    /// A subgraph.
    Graph(Box<Graph>),
    /// An absent optional value.
    None,
}

/// An attribute that could not be converted to the field's type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("attribute '{name}': {msg}")]
pub struct AttrError {
    /// Attribute name.
    pub name: String,
    /// What was wrong.
    pub msg: String,
}

/// A bag of named generic attributes being converted into an op (used by the text parser).
#[derive(Debug, Default)]
pub struct AttrMap(pub BTreeMap<String, AttrValue>);

impl AttrMap {
    /// Removes and returns the attribute `name`.
    pub fn take(&mut self, name: &str) -> Option<AttrValue> {
        self.0.remove(name)
    }

    /// Names left after an op took the ones it knows.
    pub fn leftover(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Conversion between an attribute field's Rust type and [`AttrValue`].
pub trait AttrType: Sized {
    /// To generic form.
    fn to_attr(&self) -> AttrValue;
    /// From generic form; the error says what was expected.
    fn from_attr(v: AttrValue) -> Result<Self, String>;
    /// Pushes every subgraph held by this attribute (none for non-graph types).
    fn collect_graphs<'a>(&'a self, _out: &mut Vec<&'a Graph>) {}
    /// Pushes every subgraph held by this attribute, mutably.
    fn collect_graphs_mut<'a>(&'a mut self, _out: &mut Vec<&'a mut Graph>) {}
}

fn expected<T>(what: &str, got: &AttrValue) -> Result<T, String> {
    Err(format!("expected {what}, got {got:?}"))
}

impl AttrType for i64 {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Int(*self)
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Int(i) => Ok(i),
            o => expected("an integer", &o),
        }
    }
}

impl AttrType for f32 {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Float(*self)
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Float(f) => Ok(f),
            AttrValue::Int(i) => Ok(i as f32),
            o => expected("a float", &o),
        }
    }
}

impl AttrType for bool {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Bool(*self)
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Bool(b) => Ok(b),
            o => expected("true or false", &o),
        }
    }
}

impl AttrType for String {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Str(self.clone())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Str(s) => Ok(s),
            o => expected("a string", &o),
        }
    }
}

impl AttrType for Vec<i64> {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Ints(self.clone())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Ints(i) => Ok(i),
            o => expected("a list of integers", &o),
        }
    }
}

impl AttrType for Vec<f32> {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Floats(self.clone())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Floats(f) => Ok(f),
            AttrValue::Ints(i) => Ok(i.into_iter().map(|x| x as f32).collect()),
            o => expected("a list of floats", &o),
        }
    }
}

impl AttrType for Vec<String> {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Strs(self.clone())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Strs(s) => Ok(s),
            AttrValue::Ints(i) if i.is_empty() => Ok(Vec::new()),
            o => expected("a list of strings", &o),
        }
    }
}

impl AttrType for DType {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Ident(self.name().to_string())
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Ident(s) => {
                DType::from_name(&s).ok_or_else(|| format!("unknown element type '{s}'"))
            }
            o => expected("an element type", &o),
        }
    }
}

impl AttrType for Constant {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Tensor(Box::new(self.clone()))
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Tensor(t) => Ok(*t),
            o => expected("a tensor", &o),
        }
    }
}

impl AttrType for Graph {
    fn to_attr(&self) -> AttrValue {
        AttrValue::Graph(Box::new(self.clone()))
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::Graph(g) => Ok(*g),
            o => expected("a graph", &o),
        }
    }
    fn collect_graphs<'a>(&'a self, out: &mut Vec<&'a Graph>) {
        out.push(self);
    }
    fn collect_graphs_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Graph>) {
        out.push(self);
    }
}

impl<T: AttrType> AttrType for Option<T> {
    fn to_attr(&self) -> AttrValue {
        match self {
            Some(v) => v.to_attr(),
            None => AttrValue::None,
        }
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        match v {
            AttrValue::None => Ok(None),
            v => T::from_attr(v).map(Some),
        }
    }
    fn collect_graphs<'a>(&'a self, out: &mut Vec<&'a Graph>) {
        if let Some(v) = self {
            v.collect_graphs(out);
        }
    }
    fn collect_graphs_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Graph>) {
        if let Some(v) = self {
            v.collect_graphs_mut(out);
        }
    }
}

impl<T: AttrType> AttrType for Box<T> {
    fn to_attr(&self) -> AttrValue {
        (**self).to_attr()
    }
    fn from_attr(v: AttrValue) -> Result<Self, String> {
        T::from_attr(v).map(Box::new)
    }
    fn collect_graphs<'a>(&'a self, out: &mut Vec<&'a Graph>) {
        (**self).collect_graphs(out);
    }
    fn collect_graphs_mut<'a>(&'a mut self, out: &mut Vec<&'a mut Graph>) {
        (**self).collect_graphs_mut(out);
    }
}

/// Defines a keyword enum usable as an attribute field: printed as a bare word.
///
/// ```
/// carve_ir::attr_enum! {
///     /// Padding mode.
///     pub enum Mode { Constant = "constant", Reflect = "reflect" }
/// }
/// assert_eq!(Mode::from_keyword("reflect"), Some(Mode::Reflect));
/// ```
#[macro_export]
macro_rules! attr_enum {
    (
        $(#[$meta:meta])*
        pub enum $Name:ident { $( $(#[$vmeta:meta])* $Variant:ident = $kw:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $Name { $( $(#[$vmeta])* $Variant, )* }

        impl $Name {
            /// The keyword printed for this variant.
            pub fn keyword(self) -> &'static str {
                match self { $( $Name::$Variant => $kw, )* }
            }
            /// The variant for a keyword.
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s { $( $kw => Some($Name::$Variant), )* _ => None }
            }
            /// All keywords, in declaration order.
            pub const KEYWORDS: &'static [&'static str] = &[$($kw),*];
        }

        impl $crate::ops::AttrType for $Name {
            fn to_attr(&self) -> $crate::ops::AttrValue {
                $crate::ops::AttrValue::Ident(self.keyword().to_string())
            }
            fn from_attr(v: $crate::ops::AttrValue) -> Result<Self, String> {
                match v {
                    $crate::ops::AttrValue::Ident(s) => Self::from_keyword(&s).ok_or_else(|| {
                        format!("unknown keyword '{}', expected one of {:?}", s, Self::KEYWORDS)
                    }),
                    o => Err(format!("expected a keyword, got {o:?}")),
                }
            }
        }
    };
}
