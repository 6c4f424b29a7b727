//! Random number generation: `dropout` (in training mode), `random_normal`, `random_uniform`,
//! `bernoulli` and `multinomial`.
//!
//! The generator is numpy's legacy `RandomState` (MT19937 seeded with `init_genrand`, 53-bit doubles,
//! polar-method normals, inversion binomials), so that seeded results reproduce those of the ONNX
//! reference implementation (`onnx.reference`), which draws from `numpy.random.RandomState(seed)`.
//! The interpreter is deterministic: an op without a `seed` uses seed 0. (ONNX Runtime uses other
//! generators; no runtime's unseeded draws can be reproduced.)

use carve_ir::DType;
use carve_ir::ops::misc::{Bernoulli, Dropout, Multinomial, RandomNormal, RandomUniform};

use crate::interp::util::{checked_numel, from_f64, from_i64, to_f64};
use crate::interp::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor};

/// Seed used when an op has none.
const DEFAULT_SEED: u32 = 0;

const N: usize = 624;
const M: usize = 397;

/// numpy's legacy `RandomState`: MT19937 plus the cached second normal of the polar method.
pub struct RandomState {
    mt: [u32; N],
    pos: usize,
    gauss: Option<f64>,
}

impl RandomState {
    /// Seeded like `numpy.random.RandomState(seed)` (MT19937 `init_genrand`).
    pub fn new(seed: u32) -> RandomState {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            let prev = mt[i - 1];
            mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        RandomState {
            mt,
            pos: N,
            gauss: None,
        }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..N {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % N] & LOWER);
            let mut v = self.mt[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.mt[i] = v;
        }
        self.pos = 0;
    }

    /// The next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in `[0, 1)` with 53 random bits (`random_sample`).
    pub fn next_f64(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A standard normal sample (numpy's legacy polar method, `randn`).
    pub fn gauss(&mut self) -> f64 {
        if let Some(g) = self.gauss.take() {
            return g;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// One draw of `binomial(1, p)` (numpy's legacy inversion algorithm, which always consumes at
    /// least one double).
    pub fn bernoulli(&mut self, p: f64) -> u8 {
        if p <= 0.5 {
            self.binomial_inversion_1(p)
        } else {
            1 - self.binomial_inversion_1(1.0 - p)
        }
    }

    /// numpy's `random_binomial_inversion` for `n = 1`.
    fn binomial_inversion_1(&mut self, p: f64) -> u8 {
        let q = 1.0 - p;
        let qn = q; // exp(n * log(q)) for n = 1
        let np = p;
        let bound = (np + 10.0 * (np * q + 1.0).sqrt()).min(1.0).floor();
        let mut x = 0.0f64;
        let mut px = qn;
        let mut u = self.next_f64();
        while u > px {
            x += 1.0;
            if x > bound {
                x = 0.0;
                px = qn;
                u = self.next_f64();
            } else {
                u -= px;
                px = ((1.0 - x + 1.0) * p * px) / (x * q);
            }
        }
        x as u8
    }
}

/// The generator for an op's optional float `seed` attribute (truncated like Python's `int(seed)`).
fn state_for(seed: Option<f32>) -> RandomState {
    RandomState::new(seed.map_or(DEFAULT_SEED, |s| (s as i64) as u32))
}

fn out_dtype(cx: &EvalCtx) -> Result<DType, RunError> {
    match cx.output_type(0) {
        Some(carve_ir::Type::Tensor(t)) => Ok(t.dtype),
        _ => Err(cx.err("output 0 must be a tensor")),
    }
}

/// The output shape: input 0's when present, else the `shape` attribute.
fn random_shape(cx: &EvalCtx, shape: &[i64]) -> Result<Vec<usize>, RunError> {
    let dims = match cx.opt_tensor(0)? {
        Some(t) => t.shape.clone(),
        None => shape
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| cx.err(format!("shape {shape:?} has a negative dim")))?,
    };
    checked_numel(&dims).map_err(|e| cx.err(e.0))?;
    Ok(dims)
}

fn float_tensor(
    cx: &EvalCtx,
    dtype: DType,
    shape: Vec<usize>,
    v: &[f64],
) -> Result<Value, RunError> {
    from_f64(dtype, shape, v)
        .map(Value::Tensor)
        .map_err(|e| cx.err(e.0))
}

/// `random_normal`.
pub fn random_normal(op: &RandomNormal, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let shape = random_shape(cx, &op.shape)?;
    let n = shape.iter().product();
    let mut rng = state_for(op.seed);
    let (mean, scale) = (f64::from(op.mean), f64::from(op.scale));
    let v: Vec<f64> = (0..n).map(|_| rng.gauss() * scale + mean).collect();
    Ok(vec![float_tensor(cx, out_dtype(cx)?, shape, &v)?])
}

/// `random_uniform`.
pub fn random_uniform(op: &RandomUniform, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let shape = random_shape(cx, &op.shape)?;
    let n = shape.iter().product();
    let mut rng = state_for(op.seed);
    let (low, high) = (f64::from(op.low), f64::from(op.high));
    let v: Vec<f64> = (0..n)
        .map(|_| rng.next_f64() * (high - low) + low)
        .collect();
    Ok(vec![float_tensor(cx, out_dtype(cx)?, shape, &v)?])
}

/// `bernoulli`: one 0/1 draw per probability.
pub fn bernoulli(op: &Bernoulli, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let p = to_f64(x).map_err(|e| cx.err(e.0))?;
    if let Some(bad) = p.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(cx.err(format!("probabilities must be in [0, 1], got {bad}")));
    }
    let mut rng = state_for(op.seed);
    let v: Vec<i64> = p.iter().map(|&p| i64::from(rng.bernoulli(p))).collect();
    let t = from_i64(out_dtype(cx)?, x.shape.clone(), &v).map_err(|e| cx.err(e.0))?;
    Ok(vec![Value::Tensor(t)])
}

/// `multinomial`: `sample_size` class draws per row of unnormalized log-probabilities.
pub fn multinomial(op: &Multinomial, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let [batch, classes] = x.shape[..] else {
        return Err(cx.err(format!(
            "input must be [batch, classes], got shape {:?}",
            x.shape
        )));
    };
    let samples = usize::try_from(op.sample_size)
        .map_err(|_| cx.err(format!("sample_size must be >= 0, got {}", op.sample_size)))?;
    let shape = vec![batch, samples];
    checked_numel(&shape).map_err(|e| cx.err(e.0))?;
    let logits = to_f64(x).map_err(|e| cx.err(e.0))?;
    let mut rng = state_for(op.seed);
    let mut out = Vec::with_capacity(batch * samples);
    for row in logits.chunks(classes.max(1)).take(batch) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut cdf: Vec<f64> = Vec::with_capacity(classes);
        let mut acc = 0.0;
        for &l in row {
            acc += (l - max).exp();
            cdf.push(acc);
        }
        for _ in 0..samples {
            let u = rng.next_f64() * acc;
            let k = cdf
                .iter()
                .position(|&c| u < c)
                .unwrap_or(classes.saturating_sub(1));
            out.push(k as i64);
        }
    }
    if classes == 0 && batch * samples > 0 {
        return Err(cx.err("cannot sample from zero classes"));
    }
    let t = from_i64(op.dtype, shape, &out).map_err(|e| cx.err(e.0))?;
    Ok(vec![Value::Tensor(t)])
}

