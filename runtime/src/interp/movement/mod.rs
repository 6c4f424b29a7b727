//! Interpreter kernels for the movement op family (`carve_ir::ops::movement`). Almost every op here only
//! moves elements, so it is written once for every element type: a kernel computes, for each output
//! element, the flat index of the input element it copies (or `FILL` for a padding value), and
//! `take` applies that index list to whichever `Data` variant the tensor holds. Ops that look at values
//! (scatter reductions, `unique`, `non_zero`) use the `El` trait, implemented for every storage type.
//! Resampling ops (`resize`, `grid_sample`, `affine_grid`, `col2im`) compute in f64.
//!
//! Submodules: `layout` (shape ops, reshape/transpose/concat/split/slice/pad/tile/expand, block moves,
//! `trilu`, `eye_like`, `center_crop_pad`), `index` (gather/scatter, `compress`, `non_zero`, `one_hot`,
//! `reverse_sequence`, `unique`, `range`, `constant_of_shape`), `resample`.

mod index;
mod layout;

pub use layout::slice_range;
mod resample;

/// Resize's per-axis sampling (source coordinates, nearest index, interpolation taps): the semantics
/// that native resize kernels tabulate at compile time.
pub mod resize_sampling {
    pub use super::resample::{nearest_index, source_coord, taps};
}

use std::cmp::Ordering;

use carve_ir::DType;
use carve_ir::ops::movement::{MovementOp, ScatterReduction};
use half::{bf16, f16};

use super::{EvalCtx, RunError, Value};
use crate::tensor::{Data, Tensor, TensorError};

/// Evaluates one movement op.
pub fn eval(op: &MovementOp, cx: &EvalCtx) -> Result<Vec<Value>, RunError> {
    use MovementOp as M;
    match op {
        M::ShapeOf(o) => layout::shape_of(o, cx),
        M::Size(_) => layout::size(cx),
        M::Identity(_) => {
            let v = cx.value(0).ok_or_else(|| cx.err("input 0 is required"))?;
            Ok(vec![v.clone()])
        }
        M::Reshape(o) => layout::reshape(o, cx),
        M::Flatten(o) => layout::flatten(o, cx),
        M::Squeeze(_) => layout::squeeze(cx),
        M::Unsqueeze(_) => layout::unsqueeze(cx),
        M::Transpose(o) => layout::transpose(o, cx),
        M::Concat(o) => layout::concat(o, cx),
        M::Split(o) => layout::split(o, cx),
        M::Slice(_) => layout::slice(cx),
        M::Pad(o) => layout::pad(o, cx),
        M::Tile(_) => layout::tile(cx),
        M::Expand(_) => layout::expand(cx),
        M::DepthToSpace(o) => layout::depth_to_space(o, cx),
        M::SpaceToDepth(o) => layout::space_to_depth(o, cx),
        M::Trilu(o) => layout::trilu(o, cx),
        M::EyeLike(o) => layout::eye_like(o, cx),
        M::CenterCropPad(o) => layout::center_crop_pad(o, cx),
        M::Gather(o) => index::gather(o, cx),
        M::GatherElements(o) => index::gather_elements(o, cx),
        M::GatherNd(o) => index::gather_nd(o, cx),
        M::ScatterElements(o) => index::scatter_elements(o, cx),
        M::ScatterNd(o) => index::scatter_nd(o, cx),
        M::TensorScatter(o) => index::tensor_scatter(o, cx),
        M::ConstantOfShape(o) => index::constant_of_shape(o, cx),
        M::Range(_) => index::range(cx),
        M::Compress(o) => index::compress(o, cx),
        M::NonZero(_) => index::non_zero(cx),
        M::OneHot(o) => index::one_hot(o, cx),
        M::ReverseSequence(o) => index::reverse_sequence(o, cx),
        M::Unique(o) => index::unique(o, cx),
        M::Resize(o) => resample::resize(o, cx),
        M::GridSample(o) => resample::grid_sample(o, cx),
        M::AffineGrid(o) => resample::affine_grid(o, cx),
        M::Col2Im(o) => resample::col2im(o, cx),
    }
}

