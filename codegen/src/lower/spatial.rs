//! Direct spatial kernels: depthwise convolution, max/avg/lp pooling, global pooling, conv_transpose
//! and resize, all f32 NCHW with one or two spatial axes.
//!
//! Depthwise conv and pooling share one sliding-window kernel generator ([`window`]): the geometry is
//! resolved at compile time, rows and columns are split into border ranges (padding checks resolved
//! statically, code specialized per border position) and an interior range vectorized along the output
//! width. Tiles are (plane, row block) pairs, so results do not depend on the thread count.

mod convt;
mod global;
mod resize;
pub(crate) mod window;

/// Window attributes from an op's lists (shared with inference and the interpreter).
use carve_ir::ops::conv::window_attrs as attrs;
use carve_ir::ops::conv::{ConvOp, WindowAttrs, window_output};
use carve_ir::ops::movement::MovementOp;
use carve_ir::{DType, Op};
use cranelift_codegen::ir::{InstBuilder, Value, types};

use crate::CodegenError;
use crate::emit::Kb;
use crate::lower::gemm::Post;
use crate::lower::{Lowering, NodeInfo, Weights};

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Conv(ConvOp::Conv(c)) => window::lower_depthwise(info, c, w, Post::NONE),
        Op::Conv(ConvOp::Pool(p)) => window::lower_pool(info, p),
        Op::Conv(ConvOp::GlobalPool(p)) => global::lower(info, p),
        Op::Conv(ConvOp::ConvTranspose(c)) => convt::lower(info, c, w),
        Op::Movement(MovementOp::Resize(r)) => resize::lower(info, r, w),
        Op::Conv(other) => Ok(Lowering::Fallback(format!(
            "no native kernel for {} (rare op; runs in the interpreter)",
            Op::Conv(other.clone()).name()
        ))),
        _ => Ok(Lowering::Fallback("not a spatial op".into())),
    }
}

/// Select phase for a depthwise `conv` whose results get `post`'s pointwise steps (a fused conv's
/// epilogue) before they are stored.
pub fn lower_depthwise_with(
    info: &NodeInfo,
    w: &mut Weights,
    post: Post,
) -> Result<Lowering, CodegenError> {
    match info.op() {
        Op::Conv(ConvOp::Conv(c)) => window::lower_depthwise(info, c, w, post),
        _ => Ok(Lowering::Fallback("not a depthwise conv".into())),
    }
}

/// A fallback with `reason`.
fn fallback(reason: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(reason.into()))
}

/// True when input `i` is present with dtype f32.
fn is_f32_in(info: &NodeInfo, i: usize) -> Result<bool, CodegenError> {
    Ok(info.has_input(i) && info.in_dtype(i)? == DType::F32)
}

/// Sliding-window geometry along one spatial axis, resolved for static sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Axis {
    /// Input length.
    pub input: usize,
    /// Output length.
    pub output: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Applied padding before the axis.
    pub pad_begin: usize,
    /// Applied padding after the axis.
    pub pad_end: usize,
}

impl Axis {
    /// A length-1 axis with a 1-tap window (the missing H axis of 1-D ops).
    pub fn unit() -> Axis {
        Axis {
            input: 1,
            output: 1,
            kernel: 1,
            stride: 1,
            dilation: 1,
            pad_begin: 0,
            pad_end: 0,
        }
    }

    /// First input position of output `o`'s window (may be negative).
    pub fn start(&self, o: usize) -> i64 {
        o as i64 * self.stride as i64 - self.pad_begin as i64
    }

    /// Kernel taps of output `o` that read inside the input.
    pub fn valid_taps(&self, o: usize) -> Vec<usize> {
        let s = self.start(o);
        (0..self.kernel)
            .filter(|&k| {
                let p = s + (k * self.dilation) as i64;
                p >= 0 && p < self.input as i64
            })
            .collect()
    }

    /// Taps of output `o` inside the padded extent (what `count_include_pad` divides by).
    pub fn padded_count(&self, o: usize) -> usize {
        let s = self.start(o);
        let limit = (self.input + self.pad_end) as i64;
        (0..self.kernel)
            .filter(|&k| s + ((k * self.dilation) as i64) < limit)
            .count()
    }

    /// The range `lo..hi` of outputs whose whole window is inside the input (`lo == hi` if none).
    pub fn interior(&self) -> (usize, usize) {
        let lo = self.pad_begin.div_ceil(self.stride).min(self.output);
        let ext = (self.kernel - 1) * self.dilation;
        // Largest o with o·s - pb + ext ≤ input - 1.
        let top = self.input as i64 - 1 + self.pad_begin as i64 - ext as i64;
        let hi = if top < 0 {
            0
        } else {
            (top as usize / self.stride + 1).min(self.output)
        };
        (lo, hi.max(lo))
    }
}

