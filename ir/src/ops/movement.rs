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

use crate::infer::{Infer, InferCtx, InferError, SYM_MAX_ELEMENTS, SymInt, normalize_axis};
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

// ---------------------------------------------------------------------------------------------------
// shape, size, identity
// ---------------------------------------------------------------------------------------------------

fn shape_range(op: &ShapeOf, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |x: i64| (if x < 0 { x.saturating_add(r) } else { x }).clamp(0, r) as usize;
    let s = clamp(op.start);
    let e = clamp(op.end.unwrap_or(r));
    (s, e.max(s))
}

impl Infer for ShapeOf {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let len = match t.rank() {
            Some(r) => {
                let (s, e) = shape_range(self, r);
                Dim::Known((e - s) as u64)
            }
            None => Dim::Unknown,
        };
        Ok(out(DType::I64, vec![len]))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let dims = cx.tensor(0).ok()?.dims()?;
        let (s, e) = shape_range(self, dims.len());
        Some(dims_to_sym(&dims[s..e]))
    }
}

impl Infer for Size {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        cx.tensor(0)?;
        Ok(out(DType::I64, Vec::new()))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let dims = cx.tensor(0).ok()?.dims()?;
        let n = dims_to_sym(dims)
            .iter()
            .fold(SymInt::Int(1), |acc, d| mul_sym(&acc, d));
        Some(vec![n])
    }
}

impl Infer for Identity {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        Ok(vec![cx.required(0)?.clone()])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

// ---------------------------------------------------------------------------------------------------
// reshape, flatten, squeeze, unsqueeze, transpose
// ---------------------------------------------------------------------------------------------------

/// The dim a `-1` in a reshape target stands for: input element count divided by the product of the
/// other target dims, cancelling symbolic factors that appear on both sides.
fn infer_minus_one(cx: &InferCtx, input: &[Dim], others: &[Dim]) -> Result<Dim, InferError> {
    let mut in_known: u64 = 1;
    let mut in_syms: Vec<&str> = Vec::new();
    for d in input {
        match d {
            Dim::Known(n) => match in_known.checked_mul(*n) {
                Some(p) => in_known = p,
                None => return Ok(Dim::Unknown),
            },
            Dim::Sym(s) => in_syms.push(s),
            Dim::Unknown => return Ok(Dim::Unknown),
        }
    }
    let mut out_known: u64 = 1;
    let mut out_syms: Vec<&str> = Vec::new();
    for d in others {
        match d {
            Dim::Known(n) => match out_known.checked_mul(*n) {
                Some(p) => out_known = p,
                None => return Ok(Dim::Unknown),
            },
            Dim::Sym(s) => {
                if let Some(k) = in_syms.iter().position(|x| x == s) {
                    in_syms.swap_remove(k);
                } else {
                    out_syms.push(s);
                }
            }
            Dim::Unknown => return Ok(Dim::Unknown),
        }
    }
    if !out_syms.is_empty() || out_known == 0 {
        return Ok(Dim::Unknown);
    }
    match in_syms.as_slice() {
        [] => {
            if !in_known.is_multiple_of(out_known) {
                return Err(cx.err(format!(
                    "cannot reshape {} elements into a shape whose other dims multiply to {out_known}",
                    in_known
                )));
            }
            Ok(Dim::Known(in_known / out_known))
        }
        [s] if in_known == out_known => Ok(Dim::Sym((*s).to_string())),
        _ => Ok(Dim::Unknown),
    }
}

/// Output dims of a reshape of `input` (when its rank is known) to `target`.
fn reshape_dims(
    cx: &InferCtx,
    input: Option<&[Dim]>,
    target: &[SymInt],
    allowzero: bool,
) -> Result<Vec<Dim>, InferError> {
    let mut dims = Vec::with_capacity(target.len());
    let mut minus_one = None;
    let mut has_zero = false;
    for (i, v) in target.iter().enumerate() {
        let d = match v {
            SymInt::Int(-1) => {
                if minus_one.is_some() {
                    return Err(cx.err("the target shape has more than one -1"));
                }
                minus_one = Some(i);
                Dim::Unknown
            }
            SymInt::Int(0) if !allowzero => match input {
                Some(dims) => dims.get(i).cloned().ok_or_else(|| {
                    cx.err(format!(
                        "target dim {i} is 0 (copy), but the input has rank {}",
                        dims.len()
                    ))
                })?,
                None => Dim::Unknown,
            },
            SymInt::Int(0) => {
                has_zero = true;
                Dim::Known(0)
            }
            SymInt::Int(n) if *n < 0 => {
                return Err(cx.err(format!("invalid target dim {n}")));
            }
            v => v.to_dim(),
        };
        dims.push(d);
    }
    if has_zero && minus_one.is_some() {
        return Err(cx.err("with allowzero, the target shape cannot hold both 0 and -1"));
    }
    let Some(input) = input else {
        return Ok(dims);
    };
    if let Some(k) = minus_one {
        let others: Vec<Dim> = dims
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != k)
            .map(|(_, d)| d.clone())
            .collect();
        dims[k] = infer_minus_one(cx, input, &others)?;
    } else if let (Some(a), Some(b)) = (
        Shape(input.to_vec()).num_elements(),
        Shape(dims.clone()).num_elements(),
    ) && a != b
    {
        return Err(cx.err(format!(
            "cannot reshape {} ({a} elements) to {} ({b} elements)",
            Shape(input.to_vec()),
            Shape(dims.clone())
        )));
    }
    Ok(dims)
}

impl Infer for Reshape {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        Ok(match int_input(cx, 1, false)? {
            IntInput::Values(v) => out(t.dtype, reshape_dims(cx, t.dims(), &v, self.allowzero)?),
            IntInput::Len(n) => out(t.dtype, vec![Dim::Unknown; n]),
            IntInput::Unknown => out_opt(t.dtype, None),
        })
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Flatten {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 2]));
        };
        let r = dims.len() as i64;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..=r).contains(&a) {
            return Err(cx.err(format!("axis {} is out of range for rank {r}", self.axis)));
        }
        let (head, tail) = dims.split_at(a as usize);
        Ok(out(t.dtype, vec![product(head), product(tail)]))
    }
}

impl Infer for Squeeze {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let dims = t.dims();
        if !cx.has_input(1) {
            let Some(dims) = dims else {
                return Ok(out_opt(t.dtype, None));
            };
            // Without axes every size-1 dim goes; a dim not known to be 1 or not-1 makes the rank unknown.
            if dims.iter().any(|d| d.known().is_none()) {
                return Ok(out_opt(t.dtype, None));
            }
            let kept = dims.iter().filter(|d| **d != Dim::Known(1)).cloned();
            return Ok(out(t.dtype, kept.collect()));
        }
        let axes = match int_input(cx, 1, true)? {
            IntInput::Values(v) => v.iter().map(SymInt::int).collect::<Option<Vec<_>>>(),
            IntInput::Len(n) => {
                return Ok(match dims {
                    Some(d) if n <= d.len() => out(t.dtype, vec![Dim::Unknown; d.len() - n]),
                    Some(d) => {
                        return Err(cx.err(format!("{n} axes to squeeze from rank {}", d.len())));
                    }
                    None => out_opt(t.dtype, None),
                });
            }
            IntInput::Unknown => None,
        };
        let (Some(axes), Some(dims)) = (axes, dims) else {
            return Ok(out_opt(t.dtype, None));
        };
        let axes = norm_axes(cx, &axes, dims.len())?;
        for &a in &axes {
            if let Dim::Known(n) = dims[a]
                && n != 1
            {
                return Err(cx.err(format!("cannot squeeze dim {a} of size {n}")));
            }
        }
        let kept = dims
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, d)| d.clone());
        Ok(out(t.dtype, kept.collect()))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Unsqueeze {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let axes = match int_input(cx, 1, true)? {
            IntInput::Values(v) => v.iter().map(SymInt::int).collect::<Option<Vec<_>>>(),
            IntInput::Len(n) => {
                return Ok(out_opt(
                    t.dtype,
                    t.dims().map(|d| vec![Dim::Unknown; d.len() + n]),
                ));
            }
            IntInput::Unknown => None,
        };
        let (Some(axes), Some(dims)) = (axes, t.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        let rank = dims.len() + axes.len();
        let axes = norm_axes(cx, &axes, rank)?;
        let mut src = dims.iter();
        let mut res = Vec::with_capacity(rank);
        for i in 0..rank {
            if axes.contains(&i) {
                res.push(Dim::Known(1));
            } else {
                res.push(src.next().cloned().unwrap_or(Dim::Unknown));
            }
        }
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        cx.sym_value(0)
    }
}

