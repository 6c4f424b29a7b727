//! Convolution and pooling: `conv`, `conv_transpose`, `deform_conv`, `causal_conv` (stateful depthwise
//! causal 1-D conv), `pool` (max/avg/lp sliding-window pooling), `global_pool`, `max_unpool`,
//! `max_roi_pool` and `roi_align`, plus the shared sliding-window arithmetic ([`window_output`],
//! [`transposed_output`], [`spatial_output_dims`]) that the interpreter and codegen reuse.
//!
//! Op-set choices: ONNX MaxPool/AveragePool/LpPool collapse into one `pool` with a [`PoolKind`], and
//! GlobalMaxPool/GlobalAveragePool/GlobalLpPool into `global_pool`; every sliding-window op shares one
//! [`AutoPad`] keyword. Empty `strides`/`dilations`/`pads`/`kernel_shape` lists mean the ONNX default
//! (all 1, all 0, taken from the weight). Layouts are ONNX's: `N, C, D1..Dn`.
//!
//! The table of ops and the inference helpers are here; inference lives by kind in `convolution`,
//! `pool` and `roi` (the interpreter's `runtime/src/interp/conv/` file names), the window arithmetic in
//! `window`.

mod convolution;
mod pool;
mod roi;
#[cfg(test)]
mod tests;
mod window;

use window::check_list;

pub use window::{
    Window, WindowAttrs, spatial_output_dims, transposed_output, window_attrs, window_output,
};

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};
use crate::ops::{AxisRef, ChannelMap, NodeTypes, Work};
use crate::{DType, Dim, Shape, TensorType, Type};

crate::attr_enum! {
    /// How a sliding-window op pads its input (ONNX `auto_pad`).
    pub enum AutoPad {
        /// Padding is the explicit `pads` attribute (ONNX `NOTSET`).
        NotSet = "notset",
        /// Pad so that `out = ceil(in / stride)` (transposed: `in · stride`), odd extra at the end.
        SameUpper = "same_upper",
        /// As `same_upper`, odd extra at the beginning.
        SameLower = "same_lower",
        /// No padding.
        Valid = "valid",
    }
}

crate::attr_enum! {
    /// What a pooling op computes over each window.
    pub enum PoolKind {
        /// Maximum.
        Max = "max",
        /// Mean.
        Avg = "avg",
        /// `(Σ |x|^p)^(1/p)`.
        Lp = "lp",
    }
}

crate::attr_enum! {
    /// Order used to linearize `pool {kind=max}` indices (ONNX `storage_order`).
    pub enum StorageOrder {
        /// Row-major (last axis fastest).
        RowMajor = "row_major",
        /// Column-major (first spatial axis fastest).
        ColMajor = "col_major",
    }
}

/// The activation fused into `causal_conv` (`none` or `silu`): the one activation vocabulary.
pub use crate::ops::activation::ActKind as CausalActivation;

crate::attr_enum! {
    /// How `roi_align` reduces the samples of a bin.
    pub enum RoiAlignMode {
        /// Mean of the samples.
        Avg = "avg",
        /// Maximum of the samples.
        Max = "max",
    }
}

crate::attr_enum! {
    /// How `roi_align` maps ROI coordinates to pixel coordinates.
    pub enum RoiCoordMode {
        /// Shift by -0.5 (ONNX `half_pixel`, the opset 16+ default).
        HalfPixel = "half_pixel",
        /// No shift (ONNX `output_half_pixel`, the opset 10 behaviour).
        OutputHalfPixel = "output_half_pixel",
    }
}

