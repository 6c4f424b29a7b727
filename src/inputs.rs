//! Validating a model's runtime inputs before running it: every input present exactly once, no extra
//! names, the right kind (tensor/sequence/optional), dtype and rank, concrete dims equal, and symbolic dims
//! bound consistently across all inputs (`N` is the same everywhere). Errors name the input and the axis.

use std::collections::BTreeMap;

use carve_ir::{Dim, Graph, Type};
use carve_runtime::interp::Value;

/// A problem with the inputs given for a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A model input was not given.
    #[error("input '{name}' ({expected}) is missing")]
    Missing {
        /// Input name.
        name: String,
        /// Its declared type.
        expected: String,
    },
    /// A value was given for a name the model does not have.
    #[error("the model has no input named '{name}'; its inputs are: {available}")]
    Unknown {
        /// The name given.
        name: String,
        /// The model's input names.
        available: String,
    },
    /// The same input was given twice.
    #[error("input '{name}' is given more than once")]
    Duplicate {
        /// Input name.
        name: String,
    },
    /// The value does not have the declared type.
    #[error("input '{name}': {msg}")]
    Mismatch {
        /// Input name.
        name: String,
        /// What differs.
        msg: String,
    },
}

fn check(
    name: &str,
    ty: &Type,
    v: &Value,
    symbols: &mut BTreeMap<String, (usize, String)>,
) -> Result<(), InputError> {
    let mismatch = |msg: String| InputError::Mismatch {
        name: name.to_string(),
        msg,
    };
    match (ty, v) {
        (Type::Tensor(t), Value::Tensor(x)) => {
            if t.dtype != x.dtype() {
                return Err(mismatch(format!(
                    "dtype is {}, the model expects {}",
                    x.dtype(),
                    t.dtype
                )));
            }
            let Some(shape) = &t.shape else { return Ok(()) };
            if shape.rank() != x.rank() {
                return Err(mismatch(format!(
                    "shape {:?} has rank {}, the model expects rank {} ({ty})",
                    x.shape,
                    x.rank(),
                    shape.rank()
                )));
            }
            for (axis, (d, &n)) in shape.dims().iter().zip(&x.shape).enumerate() {
                match d {
                    Dim::Known(k) if *k != n as u64 => {
                        return Err(mismatch(format!(
                            "dim {axis} is {n}, the model expects {k} ({ty})"
                        )));
                    }
                    Dim::Sym(s) => match symbols.get(s) {
                        Some((bound, by)) if *bound != n => {
                            return Err(mismatch(format!(
                                "dim {axis} is {n}, but symbol '{s}' is {bound} in input '{by}'"
                            )));
                        }
                        Some(_) => {}
                        None => {
                            symbols.insert(s.clone(), (n, name.to_string()));
                        }
                    },
                    _ => {}
                }
            }
            Ok(())
        }
        (Type::Sequence(e), Value::Sequence(items)) => items
            .iter()
            .try_for_each(|x| check(name, e, x, &mut BTreeMap::new())),
        (Type::Optional(e), Value::Optional(x)) => match x {
            Some(x) => check(name, e, x, symbols),
            None => Ok(()),
        },
        (Type::Optional(e), x) => check(name, e, x, symbols),
        (t, x) => Err(mismatch(format!(
            "a {} was given, the model expects {t}",
            x.kind()
        ))),
    }
}

/// Checks named values against the graph's inputs and returns them in the graph's input order.
pub fn order_and_check(g: &Graph, given: Vec<(String, Value)>) -> Result<Vec<Value>, InputError> {
    let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
    let mut by_name: BTreeMap<String, Value> = BTreeMap::new();
    for (n, v) in given {
        if !names.contains(&n.as_str()) {
            return Err(InputError::Unknown {
                name: n,
                available: names.join(", "),
            });
        }
        if by_name.insert(n.clone(), v).is_some() {
            return Err(InputError::Duplicate { name: n });
        }
    }
    let mut symbols = BTreeMap::new();
    let mut out = Vec::with_capacity(names.len());
    for &v in &g.inputs {
        let name = &g.value(v).name;
        let x = by_name.remove(name).ok_or_else(|| InputError::Missing {
            name: name.clone(),
            expected: g.ty(v).to_string(),
        })?;
        check(name, g.ty(v), &x, &mut symbols)?;
        out.push(x);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use carve_ir::{DType, Shape, TensorType};
    use carve_runtime::{Data, Tensor};

    fn graph() -> Graph {
        let mut g = Graph::new("g");
        let n = Dim::Sym("N".into());
        g.add_input(
            "a",
            TensorType::new(DType::F32, Shape(vec![n.clone(), Dim::Known(2)])).into(),
        );
        g.add_input("b", TensorType::new(DType::F32, Shape(vec![n])).into());
        g
    }

    fn t(shape: Vec<usize>) -> Value {
        let n = shape.iter().product();
        Value::Tensor(Tensor::new(shape, Data::F32(vec![0.0; n])).unwrap())
    }

    #[test]
    fn inputs_are_ordered_and_symbols_bound_consistently() {
        let g = graph();
        let ok = order_and_check(
            &g,
            vec![("b".into(), t(vec![3])), ("a".into(), t(vec![3, 2]))],
        )
        .unwrap();
        assert_eq!(ok[0], t(vec![3, 2]));
        let e = order_and_check(
            &g,
            vec![("a".into(), t(vec![3, 2])), ("b".into(), t(vec![4]))],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("symbol 'N' is 3 in input 'a'"),
            "{e}"
        );
    }

    #[test]
    fn missing_extra_and_mistyped_inputs_are_named() {
        let g = graph();
        let e = order_and_check(&g, vec![("a".into(), t(vec![1, 2]))]).unwrap_err();
        assert!(
            e.to_string().contains("'b'") && e.to_string().contains("missing"),
            "{e}"
        );
        let e = order_and_check(&g, vec![("c".into(), t(vec![1]))]).unwrap_err();
        assert!(e.to_string().contains("inputs are: a, b"), "{e}");
        let e = order_and_check(
            &g,
            vec![("a".into(), t(vec![1, 3])), ("b".into(), t(vec![1]))],
        )
        .unwrap_err();
        assert!(e.to_string().contains("dim 1 is 3"), "{e}");
        let i = Value::Tensor(Tensor::new(vec![1, 2], Data::I64(vec![0, 0])).unwrap());
        let e = order_and_check(&g, vec![("a".into(), i), ("b".into(), t(vec![1]))]).unwrap_err();
        assert!(e.to_string().contains("dtype is i64"), "{e}");
    }
}
