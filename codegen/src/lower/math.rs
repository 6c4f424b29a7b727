//! Vectorizable f32 math for generated code: `exp`, `log`, `log1p`, `tanh`, `sigmoid`, `erf`, `pow` and
//! the select/clamp helpers they share, emitted either on scalars (`f32`) or on 4-lane vectors (`f32x4`)
//! with the same instruction sequence.
//!
//! The approximations are Cephes-style (range reduction plus a minimax polynomial): `exp` and `log` are
//! Cephes' `expf`/`logf` (about 1 ulp), `tanh` is Cephes' `tanhf` (polynomial below 0.625, else
//! `1 − 2/(e^{2|x|} + 1)`), `erf` is an odd polynomial near 0 and `1 − e^{−Q(|x|)}` above 0.9277
//! (±1 from 4). Special values follow IEEE/libm: `exp` overflows to +∞ and underflows
//! gradually through the subnormals to 0, `log(0) = −∞`, `log(x<0) = NaN`, NaN propagates everywhere,
//! `tanh`/`sigmoid`/`erf` saturate. The accuracy tests in `codegen/tests/elementwise.rs` measure the
//! ulp error of each against f64 references.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use cranelift_frontend::FunctionBuilder;

/// `fcmp` that every backend lowers: aarch64 has no vector form of the "unordered or <" conditions
/// (Cranelift panics there), so on vectors they are emitted as the negation of the ordered opposite
/// (`uge(x, y) == !(x < y)`), which is exact including NaN lanes. Scalars use the condition as is.
pub fn fcmp_portable(b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Value {
    if !b.func.dfg.value_type(x).is_vector() {
        return b.ins().fcmp(cc, x, y);
    }
    let negated = match cc {
        FloatCC::UnorderedOrGreaterThan => Some(FloatCC::LessThanOrEqual),
        FloatCC::UnorderedOrGreaterThanOrEqual => Some(FloatCC::LessThan),
        FloatCC::UnorderedOrLessThan => Some(FloatCC::GreaterThanOrEqual),
        FloatCC::UnorderedOrLessThanOrEqual => Some(FloatCC::GreaterThan),
        _ => None,
    };
    match (negated, cc) {
        (Some(o), _) => {
            let m = b.ins().fcmp(o, x, y);
            b.ins().bnot(m)
        }
        (None, FloatCC::OrderedNotEqual) => {
            let lt = b.ins().fcmp(FloatCC::LessThan, x, y);
            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, y);
            b.ins().bor(lt, gt)
        }
        (None, FloatCC::UnorderedOrEqual) => {
            let lt = b.ins().fcmp(FloatCC::LessThan, x, y);
            let gt = b.ins().fcmp(FloatCC::GreaterThan, x, y);
            let ne = b.ins().bor(lt, gt);
            b.ins().bnot(ne)
        }
        _ => b.ins().fcmp(cc, x, y),
    }
}

/// The float shape code is emitted for: scalar `f32` or `f32x4`, and whether `fma` is one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fx {
    /// `types::F32` or `types::F32X4`.
    pub ty: types::Type,
    /// Fused multiply-add is available as an instruction.
    pub fma: bool,
}

/// A comparison result in the form [`Fx::sel`] takes (an `i8` for scalars, an `i32x4` lane mask for
/// vectors).
#[derive(Debug, Clone, Copy)]
pub struct Mask(pub Value);

impl Fx {
    /// True for the vector shape.
    pub fn is_vec(self) -> bool {
        self.ty.is_vector()
    }

    /// The integer type with the same lanes (`i32` or `i32x4`).
    pub fn ity(self) -> types::Type {
        if self.is_vec() {
            types::I32X4
        } else {
            types::I32
        }
    }

    /// A constant in every lane.
    pub fn c(self, b: &mut FunctionBuilder, v: f32) -> Value {
        let s = b.ins().f32const(v);
        if self.is_vec() {
            b.ins().splat(self.ty, s)
        } else {
            s
        }
    }