/// Resolves forward window geometry (conv, pool) for `input` spatial dims and `kernel` sizes.
fn forward_axes(
    input: &[usize],
    kernel: &[usize],
    attrs: &WindowAttrs,
) -> Result<Vec<Axis>, String> {
    attrs.check(input.len())?;
    if kernel.len() != input.len() {
        return Err("kernel rank differs from the input's spatial rank".into());
    }
    let mut axes = Vec::new();
    for (i, (&len, &k)) in input.iter().zip(kernel).enumerate() {
        let w = attrs.window(i, k as u64);
        let (out, pb, pe) = window_output(len as u64, &w, attrs.auto_pad, attrs.ceil_mode)?;
        axes.push(Axis {
            input: len,
            output: usize::try_from(out).map_err(|e| e.to_string())?,
            kernel: k,
            stride: usize::try_from(w.stride).map_err(|e| e.to_string())?,
            dilation: usize::try_from(w.dilation).map_err(|e| e.to_string())?,
            pad_begin: usize::try_from(pb).map_err(|e| e.to_string())?,
            pad_end: usize::try_from(pe).map_err(|e| e.to_string())?,
        });
    }
    Ok(axes)
}

/// Scalar or 4-lane f32 arithmetic in generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// One f32.
    S,
    /// f32x4.
    V,
}

/// `c` as a value of `ty`.
pub(crate) fn fconst(kb: &mut Kb, ty: Ty, c: f32) -> Value {
    match ty {
        Ty::S => kb.f32const(c),
        Ty::V => kb.f32x4const(c),
    }
}

/// `a·b + c` (one fused instruction where the target has FMA).
pub(crate) fn fmadd(kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
    if kb.target.has_fma() {
        kb.b.ins().fma(a, b, c)
    } else {
        let m = kb.b.ins().fmul(a, b);
        kb.b.ins().fadd(m, c)
    }
}

/// NaN-ignoring running maximum: `v` replaces `acc` when `v` is a number and `acc` is unset (NaN) or
/// smaller. Matches the interpreter, which skips NaN inputs.
pub(crate) fn max_step(kb: &mut Kb, ty: Ty, acc: Value, v: Value) -> Value {
    use cranelift_codegen::ir::condcodes::FloatCC;
    let gt = crate::lower::math::fcmp_portable(kb.b, FloatCC::UnorderedOrGreaterThan, v, acc);
    let num = kb.b.ins().fcmp(FloatCC::Ordered, v, v);
    let take = kb.b.ins().band(gt, num);
    match ty {
        Ty::S => kb.b.ins().select(take, v, acc),
        Ty::V => {
            let m = kb.b.ins().bitcast(
                types::F32X4,
                cranelift_codegen::ir::MemFlagsData::new(),
                take,
            );
            kb.b.ins().bitselect(m, v, acc)
        }
    }
}

/// Replaces an unset (NaN) maximum with the lowest finite f32, as the interpreter does for windows
/// without a number.
pub(crate) fn max_finish(kb: &mut Kb, ty: Ty, acc: Value) -> Value {
    use cranelift_codegen::ir::condcodes::FloatCC;
    let uno = kb.b.ins().fcmp(FloatCC::Unordered, acc, acc);
    let low = fconst(kb, ty, f32::MIN);
    match ty {
        Ty::S => kb.b.ins().select(uno, low, acc),
        Ty::V => {
            let m = kb.b.ins().bitcast(
                types::F32X4,
                cranelift_codegen::ir::MemFlagsData::new(),
                uno,
            );
            kb.b.ins().bitselect(m, low, acc)
        }
    }
}

/// Horizontal sum of an f32x4 (lanes added as `(l0 + l1) + (l2 + l3)`).
pub(crate) fn hsum(kb: &mut Kb, v: Value) -> Value {
    let l: Vec<Value> = (0..4u8).map(|i| kb.b.ins().extractlane(v, i)).collect();
    let a = kb.b.ins().fadd(l[0], l[1]);
    let b = kb.b.ins().fadd(l[2], l[3]);
    kb.b.ins().fadd(a, b)
}

/// Number of tiles for `units` independent work units of `work` elementary steps each: one tile when
/// the whole op is small (no thread hand-off), else one per unit.
fn tiles_for(units: usize, work_per_unit: usize) -> u64 {
    const SMALL: usize = 1 << 16;
    if units <= 1 || units.saturating_mul(work_per_unit) < SMALL {
        1
    } else {
        units as u64
    }
}

/// Checks that a byte offset fits a load/store immediate.
fn imm(off: i64) -> Result<i32, CodegenError> {
    i32::try_from(off).map_err(|_| CodegenError::Unsupported {
        msg: format!("offset {off} does not fit a 32-bit immediate"),
    })
}

#[cfg(test)]
mod tests;
