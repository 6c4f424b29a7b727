//! Normalizations: `batch_norm`, `layer_norm`, `rms_norm`, `group_norm`, `instance_norm`, `lrn` and
//! `mean_var_norm` (ONNX MeanVarianceNormalization), with their type inference.
//!
//! Each ONNX normalization stays one IR op: they are the units fast kernels fuse and batch-norm folding
//! rewrites, so expanding them into reductions would only have to be undone. Layouts are channel-first
//! (`[N, C, D1, ...]`) as in ONNX. Semantics are the newest opset's: `group_norm` scales and shifts per
//! channel (opset 21; the importer expands opset-18 per-group parameters), `batch_norm` has the opset-15
//! form (inference by default, `training_mode` for the running-statistics outputs).

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError, normalize_axis};
use crate::ops::props::norm_axis;
use crate::ops::{AxisRef, ChannelMap, NodeTypes, Work};
use crate::{DType, Dim, Shape, TensorType, Type};

define_ops! {
    /// Normalizations.
    pub enum NormOp {
        /// `(x − mean) / √(var + ε) · scale + bias` per channel (axis 1), inputs `x, scale, bias, mean,
        /// var`. Parameters have shape `[C]`, or `[C, D1, ...]` (= `x.shape[1..]`, ONNX `spatial=0` before
        /// opset 9) for per-activation statistics. With `training_mode` the batch's statistics are used
        /// and outputs 1 and 2 (optional) are the updated running mean and variance
        /// (`running·momentum + batch·(1 − momentum)`).
        BatchNorm = "batch_norm" {
            /// Added to the variance.
            epsilon: f32 = 1e-5,
            /// Running-statistics decay (training mode only).
            momentum: f32 = 0.9,
            /// Normalize with batch statistics and output the updated running statistics.
            training_mode: bool = false,
        },
        /// Normalizes over axes `axis..` (mean and variance), then `· scale + bias` (inputs
        /// `x, scale, bias?`, both broadcast to `x.shape[axis..]`). Optional outputs 1 and 2 are the mean
        /// and 1/√(var + ε), of element type `stash_type` (the computation precision), with shape
        /// `x.shape[..axis]` followed by ones.
        LayerNorm = "layer_norm" {
            /// First normalized axis (negative = from the end).
            axis: i64 = -1,
            /// Added to the variance.
            epsilon: f32 = 1e-5,
            /// Element type the statistics are computed in.
            stash_type: DType = DType::F32,
        },
        /// `x / √(mean(x²) + ε) · scale` over axes `axis..` (inputs `x, scale`); the result has `scale`'s
        /// element type.
        RmsNorm = "rms_norm" {
            /// First normalized axis (negative = from the end).
            axis: i64 = -1,
            /// Added to the mean square.
            epsilon: f32 = 1e-5,
            /// Element type the statistics are computed in.
            stash_type: DType = DType::F32,
        },
        /// Splits the channels (axis 1) into `num_groups` groups, normalizes each group of each sample over
        /// its channels and spatial dims, then `· scale + bias` per channel (inputs `x, scale[C], bias[C]`).
        GroupNorm = "group_norm" {
            /// Number of channel groups; divides C.
            num_groups: i64 = 1,
            /// Added to the variance.
            epsilon: f32 = 1e-5,
            /// Element type the statistics are computed in.
            stash_type: DType = DType::F32,
        },
        /// Normalizes each channel of each sample over its spatial dims, then `· scale + bias` per channel
        /// (inputs `x, scale[C], bias[C]`).
        InstanceNorm = "instance_norm" {
            /// Added to the variance.
            epsilon: f32 = 1e-5,
        },
        /// Local response normalization across channels:
        /// `x / (bias + alpha/size · Σ x²)^beta` over a window of `size` channels.
        Lrn = "lrn" {
            /// Number of channels summed over.
            size: i64 = 1,
            /// Scale of the sum of squares.
            alpha: f32 = 1e-4,
            /// Exponent.
            beta: f32 = 0.75,
            /// Additive constant.
            bias: f32 = 1.0,
        },
        /// `(x − mean) / √(var + 1e-9)` with mean and variance over `axes`.
        MeanVarNorm = "mean_var_norm" {
            /// The axes the statistics are taken over.
            axes: Vec<i64> = vec![0, 2, 3],
        },
    }
}

impl NormOp {
    /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
    pub fn props(&self) -> crate::ops::Props {
        crate::ops::Props::NONE
    }

