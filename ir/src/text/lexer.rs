//! The text format's tokenizer: turns source text into tokens tagged with their line and column, so every
//! parse error can point at the offending character.

use super::{Name, ParseError};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// `%3`, `%x`, `%"input.1"`.
    Value(Name),
    /// `@main`, `@"my graph"`.
    Global(String),
    /// A bare word: op, attribute, dtype and keyword names, `_`, `true`, `inf`, `nan`, ...
    Ident(String),
    /// A numeric literal as written: `12`, `-3`, `0x7fc00001`, `1.5e-3`, `-inf`, `-nan`.
    Num(String),
    /// A quoted string, unescaped.
    Str(String),
    /// Raw bytes `x"0a0b"`.
    Bytes(Vec<u8>),
    /// A content hash `#0123456789abcdef`.
    Hash(u64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Lt,
    Gt,
    Comma,
    Colon,
    Eq,
    Question,
    Star,
    Arrow,
    Eof,
}

impl Tok {
    /// How the token is described in "expected X, found Y" messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Value(n) => format!("value {n}"),
            Tok::Global(g) => format!("'@{g}'"),
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Num(s) => format!("number {s}"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Bytes(_) => "a byte string".to_string(),
            Tok::Hash(_) => "a hash".to_string(),
            Tok::LParen => "'('".to_string(),
            Tok::RParen => "')'".to_string(),
            Tok::LBracket => "'['".to_string(),
            Tok::RBracket => "']'".to_string(),
            Tok::LBrace => "'{'".to_string(),
            Tok::RBrace => "'}'".to_string(),
            Tok::Lt => "'<'".to_string(),
            Tok::Gt => "'>'".to_string(),
            Tok::Comma => "','".to_string(),
            Tok::Colon => "':'".to_string(),
            Tok::Eq => "'='".to_string(),
            Tok::Question => "'?'".to_string(),
            Tok::Star => "'*'".to_string(),
            Tok::Arrow => "'->'".to_string(),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

/// A token with the 1-based line and column (in characters) where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub line: u32,
    pub col: u32,
}

struct Lexer<'s> {
    chars: std::iter::Peekable<std::str::Chars<'s>>,
    line: u32,
    col: u32,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Lexer<'_> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    fn err(&self, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.line, self.col, msg)
    }

    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') => {
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    if ahead.next() != Some('/') {
                        return;
                    }
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => return,
            }
        }
    }

    fn ident(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek() {
            if !is_ident_char(c) {
                break;
            }
            s.push(c);
            self.bump();
        }
        s
    }

    /// A quoted string; the opening quote is the next character.
    fn string(&mut self) -> Result<String, ParseError> {
        let (line, col) = (self.line, self.col);
        self.bump();
        let mut s = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(ParseError::new(line, col, "unterminated string"));
            };
            match c {
                '"' => return Ok(s),
                '\\' => {
                    let esc_col = self.col.saturating_sub(1);
                    let e = self.bump().ok_or_else(|| self.err("unterminated string"))?;
                    match e {
                        '\\' => s.push('\\'),
                        '"' => s.push('"'),
                        '\'' => s.push('\''),
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        '0' => s.push('\0'),
                        'u' => s.push(self.unicode_escape()?),
                        other => {
                            return Err(ParseError::new(
                                self.line,
                                esc_col,
                                format!(
                                    "unknown escape '\\{other}' (use \\\\, \\\", \\n, \\r, \\t, \\0 or \\u{{..}})"
                                ),
                            ));
                        }
                    }
                }
                c => s.push(c),
            }
        }
    }

    /// The `{XXXX}` part of a `\u{XXXX}` escape.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        if self.bump() != Some('{') {
            return Err(self.err("expected '{' after \\u"));
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            let c = self
                .bump()
                .ok_or_else(|| self.err("unterminated \\u{..} escape"))?;
            if c == '}' {
                break;
            }
            let d = c
                .to_digit(16)
                .ok_or_else(|| self.err(format!("'{c}' is not a hex digit")))?;
            digits += 1;
            if digits > 6 {
                return Err(self.err("too many digits in \\u{..} escape"));
            }
            code = code * 16 + d;
        }
        if digits == 0 {
            return Err(self.err("empty \\u{} escape"));
        }
        char::from_u32(code).ok_or_else(|| self.err(format!("\\u{{{code:x}}} is not a character")))
    }

    /// A number; the next character is a digit (a leading '-' was already consumed into `s`).
    fn number(&mut self, mut s: String) -> Result<String, ParseError> {
        let mut ahead = self.chars.clone();
        if ahead.next() == Some('0') && matches!(ahead.next(), Some('x' | 'X')) {
            self.bump();
            self.bump();
            s.push_str("0x");
            let mut any = false;
            while let Some(c) = self.peek() {
                if !c.is_ascii_hexdigit() {
                    break;
                }
                s.push(c);
                self.bump();
                any = true;
            }
            if !any {
                return Err(self.err("expected hex digits after 0x"));
            }
        } else {
            self.digits(&mut s);
            if self.peek() == Some('.') {
                s.push('.');
                self.bump();
                self.digits(&mut s);
            }
            if matches!(self.peek(), Some('e' | 'E')) {
                s.push('e');
                self.bump();
                if let Some(c @ ('+' | '-')) = self.peek() {
                    s.push(c);
                    self.bump();
                }
                if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.err("expected digits in the exponent"));
                }
                self.digits(&mut s);
            }
        }
        if self.peek().is_some_and(is_ident_char) {
            return Err(self.err(format!("malformed number '{s}...'")));
        }
        Ok(s)
    }

    fn digits(&mut self, s: &mut String) {
        while let Some(c) = self.peek() {
            if !c.is_ascii_digit() {
                break;
            }
            s.push(c);
            self.bump();
        }
    }

    /// A name after `%` or `@`: plain identifier, quoted string, or (for `%`) a number.
    fn name(&mut self, sigil: char, allow_num: bool) -> Result<Name, ParseError> {
        match self.peek() {
            Some('"') => Ok(Name::Str(self.string()?)),
            Some(c) if allow_num && c.is_ascii_digit() => {
                let mut n: u64 = 0;
                while let Some(c) = self.peek() {
                    let Some(d) = c.to_digit(10) else { break };
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d)))
                        .ok_or_else(|| self.err("value number too large"))?;
                    self.bump();
                }
                if self.peek().is_some_and(is_ident_char) {
                    return Err(self.err(format!(
                        "a name that starts with a digit must be all digits or quoted: {sigil}\"...\""
                    )));
                }
                Ok(Name::Num(n))
            }
            Some(c) if is_ident_start(c) => Ok(Name::Str(self.ident())),
            _ => Err(self.err(format!(
                "expected a name after '{sigil}' (letters, digits and '_', or a quoted string)"
            ))),
        }
    }

    /// The `"..."` of a byte string `x"..."` that starts at `line:col`.
    fn hex_bytes(&mut self, line: u32, col: u32) -> Result<Vec<u8>, ParseError> {
        let s = self.string()?;
        let digits: Vec<u32> = s
            .chars()
            .map(|c| c.to_digit(16))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ParseError::new(line, col, "byte strings x\"..\" hold hex digits only")
            })?;
        if !digits.len().is_multiple_of(2) {
            return Err(ParseError::new(
                line,
                col,
                "byte strings x\"..\" need an even number of hex digits",
            ));
        }
        Ok(digits
            .chunks_exact(2)
            .map(|p| (p[0] * 16 + p[1]) as u8)
            .collect())
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_space();
        let (line, col) = (self.line, self.col);
        let at = |tok| Token { tok, line, col };
        let Some(c) = self.peek() else {
            return Ok(at(Tok::Eof));
        };
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '{' => Some(Tok::LBrace),
            '}' => Some(Tok::RBrace),
            '<' => Some(Tok::Lt),
            '>' => Some(Tok::Gt),
            ',' => Some(Tok::Comma),
            ':' => Some(Tok::Colon),
            '=' => Some(Tok::Eq),
            '?' => Some(Tok::Question),
            '*' => Some(Tok::Star),
            _ => None,
        };
        if let Some(t) = single {
            self.bump();
            return Ok(at(t));
        }
        let tok = match c {
            '%' => {
                self.bump();
                Tok::Value(self.name('%', true)?)
            }
            '@' => {
                self.bump();
                match self.name('@', false)? {
                    Name::Str(s) => Tok::Global(s),
                    Name::Num(n) => Tok::Global(n.to_string()),
                }
            }
            '#' => {
                self.bump();
                let mut h: u64 = 0;
                let mut digits = 0;
                while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                    digits += 1;
                    if digits > 16 {
                        return Err(self.err("a hash has at most 16 hex digits"));
                    }
                    h = (h << 4) | u64::from(d);
                    self.bump();
                }
                if digits == 0 {
                    return Err(self.err("expected hex digits after '#'"));
                }
                if self.peek().is_some_and(is_ident_char) {
                    return Err(self.err("a hash holds hex digits only"));
                }
                Tok::Hash(h)
            }
            '"' => Tok::Str(self.string()?),
            '-' => {
                self.bump();
                match self.peek() {
                    Some('>') => {
                        self.bump();
                        Tok::Arrow
                    }
                    Some(d) if d.is_ascii_digit() => Tok::Num(self.number("-".to_string())?),
                    Some(a) if is_ident_start(a) => {
                        let w = self.ident();
                        if matches!(w.as_str(), "inf" | "nan" | "NaN") {
                            Tok::Num(format!("-{w}"))
                        } else {
                            return Err(ParseError::new(
                                line,
                                col,
                                format!(
                                    "unexpected '-{w}' (only numbers, inf and nan take a sign)"
                                ),
                            ));
                        }
                    }
                    _ => return Err(ParseError::new(line, col, "unexpected '-'")),
                }
            }
            d if d.is_ascii_digit() => Tok::Num(self.number(String::new())?),
            a if is_ident_start(a) => {
                let w = self.ident();
                if w == "x" && self.peek() == Some('"') {
                    Tok::Bytes(self.hex_bytes(line, col)?)
                } else {
                    Tok::Ident(w)
                }
            }
            other => {
                return Err(ParseError::new(
                    line,
                    col,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        Ok(at(tok))
    }
}

/// Splits `src` into tokens, ending with one [`Tok::Eof`].
pub(super) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer {
        chars: src.chars().peekable(),
        line: 1,
        col: 1,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let end = t.tok == Tok::Eof;
        out.push(t);
        if end {
            return Ok(out);
        }
    }
}