// ---------------------------------------------------------------------------------------------------
// Type-generic element access
// ---------------------------------------------------------------------------------------------------

/// In an index list for [`take`], selects the fill value instead of an input element.
pub(crate) const FILL: usize = usize::MAX;

/// Rebuilds the same `Data` variant from a generic expression over its element vector: `$v` is bound to
/// the `&Vec<T>` of the variant and `$e` must evaluate to a `Vec<T>`.
macro_rules! map_data {
    ($d:expr, $v:ident => $e:expr) => {
        match $d {
            Data::F32($v) => Data::F32($e),
            Data::F64($v) => Data::F64($e),
            Data::F16($v) => Data::F16($e),
            Data::BF16($v) => Data::BF16($e),
            Data::I64($v) => Data::I64($e),
            Data::I32($v) => Data::I32($e),
            Data::I16($v) => Data::I16($e),
            Data::I8($v) => Data::I8($e),
            Data::U64($v) => Data::U64($e),
            Data::U32($v) => Data::U32($e),
            Data::U16($v) => Data::U16($e),
            Data::U8($v) => Data::U8($e),
            Data::Bool($v) => Data::Bool($e),
            Data::Str($v) => Data::Str($e),
            Data::Small(dt, $v) => Data::Small(*dt, $e),
            Data::C64($v) => Data::C64($e),
            Data::C128($v) => Data::C128($e),
        }
    };
}

/// Like [`map_data!`] over two `Data` values that must be the same variant (and, for `Small`, the same
/// dtype); `$bad` is evaluated (and returned) when they are not.
macro_rules! map_data2 {
    ($a:expr, $b:expr, $x:ident, $y:ident => $e:expr, $bad:expr) => {
        match ($a, $b) {
            (Data::F32($x), Data::F32($y)) => Data::F32($e),
            (Data::F64($x), Data::F64($y)) => Data::F64($e),
            (Data::F16($x), Data::F16($y)) => Data::F16($e),
            (Data::BF16($x), Data::BF16($y)) => Data::BF16($e),
            (Data::I64($x), Data::I64($y)) => Data::I64($e),
            (Data::I32($x), Data::I32($y)) => Data::I32($e),
            (Data::I16($x), Data::I16($y)) => Data::I16($e),
            (Data::I8($x), Data::I8($y)) => Data::I8($e),
            (Data::U64($x), Data::U64($y)) => Data::U64($e),
            (Data::U32($x), Data::U32($y)) => Data::U32($e),
            (Data::U16($x), Data::U16($y)) => Data::U16($e),
            (Data::U8($x), Data::U8($y)) => Data::U8($e),
            (Data::Bool($x), Data::Bool($y)) => Data::Bool($e),
            (Data::Str($x), Data::Str($y)) => Data::Str($e),
            (Data::Small(d1, $x), Data::Small(d2, $y)) if d1 == d2 => Data::Small(*d1, $e),
            (Data::C64($x), Data::C64($y)) => Data::C64($e),
            (Data::C128($x), Data::C128($y)) => Data::C128($e),
            _ => return $bad,
        }
    };
}

pub(crate) use map_data;

fn take_vec<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}

fn take_fill_vec<T: Clone>(v: &[T], idx: &[usize], fill: &T) -> Vec<T> {
    idx.iter()
        .map(|&i| {
            if i == FILL {
                fill.clone()
            } else {
                v[i].clone()
            }
        })
        .collect()
}

/// Checks that every index in `idx` is [`FILL`] (when `fill_ok`) or below `len`.
fn check_idx(idx: &[usize], len: usize, fill_ok: bool) -> Result<(), TensorError> {
    match idx.iter().find(|&&i| i >= len && !(fill_ok && i == FILL)) {
        Some(&i) if i == FILL => Err(TensorError(
            "internal: a padding position without a fill value".into(),
        )),
        Some(&i) => Err(TensorError(format!(
            "internal: element index {i} is out of range for {len} elements"
        ))),
        None => Ok(()),
    }
}