    /// Arithmetic (see [`Work`]): eight operations per input element (statistics, normalization,
    /// scale and shift).
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        Some(Work::arith(8.0 * t.in_elems(0)?))
    }

    /// Channel map (see [`ChannelMap`]): `batch_norm` (inference) and `instance_norm` tie axis 1 of
    /// `x` and `y` with axis 0 of their per-channel parameters (`c → c`); `layer_norm`/`rms_norm` over
    /// the last axis tie it with the scale and bias. Batch is tied too; the rest (`group_norm`, whose
    /// statistics span a group of channels, included) is opaque.
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        let Some(r) = t.input(0).and_then(TensorType::rank) else {
            return ChannelMap::Opaque;
        };
        let params = |axis: usize, n: usize| {
            let mut s = vec![AxisRef::input(0, axis)];
            s.extend(
                (1..=n)
                    .filter(|&i| t.input(i).and_then(TensorType::rank) == Some(1))
                    .map(|i| AxisRef::input(i, 0)),
            );
            s.push(AxisRef::output(0, axis));
            s
        };
        // Normalized over the last axis only: every axis is its own space, the last one with the
        // scale (and bias).
        let last_axis = |axis: i64, n_params: usize| {
            if r == 0 || norm_axis(axis, r) != Some(r - 1) {
                return ChannelMap::Opaque;
            }
            let mut spaces: Vec<Vec<AxisRef>> = (0..r - 1)
                .map(|a| vec![AxisRef::input(0, a), AxisRef::output(0, a)])
                .collect();
            spaces.push(params(r - 1, n_params));
            ChannelMap::Tied(spaces)
        };
        let batch = vec![AxisRef::input(0, 0), AxisRef::output(0, 0)];
        match self {
            Self::BatchNorm(b) if !b.training_mode && r >= 2 => {
                ChannelMap::Tied(vec![batch, params(1, 4)])
            }
            Self::InstanceNorm(_) if r >= 2 => ChannelMap::Tied(vec![batch, params(1, 2)]),
            Self::LayerNorm(l) => last_axis(l.axis, 2),
            Self::RmsNorm(l) => last_axis(l.axis, 1),
            _ => ChannelMap::Opaque,
        }
    }
}

fn float(cx: &InferCtx, i: usize) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if !d.is_float() {
        return Err(cx.err(format!(
            "input {i} must be a floating-point tensor, got element type {d}"
        )));
    }
    Ok(d)
}

fn same_dtype(cx: &InferCtx, i: usize, j: usize) -> Result<(), InferError> {
    let (a, b) = (cx.dtype(i)?, cx.dtype(j)?);
    if a != b {
        return Err(cx.err(format!(
            "inputs {i} and {j} must have the same element type, got {a} and {b}"
        )));
    }
    Ok(())
}

fn out(dtype: DType, shape: Option<Shape>) -> Type {
    Type::Tensor(TensorType {
        dtype,
        shape,
        quant: None,
    })
}

/// Input 0's rank, which must be at least `min` when known.
fn rank_at_least(cx: &InferCtx, min: usize, what: &str) -> Result<Option<usize>, InferError> {
    let r = cx.rank(0)?;
    if let Some(r) = r.filter(|&r| r < min) {
        return Err(cx.err(format!(
            "input 0 must have rank ≥ {min} ({what}), got rank {r}"
        )));
    }
    Ok(r)
}

/// Checks that input `i` is a per-channel vector whose length may equal channel dim `c`.
fn per_channel(cx: &InferCtx, i: usize, c: Option<&Dim>) -> Result<(), InferError> {
    let t = cx.tensor(i)?;
    match t.dims() {
        Some([d]) => {
            if let Some(c) = c.filter(|c| c.conflicts(d)) {
                return Err(cx.err(format!(
                    "input {i} has {d} elements, the input has {c} channels"
                )));
            }
            Ok(())
        }
        Some(_) => Err(cx.err(format!("input {i} must be a 1-D [C] tensor, got {t}"))),
        None => Ok(()),
    }
}

/// Checks that input `i` broadcasts unidirectionally to `target` (trailing-aligned).
fn broadcasts_to(cx: &InferCtx, i: usize, target: &[Dim]) -> Result<(), InferError> {
    let t = cx.tensor(i)?;
    let Some(dims) = t.dims() else {
        return Ok(());
    };
    let fits = dims.len() <= target.len()
        && dims
            .iter()
            .rev()
            .zip(target.iter().rev())
            .all(|(d, t)| *d == Dim::Known(1) || !d.conflicts(t));
    if !fits {
        return Err(cx.err(format!(
            "input {i} ({t}) does not broadcast to the normalized shape {}",
            Shape(target.to_vec())
        )));
    }
    Ok(())
}

fn stash(cx: &InferCtx, d: DType) -> Result<(), InferError> {
    if !d.is_float() {
        return Err(cx.err(format!("stash_type must be a floating-point type, got {d}")));
    }
    Ok(())
}

