//! Shape manipulation, indexing and data movement: reshape/transpose/concat/slice/gather/scatter/pad,
//! resampling (`resize`, `grid_sample`), and the shape-computing ops (`shape`, `size`, `range`,
//! `constant_of_shape`) with symbolic evaluation, so that `Shape → Gather → Concat → Reshape` chains give
//! concrete or symbolic dims instead of unknown ones.
//!
//! Collapsed ONNX variants: `Scatter` (deprecated) is `scatter_elements`; `Upsample` and `Resize-10` are
//! `resize` with `asymmetric` coordinates and `floor` rounding; `Split`'s `num_outputs` is the node's
//! output count (chunks of `ceil(dim / n)`, the last one smaller). Operands that ONNX passes as inputs
//! (shapes, axes, pads, repeats, scales, sizes) stay inputs; inference reads their values when they are
//! known (constant or symbolic) and otherwise gives unknown dims.
//!
//! The table of ops is here; their inference lives by kind in [`layout`], [`index`] and [`resample`]
//! (the same file names as the interpreter's `runtime/src/interp/movement/`).

mod index;
mod layout;
mod resample;
#[cfg(test)]
mod tests;

use crate::infer::{Infer, InferCtx, InferError, SYM_MAX_ELEMENTS, SymInt, normalize_axis};
use crate::ops::props::norm_axis;
use crate::ops::{ChannelMap, NodeTypes, Work};
use crate::{Constant, DType, Dim, Shape, TensorType, Type, define_ops};

crate::attr_enum! {
    /// How `pad` fills the new border.
    pub enum PadMode {
        /// With `constant_value` (0 by default).
        Constant = "constant",
        /// Mirrored without repeating the edge.
        Reflect = "reflect",
        /// Repeating the edge value.
        Edge = "edge",
        /// Wrapping around (circular).
        Wrap = "wrap",
    }
}

crate::attr_enum! {
    /// How scatter ops combine an update with the existing value.
    pub enum ScatterReduction {
        /// Overwrite.
        None = "none",
        /// Add.
        Add = "add",
        /// Multiply.
        Mul = "mul",
        /// Maximum.
        Max = "max",
        /// Minimum.
        Min = "min",
    }
}

crate::attr_enum! {
    /// Element order of `depth_to_space` / `space_to_depth` blocks.
    pub enum BlockMode {
        /// Depth-column-row.
        Dcr = "dcr",
        /// Column-row-depth.
        Crd = "crd",
    }
}

crate::attr_enum! {
    /// Interpolation of `resize`.
    pub enum ResizeMode {
        /// Nearest neighbour.
        Nearest = "nearest",
        /// N-linear.
        Linear = "linear",
        /// N-cubic.
        Cubic = "cubic",
    }
}

crate::attr_enum! {
    /// How `resize` maps an output coordinate to an input coordinate.
    pub enum CoordMode {
        /// `(x + 0.5) / scale - 0.5`.
        HalfPixel = "half_pixel",
        /// Half pixel, centred when the output size was rounded.
        HalfPixelSymmetric = "half_pixel_symmetric",
        /// Half pixel, but 0 when the output length is 1.
        PytorchHalfPixel = "pytorch_half_pixel",
        /// `x * (in - 1) / (out - 1)`.
        AlignCorners = "align_corners",
        /// `x / scale`.
        Asymmetric = "asymmetric",
        /// Crop to `roi`, then align corners.
        TfCropAndResize = "tf_crop_and_resize",
        /// `(x + 0.5) / scale` (opsets 11–12 only).
        TfHalfPixelForNn = "tf_half_pixel_for_nn",
    }
}

crate::attr_enum! {
    /// Rounding of the source coordinate in nearest-neighbour `resize`.
    pub enum NearestMode {
        /// Round, halves down.
        RoundPreferFloor = "round_prefer_floor",
        /// Round, halves up.
        RoundPreferCeil = "round_prefer_ceil",
        /// Floor.
        Floor = "floor",
        /// Ceiling.
        Ceil = "ceil",
    }
}

crate::attr_enum! {
    /// How `resize` interprets `sizes` with respect to the aspect ratio.
    pub enum AspectPolicy {
        /// Resize to exactly `sizes`.
        Stretch = "stretch",
        /// One scale for all axes, no extent larger than `sizes`.
        NotLarger = "not_larger",
        /// One scale for all axes, no extent smaller than `sizes`.
        NotSmaller = "not_smaller",
    }
}

