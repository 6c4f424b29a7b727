//! Writing int8 decisions back as standard ONNX (QDQ form): each quantized layer's weight becomes an
//! int8 initializer with per-channel scales and a `DequantizeLinear`, its bias an int32 initializer with
//! a `DequantizeLinear` (scale = data scale × weight scale), and its data input passes through a
//! `QuantizeLinear` → `DequantizeLinear` pair (shared by the layers reading the same tensor). Any
//! runtime loads the result; ONNX Runtime fuses the pattern into its integer kernels, and carve imports
//! the same file for its own JIT/AOT compile.
//!
//! Per-channel `DequantizeLinear` needs opset 13; for older models the per-channel scale is applied by a
//! `Mul` after a per-tensor `DequantizeLinear` (same values, any opset from 10).

use std::collections::{BTreeMap, BTreeSet};

use carve_frontend::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
use carve_ir::DType;
use carve_passes::quantize::LayerQuant;

use super::CompressError;

/// ONNX attribute type code of an int.
const ATTR_INT: i32 = 2;

pub(super) fn tensor(name: &str, dtype: DType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: dtype.onnx_code(),
        raw_data: raw.into(),
        ..TensorProto::default()
    }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, axis: Option<i64>) -> NodeProto {
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute: axis
            .map(|a| AttributeProto {
                name: "axis".into(),
                r#type: ATTR_INT,
                i: a,
                ..AttributeProto::default()
            })
            .into_iter()
            .collect(),
        ..NodeProto::default()
    }
}

/// The default-domain opset of the model.
fn opset(m: &ModelProto) -> i64 {
    m.opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1)
}

/// Every name that appears as an input anywhere (nested graphs included) or as a graph output.
pub(super) fn used_names(g: &GraphProto, out: &mut BTreeSet<String>) {
    for n in &g.node {
        out.extend(n.input.iter().cloned());
        for a in &n.attribute {
            if let Some(sg) = &a.g {
                used_names(sg, out);
            }
            for sg in &a.graphs {
                used_names(sg, out);
            }
        }
    }
    out.extend(g.output.iter().map(|o| o.name.clone()));
}

/// A per-channel constant dequantized: int values `q` of `dims` (ONNX type `qtype`) with per-channel
/// `scales` along `axis` (zero points 0). Adds initializers and nodes producing `<name>_dequantized`.
struct Dequant<'a> {
    name: &'a str,
    dtype: DType,
    dims: &'a [i64],
    raw: Vec<u8>,
    scales: &'a [f32],
    axis: usize,
}

/// Initializers and nodes to add.
#[derive(Default)]
struct Additions {
    inits: Vec<TensorProto>,
    /// Nodes to place before the node at this index (weights: index 0).
    nodes: BTreeMap<usize, Vec<NodeProto>>,
}

impl Additions {
    fn dequant(&mut self, d: Dequant<'_>, opset: i64) -> String {
        let (q, s, z, out) = (
            format!("{}_quantized", d.name),
            format!("{}_scale", d.name),
            format!("{}_zero_point", d.name),
            format!("{}_dequantized", d.name),
        );
        let c = d.scales.len() as i64;
        self.inits.push(tensor(&q, d.dtype, d.dims, d.raw));
        let width = (d.dtype.bits() / 8).max(1) as usize;
        let dq = format!("{}_DequantizeLinear", d.name);
        let nodes = self.nodes.entry(0).or_default();
        if opset >= 13 {
            self.inits
                .push(tensor(&s, DType::F32, &[c], f32s(d.scales)));
            self.inits
                .push(tensor(&z, d.dtype, &[c], vec![0; width * d.scales.len()]));
            nodes.push(node(
                "DequantizeLinear",
                &dq,
                &[&q, &s, &z],
                &out,
                Some(d.axis as i64),
            ));
        } else {
            // Per-tensor DequantizeLinear (scale 1), then the per-channel scale broadcast along `axis`.
            let one = format!("{}_unit_scale", d.name);
            let ints = format!("{}_as_float", d.name);
            self.inits.push(tensor(&one, DType::F32, &[], f32s(&[1.0])));
            self.inits.push(tensor(&z, d.dtype, &[], vec![0; width]));
            let mut sdims = vec![1i64; d.dims.len() - d.axis];
            sdims[0] = c;
            self.inits
                .push(tensor(&s, DType::F32, &sdims, f32s(d.scales)));
            nodes.push(node("DequantizeLinear", &dq, &[&q, &one, &z], &ints, None));
            nodes.push(node(
                "Mul",
                &format!("{}_scale_Mul", d.name),
                &[&ints, &s],
                &out,
                None,
            ));
        }
        out
    }
}

/// Moves the tensor of a `Constant` node (attribute `value`) producing `name` into the initializers.
pub(super) fn constant_to_initializer(g: &mut GraphProto, name: &str) {
    if g.initializer.iter().any(|t| t.name == name) {
        return;
    }
    let Some(i) = g.node.iter().position(|n| {
        n.op_type == "Constant"
            && n.domain.is_empty()
            && n.output.first().map(String::as_str) == Some(name)
            && n.attribute.len() == 1
            && n.attribute[0].name == "value"
            && n.attribute[0].t.is_some()
    }) else {
        return;
    };
    let n = g.node.remove(i);
    if let Some(mut t) = n.attribute.into_iter().next().and_then(|a| a.t) {
        t.name = name.to_string();
        g.initializer.push(t);
    }
}

