//! Writing a pruned graph back as standard ONNX: every constant whose content changed (sliced by
//! channel removal, or a bias changed by compensation) replaces the initializer (or `Constant` node)
//! of the same name in the original model, a depthwise conv's restated `group` its node's attribute;
//! shape annotations (`value_info`) of values whose shape
//! changed are dropped, since the importer and other runtimes infer them. The graph structure is
//! untouched: pruning changes only sizes.

use std::collections::BTreeMap;

use carve_frontend::proto::{GraphProto, ModelProto, TensorProto};
use carve_ir::ops::conv::ConvOp;
use carve_ir::{ConstData, Graph, Op};

use crate::compress::CompressError;

/// The changed constants of `pruned` (by value name) relative to `original`, which has the same
/// values in the same order.
fn changed_constants(original: &Graph, pruned: &Graph) -> BTreeMap<String, TensorProto> {
    let mut out = BTreeMap::new();
    for n in &pruned.nodes {
        let Op::Constant(c) = &n.op else { continue };
        let Some(&v) = n.outputs.first() else {
            continue;
        };
        if original.values.get(v.index()).is_some() && original.constant_of(v) == Some(c) {
            continue;
        }
        let ConstData::Bytes(b) = &c.data else {
            continue;
        };
        let dims: Vec<i64> =
            c.ty.dims()
                .map(|d| d.iter().map(|d| d.known().unwrap_or(0) as i64).collect())
                .unwrap_or_default();
        let name = pruned.value(v).name.clone();
        out.insert(
            name.clone(),
            crate::compress::export::tensor(&name, c.ty.dtype, &dims, b.as_bytes().to_vec()),
        );
    }
    out
}

/// Replaces the tensors named in `changed` in `g`'s initializers or `Constant` nodes; returns the
/// names found.
fn replace(g: &mut GraphProto, changed: &BTreeMap<String, TensorProto>) -> Vec<String> {
    let mut found = Vec::new();
    for t in &mut g.initializer {
        if let Some(new) = changed.get(&t.name) {
            *t = new.clone();
            found.push(t.name.clone());
        }
    }
    for n in &mut g.node {
        if n.op_type != "Constant" {
            continue;
        }
        let Some(out) = n.output.first().cloned() else {
            continue;
        };
        if let Some(new) = changed.get(&out) {
            for a in &mut n.attribute {
                if a.name == "value" {
                    a.t = Some(TensorProto {
                        name: String::new(),
                        ..new.clone()
                    });
                    found.push(out.clone());
                }
            }
        }
    }
    found
}

/// Attributes pruning restated (a depthwise conv's `group`), written to the ONNX node that produces
/// the same output; any other changed op is an error.
fn refit_attributes(
    g: &mut GraphProto,
    original: &Graph,
    pruned: &Graph,
) -> Result<(), CompressError> {
    let by_output: BTreeMap<carve_ir::ValueId, &carve_ir::Node> = original
        .nodes
        .iter()
        .filter_map(|n| Some((*n.outputs.first()?, n)))
        .collect();
    for b in &pruned.nodes {
        let Some(a) = b.outputs.first().and_then(|v| by_output.get(v)) else {
            continue;
        };
        if matches!(b.op, Op::Constant(_)) {
            continue;
        }
        let out = b
            .outputs
            .first()
            .map(|&v| pruned.value(v).name.clone())
            .unwrap_or_default();
        if a.inputs != b.inputs {
            let node = g
                .node
                .iter_mut()
                .find(|n| n.output.first() == Some(&out))
                .ok_or_else(|| CompressError::Export(format!("no ONNX node produces '{out}'")))?;
            for (i, v) in b.inputs.iter().enumerate() {
                if a.inputs.get(i) == Some(v) {
                    continue;
                }
                if node.input.len() <= i {
                    node.input.resize(i + 1, String::new());
                }
                node.input[i] = v.map(|v| pruned.value(v).name.clone()).unwrap_or_default();
            }
        }
        if a.op == b.op {
            continue;
        }
        let Op::Conv(ConvOp::Conv(c)) = &b.op else {
            return Err(CompressError::Export(format!(
                "node '{}' ({}) changed in a way the export does not write",
                b.name,
                b.op.name()
            )));
        };
        let node = g
            .node
            .iter_mut()
            .find(|n| n.output.first() == Some(&out))
            .ok_or_else(|| CompressError::Export(format!("no ONNX node produces '{out}'")))?;
        match node.attribute.iter_mut().find(|a| a.name == "group") {
            Some(attr) => attr.i = c.group,
            None => node.attribute.push(carve_frontend::proto::AttributeProto {
                name: "group".into(),
                r#type: 2,
                i: c.group,
                ..Default::default()
            }),
        }
    }
    Ok(())
}

/// `proto` (whose import is `original`) with `pruned`'s constants (see the module doc).
pub fn apply(
    proto: &ModelProto,
    original: &Graph,
    pruned: &Graph,
) -> Result<ModelProto, CompressError> {
    let changed = changed_constants(original, pruned);
    let mut m = proto.clone();
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| CompressError::Export("the model has no graph".into()))?;
    let found = replace(g, &changed);
    for (name, t) in &changed {
        if found.contains(name) {
            continue;
        }
        // A constant pruning created (a compensated conv's new bias) becomes an initializer.
        let created = pruned
            .values
            .iter()
            .enumerate()
            .any(|(i, v)| i >= original.values.len() && &v.name == name);
        if !created {
            return Err(CompressError::Export(format!(
                "pruned constant '{name}' is neither an initializer nor a Constant node of the model"
            )));
        }
        g.initializer.push(t.clone());
    }
    let reshaped: Vec<&str> = original
        .values
        .iter()
        .zip(&pruned.values)
        .filter(|(a, b)| a.ty != b.ty)
        .map(|(a, _)| a.name.as_str())
        .collect();
    g.value_info
        .retain(|vi| !reshaped.contains(&vi.name.as_str()));
    refit_attributes(g, original, pruned)?;
    Ok(m)
}
