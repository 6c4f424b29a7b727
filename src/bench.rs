//! Latency measurement for `carve bench`: default inputs for a model (its `test_data_set_0` when present,
//! else deterministic pseudo-random tensors of the bound shapes), warm-up, timed runs, and
//! median/p10/p90 statistics.

use std::path::Path;
use std::time::{Duration, Instant};

use carve_ir::{DType, Graph};
use carve_runtime::interp::Value;
use carve_runtime::{Data, Tensor};

use crate::compiler::{CompileError, CompiledModel};

/// Latency statistics of repeated runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Number of timed runs.
    pub runs: usize,
    /// Median.
    pub median: Duration,
    /// 10th percentile.
    pub p10: Duration,
    /// 90th percentile.
    pub p90: Duration,
}

/// Statistics of `samples` (sorted in place).
pub fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort();
    let at = |q: f64| {
        if samples.is_empty() {
            Duration::ZERO
        } else {
            samples[((samples.len() - 1) as f64 * q).round() as usize]
        }
    };
    Stats {
        runs: samples.len(),
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
    }
}

/// Inputs from `<model dir>/test_data_set_0/input_N.pb` when they all exist.
pub fn reference_inputs(model: &Path, g: &Graph) -> Option<Vec<Value>> {
    let dir = model.parent()?.join("test_data_set_0");
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, &v)| crate::data::read_pb(&dir.join(format!("input_{k}.pb")), g.ty(v)).ok())
        .collect()
}

/// Deterministic pseudo-random inputs for a graph whose input shapes are static (floats in [0, 1),
/// integers 0, bools false).
pub fn synthetic_inputs(g: &Graph) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for &v in &g.inputs {
        let name = &g.value(v).name;
        let t = g
            .ty(v)
            .as_tensor()
            .ok_or_else(|| format!("input '{name}' is not a tensor"))?;
        let dims = carve_codegen::prepare::concrete_shape(g, v).ok_or_else(|| {
            format!("input '{name}' has no static shape ({t}): bind it with --input-shape")
        })?;
        let n: usize = dims.iter().product();
        let data = match t.dtype {
            DType::F32 => Data::F32(
                (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed >> 40) as f32 / (1u64 << 24) as f32
                    })
                    .collect(),
            ),
            d => Data::zeros(d, n),
        };
        out.push(Value::Tensor(
            Tensor::new(dims, data).map_err(|e| format!("input '{name}': {}", e.0))?,
        ));
    }
    Ok(out)
}

/// Runs `warmup` untimed and `runs` timed inferences.
pub fn measure(
    m: &CompiledModel,
    inputs: &[Value],
    warmup: usize,
    runs: usize,
) -> Result<Stats, CompileError> {
    for _ in 0..warmup {
        m.run_ordered(inputs.to_vec())?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let ins = inputs.to_vec();
        let t = Instant::now();
        m.run_ordered(ins)?;
        samples.push(t.elapsed());
    }
    Ok(stats(&mut samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s: Vec<Duration> = (1..=11).rev().map(Duration::from_millis).collect();
        let st = stats(&mut s);
        assert_eq!(st.median, Duration::from_millis(6));
        assert_eq!(st.p10, Duration::from_millis(2));
        assert_eq!(st.p90, Duration::from_millis(10));
    }
}