impl Infer for Transpose {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                self.perm.as_ref().map(|p| vec![Dim::Unknown; p.len()]),
            ));
        };
        let Some(perm) = &self.perm else {
            return Ok(out(t.dtype, dims.iter().rev().cloned().collect()));
        };
        if perm.len() != dims.len() {
            return Err(cx.err(format!(
                "perm {perm:?} has {} entries for rank {}",
                perm.len(),
                dims.len()
            )));
        }
        let mut seen = vec![false; dims.len()];
        let mut res = Vec::with_capacity(dims.len());
        for &p in perm {
            let k = usize::try_from(p)
                .ok()
                .filter(|&k| k < dims.len() && !seen[k])
                .ok_or_else(|| cx.err(format!("perm {perm:?} is not a permutation")))?;
            seen[k] = true;
            res.push(dims[k].clone());
        }
        Ok(out(t.dtype, res))
    }
}

// ---------------------------------------------------------------------------------------------------
// concat, split, slice, pad, tile, expand
// ---------------------------------------------------------------------------------------------------

impl Infer for Concat {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if cx.num_inputs() == 0 {
            return Err(cx.err("needs at least one input"));
        }
        let mut ts = Vec::with_capacity(cx.num_inputs());
        for i in 0..cx.num_inputs() {
            ts.push(cx.tensor(i)?);
        }
        let dtype = ts[0].dtype;
        if let Some(bad) = ts.iter().find(|t| t.dtype != dtype) {
            return Err(cx.err(format!(
                "inputs must share one element type, got {dtype} and {}",
                bad.dtype
            )));
        }
        let Some(rank) = ts.iter().find_map(|t| t.rank()) else {
            return Ok(out_opt(dtype, None));
        };
        if rank == 0 {
            return Err(cx.err("cannot concatenate scalars"));
        }
        let axis = axis_of(cx, self.axis, rank)?;
        let mut res: Vec<Dim> = vec![Dim::Unknown; rank];
        let mut along: Vec<Dim> = Vec::new();
        let mut all_ranked = true;
        for (i, t) in ts.iter().enumerate() {
            let Some(dims) = t.dims() else {
                all_ranked = false;
                continue;
            };
            if dims.len() != rank {
                return Err(cx.err(format!(
                    "input {i} has rank {}, input 0 has rank {rank}",
                    dims.len()
                )));
            }
            for (k, d) in dims.iter().enumerate() {
                if k == axis {
                    along.push(d.clone());
                } else {
                    res[k] = unify(cx, &res[k], d, &format!("input {i} dim {k}"))?;
                }
            }
        }
        res[axis] = if all_ranked {
            along.iter().fold(Dim::Known(0), |acc, d| add_dims(&acc, d))
        } else {
            Dim::Unknown
        };
        Ok(out(dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let mut v = Vec::new();
        for i in 0..cx.num_inputs() {
            v.extend(cx.sym_value(i)?);
        }
        Some(v)
    }
}

impl Infer for Split {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let n = cx.num_outputs();
        if n == 0 {
            return Err(cx.err("needs at least one output"));
        }
        let Some(dims) = t.dims() else {
            return Ok(vec![Type::Tensor(TensorType::unranked(t.dtype)); n]);
        };
        let axis = axis_of(cx, self.axis, dims.len())?;
        let parts: Vec<Dim> = if cx.has_input(1) {
            match int_input(cx, 1, false)? {
                IntInput::Values(v) => {
                    if v.len() != n {
                        return Err(cx.err(format!("{} split sizes for {n} outputs", v.len())));
                    }
                    let parts = v
                        .iter()
                        .map(|s| dim_from_int(cx, s, "split"))
                        .collect::<Result<Vec<_>, _>>()?;
                    if let (Dim::Known(d), Some(sizes)) = (
                        &dims[axis],
                        parts.iter().map(Dim::known).collect::<Option<Vec<_>>>(),
                    ) {
                        let sum = sizes.iter().try_fold(0u64, |a, b| a.checked_add(*b));
                        if sum != Some(*d) {
                            return Err(cx.err(format!(
                                "split sizes {sizes:?} do not add up to dim {axis} of size {d}"
                            )));
                        }
                    }
                    parts
                }
                IntInput::Len(k) if k != n => {
                    return Err(cx.err(format!("{k} split sizes for {n} outputs")));
                }
                _ => vec![Dim::Unknown; n],
            }
        } else {
            match &dims[axis] {
                _ if n == 1 => vec![dims[axis].clone()],
                Dim::Known(d) => {
                    let k = n as u64;
                    let chunk = d.div_ceil(k);
                    // Too few elements for `n` chunks (e.g. in an If branch that is never taken):
                    // ONNX does not define the sizes, so they stay unknown rather than failing.
                    match chunk
                        .checked_mul(k - 1)
                        .and_then(|used| d.checked_sub(used))
                    {
                        Some(last) => {
                            let mut v = vec![Dim::Known(chunk); n - 1];
                            v.push(Dim::Known(last));
                            v
                        }
                        None => vec![Dim::Unknown; n],
                    }
                }
                _ => vec![Dim::Unknown; n],
            }
        };
        Ok(parts
            .into_iter()
            .map(|p| {
                let mut d = dims.to_vec();
                d[axis] = p;
                Type::Tensor(TensorType::new(t.dtype, Shape(d)))
            })
            .collect())
    }
}

/// Ends at or beyond this are taken as "to the end" of a dim whose size is not concrete.
const SLICE_TO_END: i64 = i32::MAX as i64;

/// Normalized `[start, end)` bounds of a slice of a dim of size `d` (ONNX clamping rules).
fn slice_bounds(d: i64, start: i64, end: i64, step: i64) -> (i128, i128) {
    let (d, mut s, mut e) = (i128::from(d), i128::from(start), i128::from(end));
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, (d - 1).max(0)), e.clamp(-1, d - 1))
    }
}

/// Number of elements a slice of a dim of size `d` keeps.
fn slice_len(d: i64, start: i64, end: i64, step: i64) -> u64 {
    if d <= 0 {
        return 0;
    }
    let (s, e) = slice_bounds(d, start, end, step);
    let step = i128::from(step);
    let n = if step > 0 {
        (e - s + step - 1).div_euclid(step)
    } else {
        (s - e + (-step) - 1).div_euclid(-step)
    };
    n.clamp(0, i128::from(u64::MAX)) as u64
}

fn slice_dim(d: &Dim, start: &SymInt, end: &SymInt, step: i64) -> Dim {
    match (d, start, end) {
        (Dim::Known(n), SymInt::Int(s), SymInt::Int(e)) => match i64::try_from(*n) {
            Ok(n) => Dim::Known(slice_len(n, *s, *e, step)),
            Err(_) => Dim::Unknown,
        },
        // The whole dim, forwards or reversed.
        (_, SymInt::Int(0), SymInt::Int(e)) if step == 1 && *e >= SLICE_TO_END => d.clone(),
        (_, SymInt::Int(-1), SymInt::Int(e)) if step == -1 && *e <= -SLICE_TO_END => d.clone(),
        // `x[0:n]` where `n` is the dim's own symbol.
        (Dim::Sym(a), SymInt::Int(0), SymInt::Sym(b)) if step == 1 && a == b => d.clone(),
        _ => Dim::Unknown,
    }
}

/// What is known of a slice's operands: starts/ends (maybe symbolic), axes and steps.
struct SliceArgs {
    starts: Vec<SymInt>,
    ends: Vec<SymInt>,
    axes: Option<Vec<usize>>,
    steps: Vec<i64>,
}

fn slice_args(cx: &InferCtx, rank: usize) -> Result<Option<SliceArgs>, InferError> {
    let starts = int_input(cx, 1, false)?;
    let ends = int_input(cx, 2, false)?;
    let axes = if cx.has_input(3) {
        int_values(cx, 3, false)?
    } else {
        None
    };
    let steps = if cx.has_input(4) {
        int_values(cx, 4, false)?
    } else {
        None
    };
    let n = [&starts, &ends].iter().find_map(|x| match x {
        IntInput::Values(v) => Some(v.len()),
        IntInput::Len(n) => Some(*n),
        IntInput::Unknown => None,
    });
    let Some(n) = n else {
        return Ok(None);
    };
    let vals = |x: IntInput, what: &str| -> Result<Vec<SymInt>, InferError> {
        let v = match x {
            IntInput::Values(v) => v,
            _ => vec![SymInt::Unknown; n],
        };
        if v.len() != n {
            return Err(cx.err(format!("{what} has {} entries, expected {n}", v.len())));
        }
        Ok(v)
    };
    let starts = vals(starts, "starts")?;
    let ends = vals(ends, "ends")?;
    let axes = match (cx.has_input(3), axes) {
        (false, _) => {
            if n > rank {
                return Err(cx.err(format!("{n} slice entries for rank {rank}")));
            }
            Some((0..n).collect())
        }
        (true, Some(a)) => {
            if a.len() != n {
                return Err(cx.err(format!("axes has {} entries, expected {n}", a.len())));
            }
            Some(norm_axes(cx, &a, rank)?)
        }
        (true, None) => None,
    };
    let steps = match (cx.has_input(4), steps) {
        (false, _) => vec![1; n],
        (true, Some(s)) => {
            if s.len() != n {
                return Err(cx.err(format!("steps has {} entries, expected {n}", s.len())));
            }
            if s.contains(&0) {
                return Err(cx.err("slice steps cannot be 0"));
            }
            s
        }
        (true, None) => vec![0; n], // 0 marks an unknown step
    };
    Ok(Some(SliceArgs {
        starts,
        ends,
        axes,
        steps,
    }))
}

