//! Elementwise ops: unary math, activations, binary and variadic arithmetic/comparison/logic with
//! numpy broadcasting, `where`, and casts.
//!
//! Design: one IR op per function, named after it (`exp(%x)`, `add(%a, %b)`, `hard_sigmoid(%x)
//! {alpha=0.1}`), rather than one `unary {fn=exp}` op with a keyword. The IR text reads like the math,
//! rewrite rules match on op names (`(relu (conv ?x ?w))`), and each op's attributes are exactly its own.
//! The op set still collapses ONNX variants: `CastLike` is `cast`, old opsets' attribute forms (Clip
//! `min`/`max`, Cast's string `to`) are upgraded at import, and everything follows the newest opset.
//!
//! Type rules, shared by kind:
//! - unary ops keep their input's type (minus quantization); `is_nan`/`is_inf` give `bool`;
//! - binary and variadic ops broadcast multidirectionally (numpy) and require one element type, except
//!   `pow` (exponent of any numeric type) and comparisons (`bool` result);
//! - `where(cond, x, y)` broadcasts all three; `cast`/`bitcast` change only the element type.
//!
//! Element types are checked against the ONNX type constraints by class (float, numeric, signed, integer,
//! bool). Integer arithmetic, comparisons, logic, `where`, `clip` and `cast` also evaluate
//! symbolically ([`Infer::sym_value`]) so shape arithmetic such as `Shape → Mul → Reshape` keeps dims.

use crate::define_ops;
use crate::infer::{
    Infer, InferCtx, InferError, SymInt, broadcast, broadcast_types, same_as_input,
};
use crate::ops::{ChannelMap, NodeTypes, Props, Work};
use crate::{DType, TensorType, Type};

crate::attr_enum! {
    /// GELU formula: exact (with `erf`) or the tanh approximation (ONNX `approximate="none"|"tanh"`).
    pub enum GeluApprox {
        /// `0.5·x·(1 + erf(x/√2))`.
        Erf = "erf",
        /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
        Tanh = "tanh",
    }
}

crate::attr_enum! {
    /// Direction of `bit_shift`.
    pub enum ShiftDirection {
        /// `x << y`.
        Left = "left",
        /// `x >> y` (arithmetic for signed types).
        Right = "right",
    }
}

crate::attr_enum! {
    /// Rounding of `cast` to `f8e8m0` (ONNX `round_mode`; other targets ignore it).
    pub enum RoundMode {
        /// To the nearest representable value away from zero.
        Up = "up",
        /// To the nearest representable value towards zero.
        Down = "down",
        /// To the nearest value, ties up.
        Nearest = "nearest",
    }
}