crate::attr_enum! {
    /// Interpolation of `grid_sample`.
    pub enum GridMode {
        /// (Bi/tri)linear.
        Linear = "linear",
        /// Nearest neighbour.
        Nearest = "nearest",
        /// Bicubic.
        Cubic = "cubic",
    }
}

crate::attr_enum! {
    /// Values `grid_sample` reads outside the input.
    pub enum GridPadding {
        /// Zeros.
        Zeros = "zeros",
        /// The border value.
        Border = "border",
        /// Reflection at the border.
        Reflection = "reflection",
    }
}

crate::attr_enum! {
    /// Where `tensor_scatter` writes past the end of the cache.
    pub enum CacheMode {
        /// Nowhere: indices must stay in range.
        Linear = "linear",
        /// Wraps around (index modulo the cache length).
        Circular = "circular",
    }
}

define_ops! {
    /// Data movement ops.
    pub enum MovementOp {
        /// The shape of input 0 as an i64 vector, dims `[start, end)` (negative = from the end).
        ShapeOf = "shape" { start: i64 = 0, end: Option<i64> = None },
        /// The element count of input 0 as an i64 scalar.
        Size = "size" {},
        /// Returns its input unchanged (any type).
        Identity = "identity" {},
        /// Input 0 with the shape given by i64 input 1: `-1` is inferred, `0` copies the input dim unless
        /// `allowzero`.
        Reshape = "reshape" { allowzero: bool = false },
        /// To 2-D: dims before `axis` and from `axis` on are multiplied together.
        Flatten = "flatten" { axis: i64 = 1 },
        /// Removes the size-1 dims listed by optional i64 input 1 (all size-1 dims when omitted).
        Squeeze = "squeeze" {},
        /// Inserts size-1 dims at the output positions listed by i64 input 1.
        Unsqueeze = "unsqueeze" {},
        /// Permutes dims: output dim `i` is input dim `perm[i]`; reversed when `perm` is absent.
        Transpose = "transpose" { perm: Option<Vec<i64>> = None },
        /// Joins its inputs along `axis`.
        Concat = "concat" { axis: i64 = 0 },
        /// Splits input 0 along `axis` into the node's outputs: sizes from optional i64 input 1, else
        /// chunks of `ceil(dim / outputs)` with a smaller last chunk.
        Split = "split" { axis: i64 = 0 },
        /// `data[starts:ends:steps]` on `axes` (inputs: data, starts, ends, optional axes, optional steps).
        Slice = "slice" {},
        /// Pads (or crops, with negative pads) input 0 by i64 input 1 (`[begins..., ends...]`) on
        /// optional `axes` (input 3), filling with optional input 2 in constant mode.
        Pad = "pad" { mode: PadMode = PadMode::Constant },
        /// Repeats input 0 `repeats[i]` times along dim `i` (input 1).
        Tile = "tile" {},
        /// Broadcasts input 0 to the shape given by input 1 (numpy rules, either side may be 1).
        Expand = "expand" {},
        /// Picks slices of input 0 along `axis` at the indices of input 1.
        Gather = "gather" { axis: i64 = 0 },
        /// `out[i][j][k] = data[index[i][j][k]][j][k]` (for `axis` 0); output has the indices' shape.
        GatherElements = "gather_elements" { axis: i64 = 0 },
        /// Gathers slices addressed by the last dim of the indices, after `batch_dims` leading batch dims.
        GatherNd = "gather_nd" { batch_dims: i64 = 0 },
        /// Copy of input 0 with input 2's values written at input 1's indices along `axis`.
        ScatterElements = "scatter_elements" {
            axis: i64 = 0,
            reduction: ScatterReduction = ScatterReduction::None,
        },
        /// Copy of input 0 with slices of input 2 written at the index tuples of input 1.
        ScatterNd = "scatter_nd" { reduction: ScatterReduction = ScatterReduction::None },
        /// KV-cache update: input 1 written into input 0 along `axis` at per-batch offsets (input 2).
        TensorScatter = "tensor_scatter" { axis: i64 = -2, mode: CacheMode = CacheMode::Linear },
        /// A tensor of the shape given by input 0 filled with `value` (a one-element tensor).
        ConstantOfShape = "constant_of_shape" { value: Constant = Constant::from_f32s(&[1], &[0.0]) },
        /// `[start, start + delta, ...)` up to `limit` (three scalar inputs of one type).
        Range = "range" {},
        /// Moves `blocksize²` channel groups into spatial blocks (NCHW).
        DepthToSpace = "depth_to_space" { blocksize: i64 = 1, mode: BlockMode = BlockMode::Dcr },
        /// Moves spatial blocks of `blocksize²` into channels (NCHW).
        SpaceToDepth = "space_to_depth" { blocksize: i64 = 1, mode: BlockMode = BlockMode::Dcr },
        /// Keeps the slices along `axis` (of the flattened input when absent) where the bool input 1 holds.
        Compress = "compress" { axis: Option<i64> = None },
        /// Indices of the non-zero elements, `i64[rank, count]`.
        NonZero = "non_zero" {},
        /// One-hot encoding of input 0 with `depth` (input 1) classes inserted at `axis`; input 2 holds
        /// `[off, on]`.
        OneHot = "one_hot" { axis: i64 = -1 },
        /// Upper (`upper`) or lower triangle of the last two dims, diagonal offset by optional input 1.
        Trilu = "trilu" { upper: bool = true },
        /// A 2-D tensor of input 0's shape with ones on diagonal `k`; element type `dtype` or the input's.
        EyeLike = "eye_like" { dtype: Option<DType> = None, k: i64 = 0 },
        /// Reverses the first `sequence_lens[b]` (input 1) elements along `time_axis` of each batch.
        ReverseSequence = "reverse_sequence" { batch_axis: i64 = 1, time_axis: i64 = 0 },
        /// Unique elements (or slices along `axis`); outputs values, first indices, inverse indices, counts.
        Unique = "unique" { sorted: bool = true, axis: Option<i64> = None },
        /// Resamples input 0 (inputs: X, optional roi, optional f32 scales, optional i64 sizes); one of
        /// scales and sizes is given, for all dims or for `axes`.
        Resize = "resize" {
            mode: ResizeMode = ResizeMode::Nearest,
            coordinate_transformation_mode: CoordMode = CoordMode::HalfPixel,
            nearest_mode: NearestMode = NearestMode::RoundPreferFloor,
            cubic_coeff_a: f32 = -0.75,
            exclude_outside: bool = false,
            extrapolation_value: f32 = 0.0,
            antialias: bool = false,
            axes: Vec<i64> = Vec::new(),
            keep_aspect_ratio_policy: AspectPolicy = AspectPolicy::Stretch,
        },
        /// Samples input 0 (`[N, C, spatial...]`) at the normalized coordinates of grid input 1
        /// (`[N, out spatial..., rank - 2]`).
        GridSample = "grid_sample" {
            align_corners: bool = false,
            mode: GridMode = GridMode::Linear,
            padding_mode: GridPadding = GridPadding::Zeros,
        },
        /// Sampling grid for affine matrices `theta` (`[N, 2, 3]` or `[N, 3, 4]`) and output size input 1.
        AffineGrid = "affine_grid" { align_corners: bool = false },
        /// Centre-crops or zero-pads the `axes` (all when empty) to the sizes of input 1.
        CenterCropPad = "center_crop_pad" { axes: Vec<i64> = Vec::new() },
        /// Sums column blocks `[N, C·∏block, L]` back into an image `[N, C, image_shape...]`
        /// (inputs: columns, image_shape, block_shape).
        Col2Im = "col2im" { dilations: Vec<i64> = Vec::new(), pads: Vec<i64> = Vec::new(), strides: Vec<i64> = Vec::new() },
    }
}

