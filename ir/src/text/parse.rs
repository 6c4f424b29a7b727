//! The parser: text back to a [`Graph`] whose stored types are the printed ones (inference is not re-run),
//! with producers, captures and constants set. Every error carries the line and column it was found at.

use std::collections::HashMap;

use super::lexer::{Tok, Token, tokenize};
use super::literal::{Scalar, encode, to_f32};
use super::print::type_text;
use super::{MAX_DEPTH, Name, ParseError};
use crate::ops::{AttrMap, AttrValue};
use crate::{
    Buffer, Capture, ConstData, ConstFormat, Constant, DType, Dim, Graph, Node, Op, Quant,
    QuantAxis, Shape, TensorType, Type, ValueId,
};

/// Parses one graph in the text format (see the [module docs](super) for the syntax).
///
/// ```
/// let g = carve_ir::text::parse("graph @g(%x: f32[2]) -> (f32[2]) {\n  return %x\n}\n")?;
/// assert_eq!(g.inputs.len(), 1);
/// assert!(carve_ir::text::parse("graph @g() -> () {\n  %0 = frobnicate() : f32[]\n  return\n}")
///     .unwrap_err()
///     .to_string()
///     .starts_with("2:8: unknown op 'frobnicate'"));
/// # Ok::<(), carve_ir::text::ParseError>(())
/// ```
pub fn parse(src: &str) -> std::result::Result<Graph, ParseError> {
    let toks = tokenize(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        graph_depth: 0,
        type_depth: 0,
    };
    let g = p.graph(None)?;
    if *p.peek() != Tok::Eof {
        return Err(p.err_here(format!(
            "expected end of input after the graph, found {}",
            p.peek().describe()
        )));
    }
    Ok(g)
}

/// The names visible in a graph being parsed, for the captures of its subgraphs.
#[derive(Clone, Copy)]
pub(super) struct Scope<'a> {
    pub graph: &'a Graph,
    pub names: &'a HashMap<Name, ValueId>,
}