impl Infer for Slice {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let Some(dims) = t.dims() else {
            for i in 1..5 {
                if cx.has_input(i) {
                    int_input(cx, i, false)?;
                }
            }
            return Ok(out_opt(t.dtype, None));
        };
        let Some(args) = slice_args(cx, dims.len())? else {
            return Ok(out(t.dtype, vec![Dim::Unknown; dims.len()]));
        };
        let Some(axes) = &args.axes else {
            return Ok(out(t.dtype, vec![Dim::Unknown; dims.len()]));
        };
        let mut res = dims.to_vec();
        for (i, &a) in axes.iter().enumerate() {
            res[a] = match args.steps[i] {
                0 => Dim::Unknown,
                step => slice_dim(&dims[a], &args.starts[i], &args.ends[i], step),
            };
        }
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let args = slice_args(cx, 1).ok()??;
        let mut data = data;
        for (i, _) in args.axes?.iter().enumerate() {
            let (start, end, step) = (args.starts[i].int()?, args.ends[i].int()?, args.steps[i]);
            if step == 0 {
                return None;
            }
            let n = i64::try_from(data.len()).ok()?;
            let (s, _) = slice_bounds(n, start, end, step);
            let len = slice_len(n, start, end, step);
            data = (0..len)
                .map(|k| {
                    let idx = s + i128::from(k) * i128::from(step);
                    data.get(usize::try_from(idx).ok()?).cloned()
                })
                .collect::<Option<Vec<_>>>()?;
        }
        Some(data)
    }
}

impl Infer for Pad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(v) = cx.opt_tensor(2)?
            && v.dtype != t.dtype
        {
            return Err(cx.err(format!(
                "constant_value has type {}, data has {}",
                v.dtype, t.dtype
            )));
        }
        let pads = int_values(cx, 1, false)?;
        let axes = if cx.has_input(3) {
            int_values(cx, 3, false)?
        } else {
            None
        };
        let Some(dims) = t.dims() else {
            // Without axes the pads cover every dim, which gives the rank.
            return Ok(out_opt(
                t.dtype,
                match (&pads, cx.has_input(3)) {
                    (Some(p), false) => Some(vec![Dim::Unknown; p.len() / 2]),
                    _ => None,
                },
            ));
        };
        let rank = dims.len();
        let axes = match (cx.has_input(3), axes) {
            (false, _) => (0..rank).collect(),
            (true, Some(a)) => norm_axes(cx, &a, rank)?,
            (true, None) => return Ok(out(t.dtype, vec![Dim::Unknown; rank])),
        };
        let mut res = dims.to_vec();
        let Some(pads) = pads else {
            for &a in &axes {
                res[a] = Dim::Unknown;
            }
            return Ok(out(t.dtype, res));
        };
        let n = axes.len();
        if pads.len() != 2 * n {
            return Err(cx.err(format!(
                "pads has {} entries, expected {} (begin and end for {n} axes)",
                pads.len(),
                2 * n
            )));
        }
        for (i, &a) in axes.iter().enumerate() {
            let total = i128::from(pads[i]) + i128::from(pads[i + n]);
            res[a] = match &dims[a] {
                Dim::Known(d) => {
                    let v = i128::from(*d) + total;
                    if v < 0 {
                        return Err(cx.err(format!(
                            "pads {} and {} crop dim {a} of size {d} below zero",
                            pads[i],
                            pads[i + n]
                        )));
                    }
                    u64::try_from(v).map_or(Dim::Unknown, Dim::Known)
                }
                d if total == 0 => d.clone(),
                _ => Dim::Unknown,
            };
        }
        Ok(out(t.dtype, res))
    }
}

impl Infer for Tile {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let repeats = int_input(cx, 1, false)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                match repeats {
                    IntInput::Values(v) => Some(vec![Dim::Unknown; v.len()]),
                    IntInput::Len(n) => Some(vec![Dim::Unknown; n]),
                    IntInput::Unknown => None,
                },
            ));
        };
        let res = match repeats {
            IntInput::Values(v) => {
                if v.len() != dims.len() {
                    return Err(cx.err(format!("{} repeats for rank {}", v.len(), dims.len())));
                }
                dims.iter()
                    .zip(&v)
                    .map(|(d, r)| Ok(d.mul(&dim_from_int(cx, r, "repeats")?)))
                    .collect::<Result<Vec<_>, InferError>>()?
            }
            IntInput::Len(n) if n != dims.len() => {
                return Err(cx.err(format!("{n} repeats for rank {}", dims.len())));
            }
            _ => vec![Dim::Unknown; dims.len()],
        };
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let reps = usize::try_from(*cx.known_i64s(1)?.first()?).ok()?;
        if (data.len() as u64).saturating_mul(reps as u64) > SYM_MAX_ELEMENTS {
            return None;
        }
        Some(
            data.iter()
                .cloned()
                .cycle()
                .take(data.len() * reps)
                .collect(),
        )
    }
}

impl Infer for Expand {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let target = match int_input(cx, 1, false)? {
            IntInput::Values(v) => v
                .iter()
                .map(|s| dim_from_int(cx, s, "expand shape"))
                .collect::<Result<Vec<_>, _>>()?,
            IntInput::Len(n) => vec![Dim::Unknown; n],
            IntInput::Unknown => return Ok(out_opt(t.dtype, None)),
        };
        let Some(shape) = &t.shape else {
            return Ok(out_opt(t.dtype, None));
        };
        let res =
            crate::infer::broadcast_shapes(&[shape, &Shape(target)]).map_err(|m| cx.err(m))?;
        Ok(out(t.dtype, res.0))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let data = cx.sym_value(0)?;
        let target = cx.known_i64s(1)?;
        let n = match target.as_slice() {
            [] => 1,
            [n] => u64::try_from(*n).ok()?,
            _ => return None,
        };
        match data.len() {
            1 if n <= SYM_MAX_ELEMENTS => Some(vec![data[0].clone(); n.max(1) as usize]),
            k if n <= 1 || k as u64 == n => Some(data),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// gather / scatter
// ---------------------------------------------------------------------------------------------------

fn check_indices<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    if !t.dtype.is_int() {
        return Err(cx.err(format!(
            "indices (input {i}) must be integers, got {}",
            t.dtype
        )));
    }
    Ok(t)
}

impl Infer for Gather {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let (Some(dims), Some(idims)) = (t.dims(), idx.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        if dims.is_empty() {
            return Err(cx.err("cannot gather from a scalar"));
        }
        let axis = axis_of(cx, self.axis, dims.len())?;
        let mut res = dims[..axis].to_vec();
        res.extend_from_slice(idims);
        res.extend_from_slice(&dims[axis + 1..]);
        Ok(out(t.dtype, res))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        if cx.tensor(0).ok()?.rank()? != 1 {
            return None;
        }
        let data = cx.sym_value(0)?;
        let n = i64::try_from(data.len()).ok()?;
        cx.known_i64s(1)?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                data.get(usize::try_from(j).ok()?).cloned()
            })
            .collect()
    }
}