define_ops! {
    /// Elementwise ops.
    pub enum ElementwiseOp {
        // ---- unary math ----
        /// `|x|`.
        Abs = "abs" {},
        /// `acos(x)`.
        Acos = "acos" {},
        /// `acosh(x)`.
        Acosh = "acosh" {},
        /// `asin(x)`.
        Asin = "asin" {},
        /// `asinh(x)`.
        Asinh = "asinh" {},
        /// `atan(x)`.
        Atan = "atan" {},
        /// `atanh(x)`.
        Atanh = "atanh" {},
        /// Round towards +∞.
        Ceil = "ceil" {},
        /// `cos(x)`.
        Cos = "cos" {},
        /// `cosh(x)`.
        Cosh = "cosh" {},
        /// The Gauss error function.
        Erf = "erf" {},
        /// `eˣ`.
        Exp = "exp" {},
        /// Round towards −∞.
        Floor = "floor" {},
        /// Natural logarithm.
        Log = "log" {},
        /// `−x`.
        Neg = "neg" {},
        /// Logical not of a bool tensor.
        Not = "not" {},
        /// `1/x`.
        Reciprocal = "reciprocal" {},
        /// Round to nearest, ties to even.
        Round = "round" {},
        /// `1/(1+e⁻ˣ)`.
        Sigmoid = "sigmoid" {},
        /// −1, 0 or 1 by the sign of `x`.
        Sign = "sign" {},
        /// `sin(x)`.
        Sin = "sin" {},
        /// `sinh(x)`.
        Sinh = "sinh" {},
        /// `√x`.
        Sqrt = "sqrt" {},
        /// `tan(x)`.
        Tan = "tan" {},
        /// `tanh(x)`.
        Tanh = "tanh" {},
        /// True where `x` is NaN.
        IsNan = "is_nan" {},
        /// True where `x` is +∞ (if `detect_positive`) or −∞ (if `detect_negative`).
        IsInf = "is_inf" { detect_negative: bool = true, detect_positive: bool = true },
        /// Bitwise not of an integer tensor.
        BitwiseNot = "bitwise_not" {},

        // ---- activations ----
        /// `max(x, 0)`.
        Relu = "relu" {},
        /// `x < 0 ? alpha·x : x`.
        LeakyRelu = "leaky_relu" { alpha: f32 = 0.01 },
        /// `x < 0 ? slope·x : x`, `slope` (input 1) broadcast to `x`.
        PRelu = "prelu" {},
        /// `x < 0 ? alpha·(eˣ − 1) : x`.
        Elu = "elu" { alpha: f32 = 1.0 },
        /// `x <= 0 ? gamma·alpha·(eˣ − 1) : gamma·x`.
        Selu = "selu" { alpha: f32 = 1.673_263_2, gamma: f32 = 1.050_701 },
        /// `max(0, x) + min(0, alpha·(e^(x/alpha) − 1))`.
        Celu = "celu" { alpha: f32 = 1.0 },
        /// `x > alpha ? x : 0`.
        ThresholdedRelu = "thresholded_relu" { alpha: f32 = 1.0 },
        /// `max(0, min(1, alpha·x + beta))`.
        HardSigmoid = "hard_sigmoid" { alpha: f32 = 0.2, beta: f32 = 0.5 },
        /// `x · max(0, min(1, x/6 + 1/2))`.
        HardSwish = "hard_swish" {},
        /// `x · tanh(softplus(x))`.
        Mish = "mish" {},
        /// Gaussian error linear unit.
        Gelu = "gelu" { approximate: GeluApprox = GeluApprox::Erf },
        /// `x · sigmoid(alpha·x)`.
        Swish = "swish" { alpha: f32 = 1.0 },
        /// `x / (1 + |x|)`.
        Softsign = "softsign" {},
        /// `ln(1 + eˣ)`.
        Softplus = "softplus" {},
        /// `x < −lambd ? x + bias : x > lambd ? x − bias : 0`.
        Shrink = "shrink" { bias: f32 = 0.0, lambd: f32 = 0.5 },
        /// `min(max(x, min), max)`; inputs 1 (`min`) and 2 (`max`) are optional scalars of x's type.
        Clip = "clip" {},

        // ---- binary arithmetic, logic and comparisons (broadcasting) ----
        /// `a + b`.
        Add = "add" {},
        /// `a − b`.
        Sub = "sub" {},
        /// `a · b`.
        Mul = "mul" {},
        /// `a / b` (integer division truncates).
        Div = "div" {},
        /// `aᵇ`; the exponent may be of another numeric type; the result has the base's type.
        Pow = "pow" {},
        /// Remainder `a − floor(a/b)·b` (sign of the divisor), or with `fmod` `a − trunc(a/b)·b` (sign of
        /// the dividend, C `fmod`).
        Mod = "mod" { fmod: bool = false },
        /// Bit shift of integers by `b` bits; right shifts of signed types are arithmetic. Shifts by a
        /// negative amount or by the bit width or more give 0 (or −1 for a right shift of a negative value).
        BitShift = "bit_shift" { direction: ShiftDirection = ShiftDirection::Left },
        /// Bitwise and of integers.
        BitwiseAnd = "bitwise_and" {},
        /// Bitwise or of integers.
        BitwiseOr = "bitwise_or" {},
        /// Bitwise xor of integers.
        BitwiseXor = "bitwise_xor" {},
        /// Logical and of bools.
        And = "and" {},
        /// Logical or of bools.
        Or = "or" {},
        /// Logical xor of bools.
        Xor = "xor" {},
        /// `a == b` → bool.
        Equal = "equal" {},
        /// `a > b` → bool.
        Greater = "greater" {},
        /// `a >= b` → bool.
        GreaterOrEqual = "greater_or_equal" {},
        /// `a < b` → bool.
        Less = "less" {},
        /// `a <= b` → bool.
        LessOrEqual = "less_or_equal" {},

        // ---- variadic (one or more inputs, broadcasting) ----
        /// Elementwise maximum.
        Max = "max" {},
        /// Elementwise minimum.
        Min = "min" {},
        /// Elementwise sum.
        Sum = "sum" {},
        /// Elementwise mean.
        Mean = "mean" {},

        // ---- selection and conversion ----
        /// `cond ? x : y` (inputs `cond: bool`, `x`, `y`), broadcasting all three.
        Where = "where" {},
        /// Conversion to `to` (ONNX Cast; CastLike imports as this). `saturate` and `round_mode` apply to
        /// 8-bit float targets only.
        Cast = "cast" { to: DType = DType::F32, saturate: bool = true, round_mode: RoundMode = RoundMode::Up },
        /// Reinterprets the bits as `to`, which must have the input's bit width.
        Bitcast = "bitcast" { to: DType = DType::F32 },
    }
}

