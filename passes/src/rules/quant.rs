//! QDQ → integer ops: a `matmul` (or a `gemm` with `alpha = 1`, untransposed A and `beta = 1`) of two
//! dequantized 8-bit operands — an activation `dequantize_linear(qa, sa, za)` with one scale and zero
//! point, and a constant weight `dequantize_linear(qb, sb, zb)` [K, N] (a gemm's `trans_b` weight [N, K]
//! is transposed at rewrite time) with one scale per tensor or per output column — becomes the integer
//! product with one rescale (plus the gemm's C as an `add`):
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
//!
//! The fusion family ([`super::fusion`]) then makes the rescale the first epilogue step of an integer
//! `fused_matmul` and appends a following bias add, activation and residual add to it, so a quantized
//! linear layer with bias and GELU is one kernel that stores f32 once.

use carve_ir::ops::elementwise::ElementwiseOp as E;
use carve_ir::ops::linalg::LinalgOp;
use carve_ir::ops::quant::{DequantizeLinear, MatMulInteger, QuantOp};
use carve_ir::{Buffer, Constant, DType, Op, TensorType};
use egg::Id;

use super::util::{absent, add_const, add_op, dims, f32s, find, is_absent, konst, op, tensor};
use super::{Match, Rule};
use crate::egraph::analysis::EG;
use crate::egraph::lang::ENode;

/// Largest K of a rewritten product: `255 · 128 · K < 2³¹`.
pub const MAX_K: u64 = 65_000;

/// The rules of this family.
pub fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "qdq-matmul-to-integer",
            search: qdq_matmul,
            apply: apply_qdq,
        },
        Rule {
            name: "qdq-gemm-to-integer",
            search: qdq_gemm,
            apply: apply_qdq,
        },
    ]
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
pub(super) fn const_len(eg: &EG, id: Id, dtype: DType) -> Option<u64> {
    let c = konst(eg, id)?;
    (c.ty.dtype == dtype).then(|| dims(c).map(|d| d.iter().product()))?
}

pub(super) fn is_8bit(t: DType) -> bool {
    matches!(t, DType::U8 | DType::I8)
}

/// What both rules match, in [`Match`] form: ids `[qa, qb, sa, sb, za, zb, c]` (unused slots repeat
/// `qa`), nums `[has za, has zb, has c, trans_b]`.
struct Parts {
    qa: Id,
    qb: Id,
    sa: Id,
    sb: Id,
    za: Option<Id>,
    zb: Option<Id>,
    c: Option<Id>,
    trans_b: bool,
}

impl Parts {
    fn into_match(self) -> Match {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        Match {
            ids: vec![
                self.qa,
                self.qb,
                self.sa,
                self.sb,
                self.za.unwrap_or(self.qa),
                self.zb.unwrap_or(self.qa),
                self.c.unwrap_or(self.qa),
            ],
            nums: vec![
                flag(self.za.is_some()),
                flag(self.zb.is_some()),
                flag(self.c.is_some()),
                flag(self.trans_b),
            ],
            ..Match::default()
        }
    }

    fn from_match(m: &Match) -> Option<Parts> {
        let [qa, qb, sa, sb, za, zb, c] = m.ids[..] else {
            return None;
        };
        let [hza, hzb, hc, tb] = m.nums[..] else {
            return None;
        };
        Some(Parts {
            qa,
            qb,
            sa,
            sb,
            za: (hza == 1.0).then_some(za),
            zb: (hzb == 1.0).then_some(zb),
            c: (hc == 1.0).then_some(c),
            trans_b: tb == 1.0,
        })
    }
}