impl Infer for GatherElements {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        if let (Some(r), Some(q)) = (t.rank(), idx.rank()) {
            if r != q {
                return Err(cx.err(format!("data has rank {r}, indices rank {q}")));
            }
            if r == 0 {
                return Err(cx.err("cannot gather from a scalar"));
            }
            axis_of(cx, self.axis, r)?;
        }
        Ok(out_opt(t.dtype, idx.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for GatherNd {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let (Some(dims), Some(idims)) = (t.dims(), idx.dims()) else {
            return Ok(out_opt(t.dtype, None));
        };
        let (r, q) = (dims.len(), idims.len());
        if r == 0 || q == 0 {
            return Err(cx.err("data and indices must have rank ≥ 1"));
        }
        let b = usize::try_from(self.batch_dims)
            .ok()
            .filter(|&b| b < r.min(q))
            .ok_or_else(|| {
                cx.err(format!(
                    "batch_dims {} must be below both ranks ({r} and {q})",
                    self.batch_dims
                ))
            })?;
        let Some(m) = idims[q - 1].known() else {
            return Ok(out_opt(t.dtype, None));
        };
        let m = usize::try_from(m).unwrap_or(usize::MAX);
        if m < 1 || m > r - b {
            return Err(cx.err(format!(
                "index tuples of length {m} do not fit data of rank {r} with {b} batch dims"
            )));
        }
        let mut res = Vec::with_capacity(q - 1 + r - b - m);
        for i in 0..q - 1 {
            res.push(if i < b {
                unify(cx, &idims[i], &dims[i], &format!("batch dim {i}"))?
            } else {
                idims[i].clone()
            });
        }
        res.extend_from_slice(&dims[b + m..]);
        Ok(out(t.dtype, res))
    }
}

impl Infer for ScatterElements {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let upd = cx.tensor(2)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "updates have type {}, data has {}",
                upd.dtype, t.dtype
            )));
        }
        let ranks = [t.rank(), idx.rank(), upd.rank()];
        if let Some(r) = ranks.iter().flatten().next() {
            if ranks.iter().flatten().any(|q| q != r) {
                return Err(cx.err(format!(
                    "data, indices and updates must have one rank, got {ranks:?}"
                )));
            }
            axis_of(cx, self.axis, *r)?;
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for ScatterNd {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let idx = check_indices(cx, 1)?;
        let upd = cx.tensor(2)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "updates have type {}, data has {}",
                upd.dtype, t.dtype
            )));
        }
        if let (Some(dims), Some(idims), Some(udims)) = (t.dims(), idx.dims(), upd.dims()) {
            let q = idims.len();
            if q == 0 {
                return Err(cx.err("indices must have rank ≥ 1"));
            }
            if let Some(m) = idims[q - 1].known() {
                let m = usize::try_from(m).unwrap_or(usize::MAX);
                if m > dims.len() {
                    return Err(cx.err(format!(
                        "index tuples of length {m} for data of rank {}",
                        dims.len()
                    )));
                }
                let want = q - 1 + dims.len() - m;
                if udims.len() != want {
                    return Err(cx.err(format!(
                        "updates have rank {}, expected {want}",
                        udims.len()
                    )));
                }
            }
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for TensorScatter {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let upd = cx.tensor(1)?;
        if upd.dtype != t.dtype {
            return Err(cx.err(format!(
                "update has type {}, the cache has {}",
                upd.dtype, t.dtype
            )));
        }
        if let Some(w) = cx.opt_tensor(2)?
            && !w.dtype.is_int()
        {
            return Err(cx.err("write_indices must be integers"));
        }
        let Some(dims) = t.dims() else {
            return Ok(out_opt(t.dtype, upd.rank().map(|r| vec![Dim::Unknown; r])));
        };
        let axis = axis_of(cx, self.axis, dims.len())?;
        if axis == 0 {
            return Err(cx.err("axis cannot be the batch axis 0"));
        }
        let mut res = dims.to_vec();
        if let Some(ud) = upd.dims() {
            if ud.len() != dims.len() {
                return Err(cx.err(format!(
                    "update has rank {}, the cache has rank {}",
                    ud.len(),
                    dims.len()
                )));
            }
            for (k, d) in ud.iter().enumerate() {
                if k != axis {
                    res[k] = unify(cx, &res[k], d, &format!("dim {k}"))?;
                }
            }
        }
        Ok(out(t.dtype, res))
    }
}

// ---------------------------------------------------------------------------------------------------
// constant_of_shape, range
// ---------------------------------------------------------------------------------------------------

impl Infer for ConstantOfShape {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if self.value.num_elements() != 1 {
            return Err(cx.err(format!(
                "value must hold one element, got {}",
                self.value.ty
            )));
        }
        let dtype = self.value.ty.dtype;
        Ok(match int_input(cx, 0, false)? {
            IntInput::Values(v) => out(
                dtype,
                v.iter()
                    .map(|s| dim_from_int(cx, s, "shape"))
                    .collect::<Result<_, _>>()?,
            ),
            IntInput::Len(n) => out(dtype, vec![Dim::Unknown; n]),
            IntInput::Unknown => out_opt(dtype, None),
        })
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let shape = cx.known_i64s(0)?;
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(u64::try_from(d).ok()?))?;
        if n > SYM_MAX_ELEMENTS {
            return None;
        }
        let v = *self.value.to_i64s()?.first()?;
        Some(vec![SymInt::Int(v); n as usize])
    }
}

/// Number of elements of `range(start, limit, delta)`, computed as onnxruntime does.
fn range_len_f64(diff: f64, delta: f64) -> Option<u64> {
    if delta == 0.0 || !(diff.is_finite() && delta.is_finite()) {
        return None;
    }
    let n = (diff / delta).ceil();
    Some(if n <= 0.0 { 0 } else { n as u64 })
}

fn range_len_i64(start: i64, limit: i64, delta: i64) -> Option<u64> {
    if delta == 0 {
        return None;
    }
    let (s, l, d) = (i128::from(start), i128::from(limit), i128::from(delta));
    let n = if d > 0 {
        (l - s + d - 1).div_euclid(d)
    } else {
        (s - l + (-d) - 1).div_euclid(-d)
    };
    u64::try_from(n.max(0)).ok()
}

fn scalar_input<'a>(cx: &InferCtx<'a>, i: usize) -> Result<&'a TensorType, InferError> {
    let t = cx.tensor(i)?;
    // A one-element vector is accepted (as onnxruntime does); its length may be unknown.
    match t.dims() {
        None | Some([]) | Some([Dim::Known(1) | Dim::Sym(_) | Dim::Unknown]) => Ok(t),
        Some(_) => Err(cx.err(format!("input {i} must be a scalar, got {t}"))),
    }
}

impl Infer for Range {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let dtype = scalar_input(cx, 0)?.dtype;
        for i in 1..3 {
            let t = scalar_input(cx, i)?;
            if t.dtype != dtype {
                return Err(cx.err(format!(
                    "start, limit and delta must share one type, got {dtype} and {}",
                    t.dtype
                )));
            }
        }
        let len = if dtype.is_int() {
            match (cx.known_i64s(0), cx.known_i64s(1), cx.known_i64s(2)) {
                (Some(s), Some(l), Some(d)) => match (s.first(), l.first(), d.first()) {
                    (Some(&s), Some(&l), Some(&d)) => {
                        if d == 0 {
                            return Err(cx.err("delta cannot be 0"));
                        }
                        range_len_i64(s, l, d).map_or(Dim::Unknown, Dim::Known)
                    }
                    _ => Dim::Unknown,
                },
                (Some(s), _, Some(d)) if s == [0] && d == [1] => match cx.sym_value(1) {
                    Some(v) if v.len() == 1 => v[0].to_dim(),
                    _ => Dim::Unknown,
                },
                _ => Dim::Unknown,
            }
        } else {
            match (cx.const_f64s(0), cx.const_f64s(1), cx.const_f64s(2)) {
                (Some(s), Some(l), Some(d)) => match (s.first(), l.first(), d.first()) {
                    (Some(&s), Some(&l), Some(&d)) => {
                        // onnxruntime subtracts in the element type, then divides in f64.
                        let diff = if dtype == DType::F64 {
                            l - s
                        } else {
                            f64::from(l as f32 - s as f32)
                        };
                        range_len_f64(diff, d).map_or(Dim::Unknown, Dim::Known)
                    }
                    _ => Dim::Unknown,
                },
                _ => Dim::Unknown,
            }
        };
        Ok(out(dtype, vec![len]))
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let s = *cx.known_i64s(0)?.first()?;
        let l = *cx.known_i64s(1)?.first()?;
        let d = *cx.known_i64s(2)?.first()?;
        let n = range_len_i64(s, l, d)?;
        if n > SYM_MAX_ELEMENTS {
            return None;
        }
        (0..n as i64)
            .map(|k| k.checked_mul(d)?.checked_add(s).map(SymInt::Int))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------------
// depth_to_space, space_to_depth, compress, non_zero, one_hot, trilu, eye_like, reverse_sequence, unique
// ---------------------------------------------------------------------------------------------------

fn rank4<'a>(cx: &InferCtx<'a>) -> Result<(&'a TensorType, Option<&'a [Dim]>), InferError> {
    let t = cx.tensor(0)?;
    match t.dims() {
        Some(d) if d.len() != 4 => Err(cx.err(format!("input must be 4-D (NCHW), got {t}"))),
        d => Ok((t, d)),
    }
}