    /// An integer constant in every lane.
    pub fn ic(self, b: &mut FunctionBuilder, v: i32) -> Value {
        let s = b.ins().iconst(types::I32, i64::from(v));
        if self.is_vec() {
            b.ins().splat(types::I32X4, s)
        } else {
            s
        }
    }

    /// Reinterprets float lanes as integer lanes.
    pub fn to_bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.ity(), MemFlagsData::new(), x)
    }

    /// Reinterprets integer lanes as float lanes.
    pub fn from_bits(self, b: &mut FunctionBuilder, x: Value) -> Value {
        b.ins().bitcast(self.ty, MemFlagsData::new(), x)
    }

    /// `x <cc> y` as a mask.
    pub fn cmp(self, b: &mut FunctionBuilder, cc: FloatCC, x: Value, y: Value) -> Mask {
        Mask(fcmp_portable(b, cc, x, y))
    }

    /// `x <cc> k` as a mask.
    pub fn cmpk(self, b: &mut FunctionBuilder, cc: FloatCC, x: Value, k: f32) -> Mask {
        let y = self.c(b, k);
        self.cmp(b, cc, x, y)
    }

    /// Both masks.
    pub fn and(self, b: &mut FunctionBuilder, p: Mask, q: Mask) -> Mask {
        Mask(b.ins().band(p.0, q.0))
    }

    /// Either mask.
    pub fn or(self, b: &mut FunctionBuilder, p: Mask, q: Mask) -> Mask {
        Mask(b.ins().bor(p.0, q.0))
    }

    /// `m ? x : y` per lane.
    pub fn sel(self, b: &mut FunctionBuilder, m: Mask, x: Value, y: Value) -> Value {
        if self.is_vec() {
            let mf = b.ins().bitcast(self.ty, MemFlagsData::new(), m.0);
            b.ins().bitselect(mf, x, y)
        } else {
            b.ins().select(m.0, x, y)
        }
    }

    /// `m ? k : x` per lane.
    pub fn selk(self, b: &mut FunctionBuilder, m: Mask, k: f32, x: Value) -> Value {
        let kv = self.c(b, k);
        self.sel(b, m, kv, x)
    }

    /// `a·x + c` (one fused instruction where available).
    pub fn madd(self, b: &mut FunctionBuilder, a: Value, x: Value, c: Value) -> Value {
        if self.fma {
            b.ins().fma(a, x, c)
        } else {
            let p = b.ins().fmul(a, x);
            b.ins().fadd(p, c)
        }
    }

    /// `a·x + k` with a constant `k`.
    pub fn maddk(self, b: &mut FunctionBuilder, a: Value, x: Value, k: f32) -> Value {
        let c = self.c(b, k);
        self.madd(b, a, x, c)
    }

    /// `x·k`.
    pub fn mulk(self, b: &mut FunctionBuilder, x: Value, k: f32) -> Value {
        let c = self.c(b, k);
        b.ins().fmul(x, c)
    }

    /// `x + k`.
    pub fn addk(self, b: &mut FunctionBuilder, x: Value, k: f32) -> Value {
        let c = self.c(b, k);
        b.ins().fadd(x, c)
    }

    /// Horner evaluation of `coeffs[0]·x^(n−1) + … + coeffs[n−1]` (highest degree first).
    pub fn poly(self, b: &mut FunctionBuilder, x: Value, coeffs: &[f32]) -> Value {
        let mut p = self.c(b, coeffs[0]);
        for &k in &coeffs[1..] {
            p = self.maddk(b, p, x, k);
        }
        p
    }

    /// `2^n` for integer lanes `n` in the normal exponent range [−126, 127].
    fn pow2i(self, b: &mut FunctionBuilder, n: Value) -> Value {
        let k = self.ic(b, 127);
        let e = b.ins().iadd(n, k);
        let bits = b.ins().ishl_imm_s(e, 23);
        self.from_bits(b, bits)
    }

    /// `eˣ`: Cephes `expf` (≈1 ulp); overflow gives +∞, underflow goes through the subnormals to 0.
    pub fn exp(self, b: &mut FunctionBuilder, x: Value) -> Value {
        // Clamp so that n below stays in [−150, 128]; NaN passes through.
        let hi = self.c(b, 89.0);
        let lo = self.c(b, -104.0);
        let x = self.clamp_hi(b, x, hi);
        let x = self.clamp_lo(b, x, lo);
        let t = self.mulk(b, x, std::f32::consts::LOG2_E);
        // n = round(t) (ties to even) by the 1.5·2^23 trick; its bits minus the magic's are n as an
        // integer (|t| < 2^22 here).
        let magic = self.c(b, 12_582_912.0);
        let tm = b.ins().fadd(t, magic);
        let n = b.ins().fsub(tm, magic);
        // r = x − n·ln2 in two steps (0.693359375 has few bits, so n·C1 is exact).
        let c1 = self.c(b, -0.693_359_4);
        let r = self.madd(b, n, c1, x);
        let c2 = self.c(b, 2.121_944_4e-4);
        let r = self.madd(b, n, c2, r);
        let p = self.poly(
            b,
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
        let r2 = b.ins().fmul(r, r);
        let y = self.madd(b, p, r2, r);
        let y = self.addk(b, y, 1.0);
        // Scale by 2^n as 2^(n>>1) · 2^(n − (n>>1)): both factors are normal, only the last product
        // rounds (overflow to ∞ or gradual underflow).
        let tmb = self.to_bits(b, tm);
        let mb = self.ic(b, 0x4b40_0000);
        let ni = b.ins().isub(tmb, mb);
        let n1 = b.ins().sshr_imm_s(ni, 1);
        let n2 = b.ins().isub(ni, n1);
        let s1 = self.pow2i(b, n1);
        let s2 = self.pow2i(b, n2);
        let y = b.ins().fmul(y, s1);
        b.ins().fmul(y, s2)
    }

    /// `ln x`: Cephes `logf` (≈1 ulp), subnormal inputs scaled first; `ln 0 = −∞`, `ln(x<0) = NaN`.
    pub fn log(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let tiny = self.cmpk(b, FloatCC::LessThan, x, f32::MIN_POSITIVE);
        let xs = self.mulk(b, x, 8_388_608.0); // 2^23
        let xs = self.sel(b, tiny, xs, x);
        let adj = self.c(b, -23.0);
        let zero = self.c(b, 0.0);
        let eadj = self.sel(b, tiny, adj, zero);
        let bits = self.to_bits(b, xs);
        let e = b.ins().ushr_imm_s(bits, 23);
        let k126 = self.ic(b, 126);
        let e = b.ins().isub(e, k126);
        let mbits = self.ic(b, 0x007f_ffff);
        let m = b.ins().band(bits, mbits);
        let half = self.ic(b, 0x3f00_0000);
        let m = b.ins().bor(m, half);
        let m = self.from_bits(b, m); // in [0.5, 1)
        let ef = b.ins().fcvt_from_sint(self.ty, e);
        let ef = b.ins().fadd(ef, eadj);
        // m < √½: use 2m − 1 and e − 1, else m − 1.
        let lt = self.cmpk(b, FloatCC::LessThan, m, std::f32::consts::FRAC_1_SQRT_2);
        let one = self.c(b, 1.0);
        let dm = self.sel(b, lt, one, zero);
        let ef = b.ins().fsub(ef, dm);
        let madd = self.sel(b, lt, m, zero);
        let m1 = b.ins().fsub(m, one);
        let m = b.ins().fadd(m1, madd);
        let z = b.ins().fmul(m, m);
        let p = self.poly(
            b,
            m,
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
        let pm = b.ins().fmul(p, m);
        let y = b.ins().fmul(pm, z);
        let y = self.maddk_v(b, ef, -2.121_944_4e-4, y);
        let y = self.maddk_v(b, z, -0.5, y);
        let r = b.ins().fadd(m, y);
        let r = self.maddk_v(b, ef, 0.693_359_4, r);
        // Special values.
        let inf = self.cmpk(b, FloatCC::Equal, x, f32::INFINITY);
        let r = self.selk(b, inf, f32::INFINITY, r);
        let z0 = self.cmpk(b, FloatCC::Equal, x, 0.0);
        let r = self.selk(b, z0, f32::NEG_INFINITY, r);
        let bad = self.cmpk(b, FloatCC::UnorderedOrLessThan, x, 0.0);
        self.selk(b, bad, f32::NAN, r)
    }

    /// `a·k + c` with a constant `k`.
    fn maddk_v(self, b: &mut FunctionBuilder, a: Value, k: f32, c: Value) -> Value {
        let kv = self.c(b, k);
        self.madd(b, a, kv, c)
    }

    /// `ln(1 + y)` for `y ≥ 0` (accurate for small `y`: `ln(u)·y/(u − 1)` with `u = 1 + y`).
    pub fn log1p_pos(self, b: &mut FunctionBuilder, y: Value) -> Value {
        let u = self.addk(b, y, 1.0);
        let l = self.log(b, u);
        let um1 = self.addk(b, u, -1.0);
        let ly = b.ins().fmul(l, y);
        let q = b.ins().fdiv(ly, um1);
        let exact = self.cmpk(b, FloatCC::Equal, u, 1.0);
        let q = self.sel(b, exact, y, q);
        // u = ∞ (y = ∞): ln(u)·y/(u−1) is NaN; the answer is ∞.
        let big = self.cmpk(b, FloatCC::Equal, u, f32::INFINITY);
        self.sel(b, big, l, q)
    }

    /// `tanh x`: Cephes `tanhf`.
    pub fn tanh(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let a = b.ins().fabs(x);
        // Small: x + x·z·P(z).
        let z = b.ins().fmul(x, x);
        let p = self.poly(
            b,
            z,
            &[
                -5.704_988_7e-3,
                2.063_909e-2,
                -5.373_971_6e-2,
                1.333_144_2e-1,
                -3.333_328e-1,
            ],
        );
        let pz = b.ins().fmul(p, z);
        let small = self.madd(b, pz, x, x);
        // Large: 1 − 2/(e^{2|x|} + 1), with x's sign.
        let a2 = b.ins().fadd(a, a);
        let e = self.exp(b, a2);
        let e1 = self.addk(b, e, 1.0);
        let two = self.c(b, 2.0);
        let q = b.ins().fdiv(two, e1);
        let one = self.c(b, 1.0);
        let l = b.ins().fsub(one, q);
        let l = self.with_sign_of(b, l, x);
        let is_small = self.cmpk(b, FloatCC::LessThan, a, 0.625);
        self.sel(b, is_small, small, l)
    }

    /// `1/(1 + e^{−x})`.
    pub fn sigmoid(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let nx = b.ins().fneg(x);
        let e = self.exp(b, nx);
        let d = self.addk(b, e, 1.0);
        let one = self.c(b, 1.0);
        b.ins().fdiv(one, d)
    }

    /// `tanh x` as an odd/even rational approximation on `[-9, 9]` (Eigen's float tanh coefficients):
    /// one division and no `exp`, a few ulp; what recurrent cells use (ONNX Runtime's LSTM does too).
    pub fn tanh_rational(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let hi = self.c(b, 9.0);
        let lo = self.c(b, -9.0);
        let x = b.ins().fmin(x, hi);
        let x = b.ins().fmax(x, lo);
        let x2 = b.ins().fmul(x, x);
        const A: [f32; 7] = [
            4.893_524_6e-3,
            6.372_619_3e-4,
            1.485_722_4e-5,
            5.122_297e-8,
            -8.604_672e-11,
            2.000_188e-13,
            -2.760_768_5e-16,
        ];
        const B: [f32; 4] = [4.893_525e-3, 2.268_434_6e-3, 1.185_347e-4, 1.198_258_4e-6];
        let mut p = self.c(b, A[6]);
        for &k in A[..6].iter().rev() {
            p = self.maddk(b, p, x2, k);
        }
        let p = b.ins().fmul(p, x);
        let mut q = self.c(b, B[3]);
        for &k in B[..3].iter().rev() {
            q = self.maddk(b, q, x2, k);
        }
        b.ins().fdiv(p, q)
    }

    /// `1 / (1 + e^-x) = 0.5 + 0.5·tanh(x / 2)` through [`Fx::tanh_rational`].
    pub fn sigmoid_rational(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let hx = self.mulk(b, x, 0.5);
        let t = self.tanh_rational(b, hx);
        let half = self.c(b, 0.5);
        self.madd(b, t, half, half)
    }

    /// `0.5·x·(1 + erf(x/√2))` (GELU); the one sequence every GELU kernel and epilogue uses.
    pub fn gelu_erf(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let t = self.mulk(b, x, std::f32::consts::FRAC_1_SQRT_2);
        let e = self.erf(b, t);
        let e1 = self.addk(b, e, 1.0);
        let h = self.mulk(b, x, 0.5);
        b.ins().fmul(h, e1)
    }

    /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (GELU, tanh approximation), as `x·(0.044715·x² + 1)`
    /// inside; the one sequence every GELU kernel and epilogue uses.
    pub fn gelu_tanh(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let x2 = b.ins().fmul(x, x);
        let k = self.c(b, 0.044_715);
        let p = self.maddk(b, x2, k, 1.0);
        let p = b.ins().fmul(p, x);
        let p = self.mulk(b, p, (2.0 / std::f32::consts::PI).sqrt());
        let t = self.tanh(b, p);
        let t1 = self.addk(b, t, 1.0);
        let h = self.mulk(b, x, 0.5);
        b.ins().fmul(h, t1)
    }

    /// The error function (≈1 ulp; the scheme and minimax coefficients of N. Juffa's well-known
    /// single-precision `erff`): `x + x·P(x²)` for |x| < 0.927734375, else `1 − e^{−Q(|x|)}` with x's
    /// sign; ±1 from |x| ≥ 4.
    pub fn erf(self, b: &mut FunctionBuilder, x: Value) -> Value {
        let a = b.ins().fabs(x);
        let x2 = b.ins().fmul(x, x);
        let p = self.poly(
            b,
            x2,
            &[
                -5.967_617e-4,
                4.991_194_2e-3,
                -2.676_813_5e-2,
                1.128_199_3e-1,
                -3.761_253_4e-1,
                1.283_791_7e-1,
            ],
        );
        let small = self.madd(b, p, x, x);
        let q = self.poly(
            b,
            a,
            &[
                1.728_534_7e-5,
                -3.831_971_3e-4,
                3.883_964_4e-3,
                -2.425_462_2e-2,
                1.067_778_8e-1,
                6.348_467e-1,
                1.287_175_1e-1,
            ],
        );
        let q = self.madd(b, q, a, a);
        let nq = b.ins().fneg(q);
        let e = self.exp(b, nq);
        let one = self.c(b, 1.0);
        let l = b.ins().fsub(one, e);
        let big = self.cmpk(b, FloatCC::GreaterThanOrEqual, a, 4.0);
        let l = self.sel(b, big, one, l);
        let l = self.with_sign_of(b, l, x);
        let is_small = self.cmpk(b, FloatCC::LessThan, a, 0.927_734_4);
        self.sel(b, is_small, small, l)
    }

    /// `xʸ` for any `x`, `y` (C `powf` special cases: `x⁰ = 1`, `1ʸ = 1`, a negative base needs an
    /// integer exponent, odd integer exponents keep the base's sign).
    pub fn pow(self, b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
        let a = b.ins().fabs(x);
        let l = self.log(b, a);
        let t = b.ins().fmul(y, l);
        let r = self.exp(b, t);
        // Integer and odd exponents.
        let fl = b.ins().floor(y);
        let yint = self.cmp(b, FloatCC::Equal, fl, y);
        let h = self.mulk(b, y, 0.5);
        let fh = b.ins().floor(h);
        let heven = self.cmp(b, FloatCC::Equal, fh, h);
        let ynot_even = self.not(b, heven);
        let yodd = self.and(b, yint, ynot_even);
        // Negative base (sign bit, so −0 too) with an odd exponent: negate.
        let xb = self.to_bits(b, x);
        let sign = self.ic(b, i32::MIN);
        let sb = b.ins().band(xb, sign);
        let zi = self.ic(b, 0);
        let neg = Mask(b.ins().icmp(IntCC::NotEqual, sb, zi));
        let flip = self.and(b, neg, yodd);
        let nr = b.ins().fneg(r);
        let r = self.sel(b, flip, nr, r);
        // Negative finite base with a finite non-integer exponent: NaN.
        let xneg = self.cmpk(b, FloatCC::LessThan, x, 0.0);
        let xfin = self.cmpk(b, FloatCC::GreaterThan, x, f32::NEG_INFINITY);
        let yfin = {
            let ay = b.ins().fabs(y);
            self.cmpk(b, FloatCC::LessThan, ay, f32::INFINITY)
        };
        let ynint = self.not(b, yint);
        let bad = self.and(b, xneg, xfin);
        let bad = self.and(b, bad, yfin);
        let bad = self.and(b, bad, ynint);
        let r = self.selk(b, bad, f32::NAN, r);
        // (−1)^±∞ = 1, x⁰ = 1, 1ʸ = 1.
        let m1 = self.cmpk(b, FloatCC::Equal, x, -1.0);
        let ay = b.ins().fabs(y);
        let yinf = self.cmpk(b, FloatCC::Equal, ay, f32::INFINITY);
        let m1inf = self.and(b, m1, yinf);
        let y0 = self.cmpk(b, FloatCC::Equal, y, 0.0);
        let x1 = self.cmpk(b, FloatCC::Equal, x, 1.0);
        let one = self.or(b, y0, x1);
        let one = self.or(b, one, m1inf);
        self.selk(b, one, 1.0, r)
    }

    /// `|l|` with the sign of `x` for `l ≥ 0` (`fcopysign` has no x86 vector lowering).
    pub fn with_sign_of(self, b: &mut FunctionBuilder, l: Value, x: Value) -> Value {
        let lb = self.to_bits(b, l);
        let xb = self.to_bits(b, x);
        let sign = self.ic(b, i32::MIN);
        let sb = b.ins().band(xb, sign);
        let r = b.ins().bor(lb, sb);
        self.from_bits(b, r)
    }

    /// Negation of a mask.
    pub fn not(self, b: &mut FunctionBuilder, m: Mask) -> Mask {
        if self.is_vec() {
            Mask(b.ins().bnot(m.0))
        } else {
            Mask(b.ins().bxor_imm_s(m.0, 1))
        }
    }

    /// `x < lo ? lo : x` (NaN stays NaN). Written as `x < lo ? lo : x`, the form x86 lowers to one
    /// `maxps` (wasm's `pmax`).
    pub fn clamp_lo(self, b: &mut FunctionBuilder, x: Value, lo: Value) -> Value {
        let m = self.cmp(b, FloatCC::LessThan, x, lo);
        self.sel(b, m, lo, x)
    }

    /// `x > hi ? hi : x` (NaN stays NaN). Written as `hi < x ? hi : x`, the form x86 lowers to one
    /// `minps` (wasm's `pmin`).
    pub fn clamp_hi(self, b: &mut FunctionBuilder, x: Value, hi: Value) -> Value {
        let m = self.cmp(b, FloatCC::LessThan, hi, x);
        self.sel(b, m, hi, x)
    }
}