impl MovementOp {
    /// Properties of each op (see [`crate::ops::Props`]): the reshape-like ops and `identity` are views;
    /// ops that only permute, select or repeat elements rearrange (quantization passes through them).
    pub fn props(&self) -> crate::ops::Props {
        use crate::ops::Props;
        match self {
            Self::Reshape(_)
            | Self::Flatten(_)
            | Self::Squeeze(_)
            | Self::Unsqueeze(_)
            | Self::Identity(_) => Props::VIEW,
            Self::Transpose(_)
            | Self::Concat(_)
            | Self::Split(_)
            | Self::Slice(_)
            | Self::Tile(_)
            | Self::Expand(_)
            | Self::Gather(_)
            | Self::GatherElements(_)
            | Self::GatherNd(_)
            | Self::ScatterElements(_)
            | Self::ScatterNd(_)
            | Self::DepthToSpace(_)
            | Self::SpaceToDepth(_)
            | Self::Compress(_)
            | Self::ReverseSequence(_) => Props::REARRANGE,
            _ => Props::NONE,
        }
    }

    /// Arithmetic (see [`crate::ops::Work`]): data movement computes nothing (its bytes are its cost).
    pub fn work(&self, _t: &NodeTypes) -> Option<Work> {
        Some(Work::default())
    }