fn blocksize(cx: &InferCtx, b: i64) -> Result<u64, InferError> {
    u64::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| cx.err(format!("blocksize must be positive, got {b}")))
}

impl Infer for DepthToSpace {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let b = blocksize(cx, self.blocksize)?;
        let (t, dims) = rank4(cx)?;
        let Some(d) = dims else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 4]));
        };
        let bb = b
            .checked_mul(b)
            .ok_or_else(|| cx.err("blocksize is too large"))?;
        let c = div_dim(cx, &d[1], bb, "channels")?;
        let k = Dim::Known(b);
        Ok(out(
            t.dtype,
            vec![d[0].clone(), c, d[2].mul(&k), d[3].mul(&k)],
        ))
    }
}

impl Infer for SpaceToDepth {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let b = blocksize(cx, self.blocksize)?;
        let (t, dims) = rank4(cx)?;
        let Some(d) = dims else {
            return Ok(out(t.dtype, vec![Dim::Unknown; 4]));
        };
        let bb = b
            .checked_mul(b)
            .ok_or_else(|| cx.err("blocksize is too large"))?;
        Ok(out(
            t.dtype,
            vec![
                d[0].clone(),
                d[1].mul(&Dim::Known(bb)),
                div_dim(cx, &d[2], b, "height")?,
                div_dim(cx, &d[3], b, "width")?,
            ],
        ))
    }
}

impl Infer for Compress {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let c = cx.tensor(1)?;
        if c.dtype != DType::Bool {
            return Err(cx.err(format!("condition must be bool, got {}", c.dtype)));
        }
        if let Some(r) = c.rank()
            && r != 1
        {
            return Err(cx.err(format!("condition must be 1-D, got rank {r}")));
        }
        let Some(dims) = t.dims() else {
            return Ok(out_opt(
                t.dtype,
                if self.axis.is_none() {
                    Some(vec![Dim::Unknown])
                } else {
                    None
                },
            ));
        };
        let (axis, len) = match self.axis {
            Some(a) => {
                let a = axis_of(cx, a, dims.len())?;
                (Some(a), dims[a].clone())
            }
            None => (None, product(dims)),
        };
        // A constant condition gives the count: true entries among the first `len` (the rest are ignored).
        let small = c
            .shape
            .as_ref()
            .and_then(Shape::num_elements)
            .is_some_and(|n| n <= MAX_SCAN_ELEMENTS);
        let cond = small.then(|| cx.const_i64s(1)).flatten();
        let count = match (cond, len.known()) {
            (Some(cond), Some(n)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                Dim::Known(cond.iter().take(n).filter(|&&x| x != 0).count() as u64)
            }
            _ => Dim::Unknown,
        };
        Ok(match axis {
            Some(a) => {
                let mut res = dims.to_vec();
                res[a] = count;
                out(t.dtype, res)
            }
            None => out(t.dtype, vec![count]),
        })
    }
}

impl Infer for NonZero {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let rank = t.rank().map_or(Dim::Unknown, |r| Dim::Known(r as u64));
        let count = cx
            .const_value(0)
            .filter(|c| c.num_elements() <= MAX_SCAN_ELEMENTS)
            .and_then(Constant::to_f64s)
            .map_or(Dim::Unknown, |v| {
                Dim::Known(v.iter().filter(|&&x| x != 0.0).count() as u64)
            });
        Ok(out(DType::I64, vec![rank, count]))
    }
}

impl Infer for OneHot {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let idx = cx.tensor(0)?;
        let depth_t = scalar_input(cx, 1)?;
        let values = cx.tensor(2)?;
        if let Some(d) = values.dims()
            && (d.len() != 1 || d[0].conflicts(&Dim::Known(2)))
        {
            return Err(cx.err(format!("values must be [off, on], got {values}")));
        }
        let depth = if depth_t.dtype.is_int() {
            cx.sym_value(1)
                .and_then(|v| v.first().map(SymInt::to_dim))
                .unwrap_or(Dim::Unknown)
        } else {
            cx.const_f64s(1)
                .and_then(|v| v.first().copied())
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map_or(Dim::Unknown, |d| Dim::Known(d as u64))
        };
        let Some(dims) = idx.dims() else {
            return Ok(out_opt(values.dtype, None));
        };
        let rank = dims.len() + 1;
        let r = rank as i64;
        let a = if self.axis < 0 {
            self.axis + r
        } else {
            self.axis
        };
        if !(0..r).contains(&a) {
            return Err(cx.err(format!(
                "axis {} is out of range for output rank {rank}",
                self.axis
            )));
        }
        let mut res = dims.to_vec();
        res.insert(a as usize, depth);
        Ok(out(values.dtype, res))
    }
}

impl Infer for Trilu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(r) = t.rank()
            && r < 2
        {
            return Err(cx.err(format!("input must have rank ≥ 2, got {r}")));
        }
        if cx.has_input(1) {
            let k = scalar_input(cx, 1)?;
            if !k.dtype.is_int() {
                return Err(cx.err("k must be an integer"));
            }
        }
        Ok(out_opt(t.dtype, t.dims().map(<[Dim]>::to_vec)))
    }
}

impl Infer for EyeLike {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let dims = match t.dims() {
            Some(d) if d.len() != 2 => {
                return Err(cx.err(format!("input must be 2-D, got {t}")));
            }
            Some(d) => d.to_vec(),
            None => vec![Dim::Unknown; 2],
        };
        Ok(out(self.dtype.unwrap_or(t.dtype), dims))
    }
}

impl Infer for ReverseSequence {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let lens = cx.tensor(1)?;
        if !lens.dtype.is_int() {
            return Err(cx.err("sequence_lens must be integers"));
        }
        if !matches!((self.batch_axis, self.time_axis), (0, 1) | (1, 0)) {
            return Err(cx.err(format!(
                "batch_axis and time_axis must be 0 and 1 in some order, got {} and {}",
                self.batch_axis, self.time_axis
            )));
        }
        if let Some(r) = t.rank()
            && r < 2
        {
            return Err(cx.err(format!("input must have rank ≥ 2, got {r}")));
        }
        let mut dims = t.dims().map(<[Dim]>::to_vec);
        if let (Some(d), Some(ld)) = (&mut dims, lens.dims()) {
            let b = self.batch_axis as usize;
            if ld.len() != 1 {
                return Err(cx.err("sequence_lens must be 1-D"));
            }
            d[b] = unify(cx, &d[b], &ld[0], "batch size and sequence_lens length")?;
        }
        Ok(out_opt(t.dtype, dims))
    }
}

impl Infer for Unique {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let n = cx.num_outputs();
        if !(1..=4).contains(&n) {
            return Err(cx.err(format!("has 1 to 4 outputs, the node has {n}")));
        }
        let (y, along) = match (self.axis, t.dims()) {
            (None, Some(d)) => (Some(vec![Dim::Unknown]), product(d)),
            (None, None) => (Some(vec![Dim::Unknown]), Dim::Unknown),
            (Some(a), Some(d)) => {
                let a = axis_of(cx, a, d.len())?;
                let mut y = d.to_vec();
                y[a] = Dim::Unknown;
                (Some(y), d[a].clone())
            }
            (Some(_), None) => (None, Dim::Unknown),
        };
        let mut res = out_opt(t.dtype, y);
        res.extend(out(DType::I64, vec![Dim::Unknown]));
        res.extend(out(DType::I64, vec![along]));
        res.extend(out(DType::I64, vec![Dim::Unknown]));
        res.truncate(n);
        Ok(res)
    }
}

// ---------------------------------------------------------------------------------------------------
// resize, grid_sample, affine_grid, center_crop_pad, col2im
// ---------------------------------------------------------------------------------------------------

/// Whether an optional resize operand is given: ONNX passes an empty tensor for "not given".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Given {
    /// Absent or known to be empty.
    No,
    /// Present, length unknown.
    Maybe,
    /// Present with a known, non-zero length.
    Yes(usize),
}

fn given(cx: &InferCtx, i: usize) -> Given {
    match cx.input(i) {
        None => Given::No,
        Some(Type::Tensor(t)) => match t.dims() {
            Some([Dim::Known(0)]) => Given::No,
            Some([Dim::Known(n)]) => usize::try_from(*n).map_or(Given::Maybe, Given::Yes),
            _ => Given::Maybe,
        },
        Some(_) => Given::Maybe,
    }
}