/// The elements of `d` at the flat indices `idx` (all in range).
pub(crate) fn take(d: &Data, idx: &[usize]) -> Result<Data, TensorError> {
    check_idx(idx, d.len(), false)?;
    Ok(map_data!(d, v => take_vec(v, idx)))
}

/// The elements of `d` at the flat indices `idx`, where [`FILL`] selects the first element of `fill`
/// (which must hold the same element type).
pub(crate) fn take_fill(d: &Data, idx: &[usize], fill: &Data) -> Result<Data, TensorError> {
    check_idx(idx, d.len(), true)?;
    if fill.is_empty() {
        return Err(TensorError("the fill value has no elements".into()));
    }
    let bad = Err(TensorError(format!(
        "the fill value has type {}, the data has {}",
        fill.dtype(),
        d.dtype()
    )));
    Ok(map_data2!(d, fill, v, f => take_fill_vec(v, idx, &f[0]), bad))
}

/// A tensor of `shape` made of the elements of `t` at `idx`.
pub(crate) fn take_tensor(
    t: &Tensor,
    shape: Vec<usize>,
    idx: &[usize],
) -> Result<Tensor, TensorError> {
    Tensor::new(shape, take(&t.data, idx)?)
}

/// Element types that can be pulled out of a [`Data`] of their own variant, for generic code that reads
/// several tensors of one type. (`u8` also matches `Small` data, whose bytes are its storage.)
pub(crate) trait Stored: Clone + Sized {
    /// The element vector of `d`, when `d` stores this type.
    fn vec(d: &Data) -> Option<&Vec<Self>>;
}

macro_rules! stored {
    ($($t:ty => $V:ident),*) => {$(
        impl Stored for $t {
            fn vec(d: &Data) -> Option<&Vec<Self>> {
                match d {
                    Data::$V(v) => Some(v),
                    _ => None,
                }
            }
        }
    )*};
}

stored!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, i64 => I64, i32 => I32, i16 => I16,
    i8 => I8, u64 => U64, u32 => U32, u16 => U16, bool => Bool, String => Str, [f32; 2] => C64,
    [f64; 2] => C128);

impl Stored for u8 {
    fn vec(d: &Data) -> Option<&Vec<Self>> {
        match d {
            Data::U8(v) | Data::Small(_, v) => Some(v),
            _ => None,
        }
    }
}

fn cat_vec<T: Stored>(parts: &[&Data]) -> Result<Vec<T>, TensorError> {
    let n = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(n);
    for p in parts {
        let v =
            T::vec(p).ok_or_else(|| TensorError("inputs must share one element type".into()))?;
        out.extend_from_slice(v);
    }
    Ok(out)
}

/// Concatenates the element vectors of `parts`, which must share one element type.
pub(crate) fn cat(parts: &[&Data]) -> Result<Data, TensorError> {
    let Some(first) = parts.first() else {
        return Err(TensorError("nothing to concatenate".into()));
    };
    if let Some(p) = parts.iter().find(|p| p.dtype() != first.dtype()) {
        return Err(TensorError(format!(
            "inputs must share one element type, got {} and {}",
            first.dtype(),
            p.dtype()
        )));
    }
    Ok(map_data!(*first, _v => cat_vec(parts)?))
}

fn repeat_vec<T: Clone>(v: &[T], n: usize) -> Vec<T> {
    vec![v[0].clone(); n]
}

/// One element of `d` repeated `n` times.
pub(crate) fn repeat_first(d: &Data, n: usize) -> Result<Data, TensorError> {
    if d.is_empty() {
        return Err(TensorError("the value has no elements".into()));
    }
    Ok(map_data!(d, v => repeat_vec(v, n)))
}