    /// Channel map (see [`crate::ops::ChannelMap`]): `identity` ties every axis, `transpose` follows
    /// its permutation, `concat`/`split` map ranges, `flatten`/`squeeze`/`unsqueeze` are views
    /// ([`ChannelMap::view`]), and so is a `reshape` that only adds or drops unit axes (its target
    /// shape is an operand, see [`crate::Op::shape_operand`]); other reshapes and the rest are opaque.
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        let out_rank = t.output(0).and_then(TensorType::rank);
        match (self, out_rank) {
            (Self::Identity(_), _) => ChannelMap::pointwise(&[t.input(0)], t.output(0)),
            // A reshape that only adds or drops unit axes ties the rest; its target shape operand
            // is rewritten by whoever removes channels ([`crate::Op::shape_operand`]). Merging or
            // splitting reshapes stay opaque.
            (Self::Reshape(_), _) => {
                match (
                    t.input(0).and_then(TensorType::dims),
                    t.output(0).and_then(TensorType::dims),
                ) {
                    (Some(x), Some(y)) => match ChannelMap::view(x, y) {
                        m @ ChannelMap::Blocks { .. } if matches!(&m, ChannelMap::Blocks { blocks, .. } if blocks.is_empty()) => {
                            m
                        }
                        _ => ChannelMap::Opaque,
                    },
                    _ => ChannelMap::Opaque,
                }
            }
            (Self::Flatten(_) | Self::Squeeze(_) | Self::Unsqueeze(_), _) => {
                match (
                    t.input(0).and_then(TensorType::dims),
                    t.output(0).and_then(TensorType::dims),
                ) {
                    (Some(x), Some(y)) => ChannelMap::view(x, y),
                    _ => ChannelMap::Opaque,
                }
            }
            (Self::Transpose(tr), Some(r)) => {
                let perm: Option<Vec<Option<usize>>> = match &tr.perm {
                    Some(p) => p.iter().map(|&a| Some(norm_axis(a, r))).collect(),
                    None => Some((0..r).rev().map(Some).collect()),
                };
                match perm {
                    Some(p) if p.len() == r => ChannelMap::axes(&p),
                    _ => ChannelMap::Opaque,
                }
            }
            (Self::Concat(c), Some(r)) => {
                norm_axis(c.axis, r).map_or(ChannelMap::Opaque, |axis| ChannelMap::Concat { axis })
            }
            (Self::Split(s), _) => t
                .input(0)
                .and_then(TensorType::rank)
                .and_then(|r| norm_axis(s.axis, r))
                .map_or(ChannelMap::Opaque, |axis| ChannelMap::Split { axis }),
            _ => ChannelMap::Opaque,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------------

fn out(dtype: DType, dims: Vec<Dim>) -> Vec<Type> {
    vec![Type::Tensor(TensorType::new(dtype, Shape(dims)))]
}

fn out_opt(dtype: DType, dims: Option<Vec<Dim>>) -> Vec<Type> {
    vec![Type::Tensor(TensorType {
        dtype,
        shape: dims.map(Shape),
        quant: None,
    })]
}

fn axis_of(cx: &InferCtx, axis: i64, rank: usize) -> Result<usize, InferError> {
    normalize_axis(axis, rank).map_err(|m| cx.err(m))
}

/// Sum of two dims: concrete when both are, `0 + d = d`, otherwise unknown.
fn add_dims(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x.checked_add(*y).map_or(Dim::Unknown, Dim::Known),
        (Dim::Known(0), d) | (d, Dim::Known(0)) => d.clone(),
        _ => Dim::Unknown,
    }
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::Known(1), |acc, d| acc.mul(d))
}

/// `d / k` when it divides exactly (error otherwise); symbolic dims only divide by 1.
fn div_dim(cx: &InferCtx, d: &Dim, k: u64, what: &str) -> Result<Dim, InferError> {
    match d {
        Dim::Known(n) if k > 0 => {
            if n % k != 0 {
                return Err(cx.err(format!("{what}: dim {n} is not divisible by {k}")));
            }
            Ok(Dim::Known(n / k))
        }
        _ if k == 1 => Ok(d.clone()),
        _ => Ok(Dim::Unknown),
    }
}

