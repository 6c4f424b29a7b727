//! Lane-generic f32 arithmetic for the reduction and normalization kernels: constants, selects,
//! combining functions and their horizontal forms, and the `exp`/`ln` approximations (Cephes-style
//! polynomials, within ~2 ulp) for scalar `f32` or `f32x4` values.
//!
//! Every helper takes the value type (`types::F32` or `types::F32X4`) so one piece of kernel code serves
//! the vector body and the scalar tail. Vector types are only ever passed where
//! `target.f32_lanes() == 4`.
//!
//! `exp` and `ln` are private to this family for now (see [`exp`]); the lead may swap them for the
//! shared math module later.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{
    InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Type, Value, types,
};

use crate::emit::Kb;

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

/// The integer type with the same lanes as `ty`.
fn int_ty(ty: Type) -> Type {
    if ty.is_vector() {
        types::I32X4
    } else {
        types::I32
    }
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

fn isplat(kb: &mut Kb, ty: Type, v: i32) -> Value {
    let s = kb.b.ins().iconst(types::I32, i64::from(v));
    if ty.is_vector() {
        kb.b.ins().splat(types::I32X4, s)
    } else {
        s
    }
}

fn to_int(kb: &mut Kb, ty: Type, v: Value) -> Value {
    kb.b.ins().bitcast(int_ty(ty), MemFlagsData::new(), v)
}

fn to_float(kb: &mut Kb, ty: Type, v: Value) -> Value {
    kb.b.ins().bitcast(ty, MemFlagsData::new(), v)
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

/// Horner evaluation of `coeffs[0]·x^(k−1) + … + coeffs[k−1]`.
fn horner(kb: &mut Kb, ty: Type, x: Value, coeffs: &[f32]) -> Value {
    let mut p = splat(kb, ty, coeffs[0]);
    for &c in &coeffs[1..] {
        let cv = splat(kb, ty, c);
        p = mul_add(kb, p, x, cv);
    }
    p
}

/// `eˣ` for f32 or f32x4 `x` (Cephes `expf`: range reduction by `n·ln 2` in two parts, degree-6
/// polynomial; within ~1–2 ulp). NaN gives NaN, `−∞` and very negative inputs give 0 (results below
/// the normal range round once to a subnormal), large inputs give `+∞`.
///
/// The family's own vector exp: kept in this one function so it can be swapped for the shared math
/// module's.
pub(crate) fn exp(kb: &mut Kb, ty: Type, x: Value) -> Value {
    // Clamp so that n = round(x·log2 e) ∈ [−150, 129]; the scale 2ⁿ is applied as two factors 2^(n>>1)
    // and 2^(n − (n>>1)), both normal, so underflow and overflow happen in one final rounding.
    // Written as selects that keep a NaN `x` (one minps/maxps each on x86).
    let hi = splat(kb, ty, 89.0);
    let lo = splat(kb, ty, -104.0);
    let over = kb.b.ins().fcmp(FloatCC::LessThan, hi, x);
    let x = sel(kb, ty, over, hi, x);
    let under = kb.b.ins().fcmp(FloatCC::LessThan, x, lo);
    let x = sel(kb, ty, under, lo, x);
    // n = round-to-nearest(x·log2 e) through the 1.5·2²³ trick: t's low mantissa bits hold n.
    let log2e = splat(kb, ty, std::f32::consts::LOG2_E);
    let magic = splat(kb, ty, 12_582_912.0);
    let t = mul_add(kb, x, log2e, magic);
    let nf = kb.b.ins().fsub(t, magic);
    // r = x − n·ln 2 (ln 2 = C1 + C2; C1 = 0.693359375 = 355/512 is exact in few bits).
    let c1 = splat(kb, ty, -0.693_359_4);
    let c2 = splat(kb, ty, 2.121_944_4e-4);
    let r = mul_add(kb, nf, c1, x);
    let r = mul_add(kb, nf, c2, r);
    let z = kb.b.ins().fmul(r, r);
    let p = horner(
        kb,
        ty,
        r,
        &[
            1.987_569_1e-4,
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            5e-1,
        ],
    );
    let y = mul_add(kb, p, z, r);
    let one = splat(kb, ty, 1.0);
    let y = kb.b.ins().fadd(y, one);
    // 2ⁿ as two normal factors.
    let ti = to_int(kb, ty, t);
    let mi = isplat(kb, ty, 0x4B40_0000); // bits of 1.5·2²³
    let n = kb.b.ins().isub(ti, mi);
    let one_i = kb.b.ins().iconst(types::I32, 1);
    let n1 = kb.b.ins().sshr(n, one_i);
    let n2 = kb.b.ins().isub(n, n1);
    let bias = isplat(kb, ty, 127);
    let sh = kb.b.ins().iconst(types::I32, 23);
    let e1 = kb.b.ins().iadd(n1, bias);
    let e1 = kb.b.ins().ishl(e1, sh);
    let e2 = kb.b.ins().iadd(n2, bias);
    let e2 = kb.b.ins().ishl(e2, sh);
    let f1 = to_float(kb, ty, e1);
    let f2 = to_float(kb, ty, e2);
    let y = kb.b.ins().fmul(y, f1);
    kb.b.ins().fmul(y, f2)
}

/// `ln x` for f32 or f32x4 `x` (Cephes `logf`: mantissa in [√½, √2), degree-9 polynomial; within
/// ~1–2 ulp). `ln 0 = −∞`, `ln x = NaN` for negative or NaN `x`, `ln ∞ = ∞`; subnormals are exact.
pub(crate) fn ln(kb: &mut Kb, ty: Type, x0: Value) -> Value {
    // Scale subnormals into the normal range.
    let min_norm = splat(kb, ty, f32::MIN_POSITIVE);
    let tiny = kb.b.ins().fcmp(FloatCC::LessThan, x0, min_norm);
    let big = splat(kb, ty, 8_388_608.0); // 2²³
    let one = splat(kb, ty, 1.0);
    let s = sel(kb, ty, tiny, big, one);
    let x = kb.b.ins().fmul(x0, s);
    let e_adj_v = splat(kb, ty, 23.0);
    let zero = splat(kb, ty, 0.0);
    let e_adj = sel(kb, ty, tiny, e_adj_v, zero);
    // x = m·2^e with m ∈ [0.5, 1).
    let xi = to_int(kb, ty, x);
    let sh = kb.b.ins().iconst(types::I32, 23);
    let ebits = kb.b.ins().ushr(xi, sh);
    let mask_ff = isplat(kb, ty, 0xff);
    let ebits = kb.b.ins().band(ebits, mask_ff);
    let b126 = isplat(kb, ty, 126);
    let ei = kb.b.ins().isub(ebits, b126);
    let mant_mask = isplat(kb, ty, 0x807f_ffff_u32 as i32);
    let half_bits = isplat(kb, ty, 0x3f00_0000);
    let mi = kb.b.ins().band(xi, mant_mask);
    let mi = kb.b.ins().bor(mi, half_bits);
    let m = to_float(kb, ty, mi);
    let ef = kb.b.ins().fcvt_from_sint(ty, ei);
    let ef = kb.b.ins().fsub(ef, e_adj);
    // m < √½: e −= 1, x = 2m − 1; else x = m − 1.
    let sqrthf = splat(kb, ty, std::f32::consts::FRAC_1_SQRT_2);
    let lt = kb.b.ins().fcmp(FloatCC::LessThan, m, sqrthf);
    let add_m = sel(kb, ty, lt, m, zero);
    let dec = sel(kb, ty, lt, one, zero);
    let ef = kb.b.ins().fsub(ef, dec);
    let xm = kb.b.ins().fsub(m, one);
    let xm = kb.b.ins().fadd(xm, add_m);
    let z = kb.b.ins().fmul(xm, xm);
    let p = horner(
        kb,
        ty,
        xm,
        &[
            7.037_683_6e-2,
            -1.151_461e-1,
            1.167_699_9e-1,
            -1.242_014_1e-1,
            1.424_932_3e-1,
            -1.666_805_8e-1,
            2.000_071_4e-1,
            -2.499_999_4e-1,
            3.333_333e-1,
        ],
    );
    let p = kb.b.ins().fmul(p, xm);
    let y = kb.b.ins().fmul(p, z);
    let c2 = splat(kb, ty, -2.121_944_4e-4);
    let y = mul_add(kb, ef, c2, y);
    let mhalf = splat(kb, ty, -0.5);
    let y = mul_add(kb, z, mhalf, y);
    let r = kb.b.ins().fadd(xm, y);
    let c1 = splat(kb, ty, 0.693_359_4);
    let r = mul_add(kb, ef, c1, r);
    // Special values.
    let is_zero = kb.b.ins().fcmp(FloatCC::Equal, x0, zero);
    let ninf = splat(kb, ty, f32::NEG_INFINITY);
    let r = sel(kb, ty, is_zero, ninf, r);
    let pinf = splat(kb, ty, f32::INFINITY);
    let is_inf = kb.b.ins().fcmp(FloatCC::Equal, x0, pinf);
    let r = sel(kb, ty, is_inf, pinf, r);
    let nonneg = kb.b.ins().fcmp(FloatCC::GreaterThanOrEqual, x0, zero);
    let nan = splat(kb, ty, f32::NAN);
    sel(kb, ty, nonneg, r, nan)
}
