//! Convolution and pooling: `conv`, `conv_transpose`, `deform_conv`, `causal_conv` (stateful depthwise
//! causal 1-D conv), `pool` (max/avg/lp sliding-window pooling), `global_pool`, `max_unpool`,
//! `max_roi_pool` and `roi_align`, plus the shared sliding-window arithmetic ([`window_output`],
//! [`transposed_output`], [`spatial_output_dims`]) that the interpreter and codegen reuse.
//!
//! Op-set choices: ONNX MaxPool/AveragePool/LpPool collapse into one `pool` with a [`PoolKind`], and
//! GlobalMaxPool/GlobalAveragePool/GlobalLpPool into `global_pool`; every sliding-window op shares one
//! [`AutoPad`] keyword. Empty `strides`/`dilations`/`pads`/`kernel_shape` lists mean the ONNX default
//! (all 1, all 0, taken from the weight). Layouts are ONNX's: `N, C, D1..Dn`.

use crate::define_ops;
use crate::infer::{Infer, InferCtx, InferError};
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

// ---------------------------------------------------------------------------------------------------
// Sliding-window arithmetic
// ---------------------------------------------------------------------------------------------------

/// Sliding-window geometry along one spatial axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Kernel size (≥ 1).
    pub kernel: u64,
    /// Stride (≥ 1).
    pub stride: u64,
    /// Dilation (≥ 1).
    pub dilation: u64,
    /// Explicit padding before the first element (used with [`AutoPad::NotSet`]).
    pub pad_begin: u64,
    /// Explicit padding after the last element (used with [`AutoPad::NotSet`]).
    pub pad_end: u64,
}

impl Window {
    /// A window of `kernel` with stride and dilation 1 and no padding.
    pub fn new(kernel: u64) -> Window {
        Window {
            kernel,
            stride: 1,
            dilation: 1,
            pad_begin: 0,
            pad_end: 0,
        }
    }

    /// The extent the dilated kernel covers: `(kernel - 1) · dilation + 1`.
    pub fn extent(&self) -> Result<u64, String> {
        self.check()?;
        (self.kernel - 1)
            .checked_mul(self.dilation)
            .and_then(|e| e.checked_add(1))
            .ok_or_else(|| "dilated kernel extent overflows".to_string())
    }

    fn check(&self) -> Result<(), String> {
        if self.kernel == 0 {
            return Err("kernel size must be positive".into());
        }
        if self.stride == 0 {
            return Err("stride must be positive".into());
        }
        if self.dilation == 0 {
            return Err("dilation must be positive".into());
        }
        Ok(())
    }
}

fn same_split(total: u64, auto_pad: AutoPad) -> (u64, u64) {
    let half = total / 2;
    match auto_pad {
        AutoPad::SameLower => (total - half, half),
        _ => (half, total - half),
    }
}

/// Output length and applied `(pad_begin, pad_end)` of a conv/pool window along an axis of length
/// `input`.
///
/// `same_*` gives `ceil(input / stride)` with padding `max(0, (out-1)·stride + extent - input)` split
/// with the odd element at the end (`same_upper`) or beginning (`same_lower`); `valid` pads nothing;
/// `notset` uses the window's pads. Otherwise `out = floor((input + pads - extent) / stride) + 1`, or with
/// `ceil_mode` the ceiling, minus one if the last window would start in the end padding.
pub fn window_output(
    input: u64,
    w: &Window,
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> Result<(u64, u64, u64), String> {
    let extent = w.extent()?;
    let s = w.stride;
    let (pb, pe) = match auto_pad {
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = input.div_ceil(s);
            let covered = out
                .saturating_sub(1)
                .checked_mul(s)
                .and_then(|c| c.checked_add(extent))
                .ok_or("window arithmetic overflows")?;
            let (pb, pe) = same_split(covered.saturating_sub(input), auto_pad);
            return Ok((out, pb, pe));
        }
        AutoPad::Valid => (0, 0),
        AutoPad::NotSet => (w.pad_begin, w.pad_end),
    };
    let padded = input
        .checked_add(pb)
        .and_then(|x| x.checked_add(pe))
        .ok_or("padded input size overflows")?;
    let span = padded.checked_sub(extent).ok_or_else(|| {
        format!("the kernel extent {extent} exceeds the padded input size {padded}")
    })?;
    let mut out = if ceil_mode {
        span.div_ceil(s) + 1
    } else {
        span / s + 1
    };
    // The last window must start inside the input or the begin padding.
    if ceil_mode && (out - 1).checked_mul(s).is_none_or(|st| st >= input + pb) {
        out -= 1;
    }
    Ok((out, pb, pe))
}