impl Resize {
    fn out_dims(&self, cx: &InferCtx, dims: &[Dim]) -> Result<Vec<Dim>, InferError> {
        let rank = dims.len();
        let axes: Vec<usize> = if self.axes.is_empty() {
            (0..rank).collect()
        } else {
            norm_axes(cx, &self.axes, rank)?
        };
        let mut res = dims.to_vec();
        let check_len = |n: usize, what: &str| {
            if n != axes.len() {
                Err(cx.err(format!(
                    "{what} has {n} entries, expected {} (one per resized axis)",
                    axes.len()
                )))
            } else {
                Ok(())
            }
        };
        let use_sizes = match (given(cx, 2), given(cx, 3)) {
            (Given::Yes(_), Given::Yes(_)) => {
                return Err(cx.err("only one of scales and sizes may be given"));
            }
            (_, Given::Yes(_)) | (Given::No, Given::Maybe) => true,
            (Given::Yes(_), _) | (Given::Maybe, Given::No) => false,
            (Given::Maybe, Given::Maybe) => {
                // Both present, lengths unknown: which one is used is decided at run time.
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
                return Ok(res);
            }
            (Given::No, Given::No) => {
                return Err(cx.err("one of scales (input 2) and sizes (input 3) is required"));
            }
        };
        if use_sizes {
            let sizes = match int_input(cx, 3, false)? {
                IntInput::Values(v) => v,
                IntInput::Len(n) => {
                    check_len(n, "sizes")?;
                    vec![SymInt::Unknown; n]
                }
                IntInput::Unknown => vec![SymInt::Unknown; axes.len()],
            };
            check_len(sizes.len(), "sizes")?;
            if self.keep_aspect_ratio_policy == AspectPolicy::Stretch {
                for (i, &a) in axes.iter().enumerate() {
                    res[a] = dim_from_int(cx, &sizes[i], "sizes")?;
                }
                return Ok(res);
            }
            // One scale for every resized axis, as onnxruntime computes it (f32).
            let mut scale: Option<f32> = None;
            for (i, &a) in axes.iter().enumerate() {
                let (Some(s), Some(d)) = (sizes[i].int(), dims[a].known()) else {
                    for &a in &axes {
                        res[a] = Dim::Unknown;
                    }
                    return Ok(res);
                };
                let r = if d == 0 { 1.0 } else { s as f32 / d as f32 };
                scale = Some(match (scale, self.keep_aspect_ratio_policy) {
                    (None, _) => r,
                    (Some(x), AspectPolicy::NotLarger) => x.min(r),
                    (Some(x), _) => x.max(r),
                });
            }
            let scale = scale.unwrap_or(1.0);
            for &a in &axes {
                if let Some(d) = dims[a].known() {
                    res[a] = Dim::Known((scale * d as f32).round().max(0.0) as u64);
                }
            }
            return Ok(res);
        }
        {
            let st = cx.tensor(2)?;
            if !st.dtype.is_float() {
                return Err(cx.err(format!("scales must be floats, got {}", st.dtype)));
            }
            let short = st
                .shape
                .as_ref()
                .and_then(Shape::num_elements)
                .is_some_and(|n| n <= MAX_INT_OPERAND);
            let Some(scales) = short.then(|| cx.const_f64s(2)).flatten() else {
                if let Some([Dim::Known(n)]) = st.dims() {
                    check_len(*n as usize, "scales")?;
                }
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
                return Ok(res);
            };
            check_len(scales.len(), "scales")?;
            for (i, &a) in axes.iter().enumerate() {
                let s = scales[i] as f32;
                if s.is_nan() || s <= 0.0 || !s.is_finite() {
                    return Err(cx.err(format!("scales must be positive, got {s}")));
                }
                // onnxruntime: trunc(scale · dim) in f32 (the roi does not enter the output size).
                res[a] = match &dims[a] {
                    Dim::Known(d) => Dim::Known((s * *d as f32) as u64),
                    d if s == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
            Ok(res)
        }
    }
}

impl Infer for Resize {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        if let Some(roi) = cx.opt_tensor(1)?
            && !roi.dtype.is_float()
        {
            return Err(cx.err(format!("roi must be floats, got {}", roi.dtype)));
        }
        let Some(dims) = t.dims() else {
            // Without axes, scales/sizes have one entry per dim.
            let n = match (given(cx, 2), given(cx, 3)) {
                (Given::Yes(_), Given::Yes(_)) => {
                    return Err(cx.err("only one of scales and sizes may be given"));
                }
                (Given::Yes(n), _) | (_, Given::Yes(n)) if self.axes.is_empty() => Some(n),
                _ => None,
            }
            .filter(|&n| n as u64 <= MAX_INT_OPERAND);
            return Ok(out_opt(t.dtype, n.map(|n| vec![Dim::Unknown; n])));
        };
        Ok(out(t.dtype, self.out_dims(cx, dims)?))
    }
}

impl Infer for GridSample {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let g = cx.tensor(1)?;
        if !g.dtype.is_float() {
            return Err(cx.err(format!("grid must be floats, got {}", g.dtype)));
        }
        let rank = t.rank().or(g.rank());
        let Some(rank) = rank else {
            return Ok(out_opt(t.dtype, None));
        };
        if rank < 3 {
            return Err(cx.err(format!("input must have rank ≥ 3, got {rank}")));
        }
        let mut res = vec![Dim::Unknown; rank];
        if let Some(d) = t.dims() {
            res[0] = d[0].clone();
            res[1] = d[1].clone();
        }
        if let Some(gd) = g.dims() {
            if gd.len() != rank {
                return Err(cx.err(format!("grid has rank {}, input has rank {rank}", gd.len())));
            }
            if gd[rank - 1].conflicts(&Dim::Known(rank as u64 - 2)) {
                return Err(cx.err(format!(
                    "the grid's last dim must be {}, got {}",
                    rank - 2,
                    gd[rank - 1]
                )));
            }
            res[0] = unify(cx, &res[0], &gd[0], "batch")?;
            res[2..rank].clone_from_slice(&gd[1..rank - 1]);
        }
        Ok(out(t.dtype, res))
    }
}

impl Infer for AffineGrid {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let theta = cx.tensor(0)?;
        if !theta.dtype.is_float() {
            return Err(cx.err(format!("theta must be floats, got {}", theta.dtype)));
        }
        let size = int_input(cx, 1, false)?;
        // Spatial rank from the size vector or from theta ([N, 2, 3] is 2-D, [N, 3, 4] is 3-D).
        let from_theta = theta.dims().and_then(|d| match d {
            [_, Dim::Known(2), _] | [_, _, Dim::Known(3)] => Some(2),
            [_, Dim::Known(3), _] | [_, _, Dim::Known(4)] => Some(3),
            _ => None,
        });
        let (k, vals) = match &size {
            IntInput::Values(v) => (v.len().checked_sub(2), Some(v)),
            IntInput::Len(n) => (n.checked_sub(2), None),
            IntInput::Unknown => (from_theta, None),
        };
        let Some(k) = k.filter(|k| *k == 2 || *k == 3) else {
            return Err(cx.err("size must be [N, C, H, W] or [N, C, D, H, W]"));
        };
        if let Some(d) = theta.dims() {
            let want = [Dim::Known(k as u64), Dim::Known(k as u64 + 1)];
            if d.len() != 3 || d[1].conflicts(&want[0]) || d[2].conflicts(&want[1]) {
                return Err(cx.err(format!(
                    "theta must be [N, {}, {}] for a {k}-D grid, got {theta}",
                    k,
                    k + 1
                )));
            }
        }
        let mut res = vec![Dim::Unknown; k + 2];
        if let Some(v) = vals {
            res[0] = dim_from_int(cx, &v[0], "size")?;
            for i in 0..k {
                res[1 + i] = dim_from_int(cx, &v[2 + i], "size")?;
            }
        }
        if let Some(d) = theta.dims() {
            res[0] = unify(cx, &res[0], &d[0], "batch")?;
        }
        res[k + 1] = Dim::Known(k as u64);
        Ok(out(theta.dtype, res))
    }
}

impl Infer for CenterCropPad {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let shape = int_input(cx, 1, false)?;
        let Some(dims) = t.dims() else {
            return Ok(out_opt(t.dtype, None));
        };
        let axes: Vec<usize> = if self.axes.is_empty() {
            (0..dims.len()).collect()
        } else {
            norm_axes(cx, &self.axes, dims.len())?
        };
        let mut res = dims.to_vec();
        match shape {
            IntInput::Values(v) => {
                if v.len() != axes.len() {
                    return Err(cx.err(format!(
                        "shape has {} entries for {} axes",
                        v.len(),
                        axes.len()
                    )));
                }
                for (i, &a) in axes.iter().enumerate() {
                    res[a] = dim_from_int(cx, &v[i], "shape")?;
                }
            }
            _ => {
                for &a in &axes {
                    res[a] = Dim::Unknown;
                }
            }
        }
        Ok(out(t.dtype, res))
    }
}

