//! The verifier: checks that a graph is well formed — every value defined exactly once and before use,
//! ids in range, producer links consistent, stored types agreeing with inference, constants matching their
//! types, quantization parameters consistent, and subgraph captures referring to visible outer values.
//! Every pass must leave a graph this accepts.

use crate::infer::{InferCtx, compatible};
use crate::{ConstData, Constant, Graph, Op, QuantAxis, Type, ValueId};

/// Why a graph failed verification: the graph path (`main/then_branch`), the node if any, and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("verifier: graph '{graph}'{}: {msg}", node.as_ref().map(|n| format!(", node '{n}'")).unwrap_or_default())]
pub struct VerifyError {
    /// Path of nested graph names.
    pub graph: String,
    /// The node, if the problem is in one.
    pub node: Option<String>,
    /// What is wrong.
    pub msg: String,
}

/// Verifies a top-level graph (which must have no captures).
pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    if !g.captures.is_empty() {
        return Err(VerifyError {
            graph: g.name.clone(),
            node: None,
            msg: "a top-level graph cannot capture values".into(),
        });
    }
    verify_graph(g, &g.name, None)
}

struct Checker<'a> {
    g: &'a Graph,
    path: &'a str,
    defined: Vec<bool>,
}

impl Checker<'_> {
    fn err(&self, node: Option<&str>, msg: impl Into<String>) -> VerifyError {
        VerifyError {
            graph: self.path.to_string(),
            node: node.map(str::to_string),
            msg: msg.into(),
        }
    }

    fn check_id(&self, v: ValueId, node: Option<&str>, what: &str) -> Result<(), VerifyError> {
        if v.index() >= self.g.values.len() {
            return Err(self.err(
                node,
                format!("{what} refers to value #{} beyond the value table", v.0),
            ));
        }
        Ok(())
    }

    fn define(&mut self, v: ValueId, node: Option<&str>, what: &str) -> Result<(), VerifyError> {
        self.check_id(v, node, what)?;
        if std::mem::replace(&mut self.defined[v.index()], true) {
            return Err(self.err(
                node,
                format!(
                    "{what}: value #{} ('{}') is defined twice",
                    v.0,
                    self.g.value(v).name
                ),
            ));
        }
        Ok(())
    }

    fn use_(&self, v: ValueId, node: Option<&str>, what: &str) -> Result<(), VerifyError> {
        self.check_id(v, node, what)?;
        if !self.defined[v.index()] {
            return Err(self.err(
                node,
                format!(
                    "{what} uses value #{} ('{}') before it is defined",
                    v.0,
                    self.g.value(v).name
                ),
            ));
        }
        Ok(())
    }
}

/// `outer`: the parent graph and the values defined in it at the point of the node holding this graph.
fn verify_graph(
    g: &Graph,
    path: &str,
    outer: Option<(&Graph, &[bool])>,
) -> Result<(), VerifyError> {
    let mut c = Checker {
        g,
        path,
        defined: vec![false; g.values.len()],
    };
    for (i, &v) in g.inputs.iter().enumerate() {
        c.define(v, None, &format!("input {i}"))?;
    }
    for (i, cap) in g.captures.iter().enumerate() {
        c.define(cap.inner, None, &format!("capture {i}"))?;
        let Some((parent, visible)) = outer else {
            return Err(c.err(None, "captures values but has no enclosing graph"));
        };
        if cap.outer.index() >= parent.values.len() || !visible[cap.outer.index()] {
            return Err(c.err(
                None,
                format!(
                    "capture {i} refers to outer value #{} that is not visible",
                    cap.outer.0
                ),
            ));
        }
        if !compatible(parent.ty(cap.outer), g.ty(cap.inner)) {
            return Err(c.err(
                None,
                format!(
                    "capture {i}: inner type {} differs from outer type {}",
                    g.ty(cap.inner),
                    parent.ty(cap.outer)
                ),
            ));
        }
    }
    for (ni, n) in g.nodes.iter().enumerate() {
        let label = if n.name.is_empty() {
            format!("#{ni}")
        } else {
            n.name.clone()
        };
        let node = Some(label.as_str());
        for (i, v) in n.inputs.iter().enumerate() {
            if let Some(v) = v {
                c.use_(*v, node, &format!("input {i}"))?;
            }
        }
        for (k, sub) in n.op.subgraphs().into_iter().enumerate() {
            let sub_path = format!(
                "{path}/{}",
                if sub.name.is_empty() {
                    format!("sub{k}")
                } else {
                    sub.name.clone()
                }
            );
            verify_graph(sub, &sub_path, Some((g, &c.defined)))?;
        }
        if let Op::Constant(k) = &n.op {
            check_constant(k).map_err(|m| c.err(node, m))?;
        }
        let inferred = {
            let cx = InferCtx::new(g, &n.name, &n.op, &n.inputs, n.outputs.len());
            n.op.infer(&cx)
                .map_err(|e| c.err(node, format!("type inference fails: {}", e.msg)))?
        };
        if inferred.len() != n.outputs.len() {
            return Err(c.err(
                node,
                format!(
                    "{} outputs, inference gives {}",
                    n.outputs.len(),
                    inferred.len()
                ),
            ));
        }
        for (k, (&o, t)) in n.outputs.iter().zip(&inferred).enumerate() {
            c.define(o, node, &format!("output {k}"))?;
            let stored = g.ty(o);
            if !compatible(stored, t) {
                return Err(c.err(
                    node,
                    format!("output {k} is typed {stored} but inference gives {t}"),
                ));
            }
            check_type(stored).map_err(|m| c.err(node, format!("output {k}: {m}")))?;
            if g.values[o.index()].producer != Some((crate::NodeId(ni as u32), k as u32)) {
                return Err(c.err(
                    node,
                    format!("output {k}: producer link is stale (run Graph::rebuild_producers)"),
                ));
            }
        }
    }
    for (i, &v) in g.outputs.iter().enumerate() {
        c.use_(v, None, &format!("graph output {i}"))?;
    }
    Ok(())
}