define_ops! {
    /// Convolution and pooling ops.
    pub enum ConvOp {
        /// N-d convolution `(x[N,C,D..], w[M,C/group,K..], b[M]?) -> [N,M,O..]`.
        Conv = "conv" {
            /// Number of channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// `[x1_begin, x2_begin, .., x1_end, x2_end, ..]` (empty: all 0); used when `auto_pad=notset`.
            pads: Vec<i64> = Vec::new(),
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
        },
        /// Transposed convolution `(x[N,C,D..], w[C,M/group,K..], b[M]?) -> [N,M,O..]`.
        ConvTranspose = "conv_transpose" {
            /// Number of channel groups.
            group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv` (ignored when `output_shape` is given).
            pads: Vec<i64> = Vec::new(),
            /// Extra output elements at the end of each spatial axis (empty: all 0).
            output_padding: Vec<i64> = Vec::new(),
            /// Explicit output spatial dims (empty: computed); pads are then derived from it.
            output_shape: Vec<i64> = Vec::new(),
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
        },
        /// Deformable convolution `(x, w, offset, b?, mask?) -> [N,M,O..]` (ONNX DeformConv).
        DeformConv = "deform_conv" {
            /// Number of channel groups.
            group: i64 = 1,
            /// Number of offset groups.
            offset_group: i64 = 1,
            /// Kernel spatial dims (empty: from `w`).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv`.
            pads: Vec<i64> = Vec::new(),
        },
        /// Stateful causal depthwise 1-d conv `(x[B,C,L], w[C,1,K], b[C]?, past[B,C,K-1]?) ->
        /// (y[B,C,L], present[B,C,K-1])` (ONNX CausalConvWithState).
        CausalConv = "causal_conv" {
            /// Fused activation.
            activation: CausalActivation = CausalActivation::None,
        },
        /// Sliding-window pooling `x[N,C,D..] -> (y[N,C,O..], indices: i64[N,C,O..]?)`; indices only for
        /// `kind=max` (ONNX MaxPool/AveragePool/LpPool).
        Pool = "pool" {
            /// Reduction over each window.
            kind: PoolKind = PoolKind::Max,
            /// Window spatial dims (required).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Dilations per spatial axis (empty: all 1).
            dilations: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv`.
            pads: Vec<i64> = Vec::new(),
            /// Automatic padding.
            auto_pad: AutoPad = AutoPad::NotSet,
            /// Round output sizes up (windows starting in the end padding are dropped).
            ceil_mode: bool = false,
            /// `avg`: divide by the full window size including padding.
            count_include_pad: bool = false,
            /// `lp`: the exponent.
            p: i64 = 2,
            /// `max`: how indices are linearized.
            storage_order: StorageOrder = StorageOrder::RowMajor,
        },
        /// Pooling over all spatial dims `x[N,C,D..] -> [N,C,1..]`.
        GlobalPool = "global_pool" {
            /// Reduction.
            kind: PoolKind = PoolKind::Avg,
            /// `lp`: the exponent.
            p: i64 = 2,
        },
        /// Partial inverse of max pooling `(x, indices, output_shape?) -> y[N,C,O..]` (ONNX MaxUnpool).
        MaxUnpool = "max_unpool" {
            /// Window spatial dims (required).
            kernel_shape: Vec<i64> = Vec::new(),
            /// Strides per spatial axis (empty: all 1).
            strides: Vec<i64> = Vec::new(),
            /// Explicit pads as for `conv`.
            pads: Vec<i64> = Vec::new(),
        },
        /// ROI max pooling `(x[N,C,H,W], rois[R,5]) -> [R,C,ph,pw]` (ONNX MaxRoiPool).
        MaxRoiPool = "max_roi_pool" {
            /// `[ph, pw]` (required).
            pooled_shape: Vec<i64> = Vec::new(),
            /// Scale from ROI coordinates to `x` coordinates.
            spatial_scale: f32 = 1.0,
        },
        /// ROI align `(x[N,C,H,W], rois[R,4], batch_indices: i64[R]) -> [R,C,oh,ow]` (ONNX RoiAlign).
        RoiAlign = "roi_align" {
            /// Reduction over the samples of a bin.
            mode: RoiAlignMode = RoiAlignMode::Avg,
            /// Coordinate shift.
            coordinate_transformation_mode: RoiCoordMode = RoiCoordMode::HalfPixel,
            /// Output height.
            output_height: i64 = 1,
            /// Output width.
            output_width: i64 = 1,
            /// Samples per bin along each axis (0: adaptive).
            sampling_ratio: i64 = 0,
            /// Scale from ROI coordinates to `x` coordinates.
            spatial_scale: f32 = 1.0,
        },
    }
}

// Inference helpers
// ---------------------------------------------------------------------------------------------------

/// Dim `i` of `t` (unknown when the rank is unknown or too small).
fn dim(t: &TensorType, i: usize) -> Dim {
    t.dims()
        .and_then(|d| d.get(i))
        .cloned()
        .unwrap_or(Dim::Unknown)
}

fn tensor(dtype: DType, dims: Vec<Dim>) -> Type {
    Type::Tensor(TensorType::new(dtype, Shape(dims)))
}

/// Checks that input `i` is a float tensor with the dtype of input 0.
fn float_like(cx: &InferCtx, i: usize, first: DType) -> Result<(), InferError> {
    if let Some(t) = cx.opt_tensor(i)?
        && t.dtype != first
    {
        return Err(cx.err(format!(
            "input {i} has element type {}, input 0 has {first}",
            t.dtype
        )));
    }
    Ok(())
}

fn require_float(cx: &InferCtx, dtype: DType) -> Result<(), InferError> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(cx.err(format!("expects a floating-point input, got {dtype}")))
    }
}

/// Checks that a known rank is at least `min`.
fn min_rank(cx: &InferCtx, i: usize, min: usize) -> Result<Option<usize>, InferError> {
    let r = cx.rank(i)?;
    if let Some(r) = r
        && r < min
    {
        return Err(cx.err(format!(
            "input {i} must have rank ≥ {min} (N, C, spatial dims), got rank {r}"
        )));
    }
    Ok(r)
}

fn exact_rank(cx: &InferCtx, i: usize, want: usize) -> Result<(), InferError> {
    if let Some(t) = cx.opt_tensor(i)?
        && let Some(r) = t.rank()
        && r != want
    {
        return Err(cx.err(format!("input {i} must have rank {want}, got {r}")));
    }
    Ok(())
}

/// Merges two descriptions of one dim, erroring on a conflict.
fn unify(cx: &InferCtx, what: &str, a: &Dim, b: &Dim) -> Result<Dim, InferError> {
    if a.conflicts(b) {
        return Err(cx.err(format!("{what} disagree: {a} vs {b}")));
    }
    Ok(a.refine(b))
}

/// The number of spatial axes: from the ranks of inputs `ranked` (which include N and C) or the
/// lengths of per-axis lists; errors when they disagree.
fn spatial_rank(
    cx: &InferCtx,
    ranked: &[usize],
    lists: &[(&str, usize)],
) -> Result<Option<usize>, InferError> {
    let mut n: Option<(usize, String)> = None;
    let mut note = |cand: usize, from: String| -> Result<(), InferError> {
        match &n {
            Some((m, src)) if *m != cand => Err(cx.err(format!(
                "{from} implies {cand} spatial axes, {src} implies {m}"
            ))),
            Some(_) => Ok(()),
            None => {
                n = Some((cand, from));
                Ok(())
            }
        }
    };
    for &i in ranked {
        if let Some(r) = cx.opt_tensor(i)?.and_then(TensorType::rank) {
            note(r.saturating_sub(2), format!("input {i} (rank {r})"))?;
        }
    }
    for &(name, len) in lists {
        if len > 0 {
            note(len, name.to_string())?;
        }
    }
    Ok(n.map(|(m, _)| m))
}

/// Kernel spatial sizes from the `kernel_shape` attribute and/or the weight's dims `2..`.
fn kernel_dims(
    cx: &InferCtx,
    attr: &[i64],
    w: Option<&TensorType>,
    n: usize,
) -> Result<Vec<Option<u64>>, InferError> {
    let mut k = vec![None; n];
    for (i, slot) in k.iter_mut().enumerate() {
        let from_w = w.map_or(Dim::Unknown, |w| dim(w, i + 2));
        let from_attr = match attr.get(i) {
            Some(&v) if v <= 0 => {
                return Err(cx.err(format!("kernel_shape values must be positive, got {v}")));
            }
            Some(&v) => Dim::Known(v as u64),
            None => Dim::Unknown,
        };
        *slot = unify(
            cx,
            "kernel_shape and the weight's spatial dims",
            &from_attr,
            &from_w,
        )?
        .known();
    }
    if k.contains(&Some(0)) {
        return Err(cx.err("kernel dims must be positive"));
    }
    Ok(k)
}

fn positive_attr(cx: &InferCtx, name: &str, v: i64) -> Result<u64, InferError> {
    if v <= 0 {
        return Err(cx.err(format!("{name} must be positive, got {v}")));
    }
    Ok(v as u64)
}

/// Checks that a known channel count is divisible by `group`.
fn divisible(cx: &InferCtx, what: &str, d: &Dim, group: u64) -> Result<(), InferError> {
    if let Dim::Known(c) = d
        && c % group != 0
    {
        return Err(cx.err(format!("{what} ({c}) is not divisible by group {group}")));
    }
    Ok(())
}

fn check_bias(cx: &InferCtx, i: usize, channels: &Dim) -> Result<Dim, InferError> {
    match cx.opt_tensor(i)? {
        Some(b) => {
            exact_rank(cx, i, 1)?;
            unify(
                cx,
                "the bias length and the output channels",
                channels,
                &dim(b, 0),
            )
        }
        None => Ok(channels.clone()),
    }
}

fn spatial_in(x: &TensorType, n: usize) -> Vec<Dim> {
    (0..n).map(|i| dim(x, i + 2)).collect()
}

// Properties (FLOPs and bytes, channel map)
// ---------------------------------------------------------------------------------------------------

impl ConvOp {
    /// Properties (see [`crate::ops::Props`]): pure, not elementwise.
    pub fn props(&self) -> crate::ops::Props {
        crate::ops::Props::NONE
    }

    /// Arithmetic (see [`crate::ops::Work`]): convolutions count multiply-accumulates.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        match self {
            Self::Conv(_) => conv_work(t),
            // Every input element scatters into M/group × kernel outputs: w is [C, M/group, K..].
            Self::ConvTranspose(_) => Some(Work::mac(
                t.in_elems(0)? * t.in_dims_from(1, 1)?,
                t.out_elems()?,
            )),
            _ => Work::default_for(t),
        }
    }

    /// Channel map (see [`crate::ops::ChannelMap`]): conv by its groups; pooling keeps batch and
    /// channel (`c → c`).
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        match self {
            Self::Conv(c) => conv_channels(c.group, t),
            Self::Pool(_) | Self::GlobalPool(_) => match t.output(0).and_then(TensorType::rank) {
                Some(r) if r >= 2 => {
                    let from: Vec<Option<usize>> = (0..r).map(|a| (a < 2).then_some(a)).collect();
                    ChannelMap::axes(&from)
                }
                _ => ChannelMap::Opaque,
            },
            _ => ChannelMap::Opaque,
        }
    }

    /// Restates attributes that repeat an operand's extent after channels were removed (pruning):
    /// a depthwise `conv`'s `group` (= its channel count) becomes the new count of filters.
    /// `before`/`after`: the input types before and after the removal.
    pub fn refit_channels(
        &mut self,
        before: &[Option<&TensorType>],
        after: &[Option<&TensorType>],
    ) {
        let Self::Conv(c) = self else { return };
        let d = |t: &[Option<&TensorType>], i: usize, a: usize| {
            t.get(i).copied().flatten().and_then(|t| dim(t, a).known())
        };
        let g = u64::try_from(c.group).ok();
        let depthwise = g.is_some_and(|g| g > 1)
            && d(before, 0, 1) == g
            && d(before, 1, 0) == g
            && d(before, 1, 1) == Some(1);
        if let (true, Some(m)) = (depthwise, d(after, 1, 0)) {
            c.group = i64::try_from(m).unwrap_or(c.group);
        }
    }

    /// Quantizable operands (see [`crate::ops::QuantSite`]): `conv(x, w[M, C/g, k..], b[M]?)` per
    /// output channel of `w`.
    pub fn quant_site(&self) -> Option<crate::ops::QuantSite> {
        match self {
            Self::Conv(_) => Some(crate::ops::QuantSite {
                data: 0,
                weight: 1,
                weight_axis: 0,
                bias: Some(2),
                weight_rank: crate::ops::WeightRank::AtLeast(3),
            }),
            _ => None,
        }
    }
}

/// Work of `conv(x, w, b?)`: each output element sums `C/group · ∏kernel` products (`w.shape[1..]`),
/// plus one addition (the bias or the accumulator's start).
pub(crate) fn conv_work(t: &NodeTypes) -> Option<Work> {
    let out = t.out_elems()?;
    Some(Work::mac(out * t.in_dims_from(1, 1)?, out))
}

/// Channel map of `conv(x[N,C,..], w[M,C/group,..], b[M]?) -> y[N,M,..]` with `group` groups: with one
/// group input channels `{x.1, w.1}` and output channels `{w.0, b.0, y.1}` are independent spaces;
/// depthwise (`group = C = M`, `w.shape[1] = 1`) ties them into one (`c → c`); other groupings are
/// [`ChannelMap::Grouped`]. Batch is `{x.0, y.0}`.
pub(crate) fn conv_channels(group: i64, t: &NodeTypes) -> ChannelMap {
    let (Some(x), Some(w), Some(y)) = (t.input(0), t.input(1), t.output(0)) else {
        return ChannelMap::Opaque;
    };
    if x.rank().is_none_or(|r| r < 2) || w.rank().is_none_or(|r| r < 2) || y.rank().is_none() {
        return ChannelMap::Opaque;
    }
    let bias = t.input(2).is_some();
    let mut output = vec![AxisRef::input(1, 0)];
    if bias {
        output.push(AxisRef::input(2, 0));
    }
    output.push(AxisRef::output(0, 1));
    let batch = vec![AxisRef::input(0, 0), AxisRef::output(0, 0)];
    let input = vec![AxisRef::input(0, 1), AxisRef::input(1, 1)];
    let known = |t: &TensorType, i: usize| dim(t, i).known();
    let (c, m, per) = (known(x, 1), known(w, 0), known(w, 1));
    match u64::try_from(group) {
        Ok(1) => ChannelMap::Tied(vec![batch, input, output]),
        Ok(g) if c == Some(g) && m == Some(g) && per == Some(1) => {
            let mut depth = vec![AxisRef::input(0, 1)];
            depth.extend(output);
            ChannelMap::Tied(vec![batch, depth])
        }
        Ok(g) if g > 1 => ChannelMap::Grouped {
            groups: g,
            input: vec![AxisRef::input(0, 1)],
            output,
        },
        _ => ChannelMap::Opaque,
    }
}