/// Flat indices of a tensor of `shape` whose element at output coordinate `(o_0, ..., o_r)` is the input
/// element at flat index `Σ tables[a][o_a]`, or [`FILL`] when any table entry is `None`.
pub(crate) fn index_map(shape: &[usize], tables: &[Vec<Option<usize>>]) -> Vec<usize> {
    fn rec(a: usize, base: Option<usize>, tables: &[Vec<Option<usize>>], out: &mut Vec<usize>) {
        let last = a + 1 == tables.len();
        for c in &tables[a] {
            let v = match (base, c) {
                (Some(b), Some(c)) => Some(b + c),
                _ => None,
            };
            if last {
                out.push(v.unwrap_or(FILL));
            } else {
                rec(a + 1, v, tables, out);
            }
        }
    }
    debug_assert_eq!(shape.len(), tables.len());
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if tables.is_empty() {
        out.push(0);
    } else if n > 0 {
        rec(0, Some(0), tables, &mut out);
    }
    out
}

/// `v` (a tensor of `shape`) with its axes permuted: output axis `i` is input axis `perm[i]`.
///
/// Walks the last two output axes in square tiles so that neither the reads nor the writes stride
/// through memory one element per cache line (constant folding transposes multi-megabyte weights).
fn permute_vec<T: Clone>(v: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    const TILE: usize = 32;
    let r = perm.len();
    if r < 2 || v.is_empty() {
        return v.to_vec();
    }
    let st = crate::tensor::strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let (rows, cols) = (out_shape[r - 2], out_shape[r - 1]);
    let (sr, sc) = (st[perm[r - 2]], st[perm[r - 1]]);
    let outer_shape = &out_shape[..r - 2];
    let outer_st: Vec<usize> = perm[..r - 2].iter().map(|&p| st[p]).collect();
    let mut out = vec![v[0].clone(); v.len()];
    let mut pos = vec![0usize; r - 2];
    let plane = rows * cols;
    for o in 0..v.len() / plane {
        let base: usize = pos.iter().zip(&outer_st).map(|(i, s)| i * s).sum();
        let dst = &mut out[o * plane..(o + 1) * plane];
        for i0 in (0..rows).step_by(TILE) {
            for j0 in (0..cols).step_by(TILE) {
                for i in i0..(i0 + TILE).min(rows) {
                    for j in j0..(j0 + TILE).min(cols) {
                        dst[i * cols + j] = v[base + i * sr + j * sc].clone();
                    }
                }
            }
        }
        // Odometer over the outer output axes.
        for a in (0..pos.len()).rev() {
            pos[a] += 1;
            if pos[a] < outer_shape[a] {
                break;
            }
            pos[a] = 0;
        }
    }
    out
}

/// A tensor of `shape` made of `t` (read as a tensor of `src_shape`, which has as many elements) with its
/// axes permuted by `perm` (output axis `i` is `src_shape` axis `perm[i]`).
pub(crate) fn permute_tensor(
    t: &Tensor,
    src_shape: &[usize],
    perm: &[usize],
    shape: Vec<usize>,
) -> Result<Tensor, TensorError> {
    let n: usize = src_shape.iter().product();
    if n != t.len() || perm.len() != src_shape.len() {
        return Err(TensorError(format!(
            "cannot permute {} elements as {src_shape:?} by {perm:?}",
            t.len()
        )));
    }
    Tensor::new(
        shape,
        map_data!(&t.data, v => permute_vec(v, src_shape, perm)),
    )
}

/// The storage of an element type as a widened, value-faithful `Data` (for sub-byte and 8-bit float types
/// stored as raw bytes): signed sub-byte ints as `I8`, unsigned as `U8`, small floats decoded to `F32`.
/// Other data is returned as is.
pub(crate) fn widen(d: &Data) -> std::borrow::Cow<'_, Data> {
    use std::borrow::Cow;
    match d {
        Data::Small(dt, v) if dt.is_signed_int() => {
            Cow::Owned(Data::I8(v.iter().map(|&x| x as i8).collect()))
        }
        Data::Small(dt, v) if dt.is_unsigned_int() => Cow::Owned(Data::U8(v.clone())),
        Data::Small(dt, v) => Cow::Owned(Data::F32(
            v.iter()
                .map(|&x| super::util::small_float_to_f32(*dt, x))
                .collect(),
        )),
        d => Cow::Borrowed(d),
    }
}