impl Infer for Col2Im {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        let t = cx.tensor(0)?;
        let image = int_input(cx, 1, false)?;
        let block = int_values(cx, 2, false)?;
        let k = match (&image, &block) {
            (IntInput::Values(v), _) => Some(v.len()),
            (IntInput::Len(n), _) => Some(*n),
            (_, Some(b)) => Some(b.len()),
            _ => None,
        };
        let Some(k) = k else {
            return Ok(out_opt(t.dtype, None));
        };
        if let Some(b) = &block {
            if b.len() != k {
                return Err(cx.err(format!(
                    "block_shape has {} entries, image_shape has {k}",
                    b.len()
                )));
            }
            if b.iter().any(|&x| x <= 0) {
                return Err(cx.err(format!("block_shape {b:?} must be positive")));
            }
        }
        let mut res = vec![Dim::Unknown; k + 2];
        if let Some(d) = t.dims() {
            if d.len() != 3 {
                return Err(cx.err(format!("input must be [N, C·∏block, L], got {t}")));
            }
            res[0] = d[0].clone();
            if let Some(b) = &block {
                let prod = b
                    .iter()
                    .try_fold(1u64, |a, &x| a.checked_mul(x as u64))
                    .ok_or_else(|| cx.err("block_shape overflows"))?;
                res[1] = div_dim(cx, &d[1], prod, "channels")?;
            }
        }
        if let IntInput::Values(v) = &image {
            for i in 0..k {
                res[2 + i] = dim_from_int(cx, &v[i], "image_shape")?;
            }
        }
        Ok(out(t.dtype, res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Graph, Op, ValueId};

    fn f32t(dims: Vec<Dim>) -> Type {
        Type::Tensor(TensorType::new(DType::F32, Shape(dims)))
    }

    fn k(n: u64) -> Dim {
        Dim::Known(n)
    }

    fn s(name: &str) -> Dim {
        Dim::Sym(name.into())
    }

    fn node(g: &mut Graph, op: impl Into<Op>, inputs: &[ValueId]) -> Result<ValueId, InferError> {
        let n = g.nodes.len();
        Ok(g.add_node(
            format!("n{n}"),
            op.into(),
            inputs.iter().map(|&v| Some(v)).collect(),
            vec![format!("v{n}")],
        )?[0])
    }

    fn ints(g: &mut Graph, v: &[i64]) -> ValueId {
        let n = g.nodes.len();
        g.add_const(format!("c{n}"), Constant::from_i64s(&[v.len() as u64], v))
    }

    fn ty(g: &Graph, v: ValueId) -> String {
        g.ty(v).to_string()
    }

    #[test]
    fn reshape_copies_zeros_and_infers_minus_one() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(2), k(3), k(4)]));
        let sh = ints(&mut g, &[0, -1]);
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[2,12]");
        let bad = ints(&mut g, &[5, -1]);
        assert!(node(&mut g, Reshape::default(), &[x, bad]).is_err());
        let two = ints(&mut g, &[-1, -1]);
        assert!(node(&mut g, Reshape::default(), &[x, two]).is_err());
    }

    #[test]
    fn reshape_minus_one_cancels_symbolic_dims() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("N"), s("seq"), k(384)]));
        // [0, 0, 12, -1] → [N, seq, 12, 32]
        let sh = ints(&mut g, &[0, 0, 12, -1]);
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[N,seq,12,32]");
        // [-1, 384] → the product N·seq is not a single symbol.
        let sh = ints(&mut g, &[-1, 384]);
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[?,384]");
        // [0, -1, 384] → seq survives as the only leftover symbol.
        let sh = ints(&mut g, &[0, -1, 384]);
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[N,seq,384]");
    }

    #[test]
    fn reshape_with_allowzero_keeps_zero() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(0), k(3)]));
        let sh = ints(&mut g, &[3, 0]);
        let y = node(&mut g, Reshape { allowzero: true }, &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[3,0]");
        let sh = ints(&mut g, &[0, -1]);
        assert!(node(&mut g, Reshape { allowzero: true }, &[x, sh]).is_err());
    }

    #[test]
    fn reshape_of_unknown_target_keeps_its_length() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(2), k(3)]));
        let sh = g.add_input("s", Type::Tensor(TensorType::known(DType::I64, &[3])));
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[?,?,?]");
    }

    #[test]
    fn shape_gather_unsqueeze_concat_reshape_stays_symbolic() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("batch"), s("seq"), k(384)]));
        let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
        let i0 = g.add_const("i0", Constant::from_i64s(&[], &[0]));
        let i1 = g.add_const("i1", Constant::from_i64s(&[], &[1]));
        let b = node(&mut g, Gather { axis: 0 }, &[shp, i0]).unwrap();
        let t = node(&mut g, Gather { axis: 0 }, &[shp, i1]).unwrap();
        assert_eq!(ty(&g, b), "i64[]");
        let ax = ints(&mut g, &[0]);
        let ub = node(&mut g, Unsqueeze {}, &[b, ax]).unwrap();
        let ut = node(&mut g, Unsqueeze {}, &[t, ax]).unwrap();
        let heads = ints(&mut g, &[12]);
        let hd = ints(&mut g, &[32]);
        let target = node(&mut g, Concat { axis: 0 }, &[ub, ut, heads, hd]).unwrap();
        assert_eq!(ty(&g, target), "i64[4]");
        let y = node(&mut g, Reshape::default(), &[x, target]).unwrap();
        assert_eq!(ty(&g, y), "f32[batch,seq,12,32]");
        let perm = Transpose {
            perm: Some(vec![0, 2, 1, 3]),
        };
        let z = node(&mut g, perm, &[y]).unwrap();
        assert_eq!(ty(&g, z), "f32[batch,12,seq,32]");
    }

    #[test]
    fn slice_clamps_negative_and_out_of_range_bounds() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(10), k(5), s("T")]));
        let starts = ints(&mut g, &[-3, 1, 0]);
        let ends = ints(&mut g, &[100, -1, i64::MAX]);
        let y = node(&mut g, Slice {}, &[x, starts, ends]).unwrap();
        assert_eq!(ty(&g, y), "f32[3,3,T]");
        // Negative steps: x[8:1:-2] on 10 → 8,6,4,2; reversed whole dim keeps the symbol.
        let starts = ints(&mut g, &[8, -1]);
        let ends = ints(&mut g, &[1, i64::MIN]);
        let axes = ints(&mut g, &[0, 2]);
        let steps = ints(&mut g, &[-2, -1]);
        let y = node(&mut g, Slice {}, &[x, starts, ends, axes, steps]).unwrap();
        assert_eq!(ty(&g, y), "f32[4,5,T]");
        // Start past the end gives an empty dim; a partial slice of a symbol is unknown.
        let starts = ints(&mut g, &[20, 2]);
        let ends = ints(&mut g, &[30, 4]);
        let axes = ints(&mut g, &[0, -1]);
        let y = node(&mut g, Slice {}, &[x, starts, ends, axes]).unwrap();
        assert_eq!(ty(&g, y), "f32[0,5,?]");
        let zero = ints(&mut g, &[0]);
        let one = ints(&mut g, &[1]);
        assert!(node(&mut g, Slice {}, &[x, zero, one, zero, zero]).is_err());
    }

    #[test]
    fn slice_of_a_shape_vector_is_evaluated() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("N"), k(3), k(7), k(9)]));
        let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
        let st = ints(&mut g, &[-2]);
        let en = ints(&mut g, &[i64::MAX]);
        let hw = node(&mut g, Slice {}, &[shp, st, en]).unwrap();
        assert_eq!(ty(&g, hw), "i64[2]");
        let c = ints(&mut g, &[-1]);
        let target = node(&mut g, Concat { axis: 0 }, &[c, hw]).unwrap();
        let y = node(&mut g, Reshape::default(), &[x, target]).unwrap();
        assert_eq!(ty(&g, y), "f32[?,7,9]");
    }

    #[test]
    fn resize_uses_scales_or_sizes() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("N"), k(3), k(5), k(7)]));
        let scales = g.add_const("sc", Constant::from_f32s(&[4], &[1.0, 1.0, 0.6, 2.5]));
        let y = g
            .add_node(
                "r",
                Resize::default().into(),
                vec![Some(x), None, Some(scales)],
                vec!["y".into()],
            )
            .unwrap()[0];
        assert_eq!(ty(&g, y), "f32[N,3,3,17]");
        let sizes = ints(&mut g, &[10, 10]);
        let op = Resize {
            axes: vec![2, 3],
            keep_aspect_ratio_policy: AspectPolicy::NotLarger,
            ..Resize::default()
        };
        let y = g
            .add_node(
                "r2",
                op.into(),
                vec![Some(x), None, None, Some(sizes)],
                vec!["y2".into()],
            )
            .unwrap()[0];
        assert_eq!(ty(&g, y), "f32[N,3,7,10]");
        let y = g.add_node(
            "r3",
            Resize::default().into(),
            vec![Some(x), None, Some(scales), Some(sizes)],
            vec!["y3".into()],
        );
        assert!(y.is_err());
    }

    #[test]
    fn split_makes_uneven_last_chunk() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(7), k(2)]));
        let outs = g
            .add_node(
                "s",
                Split { axis: 0 }.into(),
                vec![Some(x)],
                vec!["a".into(), "b".into(), "c".into()],
            )
            .unwrap();
        let tys: Vec<String> = outs.iter().map(|&v| ty(&g, v)).collect();
        assert_eq!(tys, ["f32[3,2]", "f32[3,2]", "f32[1,2]"]);
    }

    #[test]
    fn range_and_constant_of_shape_follow_values() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("seq"), k(4)]));
        let shp = node(&mut g, ShapeOf::default(), &[x]).unwrap();
        let i0 = g.add_const("i0", Constant::from_i64s(&[], &[0]));
        let seq = node(&mut g, Gather { axis: 0 }, &[shp, i0]).unwrap();
        let zero = g.add_const("z", Constant::from_i64s(&[], &[0]));
        let one = g.add_const("o", Constant::from_i64s(&[], &[1]));
        let r = node(&mut g, Range {}, &[zero, seq, one]).unwrap();
        assert_eq!(ty(&g, r), "i64[seq]");
        let five = g.add_const("f", Constant::from_i64s(&[], &[5]));
        let neg = g.add_const("m", Constant::from_i64s(&[], &[-2]));
        let r = node(&mut g, Range {}, &[five, zero, neg]).unwrap();
        assert_eq!(ty(&g, r), "i64[3]");
        let c = node(&mut g, ConstantOfShape::default(), &[shp]).unwrap();
        assert_eq!(ty(&g, c), "f32[seq,4]");
    }

    #[test]
    fn size_of_a_single_symbol_is_that_symbol() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("N"), k(1)]));
        let n = node(&mut g, Size {}, &[x]).unwrap();
        let ax = ints(&mut g, &[0]);
        let v = node(&mut g, Unsqueeze {}, &[n, ax]).unwrap();
        let z = node(&mut g, ConstantOfShape::default(), &[v]).unwrap();
        assert_eq!(ty(&g, z), "f32[N]");
    }

    #[test]
    fn squeeze_unsqueeze_and_transpose_check_axes() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(1), s("N"), k(1)]));
        let y = node(&mut g, Squeeze {}, &[x]).unwrap();
        assert_eq!(g.ty(y).to_string(), "f32[*]");
        let ax = ints(&mut g, &[0, -1]);
        let y = node(&mut g, Squeeze {}, &[x, ax]).unwrap();
        assert_eq!(ty(&g, y), "f32[N]");
        let ax = ints(&mut g, &[1]);
        assert!(node(&mut g, Squeeze {}, &[y, ax]).is_err());
        let ax = ints(&mut g, &[0, 3]);
        let y = node(&mut g, Unsqueeze {}, &[x, ax]).unwrap();
        assert_eq!(ty(&g, y), "f32[1,1,N,1,1]");
        let bad = Transpose {
            perm: Some(vec![0, 0, 1]),
        };
        assert!(node(&mut g, bad, &[x]).is_err());
        let y = node(&mut g, Transpose::default(), &[x]).unwrap();
        assert_eq!(ty(&g, y), "f32[1,N,1]");
    }

    #[test]
    fn pad_and_tile_and_expand_keep_symbols() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![s("N"), k(3), k(1)]));
        let pads = ints(&mut g, &[0, 1, 2, 0, -1, 3]);
        let y = node(&mut g, Pad::default(), &[x, pads]).unwrap();
        assert_eq!(ty(&g, y), "f32[N,3,6]");
        let reps = ints(&mut g, &[1, 2, 4]);
        let y = node(&mut g, Tile {}, &[x, reps]).unwrap();
        assert_eq!(ty(&g, y), "f32[N,6,4]");
        let shape = ints(&mut g, &[2, 1, 1, 5]);
        let y = node(&mut g, Expand {}, &[x, shape]).unwrap();
        assert_eq!(ty(&g, y), "f32[2,N,3,5]");
        let shape = ints(&mut g, &[4, 1]);
        assert!(node(&mut g, Expand {}, &[x, shape]).is_err());
    }

    #[test]
    fn gather_nd_and_one_hot_shapes() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(2), k(3), k(4)]));
        let idx = g.add_input("i", Type::Tensor(TensorType::known(DType::I64, &[2, 5, 1])));
        let y = node(&mut g, GatherNd { batch_dims: 1 }, &[x, idx]).unwrap();
        assert_eq!(ty(&g, y), "f32[2,5,4]");
        let depth = g.add_const("d", Constant::from_f32s(&[], &[10.0]));
        let vals = g.add_const("v", Constant::from_f32s(&[2], &[0.0, 1.0]));
        let ind = g.add_input("j", Type::Tensor(TensorType::known(DType::I64, &[2, 3])));
        let y = node(&mut g, OneHot { axis: 1 }, &[ind, depth, vals]).unwrap();
        assert_eq!(ty(&g, y), "f32[2,10,3]");
    }

    #[test]
    fn resize_with_runtime_scales_and_sizes_is_not_rejected() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(1), k(3), k(8), k(8)]));
        let unk = Type::Tensor(TensorType::new(DType::F32, Shape(vec![Dim::Unknown])));
        let scales = g.add_input("s", unk);
        let sizes = g.add_input("z", Type::Tensor(TensorType::of_rank(DType::I64, 1)));
        let y = g
            .add_node(
                "r",
                Resize::default().into(),
                vec![Some(x), None, Some(scales), Some(sizes)],
                vec!["y".into()],
            )
            .unwrap()[0];
        assert_eq!(ty(&g, y), "f32[?,?,?,?]");
        // An empty constant scales input means "not given".
        let empty = g.add_const("e", Constant::from_f32s(&[0], &[]));
        let sz = ints(&mut g, &[1, 3, 4, 16]);
        let y = g
            .add_node(
                "r2",
                Resize::default().into(),
                vec![Some(x), None, Some(empty), Some(sz)],
                vec!["y2".into()],
            )
            .unwrap()[0];
        assert_eq!(ty(&g, y), "f32[1,3,4,16]");
    }

    #[test]
    fn impossible_equal_split_gives_unknown_sizes_not_an_error() {
        // As in an If branch that is never taken: 5 elements into 4 chunks of 2.
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::Tensor(TensorType::known(DType::I64, &[5])));
        let names = (0..4).map(|i| format!("o{i}")).collect();
        let outs = g
            .add_node("s", Split::default().into(), vec![Some(x)], names)
            .unwrap();
        assert_eq!(ty(&g, outs[3]), "i64[?]");
    }

    #[test]
    fn range_accepts_one_element_vectors_of_unknown_length() {
        let mut g = Graph::new("t");
        let zero = g.add_const("z", Constant::from_i64s(&[], &[0]));
        let one = g.add_const("o", Constant::from_i64s(&[], &[1]));
        let lim = g.add_input("l", Type::Tensor(TensorType::of_rank(DType::I64, 1)));
        let r = node(&mut g, Range {}, &[zero, lim, one]).unwrap();
        assert_eq!(ty(&g, r), "i64[?]");
        let bad = g.add_const("b", Constant::from_i64s(&[2], &[1, 2]));
        assert!(node(&mut g, Range {}, &[zero, bad, one]).is_err());
    }

    #[test]
    fn reversed_slice_of_an_empty_dim_is_empty() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(0), k(4)]));
        let st = ints(&mut g, &[-1, -1]);
        let en = ints(&mut g, &[i64::MIN, i64::MIN]);
        let ax = ints(&mut g, &[0, 1]);
        let sp = ints(&mut g, &[-1, -1]);
        let y = node(&mut g, Slice {}, &[x, st, en, ax, sp]).unwrap();
        assert_eq!(ty(&g, y), "f32[0,4]");
    }

    #[test]
    fn absurdly_long_shape_operands_are_not_expanded() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(vec![k(2)]));
        let huge = Type::Tensor(TensorType::known(DType::I64, &[1 << 40]));
        let sh = g.add_input("s", huge);
        let y = node(&mut g, Reshape::default(), &[x, sh]).unwrap();
        assert_eq!(ty(&g, y), "f32[*]");
        let c = node(&mut g, ConstantOfShape::default(), &[sh]).unwrap();
        assert_eq!(ty(&g, c), "f32[*]");
    }
}