/// Output length and `(pad_begin, pad_end)` of a transposed conv along an axis of length `input`.
///
/// With `output_size` given (ONNX `output_shape`), or with `same_*` (`output = input · stride`), the
/// total padding is `stride·(input-1) + output_padding + extent - output`, split as for [`window_output`]
/// (it can be negative when the requested output is larger). Otherwise
/// `output = stride·(input-1) + output_padding + extent - pad_begin - pad_end`.
pub fn transposed_output(
    input: u64,
    w: &Window,
    output_padding: u64,
    auto_pad: AutoPad,
    output_size: Option<u64>,
) -> Result<(u64, i64, i64), String> {
    let extent = i128::from(w.extent()?);
    let overflow = || "transposed conv arithmetic overflows".to_string();
    let full = i128::from(w.stride)
        .checked_mul(i128::from(input) - 1)
        .and_then(|x| x.checked_add(i128::from(output_padding)))
        .and_then(|x| x.checked_add(extent))
        .ok_or_else(overflow)?;
    let target = match (output_size, auto_pad) {
        (Some(o), _) => Some(i128::from(o)),
        (None, AutoPad::SameUpper | AutoPad::SameLower) => Some(
            i128::from(input)
                .checked_mul(i128::from(w.stride))
                .ok_or_else(overflow)?,
        ),
        _ => None,
    };
    let to_u64 = |x: i128| {
        u64::try_from(x).map_err(|_| format!("transposed conv output size {x} is out of range"))
    };
    let to_i64 = |x: i128| i64::try_from(x).map_err(|_| "padding overflows".to_string());
    match target {
        Some(out) => {
            let total = full - out;
            let half = total.div_euclid(2);
            let (pb, pe) = if auto_pad == AutoPad::SameUpper {
                (half, total - half)
            } else {
                (total - half, half)
            };
            Ok((to_u64(out)?, to_i64(pb)?, to_i64(pe)?))
        }
        None => {
            let (pb, pe) = match auto_pad {
                AutoPad::Valid => (0, 0),
                _ => (w.pad_begin, w.pad_end),
            };
            let out = full - i128::from(pb) - i128::from(pe);
            if out < 0 || input == 0 {
                return Err(format!(
                    "transposed conv output size {out} is not positive (input {input}, pads {pb}+{pe})"
                ));
            }
            Ok((to_u64(out)?, pb as i64, pe as i64))
        }
    }
}

/// Per-axis attributes of a sliding-window op as ONNX lists (empty = default), validated.
#[derive(Debug, Clone, Copy)]
pub struct WindowAttrs<'a> {
    /// Strides (empty: all 1).
    pub strides: &'a [i64],
    /// Dilations (empty: all 1).
    pub dilations: &'a [i64],
    /// `[begins.., ends..]` (empty: all 0).
    pub pads: &'a [i64],
    /// Automatic padding.
    pub auto_pad: AutoPad,
    /// Ceil mode (pooling).
    pub ceil_mode: bool,
}

impl WindowAttrs<'_> {
    /// Checks list lengths against `n` spatial axes and value ranges.
    pub fn check(&self, n: usize) -> Result<(), String> {
        check_list("strides", self.strides, n, 1)?;
        check_list("dilations", self.dilations, n, 1)?;
        if !self.pads.is_empty() && self.pads.len() != 2 * n {
            return Err(format!(
                "pads has {} values, expected {} (begin and end for {n} spatial axes)",
                self.pads.len(),
                2 * n
            ));
        }
        if let Some(p) = self.pads.iter().find(|&&p| p < 0) {
            return Err(format!("pads must not be negative, got {p}"));
        }
        Ok(())
    }

    /// The window along axis `i` for kernel size `kernel` (assumes [`WindowAttrs::check`] passed).
    pub fn window(&self, i: usize, kernel: u64) -> Window {
        let n = self.pads.len() / 2;
        let get = |v: &[i64], d: i64| v.get(i).copied().unwrap_or(d) as u64;
        Window {
            kernel,
            stride: get(self.strides, 1),
            dilation: get(self.dilations, 1),
            pad_begin: if n > 0 { self.pads[i] as u64 } else { 0 },
            pad_end: if n > 0 { self.pads[n + i] as u64 } else { 0 },
        }
    }
}

fn check_list(name: &str, v: &[i64], n: usize, min: i64) -> Result<(), String> {
    if !v.is_empty() && v.len() != n {
        return Err(format!(
            "{name} has {} values, expected {n} (one per spatial axis)",
            v.len()
        ));
    }
    if let Some(x) = v.iter().find(|&&x| x < min) {
        return Err(format!("{name} values must be at least {min}, got {x}"));
    }
    Ok(())
}