// ---------------------------------------------------------------------------------------------------
// Element semantics
// ---------------------------------------------------------------------------------------------------

/// What value-aware movement ops need of an element type.
pub(crate) trait El: Clone {
    /// `*self = reduction(*self, u)`; an error for reductions the type has no meaning for.
    fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String>;
    /// A total order for sorting (`unique`): floats order NaN last, with `-0 == 0` and NaN equal to NaN.
    fn order(&self, o: &Self) -> Ordering;
    /// True for non-zero (non-empty, true) elements.
    fn nonzero(&self) -> bool;
}

fn float_order(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `max`/`min` that propagate NaN (as numpy's `maximum`/`minimum`).
fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn combine_f64(a: f64, b: f64, r: ScatterReduction) -> f64 {
    match r {
        ScatterReduction::None => b,
        ScatterReduction::Add => a + b,
        ScatterReduction::Mul => a * b,
        ScatterReduction::Max => fmax(a, b),
        ScatterReduction::Min => fmin(a, b),
    }
}

macro_rules! float_el {
    ($t:ty, $to:expr, $from:expr) => {
        impl El for $t {
            fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String> {
                let to: fn($t) -> f64 = $to;
                let from: fn(f64) -> $t = $from;
                *self = if r == ScatterReduction::None {
                    *u
                } else {
                    from(combine_f64(to(*self), to(*u), r))
                };
                Ok(())
            }
            fn order(&self, o: &Self) -> Ordering {
                let to: fn($t) -> f64 = $to;
                float_order(to(*self), to(*o))
            }
            fn nonzero(&self) -> bool {
                let to: fn($t) -> f64 = $to;
                to(*self) != 0.0
            }
        }
    };
}

float_el!(f32, f64::from, |x| x as f32);
float_el!(f64, |x| x, |x| x);
float_el!(f16, |x| x.to_f64(), f16::from_f64);
float_el!(bf16, |x| x.to_f64(), bf16::from_f64);

macro_rules! int_el {
    ($($t:ty),*) => {$(
        impl El for $t {
            fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String> {
                *self = match r {
                    ScatterReduction::None => *u,
                    ScatterReduction::Add => self.wrapping_add(*u),
                    ScatterReduction::Mul => self.wrapping_mul(*u),
                    ScatterReduction::Max => (*self).max(*u),
                    ScatterReduction::Min => (*self).min(*u),
                };
                Ok(())
            }
            fn order(&self, o: &Self) -> Ordering {
                self.cmp(o)
            }
            fn nonzero(&self) -> bool {
                *self != 0
            }
        }
    )*};
}

int_el!(i64, i32, i16, i8, u64, u32, u16, u8);

impl El for bool {
    fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String> {
        *self = match r {
            ScatterReduction::None => *u,
            ScatterReduction::Add | ScatterReduction::Max => *self || *u,
            ScatterReduction::Mul | ScatterReduction::Min => *self && *u,
        };
        Ok(())
    }
    fn order(&self, o: &Self) -> Ordering {
        self.cmp(o)
    }
    fn nonzero(&self) -> bool {
        *self
    }
}

impl El for String {
    fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String> {
        if r != ScatterReduction::None {
            return Err(format!(
                "reduction '{}' is not defined for strings",
                r.keyword()
            ));
        }
        self.clone_from(u);
        Ok(())
    }
    fn order(&self, o: &Self) -> Ordering {
        self.cmp(o)
    }
    fn nonzero(&self) -> bool {
        !self.is_empty()
    }
}

macro_rules! complex_el {
    ($f:ty) => {
        impl El for [$f; 2] {
            fn combine(&mut self, u: &Self, r: ScatterReduction) -> Result<(), String> {
                let [a, b] = *self;
                let [c, d] = *u;
                *self = match r {
                    ScatterReduction::None => *u,
                    ScatterReduction::Add => [a + c, b + d],
                    ScatterReduction::Mul => [a * c - b * d, a * d + b * c],
                    _ => {
                        return Err(format!(
                            "reduction '{}' is not defined for complex numbers",
                            r.keyword()
                        ));
                    }
                };
                Ok(())
            }
            fn order(&self, o: &Self) -> Ordering {
                float_order(f64::from(self[0]), f64::from(o[0]))
                    .then(float_order(f64::from(self[1]), f64::from(o[1])))
            }
            fn nonzero(&self) -> bool {
                self[0] != 0.0 || self[1] != 0.0
            }
        }
    };
}

complex_el!(f32);
complex_el!(f64);

/// Applies `f` to the element vector of `d` as an [`El`] slice, for a result that does not depend on the
/// element type (an order, a mask). Sub-byte and 8-bit float data is [`widen`]ed first.
macro_rules! with_el {
    ($d:expr, $v:ident => $e:expr) => {{
        let w = $crate::interp::movement::widen($d);
        match &*w {
            Data::F32($v) => $e,
            Data::F64($v) => $e,
            Data::F16($v) => $e,
            Data::BF16($v) => $e,
            Data::I64($v) => $e,
            Data::I32($v) => $e,
            Data::I16($v) => $e,
            Data::I8($v) => $e,
            Data::U64($v) => $e,
            Data::U32($v) => $e,
            Data::U16($v) => $e,
            Data::U8($v) => $e,
            Data::Bool($v) => $e,
            Data::Str($v) => $e,
            Data::C64($v) => $e,
            Data::C128($v) => $e,
            Data::Small(..) => unreachable!("widen removes Small data"),
        }
    }};
}

pub(crate) use with_el;

/// Narrows data computed on [`widen`]ed values back to the storage of `dtype` (sub-byte ints wrap to
/// their width and are sign-extended again).
pub(crate) fn narrow(d: Data, dtype: DType) -> Result<Data, TensorError> {
    match (d, dtype) {
        (Data::I8(v), dt) if dt.is_signed_int() && dt.bits() < 8 => {
            let bits = dt.bits();
            let shift = 8 - bits;
            Ok(Data::Small(
                dt,
                v.iter().map(|&x| ((x << shift) >> shift) as u8).collect(),
            ))
        }
        (Data::U8(v), dt) if dt.is_unsigned_int() && dt.bits() < 8 => {
            let mask = ((1u16 << dt.bits()) - 1) as u8;
            Ok(Data::Small(dt, v.iter().map(|&x| x & mask).collect()))
        }
        (d, dt) if d.dtype() == dt => Ok(d),
        (d, dt) => Err(TensorError(format!(
            "cannot compute on {dt} values (held as {})",
            d.dtype()
        ))),
    }
}

/// Error conversion shorthand for kernels.
pub(crate) fn te(cx: &EvalCtx, e: TensorError) -> RunError {
    cx.err(e.0)
}

/// Converts a possibly negative index into `[0, n)`; `None` when out of range.
pub(crate) fn norm_index(i: i64, n: usize) -> Option<usize> {
    let n = i64::try_from(n).ok()?;
    let j = if i < 0 { i.checked_add(n)? } else { i };
    if (0..n).contains(&j) {
        usize::try_from(j).ok()
    } else {
        None
    }
}

/// A shape operand as `usize` dims, refusing negative entries.
pub(crate) fn dims_of(cx: &EvalCtx, v: &[i64], what: &str) -> Result<Vec<usize>, RunError> {
    v.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| cx.err(format!("{what}: negative dimension {d} in {v:?}")))
        })
        .collect()
}

/// Normalizes axes against `rank`, refusing duplicates.
pub(crate) fn norm_axes(cx: &EvalCtx, axes: &[i64], rank: usize) -> Result<Vec<usize>, RunError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = super::util::axis(a, rank).map_err(|e| te(cx, e))?;
        if out.contains(&n) {
            return Err(cx.err(format!("axis {a} is repeated in {axes:?}")));
        }
        out.push(n);
    }
    Ok(out)
}

/// Wraps a tensor as the single output.
pub(crate) fn one(t: Tensor) -> Result<Vec<Value>, RunError> {
    Ok(vec![Value::Tensor(t)])
}

#[cfg(test)]
mod tests;
