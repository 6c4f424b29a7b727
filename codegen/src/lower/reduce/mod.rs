//! Reductions over axes (`reduce` of every kind), the softmax family (`softmax`, `log_softmax`,
//! `hardmax`) and `arg_reduce`, as native kernels.
//!
//! Shapes are canonicalized first: size-1 axes are dropped and adjacent axes that are all reduced or
//! all kept are merged. Two kernel shapes cover every axis set:
//! - the innermost group is reduced ("rows"): each output element reduces contiguous rows of `n`
//!   elements (f32x4 chunks with four accumulators, then a scalar tail), looping over any outer reduced
//!   groups; tiles are ranges of output elements;
//! - the innermost group is kept ("columns"): each output row of `m` contiguous lanes is computed in
//!   lane blocks of 16/4/1 lanes, each block accumulating in registers over every reduced index; tiles
//!   are (output row, lane chunk) pairs.
//!
//! Softmax is the same split around its axis: contiguous rows (`inner = 1`) or columns. Each output
//! element is produced by exactly one tile in a fixed order, so results do not depend on the thread
//! count. Numbers: f32 throughout (the interpreter's f64 results agree within ~1e-5 relative);
//! max/min propagate NaN like the interpreter; softmax subtracts the row maximum before `exp`.
//!
//! Native: f32 `reduce` (every kind), i32/i64 `reduce` sum/max/min/prod (scalar, wrapping), f32
//! softmax/log_softmax/hardmax, `arg_reduce` of f32/i32/i64, `top_k` of f32 ([`top_k`]). Everything
//! else falls back.
//!
//! Files: [`aggregate`] (`reduce` of every kind, f32 and integer), [`softmax`] (softmax, log_softmax,
//! hardmax), [`arg`] (`arg_reduce`, and the per-lane arg-best loop hardmax shares); this file holds the
//! family's entry point and the shape canonicalization and column tiling they share.

mod aggregate;
mod arg;
pub(crate) mod rows;
mod softmax;
mod top_k;
pub(crate) mod vmath;

use cranelift_codegen::ir::{InstBuilder, Value};

use carve_ir::Op;
use carve_ir::ops::reduce::ReduceOp;

use crate::CodegenError;
use crate::emit::{Emitter, Kb};
use crate::lower::{Lowering, NodeInfo, Weights};
use aggregate::lower_reduce;
use arg::lower_arg;
use rows::{MIN_TILE_WORK, Tiling};
use softmax::lower_softmax;

/// Select phase for this family (see [`crate::lower`]).
pub fn lower(info: &NodeInfo, _w: &mut Weights) -> Result<Lowering, CodegenError> {
    let Op::Reduce(op) = info.op() else {
        return Ok(Lowering::Fallback("not a reduce-family op".into()));
    };
    match op {
        ReduceOp::Reduce(r) => lower_reduce(info, r),
        ReduceOp::Softmax(s) => lower_softmax(info, s),
        ReduceOp::ArgReduce(a) => lower_arg(info, a),
        ReduceOp::TopK(t) => top_k::lower_top_k(info, t),
        other => Ok(Lowering::Fallback(format!(
            "no native kernel for {} yet",
            other.name()
        ))),
    }
}

fn fallback(msg: impl Into<String>) -> Result<Lowering, CodegenError> {
    Ok(Lowering::Fallback(msg.into()))
}

/// A native lowering that generates no code (empty output).
fn nothing() -> Lowering {
    Lowering::Native {
        in_place: None,
        emit: Box::new(|_em: &mut Emitter| Ok(())),
    }
}

/// Normalizes `axis` against `rank` (rank 0 accepts 0 and −1).
fn norm_axis(info: &NodeInfo, axis: i64, rank: usize) -> Result<usize, CodegenError> {
    carve_ir::infer::normalize_axis(axis, rank).map_err(|m| info.err(m))
}

/// `(outer, n, inner)` around `axis` (with `joint`, every axis from `axis` on forms `n`).
fn split_axis(shape: &[usize], axis: usize, joint: bool) -> (usize, usize, usize) {
    if shape.is_empty() {
        return (1, 1, 1);
    }
    let outer = shape[..axis].iter().product();
    if joint {
        (outer, shape[axis..].iter().product(), 1)
    } else {
        (outer, shape[axis], shape[axis + 1..].iter().product())
    }
}

// ---------------------------------------------------------------------------------------------------
// Shape canonicalization
// ---------------------------------------------------------------------------------------------------

/// A run of adjacent axes that are all reduced or all kept: size and element stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    size: usize,
    stride: usize,
    reduced: bool,
}