/// Output spatial dims of a conv/pool over `input` spatial dims with `kernel` sizes (`None` = unknown).
///
/// Symbolic dims flow through where the window is size-preserving (stride 1 with `same_*` padding or
/// padding equal to `extent - 1`); other symbolic or unknown inputs give [`Dim::Unknown`]. With `same_*`
/// the output size does not depend on the kernel.
pub fn spatial_output_dims(
    input: &[Dim],
    kernel: &[Option<u64>],
    attrs: &WindowAttrs,
) -> Result<Vec<Dim>, String> {
    let n = input.len();
    attrs.check(n)?;
    if kernel.len() != n {
        return Err(format!(
            "kernel has {} spatial dims, the input {n}",
            kernel.len()
        ));
    }
    let same = matches!(attrs.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    let mut out = Vec::with_capacity(n);
    for (i, (d, k)) in input.iter().zip(kernel).enumerate() {
        let w = attrs.window(i, k.unwrap_or(1));
        let dim = match (d, k) {
            (Dim::Known(x), Some(_)) => {
                Dim::Known(window_output(*x, &w, attrs.auto_pad, attrs.ceil_mode)?.0)
            }
            (Dim::Known(x), None) if same => Dim::Known(x.div_ceil(w.stride.max(1))),
            (Dim::Sym(_), _) if same && w.stride == 1 => d.clone(),
            (Dim::Sym(_), Some(_)) if w.stride == 1 => {
                let extent = w.extent()?;
                let pads = match attrs.auto_pad {
                    AutoPad::Valid => 0,
                    _ => w.pad_begin.saturating_add(w.pad_end),
                };
                if pads.checked_add(1) == Some(extent) {
                    d.clone()
                } else {
                    Dim::Unknown
                }
            }
            _ => Dim::Unknown,
        };
        out.push(dim);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
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

fn window_attrs<'a>(
    strides: &'a [i64],
    dilations: &'a [i64],
    pads: &'a [i64],
    auto_pad: AutoPad,
    ceil_mode: bool,
) -> WindowAttrs<'a> {
    WindowAttrs {
        strides,
        dilations,
        pads,
        auto_pad,
        ceil_mode,
    }
}

// ---------------------------------------------------------------------------------------------------
// Inference
// ---------------------------------------------------------------------------------------------------

impl Infer for Conv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        float_like(cx, 2, x.dtype)?;
        let group = positive_attr(cx, "group", self.group)?;
        min_rank(cx, 0, 3)?;
        min_rank(cx, 1, 3)?;
        let n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?;
        let m = dim(w, 0);
        divisible(cx, "the output channel count", &m, group)?;
        let wc = dim(w, 1).mul(&Dim::Known(group));
        unify(
            cx,
            "the input channels and weight dim 1 × group",
            &dim(x, 1),
            &wc,
        )?;
        let m = check_bias(cx, 2, &m)?;
        let Some(n) = n else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            false,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), m];
        dims.extend(sp);
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for ConvTranspose {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        float_like(cx, 2, x.dtype)?;
        let group = positive_attr(cx, "group", self.group)?;
        min_rank(cx, 0, 3)?;
        min_rank(cx, 1, 3)?;
        let mut n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
                ("output_padding", self.output_padding.len()),
            ],
        )?;
        // `output_shape` lists the spatial dims; some exporters include N and C as well.
        let out_shape: &[i64] = match n {
            Some(n) if self.output_shape.len() == n + 2 => &self.output_shape[2..],
            _ => &self.output_shape,
        };
        if !out_shape.is_empty() {
            match n {
                Some(m) if m != out_shape.len() => {
                    return Err(cx.err(format!(
                        "output_shape has {} values, expected {m}",
                        out_shape.len()
                    )));
                }
                _ => n = Some(out_shape.len()),
            }
            if let Some(v) = out_shape.iter().find(|&&v| v < 0) {
                return Err(cx.err(format!("output_shape values must not be negative, got {v}")));
            }
        }
        unify(
            cx,
            "the input channels and weight dim 0",
            &dim(x, 1),
            &dim(w, 0),
        )?;
        divisible(cx, "the input channel count", &dim(x, 1), group)?;
        let m = dim(w, 1).mul(&Dim::Known(group));
        let m = check_bias(cx, 2, &m)?;
        let Some(n) = n else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            false,
        );
        attrs.check(n).map_err(|e| cx.err(e))?;
        check_list("output_padding", &self.output_padding, n, 0).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), m];
        for (i, k) in kernel.iter().enumerate() {
            let wnd = attrs.window(i, k.unwrap_or(1));
            let op = self.output_padding.get(i).copied().unwrap_or(0) as u64;
            if let Some(&o) = out_shape.get(i) {
                dims.push(Dim::Known(o as u64));
                continue;
            }
            let d = match (dim(x, i + 2), k) {
                (Dim::Known(len), Some(_)) => Dim::Known(
                    transposed_output(len, &wnd, op, self.auto_pad, None)
                        .map_err(|e| cx.err(e))?
                        .0,
                ),
                (Dim::Known(len), None)
                    if matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) =>
                {
                    len.checked_mul(wnd.stride).map_or(Dim::Unknown, Dim::Known)
                }
                (d @ Dim::Sym(_), _)
                    if wnd.stride == 1
                        && matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) =>
                {
                    d
                }
                (d @ Dim::Sym(_), Some(_)) if wnd.stride == 1 => {
                    let pads = match self.auto_pad {
                        AutoPad::Valid => 0,
                        _ => wnd.pad_begin.saturating_add(wnd.pad_end),
                    };
                    let extent = wnd.extent().map_err(|e| cx.err(e))?;
                    if pads.checked_add(1) == extent.checked_add(op) {
                        d
                    } else {
                        Dim::Unknown
                    }
                }
                _ => Dim::Unknown,
            };
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for DeformConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        let offset = cx.tensor(2)?;
        require_float(cx, x.dtype)?;
        for i in 1..5 {
            float_like(cx, i, x.dtype)?;
        }
        let group = positive_attr(cx, "group", self.group)?;
        let offset_group = positive_attr(cx, "offset_group", self.offset_group)?;
        for i in [0, 1, 2, 4] {
            if cx.has_input(i) {
                min_rank(cx, i, 3)?;
            }
        }
        let n = spatial_rank(
            cx,
            &[0, 1, 2, 4],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?;
        let m = dim(w, 0);
        divisible(cx, "the output channel count", &m, group)?;
        let c = unify(
            cx,
            "the input channels and weight dim 1 × group",
            &dim(x, 1),
            &dim(w, 1).mul(&Dim::Known(group)),
        )?;
        divisible(cx, "the input channel count", &c, offset_group)?;
        let m = check_bias(cx, 3, &m)?;
        let mut batch = unify(
            cx,
            "the batch sizes of x and offset",
            &dim(x, 0),
            &dim(offset, 0),
        )?;
        let mask = cx.opt_tensor(4)?;
        if let Some(mask) = mask {
            batch = unify(cx, "the batch sizes of x and mask", &batch, &dim(mask, 0))?;
        }
        let Some(n) = n else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let kernel = kernel_dims(cx, &self.kernel_shape, Some(w), n)?;
        // offset has offset_group·∏k·n channels, mask offset_group·∏k.
        if let Some(kprod) = kernel
            .iter()
            .try_fold(offset_group, |acc, k| acc.checked_mul((*k)?))
        {
            let want = kprod.checked_mul(n as u64).map_or(Dim::Unknown, Dim::Known);
            unify(
                cx,
                "offset channels and offset_group·∏kernel·spatial rank",
                &dim(offset, 1),
                &want,
            )?;
            if let Some(mask) = mask {
                unify(
                    cx,
                    "mask channels and offset_group·∏kernel",
                    &dim(mask, 1),
                    &Dim::Known(kprod),
                )?;
            }
        }
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            AutoPad::NotSet,
            false,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![batch, m];
        for (i, d) in sp.into_iter().enumerate() {
            let mut d = unify(
                cx,
                "the output size and the offset's spatial dims",
                &d,
                &dim(offset, i + 2),
            )?;
            if let Some(mask) = mask {
                d = unify(
                    cx,
                    "the output size and the mask's spatial dims",
                    &d,
                    &dim(mask, i + 2),
                )?;
            }
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for CausalConv {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let w = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        for i in 1..4 {
            float_like(cx, i, x.dtype)?;
        }
        exact_rank(cx, 0, 3)?;
        exact_rank(cx, 1, 3)?;
        exact_rank(cx, 3, 3)?;
        let mut c = unify(
            cx,
            "the input channels and weight dim 0",
            &dim(x, 1),
            &dim(w, 0),
        )?;
        unify(cx, "weight dim 1 (depthwise)", &dim(w, 1), &Dim::Known(1))?;
        c = check_bias(cx, 2, &c)?;
        let state = match dim(w, 2) {
            Dim::Known(0) => return Err(cx.err("the kernel size (weight dim 2) must be positive")),
            Dim::Known(k) => Dim::Known(k - 1),
            _ => Dim::Unknown,
        };
        let mut b = dim(x, 0);
        let mut state_dims = vec![b.clone(), c.clone(), state];
        if let Some(p) = cx.opt_tensor(3)? {
            b = unify(
                cx,
                "the batch sizes of input and past_state",
                &b,
                &dim(p, 0),
            )?;
            c = unify(cx, "the channels of input and past_state", &c, &dim(p, 1))?;
            let s = unify(
                cx,
                "past_state length and kernel size - 1",
                &state_dims[2],
                &dim(p, 2),
            )?;
            state_dims = vec![b.clone(), c.clone(), s];
        }
        let out = tensor(x.dtype, vec![b, c, dim(x, 2)]);
        let state = tensor(x.dtype, state_dims);
        Ok([out, state].into_iter().take(cx.num_outputs()).collect())
    }
}

impl Infer for Pool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let int8 = matches!(x.dtype, DType::I8 | DType::U8);
        if !(x.dtype.is_float() || (self.kind == PoolKind::Max && int8)) {
            return Err(cx.err(format!(
                "{} pooling does not support element type {}",
                self.kind.keyword(),
                x.dtype
            )));
        }
        if cx.num_outputs() > 2 || (cx.num_outputs() == 2 && self.kind != PoolKind::Max) {
            return Err(cx.err("only max pooling has a second (indices) output"));
        }
        if self.kernel_shape.is_empty() {
            return Err(cx.err("kernel_shape is required"));
        }
        if self.kind == PoolKind::Lp && self.p <= 0 {
            return Err(cx.err(format!("p must be positive, got {}", self.p)));
        }
        min_rank(cx, 0, 3)?;
        let n = spatial_rank(
            cx,
            &[0],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("dilations", self.dilations.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?
        .unwrap_or(self.kernel_shape.len());
        let kernel = kernel_dims(cx, &self.kernel_shape, None, n)?;
        let attrs = window_attrs(
            &self.strides,
            &self.dilations,
            &self.pads,
            self.auto_pad,
            self.ceil_mode,
        );
        let sp = spatial_output_dims(&spatial_in(x, n), &kernel, &attrs).map_err(|e| cx.err(e))?;
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        dims.extend(sp);
        let y = tensor(x.dtype, dims.clone());
        let idx = tensor(DType::I64, dims);
        Ok([y, idx].into_iter().take(cx.num_outputs()).collect())
    }
}

impl Infer for GlobalPool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        require_float(cx, x.dtype)?;
        if self.kind == PoolKind::Lp && self.p <= 0 {
            return Err(cx.err(format!("p must be positive, got {}", self.p)));
        }
        let Some(r) = min_rank(cx, 0, 2)? else {
            return Ok(vec![TensorType::unranked(x.dtype).into()]);
        };
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        dims.resize(r, Dim::Known(1));
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for MaxUnpool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let idx = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        if idx.dtype != DType::I64 {
            return Err(cx.err(format!("indices must be i64, got {}", idx.dtype)));
        }
        if self.kernel_shape.is_empty() {
            return Err(cx.err("kernel_shape is required"));
        }
        min_rank(cx, 0, 3)?;
        let n = spatial_rank(
            cx,
            &[0, 1],
            &[
                ("kernel_shape", self.kernel_shape.len()),
                ("strides", self.strides.len()),
                ("pads", self.pads.len() / 2),
            ],
        )?
        .unwrap_or(self.kernel_shape.len());
        for i in 0..n + 2 {
            unify(cx, "the shapes of x and indices", &dim(x, i), &dim(idx, i))?;
        }
        let kernel = kernel_dims(cx, &self.kernel_shape, None, n)?;
        let attrs = window_attrs(&self.strides, &[], &self.pads, AutoPad::NotSet, false);
        attrs.check(n).map_err(|e| cx.err(e))?;
        if let Some(s) = cx.opt_tensor(2)? {
            if s.dtype != DType::I64 {
                return Err(cx.err(format!("output_shape must be i64, got {}", s.dtype)));
            }
            exact_rank(cx, 2, 1)?;
            unify(
                cx,
                "output_shape length and the input rank",
                &dim(s, 0),
                &Dim::Known(n as u64 + 2),
            )?;
            let dims = match cx.sym_value(2) {
                Some(v) if v.len() == n + 2 => v.iter().map(|s| s.to_dim()).collect(),
                _ => vec![Dim::Unknown; n + 2],
            };
            return Ok(vec![tensor(x.dtype, dims)]);
        }
        let mut dims = vec![dim(x, 0), dim(x, 1)];
        for (i, k) in kernel.iter().enumerate() {
            let wnd = attrs.window(i, k.unwrap_or(1));
            let d = match dim(x, i + 2) {
                Dim::Known(len) => Dim::Known(
                    transposed_output(len, &wnd, 0, AutoPad::NotSet, None)
                        .map_err(|e| cx.err(e))?
                        .0,
                ),
                d @ Dim::Sym(_)
                    if wnd.stride == 1
                        && wnd.pad_begin.saturating_add(wnd.pad_end).checked_add(1)
                            == Some(wnd.kernel) =>
                {
                    d
                }
                _ => Dim::Unknown,
            };
            dims.push(d);
        }
        Ok(vec![tensor(x.dtype, dims)])
    }
}

