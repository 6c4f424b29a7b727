//! Binding input shapes: `name=1,3,224,224` specifications applied to a graph's inputs, symbolic dims bound
//! consistently across inputs, then shape inference re-run so every value's type is as concrete as it can be.

use std::collections::BTreeMap;

use carve_ir::{Dim, Graph, Shape, Type};

/// A shape given for one named input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape {
    /// Input name.
    pub name: String,
    /// Concrete dims.
    pub dims: Vec<u64>,
}

/// Why shapes could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The specification text is malformed.
    #[error("bad input shape '{spec}': {msg} (expected NAME=D1,D2,..., e.g. x=1,3,224,224)")]
    Syntax {
        /// The text given.
        spec: String,
        /// What is wrong.
        msg: String,
    },
    /// No input has this name.
    #[error("the model has no input named '{name}'; its inputs are: {available}")]
    UnknownInput {
        /// The name given.
        name: String,
        /// The model's input names.
        available: String,
    },
    /// The shape contradicts the declared one.
    #[error("input '{name}': shape {given:?} does not fit the declared type {declared}")]
    Mismatch {
        /// Input name.
        name: String,
        /// Dims given.
        given: Vec<u64>,
        /// Declared type.
        declared: String,
    },
    /// Shape inference failed with the bound shapes.
    #[error("with the bound input shapes, {0}")]
    Infer(#[from] carve_ir::infer::InferError),
}

impl std::str::FromStr for InputShape {
    type Err = BindError;

    fn from_str(spec: &str) -> Result<InputShape, BindError> {
        let syntax = |msg: &str| BindError::Syntax {
            spec: spec.to_string(),
            msg: msg.to_string(),
        };
        let (name, dims) = spec.rsplit_once('=').ok_or_else(|| syntax("missing '='"))?;
        if name.is_empty() {
            return Err(syntax("empty input name"));
        }
        let dims = if dims.trim().is_empty() {
            Vec::new()
        } else {
            dims.split(',')
                .map(|d| {
                    d.trim()
                        .parse::<u64>()
                        .map_err(|_| syntax(&format!("'{d}' is not a non-negative integer")))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(InputShape {
            name: name.to_string(),
            dims,
        })
    }
}

/// Binds the given input shapes (and, through them, every symbolic dim with the same name in other inputs),
/// then re-runs shape inference over the graph.
pub fn bind_input_shapes(g: &mut Graph, shapes: &[InputShape]) -> Result<(), BindError> {
    let mut symbols: BTreeMap<String, u64> = BTreeMap::new();
    for s in shapes {
        let v = g
            .inputs
            .iter()
            .copied()
            .find(|&v| g.value(v).name == s.name)
            .ok_or_else(|| BindError::UnknownInput {
                name: s.name.clone(),
                available: g
                    .inputs
                    .iter()
                    .map(|&v| g.value(v).name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mismatch = || BindError::Mismatch {
            name: s.name.clone(),
            given: s.dims.clone(),
            declared: g.ty(v).to_string(),
        };
        let Type::Tensor(t) = g.ty(v) else {
            return Err(mismatch());
        };
        if let Some(shape) = &t.shape {
            if shape.rank() != s.dims.len() {
                return Err(mismatch());
            }
            for (d, &n) in shape.dims().iter().zip(&s.dims) {
                match d {
                    Dim::Known(k) if *k != n => return Err(mismatch()),
                    Dim::Sym(name)
                        if symbols
                            .insert(name.clone(), n)
                            .is_some_and(|prev| prev != n) =>
                    {
                        return Err(mismatch());
                    }
                    _ => {}
                }
            }
        }
    }
    for &v in &g.inputs.clone() {
        let given = shapes.iter().find(|s| s.name == g.value(v).name);
        if let Type::Tensor(t) = &mut g.values[v.index()].ty {
            match (given, &mut t.shape) {
                (Some(s), shape) => *shape = Some(Shape::known(&s.dims)),
                (None, Some(shape)) => {
                    for d in &mut shape.0 {
                        if let Dim::Sym(name) = d
                            && let Some(&n) = symbols.get(name.as_str())
                        {
                            *d = Dim::Known(n);
                        }
                    }
                }
                (None, None) => {}
            }
        }
    }
    // Stored types elsewhere may carry the bound symbols: substitute them, then re-run inference.
    for v in &mut g.values {
        substitute(&mut v.ty, &symbols);
    }
    g.reinfer()?;
    Ok(())
}

fn substitute(t: &mut Type, symbols: &BTreeMap<String, u64>) {
    match t {
        Type::Tensor(t) => {
            for d in t.shape.iter_mut().flat_map(|s| s.0.iter_mut()) {
                if let Dim::Sym(name) = d
                    && let Some(&n) = symbols.get(name.as_str())
                {
                    *d = Dim::Known(n);
                }
            }
        }
        Type::Sequence(e) | Type::Optional(e) | Type::Map(_, e) => substitute(e, symbols),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::ops::elementwise::Relu;
    use carve_ir::{DType, TensorType};

    #[test]
    fn binding_a_symbolic_batch_makes_every_shape_concrete() {
        let mut g = Graph::new("g");
        let n = Dim::Sym("N".into());
        let x = g.add_input(
            "x",
            TensorType::new(DType::F32, Shape(vec![n.clone(), Dim::Known(4)])).into(),
        );
        let y = g
            .add_node("r", Relu::default().into(), vec![Some(x)], vec!["y".into()])
            .unwrap();
        g.outputs = y;
        bind_input_shapes(&mut g, &["x=2,4".parse().unwrap()]).unwrap();
        assert_eq!(g.ty(g.outputs[0]).to_string(), "f32[2,4]");
    }

    #[test]
    fn a_wrong_rank_or_unknown_name_is_a_clear_error() {
        let mut g = Graph::new("g");
        g.add_input("x", TensorType::known(DType::F32, &[1, 4]).into());
        let e = bind_input_shapes(&mut g, &["x=1,4,4".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        let e = bind_input_shapes(&mut g, &["y=1".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("inputs are: x"), "{e}");
        assert!("x".parse::<InputShape>().is_err());
        assert!("x=1,a".parse::<InputShape>().is_err());
    }
}