/// Merges `shape` into groups (size-1 axes dropped).
fn groups(shape: &[usize], mask: &[bool]) -> Vec<Group> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let mut g: Vec<Group> = Vec::new();
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let Some(last) = g.last_mut()
            && last.reduced == mask[i]
            && last.stride == shape[i] * strides[i]
        {
            last.size *= shape[i];
            last.stride = strides[i];
            continue;
        }
        g.push(Group {
            size: shape[i],
            stride: strides[i],
            reduced: mask[i],
        });
    }
    g
}

/// `(size, byte stride)` loops of `groups` for element size `esize`.
fn loops(groups: &[Group], esize: i64) -> Vec<(usize, i64)> {
    groups
        .iter()
        .map(|g| (g.size, g.stride as i64 * esize))
        .collect()
}

/// How a reduction is laid out for the kernels.
#[derive(Debug, Clone)]
struct Layout {
    /// Kept dims that index output rows (case rows: every kept group; case columns: all but the
    /// innermost), as (size, input byte stride) for element size 4 (rescaled for other sizes).
    kept: Vec<Group>,
    /// Reduced groups walked by loops (case rows: all but the innermost).
    red: Vec<Group>,
    /// Case rows: the innermost reduced group's size; `None` for the columns case.
    row: Option<usize>,
    /// Case columns: contiguous output lanes per row.
    lanes: usize,
    /// Elements reduced into each output.
    count: usize,
    /// Output elements.
    n_out: usize,
}

fn layout(shape: &[usize], mask: &[bool]) -> Layout {
    let g = groups(shape, mask);
    let count = shape
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(d, _)| *d)
        .product();
    let n_out = shape
        .iter()
        .zip(mask)
        .filter(|(_, m)| !**m)
        .map(|(d, _)| *d)
        .product();
    let kept: Vec<Group> = g.iter().filter(|g| !g.reduced).copied().collect();
    let mut red: Vec<Group> = g.iter().filter(|g| g.reduced).copied().collect();
    match g.last() {
        Some(last) if last.reduced => {
            red.pop();
            Layout {
                kept,
                red,
                row: Some(last.size),
                lanes: 1,
                count,
                n_out,
            }
        }
        Some(last) => {
            let mut kept = kept;
            kept.pop();
            Layout {
                kept,
                red,
                row: None,
                lanes: last.size,
                count,
                n_out,
            }
        }
        None => Layout {
            kept,
            red,
            row: None,
            lanes: 1,
            count,
            n_out,
        },
    }
}

/// Callback for one column item: `(kb, row, first lane's byte offset within the row, lanes)`.
type ColFn<'a> = dyn FnMut(&mut Kb, Value, Value, usize) -> Result<(), CodegenError> + 'a;

/// Splits `rows × lanes` work into items (row, lane chunk) and tiles of items.
#[derive(Debug, Clone, Copy)]
struct Cols {
    lanes: usize,
    /// Lanes per chunk (a multiple of 16 unless it is all of `lanes`).
    ch: usize,
    n_chunks: usize,
    tiling: Tiling,
}

impl Cols {
    fn new(rows: usize, lanes: usize, work_per_lane: usize) -> Cols {
        let want = (MIN_TILE_WORK / work_per_lane.max(1))
            .max(64)
            .next_multiple_of(16);
        let (ch, n_chunks) = if rows > 1 || want >= lanes {
            (lanes.max(1), 1)
        } else {
            (want, lanes.div_ceil(want))
        };
        Cols {
            lanes,
            ch,
            n_chunks,
            tiling: Tiling::new(rows * n_chunks, work_per_lane * ch, MIN_TILE_WORK),
        }
    }

    /// Emits `body(kb, row, first lane's byte offset within the row (f32 lanes), lanes)` for every item
    /// of this kernel's tiles.
    fn emit(self, kb: &mut Kb, body: &mut ColFn) -> Result<(), CodegenError> {
        self.tiling.for_items(kb, |kb, item| {
            if self.n_chunks == 1 {
                let zero = kb.iconst(0);
                return body(kb, item, zero, self.lanes);
            }
            let nc = kb.iconst(self.n_chunks as i64);
            let row = kb.b.ins().udiv(item, nc);
            let c = kb.b.ins().urem(item, nc);
            let start = kb.b.ins().imul_imm_s(c, (self.ch * 4) as i64);
            let last_lanes = self.lanes - (self.n_chunks - 1) * self.ch;
            let is_last = rows::ieq(kb, c, (self.n_chunks - 1) as i64);
            let full = kb.b.create_block();
            let last = kb.b.create_block();
            let join = kb.b.create_block();
            kb.b.ins().brif(is_last, last, &[], full, &[]);
            kb.b.switch_to_block(full);
            body(kb, row, start, self.ch)?;
            kb.b.ins().jump(join, &[]);
            kb.b.switch_to_block(last);
            body(kb, row, start, last_lanes)?;
            kb.b.ins().jump(join, &[]);
            kb.b.switch_to_block(join);
            Ok(())
        })
    }
}
