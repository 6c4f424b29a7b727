//! QDQ → integer ops: a `matmul` of two dequantized 8-bit operands — an activation
//! `dequantize_linear(qa, sa, za)` with one scale and zero point, and a constant weight
//! `dequantize_linear(qb, sb, zb)` [K, N] with one scale per tensor or per column (axis 1) — becomes
//! the integer product with one rescale:
//!
//! `(qa − za)·sa @ (qb − zb)·sb  =  dequantize_linear(matmul_integer(qa, qb, za, zb), sa·sb)`
//!
//! (the i32 product rescaled per tensor or per column, along its last axis).
//!
//! This is what `carve compress` and ONNX Runtime's static quantizer write for MatMul layers. The two
//! sides are equal in exact arithmetic; the integer form sums exactly in i32 (K ≤ [`MAX_K`], so
//! `255·128·K` cannot overflow) and rounds once in the rescale, where the float form rounds every
//! dequantized operand and every partial sum — it is the more accurate of the two. Which one runs is the
//! cost model's choice: the integer product is cheaper only on targets with 8-bit dot-product kernels
//! ([`crate::cost::TargetParams::int8_dot`]).

use carve_ir::ops::linalg::LinalgOp;
use carve_ir::ops::quant::{DequantizeLinear, MatMulInteger, QuantOp};
use carve_ir::{Constant, DType, Op};
use egg::Id;

use super::util::{absent, add_const, add_op, dims, f32s, find, is_absent, konst, op, tensor};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// Largest K of a rewritten product: `255 · 128 · K < 2³¹`.
pub const MAX_K: u64 = 65_000;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![Rule {
        name: "qdq-matmul-to-integer",
        search: qdq_matmul,
        apply: apply_qdq_matmul,
    }]
}

/// The operands of a `dequantize_linear` e-node of class `id`: `(q, scale, zero point or None, axis)`.
fn dq_parts(eg: &EG, id: Id) -> Option<(Id, Id, Option<Id>, i64)> {
    find(eg, id, |n, o| {
        let Op::Quant(QuantOp::DequantizeLinear(d)) = o else {
            return None;
        };
        if d.block_size != 0 || d.output_dtype.is_some_and(|t| t != DType::F32) {
            return None;
        }
        let zp = n.children.get(2).copied().filter(|&z| !is_absent(eg, z));
        Some((*n.children.first()?, *n.children.get(1)?, zp, d.axis))
    })
}

/// Element count of constant class `id` when it is a constant of `dtype`.
fn const_len(eg: &EG, id: Id, dtype: DType) -> Option<u64> {
    let c = konst(eg, id)?;
    (c.ty.dtype == dtype).then(|| dims(c).map(|d| d.iter().product()))?
}

fn is_8bit(t: DType) -> bool {
    matches!(t, DType::U8 | DType::I8)
}

fn qdq_matmul(eg: &EG, _id: Id, n: &ENode) -> Option<Match> {
    let Op::Linalg(LinalgOp::MatMul(_)) = op(eg, n)? else {
        return None;
    };
    let [a, b] = n.children[..] else {
        return None;
    };
    (tensor(eg, a)?.dtype == DType::F32 && tensor(eg, b)?.dtype == DType::F32).then_some(())?;
    // The activation: one scale, one zero point.
    let (qa, sa, za, _) = dq_parts(eg, a)?;
    let ta = tensor(eg, qa)?.dtype;
    is_8bit(ta).then_some(())?;
    (const_len(eg, sa, DType::F32)? == 1).then_some(())?;
    if let Some(z) = za {
        (const_len(eg, z, ta)? == 1).then_some(())?;
    }
    // The weight: a constant [K, N], scales per tensor or per column.
    let (qb, sb, zb, axis) = dq_parts(eg, b)?;
    let wc = konst(eg, qb)?;
    let tb = wc.ty.dtype;
    is_8bit(tb).then_some(())?;
    let wd = dims(wc)?;
    let [k, cols] = wd[..] else {
        return None;
    };
    (k <= MAX_K).then_some(())?;
    let ns = const_len(eg, sb, DType::F32)?;
    (ns == 1 || (ns == cols && (axis == 1 || axis == -1))).then_some(())?;
    if let Some(z) = zb {
        (const_len(eg, z, tb)? == ns).then_some(())?;
    }
    let mut ids = vec![qa, qb, sa, sb];
    let mut nums = Vec::new();
    for z in [za, zb] {
        nums.push(if z.is_some() { 1.0 } else { 0.0 });
        ids.push(z.unwrap_or(qa));
    }
    Some(Match {
        ids,
        nums,
        ..Match::default()
    })
}

fn apply_qdq_matmul(eg: &mut EG, m: &Match) -> Option<Id> {
    let [qa, qb, sa, sb, za, zb] = m.ids[..] else {
        return None;
    };
    let sa = f64::from(*f32s(konst(eg, sa)?)?.first()?);
    let sb = f32s(konst(eg, sb)?)?;
    let scale: Vec<f32> = sb.iter().map(|&s| (sa * f64::from(s)) as f32).collect();
    let sdims = if scale.len() == 1 {
        Vec::new()
    } else {
        vec![scale.len() as u64]
    };
    let za = if m.nums.first() == Some(&1.0) {
        za
    } else {
        absent(eg)
    };
    let zb = if m.nums.get(1) == Some(&1.0) {
        zb
    } else {
        absent(eg)
    };
    let sc = add_const(eg, Constant::from_f32s(&sdims, &scale));
    let mi = add_op(eg, MatMulInteger {}, vec![qa, qb, za, zb]);
    // The rescale is `dequantize_linear` of the i32 product (zero point 0) along its last axis.
    Some(add_op(
        eg,
        DequantizeLinear {
            axis: -1,
            ..DequantizeLinear::default()
        },
        vec![mi, sc],
    ))
}