fn check_constant(k: &Constant) -> Result<(), String> {
    let shape = k.ty.shape.as_ref().ok_or("constant has unknown rank")?;
    let count = shape
        .num_elements()
        .ok_or("constant shape is not fully known")?;
    match &k.data {
        ConstData::Strings(s) if s.len() as u64 != count => {
            Err(format!("{} strings for {count} elements", s.len()))
        }
        ConstData::Bytes(b) if k.format == crate::ConstFormat::Dense => {
            let want =
                k.ty.dtype
                    .storage_bytes(count)
                    .ok_or("constant size overflows")?;
            if b.len() as u64 != want {
                return Err(format!(
                    "{} bytes for {}, which needs {want}",
                    b.len(),
                    k.ty
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_type(t: &Type) -> Result<(), String> {
    let Type::Tensor(t) = t else { return Ok(()) };
    let Some(q) = &t.quant else { return Ok(()) };
    if q.scale.len() != q.zero_point.len() {
        return Err(format!(
            "quantization has {} scales and {} zero points",
            q.scale.len(),
            q.zero_point.len()
        ));
    }
    if let QuantAxis::PerAxis { axis } | QuantAxis::PerBlock { axis, .. } = q.axis
        && let Some(r) = t.rank()
        && axis >= r
    {
        return Err(format!(
            "quantization axis {axis} is out of range for rank {r}"
        ));
    }
    if let (QuantAxis::PerAxis { axis }, Some(dims)) = (&q.axis, t.dims())
        && let Some(n) = dims.get(*axis).and_then(|d| d.known())
        && n != q.scale.len() as u64
    {
        return Err(format!(
            "per-axis quantization has {} scales for dim {n}",
            q.scale.len()
        ));
    }
    if q.axis == QuantAxis::PerTensor && q.scale.len() != 1 {
        return Err(format!(
            "per-tensor quantization has {} scales",
            q.scale.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::elementwise::Relu;
    use crate::{DType, Node, TensorType};

    fn tiny() -> Graph {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TensorType::known(DType::F32, &[2]).into());
        let y = g
            .add_node("r", Relu::default().into(), vec![Some(x)], vec!["y".into()])
            .unwrap();
        g.outputs = y;
        g
    }

    #[test]
    fn a_well_formed_graph_verifies() {
        verify(&tiny()).unwrap();
    }

    #[test]
    fn use_before_definition_is_rejected() {
        let mut g = tiny();
        let z = g.add_value("z", TensorType::known(DType::F32, &[2]).into());
        g.nodes[0].inputs[0] = Some(z);
        let e = verify(&g).unwrap_err();
        assert!(e.msg.contains("before it is defined"), "{e}");
    }

    #[test]
    fn a_stored_type_that_contradicts_inference_is_rejected() {
        let mut g = tiny();
        let y = g.outputs[0];
        g.values[y.index()].ty = TensorType::known(DType::F32, &[3]).into();
        let e = verify(&g).unwrap_err();
        assert!(e.msg.contains("inference gives"), "{e}");
    }

    #[test]
    fn a_value_defined_twice_is_rejected() {
        let mut g = tiny();
        let x = g.inputs[0];
        g.nodes.push(Node {
            name: "dup".into(),
            op: Relu::default().into(),
            inputs: vec![Some(x)],
            outputs: vec![x],
        });
        let e = verify(&g).unwrap_err();
        assert!(e.msg.contains("defined twice"), "{e}");
    }

    #[test]
    fn a_constant_with_the_wrong_byte_count_is_rejected() {
        let mut g = Graph::new("c");
        let k = Constant::from_f32s(&[2], &[1.0, 2.0]);
        let mut bad = k.clone();
        bad.ty = TensorType::known(DType::F32, &[3]);
        let v = g.add_const("k", bad);
        g.outputs = vec![v];
        assert!(verify(&g).unwrap_err().msg.contains("bytes"));
    }
}