impl ElementwiseOp {
    /// Properties (see [`Props`]): every op of the family is pointwise.
    pub fn props(&self) -> Props {
        Props::ELEMENTWISE
    }

    /// Arithmetic (see [`Work`]): one operation per output element; transcendental functions (and
    /// division) count as one transcendental each, `gelu` as one plus two.
    pub fn work(&self, t: &NodeTypes) -> Option<Work> {
        use ElementwiseOp as E;
        let n = t.out_elems()?;
        Some(match self {
            E::Gelu(_) => Work::per_element(n, 3.0, 1.0),
            E::Exp(_)
            | E::Log(_)
            | E::Erf(_)
            | E::Tanh(_)
            | E::Sigmoid(_)
            | E::Sqrt(_)
            | E::Reciprocal(_)
            | E::Div(_)
            | E::Pow(_)
            | E::Sin(_)
            | E::Cos(_)
            | E::Tan(_)
            | E::Asin(_)
            | E::Acos(_)
            | E::Atan(_)
            | E::Sinh(_)
            | E::Cosh(_)
            | E::Asinh(_)
            | E::Acosh(_)
            | E::Atanh(_)
            | E::Mish(_)
            | E::Softplus(_)
            | E::Elu(_)
            | E::Selu(_)
            | E::Celu(_)
            | E::Swish(_) => Work::per_element(n, 1.0, 1.0),
            _ => Work::arith(n),
        })
    }

    /// Channel map (see [`ChannelMap`]): pointwise over the broadcast inputs (`c → c`).
    pub fn channels(&self, t: &NodeTypes) -> ChannelMap {
        let inputs: Vec<Option<&TensorType>> = (0..t.inputs.len()).map(|i| t.input(i)).collect();
        ChannelMap::pointwise(&inputs, t.output(0))
    }
}

// ---------------------------------------------------------------------------------------------------
// Element type classes (ONNX type constraints).

#[derive(Clone, Copy)]
enum Class {
    Float,
    Numeric,
    Signed,
    Int,
    Bool,
    Any,
}

impl Class {
    fn admits(self, d: DType) -> bool {
        match self {
            Class::Float => d.is_float(),
            Class::Numeric => d.is_float() || d.is_int(),
            Class::Signed => d.is_float() || d.is_signed_int(),
            Class::Int => d.is_int(),
            Class::Bool => d == DType::Bool,
            Class::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Class::Float => "a floating-point type",
            Class::Numeric => "a numeric type",
            Class::Signed => "a floating-point or signed integer type",
            Class::Int => "an integer type",
            Class::Bool => "bool",
            Class::Any => "any type",
        }
    }
}

/// The element type of tensor input `i`, checked against `class`.
fn check(cx: &InferCtx, i: usize, class: Class) -> Result<DType, InferError> {
    let d = cx.dtype(i)?;
    if class.admits(d) {
        Ok(d)
    } else {
        Err(cx.err(format!(
            "input {i} has element type {d}, expected {}",
            class.describe()
        )))
    }
}

/// Checks every present input against `class`.
fn check_all(cx: &InferCtx, class: Class) -> Result<(), InferError> {
    for i in 0..cx.num_inputs() {
        if cx.has_input(i) {
            check(cx, i, class)?;
        }
    }
    Ok(())
}

fn exactly(cx: &InferCtx, n: usize) -> Result<(), InferError> {
    if cx.num_inputs() != n {
        return Err(cx.err(format!("takes {n} input(s), got {}", cx.num_inputs())));
    }
    Ok(())
}

