//! Weight-only low-bit compression: MatMul weights quantized block-wise to 4 (or 2, 8) bits along K
//! and written as ONNX Runtime's `com.microsoft` MatMulNBits, the format LLM and transformer exports
//! ship (ONNX Runtime's `MatMul4BitsQuantizer` writes the same). Activations stay float: no
//! calibration is needed, only the evaluation data the accuracy budget is measured on.
//!
//! Which layers: `MatMul` nodes whose `B` is a 2-D f32 constant `[K, N]` ([`nbits_layers`]). With
//! calibration data the weight is quantized by GPTQ ([`carve_passes::quantize::gptq`]: the rounding
//! error of each input channel is compensated on the channels not yet quantized, through the
//! calibration inputs' `XᵀX`), without it round-to-nearest by
//! [`carve_ir::ops::quant::blockwise::quantize`] (byte-identical with ONNX
//! Runtime's blockwise packer). Symmetric blocks store no zero points, so 4-bit weights take
//! `K·N/2` bytes plus one f32 scale per block: 0.156× of f32 at block 32). Gemm and Conv stay float
//! in this mode (MatMulNBits multiplies `A · B` only); the report says so per layer.
//!
//! [`apply`] rewrites the float model: each chosen MatMul becomes a MatMulNBits node with the same
//! name, data input and output, reading the packed codes and scales (`<weight>_q<bits>`,
//! `<weight>_scales`, `<weight>_zero_points`); float initializers no longer read anywhere are dropped,
//! and the `com.microsoft` opset is imported.

use std::collections::{BTreeMap, BTreeSet};

use carve_frontend::proto::{AttributeProto, ModelProto, NodeProto, OperatorSetIdProto};
use carve_ir::ops::quant::blockwise::{NBitsLayout, Packed, quantize};
use carve_ir::{DType, Graph};
use carve_passes::quantize::gptq::{Gram, gptq};
use carve_passes::quantize::{Layer, const_f32s};

use super::CompressError;
use super::export::{constant_to_initializer, drop_unused, tensor, used_names};

/// ONNX attribute type code of an int.
const ATTR_INT: i32 = 2;

/// The contrib domain MatMulNBits lives in.
const MS_DOMAIN: &str = "com.microsoft";

/// Options of weight-only block quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NBitsOptions {
    /// Bits per weight: 2, 4 or 8.
    pub bits: usize,
    /// Weights per block along K (a power of two ≥ 16).
    pub block_size: usize,
    /// Symmetric blocks (no stored zero points) instead of per-block zero points.
    pub symmetric: bool,
}

impl Default for NBitsOptions {
    /// 4 bits, blocks of 32, symmetric.
    fn default() -> Self {
        NBitsOptions {
            bits: 4,
            block_size: 32,
            symmetric: true,
        }
    }
}

/// One MatMul weight in MatMulNBits form.
#[derive(Debug, Clone, PartialEq)]
pub struct NBitsLayer {
    /// The layer (a MatMul with a constant `[K, N]` weight).
    pub layer: Layer,
    /// The packed weight.
    pub packed: Packed,
}

impl NBitsLayer {
    /// Bytes of the packed codes, scales and zero points.
    pub fn bytes(&self) -> u64 {
        let p = &self.packed;
        (p.b.len() + 4 * p.scales.len() + p.zero_points.as_ref().map_or(0, Vec::len)) as u64
    }
}

