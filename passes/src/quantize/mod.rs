//! Post-training int8 quantization policy: which layers can be quantized ([`find_layers`], from each
//! op's [`carve_ir::ops::QuantSite`]), and the decision for one layer from its weight and the
//! calibration statistics of its data input ([`quantize_layer`]): per-output-channel symmetric int8
//! weights, a per-tensor u8 (asymmetric) or s8 (symmetric) data input, an int32 bias.
//!
//! Policies never run a model: the driver calibrates (runs the model with observers on the tensors
//! [`observed_values`] names), measures accuracy and per-layer sensitivity, and asks
//! [`keep_float_order`] which layers to leave in float while an accuracy budget does not hold. The
//! decisions are recorded in the model as QuantizeLinear/DequantizeLinear pairs.

pub mod gptq;
pub mod params;
pub mod stats;

use std::collections::BTreeMap;

use carve_ir::ops::{NodeTypes, QuantSite, Sizes};
use carve_ir::{DType, Graph, TensorType, Type};

pub use params::{ActParams, WeightQuant, quantize_bias};
pub use stats::{Calibrator, Histogram, TensorStats};

/// A multiply-accumulate node whose weight is a float constant: what the policy may quantize.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The node's name.
    pub node: String,
    /// Its op (text-format name).
    pub op: &'static str,
    /// The data input's value name.
    pub data: String,
    /// The weight's value name.
    pub weight: String,
    /// The weight's dims.
    pub weight_dims: Vec<u64>,
    /// The weight's output-channel axis.
    pub weight_axis: usize,
    /// Which inputs of the node are data, weight and bias.
    pub site: QuantSite,
    /// The bias's value name, when the op takes one and it is a float constant with one value per
    /// output channel.
    pub bias: Option<String>,
    /// Multiply-accumulates per run, when shapes are known (for the report).
    pub macs: Option<f64>,
}

/// Why a layer could not be quantized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// Calibration saw no finite value of the layer's data input.
    #[error("layer '{node}': calibration saw no finite value of its input '{value}'")]
    NoStats {
        /// The layer's node.
        node: String,
        /// The data input.
        value: String,
    },
    /// The weight is not a readable float constant.
    #[error("layer '{node}': weight '{value}' is not a dense float constant")]
    Weight {
        /// The layer's node.
        node: String,
        /// The weight value.
        value: String,
    },
}

fn f32_tensor(ty: &Type) -> Option<&TensorType> {
    match ty {
        Type::Tensor(t) if t.dtype == DType::F32 => Some(t),
        _ => None,
    }
}

/// Every quantizable layer of the graph's top level, in node order: nodes whose op has a
/// [`carve_ir::ops::QuantSite`], with an f32 data input and an f32 constant weight of a rank the site
/// admits and a nonzero channel count.
pub fn find_layers(g: &Graph) -> Vec<Layer> {
    let mut out = Vec::new();
    for node in &g.nodes {
        let Some(site) = node.op.quant_site() else {
            continue;
        };
        let input = |i: usize| node.inputs.get(i).copied().flatten();
        let (Some(data), Some(weight)) = (input(site.data), input(site.weight)) else {
            continue;
        };
        if f32_tensor(g.ty(data)).is_none() {
            continue;
        }
        let Some(w) = g.constant_of(weight).filter(|c| c.ty.dtype == DType::F32) else {
            continue;
        };
        let Some(dims) = w.ty.shape.as_ref().and_then(|s| s.as_known()) else {
            continue;
        };
        if !site.weight_rank.admits(dims.len())
            || dims.get(site.weight_axis).is_none_or(|&c| c == 0)
        {
            continue;
        }
        let channels = dims[site.weight_axis];
        let bias = site.bias.and_then(input).filter(|&b| {
            g.constant_of(b).is_some_and(|c| {
                c.ty.dtype == DType::F32
                    && c.ty.shape.as_ref().and_then(|s| s.as_known()).as_deref()
                        == Some(&[channels][..])
            })
        });
        let inputs: Vec<Option<&Type>> = node.inputs.iter().map(|v| v.map(|v| g.ty(v))).collect();
        let outputs: Vec<Type> = node.outputs.iter().map(|&o| g.ty(o).clone()).collect();
        let macs = node
            .op
            .work(&NodeTypes {
                inputs: &inputs,
                outputs: &outputs,
                sizes: Sizes::EXACT,
            })
            .map(|w| w.macs);
        out.push(Layer {
            node: node.name.clone(),
            op: node.op.name(),
            data: g.value(data).name.clone(),
            weight: g.value(weight).name.clone(),
            weight_dims: dims,
            weight_axis: site.weight_axis,
            site,
            bias: bias.map(|b| g.value(b).name.clone()),
            macs,
        });
    }
    out
}