/// Unary op whose result has its input's type.
fn unary(cx: &InferCtx, class: Class) -> Result<Vec<Type>, InferError> {
    exactly(cx, 1)?;
    check(cx, 0, class)?;
    same_as_input(cx)
}

/// Unary predicate: bool of the input's shape.
fn predicate(cx: &InferCtx, class: Class) -> Result<Vec<Type>, InferError> {
    exactly(cx, 1)?;
    check(cx, 0, class)?;
    let t = cx.tensor(0)?;
    Ok(vec![Type::Tensor(TensorType {
        dtype: DType::Bool,
        shape: t.shape.clone(),
        quant: None,
    })])
}

/// Binary op over one element type, broadcasting; result `out` or the operands' type.
fn binary(cx: &InferCtx, class: Class, out: Option<DType>) -> Result<Vec<Type>, InferError> {
    exactly(cx, 2)?;
    check_all(cx, class)?;
    broadcast(cx, out, true)
}

/// Variadic op (one or more inputs) over one element type, broadcasting.
fn variadic(cx: &InferCtx, class: Class) -> Result<Vec<Type>, InferError> {
    if cx.num_inputs() == 0 {
        return Err(cx.err("needs at least one input"));
    }
    for i in 0..cx.num_inputs() {
        cx.tensor(i)?;
    }
    check_all(cx, class)?;
    broadcast(cx, None, true)
}

macro_rules! infer_by {
    ($f:ident($class:expr) => $($Op:ident),* $(,)?) => {
        $(
            impl Infer for $Op {
                fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
                    $f(cx, $class)
                }
            }
        )*
    };
}

infer_by!(unary(Class::Float) =>
    Acos, Acosh, Asin, Asinh, Atan, Atanh, Ceil, Cos, Cosh, Exp, Floor, Log, Reciprocal, Round, Sigmoid,
    Sin, Sinh, Sqrt, Tan, Tanh, LeakyRelu, Elu, Selu, Celu, ThresholdedRelu, HardSigmoid, HardSwish, Mish,
    Gelu, Swish, Softsign, Softplus);
infer_by!(unary(Class::Numeric) => Erf, Sign, Shrink);
infer_by!(unary(Class::Signed) => Relu);
infer_by!(unary(Class::Int) => BitwiseNot);
infer_by!(predicate(Class::Float) => IsNan, IsInf);
infer_by!(variadic(Class::Float) => Mean);

impl Infer for Abs {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        unary(cx, Class::Numeric)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_map(cx, |a| match a {
            SymInt::Int(x) => x.checked_abs().map_or(SymInt::Unknown, SymInt::Int),
            s @ SymInt::Sym(_) => s.clone(),
            SymInt::Unknown => SymInt::Unknown,
        })
    }
}