/// The data inputs GPTQ needs statistics of for `layers` (those [`nbits_layers`] can hold): value
/// name and K, sorted and deduplicated.
pub fn gptq_inputs(layers: &[Layer]) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = layers
        .iter()
        .filter_map(|l| match (l.op, l.weight_dims.as_slice()) {
            ("matmul", &[k, _]) => Some((l.data.clone(), k as usize)),
            _ => None,
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Splits `layers` into those MatMulNBits can hold (quantized with `opts`: GPTQ when `grams` has the
/// layer's data input, else round-to-nearest) and the others with the reason they stay float (keyed
/// by node name).
pub fn nbits_layers(
    g: &Graph,
    layers: &[Layer],
    opts: NBitsOptions,
    grams: &BTreeMap<String, Gram>,
) -> (Vec<NBitsLayer>, BTreeMap<String, String>) {
    let mut out = Vec::new();
    let mut reasons = BTreeMap::new();
    for l in layers {
        let why = match (l.op, l.weight_dims.as_slice()) {
            ("matmul", &[k, n]) => {
                let quantized =
                    NBitsLayout::new(k as usize, n as usize, opts.bits, opts.block_size)
                        .map_err(|e| e.to_string())
                        .and_then(|layout| {
                            let w = const_f32s(g, &l.weight).ok_or_else(|| {
                                format!("weight '{}' is not a constant", l.weight)
                            })?;
                            match grams.get(&l.data) {
                                Some(gram) => gptq(&w, layout, opts.symmetric, gram)
                                    .map_err(|e| format!("GPTQ: {e}")),
                                None => {
                                    quantize(&w, layout, opts.symmetric).map_err(|e| e.to_string())
                                }
                            }
                        });
                match quantized {
                    Ok(packed) => {
                        out.push(NBitsLayer {
                            layer: l.clone(),
                            packed,
                        });
                        continue;
                    }
                    Err(e) => e,
                }
            }
            ("matmul", d) => format!(
                "a {}-D weight (MatMulNBits takes a 2-D [K, N] weight)",
                d.len()
            ),
            (op, _) => format!(
                "{op}: weight-only {}-bit mode quantizes MatMul weights only",
                opts.bits
            ),
        };
        reasons.insert(l.node.clone(), why);
    }
    (out, reasons)
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: ATTR_INT,
        i: v,
        ..AttributeProto::default()
    }
}

/// Rewrites `model` (the float model the layers were found on) with every layer of `layers` as a
/// MatMulNBits node. Fails naming the layer when its node or weight initializer cannot be found.
pub fn apply(model: &ModelProto, layers: &[NBitsLayer]) -> Result<ModelProto, CompressError> {
    let mut m = model.clone();
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| CompressError::Export("the model has no graph".into()))?;
    for nl in layers {
        constant_to_initializer(g, &nl.layer.weight);
    }
    let mut replaced = BTreeSet::new();
    for nl in layers {
        let l = &nl.layer;
        let fail =
            |what: &str| CompressError::Export(format!("layer '{}' ({}): {what}", l.node, l.op));
        if !g.initializer.iter().any(|t| t.name == l.weight) {
            return Err(fail(&format!(
                "weight '{}' is not an initializer",
                l.weight
            )));
        }
        let n: &mut NodeProto = g
            .node
            .iter_mut()
            .find(|n| {
                n.op_type == "MatMul"
                    && n.domain.is_empty()
                    && n.input.first() == Some(&l.data)
                    && n.input.get(1) == Some(&l.weight)
            })
            .ok_or_else(|| fail("no ONNX MatMul node reads its data and weight"))?;
        let p = &nl.packed;
        let lay = p.layout;
        let (bq, sc, zp) = (
            format!("{}_q{}", l.weight, lay.bits),
            format!("{}_scales", l.weight),
            format!("{}_zero_points", l.weight),
        );
        let mut inputs = vec![l.data.clone(), bq.clone(), sc.clone()];
        if p.zero_points.is_some() {
            inputs.push(zp.clone());
        }
        *n = NodeProto {
            op_type: "MatMulNBits".into(),
            domain: MS_DOMAIN.into(),
            name: n.name.clone(),
            input: inputs,
            output: n.output.clone(),
            attribute: vec![
                int_attr("K", lay.k as i64),
                int_attr("N", lay.n as i64),
                int_attr("bits", lay.bits as i64),
                int_attr("block_size", lay.block_size as i64),
            ],
            ..NodeProto::default()
        };
        let dims = [lay.n as i64, lay.blocks() as i64, lay.blob() as i64];
        let scales: Vec<u8> = p.scales.iter().flat_map(|x| x.to_le_bytes()).collect();
        g.initializer
            .push(tensor(&bq, DType::U8, &dims, p.b.clone()));
        g.initializer
            .push(tensor(&sc, DType::F32, &[p.scales.len() as i64], scales));
        if let Some(z) = &p.zero_points {
            g.initializer
                .push(tensor(&zp, DType::U8, &[z.len() as i64], z.clone()));
        }
        replaced.insert(l.weight.clone());
    }
    let mut used = BTreeSet::new();
    used_names(g, &mut used);
    drop_unused(g, replaced, &used);
    if !layers.is_empty() && !m.opset_import.iter().any(|o| o.domain == MS_DOMAIN) {
        m.opset_import.push(OperatorSetIdProto {
            domain: MS_DOMAIN.into(),
            version: 1,
        });
    }
    Ok(m)
}