/// The more precise of two dims that must be equal; an error when both are concrete and differ.
fn unify(cx: &InferCtx, a: &Dim, b: &Dim, what: &str) -> Result<Dim, InferError> {
    if a.conflicts(b) {
        return Err(cx.err(format!("{what}: {a} and {b} must be equal")));
    }
    Ok(a.refine(b))
}

fn dim_from_int(cx: &InferCtx, v: &SymInt, what: &str) -> Result<Dim, InferError> {
    match v {
        SymInt::Int(n) if *n < 0 => Err(cx.err(format!("{what}: negative size {n}"))),
        v => Ok(v.to_dim()),
    }
}

/// Integer operands (shapes, axes, pads, repeats, sizes) longer than this are treated as unknown.
const MAX_INT_OPERAND: u64 = 4096;

/// Constants larger than this are not scanned by inference (`non_zero` counting).
const MAX_SCAN_ELEMENTS: u64 = 1 << 16;

/// What is known of a 1-D integer operand (a shape, axes, pads, ...).
enum IntInput {
    /// Its values, concrete or symbolic per element.
    Values(Vec<SymInt>),
    /// Only its length.
    Len(usize),
    /// Nothing.
    Unknown,
}

/// Reads integer input `i`, which must be 1-D (or a scalar when `allow_scalar`).
fn int_input(cx: &InferCtx, i: usize, allow_scalar: bool) -> Result<IntInput, InferError> {
    let t = cx.tensor(i)?;
    if !t.dtype.is_int() {
        return Err(cx.err(format!(
            "input {i} must be an integer tensor, got {}",
            t.dtype
        )));
    }
    match t.rank() {
        Some(1) => {}
        Some(0) if allow_scalar => {}
        Some(r) => {
            return Err(cx.err(format!("input {i} must be 1-D, got rank {r}")));
        }
        None => {}
    }
    // Shape-like operands are short; an absurdly long one (a hostile model) is not read.
    if t.shape
        .as_ref()
        .and_then(Shape::num_elements)
        .is_some_and(|n| n > MAX_INT_OPERAND)
    {
        return Ok(IntInput::Unknown);
    }
    if let Some(v) = cx.const_i64s(i) {
        return Ok(IntInput::Values(v.into_iter().map(SymInt::Int).collect()));
    }
    if let Some(v) = cx.sym_value(i) {
        return Ok(IntInput::Values(v));
    }
    Ok(match t.dims() {
        Some([Dim::Known(n)]) => usize::try_from(*n).map_or(IntInput::Unknown, IntInput::Len),
        Some([]) => IntInput::Len(1),
        _ => IntInput::Unknown,
    })
}

/// Integer values of input `i` when all are known, checking that it is 1-D (or a scalar).
fn int_values(cx: &InferCtx, i: usize, allow_scalar: bool) -> Result<Option<Vec<i64>>, InferError> {
    Ok(match int_input(cx, i, allow_scalar)? {
        IntInput::Values(v) => v.iter().map(SymInt::int).collect(),
        _ => None,
    })
}

/// Axes normalized against `rank`, rejecting duplicates.
fn norm_axes(cx: &InferCtx, axes: &[i64], rank: usize) -> Result<Vec<usize>, InferError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = axis_of(cx, a, rank)?;
        if out.contains(&n) {
            return Err(cx.err(format!("axis {a} is repeated in {axes:?}")));
        }
        out.push(n);
    }
    Ok(out)
}

/// Values of a shape given as dims (for `shape`-like symbolic results).
fn dims_to_sym(dims: &[Dim]) -> Vec<SymInt> {
    dims.iter().map(SymInt::from_dim).collect()
}

fn mul_sym(a: &SymInt, b: &SymInt) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => x.checked_mul(*y).map_or(SymInt::Unknown, SymInt::Int),
        (SymInt::Int(1), s) | (s, SymInt::Int(1)) => s.clone(),
        (SymInt::Int(0), _) | (_, SymInt::Int(0)) => SymInt::Int(0),
        _ => SymInt::Unknown,
    }
}

/// Input `i`, which must be a scalar (or a one-element tensor).
fn scalar_input<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    // A one-element vector is accepted (as onnxruntime does); its length may be unknown.
    match t.dims() {
        None | Some([]) | Some([Dim::Known(1) | Dim::Sym(_) | Dim::Unknown]) => Ok(t),
        Some(_) => Err(cx.err(format!("input {i} must be a scalar, got {t}"))),
    }
}