/// `dropout`: the identity (and an all-true mask) unless input 2 says training mode with a ratio above
/// zero; then `mask = uniform[0,1) >= ratio` and `y = x * mask / (1 - ratio)`.
pub fn dropout(op: &Dropout, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    let x = cx.tensor(0)?;
    let scalar = |i: usize, what: &str| -> Result<Option<f64>, RunError> {
        match cx.opt_tensor(i)? {
            None => Ok(None),
            Some(t) => match to_f64(t).map_err(|e| cx.err(e.0))?.as_slice() {
                [v] => Ok(Some(*v)),
                _ => Err(cx.err(format!("{what} must hold one element"))),
            },
        }
    };
    let ratio = scalar(1, "ratio (input 1)")?.unwrap_or(0.5);
    let training = scalar(2, "training_mode (input 2)")?.is_some_and(|t| t != 0.0);
    let want_mask = cx.num_outputs() >= 2;
    if !training || ratio == 0.0 {
        let mut out = vec![Value::Tensor(x.clone())];
        if want_mask {
            out.push(Value::Tensor(Tensor {
                shape: x.shape.clone(),
                data: Data::Bool(vec![true; x.len()]),
            }));
        }
        return Ok(out);
    }
    if !(0.0..1.0).contains(&ratio) {
        return Err(cx.err(format!("ratio must be in [0, 1), got {ratio}")));
    }
    let seed = op.seed.map_or(DEFAULT_SEED, |s| s as u32);
    let mut rng = RandomState::new(seed);
    let mask: Vec<bool> = (0..x.len()).map(|_| rng.next_f64() >= ratio).collect();
    let scale = 1.0 / (1.0 - ratio);
    let xs = to_f64(x).map_err(|e| cx.err(e.0))?;
    let y: Vec<f64> = xs
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| if m { v * scale } else { 0.0 })
        .collect();
    let mut out = vec![float_tensor(cx, x.dtype(), x.shape.clone(), &y)?];
    if want_mask {
        out.push(Value::Tensor(Tensor {
            shape: x.shape.clone(),
            data: Data::Bool(mask),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_random_state() {
        // Values printed by numpy 2.x: RandomState(5489).randint(0, 2**32), RandomState(0).random_sample(3),
        // RandomState(42).randn(5), RandomState(7).binomial(1, p).
        assert_eq!(RandomState::new(5489).next_u32(), 3_499_211_612);
        let mut r = RandomState::new(0);
        for want in [0.548_813_5, 0.715_189_37, 0.602_763_38] {
            assert!((r.next_f64() - want).abs() < 1e-8);
        }
        let mut r = RandomState::new(42);
        for want in [
            0.496_714_15,
            -0.138_264_3,
            0.647_688_54,
            1.523_029_86,
            -0.234_153_37,
        ] {
            assert!((r.gauss() - want).abs() < 1e-7);
        }
        let mut r = RandomState::new(7);
        let p = [0.0, 0.1, 0.5, 0.7, 1.0, 0.3, 0.9, 0.2];
        let got: Vec<u8> = p.iter().map(|&p| r.bernoulli(p)).collect();
        assert_eq!(got, [0, 0, 0, 0, 1, 0, 1, 0]);
    }
}