/// Applies `layers` to `model` (the float model the decisions were made on). Fails naming the layer
/// when a weight or bias is not an initializer of the main graph or its node cannot be found.
pub fn apply(model: &ModelProto, layers: &[LayerQuant]) -> Result<ModelProto, CompressError> {
    let mut m = model.clone();
    let opset = opset(&m);
    if opset < 10 {
        return Err(CompressError::Export(format!(
            "the model's opset {opset} has no QuantizeLinear (opset 10 or newer is needed)"
        )));
    }
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| CompressError::Export("the model has no graph".into()))?;
    // Weights and biases held by Constant nodes become initializers (same value, same name), so that
    // they can be replaced like any other.
    for lq in layers {
        let names = [Some(&lq.layer.weight), lq.layer.bias.as_ref()];
        for name in names.into_iter().flatten() {
            constant_to_initializer(g, name);
        }
    }
    let mut add = Additions::default();
    let mut act: BTreeMap<String, String> = BTreeMap::new();
    // Where each layer's node is, and the first node reading each quantized data input (its Q/DQ pair
    // goes there).
    let mut at_of = Vec::with_capacity(layers.len());
    let mut first_use: BTreeMap<&str, usize> = BTreeMap::new();
    for lq in layers {
        let l = &lq.layer;
        let at = g
            .node
            .iter()
            .position(|n| {
                n.input.get(l.site.data) == Some(&l.data)
                    && n.input.get(l.site.weight) == Some(&l.weight)
            })
            .ok_or_else(|| {
                CompressError::Export(format!(
                    "layer '{}' ({}): no ONNX node reads its data and weight",
                    l.node, l.op
                ))
            })?;
        at_of.push(at);
        let f = first_use.entry(l.data.as_str()).or_insert(at);
        *f = (*f).min(at);
    }
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for (lq, &at) in layers.iter().zip(&at_of) {
        let l = &lq.layer;
        let fail =
            |what: &str| CompressError::Export(format!("layer '{}' ({}): {what}", l.node, l.op));
        if !g.initializer.iter().any(|t| t.name == l.weight) {
            return Err(fail(&format!(
                "weight '{}' is not an initializer",
                l.weight
            )));
        }
        let dims: Vec<i64> = lq.weight.dims.iter().map(|&d| d as i64).collect();
        let w = add.dequant(
            Dequant {
                name: &l.weight,
                dtype: DType::I8,
                dims: &dims,
                raw: lq.weight.values.iter().map(|&v| v as u8).collect(),
                scales: &lq.weight.scales,
                axis: lq.weight.axis,
            },
            opset,
        );
        replaced.insert(l.weight.clone());
        g.node[at].input[l.site.weight] = w;
        if let (Some(b), Some(bi), Some((q, scales))) = (&l.bias, l.site.bias, &lq.bias)
            && g.initializer.iter().any(|t| t.name == *b)
            && g.node[at].input.get(bi) == Some(b)
        {
            {
                let raw = q.iter().flat_map(|v| v.to_le_bytes()).collect();
                let bname = format!("{}_for_{}", b, l.weight);
                let out = add.dequant(
                    Dequant {
                        name: &bname,
                        dtype: DType::I32,
                        dims: &[q.len() as i64],
                        raw,
                        scales,
                        axis: 0,
                    },
                    opset,
                );
                replaced.insert(b.clone());
                g.node[at].input[bi] = out;
            }
        }
        let x = act.entry(l.data.clone()).or_insert_with(|| {
            let p = lq.data;
            let (s, z, qn, dq) = (
                format!("{}_scale", l.data),
                format!("{}_zero_point", l.data),
                format!("{}_quantized", l.data),
                format!("{}_dequantized", l.data),
            );
            add.inits
                .push(tensor(&s, DType::F32, &[], f32s(&[p.scale])));
            let (zt, zb) = if p.signed {
                (DType::I8, (p.zero_point as i8) as u8)
            } else {
                (DType::U8, p.zero_point as u8)
            };
            add.inits.push(tensor(&z, zt, &[], vec![zb]));
            let first = first_use.get(l.data.as_str()).copied().unwrap_or(at);
            let nodes = add.nodes.entry(first).or_default();
            nodes.push(node(
                "QuantizeLinear",
                &format!("{}_QuantizeLinear", l.data),
                &[&l.data, &s, &z],
                &qn,
                None,
            ));
            nodes.push(node(
                "DequantizeLinear",
                &format!("{}_DequantizeLinear", l.data),
                &[&qn, &s, &z],
                &dq,
                None,
            ));
            dq
        });
        g.node[at].input[l.site.data] = x.clone();
    }
    // Splice the new nodes in front of their first consumer (weights first of all).
    let old = std::mem::take(&mut g.node);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(v) = add.nodes.remove(&i) {
            g.node.extend(v);
        }
        g.node.push(n);
    }
    // Float initializers no longer read anywhere are dropped (with their graph-input entries).
    let mut used = BTreeSet::new();
    used_names(g, &mut used);
    drop_unused(g, replaced, &used);
    g.initializer.extend(add.inits);
    Ok(m)
}

/// Drops the initializers of `replaced` that no name in `used` reads (with their graph-input
/// entries).
pub(super) fn drop_unused(g: &mut GraphProto, replaced: BTreeSet<String>, used: &BTreeSet<String>) {
    let gone: BTreeSet<String> = replaced.into_iter().filter(|n| !used.contains(n)).collect();
    g.initializer.retain(|t| !gone.contains(&t.name));
    g.input.retain(|i| !gone.contains(&i.name));
}