pub(super) struct Parser {
    toks: Vec<Token>,
    pos: usize,
    graph_depth: usize,
    type_depth: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

fn err_at(t: &Token, msg: impl Into<String>) -> ParseError {
    ParseError::new(t.line, t.col, msg)
}

/// The source name a parsed value gets for its printed name.
fn source_name(n: &Name) -> String {
    match n {
        Name::Num(k) => k.to_string(),
        Name::Str(s) => s.clone(),
    }
}

/// Edit distance counting an adjacent transposition as one edit, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

fn suggestion(word: &str, candidates: &[&str]) -> String {
    if word.len() > 64 {
        return String::new();
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default()
}

impl Parser {
    #[cfg(test)]
    pub(super) fn new(src: &str) -> Result<Parser> {
        Ok(Parser {
            toks: tokenize(src)?,
            pos: 0,
            graph_depth: 0,
            type_depth: 0,
        })
    }

    fn tok(&self) -> &Token {
        // `tokenize` always ends with Eof and `next` never moves past it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek(&self) -> &Tok {
        &self.tok().tok
    }

    fn peek2(&self) -> &Tok {
        &self.toks[(self.pos + 1).min(self.toks.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.tok().clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err_here(&self, msg: impl Into<String>) -> ParseError {
        err_at(self.tok(), msg)
    }

    fn unexpected(&self, what: &str) -> ParseError {
        self.err_here(format!("expected {what}, found {}", self.peek().describe()))
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == t {
            self.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok) -> Result<Token> {
        if *self.peek() == t {
            Ok(self.next())
        } else {
            Err(self.unexpected(&t.describe()))
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }

    fn expect_word(&mut self, w: &str) -> Result<Token> {
        if self.is_word(w) {
            Ok(self.next())
        } else {
            Err(self.unexpected(&format!("'{w}'")))
        }
    }

    fn value_name(&mut self) -> Result<(Name, Token)> {
        match self.peek().clone() {
            Tok::Value(n) => Ok((n, self.next())),
            _ => Err(self.unexpected("a value name like %x")),
        }
    }

    /// A graph (`graph @name(...) ... { ... }`), nested in `parent` unless it is the top level.
    pub(super) fn graph(&mut self, parent: Option<Scope<'_>>) -> Result<Graph> {
        if self.graph_depth >= MAX_DEPTH {
            return Err(self.err_here(format!("graphs nested more than {MAX_DEPTH} deep")));
        }
        self.graph_depth += 1;
        let r = self.graph_body(parent);
        self.graph_depth -= 1;
        r
    }

    fn graph_body(&mut self, parent: Option<Scope<'_>>) -> Result<Graph> {
        self.expect_word("graph")?;
        let name = match self.peek().clone() {
            Tok::Global(s) => {
                self.next();
                s
            }
            _ => return Err(self.unexpected("a graph name like @main")),
        };
        let mut g = Graph::new(name);
        let mut names: HashMap<Name, ValueId> = HashMap::new();
        let define = |names: &mut HashMap<Name, ValueId>, n: Name, v: ValueId, at: &Token| {
            if names.contains_key(&n) {
                return Err(err_at(at, format!("{n} is already defined")));
            }
            names.insert(n, v);
            Ok(())
        };

        self.expect(Tok::LParen)?;
        if !self.eat(&Tok::RParen) {
            loop {
                let (n, at) = self.value_name()?;
                self.expect(Tok::Colon)?;
                let ty = self.ty()?;
                let v = g.add_input(source_name(&n), ty);
                define(&mut names, n, v, &at)?;
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(Tok::Comma)?;
            }
        }

        if self.is_word("captures") {
            self.next();
            self.expect(Tok::LParen)?;
            if !self.eat(&Tok::RParen) {
                loop {
                    let (outer_name, outer_at) = self.value_name()?;
                    let (inner_name, inner_at) = if self.is_word("as") {
                        self.next();
                        self.value_name()?
                    } else {
                        (outer_name.clone(), outer_at.clone())
                    };
                    let declared = if self.eat(&Tok::Colon) {
                        Some(self.ty()?)
                    } else {
                        None
                    };
                    let (outer, ty) = match parent {
                        Some(p) => {
                            let &outer = p.names.get(&outer_name).ok_or_else(|| {
                                err_at(
                                    &outer_at,
                                    format!("{outer_name} is not defined in the enclosing graph"),
                                )
                            })?;
                            let ty = match declared {
                                Some(t) => t,
                                None => p.graph.ty(outer).clone(),
                            };
                            (outer, ty)
                        }
                        None => {
                            let Name::Num(k) = outer_name else {
                                return Err(err_at(
                                    &outer_at,
                                    "a top-level graph's captures name parent values by index, like %3",
                                ));
                            };
                            let k = u32::try_from(k)
                                .map_err(|_| err_at(&outer_at, "value index too large"))?;
                            let ty = declared.ok_or_else(|| {
                                err_at(
                                    self.tok(),
                                    "a top-level graph's captures need their type: %3 as %0: f32[2]",
                                )
                            })?;
                            (ValueId(k), ty)
                        }
                    };
                    let inner = g.add_value(source_name(&inner_name), ty);
                    define(&mut names, inner_name, inner, &inner_at)?;
                    g.captures.push(Capture { inner, outer });
                    if self.eat(&Tok::RParen) {
                        break;
                    }
                    self.expect(Tok::Comma)?;
                }
            }
        }

        self.expect(Tok::Arrow)?;
        self.expect(Tok::LParen)?;
        let mut out_types = Vec::new();
        if !self.eat(&Tok::RParen) {
            loop {
                out_types.push(self.ty()?);
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(Tok::Comma)?;
            }
        }
        self.expect(Tok::LBrace)?;

        while !self.is_word("return") {
            self.statement(&mut g, &mut names)?;
        }
        let ret = self.next();
        let mut returned = Vec::new();
        if matches!(self.peek(), Tok::Value(_)) {
            loop {
                let (n, at) = self.value_name()?;
                let &v = names
                    .get(&n)
                    .ok_or_else(|| err_at(&at, format!("{n} is not defined")))?;
                returned.push((v, at));
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        if returned.len() != out_types.len() {
            return Err(err_at(
                &ret,
                format!(
                    "returns {} values but the header declares {} results",
                    returned.len(),
                    out_types.len()
                ),
            ));
        }
        for ((v, at), want) in returned.iter().zip(&out_types) {
            // Compared as printed, so that types the text cannot tell apart (NaN scales) agree.
            let (got, want) = (type_text(g.ty(*v)), type_text(want));
            if got != want {
                return Err(err_at(
                    at,
                    format!("returns a value of type {got} where the header declares {want}"),
                ));
            }
        }
        g.outputs = returned.into_iter().map(|(v, _)| v).collect();
        self.expect(Tok::RBrace)?;
        Ok(g)
    }

    /// One node: `results = op(operands) {attrs} : types` or `results = const ...`.
    fn statement(&mut self, g: &mut Graph, names: &mut HashMap<Name, ValueId>) -> Result<()> {
        let start = self.tok().clone();
        let mut results: Vec<(Name, Token)> = Vec::new();
        if self.is_word("_") {
            self.next();
        } else {
            if !matches!(self.peek(), Tok::Value(_)) {
                return Err(self.unexpected("a node ('%0 = op(...)') or 'return'"));
            }
            loop {
                results.push(self.value_name()?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        for (i, (n, at)) in results.iter().enumerate() {
            if names.contains_key(n) || results[..i].iter().any(|(m, _)| m == n) {
                return Err(err_at(at, format!("{n} is already defined")));
            }
        }
        self.expect(Tok::Eq)?;
        let op_tok = self.next();
        let Tok::Ident(op_name) = &op_tok.tok else {
            return Err(err_at(
                &op_tok,
                format!("expected an op name, found {}", op_tok.tok.describe()),
            ));
        };
        let node_name = results
            .first()
            .map_or_else(|| "_".to_string(), |(n, _)| n.to_string());

        let (op, inputs, types) = if op_name == "const" {
            let c = self.constant()?;
            let ty = if self.eat(&Tok::Colon) {
                self.ty()?
            } else {
                Type::Tensor(c.ty.clone())
            };
            if results.len() != 1 {
                return Err(err_at(&start, "a constant defines exactly one value"));
            }
            (Op::Constant(c), Vec::new(), vec![ty])
        } else {
            self.expect(Tok::LParen)?;
            let mut inputs = Vec::new();
            if !self.eat(&Tok::RParen) {
                loop {
                    if self.is_word("_") {
                        self.next();
                        inputs.push(None);
                    } else {
                        let (n, at) = self.value_name()?;
                        let &v = names.get(&n).ok_or_else(|| {
                            err_at(&at, format!("{n} is not defined before its use"))
                        })?;
                        inputs.push(Some(v));
                    }
                    if self.eat(&Tok::RParen) {
                        break;
                    }
                    self.expect(Tok::Comma)?;
                }
            }
            let mut attrs = AttrMap::default();
            let mut attr_pos: HashMap<String, Token> = HashMap::new();
            if *self.peek() == Tok::LBrace {
                let scope = Scope {
                    graph: &*g,
                    names: &*names,
                };
                self.attrs(scope, &mut attrs, &mut attr_pos)?;
            }
            let mut types = Vec::new();
            if !results.is_empty() {
                if !self.eat(&Tok::Colon) {
                    return Err(self.unexpected("':' and the result types"));
                }
                loop {
                    types.push(self.ty()?);
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
                if types.len() != results.len() {
                    return Err(err_at(
                        &start,
                        format!("{} results but {} types", results.len(), types.len()),
                    ));
                }
            }
            let op = match Op::from_attrs(op_name, attrs) {
                None => {
                    return Err(err_at(
                        &op_tok,
                        format!(
                            "unknown op '{op_name}'{}",
                            suggestion(op_name, &Op::all_names())
                        ),
                    ));
                }
                Some(Err(e)) => {
                    let at = attr_pos.get(&e.name).unwrap_or(&op_tok);
                    return Err(err_at(at, format!("{op_name}: {e}")));
                }
                Some(Ok(op)) => op,
            };
            (op, inputs, types)
        };

        let mut outputs = Vec::with_capacity(results.len());
        for ((n, _), ty) in results.into_iter().zip(types) {
            let v = g.add_value(source_name(&n), ty);
            names.insert(n, v);
            outputs.push(v);
        }
        g.push_node(Node {
            name: node_name,
            op,
            inputs,
            outputs,
        });
        Ok(())
    }

    /// `{name=value, ...}`, recording where each name was written.
    fn attrs(
        &mut self,
        scope: Scope<'_>,
        attrs: &mut AttrMap,
        pos: &mut HashMap<String, Token>,
    ) -> Result<()> {
        self.expect(Tok::LBrace)?;
        if self.eat(&Tok::RBrace) {
            return Ok(());
        }
        loop {
            let at = self.tok().clone();
            let Tok::Ident(name) = self.next().tok else {
                return Err(err_at(
                    &at,
                    format!("expected an attribute name, found {}", at.tok.describe()),
                ));
            };
            self.expect(Tok::Eq)?;
            let v = self.attr_value(scope)?;
            if attrs.0.insert(name.clone(), v).is_some() {
                return Err(err_at(&at, format!("attribute '{name}' given twice")));
            }
            pos.insert(name, at);
            if self.eat(&Tok::RBrace) {
                return Ok(());
            }
            self.expect(Tok::Comma)?;
        }
    }

    /// One attribute value of a node in `scope`.
    pub(super) fn attr_value(&mut self, scope: Scope<'_>) -> Result<AttrValue> {
        let at = self.tok().clone();
        let v =
            match &at.tok {
                Tok::Ident(w) => match w.as_str() {
                    "true" => {
                        self.next();
                        AttrValue::Bool(true)
                    }
                    "false" => {
                        self.next();
                        AttrValue::Bool(false)
                    }
                    "_" => {
                        self.next();
                        AttrValue::None
                    }
                    "const" => {
                        self.next();
                        AttrValue::Tensor(Box::new(self.constant()?))
                    }
                    "graph" => AttrValue::Graph(Box::new(self.graph(Some(scope))?)),
                    "inf" | "nan" | "NaN" => {
                        let s = self.scalar()?;
                        AttrValue::Float(to_f32(&s).map_err(|m| err_at(&at, m))?)
                    }
                    _ => {
                        self.next();
                        AttrValue::Ident(w.clone())
                    }
                },
                Tok::Num(_) => match self.scalar()? {
                    Scalar::Int(i) => AttrValue::Int(
                        i64::try_from(i)
                            .map_err(|_| err_at(&at, format!("{i} does not fit in 64 bits")))?,
                    ),
                    s => AttrValue::Float(to_f32(&s).map_err(|m| err_at(&at, m))?),
                },
                Tok::Str(s) => {
                    self.next();
                    AttrValue::Str(s.clone())
                }
                Tok::LBracket => {
                    let items = self.list()?;
                    if items.iter().all(|(s, _)| matches!(s, Scalar::Int(_))) {
                        let mut v = Vec::with_capacity(items.len());
                        for (s, t) in &items {
                            if let Scalar::Int(i) = s {
                                v.push(i64::try_from(*i).map_err(|_| {
                                    err_at(t, format!("{i} does not fit in 64 bits"))
                                })?);
                            }
                        }
                        AttrValue::Ints(v)
                    } else if items.iter().all(|(s, _)| matches!(s, Scalar::Str(_))) {
                        AttrValue::Strs(
                            items
                                .into_iter()
                                .filter_map(|(s, _)| match s {
                                    Scalar::Str(s) => Some(s),
                                    _ => None,
                                })
                                .collect(),
                        )
                    } else {
                        let mut v = Vec::with_capacity(items.len());
                        for (s, t) in &items {
                            v.push(to_f32(s).map_err(|m| {
                                err_at(
                                    t,
                                    format!("{m} (a list holds numbers or strings, not both)"),
                                )
                            })?);
                        }
                        AttrValue::Floats(v)
                    }
                }
                _ => return Err(self.unexpected("an attribute value")),
            };
        Ok(v)
    }

    /// One literal: a number, `inf`, `nan`, `nan(0x..)`, `true`, `false` or a string.
    fn scalar(&mut self) -> Result<Scalar> {
        let at = self.next();
        match &at.tok {
            Tok::Num(text) => {
                let (neg, body) = match text.strip_prefix('-') {
                    Some(b) => (true, b),
                    None => (false, text.as_str()),
                };
                let int = if let Some(hex) = body.strip_prefix("0x") {
                    Some(i128::from_str_radix(hex, 16))
                } else if body.bytes().all(|b| b.is_ascii_digit()) {
                    Some(body.parse::<i128>())
                } else {
                    None
                };
                match int {
                    Some(Ok(i)) if i <= i128::from(u64::MAX) => {
                        Ok(Scalar::Int(if neg { -i } else { i }))
                    }
                    Some(_) => Err(err_at(&at, format!("integer {text} is too large"))),
                    None => Ok(Scalar::Float(text.clone())),
                }
            }
            Tok::Ident(w) if w == "nan" && *self.peek() == Tok::LParen => {
                self.next();
                let bits_at = self.next();
                let bits = match &bits_at.tok {
                    Tok::Num(t) => t
                        .strip_prefix("0x")
                        .and_then(|h| u64::from_str_radix(h, 16).ok()),
                    _ => None,
                }
                .ok_or_else(|| {
                    err_at(&bits_at, "expected NaN bits in hex, like nan(0x7fc00001)")
                })?;
                self.expect(Tok::RParen)?;
                Ok(Scalar::NanBits(bits))
            }
            Tok::Ident(w) if matches!(w.as_str(), "inf" | "nan" | "NaN") => {
                Ok(Scalar::Float(w.clone()))
            }
            Tok::Ident(w) if w == "true" => Ok(Scalar::Bool(true)),
            Tok::Ident(w) if w == "false" => Ok(Scalar::Bool(false)),
            Tok::Str(s) => Ok(Scalar::Str(s.clone())),
            t => Err(err_at(
                &at,
                format!(
                    "expected a number, boolean or string, found {}",
                    t.describe()
                ),
            )),
        }
    }

    /// `[scalar, ...]`, each with the token it starts at.
    fn list(&mut self) -> Result<Vec<(Scalar, Token)>> {
        self.expect(Tok::LBracket)?;
        let mut out = Vec::new();
        if self.eat(&Tok::RBracket) {
            return Ok(out);
        }
        loop {
            let at = self.tok().clone();
            out.push((self.scalar()?, at));
            if self.eat(&Tok::RBracket) {
                return Ok(out);
            }
            self.expect(Tok::Comma)?;
        }
    }

    /// A non-negative integer literal that fits `T`.
    fn uint<T: TryFrom<i128>>(&mut self, what: &str) -> Result<T> {
        let at = self.tok().clone();
        match self.scalar() {
            Ok(Scalar::Int(i)) if i >= 0 => {
                T::try_from(i).map_err(|_| err_at(&at, format!("{what} {i} is too large")))
            }
            _ => Err(err_at(
                &at,
                format!(
                    "expected {what} (a non-negative integer), found {}",
                    at.tok.describe()
                ),
            )),
        }
    }

    /// The part of a constant after `const`: `type [format] data`.
    fn constant(&mut self) -> Result<Constant> {
        let ty_at = self.tok().clone();
        let ty = match self.ty()? {
            Type::Tensor(t) => t,
            other => {
                return Err(err_at(
                    &ty_at,
                    format!("a constant is a tensor, not {}", other.kind()),
                ));
            }
        };
        let format = self.const_format()?;
        let data_at = self.tok().clone();
        let data = match &data_at.tok {
            Tok::Hash(h) => {
                self.next();
                ConstData::Elided { hash: *h }
            }
            Tok::Bytes(b) => {
                self.next();
                ConstData::Bytes(Buffer::from_vec(b.clone()))
            }
            Tok::LBracket => {
                let items = self.list()?;
                let count = ty
                    .shape
                    .as_ref()
                    .and_then(Shape::num_elements)
                    .ok_or_else(|| err_at(&data_at, "inline constant data needs a static shape"))?;
                if count != items.len() as u64 {
                    return Err(err_at(
                        &data_at,
                        format!(
                            "{} elements given for a constant of {count} elements",
                            items.len()
                        ),
                    ));
                }
                let strings = match items.first() {
                    Some((Scalar::Str(_), _)) => true,
                    Some(_) => false,
                    None => ty.dtype == DType::String,
                };
                if strings {
                    let mut v = Vec::with_capacity(items.len());
                    for (s, t) in items {
                        match s {
                            Scalar::Str(s) => v.push(s),
                            o => {
                                return Err(err_at(
                                    &t,
                                    format!("expected a string, got {}", o.kind()),
                                ));
                            }
                        }
                    }
                    ConstData::Strings(v)
                } else {
                    if format != ConstFormat::Dense {
                        return Err(err_at(
                            &data_at,
                            format!(
                                "{format} constants are written as raw bytes x\"..\", not elements"
                            ),
                        ));
                    }
                    let scalars: Vec<Scalar> = items.iter().map(|(s, _)| s.clone()).collect();
                    let bytes = encode(ty.dtype, &scalars).map_err(|(i, m)| {
                        let t = items.get(i).map_or(&data_at, |(_, t)| t);
                        err_at(t, m)
                    })?;
                    ConstData::Bytes(Buffer::from_vec(bytes))
                }
            }
            _ => {
                return Err(
                    self.unexpected("constant data: [elements], a #hash or raw bytes x\"..\"")
                );
            }
        };
        Ok(Constant { ty, format, data })
    }

    /// An optional storage format before a constant's data (dense when absent).
    fn const_format(&mut self) -> Result<ConstFormat> {
        let at = self.tok().clone();
        match &at.tok {
            Tok::Ident(w) => {
                let f = match w.as_str() {
                    "dense" => ConstFormat::Dense,
                    "csr" => ConstFormat::Csr,
                    "bitmap" => ConstFormat::Bitmap,
                    w => {
                        let block = w.strip_prefix("bcsr").and_then(|rc| {
                            let (r, c) = rc.split_once('x')?;
                            let digits =
                                |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                            if !digits(r) || !digits(c) {
                                return None;
                            }
                            Some((r.parse::<u32>().ok()?, c.parse::<u32>().ok()?))
                        });
                        match block {
                            Some((rows, cols)) => ConstFormat::BlockCsr { rows, cols },
                            None => {
                                return Err(err_at(
                                    &at,
                                    format!(
                                        "unknown constant format '{w}' (dense, csr, bcsrRxC, bitmap or N:M)"
                                    ),
                                ));
                            }
                        }
                    }
                };
                self.next();
                Ok(f)
            }
            Tok::Num(_) if *self.peek2() == Tok::Colon => {
                let n = self.uint::<u32>("N of an N:M format")?;
                self.expect(Tok::Colon)?;
                let m = self.uint::<u32>("M of an N:M format")?;
                Ok(ConstFormat::NofM { n, m })
            }
            _ => Ok(ConstFormat::Dense),
        }
    }

    /// A type.
    pub(super) fn ty(&mut self) -> Result<Type> {
        if self.type_depth >= MAX_DEPTH {
            return Err(self.err_here(format!("types nested more than {MAX_DEPTH} deep")));
        }
        self.type_depth += 1;
        let r = self.ty_inner();
        self.type_depth -= 1;
        r
    }

    fn ty_inner(&mut self) -> Result<Type> {
        let at = self.tok().clone();
        let Tok::Ident(w) = &at.tok else {
            return Err(self.unexpected("a type"));
        };
        match w.as_str() {
            "seq" | "opt" => {
                self.next();
                self.expect(Tok::Lt)?;
                let t = Box::new(self.ty()?);
                self.expect(Tok::Gt)?;
                Ok(if w == "seq" {
                    Type::Sequence(t)
                } else {
                    Type::Optional(t)
                })
            }
            "map" => {
                self.next();
                self.expect(Tok::Lt)?;
                let k = self.dtype()?;
                self.expect(Tok::Comma)?;
                let v = self.ty()?;
                self.expect(Tok::Gt)?;
                Ok(Type::Map(k, Box::new(v)))
            }
            _ => self.tensor_type().map(Type::Tensor),
        }
    }

    fn dtype(&mut self) -> Result<DType> {
        let at = self.tok().clone();
        match &at.tok {
            Tok::Ident(w) => {
                let d = DType::from_name(w).ok_or_else(|| {
                    let names: Vec<&str> = DType::all().map(DType::name).collect();
                    err_at(
                        &at,
                        format!("unknown element type '{w}'{}", suggestion(w, &names)),
                    )
                })?;
                self.next();
                Ok(d)
            }
            _ => Err(self.unexpected("an element type like f32")),
        }
    }

    fn tensor_type(&mut self) -> Result<TensorType> {
        let dtype = self.dtype()?;
        self.expect(Tok::LBracket)?;
        let shape = if self.eat(&Tok::Star) {
            self.expect(Tok::RBracket)?;
            None
        } else {
            let mut dims = Vec::new();
            if !self.eat(&Tok::RBracket) {
                loop {
                    let at = self.tok().clone();
                    let d = match &at.tok {
                        Tok::Num(_) => Dim::Known(self.uint::<u64>("a dimension")?),
                        Tok::Question => {
                            self.next();
                            Dim::Unknown
                        }
                        Tok::Ident(s) | Tok::Str(s) => {
                            self.next();
                            Dim::Sym(s.clone())
                        }
                        _ => return Err(self.unexpected("a dimension (a size, a symbol or ?)")),
                    };
                    dims.push(d);
                    if self.eat(&Tok::RBracket) {
                        break;
                    }
                    self.expect(Tok::Comma)?;
                }
            }
            Some(Shape(dims))
        };
        let quant = if self.is_word("q") && *self.peek2() == Tok::LParen {
            Some(Box::new(self.quant()?))
        } else {
            None
        };
        Ok(TensorType {
            dtype,
            shape,
            quant,
        })
    }

    /// `q(axis=.., block=.., scale=[..], zp=[..])`.
    fn quant(&mut self) -> Result<Quant> {
        let q_at = self.next();
        self.expect(Tok::LParen)?;
        let (mut axis, mut block, mut scale, mut zp) = (None, None, None, None);
        loop {
            let at = self.tok().clone();
            let Tok::Ident(key) = self.next().tok else {
                return Err(err_at(
                    &at,
                    format!(
                        "expected axis, block, scale or zp, found {}",
                        at.tok.describe()
                    ),
                ));
            };
            self.expect(Tok::Eq)?;
            let dup = match key.as_str() {
                "axis" => axis.replace(self.uint::<usize>("an axis")?).is_some(),
                "block" => block.replace(self.uint::<u64>("a block size")?).is_some(),
                "scale" => {
                    let mut v = Vec::new();
                    for (s, t) in self.list()? {
                        v.push(to_f32(&s).map_err(|m| err_at(&t, m))?);
                    }
                    scale.replace(v).is_some()
                }
                "zp" => {
                    let mut v = Vec::new();
                    for (s, t) in self.list()? {
                        match s {
                            Scalar::Int(i) => v.push(i64::try_from(i).map_err(|_| {
                                err_at(&t, format!("zero point {i} does not fit in 64 bits"))
                            })?),
                            o => {
                                return Err(err_at(
                                    &t,
                                    format!("a zero point is an integer, not {}", o.kind()),
                                ));
                            }
                        }
                    }
                    zp.replace(v).is_some()
                }
                other => {
                    return Err(err_at(
                        &at,
                        format!("unknown quantization field '{other}' (axis, block, scale, zp)"),
                    ));
                }
            };
            if dup {
                return Err(err_at(&at, format!("'{key}' given twice")));
            }
            if self.eat(&Tok::RParen) {
                break;
            }
            self.expect(Tok::Comma)?;
        }
        let axis = match (axis, block) {
            (None, None) => QuantAxis::PerTensor,
            (Some(axis), None) => QuantAxis::PerAxis { axis },
            (Some(axis), Some(block)) => QuantAxis::PerBlock { axis, block },
            (None, Some(_)) => return Err(err_at(&q_at, "block quantization needs an axis")),
        };
        let (Some(scale), Some(zero_point)) = (scale, zp) else {
            return Err(err_at(&q_at, "quantization needs scale=[..] and zp=[..]"));
        };
        Ok(Quant {
            axis,
            scale,
            zero_point,
        })
    }
}
