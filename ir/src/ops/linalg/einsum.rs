//! `einsum`: the equation parser ([`parse_equation`], shared with the interpreter) and inference.

use super::*;

/// One subscript of an einsum term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// A letter naming an axis.
    Label(u8),
    /// `...`: the broadcast batch axes.
    Ellipsis,
}

/// A parsed einsum equation: one term per input and the explicit output term, if any.
pub struct Equation {
    /// One term per input.
    pub inputs: Vec<Vec<Sub>>,
    /// The output term after `->`, when given.
    pub output: Option<Vec<Sub>>,
}

fn parse_term(t: &str) -> Result<Vec<Sub>, String> {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() {
            out.push(Sub::Label(b[i]));
            i += 1;
        } else if b[i..].starts_with(b"...") {
            if out.contains(&Sub::Ellipsis) {
                return Err(format!("term '{t}' has more than one ellipsis"));
            }
            out.push(Sub::Ellipsis);
            i += 3;
        } else {
            return Err(format!(
                "term '{t}' has an invalid character '{}' (labels are letters)",
                char::from(b[i])
            ));
        }
    }
    Ok(out)
}

/// Parses an einsum equation (whitespace ignored), checking that output labels are unique and appear in
/// some input. Shared by type inference and the interpreter's kernel.
pub fn parse_equation(eq: &str) -> Result<Equation, String> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let inputs = lhs
        .split(',')
        .map(parse_term)
        .collect::<Result<Vec<_>, _>>()?;
    let output = rhs.map(parse_term).transpose()?;
    if let Some(o) = &output {
        for (i, s) in o.iter().enumerate() {
            if let Sub::Label(l) = s {
                if o[..i].contains(s) {
                    return Err(format!("output label '{}' appears twice", char::from(*l)));
                }
                if !inputs.iter().any(|t| t.contains(s)) {
                    return Err(format!(
                        "output label '{}' does not appear in any input",
                        char::from(*l)
                    ));
                }
            }
        }
    }
    Ok(Equation { inputs, output })
}

impl Infer for Einsum {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let eq = parse_equation(&self.equation)
            .map_err(|m| cx.err(format!("equation '{}': {m}", self.equation)))?;
        if eq.inputs.len() != cx.num_inputs() {
            return Err(cx.err(format!(
                "equation '{}' has {} input terms, the node has {} inputs",
                self.equation,
                eq.inputs.len(),
                cx.num_inputs()
            )));
        }
        let dtype = numeric(cx, 0)?;
        for i in 1..cx.num_inputs() {
            same_dtype(cx, 0, i)?;
        }
        // Label sizes, and the broadcast shape of the ellipsis dims (None = some rank unknown).
        let mut sizes: Vec<(u8, Dim)> = Vec::new();
        let mut ell: Option<Shape> = Some(Shape::scalar());
        for (i, term) in eq.inputs.iter().enumerate() {
            let n_labels = term.iter().filter(|s| **s != Sub::Ellipsis).count();
            let has_ell = term.contains(&Sub::Ellipsis);
            let t = cx.tensor(i)?;
            let Some(dims) = t.dims() else {
                if has_ell {
                    ell = None;
                }
                for s in term {
                    if let Sub::Label(l) = s
                        && !sizes.iter().any(|(x, _)| x == l)
                    {
                        sizes.push((*l, Dim::Unknown));
                    }
                }
                continue;
            };
            let n_ell = if has_ell {
                dims.len().checked_sub(n_labels)
            } else {
                (dims.len() == n_labels).then_some(0)
            }
            .ok_or_else(|| {
                cx.err(format!(
                    "input {i} has rank {}, its term in '{}' has {n_labels} labels",
                    dims.len(),
                    self.equation
                ))
            })?;
            let mut k = 0;
            for s in term {
                match s {
                    Sub::Ellipsis => {
                        let e = Shape(dims[k..k + n_ell].to_vec());
                        if let Some(cur) = &ell {
                            ell = Some(broadcast_shapes(&[cur, &e]).map_err(|m| {
                                cx.err(format!("ellipsis dims do not broadcast: {m}"))
                            })?);
                        }
                        k += n_ell;
                    }
                    Sub::Label(l) => {
                        let d = &dims[k];
                        match sizes.iter_mut().find(|(x, _)| x == l) {
                            Some((_, cur)) => {
                                *cur = match (&*cur, d) {
                                    (Dim::Known(1), x) | (x, Dim::Known(1)) => x.clone(),
                                    (a, b) if a.conflicts(b) => {
                                        return Err(cx.err(format!(
                                            "label '{}' has sizes {a} and {b}",
                                            char::from(*l)
                                        )));
                                    }
                                    (a, b) => a.refine(b),
                                };
                            }
                            None => sizes.push((*l, d.clone())),
                        }
                        k += 1;
                    }
                }
            }
        }
        let output = match eq.output {
            Some(o) => o,
            None => {
                let mut once: Vec<u8> = sizes
                    .iter()
                    .map(|(l, _)| *l)
                    .filter(|l| {
                        eq.inputs
                            .iter()
                            .flatten()
                            .filter(|s| **s == Sub::Label(*l))
                            .count()
                            == 1
                    })
                    .collect();
                once.sort_unstable();
                let mut o = Vec::new();
                if eq.inputs.iter().any(|t| t.contains(&Sub::Ellipsis)) {
                    o.push(Sub::Ellipsis);
                }
                o.extend(once.into_iter().map(Sub::Label));
                o
            }
        };
        let mut dims = Vec::new();
        for s in &output {
            match s {
                Sub::Ellipsis => match &ell {
                    Some(e) => dims.extend(e.0.iter().cloned()),
                    None => return Ok(vec![out(dtype, None)]),
                },
                Sub::Label(l) => dims.push(
                    sizes
                        .iter()
                        .find(|(x, _)| x == l)
                        .map_or(Dim::Unknown, |(_, d)| d.clone()),
                ),
            }
        }
        Ok(vec![out(dtype, Some(Shape(dims)))])
    }
}
