//! Quantization parameters: per-tensor asymmetric u8 (or symmetric s8) for activations, per-output-
//! channel symmetric int8 for weights, int32 for biases (scale = data scale × weight scale), all with
//! round-half-to-even as ONNX QuantizeLinear rounds.

/// Per-tensor parameters of a quantized activation: `x ≈ (q − zero_point) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActParams {
    /// Step size.
    pub scale: f32,
    /// The integer that represents 0.0.
    pub zero_point: i32,
    /// Signed (s8, symmetric, zero point 0) or unsigned (u8, asymmetric).
    pub signed: bool,
}

impl ActParams {
    /// Parameters covering `[lo, hi]` (which contains 0): u8 asymmetric (256 steps), or s8 symmetric
    /// over `max(|lo|, |hi|)` when `signed`. A zero-width range gets scale 1 (every value is 0).
    pub fn for_range(lo: f32, hi: f32, signed: bool) -> ActParams {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        if signed {
            let m = lo.abs().max(hi);
            let scale = if m > 0.0 { m / 127.0 } else { 1.0 };
            return ActParams {
                scale,
                zero_point: 0,
                signed,
            };
        }
        if hi - lo <= 0.0 {
            return ActParams {
                scale: 1.0,
                zero_point: 0,
                signed,
            };
        }
        let scale = (hi - lo) / 255.0;
        let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
        ActParams {
            scale,
            zero_point,
            signed,
        }
    }

    /// `QuantizeLinear` then `DequantizeLinear` of one value (what the quantized model computes with).
    pub fn fake_quant(&self, x: f32) -> f32 {
        let (qmin, qmax) = if self.signed {
            (-128.0, 127.0)
        } else {
            (0.0, 255.0)
        };
        let q = ((x / self.scale).round_ties_even() + self.zero_point as f32).clamp(qmin, qmax);
        (q - self.zero_point as f32) * self.scale
    }
}

/// A weight quantized to symmetric int8 per output channel: `w ≈ q · scales[c]`, `c` the index along
/// `axis`, values in `[-127, 127]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightQuant {
    /// The weight's dims.
    pub dims: Vec<u64>,
    /// The output-channel axis.
    pub axis: usize,
    /// One scale per channel.
    pub scales: Vec<f32>,
    /// The quantized values, row-major like the weight.
    pub values: Vec<i8>,
}

impl WeightQuant {
    /// Quantizes a row-major float weight of `dims` per channel along `axis` (scale = max |w| / 127 of
    /// the channel; an all-zero channel gets scale 1).
    pub fn per_channel(w: &[f32], dims: &[u64], axis: usize) -> WeightQuant {
        let channels = dims.get(axis).copied().unwrap_or(1) as usize;
        let inner: usize = dims.iter().skip(axis + 1).product::<u64>() as usize;
        let channel = |i: usize| (i / inner.max(1)) % channels.max(1);
        let mut absmax = vec![0f32; channels.max(1)];
        for (i, &x) in w.iter().enumerate() {
            let c = channel(i);
            absmax[c] = absmax[c].max(x.abs());
        }
        let scales: Vec<f32> = absmax
            .iter()
            .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
            .collect();
        let values = w
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                (x / scales[channel(i)])
                    .round_ties_even()
                    .clamp(-127.0, 127.0) as i8
            })
            .collect();
        WeightQuant {
            dims: dims.to_vec(),
            axis,
            scales,
            values,
        }
    }

    /// The dequantized weight.
    pub fn dequantize(&self) -> Vec<f32> {
        let channels = self.scales.len();
        let inner: usize = self.dims.iter().skip(self.axis + 1).product::<u64>() as usize;
        self.values
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.scales[(i / inner.max(1)) % channels.max(1)])
            .collect()
    }

    /// Bytes of the quantized weight (int8 values and f32 scales).
    pub fn bytes(&self) -> u64 {
        self.values.len() as u64 + 4 * self.scales.len() as u64
    }
}

/// A bias quantized to int32 with scale `data_scale · weight_scale[c]` (zero point 0), as integer
/// convolution and matmul kernels add it to their int32 accumulators.
pub fn quantize_bias(bias: &[f32], data_scale: f32, weight_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = (0..bias.len())
        .map(|c| {
            data_scale
                * weight_scales
                    .get(c)
                    .or(weight_scales.last())
                    .copied()
                    .unwrap_or(1.0)
        })
        .collect();
    let q = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| {
            if s > 0.0 {
                (f64::from(b) / f64::from(s))
                    .round_ties_even()
                    .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
            } else {
                0
            }
        })
        .collect();
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8_range_maps_ends_and_zero_exactly() {
        let p = ActParams::for_range(-1.0, 3.0, false);
        assert_eq!(p.fake_quant(0.0), 0.0);
        assert!((p.fake_quant(3.0) - 3.0).abs() <= p.scale / 2.0);
        assert!((p.fake_quant(-1.0) + 1.0).abs() <= p.scale / 2.0);
        assert!((p.fake_quant(10.0) - 3.0).abs() <= p.scale);
    }

    #[test]
    fn per_channel_weights_round_within_half_a_step() {
        // [K=3, N=2], channels along axis 1.
        let w = [0.5, -8.0, -0.25, 4.0, 1.0, 2.0];
        let q = WeightQuant::per_channel(&w, &[3, 2], 1);
        assert_eq!(q.scales, vec![1.0 / 127.0, 8.0 / 127.0]);
        for (a, b) in w.iter().zip(q.dequantize()) {
            let c = if (w.iter().position(|x| x == a).unwrap_or(0)) % 2 == 0 {
                0
            } else {
                1
            };
            assert!((a - b).abs() <= q.scales[c] / 2.0 + 1e-7);
        }
        let (qb, s) = quantize_bias(&[0.1, -0.2], 0.5, &q.scales);
        assert_eq!(s.len(), 2);
        assert!((qb[0] as f32 * s[0] - 0.1).abs() <= s[0] / 2.0);
    }
}
