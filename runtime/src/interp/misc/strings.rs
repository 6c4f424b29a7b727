//! String kernels: `string_normalizer`, `string_concat` and `string_split`.
//!
//! `string_normalizer` follows the ONNX specification and ONNX Runtime: whole elements equal to a
//! stopword are removed (compared case-insensitively unless `is_case_sensitive`), then the case is
//! changed; when nothing is left the result is one empty string (`[1]` or `[1, 1]`). (The Python
//! reference instead removes stopwords word by word inside each element and strips accents; the two agree
//! on single-word elements.) Case changes use Unicode's full case mappings; `locale` is not consulted.
//! `string_split` follows Python's `str.split`, which the specification cites.

use carve_ir::ops::misc::{CaseChange, RegexFullMatch, StringNormalizer, StringSplit};

use crate::interp::util::{broadcast_index, broadcast_shape, checked_numel};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

fn strings<'a>(cx: &EvalCtx<'a>, i: usize) -> Result<(&'a Tensor, &'a [String]), RunError> {
    let t = cx.tensor(i)?;
    match &t.data {
        Data::Str(s) => Ok((t, s)),
        _ => Err(cx.err(format!(
            "input {i} must be a string tensor, got {}",
            t.dtype()
        ))),
    }
}

fn str_tensor(cx: &EvalCtx, shape: Vec<usize>, v: Vec<String>) -> Result<Value, RunError> {
    Tensor::new(shape, Data::Str(v))
        .map(Value::Tensor)
        .map_err(|e| cx.err(e.0))
}

/// `string_normalizer`.
pub fn normalizer(op: &StringNormalizer, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (x, s) = strings(cx, 0)?;
    let two_d = match x.shape[..] {
        [_] => false,
        [1, _] => true,
        _ => {
            return Err(cx.err(format!(
                "input must be [C] or [1, C], got shape {:?}",
                x.shape
            )));
        }
    };
    let fold = |w: &str| {
        if op.is_case_sensitive {
            w.to_string()
        } else {
            w.to_lowercase()
        }
    };
    let stops: std::collections::HashSet<String> = op.stopwords.iter().map(|w| fold(w)).collect();
    let mut out: Vec<String> = s
        .iter()
        .filter(|w| stops.is_empty() || !stops.contains(&fold(w)))
        .map(|w| match op.case_change_action {
            CaseChange::None => w.clone(),
            CaseChange::Lower => w.to_lowercase(),
            CaseChange::Upper => w.to_uppercase(),
        })
        .collect();
    if out.is_empty() {
        out.push(String::new());
    }
    let shape = if two_d {
        vec![1, out.len()]
    } else {
        vec![out.len()]
    };
    Ok(vec![str_tensor(cx, shape, out)?])
}

/// `string_concat`: elementwise, with broadcasting.
pub fn concat(cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (a, sa) = strings(cx, 0)?;
    let (b, sb) = strings(cx, 1)?;
    let shape = broadcast_shape(&a.shape, &b.shape).map_err(|e| cx.err(e.0))?;
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    let ia = broadcast_index(&shape, &a.shape);
    let ib = broadcast_index(&shape, &b.shape);
    let out = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| {
            let mut r = String::with_capacity(sa[i].len() + sb[j].len());
            r.push_str(&sa[i]);
            r.push_str(&sb[j]);
            r
        })
        .collect();
    Ok(vec![str_tensor(cx, shape, out)?])
}

/// Python's `str.isspace` for one character (Unicode White_Space plus the ASCII separators 0x1c-0x1f).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split(None, maxsplit)`: runs of whitespace separate, leading and trailing whitespace is
/// ignored, and after `maxsplit` splits the (left-trimmed) rest is one piece.
fn split_whitespace(s: &str, maxsplit: Option<usize>) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s.trim_start_matches(py_space);
    while !rest.is_empty() {
        if maxsplit.is_some_and(|m| out.len() >= m) {
            out.push(rest.to_string());
            break;
        }
        match rest.find(py_space) {
            Some(end) => {
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start_matches(py_space);
            }
            None => {
                out.push(rest.to_string());
                break;
            }
        }
    }
    out
}

/// `string_split`: outputs the substrings padded with empty strings to one more dim, and the counts.
pub fn split(op: &StringSplit, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (x, s) = strings(cx, 0)?;
    let maxsplit = match op.maxsplit {
        Some(m) => Some(
            usize::try_from(m).map_err(|_| cx.err(format!("maxsplit must be >= 0, got {m}")))?,
        ),
        None => None,
    };
    let parts: Vec<Vec<String>> = s
        .iter()
        .map(|w| {
            if op.delimiter.is_empty() {
                split_whitespace(w, maxsplit)
            } else {
                let pieces = maxsplit.map_or(usize::MAX, |m| m.saturating_add(1));
                w.splitn(pieces, op.delimiter.as_str())
                    .map(str::to_string)
                    .collect()
            }
        })
        .collect();
    let width = parts.iter().map(Vec::len).max().unwrap_or(0);
    let mut shape = x.shape.clone();
    shape.push(width);
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    let mut flat = Vec::with_capacity(parts.len() * width);
    let mut counts = Vec::with_capacity(parts.len());
    for p in parts {
        counts.push(p.len() as i64);
        let pad = width - p.len();
        flat.extend(p);
        flat.extend(std::iter::repeat_n(String::new(), pad));
    }
    let mut out = vec![str_tensor(cx, shape, flat)?];
    if cx.num_outputs() >= 2 {
        let t = Tensor::new(x.shape.clone(), Data::I64(counts)).map_err(|e| cx.err(e.0))?;
        out.push(Value::Tensor(t));
    }
    Ok(out)
}

/// `regex_full_match`: whether each string matches `pattern` in full (bool, same shape). The pattern uses
/// the `regex` crate's syntax, which is RE2's (the ONNX spec's) minus a few rarely used constructs; a pattern
/// it cannot compile is an error naming the pattern.
pub fn regex_full_match(op: &RegexFullMatch, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let (t, v) = strings(cx, 0)?;
    let re = regex::Regex::new(&format!("^(?:{})$", op.pattern))
        .map_err(|e| cx.err(format!("pattern '{}' does not compile: {e}", op.pattern)))?;
    let out: Vec<bool> = v.iter().map(|s| re.is_match(s)).collect();
    let t = Tensor::new(t.shape.clone(), Data::Bool(out)).map_err(|e| cx.err(e.0))?;
    Ok(vec![Value::Tensor(t)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_split_is_pythons() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(split_whitespace("  a b  c ", None), s(&["a", "b", "c"]));
        assert_eq!(split_whitespace("  a b  c ", Some(1)), s(&["a", "b  c "]));
        assert_eq!(split_whitespace("  a b ", Some(0)), s(&["a b "]));
        assert_eq!(split_whitespace("   ", Some(0)), Vec::<String>::new());
        assert_eq!(split_whitespace("", None), Vec::<String>::new());
    }
}