impl Infer for Neg {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        unary(cx, Class::Signed)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_map(cx, |a| match a {
            SymInt::Int(x) => x.checked_neg().map_or(SymInt::Unknown, SymInt::Int),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Not {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        unary(cx, Class::Bool)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_map(cx, |a| match a {
            SymInt::Int(x) => SymInt::Int(i64::from(*x == 0)),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for PRelu {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        exactly(cx, 2)?;
        check_all(cx, Class::Numeric)?;
        let (x, slope) = (cx.tensor(0)?, cx.tensor(1)?);
        if let (Some(rx), Some(rs)) = (x.rank(), slope.rank())
            && rs > rx
        {
            return Err(cx.err(format!(
                "slope {slope} must broadcast to the input {x} (it has a higher rank)"
            )));
        }
        broadcast(cx, None, true)
    }
}

impl Infer for Clip {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        if cx.num_inputs() == 0 || cx.num_inputs() > 3 {
            return Err(cx.err(format!(
                "takes 1 to 3 inputs (x, min, max), got {}",
                cx.num_inputs()
            )));
        }
        let d = check(cx, 0, Class::Numeric)?;
        for (i, what) in [(1, "min"), (2, "max")] {
            if let Some(t) = cx.opt_tensor(i)? {
                if t.dtype != d {
                    return Err(cx.err(format!(
                        "{what} (input {i}) has element type {}, expected the input's {d}",
                        t.dtype
                    )));
                }
                if t.shape
                    .as_ref()
                    .and_then(|s| s.num_elements())
                    .is_some_and(|n| n != 1)
                {
                    return Err(cx.err(format!("{what} (input {i}) must be a scalar, got {t}")));
                }
            }
        }
        same_as_input(cx)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let bound = |i: usize| -> Option<Option<i64>> {
            if !cx.has_input(i) {
                return Some(None);
            }
            let v = cx.known_i64s(i)?;
            (v.len() == 1).then(|| Some(v[0]))
        };
        let (lo, hi) = (bound(1)?, bound(2)?);
        sym_map(cx, |a| match a {
            SymInt::Int(x) => {
                let mut x = *x;
                if let Some(l) = lo {
                    x = x.max(l);
                }
                if let Some(h) = hi {
                    x = x.min(h);
                }
                SymInt::Int(x)
            }
            s @ SymInt::Sym(_) if lo.is_none_or(|l| l <= 0) && hi.is_none() => s.clone(),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Add {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        binary(cx, Class::Numeric, None)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_zip(cx, sym_add)
    }
}

impl Infer for Sub {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        binary(cx, Class::Numeric, None)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_zip(cx, |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) => int(x.checked_sub(*y)),
            (s @ SymInt::Sym(_), SymInt::Int(0)) => s.clone(),
            (SymInt::Sym(x), SymInt::Sym(y)) if x == y => SymInt::Int(0),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Mul {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        binary(cx, Class::Numeric, None)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_zip(cx, |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) => int(x.checked_mul(*y)),
            (s @ SymInt::Sym(_), SymInt::Int(1)) | (SymInt::Int(1), s @ SymInt::Sym(_)) => {
                s.clone()
            }
            (SymInt::Int(0), _) | (_, SymInt::Int(0)) => SymInt::Int(0),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Div {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        binary(cx, Class::Numeric, None)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_zip(cx, |a, b| match (a, b) {
            // Exact or non-negative quotients are the same under truncating and flooring division.
            (SymInt::Int(x), SymInt::Int(y)) if *y != 0 => match x.checked_rem(*y) {
                Some(0) => int(x.checked_div(*y)),
                Some(_) if *x >= 0 && *y > 0 => SymInt::Int(x / y),
                _ => SymInt::Unknown,
            },
            (s @ SymInt::Sym(_), SymInt::Int(1)) => s.clone(),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Pow {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        exactly(cx, 2)?;
        check_all(cx, Class::Numeric)?;
        broadcast(cx, None, false)
    }
}

impl Infer for Mod {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        binary(cx, Class::Numeric, None)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let fmod = self.fmod;
        sym_zip(cx, move |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) if *y != 0 => match x.checked_rem(*y) {
                Some(r) if !fmod && r != 0 && (r < 0) != (*y < 0) => SymInt::Int(r + y),
                Some(r) => SymInt::Int(r),
                None => SymInt::Unknown,
            },
            _ => SymInt::Unknown,
        })
    }
}

infer_by!(binary_same(Class::Int) => BitShift, BitwiseAnd, BitwiseOr, BitwiseXor);

fn binary_same(cx: &InferCtx, class: Class) -> Result<Vec<Type>, InferError> {
    binary(cx, class, None)
}

fn logic(cx: &InferCtx) -> Result<Vec<Type>, InferError> {
    binary(cx, Class::Bool, None)
}

fn compare(cx: &InferCtx, class: Class) -> Result<Vec<Type>, InferError> {
    binary(cx, class, Some(DType::Bool))
}

/// Truth as a symbolic bool element.
fn truth(b: bool) -> SymInt {
    SymInt::Int(i64::from(b))
}

macro_rules! logic_ops {
    ($($Op:ident: $f:expr),* $(,)?) => {
        $(
            impl Infer for $Op {
                fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
                    logic(cx)
                }

                fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
                    let f: fn(bool, bool) -> bool = $f;
                    sym_zip(cx, |a, b| match (a, b) {
                        (SymInt::Int(x), SymInt::Int(y)) => truth(f(*x != 0, *y != 0)),
                        _ => SymInt::Unknown,
                    })
                }
            }
        )*
    };
}

logic_ops! {
    And: |a, b| a && b,
    Or: |a, b| a || b,
    Xor: |a, b| a != b,
}

macro_rules! compare_ops {
    ($($Op:ident($class:expr): $f:expr, same = $same:expr),* $(,)?) => {
        $(
            impl Infer for $Op {
                fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
                    compare(cx, $class)
                }

                fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
                    let f: fn(i64, i64) -> bool = $f;
                    sym_zip(cx, |a, b| match (a, b) {
                        (SymInt::Int(x), SymInt::Int(y)) => truth(f(*x, *y)),
                        (SymInt::Sym(x), SymInt::Sym(y)) if x == y => truth($same),
                        _ => SymInt::Unknown,
                    })
                }
            }
        )*
    };
}

compare_ops! {
    Equal(Class::Any): |a, b| a == b, same = true,
    Greater(Class::Numeric): |a, b| a > b, same = false,
    GreaterOrEqual(Class::Numeric): |a, b| a >= b, same = true,
    Less(Class::Numeric): |a, b| a < b, same = false,
    LessOrEqual(Class::Numeric): |a, b| a <= b, same = true,
}

impl Infer for Max {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        variadic(cx, Class::Numeric)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_fold(cx, |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) => SymInt::Int(*x.max(y)),
            // Symbolic dims are never negative.
            (s @ SymInt::Sym(_), SymInt::Int(k)) | (SymInt::Int(k), s @ SymInt::Sym(_))
                if *k <= 0 =>
            {
                s.clone()
            }
            (SymInt::Sym(x), SymInt::Sym(y)) if x == y => a.clone(),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Min {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        variadic(cx, Class::Numeric)
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        sym_fold(cx, |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) => SymInt::Int(*x.min(y)),
            (SymInt::Sym(_), SymInt::Int(k)) | (SymInt::Int(k), SymInt::Sym(_)) if *k <= 0 => {
                SymInt::Int(*k)
            }
            (SymInt::Sym(x), SymInt::Sym(y)) if x == y => a.clone(),
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Sum {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        variadic(cx, Class::Float)
    }
}

impl Infer for Where {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        exactly(cx, 3)?;
        check(cx, 0, Class::Bool)?;
        let (c, x, y) = (cx.tensor(0)?, cx.tensor(1)?, cx.tensor(2)?);
        if x.dtype != y.dtype {
            return Err(cx.err(format!(
                "x and y must share one element type, got {} and {}",
                x.dtype, y.dtype
            )));
        }
        let shape = broadcast_types(&[c, x, y]).map_err(|m| cx.err(m))?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: x.dtype,
            shape,
            quant: None,
        })])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let vals = [cx.sym_value(0)?, cx.sym_value(1)?, cx.sym_value(2)?];
        let n = broadcast_len(&vals)?;
        Some(
            (0..n)
                .map(|i| match at(&vals[0], i) {
                    SymInt::Int(c) => at(&vals[if *c != 0 { 1 } else { 2 }], i).clone(),
                    _ => SymInt::Unknown,
                })
                .collect(),
        )
    }
}