impl Infer for BatchNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        rank_at_least(cx, 2, "[N, C, ...]")?;
        let x = cx.tensor(0)?;
        for i in 1..5 {
            float(cx, i)?;
            let t = cx.tensor(i)?;
            match (t.dims(), x.dims()) {
                (Some([d]), Some(xd)) if d.conflicts(&xd[1]) => {
                    return Err(cx.err(format!(
                        "input {i} has {d} elements, the input has {} channels",
                        xd[1]
                    )));
                }
                (Some([_]), _) | (None, _) | (_, None) => {}
                (Some(d), Some(xd)) => {
                    let per_activation = d.len() + 1 == xd.len()
                        && d.iter().zip(&xd[1..]).all(|(p, q)| !p.conflicts(q));
                    if !per_activation {
                        return Err(cx.err(format!(
                            "input {i} ({t}) must have shape [C] or the input's shape without N"
                        )));
                    }
                }
            }
        }
        same_dtype(cx, 1, 2)?;
        same_dtype(cx, 3, 4)?;
        let n = cx.num_outputs();
        if n > 3 {
            return Err(cx.err(format!("has at most 3 outputs, got {n}")));
        }
        if n > 1 && !self.training_mode {
            return Err(cx.err(
                "running-statistics outputs exist only with training_mode (set training_mode=true)",
            ));
        }
        let mut types = vec![out(dtype, x.shape.clone())];
        for i in 3..(3 + n.saturating_sub(1)) {
            let t = cx.tensor(i)?;
            types.push(out(t.dtype, t.shape.clone()));
        }
        Ok(types)
    }
}

/// Shape of the statistics outputs of a normalization over axes `axis..` of `dims`.
fn stats_shape(dims: &[Dim], axis: usize) -> Shape {
    Shape(
        dims.iter()
            .enumerate()
            .map(|(i, d)| if i < axis { d.clone() } else { Dim::Known(1) })
            .collect(),
    )
}

impl Infer for LayerNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        stash(cx, self.stash_type)?;
        same_dtype(cx, 0, 1)?;
        if cx.has_input(2) {
            same_dtype(cx, 0, 2)?;
        }
        let x = cx.tensor(0)?;
        let stats = match x.dims() {
            Some(dims) => {
                let a = normalize_axis(self.axis, dims.len()).map_err(|m| cx.err(m))?;
                broadcasts_to(cx, 1, &dims[a..])?;
                if cx.has_input(2) {
                    broadcasts_to(cx, 2, &dims[a..])?;
                }
                Some(stats_shape(dims, a))
            }
            None => None,
        };
        let n = cx.num_outputs();
        if n > 3 {
            return Err(cx.err(format!("has at most 3 outputs, got {n}")));
        }
        let mut types = vec![out(dtype, x.shape.clone())];
        for _ in 1..n {
            types.push(out(self.stash_type, stats.clone()));
        }
        Ok(types)
    }
}

