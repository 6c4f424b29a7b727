//! The IR text format: a deterministic printer ([`print()`]) and a parser ([`parse`]) that round-trips, so
//! that `print(&parse(&print(&g))?) == print(&g)` byte for byte. Golden tests state their input graphs
//! and their expectations in it.
//!
//! ```
//! let src = "\
//! graph @tiny(%x: f32[N,4]) -> (f32[N,4]) {
//!   %0 = const f32[] [0.5]
//!   %1 = leaky_relu(%x) {alpha=0.2} : f32[N,4]
//!   return %1
//! }
//! ";
//! let g = carve_ir::text::parse(src)?;
//! assert_eq!(carve_ir::text::print(&g), src);
//! # Ok::<(), carve_ir::text::ParseError>(())
//! ```
//!
//! # Syntax
//!
//! ```text
//! graph    := 'graph' GLOBAL '(' [param {',' param}] ')' ['captures' '(' capture {',' capture} ')']
//!             '->' '(' [type {',' type}] ')' '{' {stmt} 'return' [VALUE {',' VALUE}] '}'
//! param    := VALUE ':' type
//! capture  := VALUE ['as' VALUE] [':' type]        outer name, inner name (default: the same), inner type
//! stmt     := results '=' 'const' const [':' type] a constant (type printed only if not the constant's)
//!           | results '=' OP '(' [operand {',' operand}] ')' ['{' [attr {',' attr}] '}'] [':' type {',' type}]
//! results  := VALUE {',' VALUE} | '_'               '_' for a node without results
//! operand  := VALUE | '_'                           '_' is an omitted optional input
//! attr     := IDENT '=' value
//! value    := INT | FLOAT | 'true' | 'false' | STRING | IDENT | '_' (absent) | list | 'const' const | graph
//! list     := '[' [scalar {',' scalar}] ']'        all ints, floats (ints allowed) or strings; [] is ints
//! const    := tensortype [format] data
//! format   := 'csr' | 'bitmap' | 'bcsr' R 'x' C (one word, e.g. bcsr4x4) | N ':' M     (dense: omitted)
//! data     := '[' [scalar {',' scalar}] ']'        every element, row-major (dense numeric/bool/string)
//!           | HASH                                  content hash of an elided constant, '#' 16 hex digits
//!           | 'x"' hex '"'                          raw little-endian bytes (f8/f4/complex, sparse formats)
//! type     := tensortype | 'seq' '<' type '>' | 'opt' '<' type '>' | 'map' '<' DTYPE ',' type '>'
//! tensortype := DTYPE '[' ('*' | [dim {',' dim}]) ']' [quant]
//! dim      := INT | '?' | IDENT | STRING            concrete, unknown, symbolic (quoted if not a word)
//! quant    := 'q' '(' ['axis' '=' INT ','] ['block' '=' INT ','] 'scale' '=' '[' floats ']' ','
//!             'zp' '=' '[' ints ']' ')'
//! VALUE    := '%' (DIGITS | WORD | STRING)          %3 and %"3" are different names
//! GLOBAL   := '@' (WORD | STRING)
//! FLOAT    := decimal with '.' or 'e' | 'inf' | '-inf' | 'nan' | 'nan(0x' HEX ')' (exact NaN bits)
//! ```
//!
//! Graph inputs are printed with their source names (quoted when not a plain word, made unique with a
//! `.1`, `.2`, ... suffix); every other value is numbered `%0, %1, ...` in definition order. A subgraph
//! (an attribute) sees only its own inputs, its captures and its own values: its numbering starts after the
//! numbers in use where it is printed, and a captured outer value keeps its outer name inside unless that
//! clashes (`captures(%x as %9)`). A top-level graph's captures name parent values by index, with their type.
//! Source names of non-input values and node names are not printed; a parsed graph gets synthetic ones.
//! Constants with more than [`crate::INLINE_ELEMENTS`] elements are printed by content hash and parse back
//! as [`crate::ConstData::Elided`]. `//` starts a comment that runs to the end of the line.

mod lexer;
mod literal;
mod parse;
mod print;
#[cfg(test)]
mod tests;

use std::fmt;

pub use parse::parse;
pub use print::print;

/// Graphs and types nested deeper than this are refused by the parser (so no input can exhaust the stack).
pub const MAX_DEPTH: usize = 64;

/// A text-format syntax or consistency error, with the 1-based line and column where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {msg}")]
pub struct ParseError {
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// What is wrong, and the fix where one is known.
    pub msg: String,
}

impl ParseError {
    fn new(line: u32, col: u32, msg: impl Into<String>) -> ParseError {
        ParseError {
            line,
            col,
            msg: msg.into(),
        }
    }
}

/// A printed value name: numbered (`%3`) or a word / quoted string (`%x`, `%"input.1"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Name {
    Num(u64),
    Str(String),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Num(n) => write!(f, "%{n}"),
            Name::Str(s) => {
                f.write_str("%")?;
                f.write_str(&word_or_quoted(s))
            }
        }
    }
}

/// True for words that print bare: an ASCII letter or `_`, then letters, digits and `_`.
fn is_word(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` bare if it is a word, else quoted.
fn word_or_quoted(s: &str) -> String {
    if is_word(s) { s.to_string() } else { quoted(s) }
}

/// `s` as a quoted string literal with `\\`, `\"`, `\n`, `\r`, `\t` and `\u{..}` (other control
/// characters) escapes.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