impl Infer for Cast {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        exactly(cx, 1)?;
        let t = cx.tensor(0)?;
        Ok(vec![Type::Tensor(TensorType {
            dtype: self.to,
            shape: t.shape.clone(),
            quant: None,
        })])
    }

    fn sym_value(&self, cx: &InferCtx) -> Option<Vec<SymInt>> {
        let from = cx.dtype(0).ok()?;
        if !(from.is_int() || from == DType::Bool) {
            return None;
        }
        let to = self.to;
        sym_map(cx, |a| match a {
            SymInt::Int(x) if to == DType::Bool => truth(*x != 0),
            SymInt::Int(x) => fit(*x, to),
            s @ SymInt::Sym(_)
                if matches!(to, DType::I64 | DType::I32 | DType::U64 | DType::U32) =>
            {
                s.clone()
            }
            _ => SymInt::Unknown,
        })
    }
}

impl Infer for Bitcast {
    fn infer(&self, cx: &InferCtx) -> Result<Vec<Type>, InferError> {
        exactly(cx, 1)?;
        let t = cx.tensor(0)?;
        let (from, to) = (t.dtype, self.to);
        if from == DType::String || to == DType::String {
            return Err(cx.err("strings cannot be bit-cast"));
        }
        if from.bits() != to.bits() {
            return Err(cx.err(format!(
                "cannot bit-cast {from} ({} bits) to {to} ({} bits): widths must match",
                from.bits(),
                to.bits()
            )));
        }
        Ok(vec![Type::Tensor(TensorType {
            dtype: to,
            shape: t.shape.clone(),
            quant: None,
        })])
    }
}

mod sym;
use sym::*;

#[cfg(test)]
mod tests;