impl Infer for RmsNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        float(cx, 0)?;
        let dtype = float(cx, 1)?;
        stash(cx, self.stash_type)?;
        let x = cx.tensor(0)?;
        if let Some(dims) = x.dims() {
            let a = normalize_axis(self.axis, dims.len()).map_err(|m| cx.err(m))?;
            broadcasts_to(cx, 1, &dims[a..])?;
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

impl Infer for GroupNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        stash(cx, self.stash_type)?;
        rank_at_least(cx, 2, "[N, C, ...]")?;
        if self.num_groups <= 0 {
            return Err(cx.err(format!(
                "num_groups must be positive, got {}",
                self.num_groups
            )));
        }
        let x = cx.tensor(0)?;
        let c = x.dims().map(|d| &d[1]);
        if let Some(Dim::Known(c)) = c
            && *c % self.num_groups as u64 != 0
        {
            return Err(cx.err(format!(
                "{c} channels cannot be split into {} groups",
                self.num_groups
            )));
        }
        for i in 1..3 {
            same_dtype(cx, 0, i)?;
            per_channel(cx, i, c)?;
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

impl Infer for InstanceNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        rank_at_least(cx, 2, "[N, C, ...]")?;
        let x = cx.tensor(0)?;
        let c = x.dims().map(|d| &d[1]);
        for i in 1..3 {
            same_dtype(cx, 0, i)?;
            per_channel(cx, i, c)?;
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

impl Infer for Lrn {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        rank_at_least(cx, 2, "[N, C, ...]")?;
        if self.size <= 0 {
            return Err(cx.err(format!("size must be positive, got {}", self.size)));
        }
        Ok(vec![out(dtype, cx.tensor(0)?.shape.clone())])
    }
}

impl Infer for MeanVarNorm {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = float(cx, 0)?;
        let x = cx.tensor(0)?;
        if let Some(r) = x.rank() {
            super::reduce::normalize_axes(cx, &self.axes, r)?;
        }
        Ok(vec![out(dtype, x.shape.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Graph, ValueId};

    use crate::ops::testutil::{input, k, sym};

    /// All inputs present (norm ops have no optional inputs in these tests).
    fn run(
        g: &mut Graph,
        op: impl Into<crate::Op>,
        inputs: &[ValueId],
        n_out: usize,
    ) -> Result<Vec<String>, InferError> {
        let ins: Vec<Option<ValueId>> = inputs.iter().map(|&v| Some(v)).collect();
        crate::ops::testutil::run(g, op, &ins, n_out)
    }

    #[test]
    fn batch_norm_inference_and_training_outputs() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[sym("N"), k(3), k(4), k(5)]);
        let p: Vec<ValueId> = (0..4)
            .map(|i| input(&mut g, &format!("p{i}"), DType::F32, &[k(3)]))
            .collect();
        let ins = [x, p[0], p[1], p[2], p[3]];
        assert_eq!(
            run(&mut g, BatchNorm::default(), &ins, 1).unwrap(),
            ["f32[N,3,4,5]"]
        );
        assert!(run(&mut g, BatchNorm::default(), &ins, 3).is_err());
        let train = BatchNorm {
            training_mode: true,
            ..BatchNorm::default()
        };
        assert_eq!(
            run(&mut g, train, &ins, 3).unwrap(),
            ["f32[N,3,4,5]", "f32[3]", "f32[3]"]
        );
        let wrong = input(&mut g, "w", DType::F32, &[k(4)]);
        assert!(
            run(
                &mut g,
                BatchNorm::default(),
                &[x, wrong, p[1], p[2], p[3]],
                1
            )
            .is_err()
        );
    }

    #[test]
    fn layer_norm_statistics_use_stash_type() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F16, &[sym("B"), k(7), k(8)]);
        let s = input(&mut g, "s", DType::F16, &[k(8)]);
        let b = input(&mut g, "b", DType::F16, &[k(8)]);
        assert_eq!(
            run(&mut g, LayerNorm::default(), &[x, s, b], 3).unwrap(),
            ["f16[B,7,8]", "f32[B,7,1]", "f32[B,7,1]"]
        );
        let axis0 = LayerNorm {
            axis: 1,
            ..LayerNorm::default()
        };
        assert_eq!(
            run(&mut g, axis0, &[x, s], 2).unwrap(),
            ["f16[B,7,8]", "f32[B,1,1]"]
        );
        let wide = input(&mut g, "w", DType::F16, &[k(9)]);
        assert!(run(&mut g, LayerNorm::default(), &[x, wide], 1).is_err());
    }

    #[test]
    fn rms_norm_output_has_scale_type() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(2), k(4)]);
        let s = input(&mut g, "s", DType::F16, &[k(4)]);
        assert_eq!(
            run(&mut g, RmsNorm::default(), &[x, s], 1).unwrap(),
            ["f16[2,4]"]
        );
    }

    #[test]
    fn group_norm_needs_divisible_channels() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(3), k(4), k(2), k(2)]);
        let s = input(&mut g, "s", DType::F32, &[k(4)]);
        let op = GroupNorm {
            num_groups: 2,
            ..GroupNorm::default()
        };
        assert_eq!(run(&mut g, op, &[x, s, s], 1).unwrap(), ["f32[3,4,2,2]"]);
        let bad = GroupNorm {
            num_groups: 3,
            ..GroupNorm::default()
        };
        assert!(run(&mut g, bad, &[x, s, s], 1).is_err());
    }

    #[test]
    fn instance_norm_lrn_and_mvn_keep_the_input_type() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, &[k(1), k(3), sym("H"), sym("W")]);
        let s = input(&mut g, "s", DType::F32, &[k(3)]);
        assert_eq!(
            run(&mut g, InstanceNorm::default(), &[x, s, s], 1).unwrap(),
            ["f32[1,3,H,W]"]
        );
        let lrn = Lrn {
            size: 3,
            ..Lrn::default()
        };
        assert_eq!(run(&mut g, lrn, &[x], 1).unwrap(), ["f32[1,3,H,W]"]);
        assert_eq!(
            run(&mut g, MeanVarNorm::default(), &[x], 1).unwrap(),
            ["f32[1,3,H,W]"]
        );
        let bad = MeanVarNorm { axes: vec![0, 4] };
        assert!(run(&mut g, bad, &[x], 1).is_err());
    }
}