impl Infer for MaxRoiPool {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let rois = cx.tensor(1)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        exact_rank(cx, 0, 4)?;
        exact_rank(cx, 1, 2)?;
        unify(
            cx,
            "rois dim 1 and 5 (batch index, x1, y1, x2, y2)",
            &dim(rois, 1),
            &Dim::Known(5),
        )?;
        let [ph, pw] = self.pooled_shape[..] else {
            return Err(cx.err(format!(
                "pooled_shape must have 2 values, got {}",
                self.pooled_shape.len()
            )));
        };
        let ph = positive_attr(cx, "pooled_shape[0]", ph)?;
        let pw = positive_attr(cx, "pooled_shape[1]", pw)?;
        Ok(vec![tensor(
            x.dtype,
            vec![dim(rois, 0), dim(x, 1), Dim::Known(ph), Dim::Known(pw)],
        )])
    }
}

impl Infer for RoiAlign {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let x = cx.tensor(0)?;
        let rois = cx.tensor(1)?;
        let bi = cx.tensor(2)?;
        require_float(cx, x.dtype)?;
        float_like(cx, 1, x.dtype)?;
        if !bi.dtype.is_int() {
            return Err(cx.err(format!("batch_indices must be integers, got {}", bi.dtype)));
        }
        exact_rank(cx, 0, 4)?;
        exact_rank(cx, 1, 2)?;
        exact_rank(cx, 2, 1)?;
        unify(
            cx,
            "rois dim 1 and 4 (x1, y1, x2, y2)",
            &dim(rois, 1),
            &Dim::Known(4),
        )?;
        let r = unify(
            cx,
            "the ROI counts of rois and batch_indices",
            &dim(rois, 0),
            &dim(bi, 0),
        )?;
        let oh = positive_attr(cx, "output_height", self.output_height)?;
        let ow = positive_attr(cx, "output_width", self.output_width)?;
        if self.sampling_ratio < 0 {
            return Err(cx.err(format!(
                "sampling_ratio must not be negative, got {}",
                self.sampling_ratio
            )));
        }
        Ok(vec![tensor(
            x.dtype,
            vec![r, dim(x, 1), Dim::Known(oh), Dim::Known(ow)],
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constant, Graph, Op};

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    fn k(v: u64) -> Dim {
        Dim::Known(v)
    }

    fn input(g: &mut Graph, name: &str, dtype: DType, dims: Vec<Dim>) -> crate::ValueId {
        g.add_input(name, Type::Tensor(TensorType::new(dtype, Shape(dims))))
    }

    fn run(
        g: &mut Graph,
        op: impl Into<Op>,
        inputs: Vec<Option<crate::ValueId>>,
        n: usize,
    ) -> Result<Vec<String>, InferError> {
        let names = (0..n).map(|i| format!("o{i}")).collect();
        let outs = g.add_node("n", op.into(), inputs, names)?;
        Ok(outs.iter().map(|&o| g.ty(o).to_string()).collect())
    }

    fn w(kernel: u64, stride: u64, dilation: u64, pb: u64, pe: u64) -> Window {
        Window {
            kernel,
            stride,
            dilation,
            pad_begin: pb,
            pad_end: pe,
        }
    }

    #[test]
    fn window_output_floor_and_explicit_pads() {
        assert_eq!(
            window_output(32, &w(3, 1, 1, 1, 1), AutoPad::NotSet, false),
            Ok((32, 1, 1))
        );
        assert_eq!(
            window_output(32, &w(3, 2, 1, 0, 0), AutoPad::NotSet, false),
            Ok((15, 0, 0))
        );
        assert_eq!(
            window_output(7, &w(3, 1, 2, 0, 0), AutoPad::NotSet, false),
            Ok((3, 0, 0))
        );
        assert_eq!(
            window_output(5, &w(2, 2, 1, 0, 1), AutoPad::NotSet, false),
            Ok((3, 0, 1))
        );
    }

    #[test]
    fn window_output_same_is_ceil_of_input_over_stride() {
        assert_eq!(
            window_output(32, &w(2, 1, 1, 9, 9), AutoPad::SameUpper, false),
            Ok((32, 0, 1))
        );
        assert_eq!(
            window_output(32, &w(2, 1, 1, 0, 0), AutoPad::SameLower, false),
            Ok((32, 1, 0))
        );
        assert_eq!(
            window_output(5, &w(3, 2, 1, 0, 0), AutoPad::SameUpper, false),
            Ok((3, 1, 1))
        );
        // Kernel smaller than stride: no padding needed.
        assert_eq!(
            window_output(6, &w(1, 4, 1, 0, 0), AutoPad::SameUpper, true),
            Ok((2, 0, 0))
        );
        assert_eq!(
            window_output(0, &w(3, 1, 1, 0, 0), AutoPad::SameUpper, false),
            Ok((0, 1, 2))
        );
    }

    #[test]
    fn window_output_valid_ignores_pads() {
        assert_eq!(
            window_output(32, &w(5, 1, 1, 2, 2), AutoPad::Valid, false),
            Ok((28, 0, 0))
        );
        assert_eq!(
            window_output(32, &w(5, 3, 1, 2, 2), AutoPad::Valid, false),
            Ok((10, 0, 0))
        );
    }

    #[test]
    fn window_output_ceil_mode_drops_windows_starting_in_end_padding() {
        // test_maxpool_2d_ceil: 4x4, k3 s2 -> 2x2.
        assert_eq!(
            window_output(4, &w(3, 2, 1, 0, 0), AutoPad::NotSet, true),
            Ok((2, 0, 0))
        );
        assert_eq!(
            window_output(4, &w(3, 2, 1, 0, 0), AutoPad::NotSet, false),
            Ok((1, 0, 0))
        );
        // test_maxpool_2d_ceil_output_size_reduce_by_one: 2x2, k1 s2 -> 1x1.
        assert_eq!(
            window_output(2, &w(1, 2, 1, 0, 0), AutoPad::NotSet, true),
            Ok((1, 0, 0))
        );
        // ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start in the end padding.
        assert_eq!(
            window_output(5, &w(2, 2, 1, 1, 1), AutoPad::NotSet, true),
            Ok((3, 1, 1))
        );
        // A window that starts inside the input is kept.
        assert_eq!(
            window_output(6, &w(2, 2, 1, 1, 1), AutoPad::NotSet, true),
            Ok((4, 1, 1))
        );
    }

    #[test]
    fn window_output_rejects_bad_geometry() {
        assert!(window_output(2, &w(3, 1, 1, 0, 0), AutoPad::NotSet, false).is_err());
        assert!(window_output(4, &w(0, 1, 1, 0, 0), AutoPad::NotSet, false).is_err());
        assert!(window_output(4, &w(1, 0, 1, 0, 0), AutoPad::NotSet, false).is_err());
        assert!(window_output(4, &w(1, 1, 0, 0, 0), AutoPad::NotSet, false).is_err());
        assert!(
            window_output(
                u64::MAX,
                &w(u64::MAX, 1, u64::MAX, u64::MAX, 1),
                AutoPad::NotSet,
                false
            )
            .is_err()
        );
    }

    #[test]
    fn transposed_output_formula_same_and_explicit_size() {
        // test_convtranspose: 3x3, k3 -> 5x5.
        assert_eq!(
            transposed_output(3, &w(3, 1, 1, 0, 0), 0, AutoPad::NotSet, None),
            Ok((5, 0, 0))
        );
        // strides 3, output_padding 1 (test_convtranspose_output_shape-style): 3·2 + 1 + 3 = 10.
        assert_eq!(
            transposed_output(3, &w(3, 3, 1, 0, 0), 1, AutoPad::NotSet, None),
            Ok((10, 0, 0))
        );
        assert_eq!(
            transposed_output(3, &w(3, 2, 1, 0, 0), 0, AutoPad::SameUpper, None),
            Ok((6, 0, 1))
        );
        assert_eq!(
            transposed_output(3, &w(3, 2, 1, 0, 0), 0, AutoPad::SameLower, None),
            Ok((6, 1, 0))
        );
        assert_eq!(
            transposed_output(3, &w(3, 3, 1, 0, 0), 0, AutoPad::NotSet, Some(10)),
            Ok((10, 0, -1))
        );
        assert!(transposed_output(1, &w(1, 1, 1, 1, 1), 0, AutoPad::NotSet, None).is_err());
        let huge = w(u64::MAX, u64::MAX, 1, 0, 0);
        assert!(transposed_output(u64::MAX, &huge, u64::MAX, AutoPad::NotSet, None).is_err());
        assert!(transposed_output(u64::MAX, &huge, 0, AutoPad::SameUpper, None).is_err());
    }

    #[test]
    fn conv_infers_output_and_keeps_symbolic_batch() {
        let mut g = Graph::new("t");
        let x = input(
            &mut g,
            "x",
            DType::F32,
            vec![sym("N"), k(3), k(224), k(224)],
        );
        let wt = g.add_const("w", Constant::from_f32s(&[16, 3, 3, 3], &[0.0; 432]));
        let op = Conv {
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            ..Conv::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,16,112,112]"]
        );
    }

    #[test]
    fn conv_same_padding_keeps_symbolic_spatial_dims() {
        let mut g = Graph::new("t");
        let x = input(
            &mut g,
            "x",
            DType::F32,
            vec![sym("N"), k(4), sym("H"), sym("W")],
        );
        let wt = input(&mut g, "w", DType::F32, vec![k(8), k(2), k(5), k(5)]);
        let same = Conv {
            group: 2,
            auto_pad: AutoPad::SameUpper,
            ..Conv::default()
        };
        assert_eq!(
            run(&mut g, same, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,8,H,W]"]
        );
        let pads = Conv {
            group: 2,
            pads: vec![2, 2, 2, 2],
            ..Conv::default()
        };
        assert_eq!(
            run(&mut g, pads, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,8,H,W]"]
        );
        let strided = Conv {
            group: 2,
            strides: vec![2, 1],
            pads: vec![2, 2, 2, 2],
            ..Conv::default()
        };
        assert_eq!(
            run(&mut g, strided, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,8,?,W]"]
        );
    }

    #[test]
    fn conv_with_unknown_ranks_uses_the_weight_or_attributes() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::unranked(DType::F32)));
        let wt = input(&mut g, "w", DType::F32, vec![k(8), k(4), k(3)]);
        assert_eq!(
            run(&mut g, Conv::default(), vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[?,8,?]"]
        );
        let wu = g.add_input("wu", Type::Tensor(TensorType::unranked(DType::F32)));
        assert_eq!(
            run(&mut g, Conv::default(), vec![Some(x), Some(wu)], 1).unwrap(),
            ["f32[*]"]
        );
    }

    #[test]
    fn conv_rejects_channel_mismatch_dtype_mismatch_and_bad_bias() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(1), k(3), k(8), k(8)]);
        let wt = input(&mut g, "w", DType::F32, vec![k(8), k(4), k(3), k(3)]);
        let e = run(&mut g, Conv::default(), vec![Some(x), Some(wt)], 1).unwrap_err();
        assert!(e.msg.contains("input channels"), "{e}");
        let wh = input(&mut g, "wh", DType::F16, vec![k(8), k(3), k(3), k(3)]);
        assert!(run(&mut g, Conv::default(), vec![Some(x), Some(wh)], 1).is_err());
        let w3 = input(&mut g, "w3", DType::F32, vec![k(8), k(3), k(3), k(3)]);
        let b = input(&mut g, "b", DType::F32, vec![k(7)]);
        assert!(run(&mut g, Conv::default(), vec![Some(x), Some(w3), Some(b)], 1).is_err());
        let xi = input(&mut g, "xi", DType::I32, vec![k(1), k(3), k(8), k(8)]);
        assert!(run(&mut g, Conv::default(), vec![Some(xi), Some(w3)], 1).is_err());
        let bad_strides = Conv {
            strides: vec![1],
            ..Conv::default()
        };
        assert!(run(&mut g, bad_strides, vec![Some(x), Some(w3)], 1).is_err());
        let neg = Conv {
            group: -1,
            ..Conv::default()
        };
        assert!(run(&mut g, neg, vec![Some(x), Some(w3)], 1).is_err());
        let big = Conv {
            kernel_shape: vec![5, 5],
            ..Conv::default()
        };
        assert!(run(&mut g, big, vec![Some(x), Some(w3)], 1).is_err());
    }

    #[test]
    fn conv_transpose_output_shape_padding_and_same() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(1), k(3), k(3)]);
        let wt = input(&mut g, "w", DType::F32, vec![k(1), k(2), k(3), k(3)]);
        let ins = vec![Some(x), Some(wt)];
        assert_eq!(
            run(&mut g, ConvTranspose::default(), ins.clone(), 1).unwrap(),
            ["f32[N,2,5,5]"]
        );
        let op = ConvTranspose {
            strides: vec![3, 2],
            output_padding: vec![1, 1],
            ..ConvTranspose::default()
        };
        assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,10,8]"]);
        let op = ConvTranspose {
            strides: vec![3, 2],
            output_shape: vec![10, 8],
            ..ConvTranspose::default()
        };
        assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,10,8]"]);
        let op = ConvTranspose {
            strides: vec![2, 2],
            auto_pad: AutoPad::SameUpper,
            ..ConvTranspose::default()
        };
        assert_eq!(run(&mut g, op, ins.clone(), 1).unwrap(), ["f32[N,2,6,6]"]);
        let op = ConvTranspose {
            group: 2,
            ..ConvTranspose::default()
        };
        assert!(run(&mut g, op, ins, 1).is_err());
    }

    #[test]
    fn conv_transpose_keeps_symbolic_dims_when_size_preserving() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(4), sym("L")]);
        let wt = input(&mut g, "w", DType::F32, vec![k(4), k(3), k(3)]);
        let op = ConvTranspose {
            group: 2,
            pads: vec![1, 1],
            ..ConvTranspose::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,6,L]"]
        );
        let op = ConvTranspose {
            group: 2,
            strides: vec![2],
            ..ConvTranspose::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(wt)], 1).unwrap(),
            ["f32[N,6,?]"]
        );
    }

    #[test]
    fn pool_kinds_ceil_mode_and_indices() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![sym("N"), k(3), k(32), k(32)]);
        let op = Pool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            ..Pool::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x)], 2).unwrap(),
            ["f32[N,3,16,16]", "i64[N,3,16,16]"]
        );
        let op = Pool {
            kind: PoolKind::Avg,
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            ceil_mode: true,
            ..Pool::default()
        };
        assert_eq!(
            run(&mut g, op.clone(), vec![Some(x)], 1).unwrap(),
            ["f32[N,3,16,16]"]
        );
        assert!(run(&mut g, op, vec![Some(x)], 2).is_err());
        let op = Pool {
            kind: PoolKind::Lp,
            kernel_shape: vec![3, 3],
            dilations: vec![2, 2],
            ..Pool::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x)], 1).unwrap(),
            ["f32[N,3,28,28]"]
        );
        assert!(run(&mut g, Pool::default(), vec![Some(x)], 1).is_err());
    }

    #[test]
    fn pool_rank_comes_from_kernel_shape_when_input_is_unranked() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::unranked(DType::U8)));
        let op = Pool {
            kernel_shape: vec![3],
            ..Pool::default()
        };
        assert_eq!(run(&mut g, op, vec![Some(x)], 1).unwrap(), ["u8[?,?,?]"]);
        let avg = Pool {
            kind: PoolKind::Avg,
            kernel_shape: vec![3],
            ..Pool::default()
        };
        assert!(run(&mut g, avg, vec![Some(x)], 1).is_err());
    }

    #[test]
    fn global_pool_keeps_batch_and_channels() {
        let mut g = Graph::new("t");
        let x = input(
            &mut g,
            "x",
            DType::F16,
            vec![sym("N"), k(8), sym("H"), k(7)],
        );
        assert_eq!(
            run(&mut g, GlobalPool::default(), vec![Some(x)], 1).unwrap(),
            ["f16[N,8,1,1]"]
        );
        let bad = input(&mut g, "b", DType::F32, vec![k(3)]);
        assert!(run(&mut g, GlobalPool::default(), vec![Some(bad)], 1).is_err());
    }

    #[test]
    fn max_unpool_default_and_explicit_output_shape() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(1), k(1), k(2), k(2)]);
        let i = input(&mut g, "i", DType::I64, vec![k(1), k(1), k(2), k(2)]);
        let op = MaxUnpool {
            kernel_shape: vec![2, 2],
            strides: vec![2, 2],
            ..MaxUnpool::default()
        };
        assert_eq!(
            run(&mut g, op.clone(), vec![Some(x), Some(i)], 1).unwrap(),
            ["f32[1,1,4,4]"]
        );
        let s = g.add_const("s", Constant::from_i64s(&[4], &[1, 1, 5, 5]));
        assert_eq!(
            run(&mut g, op.clone(), vec![Some(x), Some(i), Some(s)], 1).unwrap(),
            ["f32[1,1,5,5]"]
        );
        let dynamic = input(&mut g, "d", DType::I64, vec![k(4)]);
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(i), Some(dynamic)], 1).unwrap(),
            ["f32[?,?,?,?]"]
        );
    }

    #[test]
    fn roi_ops_output_per_roi() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(1), k(3), k(10), k(10)]);
        let rois = input(&mut g, "r", DType::F32, vec![sym("R"), k(4)]);
        let bi = input(&mut g, "b", DType::I64, vec![sym("R")]);
        let op = RoiAlign {
            output_height: 5,
            output_width: 5,
            ..RoiAlign::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(rois), Some(bi)], 1).unwrap(),
            ["f32[R,3,5,5]"]
        );
        let rois5 = input(&mut g, "r5", DType::F32, vec![k(7), k(5)]);
        let op = MaxRoiPool {
            pooled_shape: vec![2, 3],
            ..MaxRoiPool::default()
        };
        assert_eq!(
            run(&mut g, op, vec![Some(x), Some(rois5)], 1).unwrap(),
            ["f32[7,3,2,3]"]
        );
        assert!(run(&mut g, MaxRoiPool::default(), vec![Some(x), Some(rois5)], 1).is_err());
    }

    #[test]
    fn deform_conv_checks_offset_channels() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![k(1), k(1), k(3), k(3)]);
        let wt = input(&mut g, "w", DType::F32, vec![k(1), k(1), k(2), k(2)]);
        let off = input(&mut g, "o", DType::F32, vec![k(1), k(8), k(2), k(2)]);
        assert_eq!(
            run(
                &mut g,
                DeformConv::default(),
                vec![Some(x), Some(wt), Some(off)],
                1
            )
            .unwrap(),
            ["f32[1,1,2,2]"]
        );
        let bad = input(&mut g, "bad", DType::F32, vec![k(1), k(4), k(2), k(2)]);
        assert!(
            run(
                &mut g,
                DeformConv::default(),
                vec![Some(x), Some(wt), Some(bad)],
                1
            )
            .is_err()
        );
    }

    #[test]
    fn causal_conv_state_has_kernel_minus_one_positions() {
        let mut g = Graph::new("t");
        let x = input(&mut g, "x", DType::F32, vec![sym("B"), k(8), sym("L")]);
        let wt = input(&mut g, "w", DType::F32, vec![k(8), k(1), k(4)]);
        assert_eq!(
            run(&mut g, CausalConv::default(), vec![Some(x), Some(wt)], 2).unwrap(),
            ["f32[B,8,L]", "f32[B,8,3]"]
        );
        let past = input(&mut g, "p", DType::F32, vec![k(2), k(8), k(2)]);
        assert!(
            run(
                &mut g,
                CausalConv::default(),
                vec![Some(x), Some(wt), None, Some(past)],
                2
            )
            .is_err()
        );
    }

    #[test]
    fn spatial_output_dims_without_kernel_only_for_same() {
        let attrs = window_attrs(&[2], &[], &[], AutoPad::SameLower, false);
        assert_eq!(
            spatial_output_dims(&[k(7)], &[None], &attrs),
            Ok(vec![k(4)])
        );
        let attrs = window_attrs(&[2], &[], &[], AutoPad::NotSet, false);
        assert_eq!(
            spatial_output_dims(&[k(7)], &[None], &attrs),
            Ok(vec![Dim::Unknown])
        );
        let attrs = window_attrs(&[], &[], &[1, -1], AutoPad::NotSet, false);
        assert!(spatial_output_dims(&[k(7)], &[Some(1)], &attrs).is_err());
    }
}