/// The tensors calibration must observe for `layers`: their data inputs, sorted and deduplicated.
pub fn observed_values(layers: &[Layer]) -> Vec<String> {
    let mut v: Vec<String> = layers.iter().map(|l| l.data.clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// Options of the int8 policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Int8Options {
    /// How activation ranges are chosen from the statistics.
    pub calibrator: Calibrator,
    /// s8 symmetric activations instead of u8 asymmetric (targets whose int8 dot products want
    /// signed data).
    pub signed_activations: bool,
}

impl Default for Int8Options {
    /// Percentile 99.99 calibration, u8 activations (x86 VNNI multiplies u8 by s8).
    fn default() -> Self {
        Int8Options {
            calibrator: Calibrator::Percentile(99.99),
            signed_activations: false,
        }
    }
}

/// The int8 decision for one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerQuant {
    /// The layer.
    pub layer: Layer,
    /// The data input's clipping range from calibration.
    pub data_range: (f32, f32),
    /// The data input's parameters.
    pub data: ActParams,
    /// The quantized weight.
    pub weight: WeightQuant,
    /// The int32 bias and its per-channel scales, when the layer has a constant bias.
    pub bias: Option<(Vec<i32>, Vec<f32>)>,
}

/// Quantizes one layer: its weight per channel, its data input from `stats` (keyed by value name).
pub fn quantize_layer(
    g: &Graph,
    layer: &Layer,
    stats: &BTreeMap<String, TensorStats>,
    opts: &Int8Options,
) -> Result<LayerQuant, QuantError> {
    let s = stats
        .get(&layer.data)
        .filter(|s| s.count > 0)
        .ok_or_else(|| QuantError::NoStats {
            node: layer.node.clone(),
            value: layer.data.clone(),
        })?;
    let levels = 256;
    let data_range = opts.calibrator.range(s, levels);
    let data = ActParams::for_range(data_range.0, data_range.1, opts.signed_activations);
    let weight_err = || QuantError::Weight {
        node: layer.node.clone(),
        value: layer.weight.clone(),
    };
    let w = const_f32s(g, &layer.weight).ok_or_else(weight_err)?;
    let weight = WeightQuant::per_channel(&w, &layer.weight_dims, layer.weight_axis);
    let bias = match &layer.bias {
        Some(b) => {
            let bv = const_f32s(g, b).ok_or_else(weight_err)?;
            Some(quantize_bias(&bv, data.scale, &weight.scales))
        }
        None => None,
    };
    Ok(LayerQuant {
        layer: layer.clone(),
        data_range,
        data,
        weight,
        bias,
    })
}

/// The f32 values of the constant named `name` in `g`'s top level.
pub fn const_f32s(g: &Graph, name: &str) -> Option<Vec<f32>> {
    let v = g.values.iter().position(|v| v.name == name)?;
    let c = g.constant_of(carve_ir::ValueId(v as u32))?;
    Some(c.to_f64s()?.into_iter().map(|x| x as f32).collect())
}

/// The order in which layers are returned to float while an accuracy budget does not hold: most
/// sensitive first (largest output error when quantized alone), ties by node order. `sensitivity`
/// pairs a node name with its measured error.
pub fn keep_float_order(sensitivity: &[(String, f64)]) -> Vec<String> {
    let mut v: Vec<(usize, &(String, f64))> = sensitivity.iter().enumerate().collect();
    v.sort_by(|(ia, a), (ib, b)| b.1.total_cmp(&a.1).then(ia.cmp(ib)));
    v.into_iter().map(|(_, (n, _))| n.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_matmul_and_conv_layers_with_constant_weights() {
        let g = carve_ir::text::parse(
            "graph @g(%x: f32[1,4], %y: f32[4,3]) -> (f32[1,3], f32[1,3]) {\n  %w = const f32[4,3] [0,1,2,3,4,5,6,7,8,9,10,11]\n  %0 = matmul(%x, %w) : f32[1,3]\n  %1 = matmul(%x, %y) : f32[1,3]\n  return %0, %1\n}\n",
        );
        let g = match g {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        let layers = find_layers(&g);
        assert_eq!(layers.len(), 1, "{layers:?}");
        assert_eq!((layers[0].weight_axis, layers[0].macs), (1, Some(12.0)));
        assert_eq!(observed_values(&layers), vec!["x".to_string()]);
        let mut st = TensorStats::new();
        st.observe(&[-1.0, 2.0]);
        let stats = BTreeMap::from([("x".to_string(), st)]);
        let q = quantize_layer(&g, &layers[0], &stats, &Int8Options::default());
        let q = match q {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(q.data_range, (-1.0, 2.0));
        assert_eq!(q.weight.scales.len(), 3);
        assert!(q.bias.is_none());
    }

    #[test]
    fn most_sensitive_layers_return_to_float_first() {
        let s = vec![
            ("a".to_string(), 0.1),
            ("b".to_string(), 0.5),
            ("c".to_string(), 0.1),
        ];
        assert_eq!(keep_float_order(&s), vec!["b", "a", "c"]);
    }
}
