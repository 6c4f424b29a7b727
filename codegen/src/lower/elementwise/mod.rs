//! Elementwise ops: unary math, binary arithmetic with broadcasting, comparisons, where, clip, cast,
//! quantize/dequantize ([`quant`]), ORT's QLinearAdd/QLinearMul ([`qlinear`]); fused elementwise chains.
//!
//! Two kinds of kernels share one loop nest ([`emit_map`]):
//! - **f32 expressions** ([`Expr`]): every f32 unary/binary/variadic op of the family becomes a small
//!   expression tree over *leaves* (external operands, each with its own shape broadcast to the
//!   output); a fused chain of nodes ([`crate::lower::fuse`]) is one bigger tree. The inner loop runs
//!   4 lanes at a time (`f32x4`) where the target has vectors, with a scalar tail; transcendental
//!   functions come from [`crate::lower::math`].
//! - **typed scalar ops** ([`TOp`]): comparisons (→ bool), `and`/`or`/`xor`/`not`, `where`, `cast`
//!   between f32/f64/integers/bool and the narrow floats (f16, bf16, 8-bit floats: [`narrow`]),
//!   integer, f64 and narrow-float arithmetic — one element at a time;
//! - **casts to or from packed sub-byte types** (`i4`, `u4`, `i2`, `u2`, `f4e2m1`): [`packed`].
//!
//! The loop nest: output axes of size 1 are dropped and adjacent axes merged where every operand is
//! contiguous across them (as the interpreter's `runs`), so the innermost axis has operand strides 0
//! (broadcast: loaded once per row) or 1. Rows of the outer axes are walked with an odometer of per-leaf
//! offsets; tiles are ranges of rows (or, for a single row, chunks of it) of at least [`TILE_ELEMS`]
//! elements, so every output element is computed by one tile in a fixed order.

mod binary;
mod cast;
mod expr;
mod map;
mod narrow;
#[cfg(test)]
mod narrow_tests;
mod packed;
mod qlinear;
mod quant;
mod requant;
#[cfg(test)]
mod test_util;
mod typed;
mod unary;

pub use binary::*;
use cast::*;
pub use expr::*;
pub use map::*;
pub use typed::*;
pub use unary::*;

use carve_ir::ops::activation::{ActKind, Activation};
use carve_ir::ops::elementwise::{ElementwiseOp as E, GeluApprox};
use carve_ir::ops::quant::QuantOp;
use carve_ir::{DType, Op, ValueId};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, Value, types};
use cranelift_frontend::FunctionBuilder;

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::math::Fx;
use crate::lower::{Lowering, NodeInfo, Weights};
use crate::prepare::concrete_shape;

/// Minimum elements per tile of a parallel kernel.
pub const TILE_ELEMS: usize = 16 * 1024;

/// Most tiles one kernel is split into.
const MAX_TILES: usize = 256;

// ---------------------------------------------------------------------------------------------------
// Lowerings.

/// The shape of value `v`.
fn shape_of(info: &NodeInfo, v: ValueId) -> Result<Vec<usize>, CodegenError> {
    concrete_shape(info.graph, v).ok_or_else(|| {
        info.err(format!(
            "'{}' has no static shape",
            info.graph.value(v).name
        ))
    })
}

/// An f32 expression kernel over `leaves` (already dense: `Expr::Leaf(j)` = `leaves[j]`).
fn expr_lowering(
    out_shape: Vec<usize>,
    leaves: Vec<LeafSpec>,
    expr: Expr,
    in_place: Option<usize>,
) -> Lowering {
    Lowering::Native {
        in_place,
        emit: Box::new(move |e: &mut Emitter| {
            let body = |b: &mut FunctionBuilder, fx: Fx, v: &[Value]| eval(b, fx, &expr, v);
            emit_map(e, &out_shape, DType::F32, &leaves, true, &body)
        }),
    }
}

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, w: &mut Weights) -> Result<Lowering, CodegenError> {
    if let Op::Quant(q) = info.op() {
        if matches!(q, QuantOp::QuantizeLinear(_)) && info.in_quant(0).is_some() {
            return requant::lower(info, w);
        }
        if matches!(q, QuantOp::QLinearAdd(_) | QuantOp::QLinearMul(_)) {
            return qlinear::lower(info, q);
        }
        return quant::lower(info, q);
    }
    if info.num_outputs() != 1 {
        return Ok(Lowering::Fallback(
            "elementwise op with several outputs".into(),
        ));
    }
    let out_shape = info.out_shape(0)?;
    let out_dtype = info.out_dtype(0)?;
    if let Op::Elementwise(E::Cast(c)) = info.op() {
        let from = info.in_dtype(0)?;
        if packed::is_packed(from) || packed::is_packed(out_dtype) {
            return packed::lower(info, from, out_dtype, c.saturate, c.round_mode);
        }
    }
    let expr_err = match node_expr(info) {
        Ok(expr) => {
            // Dense leaves: input slots in first-use order.
            let slots = expr.leaves();
            let mut leaves = Vec::with_capacity(slots.len());
            for &k in &slots {
                leaves.push(LeafSpec {
                    src: k,
                    dtype: DType::F32,
                    shape: info.in_shape(k)?,
                });
            }
            let dense = expr
                .substitute(&mut |k| Expr::Leaf(slots.iter().position(|&s| s == k).unwrap_or(0)));
            let in_place = slots
                .iter()
                .copied()
                .find(|&k| info.in_shape(k).is_ok_and(|s| s == out_shape));
            return Ok(expr_lowering(out_shape, leaves, dense, in_place));
        }
        Err(m) => m,
    };
    let op = match typed_op(info) {
        Ok(op) => op,
        Err(m) => {
            return Ok(Lowering::Fallback(
                if out_dtype == DType::F32 && !expr_err.ends_with("has no f32 expression") {
                    expr_err
                } else {
                    m
                },
            ));
        }
    };
    let mut leaves = Vec::new();
    for k in 0..info.num_inputs() {
        if !info.has_input(k) {
            return Ok(Lowering::Fallback(format!("input {k} is absent")));
        }
        leaves.push(LeafSpec {
            src: k,
            dtype: info.in_dtype(k)?,
            shape: info.in_shape(k)?,
        });
    }
    let in_place = leaves
        .iter()
        .position(|l| l.shape == out_shape && l.dtype == out_dtype);
    Ok(Lowering::Native {
        in_place,
        emit: Box::new(move |e: &mut Emitter| {
            let body = |b: &mut FunctionBuilder, _fx: Fx, v: &[Value]| eval_typed(b, op, v);
            emit_map(e, &out_shape, out_dtype, &leaves, false, &body)
        }),
    })
}

/// Select phase for a fused group rooted at `info`'s node: `expr` over `leaves` (the group's external
/// operands; `Expr::Leaf(j)` = `leaves[j]`, which is also the emitter's input `j`).
pub fn lower_group(
    info: &NodeInfo,
    leaves: &[ValueId],
    expr: &Expr,
) -> Result<Lowering, CodegenError> {
    let out_shape = info.out_shape(0)?;
    let mut specs = Vec::with_capacity(leaves.len());
    for (j, &v) in leaves.iter().enumerate() {
        specs.push(LeafSpec {
            src: j,
            dtype: DType::F32,
            shape: shape_of(info, v)?,
        });
    }
    let in_place = specs.iter().position(|l| l.shape == out_shape);
    Ok(expr_lowering(out_shape, specs, expr.clone(), in_place))
}