/// The dequantized 8-bit operands of the product `a @ b` (`b` transposed when `trans_b`), if `a` is
/// an activation with one scale and zero point and `b` a constant 8-bit weight with per-tensor or
/// per-output-column scales.
fn product_parts(eg: &EG, a: Id, b: Id, trans_b: bool) -> Option<Parts> {
    (tensor(eg, a)?.dtype == DType::F32 && tensor(eg, b)?.dtype == DType::F32).then_some(())?;
    // The activation: one scale, one zero point.
    let (qa, sa, za, _) = dq_parts(eg, a)?;
    let ta = tensor(eg, qa)?.dtype;
    is_8bit(ta).then_some(())?;
    (const_len(eg, sa, DType::F32)? == 1).then_some(())?;
    if let Some(z) = za {
        (const_len(eg, z, ta)? == 1).then_some(())?;
    }
    // The weight: a constant [K, N] ([N, K] when transposed), scales per tensor or per column.
    let (qb, sb, zb, axis) = dq_parts(eg, b)?;
    let wc = konst(eg, qb)?;
    let tb = wc.ty.dtype;
    is_8bit(tb).then_some(())?;
    let wd = dims(wc)?;
    let [r, c] = wd[..] else {
        return None;
    };
    let (k, cols, col_axis) = if trans_b { (c, r, 0) } else { (r, c, 1) };
    (k <= MAX_K).then_some(())?;
    let ns = const_len(eg, sb, DType::F32)?;
    (ns == 1 || (ns == cols && (axis == col_axis || axis == col_axis - 2))).then_some(())?;
    if let Some(z) = zb {
        (const_len(eg, z, tb)? == ns).then_some(())?;
    }
    Some(Parts {
        qa,
        qb,
        sa,
        sb,
        za,
        zb,
        c: None,
        trans_b,
    })
}

fn qdq_matmul(eg: &EG, _id: Id, n: &ENode) -> Option<Match> {
    let Op::Linalg(LinalgOp::MatMul(_)) = op(eg, n)? else {
        return None;
    };
    let [a, b] = n.children[..] else {
        return None;
    };
    Some(product_parts(eg, a, b, false)?.into_match())
}

fn qdq_gemm(eg: &EG, _id: Id, n: &ENode) -> Option<Match> {
    let Op::Linalg(LinalgOp::Gemm(g)) = op(eg, n)? else {
        return None;
    };
    if g.alpha != 1.0 || g.trans_a {
        return None;
    }
    let (a, b) = (*n.children.first()?, *n.children.get(1)?);
    let c = n.children.get(2).copied().filter(|&c| !is_absent(eg, c));
    if c.is_some() && (g.beta != 1.0 || tensor(eg, c?)?.dtype != DType::F32) {
        return None;
    }
    let mut parts = product_parts(eg, a, b, g.trans_b)?;
    parts.c = c;
    Some(parts.into_match())
}

/// The 8-bit constant `c` [R, C] transposed to [C, R].
fn transposed_8bit(c: &Constant) -> Option<Constant> {
    let d = dims(c)?;
    let [r, cols] = d[..] else {
        return None;
    };
    let carve_ir::ConstData::Bytes(b) = &c.data else {
        return None;
    };
    let src = b.as_bytes();
    let (r, cols) = (usize::try_from(r).ok()?, usize::try_from(cols).ok()?);
    if src.len() != r * cols {
        return None;
    }
    let mut out = vec![0u8; src.len()];
    for i in 0..r {
        for j in 0..cols {
            out[j * r + i] = src[i * cols + j];
        }
    }
    let ty = TensorType::known(c.ty.dtype, &[cols as u64, r as u64]);
    Constant::dense(ty, Buffer::from_vec(out)).ok()
}

fn apply_qdq(eg: &mut EG, m: &Match) -> Option<Id> {
    let p = Parts::from_match(m)?;
    let sa = f64::from(*f32s(konst(eg, p.sa)?)?.first()?);
    let sb = f32s(konst(eg, p.sb)?)?;
    let scale: Vec<f32> = sb.iter().map(|&s| (sa * f64::from(s)) as f32).collect();
    let sdims = if scale.len() == 1 {
        Vec::new()
    } else {
        vec![scale.len() as u64]
    };
    let qb = if p.trans_b {
        let t = transposed_8bit(konst(eg, p.qb)?)?;
        add_const(eg, t)
    } else {
        p.qb
    };
    let za = match p.za {
        Some(z) => z,
        None => absent(eg),
    };
    let zb = match p.zb {
        Some(z) => z,
        None => absent(eg),
    };
    let sc = add_const(eg, Constant::from_f32s(&sdims, &scale));
    let mi = add_op(eg, MatMulInteger {}, vec![p.qa, qb, za, zb]);
    // The rescale is `dequantize_linear` of the i32 product (zero point 0) along its last axis.
    let y = add_op(
        eg,
        DequantizeLinear {
            axis: -1,
            ..DequantizeLinear::default()
        },
        vec![mi, sc],
    );
    Some(match p.c {
        Some(c) => add_op(eg, E::Add(Default::default()), vec![y, c]),
        None => y,
    })
}
