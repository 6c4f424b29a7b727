//! Lane-generic f32 arithmetic for the reduction and normalization kernels: constants, selects,
//! combining functions and their horizontal forms, and `exp`/`ln` (the shared [`crate::lower::math`]
//! sequences) for scalar `f32` or `f32x4` values.
//!
//! Every helper takes the value type (`types::F32` or `types::F32X4`) so one piece of kernel code serves
//! the vector body and the scalar tail. Vector types are only ever passed where
//! `target.f32_lanes() == 4`.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{
    InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value, types,
};

use crate::emit::Kb;
use crate::lower::math::Fx;

/// How values are combined along a reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comb {
    /// `a + b`.
    Add,
    /// `a · b`.
    Mul,
    /// NaN-propagating maximum.
    Max,
    /// NaN-propagating minimum.
    Min,
}

impl Comb {
    /// The identity element (the result of an empty reduction).
    pub(crate) fn identity(self) -> f32 {
        match self {
            Comb::Add => 0.0,
            Comb::Mul => 1.0,
            Comb::Max => f32::NEG_INFINITY,
            Comb::Min => f32::INFINITY,
        }
    }
}

/// `comb(a, b)` (same type).
pub(crate) fn comb(kb: &mut Kb, c: Comb, a: Value, b: Value) -> Value {
    match c {
        Comb::Add => kb.b.ins().fadd(a, b),
        Comb::Mul => kb.b.ins().fmul(a, b),
        Comb::Max => kb.b.ins().fmax(a, b),
        Comb::Min => kb.b.ins().fmin(a, b),
    }
}

/// Vector max/min step that ignores a NaN in `x` (one `maxps`/`minps` on x86): `acc < x ? x : acc`
/// (max) or `x < acc ? x : acc` (min); other combinations as [`comb`]. NaNs must be tracked with
/// [`nan_track`] / [`nan_apply`] to keep NaN-propagating semantics.
pub(crate) fn comb_fast(kb: &mut Kb, c: Comb, ty: Type, acc: Value, x: Value) -> Value {
    match c {
        Comb::Max if ty.is_vector() => {
            let lt = kb.b.ins().fcmp(FloatCC::LessThan, acc, x);
            sel(kb, ty, lt, x, acc)
        }
        Comb::Min if ty.is_vector() => {
            let lt = kb.b.ins().fcmp(FloatCC::LessThan, x, acc);
            sel(kb, ty, lt, x, acc)
        }
        _ => comb(kb, c, acc, x),
    }
}

/// True when [`comb_fast`] drops NaNs of type `ty` (they must be tracked separately).
pub(crate) fn needs_nan_track(c: Comb, ty: Type) -> bool {
    matches!(c, Comb::Max | Comb::Min) && ty.is_vector()
}

/// An all-clear NaN mask for f32x4 values.
pub(crate) fn nan_mask_init(kb: &mut Kb) -> Value {
    let z = kb.b.ins().iconst(types::I32, 0);
    kb.b.ins().splat(types::I32X4, z)
}

/// `mask | (x is NaN)` lane-wise (f32x4 `x`, i32x4 mask).
pub(crate) fn nan_track(kb: &mut Kb, mask: Value, x: Value) -> Value {
    let u = kb.b.ins().fcmp(FloatCC::Unordered, x, x);
    kb.b.ins().bor(mask, u)
}

/// `acc` with NaN in the lanes set in `mask` (all-ones bits are a NaN).
pub(crate) fn nan_apply(kb: &mut Kb, mask: Value, acc: Value) -> Value {
    let a = kb.b.ins().bitcast(types::I32X4, MemFlagsData::new(), acc);
    let r = kb.b.ins().bor(a, mask);
    kb.b.ins().bitcast(types::F32X4, MemFlagsData::new(), r)
}

/// Anchors `v` where it is computed by passing it through a stack slot (opaque to the optimizer).
///
/// Use it for a value computed after one loop and used inside a later loop (a row maximum, a mean):
/// Cranelift's egraph elaborates pure instructions at their uses, and a rematerialized constant among
/// their arguments defeats its loop-invariant hoisting, so such a value would otherwise be recomputed
/// in every iteration of the later loop.
pub(crate) fn pin(kb: &mut Kb, v: Value) -> Value {
    let ty = kb.b.func.dfg.value_type(v);
    let ss = kb.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        ty.bytes(),
        4,
    ));
    kb.b.ins().stack_store(types::I64, v, ss, 0);
    kb.b.ins().stack_load(types::I64, ty, ss, 0)
}

/// Combines the four lanes of an f32x4 into a scalar: `(l0 ∘ l1) ∘ (l2 ∘ l3)`.
pub(crate) fn hcomb(kb: &mut Kb, c: Comb, v: Value) -> Value {
    let l: Vec<Value> = (0..4u8).map(|i| kb.b.ins().extractlane(v, i)).collect();
    let a = comb(kb, c, l[0], l[1]);
    let b = comb(kb, c, l[2], l[3]);
    comb(kb, c, a, b)
}

/// Combines values pairwise as a balanced tree (fixed order); `None` for an empty list.
pub(crate) fn tree(kb: &mut Kb, c: Comb, mut v: Vec<Value>) -> Option<Value> {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => comb(kb, c, a, b),
                None => a,
            });
        }
        v = next;
    }
    v.pop()
}

/// `v` (f32 scalar or vector constant) of type `ty`.
pub(crate) fn splat(kb: &mut Kb, ty: Type, v: f32) -> Value {
    let s = kb.b.ins().f32const(v);
    widen(kb, ty, s)
}

/// The scalar `s` broadcast to `ty`.
pub(crate) fn widen(kb: &mut Kb, ty: Type, s: Value) -> Value {
    if ty.is_vector() {
        kb.b.ins().splat(ty, s)
    } else {
        s
    }
}

/// `cond ? a : b` where `cond` is the result of an `fcmp` on values of type `ty`.
pub(crate) fn sel(kb: &mut Kb, ty: Type, cond: Value, a: Value, b: Value) -> Value {
    if ty.is_vector() {
        let m = kb.b.ins().bitcast(ty, MemFlagsData::new(), cond);
        kb.b.ins().bitselect(m, a, b)
    } else {
        kb.b.ins().select(cond, a, b)
    }
}

/// `a · b + c`, fused where the target has a single-instruction FMA.
pub(crate) fn mul_add(kb: &mut Kb, a: Value, b: Value, c: Value) -> Value {
    if kb.target.has_fma() {
        kb.b.ins().fma(a, b, c)
    } else {
        let p = kb.b.ins().fmul(a, b);
        kb.b.ins().fadd(p, c)
    }
}

/// `eˣ` for f32 or f32x4 `x`: the shared Cephes `expf` ([`Fx::exp`], within ~1–2 ulp). NaN gives NaN,
/// very negative inputs 0 (through the subnormals), large inputs `+∞`.
pub(crate) fn exp(kb: &mut Kb, ty: Type, x: Value) -> Value {
    let fx = Fx {
        ty,
        fma: kb.target.has_fma(),
    };
    fx.exp(kb.b, x)
}

/// `ln x` for f32 or f32x4 `x`: the shared Cephes `logf` ([`Fx::log`]). `ln 0 = −∞`, `ln x = NaN` for
/// negative or NaN `x`, `ln ∞ = ∞`; subnormals are scaled first.
pub(crate) fn ln(kb: &mut Kb, ty: Type, x: Value) -> Value {
    let fx = Fx {
        ty,
        fma: kb.target.has_fma(),
    };
    fx.log(kb.b, x)
}
